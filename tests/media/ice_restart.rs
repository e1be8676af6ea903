//! ICE restart over WHEP PATCH (RFC 9725 §4.3.2 / draft-ietf-wish-whep): the client sends new credentials with
//! `If-Match`, glasscast answers 200 with its own new credentials and candidates and a new ETag, both ICE agents
//! restart, and media keeps flowing over a pair checked with the new credentials. The client is GStreamer's
//! webrtcbin (libnice), restarted the same way a browser's `restartIce()` would.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use common::*;
use glasscast::ids::SessionId;
use glasscast::media::IceCredentials;
use glasscast::media::webrtcbin::ice_restart;
use glasscast::sdpfrag::SdpFrag;
use gstreamer::glib;
use gstreamer::prelude::*;

/// Counts the client agent's selected-pair changes (a new pair is selected only after connectivity checks
/// with the current credentials succeeded both ways).
fn count_selected_pairs(v: &WebrtcbinViewer) -> Arc<AtomicU32> {
    let n = Arc::new(AtomicU32::new(0));
    let agent = v.webrtcbin.property::<glib::Object>("ice-agent").property::<glib::Object>("agent");
    let counter = Arc::clone(&n);
    agent.connect("new-selected-pair-full", false, move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
        None
    });
    n
}

fn ice_ufrag(sdp: &str) -> String {
    sdp.lines().find_map(|l| l.trim_end().strip_prefix("a=ice-ufrag:")).expect("an ice-ufrag").to_owned()
}

on_both_transports!(
    /// On the forwarding transport str0m (ICE lite) answers the client's checks with the new credentials
    /// on the one mux port; on webrtcbin libnice restarts.
    ice_restart_answers_200_and_media_carries_on_over_the_new_credentials,
    restart_keeps_media_flowing
);

async fn restart_keeps_media_flowing(transport: glasscast::config::Transport) {
    let srv = start_on(transport, vec![small_stream("main")]).await;
    let v = WebrtcbinViewer::new(96, "42e01f", true);
    let offer = v.offer().await;
    let resp = srv.post_offer("main", &offer).await;
    assert_eq!(resp.status(), 201);
    let loc = format!("{}{}", srv.base, resp.headers()["location"].to_str().expect("ascii"));
    let etag0 = resp.headers()["etag"].to_str().expect("ascii").to_owned();
    let answer = resp.text().await.expect("answer");
    v.set_answer(&answer).await;
    assert!(v.gets_frames(10, 20).await, "no frames before the restart");
    let id = SessionId::parse(loc.rsplit('/').next().expect("id")).expect("session id");
    let pairs = count_selected_pairs(&v);

    // The client's new credentials and its (unchanged) host candidates.
    let client = IceCredentials::random();
    let mut frag = format!(
        "a=ice-ufrag:{}\r\na=ice-pwd:{}\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:video0\r\n",
        client.ufrag, client.pwd
    );
    for cand in offer.lines().filter(|l| l.starts_with("a=candidate:")) {
        frag.push_str(cand.trim_end());
        frag.push_str("\r\n");
    }
    frag.push_str("a=end-of-candidates\r\n");

    let r = srv.patch_frag(&loc, Some(&etag0), &frag).await;
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    assert_eq!(r.headers()["content-type"], "application/trickle-ice-sdpfrag");
    let etag1 = r.headers()["etag"].to_str().expect("ascii").to_owned();
    assert_ne!(etag1, etag0, "a restart must change the ETag");
    let body = r.text().await.expect("body");
    let server = SdpFrag::parse(&body).expect("the 200 body is an sdpfrag");
    let server_creds =
        IceCredentials { ufrag: server.ufrag.clone().expect("new ufrag"), pwd: server.pwd.clone().expect("new pwd") };
    assert_ne!(server_creds.ufrag, ice_ufrag(&answer), "the server must pick new credentials");
    assert!(server_creds.pwd.len() >= 22, "ice-pwd needs 128 bits");
    assert_eq!(server.media.len(), 1);
    assert!(!server.media[0].candidates.is_empty(), "our host candidates must be in the answer: {body}");
    assert!(server.media[0].end_of_candidates);
    let handle = srv.server.sessions.viewer(id).await.expect("session lives");
    assert_eq!(handle.remote_ufrag(), client.ufrag);

    // The client restarts too and learns our candidates; the agents check the new credentials and select a pair.
    ice_restart::restart(&v.webrtcbin, &client, &server_creds).expect("client-side restart");
    for cand in &server.media[0].candidates {
        v.webrtcbin.emit_by_name::<()>("add-ice-candidate", &[&0u32, cand]);
    }
    assert!(
        eventually(15, || pairs.load(Ordering::SeqCst) >= 1).await,
        "no candidate pair was selected with the new credentials"
    );
    assert!(v.gets_frames(60, 20).await, "media must keep flowing after the restart");

    // The old ETag is gone; the new one works for trickle with the new ufrag; a same-ufrag PATCH is trickle.
    let trickle = format!(
        "a=ice-ufrag:{}\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:video0\r\na=end-of-candidates\r\n",
        client.ufrag
    );
    assert_eq!(srv.patch_frag(&loc, Some(&etag0), &trickle).await.status(), 412);
    assert_eq!(srv.patch_frag(&loc, Some(&etag1), &trickle).await.status(), 204);
    // A second restart works too and bumps the ETag again.
    let again = IceCredentials::random();
    let frag2 = format!("a=ice-ufrag:{}\r\na=ice-pwd:{}\r\n", again.ufrag, again.pwd);
    let r = srv.patch_frag(&loc, Some("*"), &frag2).await;
    assert_eq!(r.status(), 200);
    let etag2 = r.headers()["etag"].to_str().expect("ascii").to_owned();
    assert!(etag2 != etag1 && etag2 != etag0);
    srv.shutdown().await;
}

/// A PATCH's media work runs off the session manager (issue 18): with `GLASSCAST_TEST_FAULT=slow-ice-restart`
/// (the real binary) a restart takes 5 s, and meanwhile a new viewer is answered, a second restart of the
/// same session is refused with 412 (its ETag is about to change), and a trickle for the new credentials
/// waits for the restart and then goes in.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_ice_restart_keeps_no_other_request_waiting() {
    let config = "[webrtc]\nmux_port = 0\n[[streams]]\nname = \"main\"\nwidth = 320\nheight = 240\n";
    let gc = common::binary::serve(config, &[("GLASSCAST_TEST_FAULT", "slow-ice-restart")]).await;
    let mut v = WebrtcbinViewer::new(96, "42e01f", true);
    v.connect_to(&gc.base, "main").await;
    assert!(v.gets_frames(10, 20).await, "the viewer plays before the restart");
    let (loc, etag0) = (v.location.clone().expect("a location"), v.etag.clone().expect("an etag"));
    let http = reqwest::Client::new();
    let patch = |frag: String, if_match: Option<String>| {
        let mut req = http.patch(&loc).header("content-type", "application/trickle-ice-sdpfrag").body(frag);
        if let Some(tag) = if_match {
            req = req.header("if-match", tag);
        }
        req.send()
    };
    let creds = |c: &IceCredentials| format!("a=ice-ufrag:{}\r\na=ice-pwd:{}\r\n", c.ufrag, c.pwd);
    let client = IceCredentials::random();
    let restart = tokio::spawn(patch(creds(&client), Some(etag0.clone())));
    tokio::time::sleep(std::time::Duration::from_millis(500)).await; // the restart is under way (5 s)

    let second = patch(creds(&IceCredentials::random()), Some(etag0.clone())).await.expect("second restart");
    assert_eq!(second.status(), 412, "a second restart while one is under way");
    let trickle_frag = format!(
        "a=ice-ufrag:{}\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:video0\r\na=end-of-candidates\r\n",
        client.ufrag
    );
    let trickle = tokio::spawn(patch(trickle_frag, None));
    let mut other = WebrtcbinViewer::new(97, "42e01f", true);
    other.connect_to(&gc.base, "main").await;
    assert!(!restart.is_finished(), "the new viewer was answered only after the restart had finished");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(!trickle.is_finished(), "the trickle went in before the restart it follows");

    let restarted = restart.await.expect("join").expect("restart");
    assert_eq!(restarted.status(), 200);
    assert_ne!(restarted.headers()["etag"].to_str().expect("ascii"), etag0, "a restart changes the ETag");
    assert_eq!(trickle.await.expect("join").expect("trickle").status(), 204);
    assert!(other.gets_frames(10, 20).await, "the viewer answered meanwhile plays");
}

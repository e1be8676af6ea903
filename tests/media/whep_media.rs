//! End to end over WHEP with GStreamer's own webrtcbin as the viewer: decoded frames and audio arrive, the
//! fan-out traps stay fixed (payload types, profile-level-id, keyframe on join, stale packets, UPnP,
//! leaked webrtcbins), a viewer leaving or failing never disturbs the others, and sections a viewer (aiortc)
//! offers beyond what we send are refused in the answer.

use crate::common;

use common::*;
use glasscast::config::{StreamConfig, Transport};
use glasscast::ids::SessionId;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn viewer_decodes_video_of_the_configured_size_and_audio_and_delete_frees_the_branch() {
    let srv = start_webrtcbin(vec![small_stream("main")]).await;
    let pads_before = srv.viewer_pads("main").await;

    let mut v = WebrtcbinViewer::new(96, "42e01f", true);
    v.connect(&srv, "main").await;
    assert!(v.gets_frames(30, 20).await, "no video frames decoded");
    assert_eq!(*v.size.lock().expect("lock"), Some((320, 240)));
    assert!(eventually(10, || v.audio() > 10).await, "no Opus audio decoded");
    assert_eq!(srv.viewer_pads("main").await, pads_before + 2, "one video and one audio branch");

    let id = session_of(&v);
    let handle = srv.server.sessions.viewer(id).await.expect("session exists");
    assert!(handle.upnp_disabled(), "libnice UPnP must be off (adds ~200 ms per join)");
    let stats = handle.gate_stats();
    assert!(stats.first_forwarded_was_keyframe, "the first packet sent must start a keyframe: {stats:?}");
    let webrtcbin = handle.webrtcbin_weak().expect("webrtcbin transport");
    drop(handle);

    let resp = srv.http.delete(v.location.clone().expect("location")).send().await.expect("delete");
    assert_eq!(resp.status(), 200);
    let released = eventually_async(5, || async { srv.viewer_pads("main").await == pads_before }).await;
    assert_eq!(srv.viewer_pads("main").await, pads_before, "DELETE must release the tee pads ({released})");
    assert!(
        eventually(10, || webrtcbin.upgrade().is_none()).await,
        "the removed webrtcbin is still alive: something holds a strong reference"
    );
    let again = srv.http.delete(v.location.clone().expect("location")).send().await.expect("delete");
    assert_eq!(again.status(), 404, "a deleted session is gone");
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn viewers_with_different_payload_types_and_profiles_all_play() {
    let srv = start_webrtcbin(vec![small_stream("main")]).await;
    // A GStreamer-style offer (96, 42e016, no level-asymmetry) and two browser-style ones.
    let mut a = WebrtcbinViewer::new(96, "42e016", true);
    let mut b = WebrtcbinViewer::new(108, "42e01f", true);
    let mut c = WebrtcbinViewer::new(102, "42001f", false);
    // The same payload type as a, with another profile: a branch of its own.
    let mut d = WebrtcbinViewer::new(96, "42e01f", true);
    a.connect(&srv, "main").await;
    b.connect(&srv, "main").await;
    c.connect(&srv, "main").await;
    d.connect(&srv, "main").await;
    for (name, v) in [("a", &a), ("b", &b), ("c", &c), ("d", &d)] {
        assert!(v.gets_frames(20, 20).await, "viewer {name} decoded no frames");
    }
    // Viewer a leaves; the others keep decoding.
    srv.http.delete(a.location.clone().expect("loc")).send().await.expect("delete");
    a.stop();
    assert!(b.gets_frames(30, 20).await && c.gets_frames(30, 20).await, "others stalled when one left");
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_joining_viewer_gets_a_keyframe_at_once() {
    // With a 60 s keyframe interval, only a forced keyframe lets a second viewer decode within 15 s.
    let stream = StreamConfig { keyframe_interval_s: 60, ..small_stream("main") };
    let srv = start_webrtcbin(vec![stream]).await;
    let mut first = WebrtcbinViewer::new(96, "42e01f", false);
    first.connect(&srv, "main").await;
    assert!(first.gets_frames(10, 20).await);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let mut second = WebrtcbinViewer::new(97, "42e01f", false);
    second.connect(&srv, "main").await;
    assert!(second.gets_frames(10, 15).await, "a late joiner waited for the periodic keyframe");
    let stats = srv.server.sessions.viewer(session_of(&second)).await.expect("session").gate_stats();
    assert!(stats.first_forwarded_was_keyframe, "{stats:?}");
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_viewer_that_never_connects_or_vanishes_does_not_disturb_others() {
    let srv = start_webrtcbin(vec![small_stream("main")]).await;
    let mut good = WebrtcbinViewer::new(96, "42e01f", true);
    good.connect(&srv, "main").await;
    assert!(good.gets_frames(10, 20).await);

    // Negotiates, then its peer disappears without DELETE and never answers ICE.
    let ghost = WebrtcbinViewer::new(100, "42e01f", true);
    let offer = ghost.offer().await;
    ghost.stop();
    drop(ghost);
    let resp = srv.post_offer("main", &offer).await;
    assert_eq!(resp.status(), 201);

    assert!(good.gets_frames(60, 20).await, "the good viewer stalled");
    srv.shutdown().await;
}

on_both_transports!(
    /// A client that POSTs and vanishes before ICE is ended after the connect timeout (on webrtcbin its
    /// branch is freed), while one that connects outlives it.
    a_session_that_never_connects_is_ended_after_the_connect_timeout,
    never_connected
);

async fn never_connected(transport: Transport) {
    let mut cfg = glasscast::config::Config::default();
    cfg.server.plain_http = true;
    cfg.webrtc.connect_timeout_s = 1;
    cfg.webrtc.transport = transport;
    cfg.streams = vec![small_stream("main")];
    let srv = start_with(cfg).await;
    let pads_before = srv.viewer_pads("main").await;
    // webrtcbin links a branch (video and audio) per viewer; the forwarding transport links none.
    let branch = if transport == Transport::Webrtcbin { 2 } else { 0 };

    // A client that POSTs and vanishes before ICE: its branch must not stay around.
    let ghost = WebrtcbinViewer::new(96, "42e01f", true);
    let offer = ghost.offer().await;
    ghost.stop();
    let resp = srv.post_offer("main", &offer).await;
    assert_eq!(resp.status(), 201);
    let loc = format!("{}{}", srv.base, resp.headers()["location"].to_str().expect("ascii"));
    let id = SessionId::parse(loc.rsplit('/').next().expect("id")).expect("session id");
    assert!(srv.server.sessions.viewer(id).await.is_some());
    assert_eq!(srv.viewer_pads("main").await, pads_before + branch);

    let gone =
        || async { srv.server.sessions.viewer(id).await.is_none() && srv.viewer_pads("main").await == pads_before };
    assert!(eventually_async(10, gone).await, "the never-connected session was not ended");
    assert_eq!(srv.server.sessions.streams().await[0].viewers, 0);
    assert_eq!(srv.http.delete(&loc).send().await.expect("DELETE").status(), 404);

    // A viewer that does connect within the timeout is kept past it.
    let mut v = WebrtcbinViewer::new(96, "42e01f", true);
    v.connect(&srv, "main").await;
    assert!(v.gets_frames(90, 20).await, "a connected viewer must outlive the connect timeout");
    assert!(srv.server.sessions.viewer(session_of(&v)).await.is_some());
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn graceful_shutdown_closes_sessions_and_stops_pipelines() {
    let srv = start_webrtcbin(vec![small_stream("main")]).await;
    let mut v = WebrtcbinViewer::new(96, "42e01f", true);
    v.connect(&srv, "main").await;
    assert!(v.gets_frames(5, 20).await);
    let webrtcbin = srv
        .server
        .sessions
        .viewer(session_of(&v))
        .await
        .expect("session")
        .webrtcbin_weak()
        .expect("webrtcbin transport");
    let sessions = srv.server.sessions.clone();
    let base = srv.base.clone();
    srv.shutdown().await;
    assert!(eventually(10, || webrtcbin.upgrade().is_none()).await, "the session's webrtcbin outlived shutdown");
    assert!(sessions.health("main").await.is_none(), "the session manager is gone after shutdown");
    let after = reqwest::Client::new().get(format!("{base}/healthz")).send().await;
    assert!(after.is_err(), "the listener still accepts after shutdown");
}

/// A viewer on aiortc (Python) that offers more than a stream sends: two video sections, audio for a stream
/// without audio, a data channel. Those sections are refused in the answer (inactive or port 0) and the first video
/// section plays, on both transports; where the stream has audio, it plays too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sections_a_viewer_offers_beyond_what_we_send_are_refused_on_both_transports() {
    use glasscast::config::{AudioSource, Transport};
    for transport in [Transport::Forward, Transport::Webrtcbin] {
        let silent = StreamConfig { audio: AudioSource::None, ..small_stream("silent") };
        let srv = start_on(transport, vec![silent, small_stream("main")]).await;
        let all = ["--videos", "2", "--audio", "--datachannel"];
        for (stream, audio) in [("silent", false), ("main", true)] {
            let report = common::aiortc::watch(&srv, stream, None, &all).await;
            eprintln!("{transport:?} {stream}: frames {} audio {}", report["frames"], report["audio_frames"]);
            assert_eq!(report["status"], 201, "{transport:?} {stream}: {report}");
            let answer = report["answer"].as_str().expect("answer");
            let want = [("video", true), ("video", false), ("audio", audio), ("application", false)];
            let used = common::aiortc::sections(answer);
            assert_eq!(used, common::aiortc::expect(&want), "{transport:?} {stream}: which are used:\n{answer}");
            assert!(report["frames"].as_u64() >= Some(30), "{transport:?} {stream}: aiortc decoded {report}");
            assert_eq!((report["width"].as_u64(), report["height"].as_u64()), (Some(320), Some(240)));
            if audio {
                assert!(report["audio_frames"].as_u64() > Some(0), "{transport:?}: the audio plays: {report}");
            }
        }
        srv.shutdown().await;
    }
}

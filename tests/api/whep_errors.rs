//! Bad input gets a clear 4xx with an application/problem+json body naming what is wrong, and a viewer that
//! is already watching keeps receiving frames through all of it.

use crate::common;

use common::*;
use glasscast::config::StreamConfig;

async fn problem(resp: reqwest::Response, status: u16, needle: &str) {
    assert_eq!(resp.status(), status, "expected {status} for `{needle}`");
    assert_eq!(
        resp.headers().get("content-type").map(|v| v.to_str().expect("ascii")),
        Some("application/problem+json"),
        "status {status} without a problem body"
    );
    let body: serde_json::Value = serde_json::from_slice(&resp.bytes().await.expect("body")).expect("problem json");
    assert_eq!(body["status"], status);
    let detail = body["detail"].as_str().expect("detail");
    assert!(detail.contains(needle), "detail `{detail}` does not mention `{needle}`");
}

const AV1_ONLY: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
    a=fingerprint:sha-256 AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99\r\n\
    a=setup:actpass\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=ice-ufrag:a\r\na=ice-pwd:bbbbbbbbbbbbbbbbbbbbbbbb\r\na=recvonly\r\na=rtpmap:96 AV1/90000\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_error_case_gets_its_status_while_another_viewer_keeps_playing() {
    let capped = StreamConfig { max_viewers: 1, ..small_stream("capped") };
    let srv = start(vec![small_stream("main"), capped, small_stream("stopped")]).await;
    let mut watcher = WebrtcbinViewer::new(96, "42e01f", true);
    watcher.connect(&srv, "main").await;
    assert!(watcher.gets_frames(10, 20).await);
    let whep = format!("{}/whep/main", srv.base);
    let good_offer = WebrtcbinViewer::new(96, "42e01f", true).offer().await;

    // 415: wrong content type.
    let r =
        srv.http.post(&whep).header("content-type", "text/plain").body(good_offer.clone()).send().await.expect("req");
    problem(r, 415, "application/sdp").await;
    let r = srv.http.post(&whep).body(good_offer.clone()).send().await.expect("req");
    problem(r, 415, "none").await;
    // 400: malformed SDP, and SDP with nothing we can send.
    problem(srv.post_offer("main", "this is not sdp").await, 400, "v=0").await;
    problem(srv.post_offer("main", "v=0\r\n").await, 400, "no media").await;
    problem(srv.post_offer("main", &good_offer.replace("a=fingerprint", "a=fingerprinx")).await, 400, "fingerprint")
        .await;
    problem(srv.post_offer("main", &good_offer.replace("a=setup:", "a=x-setup:")).await, 400, "a=setup").await;
    problem(srv.post_offer("main", AV1_ONLY).await, 400, "AV1").await;
    // H.264 only under a payload type that does not fit RTP's 7 bits: refused, and the server stays whole.
    let pt200 = AV1_ONLY.replace("SAVPF 96", "SAVPF 200").replace(
        "a=rtpmap:96 AV1/90000",
        "a=rtpmap:200 H264/90000\r\na=fmtp:200 packetization-mode=1;profile-level-id=42e01f",
    );
    problem(srv.post_offer("main", &pt200).await, 400, "H.264").await;
    assert!(srv.server.sessions.readiness().await.ready, "a bad payload type must not hurt the server");
    let r = srv
        .http
        .post(&whep)
        .header("content-type", "application/sdp")
        .body(vec![0xffu8, 0xfe, 0x00])
        .send()
        .await
        .expect("req");
    problem(r, 400, "UTF-8").await;
    // 413: over 64 KiB.
    let huge = format!("{good_offer}{}", "a=x-padding\r\n".repeat(6000));
    problem(srv.post_offer("main", &huge).await, 413, "65536").await;
    // 404: unknown stream, unknown session.
    problem(srv.post_offer("nope", &good_offer).await, 404, "nope").await;
    let unknown = format!("{}/whep/sessions/{}", srv.base, "0".repeat(32));
    problem(srv.http.delete(&unknown).send().await.expect("req"), 404, "session").await;
    problem(srv.http.delete(format!("{}/whep/sessions/xyz", srv.base)).send().await.expect("req"), 404, "session")
        .await;
    let r = srv.patch_frag(&unknown, None, "a=end-of-candidates\r\n").await;
    problem(r, 404, "session").await;
    problem(srv.http.get(format!("{}/nothing/here", srv.base)).send().await.expect("req"), 404, "/nothing/here").await;
    // 405: a method the resource does not have.
    problem(srv.http.get(&whep).send().await.expect("req"), 405, "GET").await;
    problem(srv.http.put(&unknown).send().await.expect("req"), 405, "PUT").await;
    // 503 + Retry-After: the viewer cap.
    let mut first = WebrtcbinViewer::new(96, "42e01f", true);
    first.connect(&srv, "capped").await;
    let r = srv.post_offer("capped", &good_offer).await;
    assert_eq!(r.headers().get("retry-after").map(|v| v.to_str().expect("ascii")), Some("10"));
    problem(r, 503, "maximum of 1").await;
    // 409 + Retry-After: a stream that is not producing.
    let stopped = glasscast::ids::StreamName::parse("stopped").expect("a stream name");
    srv.server.sessions.stop_stream(&stopped).await.expect("stopped");
    let r = srv.post_offer("stopped", &good_offer).await;
    assert_eq!(r.headers().get("retry-after").map(|v| v.to_str().expect("ascii")), Some("2"));
    problem(r, 409, "not producing").await;
    assert!(!srv.server.sessions.readiness().await.ready, "readyz must report the stopped stream");

    // PATCH on a live session: content type, malformed fragment, If-Match handling.
    let loc = watcher.location.clone().expect("location");
    let etag = watcher.etag.clone().expect("etag");
    let r = srv
        .http
        .patch(&loc)
        .header("content-type", "application/sdp")
        .body("a=end-of-candidates\r\n")
        .send()
        .await
        .expect("req");
    problem(r, 415, "trickle-ice-sdpfrag").await;
    let r = srv.patch_frag(&loc, None, "garbage").await;
    problem(r, 400, "line 1").await;
    let r = srv.patch_frag(&loc, Some("\"stale\""), "a=end-of-candidates\r\n").await;
    problem(r, 412, "ETag").await;
    let restart =
        "a=ice-ufrag:zzzz\r\na=ice-pwd:zzzzzzzzzzzzzzzzzzzzzzzz\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:video0\r\n";
    let r = srv.patch_frag(&loc, None, restart).await;
    problem(r, 428, "If-Match").await;
    // A well-formed trickle is accepted with 204.
    let trickle = "a=ice-ufrag:x\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:video0\r\n\
        a=candidate:1 1 UDP 2015363327 127.0.0.1 9 typ host\r\na=end-of-candidates\r\n";
    let session_ufrag = good_offer_ufrag(&srv, &watcher).await;
    let frag = trickle.replace("a=ice-ufrag:x", &format!("a=ice-ufrag:{session_ufrag}"));
    let r = srv.patch_frag(&loc, Some(&etag), &frag).await;
    assert_eq!(r.status(), 204);

    // The WHIP session URL does not reach a viewer's session: 404 for its DELETE and PATCH, and it plays on.
    let as_whip = loc.replace("/whep/sessions/", "/whip/sessions/");
    assert_ne!(as_whip, loc);
    problem(srv.http.delete(&as_whip).send().await.expect("req"), 404, "session").await;
    problem(srv.patch_frag(&as_whip, Some(&etag), &frag).await, 404, "session").await;

    assert!(watcher.gets_frames(30, 20).await, "the watching viewer stalled during the error cases");
    srv.shutdown().await;
}

/// The ufrag the watcher offered (trickle from the same ICE generation carries it).
async fn good_offer_ufrag(_srv: &TestServer, v: &WebrtcbinViewer) -> String {
    let local =
        v.webrtcbin.property::<Option<gstreamer_webrtc::WebRTCSessionDescription>>("local-description").expect("local");
    let text = local.sdp().as_text().expect("text");
    text.lines().find_map(|l| l.strip_prefix("a=ice-ufrag:")).expect("ufrag").trim().to_owned()
}

use gstreamer::prelude::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn options_and_cors_preflight_advertise_whep() {
    let srv = start(vec![small_stream("main")]).await;
    let whep = format!("{}/whep/main", srv.base);
    let r = srv.http.request(reqwest::Method::OPTIONS, &whep).send().await.expect("req");
    assert!(r.status().is_success());
    assert_eq!(r.headers()["accept-post"], "application/sdp");
    let r = srv
        .http
        .request(reqwest::Method::OPTIONS, &whep)
        .header("origin", "https://player.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type, authorization")
        .send()
        .await
        .expect("req");
    assert!(r.status().is_success());
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    assert_eq!(r.headers()["accept-post"], "application/sdp");
    let methods = r.headers()["access-control-allow-methods"].to_str().expect("ascii").to_owned();
    assert!(methods.contains("POST") && methods.contains("PATCH") && methods.contains("DELETE"), "{methods}");

    // A 201 exposes the WHEP headers to scripts and carries Location, ETag and Accept-Patch.
    let offer = WebrtcbinViewer::new(96, "42e01f", true).offer().await;
    let r = srv
        .http
        .post(&whep)
        .header("origin", "https://player.example")
        .header("content-type", "application/sdp")
        .body(offer)
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["content-type"], "application/sdp");
    assert_eq!(r.headers()["accept-patch"], "application/trickle-ice-sdpfrag");
    let etag = r.headers()["etag"].to_str().expect("ascii");
    assert!(etag.starts_with('"') && etag.ends_with('"'), "strong ETag: {etag}");
    let loc = r.headers()["location"].to_str().expect("ascii");
    assert!(loc.starts_with("/whep/sessions/") && loc.len() == "/whep/sessions/".len() + 32, "{loc}");
    let exposed = r.headers()["access-control-expose-headers"].to_str().expect("ascii").to_ascii_lowercase();
    assert!(exposed.contains("location") && exposed.contains("etag"), "{exposed}");
    srv.shutdown().await;
}

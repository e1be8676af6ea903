//! The forwarding transport (`webrtc.transport = "forward"`, str0m peers in one mux thread on one UDP port),
//! end to end over WHEP with GStreamer's own webrtcbin as the viewer: decoded video and audio, several
//! payload types at once, keyframe on join, DELETE, ICE restart, and a viewer that vanishes.

mod common;

use common::*;
use glasscast::ids::SessionId;
use gstreamer::prelude::*;

fn session_of(v: &WebrtcbinViewer) -> SessionId {
    let loc = v.location.as_deref().expect("connected");
    SessionId::parse(loc.rsplit('/').next().expect("id")).expect("session id in Location")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forwarded_viewer_decodes_video_and_audio_from_the_one_port() {
    let srv = start_forward(vec![small_stream("main")]).await;
    let port = srv
        .server
        .forward
        .as_ref()
        .expect("forward transport")
        .port();

    let mut v = WebrtcbinViewer::new(96, "42e01f", true);
    v.connect(&srv, "main").await;
    assert!(v.gets_frames(30, 20).await, "no video frames decoded");
    assert_eq!(*v.size.lock().expect("lock"), Some((320, 240)));
    assert!(
        eventually(10, || v.audio() > 10).await,
        "no Opus audio decoded"
    );

    // Every candidate we answered is on the one mux port.
    let answer = v
        .webrtcbin
        .property::<Option<gstreamer_webrtc::WebRTCSessionDescription>>("remote-description")
        .expect("answer")
        .sdp()
        .as_text()
        .expect("text");
    let ports: Vec<&str> = answer
        .lines()
        .filter_map(|l| l.strip_prefix("a=candidate:"))
        .filter_map(|c| c.split_whitespace().nth(5))
        .collect();
    assert!(!ports.is_empty(), "no candidates in the answer:\n{answer}");
    assert!(
        ports.iter().all(|p| *p == port.to_string()),
        "candidates not on port {port}: {ports:?}"
    );

    let handle = srv
        .server
        .sessions
        .viewer(session_of(&v))
        .await
        .expect("session exists");
    let stats = handle.gate_stats();
    assert!(
        stats.first_forwarded_was_keyframe,
        "the first packet sent must start a keyframe: {stats:?}"
    );
    assert!(
        handle.webrtcbin_weak().is_none(),
        "no webrtcbin on the forwarding transport"
    );

    let resp = srv
        .http
        .delete(v.location.clone().expect("location"))
        .send()
        .await
        .expect("delete");
    assert_eq!(resp.status(), 200);
    assert!(srv.server.sessions.viewer(session_of(&v)).await.is_none());
    let again = srv
        .http
        .delete(v.location.clone().expect("location"))
        .send()
        .await
        .expect("delete");
    assert_eq!(again.status(), 404, "a deleted session is gone");
    srv.shutdown().await;
}

//! What H.264 viewers get, VP8 viewers get too (issue 16, point 3), checked with an independent VP8-only
//! client (webrtcbin + vp8dec) on the forwarding transport: zero playout delay on every video packet when
//! offered, the latency probe readable from decoded VP8 pictures, a keyframe at once for a viewer that
//! joins a running VP8 encoding, and its keyframe requests (PLIs) rate-limited like the H.264 encoder's.
//! NACK/RTX for VP8 is in tests/media/retransmission.rs.

use crate::common;

use std::time::Duration;

use common::*;
use glasscast::config::StreamConfig;

/// One test at a time: each server runs an H.264 and a VP8 encoder, and three side by side on two cores
/// bring the VP8 encoder below 80% of its frame rate, where admission control refuses VP8 joins (as it
/// should on a machine that cannot keep up).
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn vp8_packets_carry_zero_playout_delay_and_the_pictures_carry_the_latency_probe() {
    let _one = ONE_AT_A_TIME.lock().await;
    let stream = StreamConfig { width: 640, height: 360, latency_probe: true, ..small_stream("main") };
    let srv = start_forward(vec![stream]).await;
    let v = WebrtcbinViewer::vp8(96, true);
    let resp = srv.post_offer("main", &with_playout_delay(&v.offer().await)).await;
    let status = resp.status();
    let answer = resp.text().await.expect("answer");
    assert_eq!(status, 201, "{answer}");
    assert!(answer.contains("VP8/90000") && answer.contains(&format!("a=extmap:7 {PLAYOUT_DELAY}")), "{answer}");
    v.set_answer(&answer).await;
    assert!(v.gets_frames(60, 20).await, "VP8 frames decoded");
    assert_eq!(*v.size.lock().expect("lock"), Some((640, 360)));

    let exts = v.video_rtp_extensions.lock().expect("lock").clone();
    assert_eq!(exts.get(&7), Some(&vec![0u8, 0, 0]), "playout delay min = max = 0 on VP8 packets: {exts:?}");
    let codes = v.probe_codes.lock().expect("lock").clone();
    let read: Vec<u64> = codes.iter().flatten().copied().collect();
    assert!(read.len() * 100 >= codes.len() * 95, "{} of {} VP8 pictures had a readable code", read.len(), codes.len());
    assert!(read.windows(2).all(|w| w[0] <= w[1]), "painted times must not go backwards: {read:?}");
    v.stop();
    srv.shutdown().await;
}

/// With a 60 s keyframe interval only a forced keyframe lets a second VP8 viewer decode soon: it joins the
/// VP8 encoding the first one started, and its first forwarded packet starts a keyframe.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_vp8_viewer_joining_a_running_vp8_encoding_gets_a_keyframe_at_once() {
    let _one = ONE_AT_A_TIME.lock().await;
    let stream = StreamConfig { keyframe_interval_s: 60, ..small_stream("main") };
    let srv = start_forward(vec![stream]).await;
    let mut first = WebrtcbinViewer::vp8(96, false);
    first.connect(&srv, "main").await;
    assert!(first.gets_frames(10, 20).await, "the first VP8 viewer plays");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut second = WebrtcbinViewer::vp8(97, false);
    second.connect(&srv, "main").await;
    assert!(second.gets_frames(10, 15).await, "a late VP8 viewer waited for the periodic keyframe");
    let stats = srv.server.sessions.viewer(session_of(&second)).await.expect("session").gate_stats();
    assert!(stats.first_forwarded_was_keyframe, "{stats:?}");
    let encodings = srv.server.sessions.readiness().await.streams[0].encodings.clone();
    assert!(encodings.iter().any(|e| e.codec == "vp8" && e.viewers == 2), "one VP8 encoding for both: {encodings:?}");
    first.stop();
    second.stop();
    srv.shutdown().await;
}

/// A VP8 viewer asking for keyframes (upstream force-key-unit events on the client, which its RTP session
/// turns into PLIs, at most one per RTCP interval): they reach the VP8 encoding's limiter (`/readyz` counts
/// them on the VP8 encoding, not the H.264 one), which passes at most as many to the encoder, and the viewer
/// keeps decoding. The limiter's one-per-250 ms is unit-tested in src/media/encode/keyframes.rs (a client's own
/// PLI pacing does not let a test send faster).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_vp8_viewers_plis_reach_the_vp8_encoder_through_its_limiter() {
    use gstreamer::prelude::*;
    let _one = ONE_AT_A_TIME.lock().await;
    let srv = start_forward(vec![small_stream("main")]).await;
    let mut v = WebrtcbinViewer::vp8(96, false);
    v.connect(&srv, "main").await;
    assert!(v.gets_frames(10, 20).await, "the VP8 viewer plays");
    let vp8 = || async {
        let r = srv.server.sessions.readiness().await;
        r.streams[0].encodings.iter().find(|e| e.codec == "vp8").cloned().expect("a VP8 encoding")
    };
    let before = vp8().await;
    let pad = v.webrtcbin.src_pads().into_iter().next().expect("the client's video pad");
    for _ in 0..20 {
        pad.send_event(gstreamer_video::UpstreamForceKeyUnitEvent::builder().all_headers(true).build());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = vp8().await;
    let requested = after.keyframes_requested.unwrap_or(0) - before.keyframes_requested.unwrap_or(0);
    let sent = after.keyframes_sent.unwrap_or(0) - before.keyframes_sent.unwrap_or(0);
    eprintln!("VP8 keyframes: {requested} requested, {sent} passed to the encoder");
    assert!(requested >= 3, "the PLIs reached the VP8 encoding: {before:?} -> {after:?}");
    // 1.5 s at one per 250 ms, and the one that may be pending.
    assert!(sent >= 1 && sent <= requested && sent <= 8, "through the limiter: {before:?} -> {after:?}");
    let h264 = srv.server.sessions.readiness().await.streams[0].keyframes_requested;
    assert!(h264 < requested, "VP8 viewers' PLIs do not go to the H.264 encoder ({h264} there)");
    assert!(v.gets_frames(10, 10).await, "still plays");
    v.stop();
    srv.shutdown().await;
}

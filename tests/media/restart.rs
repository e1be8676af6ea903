//! A stream whose capture or encode chain fails while it runs restarts that chain by itself, waiting
//! longer for failures in a row, and its viewers keep their sessions and get the picture (and sound)
//! again without a new POST (issue 17; src/media/stream/recover.rs). The failures are real flow errors
//! and error messages injected into the real binary with `GLASSCAST_TEST_FAULT`; the viewer is GStreamer's
//! webrtcbin (not our WebRTC stack), on both transports.

use crate::common;

use std::time::Duration;

use common::WebrtcbinViewer;
use common::binary::Running;

/// `glasscast serve` with one 320x240@30 test stream (and its tone) on `transport`, and `fault`.
async fn serve_faulty(transport: &str, fault: &str) -> Running {
    let extra = format!(
        "[webrtc]\ntransport = \"{transport}\"\nmux_port = 0\n[[streams]]\nname = \"main\"\nwidth = 320\nheight = 240\n"
    );
    common::binary::serve(&extra, &[("GLASSCAST_TEST_FAULT", fault), ("RUST_LOG", "glasscast=info")]).await
}

/// A webrtcbin viewer of `main` that has its picture (before any fault comes).
async fn watching(gc: &Running) -> WebrtcbinViewer {
    let mut v = WebrtcbinViewer::new(96, "42e01f", true);
    v.connect_to(&gc.base, "main").await;
    assert!(v.gets_frames(10, 20).await, "no picture before the faults");
    v
}

/// Polls `/readyz` until the stream has restarted `restarts` times and is ready again (60 s at most);
/// returns every not-ready reason seen on the way and the last answer.
async fn until_restarted(gc: &Running, restarts: u64) -> (Vec<String>, serde_json::Value) {
    let mut reasons: Vec<String> = Vec::new();
    let mut last = serde_json::Value::Null;
    for _ in 0..600 {
        last = gc.readyz().await;
        let stream = &last["streams"][0];
        if let Some(r) = stream["reason"].as_str()
            && !reasons.iter().any(|seen| seen == r)
        {
            reasons.push(r.to_owned());
        }
        if stream["restarts"].as_u64() >= Some(restarts) && last["ready"] == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (reasons, last)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_encoder_restarts_with_backoff_and_its_viewer_keeps_watching() {
    let mut gc = serve_faulty("forward", "encoder-error:3").await;
    let v = watching(&gc).await;
    let (reasons, ready) = until_restarted(&gc, 3).await;
    let stream = &ready["streams"][0];
    assert_eq!(stream["restarts"], 3, "three failures, three restarts: {ready}");
    assert_eq!(ready["ready"], true, "{ready}");
    assert!(
        reasons.iter().any(|r| r.contains("the video chain failed") && r.contains("injected failure")),
        "/readyz never said what failed: {reasons:?}"
    );
    // The same session, no new POST: the viewer decodes a second more of the restarted encoder's picture.
    assert_eq!(stream["encodings"][0]["viewers"], 1, "{ready}");
    assert!(v.gets_frames(30, 15).await, "the viewer got no picture after the restarts ({} frames)", v.frames());
    let log = gc.kill_and_log();
    // Failures in a row wait longer each time (the chain never ran 30 s in between).
    for wait in ["\"retry_in_ms\":500", "\"retry_in_ms\":1000", "\"retry_in_ms\":2000"] {
        assert!(log.contains(wait), "no restart after {wait}:\n{log}");
    }
    assert_eq!(log.matches("stream part restarted").count(), 3, "{log}");
    assert!(!log.contains("stream pipeline error"), "the stream itself failed:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failing_video_and_audio_sources_restart_and_a_webrtcbin_transport_viewer_resumes() {
    let mut gc = serve_faulty("webrtcbin", "source-error:1,audio-error:1").await;
    let v = watching(&gc).await;
    let (reasons, ready) = until_restarted(&gc, 2).await;
    if ready["streams"][0]["restarts"] != 2 {
        panic!("video and audio chains restarted: {ready} ({reasons:?})\n{}", gc.kill_and_log());
    }
    if !v.gets_frames(30, 15).await {
        panic!("no picture after the restarts ({} frames):\n{}", v.frames(), gc.kill_and_log());
    }
    let sound = v.audio();
    assert!(common::eventually(10, || v.audio() > sound + 20).await, "no sound after the restarts");
    let log = gc.kill_and_log();
    for part in ["\"part\":\"video\"", "\"part\":\"audio\""] {
        assert!(log.lines().any(|l| l.contains("stream part restarted") && l.contains(part)), "{part}:\n{log}");
    }
    assert!(!log.contains("stream pipeline error"), "the stream itself failed:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chromium_keeps_its_session_and_plays_on_after_the_encoder_restarts() {
    // The failure comes 15 s in (450 frames): Chromium is playing by then and watches 16 s more.
    let mut gc = serve_faulty("forward", "encoder-error:1@450").await;
    let url = format!("{}/watch/main", gc.base);
    let played = common::chromium_plays_with(None, &url, 320, 240, &[("WATCH_S", "16")]).await;
    let watch = &played["watch"];
    let ready = gc.readyz().await;
    assert_eq!(ready["streams"][0]["restarts"], 1, "the encoder failed once while Chromium watched: {ready}");
    assert_eq!(watch["sameSession"], true, "the page made a new session: {watch}");
    // Frames in the last 3 s of watching (1 s to 4 s after the restart): the picture came back.
    assert!(watch["lastFrames"].as_u64() >= Some(30), "Chromium's picture did not come back: {watch}");
    eprintln!("chromium across the restart: {watch}");
    assert!(!gc.kill_and_log().contains("stream pipeline error"));
}

/// The session manager never waits for a stream to start (issue 18): with `GLASSCAST_TEST_FAULT=slow-start`
/// a start after a stop takes 5 s, and meanwhile a viewer of another stream is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_stream_start_keeps_no_request_for_another_stream_waiting() {
    let streams = "[webrtc]\nmux_port = 0\n[[streams]]\nname = \"a\"\nwidth = 320\nheight = 240\n\
                   [[streams]]\nname = \"b\"\nwidth = 320\nheight = 240\n";
    let gc = common::binary::serve(streams, &[("GLASSCAST_TEST_FAULT", "slow-start")]).await;
    let (http, admin) = (reqwest::Client::new(), gc.admin_token());
    let api = |path: &str| http.post(format!("{}/api/v1/streams/{path}", gc.base)).bearer_auth(&admin);
    let stopped = api("a/stop").send().await.expect("stop");
    assert!(stopped.status().is_success(), "stop: {}", stopped.status());
    let start = tokio::spawn(api("a/start").send());
    tokio::time::sleep(Duration::from_millis(500)).await; // the start is under way (5 s)
    let mut v = WebrtcbinViewer::new(96, "42e01f", true);
    v.connect_to(&gc.base, "b").await;
    assert!(!start.is_finished(), "the viewer of stream b was answered only after stream a had started");
    let started = start.await.expect("join").expect("start");
    assert!(started.status().is_success(), "start: {}", started.status());
    assert!(v.gets_frames(10, 20).await, "the viewer of b plays");
}

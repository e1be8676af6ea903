//! A network feed as a source: a stand-in IP camera (gst-rtsp-server in its own process) serves a moving
//! ball as H.264; a `source = { kind = "uri" }` stream plays it to the webrtcbin
//! client; the feed going away makes the stream say why it has no picture, and when the RTSP server comes
//! back on the same port the connected viewer gets the ball again without doing anything.

use crate::common;

use common::*;
use glasscast::config::{AudioSource, Config, StreamConfig, VideoSource};
use std::io::BufRead;
use std::process::{Child, Command, Stdio};

/// A stand-in IP camera (scripts/testbed/rtsp-camera.py: gst-rtsp-server serving a moving ball as H.264)
/// in its own process; killed on drop, as a camera that loses power.
struct Camera(Child);

impl Camera {
    fn start(port: u16) -> Self {
        Self::start_with(port, &[])
    }

    fn start_with(port: u16, args: &[&str]) -> Self {
        let mut child = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/testbed/rtsp-camera.py"))
            .arg(port.to_string())
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("rtsp-camera.py runs (python3-gi, gir1.2-gst-rtsp-server-1.0)");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        std::io::BufReader::new(stdout).read_line(&mut line).expect("read");
        assert_eq!(line.trim(), "ready", "the RTSP camera did not start");
        Self(child)
    }
}

impl Drop for Camera {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_constrained_baseline_feed_passes_through_and_comes_back_after_the_camera_does() {
    feed_plays_and_comes_back(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_feed_without_passthrough_is_re_encoded_and_comes_back_too() {
    feed_plays_and_comes_back(false).await;
}

async fn feed_plays_and_comes_back(passthrough: bool) {
    let port = free_port();
    let camera = Camera::start(port);
    let mut cfg = Config::default();
    cfg.server.plain_http = true;
    cfg.streams = vec![StreamConfig {
        source: VideoSource::Uri { url: format!("rtsp://127.0.0.1:{port}/ball"), passthrough },
        audio: AudioSource::None,
        ..small_stream("cam")
    }];
    let srv = start_with(cfg).await;
    let mut v = WebrtcbinViewer::new(96, "42e01f", false);
    v.connect(&srv, "cam").await;
    assert!(testbed::sees_a_picture(&v, 20).await, "the feed's picture did not arrive");
    assert_eq!(*v.size.lock().expect("lock"), Some((320, 240)));
    // Passed through: no encoder at all in the stream (the camera's H.264 is what the viewer decodes).
    let health = srv.server.sessions.health("cam").await.expect("health");
    assert_eq!(health.encoder, if passthrough { "passthrough" } else { "x264enc" });
    // Chromium decodes it too (the camera's own H.264, when passed through).
    let seen = chromium_plays(&srv, "/watch/cam", 320, 240).await;
    assert!(seen["lumaMax"].as_i64().unwrap_or(0) - seen["lumaMin"].as_i64().unwrap_or(0) > 120, "{seen}");

    drop(camera);
    let lost = || async {
        let r = srv.server.sessions.readiness().await;
        r.streams[0].reason.clone().filter(|r| r.starts_with("no picture: "))
    };
    let why = eventually_some(15, lost).await.expect("the stream did not say it lost its feed");
    assert!(why.contains("retrying in"), "{why}");

    let _camera = Camera::start(port);
    assert!(testbed::sees_a_picture(&v, 45).await, "the viewer did not get the feed back");
    assert!(srv.server.sessions.readiness().await.ready);
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_feed_with_b_frames_is_re_encoded_even_with_passthrough() {
    let port = free_port();
    let _camera = Camera::start_with(port, &["--bframes"]);
    let mut cfg = Config::default();
    cfg.server.plain_http = true;
    cfg.streams = vec![StreamConfig {
        source: VideoSource::Uri { url: format!("rtsp://127.0.0.1:{port}/ball"), passthrough: true },
        audio: AudioSource::None,
        ..small_stream("cam")
    }];
    let srv = start_with(cfg).await;
    let health = srv.server.sessions.health("cam").await.expect("health");
    assert_eq!(health.encoder, "x264enc", "B-frames (which browsers' low-latency decoders reorder) are re-encoded");
    let mut v = WebrtcbinViewer::new(96, "42e01f", false);
    v.connect(&srv, "cam").await;
    assert!(testbed::sees_a_picture(&v, 20).await, "the re-encoded feed did not arrive");
    srv.shutdown().await;
}

//! Real sources, end to end over WHEP to the webrtcbin client: an X11 display (a virtual X server with a
//! test-pattern window on it) arrives as a picture that is not black, at the stream's size; the test tone
//! arrives as its frequency. (Encoder choice and its probe: src/media/encode/encoder.rs unit tests.)

use crate::common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use glasscast::config::{AudioSource, Config, Encoder, EncoderPref, StreamConfig, VideoSource};

/// A child process killed on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts Xvfb on a free display; returns it and its `:N`.
fn xvfb() -> (Killed, String) {
    for n in 90..140 {
        if std::path::Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
            || std::path::Path::new(&format!("/tmp/.X{n}-lock")).exists()
        {
            continue;
        }
        let display = format!(":{n}");
        let child = Command::new("Xvfb")
            .args([&display, "-screen", "0", "640x480x24", "-nolisten", "tcp"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb runs (make test installs xvfb)");
        let server = Killed(child);
        for _ in 0..100 {
            if std::path::Path::new(&format!("/tmp/.X11-unix/X{n}")).exists() {
                return (server, display);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("Xvfb {display} did not come up");
    }
    panic!("no free X display between :90 and :139");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_x11_display_streams_its_picture() {
    let (_x, display) = xvfb();
    // Something on the screen: a test-pattern window the size of the screen (SMPTE bars: white to black).
    let _window = Killed(
        Command::new("gst-launch-1.0")
            .args([
                "-q",
                "videotestsrc",
                "pattern=smpte",
                "is-live=true",
                "!",
                "video/x-raw,width=640,height=480",
                "!",
                "ximagesink",
                &format!("display={display}"),
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("gst-launch-1.0"),
    );
    let mut cfg = Config::default();
    cfg.server.plain_http = true;
    cfg.streams = vec![StreamConfig {
        source: VideoSource::X11 { display: Some(display.clone()), show_pointer: true },
        audio: AudioSource::None,
        width: 320,
        height: 240,
        fps: 15,
        bitrate_kbps: 500,
        ..StreamConfig::test_pattern("desk")
    }];
    let srv = start_with(cfg).await;
    let mut v = WebrtcbinViewer::new(96, "42e01f", false);
    v.connect(&srv, "desk").await;
    assert!(v.gets_frames(10, 20).await, "frames from the X display");
    assert_eq!(*v.size.lock().expect("lock"), Some((320, 240)), "scaled to the stream's size");
    // The window's bars reach the viewer: a wide luma range (a black or empty screen has none).
    eventually(5, || v.luma_range.lock().expect("lock").is_some_and(|(lo, hi)| hi - lo > 120)).await;
    let (lo, hi) = v.luma_range.lock().expect("lock").expect("a decoded frame");
    assert!(hi - lo > 120, "the picture is flat (luma {lo}..{hi}): the window was not captured");
    // And in a browser: the player shows the window's bars.
    let seen = chromium_plays(&srv, "/watch/desk", 320, 240).await;
    assert!(seen["lumaMax"].as_i64().unwrap_or(0) - seen["lumaMin"].as_i64().unwrap_or(0) > 120, "{seen}");
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_test_tone_arrives_as_440_hz() {
    let srv = start(vec![small_stream("main")]).await;
    let mut v = WebrtcbinViewer::new(96, "42e01f", true);
    v.connect(&srv, "main").await;
    assert!(v.gets_frames(10, 20).await, "plays");
    // The last half second's dominant frequency and level.
    let heard = || {
        let samples = v.audio_samples.lock().expect("lock").clone();
        (samples.len() >= 24_000).then(|| analyze::dominant_frequency(&samples[samples.len() - 24_000..], 48_000.0))
    };
    let at_440 = || heard().is_some_and(|(freq, _)| (freq - 440.0).abs() <= 10.0);
    eventually_async(5, || std::future::ready(at_440())).await;
    let (freq, rms) = heard().unwrap_or((0.0, 0.0));
    assert!((freq - 440.0).abs() <= 10.0, "heard {freq} Hz");
    assert!(rms > 0.02, "too quiet: rms {rms}");
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_forced_encoder_that_cannot_work_stops_the_start_with_the_reason() {
    init();
    let state = tempfile::tempdir().expect("tempdir");
    let mut cfg = Config::default();
    cfg.server.plain_http = true;
    cfg.server.listen = "127.0.0.1:0".parse().expect("an address");
    cfg.server.state_dir = state.path().to_path_buf();
    cfg.webrtc.mux_port = 0;
    cfg.streams = vec![StreamConfig { encoder: EncoderPref::Only(Encoder::Vaapi), ..small_stream("main") }];
    let err = match glasscast::serve::Server::start(&cfg).await {
        Ok(_) => panic!("started with an encoder that cannot work here"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("building stream `main`"), "{err}");
    assert!(err.contains("encoder = \"vaapi\" cannot work here: vaapih264enc: "), "{err}");
    assert!(err.contains("/dev/dri") || err.contains("plugin"), "says what is missing: {err}");
}

//! Desktop audio from a real PipeWire session: a private PipeWire + pipewire-pulse with a null sink
//! (scripts/testbed/pipewire-audio.sh), a 1 kHz tone played into it, and a stream with `audio = desktop`
//! capturing the sink's monitor. The viewer must hear 1 kHz at a real level, next to the video.
//! (Its own test binary: the PulseAudio client settings are process-wide environment variables.)

use crate::common;

use std::process::{Child, Command, Stdio};

use common::*;
use glasscast::config::{AudioSource, StreamConfig};

const SINK: &str = "glasscast_test_sink";

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn desktop_audio_from_a_pipewire_sink_monitor_arrives_as_the_tone_played() {
    let session = testbed::Testbed::start("pipewire-audio.sh", "gc-audio.", &[SINK]);
    session.export("PULSE_");
    // Something plays on the desktop: 1 kHz into the sink (0.3: the mono mix-down must not clip).
    let _player = Killed(
        Command::new("gst-launch-1.0")
            .args(["-q", "audiotestsrc", "freq=1000", "volume=0.3", "is-live=true", "!", "audioconvert", "!"])
            .args(["pulsesink", &format!("device={SINK}")])
            .envs(session.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .spawn()
            .expect("gst-launch-1.0"),
    );
    let srv =
        start(vec![StreamConfig { audio: AudioSource::Desktop { sink: Some(SINK.into()) }, ..small_stream("desk") }])
            .await;
    let mut v = WebrtcbinViewer::new(96, "42e01f", true);
    v.connect(&srv, "desk").await;
    assert!(v.gets_frames(10, 20).await, "video plays next to the desktop audio");
    // Judge 100 ms blocks (a loaded VM drops a few samples now and then): most must be 1 kHz at a level.
    // The last second's (frequency, level) per 100 ms block.
    let blocks = || {
        let samples = v.audio_samples.lock().expect("lock").clone();
        let last = &samples[samples.len().saturating_sub(48_000)..];
        last.chunks(4800).map(|b| analyze::dominant_frequency(b, 48_000.0)).collect::<Vec<(f32, f32)>>()
    };
    let good = |b: &[(f32, f32)]| b.iter().filter(|(f, rms)| (f - 1000.0).abs() <= 20.0 && *rms > 0.02).count();
    // Every 100 ms (an analysis costs a few ms).
    let enough = || v.audio_samples.lock().expect("lock").len() >= 48_000;
    let heard = eventually_async(6, || std::future::ready(enough() && good(&blocks()) >= 8)).await;
    let seen = format!("{:?}", blocks());
    assert!(heard, "the viewer did not hear 1 kHz from the desktop; (Hz, rms) per 100 ms: {seen}");
    // Chromium hears it too (a Web Audio analyser on the player's stream).
    let chromium = chromium_plays(&srv, "/watch/desk", 320, 240).await;
    let hz = chromium["audio"]["hz"].as_i64().unwrap_or(0);
    assert!((hz - 1000).abs() <= 15, "Chromium heard {hz} Hz: {chromium}");
    assert!(chromium["audio"]["db"].as_i64().unwrap_or(-200) > -60, "too quiet in Chromium: {chromium}");
    srv.shutdown().await;
}

//! Out to an SFU that exists (issue 19): glasscast publishes a stream into a Janus VideoRoom (Debian's
//! `janus`, started here; gst-plugins-rs `janusvrwebrtcsink`, fed from the stream's encoder, no re-encode) and
//! a subscriber that joins the room through Janus (gst-plugins-rs `janusvrwebrtcsrc`, a WebRTC stack that
//! is not ours, and Janus' own) decodes our frames and audio. Janus going away makes the push retry; Janus
//! coming back gets the stream again. A wrong API secret is reported as the push's error.

use crate::common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use common::janus::{Janus, ROOM, SECRET};
use common::{count_decoded_pads, eventually, eventually_async, small_stream, start_with};
use glasscast::config::{Config, PushConfig, StreamConfig};
use glasscast::media::tap::egress::{self, EgressState, PushTarget};
use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;

const FEED: u64 = 4242;

/// A VideoRoom subscriber to feed [`FEED`], decoding and counting what Janus forwards.
struct Subscriber {
    pipeline: gst::Pipeline,
    frames: Arc<AtomicU64>,
    audio: Arc<AtomicU64>,
    size: Arc<Mutex<Option<(i32, i32)>>>,
}

impl Subscriber {
    fn join(janus: &Janus) -> Self {
        egress::register_plugins().expect("register gst-plugins-rs webrtc");
        let pipeline = gst::Pipeline::new();
        let src = gst::ElementFactory::make("janusvrwebrtcsrc")
            .property("stun-server", None::<String>)
            .build()
            .expect("janusvrwebrtcsrc");
        let signaller = src.property::<glib::Object>("signaller");
        signaller.set_property("janus-endpoint", janus.ws());
        signaller.set_property("secret-key", SECRET);
        signaller.set_property("room-id", ROOM);
        signaller.set_property("producer-peer-id", FEED);
        pipeline.add(&src).expect("add");
        let (frames, audio, size) =
            (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)), Arc::new(Mutex::new(None)));
        count_decoded_pads(&pipeline, &src, &frames, &audio, &size);
        pipeline.set_state(gst::State::Playing).expect("subscriber playing");
        Self { pipeline, frames, audio, size }
    }

    async fn decodes(&self, what: &str) {
        assert!(eventually(40, || self.frames.load(Ordering::Relaxed) >= 30).await, "{what}: no video through Janus");
        assert_eq!(*self.size.lock().expect("size"), Some((320, 240)), "{what}: our picture's size");
        assert!(eventually(20, || self.audio.load(Ordering::Relaxed) >= 10).await, "{what}: no audio through Janus");
    }

    /// The signaller's stop blocks on its own runtime: not from inside ours.
    async fn leave(self) {
        let p = self.pipeline.clone();
        tokio::task::spawn_blocking(move || p.set_state(gst::State::Null)).await.expect("join").expect("null");
    }
}

fn janus_push(janus: &Janus, token: &str) -> PushConfig {
    let url = format!("janus+{}/?room={ROOM}&feed={FEED}&display=glasscast", janus.ws());
    PushConfig { url, token: Some(token.into()), token_file: None }
}

async fn push_state(srv: &common::TestServer) -> Option<glasscast::media::PushStatus> {
    srv.server.sessions.health("main").await?.pushes.into_iter().next()
}

async fn wait_push(srv: &common::TestServer, secs: u64, state: &str) -> glasscast::media::PushStatus {
    let reached = eventually_async(secs, || async { push_state(srv).await.is_some_and(|p| p.state == state) }).await;
    let now = push_state(srv).await.expect("the stream has its push");
    assert!(reached, "the push never became {state}: {now:?}");
    now
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stream_pushed_into_a_janus_room_plays_to_a_subscriber_and_comes_back_after_janus_restarts() {
    let mut janus = Janus::start();
    let mut cfg = Config::default();
    cfg.server.plain_http = true;
    cfg.streams = vec![StreamConfig { push: vec![janus_push(&janus, SECRET)], ..small_stream("main") }];
    let srv = start_with(cfg).await;

    let status = wait_push(&srv, 30, "connected").await;
    assert_eq!(status.target, format!("janus+ws://127.0.0.1:{}/...", janus.port), "shown without path or query");
    let first = Subscriber::join(&janus);
    first.decodes("the first subscriber").await;
    assert!(eventually_async(10, || async { push_state(&srv).await.is_some_and(|p| p.bytes_sent > 10_000) }).await);
    first.leave().await;

    // Janus dies: the push says so and retries; Janus back on the same port gets the stream again by itself.
    janus.kill();
    let killed = std::time::Instant::now();
    let retrying = wait_push(&srv, 60, "retrying").await;
    eprintln!("Janus killed -> retrying after {:.1} s: {:?}", killed.elapsed().as_secs_f64(), retrying.last_error);
    assert!(retrying.last_error.as_ref().is_some_and(|e| !e.is_empty()), "{retrying:?}");
    janus.spawn();
    let back = std::time::Instant::now();
    let again = wait_push(&srv, 90, "connected").await;
    eprintln!("Janus back -> connected after {:.1} s", back.elapsed().as_secs_f64());
    assert!(again.attempts > status.attempts, "a new attempt connected: {again:?}");
    let second = Subscriber::join(&janus);
    second.decodes("a subscriber after Janus restarted").await;
    second.leave().await;
    assert!(srv.server.sessions.health("main").await.expect("health").producing(), "the stream itself never stopped");
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_janus_push_adds_no_encoder_and_a_wrong_secret_is_reported() {
    common::init();
    egress::register_plugins().expect("register");
    let janus = Janus::start();
    let s = crate::egress::sender();
    let target = |token: &str| PushTarget { url: janus_push(&janus, token).url, token: Some(token.into()) };

    let wrong = egress::push(&s.pipeline, &s.h264_tee, Some(&s.opus_tee), target("not-the-secret"), "main")
        .expect("push starts");
    let failed = eventually(40, || matches!(wrong.state(), EgressState::Retrying { .. })).await;
    let state = wrong.state();
    assert!(failed, "a refused API secret must fail the attempt: {state:?}");
    let EgressState::Retrying { last_error, .. } = &state else { unreachable!() };
    assert!(last_error.contains("API secret"), "the error names what to check: {last_error}");
    crate::egress::stop_egress(&Arc::new(wrong)).await;

    let push = Arc::new(
        egress::push(&s.pipeline, &s.h264_tee, Some(&s.opus_tee), target(SECRET), "main").expect("push starts"),
    );
    let connected = eventually(30, || push.state() == EgressState::Connected).await;
    assert!(connected, "{:?}\n{}", push.state(), janus.log());
    let subscriber = Subscriber::join(&janus);
    subscriber.decodes("the subscriber").await;
    let pipeline = push.pipeline().expect("the push's pipeline");
    let elements: Vec<gst::Element> = pipeline.iterate_recurse().into_iter().filter_map(Result::ok).collect();
    let names: Vec<String> = elements.iter().filter_map(|e| e.factory()).map(|f| f.name().to_string()).collect();
    assert!(names.iter().any(|n| n == "janusvrwebrtcsink"), "{names:?}");
    assert_eq!(crate::egress::encoders_in(pipeline.upcast_ref()), Vec::<String>::new());
    assert_eq!(push.encoders(), Vec::<String>::new(), "no encoder in discovery or the session pipeline");
    drop(pipeline);
    subscriber.leave().await;
    crate::egress::stop_egress(&push).await;
    assert_eq!(push.state(), EgressState::Stopped);
    crate::egress::stop_pipeline(&s.pipeline).await;
}

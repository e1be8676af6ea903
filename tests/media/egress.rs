//! WHIP egress (issue #7): a stream's encoded H.264 and Opus pushed to a WHIP server glasscast does not
//! implement (gst-plugins-rs `whipserversrc`, which decodes what it receives), without a second encoder; the
//! push comes back by itself after the server goes away and returns; a refused token (401) is reported and
//! leaves the stream's own consumers alone.

use crate::common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use common::{count_decoded_pads, eventually, init};
use glasscast::media::tap::egress::{self, Egress, EgressState, PushTarget};
use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;

/// A sender like a glasscast stream: one encoder per track, tees, and a local consumer (counting buffers).
pub(crate) struct Sender {
    pub(crate) pipeline: gst::Pipeline,
    pub(crate) h264_tee: gst::Element,
    pub(crate) opus_tee: gst::Element,
    local: Arc<AtomicU64>,
    /// Keyframe requests (upstream force-key-unit events) that reached the H.264 tee on their way to x264enc.
    keyframe_requests: Arc<AtomicU64>,
}

pub(crate) fn sender() -> Sender {
    let pipeline = gst::parse::launch(
        "videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=30/1 \
         ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 ! video/x-h264,profile=constrained-baseline \
         ! h264parse config-interval=-1 ! video/x-h264,stream-format=byte-stream,alignment=au \
         ! tee name=h264 allow-not-linked=true \
         h264. ! queue leaky=downstream ! fakesink name=local sync=false async=false \
         audiotestsrc is-live=true ! audio/x-raw,rate=48000,channels=2 ! opusenc ! tee name=opus allow-not-linked=true",
    )
    .expect("sender pipeline")
    .downcast::<gst::Pipeline>()
    .expect("a pipeline");
    let local = Arc::new(AtomicU64::new(0));
    let counter = local.clone();
    let fakesink = pipeline.by_name("local").expect("local sink");
    fakesink.static_pad("sink").expect("sink pad").add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        counter.fetch_add(1, Ordering::Relaxed);
        gst::PadProbeReturn::Ok
    });
    let h264_tee = pipeline.by_name("h264").expect("h264 tee");
    let opus_tee = pipeline.by_name("opus").expect("opus tee");
    let keyframe_requests = Arc::new(AtomicU64::new(0));
    let counter = keyframe_requests.clone();
    h264_tee.static_pad("sink").expect("sink pad").add_probe(gst::PadProbeType::EVENT_UPSTREAM, move |_, info| {
        if info.event().is_some_and(|ev| gstreamer_video::UpstreamForceKeyUnitEvent::parse(ev).is_ok()) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        gst::PadProbeReturn::Ok
    });
    pipeline.set_state(gst::State::Playing).expect("sender playing");
    Sender { pipeline, h264_tee, opus_tee, local, keyframe_requests }
}

/// A `whipserversrc` on `port` decoding what is pushed to `http://127.0.0.1:{port}/whip/endpoint`.
struct Receiver {
    pipeline: gst::Pipeline,
    frames: Arc<AtomicU64>,
    audio: Arc<AtomicU64>,
    size: Arc<Mutex<Option<(i32, i32)>>>,
    /// DELETEs received (the signaller's session-ended).
    deletes: Arc<AtomicU64>,
}

fn receiver(port: u16) -> Receiver {
    let pipeline = gst::Pipeline::new();
    let src = gst::ElementFactory::make("whipserversrc")
        .property("stun-server", None::<String>)
        .build()
        .expect("whipserversrc");
    let signaller = src.property::<glib::Object>("signaller");
    signaller.set_property("host-addr", format!("http://127.0.0.1:{port}"));
    signaller.set_property("stun-server", None::<String>);
    let deletes = Arc::new(AtomicU64::new(0));
    let d = deletes.clone();
    signaller.connect("session-ended", false, move |_| {
        d.fetch_add(1, Ordering::Relaxed);
        Some(true.to_value())
    });
    pipeline.add(&src).expect("add");
    let (frames, audio, size) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)), Arc::new(Mutex::new(None)));
    count_decoded_pads(&pipeline, &src, &frames, &audio, &size);
    pipeline.set_state(gst::State::Playing).expect("receiver playing");
    Receiver { pipeline, frames, audio, size, deletes }
}

/// Sets `pipeline` to NULL off the async runtime (whipserversrc and whipclientsink block on their own).
pub(crate) async fn stop_pipeline(pipeline: &gst::Pipeline) {
    let p = pipeline.clone();
    tokio::task::spawn_blocking(move || p.set_state(gst::State::Null)).await.expect("join").expect("null");
}

pub(crate) async fn stop_egress(egress: &Arc<Egress>) {
    let e = egress.clone();
    tokio::task::spawn_blocking(move || e.stop()).await.expect("join");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// Factory names of the elements in `bin` (recursively) whose klass says `Encoder`, but for DTLS's
/// (`Encoder/Network/DTLS`: they encrypt packets, and are in webrtcbin's session pipeline, not here).
pub(crate) fn encoders_in(bin: &gst::Bin) -> Vec<String> {
    let mut names: Vec<String> = bin
        .iterate_recurse()
        .into_iter()
        .filter_map(Result::ok)
        .filter_map(|e| e.factory())
        .filter(|f| f.klass().contains("Encoder") && !f.klass().contains("DTLS"))
        .map(|f| f.name().to_string())
        .collect();
    names.sort();
    names
}

async fn wait_state(egress: &Egress, secs: u64, want: impl Fn(&EgressState) -> bool) -> EgressState {
    eventually(secs, || want(&egress.state())).await;
    egress.state()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pushes_the_encoded_stream_without_encoding_again_and_reconnects_by_itself() {
    init();
    egress::register_plugins().expect("register");
    let port = free_port();
    let first = receiver(port);
    let s = sender();
    assert!(eventually(10, || s.pipeline.current_state() == gst::State::Playing).await, "sender not playing");

    let target = PushTarget { url: format!("http://127.0.0.1:{port}/whip/endpoint"), token: Some("t0ken".into()) };
    let egress = Arc::new(egress::push(&s.pipeline, &s.h264_tee, Some(&s.opus_tee), target, "main").expect("push"));

    assert!(eventually(60, || first.frames.load(Ordering::Relaxed) >= 30).await, "no video: {:?}", egress.state());
    assert_eq!(*first.size.lock().expect("lock"), Some((320, 240)));
    assert!(eventually(20, || first.audio.load(Ordering::Relaxed) >= 10).await, "no audio");
    assert_eq!(egress.state(), EgressState::Connected);
    assert!(eventually(10, || egress.bytes_sent() > 10_000).await, "bytes_sent: {}", egress.bytes_sent());
    assert!(s.keyframe_requests.load(Ordering::Relaxed) >= 1, "a connecting push asks the encoder for a keyframe");

    // (a) Encode once: the sender holds the two encoders this test made, and the push none.
    assert_eq!(encoders_in(s.pipeline.upcast_ref()), ["opusenc", "x264enc"]);
    let push = egress.pipeline().expect("the push's pipeline");
    let elements: Vec<gst::Element> = push.iterate_recurse().into_iter().filter_map(Result::ok).collect();
    assert!(elements.iter().any(|e| e.factory().is_some_and(|f| f.name() == "whipclientsink")));
    assert_eq!(encoders_in(push.upcast_ref()), Vec::<String>::new());
    assert_eq!(egress.encoders(), Vec::<String>::new(), "no encoder in discovery or the session pipeline");
    drop(push);

    // (b) The server goes away: the push notices, says why and retries; a new server on the same port gets
    // media again without anyone's help.
    stop_pipeline(&first.pipeline).await;
    let gone = Instant::now();
    let state = wait_state(&egress, 120, |s| matches!(s, EgressState::Retrying { .. })).await;
    let EgressState::Retrying { last_error, .. } = &state else { panic!("still {state:?} after the server left") };
    assert!(!last_error.is_empty());
    eprintln!("server gone -> Retrying after {:.1} s: {last_error}", gone.elapsed().as_secs_f64());
    let (attempts, bytes, keyframe_requests) =
        (egress.attempts(), egress.bytes_sent(), s.keyframe_requests.load(Ordering::Relaxed));
    let second = receiver(port);
    assert!(
        eventually(120, || second.frames.load(Ordering::Relaxed) >= 30).await,
        "no video after the server returned: {:?}",
        egress.state()
    );
    assert!(eventually(20, || second.audio.load(Ordering::Relaxed) >= 10).await, "no audio after reconnecting");
    assert_eq!(egress.state(), EgressState::Connected);
    assert!(egress.attempts() > attempts, "a new attempt connected");
    assert!(eventually(10, || egress.bytes_sent() > bytes + 10_000).await, "bytes_sent counts on over attempts");
    assert!(s.keyframe_requests.load(Ordering::Relaxed) > keyframe_requests, "a keyframe for the new session");
    assert_eq!(egress.encoders(), Vec::<String>::new());

    // Stopping deletes the WHIP resource and removes the branch.
    let pads_with_push = s.h264_tee.src_pads().len();
    eprintln!("stopping the push");
    stop_egress(&egress).await;
    assert_eq!(egress.state(), EgressState::Stopped);
    assert!(eventually(10, || second.deletes.load(Ordering::Relaxed) >= 1).await, "no DELETE on stop");
    assert_eq!(s.h264_tee.src_pads().len(), pads_with_push - 1);
    assert_eq!(s.opus_tee.src_pads().len(), 0);
    stop_pipeline(&second.pipeline).await;
    stop_pipeline(&s.pipeline).await;
}

/// A push URL's path and query may be a secret (Cloudflare's WHIP URLs): whipclientsink's error for an
/// endpoint that is not there names the whole URL, and the reason kept (`/readyz`, the console) and the
/// warning logged (and kept in the log ring) say only its scheme, host and port.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_push_urls_secret_path_stays_out_of_its_error_and_the_log() {
    init();
    egress::register_plugins().expect("register");
    let s = sender();
    assert!(eventually(10, || s.pipeline.current_state() == gst::State::Playing).await, "sender not playing");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/whip/SECRET-PATH-4711?key=SECRET-KEY");
    let target = PushTarget { url, token: Some("SECRET-TOKEN".into()) };
    let egress = Arc::new(egress::push(&s.pipeline, &s.h264_tee, Some(&s.opus_tee), target, "main").expect("push"));
    let state = wait_state(&egress, 30, |s| matches!(s, EgressState::Retrying { .. })).await;
    let EgressState::Retrying { last_error, .. } = &state else { panic!("an unreachable push must retry: {state:?}") };
    eprintln!("unreachable endpoint: {last_error}");
    assert!(!last_error.is_empty() && !last_error.contains("SECRET"), "the reason kept: {last_error}");
    assert!(last_error.contains(&format!("127.0.0.1:{port}")) || !last_error.contains("://"), "{last_error}");
    let logged = glasscast::logging::ring::recent().0;
    assert!(logged.iter().any(|e| e.text.contains("push failed")), "the failure is logged: {logged:?}");
    assert!(logged.iter().all(|e| !e.text.contains("SECRET")), "the log ring: {logged:?}");
    stop_egress(&egress).await;
    stop_pipeline(&s.pipeline).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_token_is_reported_and_the_streams_own_consumers_keep_playing() {
    init();
    // An endpoint that refuses every token, noting what it was sent.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let bearer_seen = Arc::new(AtomicU64::new(0));
    let seen = bearer_seen.clone();
    let server = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        loop {
            let Ok((mut conn, _)) = listener.accept().await else { break };
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                if String::from_utf8_lossy(&head).to_ascii_lowercase().contains("authorization: bearer wrong-token") {
                    seen.fetch_add(1, Ordering::Relaxed);
                }
                let body = "invalid token";
                let reply = format!(
                    "HTTP/1.1 401 Unauthorized\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(reply.as_bytes()).await;
                let _ = conn.shutdown().await;
            });
        }
    });

    let s = sender();
    assert!(eventually(10, || s.pipeline.current_state() == gst::State::Playing).await, "sender not playing");
    let target = PushTarget { url: format!("http://127.0.0.1:{port}/whip"), token: Some("wrong-token".into()) };
    let egress = Arc::new(egress::push(&s.pipeline, &s.h264_tee, Some(&s.opus_tee), target, "main").expect("push"));

    let state = wait_state(&egress, 30, |s| matches!(s, EgressState::Retrying { .. })).await;
    let EgressState::Retrying { last_error, .. } = &state else { panic!("a refused push must retry: {state:?}") };
    assert!(last_error.contains("401"), "the reason names the status: {last_error}");
    assert!(!last_error.contains("wrong-token"), "the token stays out of the reason: {last_error}");
    assert!(bearer_seen.load(Ordering::Relaxed) >= 1, "the token was sent as a bearer token");

    // The stream's own consumer keeps getting frames, and the push keeps trying (1 s, then 2 s later).
    let before = s.local.load(Ordering::Relaxed);
    assert!(eventually(10, || s.local.load(Ordering::Relaxed) >= before + 30).await, "the local consumer stalled");
    assert!(eventually(20, || egress.attempts() >= 3).await, "attempts: {}", egress.attempts());
    assert!(matches!(egress.state(), EgressState::Retrying { .. } | EgressState::Connecting));
    assert_eq!(egress.bytes_sent(), 0);
    // The push's errors stay on its own bus: the stream pipeline saw none.
    let bus = s.pipeline.bus().expect("bus");
    assert!(bus.pop_filtered(&[gst::MessageType::Error]).is_none(), "an error reached the stream's bus");

    stop_egress(&egress).await;
    assert_eq!(egress.state(), EgressState::Stopped);
    let before = s.local.load(Ordering::Relaxed);
    assert!(eventually(10, || s.local.load(Ordering::Relaxed) >= before + 30).await, "stalled after stop");
    server.abort();
    stop_pipeline(&s.pipeline).await;
}

//! Egress (issues #7, #19): pushes a stream's already-encoded H.264 (and Opus) to an external WHIP endpoint
//! (RFC 9725: LiveKit, Cloudflare, MediaMTX, another glasscast) with an optional bearer token, or into a Janus
//! VideoRoom as a publisher (Janus' WebSocket API; the token is its API secret), supervised: a failed attempt
//! is torn down and retried after 1, 2, 4 ... 30 s. [`crate::push::Endpoint`] says which.
//!
//! ```text
//! stream pipeline, for the push's lifetime (the shared encoder; a push adds none):
//!   {tee h264} - {queue leaky 300 ms} - {appsink}
//!  [{tee opus} - {queue leaky 300 ms} - {appsink}]
//!       ==> samples, timestamps made running time
//! egress pipeline, one per attempt (its own bus; the stream's clock and base time):
//!   {appsrc h264} - {whipclientsink | janusvrwebrtcsink: h264parse - rtph264pay - webrtcbin}
//!  [{appsrc opus} - /                                    opusparse - rtpopuspay - /]
//! ```
//!
//! `whipclientsink` and `janusvrwebrtcsink` (gst-plugins-rs: webrtcsink with a WHIP or a Janus VideoRoom
//! signaller, made in [`sink`]) only payload input that is already encoded; [`Egress::encoders`] checks at run
//! time that no encoder appears. It has a pipeline of its own because it posts HTTP and signalling failures as errors on its bus, which the stream's bus task would take
//! for a stream failure, and because its state changes (an async start, a blocking DELETE on stop) must not
//! touch the stream's pipeline. The leaky queues and never-blocking appsrcs keep a slow or dead push from
//! stalling the stream's viewers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer_webrtc as gst_webrtc;

use crate::push::{Endpoint, redacted, scrub};

mod sink;

use super::feed::{Tap, add_tap, feed_src, remove_tap, request_keyframe};

const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// An attempt not connected (HTTP answered, ICE and DTLS up) by then is given up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the supervisor refreshes the byte counter.
const TICK: Duration = Duration::from_millis(500);

/// Where to push: a WHIP endpoint or a Janus room ([`Endpoint::parse`] reads `url`), and the token it wants
/// (a WHIP bearer token, a Janus API secret), if any.
#[derive(Clone)]
pub struct PushTarget {
    pub url: String,
    pub token: Option<String>,
}

impl std::fmt::Debug for PushTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token, nor the URL's path: some services (Cloudflare) put a secret there.
        f.debug_struct("PushTarget").field("url", &redacted(&self.url)).field("token", &self.token.is_some()).finish()
    }
}

/// What a push is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EgressState {
    /// An attempt is under way: HTTP POST, ICE, DTLS.
    Connecting,
    /// Media is flowing to the endpoint.
    Connected,
    /// The last attempt failed (`last_error` says why); the next starts in `in_s` seconds.
    Retrying { in_s: u64, last_error: String },
    /// Stopped by [`Egress::stop`] or drop; no more attempts.
    Stopped,
}

#[derive(Default)]
struct Shared {
    /// The state, and when a retry is due.
    state: Mutex<Option<(EgressState, Instant)>>,
    bytes: AtomicU64,
    attempts: AtomicU64,
    /// Factory names of encoders that appeared in a push's pipelines (must stay empty).
    encoders: Mutex<Vec<String>>,
    /// The current attempt's pipeline.
    pipeline: Mutex<Option<gst::Pipeline>>,
}

impl Shared {
    fn set(&self, state: EgressState, retry_at: Instant) {
        *self.state.lock().expect("egress state lock") = Some((state, retry_at));
    }
}

enum Event {
    Connected(u64),
    Failed(u64, String),
    Stop,
}

/// A running push. [`Egress::stop`] or drop ends it: the WHIP resource is deleted (the Janus session left),
/// the branch removed.
pub struct Egress {
    shared: Arc<Shared>,
    tx: mpsc::Sender<Event>,
    thread: Mutex<Option<JoinHandle<()>>>,
    taps: Arc<Vec<Tap>>,
    pipeline: gst::Pipeline,
    /// The endpoint, redacted (scheme, host, port).
    target: String,
}

/// Registers gst-plugins-rs' WebRTC elements (`whipclientsink` among them), once per process.
pub fn register_plugins() -> anyhow::Result<()> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| gstrswebrtc::plugin_register_static().map_err(|e| e.to_string()))
        .clone()
        .map_err(|e| anyhow::anyhow!("registering the gst-plugins-rs WebRTC plugin: {e}"))
}

/// Starts pushing `h264_tee`'s stream (byte-stream, alignment au, SPS/PPS with every IDR) and `opus_tee`'s,
/// if given, to `target`. Fails at once only for a bad target or a missing element; whatever goes wrong later
/// (HTTP, ICE, the endpoint going away) is retried and shows in [`Egress::state`].
pub fn push(
    pipeline: &gst::Pipeline,
    h264_tee: &gst::Element,
    opus_tee: Option<&gst::Element>,
    target: PushTarget,
    stream_name: &str,
) -> anyhow::Result<Egress> {
    let endpoint = check_target(&target)?;
    register_plugins()?;
    static NEXT_ID: AtomicU64 = AtomicU64::new(0);
    let id = format!("egress-{stream_name}-{}", NEXT_ID.fetch_add(1, Ordering::Relaxed));
    let mut taps = vec![add_tap(pipeline, h264_tee, true, &id)?];
    if let Some(tee) = opus_tee {
        taps.push(add_tap(pipeline, tee, false, &id).inspect_err(|_| remove_tap(pipeline, &taps[0]))?);
    }
    let shared = Arc::new(Shared::default());
    shared.set(EgressState::Connecting, Instant::now());
    let (tx, rx) = mpsc::channel();
    let taps = Arc::new(taps);
    let stream = pipeline.downgrade();
    let shown = redacted(&target.url);
    let display = stream_name.to_owned();
    let ctx = Ctx {
        id,
        target,
        endpoint,
        display,
        stream,
        taps: Arc::clone(&taps),
        shared: Arc::clone(&shared),
        tx: tx.clone(),
    };
    let thread =
        std::thread::Builder::new().name(ctx.id.clone()).spawn(move || supervise(ctx, rx)).context("egress thread")?;
    Ok(Egress { shared, tx, thread: Mutex::new(Some(thread)), taps, pipeline: pipeline.clone(), target: shown })
}

impl Egress {
    /// The endpoint's scheme, host and port (its path may be a secret).
    pub fn target(&self) -> String {
        self.target.clone()
    }

    pub fn state(&self) -> EgressState {
        match self.shared.state.lock().expect("egress state lock").clone() {
            Some((EgressState::Retrying { last_error, .. }, at)) => EgressState::Retrying {
                in_s: at.saturating_duration_since(Instant::now()).as_secs_f64().ceil() as u64,
                last_error,
            },
            Some((state, _)) => state,
            None => EgressState::Connecting,
        }
    }

    /// RTP payload bytes sent to the endpoint (webrtcbin's outbound-rtp `bytes-sent`), over all attempts.
    pub fn bytes_sent(&self) -> u64 {
        self.shared.bytes.load(Ordering::Relaxed)
    }

    /// Attempts made so far, the first included.
    pub fn attempts(&self) -> u64 {
        self.shared.attempts.load(Ordering::Relaxed)
    }

    /// Encoders that appeared in the push's pipelines. Empty: a push only payloads.
    pub fn encoders(&self) -> Vec<String> {
        self.shared.encoders.lock().expect("egress encoders lock").clone()
    }

    /// The current attempt's pipeline (`appsrc`s and `whipclientsink`), if one is running.
    pub fn pipeline(&self) -> Option<gst::Pipeline> {
        self.shared.pipeline.lock().expect("egress pipeline lock").clone()
    }

    /// Stops retrying, ends the current attempt (whipclientsink sends DELETE for an established session) and
    /// removes the branch. Blocks up to the HTTP timeout; call it off async runtimes. Idempotent.
    pub fn stop(&self) {
        let Some(thread) = self.thread.lock().expect("egress thread lock").take() else { return };
        let _ = self.tx.send(Event::Stop);
        if thread.join().is_err() {
            tracing::error!("the egress thread panicked");
        }
        for tap in self.taps.iter() {
            remove_tap(&self.pipeline, tap);
        }
        self.shared.set(EgressState::Stopped, Instant::now());
    }
}

impl Drop for Egress {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Where `target` goes, refusing what the sinks would panic on: a URL they cannot parse, a token that is no
/// header value.
fn check_target(target: &PushTarget) -> anyhow::Result<Endpoint> {
    let endpoint = Endpoint::parse(&target.url)?;
    if let Some(token) = &target.token
        && (token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()))
    {
        bail!("the push's token (a WHIP bearer token or a Janus API secret) must be non-empty visible ASCII");
    }
    Ok(endpoint)
}

/// `{tee} - {queue leaky} - {appsink}` in the stream pipeline; samples go to the current attempt's appsrc.
struct Ctx {
    id: String,
    target: PushTarget,
    endpoint: Endpoint,
    /// The stream's name: a Janus publisher's display name unless the URL gives one.
    display: String,
    stream: glib::WeakRef<gst::Pipeline>,
    taps: Arc<Vec<Tap>>,
    shared: Arc<Shared>,
    tx: mpsc::Sender<Event>,
}

/// The supervisor thread: one attempt at a time, a backoff after each failure, until [`Event::Stop`].
fn supervise(ctx: Ctx, rx: mpsc::Receiver<Event>) {
    let host = redacted(&ctx.target.url);
    let protocol = ctx.endpoint.protocol();
    let mut backoff = FIRST_BACKOFF;
    let mut n = 0;
    'attempts: loop {
        n += 1;
        ctx.shared.attempts.store(n, Ordering::Relaxed);
        ctx.shared.set(EgressState::Connecting, Instant::now());
        let base_bytes = ctx.shared.bytes.load(Ordering::Relaxed);
        tracing::info!(egress = %ctx.id, target = %host, attempt = n, protocol, "push connecting");
        let why = match start_attempt(&ctx, n) {
            Err(e) => format!("{e:#}"),
            Ok((pipeline, sink)) => {
                let deadline = Instant::now() + CONNECT_TIMEOUT;
                let mut connected = false;
                let why = loop {
                    let event = rx.recv_timeout(TICK);
                    ctx.shared.bytes.store(base_bytes + bytes_sent(&sink), Ordering::Relaxed);
                    match event {
                        Ok(Event::Stop) | Err(RecvTimeoutError::Disconnected) => {
                            end_attempt(&ctx, &pipeline);
                            break 'attempts;
                        }
                        Ok(Event::Connected(m)) if m == n && !connected => {
                            connected = true;
                            backoff = FIRST_BACKOFF;
                            ctx.shared.set(EgressState::Connected, Instant::now());
                            request_keyframe(&ctx.taps);
                            tracing::info!(egress = %ctx.id, target = %host, protocol, "push connected");
                        }
                        Ok(Event::Failed(m, why)) if m == n => break why,
                        Err(RecvTimeoutError::Timeout) if !connected && Instant::now() > deadline => {
                            break format!(
                                "not connected after {} s{}",
                                CONNECT_TIMEOUT.as_secs(),
                                ctx.endpoint.silence_hint()
                            );
                        }
                        _ => {} // an earlier attempt's news, or none
                    }
                };
                end_attempt(&ctx, &pipeline);
                why
            }
        };
        // Before it is logged, kept or served: the URL's path and query may be a secret, and so is the token.
        let mut why = scrub(&why, &ctx.target.url);
        if let Some(token) = ctx.target.token.as_deref().filter(|t| !t.is_empty()) {
            why = why.replace(token, "(hidden)");
        }
        tracing::warn!(egress = %ctx.id, target = %host, attempt = n, protocol, %why, retry_in_s = backoff.as_secs(), "push failed");
        let at = Instant::now() + backoff;
        ctx.shared.set(EgressState::Retrying { in_s: backoff.as_secs(), last_error: why }, at);
        loop {
            match rx.recv_timeout(at.saturating_duration_since(Instant::now())) {
                Ok(Event::Stop) | Err(RecvTimeoutError::Disconnected) => break 'attempts,
                Err(RecvTimeoutError::Timeout) => break,
                Ok(_) => {}
            }
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    ctx.shared.set(EgressState::Stopped, Instant::now());
}

/// Builds and starts attempt `n`'s pipeline; its news arrives on `ctx.tx` tagged with `n`.
fn start_attempt(ctx: &Ctx, n: u64) -> anyhow::Result<(gst::Pipeline, gst::Element)> {
    let stream = ctx.stream.upgrade().context("the stream pipeline is gone")?;
    let (Some(clock), Some(base_time)) = (stream.clock(), stream.base_time()) else {
        bail!("the stream is not playing");
    };
    let pipeline = gst::Pipeline::with_name(&format!("{}-{n}", ctx.id));
    pipeline.use_clock(Some(&clock));
    pipeline.set_base_time(base_time);
    pipeline.set_start_time(gst::ClockTime::NONE);
    let sink = sink::make(&ctx.endpoint, ctx.target.token.as_deref(), &ctx.display)?;
    watch(ctx, n, &pipeline, &sink);
    *ctx.shared.pipeline.lock().expect("egress pipeline lock") = Some(pipeline.clone());
    let started = link_tracks(ctx, &pipeline, &sink)
        .and_then(|()| pipeline.set_state(gst::State::Playing).context("starting whipclientsink"));
    if let Err(e) = started {
        end_attempt(ctx, &pipeline);
        return Err(e);
    }
    request_keyframe(&ctx.taps);
    Ok((pipeline, sink))
}

/// `{appsrc} - {whipclientsink}` per track, each appsrc fed by its tap from now on.
fn link_tracks(ctx: &Ctx, pipeline: &gst::Pipeline, sink: &gst::Element) -> anyhow::Result<()> {
    pipeline.add(sink).context("adding whipclientsink")?;
    for tap in ctx.taps.iter() {
        let src = feed_src(if tap.video { 60 } else { 100 });
        pipeline.add(&src).context("adding appsrc")?;
        let template = if tap.video { "video_%u" } else { "audio_%u" };
        let pad = sink.request_pad_simple(template).context("requesting a whipclientsink pad")?;
        let src_pad = src.static_pad("src").expect("appsrc has a src pad");
        src_pad.link(&pad).context("linking appsrc")?;
        if tap.video {
            // Keyframe requests (the endpoint's PLIs, webrtcsink's own on connect) go to the shared encoder.
            let queue_pad = tap.queue.static_pad("sink").expect("a queue has a sink pad").downgrade();
            src_pad.add_probe(gst::PadProbeType::EVENT_UPSTREAM, move |_, info| {
                if let Some(ev) = info.event()
                    && gstreamer_video::UpstreamForceKeyUnitEvent::parse(ev).is_ok()
                    && let Some(pad) = queue_pad.upgrade()
                {
                    pad.push_event(crate::media::encode::keyframes::request_event());
                }
                gst::PadProbeReturn::Ok
            });
        }
        *tap.feed.lock().expect("egress feed lock") = Some(src);
    }
    Ok(())
}

/// Connects attempt `n`'s news: bus errors and EOS, the session's webrtcbin, and any encoder.
fn watch(ctx: &Ctx, n: u64, pipeline: &gst::Pipeline, sink: &gst::Element) {
    let tx = ctx.tx.clone();
    pipeline.bus().expect("a pipeline has a bus").set_sync_handler(move |_, msg| {
        let why = match msg.view() {
            // whipclientsink says what went wrong (e.g. "Unexpected response: 401 - ...") on the debug text's
            // last line, after GStreamer's location and element path; its message is generic.
            gst::MessageView::Error(e) => Some(
                e.debug().and_then(|d| d.lines().last().map(str::to_owned)).unwrap_or_else(|| e.error().to_string()),
            ),
            // Posted after a DELETE, whoever ended the session.
            gst::MessageView::Eos(_) => Some("the session ended".to_owned()),
            _ => None,
        };
        if let Some(why) = why {
            let _ = tx.send(Event::Failed(n, why));
        }
        gst::BusSyncReply::Drop
    });
    // No second encode: checked where an encoder could appear, webrtcsink's codec discovery and its session
    // pipeline (whose webrtcbin is watched from there, ahead of webrtcsink's own handlers).
    let seen = Arc::clone(&ctx.shared);
    sink.connect("encoder-setup", false, move |args| {
        if let Ok(enc) = args[3].get::<gst::Element>() {
            record_encoder(&seen, &enc);
        }
        Some(false.to_value())
    });
    let (seen, tx) = (Arc::clone(&ctx.shared), ctx.tx.clone());
    sink.connect("consumer-pipeline-created", false, move |args| {
        let session = args[2].get::<gst::Pipeline>().expect("consumer-pipeline-created carries the pipeline");
        let (seen, tx) = (Arc::clone(&seen), tx.clone());
        session.connect_deep_element_added(move |_, _, element| {
            if is_encoder(element) {
                record_encoder(&seen, element);
            } else if element.factory().is_some_and(|f| f.name() == "webrtcbin") {
                watch_webrtcbin(element, tx.clone(), n);
            }
        });
        None
    });
}

/// Connected, or why not: ICE or DTLS failing, or the endpoint's RTCP timing out (rtpbin's `on-timeout`,
/// ~25 s of silence; libnice's keepalive checks take ~50 s to notice a vanished endpoint).
fn watch_webrtcbin(webrtcbin: &gst::Element, tx: mpsc::Sender<Event>, n: u64) {
    // No UPnP, and keepalives that are connectivity checks (a vanished endpoint fails ICE), as for viewers.
    crate::media::webrtcbin::viewer::tune_ice_agent(webrtcbin, &crate::media::IceSettings::default());
    if let Some(rtpbin) = webrtcbin.downcast_ref::<gst::Bin>().and_then(|b| b.by_name("rtpbin")) {
        let tx = tx.clone();
        rtpbin.connect("on-timeout", false, move |_| {
            let _ = tx.send(Event::Failed(n, "the endpoint stopped sending RTCP".into()));
            None
        });
    }
    webrtcbin.connect_notify(Some("connection-state"), move |w, _| {
        use crate::media::PeerEnd as E;
        let state = w.property::<gst_webrtc::WebRTCPeerConnectionState>("connection-state");
        if state == gst_webrtc::WebRTCPeerConnectionState::Connected {
            let _ = tx.send(Event::Connected(n));
        }
        let why = match crate::media::webrtcbin::viewer::connection_end(w, state) {
            Some(E::IceFailed) => "ICE failed",
            Some(E::DtlsFailed) => "the DTLS handshake failed",
            Some(E::Closed) => "the WebRTC connection was closed",
            Some(E::Error(_)) | None => return,
        };
        let _ = tx.send(Event::Failed(n, why.into()));
    });
}

/// A video or audio encoder (not DTLS's `dtlsenc`, klass `Encoder/Network/DTLS`, which encrypts).
fn is_encoder(element: &gst::Element) -> bool {
    element.factory().is_some_and(|f| {
        let parts: Vec<&str> = f.klass().split('/').collect();
        parts.contains(&"Encoder") && (parts.contains(&"Video") || parts.contains(&"Audio"))
    })
}

fn record_encoder(shared: &Shared, element: &gst::Element) {
    let name = element.factory().map_or_else(|| element.name().to_string(), |f| f.name().to_string());
    tracing::error!(encoder = %name, "an encoder appeared in a push: the stream is encoded twice");
    shared.encoders.lock().expect("egress encoders lock").push(name);
}

/// Tears an attempt down: stop feeding it, then NULL (whipclientsink DELETEs an established session).
fn end_attempt(ctx: &Ctx, pipeline: &gst::Pipeline) {
    for tap in ctx.taps.iter() {
        *tap.feed.lock().expect("egress feed lock") = None;
    }
    *ctx.shared.pipeline.lock().expect("egress pipeline lock") = None;
    let _ = pipeline.set_state(gst::State::Null);
    if let Some(bus) = pipeline.bus() {
        bus.unset_sync_handler();
    }
}

/// RTP bytes sent in the attempt: webrtcbin's outbound-rtp `bytes-sent`, summed, as webrtcsink's `stats`
/// (per session, refreshed every 100 ms) carries them.
fn bytes_sent(sink: &gst::Element) -> u64 {
    let inner =
        |s: &gst::StructureRef| s.iter().filter_map(|(_, v)| v.get::<gst::Structure>().ok()).collect::<Vec<_>>();
    inner(&sink.property::<gst::Structure>("stats"))
        .iter()
        .flat_map(|session| inner(session))
        .filter(|s| s.get::<gst_webrtc::WebRTCStatsType>("type") == Ok(gst_webrtc::WebRTCStatsType::OutboundRtp))
        .filter_map(|s| s.get::<u64>("bytes-sent").ok())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_whipclientsink_would_panic_on_are_refused_and_secrets_stay_out_of_logs() {
        let t = |url: &str, token: Option<&str>| {
            check_target(&PushTarget { url: url.into(), token: token.map(Into::into) })
        };
        assert!(t("https://live.example/whip/abc", Some("s3cret.token-_~+/=")).is_ok());
        assert!(t("http://127.0.0.1:8889/mystream/whip", None).is_ok());
        for (url, token) in [("not a url", None), ("rtmp://example/live", None), ("https://e/w", Some("two words"))] {
            assert!(t(url, token).is_err(), "{url} {token:?}");
        }
        assert!(t("https://e/w", Some("line\nbreak")).is_err() && t("https://e/w", Some("")).is_err());
        let target =
            PushTarget { url: "https://cf.example:8443/SECRET/webRTC/publish".into(), token: Some("tok".into()) };
        let shown = format!("{target:?}");
        assert!(shown.contains("https://cf.example:8443/...") && !shown.contains("SECRET") && !shown.contains("tok\""));
    }
}

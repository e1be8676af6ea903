//! Shared test harness: an in-process glasscast on an ephemeral port, and a WHEP viewer built on GStreamer's
//! own webrtcbin (a WebRTC stack glasscast does not implement), which decodes what it receives.
#![allow(dead_code)]

pub mod admin;
pub mod aiortc;
pub mod analyze;
pub mod binary;
pub mod janus;
pub mod junk;
pub mod netns;
pub mod publisher;
pub mod remote;
pub mod testbed;
mod viewer;

pub use viewer::WebrtcbinViewer;

/// One test body on both transports: `on_both_transports!(name, body)` makes the tests `name::forward`
/// and `name::webrtcbin`, each running `body(Transport)` (an `async fn` of the calling module). The media
/// suites that hold on either transport are written once and run on both from here.
#[allow(unused_macros)] // the binaries without media suites
macro_rules! on_both_transports {
    ($(#[$doc:meta])* $name:ident, $body:ident) => {
        $(#[$doc])*
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn forward() {
                super::$body(glasscast::config::Transport::Forward).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn webrtcbin() {
                super::$body(glasscast::config::Transport::Webrtcbin).await;
            }
        }
    };
}
#[allow(unused_imports)]
pub(crate) use on_both_transports;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use glasscast::config::{Config, StreamConfig, Transport};
use glasscast::serve::Server;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_webrtc as gst_webrtc;
use tokio::sync::oneshot;

pub struct TestServer {
    pub server: Server,
    pub base: String,
    pub http: reqwest::Client,
    pub state: tempfile::TempDir,
}

pub fn init() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    gst::init().expect("gstreamer init");
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    // The log ring too, as `glasscast serve` has it (the admin console's host panel shows it).
    let _ = tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_test_writer().with_filter(filter))
        .with(glasscast::logging::ring::RingLayer)
        .try_init();
}

/// A small, fast stream: 320x240@30 with audio.
pub fn small_stream(name: &str) -> StreamConfig {
    StreamConfig { width: 320, height: 240, bitrate_kbps: 600, ..StreamConfig::test_pattern(name) }
}

/// Starts `cfg` with access control disabled (most tests are about media; tests/api/auth.rs is about tokens).
pub async fn start_with(mut cfg: Config) -> TestServer {
    cfg.auth.mode = glasscast::config::AuthMode::Disabled;
    start_as_configured(cfg).await
}

/// Starts `cfg` as it is (access control as configured: required by default).
pub async fn start_as_configured(mut cfg: Config) -> TestServer {
    let state = tempfile::tempdir().expect("tempdir");
    cfg.server.state_dir = state.path().to_path_buf();
    launch(cfg, state).await
}

/// [`start_with`] keeping `cfg.server.state_dir` (a directory the test keeps across restarts).
pub async fn start_with_state(mut cfg: Config, _kept: &tempfile::TempDir) -> TestServer {
    cfg.auth.mode = glasscast::config::AuthMode::Disabled;
    launch(cfg, tempfile::tempdir().expect("tempdir")).await
}

async fn launch(mut cfg: Config, state: tempfile::TempDir) -> TestServer {
    init();
    cfg.server.listen = "127.0.0.1:0".parse().expect("an address");
    // Tests run side by side: never the fixed default media or metrics port.
    cfg.webrtc.mux_port = 0;
    cfg.metrics.listen = "127.0.0.1:0".parse().expect("an address");
    let server = Server::start(&cfg).await.expect("server starts");
    let base = format!("{}://127.0.0.1:{}", server.scheme(), server.addr.port());
    let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(20));
    if let Some(tls) = &server.tls {
        let pem = std::fs::read(&tls.cert_path).expect("cert");
        builder = builder.tls_certs_only([reqwest::Certificate::from_pem(&pem).expect("pem")]);
    }
    let http = builder.build().expect("client");
    let ts = TestServer { server, base, http, state };
    ts.wait_ready().await;
    ts
}

/// Plain HTTP, the given streams.
pub async fn start(streams: Vec<StreamConfig>) -> TestServer {
    let mut cfg = Config::default();
    cfg.server.plain_http = true;
    cfg.streams = streams;
    start_with(cfg).await
}

/// Plain HTTP, the given streams, viewers served by the given transport.
pub async fn start_on(transport: Transport, streams: Vec<StreamConfig>) -> TestServer {
    let mut cfg = Config::default();
    cfg.server.plain_http = true;
    cfg.webrtc.transport = transport;
    cfg.streams = streams;
    start_with(cfg).await
}

/// [`start_on`] the forwarding transport (the default), said explicitly.
pub async fn start_forward(streams: Vec<StreamConfig>) -> TestServer {
    start_on(Transport::Forward, streams).await
}

/// [`start_on`] the webrtcbin transport (one webrtcbin per viewer).
pub async fn start_webrtcbin(streams: Vec<StreamConfig>) -> TestServer {
    start_on(Transport::Webrtcbin, streams).await
}

impl TestServer {
    pub async fn wait_ready(&self) {
        let ready = eventually_async(5, || async { self.server.sessions.readiness().await.ready }).await;
        assert!(ready, "server not ready: {:?}", self.server.sessions.readiness().await);
    }

    pub async fn viewer_pads(&self, stream: &str) -> usize {
        // Readiness carries no pad counts; ask the stream list for viewers and the media for pads.
        let infos = self.server.sessions.streams().await;
        assert!(infos.iter().any(|s| s.name.as_str() == stream));
        self.server.sessions.viewer_pads(stream).await
    }

    pub async fn post_offer(&self, stream: &str, offer: &str) -> reqwest::Response {
        self.post_offer_with(stream, offer, None).await
    }

    /// POST an offer with `Authorization: Bearer <token>` when a token is given.
    pub async fn post_offer_with(&self, stream: &str, offer: &str, token: Option<&str>) -> reqwest::Response {
        let mut req = self
            .http
            .post(format!("{}/whep/{stream}", self.base))
            .header("content-type", "application/sdp")
            .body(offer.to_owned());
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request")
    }

    /// [`TestServer::post_offer_with`], coming back a second later (up to 10 times) while the answer is 503:
    /// admission control refusing a viewer while the machine is busy (tests run four at a time), as the
    /// player does. Returns the last answer. For tests about something else than admission.
    pub async fn post_offer_admitted(&self, stream: &str, offer: &str, token: Option<&str>) -> reqwest::Response {
        let mut resp = self.post_offer_with(stream, offer, token).await;
        for _ in 0..10 {
            if resp.status() != 503 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            resp = self.post_offer_with(stream, offer, token).await;
        }
        resp
    }

    /// PATCH a session with a trickle-ice-sdpfrag body, with an optional If-Match.
    pub async fn patch_frag(&self, url: &str, if_match: Option<&str>, frag: &str) -> reqwest::Response {
        let mut req =
            self.http.patch(url).header("content-type", "application/trickle-ice-sdpfrag").body(frag.to_owned());
        if let Some(tag) = if_match {
            req = req.header("if-match", tag);
        }
        req.send().await.expect("request")
    }

    /// Waits up to `secs` for session `id` to be gone; false if it is still there.
    pub async fn session_ends(&self, id: glasscast::ids::SessionId, secs: u64) -> bool {
        eventually_async(secs, || async { self.server.sessions.viewer(id).await.is_none() }).await
    }

    /// The admin token (with access control disabled too, the admin API needs it).
    pub fn admin_token(&self) -> String {
        use glasscast::auth::AdminTokenSource;
        match &self.server.admin_token {
            AdminTokenSource::Generated(path) | AdminTokenSource::File(path) => {
                std::fs::read_to_string(path).expect("admin token file").trim().to_owned()
            }
            AdminTokenSource::Config => admin::ADMIN.to_owned(),
        }
    }

    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

/// The session id in a connected viewer's Location.
/// The server's `/metrics` text.
pub async fn metrics_text(srv: &TestServer) -> String {
    let url = format!("http://{}/metrics", srv.server.metrics_addr.expect("metrics"));
    reqwest::get(url).await.expect("scrape").text().await.expect("text")
}

pub fn session_of(v: &WebrtcbinViewer) -> glasscast::ids::SessionId {
    let loc = v.location.as_deref().expect("connected");
    glasscast::ids::SessionId::parse(loc.rsplit('/').next().expect("id")).expect("session id in Location")
}

/// Polls `f` every 20 ms for up to `secs` seconds.
pub async fn eventually<F: FnMut() -> bool>(secs: u64, mut f: F) -> bool {
    for _ in 0..(secs * 50) {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f()
}

/// [`eventually`] for a check that awaits (asks the server, say): polls `f` every 100 ms for `secs` seconds.
pub async fn eventually_async<F, Fut>(secs: u64, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    eventually_some(secs, || {
        let check = f();
        async move { check.await.then_some(()) }
    })
    .await
    .is_some()
}

/// Polls `f` every 100 ms for up to `secs` seconds until it gives a value (the thing waited for: a
/// response, a reading).
pub async fn eventually_some<T, F, Fut>(secs: u64, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..(secs * 10) {
        if let Some(v) = f().await {
            return Some(v);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    f().await
}

/// Decodes-and-counts every pad `src` adds (a webrtcsrc-style element in `pipeline`): each goes through a
/// converter into a fakesink, with [`count_decoded`] on the converter's input.
pub fn count_decoded_pads(
    pipeline: &gst::Pipeline,
    src: &gst::Element,
    frames: &Arc<AtomicU64>,
    audio: &Arc<AtomicU64>,
    size: &Arc<Mutex<Option<(i32, i32)>>>,
) {
    let weak = pipeline.downgrade();
    let (f, a, sz) = (frames.clone(), audio.clone(), size.clone());
    src.connect_pad_added(move |_, pad| {
        let Some(pipeline) = weak.upgrade() else { return };
        let is_video = pad.name().starts_with("video");
        let convert =
            gst::ElementFactory::make(if is_video { "videoconvert" } else { "audioconvert" }).build().expect("convert");
        let sink = gst::ElementFactory::make("fakesink").property("sync", false).build().expect("fakesink");
        pipeline.add_many([&convert, &sink]).expect("add");
        convert.link(&sink).expect("link");
        convert.sync_state_with_parent().expect("sync");
        sink.sync_state_with_parent().expect("sync");
        pad.link(&convert.static_pad("sink").expect("sink")).expect("link pad");
        count_decoded(&convert.static_pad("sink").expect("sink"), is_video, &f, &a, &sz);
    });
}

/// Waits up to 5 s for `webrtcbin` to finish ICE gathering (an offer made after it carries every
/// candidate; one made before, the host candidates so far).
pub async fn ice_gathered(webrtcbin: &gst::Element) {
    let done = || {
        webrtcbin.property::<gst_webrtc::WebRTCICEGatheringState>("ice-gathering-state")
            == gst_webrtc::WebRTCICEGatheringState::Complete
    };
    eventually(5, done).await;
}

/// Counts decoded buffers passing `pad` (video frames with their size, or audio buffers).
pub fn count_decoded(
    pad: &gst::Pad,
    is_video: bool,
    frames: &Arc<AtomicU64>,
    audio: &Arc<AtomicU64>,
    size: &Arc<Mutex<Option<(i32, i32)>>>,
) {
    let (f, a, sz) = (frames.clone(), audio.clone(), size.clone());
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, _| {
        if is_video {
            f.fetch_add(1, Ordering::Relaxed);
            if let Some(s) = pad.current_caps().and_then(|c| c.structure(0).map(|s| s.to_owned()))
                && let (Ok(w), Ok(h)) = (s.get::<i32>("width"), s.get::<i32>("height"))
            {
                *sz.lock().expect("lock") = Some((w, h));
            }
        } else {
            a.fetch_add(1, Ordering::Relaxed);
        }
        gst::PadProbeReturn::Ok
    });
}

/// The playout-delay RTP header extension's URI.
pub const PLAYOUT_DELAY: &str = "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay";

/// `offer` with the playout-delay extension offered (id 7) in its video section, as browsers offer it.
pub fn with_playout_delay(offer: &str) -> String {
    let video_at = offer.find("m=video").expect("video section");
    let line_end = video_at + offer[video_at..].find("\r\n").expect("eol") + 2;
    format!("{}a=extmap:7 {PLAYOUT_DELAY}\r\n{}", &offer[..line_end], &offer[line_end..])
}

/// Records the one-byte header extensions (id -> data) of RTP packets passing `pad`.
pub fn record_rtp_extensions(pad: &gst::Pad, seen: &Arc<Mutex<std::collections::BTreeMap<u8, Vec<u8>>>>) {
    let seen = seen.clone();
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let Some(buffer) = info.buffer()
            && let Ok(rtp) = gstreamer_rtp::RTPBuffer::from_buffer_readable(buffer)
        {
            for id in 1..=14u8 {
                if let Some(data) = rtp.extension_onebyte_header(id, 0) {
                    seen.lock().expect("lock").insert(id, data.to_vec());
                }
            }
        }
        gst::PadProbeReturn::Ok
    });
}

/// Reads the latency-probe code (src/media/source/probe.rs) of each decoded I420 frame passing `pad`.
pub fn read_probe_codes(pad: &gst::Pad, codes: &Arc<Mutex<Vec<Option<u64>>>>) {
    let codes = codes.clone();
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let info_caps = pad.current_caps().and_then(|c| gstreamer_video::VideoInfo::from_caps(&c).ok());
        if let (Some(vinfo), Some(buffer)) = (info_caps, info.buffer())
            && vinfo.format() == gstreamer_video::VideoFormat::I420
            && let Ok(frame) = gstreamer_video::VideoFrameRef::from_buffer_ref_readable(buffer, &vinfo)
        {
            codes.lock().expect("lock").push(glasscast::media::source::probe::read(&frame));
        }
        gst::PadProbeReturn::Ok
    });
}

/// Emits webrtcbin's `action` (with `desc`, if any) and waits up to 10 s for its promise's reply.
pub(crate) async fn promise(
    webrtcbin: &gst::Element,
    action: &str,
    desc: Option<&gst_webrtc::WebRTCSessionDescription>,
) -> Option<gst::Structure> {
    let (tx, rx) = oneshot::channel();
    let p = gst::Promise::with_change_func(move |r| {
        let _ = tx.send(r.ok().flatten().map(ToOwned::to_owned));
    });
    match desc {
        Some(d) => webrtcbin.emit_by_name::<()>(action, &[d, &p]),
        None => webrtcbin.emit_by_name::<()>(action, &[&None::<gst::Structure>, &p]),
    }
    tokio::time::timeout(Duration::from_secs(10), rx).await.expect("promise timed out").expect("promise")
}

/// The mux's address as an SDP answer's first IPv4 UDP host candidate gives it (every viewer shares the
/// port; the mux listens on the machine's addresses, not on loopback).
pub fn mux_addr(answer: &str) -> std::net::SocketAddr {
    answer
        .lines()
        .filter_map(|l| l.strip_prefix("a=candidate:"))
        .filter(|c| c.to_ascii_lowercase().contains(" udp "))
        .find_map(|c| {
            let f: Vec<&str> = c.split_whitespace().collect();
            let ip: std::net::Ipv4Addr = f.get(4)?.parse().ok()?;
            Some(std::net::SocketAddr::new(ip.into(), f.get(5)?.parse().ok()?))
        })
        .expect("an IPv4 UDP candidate in the answer")
}

/// `a=NAME:value` of an SDP (the first one's value).
pub fn sdp_attr<'a>(sdp: &'a str, name: &str) -> &'a str {
    sdp.lines().find_map(|l| l.strip_prefix(&format!("a={name}:"))).expect("the attribute is there").trim()
}

/// The first element in `bin` (recursively) made by `factory`.
pub fn find_by_factory(bin: &gst::Bin, factory: &str) -> Option<gst::Element> {
    bin.iterate_recurse().into_iter().flatten().find(|e| e.factory().is_some_and(|f| f.name() == factory))
}

/// While `enabled`, drops every `every`th H.264 packet (payload type 96) as it enters the client's RTP
/// session (`rtpbin` of a viewer's webrtcbin, after the answer set up its transport): loss the client's RTCP
/// reports and NACKs see. Returns the count dropped.
pub fn drop_video_packets(
    rtpbin: &gst::Element,
    every: u64,
    enabled: Arc<std::sync::atomic::AtomicBool>,
) -> Arc<AtomicU64> {
    let seen = AtomicU64::new(0);
    let dropped = Arc::new(AtomicU64::new(0));
    let d = dropped.clone();
    let sink = rtpbin.static_pad("recv_rtp_sink_0").expect("rtpbin receive pad");
    sink.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        let is_video = info
            .buffer()
            .and_then(|b| gstreamer_rtp::RTPBuffer::from_buffer_readable(b).ok().map(|rtp| rtp.payload_type() == 96))
            .unwrap_or(false);
        if is_video && enabled.load(Ordering::Relaxed) && seen.fetch_add(1, Ordering::Relaxed) % every == every - 1 {
            d.fetch_add(1, Ordering::Relaxed);
            // Consume it here (Drop on this proxy pad makes GStreamer 1.22 unref a NULL buffer).
            drop(info.take_buffer());
            return gst::PadProbeReturn::Handled;
        }
        gst::PadProbeReturn::Ok
    });
    dropped
}

/// What a check script (node or python, its report the last line it prints, as JSON) said: the report,
/// whether it exited 0, and its stderr. Panics with what it printed when that line is no JSON.
pub async fn script_report(cmd: &mut tokio::process::Command) -> (serde_json::Value, bool, String) {
    let out = cmd.output().await.expect("the check script runs (make test installs node and python)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("no JSON report ({e}): {stdout}\n{stderr}"));
    (report, out.status.success(), stderr)
}

/// Opens `path` (a `/watch/...` page) of `srv` in headless Chromium (`tests/browser/plays.mjs`) and returns
/// what it saw: frames at the size, the picture's luma range, the loudest audio frequency. Panics when it did
/// not play at `width`x`height`.
pub async fn chromium_plays(srv: &TestServer, path: &str, width: u32, height: u32) -> serde_json::Value {
    chromium_plays_url(None, &format!("{}{path}", srv.base), width, height).await
}

/// [`chromium_plays`] for any URL, with the browser in network namespace `netns` when given.
pub async fn chromium_plays_url(netns: Option<&str>, url: &str, width: u32, height: u32) -> serde_json::Value {
    chromium_plays_with(netns, url, width, height, &[]).await
}

/// [`chromium_plays_url`] with environment for tests/browser/plays.mjs (`VIDEO_CODEC`).
pub async fn chromium_plays_with(
    netns: Option<&str>,
    url: &str,
    width: u32,
    height: u32,
    env: &[(&str, &str)],
) -> serde_json::Value {
    // One Chromium at a time per test process: under `cargo test` a binary's tests run side by side, and
    // several browsers starting at once on two cores load the machine enough that a player once missed its
    // 20 s in tests/media/feeds.rs. (Under nextest each test has its own process and at most two run at once.)
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _turn = ONE_AT_A_TIME.lock().await;
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = tokio::process::Command::new("ip");
            c.args(["netns", "exec", ns, "node"]);
            c
        }
        None => tokio::process::Command::new("node"),
    };
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["tests/browser/plays.mjs", url, &width.to_string(), &height.to_string()])
        .envs(env.iter().copied());
    let (result, exited_0, _) = script_report(&mut cmd).await;
    eprintln!("chromium: {result}");
    assert!(exited_0 && result["ok"] == true, "Chromium did not play {url}: {result}");
    result
}

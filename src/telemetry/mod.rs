//! Prometheus metrics: the recorder, every metric's name and meaning, and the functions that record them.
//! Events are recorded where they happen (the session manager, the HTTP layer, the encoder's pads); what is
//! a state (stream health, viewers' RTCP reports) is sampled at each scrape (`session::scrape`). A leaf: it
//! imports no session or media (the layer rules, src/layers.rs).
//!
//! Conventions: a `glasscast_` prefix, base units (seconds, bytes, bits per second), `_total` counters, and
//! only bounded label values (stream names from the configuration, route templates, fixed reason lists;
//! never a session id, a token or an address). Process metrics (`process_*`) come from `metrics-process`.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::ids::Role;

/// Histogram buckets for every `_seconds` histogram: 1 ms to 10 s.
const SECONDS_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Buckets for viewers' send-side bandwidth estimates: 100 kbit/s to 50 Mbit/s.
const ESTIMATE_BUCKETS: &[f64] = &[1e5, 2.5e5, 5e5, 7.5e5, 1e6, 1.5e6, 2e6, 3e6, 5e6, 1e7, 2e7, 5e7];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Viewers' send-side bandwidth estimates, one observation per viewer per scrape.
pub const ESTIMATE_METRIC: &str = "glasscast_viewer_estimate_bits_per_second";

/// What the admin console's on-call conditions count (src/session/oncall.rs), beside the Prometheus counters
/// docs/alerts.yml reads: WHEP/WHIP requests that change state (POST, PATCH, DELETE) and those answered
/// 5xx; sessions started, and those ended by `ice-failed`, `dtls-failed` or `timeout`.
#[derive(Debug)]
pub struct Signalling {
    pub requests: AtomicU64,
    pub server_errors: AtomicU64,
    pub sessions: AtomicU64,
    pub never_connected: AtomicU64,
}

pub static SIGNALLING: Signalling = Signalling {
    requests: AtomicU64::new(0),
    server_errors: AtomicU64::new(0),
    sessions: AtomicU64::new(0),
    never_connected: AtomicU64::new(0),
};

/// Installs the process-wide recorder once (later calls return the same handle). Until it is installed,
/// recording is a no-op.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
            .expect("the bucket list is not empty")
            .set_buckets_for_metric(Matcher::Full(ESTIMATE_METRIC.into()), ESTIMATE_BUCKETS)
            .expect("the bucket list is not empty")
            .install_recorder()
            .expect("glasscast installs the only metrics recorder of its process");
        describe();
        gauge!("glasscast_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
        handle
    })
}

/// Why a session ended (the `reason` label of `glasscast_sessions_ended_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The client sent DELETE or closed the connection.
    Closed,
    IceFailed,
    DtlsFailed,
    /// Never connected within `webrtc.connect_timeout_s`.
    Timeout,
    /// Its token expired, was revoked, or its signing key was retired.
    Revoked,
    /// An admin ended it (`glasscast kick`).
    Kicked,
    /// Its stream was stopped, or the server shut down.
    Stopped,
    Error,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::IceFailed => "ice-failed",
            Self::DtlsFailed => "dtls-failed",
            Self::Timeout => "timeout",
            Self::Revoked => "revoked",
            Self::Kicked => "kicked",
            Self::Stopped => "stopped",
            Self::Error => "error",
        }
    }
}

/// A session was answered: `glasscast_sessions_started_total` for a viewer,
/// `glasscast_publishers_started_total` for a WHIP publisher.
pub fn session_started(role: Role, stream: &str) {
    let name = match role {
        Role::Viewer => "glasscast_sessions_started_total",
        Role::Publisher => "glasscast_publishers_started_total",
    };
    counter!(name, "stream" => stream.to_owned()).increment(1);
    SIGNALLING.sessions.fetch_add(1, Ordering::Relaxed);
}

/// A session ended, by why (`glasscast_sessions_ended_total` or `glasscast_publishers_ended_total`).
pub fn session_ended(role: Role, stream: &str, reason: EndReason) {
    let name = match role {
        Role::Viewer => "glasscast_sessions_ended_total",
        Role::Publisher => "glasscast_publishers_ended_total",
    };
    counter!(name, "stream" => stream.to_owned(), "reason" => reason.as_str()).increment(1);
    if matches!(reason, EndReason::IceFailed | EndReason::DtlsFailed | EndReason::Timeout) {
        SIGNALLING.never_connected.fetch_add(1, Ordering::Relaxed);
    }
}

/// From the viewer's POST to its connection completing (ICE + DTLS).
pub fn session_setup(stream: &str, took: Duration) {
    histogram!("glasscast_session_setup_seconds", "stream" => stream.to_owned()).record(took.as_secs_f64());
}

/// One raw frame's time in the encoder (its input to its output).
pub fn encode_latency(stream: &str, took: Duration) {
    histogram!("glasscast_encode_latency_seconds", "stream" => stream.to_owned()).record(took.as_secs_f64());
}

/// `route`: the matched route template (`/whep/{stream}`), or `unmatched`.
pub fn http_request(route: &str, method: &str, status: u16, took: Duration) {
    if matches!(method, "POST" | "PATCH" | "DELETE") && (route.starts_with("/whep/") || route.starts_with("/whip/")) {
        SIGNALLING.requests.fetch_add(1, Ordering::Relaxed);
        if status >= 500 {
            SIGNALLING.server_errors.fetch_add(1, Ordering::Relaxed);
        }
    }
    let method = match method {
        "GET" | "HEAD" | "POST" | "PATCH" | "DELETE" | "OPTIONS" | "PUT" => method.to_owned(),
        _ => "other".to_owned(),
    };
    let route = route.to_owned();
    histogram!("glasscast_http_request_duration_seconds", "route" => route.clone(), "method" => method.clone())
        .record(took.as_secs_f64());
    counter!("glasscast_http_requests_total", "route" => route, "method" => method, "status" => status.to_string())
        .increment(1);
}

/// `reason`: missing, wrong-scheme, malformed, invalid, expired, revoked, wrong-stream, not-admin,
/// rate-limited.
pub fn auth_failure(reason: &'static str) {
    counter!("glasscast_auth_failures_total", "reason" => reason).increment(1);
}

/// A connection closed at accept: over the `total` or `per-client` limit (`server.limits`).
pub fn connection_refused(limit: &'static str) {
    counter!("glasscast_http_connections_refused_total", "limit" => limit).increment(1);
}

/// HTTP(S) connections the listener holds now (admitted against `server.limits`, not yet closed).
pub fn connections_open(n: usize) {
    gauge!("glasscast_http_connections_open").set(n as f64);
}

/// A recording deleted, by `reason` (age, size, free-space: retention; api: the admin API).
pub fn recording_deleted(stream: &str, reason: &'static str) {
    counter!("glasscast_recording_files_deleted_total", "stream" => stream.to_owned(), "reason" => reason).increment(1);
}

fn describe() {
    describe_counter!("glasscast_publishers_started_total", "WHIP publishers answered, by stream");
    describe_counter!(
        "glasscast_publishers_ended_total",
        "WHIP publishers ended, by stream and reason (closed, ice-failed, dtls-failed, timeout, revoked, stopped, error)"
    );
    describe_counter!(
        "glasscast_http_connections_refused_total",
        "Connections closed at accept for being over server.limits, by limit (total, per-client)"
    );
    describe_gauge!(
        "glasscast_http_connections_open",
        "HTTP(S) connections open on the listener (the ones server.limits.max_connections counts)"
    );
    describe_gauge!(
        "glasscast_recording_state",
        "1 for the stream's recording state (recording; waiting: it should and cannot, see /readyz; stopped)"
    );
    describe_counter!("glasscast_recording_bytes_total", Unit::Bytes, "Bytes written to the stream's recordings");
    describe_counter!("glasscast_recording_files_total", "Recording files started");
    describe_counter!(
        "glasscast_recording_files_deleted_total",
        "Recording files deleted, by reason (age, size, free-space: retention; api: the admin API)"
    );
    describe_gauge!("glasscast_recording_dir_bytes", Unit::Bytes, "What the stream's recordings take on disk");
    describe_gauge!("glasscast_recording_free_bytes", Unit::Bytes, "Free space where the stream records");
    describe_gauge!("glasscast_build_info", "1, labelled with the running version");
    describe_gauge!("glasscast_host_cpus", "Cores the process may use");
    describe_gauge!("glasscast_host_memory_total_bytes", Unit::Bytes, "The host's memory (MemTotal)");
    describe_gauge!("glasscast_host_memory_available_bytes", Unit::Bytes, "The host's available memory (MemAvailable)");
    describe_gauge!("glasscast_state_dir_free_bytes", Unit::Bytes, "Free space on the filesystem of server.state_dir");
    describe_gauge!("glasscast_stream_state", "1 for the stream's current state (starting, playing, failed, stopped)");
    describe_gauge!("glasscast_stream_producing", "1 while the stream encodes frames (its readiness)");
    describe_gauge!("glasscast_stream_encoder_info", "1, labelled with the stream's encoder (or passthrough)");
    describe_counter!("glasscast_frames_captured_total", "Raw frames that reached the encoder's queue");
    describe_counter!("glasscast_frames_encoded_total", "Encoded video frames (passed-through ones for a feed)");
    describe_counter!("glasscast_frames_dropped_total", "Raw frames dropped because the encoder was busy");
    describe_counter!("glasscast_encoded_bytes_total", Unit::Bytes, "Encoded video bytes (rate() is the bitrate)");
    describe_histogram!("glasscast_encode_latency_seconds", Unit::Seconds, "Time a frame spends in the encoder");
    describe_gauge!("glasscast_encoder_bitrate_bits_per_second", "The encoder's target bitrate now");
    describe_counter!(
        "glasscast_keyframes_requested_total",
        "Keyframes asked for (joins, PLIs, FIRs, recording files, pushes)"
    );
    describe_counter!("glasscast_keyframes_sent_total", "Keyframe requests passed to the encoder (rate-limited)");
    describe_counter!(
        "glasscast_stream_restarts_total",
        "Restarts of a stream's capture or encode chain after it failed"
    );
    describe_gauge!("glasscast_stream_encoding_running", "1 while the stream's on-demand encoding (codec: vp8) runs");
    describe_gauge!("glasscast_stream_encoding_viewers", "Viewers of the stream's on-demand encoding (codec: vp8)");
    describe_gauge!("glasscast_send_lag_seconds", Unit::Seconds, "Forwarding transport: packet wait for the mux");
    describe_gauge!("glasscast_ladder_viewers", "Viewers on each rung of the stream's quality ladder (0: the top)");
    describe_gauge!("glasscast_ladder_rung_running", "1 while the ladder rung's encoder runs (the top: always)");
    describe_counter!("glasscast_ladder_switches_total", "Viewers switched onto the rung (direction: up, down)");
    describe_histogram!(ESTIMATE_METRIC, Unit::BitsPerSecond, "Viewers' send-side bandwidth estimates, per scrape");
    describe_gauge!("glasscast_sessions", "Current sessions by state (connecting, connected)");
    describe_gauge!(
        "glasscast_sessions_by_path",
        "Connected sessions by their media path: glasscast's candidate type (host, srflx, relay) and protocol"
    );
    describe_gauge!(
        "glasscast_push_connected",
        "1 while a push (WHIP or Janus) to `target` (scheme://host:port) is connected"
    );
    describe_counter!("glasscast_push_sent_bytes_total", Unit::Bytes, "RTP payload bytes pushed to `target`");
    describe_counter!("glasscast_push_attempts_total", "Connection attempts of a push (1 + retries)");
    describe_counter!("glasscast_sessions_started_total", "Sessions created (WHEP POST answered)");
    describe_counter!("glasscast_sessions_ended_total", "Sessions ended, by reason");
    describe_histogram!("glasscast_session_setup_seconds", Unit::Seconds, "From WHEP POST to ICE+DTLS connected");
    describe_gauge!("glasscast_viewer_rtt_seconds", Unit::Seconds, "Viewers' RTT from RTCP (stat: mean, max)");
    describe_gauge!("glasscast_viewer_fraction_lost", "Viewers' reported loss, 0-1 (stat: mean, max)");
    describe_gauge!("glasscast_viewer_jitter_seconds", Unit::Seconds, "Viewers' reported jitter (stat: mean, max)");
    describe_counter!("glasscast_viewer_nacks_total", "NACKs received from viewers");
    describe_counter!("glasscast_viewer_plis_total", "PLIs and FIRs received from viewers");
    describe_counter!("glasscast_viewer_sent_bytes_total", Unit::Bytes, "RTP bytes sent to viewers");
    describe_counter!("glasscast_mux_udp_datagrams_total", "datagrams sent on the forwarding transport's media port");
    describe_gauge!("glasscast_ice_tcp_connections", "ICE-TCP connections open on the forwarding transport's TCP port");
    describe_counter!(
        "glasscast_ice_tcp_closed_total",
        "ICE-TCP connections the server closed or refused, by reason (per_address, full, evicted, no_check, bad_frame, idle)"
    );
    describe_counter!(
        "glasscast_mux_udp_send_calls_total",
        "system calls those datagrams took (fewer with UDP GSO and sendmmsg: webrtc.udp_gso, webrtc.udp_mmsg)"
    );
    describe_counter!(
        "glasscast_publisher_received_bytes_total",
        Unit::Bytes,
        "RTP bytes received from WHIP publishers"
    );
    describe_counter!("glasscast_http_requests_total", "HTTP requests by route template, method and status");
    describe_histogram!("glasscast_http_request_duration_seconds", Unit::Seconds, "HTTP request latency");
    describe_counter!("glasscast_auth_failures_total", "Requests refused by access control, by reason");
}

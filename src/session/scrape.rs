//! What is sampled at each scrape: every stream's health and every session's transport stats, turned into
//! gauges and counters, then the recorder's text. It reads the sessions and the media's stats, so it lives
//! here in the session layer; `telemetry` (the recorder and the metrics' names) is a leaf below it.

use std::collections::BTreeMap;
use std::sync::Mutex;

use metrics::{counter, gauge, histogram};

use crate::ids::Role;
use crate::media::{StreamHealth, StreamState};
use crate::session::{SessionInfo, Sessions};

/// Samples the streams and sessions and renders every metric in the Prometheus text format.
pub async fn scrape(sessions: &Sessions, state_dir: &std::path::Path) -> String {
    let handle = crate::telemetry::install();
    let streams = sessions.stream_healths().await;
    let list = sessions.sessions().await;
    for (name, health) in &streams {
        observe_stream(name.as_str(), health);
    }
    observe_sessions(streams.iter().map(|(n, _)| n.as_str()), &list);
    if let Some(mux) = sessions.mux().await {
        counter!("glasscast_mux_udp_datagrams_total").absolute(mux.datagrams_sent);
        counter!("glasscast_mux_udp_send_calls_total").absolute(mux.send_calls);
        if let Some(tcp) = &mux.ice_tcp {
            gauge!("glasscast_ice_tcp_connections").set(tcp.open as f64);
            for (reason, n) in &tcp.closed {
                counter!("glasscast_ice_tcp_closed_total", "reason" => *reason).absolute(*n);
            }
        }
    }
    process_collector().collect();
    observe_host(state_dir.to_path_buf()).await;
    handle.run_upkeep();
    handle.render()
}

fn process_collector() -> &'static metrics_process::Collector {
    static COLLECTOR: std::sync::OnceLock<metrics_process::Collector> = std::sync::OnceLock::new();
    COLLECTOR.get_or_init(|| {
        let c = metrics_process::Collector::default();
        c.describe();
        c
    })
}

/// The host's cores, memory and the state directory's free space (what docs/alerts.yml divides by; the
/// process's own numbers come from `metrics-process` above).
async fn observe_host(state_dir: std::path::PathBuf) {
    use crate::host::{cpus, free_bytes, meminfo};
    let read = move || (meminfo(), free_bytes(&state_dir));
    let Ok(((total, available), free)) = tokio::task::spawn_blocking(read).await else { return };
    gauge!("glasscast_host_cpus").set(cpus() as f64);
    let set = |name: &'static str, v: Option<u64>| {
        if let Some(v) = v {
            gauge!(name).set(v as f64);
        }
    };
    set("glasscast_host_memory_total_bytes", total);
    set("glasscast_host_memory_available_bytes", available);
    set("glasscast_state_dir_free_bytes", free);
}

fn observe_stream(name: &str, h: &StreamHealth) {
    let current = match h.state {
        StreamState::Starting => "starting",
        StreamState::Playing => "playing",
        StreamState::Failed(_) => "failed",
        StreamState::Stopped => "stopped",
    };
    for state in ["starting", "playing", "failed", "stopped"] {
        gauge!("glasscast_stream_state", "stream" => name.to_owned(), "state" => state)
            .set(f64::from(u8::from(state == current)));
    }
    let s = || name.to_owned();
    gauge!("glasscast_stream_producing", "stream" => s()).set(f64::from(u8::from(h.producing())));
    gauge!("glasscast_stream_encoder_info", "stream" => s(), "encoder" => h.encoder).set(1.0);
    counter!("glasscast_frames_captured_total", "stream" => s()).absolute(h.raw_frames);
    counter!("glasscast_frames_encoded_total", "stream" => s()).absolute(h.frames);
    counter!("glasscast_frames_dropped_total", "stream" => s()).absolute(h.frames_dropped);
    counter!("glasscast_encoded_bytes_total", "stream" => s()).absolute(h.encoded_bytes);
    gauge!("glasscast_encoder_bitrate_bits_per_second", "stream" => s()).set(f64::from(h.bitrate_kbps) * 1000.0);
    counter!("glasscast_keyframes_requested_total", "stream" => s()).absolute(h.keyframes_requested);
    counter!("glasscast_keyframes_sent_total", "stream" => s()).absolute(h.keyframes_sent);
    counter!("glasscast_stream_restarts_total", "stream" => s()).absolute(h.restarts);
    if let Some(lag) = h.send_lag_ms {
        gauge!("glasscast_send_lag_seconds", "stream" => s()).set(lag / 1000.0);
    }
    for (i, r) in h.ladder.iter().enumerate() {
        let rung = || [("stream", name.to_owned()), ("rung", i.to_string())];
        gauge!("glasscast_ladder_viewers", &rung()).set(r.viewers as f64);
        gauge!("glasscast_ladder_rung_running", &rung()).set(f64::from(u8::from(r.running)));
        for (direction, n) in [("up", r.switches_up), ("down", r.switches_down)] {
            let labels = [("stream", name.to_owned()), ("rung", i.to_string()), ("direction", direction.to_owned())];
            counter!("glasscast_ladder_switches_total", &labels).absolute(n);
        }
    }
    if let Some(vp8) = h.vp8 {
        gauge!("glasscast_stream_encoding_running", "stream" => s(), "codec" => "vp8")
            .set(f64::from(u8::from(vp8.running)));
        gauge!("glasscast_stream_encoding_viewers", "stream" => s(), "codec" => "vp8").set(vp8.viewers as f64);
    }
    if let Some(r) = &h.recording {
        for state in ["recording", "waiting", "stopped"] {
            gauge!("glasscast_recording_state", "stream" => s(), "state" => state)
                .set(f64::from(u8::from(state == r.state)));
        }
        counter!("glasscast_recording_bytes_total", "stream" => s()).absolute(r.bytes_written);
        counter!("glasscast_recording_files_total", "stream" => s()).absolute(r.files);
        gauge!("glasscast_recording_dir_bytes", "stream" => s()).set(r.dir_bytes as f64);
        if let Some(free) = r.free_bytes {
            gauge!("glasscast_recording_free_bytes", "stream" => s()).set(free as f64);
        }
    }
    for p in &h.pushes {
        let labels = || [("stream", name.to_owned()), ("target", p.target.clone())];
        gauge!("glasscast_push_connected", &labels()).set(f64::from(u8::from(p.state == "connected")));
        counter!("glasscast_push_sent_bytes_total", &labels()).absolute(p.bytes_sent);
        counter!("glasscast_push_attempts_total", &labels()).absolute(p.attempts);
    }
}

/// Per stream: current viewer sessions, the mean and max of the viewers' RTT, loss and jitter (NaN without
/// viewers reporting), and totals of NACKs, PLIs and bytes sent (and bytes received from publishers) that
/// never go down (a session's last numbers stay counted after it ends).
fn observe_sessions<'a>(streams: impl Iterator<Item = &'a str>, list: &[SessionInfo]) {
    let totals = totals().lock().expect("totals lock").update(list);
    for stream in streams {
        let of_stream: Vec<&SessionInfo> =
            list.iter().filter(|s| s.stream == stream && s.role == Role::Viewer).collect();
        let connected = of_stream.iter().filter(|s| s.connected).count();
        let st = || stream.to_owned();
        gauge!("glasscast_sessions", "stream" => st(), "state" => "connected").set(connected as f64);
        gauge!("glasscast_sessions", "stream" => st(), "state" => "connecting")
            .set((of_stream.len() - connected) as f64);
        let reported: [(&'static str, Vec<f64>); 3] = [
            ("glasscast_viewer_rtt_seconds", of_stream.iter().filter_map(|s| s.transport.rtt_ms).map(ms).collect()),
            ("glasscast_viewer_fraction_lost", of_stream.iter().filter_map(|s| s.transport.fraction_lost).collect()),
            (
                "glasscast_viewer_jitter_seconds",
                of_stream.iter().filter_map(|s| s.transport.jitter_ms).map(ms).collect(),
            ),
        ];
        for (metric, v) in reported {
            let mean = if v.is_empty() { f64::NAN } else { v.iter().sum::<f64>() / v.len() as f64 };
            let max = v.iter().copied().fold(f64::NAN, f64::max);
            gauge!(metric, "stream" => st(), "stat" => "mean").set(mean);
            gauge!(metric, "stream" => st(), "stat" => "max").set(max);
        }
        observe_paths(stream, &of_stream);
        for kbps in of_stream.iter().filter_map(|s| s.transport.estimate_kbps) {
            histogram!(crate::telemetry::ESTIMATE_METRIC, "stream" => st()).record(f64::from(kbps) * 1000.0);
        }
        let t = totals.get(stream).copied().unwrap_or_default();
        counter!("glasscast_viewer_nacks_total", "stream" => st()).absolute(t.nacks);
        counter!("glasscast_viewer_plis_total", "stream" => st()).absolute(t.plis);
        counter!("glasscast_viewer_sent_bytes_total", "stream" => st()).absolute(t.bytes);
        counter!("glasscast_publisher_received_bytes_total", "stream" => st()).absolute(t.received);
    }
}

/// Connected sessions of `stream` by the path their media took (candidate type and protocol); every
/// combination seen so far is set, to 0 when none is left on it.
fn observe_paths(stream: &str, of_stream: &[&SessionInfo]) {
    static SEEN: Mutex<Vec<(String, String, String)>> = Mutex::new(Vec::new());
    let mut seen = SEEN.lock().expect("paths lock");
    let path = |s: &SessionInfo| {
        let t = &s.transport;
        (
            t.candidate_type.clone().unwrap_or_else(|| "unknown".into()),
            t.protocol.clone().unwrap_or_else(|| "unknown".into()),
        )
    };
    for s in of_stream.iter().filter(|s| s.connected) {
        let (kind, proto) = path(s);
        if !seen.iter().any(|(st, k, p)| st == stream && *k == kind && *p == proto) {
            seen.push((stream.to_owned(), kind, proto));
        }
    }
    for (st, kind, proto) in seen.iter().filter(|(st, ..)| st == stream) {
        let n = of_stream.iter().filter(|s| s.connected && path(s) == (kind.clone(), proto.clone())).count();
        gauge!("glasscast_sessions_by_path", "stream" => st.clone(), "candidate_type" => kind.clone(), "protocol" => proto.clone())
            .set(n as f64);
    }
}

fn ms(v: f64) -> f64 {
    v / 1000.0
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Sums {
    nacks: u64,
    plis: u64,
    /// Sent to viewers.
    bytes: u64,
    /// Received from publishers.
    received: u64,
}

impl Sums {
    fn of(s: &SessionInfo) -> Self {
        let t = &s.transport;
        Self { nacks: t.nacks, plis: t.plis, bytes: t.bytes_sent, received: t.bytes_received }
    }

    fn add(&mut self, o: Self) {
        self.nacks += o.nacks;
        self.plis += o.plis;
        self.bytes += o.bytes;
        self.received += o.received;
    }

    fn at_least(&mut self, o: Self) {
        self.nacks = self.nacks.max(o.nacks);
        self.plis = self.plis.max(o.plis);
        self.bytes = self.bytes.max(o.bytes);
        self.received = self.received.max(o.received);
    }
}

/// Per-stream totals over every session: the live ones' numbers at this scrape plus the final numbers of
/// those that ended (told by the session manager as each ends, so a session shorter than a scrape counts).
#[derive(Default)]
struct Totals {
    ended: BTreeMap<String, Sums>,
    /// What the last scrape said: a session between the table and its final numbers (its teardown reads
    /// them off the manager task) would make a total dip, and a Prometheus counter never goes down.
    shown: BTreeMap<String, Sums>,
}

impl Totals {
    fn ended(&mut self, stream: &str, last: Sums) {
        self.ended.entry(stream.to_owned()).or_default().add(last);
    }

    fn update(&mut self, list: &[SessionInfo]) -> BTreeMap<String, Sums> {
        let mut out = self.ended.clone();
        for s in list {
            out.entry(s.stream.clone()).or_default().add(Sums::of(s));
        }
        for (stream, sums) in &mut out {
            sums.at_least(self.shown.get(stream).copied().unwrap_or_default());
        }
        self.shown = out.clone();
        out
    }
}

/// A session (a viewer or a publisher) ended with these transport totals (its last stats, read as it was
/// torn down).
pub fn session_final(role: Role, stream: &str, stats: &crate::media::PeerStats) {
    tracing::debug!(role = role.as_str(), stream, bytes_received = stats.bytes_received, "final stats");
    let last = Sums { nacks: stats.nacks, plis: stats.plis, bytes: stats.bytes_sent, received: stats.bytes_received };
    totals().lock().expect("totals lock").ended(stream, last);
}

fn totals() -> &'static Mutex<Totals> {
    static TOTALS: std::sync::OnceLock<Mutex<Totals>> = std::sync::OnceLock::new();
    TOTALS.get_or_init(Mutex::default)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::TransportStats;

    fn sums(nacks: u64, plis: u64, bytes: u64) -> Sums {
        Sums { nacks, plis, bytes, received: 0 }
    }

    fn session(id: &str, nacks: u64) -> SessionInfo {
        SessionInfo {
            id: id.into(),
            stream: "main".into(),
            transport: TransportStats { nacks, plis: 1, bytes_sent: 100, ..TransportStats::default() },
            ..SessionInfo::default()
        }
    }

    #[test]
    fn totals_keep_what_ended_sessions_counted() {
        let mut t = Totals::default();
        let ended = |nacks| sums(nacks, 1, 100);
        assert_eq!(t.update(&[session("a", 3), session("b", 4)])["main"], sums(7, 2, 200));
        // b ended with 4 NACKs; a went on to 5.
        t.ended("main", ended(4));
        assert_eq!(t.update(&[session("a", 5)])["main"], sums(9, 2, 200));
        // a is out of the table, its final numbers (6 NACKs) not in yet: the totals do not dip.
        assert_eq!(t.update(&[])["main"], sums(9, 2, 200));
        t.ended("main", ended(6));
        assert_eq!(t.update(&[])["main"], sums(10, 2, 200));
        // d came and went between two scrapes: it counts all the same.
        t.ended("main", ended(2));
        assert_eq!(t.update(&[session("c", 1)])["main"], sums(13, 4, 400));
    }
}

//! The on-call conditions, for the admin console's host panel, judged on the host's numbers
//! ([`crate::host`]), readiness and the streams' health.
//!
//! The conditions are the ones docs/alerts.yml gives Prometheus (the operating plan's "signals to stop or
//! escalate": frames dropped under normal load, signalling failures, CPU, memory, files and disk running
//! out), evaluated here on what the process knows now. Prometheus applies each rule's `for:` duration;
//! the console shows what holds at this moment, and the rate-based ones over the last minute of looks.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::host::HostSample;
use crate::ids::StreamName;
use crate::media::{StreamHealth, StreamState};
use crate::session::{Readiness, Sessions};
use crate::telemetry::SIGNALLING;

/// The state directory's free space below which `disk-low` holds (also in docs/alerts.yml).
pub const DISK_LOW_BYTES: u64 = 512 << 20;
/// How far back the rate-based conditions look.
const WINDOW: Duration = Duration::from_secs(60);

/// One on-call condition (an alert of docs/alerts.yml, by the same name) and whether it holds now.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Condition {
    /// The alert's name in docs/alerts.yml.
    pub alert: &'static str,
    pub holds: bool,
    /// What was measured.
    pub detail: String,
    /// What to do.
    pub runbook: &'static str,
}

/// What the console's host panel shows of the server's state now.
pub struct OnCall {
    pub readiness: Readiness,
    /// Why the server is not ready, one line per cause (empty when it is).
    pub not_ready: Vec<String>,
    pub conditions: Vec<Condition>,
}

impl Sessions {
    /// Readiness and every on-call condition, judged with the host's numbers `host`.
    pub async fn on_call(&self, host: &HostSample) -> OnCall {
        let readiness = self.readiness().await;
        let healths = self.stream_healths().await;
        let not_ready = not_ready(&readiness);
        let conditions = conditions(host, &readiness, &healths);
        OnCall { readiness, not_ready, conditions }
    }
}

/// Why the server is not ready, one line per cause (empty when it is).
fn not_ready(r: &Readiness) -> Vec<String> {
    let mut out: Vec<String> = r
        .streams
        .iter()
        .filter(|s| !s.ready)
        .map(|s| format!("stream {}: {}", s.name, s.reason.as_deref().unwrap_or("not producing")))
        .collect();
    if let Some(m) = r.mux.as_ref().filter(|m| !m.alive) {
        out.push(format!("media threads: not alive (last loop {} ms ago)", m.last_loop_ms));
    }
    out
}

/// Counters the rate-based conditions compare over [`WINDOW`].
#[derive(Debug, Clone, Default)]
struct Counts {
    /// Per stream: raw frames captured, dropped.
    frames: HashMap<StreamName, (u64, u64)>,
    signalling: u64,
    signalling_5xx: u64,
    sessions: u64,
    never_connected: u64,
}

/// This look's counts against the oldest within the last minute (`None` on the first look).
fn windowed(now: Counts) -> Option<(Counts, Counts)> {
    static LOOKS: Mutex<VecDeque<(Instant, Counts)>> = Mutex::new(VecDeque::new());
    let mut looks = LOOKS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let at = Instant::now();
    while looks.len() > 1 && looks.get(1).is_some_and(|(t, _)| at.duration_since(*t) >= WINDOW) {
        looks.pop_front();
    }
    let base = looks.front().filter(|(t, _)| at.duration_since(*t) >= Duration::from_secs(2)).map(|l| l.1.clone());
    looks.push_back((at, now.clone()));
    base.map(|b| (b, now))
}

fn counts(healths: &[(StreamName, StreamHealth)]) -> Counts {
    let s = &SIGNALLING;
    Counts {
        frames: healths.iter().map(|(n, h)| (n.clone(), (h.raw_frames, h.frames_dropped))).collect(),
        signalling: s.requests.load(Ordering::Relaxed),
        signalling_5xx: s.server_errors.load(Ordering::Relaxed),
        sessions: s.sessions.load(Ordering::Relaxed),
        never_connected: s.never_connected.load(Ordering::Relaxed),
    }
}

/// Every condition of docs/alerts.yml that the process can see, and whether it holds.
fn conditions(h: &HostSample, r: &Readiness, healths: &[(StreamName, StreamHealth)]) -> Vec<Condition> {
    let window = windowed(counts(healths));
    let mut out = stream_conditions(r, healths, window.as_ref());
    out.extend(signalling_conditions(window.as_ref()));
    out.extend(host_conditions(h));
    out
}

fn cond(alert: &'static str, holds: bool, detail: String, runbook: &'static str) -> Condition {
    Condition { alert, holds, detail, runbook }
}

fn stream_conditions(
    r: &Readiness,
    healths: &[(StreamName, StreamHealth)],
    window: Option<&(Counts, Counts)>,
) -> Vec<Condition> {
    let stalled: Vec<String> = healths
        .iter()
        .filter(|(_, h)| !h.producing() && h.state != StreamState::Stopped)
        .map(|(n, _)| n.to_string())
        .collect();
    let dropping: Vec<String> = window.map_or_else(Vec::new, |(before, now)| {
        now.frames
            .iter()
            .filter_map(|(n, &(raw, dropped))| {
                let (raw0, dropped0) = before.frames.get(n).copied().unwrap_or((raw, dropped));
                let (raw, dropped) = (raw.saturating_sub(raw0), dropped.saturating_sub(dropped0));
                (raw > 0 && dropped * 100 > raw).then(|| format!("{n}: {dropped} of {raw} frames"))
            })
            .collect()
    });
    let waiting: Vec<String> = healths
        .iter()
        .filter_map(|(n, h)| h.recording.as_ref().filter(|r| r.state == "waiting").map(|r| (n, r)))
        .map(|(n, r)| format!("{n}: {}", r.reason.as_deref().unwrap_or("waiting")))
        .collect();
    let lag: Vec<String> = r
        .streams
        .iter()
        .filter_map(|s| s.send_lag_ms.filter(|ms| *ms > 10.0).map(|ms| format!("{}: {ms:.1} ms", s.name)))
        .collect();
    vec![
        cond(
            "GlasscastStreamNotProducing",
            !stalled.is_empty(),
            listed(&stalled, "every stream that runs produces frames"),
            RUNBOOK_NOT_PRODUCING,
        ),
        cond(
            "GlasscastFramesDropped",
            !dropping.is_empty(),
            match window {
                None => "measuring (looks over the last minute)".to_owned(),
                Some(_) => listed(&dropping, "under 1% of frames dropped in the last minute"),
            },
            RUNBOOK_FRAMES_DROPPED,
        ),
        cond(
            "GlasscastMuxBehind",
            !lag.is_empty(),
            listed(&lag, "packets wait under 10 ms for the media threads"),
            RUNBOOK_MUX_BEHIND,
        ),
        cond(
            "GlasscastRecordingWaiting",
            !waiting.is_empty(),
            listed(&waiting, "every recording writes (or none is asked for)"),
            RUNBOOK_RECORDING,
        ),
    ]
}

fn signalling_conditions(window: Option<&(Counts, Counts)>) -> Vec<Condition> {
    let Some((before, now)) = window else {
        let measuring = || "measuring (looks over the last minute)".to_owned();
        return vec![
            cond("GlasscastSignallingErrors", false, measuring(), RUNBOOK_SIGNALLING),
            cond("GlasscastSessionsFailToConnect", false, measuring(), RUNBOOK_FAIL_TO_CONNECT),
        ];
    };
    let requests = now.signalling - before.signalling;
    let errors = now.signalling_5xx - before.signalling_5xx;
    let sessions = now.sessions - before.sessions;
    let failed = now.never_connected - before.never_connected;
    vec![
        cond(
            "GlasscastSignallingErrors",
            requests > 0 && errors * 20 > requests,
            format!("{errors} of {requests} WHEP/WHIP requests answered 5xx in the last minute (alert: over 5%)"),
            RUNBOOK_SIGNALLING,
        ),
        cond(
            "GlasscastSessionsFailToConnect",
            sessions > 0 && failed * 4 > sessions,
            format!(
                "{failed} sessions ended without connecting, {sessions} started in the last minute (alert: over 25%)"
            ),
            RUNBOOK_FAIL_TO_CONNECT,
        ),
    ]
}

fn host_conditions(h: &HostSample) -> Vec<Condition> {
    let cpu = h.cpu_pct_of_core.map(|p| p / h.cpus as f64);
    let mem = h.memory_available_bytes.zip(h.memory_total_bytes).map(|(a, t)| a as f64 / t.max(1) as f64);
    let files = h.open_files.zip(h.max_files.filter(|m| *m > 0)).map(|(o, m)| o as f64 / m as f64);
    let pct = |v: Option<f64>| v.map_or("unknown".to_owned(), |v| format!("{:.0}%", v * 100.0));
    vec![
        cond(
            "GlasscastCpuExhausted",
            cpu.is_some_and(|c| c > 90.0),
            format!("{} of all cores (alert: over 90%)", cpu.map_or("unknown".to_owned(), |c| format!("{c:.0}%"))),
            RUNBOOK_CPU,
        ),
        cond(
            "GlasscastMemoryLow",
            mem.is_some_and(|m| m < 0.10),
            format!("{} of memory available (alert: under 10%)", pct(mem)),
            RUNBOOK_MEMORY,
        ),
        cond(
            "GlasscastFileDescriptorsNearLimit",
            files.is_some_and(|f| f > 0.80),
            format!("{} of the open-files limit (alert: over 80%)", pct(files)),
            RUNBOOK_FILES,
        ),
        cond(
            "GlasscastDiskLow",
            h.state_dir_free_bytes.is_some_and(|b| b < DISK_LOW_BYTES),
            h.state_dir_free_bytes
                .map_or("unknown".to_owned(), |b| format!("{} MiB free in state_dir (alert: under 512 MiB)", b >> 20)),
            RUNBOOK_DISK,
        ),
    ]
}

fn listed(items: &[String], fine: &str) -> String {
    if items.is_empty() { fine.to_owned() } else { items.join("; ") }
}

const RUNBOOK_NOT_PRODUCING: &str =
    "GET /readyz names the reason; journalctl -u glasscast shows the failing source or encoder (docs/operations.md).";
const RUNBOOK_RECORDING: &str = "Recording waits and says why in GET /readyz (streams[].recording.reason): free space on its dir, or the dir itself (docs/recording.md).";
const RUNBOOK_FRAMES_DROPPED: &str =
    "The encoder cannot keep up: lower the stream's fps or size, or give it a hardware encoder; check CPU.";
const RUNBOOK_MUX_BEHIND: &str =
    "The media threads are full: more cores (webrtc.mux_threads), fewer viewers per box, or cascade (docs/scaling.md).";
const RUNBOOK_SIGNALLING: &str =
    "5xx on WHEP/WHIP: 503 means overloaded (add capacity); others are bugs: the log ring and journal say which.";
const RUNBOOK_FAIL_TO_CONNECT: &str = "ICE or DTLS fails: check the media port is reachable (UDP and ICE-TCP), TURN, and webrtc.advertise (docs/networking.md).";
const RUNBOOK_CPU: &str =
    "All cores busy: move encoders to hardware, lower bitrates, or spread viewers over more boxes.";
const RUNBOOK_MEMORY: &str =
    "The host runs out of memory: check RSS per viewer (docs/performance.md) and other processes.";
const RUNBOOK_FILES: &str = "Raise LimitNOFILE in the unit (docs/operations.md) or lower server.limits.";
const RUNBOOK_DISK: &str =
    "Free space where server.state_dir lives: tokens and keys cannot be written when it is full.";

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> HostSample {
        HostSample {
            uptime_s: 100,
            cpus: 2,
            cpu_pct_of_core: Some(50.0),
            rss_bytes: Some(100 << 20),
            threads: Some(20),
            memory_total_bytes: Some(16 << 30),
            memory_available_bytes: Some(8 << 30),
            open_files: Some(50),
            max_files: Some(1024),
            state_dir_free_bytes: Some(10 << 30),
        }
    }

    fn holding(conds: &[Condition]) -> Vec<&'static str> {
        conds.iter().filter(|c| c.holds).map(|c| c.alert).collect()
    }

    #[test]
    fn host_conditions_hold_past_their_thresholds_only() {
        assert!(holding(&host_conditions(&host())).is_empty());
        let full = HostSample {
            cpu_pct_of_core: Some(190.0),
            memory_available_bytes: Some(1 << 30),
            open_files: Some(900),
            state_dir_free_bytes: Some(100 << 20),
            ..host()
        };
        let conds = host_conditions(&full);
        let want =
            ["GlasscastCpuExhausted", "GlasscastMemoryLow", "GlasscastFileDescriptorsNearLimit", "GlasscastDiskLow"];
        assert_eq!(holding(&conds), want);
        assert!(conds[0].detail.starts_with("95% of all cores"), "{:?}", conds[0]);
        // No limit (0) is not "near the limit"; unknown numbers hold nothing.
        let unknown = HostSample { max_files: Some(0), cpu_pct_of_core: None, state_dir_free_bytes: None, ..host() };
        assert!(holding(&host_conditions(&unknown)).is_empty());
    }

    #[test]
    fn signalling_conditions_compare_the_window_and_say_when_they_are_still_measuring() {
        let conds = signalling_conditions(None);
        assert!(holding(&conds).is_empty() && conds.iter().all(|c| c.detail.starts_with("measuring")));
        let before =
            Counts { signalling: 100, signalling_5xx: 1, sessions: 10, never_connected: 0, ..Counts::default() };
        let quiet =
            Counts { signalling: 200, signalling_5xx: 3, sessions: 20, never_connected: 2, ..Counts::default() };
        assert!(holding(&signalling_conditions(Some(&(before.clone(), quiet)))).is_empty(), "2% and 20%");
        let bad = Counts { signalling: 200, signalling_5xx: 11, sessions: 20, never_connected: 4, ..Counts::default() };
        let conds = signalling_conditions(Some(&(before, bad)));
        assert_eq!(holding(&conds), ["GlasscastSignallingErrors", "GlasscastSessionsFailToConnect"]);
        assert!(conds[0].detail.starts_with("10 of 100"), "{:?}", conds[0]);
    }
}

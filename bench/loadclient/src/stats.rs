//! Per-viewer records, the aggregate JSON, and CPU accounting.

use std::time::Duration;

use serde::Serialize;

use crate::viewer::{Report, Stage};

/// Distribution of one quantity over viewers.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Summary {
    pub min: f64,
    pub p50: f64,
    pub p95: f64,
    pub mean: f64,
    pub max: f64,
}

impl Summary {
    /// `None` for no values. Percentiles are nearest-rank.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Summary> {
        let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let rank = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        Some(Summary {
            min: round3(v[0]),
            p50: round3(rank(0.50)),
            p95: round3(rank(0.95)),
            mean: round3(v.iter().sum::<f64>() / v.len() as f64),
            max: round3(v[v.len() - 1]),
        })
    }
}

pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn ms(d: Option<Duration>) -> Option<f64> {
    d.map(|d| round3(d.as_secs_f64() * 1000.0))
}

/// What the HTTP side learned about a viewer.
#[derive(Debug, Clone, Default)]
pub struct HttpInfo {
    pub post_status: Option<u16>,
    pub post_ms: Option<f64>,
    /// Set when the POST (or applying its answer) failed.
    pub failure: Option<(Stage, String)>,
    /// PATCH (trickle) result: status, or the transport error.
    pub patch: Option<String>,
    /// DELETE result: status, or the transport error.
    pub delete: Option<String>,
    pub delete_ok: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Window {
    pub video_frames: u64,
    pub audio_frames: u64,
    pub video_keyframes: u64,
    pub video_gaps: u64,
    pub bytes: u64,
    pub video_fps: f64,
    pub audio_fps: f64,
    pub delivery_ratio: f64,
    pub mbit_s: f64,
    /// The longest time between two video frames arriving, ms.
    pub max_video_gap_ms: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Rtp {
    pub video_packets: u64,
    pub video_bytes: u64,
    pub audio_packets: u64,
    pub audio_bytes: u64,
    pub nacks_sent: u64,
    pub plis_sent: u64,
    pub firs_sent: u64,
    pub video_loss: Option<f32>,
}

/// One viewer in the output (`--per-viewer`).
#[derive(Debug, Clone, Serialize)]
pub struct ViewerRecord {
    pub viewer: usize,
    pub connected: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<Stage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub post_status: Option<u16>,
    pub post_ms: Option<f64>,
    pub ice_ms: Option<f64>,
    pub connect_ms: Option<f64>,
    pub first_frame_ms: Option<f64>,
    pub first_keyframe_ms: Option<f64>,
    pub first_audio_ms: Option<f64>,
    pub video_frames: u64,
    pub video_keyframes: u64,
    pub video_gaps: u64,
    pub audio_frames: u64,
    pub bytes: u64,
    pub udp_packets: u64,
    pub window: Option<Window>,
    pub rtp: Option<Rtp>,
    pub ice_disconnects: u32,
    pub stream_pauses: u32,
    pub send_errors: u64,
    pub patch: Option<String>,
    pub delete: Option<String>,
    /// Counted from RTP headers (`--full-every`), not decrypted and depacketized.
    pub light: bool,
}

impl ViewerRecord {
    pub fn build(idx: usize, http: &HttpInfo, report: Option<&Report>, window_s: f64, fps: f64) -> ViewerRecord {
        let mut rec = ViewerRecord {
            viewer: idx,
            connected: false,
            stage: None,
            error: None,
            post_status: http.post_status,
            post_ms: http.post_ms,
            ice_ms: None,
            connect_ms: None,
            first_frame_ms: None,
            first_keyframe_ms: None,
            first_audio_ms: None,
            video_frames: 0,
            video_keyframes: 0,
            video_gaps: 0,
            audio_frames: 0,
            bytes: 0,
            udp_packets: 0,
            window: None,
            rtp: None,
            ice_disconnects: 0,
            stream_pauses: 0,
            send_errors: 0,
            patch: http.patch.clone(),
            delete: http.delete.clone(),
            light: report.is_some_and(|r| r.light),
        };
        let failure = http.failure.clone().or_else(|| report.and_then(|r| r.failure.clone()));
        if let Some(r) = report {
            let c = &r.counters;
            rec.connected = r.timings.connected.is_some();
            rec.ice_ms = ms(r.timings.ice);
            rec.connect_ms = ms(r.timings.connected);
            rec.first_frame_ms = ms(r.timings.first_video);
            rec.first_keyframe_ms = ms(r.timings.first_keyframe);
            rec.first_audio_ms = ms(r.timings.first_audio);
            rec.video_frames = c.video_frames;
            rec.video_keyframes = c.video_keyframes;
            rec.video_gaps = c.video_gaps;
            rec.audio_frames = c.audio_frames;
            rec.bytes = c.udp_bytes;
            rec.udp_packets = c.udp_packets;
            rec.ice_disconnects = r.ice_disconnects;
            rec.stream_pauses = r.stream_pauses;
            rec.send_errors = r.send_errors;
            rec.rtp = Some(Rtp {
                video_packets: r.video_rtp.packets,
                video_bytes: r.video_rtp.bytes,
                audio_packets: r.audio_rtp.packets,
                audio_bytes: r.audio_rtp.bytes,
                nacks_sent: r.video_rtp.nacks + r.audio_rtp.nacks,
                plis_sent: r.video_rtp.plis,
                firs_sent: r.video_rtp.firs,
                video_loss: r.video_rtp.loss,
            });
            if let Some(w) = r.window.filter(|_| rec.connected && window_s > 0.0) {
                rec.window = Some(Window {
                    video_frames: w.video_frames,
                    audio_frames: w.audio_frames,
                    video_keyframes: w.video_keyframes,
                    video_gaps: w.video_gaps,
                    bytes: w.udp_bytes,
                    video_fps: round3(w.video_frames as f64 / window_s),
                    audio_fps: round3(w.audio_frames as f64 / window_s),
                    delivery_ratio: round3(w.video_frames as f64 / (fps * window_s)),
                    mbit_s: round3(w.udp_bytes as f64 * 8.0 / window_s / 1e6),
                    max_video_gap_ms: r.max_video_gap.map(|g| round3(g.as_secs_f64() * 1000.0)),
                });
            }
        }
        if let Some((stage, error)) = failure {
            rec.stage = Some(stage);
            rec.error = Some(error);
        }
        rec
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub viewer: usize,
    pub stage: Stage,
    pub error: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServerUsage {
    pub pid: u32,
    /// CPU over the window, percent of one core.
    pub cpu_pct: Option<f64>,
    pub rss_mb: Option<f64>,
    pub threads: Option<u64>,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Output {
    pub url: String,
    pub viewers: usize,
    /// Viewers whose ICE and DTLS came up.
    pub connected: usize,
    pub failed: Vec<Failure>,
    /// Actual length of the measurement window.
    pub duration_s: f64,
    /// When the window started, seconds after the first POST (all viewers had settled by then).
    pub window_start_s: f64,
    pub expect_fps: f64,
    /// Over connected viewers: video frames inside the window.
    pub video_frames_per_viewer: Option<Summary>,
    pub delivery_ratio: Option<Summary>,
    /// The same over the full viewers only (str0m decrypted and depacketized everything), and how many
    /// viewers counted light (`--full-every`).
    pub delivery_ratio_full: Option<Summary>,
    pub light_viewers: usize,
    /// Connected viewers whose delivery ratio is at least 0.99.
    pub viewers_at_99pct: usize,
    pub viewers_at_95pct: usize,
    /// Over connected viewers: the longest time between two video frames in the window, ms.
    pub max_video_gap_ms: Option<Summary>,
    pub audio_frames_per_viewer: Option<Summary>,
    pub audio_fps_per_viewer: Option<Summary>,
    pub video_gaps_total: u64,
    pub nacks_sent_total: u64,
    pub plis_sent_total: u64,
    /// UDP payload bytes received by all viewers over the whole run.
    pub bytes_total: u64,
    /// UDP datagrams received by all viewers over the whole run.
    pub packets_total: u64,
    /// Mean over connected viewers of what each received in the window.
    pub mbit_per_viewer: Option<f64>,
    pub post_ms: Option<Summary>,
    pub ice_ms: Option<Summary>,
    pub connect_ms: Option<Summary>,
    pub first_frame_ms: Option<Summary>,
    pub first_keyframe_ms: Option<Summary>,
    pub deletes_ok: usize,
    pub deletes_failed: usize,
    /// User + system CPU of this process over the whole run.
    pub client_cpu_s: f64,
    /// This process's CPU over the window, percent of one core.
    pub client_cpu_window_pct: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerUsage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_viewer: Option<Vec<ViewerRecord>>,
}

pub struct Aggregate<'a> {
    pub url: &'a str,
    pub viewers: usize,
    pub window_s: f64,
    pub window_start_s: f64,
    pub expect_fps: f64,
    pub client_cpu_s: f64,
    pub client_cpu_window_s: f64,
    pub server: Option<ServerUsage>,
    pub per_viewer: bool,
}

impl Aggregate<'_> {
    pub fn output(self, records: Vec<ViewerRecord>) -> Output {
        let connected: Vec<&ViewerRecord> = records.iter().filter(|r| r.connected).collect();
        let windows: Vec<&Window> = connected.iter().filter_map(|r| r.window.as_ref()).collect();
        let failed = records
            .iter()
            .filter_map(|r| {
                Some(Failure { viewer: r.viewer, stage: r.stage?, error: r.error.clone().unwrap_or_default() })
            })
            .collect();
        let ratio_at = |min: f64| windows.iter().filter(|w| w.delivery_ratio >= min).count();
        Output {
            url: self.url.to_owned(),
            viewers: self.viewers,
            connected: connected.len(),
            failed,
            duration_s: round3(self.window_s),
            window_start_s: round3(self.window_start_s),
            expect_fps: self.expect_fps,
            video_frames_per_viewer: Summary::of(windows.iter().map(|w| w.video_frames as f64)),
            delivery_ratio: Summary::of(windows.iter().map(|w| w.delivery_ratio)),
            delivery_ratio_full: Summary::of(
                connected.iter().filter(|r| !r.light).filter_map(|r| r.window.as_ref()).map(|w| w.delivery_ratio),
            ),
            light_viewers: connected.iter().filter(|r| r.light).count(),
            viewers_at_99pct: ratio_at(0.99),
            viewers_at_95pct: ratio_at(0.95),
            max_video_gap_ms: Summary::of(windows.iter().filter_map(|w| w.max_video_gap_ms)),
            audio_frames_per_viewer: Summary::of(windows.iter().map(|w| w.audio_frames as f64)),
            audio_fps_per_viewer: Summary::of(windows.iter().map(|w| w.audio_fps)),
            video_gaps_total: records.iter().map(|r| r.video_gaps).sum(),
            nacks_sent_total: records.iter().filter_map(|r| r.rtp.as_ref()).map(|r| r.nacks_sent).sum(),
            plis_sent_total: records.iter().filter_map(|r| r.rtp.as_ref()).map(|r| r.plis_sent).sum(),
            bytes_total: records.iter().map(|r| r.bytes).sum(),
            packets_total: records.iter().map(|r| r.udp_packets).sum(),
            mbit_per_viewer: Summary::of(windows.iter().map(|w| w.mbit_s)).map(|s| s.mean),
            post_ms: Summary::of(records.iter().filter(|r| r.post_status == Some(201)).filter_map(|r| r.post_ms)),
            ice_ms: Summary::of(records.iter().filter_map(|r| r.ice_ms)),
            connect_ms: Summary::of(records.iter().filter_map(|r| r.connect_ms)),
            first_frame_ms: Summary::of(records.iter().filter_map(|r| r.first_frame_ms)),
            first_keyframe_ms: Summary::of(records.iter().filter_map(|r| r.first_keyframe_ms)),
            deletes_ok: records.iter().filter(|r| r.delete.as_deref().is_some_and(is_2xx)).count(),
            deletes_failed: records.iter().filter(|r| r.delete.as_deref().is_some_and(|d| !is_2xx(d))).count(),
            client_cpu_s: round3(self.client_cpu_s),
            client_cpu_window_pct: if self.window_s > 0.001 {
                round3(self.client_cpu_window_s / self.window_s * 100.0)
            } else {
                0.0
            },
            server: self.server,
            per_viewer: self.per_viewer.then_some(records),
        }
    }
}

fn is_2xx(s: &str) -> bool {
    s.len() == 3 && s.starts_with('2')
}

impl Output {
    /// The one-line human summary for stderr.
    pub fn summary_line(&self) -> String {
        let f = |s: &Option<Summary>, pick: fn(&Summary) -> f64, scale: f64| {
            s.as_ref().map_or("-".to_owned(), |s| format!("{:.2}", pick(s) * scale))
        };
        let mut line = format!(
            "glasscast-loadclient: {}/{} connected, {} failed; delivery p50 {} min {} ({} at >=99%); \
             {} video fps, {} audio fps per viewer; first frame p50 {} ms p95 {} ms; {} Mbit/s per viewer; \
             client CPU {:.1} s ({:.0}% in window)",
            self.connected,
            self.viewers,
            self.failed.len(),
            f(&self.delivery_ratio, |s| s.p50, 1.0),
            f(&self.delivery_ratio, |s| s.min, 1.0),
            self.viewers_at_99pct,
            f(&self.video_frames_per_viewer, |s| s.mean, 1.0 / self.duration_s.max(1e-9)),
            f(&self.audio_fps_per_viewer, |s| s.mean, 1.0),
            f(&self.first_frame_ms, |s| s.p50, 1.0),
            f(&self.first_frame_ms, |s| s.p95, 1.0),
            self.mbit_per_viewer.map_or("-".to_owned(), |m| format!("{m:.2}")),
            self.client_cpu_s,
            self.client_cpu_window_pct,
        );
        if let Some(cpu) = self.server.as_ref().and_then(|s| s.cpu_pct) {
            line.push_str(&format!("; server CPU {cpu:.0}%"));
        }
        if let Some(first) = self.failed.first() {
            line.push_str(&format!("; first failure: viewer {} at {:?}: {}", first.viewer, first.stage, first.error));
        }
        line
    }
}

/// User + system CPU time of this process.
pub fn client_cpu() -> Duration {
    // SAFETY: getrusage only writes into the struct we hand it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec.max(0) as u64, (t.tv_usec.max(0) as u32) * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// A process's CPU time, RSS and thread count from /proc.
#[derive(Debug, Clone, Copy)]
pub struct ProcSample {
    pub cpu: Duration,
    pub rss_kb: Option<u64>,
    pub threads: Option<u64>,
}

pub fn proc_sample(pid: u32) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces), from field 3 (state) on.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime is field 14, stime 15, num_threads 20 (1-based, so index - 3 here).
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let threads = fields.get(17).and_then(|t| t.parse().ok());
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = if hz > 0 { hz as u64 } else { 100 };
    let cpu = Duration::from_secs_f64((utime + stime) as f64 / hz as f64);
    let rss_kb = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("VmRSS:")?.trim().strip_suffix("kB")?.trim().parse().ok()));
    Some(ProcSample { cpu, rss_kb, threads })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_percentiles() {
        let s = Summary::of((1..=100).map(f64::from)).unwrap();
        assert_eq!((s.min, s.p50, s.p95, s.max), (1.0, 50.0, 95.0, 100.0));
        assert_eq!(s.mean, 50.5);
        assert!(Summary::of(Vec::new()).is_none());
        let one = Summary::of([7.0]).unwrap();
        assert_eq!((one.min, one.p50, one.p95, one.max), (7.0, 7.0, 7.0, 7.0));
    }

    #[test]
    fn own_process_sample() {
        let s = proc_sample(std::process::id()).expect("/proc/self");
        assert!(s.threads.unwrap_or(0) >= 1);
        assert!(s.rss_kb.unwrap_or(0) > 0);
    }
}

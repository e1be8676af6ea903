//! The host this process runs on, as the admin console's host panel and the metrics read it: CPU,
//! memory, open files, uptime and free disk space (blocking reads of /proc and statvfs). Base layer:
//! it knows nothing of streams or sessions (`session::oncall` judges these numbers).

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// CPU, memory, files and uptime of the process and the host.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HostSample {
    pub uptime_s: u64,
    /// Cores the process may use.
    pub cpus: usize,
    /// The process's CPU use since the previous look (or since start), % of one core.
    pub cpu_pct_of_core: Option<f64>,
    pub rss_bytes: Option<u64>,
    pub threads: Option<u64>,
    pub memory_total_bytes: Option<u64>,
    pub memory_available_bytes: Option<u64>,
    pub open_files: Option<u64>,
    /// The open-files limit (0: none).
    pub max_files: Option<u64>,
    /// Free space where `server.state_dir` is (tokens, keys; recordings later).
    pub state_dir_free_bytes: Option<u64>,
}

/// Reads the process's and the host's numbers (blocking: /proc and statvfs).
pub fn sample(state_dir: &Path) -> HostSample {
    let m = metrics_process::collector::collect();
    let uptime_s = m.start_time_seconds.map_or(0, |t| now_s().saturating_sub(t));
    let (memory_total_bytes, memory_available_bytes) = meminfo();
    HostSample {
        uptime_s,
        cpus: cpus(),
        cpu_pct_of_core: m.cpu_seconds_total.map(|cpu| cpu_pct(cpu, uptime_s)),
        rss_bytes: m.resident_memory_bytes,
        threads: m.threads,
        memory_total_bytes,
        memory_available_bytes,
        open_files: m.open_fds,
        max_files: m.max_fds,
        state_dir_free_bytes: free_bytes(state_dir),
    }
}

/// The process's CPU use since the previous look at least half a second ago (or since start).
fn cpu_pct(cpu_s: f64, uptime_s: u64) -> f64 {
    static LAST: Mutex<Option<(Instant, f64, f64)>> = Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let now = Instant::now();
    let pct = match *last {
        Some((at, _, pct)) if now.duration_since(at) < Duration::from_millis(500) => return pct,
        Some((at, before, _)) => (cpu_s - before) / now.duration_since(at).as_secs_f64() * 100.0,
        None => cpu_s / uptime_s.max(1) as f64 * 100.0,
    };
    *last = Some((now, cpu_s, pct));
    pct
}

/// Cores the process may use.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `MemTotal` and `MemAvailable` from /proc/meminfo, in bytes.
pub fn meminfo() -> (Option<u64>, Option<u64>) {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches(" kB").parse::<u64>().ok())
            .map(|kib| kib * 1024)
    };
    (field("MemTotal"), field("MemAvailable"))
}

/// Unix time in seconds (the host's clock; `auth` and the session manager use it too).
pub fn now_s() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Free space (for an unprivileged user) on the filesystem holding `dir`.
// The field types are u64 on 64-bit Linux but narrower elsewhere.
#[allow(clippy::useless_conversion)]
pub fn free_bytes(dir: &Path) -> Option<u64> {
    let s = nix::sys::statvfs::statvfs(dir).ok()?;
    Some(u64::from(s.blocks_available()) * u64::from(s.fragment_size()))
}

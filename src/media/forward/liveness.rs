//! The mux thread's health as the rest of glasscast sees it: how late its packets leave (`SendLag`, which
//! admission control reads), when its loop last ran (`Heartbeat`, which readiness reads), and what happens
//! if it panics despite every guard (`run_guarded`: the process exits for its supervisor to restart it).
//!
//! Why exit rather than restart the thread: every viewer's DTLS and SRTP state lives in it, so a new thread
//! could keep no session; a process restart by systemd (`Restart=on-failure`) or the container runtime
//! (`restart: unless-stopped`) gives the same result with nothing half-alive, and the players reconnect by
//! themselves.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The exit status after a mux panic (EX_SOFTWARE): not 2 (a configuration error, which the units do not
/// restart), so systemd restarts glasscast.
pub const EXIT_MUX_PANIC: i32 = 70;

/// A heartbeat older than this means the mux loop is stuck: the server is not ready.
pub const STUCK_AFTER: Duration = Duration::from_secs(5);

/// The longest the loop sleeps with nothing to do, so an idle mux still beats.
pub const MAX_IDLE: Duration = Duration::from_secs(1);

/// Packet send lag (ms, smoothed over ~100 packets; NaN bits: none yet). The first 100 samples are
/// averaged (each weighs 1/n) rather than taken as the starting value: one packet that waited at start-up
/// (the pipeline's first burst, a busy machine) would otherwise hold the smoothed lag over admission
/// control's limit for seconds.
pub(crate) struct SendLag {
    smoothed: AtomicU64,
    samples: AtomicU64,
}

impl Default for SendLag {
    fn default() -> Self {
        Self { smoothed: AtomicU64::new(f64::NAN.to_bits()), samples: AtomicU64::new(0) }
    }
}

impl SendLag {
    pub fn ms(&self) -> Option<f64> {
        Some(f64::from_bits(self.smoothed.load(Ordering::Relaxed))).filter(|v| !v.is_nan())
    }

    /// One packet's wait (the mux thread is the only writer).
    pub(super) fn add(&self, lag: Duration) {
        let ms = lag.as_secs_f64() * 1000.0;
        let n = self.samples.fetch_add(1, Ordering::Relaxed) + 1;
        let weight = (1.0 / n as f64).max(0.01);
        let smoothed = self.ms().map_or(ms, |old| old * (1.0 - weight) + ms * weight);
        self.smoothed.store(smoothed.to_bits(), Ordering::Relaxed);
    }
}

/// When the mux loop last went round.
pub(crate) struct Heartbeat {
    epoch: Instant,
    last_ms: AtomicU64,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Self { epoch: Instant::now(), last_ms: AtomicU64::new(0) }
    }
}

impl Heartbeat {
    pub(super) fn beat(&self) {
        self.last_ms.store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Since the last beat (since the start before the first).
    pub fn age(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.epoch.elapsed().saturating_sub(last)
    }
}

/// Runs the mux loop `f`. A panic that escapes it is a bug (every call into str0m with a stranger's input
/// is guarded): it is logged and the process exits with [`EXIT_MUX_PANIC`].
pub(super) fn run_guarded(f: impl FnOnce()) {
    if let Err(p) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        tracing::error!(
            panic = %panic_text(p),
            "the forwarding transport's media thread panicked: exiting (status 70) for the service manager to \
             restart glasscast; viewers reconnect by themselves"
        );
        std::process::exit(EXIT_MUX_PANIC);
    }
}

/// Test-only fault injection (`GLASSCAST_TEST_FAULT`): `mux-panic` makes the mux panic, `mux-stall` makes
/// it stop, when its first viewer is added.
pub(super) fn fault() -> Option<&'static str> {
    crate::media::test_fault()
}

/// What a caught panic said (its `&str` or `String` payload).
pub(super) fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_heartbeat_ages_until_it_beats() {
        let h = Heartbeat::default();
        std::thread::sleep(Duration::from_millis(20));
        assert!(h.age() >= Duration::from_millis(20));
        h.beat();
        assert!(h.age() < Duration::from_millis(20));
    }

    #[test]
    fn one_slow_packet_at_start_does_not_hold_the_lag_up_and_a_lasting_one_still_shows() {
        let lag = SendLag::default();
        assert_eq!(lag.ms(), None);
        lag.add(Duration::from_millis(150));
        assert_eq!(lag.ms(), Some(150.0));
        for _ in 0..100 {
            lag.add(Duration::from_millis(1));
        }
        let settled = lag.ms().expect("a lag");
        assert!(settled < 3.0, "the start-up outlier is averaged away: {settled}");
        for _ in 0..300 {
            lag.add(Duration::from_millis(20));
        }
        let loaded = lag.ms().expect("a lag");
        assert!(loaded > 10.0, "a saturated mux still shows: {loaded}");
    }
}

//! Congestion feedback for the shared encoder: viewers' RTCP receiver reports (fraction lost) lower the
//! stream's bitrate when many of them lose packets, and it climbs back when they stop, within
//! `[min_bitrate_kbps, bitrate_kbps]`.
//!
//! Every viewer gets the same encoding, so one viewer on a bad link must not lower everyone's picture: the
//! bitrate only drops when at least a quarter of the reporting viewers lose >= 5% (a shared bottleneck: the
//! uplink, the server's own NIC or CPU, one Wi-Fi cell). With a quality ladder (`[streams.ladder]`) a
//! viewer on a weak link moves down the ladder instead: the report leaves out viewers that are not on the
//! top rung or are switching away from it, and the bitrate only drops when more than half of the rest lose.
//! Steps: -15% at most every 2 s; +8% per 2 s once no viewer has lost >= 2% for 5 s. Fed by the forwarding
//! transport's mux every 2 s per stream.

use std::time::{Duration, Instant};

/// A viewer counts as lossy at this fraction lost (RTCP RR, since its previous report).
pub const LOSSY: f32 = 0.05;
/// Below this a viewer counts as clean.
pub const CLEAN: f32 = 0.02;
const DECREASE: f64 = 0.85;
const DECREASE_EVERY: Duration = Duration::from_secs(2);
const INCREASE: f64 = 1.08;
const INCREASE_EVERY: Duration = Duration::from_secs(2);
const CLEAN_FOR: Duration = Duration::from_secs(5);

/// One report period (2 s) of a stream's receiver reports, summarized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LossReport {
    /// Viewers that sent a receiver report for video in the period.
    pub reporting: usize,
    /// Of them, those that lost at least [`LOSSY`].
    pub lossy: usize,
    /// Of them, those that lost at least [`CLEAN`] (lossy included).
    pub not_clean: usize,
}

impl LossReport {
    /// Summarizes the viewers' fractions lost.
    pub fn of(losses: impl IntoIterator<Item = f32>) -> Self {
        let mut r = LossReport { reporting: 0, lossy: 0, not_clean: 0 };
        for l in losses {
            r.reporting += 1;
            r.lossy += usize::from(l >= LOSSY);
            r.not_clean += usize::from(l >= CLEAN);
        }
        r
    }

    /// Adds another group of viewers' report (another mux thread's) to this one.
    pub fn add(&mut self, other: &LossReport) {
        self.reporting += other.reporting;
        self.lossy += other.lossy;
        self.not_clean += other.not_clean;
    }
}

#[derive(Debug)]
pub struct RateControl {
    min_kbps: u32,
    max_kbps: u32,
    current_kbps: u32,
    last_change: Option<Instant>,
    clean_since: Option<Instant>,
    /// A stream with a quality ladder: the bitrate drops only when more than half the reporting viewers
    /// lose (its viewers on weak links move down the ladder instead, and are not in the report).
    majority: bool,
}

impl RateControl {
    pub fn new(min_kbps: u32, max_kbps: u32) -> Self {
        Self {
            min_kbps: min_kbps.min(max_kbps),
            max_kbps,
            current_kbps: max_kbps,
            last_change: None,
            clean_since: None,
            majority: false,
        }
    }

    /// For a stream with a quality ladder: only a majority of lossy viewers is a shared bottleneck.
    pub fn with_ladder(mut self) -> Self {
        self.majority = true;
        self
    }

    pub fn current_kbps(&self) -> u32 {
        self.current_kbps
    }

    fn may_change(&self, at: Instant, every: Duration) -> bool {
        self.last_change.is_none_or(|t| at.duration_since(t) >= every)
    }

    /// Takes a period's report; returns the new bitrate when it changes.
    pub fn on_report(&mut self, r: LossReport, at: Instant) -> Option<u32> {
        let congested =
            r.lossy > 0 && if self.majority { r.lossy * 2 > r.reporting } else { r.lossy * 4 >= r.reporting };
        if congested {
            self.clean_since = None;
            if self.current_kbps > self.min_kbps && self.may_change(at, DECREASE_EVERY) {
                let next = ((f64::from(self.current_kbps) * DECREASE) as u32).max(self.min_kbps);
                return self.set(next, at);
            }
            return None;
        }
        if r.not_clean > 0 {
            self.clean_since = None;
            return None;
        }
        let since = *self.clean_since.get_or_insert(at);
        if at.duration_since(since) >= CLEAN_FOR
            && self.current_kbps < self.max_kbps
            && self.may_change(at, INCREASE_EVERY)
        {
            let next = ((f64::from(self.current_kbps) * INCREASE).ceil() as u32).min(self.max_kbps);
            return self.set(next, at);
        }
        None
    }

    fn set(&mut self, kbps: u32, at: Instant) -> Option<u32> {
        self.last_change = Some(at);
        (kbps != self.current_kbps).then(|| {
            self.current_kbps = kbps;
            kbps
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(t0: Instant, s: u64) -> Instant {
        t0 + Duration::from_secs(s)
    }

    #[test]
    fn a_shared_bottleneck_lowers_the_bitrate_in_steps_down_to_the_floor() {
        let t0 = Instant::now();
        let mut rc = RateControl::new(1000, 2500);
        let lossy = LossReport::of([0.1, 0.08, 0.0, 0.0]);
        assert_eq!(rc.on_report(lossy, t0), Some(2125));
        assert_eq!(rc.on_report(lossy, secs(t0, 1)), None, "at most one step per 2 s");
        assert_eq!(rc.on_report(lossy, secs(t0, 2)), Some(1806));
        for s in 3..30 {
            rc.on_report(lossy, secs(t0, s));
        }
        assert_eq!(rc.current_kbps(), 1000, "never below the floor");
    }

    #[test]
    fn one_lossy_viewer_among_many_changes_nothing() {
        let t0 = Instant::now();
        let mut rc = RateControl::new(500, 2500);
        let one_bad = LossReport::of([0.3, 0.0, 0.0, 0.0, 0.0]);
        for s in 0..10 {
            assert_eq!(rc.on_report(one_bad, secs(t0, s)), None);
        }
        assert_eq!(rc.current_kbps(), 2500);
    }

    #[test]
    fn with_a_ladder_only_a_majority_of_lossy_viewers_lowers_the_bitrate() {
        let t0 = Instant::now();
        let mut rc = RateControl::new(500, 2500).with_ladder();
        assert_eq!(rc.on_report(LossReport::of([0.3, 0.2, 0.0, 0.0]), t0), None, "half is not a majority");
        assert_eq!(rc.on_report(LossReport::of([0.3, 0.2, 0.1, 0.0]), secs(t0, 2)), Some(2125));
    }

    #[test]
    fn it_climbs_back_after_five_clean_seconds_up_to_the_configured_rate() {
        let t0 = Instant::now();
        let mut rc = RateControl::new(500, 2500);
        rc.on_report(LossReport::of([0.2]), t0);
        assert_eq!(rc.current_kbps(), 2125);
        let clean = LossReport::of([0.0, 0.01]);
        for s in 1..6 {
            assert_eq!(rc.on_report(clean, secs(t0, s)), None, "not before 5 clean seconds");
        }
        assert_eq!(rc.on_report(clean, secs(t0, 6)), Some(2295));
        // A little loss (2-5%) holds it where it is.
        assert_eq!(rc.on_report(LossReport::of([0.03]), secs(t0, 7)), None);
        for s in 8..40 {
            rc.on_report(clean, secs(t0, s));
        }
        assert_eq!(rc.current_kbps(), 2500, "never above the configured bitrate");
    }
}

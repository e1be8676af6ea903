//! Per-viewer rung switching on a stream's quality ladder: which rung a viewer's own link carries
//! ([`Chooser`], fed by str0m's send-side estimate from transport-wide congestion control feedback and by
//! the viewer's receiver reports), and the splice that makes the rungs one continuous track for the
//! viewer ([`Splice`]: its own sequence numbers and timestamps across a switch).
//!
//! A viewer starts on the top rung (its first estimate is the top's need: a clean link shows its first
//! frame at full quality at once). It moves **down** to the highest rung the estimate carries with
//! [`FIT_MARGIN`] to spare: within [`DOWN_AFTER`] of its estimate falling below what its rung needs while
//! reports show loss ([`LOSS_CLEAN`] within [`LOSS_MEMORY`]), at once when one shows [`LOSS_DOWN`]; and
//! after [`DOWN_AFTER_LOSSLESS`] when the estimate stays below [`LOSSLESS_SHORT`] of it without loss (a
//! delay-based estimate alone is noisy: a busy viewer machine delays packets too). Loss alone moves
//! nobody (random loss is the same on every rung; str0m's loss-based estimator tells it from congestion),
//! and a viewer without an estimate (no transport-wide CC) is never moved. A keyframe request (PLI)
//! within [`FAILED_UP_WITHIN`] of an up-switch means the rung above broke the link: back down at once. It moves **up** one rung at a time, once
//! the estimate has carried the rung above with [`UP_MARGIN`] to spare for [`UP_HOLD`] with no lossy
//! report; while below the top it asks str0m to probe (padding) for that much, so a link that got better
//! is found. An up-switch that fails (a down-switch within [`FAILED_UP_WITHIN`]) doubles the hold, up to
//! [`MAX_UP_HOLD`], so a link at a rung's edge settles instead of oscillating; a rung held
//! [`SETTLED_AFTER`] resets it.
//!
//! The switch itself waits for a keyframe of the target rung (asked for when the switch is decided) and for
//! the end of the current rung's frame, so the viewer never gets half a frame.

use std::time::{Duration, Instant};

/// What audio and packet overhead take on the link besides a rung's video (kbit/s).
pub const AUDIO_KBPS: u32 = 64;
/// A rung fits when the estimate carries its bitrate times this (plus audio): a switch down goes to the
/// highest rung that fits.
pub const FIT_MARGIN: f64 = 1.15;
/// The estimate must carry the rung above times this (plus audio) to go up: the gap to [`FIT_MARGIN`]
/// and to the down threshold (the rung's bare bitrate) is the hysteresis.
pub const UP_MARGIN: f64 = 1.3;
/// How long the estimate must stay below the current rung's bitrate (plus audio) before moving down, with
/// loss reported recently, and without.
pub const DOWN_AFTER: Duration = Duration::from_millis(500);
pub const DOWN_AFTER_LOSSLESS: Duration = Duration::from_secs(4);
/// Without loss, the estimate must be below this share of what the rung needs to count as short: a
/// delay-based estimate alone dips on a clean link whose viewer machine is busy.
pub const LOSSLESS_SHORT: f64 = 0.5;
/// How long a lossy report counts as recent loss.
pub const LOSS_MEMORY: Duration = Duration::from_secs(4);
/// A receiver report with at least this fraction lost moves the viewer down a rung at once.
pub const LOSS_DOWN: f32 = 0.10;
/// A report with at least this lost holds an up-switch back.
pub const LOSS_CLEAN: f32 = 0.02;
/// How long the estimate must carry the rung above before moving up (at first; doubled by failures).
pub const UP_HOLD: Duration = Duration::from_secs(3);
pub const MAX_UP_HOLD: Duration = Duration::from_secs(12);
/// A down-switch this soon after an up-switch means the up-switch failed.
pub const FAILED_UP_WITHIN: Duration = Duration::from_secs(10);
/// How often a viewer below the top has str0m probe for the rung above (its estimator starting over).
pub const PROBE_EVERY: Duration = Duration::from_secs(4);
/// A rung held this long without a failure resets the up-hold.
pub const SETTLED_AFTER: Duration = Duration::from_secs(60);
/// The least time between two down-switches: two report periods (2 s each), so what moves a viewer again is
/// news from the lower rung, not from the rung it left (whose packets may still be in str0m's pacer queue).
pub const DOWN_EVERY: Duration = Duration::from_secs(4);

/// Which rung one viewer should be on. Rung 0 is the top; `kbps` holds every rung's bitrate, top first.
#[derive(Debug)]
pub struct Chooser {
    kbps: Vec<u32>,
    /// The rung the viewer is on, or is switching to.
    rung: usize,
    estimate_kbps: Option<u32>,
    below_since: Option<Instant>,
    above_since: Option<Instant>,
    last_up: Option<Instant>,
    last_down: Option<Instant>,
    /// Since when the viewer is on its rung.
    on_rung_since: Instant,
    up_hold: Duration,
    /// The last receiver report's fraction lost, and when it came.
    loss: Option<(f32, Instant)>,
    /// What the viewer's rung really sends (kbit/s, the last report period): a test pattern or a still
    /// screen sends far below the rung's bitrate, and an estimate that carries what is sent is enough.
    sent_kbps: Option<u32>,
    /// The estimate str0m should start over from (after a move down for heavy loss, whose estimate collapsed
    /// with the rung it left).
    restart_estimate: Option<u32>,
    /// When the estimator was last started over to probe ([`Chooser::maybe_probe`]).
    last_probe: Option<Instant>,
}

fn need(kbps: u32, margin: f64) -> f64 {
    f64::from(kbps) * margin + f64::from(AUDIO_KBPS)
}

impl Chooser {
    /// A chooser for a ladder of these bitrates (top first), starting on the top rung at `now`.
    pub fn new(kbps: Vec<u32>, now: Instant) -> Self {
        Self {
            kbps,
            rung: 0,
            estimate_kbps: None,
            below_since: None,
            above_since: None,
            last_up: None,
            last_down: None,
            on_rung_since: now,
            up_hold: UP_HOLD,
            loss: None,
            sent_kbps: None,
            restart_estimate: None,
            last_probe: None,
        }
    }

    #[cfg(test)]
    pub fn rung(&self) -> usize {
        self.rung
    }

    pub fn estimate_kbps(&self) -> Option<u32> {
        self.estimate_kbps
    }

    /// What the viewer's first estimate is (and str0m starts from): what the top rung needs to fit.
    pub fn initial_kbps(&self) -> u32 {
        self.fit_kbps(0)
    }

    /// What rung `r` needs to fit (kbit/s).
    fn fit_kbps(&self, r: usize) -> u32 {
        need(self.kbps[r], FIT_MARGIN) as u32
    }

    /// The estimate to restart str0m's from, once, after a move down for heavy loss.
    pub fn take_restart_estimate(&mut self) -> Option<u32> {
        self.restart_estimate.take()
    }

    /// What str0m should probe for: the rung above's up-threshold (the top's fit on the top rung).
    pub fn desired_kbps(&self) -> u32 {
        match self.rung {
            0 => need(self.kbps[0], UP_MARGIN),
            r => need(self.kbps[r - 1], UP_MARGIN),
        }
        .ceil() as u32
    }

    /// The highest rung whose need (with `margin`) `estimate` carries; the lowest when none.
    fn fitting(&self, estimate: f64, margin: f64) -> usize {
        self.kbps.iter().position(|k| need(*k, margin) <= estimate).unwrap_or(self.kbps.len() - 1)
    }

    /// A new send-side estimate; returns the rung to switch to, if the viewer should.
    pub fn on_estimate(&mut self, kbps: u32, now: Instant) -> Option<usize> {
        self.estimate_kbps = Some(kbps);
        self.decide(now)
    }

    /// What the viewer's video took over the last report period (kbit/s).
    pub fn on_sent(&mut self, kbps: u32) {
        self.sent_kbps = Some(kbps);
    }

    /// A keyframe request from the viewer: right after an up-switch it means the rung above broke the link
    /// (a policer that let str0m's short probes through); returns the rung to go back to.
    pub fn on_keyframe_request(&mut self, now: Instant) -> Option<usize> {
        self.just_went_up(now).then(|| self.go_back_down(now))
    }

    /// The last move was up, within [`FAILED_UP_WITHIN`].
    fn just_went_up(&self, now: Instant) -> bool {
        let up = self.last_up.filter(|u| now.duration_since(*u) < FAILED_UP_WITHIN);
        up.is_some_and(|u| self.last_down.is_none_or(|d| d < u)) && self.rung + 1 < self.kbps.len()
    }

    /// The up-switch failed: back to the rung below, str0m's estimate starting over from its need.
    fn go_back_down(&mut self, now: Instant) -> usize {
        let to = self.go_down(self.rung + 1, now);
        self.restart_estimate = Some(self.fit_kbps(to));
        to
    }

    /// A report's fraction lost (a receiver report's, or transport-wide feedback's); returns the rung to
    /// switch to, if any.
    pub fn on_loss(&mut self, loss: f32, now: Instant) -> Option<usize> {
        if self.loss.is_none_or(|(l, at)| loss >= l || now.duration_since(at) >= Duration::from_millis(500)) {
            self.loss = Some((loss, now));
        }
        // Any loss right after an up-switch: the rung above does not fit after all. Heavy loss with an
        // estimate short of the rung: at once. (Loss alone moves nobody: random loss, as on Wi-Fi, is the
        // same on every rung, and str0m's estimator tells it from congestion.)
        let failed_up = loss >= LOSS_CLEAN && self.just_went_up(now);
        let short = self.estimate_kbps.is_some_and(|e| f64::from(e) < self.rung_need());
        if failed_up || (loss >= LOSS_DOWN && short && self.rung + 1 < self.kbps.len() && self.may_go_down(now)) {
            // One rung: under heavy loss the estimate undershoots, so it starts over from the new rung's need.
            return Some(self.go_back_down(now));
        }
        self.decide(now)
    }

    /// What the viewer's rung needs: its bitrate (or what it really sends, when less) plus audio.
    fn rung_need(&self) -> f64 {
        let sent = self.sent_kbps.map_or(f64::INFINITY, |k| f64::from(k + AUDIO_KBPS));
        need(self.kbps[self.rung], 1.0).min(sent)
    }

    fn may_go_down(&self, now: Instant) -> bool {
        self.last_down.is_none_or(|t| now.duration_since(t) >= DOWN_EVERY)
    }

    fn decide(&mut self, now: Instant) -> Option<usize> {
        let estimate = f64::from(self.estimate_kbps?);
        if now.duration_since(self.on_rung_since) >= SETTLED_AFTER {
            self.up_hold = UP_HOLD;
        }
        // Down: the rung's bare bitrate is not carried for DOWN_AFTER (with recent loss) or
        // DOWN_AFTER_LOSSLESS.
        // Right after an up-switch, an estimate falling short of the new rung is its failure: back at once
        // (str0m's loss-based estimate falls within a few hundred ms, before the next report).
        if self.just_went_up(now) && estimate < need(self.kbps[self.rung], 1.0) {
            return Some(self.go_back_down(now));
        }
        let lossy = self.loss.is_some_and(|(l, at)| l >= LOSS_CLEAN && now.duration_since(at) < LOSS_MEMORY);
        // Without loss only an estimate far short (LOSSLESS_SHORT) counts, and only once it lasts.
        let short = if lossy { self.rung_need() } else { self.rung_need() * LOSSLESS_SHORT };
        if estimate < short && self.rung + 1 < self.kbps.len() {
            self.above_since = None;
            let since = *self.below_since.get_or_insert(now);
            let after = if lossy { DOWN_AFTER } else { DOWN_AFTER_LOSSLESS };
            if now.duration_since(since) >= after && self.may_go_down(now) {
                // (With loss the estimate undershoots: one rung at a time.)
                let fit = if lossy { self.rung + 1 } else { self.fitting(estimate, FIT_MARGIN) };
                return Some(self.go_down(fit.max(self.rung + 1), now));
            }
            return None;
        }
        self.below_since = None;
        // Up: the rung above's need with UP_MARGIN, for the hold, without a lossy report meanwhile.
        let lossy = self.loss.is_some_and(|(l, at)| l >= LOSS_CLEAN && now.duration_since(at) < self.up_hold);
        if self.rung == 0 || estimate < need(self.kbps[self.rung - 1], UP_MARGIN) || lossy {
            self.above_since = None;
            self.maybe_probe(estimate, now);
            return None;
        }
        let since = *self.above_since.get_or_insert(now);
        if now.duration_since(since) < self.up_hold {
            return None;
        }
        self.last_probe = None;
        self.rung -= 1;
        self.moved(now);
        self.last_up = Some(now);
        Some(self.rung)
    }

    /// Below the top with an estimate short of the rung above: str0m probes for more only now and then
    /// (its estimate stalls at what a lower rung sends), so every [`PROBE_EVERY`] its estimator starts over
    /// from the estimate, which probes at once (a link whose cap was lifted is found within seconds).
    fn maybe_probe(&mut self, estimate: f64, now: Instant) {
        if self.rung == 0 || self.last_probe.is_some_and(|t| now.duration_since(t) < PROBE_EVERY) {
            return;
        }
        if now.duration_since(self.on_rung_since) >= PROBE_EVERY {
            self.restart_estimate = Some(estimate as u32);
            self.last_probe = Some(now);
        }
    }

    fn go_down(&mut self, to: usize, now: Instant) -> usize {
        if self.last_up.is_some_and(|t| now.duration_since(t) < FAILED_UP_WITHIN) {
            self.up_hold = (self.up_hold * 2).min(MAX_UP_HOLD);
        }
        self.rung = to.min(self.kbps.len() - 1);
        self.moved(now);
        self.last_down = Some(now);
        self.rung
    }

    fn moved(&mut self, now: Instant) {
        self.on_rung_since = now;
        self.below_since = None;
        self.above_since = None;
        // What was lost and sent was the rung left.
        self.loss = None;
        self.sent_kbps = None;
        self.estimate_kbps = None;
    }
}

/// One sender's outgoing numbering: the viewer's own sequence numbers and timestamps, continuous across
/// rung switches (each rung's payloader numbers its packets its own way).
#[derive(Debug, Default)]
pub struct Splice {
    /// Added (wrapping) to the lane's extended sequence number; `None` before the first packet.
    seq_offset: Option<u64>,
    ts_offset: u32,
    last_seq: u64,
    last_ts: Option<u32>,
}

impl Splice {
    /// Starts numbering a new lane at its packet `ext_seq` with timestamp `ts`: the next sequence number
    /// follows the last one sent, and a timestamp not after the last one sent is moved just past it.
    pub fn rebase(&mut self, ext_seq: u64, ts: u32) {
        let next = self.seq_offset.map_or(1, |_| self.last_seq.wrapping_add(1));
        self.seq_offset = Some(next.wrapping_sub(ext_seq));
        self.ts_offset = match self.last_ts {
            Some(last) if (ts.wrapping_sub(last) as i32) <= 0 => last.wrapping_add(1).wrapping_sub(ts),
            _ => 0,
        };
    }

    /// The viewer's sequence number and timestamp for the lane's packet `ext_seq` at `ts`.
    pub fn map(&mut self, ext_seq: u64, ts: u32) -> (u64, u32) {
        if self.seq_offset.is_none() {
            self.rebase(ext_seq, ts);
        }
        let seq = ext_seq.wrapping_add(self.seq_offset.expect("set above"));
        let ts = ts.wrapping_add(self.ts_offset);
        self.last_seq = seq;
        self.last_ts = Some(ts);
        (seq, ts)
    }
}

#[cfg(test)]
#[path = "switch_tests.rs"]
mod tests;

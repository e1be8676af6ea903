//! Frame counting on a pad: how many frames passed, when the last did, and their smoothed rate. A stream has
//! one meter where raw frames enter the encoder's queue (what the source delivers, after the rate limit)
//! and one on the encoded stream; comparing the two tells a starving encoder from a slow source.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;

#[derive(Debug)]
pub struct FrameMeter {
    epoch: Instant,
    count: AtomicU64,
    bytes: AtomicU64,
    /// Microseconds since `epoch` of the first frame, +1 (0: none yet).
    first_us: AtomicU64,
    /// Microseconds since `epoch` of the last frame, +1 (0: none yet).
    last_us: AtomicU64,
    /// Intervals counted into `interval_us` so far.
    intervals: AtomicU64,
    /// Smoothed interval between frames (µs, stored as f64 bits; 0: not known yet): the plain mean of the
    /// first [`EWMA_FRAMES`] intervals after the warm-up, then an exponentially weighted mean over about as
    /// many.
    interval_us: AtomicU64,
}

/// A pipeline's first second is not its rate: the encoder's start-up, the first buffers' negotiation and a
/// source's first frames come in bursts and gaps. Intervals in it are not counted, so a stream that has just
/// started has no rate yet (and admission does not judge it) rather than a rate that is wrong for seconds.
const WARMUP: Duration = Duration::from_secs(1);

/// How many intervals the smoothed rate follows.
const EWMA_FRAMES: u64 = 50;

impl FrameMeter {
    pub fn new(epoch: Instant) -> Arc<Self> {
        Arc::new(Self {
            epoch,
            count: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            first_us: AtomicU64::new(0),
            last_us: AtomicU64::new(0),
            intervals: AtomicU64::new(0),
            interval_us: AtomicU64::new(0),
        })
    }

    /// Counts every buffer that passes `pad`.
    pub fn attach(self: &Arc<Self>, pad: &gst::Pad) {
        let meter = Arc::downgrade(self);
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(meter) = meter.upgrade() {
                meter.tick(info.buffer().map_or(0, |b| b.size()));
            }
            gst::PadProbeReturn::Ok
        });
    }

    /// One frame of `bytes`.
    pub fn tick(&self, bytes: usize) {
        self.tick_at(self.epoch.elapsed(), bytes);
    }

    /// One frame of `bytes`, `at` after the epoch (the probe is the only caller that ticks, so the loads
    /// and stores below do not race with each other).
    fn tick_at(&self, at: Duration, bytes: usize) {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        let now_us = at.as_micros() as u64 + 1;
        let prev = self.last_us.swap(now_us, Ordering::Relaxed);
        if prev == 0 {
            self.first_us.store(now_us, Ordering::Relaxed);
            return;
        }
        let first = self.first_us.load(Ordering::Relaxed);
        if now_us.saturating_sub(first) < WARMUP.as_micros() as u64 {
            return;
        }
        let n = self.intervals.fetch_add(1, Ordering::Relaxed) + 1;
        let dt = now_us.saturating_sub(prev) as f64;
        let old = f64::from_bits(self.interval_us.load(Ordering::Relaxed));
        let weight = 1.0 / n.min(EWMA_FRAMES) as f64;
        self.interval_us.store((old + (dt - old) * weight).to_bits(), Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Since the last frame (`None`: none yet).
    pub fn last_age(&self) -> Option<Duration> {
        let last = self.last_us.load(Ordering::Relaxed);
        (last > 0).then(|| self.epoch.elapsed().saturating_sub(Duration::from_micros(last - 1)))
    }

    /// Frames per second, smoothed, and lower at once while frames stall (the time since the last frame
    /// counts when it is longer than the usual interval); `None` before the first frame after the warm-up.
    pub fn fps(&self) -> Option<f64> {
        let interval = f64::from_bits(self.interval_us.load(Ordering::Relaxed));
        let since_last = self.last_age().map_or(0.0, |a| a.as_micros() as f64);
        (interval > 0.0).then(|| 1e6 / interval.max(since_last))
    }
}

/// Records each frame's time in `encoder` (its sink pad to its src pad) as
/// `glasscast_encode_latency_seconds`. Encoders are set up without B-frames or lookahead, so frames leave in
/// the order they enter, one for one; should that ever not hold, the oldest entries are forgotten rather than
/// growing without bound.
pub fn time_encoder(encoder: &gst::Element, stream: String) {
    let (Some(sink), Some(src)) = (encoder.static_pad("sink"), encoder.static_pad("src")) else { return };
    let entered = Arc::new(std::sync::Mutex::new(std::collections::VecDeque::<Instant>::new()));
    let queue = entered.clone();
    sink.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        let mut q = queue.lock().expect("encoder timing lock");
        if q.len() >= 16 {
            q.pop_front();
        }
        q.push_back(Instant::now());
        gst::PadProbeReturn::Ok
    });
    src.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        if let Some(t) = entered.lock().expect("encoder timing lock").pop_front() {
            crate::telemetry::encode_latency(&stream, t.elapsed());
        }
        gst::PadProbeReturn::Ok
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_knows_no_rate_before_two_frames() {
        let m = FrameMeter::new(Instant::now());
        assert_eq!((m.count(), m.fps(), m.last_age()), (0, None, None));
        m.tick(10);
        assert_eq!((m.count(), m.bytes()), (1, 10));
        assert!(m.fps().is_none());
        assert!(m.last_age().is_some());
        m.tick(5);
        assert_eq!(m.count(), 2);
    }

    /// Frames at `fps` from `from` (seconds after the epoch) for `secs` seconds.
    fn run(m: &FrameMeter, from: f64, secs: f64, fps: f64) -> f64 {
        let frames = (secs * fps) as u64;
        for i in 0..frames {
            m.tick_at(Duration::from_secs_f64(from + i as f64 / fps), 1);
        }
        from + frames as f64 / fps
    }

    /// Smoothed rate with no stall: an epoch far enough back that the last frame is "just now".
    fn rate(m: &FrameMeter) -> f64 {
        let interval = f64::from_bits(m.interval_us.load(Ordering::Relaxed));
        1e6 / interval
    }

    #[test]
    fn a_slow_start_does_not_count_against_the_rate() {
        // As an encoder starts: a 400 ms gap after the first frame, then a burst, then steady 30 fps.
        let m = FrameMeter::new(Instant::now());
        m.tick_at(Duration::ZERO, 1);
        let t = run(&m, 0.4, 0.1, 100.0);
        assert!(m.intervals.load(Ordering::Relaxed) == 0, "nothing counted in the warm-up");
        run(&m, t, 1.0, 30.0);
        assert!((rate(&m) - 30.0).abs() < 0.5, "{}", rate(&m));
    }

    #[test]
    fn the_rate_follows_a_lasting_change() {
        let m = FrameMeter::new(Instant::now());
        let t = run(&m, 0.0, 5.0, 30.0);
        run(&m, t, 10.0, 15.0);
        assert!((rate(&m) - 15.0).abs() < 1.0, "{}", rate(&m));
    }
}

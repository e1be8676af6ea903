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
    /// Microseconds since `epoch` of the last frame, +1 (0: none yet).
    last_us: AtomicU64,
    /// Smoothed interval between frames (µs, an exponentially weighted mean over ~50 frames, stored as f64
    /// bits; 0: not known yet).
    interval_us: AtomicU64,
}

impl FrameMeter {
    pub fn new(epoch: Instant) -> Arc<Self> {
        Arc::new(Self {
            epoch,
            count: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            last_us: AtomicU64::new(0),
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
        self.count.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        let now_us = self.epoch.elapsed().as_micros() as u64 + 1;
        let prev = self.last_us.swap(now_us, Ordering::Relaxed);
        if prev > 0 {
            let dt = now_us.saturating_sub(prev) as f64;
            let old = f64::from_bits(self.interval_us.load(Ordering::Relaxed));
            let smoothed = if old > 0.0 { old * 0.98 + dt * 0.02 } else { dt };
            self.interval_us.store(smoothed.to_bits(), Ordering::Relaxed);
        }
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
    /// counts when it is longer than the usual interval); `None` before the second frame.
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
        assert!(m.fps().is_some_and(|f| f > 0.0));
    }
}

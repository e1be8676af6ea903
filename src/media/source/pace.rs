//! A frame-rate limiter that never holds a frame, for sources whose rate is variable: the portal's PipeWire
//! stream (framerate 0/1, damage-driven, repeated by keepalive on a still screen) and re-encoded feeds.
//!
//! `videorate` cannot do this job. In its default mode it holds every frame until the next one arrives (to
//! decide on duplicates): one frame interval of latency (a measured median of 33.4 ms at 30 fps,
//! docs/performance.md). In `drop-only` mode it refuses a variable-rate input. This limiter divides time into
//! slots of one frame interval and lets the first frame of each slot through at once, dropping the rest:
//! never more than the stream's rate, no drift, no added delay, and no duplicates (a slower source stays
//! slower; the encoder is told the nominal rate by the caps).

use gstreamer as gst;
use gstreamer::prelude::*;

/// Which frames pass: the first whose time falls in each slot of `period_ns`.
#[derive(Debug)]
pub struct Pace {
    period_ns: u64,
    last_slot: Option<u64>,
}

impl Pace {
    pub fn new(fps: u32) -> Self {
        Self { period_ns: 1_000_000_000 / u64::from(fps.max(1)), last_slot: None }
    }

    /// Whether the frame at `time_ns` (running time) passes. A time from an earlier slot (a timestamp
    /// reset after a new segment) starts over rather than blocking until time catches up.
    pub fn admit(&mut self, time_ns: u64) -> bool {
        let slot = time_ns / self.period_ns;
        match self.last_slot {
            Some(last) if slot == last => false,
            _ => {
                self.last_slot = Some(slot);
                true
            }
        }
    }
}

/// Drops the buffers on `pad` that exceed `fps` (see [`Pace`]), judging each by its running time: its PTS
/// in the current segment, else the clock's time now.
pub fn limit(pad: &gst::Pad, fps: u32) {
    let pace = std::sync::Mutex::new(Pace::new(fps));
    let segment = std::sync::Mutex::new(None::<gst::FormattedSegment<gst::ClockTime>>);
    pad.add_probe(gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM, move |pad, info| {
        let pts = match &info.data {
            Some(gst::PadProbeData::Event(ev)) => {
                if let gst::EventView::Segment(s) = ev.view() {
                    *segment.lock().expect("segment lock") = s.segment().downcast_ref::<gst::ClockTime>().cloned();
                    // A new segment restarts the running time.
                    *pace.lock().expect("pace lock") = Pace::new(fps);
                }
                return gst::PadProbeReturn::Ok;
            }
            Some(gst::PadProbeData::Buffer(buf)) => buf.pts(),
            _ => return gst::PadProbeReturn::Ok,
        };
        let from_pts = pts.and_then(|pts| segment.lock().expect("segment lock").as_ref()?.to_running_time(pts));
        match from_pts.or_else(|| running_time_now(pad)) {
            Some(t) if !pace.lock().expect("pace lock").admit(t.nseconds()) => crate::media::swallow(info),
            _ => gst::PadProbeReturn::Ok,
        }
    });
}

fn running_time_now(pad: &gst::Pad) -> Option<gst::ClockTime> {
    let element = pad.parent_element()?;
    let now = element.clock()?.time();
    now.checked_sub(element.base_time()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn passed(fps: u32, times_ms: impl IntoIterator<Item = f64>) -> Vec<f64> {
        let mut pace = Pace::new(fps);
        times_ms.into_iter().filter(|t| pace.admit((t * MS as f64) as u64)).collect()
    }

    #[test]
    fn a_60_fps_source_is_halved_to_30_with_no_frame_delayed() {
        let input: Vec<f64> = (0..600).map(|i| f64::from(i) * 1000.0 / 60.0).collect();
        let out = passed(30, input.iter().copied());
        assert_eq!(out.len(), 300, "10 s at 60 fps makes 300 frames at 30");
        // Each frame that passes does so as it arrives (the limiter only decides, it has no queue), and the
        // spacing stays one interval.
        for pair in out.windows(2) {
            assert!((pair[1] - pair[0] - 33.3).abs() < 0.1, "{pair:?}");
        }
    }

    #[test]
    fn a_jittery_keepalive_at_the_stream_rate_keeps_nearly_every_frame() {
        // A still screen repeated by keepalive every 33 ms + 0..3 ms of timer lateness.
        let mut t = 0.0;
        let input: Vec<f64> = (0..300)
            .map(|i| {
                t += 33.0 + f64::from(i % 4);
                t
            })
            .collect();
        let out = passed(30, input.iter().copied());
        // The source itself runs at ~28.4 fps. Two frames only 33 ms apart can share a 33.3 ms slot, so a
        // few go, but nearly all pass (and the stream's health compares the encoder to this rate, not to 30).
        assert!(out.len() * 10 >= input.len() * 9, "{} of {}", out.len(), input.len());
        assert!(out.len() < input.len(), "the test really has frames sharing a slot");
    }

    #[test]
    fn a_45_fps_source_fills_every_slot_of_30() {
        let input: Vec<f64> = (0..450).map(|i| f64::from(i) * 1000.0 / 45.0).collect();
        let out = passed(30, input.iter().copied());
        assert!((299..=301).contains(&out.len()), "{}", out.len());
    }

    #[test]
    fn a_slower_source_passes_untouched() {
        let input: Vec<f64> = (0..100).map(|i| f64::from(i) * 50.0).collect();
        assert_eq!(passed(30, input.iter().copied()), input);
    }

    #[test]
    fn time_going_back_starts_over_instead_of_stalling() {
        let mut pace = Pace::new(30);
        assert!(pace.admit(10_000 * MS));
        assert!(pace.admit(5 * MS), "an earlier slot after a reset passes");
        assert!(!pace.admit(6 * MS));
        assert!(pace.admit(40 * MS));
    }
}

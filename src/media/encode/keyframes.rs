//! Keyframe requests, rate-limited per stream.
//!
//! Every request for a keyframe (a viewer joining, a viewer's PLI/FIR, on either transport) travels upstream
//! as a force-key-unit event through the stream's encoded-video tee to the one shared encoder. A keyframe
//! costs several times a delta frame in bits and encode time, and every viewer pays for it, so a probe on
//! that tee's sink pad lets one request through per [`MIN_INTERVAL`]. A request that comes sooner is held,
//! and one fresh request is sent when the interval is up: whoever asked still gets a keyframe, at most
//! [`MIN_INTERVAL`] later.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_video::UpstreamForceKeyUnitEvent;

/// The shortest time between two keyframes requested of one encoder.
pub const MIN_INTERVAL: Duration = Duration::from_millis(250);

#[derive(Default)]
struct State {
    last_sent: Option<Instant>,
    /// A held request will be sent when the interval is up.
    held: bool,
}

/// Counters of a stream's keyframe requests.
#[derive(Debug, Default)]
pub struct KeyframeCounters {
    /// Requests that reached the limiter (joins, PLIs, FIRs, recording files, pushes).
    pub requested: AtomicU64,
    /// Requests passed on to the encoder.
    pub sent: AtomicU64,
}

/// A force-key-unit request asking for SPS/PPS along with the keyframe.
pub fn request_event() -> gst::Event {
    UpstreamForceKeyUnitEvent::builder().all_headers(true).build()
}

/// What to do with a request at `now`, given the state: pass it, or hold it (and whether a send must be
/// scheduled, with the delay until the interval is up).
fn decide(state: &mut State, now: Instant) -> Result<(), Option<Duration>> {
    match state.last_sent {
        Some(t) if now.duration_since(t) < MIN_INTERVAL => {
            if state.held {
                Err(None)
            } else {
                state.held = true;
                Err(Some(MIN_INTERVAL - now.duration_since(t)))
            }
        }
        _ => {
            state.last_sent = Some(now);
            state.held = false;
            Ok(())
        }
    }
}

/// Installs the limiter on `pad` (the sink pad of the tee right after the encoder). Returns its counters.
///
/// It also stops the encoder's *downstream* force-key-unit events there. GstVideoEncoder sends one ahead
/// of each requested keyframe, and rtph264pay answers it by sending SPS/PPS at once as an RTP packet of
/// their own with the marker bit set, ahead of a frame that is still a delta frame. Chromium takes that
/// packet for a frame, fails to decode it and sends a PLI, which asks for the next keyframe: a loop of one
/// keyframe per interval. The payloaders still send SPS/PPS with every keyframe (`config-interval=-1`).
pub fn limit(pad: &gst::Pad) -> Arc<KeyframeCounters> {
    pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, |_, info| match info.event() {
        Some(ev) if gstreamer_video::DownstreamForceKeyUnitEvent::parse(ev).is_ok() => crate::media::swallow(info),
        _ => gst::PadProbeReturn::Ok,
    });
    let state = Arc::new(Mutex::new(State::default()));
    let counters = Arc::new(KeyframeCounters::default());
    let out = Arc::clone(&counters);
    pad.add_probe(gst::PadProbeType::EVENT_UPSTREAM, move |pad, info| {
        let Some(ev) = info.event() else {
            return gst::PadProbeReturn::Ok;
        };
        if UpstreamForceKeyUnitEvent::parse(ev).is_err() {
            return gst::PadProbeReturn::Ok;
        }
        counters.requested.fetch_add(1, Ordering::Relaxed);
        let decision = decide(&mut state.lock().expect("keyframe limiter lock"), Instant::now());
        match decision {
            Ok(()) => {
                counters.sent.fetch_add(1, Ordering::Relaxed);
                gst::PadProbeReturn::Ok
            }
            Err(None) => crate::media::swallow(info),
            Err(Some(delay)) => {
                // Sent again through this pad when due; the probe then sees it as a new request and passes it.
                let clock = gst::SystemClock::obtain();
                let due = clock.time() + gst::ClockTime::from_nseconds(delay.as_nanos() as u64);
                let weak = pad.downgrade();
                let id = clock.new_single_shot_id(due);
                let scheduled = id.wait_async(move |_, _, _| {
                    if let Some(pad) = weak.upgrade() {
                        pad.push_event(request_event());
                    }
                });
                if scheduled.is_err() {
                    tracing::warn!("could not schedule a held keyframe request");
                }
                crate::media::swallow(info)
            }
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_request_per_interval_and_a_held_one_is_sent_once() {
        let mut s = State::default();
        let t0 = Instant::now();
        assert_eq!(decide(&mut s, t0), Ok(()));
        assert_eq!(decide(&mut s, t0 + Duration::from_millis(100)), Err(Some(Duration::from_millis(150))));
        assert_eq!(decide(&mut s, t0 + Duration::from_millis(200)), Err(None), "already held: no second send");
        // The held request comes back when due and passes.
        assert_eq!(decide(&mut s, t0 + MIN_INTERVAL), Ok(()));
        assert_eq!(decide(&mut s, t0 + MIN_INTERVAL * 3), Ok(()));
    }
}

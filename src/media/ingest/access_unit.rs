//! Whole H.264 access units out of a relayed stream's `h264parse` (a WHIP publisher's, a passed-through
//! feed's), each with a timestamp.
//!
//! Some publishers send a keyframe's SPS/PPS (and SEI) as RTP packets of their own with the marker bit set
//! (GStreamer's `rtph264pay` does, answering a keyframe request: see [`crate::media::encode::keyframes`]). The
//! depayloader then hands on two or three "access units" with one timestamp, of which only the last holds
//! a picture, and `h264parse` (GstBaseParse) keeps a timestamp only on the first buffer that carries it:
//! the keyframe itself comes out with none. A recording cannot place a frame without a time (it waited for
//! the next keyframe, minutes away with such a publisher), and a viewer takes the picture-less unit for a
//! frame it cannot decode (and asks for a keyframe again).
//!
//! ```text
//!   {h264parse}  sink probe: the input's PTS/DTS      src probe: an AU without a slice is held and
//!                                                     put in front of the next one; a unit without
//!                                                     a timestamp gets the input's
//! ```

use std::sync::{Arc, Mutex};

use gstreamer as gst;
use gstreamer::prelude::*;

/// A held picture-less unit bigger than this is dropped (nothing real is: SPS, PPS and SEI are small).
const MAX_HELD: usize = 64 * 1024;

#[derive(Default)]
struct State {
    /// PTS and DTS of the buffer the parser is working on.
    input: (Option<gst::ClockTime>, Option<gst::ClockTime>),
    /// Picture-less units waiting for the next picture.
    held: Option<gst::Buffer>,
}

/// Installs the probes on `parse` (an `h264parse` with byte-stream AU output).
pub fn whole_units(parse: &gst::Element) {
    let state = Arc::new(Mutex::new(State::default()));
    let (Some(sink), Some(src)) = (parse.static_pad("sink"), parse.static_pad("src")) else { return };
    let input = Arc::clone(&state);
    sink.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let Some(b) = info.buffer() {
            input.lock().expect("access unit lock").input = (b.pts(), b.dts());
        }
        gst::PadProbeReturn::Ok
    });
    src.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        let Some(gst::PadProbeData::Buffer(buffer)) = info.data.take() else { return gst::PadProbeReturn::Ok };
        let mut state = state.lock().expect("access unit lock");
        match complete(&mut state, buffer) {
            Some(unit) => {
                info.data = Some(gst::PadProbeData::Buffer(unit));
                gst::PadProbeReturn::Ok
            }
            None => gst::PadProbeReturn::Handled,
        }
    });
}

/// The unit to pass on for `buffer`, or `None` while it is held (it has no picture).
fn complete(state: &mut State, mut buffer: gst::Buffer) -> Option<gst::Buffer> {
    if buffer.pts().is_none() {
        let (pts, dts) = state.input;
        let b = buffer.make_mut();
        b.set_pts(pts);
        if b.dts().is_none() {
            b.set_dts(dts.or(pts));
        }
    }
    let picture = buffer.map_readable().is_ok_and(|m| has_slice(m.as_slice()));
    if !picture {
        let held = match state.held.take() {
            Some(mut held) => {
                held.append(buffer);
                held
            }
            None => buffer,
        };
        state.held = (held.size() <= MAX_HELD).then_some(held);
        return None;
    }
    let Some(mut unit) = state.held.take() else { return Some(buffer) };
    let (pts, dts, duration, flags) = (buffer.pts(), buffer.dts(), buffer.duration(), buffer.flags());
    unit.append(buffer);
    let u = unit.make_mut();
    u.set_pts(pts);
    u.set_dts(dts);
    u.set_duration(duration);
    u.set_flags(flags | gst::BufferFlags::HEADER);
    Some(unit)
}

/// Whether a byte-stream access unit holds a coded slice (NAL types 1-5).
fn has_slice(au: &[u8]) -> bool {
    au.windows(4).any(|w| w[..3] == [0, 0, 1] && (1..=5).contains(&(w[3] & 0x1f)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(bytes: &[u8], pts: Option<u64>, flags: gst::BufferFlags) -> gst::Buffer {
        let mut b = gst::Buffer::from_slice(bytes.to_vec());
        let m = b.get_mut().expect("a new buffer is writable");
        m.set_pts(pts.map(gst::ClockTime::from_mseconds));
        m.set_flags(flags);
        b
    }

    const SPS_PPS: &[u8] = &[0, 0, 0, 1, 0x67, 0x42, 0, 0, 0, 1, 0x68, 0xce];
    const IDR: &[u8] = &[0, 0, 0, 1, 0x65, 0x88, 0x84];
    const DELTA: &[u8] = &[0, 0, 0, 1, 0x41, 0x9a];

    #[test]
    fn slices_are_found_by_their_nal_type() {
        assert!(!has_slice(SPS_PPS));
        assert!(has_slice(IDR) && has_slice(DELTA));
        assert!(!has_slice(&[0, 0, 1]), "a start code alone");
    }

    #[test]
    fn a_picture_less_unit_goes_in_front_of_the_keyframe_which_gets_the_input_time() {
        gst::init().expect("gstreamer");
        let mut s = State { input: (Some(gst::ClockTime::from_mseconds(2000)), None), held: None };
        assert!(complete(&mut s, unit(SPS_PPS, None, gst::BufferFlags::HEADER)).is_none(), "held");
        let key = complete(&mut s, unit(IDR, None, gst::BufferFlags::empty())).expect("passed on");
        assert_eq!(key.pts(), Some(gst::ClockTime::from_mseconds(2000)));
        assert_eq!(key.dts(), key.pts());
        assert!(!key.flags().contains(gst::BufferFlags::DELTA_UNIT) && key.flags().contains(gst::BufferFlags::HEADER));
        let bytes = key.map_readable().expect("readable").to_vec();
        assert_eq!(bytes, [SPS_PPS, IDR].concat(), "one unit: SPS, PPS, then the picture");
        let next = complete(&mut s, unit(DELTA, Some(2033), gst::BufferFlags::DELTA_UNIT)).expect("passed on");
        assert_eq!((next.pts(), next.size()), (Some(gst::ClockTime::from_mseconds(2033)), DELTA.len()));
    }
}

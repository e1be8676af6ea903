//! A/V sync marks for the test source: at every whole second of the stream's clock the picture turns white
//! for one frame and the tone sounds for [`BEEP`] (silence otherwise). Both are decided from the buffers'
//! timestamps, which come from the one pipeline clock, so a receiver can measure how far apart it presents
//! them (tests/load/av_sync.rs).
//!
//! ```text
//! {video conform capsfilter} -(flash probe)- ...      {audio conform capsfilter} -(beep probe)- {opusenc}
//! ```

use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_video as gst_video;

/// How long each beep lasts.
pub const BEEP: Duration = Duration::from_millis(100);

const SECOND_NS: u64 = 1_000_000_000;

/// Paints the first frame of every second white (I420 luma 235) on `pad`.
pub fn flash(pad: &gst::Pad) {
    pad.add_probe(gst::PadProbeType::BUFFER, |pad, info| {
        let Some(vinfo) = pad.current_caps().and_then(|c| gst_video::VideoInfo::from_caps(&c).ok()) else {
            return gst::PadProbeReturn::Ok;
        };
        let frame_ns = vinfo.fps().denom() as u64 * SECOND_NS / (vinfo.fps().numer().max(1) as u64);
        let Some(gst::PadProbeData::Buffer(buffer)) = &mut info.data else { return gst::PadProbeReturn::Ok };
        let Some(pts) = buffer.pts() else { return gst::PadProbeReturn::Ok };
        if pts.nseconds() % SECOND_NS >= frame_ns {
            return gst::PadProbeReturn::Ok;
        }
        let buffer = buffer.make_mut();
        if let Ok(mut frame) = gst_video::VideoFrameRef::from_buffer_ref_writable(buffer, &vinfo)
            && let Ok(y) = frame.plane_data_mut(0)
        {
            y.fill(235);
        }
        gst::PadProbeReturn::Ok
    });
}

/// Silences `pad`'s audio (S16LE, S32LE, F32LE or F64LE) except during [`BEEP`] after every whole second.
pub fn beep(pad: &gst::Pad) {
    pad.add_probe(gst::PadProbeType::BUFFER, |pad, info| {
        let Some((rate, frame_bytes)) = pad.current_caps().as_ref().and_then(|c| c.structure(0)).and_then(|s| {
            let rate = u64::try_from(s.get::<i32>("rate").ok()?).ok()?;
            let channels = usize::try_from(s.get::<i32>("channels").ok()?).ok()?;
            let sample = match s.get::<&str>("format").ok()? {
                "S16LE" => 2,
                "S32LE" | "F32LE" => 4,
                "F64LE" => 8,
                _ => return None,
            };
            Some((rate.max(1), sample * channels))
        }) else {
            return gst::PadProbeReturn::Ok;
        };
        let Some(gst::PadProbeData::Buffer(buffer)) = &mut info.data else { return gst::PadProbeReturn::Ok };
        let Some(pts) = buffer.pts() else { return gst::PadProbeReturn::Ok };
        let buffer = buffer.make_mut();
        let Ok(mut map) = buffer.map_writable() else { return gst::PadProbeReturn::Ok };
        for (i, frame) in map.chunks_exact_mut(frame_bytes).enumerate() {
            let t = pts.nseconds() + i as u64 * SECOND_NS / rate;
            if t % SECOND_NS >= BEEP.as_nanos() as u64 {
                // Zero is silence in both S16 and F32.
                frame.fill(0);
            }
        }
        gst::PadProbeReturn::Ok
    });
}

//! What a test viewer measures in the decoded media: the picture's luma range (a captured screen is not
//! black) and the sound's dominant frequency and level (a captured tone is the tone that was played).

use std::sync::{Arc, Mutex};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_video as gst_video;

/// Seconds of decoded mono audio kept for [`dominant_frequency`].
pub const AUDIO_KEEP_S: usize = 2;

/// Records the (min, max) luma of each decoded I420 frame passing `pad` (sampled every 4th pixel).
pub fn record_luma_range(pad: &gst::Pad, range: &Arc<Mutex<Option<(u8, u8)>>>) {
    let range = range.clone();
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let vinfo = pad.current_caps().and_then(|c| gst_video::VideoInfo::from_caps(&c).ok());
        if let (Some(vinfo), Some(buffer)) = (vinfo, info.buffer())
            && vinfo.format() == gst_video::VideoFormat::I420
            && let Ok(frame) = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &vinfo)
            && let Ok(y) = frame.plane_data(0)
        {
            let (mut lo, mut hi) = (u8::MAX, u8::MIN);
            for &v in y.iter().step_by(4) {
                lo = lo.min(v);
                hi = hi.max(v);
            }
            *range.lock().expect("lock") = Some((lo, hi));
        }
        gst::PadProbeReturn::Ok
    });
}

/// Keeps the last [`AUDIO_KEEP_S`] seconds of F32LE mono samples passing `pad`.
pub fn record_audio(pad: &gst::Pad, samples: &Arc<Mutex<Vec<f32>>>) {
    let samples = samples.clone();
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let Some(map) = info.buffer().and_then(|b| b.map_readable().ok()) {
            let mut s = samples.lock().expect("lock");
            s.extend(map.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])));
            let keep = 48_000 * AUDIO_KEEP_S;
            if s.len() > keep {
                let cut = s.len() - keep;
                s.drain(..cut);
            }
        }
        gst::PadProbeReturn::Ok
    });
}

/// The strongest frequency (Hz) among 50..5000 Hz in 10 Hz steps (Goertzel), and the RMS level.
pub fn dominant_frequency(samples: &[f32], rate: f32) -> (f32, f32) {
    let rms = (samples.iter().map(|s| s * s).sum::<f32>() / samples.len().max(1) as f32).sqrt();
    let power = |f: f32| {
        let w = 2.0 * std::f32::consts::PI * f / rate;
        let coeff = 2.0 * w.cos();
        let (mut s1, mut s2) = (0.0f32, 0.0f32);
        for &x in samples {
            let s0 = x + coeff * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        s1 * s1 + s2 * s2 - coeff * s1 * s2
    };
    let best = (5..=500)
        .map(|i| i as f32 * 10.0)
        .map(|f| (f, power(f)))
        .fold((0.0, 0.0), |a, b| if b.1 > a.1 { b } else { a });
    (best.0, rms)
}

/// Records (PTS in ns, mean luma) of each decoded I420 frame passing `pad` (sampled every 16th pixel).
pub fn record_video_marks(pad: &gst::Pad, marks: &Arc<Mutex<Vec<(u64, f32)>>>) {
    let marks = marks.clone();
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let vinfo = pad.current_caps().and_then(|c| gst_video::VideoInfo::from_caps(&c).ok());
        if let (Some(vinfo), Some(buffer)) = (vinfo, info.buffer())
            && vinfo.format() == gst_video::VideoFormat::I420
            && let Some(pts) = buffer.pts()
            && let Ok(frame) = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &vinfo)
            && let Ok(y) = frame.plane_data(0)
        {
            let (sum, n) = y.iter().step_by(16).fold((0u64, 0u64), |(s, n), &v| (s + u64::from(v), n + 1));
            marks.lock().expect("lock").push((pts.nseconds(), sum as f32 / n.max(1) as f32));
        }
        gst::PadProbeReturn::Ok
    });
}

/// Records, for each F32LE mono 48 kHz buffer passing `pad`, the time (ns) of its first sample louder than
/// 0.05, if any.
pub fn record_audio_onsets(pad: &gst::Pad, onsets: &Arc<Mutex<Vec<u64>>>) {
    let onsets = onsets.clone();
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let Some(buffer) = info.buffer()
            && let Some(pts) = buffer.pts()
            && let Ok(map) = buffer.map_readable()
        {
            let loud = map.chunks_exact(4).position(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]).abs() > 0.05);
            if let Some(i) = loud {
                onsets.lock().expect("lock").push(pts.nseconds() + i as u64 * 1_000_000_000 / 48_000);
            }
        }
        gst::PadProbeReturn::Ok
    });
}

/// Audio minus video, in ms, for each flash (a frame much brighter than the one before) matched with the
/// beep that starts nearest to it (the first loud buffer after at least 300 ms of silence).
pub fn sync_offsets_ms(video: &[(u64, f32)], audio: &[u64]) -> Vec<f64> {
    let flashes: Vec<u64> = video.windows(2).filter(|w| w[1].1 > 200.0 && w[0].1 < 200.0).map(|w| w[1].0).collect();
    let beeps: Vec<u64> = audio
        .iter()
        .enumerate()
        .filter(|(i, t)| *i == 0 || **t > audio[i - 1] + 300_000_000)
        .map(|(_, t)| *t)
        .collect();
    flashes
        .iter()
        .filter_map(|f| beeps.iter().min_by_key(|b| b.abs_diff(*f)).map(|b| (*b as f64 - *f as f64) / 1e6))
        .filter(|d| d.abs() < 500.0)
        .collect()
}

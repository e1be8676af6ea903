//! The latency probe: paints the wall-clock time (Unix ms) into each raw frame, before the encoder, as a row of
//! black/white cells across the top of the picture that survives H.264. The player reads it back from each
//! rendered frame (web/latency.js) and reports glass-to-glass latency; `bench/latency` collects it.
//!
//! ```text
//! {source} - {conform: videoconvert/videoscale/videorate/capsfilter I420} -(probe paints here)- {queue} - {encoder}
//! ```
//!
//! Code layout (keep web/latency.js in step): the top `cell` rows of the frame, `CELLS` = 64 cells of
//! `cell = width / 64` pixels (rounded down to even) each:
//! cell 0 white, cell 1 black (sync); cells 2..50 the 48-bit time in ms, most significant bit first;
//! cells 50..58 a check byte (XOR of the six time bytes, XOR 0x5A); cells 58..64 white/black alternating.
//! White is luma 235, black luma 16 (limited range), chroma neutral (128) under the whole strip.

use std::time::{SystemTime, UNIX_EPOCH};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;

pub const CELLS: u32 = 64;
const TIME_BITS: u32 = 48;
const FIRST_TIME_CELL: u32 = 2;
const FIRST_CHECK_CELL: u32 = FIRST_TIME_CELL + TIME_BITS;
const FIRST_TAIL_CELL: u32 = FIRST_CHECK_CELL + 8;
const WHITE: u8 = 235;
const BLACK: u8 = 16;
/// The narrowest frame the probe supports (cells of 4 pixels): the configuration's check
/// (`config::MIN_PROBE_WIDTH`, which config holds so that it needs nothing from media).
pub const MIN_WIDTH: u32 = crate::config::MIN_PROBE_WIDTH;
const _: () = assert!(MIN_WIDTH == CELLS * 4, "the probe's cells are 4 pixels wide at the narrowest");

/// Cell size in pixels (square) for a frame width.
pub fn cell_size(width: u32) -> u32 {
    (width / CELLS) & !1
}

fn check_byte(ms: u64) -> u8 {
    ms.to_be_bytes()[2..].iter().fold(0x5a, |acc, b| acc ^ b)
}

/// The 64 cell values (true = white) for a time in ms.
pub fn cells(ms: u64) -> [bool; CELLS as usize] {
    let mut out = [false; CELLS as usize];
    out[0] = true;
    for i in 0..TIME_BITS {
        out[(FIRST_TIME_CELL + i) as usize] = (ms >> (TIME_BITS - 1 - i)) & 1 == 1;
    }
    let check = check_byte(ms);
    for i in 0..8 {
        out[(FIRST_CHECK_CELL + i) as usize] = (check >> (7 - i)) & 1 == 1;
    }
    for i in FIRST_TAIL_CELL..CELLS {
        out[i as usize] = (i - FIRST_TAIL_CELL).is_multiple_of(2);
    }
    out
}

/// Reads a time back from cell values; `None` if the sync, check or tail cells do not match.
pub fn decode(cells: &[bool]) -> Option<u64> {
    if cells.len() != CELLS as usize || !cells[0] || cells[1] {
        return None;
    }
    let mut ms = 0u64;
    for i in 0..TIME_BITS {
        ms = (ms << 1) | u64::from(cells[(FIRST_TIME_CELL + i) as usize]);
    }
    let mut check = 0u8;
    for i in 0..8 {
        check = (check << 1) | u8::from(cells[(FIRST_CHECK_CELL + i) as usize]);
    }
    let tail_ok = (FIRST_TAIL_CELL..CELLS).all(|i| cells[i as usize] == (i - FIRST_TAIL_CELL).is_multiple_of(2));
    (check == check_byte(ms) && tail_ok).then_some(ms)
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or_default()
}

/// Paints `ms` into an I420 frame (luma cells, neutral chroma under the strip).
pub fn paint(frame: &mut gst_video::VideoFrameRef<&mut gst::BufferRef>, ms: u64) {
    let width = frame.width();
    let cell = cell_size(width);
    if cell < 4 || frame.height() < cell {
        return;
    }
    let values = cells(ms);
    let stride = frame.plane_stride()[0] as usize;
    if let Ok(luma) = frame.plane_data_mut(0) {
        for y in 0..cell as usize {
            let row = &mut luma[y * stride..];
            for (i, white) in values.iter().enumerate() {
                let start = i * cell as usize;
                row[start..start + cell as usize].fill(if *white { WHITE } else { BLACK });
            }
        }
    }
    let strip_w = (CELLS * cell / 2) as usize;
    for plane in 1..=2 {
        let stride = frame.plane_stride()[plane] as usize;
        if let Ok(chroma) = frame.plane_data_mut(plane as u32) {
            for y in 0..(cell / 2) as usize {
                chroma[y * stride..y * stride + strip_w].fill(128);
            }
        }
    }
}

/// Adds the painting probe to `pad` (which must carry I420). The time painted is taken as the buffer passes.
pub fn attach(pad: &gst::Pad) {
    pad.add_probe(gst::PadProbeType::BUFFER, |pad, info| {
        let Some(caps) = pad.current_caps() else { return gst::PadProbeReturn::Ok };
        let Ok(vinfo) = gst_video::VideoInfo::from_caps(&caps) else { return gst::PadProbeReturn::Ok };
        if vinfo.format() != gst_video::VideoFormat::I420 {
            return gst::PadProbeReturn::Ok;
        }
        if let Some(buffer) = info.buffer_mut() {
            let buffer = buffer.make_mut();
            if let Ok(mut frame) = gst_video::VideoFrameRef::from_buffer_ref_writable(buffer, &vinfo) {
                paint(&mut frame, now_ms());
            }
        }
        gst::PadProbeReturn::Ok
    });
}

/// Reads the code from an I420 frame (for tests and tools): samples the middle of each cell.
pub fn read(frame: &gst_video::VideoFrameRef<&gst::BufferRef>) -> Option<u64> {
    let cell = cell_size(frame.width()) as usize;
    if cell < 4 {
        return None;
    }
    let stride = frame.plane_stride()[0] as usize;
    let luma = frame.plane_data(0).ok()?;
    let y = cell / 2;
    let values: Vec<bool> = (0..CELLS as usize).map(|i| luma[y * stride + i * cell + cell / 2] > 125).collect();
    decode(&values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_round_trip_and_reject_corruption() {
        let ms = 1_764_000_000_123u64;
        let c = cells(ms);
        assert_eq!(decode(&c), Some(ms));
        for flip in [0usize, 1, 2, 30, 49, 50, 57, 58, 63] {
            let mut bad = c;
            bad[flip] = !bad[flip];
            assert_eq!(decode(&bad), None, "a flipped cell {flip} must be caught");
        }
        assert_eq!(decode(&c[..10]), None);
    }

    #[test]
    fn paints_and_reads_an_i420_frame() {
        gst::init().expect("gstreamer");
        let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::I420, 640, 360).build().expect("info");
        let mut buffer = gst::Buffer::with_size(info.size()).expect("buffer");
        {
            let buf = buffer.get_mut().expect("writable");
            let mut frame = gst_video::VideoFrameRef::from_buffer_ref_writable(buf, &info).expect("map");
            paint(&mut frame, 1_764_000_000_999);
        }
        let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer.as_ref(), &info).expect("map");
        assert_eq!(read(&frame), Some(1_764_000_000_999));
        assert_eq!(cell_size(1280), 20);
        assert_eq!(cell_size(1920), 30);
    }
}

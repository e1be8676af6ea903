//! One RTP packet from a stream's payloader as the mux takes it: which track, its sequence number and
//! timestamp, whether it starts a keyframe, and the payload every viewer shares.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer_rtp::RTPBuffer;

use super::StreamSlot;

/// How often each stream's receiver reports are summarized for congestion control (also each peer's str0m
/// stats interval, so every report period holds one report per viewer).
pub(crate) const LOSS_REPORT_EVERY: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Track {
    /// H.264.
    Video,
    Audio,
    /// The stream's on-demand VP8 encoding.
    Vp8,
}

/// Sequence-number lanes per stream: audio, VP8, and H.264's every rung ([`lane`]).
pub(crate) const LANES: usize = 2 + 1 + crate::config::MAX_LOWER_RUNGS;

/// The lane of a packet of `track` (and, for H.264, of ladder rung `rung`): each has its own numbering.
pub(crate) fn lane(track: Track, rung: u8) -> usize {
    match track {
        Track::Audio => 0,
        Track::Vp8 => 1,
        Track::Video => 2 + usize::from(rung).min(LANES - 3),
    }
}

/// Whether a VP8 RTP payload (RFC 7741 descriptor, then the VP8 frame) starts a key frame: the start of
/// partition 0 (S = 1, PID = 0) with the frame tag's P bit clear.
pub(crate) fn vp8_keyframe(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else { return false };
    let (x, s, pid) = (first & 0x80 != 0, first & 0x10 != 0, first & 0x07);
    let mut at = 1;
    if x {
        let Some(&ext) = payload.get(1) else { return false };
        at = 2;
        if ext & 0x80 != 0 {
            // PictureID: 7 bits, or 15 when its first bit (M) is set.
            at += if payload.get(at).is_some_and(|b| b & 0x80 != 0) { 2 } else { 1 };
        }
        at += usize::from(ext & 0x40 != 0) + usize::from(ext & 0x30 != 0);
    }
    s && pid == 0 && payload.get(at).is_some_and(|tag| tag & 0x01 == 0)
}

/// One RTP packet from a stream's payloader, parsed once for every viewer.
#[derive(Clone)]
pub(crate) struct MediaPacket {
    pub slot: StreamSlot,
    pub track: Track,
    /// Which rung of the stream's ladder (H.264; 0: the top, the stream's own encoding).
    pub rung: u8,
    pub seq: u16,
    pub timestamp: u32,
    pub marker: bool,
    /// Part of a keyframe (the buffer is not a delta unit).
    pub keyframe: bool,
    pub payload: Arc<[u8]>,
    pub at: Instant,
}

impl MediaPacket {
    pub fn parse(slot: StreamSlot, (track, rung): (Track, u8), buffer: &gst::BufferRef, at: Instant) -> Option<Self> {
        let rtp = RTPBuffer::from_buffer_readable(buffer).ok()?;
        Some(MediaPacket {
            slot,
            track,
            rung,
            seq: rtp.seq(),
            timestamp: rtp.timestamp(),
            marker: rtp.is_marker(),
            keyframe: match track {
                Track::Vp8 => vp8_keyframe(rtp.payload().ok()?),
                _ => !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT),
            },
            payload: Arc::from(rtp.payload().ok()?),
            at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::vp8_keyframe;

    #[test]
    fn vp8_key_frames_are_told_from_the_payload_descriptor_and_frame_tag() {
        // S=1, PID=0, no extension; frame tag P bit clear (key) or set (inter).
        assert!(vp8_keyframe(&[0x10, 0x00, 0x00, 0x00]));
        assert!(!vp8_keyframe(&[0x10, 0x01, 0x00, 0x00]));
        // X=1 with a 15-bit PictureID (I=1, M=1): the tag comes after 4 bytes.
        assert!(vp8_keyframe(&[0x90, 0x80, 0x81, 0x23, 0x00]));
        assert!(!vp8_keyframe(&[0x90, 0x80, 0x81, 0x23, 0x01]));
        // X=1 with a 7-bit PictureID, TL0PICIDX (L) and TID/KEYIDX (T): tag at byte 5.
        assert!(vp8_keyframe(&[0x90, 0xe0, 0x05, 0x07, 0x40, 0x00]));
        // Not the start of partition 0, or cut short.
        assert!(!vp8_keyframe(&[0x00, 0x00]));
        assert!(!vp8_keyframe(&[0x90, 0x80]));
        assert!(!vp8_keyframe(&[]));
    }
}

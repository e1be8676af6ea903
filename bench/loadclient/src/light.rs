//! Light viewers (`--full-every K`): once a viewer has its first video frame, its SRTP media packets are
//! counted from their RTP headers (sent in the clear by SRTP: payload type, marker, sequence number,
//! SSRC) instead of being decrypted and depacketized by str0m. STUN, DTLS and SRTCP still go to str0m, so
//! the viewer keeps ICE consent, answers the server's RTCP and sends its own receiver reports.
//!
//! What a light viewer checks: the packet is RTP version 2 with the video or audio payload type str0m
//! negotiated, one SSRC per track, a plausible length, and sequence continuity (a forward jump counts as a
//! gap, as str0m's `contiguous = false` would). What it does not: the SRTP authentication tag and the
//! payload (a sample of full viewers does that). A video frame is a packet with the marker bit (the last
//! packet of an access unit, RFC 6184).

/// Bytes SRTP appends to each packet (HMAC-SHA1-80 tag).
const SRTP_TAG: usize = 10;

/// What a media datagram was, for the viewer's counters.
#[derive(Debug, PartialEq, Eq)]
pub enum Counted {
    /// A video packet: its payload bytes, whether it ends a frame, whether packets were missing before it.
    Video { bytes: u64, frame_end: bool, gap: bool },
    /// An audio packet (one Opus frame).
    Audio { bytes: u64 },
    /// A duplicate or late packet, another SSRC, an unknown payload type (RTX): dropped uncounted.
    Ignored,
    /// Not RTP (STUN, DTLS, SRTCP): str0m's.
    NotRtp,
}

impl Counted {
    /// Adds what it was to `c`; true when it ended a video frame.
    pub fn add_to(&self, c: &mut crate::viewer::Counters) -> bool {
        match *self {
            Counted::Audio { bytes } => {
                c.audio_frames += 1;
                c.audio_bytes += bytes;
            }
            Counted::Video { bytes, frame_end, gap } => {
                c.video_bytes += bytes;
                c.video_gaps += u64::from(gap);
                c.video_frames += u64::from(frame_end);
                return frame_end;
            }
            Counted::Ignored | Counted::NotRtp => {}
        }
        false
    }
}

#[derive(Debug)]
pub struct Light {
    video_pt: u8,
    audio_pt: Option<u8>,
    video_ssrc: Option<u32>,
    audio_ssrc: Option<u32>,
    last_video_seq: Option<u16>,
}

impl Light {
    pub fn new(video_pt: u8, audio_pt: Option<u8>) -> Self {
        Self { video_pt, audio_pt, video_ssrc: None, audio_ssrc: None, last_video_seq: None }
    }

    pub fn count(&mut self, d: &[u8]) -> Counted {
        // RFC 7983 demultiplexing: RTP and RTCP start with 128..=191; RTCP's packet types 192..=223.
        if d.len() < 12 || !(128..=191).contains(&d[0]) || (192..=223).contains(&d[1]) {
            return Counted::NotRtp;
        }
        let Some(header) = header_len(d) else { return Counted::Ignored };
        let Some(bytes) = d.len().checked_sub(header + SRTP_TAG) else { return Counted::Ignored };
        let (pt, marker) = (d[1] & 0x7f, d[1] & 0x80 != 0);
        let seq = u16::from_be_bytes([d[2], d[3]]);
        let ssrc = u32::from_be_bytes([d[8], d[9], d[10], d[11]]);
        if pt == self.video_pt {
            if *self.video_ssrc.get_or_insert(ssrc) != ssrc {
                return Counted::Ignored;
            }
            let gap = match self.last_video_seq {
                None => false,
                Some(last) => match seq.wrapping_sub(last) {
                    1 => false,
                    d if d < 0x8000 && d != 0 => true,
                    _ => return Counted::Ignored, // a duplicate or a late packet
                },
            };
            self.last_video_seq = Some(seq);
            Counted::Video { bytes: bytes as u64, frame_end: marker, gap }
        } else if Some(pt) == self.audio_pt && *self.audio_ssrc.get_or_insert(ssrc) == ssrc {
            Counted::Audio { bytes: bytes as u64 }
        } else {
            Counted::Ignored
        }
    }
}

/// The RTP header's length: fixed part, CSRCs, header extension (RFC 3550 5.1, 5.3.1).
fn header_len(d: &[u8]) -> Option<usize> {
    let mut len = 12 + 4 * usize::from(d[0] & 0x0f);
    if d[0] & 0x10 != 0 {
        let words = d.get(len + 2..len + 4)?;
        len += 4 + 4 * usize::from(u16::from_be_bytes([words[0], words[1]]));
    }
    (len <= d.len()).then_some(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtp(pt: u8, marker: bool, seq: u16, ssrc: u32, payload: usize) -> Vec<u8> {
        let mut p = vec![0x90, pt | if marker { 0x80 } else { 0 }];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 1]);
        p.extend_from_slice(&ssrc.to_be_bytes());
        // A one-word header extension (RFC 8285 one-byte form).
        p.extend_from_slice(&[0xbe, 0xde, 0, 1, 0x10, 0x01, 0, 0]);
        p.extend(std::iter::repeat_n(0xaa, payload + SRTP_TAG));
        p
    }

    #[test]
    fn counts_frames_gaps_and_audio_and_leaves_the_rest_to_str0m() {
        let mut l = Light::new(96, Some(111));
        assert_eq!(
            l.count(&rtp(96, false, 65_535, 7, 1000)),
            Counted::Video { bytes: 1000, frame_end: false, gap: false }
        );
        assert_eq!(l.count(&rtp(96, true, 0, 7, 500)), Counted::Video { bytes: 500, frame_end: true, gap: false });
        assert_eq!(l.count(&rtp(96, true, 0, 7, 500)), Counted::Ignored, "a duplicate");
        assert_eq!(l.count(&rtp(96, true, 3, 7, 500)), Counted::Video { bytes: 500, frame_end: true, gap: true });
        assert_eq!(l.count(&rtp(96, false, 2, 7, 500)), Counted::Ignored, "late");
        assert_eq!(l.count(&rtp(96, false, 4, 8, 500)), Counted::Ignored, "another SSRC");
        assert_eq!(l.count(&rtp(111, true, 9, 9, 80)), Counted::Audio { bytes: 80 });
        assert_eq!(l.count(&rtp(97, false, 9, 10, 80)), Counted::Ignored, "RTX");
        let mut rtcp = rtp(0, false, 0, 7, 20);
        rtcp[1] = 201; // a receiver report
        assert_eq!(l.count(&rtcp), Counted::NotRtp);
        assert_eq!(l.count(&[0, 1, 0, 0]), Counted::NotRtp, "STUN");
        assert_eq!(l.count(&[22, 254, 253, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), Counted::NotRtp, "DTLS");
    }
}

//! Reading a WHIP publisher's SDP offer: which H.264 and Opus formats we relay, and the offer trimmed to
//! them, so webrtcbin's answer accepts exactly those.
//!
//! We relay without decoding, so what the publisher sends is what every viewer decodes: H.264
//! constrained-baseline or baseline (every decoder) or main (browsers; not baseline-only decoders), never
//! High (headless Chromium and many software decoders cannot play it), and Opus.

use gstreamer_sdp as gst_sdp;

use crate::media::offer::negotiate::{
    direction, fmtp_param, h264_formats, kept_mline, malformed, offered_names, parse_offer, payload_types, rtpmap,
    trimmed,
};
use crate::media::offer::sections::{SetAside, why_unused};
use crate::media::{H264Profile, MediaError};

/// What a publisher will send, by payload type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishPlan {
    pub video_pt: u8,
    pub profile: H264Profile,
    pub profile_level_id: String,
    pub audio_pt: Option<u8>,
    /// The `a=mid` of each m-line of the trimmed offer (empty when absent), and the publisher's ICE ufrag.
    pub mids: Vec<String>,
    pub ice_ufrag: String,
    /// Offered sections not relayed: trimmed off the offer, rejected in the answer.
    pub aside: SetAside,
}

/// How an H.264 format ranks for relaying; `None`: not relayed.
fn relay_rank(plid: &str) -> Option<(u8, H264Profile)> {
    if plid.len() != 6 || !plid.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let idc = u8::from_str_radix(&plid[0..2], 16).ok()?;
    let iop = u8::from_str_radix(&plid[2..4], 16).ok()?;
    match idc {
        0x42 if iop & 0x40 != 0 => Some((3, H264Profile::ConstrainedBaseline)),
        // Baseline without constraint_set1 may in theory use FMO/ASO; no real encoder does.
        0x42 => Some((2, H264Profile::ConstrainedBaseline)),
        0x4d => Some((1, H264Profile::Main)),
        _ => None,
    }
}

/// The best relayable H.264 format of a video section: (payload type, profile, profile-level-id).
fn pick_relayable(media: &gst_sdp::SDPMediaRef) -> Option<(u8, H264Profile, String)> {
    let mut best: Option<(u8, u8, H264Profile, String)> = None;
    for (pt, mode_1, plid) in h264_formats(media) {
        let Some((rank, profile)) = relay_rank(&plid) else { continue };
        let rank = rank + if mode_1 { 10 } else { 0 };
        if best.as_ref().is_none_or(|(r, ..)| rank > *r) {
            best = Some((rank, pt, profile, plid));
        }
    }
    best.map(|(_, pt, profile, plid)| (pt, profile, plid))
}

fn no_relayable_h264(media: &gst_sdp::SDPMediaRef) -> MediaError {
    MediaError::NoUsableCodec(format!(
        "no H.264 glasscast can relay in the offer's video section: it relays H.264 constrained-baseline, \
         baseline or main (not High: many viewers cannot decode it), packetization-mode 1 or 0, without \
         re-encoding; offered: {}. OBS: set the encoder's profile to baseline or main; ffmpeg: -profile:v baseline",
        offered_names(media)
    ))
}

/// Parses and checks a WHIP offer for a stream with (`audio`) or without an audio track. The first video
/// section that sends relayable H.264 is used, and the first audio section when the stream has audio; every
/// other section (audio for a stream without it, more video or audio, a data channel) is set aside: refused
/// in the answer, never reaching webrtcbin. Returns the trimmed offer (chosen formats and their RTX only)
/// and the plan, whose mids are the trimmed offer's.
pub fn plan_publish(text: &str, audio: bool) -> Result<(gst_sdp::SDPMessage, PublishPlan), MediaError> {
    let (msg, ice_ufrag) = parse_offer(text)?;
    let mut video: Option<(u32, u8, H264Profile, String)> = None;
    let mut opus: Option<(u32, u8)> = None;
    let mut refused = Vec::new();
    let mut first_error: Option<MediaError> = None;
    for (i, media) in msg.medias().enumerate() {
        let mline = i as u32;
        let bundle_only = media.attributes().any(|a| a.key() == "bundle-only");
        if media.port() == 0 && !bundle_only {
            refused.push((i, "the offer rejects it (port 0)".to_owned()));
            continue;
        }
        let dir = direction(media);
        let kind = media.media().unwrap_or_default();
        let sends = dir == "sendonly" || dir == "sendrecv";
        if (kind == "video" || kind == "audio") && !sends {
            first_error.get_or_insert_with(|| {
                malformed(format!("the {kind} section is {dir}; a WHIP offer sends (sendonly)"))
            });
            refused.push((i, format!("the publisher's {kind} section is {dir}: it sends nothing")));
            continue;
        }
        match kind {
            "video" if video.is_none() => match pick_relayable(media) {
                Some((pt, profile, plid)) => video = Some((mline, pt, profile, plid)),
                None => {
                    first_error.get_or_insert_with(|| no_relayable_h264(media));
                    refused.push((i, format!("no relayable H.264; offered: {}", offered_names(media))));
                }
            },
            "audio" if opus.is_none() && audio => {
                let pt = payload_types(media)
                    .find(|pt| rtpmap(media, *pt).is_some_and(|(n, c)| n.eq_ignore_ascii_case("opus") && c == 48_000))
                    .ok_or_else(|| {
                        MediaError::NoUsableCodec(format!(
                            "no Opus in the offer's audio section: glasscast relays Opus/48000/2; offered: {}",
                            offered_names(media)
                        ))
                    })?;
                opus = Some((mline, pt));
            }
            _ => {
                let taken = if kind == "video" { video.is_some() } else { opus.is_some() };
                refused.push((i, why_unused(kind, taken, audio)));
            }
        }
    }
    let Some((vline, video_pt, profile, profile_level_id)) = video else {
        return Err(first_error.unwrap_or_else(|| {
            MediaError::NoUsableCodec("the offer has no video section: a WHIP stream relays H.264 video".into())
        }));
    };
    let aside = SetAside::new(text, refused);
    let (mut msg, mids) = trimmed(msg, text, &aside)?;
    keep_only(&mut msg, kept_mline(&aside, vline)?, video_pt)?;
    if let Some((aline, pt)) = opus {
        keep_only(&mut msg, kept_mline(&aside, aline)?, pt)?;
    }
    let audio_pt = opus.map(|(_, pt)| pt);
    Ok((msg, PublishPlan { video_pt, profile, profile_level_id, audio_pt, mids, ice_ufrag, aside }))
}

/// Removes every format of m-line `idx` but `pt` and its RTX (`a=fmtp:X apt=pt`), with their attributes.
fn keep_only(msg: &mut gst_sdp::SDPMessage, idx: u32, pt: u8) -> Result<(), MediaError> {
    let media = msg.media_mut(idx).ok_or_else(|| malformed("an m-line vanished"))?;
    let rtx: Vec<u8> = payload_types(media)
        .filter(|p| fmtp_param(media, *p, "apt").and_then(|a| a.parse::<u8>().ok()) == Some(pt))
        .collect();
    let keep = |p: u8| p == pt || rtx.contains(&p);
    for i in (0..media.formats_len()).rev() {
        let drop = media.format(i).and_then(|f| f.parse::<u8>().ok()).is_none_or(|p| !keep(p));
        if drop {
            media.remove_format(i).map_err(|e| malformed(format!("trimming formats: {e}")))?;
        }
    }
    for i in (0..media.attributes_len()).rev() {
        let Some(a) = media.attribute(i) else { continue };
        let per_format = matches!(a.key(), "rtpmap" | "fmtp" | "rtcp-fb");
        let format = a.value().and_then(|v| v.split_whitespace().next()).and_then(|p| p.parse::<u8>().ok());
        // `a=rtcp-fb:* ...` applies to all formats: keep it.
        if per_format && format.is_some_and(|p| !keep(p)) {
            media.remove_attribute(i).map_err(|e| malformed(format!("trimming attributes: {e}")))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n\
        a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=fingerprint:sha-256 AA:BB\r\na=setup:actpass\r\n";

    fn browser_like(dir: &str) -> String {
        gstreamer::init().expect("gstreamer");
        format!(
            "{HEAD}m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103 106 45\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na={dir}\r\n\
             a=rtpmap:96 VP8/90000\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n\
             a=rtpmap:102 H264/90000\r\na=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r\n\
             a=rtpmap:103 rtx/90000\r\na=fmtp:103 apt=102\r\n\
             a=rtpmap:106 H264/90000\r\na=rtcp-fb:106 nack pli\r\na=fmtp:106 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n\
             a=rtpmap:45 AV1/90000\r\n\
             m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na={dir}\r\n\
             a=rtpmap:111 opus/48000/2\r\na=rtpmap:0 PCMU/8000\r\n"
        )
    }

    fn plan_publish_av(text: &str) -> Result<(gst_sdp::SDPMessage, PublishPlan), MediaError> {
        plan_publish(text, true)
    }

    #[test]
    fn a_browser_offer_relays_constrained_baseline_and_opus_and_is_trimmed_to_them() {
        let (msg, plan) = plan_publish_av(&browser_like("sendonly")).expect("usable");
        assert_eq!(
            plan,
            PublishPlan {
                video_pt: 106,
                profile: H264Profile::ConstrainedBaseline,
                profile_level_id: "42e01f".into(),
                audio_pt: Some(111),
                mids: vec!["0".into(), "1".into()],
                ice_ufrag: "abcd".into(),
                aside: plan.aside.clone(),
            }
        );
        assert!(plan.aside.is_empty(), "every section is used");
        let text = msg.as_text().expect("text");
        assert!(text.contains("m=video 9 UDP/TLS/RTP/SAVPF 106\r\n"), "{text}");
        assert!(text.contains("a=rtcp-fb:106 nack pli") && !text.contains("VP8") && !text.contains("AV1"));
        assert!(!text.contains("apt=102") && !text.contains("rtpmap:103"), "RTX of a dropped format goes too");
        assert!(text.contains("m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n") && !text.contains("PCMU"), "{text}");
    }

    #[test]
    fn what_cannot_be_relayed_is_named() {
        let vp8_only = browser_like("sendonly").replace("102 103 106 45", "").replace("96 97 ", "96 97");
        let e = plan_publish_av(&vp8_only).expect_err("no H.264").to_string();
        assert!(e.contains("offered: VP8") && e.contains("baseline or main"), "{e}");
        let high = browser_like("sendonly").replace("42001f", "64001f").replace("42e01f", "640032");
        let e = plan_publish_av(&high).expect_err("only High").to_string();
        assert!(e.contains("not High") && e.contains("H264"), "{e}");
        let no_opus = browser_like("sendonly").replace("111 0", "0");
        assert!(plan_publish_av(&no_opus).expect_err("no Opus").to_string().contains("offered: PCMU"));
        let e = plan_publish_av(&browser_like("recvonly")).expect_err("a viewer's offer").to_string();
        assert!(e.contains("recvonly") && e.contains("sends"), "{e}");
    }

    #[test]
    fn main_is_relayed_when_it_is_all_there_is() {
        let main = browser_like("sendonly").replace("42001f", "4d001f").replace("42e01f", "4d0032");
        let (_, plan) = plan_publish_av(&main).expect("usable");
        assert_eq!((plan.video_pt, plan.profile), (102, H264Profile::Main));
    }

    #[test]
    fn sections_the_stream_does_not_want_are_set_aside_not_refused() {
        // Audio into a stream without audio: the audio section goes, the video is relayed.
        let (msg, plan) = plan_publish(&browser_like("sendonly"), false).expect("video alone is relayed");
        assert_eq!((plan.video_pt, plan.audio_pt, plan.mids.clone()), (106, None, vec!["0".to_owned()]));
        assert_eq!(msg.medias_len(), 1);
        assert!(plan.aside.describe().contains("section 1 (audio, mid 1): the stream has no audio"));
        // A second video section and a data channel, as OBS with two sources or a browser client might send.
        let extra = format!(
            "{}m=video 9 UDP/TLS/RTP/SAVPF 106\r\nc=IN IP4 0.0.0.0\r\na=mid:2\r\na=sendonly\r\n\
             a=rtpmap:106 H264/90000\r\na=fmtp:106 packetization-mode=1;profile-level-id=42e01f\r\n\
             m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:3\r\n\
             a=sctp-port:5000\r\n",
            browser_like("sendonly").replace("BUNDLE 0 1", "BUNDLE 0 1 2 3")
        );
        let (msg, plan) = plan_publish(&extra, true).expect("the first video and audio are relayed");
        assert_eq!((plan.video_pt, plan.audio_pt), (106, Some(111)));
        assert_eq!(plan.mids, vec!["0", "1"]);
        assert_eq!(msg.medias_len(), 2);
        let why = plan.aside.describe();
        assert!(why.contains("section 2 (video, mid 2): glasscast carries one video track"), "{why}");
        assert!(why.contains("section 3 (application, mid 3): glasscast opens no data channels"), "{why}");
        assert!(msg.as_text().expect("text").contains("a=group:BUNDLE 0 1\r\n"));
    }

    #[test]
    fn a_video_section_that_cannot_be_relayed_is_passed_over_for_one_that_can() {
        let vp8_first = browser_like("sendonly").replace("a=mid:1", "a=mid:1\r\na=x").replace(
            "m=audio",
            "m=video 9 UDP/TLS/RTP/SAVPF 106\r\nc=IN IP4 0.0.0.0\r\na=mid:v2\r\na=sendonly\r\n\
             a=rtpmap:106 H264/90000\r\na=fmtp:106 packetization-mode=1;profile-level-id=42e01f\r\nm=audio",
        );
        let vp8_first = vp8_first.replacen("96 97 102 103 106 45", "96", 1);
        let (_, plan) = plan_publish(&vp8_first, true).expect("the second video section relays");
        assert_eq!(plan.mids, vec!["v2", "1"]);
        assert!(plan.aside.describe().contains("section 0 (video, mid 0): no relayable H.264; offered: VP8"));
    }
}

//! Reading a viewer's SDP offer: is it usable, and which payload types do we send under.
//!
//! We send H.264 constrained-baseline (decodable by every baseline, main and high decoder) and Opus. For
//! video we pick the offered H.264 format with packetization-mode=1 (else mode 0) whose profile is closest to
//! what we send, in the offer's order among equals; its payload type and profile-level-id are restated on our
//! RTP caps.

use gstreamer_sdp as gst_sdp;

use super::sections::{SetAside, why_unused};
use crate::config::VideoCodec;
use crate::media::MediaError;

/// The H.264 profile a stream sends: what we encode ourselves, or what a passed-through feed carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum H264Profile {
    /// Decodable by every baseline, main and high decoder.
    #[default]
    ConstrainedBaseline,
    /// A passed-through feed's main profile (no B-frames): needs a main or high decoder.
    Main,
}

impl H264Profile {
    pub fn name(self) -> &'static str {
        match self {
            Self::ConstrainedBaseline => "constrained-baseline",
            Self::Main => "main",
        }
    }
}

/// What we will send to this viewer, by offer m-line index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferPlan {
    pub video: VideoPick,
    pub audio: Option<AudioPick>,
    /// The `a=mid` of each m-line of the trimmed offer, in order (empty string when absent).
    pub mids: Vec<String>,
    pub ice_ufrag: String,
    /// Offered sections we do not send on: trimmed off the offer, rejected in the answer.
    pub aside: SetAside,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoPick {
    pub mline: u32,
    /// H.264, or VP8 for a viewer that has no usable H.264 (when the stream allows it).
    pub codec: VideoCodec,
    pub pt: u8,
    pub profile_level_id: String,
    /// The id the offer gives the playout-delay RTP header extension (one-byte ids 1-14 only).
    pub playout_delay_ext: Option<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioPick {
    pub mline: u32,
    pub pt: u8,
}

/// The id of a one-byte RTP header extension (`a=extmap:<id>[/<direction>] <uri>`), 1-14.
fn extmap_id(media: &gst_sdp::SDPMediaRef, uri: &str) -> Option<u8> {
    media.attributes().filter(|a| a.key() == "extmap").find_map(|a| {
        let mut parts = a.value()?.split_whitespace();
        let id = parts.next()?.split('/').next()?.parse::<u8>().ok()?;
        (parts.next() == Some(uri) && (1..=14).contains(&id)).then_some(id)
    })
}

/// The playout-delay RTP header extension (`webrtcbin::playout_delay` writes it; the forwarding transport
/// has str0m write it) as an offer's `a=extmap` names it.
pub const PLAYOUT_DELAY_URI: &str = "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay";

pub(in crate::media) fn malformed(why: impl Into<String>) -> MediaError {
    MediaError::MalformedOffer(why.into())
}

/// How well a decoder for `profile-level-id` plays a stream of `profile`; `None`: not at all.
fn profile_rank(plid: &str, profile: H264Profile) -> Option<u8> {
    if plid.len() != 6 || !plid.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let idc = u8::from_str_radix(&plid[0..2], 16).ok()?;
    let iop = u8::from_str_radix(&plid[2..4], 16).ok()?;
    if profile == H264Profile::Main {
        return match idc {
            0x4d => Some(4),
            // High and its extensions decode main too; baseline decoders do not.
            0x64 | 0x6e | 0x7a | 0xf4 => Some(3),
            _ => None,
        };
    }
    match idc {
        // constraint_set1 makes baseline "constrained baseline": exactly what we send.
        0x42 if iop & 0x40 != 0 => Some(4),
        0x42 => Some(3),
        0x4d => Some(2),
        // High and its extensions decode constrained baseline too.
        0x64 | 0x6e | 0x7a | 0xf4 => Some(1),
        _ => None,
    }
}

pub(in crate::media) fn direction(media: &gst_sdp::SDPMediaRef) -> &'static str {
    for a in media.attributes() {
        match a.key() {
            "sendrecv" => return "sendrecv",
            "sendonly" => return "sendonly",
            "recvonly" => return "recvonly",
            "inactive" => return "inactive",
            _ => {}
        }
    }
    "sendrecv"
}

/// `a=rtpmap:<pt> <name>/<clock>[/<channels>]` for `pt`: (name, clock rate).
pub(in crate::media) fn rtpmap(media: &gst_sdp::SDPMediaRef, pt: u8) -> Option<(String, u32)> {
    media.attributes().filter(|a| a.key() == "rtpmap").find_map(|a| {
        let (p, rest) = a.value()?.trim().split_once(' ')?;
        if p.parse::<u8>().ok()? != pt {
            return None;
        }
        let mut parts = rest.trim().split('/');
        let name = parts.next()?.to_owned();
        let clock = parts.next()?.parse().ok()?;
        Some((name, clock))
    })
}

/// The `a=fmtp:<pt> k=v;k=v` parameter `key` for `pt`.
pub(in crate::media) fn fmtp_param(media: &gst_sdp::SDPMediaRef, pt: u8, key: &str) -> Option<String> {
    media.attributes().filter(|a| a.key() == "fmtp").find_map(|a| {
        let (p, params) = a.value()?.trim().split_once(' ')?;
        if p.parse::<u8>().ok()? != pt {
            return None;
        }
        params.split(';').find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            k.trim().eq_ignore_ascii_case(key).then(|| v.trim().to_owned())
        })
    })
}

/// The m-line's RTP payload types; anything that is not a 7-bit number (RFC 3550) is ignored.
pub(in crate::media) fn payload_types(media: &gst_sdp::SDPMediaRef) -> impl Iterator<Item = u8> + '_ {
    media.formats().filter_map(|f| f.parse::<u8>().ok()).filter(|pt| *pt <= 127)
}

pub(in crate::media) fn offered_names(media: &gst_sdp::SDPMediaRef) -> String {
    let mut names: Vec<String> = Vec::new();
    for pt in payload_types(media) {
        let name = match rtpmap(media, pt) {
            Some((name, _)) => name,
            // Static payload types (RFC 3551) need no rtpmap.
            None if pt == 0 => "PCMU".into(),
            None if pt == 8 => "PCMA".into(),
            None => format!("payload type {pt}"),
        };
        if !names.iter().any(|n| n.eq_ignore_ascii_case(&name)) {
            names.push(name);
        }
    }
    if names.is_empty() { "nothing".into() } else { names.join(", ") }
}

/// The m-line's H.264 formats: (payload type, packetization-mode 1 (else 0), profile-level-id in lowercase).
/// Formats with another packetization mode are left out.
pub(in crate::media) fn h264_formats(media: &gst_sdp::SDPMediaRef) -> impl Iterator<Item = (u8, bool, String)> + '_ {
    payload_types(media).filter_map(|pt| {
        let (name, clock) = rtpmap(media, pt)?;
        if !name.eq_ignore_ascii_case("H264") || clock != 90_000 {
            return None;
        }
        // Mode 1 (FU-A/STAP-A) is what we send. Mode 0 (absent) is accepted when nothing better is offered:
        // gst-plugins-rs whepclientsrc offers only that, and its depayloader (like libwebrtc's) takes FU-A.
        let mode_1 = match fmtp_param(media, pt, "packetization-mode").as_deref() {
            Some("1") => true,
            None | Some("0") => false,
            Some(_) => return None,
        };
        // RFC 6184: absent profile-level-id means 42000a (baseline, level 1).
        let plid = fmtp_param(media, pt, "profile-level-id").unwrap_or_else(|| "42000a".into()).to_ascii_lowercase();
        Some((pt, mode_1, plid))
    })
}

fn pick_h264(media: &gst_sdp::SDPMediaRef, mline: u32, profile: H264Profile) -> Option<VideoPick> {
    let mut best: Option<(u8, VideoPick)> = None;
    for (pt, mode_1, plid) in h264_formats(media) {
        let Some(rank) = profile_rank(&plid, profile).map(|r| r + if mode_1 { 10 } else { 0 }) else { continue };
        if best.as_ref().is_none_or(|(r, _)| rank > *r) {
            let pick =
                VideoPick { mline, codec: VideoCodec::H264, pt, profile_level_id: plid, playout_delay_ext: None };
            best = Some((rank, pick));
        }
    }
    best.map(|(_, pick)| pick)
}

/// The first VP8/90000 payload type of a video section.
fn pick_vp8(media: &gst_sdp::SDPMediaRef, mline: u32) -> Option<VideoPick> {
    payload_types(media).find_map(|pt| {
        let (name, clock) = rtpmap(media, pt)?;
        (name.eq_ignore_ascii_case("VP8") && clock == 90_000).then(|| VideoPick {
            mline,
            codec: VideoCodec::Vp8,
            pt,
            profile_level_id: String::new(),
            playout_delay_ext: None,
        })
    })
}

/// The video section's pick: H.264 when it has a usable one, else VP8 when `codecs` allows it.
fn pick_video(
    media: &gst_sdp::SDPMediaRef,
    mline: u32,
    profile: H264Profile,
    codecs: &[VideoCodec],
) -> Result<VideoPick, MediaError> {
    let vp8 = codecs.contains(&VideoCodec::Vp8);
    pick_h264(media, mline, profile).or_else(|| vp8.then(|| pick_vp8(media, mline)).flatten()).ok_or_else(|| {
        MediaError::NoUsableCodec(format!(
            "no usable {} in the offer's video section: this stream sends H.264 ({}, packetization-mode 1 or \
             0){}; offered: {}",
            if vp8 { "H.264 or VP8" } else { "H.264" },
            profile.name(),
            if vp8 { " or VP8" } else { " only (codecs = [\"h264\"])" },
            offered_names(media)
        ))
    })
}

pub(in crate::media) fn pick_opus(media: &gst_sdp::SDPMediaRef, mline: u32) -> Option<AudioPick> {
    payload_types(media).find_map(|pt| {
        let (name, clock) = rtpmap(media, pt)?;
        (name.eq_ignore_ascii_case("opus") && clock == 48_000).then_some(AudioPick { mline, pt })
    })
}

/// The checks every offer passes (WHEP and WHIP): SDP that parses, with media sections, ICE credentials,
/// a DTLS fingerprint and a setup role. Returns it with its ICE ufrag.
pub(in crate::media) fn parse_offer(text: &str) -> Result<(gst_sdp::SDPMessage, String), MediaError> {
    if !text.trim_start().starts_with("v=0") {
        return Err(malformed("it does not start with `v=0`"));
    }
    let msg = gst_sdp::SDPMessage::parse_buffer(text.as_bytes())
        .map_err(|e| malformed(format!("it does not parse ({e})")))?;
    if msg.medias_len() == 0 {
        return Err(malformed("it has no media sections (m= lines)"));
    }
    let session_ufrag = msg.attribute_val("ice-ufrag");
    let session_pwd = msg.attribute_val("ice-pwd").is_some();
    let session_fp = msg.attribute_val("fingerprint").is_some();
    // With BUNDLE, one m-line's ICE credentials and fingerprint serve all.
    let ice_ufrag = session_ufrag
        .filter(|_| session_pwd)
        .or_else(|| {
            msg.medias().find(|m| m.attribute_val("ice-pwd").is_some()).and_then(|m| m.attribute_val("ice-ufrag"))
        })
        .ok_or_else(|| malformed("it has no a=ice-ufrag/a=ice-pwd"))?
        .to_owned();
    if !session_fp && msg.medias().all(|m| m.attribute_val("fingerprint").is_none()) {
        return Err(malformed("it has no a=fingerprint (DTLS is required)"));
    }
    // webrtcbin fails create-answer with an empty GError without it; say what is missing instead.
    let setup = msg.attribute_val("setup").or_else(|| msg.medias().find_map(|m| m.attribute_val("setup")));
    match setup {
        Some("actpass" | "active" | "passive") => {}
        Some(other) => return Err(malformed(format!("a=setup:{other} is not actpass, active or passive"))),
        None => return Err(malformed("it has no a=setup (an offer says a=setup:actpass, RFC 8842)")),
    }
    Ok((msg, ice_ufrag))
}

/// Parses and checks a WHEP offer for a constrained-baseline stream. `with_audio`: whether the stream has
/// an audio track to send.
pub fn plan_offer(text: &str, with_audio: bool) -> Result<(gst_sdp::SDPMessage, OfferPlan), MediaError> {
    plan_offer_for(text, with_audio, H264Profile::ConstrainedBaseline)
}

/// [`plan_offer`] for a stream of `profile`. Sections we do not send on (a second video section, audio for a
/// stream without it, audio the viewer only sends, a data channel) are set aside: the returned message and
/// the plan's m-line indexes and mids are those of the trimmed offer, and `plan.aside` restores them in the
/// answer as rejected.
pub fn plan_offer_for(
    text: &str,
    with_audio: bool,
    profile: H264Profile,
) -> Result<(gst_sdp::SDPMessage, OfferPlan), MediaError> {
    plan_offer_with(text, with_audio, profile, &[VideoCodec::H264])
}

/// [`plan_offer_for`] with the video encodings the stream allows (`codecs`: VP8 for an offer without H.264).
pub fn plan_offer_with(
    text: &str,
    with_audio: bool,
    profile: H264Profile,
    codecs: &[VideoCodec],
) -> Result<(gst_sdp::SDPMessage, OfferPlan), MediaError> {
    let (msg, ice_ufrag) = parse_offer(text)?;
    let mut video: Option<VideoPick> = None;
    let mut audio: Option<AudioPick> = None;
    let mut refused = Vec::new();
    for (i, media) in msg.medias().enumerate() {
        let mline = i as u32;
        let kind = media.media().unwrap_or_default();
        // Port 0 rejects an m-line, unless it is bundle-only (JSEP: it shares the first m-line's transport).
        let bundle_only = media.attributes().any(|a| a.key() == "bundle-only");
        if media.port() == 0 && !bundle_only {
            refused.push((i, "the offer rejects it (port 0)".to_owned()));
            continue;
        }
        let dir = direction(media);
        match kind {
            "video" if video.is_none() => {
                if dir == "sendonly" || dir == "inactive" {
                    return Err(malformed(format!("the video section is {dir}; a WHEP offer receives (recvonly)")));
                }
                let mut pick = pick_video(media, mline, profile, codecs)?;
                pick.playout_delay_ext = extmap_id(media, PLAYOUT_DELAY_URI);
                video = Some(pick);
            }
            "audio" if audio.is_none() && with_audio && (dir == "sendonly" || dir == "inactive") => {
                refused.push((i, format!("the viewer's audio section is {dir}: it receives nothing")));
            }
            "audio" if audio.is_none() && with_audio => {
                audio = Some(pick_opus(media, mline).ok_or_else(|| {
                    MediaError::NoUsableCodec(format!(
                        "no usable Opus in the offer's audio section: glasscast sends Opus/48000/2; offered: {}",
                        offered_names(media)
                    ))
                })?);
            }
            _ => {
                let taken = if kind == "video" { video.is_some() } else { audio.is_some() };
                refused.push((i, why_unused(kind, taken, with_audio)));
            }
        }
    }
    let mut video = video.ok_or_else(|| {
        MediaError::NoUsableCodec("the offer has no video section: glasscast sends H.264 video".into())
    })?;
    let aside = SetAside::new(text, refused);
    let (msg, mids) = trimmed(msg, text, &aside)?;
    video.mline = kept_mline(&aside, video.mline)?;
    if let Some(a) = audio.as_mut() {
        a.mline = kept_mline(&aside, a.mline)?;
    }
    Ok((msg, OfferPlan { video, audio, mids, ice_ufrag, aside }))
}

/// The offer as the media stack sees it (`aside`'s sections removed), and its mids.
pub(in crate::media) fn trimmed(
    msg: gst_sdp::SDPMessage,
    text: &str,
    aside: &SetAside,
) -> Result<(gst_sdp::SDPMessage, Vec<String>), MediaError> {
    let msg = if aside.is_empty() { msg } else { parse_offer(&aside.trim(text))?.0 };
    let mids = msg.medias().map(|m| m.attribute_val("mid").unwrap_or_default().to_owned()).collect();
    Ok((msg, mids))
}

/// A used section's m-line index in the trimmed offer.
pub(in crate::media) fn kept_mline(aside: &SetAside, mline: u32) -> Result<u32, MediaError> {
    aside.kept(mline as usize).map(|i| i as u32).ok_or_else(|| malformed("a used section was set aside"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const HEAD: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n\
        a=fingerprint:sha-256 AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99\r\n\
        a=setup:actpass\r\n";

    /// A Chromium-style offer: several H.264 profiles with level-asymmetry-allowed, VP8 first.
    pub fn chromium_offer() -> String {
        format!(
            "{HEAD}m=video 9 UDP/TLS/RTP/SAVPF 96 102 104 106 108 127\r\nc=IN IP4 0.0.0.0\r\n\
             a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=mid:0\r\na=recvonly\r\na=rtcp-mux\r\n\
             a=extmap:4 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n\
             a=extmap:5 http://www.webrtc.org/experiments/rtp-hdrext/playout-delay\r\n\
             a=rtpmap:96 VP8/90000\r\n\
             a=rtpmap:102 H264/90000\r\na=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r\n\
             a=rtpmap:104 H264/90000\r\na=fmtp:104 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f\r\n\
             a=rtpmap:106 H264/90000\r\na=fmtp:106 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n\
             a=rtpmap:108 H264/90000\r\na=fmtp:108 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f\r\n\
             a=rtpmap:127 H264/90000\r\na=fmtp:127 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=f4001f\r\n\
             m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\nc=IN IP4 0.0.0.0\r\n\
             a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=mid:1\r\na=recvonly\r\na=rtcp-mux\r\n\
             a=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\na=rtpmap:0 PCMU/8000\r\n"
        )
    }

    /// A gst-plugins-rs whepclientsrc-style offer: 42e016 without level-asymmetry-allowed, PT 96/97.
    fn gstreamer_offer() -> String {
        format!(
            "{HEAD}m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\n\
             a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=mid:video0\r\na=recvonly\r\n\
             a=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1;profile-level-id=42e016\r\n\
             m=audio 9 UDP/TLS/RTP/SAVPF 97\r\nc=IN IP4 0.0.0.0\r\n\
             a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=mid:audio1\r\na=recvonly\r\n\
             a=rtpmap:97 OPUS/48000/2\r\n"
        )
    }

    #[test]
    fn chromium_offer_picks_constrained_baseline_mode_1() {
        gstreamer::init().expect("gstreamer");
        let (_, plan) = plan_offer(&chromium_offer(), true).expect("usable");
        assert_eq!(
            plan.video,
            VideoPick {
                mline: 0,
                codec: VideoCodec::H264,
                pt: 106,
                profile_level_id: "42e01f".into(),
                playout_delay_ext: Some(5)
            }
        );
        assert_eq!(plan.audio, Some(AudioPick { mline: 1, pt: 111 }));
        assert_eq!(plan.mids, vec!["0", "1"]);
        assert_eq!(plan.ice_ufrag, "abcd");
    }

    #[test]
    fn gstreamer_offer_without_level_asymmetry_is_accepted() {
        gstreamer::init().expect("gstreamer");
        let (_, plan) = plan_offer(&gstreamer_offer(), true).expect("usable");
        assert_eq!(
            plan.video,
            VideoPick {
                mline: 0,
                codec: VideoCodec::H264,
                pt: 96,
                profile_level_id: "42e016".into(),
                playout_delay_ext: None
            }
        );
        assert_eq!(plan.audio, Some(AudioPick { mline: 1, pt: 97 }));
    }

    #[test]
    fn stream_without_audio_ignores_the_audio_section() {
        gstreamer::init().expect("gstreamer");
        let (_, plan) = plan_offer(&gstreamer_offer(), false).expect("usable");
        assert_eq!(plan.audio, None);
    }

    #[test]
    fn falls_back_to_main_then_high_profile() {
        gstreamer::init().expect("gstreamer");
        let offer = chromium_offer()
            .replace("profile-level-id=42001f", "profile-level-id=640c1f")
            .replace("packetization-mode=1;profile-level-id=42e01f", "packetization-mode=1;profile-level-id=640032");
        let (_, plan) = plan_offer(&offer, true).expect("usable");
        assert_eq!(plan.video.pt, 108, "main (4d001f) beats high");
    }

    #[test]
    fn a_main_profile_stream_needs_a_main_or_high_decoder() {
        gstreamer::init().expect("gstreamer");
        let (_, plan) = plan_offer_for(&chromium_offer(), true, H264Profile::Main).expect("chromium offers main");
        assert_eq!(plan.video.profile_level_id, "4d001f");
        let baseline_only = gstreamer_offer();
        let err = plan_offer_for(&baseline_only, true, H264Profile::Main).expect_err("baseline only");
        assert!(matches!(&err, MediaError::NoUsableCodec(m) if m.contains("(main,")), "{err:?}");
    }

    #[test]
    fn vp8_only_offer_names_the_missing_codec() {
        gstreamer::init().expect("gstreamer");
        let offer = format!(
            "{HEAD}m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\na=ice-ufrag:a\r\na=ice-pwd:b\r\na=recvonly\r\n\
             a=rtpmap:96 VP8/90000\r\na=rtpmap:97 VP9/90000\r\n"
        );
        let err = plan_offer(&offer, true).expect_err("no H.264");
        let MediaError::NoUsableCodec(msg) = err else { panic!("wrong error {err:?}") };
        assert!(msg.contains("H.264") && msg.contains("VP8, VP9"), "{msg}");
    }

    #[test]
    fn packetization_mode_1_is_preferred_but_mode_0_is_accepted() {
        gstreamer::init().expect("gstreamer");
        // whepclientsrc's offer: H.264 without packetization-mode, behind VP8.
        let offer = format!(
            "{HEAD}m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\na=ice-ufrag:a\r\na=ice-pwd:b\r\na=recvonly\r\n\
             a=rtpmap:96 VP8/90000\r\na=rtpmap:97 H264/90000\r\na=fmtp:97 profile-level-id=42e016\r\n"
        );
        let (_, plan) = plan_offer(&offer, true).expect("mode 0 accepted");
        assert_eq!(plan.video.pt, 97);
        // Chromium offers both; mode 1 wins even over a closer profile in mode 0.
        let (_, plan) = plan_offer(&chromium_offer(), true).expect("usable");
        assert_eq!(plan.video.pt, 106);
        let bad_mode = offer.replace("profile-level-id=42e016", "packetization-mode=2;profile-level-id=42e016");
        assert!(matches!(plan_offer(&bad_mode, true), Err(MediaError::NoUsableCodec(_))));
    }

    #[test]
    fn payload_types_outside_7_bits_are_ignored() {
        gstreamer::init().expect("gstreamer");
        let offer = chromium_offer().replace("106", "200");
        let (_, plan) = plan_offer(&offer, true).expect("usable");
        assert_ne!(plan.video.pt, 200);
        let only = format!(
            "{HEAD}m=video 9 UDP/TLS/RTP/SAVPF 200\r\na=ice-ufrag:a\r\na=ice-pwd:b\r\na=recvonly\r\n\
             a=rtpmap:200 H264/90000\r\na=fmtp:200 packetization-mode=1;profile-level-id=42e01f\r\n"
        );
        assert!(matches!(plan_offer(&only, true), Err(MediaError::NoUsableCodec(_))));
    }

    #[test]
    fn audio_without_opus_names_what_was_offered() {
        gstreamer::init().expect("gstreamer");
        let offer = chromium_offer().replace("a=rtpmap:111 opus/48000/2\r\n", "a=rtpmap:111 G722/8000\r\n");
        let err = plan_offer(&offer, true).expect_err("no opus");
        assert!(err.to_string().contains("Opus") && err.to_string().contains("PCMU"), "{err}");
    }

    #[test]
    fn malformed_offers_say_what_is_wrong() {
        gstreamer::init().expect("gstreamer");
        let cases = [
            ("hello", "v=0"),
            ("v=0\r\n", "no media"),
            (&chromium_offer().replace("a=ice-ufrag:abcd\r\n", "")[..], "ice-ufrag"),
            (&chromium_offer().replace("a=fingerprint", "a=fingerprinx")[..], "fingerprint"),
            (&chromium_offer().replace("a=setup:actpass", "a=setupx:actpass")[..], "a=setup"),
            (&chromium_offer().replace("a=setup:actpass", "a=setup:holdconn")[..], "holdconn"),
            (&chromium_offer().replace("a=mid:0\r\na=recvonly", "a=mid:0\r\na=sendonly")[..], "sendonly"),
        ];
        for (offer, needle) in cases {
            match plan_offer(offer, true) {
                Err(MediaError::MalformedOffer(msg)) => assert!(msg.contains(needle), "{msg} lacks {needle}"),
                other => panic!("{needle}: expected MalformedOffer, got {other:?}"),
            }
        }
    }

    #[test]
    fn offer_without_video_is_unusable() {
        gstreamer::init().expect("gstreamer");
        let offer = format!(
            "{HEAD}m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=ice-ufrag:a\r\na=ice-pwd:b\r\na=recvonly\r\n\
             a=rtpmap:111 opus/48000/2\r\n"
        );
        let err = plan_offer(&offer, true).expect_err("no video");
        assert!(err.to_string().contains("no video section"), "{err}");
    }
}

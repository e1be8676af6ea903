//! SDP text fixes around str0m: offers put in the shape its parser takes, answers with one MediaStream.

/// Puts an offer in the shape str0m's strict parser takes; the webrtcbin transport takes these as they are:
/// - `a=rtpmap:<pt> OPUS/48000` (no channel count, as GStreamer's whepclientsrc offers it) becomes RFC 7587's
///   `opus/48000/2` (every Opus stream is declared with 2 channels);
/// - in each media section the `c=` and `b=` lines come right after `m=`, before the attributes (RFC 8866's
///   order; str0m drops the section otherwise).
pub(super) fn normalize_offer(offer: &str) -> String {
    let bare_opus = |l: &str| {
        l.strip_prefix("a=rtpmap:")
            .and_then(|r| r.split_once(' '))
            .is_some_and(|(_, enc)| enc.trim_end().eq_ignore_ascii_case("opus/48000"))
    };
    let mut out = String::with_capacity(offer.len() + 16);
    // Attribute lines of the current media section, held until its c=/b= lines are out.
    let mut held: Vec<String> = Vec::new();
    let mut in_media = false;
    let flush = |out: &mut String, held: &mut Vec<String>| held.drain(..).for_each(|l| out.push_str(&l));
    for raw in offer.lines() {
        let line = raw.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        let line = match line.split_once(' ') {
            Some((head, _)) if bare_opus(line) => format!("{head} opus/48000/2"),
            _ => line.to_owned(),
        };
        if line.starts_with("m=") {
            flush(&mut out, &mut held);
            in_media = true;
            out.push_str(&line);
            out.push_str("\r\n");
        } else if in_media && line.starts_with("a=") {
            held.push(format!("{line}\r\n"));
        } else {
            out.push_str(&line);
            out.push_str("\r\n");
        }
    }
    flush(&mut out, &mut held);
    out
}

/// Puts every track of an answer into one MediaStream (the first `a=msid` stream id): str0m gives each m-line
/// its own, and a browser only synchronizes audio with video within one stream (WHEP asks for one, too).
pub(super) fn one_media_stream(answer: &str) -> String {
    let ids: Vec<&str> = answer.lines().filter_map(|l| l.strip_prefix("a=msid:")?.split_whitespace().next()).fold(
        Vec::new(),
        |mut v, id| {
            if !v.contains(&id) {
                v.push(id);
            }
            v
        },
    );
    let Some((first, others)) = ids.split_first() else { return answer.to_owned() };
    let mut out = String::with_capacity(answer.len());
    for line in answer.split_inclusive('\n') {
        if line.starts_with("a=msid-semantic:") {
            out.push_str(&format!("a=msid-semantic: WMS {first}\r\n"));
            continue;
        }
        let mut l = line.to_owned();
        for other in others {
            l = l.replace(other, first);
        }
        out.push_str(&l);
    }
    out
}

/// Drops the answer's `a=candidate` lines whose address is not in `announced` (`webrtc.local_candidates`
/// hides local addresses str0m must still know to answer checks that arrive on them).
/// `announced`: (protocol in lowercase, address).
pub(super) fn only_candidates(answer: &str, announced: &[(String, std::net::SocketAddr)]) -> String {
    let shown = |line: &str| {
        let Some(c) = line.strip_prefix("a=candidate:") else { return true };
        let f: Vec<&str> = c.split_whitespace().collect();
        let proto = f.get(2).map(|p| p.to_ascii_lowercase()).unwrap_or_default();
        let addr = f.get(4).and_then(|ip| ip.parse::<std::net::IpAddr>().ok());
        let port = f.get(5).and_then(|p| p.parse::<u16>().ok());
        let Some(addr) = addr.zip(port).map(|(ip, port)| std::net::SocketAddr::new(ip, port)) else { return false };
        announced.iter().any(|(p, a)| *p == proto && *a == addr)
    };
    answer.split_inclusive('\n').filter(|l| shown(l.trim_end())).collect()
}

/// The offer a viewer's WHEP ICE restart stands for: `offer` (the one the session began with) with the new
/// `ufrag`/`pwd` instead of its credentials and without its candidates (they belong to the old ones; the
/// PATCH's come separately). str0m restarts ICE only when an offer changes the credentials (its direct API
/// swaps them without clearing the pairs, and an ICE-lite agent then keeps sending on the old pair while the
/// client's new port, Firefox's on every restart, checks in).
pub(super) fn restart_offer(offer: &str, ufrag: &str, pwd: &str) -> String {
    let mut out = String::with_capacity(offer.len());
    for line in offer.lines().map(|l| l.trim_end_matches('\r')) {
        if line.starts_with("a=ice-ufrag:") {
            out.push_str(&format!("a=ice-ufrag:{ufrag}\r\n"));
        } else if line.starts_with("a=ice-pwd:") {
            out.push_str(&format!("a=ice-pwd:{pwd}\r\n"));
        } else if !(line.starts_with("a=candidate:") || line == "a=end-of-candidates") {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out
}

/// `sdp` for a log line: ICE passwords hidden (with the ufrag they answer STUN checks as the session).
pub(super) fn redacted(sdp: &str) -> String {
    sdp.lines()
        .map(|l| if l.starts_with("a=ice-pwd:") { "a=ice-pwd:(hidden)" } else { l.trim_end_matches('\r') })
        .collect::<Vec<_>>()
        .join("\r\n")
}

#[cfg(test)]
mod tests {
    use super::{normalize_offer, one_media_stream, only_candidates, redacted, restart_offer};

    #[test]
    fn only_announced_candidates_stay_in_the_answer() {
        let answer = "v=0\r\nm=video 9 X 96\r\na=candidate:1 1 udp 2130706431 10.88.0.5 8189 typ host\r\n\
                      a=candidate:2 1 udp 2130706175 198.51.100.7 8189 typ host\r\na=mid:0\r\n";
        let kept = only_candidates(answer, &[("udp".into(), "198.51.100.7:8189".parse().expect("addr"))]);
        assert_eq!(
            kept,
            "v=0\r\nm=video 9 X 96\r\na=candidate:2 1 udp 2130706175 198.51.100.7 8189 typ host\r\na=mid:0\r\n"
        );
    }

    #[test]
    fn all_tracks_go_into_one_media_stream() {
        let answer = "v=0\r\na=msid-semantic: WMS aaa bbb\r\nm=video 9 X 96\r\na=msid:aaa v1\r\n\
                      a=ssrc:1 msid:aaa v1\r\nm=audio 9 X 111\r\na=msid:bbb a1\r\na=ssrc:2 msid:bbb a1\r\n";
        assert_eq!(
            one_media_stream(answer),
            "v=0\r\na=msid-semantic: WMS aaa\r\nm=video 9 X 96\r\na=msid:aaa v1\r\na=ssrc:1 msid:aaa v1\r\n\
             m=audio 9 X 111\r\na=msid:aaa a1\r\na=ssrc:2 msid:aaa a1\r\n"
        );
        assert_eq!(one_media_stream("v=0\r\n"), "v=0\r\n");
    }

    #[test]
    fn offers_are_put_in_the_shape_str0m_parses() {
        let offer = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 101\r\na=extmap:7 x\r\nc=IN IP4 0.0.0.0\r\n\
                     a=rtpmap:101 OPUS/48000\r\na=mid:a\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\n\
                     a=mid:v\r\n";
        assert_eq!(
            normalize_offer(offer),
            "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 101\r\nc=IN IP4 0.0.0.0\r\na=extmap:7 x\r\n\
             a=rtpmap:101 opus/48000/2\r\na=mid:a\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\n\
             a=mid:v\r\n"
        );
        let good = "v=0\r\nm=audio 9 X 111\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:111 opus/48000/2\r\n";
        assert_eq!(normalize_offer(good), good);
    }

    #[test]
    fn a_restart_offer_has_the_new_credentials_everywhere_and_no_old_candidate() {
        let offer = "v=0\r\na=ice-ufrag:old\r\nm=audio 9 X 111\r\na=ice-ufrag:old\r\na=ice-pwd:oldpwd\r\n\
                     a=candidate:1 1 udp 1 198.18.0.2 5000 typ host\r\na=end-of-candidates\r\na=mid:0\r\n";
        assert_eq!(
            restart_offer(offer, "new", "newpwd"),
            "v=0\r\na=ice-ufrag:new\r\nm=audio 9 X 111\r\na=ice-ufrag:new\r\na=ice-pwd:newpwd\r\na=mid:0\r\n"
        );
    }

    #[test]
    fn a_logged_sdp_has_no_ice_password() {
        assert_eq!(
            redacted("v=0\r\na=ice-ufrag:u\r\na=ice-pwd:secretpwd\r\n"),
            "v=0\r\na=ice-ufrag:u\r\na=ice-pwd:(hidden)"
        );
    }
}

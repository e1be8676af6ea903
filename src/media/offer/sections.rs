//! Offered media sections glasscast does not use (a WHIP publisher's audio for a stream without audio, a
//! second video section, a data channel, a section of a kind we never carry): set aside before str0m or
//! webrtcbin sees the offer, and refused in the answer in their place (RFC 3264 §6, RFC 8829 §5.3.1).
//!
//! ```text
//! offer  [0 video, 1 audio, 2 application] --trim-->    [video]            str0m / webrtcbin answer this
//! answer [video]                           --restore--> [video, audio inactive, application port 0]
//! ```
//!
//! An audio or video section is answered `a=inactive` in the BUNDLE group (RFC 8829 §5.3.1 allows it; no
//! RTP flows either way): stacks that ignore port 0 (aiortc) would otherwise wait for a transport of its
//! own that never connects. Every other section (a data channel, a kind we never carry, one the offer itself
//! rejected) gets port 0. So no media stack ever sets up anything for a section nobody uses (a transceiver
//! whose packets have nowhere to go broke a WHIP relay; a data channel's SCTP association), and the peer is
//! told plainly. Pure text: knows neither GStreamer nor str0m.

/// Which sections of one offer are refused, and why. Empty for an offer whose sections are all used: then
/// [`SetAside::trim`] and [`SetAside::restore`] change nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetAside {
    total: usize,
    refused: Vec<Refused>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Refused {
    index: usize,
    kind: String,
    proto: String,
    format: String,
    /// The offer's `a=rtpmap` line for `format`, restated in the rejection (some stacks, aiortc among them,
    /// look for a codec they know in every audio/video section, rejected or not).
    rtpmap: Option<String>,
    mid: Option<String>,
    /// Answered `a=inactive` inside the BUNDLE group; otherwise rejected with port 0.
    inactive: bool,
    why: String,
}

/// Transport attributes: with BUNDLE they may sit in any section of an offer, and some stacks (aiortc) want
/// them in every section of an answer.
const TRANSPORT: [&str; 7] =
    ["ice-ufrag", "ice-pwd", "ice-options", "fingerprint", "setup", "candidate", "end-of-candidates"];

/// An SDP's lines (without line ends), split at its `m=` lines: the session part and each section.
fn split(sdp: &str) -> (Vec<&str>, Vec<Vec<&str>>) {
    let mut session = Vec::new();
    let mut media: Vec<Vec<&str>> = Vec::new();
    for line in sdp.lines().map(|l| l.trim_end_matches('\r')).filter(|l| !l.is_empty()) {
        if line.starts_with("m=") {
            media.push(vec![line]);
        } else if let Some(section) = media.last_mut() {
            section.push(line);
        } else {
            session.push(line);
        }
    }
    (session, media)
}

/// The attribute name of an `a=` line (`a=key:value` or `a=flag`).
fn key(line: &str) -> Option<&str> {
    let attr = line.strip_prefix("a=")?;
    Some(attr.split_once(':').map_or(attr, |(k, _)| k))
}

fn value<'a>(section: &[&'a str], name: &str) -> Option<&'a str> {
    section.iter().find_map(|l| l.strip_prefix("a=")?.strip_prefix(name)?.strip_prefix(':'))
}

fn join(lines: impl IntoIterator<Item = impl AsRef<str>>) -> String {
    let mut out = String::new();
    for l in lines {
        out.push_str(l.as_ref());
        out.push_str("\r\n");
    }
    out
}

impl SetAside {
    /// Sets aside the sections of `offer` at the given indexes (with why each is not used).
    pub fn new(offer: &str, refuse: Vec<(usize, String)>) -> Self {
        let (_, media) = split(offer);
        let refused = refuse
            .into_iter()
            .filter_map(|(index, why)| {
                let section = media.get(index)?;
                let mut m = section[0].trim_start_matches("m=").split_whitespace();
                let kind = m.next().unwrap_or("application").to_owned();
                let port = m.next().unwrap_or("0");
                let bundle_only = section.contains(&"a=bundle-only");
                let inactive = (kind == "audio" || kind == "video") && (port != "0" || bundle_only);
                let proto = m.next().unwrap_or("UDP/TLS/RTP/SAVPF").to_owned();
                let format = m.next().unwrap_or("0").to_owned();
                let rtpmap = section
                    .iter()
                    .find(|l| l.strip_prefix("a=rtpmap:").and_then(|r| r.split_whitespace().next()) == Some(&format))
                    .map(|l| (*l).to_owned());
                let mid = value(section, "mid").map(str::to_owned);
                Some(Refused { index, kind, proto, format, rtpmap, mid, inactive, why })
            })
            .collect();
        Self { total: media.len(), refused }
    }

    pub fn is_empty(&self) -> bool {
        self.refused.is_empty()
    }

    /// Where the offer's section `index` is in the trimmed offer (`None`: it was set aside).
    pub fn kept(&self, index: usize) -> Option<usize> {
        if self.refused.iter().any(|r| r.index == index) {
            return None;
        }
        Some(index - self.refused.iter().filter(|r| r.index < index).count())
    }

    /// For the log: `section 1 (audio, mid 1): the stream has no audio; ...`.
    pub fn describe(&self) -> String {
        let one = |r: &Refused| {
            let mid = r.mid.as_ref().map(|m| format!(", mid {m}")).unwrap_or_default();
            format!("section {} ({}{mid}): {}", r.index, r.kind, r.why)
        };
        self.refused.iter().map(one).collect::<Vec<_>>().join("; ")
    }

    /// The offer without the refused sections: their mids leave the `a=group` lines, and transport attributes
    /// only they carried (the offerer's candidates, say) move to the first kept section, which BUNDLE makes
    /// the transport of all.
    pub fn trim(&self, offer: &str) -> String {
        if self.is_empty() {
            return offer.to_owned();
        }
        let (session, media) = split(offer);
        let refused_mid = |m: &str| self.refused.iter().any(|r| r.mid.as_deref() == Some(m));
        let mut out: Vec<String> = Vec::new();
        for line in session {
            let Some(group) = line.strip_prefix("a=group:") else {
                out.push(line.to_owned());
                continue;
            };
            let mut words = group.split_whitespace();
            let semantics = words.next().unwrap_or_default();
            let mids: Vec<&str> = words.filter(|m| !refused_mid(m)).collect();
            if !mids.is_empty() {
                out.push(format!("a=group:{semantics} {}", mids.join(" ")));
            }
        }
        let moved: Vec<&str> = media
            .iter()
            .enumerate()
            .filter(|(i, _)| self.kept(*i).is_none())
            .flat_map(|(_, s)| s.iter().copied())
            .filter(|l| key(l).is_some_and(|k| TRANSPORT.contains(&k)))
            .collect();
        let mut first = true;
        for (i, section) in media.iter().enumerate() {
            if self.kept(i).is_none() {
                continue;
            }
            let mut lines: Vec<String> = section.iter().map(|l| (*l).to_owned()).collect();
            if first {
                first = false;
                adopt_transport(&mut lines, &moved, i > 0);
            }
            out.extend(lines);
        }
        join(out)
    }

    /// The answer to the trimmed offer with a rejected section put back in place of each refused one.
    pub fn restore(&self, answer: &str) -> String {
        if self.is_empty() {
            return answer.to_owned();
        }
        let (session, media) = split(answer);
        let transport: Vec<&str> = media
            .first()
            .map(|s| s.iter().copied().filter(|l| key(l).is_some_and(|k| TRANSPORT.contains(&k))).collect())
            .unwrap_or_default();
        let mut answered = media.into_iter();
        let bundled: Vec<&str> = self.refused.iter().filter(|r| r.inactive).filter_map(|r| r.mid.as_deref()).collect();
        let mut out: Vec<String> = session
            .iter()
            .map(|l| match l.strip_prefix("a=group:BUNDLE") {
                Some(mids) if !bundled.is_empty() => format!("a=group:BUNDLE{mids} {}", bundled.join(" ")),
                _ => (*l).to_owned(),
            })
            .collect();
        for i in 0..self.total {
            match self.refused.iter().find(|r| r.index == i) {
                Some(r) => out.extend(r.rejection(&transport)),
                None => out.extend(answered.next().unwrap_or_default().iter().map(|l| (*l).to_owned())),
            }
        }
        join(out)
    }
}

/// Gives the trimmed offer's first section the transport attributes it lacks from the refused ones, and
/// (`moved_up`: a section before it was refused) a port if it was bundle-only (port 0 + `a=bundle-only`).
fn adopt_transport(lines: &mut Vec<String>, moved: &[&str], moved_up: bool) {
    for line in moved {
        let k = key(line);
        let has =
            if k == Some("candidate") { lines.iter().any(|l| l == line) } else { lines.iter().any(|l| key(l) == k) };
        if !has {
            lines.push((*line).to_owned());
        }
    }
    let bundle_only = lines.iter().any(|l| l == "a=bundle-only");
    if moved_up && bundle_only {
        let mut m = lines[0].splitn(3, ' ');
        if let (Some(kind), Some("0"), Some(rest)) = (m.next(), m.next(), m.next()) {
            lines[0] = format!("{kind} 9 {rest}");
            lines.retain(|l| l != "a=bundle-only");
        }
    }
}

impl Refused {
    fn rejection(&self, transport: &[&str]) -> Vec<String> {
        let port = if self.inactive { 9 } else { 0 };
        let mut lines =
            vec![format!("m={} {port} {} {}", self.kind, self.proto, self.format), "c=IN IP4 0.0.0.0".into()];
        // Candidates only where the section is in the bundle: aiortc (bundle policy "balanced") takes a
        // transport's remote candidates from the last section of its kind, so an inactive second video
        // section without them left it with none.
        let candidate = |l: &&&str| matches!(key(l), Some("candidate" | "end-of-candidates"));
        lines.extend(transport.iter().filter(|l| self.inactive || !candidate(l)).map(|l| (*l).to_owned()));
        if let Some(mid) = &self.mid {
            lines.push(format!("a=mid:{mid}"));
        }
        if self.inactive {
            lines.push("a=inactive".into());
            lines.push("a=rtcp-mux".into());
            lines.extend(self.rtpmap.clone());
        }
        lines
    }
}

/// Why an offered section of `kind` is not used when the planner has taken what it needs: `taken` (a
/// section of this kind is already used), `audio` (the stream carries audio).
pub fn why_unused(kind: &str, taken: bool, audio: bool) -> String {
    match kind {
        "audio" if !audio => "the stream has no audio (audio = \"none\")".into(),
        "audio" | "video" if taken => format!("glasscast carries one {kind} track; an earlier {kind} section has it"),
        "application" => "glasscast opens no data channels".into(),
        other => format!("glasscast does not use `{other}` sections"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE a v d\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:uf\r\na=ice-pwd:pw\r\n\
        a=fingerprint:sha-256 AA\r\na=setup:actpass\r\na=mid:a\r\na=sendonly\r\na=rtpmap:111 opus/48000/2\r\n\
        a=candidate:1 1 UDP 1 198.18.0.1 5000 typ host\r\n\
        m=video 0 UDP/TLS/RTP/SAVPF 102\r\nc=IN IP4 0.0.0.0\r\na=bundle-only\r\na=mid:v\r\na=sendonly\r\n\
        a=rtpmap:102 H264/90000\r\n\
        m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:d\r\na=sctp-port:5000\r\n";

    fn aside() -> SetAside {
        SetAside::new(OFFER, vec![(0, why_unused("audio", false, false)), (2, why_unused("application", false, true))])
    }

    #[test]
    fn trimming_keeps_the_used_section_with_the_transport_it_shared() {
        let a = aside();
        assert_eq!((a.kept(0), a.kept(1), a.kept(2)), (None, Some(0), None));
        let t = a.trim(OFFER);
        assert!(t.contains("a=group:BUNDLE v\r\n"), "{t}");
        assert_eq!(t.matches("m=").count(), 1, "{t}");
        // The bundle-only video section is now the bundle's first: it gets a port and the refused audio
        // section's credentials, fingerprint, setup and candidate.
        assert!(t.contains("m=video 9 UDP/TLS/RTP/SAVPF 102\r\n") && !t.contains("bundle-only"), "{t}");
        for l in ["a=ice-ufrag:uf", "a=ice-pwd:pw", "a=fingerprint:sha-256 AA", "a=setup:actpass", "a=candidate:1 1"] {
            assert!(t.contains(l), "{l} in {t}");
        }
        assert!(!t.contains("opus") && !t.contains("sctp"), "{t}");
    }

    #[test]
    fn restoring_rejects_each_refused_section_in_its_place() {
        let answer = "v=0\r\no=- 9 9 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE v\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 102\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:us\r\na=ice-pwd:ours\r\n\
            a=fingerprint:sha-256 BB\r\na=setup:active\r\na=mid:v\r\na=recvonly\r\na=rtpmap:102 H264/90000\r\n\
            a=candidate:2 1 UDP 1 198.18.0.2 6000 typ host\r\n";
        let r = aside().restore(answer);
        let (_, media) = split(&r);
        assert_eq!(media.len(), 3, "{r}");
        assert_eq!(media[0][0], "m=audio 9 UDP/TLS/RTP/SAVPF 111", "inactive, in the bundle");
        for l in ["a=mid:a", "a=inactive", "a=rtpmap:111 opus/48000/2", "a=ice-ufrag:us", "a=setup:active"] {
            assert!(media[0].contains(&l), "{l} in {:?}", media[0]);
        }
        assert!(media[0].contains(&"a=candidate:2 1 UDP 1 198.18.0.2 6000 typ host"), "bundled: our candidates too");
        assert!(!media[2].iter().any(|l| l.starts_with("a=candidate")), "no candidates in a rejected section");
        assert_eq!(media[1][0], "m=video 9 UDP/TLS/RTP/SAVPF 102");
        assert_eq!(media[2][0], "m=application 0 UDP/DTLS/SCTP webrtc-datachannel");
        assert!(media[2].contains(&"a=mid:d") && !media[2].contains(&"a=inactive"));
        assert!(r.contains("a=group:BUNDLE v a\r\n"), "{r}");
        // A section the offer itself rejected stays rejected.
        let offer = OFFER.replace("m=audio 9", "m=audio 0");
        let r = SetAside::new(&offer, vec![(0, "port 0".into())]).restore(answer);
        assert!(r.contains("m=audio 0 UDP/TLS/RTP/SAVPF 111\r\n") && r.contains("a=group:BUNDLE v\r\n"), "{r}");
        assert!(aside().describe().contains("section 0 (audio, mid a): the stream has no audio"));
    }

    #[test]
    fn nothing_set_aside_changes_nothing() {
        let none = SetAside::new(OFFER, Vec::new());
        assert!(none.is_empty());
        assert_eq!(none.trim(OFFER), OFFER);
        assert_eq!(none.restore("v=0\r\nm=video 9 X 1\r\n"), "v=0\r\nm=video 9 X 1\r\n");
        assert_eq!(none.kept(2), Some(2));
    }
}

//! `application/trickle-ice-sdpfrag` (RFC 8840) parsing and rendering, as used by WHEP/WHIP PATCH.
//!
//! Pure text handling; it knows neither HTTP nor GStreamer.

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum FragError {
    #[error("the sdpfrag is empty")]
    Empty,
    #[error("line {line} of the sdpfrag is not an SDP line (`x=value`)")]
    NotSdp { line: usize },
    #[error("a candidate on line {line} has no `candidate:` value")]
    BadCandidate { line: usize },
}

/// One media section of a fragment: its mid and the candidates trickled for it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FragMedia {
    pub mid: Option<String>,
    /// Candidate attribute values, e.g. `candidate:1 1 udp 2122260223 192.0.2.1 61764 typ host`.
    pub candidates: Vec<String>,
    pub end_of_candidates: bool,
}

/// A parsed fragment: ICE credentials (if present) and media sections with candidates.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SdpFrag {
    pub ufrag: Option<String>,
    pub pwd: Option<String>,
    pub media: Vec<FragMedia>,
}

impl SdpFrag {
    pub fn parse(text: &str) -> Result<Self, FragError> {
        let mut frag = SdpFrag::default();
        // Attributes before the first m= line belong to a session-level pseudo section.
        let mut current = FragMedia::default();
        let mut in_media = false;
        let mut saw_line = false;
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim_end_matches('\r');
            if line.is_empty() {
                continue;
            }
            saw_line = true;
            let bytes = line.as_bytes();
            if bytes.len() < 2 || bytes[1] != b'=' || !bytes[0].is_ascii_lowercase() {
                return Err(FragError::NotSdp { line: i + 1 });
            }
            let value = &line[2..];
            match bytes[0] {
                b'm' => {
                    if in_media || !current.candidates.is_empty() || current.end_of_candidates {
                        frag.media.push(std::mem::take(&mut current));
                    }
                    in_media = true;
                }
                b'a' => {
                    let (key, val) = value.split_once(':').unwrap_or((value, ""));
                    match key {
                        "ice-ufrag" => frag.ufrag = Some(val.to_owned()),
                        "ice-pwd" => frag.pwd = Some(val.to_owned()),
                        "mid" => current.mid = Some(val.to_owned()),
                        "end-of-candidates" => current.end_of_candidates = true,
                        "candidate" => {
                            if val.trim().is_empty() {
                                return Err(FragError::BadCandidate { line: i + 1 });
                            }
                            current.candidates.push(format!("candidate:{val}"));
                        }
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        if !saw_line {
            return Err(FragError::Empty);
        }
        if in_media || !current.candidates.is_empty() || current.end_of_candidates {
            frag.media.push(current);
        }
        Ok(frag)
    }

    /// Renders the fragment: credentials at session level, then per media section a placeholder m= line
    /// (RFC 8840 §9 style; receivers go by `a=mid`), its mid, candidates and end-of-candidates.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut line = |l: &str| {
            out.push_str(l);
            out.push_str("\r\n");
        };
        if let Some(u) = &self.ufrag {
            line(&format!("a=ice-ufrag:{u}"));
        }
        if let Some(p) = &self.pwd {
            line(&format!("a=ice-pwd:{p}"));
        }
        for m in &self.media {
            line("m=audio 9 RTP/AVP 0");
            if let Some(mid) = &m.mid {
                line(&format!("a=mid:{mid}"));
            }
            for c in &m.candidates {
                line(&format!("a={c}"));
            }
            if m.end_of_candidates {
                line("a=end-of-candidates");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHROME_TRICKLE: &str = "a=ice-ufrag:EsAw\r\na=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n\
        a=candidate:1387637174 1 udp 2122260223 192.0.2.1 61764 typ host generation 0 ufrag EsAw\r\n\
        a=end-of-candidates\r\n";

    #[test]
    fn parses_a_trickle_fragment() {
        let f = SdpFrag::parse(CHROME_TRICKLE).expect("valid fragment");
        assert_eq!(f.ufrag.as_deref(), Some("EsAw"));
        assert_eq!(f.pwd.as_deref(), Some("P2uYro0UCOQ4zxjKXaWCBui1"));
        assert_eq!(f.media.len(), 1);
        assert_eq!(f.media[0].mid.as_deref(), Some("0"));
        assert!(f.media[0].end_of_candidates);
        assert_eq!(
            f.media[0].candidates,
            vec!["candidate:1387637174 1 udp 2122260223 192.0.2.1 61764 typ host generation 0 ufrag EsAw"]
        );
    }

    #[test]
    fn session_level_candidates_without_m_line() {
        let f = SdpFrag::parse("a=candidate:1 1 udp 1 10.0.0.1 5000 typ host\na=end-of-candidates\n")
            .expect("valid fragment");
        assert_eq!(f.media.len(), 1);
        assert_eq!(f.media[0].mid, None);
        assert_eq!(f.media[0].candidates.len(), 1);
    }

    #[test]
    fn render_round_trips() {
        let f = SdpFrag::parse(CHROME_TRICKLE).expect("valid fragment");
        let text = f.render();
        assert!(text.starts_with("a=ice-ufrag:EsAw\r\na=ice-pwd:"), "{text}");
        assert_eq!(SdpFrag::parse(&text), Ok(f));
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(SdpFrag::parse(""), Err(FragError::Empty));
        assert_eq!(SdpFrag::parse("\r\n\r\n"), Err(FragError::Empty));
        assert_eq!(SdpFrag::parse("hello world"), Err(FragError::NotSdp { line: 1 }));
        assert_eq!(SdpFrag::parse("a=ice-ufrag:x\nA=b"), Err(FragError::NotSdp { line: 2 }));
        assert_eq!(SdpFrag::parse("a=candidate:  "), Err(FragError::BadCandidate { line: 1 }));
    }
}

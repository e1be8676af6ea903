//! Where a push goes (`[[streams.push]]`, `POST /api/v1/streams/{name}/push`), parsed once from its URL: a
//! WHIP endpoint (`http(s)://...`, RFC 9725) or a Janus VideoRoom reached over Janus' WebSocket API
//! (`janus+ws(s)://host:port/path?room=ROOM[&feed=ID][&display=NAME]`). No GStreamer here: the
//! configuration, the admin API and the media layer read the same parse.

/// A parsed push URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// POST an offer to this WHIP URL.
    Whip { url: String },
    /// Publish into a VideoRoom.
    Janus(JanusRoom),
}

/// A Janus VideoRoom to publish into, as a publisher (a "feed") other room members subscribe to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JanusRoom {
    /// The WebSocket API's URL (`ws://` or `wss://`; the `janus+` prefix and our query parameters removed).
    pub ws: String,
    /// The room: a number, or a string when Janus runs with `string_ids = true`.
    pub room: String,
    /// The publisher id to take (same kind as the room's), so subscribers can find the feed; else Janus picks.
    pub feed: Option<String>,
    /// The publisher's display name; the stream's name when absent.
    pub display: Option<String>,
}

impl JanusRoom {
    /// Whether the room (and feed) ids are strings rather than 64-bit numbers.
    pub fn string_ids(&self) -> bool {
        self.room.parse::<u64>().is_err()
    }
}

/// Why a push URL is refused; says what a good one looks like.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PushUrlError {
    #[error("`{0}` is not a URL")]
    Unparsable(String),
    #[error("`{0}` is neither a WHIP endpoint (http:// or https://) nor a Janus room (janus+ws:// or janus+wss://)")]
    Scheme(String),
    #[error("`{0}` names no host")]
    NoHost(String),
    #[error("a Janus push URL needs ?room=ROOM (and may have &feed=ID and &display=NAME): `{0}`")]
    NoRoom(String),
    #[error("a Janus room with a numeric id takes a numeric feed id: `{0}`")]
    FeedKind(String),
    #[error("unknown parameter `{1}` in a Janus push URL (room, feed and display are known): `{0}`")]
    UnknownParameter(String, String),
}

impl Endpoint {
    /// Parses a push URL. Errors name the URL redacted (its path or query may hold a secret).
    pub fn parse(url: &str) -> Result<Self, PushUrlError> {
        let shown = redacted(url);
        let u = reqwest::Url::parse(url).map_err(|_| PushUrlError::Unparsable(shown.clone()))?;
        let ws_scheme = match u.scheme() {
            "http" | "https" if u.host_str().is_some_and(|h| !h.is_empty()) => {
                return Ok(Endpoint::Whip { url: url.to_owned() });
            }
            "http" | "https" => return Err(PushUrlError::NoHost(shown)),
            "janus+ws" => "ws",
            "janus+wss" => "wss",
            _ => return Err(PushUrlError::Scheme(shown)),
        };
        if u.host_str().is_none_or(str::is_empty) {
            return Err(PushUrlError::NoHost(shown));
        }
        let (mut room, mut feed, mut display, mut rest) = (None, None, None, Vec::new());
        for (k, v) in u.query_pairs() {
            match k.as_ref() {
                "room" if !v.is_empty() => room = Some(v.into_owned()),
                "feed" if !v.is_empty() => feed = Some(v.into_owned()),
                "display" if !v.is_empty() => display = Some(v.into_owned()),
                "room" | "feed" | "display" => {}
                other => rest.push(other.to_owned()),
            }
        }
        if let Some(k) = rest.into_iter().next() {
            return Err(PushUrlError::UnknownParameter(shown, k));
        }
        let room = room.ok_or_else(|| PushUrlError::NoRoom(shown.clone()))?;
        let janus = JanusRoom { ws: ws_url(&u, ws_scheme), room, feed, display };
        if !janus.string_ids() && janus.feed.as_ref().is_some_and(|f| f.parse::<u64>().is_err()) {
            return Err(PushUrlError::FeedKind(shown));
        }
        Ok(Endpoint::Janus(janus))
    }

    /// The origin the admin API's allow-list (`auth.push_allow`) is checked against: `https://host[:port]`
    /// for WHIP, the WebSocket's `ws(s)://host[:port]` for Janus.
    pub fn origin(&self) -> String {
        let url = match self {
            Endpoint::Whip { url } => url,
            Endpoint::Janus(j) => &j.ws,
        };
        reqwest::Url::parse(url).map(|u| u.origin().ascii_serialization()).unwrap_or_default()
    }

    /// What an attempt that never connects may mean, for its error. gst-plugins-rs' Janus signaller (0.15)
    /// does not parse Janus' error replies (a wrong API secret, an unknown room, a taken feed id), so a
    /// refusal shows only as silence.
    pub fn silence_hint(&self) -> &'static str {
        match self {
            Endpoint::Whip { .. } => "",
            Endpoint::Janus(_) => {
                " (Janus refusals are not reported: check the API secret (the push's token), that the room \
                 exists and that no other publisher has the feed id)"
            }
        }
    }

    pub fn protocol(&self) -> &'static str {
        match self {
            Endpoint::Whip { .. } => "WHIP",
            Endpoint::Janus(_) => "Janus",
        }
    }
}

/// `janus+ws://h:p/path?room=..` -> `ws://h:p/path`.
fn ws_url(u: &reqwest::Url, scheme: &str) -> String {
    let path = if u.path().is_empty() { "/" } else { u.path() };
    format!("{scheme}://{}{path}", host_port(u))
}

/// The URL's scheme, host and port, for logs and errors (its path may be a secret).
pub fn redacted(url: &str) -> String {
    let Ok(u) = reqwest::Url::parse(url) else { return "<unparsable URL>".into() };
    format!("{}://{}/...", u.scheme(), host_port(&u))
}

/// `text` (an error a sink, reqwest or GStreamer wrote about a push to `url`) with every URL in it cut to
/// its scheme, host and port ([`redacted`]), and `url`'s path and query, wherever they appear alone,
/// replaced by `...`: a push URL's path may be a secret (Cloudflare's WHIP URLs), and the error is logged,
/// kept in the log ring and shown in `/readyz` and the console.
pub fn scrub(text: &str, url: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = find_url(rest) {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        // Brackets stay in: an IPv6 literal host is written `[2001:db8::1]`.
        let end = tail.find(|c: char| c.is_whitespace() || "\"'<>(){},".contains(c)).unwrap_or(tail.len());
        let found = tail[..end].trim_end_matches(['.', ':', ';']);
        match reqwest::Url::parse(found) {
            Ok(u) if u.host_str().is_some_and(|h| !h.is_empty()) => out.push_str(&redacted(found)),
            _ => out.push_str(found),
        }
        let end = found.len();
        rest = &tail[end..];
    }
    out.push_str(rest);
    let Ok(u) = reqwest::Url::parse(url) else { return out };
    // The path as written and as parsed (percent-encoded), the query, and the userinfo.
    let written = url.split_once("://").and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..])).unwrap_or_default();
    let written = written.split(['?', '#']).next().unwrap_or_default();
    let long = |s: &str| (s.len() >= 6).then(|| s.to_owned());
    let decoded = percent_encoding::percent_decode_str(u.path()).decode_utf8_lossy().into_owned();
    let secrets =
        [long(u.path()), long(written), long(&decoded), u.query().map(str::to_owned), u.password().map(str::to_owned)];
    for secret in secrets.into_iter().flatten().filter(|s| !s.is_empty()) {
        out = out.replace(&secret, "...");
    }
    out
}

/// Where the first URL (`scheme://`) in `text` starts.
fn find_url(text: &str) -> Option<usize> {
    let at = text.find("://")?;
    let start = text[..at].rfind(|c: char| !(c.is_ascii_alphanumeric() || "+-.".contains(c))).map_or(0, |i| i + 1);
    if start == at {
        // `://` with no scheme before it: not a URL; look further on.
        return find_url(&text[at + 3..]).map(|i| i + at + 3);
    }
    Some(start)
}

/// `host[:port]` as the URL gives them (no port when it has none, or the scheme's default).
fn host_port(u: &reqwest::Url) -> String {
    let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
    format!("{}{port}", u.host_str().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whip_and_janus_urls_parse_and_bad_ones_say_why() {
        let whip = Endpoint::parse("https://live.example/whip/abc").expect("whip");
        assert_eq!(whip, Endpoint::Whip { url: "https://live.example/whip/abc".into() });
        assert_eq!(whip.origin(), "https://live.example");
        let Endpoint::Janus(j) =
            Endpoint::parse("janus+wss://sfu.example:8989/janus-ws?room=1234&feed=42&display=Desk%201").expect("j")
        else {
            panic!("a Janus room")
        };
        assert_eq!((j.ws.as_str(), j.room.as_str()), ("wss://sfu.example:8989/janus-ws", "1234"));
        assert_eq!((j.feed.as_deref(), j.display.as_deref(), j.string_ids()), (Some("42"), Some("Desk 1"), false));
        let named = Endpoint::parse("janus+ws://127.0.0.1:8188?room=lobby&feed=desk").expect("string ids");
        assert_eq!(named.origin(), "ws://127.0.0.1:8188");
        assert!(matches!(&named, Endpoint::Janus(j) if j.string_ids() && j.ws == "ws://127.0.0.1:8188/"));
        let err = |u: &str| Endpoint::parse(u).expect_err(u);
        assert!(matches!(err("not a url"), PushUrlError::Unparsable(_)));
        assert!(matches!(err("rtmp://example/live"), PushUrlError::Scheme(_)));
        assert!(matches!(err("janus+ws://h:8188/"), PushUrlError::NoRoom(_)));
        assert!(matches!(err("janus+ws://h:8188/?room=1&feed=desk"), PushUrlError::FeedKind(_)));
        assert!(matches!(err("janus+ws://h:8188/?room=1&pin=x"), PushUrlError::UnknownParameter(_, k) if k == "pin"));
        // A URL's path may be a secret (Cloudflare's WHIP URLs): never in an error.
        let url = "https://live.example:8443/whip/S3CRET-PATH?key=S3CRET-KEY";
        let texts = [
            "error sending request for url (https://live.example:8443/whip/S3CRET-PATH?key=S3CRET-KEY): refused",
            "Unexpected response: 404 - no such resource /whip/S3CRET-PATH",
            "redirected to https://other.example/resource/S3CRET-2, then: 401 key=S3CRET-KEY",
            "janus: wss://sfu.example/janus/S3CRET-PATH: closed",
            "to https://[2001:db8::1]:8443/S3CRET-V6 refused",
        ];
        for text in texts {
            let shown = scrub(text, url);
            assert!(!shown.contains("S3CRET"), "{text} -> {shown}");
        }
        assert_eq!(
            scrub("error sending request for url (https://live.example:8443/whip/S3CRET-PATH?key=S3CRET-KEY)", url),
            "error sending request for url (https://live.example:8443/...)"
        );
        assert_eq!(scrub("no URL here: a://", url), "no URL here: a://");
        assert_eq!(scrub("connection refused", url), "connection refused");
        let odd = "https://user:S3CRET-PW@live.example/wh%49p/S3CRET%20PATH";
        for text in ["auth for user:S3CRET-PW failed", "no /whIp/S3CRET PATH", "POST /wh%49p/S3CRET%20PATH: 404"] {
            let shown = scrub(text, odd);
            assert!(!shown.contains("S3CRET"), "{text} -> {shown}");
        }
        assert!(!err("janus+ws://h:8188/s3cret").to_string().contains("s3cret"));
        assert!(!err("gopher://h/s3cret").to_string().contains("s3cret"));
    }
}

//! Identifier newtypes shared by every layer.
//!
//! Architecture invariant: a session id is 128 random bits, so a session resource URL cannot be guessed.

use std::fmt;

use rand::RngCore;
use serde::{Deserialize, Deserializer, Serialize};

/// The name of a configured stream: `[a-z0-9_-]{1,64}`, unique in the config.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct StreamName(String);

impl StreamName {
    pub const MAX_LEN: usize = 64;

    /// Checks the name; `Err` says what is wrong with it.
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        if s.is_empty() || s.len() > Self::MAX_LEN {
            return Err("1 to 64 characters");
        }
        if !s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_') {
            return Err("only a-z, 0-9, '-' and '_'");
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A name in a configuration file is parsed where it is read: the error names the value and what is allowed.
impl<'de> Deserialize<'de> for StreamName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        StreamName::parse(&s).map_err(|why| serde::de::Error::custom(format!("stream name {s:?}: {why}")))
    }
}

impl fmt::Display for StreamName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The streams a token is for: one, or every one (`*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamScope {
    All,
    One(StreamName),
}

impl StreamScope {
    /// `*`, or a stream name; `Err` says what is wrong with it.
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        if s == "*" { Ok(Self::All) } else { StreamName::parse(s).map(Self::One) }
    }

    /// Is `stream` in scope?
    pub fn covers(&self, stream: &str) -> bool {
        match self {
            Self::All => true,
            Self::One(name) => name.as_str() == stream,
        }
    }
}

impl fmt::Display for StreamScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::All => f.write_str("*"),
            Self::One(name) => name.fmt(f),
        }
    }
}

/// Written as its text (`*` or the stream's name), as token claims and the token ledger have it.
impl Serialize for StreamScope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for StreamScope {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        StreamScope::parse(&s).map_err(|why| serde::de::Error::custom(format!("stream scope {s:?}: {why}")))
    }
}

/// A viewer (WHEP) session: 128 random bits, rendered as 32 lowercase hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(u128);

impl SessionId {
    pub fn random() -> Self {
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        Self(u128::from_be_bytes(bytes))
    }

    /// Parses the 32-hex-digit form; anything else is not a session id.
    pub fn parse(s: &str) -> Option<Self> {
        if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u128::from_str_radix(s, 16).ok().map(Self)
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl Serialize for SessionId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A strong entity tag for a session's ICE state; changes on every ICE restart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ETag(String);

impl ETag {
    pub fn new(session: SessionId, ice_generation: u32) -> Self {
        Self(format!("\"{session}-{ice_generation}\""))
    }

    /// The header value, quotes included.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether an `If-Match` header value (a list of tags, or `*`) matches this tag (strong comparison).
    pub fn matches(&self, if_match: &str) -> bool {
        if_match.split(',').map(str::trim).any(|t| t == "*" || t == self.0)
    }
}

/// What a session is: a WHEP viewer or a WHIP publisher.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    #[default]
    Viewer,
    Publisher,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Publisher => "publisher",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names() {
        assert!(StreamName::parse("main").is_ok());
        assert!(StreamName::parse("desk-2_b").is_ok());
        assert_eq!(StreamName::parse(""), Err("1 to 64 characters"));
        assert_eq!(StreamName::parse(&"a".repeat(65)), Err("1 to 64 characters"));
        assert_eq!(StreamName::parse("Main"), Err("only a-z, 0-9, '-' and '_'"));
        assert_eq!(StreamName::parse("../x"), Err("only a-z, 0-9, '-' and '_'"));
    }

    #[test]
    fn stream_scopes_parse_and_round_trip_as_text() {
        assert_eq!(StreamScope::parse("*"), Ok(StreamScope::All));
        let main = StreamScope::parse("main").expect("a name");
        assert!(main.covers("main") && !main.covers("other") && StreamScope::All.covers("other"));
        assert_eq!(StreamScope::parse("**"), Err("only a-z, 0-9, '-' and '_'"));
        assert_eq!(serde_json::to_string(&main).expect("json"), r#""main""#);
        assert_eq!(serde_json::from_str::<StreamScope>(r#""*""#).expect("json"), StreamScope::All);
        assert!(serde_json::from_str::<StreamScope>(r#""Main""#).is_err());
    }

    #[test]
    fn session_ids_round_trip_and_differ() {
        let a = SessionId::random();
        let b = SessionId::random();
        assert_ne!(a, b);
        assert_eq!(a.to_string().len(), 32);
        assert_eq!(SessionId::parse(&a.to_string()), Some(a));
        assert_eq!(SessionId::parse("xyz"), None);
        assert_eq!(SessionId::parse(&"g".repeat(32)), None);
    }

    #[test]
    fn etag_matching() {
        let id = SessionId::random();
        let tag = ETag::new(id, 0);
        assert!(tag.matches("*"));
        assert!(tag.matches(tag.as_str()));
        assert!(tag.matches(&format!("\"other\", {}", tag.as_str())));
        assert!(!tag.matches(ETag::new(id, 1).as_str()));
        assert!(!tag.matches(&format!("W/{}", tag.as_str())));
    }
}

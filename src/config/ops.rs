//! Operating glasscast: `[log]` and `[metrics]`.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::{ConfigError, invalid, socket_addr};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A tracing env-filter, e.g. `info` or `glasscast=debug,info`; `RUST_LOG` wins when set.
    pub filter: String,
    pub format: LogFormat,
    /// Also write the log to this file (JSON lines with format `auto`), rotated by size.
    pub file: Option<PathBuf>,
    /// Rotate the file once it reaches this many bytes, keeping `file_keep` older files (`FILE.1` newest).
    pub file_max_bytes: u64,
    pub file_keep: usize,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { filter: "info".into(), format: LogFormat::Auto, file: None, file_max_bytes: 10 << 20, file_keep: 5 }
    }
}

impl LogConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.filter) {
            return Err(invalid("log.filter", &self.filter, format!("a tracing filter ({e})")));
        }
        if self.file_max_bytes < 4096 {
            return Err(invalid("log.file_max_bytes", self.file_max_bytes, "at least 4096 bytes"));
        }
        if !(1..=100).contains(&self.file_keep) {
            return Err(invalid("log.file_keep", self.file_keep, "1 to 100 files"));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(try_from = "String")]
pub enum LogFormat {
    /// Human-readable on a terminal, JSON otherwise (under systemd, in a container).
    Auto,
    Human,
    Json,
}

impl TryFrom<String> for LogFormat {
    type Error = String;
    fn try_from(v: String) -> Result<Self, String> {
        match v.as_str() {
            "auto" => Ok(Self::Auto),
            "human" => Ok(Self::Human),
            "json" => Ok(Self::Json),
            _ => Err(format!("unknown value \"{v}\" (allowed: \"auto\", \"human\", \"json\")")),
        }
    }
}

/// The Prometheus scrape endpoint: its own plain-HTTP listener, so it can stay on localhost (or an internal
/// network) while the player and WHEP face the users.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    pub enabled: bool,
    /// Address and port of the listener serving `GET /metrics`.
    #[serde(deserialize_with = "socket_addr")]
    pub listen: SocketAddr,
    /// A bearer token scrapers must send (`Authorization: Bearer ...`), or the file holding it. Neither: no
    /// token (then keep `listen` on localhost or a trusted network).
    pub token: Option<String>,
    pub token_file: Option<PathBuf>,
    /// Serve the metrics without a token on an address beyond loopback (anyone who reaches it reads the
    /// streams' names, viewer counts, addresses' counts and the host's numbers). Off (default): such a
    /// configuration is refused; on: allowed, with a warning at start, in `check-config` and in `doctor`.
    pub allow_public: bool,
}

/// `check-config` prints the configuration: never the token.
impl std::fmt::Debug for MetricsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsConfig")
            .field("enabled", &self.enabled)
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "(hidden)"))
            .field("token_file", &self.token_file)
            .field("allow_public", &self.allow_public)
            .finish()
    }
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 9464)),
            token: None,
            token_file: None,
            allow_public: false,
        }
    }
}

impl MetricsConfig {
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
    }

    /// The token scrapers must send, read from `token_file` when that is how it is given.
    pub fn load_token(&self) -> std::io::Result<Option<String>> {
        match (&self.token, &self.token_file) {
            (Some(t), _) => Ok(Some(t.clone())),
            (None, Some(path)) => Ok(Some(std::fs::read_to_string(path)?.trim().to_owned())),
            (None, None) => Ok(None),
        }
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.token.is_some() && self.token_file.is_some() {
            return Err(invalid("metrics.token_file", &self.token_file, "token or token_file, not both"));
        }
        if self.token.as_ref().is_some_and(|t| t.len() < 16) {
            return Err(invalid("metrics.token", "(hidden)", "at least 16 characters"));
        }
        if self.public_without_token() && !self.allow_public {
            return Err(invalid(
                "metrics.listen",
                self.listen,
                "a loopback address, or set metrics.token (or token_file) before listening beyond it; \
                 metrics.allow_public = true serves them to anyone who reaches it",
            ));
        }
        Ok(())
    }

    /// The metrics are served without a token beyond loopback (allowed only with `allow_public`).
    pub fn public_without_token(&self) -> bool {
        self.enabled
            && !self.listen.ip().to_canonical().is_loopback()
            && self.token.is_none()
            && self.token_file.is_none()
    }

    /// What to warn about at start, in `check-config` and in `doctor`.
    pub fn warning(&self) -> Option<String> {
        self.public_without_token().then(|| {
            format!(
                "metrics.allow_public = true: GET /metrics on {} answers anyone who reaches it, without a token",
                self.listen
            )
        })
    }
}

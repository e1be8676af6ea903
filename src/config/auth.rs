//! `[auth]`: access control settings.

use std::path::PathBuf;

use serde::Deserialize;

/// Access control (`[auth]`).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// `required` (default): every WHEP request needs a token. `disabled`: anyone who reaches the port can
    /// watch (a warning is logged at start); the admin API still needs the admin token.
    pub mode: AuthMode,
    /// With `mode = "disabled"`: the admin API needs no token either (anyone who reaches the port can end
    /// sessions, stop streams, rotate keys and make the server push anywhere; logged as an error at start).
    /// For a throwaway test box only. Ignored with `mode = "required"`.
    pub open_admin_api: bool,
    /// The admin token itself (at least 16 characters); prefer `admin_token_file` or the environment
    /// (GLASSCAST__AUTH__ADMIN_TOKEN). Neither: one is generated into state_dir/auth/admin_token.
    pub admin_token: Option<String>,
    /// A file holding the admin token (compose/systemd secrets).
    pub admin_token_file: Option<PathBuf>,
    /// Refused tokens one client address may send at once before it gets 429 (0: no limit) ...
    pub failures_burst: u32,
    /// ... and how many more it may send per minute after that.
    pub failures_per_minute: u32,
    /// Origins (`https://sfu.example.com`, `http://198.18.0.5:8080`, a Janus WebSocket's `ws://198.18.0.5:8188`)
    /// the admin API may start a push to
    /// (`POST /api/v1/streams/{name}/push`, `glasscast push`); empty (default): none, so a leaked admin token
    /// cannot make the server send requests anywhere on its network. `[[streams.push]]` in this file is
    /// not checked: it is the operator's own.
    pub push_allow: Vec<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            mode: AuthMode::default(),
            open_admin_api: false,
            admin_token: None,
            admin_token_file: None,
            failures_burst: 10,
            failures_per_minute: 10,
            push_allow: Vec::new(),
        }
    }
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("mode", &self.mode)
            .field("open_admin_api", &self.open_admin_api)
            .field("admin_token", &self.admin_token.as_ref().map(|_| "<redacted>"))
            .field("admin_token_file", &self.admin_token_file)
            .field("failures_burst", &self.failures_burst)
            .field("failures_per_minute", &self.failures_per_minute)
            .field("push_allow", &self.push_allow)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(try_from = "String")]
pub enum AuthMode {
    #[default]
    Required,
    Disabled,
}

impl TryFrom<String> for AuthMode {
    type Error = String;
    fn try_from(v: String) -> Result<Self, String> {
        match v.as_str() {
            "required" => Ok(Self::Required),
            "disabled" => Ok(Self::Disabled),
            _ => Err(format!("unknown value \"{v}\" (allowed: \"required\", \"disabled\")")),
        }
    }
}

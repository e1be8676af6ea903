//! `[auth]`: access control settings.

use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use serde::Deserialize;

use super::{ConfigError, invalid};

/// The shortest admin token `serve` and `check-config` take.
pub const MIN_ADMIN_TOKEN: usize = 16;

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
    /// Addresses and networks (`127.0.0.0/8`, `192.168.1.10`) from which the admin token is taken even
    /// while the address is refused for too many bad tokens (`failures_burst`): the admin is not locked
    /// out of its own machine by a page or script that keeps sending a stale token. Other tokens from them
    /// are limited as from anywhere. Default: loopback only. An IPv4-mapped IPv6 address counts as IPv4.
    pub admin_trusted: Vec<String>,
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
            admin_trusted: vec!["127.0.0.0/8".into(), "::1/128".into()],
        }
    }
}

impl AuthConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.admin_token.as_ref().is_some_and(|t| t.len() < MIN_ADMIN_TOKEN) {
            return Err(invalid("auth.admin_token", "(hidden)", format!("at least {MIN_ADMIN_TOKEN} characters")));
        }
        for (i, net) in self.admin_trusted.iter().enumerate() {
            parse_net(net).map_err(|why| invalid(format!("auth.admin_trusted[{i}]"), net, why))?;
        }
        Ok(())
    }

    /// `admin_trusted` parsed (valid after [`Self::validate`]).
    pub fn admin_trusted(&self) -> Networks {
        Networks(self.admin_trusted.iter().filter_map(|n| parse_net(n).ok()).collect())
    }
}

/// A list of networks an address is looked up in.
#[derive(Debug, Clone, Default)]
pub struct Networks(Vec<IpNet>);

impl Networks {
    /// Whether `ip` is in one of them (an IPv4-mapped IPv6 address, as a dual-stack listener sees an IPv4
    /// client, as IPv4).
    pub fn contains(&self, ip: Option<IpAddr>) -> bool {
        ip.is_some_and(|ip| self.0.iter().any(|n| n.contains(&ip.to_canonical())))
    }
}

/// A CIDR, or a bare address as its /32 or /128.
fn parse_net(s: &str) -> Result<IpNet, String> {
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("\"{s}\" is not an address or a CIDR like 192.168.1.0/24 or 2001:db8::/32"))
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
            .field("admin_trusted", &self.admin_trusted)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_admin_token_and_a_bad_trusted_network_are_refused() {
        let mut a = AuthConfig { admin_token: Some("fifteen-chars!!".into()), ..AuthConfig::default() };
        let e = a.validate().expect_err("15 characters").to_string();
        assert!(e.contains("auth.admin_token") && e.contains("16") && !e.contains("fifteen"), "{e}");
        a.admin_token = Some("sixteen-chars!!!".into());
        assert!(a.validate().is_ok());
        a.admin_trusted.push("10.0.0.0/33".into());
        assert!(a.validate().expect_err("bad CIDR").to_string().contains("auth.admin_trusted[2]"));
    }

    #[test]
    fn loopback_is_trusted_by_default_in_either_family_and_others_are_not() {
        let nets = AuthConfig::default().admin_trusted();
        let t = |ip: &str| nets.contains(Some(ip.parse().expect("ip")));
        assert!(t("127.0.0.1") && t("::1") && t("::ffff:127.0.0.1"), "loopback, mapped too");
        assert!(!t("192.168.1.5") && !t("::ffff:192.168.1.5") && !t("2001:db8::1"));
        assert!(!nets.contains(None));
    }
}

//! `[server.limits]`: what one client, or all of them, can hold of the HTTPS listener (src/http/conn.rs).

use serde::Deserialize;

use super::{ConfigError, invalid};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnLimits {
    /// Seconds a client has to send a request's whole header (HTTP/1); then the connection is closed.
    pub header_timeout_s: u32,
    /// Seconds a connection may go without a byte in either direction before it is closed (keep-alive
    /// included).
    pub idle_timeout_s: u32,
    /// Connections open at once, all clients together; more are closed at accept.
    pub max_connections: u32,
    /// Connections open at once from one client address (an IPv6 client counts by its /64).
    pub max_connections_per_client: u32,
    /// Concurrent requests (streams) on one HTTP/2 connection.
    pub http2_max_streams: u32,
}

impl Default for ConnLimits {
    fn default() -> Self {
        Self {
            header_timeout_s: 10,
            idle_timeout_s: 60,
            max_connections: 4096,
            max_connections_per_client: 256,
            http2_max_streams: 100,
        }
    }
}

impl ConnLimits {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let check = |key: &str, v: u32, range: std::ops::RangeInclusive<u32>| {
            if range.contains(&v) {
                Ok(())
            } else {
                Err(invalid(format!("server.limits.{key}"), v, format!("{} to {}", range.start(), range.end())))
            }
        };
        check("header_timeout_s", self.header_timeout_s, 1..=600)?;
        check("idle_timeout_s", self.idle_timeout_s, 1..=3600)?;
        check("max_connections", self.max_connections, 1..=1_000_000)?;
        check("max_connections_per_client", self.max_connections_per_client, 1..=self.max_connections.max(1))?;
        check("http2_max_streams", self.http2_max_streams, 1..=10_000)
    }
}

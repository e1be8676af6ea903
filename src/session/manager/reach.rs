//! A hint for the commonest "it doesn't connect": a viewer whose request comes from a public address, answered
//! with private candidates only (a server behind a router or in a container, without `webrtc.advertise`).

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::net::private;

/// The addresses of an SDP's `a=candidate` lines.
fn candidate_ips(sdp: &str) -> impl Iterator<Item = IpAddr> + '_ {
    sdp.lines()
        .filter_map(|l| l.trim_end().strip_prefix("a=candidate:"))
        .filter_map(|c| c.split_whitespace().nth(4)?.parse().ok())
}

/// Whether `client` is public and every candidate of `answer` private: it cannot reach any of them.
fn private_only(client: IpAddr, answer: &str) -> bool {
    let mut ips = candidate_ips(answer).peekable();
    !private(client) && ips.peek().is_some() && ips.all(private)
}

/// Logs (once per process) when a viewer at `client` was answered with private candidates only.
pub(super) fn hint(client: Option<std::net::SocketAddr>, answer: &str) {
    static SAID: AtomicBool = AtomicBool::new(false);
    let Some(client) = client else { return };
    if private_only(client.ip(), answer) && !SAID.swap(true, Ordering::Relaxed) {
        let announced: Vec<IpAddr> = candidate_ips(answer).collect();
        tracing::warn!(
            client = %client.ip(),
            ?announced,
            "a viewer from a public address was offered only private addresses for media, which it cannot \
             reach: set webrtc.advertise to the address it can reach (the router's public address with a UDP \
             port forward of webrtc.mux_port, or the host's public address; docs/networking.md)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANSWER: &str = "v=0\r\nm=video 9 X 96\r\na=candidate:1 1 udp 2130706431 192.168.1.20 8189 typ host\r\n\
        a=candidate:2 1 udp 2130706431 fd12:3456::20 8189 typ host\r\n";

    #[test]
    fn a_public_client_offered_only_private_candidates_is_noticed() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert!(private_only(ip("203.0.113.9"), ANSWER));
        assert!(private_only(ip("2001:db8::9"), ANSWER));
        assert!(!private_only(ip("192.168.1.50"), ANSWER), "a LAN viewer reaches them");
        assert!(!private_only(ip("::ffff:10.1.2.3"), ANSWER), "IPv4-mapped private is private");
        assert!(!private_only(ip("100.100.1.1"), ANSWER), "CGNAT/tailnet space counts as private");
        let with_public = format!("{ANSWER}a=candidate:3 1 udp 2130706175 198.51.100.7 8189 typ host\r\n");
        assert!(!private_only(ip("203.0.113.9"), &with_public), "an advertised public address is there");
        assert!(!private_only(ip("203.0.113.9"), "v=0\r\n"), "no candidates at all: nothing to say");
    }
}

//! The viewer's address and SDP helpers: which local address routes to the server, the answer's candidate
//! addresses, one SDP attribute, a caught panic's text.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket as StdUdpSocket};

/// The local address that routes to `remote` (no packet is sent: `connect` on a UDP socket only routes).
pub fn route_local_ip(remote: IpAddr) -> Option<IpAddr> {
    let bind: SocketAddr = match remote {
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(_) => return None, // our sockets are IPv4 (0.0.0.0)
    };
    let s = StdUdpSocket::bind(bind).ok()?;
    s.connect((remote, 9)).ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_unspecified()).then_some(ip)
}

/// `ip`s of the UDP candidates in an SDP (answer) text, in order, without duplicates.
pub fn sdp_candidate_ips(sdp: &str) -> Vec<IpAddr> {
    let mut ips = Vec::new();
    for line in sdp.lines() {
        let Some(value) = line.trim().strip_prefix("a=candidate:") else { continue };
        // foundation component transport priority address port typ ...
        let fields: Vec<&str> = value.split_whitespace().collect();
        if fields.len() < 6 || !fields[2].eq_ignore_ascii_case("udp") {
            continue;
        }
        if let Ok(ip) = fields[4].parse::<IpAddr>()
            && !ips.contains(&ip)
        {
            ips.push(ip);
        }
    }
    ips
}

pub fn sdp_attr<'a>(sdp: &'a str, key: &str) -> Option<&'a str> {
    sdp.lines().find_map(|l| l.trim().strip_prefix("a=")?.strip_prefix(key)?.strip_prefix(':'))
}

/// What a caught panic said.
pub fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidate_ips_from_an_answer() {
        let sdp = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n\
            a=candidate:1 1 UDP 2015363327 192.0.2.2 40001 typ host\r\n\
            a=candidate:2 1 TCP 1015021823 192.0.2.2 9 typ host tcptype active\r\n\
            a=candidate:3 1 udp 2015363327 192.0.2.2 40002 typ host\r\n\
            a=candidate:4 1 udp 2015363327 fe80::1 40003 typ host\r\n";
        assert_eq!(sdp_candidate_ips(sdp), vec!["192.0.2.2".parse::<IpAddr>().unwrap(), "fe80::1".parse().unwrap()]);
    }

    #[test]
    fn attribute_lookup() {
        let sdp = "v=0\r\na=ice-ufrag:abcd\r\na=ice-pwd:secret\r\n";
        assert_eq!(sdp_attr(sdp, "ice-ufrag"), Some("abcd"));
        assert_eq!(sdp_attr(sdp, "ice-pwd"), Some("secret"));
        assert_eq!(sdp_attr(sdp, "fingerprint"), None);
    }

    #[test]
    fn loopback_routes_to_itself() {
        assert_eq!(route_local_ip("127.0.0.1".parse().unwrap()), Some("127.0.0.1".parse().unwrap()));
    }
}

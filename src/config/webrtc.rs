//! `[webrtc]`: ICE servers, the transport, its ports, and the addresses announced to viewers.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use ipnet::IpNet;
use serde::Deserialize;

use super::{ConfigError, invalid};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebrtcConfig {
    /// STUN/TURN servers, given to our ICE agent and to clients in `Link: rel="ice-server"` headers.
    pub ice_servers: Vec<IceServer>,
    /// Local UDP port range for media; 0/0 lets the OS choose.
    pub udp_port_min: u16,
    pub udp_port_max: u16,
    /// A session whose client has not completed ICE + DTLS this many seconds after its answer is ended.
    pub connect_timeout_s: u32,
    /// How viewers are served: one webrtcbin each, or all from one thread and one UDP port (ADR 0003).
    pub transport: Transport,
    /// The forwarding transport's one UDP port, on every local address (0: the OS picks one).
    pub mux_port: u16,
    /// More addresses announced as host candidates (forwarding transport): `IP`, `IP:PORT` or a hostname
    /// (`name`, `name:PORT`, resolved at start and every minute). A NAT's outside address, a router's port
    /// forward, a container's published port. Without a port: `mux_port`.
    pub advertise: Vec<String>,
    /// Which of the local addresses are announced (all are bound either way).
    pub local_candidates: LocalCandidates,
    /// A `stun:host[:port]` server asked at start and every 5 minutes which public address this host's
    /// traffic leaves from; that address is announced with the mux port (a router's port forward found by
    /// itself).
    pub stun_discover: Option<String>,
    /// ICE-TCP (RFC 6544, passive) on `tcp_port`, for viewers whose network blocks UDP.
    pub ice_tcp: bool,
    /// The ICE-TCP port (0: the same number as the UDP mux port).
    pub tcp_port: u16,
    /// ICE-TCP connections one client address (an IPv6 client: its /64) may hold open at once; more are
    /// closed as they are accepted. A browser opens one or two per candidate pair it tries.
    pub ice_tcp_per_address: u32,
    /// How long the TURN REST credentials handed to a viewer or publisher last, seconds (never past its
    /// token's expiry). They cannot be revoked, so they are kept short; the player asks for fresh ones
    /// whenever it restarts ICE or reconnects.
    pub turn_credential_ttl_s: u64,
    /// Allocate a relay on a `turn:` server of `ice_servers` (each in order, the next when one fails) and
    /// announce it (forwarding transport; ICE is then full rather than lite): reachable behind a NAT nobody
    /// forwards through.
    pub relay: bool,
    /// UDP GSO (`UDP_SEGMENT`) on the mux port: a frame's packets to one viewer leave in one system call
    /// (forwarding transport). Off: one call per packet (the way to compare, or a driver that mishandles it).
    pub udp_gso: bool,
    /// `sendmmsg` on the mux port: the packets of several viewers (up to 32 runs) leave in one system call
    /// (forwarding transport). Off: one call per run (per viewer per frame with GSO).
    pub udp_mmsg: bool,
    /// Threads that serve the forwarding transport's viewers, each owning its share (all on `mux_port`).
    /// 0 (default): one per core the process may use, at most [`MAX_MUX_THREADS`].
    pub mux_threads: u32,
    /// How long the forwarding transport keeps each viewer's sent video packets to answer its NACKs, ms.
    /// A resend that arrives later than this helps no low-latency player (it has asked for a keyframe by
    /// then); each viewer's history costs memory in proportion (str0m's default is 3000).
    pub nack_history_ms: u32,
}

/// The most mux threads `webrtc.mux_threads` may ask for.
pub const MAX_MUX_THREADS: u32 = 64;
/// What `mux_threads = 0` takes at most.
const AUTO_MUX_THREADS: usize = 16;

impl WebrtcConfig {
    /// The mux threads to start: `mux_threads`, or one per available core.
    pub fn mux_threads(&self) -> usize {
        match self.mux_threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()).min(AUTO_MUX_THREADS),
            n => n as usize,
        }
    }
}

impl Default for WebrtcConfig {
    fn default() -> Self {
        Self {
            ice_servers: Vec::new(),
            udp_port_min: 0,
            udp_port_max: 0,
            connect_timeout_s: 30,
            transport: Transport::default(),
            mux_port: 8189,
            advertise: Vec::new(),
            local_candidates: LocalCandidates::All,
            stun_discover: None,
            ice_tcp: true,
            tcp_port: 0,
            ice_tcp_per_address: 8,
            turn_credential_ttl_s: 4 * 3600,
            relay: false,
            udp_gso: true,
            udp_mmsg: true,
            mux_threads: 0,
            nack_history_ms: 1000,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(try_from = "String")]
pub enum Transport {
    /// One webrtcbin (libnice, DTLS, SRTP elements, queues) per viewer; ports from udp_port_min..max.
    Webrtcbin,
    /// str0m peers in one mux thread, one UDP port (`mux_port`); payloads shared by every viewer.
    #[default]
    Forward,
}

impl TryFrom<String> for Transport {
    type Error = String;
    fn try_from(v: String) -> Result<Self, String> {
        match v.as_str() {
            "webrtcbin" => Ok(Self::Webrtcbin),
            "forward" => Ok(Self::Forward),
            _ => Err(format!("unknown value \"{v}\" (allowed: \"webrtcbin\", \"forward\")")),
        }
    }
}

#[derive(Clone, Deserialize, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct IceServer {
    /// `stun:host:port`, `turn:host:port?transport=udp`, `turns:...`
    pub urls: Vec<String>,
    pub username: Option<String>,
    pub credential: Option<String>,
    /// A TURN server's shared secret (coturn `use-auth-secret`, the TURN REST convention): each answer
    /// carries a username/credential pair made from it that expires with the viewer's token.
    pub secret: Option<String>,
}

impl std::fmt::Debug for IceServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |v: &Option<String>| v.as_ref().map(|_| "(hidden)");
        f.debug_struct("IceServer")
            .field("urls", &self.urls)
            .field("username", &self.username)
            .field("credential", &hidden(&self.credential))
            .field("secret", &hidden(&self.secret))
            .finish()
    }
}

/// `webrtc.local_candidates`: which local addresses are announced as host candidates.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "OneOrMany")]
pub enum LocalCandidates {
    /// Every local address (but loopback and link-local).
    #[default]
    All,
    /// None: only `advertise` (a container's private address, a host behind a 1:1 NAT).
    None,
    /// Those inside these networks (`198.51.100.0/24`, `2001:db8::/32`; a bare address is a /32 or /128).
    Within(Vec<IpNet>),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl TryFrom<OneOrMany> for LocalCandidates {
    type Error = String;
    fn try_from(v: OneOrMany) -> Result<Self, String> {
        let list = match v {
            OneOrMany::One(w) if w == "all" => return Ok(Self::All),
            OneOrMany::One(w) if w == "none" => return Ok(Self::None),
            OneOrMany::One(w) => {
                return Err(format!("unknown value \"{w}\" (allowed: \"all\", \"none\" or a list of CIDRs)"));
            }
            OneOrMany::Many(list) => list,
        };
        let parse = |s: &String| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("\"{s}\" is not a CIDR like 198.51.100.0/24 or 2001:db8::/32"))
        };
        list.iter().map(parse).collect::<Result<Vec<_>, _>>().map(Self::Within)
    }
}

impl LocalCandidates {
    /// Whether a local address is announced.
    pub fn announces(&self, ip: IpAddr) -> bool {
        match self {
            Self::All => true,
            Self::None => false,
            Self::Within(nets) => nets.iter().any(|n| n.contains(&ip)),
        }
    }
}

/// One `webrtc.advertise` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Advertised {
    /// An address, with its port or (`None`) the mux port's.
    Addr(IpAddr, Option<u16>),
    /// A name to resolve (A and AAAA), likewise.
    Name(String, Option<u16>),
}

impl Advertised {
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Ok(a) = s.parse::<SocketAddr>() {
            return Ok(Self::Addr(a.ip(), Some(a.port())));
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Self::Addr(ip, None));
        }
        let (name, port) = match s.rsplit_once(':') {
            Some((n, p)) => (n, Some(p.parse::<u16>().ok().filter(|p| *p != 0).ok_or("the port is not 1-65535")?)),
            None => (s, None),
        };
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        let name = name.strip_suffix('.').unwrap_or(name);
        if name.is_empty()
            || name.len() > 253
            || !name.split('.').all(label_ok)
            || name.split('.').all(|l| l.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err("not an IP address, IP:PORT or a hostname".into());
        }
        Ok(Self::Name(name.to_ascii_lowercase(), port))
    }

    /// The addresses this entry stands for now (a name is looked up: blocking).
    pub fn resolve(&self, mux_port: u16) -> std::io::Result<Vec<SocketAddr>> {
        match self {
            Self::Addr(ip, port) => Ok(vec![SocketAddr::new(*ip, port.unwrap_or(mux_port))]),
            Self::Name(name, port) => {
                let mut addrs: Vec<SocketAddr> = (name.as_str(), port.unwrap_or(mux_port)).to_socket_addrs()?.collect();
                addrs.sort();
                addrs.dedup();
                Ok(addrs)
            }
        }
    }
}

/// A `turn:` URL as the relay uses it: `turn:host[:port][?transport=udp|tcp]` (port 3478).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnUrl {
    pub host: String,
    pub port: u16,
    /// `?transport=tcp`: to the TURN server over TCP.
    pub tcp: bool,
}

impl TurnUrl {
    pub fn parse(url: &str) -> Result<Self, String> {
        if url.starts_with("turns:") {
            return Err("turns: (TLS to the TURN server) is not supported for webrtc.relay; give a turn: URL \
                        (?transport=tcp for TCP)"
                .into());
        }
        let rest = url.strip_prefix("turn:").ok_or("not a turn: URL")?;
        let (hostport, query) = rest.split_once('?').unwrap_or((rest, ""));
        let tcp = match query {
            "" | "transport=udp" => false,
            "transport=tcp" => true,
            other => return Err(format!("unknown parameter \"{other}\" (allowed: transport=udp, transport=tcp)")),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.is_empty() && (!h.contains(':') || h.ends_with(']')) => {
                (h, p.parse::<u16>().ok().filter(|p| *p != 0).ok_or("the port is not 1-65535")?)
            }
            _ => (hostport, 3478),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err("no host".into());
        }
        Ok(Self { host: host.to_owned(), port, tcp })
    }

    /// The TURN server's address now (a name is looked up: blocking), IPv4 first.
    pub fn server_addr(&self) -> std::io::Result<SocketAddr> {
        let entry = match self.host.parse() {
            Ok(ip) => Advertised::Addr(ip, Some(self.port)),
            Err(_) => Advertised::Name(self.host.clone(), Some(self.port)),
        };
        let addrs = entry.resolve(self.port)?;
        addrs
            .iter()
            .find(|a| a.is_ipv4())
            .or(addrs.first())
            .copied()
            .ok_or_else(|| std::io::Error::other("the name has no address"))
    }
}

impl WebrtcConfig {
    /// The ICE servers and `turn:` URLs `relay` allocates on, in the order tried: every `turn:` URL in
    /// `ice_servers`, in order (`turns:` ones are left out: no TLS to the TURN server).
    pub fn relay_servers(&self) -> Vec<(&IceServer, &str)> {
        let mut out = Vec::new();
        for server in &self.ice_servers {
            out.extend(server.urls.iter().filter(|u| u.starts_with("turn:")).map(|u| (server, u.as_str())));
        }
        out
    }

    /// The parsed `advertise` entries (valid after [`WebrtcConfig::validate`]).
    pub fn advertised(&self) -> Vec<Advertised> {
        self.advertise.iter().filter_map(|s| Advertised::parse(s).ok()).collect()
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let w = self;
        for (i, server) in w.ice_servers.iter().enumerate() {
            if server.urls.is_empty() {
                return Err(invalid(format!("webrtc.ice_servers[{i}].urls"), &server.urls, "at least one URL"));
            }
            for (j, url) in server.urls.iter().enumerate() {
                let scheme = url.split(':').next().unwrap_or_default();
                if !["stun", "stuns", "turn", "turns"].contains(&scheme) || !url.contains(':') {
                    return Err(invalid(
                        format!("webrtc.ice_servers[{i}].urls[{j}]"),
                        url,
                        "a stun:, stuns:, turn: or turns: URL",
                    ));
                }
                let fixed = server.username.is_some() && server.credential.is_some();
                if scheme.starts_with("turn") && !fixed && server.secret.is_none() {
                    return Err(invalid(
                        format!("webrtc.ice_servers[{i}].username"),
                        &server.username,
                        "TURN servers need a username and a credential, or a shared `secret`",
                    ));
                }
                if server.secret.is_some() && server.credential.is_some() {
                    return Err(invalid(
                        format!("webrtc.ice_servers[{i}].secret"),
                        "(hidden)",
                        "either a fixed credential or a shared secret, not both",
                    ));
                }
            }
        }
        if !(1..=2048).contains(&w.ice_tcp_per_address) {
            return Err(invalid("webrtc.ice_tcp_per_address", w.ice_tcp_per_address, "1 to 2048"));
        }
        if !(60..=86_400).contains(&w.turn_credential_ttl_s) {
            return Err(invalid("webrtc.turn_credential_ttl_s", w.turn_credential_ttl_s, "60 to 86400 (seconds)"));
        }
        if w.mux_threads > MAX_MUX_THREADS {
            return Err(invalid("webrtc.mux_threads", w.mux_threads, "0 (one per core) to 64"));
        }
        if !(100..=10_000).contains(&w.nack_history_ms) {
            return Err(invalid("webrtc.nack_history_ms", w.nack_history_ms, "100 to 10000 (milliseconds)"));
        }
        if !(1..=300).contains(&w.connect_timeout_s) {
            return Err(invalid("webrtc.connect_timeout_s", w.connect_timeout_s, "1 to 300 (seconds)"));
        }
        if (w.udp_port_min == 0) != (w.udp_port_max == 0) || w.udp_port_min > w.udp_port_max {
            return Err(invalid(
                "webrtc.udp_port_max",
                w.udp_port_max,
                format!("0 together with udp_port_min = 0, or >= udp_port_min ({})", w.udp_port_min),
            ));
        }
        for (i, entry) in w.advertise.iter().enumerate() {
            Advertised::parse(entry).map_err(|why| invalid(format!("webrtc.advertise[{i}]"), entry, why))?;
        }
        if let Some(url) = &w.stun_discover {
            let host = url.strip_prefix("stun:").filter(|h| !h.is_empty() && !h.starts_with('/'));
            if host.is_none() {
                return Err(invalid("webrtc.stun_discover", url, "a stun: URL such as stun:stun.example.net:3478"));
            }
        }
        let discovers = w.stun_discover.is_some();
        if w.local_candidates == LocalCandidates::None
            && w.advertise.is_empty()
            && !discovers
            && w.transport == Transport::Forward
        {
            return Err(invalid(
                "webrtc.local_candidates",
                "none",
                "\"none\" needs webrtc.advertise entries: otherwise no address is announced and nothing plays",
            ));
        }
        if w.relay {
            w.validate_relay()?;
        }
        if !w.advertise.is_empty() && w.transport == Transport::Webrtcbin {
            return Err(invalid(
                "webrtc.advertise",
                &w.advertise,
                "announced addresses need transport = \"forward\" (webrtcbin announces what libnice gathers)",
            ));
        }
        Ok(())
    }

    fn validate_relay(&self) -> Result<(), ConfigError> {
        if self.transport == Transport::Webrtcbin {
            return Err(invalid(
                "webrtc.relay",
                true,
                "the relay is the forwarding transport's (webrtcbin's libnice uses the TURN servers in \
                 ice_servers by itself)",
            ));
        }
        let servers = self.relay_servers();
        if servers.is_empty() {
            let why = match self.ice_servers.iter().any(|s| s.urls.iter().any(|u| u.starts_with("turns:"))) {
                true => "turns: (TLS to the TURN server) is not supported for the relay; add a turn: URL",
                false => "needs a turn: server in webrtc.ice_servers to allocate on",
            };
            return Err(invalid("webrtc.relay", true, why));
        }
        for (_, url) in servers {
            TurnUrl::parse(url).map_err(|why| invalid("webrtc.relay", url, why))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertise_entries_are_addresses_ports_or_names() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert_eq!(Advertised::parse("198.51.100.7"), Ok(Advertised::Addr(ip("198.51.100.7"), None)));
        assert_eq!(Advertised::parse("198.51.100.7:40000"), Ok(Advertised::Addr(ip("198.51.100.7"), Some(40000))));
        assert_eq!(Advertised::parse("[2001:db8::1]:9"), Ok(Advertised::Addr(ip("2001:db8::1"), Some(9))));
        assert_eq!(Advertised::parse("2001:db8::1"), Ok(Advertised::Addr(ip("2001:db8::1"), None)));
        assert_eq!(Advertised::parse("Home.Example.NET"), Ok(Advertised::Name("home.example.net".into(), None)));
        assert_eq!(
            Advertised::parse("home.example.net:8190"),
            Ok(Advertised::Name("home.example.net".into(), Some(8190)))
        );
        for bad in ["", "http://x", "a b", "host:0", "host:99999", "-x.net", "1.2.3", "x..y"] {
            assert!(Advertised::parse(bad).is_err(), "{bad} accepted");
        }
        let port = Advertised::parse("localhost").expect("name").resolve(8189).expect("localhost resolves");
        assert!(port.iter().all(|a| a.port() == 8189 && a.ip().is_loopback()), "{port:?}");
    }

    #[test]
    fn local_candidates_are_all_none_or_networks() {
        let parse = |v: OneOrMany| LocalCandidates::try_from(v);
        assert_eq!(parse(OneOrMany::One("all".into())), Ok(LocalCandidates::All));
        assert_eq!(parse(OneOrMany::One("none".into())), Ok(LocalCandidates::None));
        let some = parse(OneOrMany::Many(vec!["198.18.0.0/15".into(), "2001:db8::1".into()])).expect("cidrs");
        assert!(some.announces("198.19.3.4".parse().expect("ip")));
        assert!(!some.announces("10.0.0.1".parse().expect("ip")));
        assert!(
            some.announces("2001:db8::1".parse().expect("ip")) && !some.announces("2001:db8::2".parse().expect("ip"))
        );
        assert!(!LocalCandidates::None.announces("198.18.0.1".parse().expect("ip")));
        let e = parse(OneOrMany::Many(vec!["10.0.0.0/33".into()])).expect_err("bad prefix");
        assert!(e.contains("10.0.0.0/33"), "{e}");
        assert!(parse(OneOrMany::One("some".into())).expect_err("bad word").contains("\"all\", \"none\""));
    }

    #[test]
    fn relay_urls_are_turn_with_host_port_and_transport() {
        let t = |h: &str, port, tcp| Ok(TurnUrl { host: h.into(), port, tcp });
        assert_eq!(TurnUrl::parse("turn:turn.example.net"), t("turn.example.net", 3478, false));
        assert_eq!(TurnUrl::parse("turn:198.51.100.1:3479?transport=tcp"), t("198.51.100.1", 3479, true));
        assert_eq!(TurnUrl::parse("turn:[2001:db8::1]:3478?transport=udp"), t("2001:db8::1", 3478, false));
        assert_eq!(TurnUrl::parse("turn:[2001:db8::1]"), t("2001:db8::1", 3478, false));
        for bad in ["turns:t.example.net", "turn:", "turn:t:0", "turn:t?transport=sctp", "stun:t"] {
            assert!(TurnUrl::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn relay_needs_a_turn_server_and_the_forwarding_transport() {
        let turn = |url: &str| IceServer {
            urls: vec![url.into()],
            username: Some("u".into()),
            credential: Some("p".into()),
            secret: None,
        };
        let no_server = WebrtcConfig { relay: true, ..WebrtcConfig::default() };
        let e = no_server.validate().expect_err("no TURN server").to_string();
        assert!(e.contains("webrtc.relay") && e.contains("turn:"), "{e}");
        let tls = WebrtcConfig { ice_servers: vec![turn("turns:t.example.net")], ..no_server.clone() };
        assert!(tls.validate().expect_err("turns only").to_string().contains("TLS"));
        let both = IceServer {
            urls: vec![
                "turns:t.example.net".into(),
                "turn:t.example.net".into(),
                "turn:t.example.net?transport=tcp".into(),
            ],
            ..turn("")
        };
        let ok = WebrtcConfig {
            ice_servers: vec![turn("stun:s.example.net"), both, turn("turn:u.example.net")],
            ..no_server.clone()
        };
        assert!(ok.validate().is_ok());
        let order: Vec<&str> = ok.relay_servers().into_iter().map(|(_, u)| u).collect();
        assert_eq!(order, ["turn:t.example.net", "turn:t.example.net?transport=tcp", "turn:u.example.net"], "in order");
        let bad =
            WebrtcConfig { ice_servers: vec![turn("turn:t.example.net"), turn("turn:u?transport=sctp")], ..no_server };
        assert!(bad.validate().expect_err("a bad second URL").to_string().contains("turn:u?transport=sctp"));
        let bin = WebrtcConfig { transport: Transport::Webrtcbin, ..ok };
        assert!(bin.validate().expect_err("webrtcbin").to_string().contains("forwarding transport"));
    }

    #[test]
    fn nothing_announced_or_advertise_on_webrtcbin_is_a_config_error() {
        let none = WebrtcConfig { local_candidates: LocalCandidates::None, ..WebrtcConfig::default() };
        let e = none.validate().expect_err("nothing to announce").to_string();
        assert!(e.contains("webrtc.local_candidates") && e.contains("advertise"), "{e}");
        let ok = WebrtcConfig { advertise: vec!["198.51.100.7".into()], ..none };
        assert!(ok.validate().is_ok());
        let bin = WebrtcConfig { transport: Transport::Webrtcbin, ..ok.clone() };
        assert!(bin.validate().expect_err("webrtcbin").to_string().contains("forward"));
        let bad = WebrtcConfig { advertise: vec!["not a host".into()], ..ok };
        assert!(bad.validate().expect_err("bad entry").to_string().contains("webrtc.advertise[0]"));
    }
}

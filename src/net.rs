//! Listening sockets shared by the HTTPS listener and the media transport's ICE-TCP port, and which
//! addresses are private.

use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};

/// A listening TCP socket on `addr`. The IPv6 wildcard `[::]` takes IPv4 (mapped) connections too,
/// whatever the system's IPV6_V6ONLY default; where the host has no IPv6 at all it falls back to `0.0.0.0`
/// on the same port, with a warning.
pub fn listen_tcp(addr: SocketAddr) -> std::io::Result<TcpListener> {
    match bind_tcp(addr) {
        Err(e) if addr.ip() == Ipv6Addr::UNSPECIFIED && e.kind() != ErrorKind::AddrInUse => {
            let v4 = SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), addr.port());
            tracing::warn!(error = %e, fallback = %v4, "no IPv6 here: listening on IPv4 only");
            bind_tcp(v4)
        }
        other => other,
    }
}

fn bind_tcp(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    if addr.is_ipv6() {
        socket.set_only_v6(!addr.ip().is_unspecified())?;
    }
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// Addresses only reachable inside some private network: RFC 1918, shared (CGNAT) 100.64/10, link-local,
/// loopback, unique-local fc00::/7, and IPv4-mapped forms of these.
pub fn private(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_private() || v4.is_loopback() || v4.is_link_local() || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback() || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
    }
}

/// The address a client is counted under by per-address limits: an IPv6 client by its /64 (which one host
/// usually owns whole), an IPv4-mapped one as IPv4.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

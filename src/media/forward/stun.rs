//! `webrtc.stun_discover`: asks a STUN server (RFC 8489 Binding) which public address this host's traffic
//! leaves from. The message is built and read by the `stun_codec` crate, not by hand (str0m's STUN code
//! insists on ICE's MESSAGE-INTEGRITY in every Binding reply, which a plain STUN server never sends).
//!
//! The answer's IP is announced with the mux port, which is right where the router forwards that port or
//! maps the host 1:1 (the NAT's mapping of the asking socket's port says nothing about a forward). An
//! ICE-lite agent has host candidates only (RFC 8445 §2.5), so it is announced as one, like `advertise`.

use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::Duration;

use bytecodec::{DecodeExt, EncodeExt};
use stun_codec::rfc5389::{Attribute, attributes::XorMappedAddress, methods::BINDING};
use stun_codec::{Message, MessageClass, MessageDecoder, MessageEncoder, TransactionId};

/// `stun:host[:port]` (port 3478 when absent) as socket addresses.
pub fn server_addrs(url: &str) -> std::io::Result<Vec<SocketAddr>> {
    let rest = url.strip_prefix("stun:").unwrap_or(url);
    let rest = rest.split('?').next().unwrap_or(rest);
    let with_port = if rest.rsplit_once(':').is_some_and(|(h, p)| !h.ends_with(':') && p.parse::<u16>().is_ok()) {
        rest.to_owned()
    } else {
        format!("{rest}:3478")
    };
    Ok(with_port.to_socket_addrs()?.collect())
}

fn codec_error(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(format!("STUN: {e}"))
}

/// The XOR-MAPPED-ADDRESS of a successful Binding response to `tid`.
fn mapped(bytes: &[u8], tid: TransactionId) -> Option<SocketAddr> {
    let msg = MessageDecoder::<Attribute>::new().decode_from_bytes(bytes).ok()?.ok()?;
    let ours = msg.transaction_id() == tid && msg.method() == BINDING && msg.class() == MessageClass::SuccessResponse;
    ours.then(|| msg.get_attribute::<XorMappedAddress>().map(|a| a.address())).flatten()
}

/// The address `server` sees this host's requests come from (blocking: up to three tries of 700 ms).
pub fn public_address(server: SocketAddr) -> std::io::Result<SocketAddr> {
    let any: SocketAddr = if server.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let socket = UdpSocket::bind(any)?;
    socket.set_read_timeout(Some(Duration::from_millis(700)))?;
    let mut buf = [0u8; 1500];
    for _ in 0..3 {
        let tid = TransactionId::new(rand::random());
        let request = Message::<Attribute>::new(MessageClass::Request, BINDING, tid);
        let bytes = MessageEncoder::new().encode_into_bytes(request).map_err(codec_error)?;
        socket.send_to(&bytes, server)?;
        loop {
            let (n, from) = match socket.recv_from(&mut buf) {
                Ok(v) => v,
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => break,
                Err(e) => return Err(e),
            };
            if let Some(addr) = mapped(&buf[..n], tid).filter(|_| from == server) {
                return Ok(addr);
            }
        }
    }
    Err(std::io::Error::new(std::io::ErrorKind::TimedOut, format!("no STUN answer from {server}")))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_coturn_binding_response_is_read() {
        // coturn 4.6.1's answer (XOR-MAPPED-ADDRESS, MAPPED-ADDRESS, RESPONSE-ORIGIN, SOFTWARE) for 127.0.0.1:42713.
        let hex = "0101003c2112a442000102030405060708090a0b00200008000187cb5e12a443000100080001a6d97f000001802b0008000187ef7f00000180220014436f7475726e2d342e362e312027476f72737427";
        let bytes: Vec<u8> =
            (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex")).collect();
        let tid = stun_codec::TransactionId::new([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
        assert_eq!(super::mapped(&bytes, tid), Some("127.0.0.1:42713".parse().expect("addr")));
        let other = stun_codec::TransactionId::new([9; 12]);
        assert_eq!(super::mapped(&bytes, other), None, "not an answer to our request");
        assert_eq!(super::mapped(&bytes[..30], tid), None, "truncated");
    }

    #[test]
    fn stun_urls_get_the_default_port() {
        let a = super::server_addrs("stun:127.0.0.1").expect("addr");
        assert_eq!(a, vec!["127.0.0.1:3478".parse().expect("addr")]);
        let a = super::server_addrs("stun:127.0.0.1:19302?transport=udp").expect("addr");
        assert_eq!(a, vec!["127.0.0.1:19302".parse().expect("addr")]);
    }
}

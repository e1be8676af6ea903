//! Which viewer a datagram on the shared media port is for, in constant time whatever arrives.
//!
//! A source address is bound to a peer once that peer's `Rtc` accepted a datagram from it. From any other
//! address only an ICE connectivity check (a STUN message) can start a path, and its USERNAME
//! (`<our ufrag>:<theirs>`, RFC 8445 §7.2.2) names the peer. Anything else from an unknown address is
//! dropped without asking a single peer, so a flood of junk costs one hash lookup per datagram, not one
//! check per viewer.
//!
//! With several mux threads (`webrtc.mux_threads`) one table serves them all ([`SharedRoutes`]): each route
//! names the peer and the mux thread (shard) that owns it; the thread that reads the sockets hands a
//! datagram to its owner.

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::ids::SessionId;

/// A peer and the mux thread that owns it.
pub(super) type Owner = (SessionId, usize);

/// The routes every mux thread shares: written on joins, leaves, ICE restarts and learned addresses, read
/// for every datagram.
pub(super) type SharedRoutes = std::sync::Arc<std::sync::RwLock<Routes>>;

#[derive(Default)]
pub(super) struct Routes {
    by_source: HashMap<SocketAddr, Owner>,
    by_ufrag: HashMap<String, Owner>,
}

impl Routes {
    /// `id` answers checks for local ufrag `ufrag` (a new peer, or new credentials after an ICE restart; the
    /// old ufrag stops routing, as its checks would fail anyway).
    pub fn set_ufrag(&mut self, (id, shard): Owner, ufrag: String) {
        self.by_ufrag.retain(|_, v| v.0 != id);
        self.by_ufrag.insert(ufrag, (id, shard));
    }

    pub fn remove(&mut self, id: SessionId) {
        self.by_source.retain(|_, v| v.0 != id);
        self.by_ufrag.retain(|_, v| v.0 != id);
    }

    /// The peer last seen at `source`.
    pub fn known(&self, source: &SocketAddr) -> Option<Owner> {
        self.by_source.get(source).copied()
    }

    /// The peer a datagram `buf` from an unknown address may be for: the one whose ufrag its STUN USERNAME
    /// names; `None` for anything else.
    pub fn checked_by(&self, buf: &[u8]) -> Option<Owner> {
        let (ours, _) = stun_username(buf)?.split_once(':')?;
        self.by_ufrag.get(ours).copied()
    }

    /// Whether datagram `buf` from `source` may be for a peer: it comes from a known address or is a check
    /// naming a peer's ufrag.
    pub fn may_route(&self, source: &SocketAddr, buf: &[u8]) -> bool {
        self.by_source.contains_key(source) || self.checked_by(buf).is_some()
    }

    /// `source` belongs to `id` from now on.
    pub fn learn(&mut self, source: SocketAddr, owner: Owner) {
        self.by_source.insert(source, owner);
    }
}

const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
const USERNAME: u16 = 0x0006;

/// The USERNAME attribute of a STUN message (RFC 5389 §6, §15.3), or `None` when `buf` is not one or has
/// none. Reads only within `buf` and the message's stated length.
pub(super) fn stun_username(buf: &[u8]) -> Option<&str> {
    if buf.len() < 20 || buf[0] & 0xc0 != 0 || buf[4..8] != MAGIC_COOKIE {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
    let mut attrs = buf.get(20..20 + len)?;
    while attrs.len() >= 4 {
        let kind = u16::from_be_bytes([attrs[0], attrs[1]]);
        let n = usize::from(u16::from_be_bytes([attrs[2], attrs[3]]));
        let value = attrs.get(4..4 + n)?;
        if kind == USERNAME {
            return std::str::from_utf8(value).ok();
        }
        attrs = attrs.get((4 + n).next_multiple_of(4)..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Binding request with USERNAME `user` (and a PRIORITY before it, as browsers send).
    fn binding(user: &str) -> Vec<u8> {
        let mut attrs = vec![0x00, 0x24, 0x00, 0x04, 0x6e, 0x00, 0x1e, 0xff];
        attrs.extend_from_slice(&USERNAME.to_be_bytes());
        attrs.extend_from_slice(&(user.len() as u16).to_be_bytes());
        attrs.extend_from_slice(user.as_bytes());
        attrs.resize(attrs.len().next_multiple_of(4), 0);
        let mut m = vec![0x00, 0x01];
        m.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        m.extend_from_slice(&MAGIC_COOKIE);
        m.extend_from_slice(&[7; 12]);
        m.extend(attrs);
        m
    }

    #[test]
    fn a_check_names_its_peer_and_its_mux_thread_and_junk_names_none() {
        let mut r = Routes::default();
        let (a, b) = ((SessionId::random(), 0), (SessionId::random(), 1));
        r.set_ufrag(a, "aaaa".into());
        r.set_ufrag(b, "bbbb".into());
        assert_eq!(r.checked_by(&binding("bbbb:remote")), Some(b));
        assert_eq!(r.checked_by(&binding("cccc:remote")), None);
        assert_eq!(r.checked_by(&[0x80; 200]), None, "RTP-looking junk");
        assert_eq!(r.checked_by(&binding("bbbb:remote")[..30]), None, "cut short");
        r.set_ufrag(b, "b2b2".into());
        assert_eq!(r.checked_by(&binding("bbbb:remote")), None, "the ufrag before a restart no longer routes");
        assert_eq!(r.checked_by(&binding("b2b2:remote")), Some(b));
        let source = "198.18.0.2:5000".parse().expect("addr");
        r.learn(source, a);
        assert_eq!(r.known(&source), Some(a));
        r.remove(a.0);
        assert_eq!((r.known(&source), r.checked_by(&binding("aaaa:x"))), (None, None));
    }

    #[test]
    fn every_truncation_and_mutation_of_a_check_is_read_safely() {
        let m = binding("ufrag:other");
        for end in 0..m.len() {
            let _ = stun_username(&m[..end]);
        }
        for i in 0..m.len() {
            for v in [0x00, 0xff, 0x7f, 0x80] {
                let mut x = m.clone();
                x[i] = v;
                let _ = stun_username(&x);
            }
        }
        assert_eq!(stun_username(&m), Some("ufrag:other"));
    }
}

//! The mux's inbound path: reading the sockets and ICE-TCP connections, and giving each datagram to the
//! peer it is for, on this thread or another ([`super::Cmd::Datagram`]).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Instant;

use mio::Token;
use str0m::Input;
use str0m::net::Protocol;

use super::{Cmd, Mux, receive, tcp};
use crate::ids::SessionId;

impl Mux {
    pub(super) fn on_readable(&mut self, idx: usize) {
        let Some(socket) = self.sockets.get(idx) else {
            return;
        };
        let local = socket.local;
        let mut got: Vec<(SocketAddr, Vec<u8>)> = Vec::new();
        {
            let routes = self.routes.read().expect("routes lock");
            socket.drain(&mut self.recv, |source, d| {
                // Junk from an address no peer uses is dropped here, before it is copied or parsed.
                if routes.may_route(&source, d) {
                    got.push((source, d.to_vec()));
                }
            });
        }
        for (source, datagram) in got {
            self.route(Protocol::Udp, source, local, &datagram, false);
        }
    }

    /// An ICE-TCP connection is readable (its frames go to the peers as datagrams do, each read into the
    /// connection's buffer and routed from there) or writable.
    pub(super) fn on_tcp(&mut self, token: Token, readable: bool, writable: bool) {
        if writable {
            self.tcp.flush(self.poll.registry(), token);
        }
        if readable {
            self.read_tcp(token);
        }
    }

    /// One visit of ICE-TCP connection `token`: its frames until it has no more or the visit's budget is
    /// spent (then it is visited again next round: [`tcp::TcpMux::take_later`]).
    pub(super) fn read_tcp(&mut self, token: Token) {
        let mut visit = tcp::Visit::default();
        while let tcp::Next::Frame(lent) = self.tcp.next_frame(token, &mut visit) {
            let reached = self.route(Protocol::Tcp, lent.remote, lent.local, lent.packet(), false);
            self.tcp.done(lent, reached, Instant::now());
        }
    }

    /// Gives datagram `buf` from `source` to the peer last seen there, or, for an ICE check from a new
    /// address, to the peer its username names ([`super::route::Routes`]), if that peer's `Rtc` accepts it;
    /// a peer of another mux thread gets it through that thread ([`Cmd::Datagram`]; `hop`: this is such a
    /// hand-over, which is passed on at most once more). Anything else is dropped without asking any peer,
    /// and before str0m parses it. True when a peer took it (or it went to the thread of the peer known at
    /// its source).
    pub(super) fn route(
        &mut self,
        proto: Protocol,
        source: SocketAddr,
        local: SocketAddr,
        buf: &[u8],
        hop: bool,
    ) -> bool {
        let (by_source, by_check) = {
            let routes = self.routes.read().expect("routes lock");
            (routes.known(&source), routes.checked_by(buf))
        };
        let Some((_, first)) = by_source.or(by_check) else { return false };
        if first != self.shard {
            self.hand_over(first, proto, source, local, buf, hop);
            return by_source.is_some();
        }
        let Some(receive) = receive(proto, source, local, buf) else {
            return false;
        };
        let input = Input::Receive(Instant::now(), receive);
        let accepts = |id: &SessionId| self.peers.get(id).is_some_and(|p| p.accepts(&input));
        let id = match by_source.filter(|(id, shard)| *shard == self.shard && accepts(id)) {
            Some((id, _)) => id,
            None => match by_check {
                Some((id, shard)) if shard == self.shard && accepts(&id) => {
                    self.routes.write().expect("routes lock").learn(source, (id, shard));
                    id
                }
                Some((_, shard)) if shard != self.shard && !hop => {
                    self.hand_over(shard, proto, source, local, buf, true);
                    return false;
                }
                _ => return false,
            },
        };
        self.drive(id, |p, send, ev| p.handle(input, send, ev));
        true
    }

    pub(super) fn hand_over(
        &self,
        shard: usize,
        proto: Protocol,
        source: SocketAddr,
        local: SocketAddr,
        buf: &[u8],
        hop: bool,
    ) {
        if let Some(tx) = self.shards.get(shard) {
            tx.send(Cmd::Datagram { proto, source, local, data: buf.to_vec(), hop });
        }
    }

    /// Peer `id` is gone from this thread: no more routes to it, one viewer less here.
    pub(super) fn forget(&mut self, id: SessionId) {
        self.routes.write().expect("routes lock").remove(id);
        let _ = self.load.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }
}

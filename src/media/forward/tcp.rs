//! ICE-TCP (RFC 6544) for the mux: one passive listener, each accepted connection carrying RFC 4571 frames
//! (a 16-bit big-endian length, then one STUN, DTLS, RTP or RTCP packet), so a viewer whose network blocks
//! UDP still plays. The mux thread owns it: connections are polled with the UDP sockets, their frames go to
//! the peers like datagrams, and what a peer sends over TCP is framed onto its connection.
//!
//! A connection that sends nothing for [`IDLE`] (a viewer sends a consent check every ~5 s) or an
//! unframeable length is closed; at most [`MAX_CONNECTIONS`] are open. Writes that the kernel cannot take
//! at once wait in a per-connection buffer of at most [`MAX_BACKLOG`] bytes; a packet that does not fit is
//! dropped whole (media over TCP is late rather than corrupt).

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};

/// The listener's token, and the first connection's (UDP sockets use 0, 1, 2, ...).
pub(super) const LISTENER: Token = Token(usize::MAX - 1);
const FIRST_CONN: usize = 1 << 32;
const IDLE: Duration = Duration::from_secs(30);
const MAX_CONNECTIONS: usize = 2048;
const MAX_BACKLOG: usize = 512 * 1024;

struct Conn {
    stream: TcpStream,
    local: SocketAddr,
    remote: SocketAddr,
    inbuf: Vec<u8>,
    outbuf: Vec<u8>,
    last_heard: Instant,
    writable: bool,
}

/// The listener and its connections.
pub(super) struct TcpMux {
    listener: Option<TcpListener>,
    conns: HashMap<Token, Conn>,
    by_pair: HashMap<(SocketAddr, SocketAddr), Token>,
    next: usize,
}

/// An address as a candidate states it: an IPv4 client of a dual-stack listener as IPv4.
fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

impl TcpMux {
    pub fn new(listener: Option<std::net::TcpListener>, registry: &Registry) -> std::io::Result<Self> {
        let listener = match listener {
            Some(l) => {
                l.set_nonblocking(true)?;
                let mut l = TcpListener::from_std(l);
                registry.register(&mut l, LISTENER, Interest::READABLE)?;
                Some(l)
            }
            None => None,
        };
        Ok(Self { listener, conns: HashMap::new(), by_pair: HashMap::new(), next: FIRST_CONN })
    }

    pub fn is_conn(token: Token) -> bool {
        token.0 >= FIRST_CONN && token != LISTENER
    }

    /// Takes every pending connection.
    pub fn accept(&mut self, registry: &Registry, now: Instant) {
        let Some(listener) = &self.listener else { return };
        loop {
            let (mut stream, remote) = match listener.accept() {
                Ok(v) => v,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::debug!(error = %e, "ICE-TCP: accept failed");
                    return;
                }
            };
            let Ok(local) = stream.local_addr() else { continue };
            if self.conns.len() >= MAX_CONNECTIONS {
                tracing::debug!(%remote, "ICE-TCP: too many connections, refused");
                continue;
            }
            let _ = stream.set_nodelay(true);
            let token = Token(self.next);
            self.next += 1;
            if registry.register(&mut stream, token, Interest::READABLE).is_err() {
                continue;
            }
            let (local, remote) = (canonical(local), canonical(remote));
            self.by_pair.insert((local, remote), token);
            let conn =
                Conn { stream, local, remote, inbuf: Vec::new(), outbuf: Vec::new(), last_heard: now, writable: false };
            self.conns.insert(token, conn);
        }
    }

    /// Reads what connection `token` has; each complete frame goes to `frame(local, remote, packet)`.
    pub fn on_readable(
        &mut self,
        token: Token,
        now: Instant,
        buf: &mut [u8],
        frame: &mut dyn FnMut(SocketAddr, SocketAddr, &[u8]),
    ) {
        let Some(conn) = self.conns.get_mut(&token) else { return };
        let mut closed = false;
        loop {
            match conn.stream.read(buf) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(n) => {
                    conn.last_heard = now;
                    conn.inbuf.extend_from_slice(&buf[..n]);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => {
                    closed = true;
                    break;
                }
            }
        }
        let mut at = 0;
        while conn.inbuf.len() - at >= 2 {
            let len = usize::from(u16::from_be_bytes([conn.inbuf[at], conn.inbuf[at + 1]]));
            if len == 0 {
                closed = true;
                break;
            }
            if conn.inbuf.len() - at - 2 < len {
                break;
            }
            frame(conn.local, conn.remote, &conn.inbuf[at + 2..at + 2 + len]);
            at += 2 + len;
        }
        conn.inbuf.drain(..at);
        if closed {
            self.close(token);
        }
    }

    /// Frames `packet` onto the connection from `local` to `remote` (dropped when there is none, or its
    /// backlog is full).
    pub fn send(&mut self, registry: &Registry, local: SocketAddr, remote: SocketAddr, packet: &[u8]) {
        let Some(token) = self.by_pair.get(&(local, remote)).copied() else { return };
        let Some(conn) = self.conns.get_mut(&token) else { return };
        let Ok(len) = u16::try_from(packet.len()) else { return };
        if conn.outbuf.len() + 2 + packet.len() > MAX_BACKLOG {
            return;
        }
        conn.outbuf.extend_from_slice(&len.to_be_bytes());
        conn.outbuf.extend_from_slice(packet);
        if !conn.writable {
            self.flush(registry, token);
        }
    }

    /// Writes what connection `token` has waiting; asks for writability while some is left.
    pub fn flush(&mut self, registry: &Registry, token: Token) {
        let Some(conn) = self.conns.get_mut(&token) else { return };
        let mut failed = false;
        while !conn.outbuf.is_empty() {
            match conn.stream.write(&conn.outbuf) {
                Ok(0) => {
                    failed = true;
                    break;
                }
                Ok(n) => {
                    conn.outbuf.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        if failed {
            self.close(token);
            return;
        }
        let want = !conn.outbuf.is_empty();
        if want != conn.writable {
            let interest = if want { Interest::READABLE | Interest::WRITABLE } else { Interest::READABLE };
            if registry.reregister(&mut conn.stream, token, interest).is_ok() {
                conn.writable = want;
            }
        }
    }

    /// Closes connections idle for [`IDLE`].
    pub fn sweep(&mut self, now: Instant) {
        let idle: Vec<Token> =
            self.conns.iter().filter(|(_, c)| now.duration_since(c.last_heard) > IDLE).map(|(t, _)| *t).collect();
        for t in idle {
            self.close(t);
        }
    }

    fn close(&mut self, token: Token) {
        if let Some(conn) = self.conns.remove(&token) {
            self.by_pair.remove(&(conn.local, conn.remote));
        }
    }
}

//! ICE-TCP (RFC 6544) for the mux: one passive listener, each accepted connection carrying RFC 4571 frames
//! (a 16-bit big-endian length, then one STUN, DTLS, RTP or RTCP packet), so a viewer whose network blocks
//! UDP still plays. The mux thread owns it: connections are polled with the UDP sockets, their frames go to
//! the peers like datagrams, and what a peer sends over TCP is framed onto its connection.
//!
//! A stranger can open these connections, so each is held to what a viewer needs:
//! - Frames are read as they arrive into the connection's one frame buffer (never more than one frame,
//!   2 + 65535 bytes) and lent to the mux in place ([`TcpMux::next_frame`], [`TcpMux::done`]): no frame is
//!   copied on its way to a peer. A visit reads at most [`VISIT_BYTES`] or [`VISIT_FRAMES`]; a connection
//!   with more waiting is visited again next round of the mux loop ([`TcpMux::take_later`]: mio is
//!   edge-triggered, so it would not be reported again), and a flooding client shares the thread fairly.
//! - Until one of its frames has reached a viewer (a STUN Binding request naming a viewer's ufrag with the
//!   right MESSAGE-INTEGRITY: nothing else from a new address is routed), a connection may send frames of
//!   at most [`UNCHECKED_FRAME`] bytes, and it is closed if that has not happened within [`CHECK_DEADLINE`].
//! - Idleness counts from the last frame that reached a viewer: [`IDLE`] (a viewer sends a consent check
//!   every ~5 s), not from any byte.
//! - At most `webrtc.ice_tcp_per_address` connections per client address (an IPv6 client by its /64) and
//!   [`MAX_CONNECTIONS`] in all; when all are taken, the oldest connection that has reached no viewer yet
//!   makes room for the new one.
//!
//! Writes that the kernel cannot take at once wait in a per-connection buffer of at most [`MAX_BACKLOG`]
//! bytes; a packet that does not fit is dropped whole (media over TCP is late rather than corrupt).

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};

/// The listener's token, and the first connection's (UDP sockets use 0, 1, 2, ...).
pub(super) const LISTENER: Token = Token(usize::MAX - 1);
const FIRST_CONN: usize = 1 << 32;
/// A connection none of whose frames reached a viewer for this long is closed.
pub(super) const IDLE: Duration = Duration::from_secs(30);
/// A new connection must have had a frame reach a viewer (its first ICE check) by then.
pub(super) const CHECK_DEADLINE: Duration = Duration::from_secs(5);
/// Connections open at most, from all addresses.
pub(super) const MAX_CONNECTIONS: usize = 2048;
const MAX_BACKLOG: usize = 512 * 1024;
/// The largest frame a connection may send before one of its frames reached a viewer: an ICE check with
/// USERNAME, PRIORITY, ICE-CONTROLLING, USE-CANDIDATE, a vendor attribute or two, MESSAGE-INTEGRITY and
/// FINGERPRINT is well under 1 KiB.
pub(super) const UNCHECKED_FRAME: usize = 2048;
/// What one visit of a connection reads at most before the mux does other work.
pub(super) const VISIT_BYTES: usize = 64 * 1024;
pub(super) const VISIT_FRAMES: u32 = 32;
/// A frame buffer grown past this by a large frame is let go of after it (an idle connection holds little).
const KEEP_BUFFER: usize = 4096;

/// Why the server closed (or refused) an ICE-TCP connection; a client's own close is not counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// Its address held `webrtc.ice_tcp_per_address` already (refused at accept).
    PerAddress,
    /// All [`MAX_CONNECTIONS`] were taken by connections that had reached a viewer (refused at accept).
    Full,
    /// It made room for a new connection: the oldest that had reached no viewer.
    Evicted,
    /// No frame of it reached a viewer within [`CHECK_DEADLINE`].
    NoCheck,
    /// A zero length, or a frame over [`UNCHECKED_FRAME`] before one reached a viewer.
    BadFrame,
    /// No frame of it reached a viewer for [`IDLE`].
    Idle,
}

impl Closed {
    pub const ALL: [Closed; 6] =
        [Self::PerAddress, Self::Full, Self::Evicted, Self::NoCheck, Self::BadFrame, Self::Idle];

    /// Its name in `/readyz` and the metrics' `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PerAddress => "per_address",
            Self::Full => "full",
            Self::Evicted => "evicted",
            Self::NoCheck => "no_check",
            Self::BadFrame => "bad_frame",
            Self::Idle => "idle",
        }
    }
}

/// The ICE-TCP port's counts, shared with the transport's handle (readiness, metrics).
#[derive(Default)]
pub struct TcpCounters {
    open: AtomicU64,
    closed: [AtomicU64; Closed::ALL.len()],
}

impl TcpCounters {
    /// Connections open now.
    pub fn open(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }

    /// Connections the server closed or refused for `why`, so far.
    pub fn closed(&self, why: Closed) -> u64 {
        self.closed[why as usize].load(Ordering::Relaxed)
    }

    fn count(&self, why: Closed) {
        self.closed[why as usize].fetch_add(1, Ordering::Relaxed);
    }
}

struct Conn {
    stream: TcpStream,
    local: SocketAddr,
    remote: SocketAddr,
    /// The frame being read, its length first: `2` bytes until the length is known, then `2 + length`.
    /// Empty while the frame is lent out.
    frame: Vec<u8>,
    /// Bytes of `frame` read so far.
    filled: usize,
    outbuf: Vec<u8>,
    opened: Instant,
    /// When a frame from it last reached a viewer (`None`: none has yet).
    reached: Option<Instant>,
    writable: bool,
    /// Left with bytes unread at the end of a visit: in the `later` list.
    later: bool,
}

/// What [`TcpMux::next_frame`] found.
pub(super) enum Next {
    /// A whole frame, lent: give it back with [`TcpMux::done`].
    Frame(Lent),
    /// Nothing more to read now (or the connection is gone).
    Idle,
    /// The visit's budget is spent; the connection is visited again next round.
    Later,
}

/// A frame lent to the mux, in the connection's own buffer.
pub(super) struct Lent {
    token: Token,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    bytes: Vec<u8>,
}

impl Lent {
    /// The packet (without its length).
    pub fn packet(&self) -> &[u8] {
        &self.bytes[2..]
    }
}

/// How much one visit may still read.
pub(super) struct Visit {
    bytes: usize,
    frames: u32,
}

impl Default for Visit {
    fn default() -> Self {
        Self { bytes: VISIT_BYTES, frames: VISIT_FRAMES }
    }
}

/// The listener and its connections.
pub(super) struct TcpMux {
    listener: Option<TcpListener>,
    conns: HashMap<Token, Conn>,
    by_pair: HashMap<(SocketAddr, SocketAddr), Token>,
    /// Open connections per client address ([`crate::net::client_key`]).
    per_address: HashMap<IpAddr, usize>,
    max_per_address: usize,
    /// Connections to visit again next round.
    later: Vec<Token>,
    next: usize,
    counters: Arc<TcpCounters>,
}

/// An address as a candidate states it: an IPv4 client of a dual-stack listener as IPv4.
fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

impl TcpMux {
    /// `max_per_address`: `webrtc.ice_tcp_per_address` (at least 1).
    pub fn new(
        listener: Option<std::net::TcpListener>,
        registry: &Registry,
        max_per_address: usize,
        counters: Arc<TcpCounters>,
    ) -> std::io::Result<Self> {
        let listener = match listener {
            Some(l) => {
                l.set_nonblocking(true)?;
                let mut l = TcpListener::from_std(l);
                registry.register(&mut l, LISTENER, Interest::READABLE)?;
                Some(l)
            }
            None => None,
        };
        Ok(Self {
            listener,
            conns: HashMap::new(),
            by_pair: HashMap::new(),
            per_address: HashMap::new(),
            max_per_address: max_per_address.max(1),
            later: Vec::new(),
            next: FIRST_CONN,
            counters,
        })
    }

    pub fn is_conn(token: Token) -> bool {
        token.0 >= FIRST_CONN && token != LISTENER
    }

    /// Takes every pending connection (each refused one is closed at once).
    pub fn accept(&mut self, registry: &Registry, now: Instant) {
        loop {
            let Some(listener) = &self.listener else { return };
            let (stream, remote) = match listener.accept() {
                Ok(v) => v,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::debug!(error = %e, "ICE-TCP: accept failed");
                    return;
                }
            };
            self.admit(registry, stream, remote, now);
        }
    }

    fn admit(&mut self, registry: &Registry, mut stream: TcpStream, remote: SocketAddr, now: Instant) {
        let Ok(local) = stream.local_addr() else { return };
        let (local, remote) = (canonical(local), canonical(remote));
        let key = crate::net::client_key(remote.ip());
        if self.per_address.get(&key).copied().unwrap_or(0) >= self.max_per_address {
            tracing::debug!(%remote, limit = self.max_per_address, "ICE-TCP: too many connections from one address, refused");
            return self.counters.count(Closed::PerAddress);
        }
        if self.conns.len() >= MAX_CONNECTIONS && !self.evict_unchecked() {
            tracing::debug!(%remote, "ICE-TCP: too many connections, refused");
            return self.counters.count(Closed::Full);
        }
        let _ = stream.set_nodelay(true);
        let token = Token(self.next);
        self.next += 1;
        if registry.register(&mut stream, token, Interest::READABLE).is_err() {
            return;
        }
        self.by_pair.insert((local, remote), token);
        *self.per_address.entry(key).or_default() += 1;
        let conn = Conn {
            stream,
            local,
            remote,
            frame: vec![0; 2],
            filled: 0,
            outbuf: Vec::new(),
            opened: now,
            reached: None,
            writable: false,
            later: false,
        };
        self.conns.insert(token, conn);
        self.counters.open.store(self.conns.len() as u64, Ordering::Relaxed);
    }

    /// Closes the oldest connection that has reached no viewer; false when every one has.
    fn evict_unchecked(&mut self) -> bool {
        let oldest = self.conns.iter().filter(|(_, c)| c.reached.is_none()).min_by_key(|(_, c)| c.opened);
        let Some((&token, _)) = oldest else { return false };
        self.close(token);
        self.counters.count(Closed::Evicted);
        true
    }

    /// Reads connection `token` on until a whole frame is there (lent out: give it back with
    /// [`Self::done`] before the next call), nothing more is to be read, or `visit`'s budget is spent. A
    /// connection that ends, fails, or sends a frame it may not is closed here.
    pub fn next_frame(&mut self, token: Token, visit: &mut Visit) -> Next {
        let Some(conn) = self.conns.get_mut(&token).filter(|c| !c.frame.is_empty()) else { return Next::Idle };
        loop {
            if visit.bytes == 0 || visit.frames == 0 {
                if !conn.later {
                    conn.later = true;
                    self.later.push(token);
                }
                return Next::Later;
            }
            let end = conn.frame.len().min(conn.filled + visit.bytes);
            let got = match conn.stream.read(&mut conn.frame[conn.filled..end]) {
                Ok(0) => None,
                Ok(n) => Some(n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Next::Idle,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => None,
            };
            let Some(n) = got else {
                self.close(token);
                return Next::Idle;
            };
            conn.filled += n;
            visit.bytes -= n;
            if conn.filled < conn.frame.len() {
                continue;
            }
            if conn.frame.len() > 2 {
                visit.frames -= 1;
                let bytes = std::mem::take(&mut conn.frame);
                return Next::Frame(Lent { token, local: conn.local, remote: conn.remote, bytes });
            }
            let len = usize::from(u16::from_be_bytes([conn.frame[0], conn.frame[1]]));
            if len == 0 || (conn.reached.is_none() && len > UNCHECKED_FRAME) {
                tracing::debug!(remote = %conn.remote, len, checked = conn.reached.is_some(), "ICE-TCP: frame refused, closed");
                self.close(token);
                self.counters.count(Closed::BadFrame);
                return Next::Idle;
            }
            conn.frame.resize(2 + len, 0);
        }
    }

    /// A lent frame back (`reached`: a viewer took it), its buffer ready for the next frame.
    pub fn done(&mut self, lent: Lent, reached: bool, now: Instant) {
        let Some(conn) = self.conns.get_mut(&lent.token) else { return };
        let mut bytes = lent.bytes;
        if bytes.capacity() > KEEP_BUFFER {
            bytes = Vec::new();
        }
        bytes.clear();
        bytes.resize(2, 0);
        conn.frame = bytes;
        conn.filled = 0;
        if reached {
            conn.reached = Some(now);
        }
    }

    /// The connections to visit again (their `later` mark cleared).
    pub fn take_later(&mut self) -> Vec<Token> {
        let later = std::mem::take(&mut self.later);
        for t in &later {
            if let Some(c) = self.conns.get_mut(t) {
                c.later = false;
            }
        }
        later
    }

    /// Whether some connection waits for its next visit (the mux then does not sleep).
    pub fn has_later(&self) -> bool {
        !self.later.is_empty()
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

    /// Closes connections that missed their check deadline or have been idle for [`IDLE`].
    pub fn sweep(&mut self, now: Instant) {
        let expired = |c: &Conn| match c.reached {
            None => (now.saturating_duration_since(c.opened) > CHECK_DEADLINE).then_some(Closed::NoCheck),
            Some(at) => (now.saturating_duration_since(at) > IDLE).then_some(Closed::Idle),
        };
        let gone: Vec<(Token, Closed)> = self.conns.iter().filter_map(|(t, c)| Some((*t, expired(c)?))).collect();
        for (t, why) in gone {
            self.close(t);
            self.counters.count(why);
        }
    }

    fn close(&mut self, token: Token) {
        let Some(conn) = self.conns.remove(&token) else { return };
        self.counters.open.store(self.conns.len() as u64, Ordering::Relaxed);
        self.by_pair.remove(&(conn.local, conn.remote));
        let key = crate::net::client_key(conn.remote.ip());
        if let Some(n) = self.per_address.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                self.per_address.remove(&key);
            }
        }
    }
}

#[cfg(test)]
#[path = "tcp_tests.rs"]
mod tests;

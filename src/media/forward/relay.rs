//! `webrtc.relay`: a TURN allocation (RFC 8656) owned by the mux thread, so a server behind a NAT nobody
//! forwards through still has an address viewers reach: the relay's.
//!
//! ```text
//! str0m Transmit (source = relayed address) --> TurnClient::send_to --> ChannelData / Send indication
//!                                                                        --> UDP or TCP to the TURN server
//! TURN server --> UDP or TCP --> TurnClient::recv --> peer data --> str0m Receive (destination = relayed)
//! ```
//!
//! The TURN messages (Allocate with the long-term credential dance, Refresh, CreatePermission, ChannelBind,
//! Send/Data, ChannelData, TCP framing) are the `turn-client-proto` crate's, sans-IO: this module only moves
//! its bytes and keeps time. A permission is asked the first time str0m sends to an address (its first ICE
//! check; the check is dropped, ICE sends another), then (over UDP) a channel is bound; the crate refreshes the
//! allocation, permissions and channels itself. A refused or lost allocation is retried every
//! [`RETRY_EVERY`] with fresh credentials (after the other `turn:` servers were tried: mux/relaying.rs);
//! what happened is in [`RelayStatus`] (readiness, doctor).

use std::collections::HashSet;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mio::net::{TcpStream, UdpSocket};
use mio::{Interest, Registry, Token};
use turn_client_proto::api::{TurnClientApi, TurnConfig, TurnEvent, TurnPollRet, TurnRecvRet};
use turn_client_proto::client::TurnClient;
use turn_client_proto::tcp::TurnClientTcp;
use turn_client_proto::types::{Instant as TurnInstant, TransportType, TurnCredentials};
use turn_client_proto::udp::TurnClientUdp;

pub(super) const RELAY: Token = Token(usize::MAX - 2);

/// How long after a refused or lost allocation the next try starts.
pub const RETRY_EVERY: Duration = Duration::from_secs(30);

/// An allocation not made by then is reported failed (the client keeps trying until its own timeout: a
/// refusal with credentials that do not match cannot be told from a forged one, so it is not final).
pub const ALLOCATE_WITHIN: Duration = Duration::from_secs(5);

pub(super) const NOT_ALLOCATED: &str = "no allocation within 5 s: the TURN server is unreachable, or refused the \
                             credentials (check username/credential or secret)";

/// Bytes queued for a TCP connection to the TURN server at most (about a second of one 4 Mbit/s viewer).
const MAX_TCP_QUEUE: usize = 512 * 1024;

/// Makes the (username, password) pair for the next allocation (a TURN REST pair is made fresh each time).
pub type Credentials = Arc<dyn Fn() -> (String, String) + Send + Sync>;

/// Which TURN server to allocate on, resolved.
#[derive(Clone)]
pub struct RelaySpec {
    /// The `turn:` URL as configured (for logs and readiness; never credentials).
    pub url: String,
    pub server: SocketAddr,
    /// To the TURN server over TCP (`?transport=tcp`) rather than UDP. The relayed address is UDP either way.
    pub tcp: bool,
    pub credentials: Credentials,
}

impl std::fmt::Debug for RelaySpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelaySpec")
            .field("url", &self.url)
            .field("server", &self.server)
            .field("tcp", &self.tcp)
            .finish()
    }
}

/// The relay as readiness and `doctor` report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayState {
    /// Asked, no answer yet.
    Allocating,
    /// The relayed address, announced to the viewers who join from now on; `via`: our end of the
    /// connection to the TURN server.
    Allocated { address: SocketAddr, via: SocketAddr },
    /// Refused, unanswered or lost; tried again every 30 s.
    Failed { reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayStatus {
    pub server: String,
    pub state: RelayState,
}

pub(crate) type SharedStatus = Arc<Mutex<Option<RelayStatus>>>;

enum Io {
    Udp(UdpSocket),
    Tcp { stream: TcpStream, out: Vec<u8> },
}

pub(super) struct Relay {
    spec: RelaySpec,
    client: TurnClient,
    io: Io,
    /// `TurnInstant` counts from here.
    base: Instant,
    relayed: Option<SocketAddr>,
    asked: HashSet<IpAddr>,
    channels: HashSet<SocketAddr>,
    wake: Instant,
    retry_at: Option<Instant>,
    /// The allocation was reported overdue (once).
    reported: bool,
    status: SharedStatus,
}

/// Whether it is time to say the allocation is not coming: asked `ALLOCATE_WITHIN` ago, none yet.
fn overdue(relay: &Relay, now: Instant) -> bool {
    relay.relayed.is_none() && relay.retry_at.is_none() && now.duration_since(relay.base) >= ALLOCATE_WITHIN
}

impl Relay {
    /// Opens the connection to the TURN server and sends the Allocate request.
    pub fn start(spec: RelaySpec, registry: &Registry, status: SharedStatus) -> std::io::Result<Self> {
        let any: SocketAddr = if spec.server.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
        let (io, local) = if spec.tcp {
            let mut stream = TcpStream::connect(spec.server)?;
            registry.register(&mut stream, RELAY, Interest::READABLE | Interest::WRITABLE)?;
            let local = stream.local_addr()?;
            (Io::Tcp { stream, out: Vec::new() }, local)
        } else {
            let mut socket = UdpSocket::bind(any)?;
            socket.connect(spec.server)?;
            registry.register(&mut socket, RELAY, Interest::READABLE)?;
            let local = socket.local_addr()?;
            (Io::Udp(socket), local)
        };
        let (user, pass) = (spec.credentials)();
        let config = TurnConfig::new(TurnCredentials::new(&user, &pass));
        let client: TurnClient = if spec.tcp {
            TurnClientTcp::allocate(local, spec.server, config).into()
        } else {
            TurnClientUdp::allocate(local, spec.server, config).into()
        };
        tracing::info!(turn = %spec.url, server = %spec.server, %local, "webrtc.relay: allocating");
        let server = spec.url.clone();
        *status.lock().expect("relay status lock") = Some(RelayStatus { server, state: RelayState::Allocating });
        let now = Instant::now();
        let mut relay = Self {
            spec,
            client,
            io,
            base: now,
            relayed: None,
            asked: HashSet::new(),
            channels: HashSet::new(),
            wake: now,
            retry_at: None,
            reported: false,
            status,
        };
        relay.pump(now);
        Ok(relay)
    }

    /// The relayed address, once allocated.
    pub fn relayed(&self) -> Option<SocketAddr> {
        self.relayed
    }

    /// When [`Relay::on_timeout`] is next due.
    pub fn wake_at(&self) -> Instant {
        let report = (self.relayed.is_none() && !self.reported).then_some(self.base + ALLOCATE_WITHIN);
        self.retry_at.unwrap_or(self.wake).min(report.unwrap_or(self.wake))
    }

    /// Refused, lost, or not made within [`ALLOCATE_WITHIN`]: time to try another server, if there is one.
    pub fn failed(&self, now: Instant) -> bool {
        self.retry_at.is_some() || overdue(self, now)
    }

    /// The allocation was lost or never made: a new one is due at `retry_at` (the mux starts it).
    pub fn retry_due(&self, now: Instant) -> bool {
        self.retry_at.is_some_and(|at| now >= at)
    }

    fn turn_now(&self, now: Instant) -> TurnInstant {
        TurnInstant::from_nanos(now.saturating_duration_since(self.base).as_nanos().try_into().unwrap_or(i64::MAX))
    }

    fn set_state(&self, state: RelayState) {
        *self.status.lock().expect("relay status lock") = Some(RelayStatus { server: self.spec.url.clone(), state });
    }

    fn fail(&mut self, now: Instant, reason: String) {
        if self.retry_at.is_none() {
            tracing::warn!(turn = %self.spec.url, %reason, "webrtc.relay: no allocation; trying again in 30 s");
            self.set_state(RelayState::Failed { reason });
            self.relayed = None;
            self.retry_at = Some(now + RETRY_EVERY);
        }
    }

    /// Timer work: the crate's retransmits and refreshes, and the report of an allocation not coming.
    pub fn on_timeout(&mut self, now: Instant) {
        self.pump(now);
        if !self.reported && overdue(self, now) {
            self.reported = true;
            tracing::warn!(turn = %self.spec.url, "webrtc.relay: {NOT_ALLOCATED}");
            self.set_state(RelayState::Failed { reason: NOT_ALLOCATED.into() });
        }
    }

    /// Sends what the client has queued, acts on its events and learns its next deadline.
    fn pump(&mut self, now: Instant) {
        let t = self.turn_now(now);
        match self.client.poll(t) {
            TurnPollRet::WaitUntil(at) => {
                self.wake = at.to_std(self.base).max(now + Duration::from_millis(1));
            }
            TurnPollRet::Closed => {
                let reason = match self.relayed {
                    Some(_) => "the allocation ended (refresh refused or unanswered)",
                    None => "the TURN server did not answer the Allocate request, or refused it",
                };
                self.fail(now, reason.into());
                self.wake = now + RETRY_EVERY;
            }
            // TCP allocations (RFC 6062) are not asked for.
            TurnPollRet::AllocateTcpSocket { .. } | TurnPollRet::TcpClose { .. } => {}
        }
        while let Some(tx) = self.client.poll_transmit(t) {
            self.write(tx.data.as_ref());
        }
        while let Some(ev) = self.client.poll_event() {
            self.on_event(ev, now);
        }
    }

    fn on_event(&mut self, ev: TurnEvent, now: Instant) {
        match ev {
            TurnEvent::AllocationCreated(TransportType::Udp, addr) => {
                tracing::info!(turn = %self.spec.url, relayed = %addr, "webrtc.relay: allocated; announcing it");
                self.relayed = Some(addr);
                self.set_state(RelayState::Allocated { address: addr, via: self.client.local_addr() });
            }
            TurnEvent::AllocationCreateFailed(family) => {
                self.fail(now, format!("the TURN server refused the allocation ({family:?})"));
            }
            TurnEvent::PermissionCreated(_, ip) => tracing::debug!(%ip, "webrtc.relay: permission"),
            TurnEvent::PermissionCreateFailed(_, ip) => {
                tracing::warn!(%ip, "webrtc.relay: the TURN server refused a permission");
                self.asked.remove(&ip);
            }
            TurnEvent::ChannelCreateFailed(_, peer) => {
                tracing::debug!(%peer, "webrtc.relay: no channel; Send indications carry the data");
            }
            _ => {}
        }
    }

    fn write(&mut self, data: &[u8]) {
        match &mut self.io {
            Io::Udp(s) => {
                if let Err(e) = s.send(data) {
                    tracing::trace!(error = %e, "webrtc.relay: send to the TURN server failed");
                }
            }
            Io::Tcp { stream, out } => {
                // A TURN server that stops reading gets no more than this queued; the rest is lost, as on UDP.
                if out.len() + data.len() <= MAX_TCP_QUEUE {
                    out.extend_from_slice(data);
                }
                flush_tcp(stream, out);
            }
        }
    }

    /// The TCP connection to the TURN server became writable.
    pub fn on_writable(&mut self) {
        if let Io::Tcp { stream, out } = &mut self.io {
            flush_tcp(stream, out);
        }
    }

    /// Sends `data` from the relayed address to `peer`. Without a permission for `peer` yet, one is asked
    /// and this datagram dropped (ICE retransmits); with one, a channel is bound once.
    pub fn send(&mut self, peer: SocketAddr, data: &[u8], now: Instant) {
        let t = self.turn_now(now);
        if !self.client.have_permission(TransportType::Udp, peer.ip()) {
            if self.asked.insert(peer.ip()) {
                let _ = self.client.create_permission(TransportType::Udp, peer.ip(), t);
                self.pump(now);
            }
            return;
        }
        // Over TCP, Send indications only: turn-client-proto 0.7 does not pad ChannelData to four bytes as
        // RFC 8656 §12.5 wants on a stream, and the TURN server then loses the framing.
        if !self.spec.tcp && self.channels.insert(peer) {
            let _ = self.client.bind_channel(TransportType::Udp, peer, t);
            self.pump(now);
        }
        match self.client.send_to(TransportType::Udp, peer, data, t) {
            Ok(Some(tx)) => {
                let built = tx.build();
                self.write(&built.data);
            }
            Ok(None) => {}
            Err(e) => tracing::trace!(%peer, error = %e, "webrtc.relay: not sent"),
        }
    }

    /// Reads what the TURN server sent; each peer datagram goes to `deliver(peer, relayed, data)`.
    pub fn on_readable(
        &mut self,
        buf: &mut [u8],
        now: Instant,
        deliver: &mut dyn FnMut(SocketAddr, SocketAddr, &[u8]),
    ) {
        loop {
            let read = match &mut self.io {
                Io::Udp(s) => s.recv(buf),
                Io::Tcp { stream, .. } => match stream.read(buf) {
                    Ok(0) => Err(std::io::Error::new(ErrorKind::ConnectionAborted, "closed by the TURN server")),
                    other => other,
                },
            };
            let n = match read {
                Ok(n) => n,
                // NotConnected: the TCP connection is still being made.
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::NotConnected) => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if matches!(self.io, Io::Tcp { .. }) => {
                    self.fail(now, format!("the TCP connection to the TURN server failed: {e}"));
                    break;
                }
                // An ICMP error queued on the UDP socket (server unreachable): the client times out by itself.
                Err(_) => break,
            };
            self.take(&buf[..n], now, deliver);
        }
        self.pump(now);
    }

    fn take(&mut self, data: &[u8], now: Instant, deliver: &mut dyn FnMut(SocketAddr, SocketAddr, &[u8])) {
        let t = self.turn_now(now);
        let transport = self.client.transport();
        let (local, server) = (self.client.local_addr(), self.client.remote_addr());
        let tx = turn_client_proto::api::Transmit::new(data, transport, server, local);
        let Some(relayed) = self.relayed else {
            let _ = self.client.recv(tx, t);
            return;
        };
        if let TurnRecvRet::PeerData(d) = self.client.recv(tx, t) {
            deliver(d.peer, relayed, d.data());
        }
        while let Some(d) = self.client.poll_recv(t) {
            deliver(d.peer, relayed, d.data());
        }
    }

    /// Releases the allocation (a Refresh with lifetime 0), best effort.
    pub fn release(&mut self, registry: &Registry) {
        let now = Instant::now();
        if self.client.delete(self.turn_now(now)).is_ok() {
            self.pump(now);
        }
        let _ = match &mut self.io {
            Io::Udp(s) => registry.deregister(s),
            Io::Tcp { stream, .. } => registry.deregister(stream),
        };
    }
}

fn flush_tcp(stream: &mut TcpStream, out: &mut Vec<u8>) {
    while !out.is_empty() {
        match stream.write(out) {
            Ok(0) => return,
            Ok(n) => {
                out.drain(..n);
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            // WouldBlock (or not connected yet): the writable event flushes the rest.
            Err(_) => return,
        }
    }
}

/// One allocation on `spec`'s server, released at once (`doctor`): the relayed address, or why not. Blocking,
/// up to `wait`.
pub fn try_allocate(spec: RelaySpec, wait: Duration) -> Result<SocketAddr, String> {
    let mut poll = mio::Poll::new().map_err(|e| e.to_string())?;
    let status = SharedStatus::default();
    let mut relay = Relay::start(spec, poll.registry(), status.clone()).map_err(|e| e.to_string())?;
    let until = Instant::now() + wait;
    let mut events = mio::Events::with_capacity(8);
    let mut buf = vec![0u8; 65_536];
    let outcome = loop {
        match status.lock().expect("relay status lock").clone().map(|s| s.state) {
            Some(RelayState::Allocated { address, .. }) => break Ok(address),
            Some(RelayState::Failed { reason }) => break Err(reason),
            _ => {}
        }
        let now = Instant::now();
        if now >= until {
            break Err(NOT_ALLOCATED.replace("5 s", &format!("{} s", wait.as_secs())));
        }
        let timeout = relay.wake_at().min(until).saturating_duration_since(now);
        if poll.poll(&mut events, Some(timeout)).is_err() {
            continue;
        }
        for e in events.iter() {
            if e.is_writable() {
                relay.on_writable();
            }
        }
        relay.on_readable(&mut buf, Instant::now(), &mut |_, _, _| {});
        relay.on_timeout(Instant::now());
    };
    relay.release(poll.registry());
    outcome
}

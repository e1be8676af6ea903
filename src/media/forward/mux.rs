//! The mux thread: owns the UDP sockets and every viewer's `Rtc`; one `mio::Poll` loop, no busy waiting.
//!
//! It sleeps until a socket is readable, a command arrives (through a `mio::Waker`: new and removed viewers,
//! trickled candidates, ICE restarts, and every RTP packet from the streams' appsinks), or the earliest
//! viewer deadline is due. A datagram goes to the viewer last seen at its source address, or else to the one
//! whose `Rtc` accepts it (STUN username), which is then remembered for that address.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use mio::{Events, Interest, Poll, Registry, Token, Waker};
use str0m::net::{Protocol, Receive, Transmit};
use str0m::{Candidate, IceCreds, Input};
use tokio::sync::mpsc::UnboundedSender;

use super::StreamSlot;
use super::liveness::{self, Heartbeat, SendLag};
pub(crate) use super::packet::{MediaPacket, Track};
use super::peer::{Peer, PeerEvent};
use super::relay::{self, Relay, RelaySpec, SharedStatus};
use super::route::Routes;
use super::tcp::{self, TcpMux};
use super::timers::Timers;
use super::udp::{MediaSocket, RecvBufs, SendBatch};
use crate::ids::{SessionId, StreamName};
use crate::media::congestion::LossReport;
use crate::media::{MediaEvent, keyframes};

const WAKER: Token = Token(usize::MAX);
const RECV_BUF: usize = 65_536;

/// Where a stream's every-2-seconds [`LossReport`] goes (the stream's congestion control).
pub(crate) type LossSink = Box<dyn Fn(LossReport) + Send>;

/// How often each stream's receiver reports are summarized for congestion control (also each peer's str0m
/// stats interval, so every report period holds one report per viewer).
pub(crate) const LOSS_REPORT_EVERY: Duration = Duration::from_secs(2);

pub(crate) enum Cmd {
    Stream {
        slot: StreamSlot,
        name: StreamName,
        keyframe_pad: gst::Pad,
        on_loss: LossSink,
    },
    Add(Box<Peer>),
    Remove(SessionId),
    Candidates {
        id: SessionId,
        cands: Vec<Candidate>,
    },
    Restart {
        id: SessionId,
        local: IceCreds,
        remote: IceCreds,
    },
    /// A socket on a local address that appeared after start.
    Socket(MediaSocket),
    /// Allocate on this TURN server (`webrtc.relay`; a new spec replaces the allocation).
    Relay(RelaySpec),
    /// A stream's VP8 encoding started (where its keyframe requests go, where its viewers' loss reports go)
    /// or stopped (`None`).
    Vp8 {
        slot: StreamSlot,
        encoding: Option<(gst::Pad, LossSink)>,
    },
    Media(MediaPacket),
    Stop,
}

#[derive(Clone)]
pub(crate) struct MuxSender {
    tx: Sender<Cmd>,
    waker: Arc<Waker>,
}

impl MuxSender {
    pub fn send(&self, cmd: Cmd) {
        if self.tx.send(cmd).is_ok() {
            let _ = self.waker.wake();
        }
    }
}

struct StreamEntry {
    name: StreamName,
    keyframe_pad: gst::Pad,
    /// Where VP8 viewers' keyframe requests and loss reports go, while the VP8 encoding runs.
    vp8: Option<(gst::Pad, LossSink)>,
    /// Extended (unwrapped) sequence numbers of the last packet of each track ([`Track::index`]).
    last_seq: [Option<u64>; 3],
    /// Per track: the last packet ended an access unit, so the next one starts a new one (audio: always).
    au_start: [bool; 3],
    on_loss: LossSink,
}

/// Unwraps a 16-bit sequence number against the last extended one.
fn extend(last: Option<u64>, seq: u16) -> u64 {
    let Some(last) = last else {
        return u64::from(seq) + (1 << 16);
    };
    let cand = (last & !0xffff) | u64::from(seq);
    let diff = cand as i64 - last as i64;
    if diff > 0x8000 {
        cand - (1 << 16)
    } else if diff < -0x8000 {
        cand + (1 << 16)
    } else {
        cand
    }
}

struct Mux {
    poll: Poll,
    rx: Receiver<Cmd>,
    sockets: Vec<MediaSocket>,
    recv: RecvBufs,
    out: SendBatch,
    tcp: TcpMux,
    events: UnboundedSender<MediaEvent>,
    streams: HashMap<StreamSlot, StreamEntry>,
    peers: HashMap<SessionId, Peer>,
    routes: Routes,
    timers: Timers,
    next_loss_report: Instant,
    lag: Arc<SendLag>,
    heartbeat: Arc<Heartbeat>,
    relay: Option<Relay>,
    /// A relay whose connection could not even be opened, and when to try again.
    relay_retry: Option<(RelaySpec, Instant)>,
    relay_status: SharedStatus,
}

pub(crate) fn spawn(
    mut sockets: Vec<MediaSocket>,
    tcp_listener: Option<std::net::TcpListener>,
    events: UnboundedSender<MediaEvent>,
    (lag, heartbeat): (Arc<SendLag>, Arc<Heartbeat>),
    relay_status: SharedStatus,
    out: SendBatch,
) -> anyhow::Result<(MuxSender, JoinHandle<()>)> {
    let poll = Poll::new()?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
    for (i, s) in sockets.iter_mut().enumerate() {
        poll.registry().register(&mut s.socket, Token(i), Interest::READABLE)?;
    }
    let tcp = TcpMux::new(tcp_listener, poll.registry())?;
    let (tx, rx) = channel();
    let mux = Mux {
        poll,
        rx,
        recv: RecvBufs::new(&sockets),
        out,
        sockets,
        tcp,
        events,
        streams: HashMap::new(),
        peers: HashMap::new(),
        routes: Routes::default(),
        timers: Timers::default(),
        next_loss_report: Instant::now() + LOSS_REPORT_EVERY,
        lag,
        heartbeat,
        relay: None,
        relay_retry: None,
        relay_status,
    };
    let thread =
        std::thread::Builder::new().name("glasscast-mux".into()).spawn(move || liveness::run_guarded(|| mux.run()))?;
    Ok((MuxSender { tx, waker }, thread))
}

/// A stranger's datagram classified by str0m (STUN, DTLS, RTP, RTCP); `None` for what it does not take,
/// and for anything that makes it panic: the mux thread serves every viewer and must outlive any input.
fn receive(proto: Protocol, source: SocketAddr, local: SocketAddr, buf: &[u8]) -> Option<Receive<'_>> {
    match std::panic::catch_unwind(|| Receive::new(proto, source, local, buf)) {
        Ok(r) => r.ok(),
        Err(_) => {
            tracing::warn!(%source, len = buf.len(), "str0m panicked on a datagram; dropped");
            None
        }
    }
}

/// Where a peer's packets go out: the UDP sockets (through the send batch, flushed when the `Net` is
/// dropped, i.e. after each peer is driven), the ICE-TCP connections, and the TURN relay.
struct Net<'a> {
    udp: &'a [MediaSocket],
    out: &'a mut SendBatch,
    tcp: &'a mut TcpMux,
    registry: &'a Registry,
    relay: Option<&'a mut Relay>,
}

impl Drop for Net<'_> {
    fn drop(&mut self) {
        self.out.flush(self.udp);
    }
}

impl Net<'_> {
    fn send(&mut self, t: &Transmit) {
        match (t.proto, &mut self.relay) {
            (Protocol::Tcp, _) => self.tcp.send(self.registry, t.source, t.destination, &t.contents),
            (_, Some(relay)) if relay.relayed() == Some(t.source) => {
                relay.send(t.destination, &t.contents, Instant::now());
            }
            _ => self.out.push(self.udp, t),
        }
    }
}

impl Mux {
    fn run(mut self) {
        let mut events = Events::with_capacity(256);
        let mut buf = vec![0u8; RECV_BUF];
        loop {
            let report = (!self.streams.is_empty()).then_some(self.next_loss_report);
            let relay = self.relay.as_ref().map(Relay::wake_at).or(self.relay_retry.as_ref().map(|r| r.1));
            let wake = self.timers.next(Instant::now()).into_iter().chain(report).chain(relay).min();
            let timeout = wake.map_or(liveness::MAX_IDLE, |at| at.saturating_duration_since(Instant::now()));
            self.heartbeat.beat();
            if let Err(e) = self.poll.poll(&mut events, Some(timeout.min(liveness::MAX_IDLE)))
                && e.kind() != ErrorKind::Interrupted
            {
                tracing::error!(error = %e, "forwarding transport: poll failed");
                break;
            }
            for event in events.iter() {
                match event.token() {
                    WAKER => {}
                    tcp::LISTENER => self.tcp.accept(self.poll.registry(), Instant::now()),
                    relay::RELAY => self.on_relay(event.is_readable(), event.is_writable(), &mut buf),
                    t if TcpMux::is_conn(t) => self.on_tcp(t, event.is_readable(), event.is_writable(), &mut buf),
                    t => self.on_readable(t.0),
                }
            }
            // Commands (and media) every round: cheap when there are none. Media is only queued here; the
            // timer pass then sends each viewer's queued packets in one go.
            if self.take_commands() {
                break;
            }
            self.on_timers();
        }
        {
            let mut net = Net {
                udp: &self.sockets,
                out: &mut self.out,
                tcp: &mut self.tcp,
                registry: self.poll.registry(),
                relay: self.relay.as_mut(),
            };
            for peer in self.peers.values_mut() {
                peer.close(&mut |t| net.send(t));
            }
        }
        self.peers.clear();
        if let Some(relay) = &mut self.relay {
            relay.release(self.poll.registry());
        }
        tracing::debug!("forwarding transport stopped");
    }

    /// Handles queued commands; true on `Stop`.
    fn take_commands(&mut self) -> bool {
        loop {
            match self.rx.try_recv() {
                Ok(Cmd::Media(p)) => {
                    self.lag.add(p.at.elapsed());
                    self.on_media(p);
                }
                Ok(Cmd::Stream { slot, name, keyframe_pad, on_loss }) => {
                    let entry = StreamEntry {
                        name,
                        keyframe_pad,
                        vp8: None,
                        last_seq: [None; 3],
                        au_start: [true; 3],
                        on_loss,
                    };
                    self.streams.insert(slot, entry);
                }
                Ok(Cmd::Add(mut peer)) => {
                    match liveness::fault() {
                        Some("mux-panic") => panic!("GLASSCAST_TEST_FAULT=mux-panic"),
                        Some("mux-stall") => std::thread::park(),
                        _ => {}
                    }
                    let id = peer.id;
                    self.routes.set_ufrag(id, peer.local_ufrag());
                    self.peers.insert(id, *peer);
                    // Kick it: str0m does its first timer work now.
                    self.drive(id, |p, send, ev| p.on_timeout(Instant::now(), send, ev));
                }
                Ok(Cmd::Remove(id)) => {
                    if let Some(mut p) = self.peers.remove(&id) {
                        let mut net = Net {
                            udp: &self.sockets,
                            out: &mut self.out,
                            tcp: &mut self.tcp,
                            registry: self.poll.registry(),
                            relay: self.relay.as_mut(),
                        };
                        p.close(&mut |t| net.send(t));
                        self.routes.remove(id);
                        tracing::debug!(session = %id, "forwarded viewer removed");
                    }
                }
                Ok(Cmd::Candidates { id, cands }) => {
                    if let Some(p) = self.peers.get_mut(&id) {
                        cands.into_iter().for_each(|c| p.add_remote_candidate(c));
                        self.timers.mark(id);
                    }
                }
                Ok(Cmd::Restart { id, local, remote }) => {
                    if let Some(p) = self.peers.get_mut(&id) {
                        let ufrag = local.ufrag.clone();
                        p.restart_ice(local, remote);
                        self.routes.set_ufrag(id, ufrag);
                        self.timers.mark(id);
                    }
                }
                Ok(Cmd::Socket(mut s)) => {
                    match self.poll.registry().register(&mut s.socket, Token(self.sockets.len()), Interest::READABLE) {
                        Ok(()) => self.sockets.push(s),
                        Err(e) => {
                            tracing::warn!(addr = %s.local, error = %e, "forwarding transport: cannot poll a new socket");
                        }
                    }
                }
                Ok(Cmd::Relay(spec)) => self.start_relay(spec),
                Ok(Cmd::Vp8 { slot, encoding }) => {
                    if let Some(s) = self.streams.get_mut(&slot) {
                        s.vp8 = encoding;
                    }
                }
                Ok(Cmd::Stop) | Err(TryRecvError::Disconnected) => return true,
                Err(TryRecvError::Empty) => return false,
            }
        }
    }

    /// Runs `f` on peer `id` with a sender and an event list, then acts on the events.
    fn drive(&mut self, id: SessionId, f: impl FnOnce(&mut Peer, &mut dyn FnMut(&Transmit), &mut Vec<PeerEvent>)) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        let mut evs = Vec::new();
        {
            let mut net = Net {
                udp: &self.sockets,
                out: &mut self.out,
                tcp: &mut self.tcp,
                registry: self.poll.registry(),
                relay: self.relay.as_mut(),
            };
            f(peer, &mut |t: &Transmit| net.send(t), &mut evs);
            // `net` drops here: the peer's datagrams leave now.
        }
        self.timers.schedule(id, peer.wake_at());
        let slot = peer.slot;
        self.after(id, slot, evs);
    }

    fn after(&mut self, id: SessionId, slot: StreamSlot, evs: Vec<PeerEvent>) {
        for ev in evs {
            let stream = self.streams.get(&slot).map(|s| s.name.clone());
            match ev {
                PeerEvent::Connected => {
                    if let Some(stream) = stream {
                        tracing::debug!(session = %id, "forwarded viewer connected");
                        let _ = self.events.send(MediaEvent::PeerConnected { stream, id });
                    }
                }
                PeerEvent::KeyframeWanted => {
                    let vp8 = self.peers.get(&id).is_some_and(|p| p.video_track() == Track::Vp8);
                    let stream = self.streams.get(&slot);
                    let pad = if vp8 {
                        stream.and_then(|s| s.vp8.as_ref().map(|v| &v.0))
                    } else {
                        stream.map(|s| &s.keyframe_pad)
                    };
                    if let Some(pad) = pad {
                        pad.push_event(keyframes::request_event());
                    }
                }
                PeerEvent::Ended(why) => {
                    if self.peers.remove(&id).is_some() {
                        self.routes.remove(id);
                        if let Some(stream) = stream {
                            let _ = self.events.send(MediaEvent::PeerEnded { stream, id, why });
                        }
                    }
                    return;
                }
            }
        }
    }

    fn on_readable(&mut self, idx: usize) {
        let Some(socket) = self.sockets.get(idx) else {
            return;
        };
        let local = socket.local;
        let mut got: Vec<(SocketAddr, Vec<u8>)> = Vec::new();
        socket.drain(&mut self.recv, |source, d| {
            // Junk from an address no peer uses is dropped here, before it is copied or parsed.
            if self.routes.may_route(&source, d) {
                got.push((source, d.to_vec()));
            }
        });
        for (source, datagram) in got {
            self.route(Protocol::Udp, source, local, &datagram);
        }
    }

    /// An ICE-TCP connection is readable (its frames go to the peers as datagrams do) or writable.
    fn on_tcp(&mut self, token: Token, readable: bool, writable: bool, buf: &mut [u8]) {
        if writable {
            self.tcp.flush(self.poll.registry(), token);
        }
        if !readable {
            return;
        }
        let now = Instant::now();
        let mut frames: Vec<(SocketAddr, SocketAddr, Vec<u8>)> = Vec::new();
        self.tcp.on_readable(token, now, buf, &mut |local, remote, f| frames.push((local, remote, f.to_vec())));
        for (local, remote, f) in frames {
            self.route(Protocol::Tcp, remote, local, &f);
        }
    }

    /// Replaces the TURN allocation with a new one on `spec`'s server.
    fn start_relay(&mut self, spec: RelaySpec) {
        if let Some(mut old) = self.relay.take() {
            old.release(self.poll.registry());
        }
        self.relay_retry = None;
        match Relay::start(spec.clone(), self.poll.registry(), self.relay_status.clone()) {
            Ok(r) => self.relay = Some(r),
            Err(e) => {
                tracing::warn!(turn = %spec.url, error = %e, "webrtc.relay: cannot reach the TURN server");
                let state = relay::RelayState::Failed { reason: format!("cannot reach {}: {e}", spec.server) };
                *self.relay_status.lock().expect("relay status lock") =
                    Some(relay::RelayStatus { server: spec.url.clone(), state });
                self.relay_retry = Some((spec, Instant::now() + relay::RETRY_EVERY));
            }
        }
    }

    /// The relay's timer work, and a new allocation when the last one failed a while ago.
    fn relay_timers(&mut self, now: Instant) {
        if let Some((spec, at)) = &self.relay_retry
            && *at <= now
        {
            let spec = spec.clone();
            self.start_relay(spec);
        }
        let Some(relay) = &mut self.relay else { return };
        if relay.retry_due(now) {
            let spec = relay.spec().clone();
            self.start_relay(spec);
        } else if relay.wake_at() <= now {
            relay.on_timeout(now);
        }
    }

    /// The TURN server sent something (peers' datagrams go to their peers as any other), or the TCP
    /// connection to it became writable.
    fn on_relay(&mut self, readable: bool, writable: bool, buf: &mut [u8]) {
        let Some(relay) = &mut self.relay else { return };
        if writable {
            relay.on_writable();
        }
        if !readable {
            return;
        }
        let now = Instant::now();
        let mut got: Vec<(SocketAddr, SocketAddr, Vec<u8>)> = Vec::new();
        relay.on_readable(buf, now, &mut |peer, relayed, data| got.push((peer, relayed, data.to_vec())));
        for (peer, relayed, data) in got {
            self.route(Protocol::Udp, peer, relayed, &data);
        }
    }

    /// Gives datagram `buf` from `source` to the peer last seen there, or, for an ICE check from a new
    /// address, to the peer its username names ([`Routes`]), if that peer's `Rtc` accepts it. Anything else
    /// is dropped without asking any peer, and before str0m parses it.
    fn route(&mut self, proto: Protocol, source: SocketAddr, local: SocketAddr, buf: &[u8]) {
        if !self.routes.may_route(&source, buf) {
            return;
        }
        let Some(receive) = receive(proto, source, local, buf) else {
            return;
        };
        let input = Input::Receive(Instant::now(), receive);
        let accepts = |id: &SessionId| self.peers.get(id).is_some_and(|p| p.accepts(&input));
        let id = match self.routes.known(&source).filter(accepts) {
            Some(id) => id,
            None => match self.routes.checked_by(buf).filter(accepts) {
                Some(id) => {
                    self.routes.learn(source, id);
                    id
                }
                None => return,
            },
        };
        self.drive(id, |p, send, ev| p.handle(input, send, ev));
    }

    fn on_media(&mut self, p: MediaPacket) {
        let Some(stream) = self.streams.get_mut(&p.slot) else {
            return;
        };
        let i = p.track.index();
        let ext = extend(stream.last_seq[i], p.seq);
        stream.last_seq[i] = Some(ext);
        let au_start = match p.track {
            Track::Audio => true,
            _ => std::mem::replace(&mut stream.au_start[i], p.marker),
        };
        // Queue the packet on every viewer of the stream (no I/O: `on_timers` sends); only a peer that
        // failed has events to act on.
        let mut failed = Vec::new();
        for (id, peer) in self.peers.iter_mut().filter(|(_, v)| v.slot == p.slot) {
            let mut evs = Vec::new();
            let queued = peer.dirty;
            peer.forward(&p, ext, au_start, &mut evs);
            if peer.dirty && !queued {
                self.timers.mark(*id);
            }
            if !evs.is_empty() {
                failed.push((*id, evs));
            }
        }
        for (id, evs) in failed {
            self.after(id, p.slot, evs);
        }
    }

    fn on_timers(&mut self) {
        let now = Instant::now();
        for id in self.timers.due(now, |id| self.peers.get(id).map(Peer::wake_at)) {
            self.drive(id, |p, send, ev| {
                p.dirty = false;
                p.on_timeout(now, send, ev);
            });
        }
        self.relay_timers(now);
        if now >= self.next_loss_report {
            self.next_loss_report = now + LOSS_REPORT_EVERY;
            self.tcp.sweep(now);
            for (slot, stream) in &self.streams {
                // Each encoder hears from its own viewers only.
                let mut losses = |track: Track| -> Vec<f32> {
                    let of = |p: &&mut Peer| p.slot == *slot && p.video_track() == track;
                    self.peers.values_mut().filter(of).filter_map(Peer::take_video_loss).collect()
                };
                (stream.on_loss)(LossReport::of(losses(Track::Video)));
                if let Some((_, on_loss)) = &stream.vp8 {
                    on_loss(LossReport::of(losses(Track::Vp8)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::extend;

    #[test]
    fn sequence_numbers_unwrap_across_the_16_bit_boundary() {
        let a = extend(None, 65_534);
        let b = extend(Some(a), 65_535);
        let c = extend(Some(b), 0);
        let d = extend(Some(c), 1);
        assert_eq!((b - a, c - b, d - c), (1, 1, 1));
        // A late packet from before the wrap maps back below.
        assert_eq!(extend(Some(d), 65_535), b);
    }
}

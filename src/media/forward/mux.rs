//! The mux threads: each owns its viewers' `Rtc`s; one `mio::Poll` loop each, no busy waiting.
//!
//! There are `webrtc.mux_threads` of them (shards), all on the one media port. The first reads the UDP
//! sockets and owns the ICE-TCP connections and the TURN relay; it hands each datagram for another
//! thread's peer to that thread ([`Cmd::Datagram`], routed by the shared [`SharedRoutes`]), and sends what
//! other threads' peers send over TCP or the relay ([`Cmd::Transmit`]). Every thread sends its peers' UDP
//! itself, on its own handle of the same sockets, and gets every stream's packets.
//!
//! It sleeps until a socket is readable, a command arrives (through a `mio::Waker`: new and removed viewers,
//! trickled candidates, ICE restarts, and every RTP packet from the streams' appsinks), or the earliest
//! viewer deadline is due. A datagram goes to the viewer last seen at its source address, or else to the one
//! whose `Rtc` accepts it (STUN username), which is then remembered for that address.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use mio::{Events, Interest, Poll, Registry, Token, Waker};
use str0m::net::{Protocol, Receive, Transmit};
use str0m::{Candidate, IceCreds};
use tokio::sync::mpsc::UnboundedSender;

use super::StreamSlot;
use super::liveness::{self, Heartbeat, SendLag};
pub(crate) use super::packet::{LANES, LOSS_REPORT_EVERY, MediaPacket, Track, lane};
use super::peer::{Peer, PeerEvent};
use super::relay::{self, Relay, RelaySpec, SharedStatus};
use super::route::SharedRoutes;
use super::send::SendBatch;
use super::tcp::{self, TcpMux};
use super::timers::Timers;
use super::udp::{MediaSocket, RecvBufs};
use crate::ids::{SessionId, StreamName};
use crate::media::encode::congestion::LossReport;
use crate::media::encode::ladder::RungGate;
use crate::media::{MediaEvent, encode::keyframes};

mod relaying;
mod routing;
mod threads;

pub(crate) use threads::{Setup, Shard, spawn};

const WAKER: Token = Token(usize::MAX);
const RECV_BUF: usize = 65_536;

/// Where a stream's every-2-seconds [`LossReport`] goes (the stream's congestion control).
pub(crate) type LossSink = Box<dyn Fn(LossReport) + Send>;

/// A stream's H.264 rungs, the top (its own encoding; where its keyframes are asked for) first.
pub(crate) type Ladder = Arc<[Arc<RungGate>]>;

pub(crate) enum Cmd {
    Stream {
        slot: StreamSlot,
        name: StreamName,
        ladder: Ladder,
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
    /// Allocate on the first of these TURN servers that works (`webrtc.relay`; new specs replace the
    /// allocation).
    Relay(Vec<RelaySpec>),
    /// A stream's VP8 encoding started (where its keyframe requests go, where its viewers' loss reports go)
    /// or stopped (`None`).
    Vp8 {
        slot: StreamSlot,
        encoding: Option<(gst::Pad, LossSink)>,
    },
    Media(MediaPacket),
    /// A datagram the first thread read for a peer this thread owns (`hop`: already handed on once, from a
    /// thread whose peer at that address did not take it).
    Datagram {
        proto: Protocol,
        source: SocketAddr,
        local: SocketAddr,
        data: Vec<u8>,
        hop: bool,
    },
    /// For the first thread: out through the ICE-TCP connections or the TURN relay, which it owns.
    Transmit(Transmit),
    /// For the first thread: another thread's viewers' loss for a stream (`vp8`: of its VP8 encoding),
    /// summed into the stream's next report.
    Loss {
        slot: StreamSlot,
        vp8: bool,
        report: LossReport,
    },
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
    ladder: Ladder,
    /// Where VP8 viewers' keyframe requests and loss reports go, while the VP8 encoding runs.
    vp8: Option<(gst::Pad, LossSink)>,
    /// Extended (unwrapped) sequence numbers of the last packet of each lane ([`lane`]).
    last_seq: [Option<u64>; LANES],
    /// Per lane: the last packet ended an access unit, so the next one starts a new one (audio: always).
    au_start: [bool; LANES],
    on_loss: LossSink,
    /// Other threads' loss reports since the last report (H.264, VP8); the first thread only.
    pending_loss: [LossReport; 2],
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
    /// Which mux thread this is (0: the one that reads the sockets).
    shard: usize,
    /// Every thread's command channel, by shard.
    shards: Arc<[MuxSender]>,
    /// Peers this thread owns (what viewers are spread by).
    load: Arc<AtomicUsize>,
    poll: Poll,
    rx: Receiver<Cmd>,
    sockets: Vec<MediaSocket>,
    recv: RecvBufs,
    out: SendBatch,
    tcp: TcpMux,
    events: UnboundedSender<MediaEvent>,
    streams: HashMap<StreamSlot, StreamEntry>,
    peers: HashMap<SessionId, Peer>,
    routes: SharedRoutes,
    timers: Timers,
    next_loss_report: Instant,
    lag: Arc<SendLag>,
    heartbeat: Arc<Heartbeat>,
    relay: Option<Relay>,
    /// The relay's TURN servers and which is in use (mux/relaying.rs).
    relay_plan: relaying::RelayPlan,
    relay_status: SharedStatus,
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

/// Where a peer's packets go out: the UDP sockets (through the send batch: its open run is sealed when the
/// `Net` is dropped, i.e. after each peer is driven, and the batch is flushed before the mux waits), the
/// ICE-TCP connections, and the TURN relay.
struct Net<'a> {
    udp: &'a [MediaSocket],
    out: &'a mut SendBatch,
    tcp: &'a mut TcpMux,
    registry: &'a Registry,
    relay: Option<&'a mut Relay>,
    /// On the other threads: the first one, which sends TCP and relayed packets.
    home: Option<&'a MuxSender>,
}

/// The mux's [`Net`], borrowed field by field so the peers stay borrowable beside it.
macro_rules! net {
    ($m:expr) => {
        Net {
            udp: &$m.sockets,
            out: &mut $m.out,
            tcp: &mut $m.tcp,
            registry: $m.poll.registry(),
            relay: $m.relay.as_mut(),
            home: ($m.shard > 0).then(|| &$m.shards[0]),
        }
    };
}

impl Drop for Net<'_> {
    fn drop(&mut self) {
        self.out.seal(self.udp);
    }
}

impl Net<'_> {
    fn send(&mut self, t: &Transmit) {
        if let Some(home) = self.home
            && (t.proto == Protocol::Tcp || !self.udp.iter().any(|s| s.local == t.source))
        {
            let (proto, source, destination) = (t.proto, t.source, t.destination);
            home.send(Cmd::Transmit(Transmit { proto, source, destination, contents: t.contents.to_vec().into() }));
            return;
        }
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
            self.out.flush(&self.sockets);
            let report = (!self.streams.is_empty()).then_some(self.next_loss_report);
            let relay = self.relay.as_ref().map(Relay::wake_at).or(self.relay_plan.retry_at());
            let wake = self.timers.next(Instant::now()).into_iter().chain(report).chain(relay).min();
            let timeout = match self.tcp.has_later() {
                true => Duration::ZERO,
                false => wake.map_or(liveness::MAX_IDLE, |at| at.saturating_duration_since(Instant::now())),
            };
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
                    t if TcpMux::is_conn(t) => self.on_tcp(t, event.is_readable(), event.is_writable()),
                    t => self.on_readable(t.0),
                }
            }
            // ICE-TCP connections left with bytes unread by their last visit (a flood is read in turns).
            for t in self.tcp.take_later() {
                self.read_tcp(t);
            }
            // Commands (and media) every round: cheap when there are none. Media is only queued here; the
            // timer pass then sends each viewer's queued packets in one go.
            if self.take_commands() {
                break;
            }
            self.on_timers();
        }
        {
            let mut net = net!(self);
            for peer in self.peers.values_mut() {
                peer.close(&mut |t| net.send(t));
            }
        }
        self.out.flush(&self.sockets);
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
                Ok(Cmd::Stream { slot, name, ladder, on_loss }) => {
                    let entry = StreamEntry {
                        name,
                        ladder,
                        vp8: None,
                        last_seq: [None; LANES],
                        au_start: [true; LANES],
                        on_loss,
                        pending_loss: [LossReport::default(); 2],
                    };
                    self.streams.insert(slot, entry);
                }
                Ok(Cmd::Add(peer)) => self.add(*peer),
                Ok(Cmd::Remove(id)) => self.remove(id),
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
                        self.routes.write().expect("routes lock").set_ufrag((id, self.shard), ufrag);
                        self.timers.mark(id);
                    }
                }
                // The other threads only send on it.
                Ok(Cmd::Socket(s)) if self.shard > 0 => self.sockets.push(s),
                Ok(Cmd::Socket(mut s)) => {
                    match self.poll.registry().register(&mut s.socket, Token(self.sockets.len()), Interest::READABLE) {
                        Ok(()) => self.sockets.push(s),
                        Err(e) => {
                            tracing::warn!(addr = %s.local, error = %e, "forwarding transport: cannot poll a new socket");
                        }
                    }
                }
                Ok(Cmd::Relay(specs)) => self.set_relay_servers(specs),
                Ok(Cmd::Vp8 { slot, encoding }) => {
                    if let Some(s) = self.streams.get_mut(&slot) {
                        s.vp8 = encoding;
                    }
                }
                Ok(Cmd::Datagram { proto, source, local, data, hop }) => {
                    self.route(proto, source, local, &data, hop);
                }
                Ok(Cmd::Transmit(t)) => net!(self).send(&t),
                Ok(Cmd::Loss { slot, vp8, report }) => {
                    if let Some(s) = self.streams.get_mut(&slot) {
                        s.pending_loss[usize::from(vp8)].add(&report);
                    }
                }
                Ok(Cmd::Stop) | Err(TryRecvError::Disconnected) => return true,
                Err(TryRecvError::Empty) => return false,
            }
        }
    }

    fn add(&mut self, mut peer: Peer) {
        match liveness::fault() {
            Some("mux-panic") => panic!("GLASSCAST_TEST_FAULT=mux-panic"),
            Some("mux-stall") => std::thread::park(),
            _ => {}
        }
        let id = peer.id;
        tracing::debug!(session = %id, mux_thread = self.shard, "forwarded viewer added");
        self.rungs_of(&peer, RungGate::join);
        self.routes.write().expect("routes lock").set_ufrag((id, self.shard), peer.local_ufrag());
        self.peers.insert(id, peer);
        // Kick it: str0m does its first timer work now.
        self.drive(id, |p, send, ev| p.on_timeout(Instant::now(), send, ev));
    }

    fn remove(&mut self, id: SessionId) {
        if let Some(mut p) = self.peers.remove(&id) {
            let mut net = net!(self);
            p.close(&mut |t| net.send(t));
            drop(net);
            self.rungs_of(&p, RungGate::leave);
            self.forget(id);
            tracing::debug!(session = %id, "forwarded viewer removed");
        }
    }

    /// Applies `f` to the gates of the rungs `peer` holds a place on (its own, and its switch's target).
    fn rungs_of(&self, peer: &Peer, f: impl Fn(&RungGate)) {
        if let Some(stream) = self.streams.get(&peer.slot) {
            peer.held_rungs().into_iter().filter_map(|r| stream.ladder.get(r)).for_each(|g| f(g));
        }
    }

    /// The gate of rung `r` of stream `slot`.
    fn gate(&self, slot: StreamSlot, r: usize) -> Option<&RungGate> {
        self.streams.get(&slot).and_then(|s| s.ladder.get(r)).map(|g| &**g)
    }

    /// Runs `f` on peer `id` with a sender and an event list, then acts on the events.
    fn drive(&mut self, id: SessionId, f: impl FnOnce(&mut Peer, &mut dyn FnMut(&Transmit), &mut Vec<PeerEvent>)) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        let mut evs = Vec::new();
        {
            let mut net = net!(self);
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
                    let Some(peer) = self.peers.get(&id) else { continue };
                    if peer.video_track() == Track::Vp8 {
                        let pad = self.streams.get(&slot).and_then(|s| s.vp8.as_ref().map(|v| &v.0));
                        if let Some(pad) = pad {
                            pad.push_event(keyframes::request_event());
                        }
                    } else if let Some(gate) = self.gate(slot, peer.keyframe_rung()) {
                        gate.request_keyframe();
                    }
                }
                PeerEvent::JoiningRung(r) => {
                    if let Some(gate) = self.gate(slot, r) {
                        gate.join();
                        gate.request_keyframe();
                    }
                }
                PeerEvent::LeftRung(r) => self.gate(slot, r).into_iter().for_each(RungGate::leave),
                PeerEvent::Switched { from, to } => {
                    tracing::debug!(session = %id, from, to, "viewer switched rungs");
                    self.gate(slot, from).into_iter().for_each(RungGate::leave);
                    self.gate(slot, to).into_iter().for_each(|g| g.switched_to(to < from));
                }
                PeerEvent::Ended(why) => {
                    if let Some(p) = self.peers.remove(&id) {
                        self.rungs_of(&p, RungGate::leave);
                        self.forget(id);
                        if let Some(stream) = stream {
                            let _ = self.events.send(MediaEvent::PeerEnded { stream, id, why });
                        }
                    }
                    return;
                }
            }
        }
    }

    fn on_media(&mut self, p: MediaPacket) {
        let Some(stream) = self.streams.get_mut(&p.slot) else {
            return;
        };
        let i = lane(p.track, p.rung);
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
            for (slot, stream) in self.streams.iter_mut() {
                // Each encoder hears from its own viewers only.
                // (A ladder's top rung hears only from its viewers that stay on it.)
                let mut losses = |track: Track| -> Vec<f32> {
                    let of = |p: &&mut Peer| p.slot == *slot && p.video_track() == track && p.settled_on_top();
                    self.peers.values_mut().filter(of).filter_map(Peer::take_video_loss).collect()
                };
                // Summed with the other threads' (on the first thread; the others send theirs there).
                let mut video = LossReport::of(losses(Track::Video));
                video.add(&std::mem::take(&mut stream.pending_loss[0]));
                (stream.on_loss)(video);
                if let Some((_, on_loss)) = &stream.vp8 {
                    let mut vp8 = LossReport::of(losses(Track::Vp8));
                    vp8.add(&std::mem::take(&mut stream.pending_loss[1]));
                    on_loss(vp8);
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

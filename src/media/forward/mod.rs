//! The forwarding transport: every viewer of every stream served from one UDP port by a few mux threads
//! (`webrtc.mux_threads`, one per core by default), each owning its share of the viewers.
//!
//! ```text
//! {h264 tee} - {rtph264pay pt=96} - {rtp tee} - {appsink} --+
//! {opus tee} - {rtpopuspay pt=111} - {rtp tee} - {appsink} --+--> mux thread: per viewer a str0m `Rtc`
//!                                                                  (payload type, sequence numbers, SRTP,
//!                                                                  RTCP, NACK/RTX) --> one UDP socket per
//!                                                                  local address, all on one port
//! ```
//!
//! Packets are payloaded once; each payload is shared (`Arc<[u8]>`) by every viewer, which only adds its
//! own header and encryption. There is no per-viewer element, queue or thread. ICE is lite (we answer the
//! browser's checks on our host candidates) unless `webrtc.relay` adds a TURN relay candidate, which needs
//! full ICE ([`relay`]); DTLS uses the process's ECDSA certificate ([`super::dtls`]).
//! The webrtcbin transport ([`super::webrtcbin::viewer`]) stays selectable (`webrtc.transport`); see ADR 0003.

mod announce;
mod liveness;
mod mux;
mod packet;
mod peer;
mod relay;
mod route;
mod sdp;
mod send;
pub mod stun;
mod switch;
mod tcp;
mod timers;
mod udp;
mod viewer;

pub use announce::{RelayTarget, follow_local, keep_discovered, keep_relayed, keep_resolved};
pub use relay::{Credentials, RelaySpec, RelayState, RelayStatus, try_allocate as relay_try_allocate};
pub use viewer::ForwardViewer;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use anyhow::Context;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use str0m::Candidate;
use str0m::net::TcpType;
use tokio::sync::mpsc::UnboundedSender;

use self::mux::{Cmd, MediaPacket, Track};
use super::encode::congestion::LossReport;
use super::encode::ladder::{RungBranch, RungGate};
use super::{MediaError, MediaEvent, OfferPlan, PeerStats};
use crate::config::{LocalCandidates, WebrtcConfig};
use crate::ids::{SessionId, StreamName};

/// The payload types the shared payloaders use (each viewer's packets carry the viewer's own).
pub const VIDEO_PT: u8 = 96;
pub const AUDIO_PT: u8 = 111;

/// The running transport. Cheap to clone.
#[derive(Clone)]
pub struct Forward {
    shared: Arc<Shared>,
}

struct Shared {
    /// The mux threads; the first reads the sockets and owns ICE-TCP and the relay ([`mux`]).
    shards: Vec<mux::Shard>,
    port: u16,
    /// A host candidate per bound socket whose address is present now: every peer's `Rtc` knows them all
    /// (str0m answers STUN only on an address it has as a candidate, and a port-forwarded check arrives on
    /// the local one).
    locals: RwLock<Vec<Candidate>>,
    /// Every address a socket was bound to, present or not (one that goes may come back).
    bound: Mutex<Vec<SocketAddr>>,
    /// Which of `locals` the answers announce.
    local_filter: LocalCandidates,
    /// The ICE-TCP listener's port (`None`: no ICE-TCP): every UDP candidate has a passive TCP twin there.
    tcp_port: Option<u16>,
    /// `webrtc.advertise`, as last resolved: announced as host candidates too.
    advertised: RwLock<Vec<Candidate>>,
    /// The public address `webrtc.stun_discover` last reported, on the mux port.
    discovered: RwLock<Option<Candidate>>,
    /// `webrtc.relay`: the TURN allocation as the mux last reported it (`None`: no relay).
    relay: relay::SharedStatus,
    /// Full ICE rather than lite (a relay is configured: an ICE-lite agent cannot have a relay candidate).
    full_ice: bool,
    /// `webrtc.nack_history_ms`: how long each viewer's sent video packets are kept for its NACKs.
    nack_history: std::time::Duration,
    next_slot: AtomicU64,
    /// Each stream's ladder, top first (a new viewer's chooser is made from its rungs' bitrates).
    ladders: RwLock<std::collections::HashMap<StreamSlot, mux::Ladder>>,
    /// Where [`Forward::pick_shard`] starts looking.
    next_shard: AtomicUsize,
    /// Datagrams sent on the media port, and the system calls they took (GSO makes it fewer).
    sends: Arc<send::SendCounters>,
    /// The ICE-TCP port's open connections and the ones it closed, by why.
    ice_tcp: Arc<tcp::TcpCounters>,
}

/// Counters shared by a viewer's handle and the mux.
#[derive(Debug, Default)]
pub(crate) struct PeerCounters {
    pub dropped: AtomicU64,
    pub forwarded: AtomicU64,
    pub first_forwarded_was_keyframe: AtomicBool,
    /// Updated from str0m's stats events (every [`packet::LOSS_REPORT_EVERY`]).
    pub transport: Mutex<PeerStats>,
}

/// A stream's place in the mux.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StreamSlot(usize);

/// The local addresses we offer as host candidates: every up interface's address but link-local ones;
/// loopback only when there is nothing else.
pub fn local_ips() -> Vec<IpAddr> {
    let all: Vec<IpAddr> =
        if_addrs::get_if_addrs().map(|v| v.into_iter().map(|i| i.ip()).collect()).unwrap_or_default();
    let usable = |ip: &IpAddr| match ip {
        IpAddr::V4(v4) => !v4.is_loopback() && !v4.is_link_local() && !v4.is_unspecified(),
        IpAddr::V6(v6) => !v6.is_loopback() && !v6.is_unspecified() && (v6.segments()[0] & 0xffc0) != 0xfe80,
    };
    let mut ips: Vec<IpAddr> = all.iter().copied().filter(usable).collect();
    ips.dedup();
    if ips.is_empty() {
        ips.push(IpAddr::from([127, 0, 0, 1]));
    }
    ips
}

/// The ICE-TCP listener on `port` of every local address (dual-stack), or `None` with a warning when it
/// cannot be had (viewers then have UDP only). `any_port`: no port was configured (`mux_port = 0`), so when
/// the UDP port's number is taken for TCP, any other will do.
fn ice_tcp_listener(port: u16, any_port: bool) -> Option<std::net::TcpListener> {
    let on = |port| crate::net::listen_tcp(SocketAddr::new(std::net::Ipv6Addr::UNSPECIFIED.into(), port));
    match on(port).or_else(|e| if any_port { on(0) } else { Err(e) }) {
        Ok(l) => Some(l),
        Err(e) => {
            tracing::warn!(port, error = %e, "ICE-TCP: cannot listen (webrtc.tcp_port); viewers without UDP cannot play");
            None
        }
    }
}

impl Forward {
    /// Binds `webrtc.mux_port` (`0`: the OS picks one) on every local address, and the ICE-TCP port, and
    /// starts the mux thread. What answers announce follows `local_candidates` (and
    /// [`Forward::set_advertised`]).
    pub fn start(w: &WebrtcConfig, events: UnboundedSender<MediaEvent>) -> anyhow::Result<Self> {
        let ips = local_ips();
        let sockets = udp::bind_all(&ips, w.mux_port)?;
        let port = sockets.first().map(|s| s.local.port()).context("no local address to bind")?;
        let bound: Vec<SocketAddr> = sockets.iter().map(|s| s.local).collect();
        let locals = bound.iter().filter_map(|addr| Candidate::host(*addr, "udp").ok()).collect();
        let any_port = w.tcp_port == 0 && w.mux_port == 0;
        let tcp_listener =
            if w.ice_tcp { ice_tcp_listener(if w.tcp_port == 0 { port } else { w.tcp_port }, any_port) } else { None };
        let tcp_port = tcp_listener.as_ref().and_then(|l| l.local_addr().ok()).map(|a| a.port());
        let relay = relay::SharedStatus::default();
        let sends = Arc::new(send::SendCounters::default());
        let ice_tcp = Arc::new(tcp::TcpCounters::default());
        let threads = w.mux_threads();
        let shards = mux::spawn(mux::Setup {
            threads,
            sockets,
            tcp_listener,
            tcp_per_address: w.ice_tcp_per_address as usize,
            tcp_counters: ice_tcp.clone(),
            events,
            relay_status: relay.clone(),
            gso: w.udp_gso,
            mmsg: w.udp_mmsg,
            sends: sends.clone(),
        })?;
        tracing::info!(port, ?tcp_port, addresses = ?ips, mux_threads = threads, "forwarding transport listening");
        Ok(Self {
            shared: Arc::new(Shared {
                shards,
                port,
                locals: RwLock::new(locals),
                bound: Mutex::new(bound),
                local_filter: w.local_candidates.clone(),
                tcp_port,
                advertised: RwLock::new(Vec::new()),
                discovered: RwLock::new(None),
                relay,
                full_ice: w.relay,
                nack_history: std::time::Duration::from_millis(u64::from(w.nack_history_ms)),
                next_slot: AtomicU64::new(0),
                ladders: RwLock::default(),
                next_shard: AtomicUsize::new(0),
                sends,
                ice_tcp,
            }),
        })
    }

    /// Whether every mux thread runs and its loop went round in the last [`liveness::STUCK_AFTER`], and how
    /// long ago the slowest last did.
    pub fn mux_liveness(&self) -> (bool, std::time::Duration) {
        let shards = &self.shared.shards;
        let age = shards.iter().map(|s| s.heartbeat.age()).max().unwrap_or_default();
        let running = |s: &mux::Shard| s.thread.lock().expect("thread lock").as_ref().is_some_and(|t| !t.is_finished());
        (shards.iter().all(running) && age < liveness::STUCK_AFTER, age)
    }

    /// Viewers each mux thread serves now.
    pub fn viewers_per_thread(&self) -> Vec<usize> {
        self.shared.shards.iter().map(|s| s.load.load(Ordering::Relaxed)).collect()
    }

    /// The mux thread a new viewer goes to: the least loaded, ties taken in turn (so consecutive viewers
    /// spread even when each leaves before the next comes).
    fn pick_shard(&self) -> &mux::Shard {
        let shards = &self.shared.shards;
        let start = self.shared.next_shard.fetch_add(1, Ordering::Relaxed);
        let n = shards.len();
        let order = (0..n).map(|k| &shards[(start + k) % n]);
        order.min_by_key(|s| s.load.load(Ordering::Relaxed)).expect("a mux thread")
    }

    /// The first mux thread's channel: it owns the sockets' reading, ICE-TCP and the relay.
    fn home(&self) -> &mux::MuxSender {
        &self.shared.shards[0].tx
    }

    /// Sends `cmd()` to every mux thread.
    fn broadcast(&self, cmd: impl Fn() -> Cmd) {
        self.shared.shards.iter().for_each(|s| s.tx.send(cmd()));
    }

    /// Sends every mux thread `cmd(its loss sink)`: the first gets `on_loss` itself, the others a sink that
    /// hands their viewers' report to the first (summed there, [`Cmd::Loss`]).
    fn broadcast_with_loss(
        &self,
        slot: StreamSlot,
        vp8: bool,
        on_loss: mux::LossSink,
        cmd: impl Fn(mux::LossSink) -> Cmd,
    ) {
        let mut first = Some(on_loss);
        for s in &self.shared.shards {
            let sink = first.take().unwrap_or_else(|| {
                let home = self.home().clone();
                Box::new(move |report| home.send(Cmd::Loss { slot, vp8, report }))
            });
            s.tx.send(cmd(sink));
        }
    }

    /// Datagrams sent on the media port so far, and the `sendmsg` calls they took.
    pub fn udp_sends(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.shared.sends.datagrams.load(Relaxed), self.shared.sends.calls.load(Relaxed))
    }

    /// The ICE-TCP port (`None` when it is off): connections open now, and those the server closed or
    /// refused so far by why (`per_address`, `full`, `evicted`, `no_check`, `bad_frame`, `idle`).
    pub fn ice_tcp(&self) -> Option<(u64, Vec<(&'static str, u64)>)> {
        self.shared.tcp_port?;
        let c = &self.shared.ice_tcp;
        Some((c.open(), tcp::Closed::ALL.iter().map(|w| (w.as_str(), c.closed(*w))).collect()))
    }

    /// How long packets wait for the mux thread (ms, smoothed over ~100 packets); `None` before the first.
    /// It grows when the thread cannot keep up: admission control refuses joins then.
    pub fn send_lag_ms(&self) -> Option<f64> {
        self.shared.shards.iter().filter_map(|s| s.lag.ms()).reduce(f64::max)
    }

    /// Announces these addresses (resolved `webrtc.advertise`) to the viewers who join from now on.
    pub fn set_advertised(&self, addrs: &[SocketAddr]) {
        let cands: Vec<Candidate> = addrs.iter().filter_map(|a| Candidate::host(*a, "udp").ok()).collect();
        *self.shared.advertised.write().expect("advertised lock") = cands;
    }

    /// Binds the mux port on local addresses that appeared since start (DHCP, SLAAC, a VPN coming up) and
    /// stops announcing those that went; the viewers who join next get the change.
    pub fn follow_local_addresses(&self) {
        let present = local_ips();
        let port = self.shared.port;
        let mut bound = self.shared.bound.lock().expect("bound lock");
        for ip in &present {
            if bound.iter().any(|a| a.ip() == *ip) {
                continue;
            }
            match udp::bind(*ip, port) {
                Ok(socket) => {
                    tracing::info!(addr = %socket.local, "forwarding transport: a new local address, listening there too");
                    bound.push(socket.local);
                    for s in &self.shared.shards[1..] {
                        match socket.try_clone() {
                            Ok(clone) => s.tx.send(Cmd::Socket(clone)),
                            Err(e) => {
                                tracing::warn!(error = %format!("{e:#}"), "cannot share a new socket with a mux thread")
                            }
                        }
                    }
                    self.home().send(Cmd::Socket(socket));
                }
                // An IPv6 address still in duplicate-address detection cannot be bound yet: next round.
                Err(e) => tracing::debug!(%ip, error = %format!("{e:#}"), "not bound yet"),
            }
        }
        let now: Vec<Candidate> = bound
            .iter()
            .filter(|a| present.contains(&a.ip()))
            .filter_map(|a| Candidate::host(*a, "udp").ok())
            .collect();
        *self.shared.locals.write().expect("locals lock") = now;
    }

    /// Allocates a relay on the first of these TURN servers that works (replacing any allocation); answers
    /// announce it once allocated.
    pub fn set_relay(&self, specs: Vec<RelaySpec>) {
        self.home().send(Cmd::Relay(specs));
    }

    /// The TURN allocation's state (`None`: no relay configured or asked yet).
    pub fn relay_status(&self) -> Option<RelayStatus> {
        self.shared.relay.lock().expect("relay status lock").clone()
    }

    pub(crate) fn set_relay_status(&self, status: RelayStatus) {
        *self.shared.relay.lock().expect("relay status lock") = Some(status);
    }

    /// The relayed address as a candidate, once allocated.
    fn relay_candidate(&self) -> Option<Candidate> {
        match self.relay_status()?.state {
            RelayState::Allocated { address, via } => Candidate::relayed(address, via, "udp").ok(),
            _ => None,
        }
    }

    /// Announces `ip` (what `webrtc.stun_discover` found) with the mux port, or stops announcing it.
    pub fn set_discovered(&self, ip: Option<std::net::IpAddr>) {
        let cand = ip.and_then(|ip| Candidate::host(SocketAddr::new(ip, self.shared.port), "udp").ok());
        *self.shared.discovered.write().expect("discovered lock") = cand;
    }

    /// The candidates answers announce: the local host ones `local_candidates` keeps, then the advertised
    /// and the STUN-discovered; UDP first, then each one's ICE-TCP twin; then the relay's.
    pub fn announced(&self) -> Vec<Candidate> {
        self.candidates(true)
    }

    /// Every candidate a peer's `Rtc` gets (`filtered`: only those announced). str0m answers STUN only on
    /// an address it has as a candidate, and a port-forwarded check arrives on a local one, so an `Rtc`
    /// knows the hidden local addresses too.
    fn candidates(&self, filtered: bool) -> Vec<Candidate> {
        let shared = &self.shared;
        let locals = shared.locals.read().expect("locals lock");
        let advertised = shared.advertised.read().expect("advertised lock");
        let discovered = shared.discovered.read().expect("discovered lock");
        let shown = locals.iter().filter(|c| !filtered || shared.local_filter.announces(c.addr().ip()));
        let mut all = self.with_tcp(shown.chain(advertised.iter()).chain(discovered.iter()));
        all.extend(self.relay_candidate());
        all
    }

    /// `udp` (deduplicated), then a passive TCP candidate for each: on the ICE-TCP port for an address on
    /// the mux port, else (an advertised port forward) on the same port.
    fn with_tcp<'a>(&self, udp: impl Iterator<Item = &'a Candidate>) -> Vec<Candidate> {
        let mut out: Vec<Candidate> = Vec::new();
        for c in udp {
            if !out.iter().any(|o| o.addr() == c.addr()) {
                out.push(c.clone());
            }
        }
        let Some(tcp_port) = self.shared.tcp_port else { return out };
        let twins: Vec<Candidate> = out
            .iter()
            .filter_map(|c| {
                let port = if c.addr().port() == self.shared.port { tcp_port } else { c.addr().port() };
                let addr = SocketAddr::new(c.addr().ip(), port);
                Candidate::builder().tcp().host(addr).tcptype(TcpType::Passive).build().ok()
            })
            .collect();
        out.extend(twins);
        out
    }

    /// The ICE-TCP port (`None`: off, or it could not be bound).
    pub fn tcp_port(&self) -> Option<u16> {
        self.shared.tcp_port
    }

    /// The one UDP port all media goes through.
    pub fn port(&self) -> u16 {
        self.shared.port
    }

    /// Feeds a stream's RTP tees into the mux: `{rtp tee} - {appsink}` for video and (when present) audio,
    /// and each lower rung of its ladder (`lower`: its payloader's src) likewise.
    ///
    /// `top`'s keyframe pad is where keyframe requests are pushed upstream: the sink pad of the tee after the
    /// encoder, so they skip the payloader. (rtph264pay answers a force-key-unit by sending SPS/PPS with
    /// the next frame, which is still a delta frame; Chromium then gets a parameter-set-only "frame", fails
    /// to decode it and asks for a keyframe again: a loop of one keyframe per rate-limit interval.)
    /// `on_loss` gets the stream's viewers' video loss every 2 s (congestion control, on the mux thread).
    pub fn attach_stream(
        &self,
        name: &StreamName,
        pipeline: &gst::Pipeline,
        video_rtp: &gst::Element,
        audio_rtp: Option<&gst::Element>,
        (top, lower): (Arc<RungGate>, Vec<RungBranch>),
        on_loss: impl Fn(LossReport) + Send + 'static,
    ) -> anyhow::Result<StreamSlot> {
        let slot = StreamSlot(self.shared.next_slot.fetch_add(1, Ordering::Relaxed) as usize);
        self.appsink(pipeline, video_rtp, slot, (Track::Video, 0))?;
        for (i, rung) in lower.iter().enumerate() {
            self.appsink_on(pipeline, &rung.rtp_src, slot, (Track::Video, (i + 1) as u8))?;
        }
        let ladder: mux::Ladder = std::iter::once(top).chain(lower.into_iter().map(|r| r.gate)).collect();
        self.shared.ladders.write().expect("ladders lock").insert(slot, ladder.clone());
        self.broadcast_with_loss(slot, false, Box::new(on_loss), |on_loss| Cmd::Stream {
            slot,
            name: name.clone(),
            ladder: ladder.clone(),
            on_loss,
        });
        if let Some(tee) = audio_rtp {
            self.appsink(pipeline, tee, slot, (Track::Audio, 0))?;
        }
        Ok(slot)
    }

    fn appsink(
        &self,
        pipeline: &gst::Pipeline,
        tee: &gst::Element,
        slot: StreamSlot,
        track: (Track, u8),
    ) -> anyhow::Result<gst_app::AppSink> {
        let src = tee.request_pad_simple("src_%u").context("requesting an RTP tee pad")?;
        self.appsink_on(pipeline, &src, slot, track)
    }

    /// An appsink fed from `src` that hands each RTP packet to the mux as `track` (and rung) of `slot`.
    fn appsink_on(
        &self,
        pipeline: &gst::Pipeline,
        src: &gst::Pad,
        slot: StreamSlot,
        track: (Track, u8),
    ) -> anyhow::Result<gst_app::AppSink> {
        let sink = gst_app::AppSink::builder()
            .name(format!("forward-{:?}-{}-{}", track.0, track.1, slot.0).to_lowercase())
            .sync(false)
            .async_(false)
            .max_buffers(64)
            .drop(true)
            .build();
        let muxes: Vec<mux::MuxSender> = self.shared.shards.iter().map(|s| s.tx.clone()).collect();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Flushing)?;
                    let at = Instant::now();
                    let mut send = |buffer: &gst::BufferRef| {
                        if let Some(packet) = MediaPacket::parse(slot, track, buffer, at) {
                            // Every thread has viewers of any stream; the payload is shared, not copied.
                            let (last, rest) = muxes.split_last().expect("at least one mux thread");
                            rest.iter().for_each(|m| m.send(Cmd::Media(packet.clone())));
                            last.send(Cmd::Media(packet));
                        }
                    };
                    if let Some(list) = sample.buffer_list() {
                        list.iter().for_each(&mut send);
                    } else if let Some(buffer) = sample.buffer() {
                        send(buffer);
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        pipeline.add(&sink)?;
        sink.sync_state_with_parent()?;
        src.link(&sink.static_pad("sink").expect("appsink has a sink pad")).context("linking the appsink")?;
        Ok(sink)
    }

    /// Feeds a stream's VP8 encoding (its payloader's `src`) into the mux; VP8 viewers' keyframe requests
    /// go upstream from `keyframe_pad`, their loss every 2 s to `on_loss`. Returns the appsink (removed by
    /// the caller with the branch).
    pub fn attach_vp8(
        &self,
        slot: StreamSlot,
        pipeline: &gst::Pipeline,
        src: &gst::Pad,
        keyframe_pad: gst::Pad,
        on_loss: impl Fn(LossReport) + Send + 'static,
    ) -> anyhow::Result<gst::Element> {
        let sink = self.appsink_on(pipeline, src, slot, (Track::Vp8, 0))?;
        self.broadcast_with_loss(slot, true, Box::new(on_loss), |on_loss| Cmd::Vp8 {
            slot,
            encoding: Some((keyframe_pad.clone(), on_loss)),
        });
        Ok(sink.upcast())
    }

    /// The stream's VP8 encoding stopped.
    pub fn detach_vp8(&self, slot: StreamSlot) {
        self.broadcast(|| Cmd::Vp8 { slot, encoding: None });
    }

    /// Answers a viewer's offer and hands the viewer to the mux. Quick: no gathering, no element.
    pub fn add_viewer(
        &self,
        slot: StreamSlot,
        id: SessionId,
        offer: &str,
        plan: &OfferPlan,
    ) -> Result<(ForwardViewer, String), MediaError> {
        let stats = Arc::new(PeerCounters::default());
        let announced = self.announced();
        let shown: Vec<(String, SocketAddr)> = announced.iter().map(|c| (c.proto().to_string(), c.addr())).collect();
        let locals = peer::Locals {
            candidates: self.candidates(false),
            announced: shown.as_slice(),
            full_ice: self.shared.full_ice,
            relayed: self.relay_candidate().map(|c| c.addr()),
            nack_history: self.shared.nack_history,
            ladder: self
                .shared
                .ladders
                .read()
                .expect("ladders lock")
                .get(&slot)
                .map(|l| l.iter().map(|g| g.rung.bitrate_kbps).collect()),
        };
        let (peer, answer) = peer::Peer::answer(id, slot, offer, plan, locals, stats.clone())?;
        tracing::trace!(session = %id, offer = %sdp::redacted(offer), answer = %sdp::redacted(&answer), "forwarded viewer negotiated");
        let shard = self.pick_shard();
        shard.load.fetch_add(1, Ordering::Relaxed);
        shard.tx.send(Cmd::Add(Box::new(peer)));
        let handle = ForwardViewer {
            id,
            lease: None,
            mux: shard.tx.clone(),
            stats,
            remote_ufrag: Mutex::new(plan.ice_ufrag.clone()),
            first_mid: plan.mids.first().cloned(),
            candidates: announced.iter().map(Candidate::to_sdp_string).collect(),
        };
        Ok((handle, answer))
    }

    /// Ends every viewer and stops the mux threads (blocking).
    pub fn stop(&self) {
        self.broadcast(|| Cmd::Stop);
        for s in &self.shared.shards {
            if let Some(t) = s.thread.lock().expect("thread lock").take() {
                let _ = t.join();
            }
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.shards.iter().for_each(|s| s.tx.send(Cmd::Stop));
    }
}

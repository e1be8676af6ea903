//! One viewer in the mux: a str0m `Rtc` in RTP mode, the keyframe gate and the viewer's sequence numbers.

use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use str0m::change::SdpOffer;
use str0m::config::{CryptoProvider, DtlsCert};
use str0m::format::Codec;
use str0m::media::{MediaTime, Mid, Pt};
use str0m::rtp::{Extension, ExtensionValues, RtpWrite, SeqNo};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};

use super::liveness::panic_text;
use super::packet::{LOSS_REPORT_EVERY, MediaPacket, Track};
use super::sdp::{normalize_offer, one_media_stream, only_candidates, restart_offer};
use super::switch::Splice;
use super::{PeerCounters, StreamSlot};
use crate::config::VideoCodec;
use crate::ids::SessionId;
use crate::media::{MediaError, OfferPlan, PeerEnd, dtls};

/// A connected viewer we hear nothing from (no STUN check, no RTCP report) this long is gone. Browsers send
/// consent checks every ~5 s and RTCP every second or so; an ICE restart within this time keeps the session.
/// (str0m's ICE-lite agent does not report such a peer as disconnected by itself.)
const SILENCE_TIMEOUT: Duration = Duration::from_secs(15);

fn crypto() -> Arc<CryptoProvider> {
    static P: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    P.get_or_init(|| Arc::new(str0m::crypto::from_feature_flags())).clone()
}

/// What happened to a peer while it was driven, for the mux to act on.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum PeerEvent {
    Connected,
    /// A keyframe of [`Peer::keyframe_rung`] is wanted.
    KeyframeWanted,
    /// The viewer is switching to this rung of its stream's ladder (the mux opens it and asks its keyframe).
    JoiningRung(usize),
    /// It gave up switching to this rung.
    LeftRung(usize),
    /// It now gets `to`'s packets instead of `from`'s.
    Switched {
        from: usize,
        to: usize,
    },
    Ended(PeerEnd),
}

struct Sender {
    mid: Mid,
    pt: Pt,
    /// The viewer's own sequence numbers and timestamps (continuous across rung switches).
    splice: Splice,
}

#[path = "peer_ladder.rs"]
mod ladder;
use ladder::{Link, PeerLadder};

/// How often a ladder viewer's stats (its receiver reports' loss, transport-wide feedback's loss, what was
/// sent) reach its chooser: a failed up-switch is seen within about this.
const LADDER_STATS_EVERY: Duration = Duration::from_secs(1);

/// The RTP header extension str0m's send-side estimate needs (transport-wide sequence numbers); only a
/// ladder's H.264 viewers whose offer has it negotiate it.
const TWCC_URI: &str = "transport-wide-cc-extensions";

pub(super) struct Peer {
    pub id: SessionId,
    pub slot: StreamSlot,
    rtc: Rtc,
    /// The client's offer (normalized), which an ICE restart offers again with new credentials.
    offer: String,
    video: Sender,
    /// The stream's encoding this viewer gets: H.264 ([`Track::Video`]) or VP8.
    video_track: Track,
    audio: Option<Sender>,
    /// Our relay candidate's address, when the answer had one.
    relayed: Option<SocketAddr>,
    pub next_timeout: Instant,
    connected: bool,
    video_open: bool,
    /// Fraction lost from the video receiver reports since the mux last took it.
    video_loss: Option<f32>,
    /// The stream's quality ladder (`None`: one encoding, or VP8).
    ladder: Option<PeerLadder>,
    /// The time as of the last input (str0m's clock: a test's simulated one too).
    now: Instant,
    /// When the client last sent us a datagram.
    last_heard: Instant,
    /// Packets were written since str0m last had the time: they go out at the next [`Peer::on_timeout`]
    /// (the mux lists the peer for its next timer pass when this becomes true, and clears it there).
    pub dirty: bool,
    stats: Arc<PeerCounters>,
    /// Video's and audio's last egress totals: bytes, packets, NACKs, PLIs + FIRs.
    egress: [(u64, u64, u64, u64); 2],
}

fn negotiation(why: impl std::fmt::Display) -> MediaError {
    MediaError::Negotiation(why.to_string())
}

/// A str0m error that ends a peer: DTLS's own, or any other.
fn ended_by(e: &str0m::RtcError) -> PeerEnd {
    match e {
        str0m::RtcError::Dtls(_) => PeerEnd::DtlsFailed,
        _ => PeerEnd::Error(format!("str0m: {e}")),
    }
}

/// Why str0m did not accept an offer: the offer's fault (inconsistent, no media, a bad attribute: 400) or a
/// negotiation failure of ours (500).
fn refused_offer(e: str0m::RtcError) -> MediaError {
    match e {
        str0m::RtcError::RemoteSdp(_) | str0m::RtcError::Sdp(_) => MediaError::MalformedOffer(format!("str0m: {e}")),
        e => negotiation(format!("str0m: {e}")),
    }
}

/// The payload type str0m agreed for `mid` that carries `want` (our pick from the offer), or the first
/// agreed one of `codec`.
fn agreed_pt(rtc: &Rtc, mid: Mid, want: u8, codec: Codec) -> Option<Pt> {
    let media = rtc.media(mid)?;
    let params = rtc.codec_config().params();
    let of_codec = |pt: &Pt| params.iter().any(|p| p.pt() == *pt && p.spec().codec == codec);
    let pts = media.remote_pts();
    pts.iter().find(|pt| **pt == Pt::from(want) && of_codec(pt)).or_else(|| pts.iter().find(|pt| of_codec(pt))).copied()
}

/// The most video packets a viewer's NACK history holds (str0m's default), whatever `webrtc.nack_history_ms`
/// says: about 4 s at 2.5 Mbit/s, 1 s at 10.
const NACK_HISTORY_PACKETS: usize = 1000;
/// str0m's default: queued resends are dropped while they would take more than 15% of what is sent.
const RTX_RATIO_CAP: f32 = 0.15;

/// Keeps the viewer's sent video packets for `history` (`webrtc.nack_history_ms`) to answer its NACKs
/// from, instead of str0m's 3 s: each kept packet costs the viewer ~0.4 KiB (the payloads are shared), so at
/// 2.5 Mbit/s 3 s are ~0.3 MiB a viewer, and a resend later than a second comes after a low-latency
/// player has asked for a keyframe anyway.
///
/// Video is also left unpaced (with str0m's send-side estimation on, its pacer would hold media to 1.1x the
/// estimate): a frame leaves at once as it does without estimation, so pacing adds no latency and no
/// wakeups per packet, and a switch to a lower rung is not stuck behind a queue of the rung left (str0m's
/// probes still go through the pacer).
fn keep_video_history(rtc: &mut Rtc, mid: Mid, history: std::time::Duration) -> Result<(), MediaError> {
    let set = catch_unwind(AssertUnwindSafe(|| {
        rtc.direct_api().stream_tx_by_mid(mid, None).map(|tx| {
            tx.set_rtx_cache(NACK_HISTORY_PACKETS, history, Some(RTX_RATIO_CAP));
            tx.set_unpaced(true);
        })
    }));
    match set {
        Ok(Some(())) => Ok(()),
        Ok(None) => Err(negotiation("no video stream to send on")),
        Err(p) => Err(negotiation(format!("str0m panicked: {}", panic_text(p)))),
    }
}

/// What a new peer's `Rtc` has of ours: every candidate, which of them the answer shows (protocol,
/// address), the ICE mode, and the relayed address among them.
pub(super) struct Locals<'a> {
    pub candidates: Vec<Candidate>,
    pub announced: &'a [(String, SocketAddr)],
    /// Full ICE (a relay is configured) rather than lite.
    pub full_ice: bool,
    pub relayed: Option<SocketAddr>,
    /// How long sent video packets are kept for NACKs (`webrtc.nack_history_ms`).
    pub nack_history: std::time::Duration,
    /// The stream's ladder, every rung's bitrate top first (`None` or one rung: no switching).
    pub ladder: Option<Vec<u32>>,
}

impl Peer {
    /// Builds the viewer's `Rtc`, applies the offer and returns the peer and our SDP answer.
    pub fn answer(
        id: SessionId,
        slot: StreamSlot,
        offer: &str,
        plan: &OfferPlan,
        locals: Locals<'_>,
        stats: Arc<PeerCounters>,
    ) -> Result<(Peer, String), MediaError> {
        let Locals { candidates, announced, full_ice, relayed, nack_history, ladder } = locals;
        let cert = dtls::certificate().ok_or_else(|| negotiation("no DTLS certificate"))?;
        let vp8 = plan.video.codec == VideoCodec::Vp8;
        let offer_text = normalize_offer(offer);
        let now = Instant::now();
        let ladder = ladder.filter(|k| k.len() > 1 && !vp8).map(|k| PeerLadder::new(k, now));
        let bwe = ladder.as_ref().filter(|_| offer_text.contains(TWCC_URI)).map(|l| l.initial_kbps());
        let parsed = catch_unwind(|| SdpOffer::from_sdp_string(&offer_text))
            .map_err(|p| MediaError::MalformedOffer(format!("str0m panicked parsing it: {}", panic_text(p))))?;
        let offer = parsed.map_err(|e| MediaError::MalformedOffer(e.to_string()))?;
        let built = catch_unwind(AssertUnwindSafe(|| {
            let rtc = RtcConfig::new()
                .set_crypto_provider(crypto())
                .set_dtls_cert(DtlsCert { certificate: cert.der.clone(), private_key: cert.key_der.clone() })
                .set_ice_lite(!full_ice)
                .set_rtp_mode(true)
                .clear_codecs()
                .enable_h264(!vp8)
                .enable_vp8(vp8)
                .enable_opus(true, false)
                // Only what we use: mid (BUNDLE) and playout-delay (zero: show each frame when decoded);
                // transport-wide CC only for a ladder's viewers (their send-side estimate moves them
                // between rungs; it costs work per packet and per feedback report, and paces sending).
                .clear_extension_map()
                .set_extension(4, Extension::RtpMid)
                .set_extension(12, Extension::PlayoutDelay)
                // Every 2 s (LOSS_REPORT_EVERY): the video receiver reports (fraction lost) feed congestion
                // control. Stats cost work per peer; once a second measured ~0.02% of a core per viewer more.
                .set_stats_interval(Some(if ladder.is_some() { LADDER_STATS_EVERY } else { LOSS_REPORT_EVERY }));
            let mut rtc = match bwe {
                Some(kbps) => rtc
                    .set_extension(3, Extension::TransportSequenceNumber)
                    .enable_bwe(Some(str0m::bwe::Bitrate::kbps(u64::from(kbps)))),
                None => rtc,
            }
            .build(now);
            for c in candidates {
                rtc.add_local_candidate(c);
            }
            let answer = rtc.sdp_api().accept_offer(offer).map_err(refused_offer)?;
            Ok::<_, MediaError>((rtc, only_candidates(&one_media_stream(&answer.to_sdp_string()), announced)))
        }))
        .map_err(|p| negotiation(format!("str0m panicked: {}", panic_text(p))))?;
        let (mut rtc, answer) = built?;
        if let Some(l) = ladder.as_ref().filter(|_| bwe.is_some()) {
            rtc.bwe().set_desired_bitrate(str0m::bwe::Bitrate::kbps(u64::from(l.desired_kbps())));
        }
        let mid_of =
            |mline: u32| plan.mids.get(mline as usize).filter(|m| !m.is_empty()).map(|m| Mid::from(m.as_str()));
        let video_mid = mid_of(plan.video.mline).ok_or_else(|| negotiation("the video m-line has no a=mid"))?;
        keep_video_history(&mut rtc, video_mid, nack_history)?;
        let codec = if vp8 { Codec::Vp8 } else { Codec::H264 };
        let video_pt = agreed_pt(&rtc, video_mid, plan.video.pt, codec)
            .ok_or_else(|| MediaError::NoUsableCodec(format!("no {codec} payload type was agreed for video")))?;
        let audio = match &plan.audio {
            Some(a) => {
                let mid = mid_of(a.mline).ok_or_else(|| negotiation("the audio m-line has no a=mid"))?;
                agreed_pt(&rtc, mid, a.pt, Codec::Opus).map(|pt| Sender { mid, pt, splice: Splice::default() })
            }
            None => None,
        };
        if ladder.is_some() {
            stats.transport.lock().expect("stats lock").rung = Some(0);
        }
        let peer = Peer {
            id,
            slot,
            rtc,
            offer: offer_text,
            video: Sender { mid: video_mid, pt: video_pt, splice: Splice::default() },
            video_track: if vp8 { Track::Vp8 } else { Track::Video },
            audio,
            relayed,
            next_timeout: Instant::now(),
            connected: false,
            video_open: false,
            last_heard: Instant::now(),
            video_loss: None,
            ladder,
            now,
            dirty: false,
            stats,
            egress: [(0, 0, 0, 0); 2],
        };
        Ok((peer, answer))
    }

    /// Our ICE username fragment: the first half of the USERNAME in the client's checks.
    pub fn local_ufrag(&mut self) -> String {
        self.rtc.direct_api().local_ice_credentials().ufrag
    }

    /// Which encoding of the stream this viewer gets.
    pub fn video_track(&self) -> Track {
        self.video_track
    }

    /// The video fraction lost reported since the last call (connected peers only).
    pub fn take_video_loss(&mut self) -> Option<f32> {
        self.video_loss.take().filter(|_| self.connected)
    }

    /// Whether this peer takes `input` (a stranger's datagram: a panic in str0m counts as no).
    pub fn accepts(&self, input: &Input) -> bool {
        catch_unwind(AssertUnwindSafe(|| self.rtc.accepts(input))).unwrap_or_else(|p| {
            tracing::warn!(session = %self.id, panic = %panic_text(p), "str0m panicked checking a datagram; dropped");
            false
        })
    }

    /// Adds a trickled candidate (the client's text: a panic in str0m drops it).
    pub fn add_remote_candidate(&mut self, c: Candidate) {
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| self.rtc.add_remote_candidate(c))) {
            tracing::warn!(session = %self.id, panic = %panic_text(p), "str0m panicked adding a candidate; ignored");
        }
    }

    /// An ICE restart (the client's new credentials from a PATCH, and ours): the first offer again with the
    /// new credentials, so str0m drops every old pair and check and the client's new address is nominated
    /// once it checks in; media goes on to the old one meanwhile. Then our credentials replace str0m's. A
    /// failure or a panic in str0m leaves the old ICE state and is logged.
    pub fn restart_ice(&mut self, local: str0m::IceCreds, remote: str0m::IceCreds) {
        let offer = restart_offer(&self.offer, &remote.ufrag, &remote.pass);
        let restarted = catch_unwind(AssertUnwindSafe(|| {
            let offer = SdpOffer::from_sdp_string(&offer).map_err(|e| e.to_string())?;
            self.rtc.sdp_api().accept_offer(offer).map_err(|e| e.to_string())?;
            self.rtc.direct_api().set_local_ice_credentials(local);
            Ok::<_, String>(())
        }));
        match restarted {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(session = %self.id, error = %e, "str0m refused the ICE restart"),
            Err(p) => tracing::warn!(session = %self.id, panic = %panic_text(p), "str0m panicked restarting ICE"),
        }
    }

    /// Feeds `input`; then drains what str0m has to send and say. `send` puts a datagram on the wire.
    pub fn handle(&mut self, input: Input, send: &mut dyn FnMut(&str0m::net::Transmit), events: &mut Vec<PeerEvent>) {
        match &input {
            Input::Receive(at, _) => {
                self.last_heard = *at;
                self.now = *at;
            }
            Input::Timeout(at) => self.now = *at,
        }
        let r = catch_unwind(AssertUnwindSafe(|| self.rtc.handle_input(input)));
        match r {
            Ok(Ok(())) => self.drain(send, events),
            Ok(Err(e)) => events.push(PeerEvent::Ended(ended_by(&e))),
            Err(p) => events.push(PeerEvent::Ended(PeerEnd::Error(format!("str0m panicked: {}", panic_text(p))))),
        }
    }

    /// Timer work: str0m's own, and the disconnected grace period.
    pub fn on_timeout(
        &mut self,
        now: Instant,
        send: &mut dyn FnMut(&str0m::net::Transmit),
        events: &mut Vec<PeerEvent>,
    ) {
        if self.connected && now.duration_since(self.last_heard) >= SILENCE_TIMEOUT {
            events.push(PeerEvent::Ended(PeerEnd::IceFailed));
            return;
        }
        self.handle(Input::Timeout(now), send, events);
    }

    /// When the peer next needs [`Peer::on_timeout`] (the mux also calls it at once when `dirty`).
    pub fn wake_at(&self) -> Instant {
        if self.connected { self.next_timeout.min(self.last_heard + SILENCE_TIMEOUT) } else { self.next_timeout }
    }

    fn drain(&mut self, send: &mut dyn FnMut(&str0m::net::Transmit), events: &mut Vec<PeerEvent>) {
        loop {
            let out = catch_unwind(AssertUnwindSafe(|| self.rtc.poll_output()));
            match out {
                Ok(Ok(Output::Timeout(t))) => {
                    self.next_timeout = t;
                    break;
                }
                Ok(Ok(Output::Transmit(t))) => send(&t),
                Ok(Ok(Output::Event(e))) => self.on_event(e, events),
                Ok(Err(e)) => {
                    events.push(PeerEvent::Ended(ended_by(&e)));
                    break;
                }
                Err(p) => {
                    events.push(PeerEvent::Ended(PeerEnd::Error(format!("str0m panicked: {}", panic_text(p)))));
                    break;
                }
            }
        }
        if !self.rtc.is_alive() {
            events.push(PeerEvent::Ended(PeerEnd::Closed));
        }
    }

    fn on_event(&mut self, e: Event, events: &mut Vec<PeerEvent>) {
        match e {
            Event::Connected => {
                self.connected = true;
                events.push(PeerEvent::Connected);
                events.push(PeerEvent::KeyframeWanted);
            }
            Event::IceConnectionStateChange(state) => {
                tracing::debug!(session = %self.id, ?state, "ICE state");
            }
            Event::KeyframeRequest(_) => {
                self.on_link(Link::KeyframeRequest, events);
                events.push(PeerEvent::KeyframeWanted);
            }
            Event::EgressBitrateEstimate(kind) => self.on_link(Link::Estimate(&kind), events),
            Event::MediaEgressStats(s) => {
                let video = s.mid == self.video.mid;
                if video && s.loss.is_some() {
                    self.video_loss = s.loss;
                }
                if let Some(loss) = s.loss.filter(|_| video) {
                    self.on_link(Link::Loss(loss), events);
                }
                let slot = usize::from(!video);
                if video && self.ladder.is_some() {
                    let bits = s.bytes.saturating_sub(self.egress[0].0) * 8;
                    self.on_link(Link::Sent((bits / LADDER_STATS_EVERY.as_millis() as u64) as u32), events);
                }
                let mut t = self.stats.transport.lock().expect("stats lock");
                self.egress[slot] = (s.bytes, s.packets, s.nacks, s.plis + s.firs);
                t.bytes_sent = self.egress.iter().map(|e| e.0).sum();
                t.packets_sent = self.egress.iter().map(|e| e.1).sum();
                t.nacks = self.egress.iter().map(|e| e.2).sum();
                t.plis = self.egress.iter().map(|e| e.3).sum();
                if video {
                    if let Some(rtt) = s.rtt {
                        t.rtt_ms = Some(rtt.as_secs_f64() * 1000.0);
                    }
                    if let Some(loss) = s.loss {
                        t.fraction_lost = Some(loss.into());
                    }
                    if let Some(remote) = &s.remote {
                        // In RTP timestamp units: video's clock is 90 kHz.
                        t.jitter_ms = Some(f64::from(remote.jitter) / 90.0);
                    }
                }
            }
            Event::PeerStats(s) => {
                if let Some(loss) = s.egress_loss_fraction {
                    self.on_link(Link::Loss(loss), events);
                }
                let mut t = self.stats.transport.lock().expect("stats lock");
                if let Some(pair) = s.selected_candidate_pair {
                    t.remote_address = Some(pair.remote.addr);
                    // Every other candidate of ours is a host one (advertised addresses too: a port forward
                    // or a 1:1 NAT maps them straight to a local socket).
                    let relay = Some(pair.local.addr) == self.relayed;
                    t.candidate_type = Some(if relay { "relay" } else { "host" }.into());
                    t.protocol = Some(pair.protocol.to_string());
                }
                if let Some(rtt) = s.rtt {
                    t.rtt_ms = Some(rtt.as_secs_f64() * 1000.0);
                }
            }
            _ => {}
        }
    }

    /// Queues one packet of the stream (`ext_seq`: the stream's extended sequence number; `au_start`: it
    /// begins an access unit) and marks the peer `dirty`; the mux then sends it with a burst of others.
    /// Video waits for the first keyframe after connecting; audio waits for video.
    pub fn forward(&mut self, p: &MediaPacket, ext_seq: u64, au_start: bool, events: &mut Vec<PeerEvent>) {
        let video = p.track == self.video_track;
        if !video && p.track != Track::Audio {
            // The stream's other encoding.
            return;
        }
        if video && self.ladder.is_some() && self.connected {
            self.forward_rung(p, ext_seq, au_start, events);
            return;
        }
        self.write(p, ext_seq, au_start, video, events);
    }

    /// Writes one packet (video waits for a keyframe first) with the viewer's numbering.
    fn write(&mut self, p: &MediaPacket, ext_seq: u64, au_start: bool, video: bool, events: &mut Vec<PeerEvent>) {
        if !self.connected {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if !self.video_open {
            if video && p.keyframe && au_start {
                self.video_open = true;
                self.stats.first_forwarded_was_keyframe.store(true, Ordering::Relaxed);
            } else {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        let sender = match (video, &mut self.audio) {
            (true, _) => &mut self.video,
            (false, Some(s)) => s,
            (false, None) => return,
        };
        let (seq, timestamp) = sender.splice.map(ext_seq, p.timestamp);
        let seq = SeqNo::from(seq);
        let mut ext = ExtensionValues::default();
        if video {
            // Show each frame as soon as it is decoded (only sent when the offer negotiated the extension).
            ext.play_delay_min = Some(MediaTime::ZERO);
            ext.play_delay_max = Some(MediaTime::ZERO);
        }
        let write = RtpWrite::new(sender.pt, seq, timestamp, p.at, p.payload.clone())
            .marker(p.marker)
            .ext_vals(ext)
            .nackable(video);
        let mid = sender.mid;
        let written = catch_unwind(AssertUnwindSafe(|| match self.rtc.direct_api().stream_tx_by_mid(mid, None) {
            Some(tx) => {
                tx.write_rtp(write);
                true
            }
            None => false,
        }));
        match written {
            Ok(true) => {
                self.stats.forwarded.fetch_add(1, Ordering::Relaxed);
                self.dirty = true;
            }
            Ok(false) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(p) => events.push(PeerEvent::Ended(PeerEnd::Error(format!("str0m panicked: {}", panic_text(p))))),
        }
    }

    /// Ends the connection the polite way: RTCP BYE and DTLS close_notify go out now (through `send`), so the
    /// client learns at once that the session is over instead of waiting for its consent checks to fail.
    pub fn close(&mut self, send: &mut dyn FnMut(&str0m::net::Transmit)) {
        let rtc = &mut self.rtc;
        let _ = catch_unwind(AssertUnwindSafe(|| {
            if rtc.close().is_ok() {
                // A bounded drain: what close queued, then stop.
                for _ in 0..64 {
                    match rtc.poll_output() {
                        Ok(Output::Transmit(t)) => send(&t),
                        Ok(Output::Event(_)) => {}
                        Ok(Output::Timeout(_)) | Err(_) => break,
                    }
                }
            }
            rtc.disconnect();
        }));
    }
}

#[cfg(test)]
#[path = "peer_tests.rs"]
mod tests;

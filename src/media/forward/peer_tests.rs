//! A forwarding viewer ([`Peer`]) against a str0m client (a WebRTC stack that is not the peer's own
//! negotiation) over a simulated network, the way str0m's own tests run two `Rtc`s: both are driven on
//! a made-up clock, so a link with a second and a half of delay takes no time and nothing sleeps. ICE,
//! DTLS and SRTP are real; the "network" only moves, delays and drops datagrams, reading the clear RTP
//! header of SRTP packets to pick which.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};

use super::{Locals, Peer, PeerEvent, crypto};
use crate::ids::SessionId;
use crate::media::forward::mux::{MediaPacket, Track};
use crate::media::forward::{PeerCounters, StreamSlot};

const SERVER: &str = "198.18.0.1:8189";
const CLIENT: &str = "198.18.0.2:50000";
/// The clock's step.
const TICK: Duration = Duration::from_millis(2);
/// A frame every 33 ms, of this many packets.
const FRAME: Duration = Duration::from_millis(33);
const PACKETS_PER_FRAME: u64 = 3;

/// A datagram on its way: when it arrives, and its bytes.
type InFlight = VecDeque<(Instant, Vec<u8>)>;

struct Sim {
    now: Instant,
    peer: Peer,
    client: Rtc,
    /// Server to client, client to server.
    down: InFlight,
    up: InFlight,
    /// Added to every datagram the client sends from now on.
    uplink_delay: Duration,
    /// The video payload type on the wire, and its RTX payload type.
    video_pt: u8,
    rtx_pt: Option<u8>,
    /// The video sequence number (on the wire) to drop once, and the moment it was dropped.
    drop_seq: Option<u16>,
    dropped_at: Option<Instant>,
    /// RTX packets the client was sent, and the video sequence numbers the client received.
    resends: usize,
    received: Vec<u64>,
    connected: bool,
    next_frame: Instant,
    ext_seq: u64,
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("a test address")
}

impl Sim {
    /// A str0m client offers (H.264 and Opus, receive only) and the peer answers, keeping its sent video
    /// for `history`.
    fn new(history: Duration) -> Sim {
        gstreamer::init().expect("GStreamer (SDP parsing)");
        let now = Instant::now();
        let mut client = RtcConfig::new()
            .set_crypto_provider(crypto())
            .set_rtp_mode(true)
            .clear_codecs()
            .enable_h264(true)
            .enable_opus(true, false)
            .build(now);
        client.add_local_candidate(Candidate::host(addr(CLIENT), "udp").expect("client candidate"));
        let mut api = client.sdp_api();
        api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        let (offer, pending) = api.apply().expect("an offer");
        let offer = offer.to_sdp_string();
        let (_, plan) = crate::media::offer::negotiate::plan_offer(&offer, true).expect("the offer plans");
        let locals = Locals {
            candidates: vec![Candidate::host(addr(SERVER), "udp").expect("server candidate")],
            announced: &[("udp".to_owned(), addr(SERVER))],
            full_ice: false,
            relayed: None,
            nack_history: history,
            ladder: None,
        };
        let stats = Arc::new(PeerCounters::default());
        let (peer, answer) =
            Peer::answer(SessionId::random(), StreamSlot(0), &plan.aside.trim(&offer), &plan, locals, stats)
                .expect("answer");
        let answer = str0m::change::SdpAnswer::from_sdp_string(&answer).expect("answer parses");
        client.sdp_api().accept_answer(pending, answer).expect("the client takes the answer");
        let video_pt = *peer.video.pt;
        let rtx_pt = peer.rtc.codec_config().params().iter().find(|p| *p.pt() == video_pt).and_then(|p| p.resend());
        Sim {
            now,
            peer,
            client,
            down: VecDeque::new(),
            up: VecDeque::new(),
            uplink_delay: Duration::ZERO,
            video_pt,
            rtx_pt: rtx_pt.map(|p| *p),
            drop_seq: None,
            dropped_at: None,
            resends: 0,
            received: Vec::new(),
            connected: false,
            next_frame: now,
            ext_seq: 0,
        }
    }

    /// One tick: deliver what is due both ways, run both timers, and send a frame when one is due.
    fn step(&mut self) {
        self.now += TICK;
        let now = self.now;
        let mut events = Vec::new();
        while self.up.front().is_some_and(|(at, _)| *at <= now) {
            let (_, bytes) = self.up.pop_front().expect("a datagram is due");
            let recv = Receive::new(Protocol::Udp, addr(CLIENT), addr(SERVER), &bytes).expect("a datagram");
            let down = &mut self.down;
            self.peer.handle(
                Input::Receive(now, recv),
                &mut |t| down.push_back((now, t.contents.to_vec())),
                &mut events,
            );
        }
        let down = &mut self.down;
        self.peer.on_timeout(now, &mut |t| down.push_back((now, t.contents.to_vec())), &mut events);
        self.connected |= events.contains(&PeerEvent::Connected);
        assert!(!events.iter().any(|e| matches!(e, PeerEvent::Ended(_))), "the peer ended: {events:?}");
        while self.down.front().is_some_and(|(at, _)| *at <= now) {
            let (_, bytes) = self.down.pop_front().expect("a datagram is due");
            if self.lost_on_the_way(&bytes) {
                continue;
            }
            let recv = Receive::new(Protocol::Udp, addr(SERVER), addr(CLIENT), &bytes).expect("a datagram");
            self.client.handle_input(Input::Receive(now, recv)).expect("the client takes the datagram");
        }
        self.client.handle_input(Input::Timeout(now)).expect("client timeout");
        self.drain_client();
        if self.connected && now >= self.next_frame {
            self.send_frame();
        }
    }

    fn drain_client(&mut self) {
        loop {
            match self.client.poll_output().expect("client output") {
                Output::Timeout(_) => break,
                Output::Transmit(t) => self.up.push_back((self.now + self.uplink_delay, t.contents.to_vec())),
                Output::Event(Event::RtpPacket(p)) if *p.header.payload_type == self.video_pt => {
                    self.received.push(*p.seq_no);
                }
                Output::Event(_) => {}
            }
        }
    }

    /// Whether the network drops this server-to-client datagram (the one video packet asked for); counts
    /// the RTX packets it lets through.
    fn lost_on_the_way(&mut self, b: &[u8]) -> bool {
        // RTP (RFC 3550 version 2; not RTCP's 200-206 types): the header is in the clear under SRTP.
        if b.len() < 12 || b[0] >> 6 != 2 || (72..=78).contains(&(b[1] & 0x7f)) {
            return false;
        }
        let (pt, seq) = (b[1] & 0x7f, u16::from_be_bytes([b[2], b[3]]));
        if Some(pt) == self.rtx_pt {
            self.resends += 1;
        }
        if pt == self.video_pt && Some(seq) == self.drop_seq && self.dropped_at.is_none() {
            self.dropped_at = Some(self.now);
            return true;
        }
        false
    }

    /// A frame of [`PACKETS_PER_FRAME`] packets to the peer, as the stream's tee hands them over (the
    /// first a keyframe).
    fn send_frame(&mut self) {
        let keyframe = self.ext_seq == 0;
        let mut events = Vec::new();
        for i in 0..PACKETS_PER_FRAME {
            let p = MediaPacket {
                slot: StreamSlot(0),
                track: Track::Video,
                rung: 0,
                seq: self.ext_seq as u16,
                timestamp: (self.ext_seq / PACKETS_PER_FRAME * 3000) as u32,
                marker: i + 1 == PACKETS_PER_FRAME,
                keyframe,
                payload: Arc::from(vec![if keyframe { 0x65 } else { 0x41 }; 1000]),
                at: self.now,
            };
            self.peer.forward(&p, self.ext_seq, i == 0, &mut events);
            self.ext_seq += 1;
        }
        self.peer.dirty = false;
        self.next_frame += FRAME;
    }

    fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        while self.now < until {
            self.step();
        }
    }
}

/// Connects, then loses one video packet on the way to the client while the client's reports (its NACKs)
/// take `uplink_delay` to reach the server. Returns whether the client got the packet (once), and the RTX
/// packets that reached it (the only packet lost is that one, so every resend is of it).
fn lose_one_with_slow_nacks(history: Duration, uplink_delay: Duration) -> (bool, usize) {
    let mut sim = Sim::new(history);
    for _ in 0..5000 {
        if sim.connected && sim.received.len() > 30 {
            break;
        }
        sim.step();
    }
    assert!(sim.received.len() > 30, "connected and playing");
    sim.uplink_delay = uplink_delay;
    let lost = (*sim.received.last().expect("packets arrived") + 10) as u16;
    sim.drop_seq = Some(lost);
    sim.run_for(uplink_delay * 2 + Duration::from_secs(2));
    assert!(sim.dropped_at.is_some(), "the packet was dropped");
    let came_back = sim.received.iter().filter(|s| **s as u16 == lost).count() == 1;
    (came_back, sim.resends)
}

#[test]
fn a_lost_video_packet_comes_back_while_its_nack_is_within_the_history() {
    let (came_back, resends) = lose_one_with_slow_nacks(Duration::from_millis(1000), Duration::from_millis(300));
    assert!(came_back && resends >= 1, "a NACK 300 ms late is answered from a 1 s history ({resends} resends)");
}

#[test]
fn a_nack_older_than_the_history_gets_no_resend_and_a_longer_history_answers_it() {
    let late = Duration::from_millis(1500);
    let (came_back, resends) = lose_one_with_slow_nacks(Duration::from_millis(1000), late);
    assert!(!came_back && resends == 0, "a NACK 1.5 s late finds nothing in a 1 s history ({resends} resends)");
    // (Its resends reach the client 3 s after the loss, later than str0m's client takes them: the server's
    // answer is what is checked.)
    let (_, resends) = lose_one_with_slow_nacks(Duration::from_millis(3000), late);
    assert!(resends >= 1, "a 3 s history answers it");
}

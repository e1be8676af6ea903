//! One simulated viewer: a str0m `Rtc` and its own non-blocking UDP socket.
//!
//! [`Prepared::new`] builds the receive-only offer (runs on an HTTP thread), [`Prepared::accept`] applies
//! the server's answer, and the resulting [`Viewer`] is then driven by a worker thread (see `driver`).

use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket as StdUdpSocket};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use mio::net::UdpSocket;

use crate::light::{Counted, Light};

pub use crate::addr::route_local_ip;
use crate::addr::{panic_text, sdp_attr, sdp_candidate_ips};
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::config::{CryptoProvider, DtlsCert};
use str0m::format::CodecExtra;
use str0m::media::{Direction, MediaData, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::stats::MediaIngressStats;
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};

/// Progress of one viewer as the main thread sees it (to know when all have settled).
pub mod progress {
    pub const WAITING: u8 = 0;
    pub const POSTING: u8 = 1;
    pub const CONNECTING: u8 = 2;
    /// Got its first video frame.
    pub const MEDIA: u8 = 3;
    /// Failed for good (refused, ICE/DTLS timeout, error).
    pub const FAILED: u8 = 4;
    /// Connected but no video frame within the connect timeout; still running.
    pub const NO_MEDIA_YET: u8 = 5;

    pub fn settled(state: u8) -> bool {
        matches!(state, MEDIA | FAILED | NO_MEDIA_YET)
    }
}

pub type Progress = Arc<Vec<AtomicU8>>;

/// Where a viewer failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// No 201 (refused, or no HTTP answer).
    Post,
    /// str0m rejected the SDP answer.
    Answer,
    /// ICE never connected.
    Ice,
    /// ICE connected but DTLS/SRTP never came up.
    Dtls,
    /// Connected, but no video frame arrived.
    Media,
}

/// Things counted per viewer; copied at the window's start and end.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counters {
    pub video_frames: u64,
    pub video_keyframes: u64,
    pub video_bytes: u64,
    /// Video frames str0m flagged as not contiguous with the previous one (loss).
    pub video_gaps: u64,
    pub audio_frames: u64,
    pub audio_bytes: u64,
    pub udp_packets: u64,
    pub udp_bytes: u64,
}

impl Counters {
    pub fn minus(&self, earlier: &Counters) -> Counters {
        Counters {
            video_frames: self.video_frames.saturating_sub(earlier.video_frames),
            video_keyframes: self.video_keyframes.saturating_sub(earlier.video_keyframes),
            video_bytes: self.video_bytes.saturating_sub(earlier.video_bytes),
            video_gaps: self.video_gaps.saturating_sub(earlier.video_gaps),
            audio_frames: self.audio_frames.saturating_sub(earlier.audio_frames),
            audio_bytes: self.audio_bytes.saturating_sub(earlier.audio_bytes),
            udp_packets: self.udp_packets.saturating_sub(earlier.udp_packets),
            udp_bytes: self.udp_bytes.saturating_sub(earlier.udp_bytes),
        }
    }
}

/// Milestones, as time since the POST started.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timings {
    pub ice: Option<Duration>,
    pub connected: Option<Duration>,
    pub first_video: Option<Duration>,
    pub first_keyframe: Option<Duration>,
    pub first_audio: Option<Duration>,
}

/// RTP-level receive statistics from str0m's periodic `MediaIngressStats`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ingress {
    pub packets: u64,
    pub bytes: u64,
    pub nacks: u64,
    pub plis: u64,
    pub firs: u64,
    pub loss: Option<f32>,
}

impl Ingress {
    fn from_stats(s: &MediaIngressStats) -> Self {
        Ingress { packets: s.packets, bytes: s.bytes, nacks: s.nacks, plis: s.plis, firs: s.firs, loss: s.loss }
    }
}

/// What a worker reports about a viewer at the end.
#[derive(Debug, Clone)]
pub struct Report {
    pub idx: usize,
    pub counters: Counters,
    /// Counts inside the measurement window (`None`: the viewer was gone before the window).
    pub window: Option<Counters>,
    pub timings: Timings,
    pub failure: Option<(Stage, String)>,
    pub ice_disconnects: u32,
    pub stream_pauses: u32,
    pub send_errors: u64,
    pub video_rtp: Ingress,
    pub audio_rtp: Ingress,
    /// The longest time between two video frames inside the window.
    pub max_video_gap: Option<Duration>,
    /// Counted from RTP headers ([`crate::light`]) rather than through str0m.
    pub light: bool,
}

/// Settings shared by all viewers.
pub struct ViewerSettings {
    pub crypto: Arc<CryptoProvider>,
    pub dtls_cert: DtlsCert,
    pub connect_timeout: Duration,
    /// Where the server is (the URL host), to pick a local address for the offer's candidate.
    pub server_ip: Option<IpAddr>,
    /// Every K-th viewer is full ([`crate::light`]).
    pub full_every: u32,
}

/// A viewer with its offer made, waiting for the answer.
pub struct Prepared {
    rtc: Rtc,
    socket: StdUdpSocket,
    port: u16,
    video_mid: Mid,
    audio_mid: Mid,
    pending: SdpPendingOffer,
    pub offer: String,
    /// Local addresses already announced as host candidates.
    local_ips: Vec<IpAddr>,
}

impl Prepared {
    /// Binds the socket and builds the recvonly offer (H.264 + Opus, BUNDLE).
    pub fn new(settings: &ViewerSettings) -> Result<Prepared, String> {
        let socket = StdUdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).map_err(|e| format!("binding UDP: {e}"))?;
        socket.set_nonblocking(true).map_err(|e| format!("non-blocking UDP: {e}"))?;
        let port = socket.local_addr().map_err(|e| format!("UDP local address: {e}"))?.port();
        let config = RtcConfig::new()
            .set_crypto_provider(settings.crypto.clone())
            .set_dtls_cert(settings.dtls_cert.clone())
            .clear_codecs()
            // str0m's H.264 set includes constrained baseline 42e01f with packetization-mode=1.
            .enable_h264(true)
            .enable_opus(true, false)
            .set_stats_interval(Some(Duration::from_secs(1)));
        let mut rtc = catch_unwind(AssertUnwindSafe(|| config.build(Instant::now())))
            .map_err(|p| format!("str0m Rtc: {}", panic_text(p)))?;
        let mut local_ips = Vec::new();
        if let Some(ip) = settings.server_ip.and_then(route_local_ip) {
            let cand = Candidate::host(SocketAddr::new(ip, port), "udp").map_err(|e| format!("candidate: {e}"))?;
            rtc.add_local_candidate(cand);
            local_ips.push(ip);
        }
        let mut api = rtc.sdp_api();
        let video_mid = api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        let audio_mid = api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        let (offer, pending) = api.apply().ok_or("str0m made no offer")?;
        let offer = offer.to_sdp_string();
        Ok(Prepared { rtc, socket, port, video_mid, audio_mid, pending, offer, local_ips })
    }

    /// Applies the answer and adds a host candidate for each local address that routes to one of the
    /// server's candidates. Returns the viewer and the trickle fragment for the new candidates (if any).
    pub fn accept(
        mut self,
        idx: usize,
        answer_text: &str,
        t0: Instant,
        settings: &ViewerSettings,
        progress: Progress,
    ) -> Result<(Viewer, Option<String>), String> {
        let answer = SdpAnswer::from_sdp_string(answer_text).map_err(|e| format!("unparsable answer: {e}"))?;
        self.rtc.sdp_api().accept_answer(self.pending, answer).map_err(|e| format!("answer rejected: {e}"))?;
        let mut new_cands = Vec::new();
        for remote in sdp_candidate_ips(answer_text) {
            let Some(local) = route_local_ip(remote) else { continue };
            if self.local_ips.contains(&local) {
                continue;
            }
            let Ok(cand) = Candidate::host(SocketAddr::new(local, self.port), "udp") else { continue };
            if let Some(c) = self.rtc.add_local_candidate(cand) {
                new_cands.push(c.to_sdp_string());
                self.local_ips.push(local);
            }
        }
        if self.local_ips.is_empty() {
            return Err("no local address routes to the server's candidates".into());
        }
        let frag = (!new_cands.is_empty()).then(|| {
            let mut f = String::new();
            if let (Some(u), Some(p)) = (sdp_attr(&self.offer, "ice-ufrag"), sdp_attr(&self.offer, "ice-pwd")) {
                f.push_str(&format!("a=ice-ufrag:{u}\r\na=ice-pwd:{p}\r\n"));
            }
            f.push_str(&format!("m=audio 9 RTP/AVP 0\r\na=mid:{}\r\n", self.video_mid));
            for c in &new_cands {
                f.push_str(&format!("a={c}\r\n"));
            }
            f
        });
        let socket = UdpSocket::from_std(self.socket);
        let now = Instant::now();
        let viewer = Viewer {
            idx,
            rtc: self.rtc,
            socket,
            port: self.port,
            routes: Vec::new(),
            video_mid: self.video_mid,
            audio_mid: self.audio_mid,
            t0,
            deadline: t0 + settings.connect_timeout,
            next_timeout: now,
            counters: Counters::default(),
            win_start: None,
            win_end: None,
            last_video_at: None,
            win_max_gap: None,
            max_gap_at_end: None,
            timings: Timings::default(),
            ice_connected: false,
            dtls_connected: false,
            failure: None,
            alive: true,
            ice_disconnects: 0,
            stream_pauses: 0,
            send_errors: 0,
            video_rtp: Ingress::default(),
            audio_rtp: Ingress::default(),
            progress,
            light_wanted: !idx.is_multiple_of(settings.full_every as usize),
            light: None,
            pts: (None, None),
        };
        viewer.set_progress(progress::CONNECTING);
        Ok((viewer, frag))
    }
}

/// A running viewer.
pub struct Viewer {
    pub idx: usize,
    rtc: Rtc,
    pub socket: UdpSocket,
    port: u16,
    /// remote IP -> our local IP that it reaches (the `destination` str0m wants for a received datagram).
    routes: Vec<(IpAddr, IpAddr)>,
    video_mid: Mid,
    audio_mid: Mid,
    t0: Instant,
    /// Until when it may take to get its first video frame.
    deadline: Instant,
    next_timeout: Instant,
    counters: Counters,
    win_start: Option<Counters>,
    win_end: Option<Counters>,
    /// When the last video frame arrived, and the longest wait between two inside the window (`None`
    /// outside it).
    last_video_at: Option<Instant>,
    win_max_gap: Option<Duration>,
    max_gap_at_end: Option<Duration>,
    timings: Timings,
    ice_connected: bool,
    dtls_connected: bool,
    failure: Option<(Stage, String)>,
    /// Still driven (false once abandoned after a failure).
    alive: bool,
    ice_disconnects: u32,
    stream_pauses: u32,
    send_errors: u64,
    video_rtp: Ingress,
    audio_rtp: Ingress,
    progress: Progress,
    /// Counts media from RTP headers once it can ([`crate::light`]).
    light_wanted: bool,
    light: Option<Light>,
    /// The video and audio payload types str0m delivered frames with.
    pts: (Option<u8>, Option<u8>),
}

impl Viewer {
    pub fn alive(&self) -> bool {
        self.alive
    }

    /// When this viewer next needs [`Viewer::on_timeout`].
    pub fn wake_at(&self) -> Instant {
        if self.timings.first_video.is_none() && self.failure.is_none() {
            self.next_timeout.min(self.deadline)
        } else {
            self.next_timeout
        }
    }

    fn set_progress(&self, state: u8) {
        if let Some(p) = self.progress.get(self.idx) {
            p.store(state, Ordering::Relaxed);
        }
    }

    fn fail(&mut self, stage: Stage, error: String, abandon: bool) {
        if self.failure.is_none() {
            self.failure = Some((stage, error));
        }
        self.set_progress(if abandon { progress::FAILED } else { progress::NO_MEDIA_YET });
        if abandon {
            self.alive = false;
        }
    }

    /// The stage a failure at this point belongs to.
    fn current_stage(&self) -> Stage {
        if !self.ice_connected {
            Stage::Ice
        } else if !self.dtls_connected {
            Stage::Dtls
        } else {
            Stage::Media
        }
    }

    fn local_ip_for(&mut self, remote: IpAddr) -> IpAddr {
        if let Some((_, l)) = self.routes.iter().find(|(r, _)| *r == remote) {
            return *l;
        }
        let local = route_local_ip(remote).unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        self.routes.push((remote, local));
        local
    }

    pub fn snapshot_window_start(&mut self) {
        self.win_start = Some(self.counters);
        self.win_max_gap = Some(Duration::ZERO);
    }

    pub fn snapshot_window_end(&mut self) {
        self.win_end = Some(self.counters);
        // A stall still going on at the end counts too.
        self.note_gap(Instant::now());
        self.max_gap_at_end = self.win_max_gap.take();
    }

    /// Keeps the longest wait since the previous video frame, while the window runs.
    fn note_gap(&mut self, now: Instant) {
        if let (Some(max), Some(last)) = (self.win_max_gap.as_mut(), self.last_video_at) {
            *max = (*max).max(now.duration_since(last));
        }
    }

    /// Reads every queued datagram (the socket is edge-triggered) and feeds it to str0m.
    pub fn on_readable(&mut self, buf: &mut [u8]) {
        while self.alive {
            let (n, source) = match self.socket.recv_from(buf) {
                Ok(v) => v,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // e.g. an ICMP error queued on the socket: nothing to read this time.
                Err(_) => return,
            };
            let now = Instant::now();
            self.counters.udp_packets += 1;
            self.counters.udp_bytes += n as u64;
            if self.count_light(&buf[..n], now) {
                continue;
            }
            let destination = SocketAddr::new(self.local_ip_for(source.ip()), self.port);
            let Ok(receive) = Receive::new(Protocol::Udp, source, destination, &buf[..n]) else {
                continue; // not STUN/DTLS/RTP: ignore
            };
            let result = catch_unwind(AssertUnwindSafe(|| self.rtc.handle_input(Input::Receive(now, receive))));
            match result {
                Ok(Ok(())) => self.drain(),
                Ok(Err(e)) => self.fail(self.current_stage(), format!("str0m: {e}"), true),
                Err(p) => self.fail(self.current_stage(), format!("str0m panicked: {}", panic_text(p)), true),
            }
        }
    }

    /// A light viewer's media packet, counted from its header; false for what goes to str0m.
    fn count_light(&mut self, d: &[u8], now: Instant) -> bool {
        let Some(light) = &mut self.light else { return false };
        let counted = light.count(d);
        if counted == Counted::NotRtp {
            return false;
        }
        if counted.add_to(&mut self.counters) {
            self.note_gap(now);
            self.last_video_at = Some(now);
        }
        true
    }

    /// Whether this viewer counts light from now on: it wants to, and str0m has shown it the payload types.
    fn maybe_go_light(&mut self) {
        if let (true, None, (Some(video), Some(audio))) = (self.light_wanted, &self.light, self.pts) {
            self.light = Some(Light::new(video, Some(audio)));
        }
    }

    pub fn is_light(&self) -> bool {
        self.light.is_some()
    }

    /// Timer work: str0m's own timeout, and the connect deadline.
    pub fn on_timeout(&mut self, now: Instant) {
        if !self.alive {
            return;
        }
        if now >= self.deadline && self.timings.first_video.is_none() && self.failure.is_none() {
            let secs = (self.deadline - self.t0).as_secs_f64();
            match self.current_stage() {
                Stage::Media => {
                    // Keep it running: frames may still come, but it has settled as far as the window goes.
                    self.fail(Stage::Media, format!("no video frame within {secs:.1} s of the POST"), false);
                }
                stage => {
                    let what = if stage == Stage::Ice { "ICE" } else { "DTLS" };
                    self.fail(stage, format!("{what} not connected within {secs:.1} s of the POST"), true);
                    return;
                }
            }
        }
        if now >= self.next_timeout {
            let result = catch_unwind(AssertUnwindSafe(|| self.rtc.handle_input(Input::Timeout(now))));
            match result {
                Ok(Ok(())) => self.drain(),
                Ok(Err(e)) => self.fail(self.current_stage(), format!("str0m: {e}"), true),
                Err(p) => self.fail(self.current_stage(), format!("str0m panicked: {}", panic_text(p)), true),
            }
            // Never spin on a timeout that does not move forward.
            if self.next_timeout <= now {
                self.next_timeout = now + Duration::from_millis(1);
            }
        }
    }

    /// Polls str0m until it wants a timeout: sends what it transmits, counts what it delivers.
    pub fn drain(&mut self) {
        while self.alive {
            let out = match catch_unwind(AssertUnwindSafe(|| self.rtc.poll_output())) {
                Ok(Ok(o)) => o,
                Ok(Err(e)) => return self.fail(self.current_stage(), format!("str0m: {e}"), true),
                Err(p) => return self.fail(self.current_stage(), format!("str0m panicked: {}", panic_text(p)), true),
            };
            match out {
                Output::Timeout(t) => {
                    self.next_timeout = t;
                    return;
                }
                Output::Transmit(t) => {
                    if self.socket.send_to(&t.contents, t.destination).is_err() {
                        self.send_errors += 1;
                    }
                }
                Output::Event(ev) => self.on_event(ev),
            }
        }
    }

    fn on_event(&mut self, ev: Event) {
        let since = self.t0.elapsed();
        match ev {
            Event::IceConnectionStateChange(state) => match state {
                IceConnectionState::Connected | IceConnectionState::Completed => {
                    self.ice_connected = true;
                    self.timings.ice.get_or_insert(since);
                }
                IceConnectionState::Disconnected if self.ice_connected => self.ice_disconnects += 1,
                _ => {}
            },
            Event::Connected => {
                self.dtls_connected = true;
                self.ice_connected = true;
                self.timings.ice.get_or_insert(since);
                self.timings.connected.get_or_insert(since);
            }
            Event::MediaData(data) => self.on_media(data, since),
            Event::MediaIngressStats(s) => {
                if s.mid == self.video_mid {
                    self.video_rtp = Ingress::from_stats(&s);
                } else if s.mid == self.audio_mid {
                    self.audio_rtp = Ingress::from_stats(&s);
                }
            }
            Event::StreamPaused(p) if p.paused => self.stream_pauses += 1,
            _ => {}
        }
    }

    fn on_media(&mut self, data: MediaData, since: Duration) {
        let len = data.data.len() as u64;
        if data.mid == self.video_mid {
            self.pts.0 = Some(*data.pt);
        } else if data.mid == self.audio_mid {
            self.pts.1 = Some(*data.pt);
        }
        self.maybe_go_light();
        if data.mid == self.video_mid {
            let now = Instant::now();
            self.note_gap(now);
            self.last_video_at = Some(now);
            let c = &mut self.counters;
            c.video_frames += 1;
            c.video_bytes += len;
            if !data.contiguous {
                c.video_gaps += 1;
            }
            if let CodecExtra::H264(x) = data.codec_extra
                && x.is_keyframe
            {
                c.video_keyframes += 1;
                self.timings.first_keyframe.get_or_insert(since);
            }
            if self.timings.first_video.is_none() {
                self.timings.first_video = Some(since);
                if self.failure.is_none() {
                    self.set_progress(progress::MEDIA);
                }
            }
        } else if data.mid == self.audio_mid {
            self.counters.audio_frames += 1;
            self.counters.audio_bytes += len;
            self.timings.first_audio.get_or_insert(since);
        }
    }

    /// Starts str0m's shutdown (RTCP BYE, DTLS close_notify), sends what that queues, then stops.
    pub fn close(&mut self) {
        if self.alive {
            if matches!(catch_unwind(AssertUnwindSafe(|| self.rtc.close())), Ok(Ok(()))) {
                self.drain();
            }
            self.rtc.disconnect();
            self.alive = false;
        }
    }

    pub fn report(&self, window_started: bool) -> Report {
        let mut failure = self.failure.clone();
        // A late first frame clears the "no media in time" mark.
        if let Some((Stage::Media, _)) = failure
            && self.counters.video_frames > 0
        {
            failure = None;
        }
        let window = match (window_started, self.win_start, self.win_end) {
            (false, _, _) => None,
            (true, start, end) => {
                let start = start.unwrap_or_default();
                Some(end.unwrap_or(self.counters).minus(&start))
            }
        };
        Report {
            idx: self.idx,
            counters: self.counters,
            window,
            timings: self.timings,
            failure,
            ice_disconnects: self.ice_disconnects,
            stream_pauses: self.stream_pauses,
            send_errors: self.send_errors,
            video_rtp: self.video_rtp,
            audio_rtp: self.audio_rtp,
            max_video_gap: self.max_gap_at_end.or(self.win_max_gap),
            light: self.is_light(),
        }
    }
}

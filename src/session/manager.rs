//! The manager task: owns the streams and the one session table (viewers and publishers); one message at a
//! time, and never blocking: media work runs in spawned tasks that report back ([`Done`]).

mod admission;
mod control;
mod ice;
mod negotiate;
mod patch;
mod reach;
mod table;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use super::lifecycle::{Media, Stream, record_settings};
use super::{Command, Patched, Readiness, Role, SessionError, SessionInfo, Sessions, StreamInfo, StreamReadiness};
use crate::auth::{Auth, Grant, now_s};
use crate::config::{StreamConfig, VideoSource};
use crate::ids::{SessionId, StreamName};
use crate::media::{MediaError, MediaEvent, Peer, PeerEnd, StreamPipeline, StreamState};
use crate::telemetry::{self, EndReason};
use ice::SessionIce;
use table::Table;

struct StreamEntry {
    pipeline: StreamPipeline,
    cfg: StreamConfig,
    /// Keeps a source that comes and goes (portal, feed) attached ([`super::lifecycle`]).
    supervisor: Option<tokio::task::JoinHandle<()>>,
}

/// A WHEP viewer or a WHIP publisher: one table, one life cycle (negotiated, connected or timed out,
/// ended once with its final stats).
struct Session {
    role: Role,
    stream: StreamName,
    peer: Peer,
    /// ETag, ICE restarts (PATCH).
    ice: SessionIce,
    /// The token that created the session: only it (or the admin) may PATCH or DELETE it, and the session
    /// ends when the token expires or is revoked.
    owner: Grant,
    /// Unix seconds at creation.
    since: u64,
    /// The address its POST came from.
    client: Option<SocketAddr>,
    /// When its POST arrived (setup time is measured from here to connected).
    posted: Instant,
    /// When its connection (ICE + DTLS) completed.
    connected: Option<Instant>,
    /// `session{session, role, stream, client}`: every log line about the session carries these (never a
    /// token).
    span: tracing::Span,
}

/// Reads an ended session's last transport stats into telemetry's totals (so a session shorter than one
/// scrape is counted too), then tears its peer down. May block: call it off the manager task.
fn finish(s: &Session) {
    super::session_final(s.role, s.stream.as_str(), &s.peer.stats());
    s.peer.remove();
}

impl Session {
    /// May a request with `grant` act on this session? Its own token, or the admin.
    fn allows(&self, grant: &Grant) -> bool {
        match (grant, &self.owner) {
            (Grant::Admin | Grant::Anyone, _) => true,
            (Grant::Token(g), Grant::Token(o)) => g.token_id == o.token_id,
            (Grant::Token(_), _) => false,
        }
    }

    /// Why its token no longer lets it run (expired, revoked, or its signing key retired), if so.
    fn unauthorized(&self, auth: &Auth, now: u64) -> Option<&'static str> {
        let Grant::Token(v) = &self.owner else { return None };
        if v.expires_at <= now {
            Some("token expired")
        } else if auth.is_revoked(&v.token_id) {
            Some("token revoked")
        } else if !auth.knows_key(&v.kid) {
            Some("token's signing key retired")
        } else {
            None
        }
    }
}

/// Results of work the manager spawned, reported back to it.
enum Done {
    Negotiated(Box<negotiate::Negotiated>),
    ConnectDeadline {
        id: SessionId,
    },
    /// An ICE restart's media work finished ([`patch`]).
    Restarted {
        id: SessionId,
        result: Result<crate::sdpfrag::SdpFrag, MediaError>,
        reply: oneshot::Sender<Result<Patched, SessionError>>,
    },
}

struct Manager {
    streams: BTreeMap<StreamName, StreamEntry>,
    /// Every session from its POST on, negotiating or live ([`table`]).
    sessions: Table,
    done_tx: mpsc::UnboundedSender<Done>,
    /// A negotiated session that has not connected by then is ended (its client never completed ICE/DTLS).
    connect_timeout: std::time::Duration,
    auth: Auth,
    /// The forwarding transport (its relay's state in readiness; stopped at shutdown) and the tasks that
    /// keep what it announces current.
    forward: Option<crate::media::Forward>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// `server.state_dir`: recordings default to `recordings/<stream>` under it.
    state_dir: PathBuf,
}

/// A stream's running encodings: H.264 with every viewer that is not on VP8, and VP8 while it runs.
fn encodings(viewers: usize, vp8: Option<crate::media::encode::vp8::Vp8Status>) -> Vec<super::EncodingReadiness> {
    let vp8 = vp8.unwrap_or_default();
    let h264 = super::EncodingReadiness {
        codec: "h264",
        viewers: viewers.saturating_sub(vp8.viewers),
        fps: None,
        keyframes_requested: None,
        keyframes_sent: None,
    };
    let mut out = vec![h264];
    if vp8.running {
        out.push(super::EncodingReadiness {
            codec: "vp8",
            viewers: vp8.viewers,
            fps: vp8.fps.map(|f| (f * 10.0).round() / 10.0),
            keyframes_requested: Some(vp8.keyframes_requested),
            keyframes_sent: Some(vp8.keyframes_sent),
        });
    }
    out
}

/// How often sessions are checked against their token's expiry and the revocation list.
const TOKEN_SWEEP: std::time::Duration = std::time::Duration::from_secs(1);

/// A connected publisher that sends no video this long is ended (encoders send frames, and keyframes,
/// continually): gone without DELETE, its ICE failure would take libnice's consent timeout (~40 s) while
/// viewers watch a frozen picture.
const PUBLISHER_SILENCE: std::time::Duration = std::time::Duration::from_secs(5);

/// Starts the manager over already-started stream pipelines. `media_events` carries what the pipelines report.
pub fn spawn(media: Media, connect_timeout: std::time::Duration, auth: Auth, state_dir: PathBuf) -> Sessions {
    let Media { forward, streams, events: mut media_events, tasks } = media;
    let (tx, mut rx) = mpsc::channel::<Command>(256);
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let mut mgr = Manager {
        streams: streams
            .into_iter()
            .map(|Stream { cfg, pipeline, supervisor }| (cfg.stream_name(), StreamEntry { pipeline, cfg, supervisor }))
            .collect(),
        sessions: Table::default(),
        done_tx,
        connect_timeout,
        auth,
        forward,
        tasks,
        state_dir,
    };
    tokio::spawn(async move {
        let mut sweep = tokio::time::interval(TOKEN_SWEEP);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = sweep.tick() => mgr.sweep(),
                cmd = rx.recv() => match cmd {
                    Some(Command::Shutdown { reply }) => {
                        mgr.shutdown().await;
                        let _ = reply.send(());
                        break;
                    }
                    Some(cmd) => mgr.on_command(cmd),
                    None => {
                        mgr.shutdown().await;
                        break;
                    }
                },
                Some(done) = done_rx.recv() => mgr.on_done(done),
                Some(ev) = media_events.recv() => mgr.on_media(ev),
            }
        }
    });
    Sessions { tx }
}

impl Manager {
    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Post(post) => self.post(post),
            Command::Patch { id, role, grant, if_match, frag, reply } => {
                self.patch(id, role, grant, if_match, frag, reply);
            }
            Command::Delete { id, role, grant, reply } => {
                let _ = reply.send(self.delete(id, role, &grant));
            }
            Command::Streams { reply } => {
                let _ = reply.send(self.stream_infos());
            }
            Command::Readiness { reply } => {
                let _ = reply.send(self.readiness());
            }
            Command::Mux { reply } => {
                let _ = reply.send(self.mux_readiness());
            }
            Command::Viewer { id, reply } => {
                let _ = reply.send(self.sessions.get(&id).and_then(|s| s.peer.viewer().cloned()));
            }
            Command::Sessions { reply } => {
                let _ = reply.send(self.session_infos());
            }
            Command::Health { stream, reply } => {
                let h = self.stream_named(&stream).map(|(_, e)| e.pipeline.health());
                let _ = reply.send(h);
            }
            Command::Healths { reply } => {
                let _ = reply.send(self.streams.iter().map(|(k, e)| (k.clone(), e.pipeline.health())).collect());
            }
            Command::StopStream { stream, reply } => self.stop_stream(stream, reply),
            Command::StartStream { stream, reply } => self.start_stream(stream, reply),
            Command::Push { stream, url, token, reply } => self.push(stream, url, token, reply),
            Command::Unpush { stream, id, reply } => self.unpush(stream, id, reply),
            Command::Record { stream, on, reply } => self.record(&stream, on, reply),
            Command::RecordingDir { stream, reply } => {
                let dir = self
                    .stream_named(&stream)
                    .map(|(_, e)| (record_settings(&e.cfg, &self.state_dir).dir, e.pipeline.recording_file()));
                let _ = reply.send(dir);
            }
            Command::Shutdown { .. } => unreachable!("handled by the loop"),
        }
    }

    /// DELETE on a session resource: only its own token, or the admin (ending someone else's: a kick).
    fn delete(&mut self, id: SessionId, role: Option<Role>, grant: &Grant) -> Result<(), SessionError> {
        let of_role = |s: &&Session| role.is_none_or(|r| s.role == r);
        let s = self.sessions.get(&id).filter(of_role).ok_or(SessionError::UnknownSession)?;
        if !s.allows(grant) {
            return Err(SessionError::NotYourSession);
        }
        let kicked = *grant == Grant::Admin && s.owner != Grant::Admin;
        let reason = if kicked { EndReason::Kicked } else { EndReason::Closed };
        self.end(id, reason, "deleted");
        Ok(())
    }

    /// Ends session `id` (if it is in the table): counted now, its final stats read and its peer torn
    /// down in the background ([`finish`]).
    fn end(&mut self, id: SessionId, reason: EndReason, why: &str) {
        if let Some(s) = self.take_ended(id, reason, why) {
            tokio::task::spawn_blocking(move || finish(&s));
        }
    }

    /// Takes session `id` out of the table, logged and counted by `reason`; its [`finish`] is the
    /// caller's (stream stop and shutdown finish theirs before stopping pipelines).
    fn take_ended(&mut self, id: SessionId, reason: EndReason, why: &str) -> Option<Session> {
        let s = self.sessions.remove(&id)?;
        tracing::info!(parent: &s.span, why, reason = reason.as_str(), "session ended");
        telemetry::session_ended(s.role, s.stream.as_str(), reason);
        Some(s)
    }

    /// The live sessions for the admin API, oldest first, with their peers (whose stats are read off this
    /// task).
    fn session_infos(&self) -> Vec<(SessionInfo, Peer)> {
        let mut all: Vec<(SessionInfo, Peer)> = self
            .sessions
            .iter()
            .map(|(id, s)| {
                let (token_id, label) = match &s.owner {
                    Grant::Token(t) => (Some(t.token_id.clone()), t.label.clone()),
                    _ => (None, None),
                };
                let info = SessionInfo {
                    id: id.to_string(),
                    role: s.role,
                    stream: s.stream.to_string(),
                    token_id,
                    label,
                    since: s.since,
                    connected: s.connected.is_some(),
                    ice_restarts: s.ice.generation,
                    client: s.client.map(|a| a.to_string()),
                    ..SessionInfo::default()
                };
                (info, s.peer.clone())
            })
            .collect();
        all.sort_by_key(|(s, _)| s.since);
        all
    }

    fn on_done(&mut self, done: Done) {
        match done {
            Done::Negotiated(n) => self.on_negotiated(*n),
            Done::Restarted { id, result, reply } => self.on_restarted(id, result, reply),
            Done::ConnectDeadline { id } => {
                if self.sessions.get(&id).is_some_and(|s| s.connected.is_none()) {
                    self.end(id, EndReason::Timeout, "it never connected");
                }
            }
        }
    }

    /// Every [`TOKEN_SWEEP`]: ends the sessions whose token expired or was revoked, and connected
    /// publishers that went silent ([`PUBLISHER_SILENCE`]).
    fn sweep(&mut self) {
        let now = now_s();
        let mut ending: Vec<(SessionId, EndReason, &'static str)> = Vec::new();
        for (id, s) in self.sessions.iter() {
            if let Some(why) = s.unauthorized(&self.auth, now) {
                ending.push((*id, EndReason::Revoked, why));
            } else if self.silent_publisher(s) {
                ending.push((*id, EndReason::Timeout, "it sent nothing for 5 s"));
            }
        }
        for (id, reason, why) in ending {
            self.end(id, reason, why);
        }
    }

    /// A publisher connected for [`PUBLISHER_SILENCE`] whose stream's source has been idle that long.
    fn silent_publisher(&self, s: &Session) -> bool {
        let long_connected = s.connected.is_some_and(|at| at.elapsed() >= PUBLISHER_SILENCE);
        s.role == Role::Publisher
            && long_connected
            && self
                .streams
                .get(&s.stream)
                .and_then(|e| e.pipeline.source_idle())
                .is_some_and(|idle| idle >= PUBLISHER_SILENCE)
    }

    fn on_media(&mut self, ev: MediaEvent) {
        match ev {
            MediaEvent::PeerConnected { stream, id } => {
                if let Some(s) = self.sessions.get_mut(&id)
                    && s.connected.is_none()
                {
                    s.connected = Some(Instant::now());
                    let setup = s.posted.elapsed();
                    if s.role == Role::Viewer {
                        telemetry::session_setup(stream.as_str(), setup);
                    }
                    tracing::info!(parent: &s.span, setup_ms = setup.as_millis() as u64, "connected");
                }
            }
            MediaEvent::PeerEnded { stream: _, id, why } => {
                let (reason, why) = match why {
                    PeerEnd::Closed => (EndReason::Closed, "it closed the connection".to_owned()),
                    PeerEnd::IceFailed => (EndReason::IceFailed, "its connection failed or it vanished (ICE)".into()),
                    PeerEnd::DtlsFailed => (EndReason::DtlsFailed, "DTLS failed".to_owned()),
                    PeerEnd::Error(e) => (EndReason::Error, e),
                };
                self.end(id, reason, &why);
            }
            MediaEvent::StreamFailed { stream, reason } => {
                tracing::error!(%stream, %reason, "stream failed");
            }
        }
    }

    fn stream_infos(&self) -> Vec<StreamInfo> {
        self.streams
            .iter()
            .map(|(name, e)| {
                let h = e.pipeline.health();
                StreamInfo {
                    name: name.clone(),
                    state: state_label(&h.state).into(),
                    producing: h.producing(),
                    viewers: self.sessions.viewers_of(name),
                    width: e.cfg.width,
                    height: e.cfg.height,
                    fps: e.cfg.fps,
                    audio: e.pipeline.has_audio(),
                    encoder: h.encoder,
                    source: e.cfg.source.describe(),
                }
            })
            .collect()
    }

    fn readiness(&self) -> Readiness {
        let streams: Vec<_> = self
            .streams
            .iter()
            .map(|(name, e)| {
                let h = e.pipeline.health();
                let reason = match (&h.state, h.producing()) {
                    // Restarting a failed part: no picture for a moment, whatever the last frame's age.
                    _ if h.restart_problem.is_some() => h.restart_problem.clone(),
                    (_, true) => None,
                    (StreamState::Playing | StreamState::Starting, _) if h.source_problem.is_some() => {
                        h.source_problem.clone().map(|p| format!("no picture: {p}"))
                    }
                    (StreamState::Failed(why), _) => Some(format!("pipeline failed: {why}")),
                    (StreamState::Starting, _) => Some("pipeline is starting".into()),
                    (StreamState::Stopped, _) => Some("pipeline is stopped".into()),
                    (StreamState::Playing, _) => Some("no frame encoded in the last 2 s".into()),
                };
                StreamReadiness {
                    name: name.clone(),
                    ready: reason.is_none(),
                    reason,
                    frames: h.frames,
                    last_frame_age_ms: h.last_frame_age.map(|a| a.as_millis() as u64),
                    fps_in: h.raw_fps.map(|f| (f * 10.0).round() / 10.0),
                    fps_out: h.encoded_fps.map(|f| (f * 10.0).round() / 10.0),
                    frames_dropped: h.frames_dropped,
                    encoded_bytes: h.encoded_bytes,
                    keyframes_requested: h.keyframes_requested,
                    keyframes_sent: h.keyframes_sent,
                    bitrate_kbps: h.bitrate_kbps,
                    send_lag_ms: h.send_lag_ms.map(|l| (l * 100.0).round() / 100.0),
                    restarts: h.restarts,
                    encoder: h.encoder,
                    encoders_rejected: h.encoders_rejected,
                    encodings: encodings(self.sessions.viewers_of(name), h.vp8),
                    pushes: h.pushes.into_iter().map(Into::into).collect(),
                    recording: h.recording.map(Into::into),
                    ladder: h.ladder.into_iter().map(Into::into).collect(),
                }
            })
            .collect();
        // A WHIP stream waits for its publisher: the server is ready to take one, so it does not count.
        let counts =
            |s: &&StreamReadiness| self.streams.get(&s.name).is_some_and(|e| e.cfg.source != VideoSource::Whip);
        let relay = self.forward.as_ref().and_then(crate::media::Forward::relay_status).map(Into::into);
        let mux = self.mux_readiness();
        let ready = streams.iter().filter(counts).all(|s| s.ready) && mux.as_ref().is_none_or(|m| m.alive);
        Readiness { ready, streams, relay, mux }
    }

    /// The forwarding transport's media threads: alive, their send counters and viewers (`None` on webrtcbin).
    fn mux_readiness(&self) -> Option<super::MuxReadiness> {
        self.forward.as_ref().map(|f| {
            let (alive, age) = f.mux_liveness();
            let (datagrams_sent, send_calls) = f.udp_sends();
            let viewers_per_thread = f.viewers_per_thread();
            let last_loop_ms = age.as_millis() as u64;
            let ice_tcp =
                f.ice_tcp().map(|(open, closed)| super::IceTcpReadiness { open, closed: closed.into_iter().collect() });
            super::MuxReadiness { alive, last_loop_ms, datagrams_sent, send_calls, viewers_per_thread, ice_tcp }
        })
    }

    /// Ends every session, stops the source supervisors, the pipelines and the forwarding transport.
    async fn shutdown(&mut self) {
        self.tasks.iter().chain(self.streams.values().filter_map(|e| e.supervisor.as_ref())).for_each(|t| t.abort());
        let ids = self.sessions.ids();
        let sessions: Vec<Session> =
            ids.into_iter().filter_map(|id| self.take_ended(id, EndReason::Stopped, "shutting down")).collect();
        let pipelines: Vec<_> = self.streams.values().map(|e| e.pipeline.clone()).collect();
        let n = sessions.len();
        let forward = self.forward.take();
        let _ = tokio::task::spawn_blocking(move || {
            sessions.iter().for_each(finish);
            for p in pipelines {
                p.stop();
            }
            if let Some(fwd) = forward {
                fwd.stop();
            }
        })
        .await;
        tracing::info!(sessions = n, "all sessions closed, pipelines stopped");
    }
}

fn state_label(s: &StreamState) -> &'static str {
    match s {
        StreamState::Starting => "starting",
        StreamState::Playing => "playing",
        StreamState::Failed(_) => "failed",
        StreamState::Stopped => "stopped",
    }
}

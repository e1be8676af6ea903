//! The manager task: owns the streams and the session table; one message at a time.

mod admission;
mod control;
mod ice;
mod patch;
mod publishers;
mod reach;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use super::{Command, Created, Patched, Readiness, SessionError, SessionInfo, Sessions, StreamInfo, StreamReadiness};
use crate::auth::{Auth, Grant, now_s};
use crate::config::{StreamConfig, VideoSource};
use crate::ids::{SessionId, StreamName};
use crate::media::{MediaError, MediaEvent, StreamPipeline, StreamState, ViewerEnd, ViewerHandle};
use crate::telemetry::{self, EndReason};
use admission::overloaded;
use ice::SessionIce;

struct StreamEntry {
    pipeline: StreamPipeline,
    cfg: StreamConfig,
    /// Negotiations under way (they count against the viewer cap).
    pending: usize,
}

struct Session {
    connected: bool,
    stream: StreamName,
    viewer: ViewerHandle,
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
    /// `session{session, stream, client}`: every log line about the session carries these (never a token).
    span: tracing::Span,
}

/// Starts the stream's configured WHIP pushes (`[[streams.push]]`).
pub fn start_pushes(pipeline: &StreamPipeline, cfg: &StreamConfig) -> anyhow::Result<()> {
    use anyhow::Context;
    for p in &cfg.push {
        let token = p.load_token().with_context(|| format!("reading streams `{}` push token_file", cfg.name))?;
        pipeline.start_push(crate::media::egress::PushTarget { url: p.url.clone(), token })?;
    }
    Ok(())
}

/// Counts a session's end (`glasscast_sessions_ended_total`).
fn ended(s: &Session, reason: EndReason) {
    telemetry::session_ended(s.stream.as_str(), reason);
}

/// Reads an ended viewer's last transport stats into telemetry's totals (so a session shorter than one
/// scrape is counted too), then tears it down. May block: call it off the manager task.
fn finish(stream: &StreamName, viewer: &ViewerHandle) {
    telemetry::session_final(stream.as_str(), &viewer.stats());
    viewer.remove();
}

/// Ends `s`, already out of the session table: counted now, finished ([`finish`]) in the background.
fn end(s: Session, reason: EndReason) {
    ended(&s, reason);
    tokio::task::spawn_blocking(move || finish(&s.stream, &s.viewer));
}

impl Session {
    /// May a request with `grant` act on this session?
    fn allows(&self, grant: &Grant) -> bool {
        grant_allows(&self.owner, grant)
    }
}

/// May a request with `grant` act on a session `owner` created? Its own token, or the admin.
fn grant_allows(owner: &Grant, grant: &Grant) -> bool {
    match (grant, owner) {
        (Grant::Admin | Grant::Anyone, _) => true,
        (Grant::Viewer(g), Grant::Viewer(o)) => g.token_id == o.token_id,
        (Grant::Viewer(_), _) => false,
    }
}

/// Results of work the manager spawned, reported back to it.
enum Done {
    Negotiated {
        stream: StreamName,
        id: SessionId,
        grant: Grant,
        client: Option<SocketAddr>,
        posted: Instant,
        result: Result<(ViewerHandle, String), MediaError>,
        reply: oneshot::Sender<Result<Created, SessionError>>,
    },
    ConnectDeadline {
        id: SessionId,
    },
    Published(Box<publishers::Published>),
    /// An ICE restart's media work finished ([`patch`]).
    Restarted {
        id: SessionId,
        result: Result<crate::sdpfrag::SdpFrag, MediaError>,
        reply: oneshot::Sender<Result<Patched, SessionError>>,
    },
}

struct Manager {
    streams: BTreeMap<StreamName, StreamEntry>,
    sessions: HashMap<SessionId, Session>,
    /// WHIP publishers, and the streams with one being negotiated.
    publishers: HashMap<SessionId, publishers::PublisherSession>,
    publishing: HashSet<StreamName>,
    /// Viewer sessions being negotiated per token id: they count against the token's `max_sessions` from
    /// the POST on, so concurrent POSTs cannot exceed it.
    negotiating: HashMap<String, usize>,
    done_tx: mpsc::UnboundedSender<Done>,
    /// A negotiated session that has not connected by then is ended (its client never completed ICE/DTLS).
    connect_timeout: std::time::Duration,
    auth: Auth,
    /// The forwarding transport, for its relay's state in readiness.
    forward: Option<crate::media::Forward>,
}

/// A stream's running encodings: H.264 with every viewer that is not on VP8, and VP8 while it runs.
fn encodings(viewers: usize, vp8: Option<crate::media::vp8::Vp8Status>) -> Vec<super::EncodingReadiness> {
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

/// Starts the manager over already-started stream pipelines. `media_events` carries what the pipelines report.
pub fn spawn(
    streams: Vec<(StreamConfig, StreamPipeline)>,
    mut media_events: mpsc::UnboundedReceiver<MediaEvent>,
    connect_timeout: std::time::Duration,
    auth: Auth,
    forward: Option<crate::media::Forward>,
) -> Sessions {
    let (tx, mut rx) = mpsc::channel::<Command>(256);
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let mut mgr = Manager {
        streams: streams
            .into_iter()
            .map(|(cfg, pipeline)| (cfg.stream_name(), StreamEntry { pipeline, cfg, pending: 0 }))
            .collect(),
        sessions: HashMap::new(),
        publishers: HashMap::new(),
        publishing: HashSet::new(),
        negotiating: HashMap::new(),
        done_tx,
        connect_timeout,
        auth,
        forward,
    };
    tokio::spawn(async move {
        let mut sweep = tokio::time::interval(TOKEN_SWEEP);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = sweep.tick() => mgr.end_unauthorized(),
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

fn remove_in_background(viewer: ViewerHandle) {
    tokio::task::spawn_blocking(move || viewer.remove());
}

impl Manager {
    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Offer { stream, offer, grant, client, reply } => self.offer(stream, offer, grant, client, reply),
            Command::Publish { stream, offer, grant, client, reply } => {
                self.publish(stream, offer, grant, client, reply)
            }
            Command::Patch { id, grant, if_match, frag, reply } => self.patch(id, grant, if_match, frag, reply),
            Command::Delete { id, grant, reply } => {
                let result = match self.sessions.get(&id) {
                    Some(s) if !s.allows(&grant) => Err(SessionError::NotYourSession),
                    Some(_) => {
                        let s = self.sessions.remove(&id).expect("looked up above");
                        // The admin API ending someone else's session is a kick.
                        let kicked = grant == Grant::Admin && s.owner != Grant::Admin;
                        tracing::info!(parent: &s.span, kicked, "session deleted");
                        end(s, if kicked { EndReason::Kicked } else { EndReason::Closed });
                        Ok(())
                    }
                    None => match self.publisher_allows(id, &grant) {
                        Some(true) => {
                            self.end_publisher(id, EndReason::Closed, "deleted");
                            Ok(())
                        }
                        Some(false) => Err(SessionError::NotYourSession),
                        None => Err(SessionError::UnknownSession),
                    },
                };
                let _ = reply.send(result);
            }
            Command::Streams { reply } => {
                let _ = reply.send(self.stream_infos());
            }
            Command::Readiness { reply } => {
                let _ = reply.send(self.readiness());
            }
            Command::Viewer { id, reply } => {
                let _ = reply.send(self.sessions.get(&id).map(|s| s.viewer.clone()));
            }
            Command::Sessions { reply } => {
                let mut all: Vec<(SessionInfo, ViewerHandle)> = self
                    .sessions
                    .iter()
                    .map(|(id, s)| {
                        let (token_id, label) = match &s.owner {
                            Grant::Viewer(v) => (Some(v.token_id.clone()), v.label.clone()),
                            _ => (None, None),
                        };
                        let info = SessionInfo {
                            id: id.to_string(),
                            stream: s.stream.to_string(),
                            token_id,
                            label,
                            since: s.since,
                            connected: s.connected,
                            ice_restarts: s.ice.generation,
                            client: s.client.map(|a| a.to_string()),
                            ..SessionInfo::default()
                        };
                        (info, s.viewer.clone())
                    })
                    .collect();
                all.sort_by_key(|(s, _)| s.since);
                let _ = reply.send(all);
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
            Command::Shutdown { .. } => unreachable!("handled by the loop"),
        }
    }

    /// Sessions of token `token_id`: live ones and those being negotiated.
    fn sessions_of(&self, token_id: &str) -> usize {
        let live = self.sessions.values().filter(|s| s.owner.token_id() == Some(token_id)).count();
        live + self.negotiating.get(token_id).copied().unwrap_or(0)
    }

    fn viewers_of(&self, stream: &StreamName) -> usize {
        self.sessions.values().filter(|s| &s.stream == stream).count()
    }

    fn offer(
        &mut self,
        stream: String,
        offer: String,
        grant: Grant,
        client: Option<SocketAddr>,
        reply: oneshot::Sender<Result<Created, SessionError>>,
    ) {
        let Some(name) = self.streams.keys().find(|k| k.as_str() == stream).cloned() else {
            let _ = reply.send(Err(SessionError::UnknownStream(stream)));
            return;
        };
        if let Grant::Viewer(v) = &grant
            && let Some(max) = v.max_sessions
            && self.sessions_of(&v.token_id) >= max as usize
        {
            let _ = reply.send(Err(SessionError::TokenSessionLimit(max)));
            return;
        }
        let viewers = self.viewers_of(&name);
        let entry = self.streams.get_mut(&name).expect("looked up above");
        let health = entry.pipeline.health();
        if !health.producing() {
            let _ = reply.send(Err(SessionError::NotProducing(name)));
            return;
        }
        if viewers + entry.pending >= entry.cfg.max_viewers as usize {
            let _ = reply.send(Err(SessionError::ViewerCap { stream: name, max: entry.cfg.max_viewers }));
            return;
        }
        if let Some(reason) = overloaded(viewers + entry.pending, &health, entry.cfg.fps) {
            tracing::warn!(stream = %name, viewers, %reason, "overloaded: refusing a new viewer");
            let _ = reply.send(Err(SessionError::Overloaded { stream: name, reason }));
            return;
        }
        entry.pending += 1;
        if let Some(token) = grant.token_id() {
            *self.negotiating.entry(token.to_owned()).or_insert(0) += 1;
        }
        let pipeline = entry.pipeline.clone();
        let id = SessionId::random();
        let done = self.done_tx.clone();
        let posted = Instant::now();
        tokio::spawn(async move {
            let result = pipeline.add_viewer(id, &offer).await;
            if let Ok((_, answer)) = &result {
                reach::hint(client, answer);
            }
            let _ = done.send(Done::Negotiated { stream: name, id, grant, client, posted, result, reply });
        });
    }

    fn on_done(&mut self, done: Done) {
        match done {
            Done::Negotiated { stream, id, grant, client, posted, result, reply } => {
                if let Some(entry) = self.streams.get_mut(&stream) {
                    entry.pending = entry.pending.saturating_sub(1);
                }
                if let Some(token) = grant.token_id()
                    && let Some(n) = self.negotiating.get_mut(token)
                {
                    *n -= 1;
                    if *n == 0 {
                        self.negotiating.remove(token);
                    }
                }
                match result {
                    Ok((viewer, answer)) => {
                        let ice = SessionIce::new(id);
                        let created = Created { id, answer, etag: ice.etag.clone() };
                        if reply.send(Ok(created)).is_err() {
                            // The client went away before its answer: nobody will ever use this session.
                            remove_in_background(viewer);
                            return;
                        }
                        let span = tracing::info_span!("session", session = %id, %stream, client = ?client);
                        tracing::info!(parent: &span, "session created");
                        telemetry::session_started(stream.as_str());
                        let done = self.done_tx.clone();
                        let timeout = self.connect_timeout;
                        tokio::spawn(async move {
                            tokio::time::sleep(timeout).await;
                            let _ = done.send(Done::ConnectDeadline { id });
                        });
                        let session = Session {
                            connected: false,
                            stream,
                            viewer,
                            ice,
                            owner: grant,
                            since: now_s(),
                            client,
                            posted,
                            span,
                        };
                        self.sessions.insert(id, session);
                    }
                    Err(e) => {
                        tracing::info!(%stream, error = %e, "offer refused");
                        let _ = reply.send(Err(e.into()));
                    }
                }
            }
            Done::Published(p) => self.on_published(*p),
            Done::Restarted { id, result, reply } => self.on_restarted(id, result, reply),
            Done::ConnectDeadline { id } => {
                if self.sessions.get(&id).is_some_and(|s| !s.connected) {
                    let s = self.sessions.remove(&id).expect("checked above");
                    tracing::info!(parent: &s.span, "session never connected; ended");
                    end(s, EndReason::Timeout);
                }
            }
        }
    }

    /// Ends the sessions whose token expired or was revoked, and stalled publishers (every [`TOKEN_SWEEP`]).
    fn end_unauthorized(&mut self) {
        let now = now_s();
        let unauthorized: Vec<(SessionId, &'static str)> = self
            .sessions
            .iter()
            .filter_map(|(id, s)| match &s.owner {
                Grant::Viewer(v) if v.expires_at <= now => Some((*id, "token expired")),
                Grant::Viewer(v) if self.auth.is_revoked(&v.token_id) => Some((*id, "token revoked")),
                Grant::Viewer(v) if !self.auth.knows_key(&v.kid) => Some((*id, "token's signing key retired")),
                _ => None,
            })
            .collect();
        for id in self.unauthorized_publishers(now) {
            self.end_publisher(id, EndReason::Revoked, "its token expired or was revoked");
        }
        for (id, why) in self.stalled_publishers() {
            self.end_publisher(id, EndReason::Timeout, why);
        }
        for (id, why) in unauthorized {
            if let Some(s) = self.sessions.remove(&id) {
                tracing::info!(parent: &s.span, token_id = s.owner.token_id(), why, "session ended");
                end(s, EndReason::Revoked);
            }
        }
    }

    fn on_media(&mut self, ev: MediaEvent) {
        match ev {
            MediaEvent::ViewerConnected { stream, id } => {
                if let Some(s) = self.sessions.get_mut(&id)
                    && !s.connected
                {
                    s.connected = true;
                    telemetry::session_setup(stream.as_str(), s.posted.elapsed());
                    tracing::info!(parent: &s.span, setup_ms = s.posted.elapsed().as_millis() as u64, "viewer connected");
                }
            }
            MediaEvent::ViewerEnded { stream: _, id, why } => {
                if let Some(s) = self.sessions.remove(&id) {
                    tracing::info!(parent: &s.span, ?why, "session ended");
                    let reason = match why {
                        ViewerEnd::Closed => EndReason::Closed,
                        ViewerEnd::IceFailed => EndReason::IceFailed,
                        ViewerEnd::DtlsFailed => EndReason::DtlsFailed,
                        ViewerEnd::Error(_) => EndReason::Error,
                    };
                    end(s, reason);
                }
            }
            MediaEvent::PublisherConnected { id, .. } => self.on_publisher_connected(id),
            MediaEvent::PublisherEnded { id, why, .. } => self.on_publisher_ended(id, why),
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
                    viewers: self.viewers_of(name),
                    width: e.cfg.width,
                    height: e.cfg.height,
                    fps: e.cfg.fps,
                    audio: e.pipeline.has_audio(),
                    encoder: h.encoder,
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
                    keyframes_requested: h.keyframes_requested,
                    keyframes_sent: h.keyframes_sent,
                    bitrate_kbps: h.bitrate_kbps,
                    send_lag_ms: h.send_lag_ms.map(|l| (l * 100.0).round() / 100.0),
                    restarts: h.restarts,
                    encoder: h.encoder,
                    encoders_rejected: h.encoders_rejected,
                    encodings: encodings(self.viewers_of(name), h.vp8),
                    pushes: h.pushes,
                }
            })
            .collect();
        // A WHIP stream waits for its publisher: the server is ready to take one, so it does not count.
        let counts =
            |s: &&StreamReadiness| self.streams.get(&s.name).is_some_and(|e| e.cfg.source != VideoSource::Whip);
        let relay = self.forward.as_ref().and_then(crate::media::Forward::relay_status);
        let mux = self.forward.as_ref().map(|f| {
            let (alive, age) = f.mux_liveness();
            super::MuxReadiness { alive, last_loop_ms: age.as_millis() as u64 }
        });
        let ready = streams.iter().filter(counts).all(|s| s.ready) && mux.as_ref().is_none_or(|m| m.alive);
        Readiness { ready, streams, relay, mux }
    }

    async fn shutdown(&mut self) {
        let viewers: Vec<_> = self
            .sessions
            .drain()
            .inspect(|(_, s)| ended(s, EndReason::Stopped))
            .map(|(_, s)| (s.stream, s.viewer))
            .collect();
        for (_, p) in self.publishers.drain() {
            telemetry::publisher_ended(p.stream.as_str(), EndReason::Stopped);
            p.publisher.release();
        }
        let pipelines: Vec<_> = self.streams.values().map(|e| e.pipeline.clone()).collect();
        let n = viewers.len();
        let _ = tokio::task::spawn_blocking(move || {
            for (stream, v) in viewers {
                finish(&stream, &v);
            }
            for p in pipelines {
                p.stop();
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

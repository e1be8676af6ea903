//! A new session, viewer (WHEP POST) or publisher (WHIP POST): admission on the manager task, the media's
//! negotiation in a spawned task, and one result ([`Negotiated`]) back to the manager, which answers the
//! client and puts the session in its table with a connect deadline.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Instant;

use tokio::sync::oneshot;

use super::admission::overloaded;
use super::ice::SessionIce;
use super::table::Claim;
use super::{Done, Manager, Session, reach};
use crate::auth::{Grant, now_s};
use crate::config::VideoSource;
use crate::ids::{SessionId, StreamName};
use crate::media::{MediaError, Peer};
use crate::session::{Created, Post, Role, SessionError};
use crate::telemetry;

type Reply = oneshot::Sender<Result<Created, SessionError>>;

/// A session being negotiated: who asked, from where and when, and where its answer goes.
pub(super) struct Asked {
    role: Role,
    stream: StreamName,
    id: SessionId,
    grant: Grant,
    client: Option<SocketAddr>,
    posted: Instant,
    reply: Reply,
}

/// A negotiation that finished: its peer and our answer, or why not.
pub(super) struct Negotiated {
    asked: Asked,
    result: Result<(Peer, String), MediaError>,
}

impl Manager {
    /// A WHEP or WHIP POST: admitted (or refused, with why) here, negotiated off this task.
    pub(super) fn post(&mut self, Post { role, stream, offer, grant, client, reply }: Post) {
        let admission = match role {
            Role::Viewer => self.admit_viewer(&stream, &grant),
            Role::Publisher => self.admit_publisher(&stream),
        };
        let name = match admission {
            Ok(name) => name,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        let asked = Asked::new(role, name, grant, client, reply);
        match role {
            Role::Viewer => self.offer(asked, offer),
            Role::Publisher => self.publish(asked, offer),
        }
    }

    /// A viewer's offer, admitted: it counts against the viewer cap and its token's `max_sessions` while
    /// it is negotiated.
    fn offer(&mut self, asked: Asked, offer: String) {
        let pipeline = self.streams[&asked.stream].pipeline.clone();
        let id = asked.id;
        self.negotiate(asked, async move { pipeline.add_viewer(id, &offer).await });
    }

    /// The stream produces, the token has a session left, the stream is below its viewer cap and not
    /// overloaded.
    fn admit_viewer(&self, stream: &StreamName, grant: &Grant) -> Result<StreamName, SessionError> {
        let (name, entry) = self.known(stream)?;
        if let Grant::Token(v) = grant
            && let Some(max) = v.max_sessions
            && self.sessions.sessions_of(&v.token_id) >= max as usize
        {
            return Err(SessionError::TokenSessionLimit(max));
        }
        let name = name.clone();
        let viewers = self.sessions.viewer_places(&name);
        let health = entry.pipeline.health();
        if !health.producing() {
            return Err(SessionError::NotProducing(name));
        }
        if viewers >= entry.cfg.max_viewers as usize {
            return Err(SessionError::ViewerCap { stream: name, max: entry.cfg.max_viewers });
        }
        if let Some(reason) = overloaded(viewers, &health, entry.cfg.fps) {
            tracing::warn!(stream = %name, viewers, %reason, "overloaded: refusing a new viewer");
            return Err(SessionError::Overloaded { stream: name, reason });
        }
        Ok(name)
    }

    /// A publisher's offer, admitted: its stream takes no other until it is negotiated.
    fn publish(&mut self, asked: Asked, offer: String) {
        let pipeline = self.streams[&asked.stream].pipeline.clone();
        let id = asked.id;
        self.negotiate(asked, async move { pipeline.attach_publisher(id, &offer).await });
    }

    fn known(&self, stream: &StreamName) -> Result<(&StreamName, &super::StreamEntry), SessionError> {
        self.streams.get_key_value(stream).ok_or_else(|| SessionError::UnknownStream(stream.to_string()))
    }

    /// A `source = "whip"` stream takes one publisher at a time.
    fn admit_publisher(&self, stream: &StreamName) -> Result<StreamName, SessionError> {
        let (name, entry) = self.known(stream)?;
        let name = name.clone();
        if entry.cfg.source != VideoSource::Whip {
            return Err(SessionError::NotWhip(name));
        }
        if self.sessions.published(&name) {
            return Err(SessionError::AlreadyPublished(name));
        }
        Ok(name)
    }

    /// Runs the media's negotiation off this task; its result comes back as [`Done::Negotiated`].
    /// The session is in the table from here on, negotiating: it holds its place under the caps.
    fn negotiate(
        &mut self,
        asked: Asked,
        work: impl Future<Output = Result<(Peer, String), MediaError>> + Send + 'static,
    ) {
        let claim = Claim {
            role: asked.role,
            stream: asked.stream.clone(),
            token_id: asked.grant.token_id().map(str::to_owned),
        };
        self.sessions.claim(asked.id, claim);
        let done = self.done_tx.clone();
        tokio::spawn(async move {
            let result = work.await;
            if let Ok((_, answer)) = &result {
                reach::hint(asked.client, answer);
            }
            let _ = done.send(Done::Negotiated(Box::new(Negotiated { asked, result })));
        });
    }

    /// A negotiation finished: the client gets its answer (or why not) and the session its place in the
    /// table, with a connect deadline.
    pub(super) fn on_negotiated(&mut self, Negotiated { asked, result }: Negotiated) {
        let Asked { role, stream, id, grant, client, posted, reply } = asked;
        let (peer, answer) = match result {
            Ok(done) => done,
            Err(e) => {
                tracing::info!(%stream, role = role.as_str(), error = %e, "offer refused");
                self.sessions.settle(id, None);
                let _ = reply.send(Err(SessionError::refused(stream, e)));
                return;
            }
        };
        let ice = SessionIce::new(id);
        if reply.send(Ok(Created { id, answer, etag: ice.etag.clone() })).is_err() {
            // The client went away before its answer: nobody will ever use this session.
            self.sessions.settle(id, None);
            tokio::task::spawn_blocking(move || peer.remove());
            return;
        }
        let span = tracing::info_span!("session", session = %id, role = role.as_str(), %stream, client = ?client);
        tracing::info!(parent: &span, answer_ms = posted.elapsed().as_millis() as u64, "session created");
        telemetry::session_started(role, stream.as_str());
        let done = self.done_tx.clone();
        let timeout = self.connect_timeout;
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            let _ = done.send(Done::ConnectDeadline { id });
        });
        let session =
            Session { role, stream, peer, ice, owner: grant, since: now_s(), client, posted, connected: None, span };
        self.sessions.settle(id, Some(session));
    }
}

impl Asked {
    fn new(role: Role, stream: StreamName, grant: Grant, client: Option<SocketAddr>, reply: Reply) -> Self {
        Asked { role, stream, id: SessionId::random(), grant, client, posted: Instant::now(), reply }
    }
}

//! The manager's WHIP publishers: at most one per `source = "whip"` stream. A publisher is a source that
//! comes and goes; its viewers stay connected across publishers and get its picture again as soon as the
//! next one sends a keyframe.

use std::net::SocketAddr;
use std::time::Instant;

use tokio::sync::oneshot;

use super::{Done, Manager};
use crate::auth::Grant;
use crate::config::VideoSource;
use crate::ids::{SessionId, StreamName};
use crate::media::{MediaError, Publisher, StreamPipeline, ViewerEnd};
use crate::session::{Created, SessionError};
use crate::telemetry::{self, EndReason};

/// A publisher that sends no video this long is ended (encoders send frames, and keyframes, continually).
const PUBLISHER_SILENCE: std::time::Duration = std::time::Duration::from_secs(5);

pub(super) struct PublisherSession {
    pub stream: StreamName,
    pub publisher: Publisher,
    pub owner: Grant,
    /// `publisher{session, stream, client}`: every log line about it carries these.
    pub span: tracing::Span,
    /// When its offer was answered, and when its connection (ICE + DTLS) completed.
    pub answered: Instant,
    pub connected: Option<Instant>,
    /// The resource's ETag and ICE restarts (PATCH: trickle, ICE restart).
    pub ice: super::ice::SessionIce,
}

/// A negotiation that finished: its publisher and answer, or why not.
pub(super) struct Published {
    pub stream: StreamName,
    pub id: SessionId,
    pub grant: Grant,
    pub client: Option<SocketAddr>,
    pub posted: Instant,
    pub result: Result<(Publisher, String), MediaError>,
    pub reply: oneshot::Sender<Result<Created, SessionError>>,
}

fn detach_in_background(pipeline: StreamPipeline, publisher: Publisher) {
    tokio::task::spawn_blocking(move || pipeline.detach_publisher(&publisher));
}

impl Manager {
    pub(super) fn publish(
        &mut self,
        stream: String,
        offer: String,
        grant: Grant,
        client: Option<SocketAddr>,
        reply: oneshot::Sender<Result<Created, SessionError>>,
    ) {
        let Some((name, entry)) = self.streams.iter().find(|(k, _)| k.as_str() == stream) else {
            let _ = reply.send(Err(SessionError::UnknownStream(stream)));
            return;
        };
        let name = name.clone();
        if entry.cfg.source != VideoSource::Whip {
            let _ = reply.send(Err(SessionError::NotWhip(name)));
            return;
        }
        if self.publishing.contains(&name) || self.publishers.values().any(|p| p.stream == name) {
            let _ = reply.send(Err(SessionError::AlreadyPublished(name)));
            return;
        }
        self.publishing.insert(name.clone());
        let pipeline = entry.pipeline.clone();
        let id = SessionId::random();
        let done = self.done_tx.clone();
        let posted = Instant::now();
        tokio::spawn(async move {
            let result = pipeline.attach_publisher(id, &offer).await;
            let published = Published { stream: name, id, grant, client, posted, result, reply };
            let _ = done.send(Done::Published(Box::new(published)));
        });
    }

    pub(super) fn on_published(&mut self, p: Published) {
        self.publishing.remove(&p.stream);
        let Some(pipeline) = self.streams.get(&p.stream).map(|e| e.pipeline.clone()) else { return };
        match p.result {
            Ok((publisher, answer)) => {
                let ice = super::ice::SessionIce::new(p.id);
                let created = Created { id: p.id, answer, etag: ice.etag.clone() };
                if p.reply.send(Ok(created)).is_err() {
                    // The publisher went away before its answer.
                    detach_in_background(pipeline, publisher);
                    return;
                }
                let span = tracing::info_span!("publisher", session = %p.id, stream = %p.stream, client = ?p.client);
                tracing::info!(parent: &span, setup_ms = p.posted.elapsed().as_millis() as u64, "publisher answered");
                telemetry::publisher_started(p.stream.as_str());
                let session = PublisherSession {
                    stream: p.stream,
                    publisher,
                    owner: p.grant,
                    span,
                    answered: Instant::now(),
                    connected: None,
                    ice,
                };
                self.publishers.insert(p.id, session);
            }
            Err(e) => {
                tracing::info!(stream = %p.stream, error = %e, "WHIP offer refused");
                let _ = p.reply.send(Err(e.into()));
            }
        }
    }

    /// Ends publisher `id` (if it is one), detaching it from its stream. `None`: no such publisher.
    pub(super) fn end_publisher(&mut self, id: SessionId, reason: EndReason, why: &str) -> Option<()> {
        let p = self.publishers.remove(&id)?;
        tracing::info!(parent: &p.span, why, "publisher ended");
        telemetry::publisher_ended(p.stream.as_str(), reason);
        if let Some(entry) = self.streams.get(&p.stream) {
            detach_in_background(entry.pipeline.clone(), p.publisher);
        }
        Some(())
    }

    pub(super) fn on_publisher_connected(&mut self, id: SessionId) {
        if let Some(p) = self.publishers.get_mut(&id) {
            p.connected.get_or_insert_with(Instant::now);
            tracing::info!(parent: &p.span, "publisher connected");
        }
    }

    pub(super) fn on_publisher_ended(&mut self, id: SessionId, why: ViewerEnd) {
        let (reason, why) = match why {
            ViewerEnd::Closed => (EndReason::Closed, "it closed the connection".to_owned()),
            ViewerEnd::IceFailed => (EndReason::IceFailed, "its connection failed or it vanished (ICE)".to_owned()),
            ViewerEnd::DtlsFailed => (EndReason::DtlsFailed, "DTLS failed".to_owned()),
            ViewerEnd::Error(e) => (EndReason::Error, e),
        };
        self.end_publisher(id, reason, &why);
    }

    /// Whether `grant` may end publisher `id`: `None` when there is no such publisher.
    pub(super) fn publisher_allows(&self, id: SessionId, grant: &Grant) -> Option<bool> {
        self.publishers.get(&id).map(|p| super::grant_allows(&p.owner, grant))
    }

    /// Publishers that never connected within the connect timeout (they hold their stream: a second
    /// publisher gets 409), and connected ones that sent no video for [`PUBLISHER_SILENCE`]: gone without
    /// DELETE (their ICE failure would take libnice's consent timeout, ~40 s, while viewers watch a frozen
    /// picture). With why.
    pub(super) fn stalled_publishers(&self) -> Vec<(SessionId, &'static str)> {
        self.publishers
            .iter()
            .filter_map(|(id, p)| match p.connected {
                None if p.answered.elapsed() >= self.connect_timeout => Some((*id, "it never connected")),
                Some(at) if at.elapsed() >= PUBLISHER_SILENCE => {
                    let idle = self.streams.get(&p.stream).and_then(|e| e.pipeline.source_idle());
                    idle.is_some_and(|i| i >= PUBLISHER_SILENCE).then_some((*id, "it sent nothing for 5 s"))
                }
                _ => None,
            })
            .collect()
    }

    /// Publishers whose token expired, was revoked or whose key was retired.
    pub(super) fn unauthorized_publishers(&self, now: u64) -> Vec<SessionId> {
        self.publishers
            .iter()
            .filter(|(_, p)| match &p.owner {
                Grant::Viewer(v) => {
                    v.expires_at <= now || self.auth.is_revoked(&v.token_id) || !self.auth.knows_key(&v.kid)
                }
                _ => false,
            })
            .map(|(id, _)| *id)
            .collect()
    }
}

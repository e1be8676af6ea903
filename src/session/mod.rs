//! The session manager: the one owner of all streams and sessions (WHEP viewers and WHIP publishers).
//!
//! Architecture invariant: HTTP handlers and the media side never share session state directly; they send
//! messages to the manager task ([`Sessions`] is its handle) and get replies. The manager never blocks on
//! media work: negotiation runs in spawned tasks that report back to it.

pub mod lifecycle;
mod manager;
pub mod oncall;
mod report;
mod scrape;

use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};

pub use manager::spawn;
pub use scrape::{scrape, session_final};

use crate::auth::Grant;
use crate::ids::{ETag, SessionId, StreamName};
use crate::media::{MediaError, Peer, StreamHealth, ViewerHandle};
use crate::sdpfrag::FragError;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum SessionError {
    #[error("no stream named `{0}`")]
    UnknownStream(String),
    #[error("no such session (it ended, or never existed)")]
    UnknownSession,
    #[error("stream `{0}` is not producing media yet")]
    NotProducing(StreamName),
    #[error("stream `{stream}` already has its maximum of {max} viewers")]
    ViewerCap { stream: StreamName, max: u32 },
    #[error("stream `{stream}` is overloaded: {reason}, so it takes no more viewers until it recovers")]
    Overloaded { stream: StreamName, reason: String },
    /// The offer could not be read, or lacks what WebRTC needs.
    #[error("malformed SDP offer: {0}")]
    MalformedOffer(String),
    /// The offer has nothing this stream can send (the text says which codec is missing).
    #[error("{0}")]
    NoUsableCodec(String),
    #[error("WebRTC negotiation failed: {0}")]
    Negotiation(String),
    #[error("malformed trickle-ice-sdpfrag: {0}")]
    BadFrag(#[from] FragError),
    #[error("an ICE restart needs an If-Match header (`*` or the session's ETag)")]
    PreconditionRequired,
    #[error("If-Match does not match the session's current ETag")]
    PreconditionFailed,
    #[error("the ICE restart failed ({0}); end this session with DELETE and POST a new offer")]
    IceRestartFailed(String),
    #[error("this session belongs to another token")]
    NotYourSession,
    #[error("this token already has its maximum of {0} concurrent sessions")]
    TokenSessionLimit(u32),
    #[error("stream `{0}` could not start: {1}")]
    StartFailed(StreamName, String),
    #[error("glasscast is shutting down")]
    ShuttingDown,
    #[error("stream `{0}` takes no WHIP publisher: its source is configured (source = \"whip\" takes one)")]
    NotWhip(StreamName),
    #[error("stream `{0}` already has a publisher: DELETE its session first, or wait for it to end")]
    AlreadyPublished(StreamName),
    #[error("cannot push stream `{0}`: {1}")]
    BadPush(StreamName, String),
    #[error("stream `{0}` has no push with id {1} (it ended with the stream, or never existed)")]
    UnknownPush(StreamName, u32),
}

impl SessionError {
    /// Why media refused `stream`'s offer, as the session layer says it: HTTP (and anything else above
    /// sessions) never matches media's own error type. A stream that is not producing or is overloaded
    /// is the same refusal whether the session layer or media noticed it.
    pub fn refused(stream: StreamName, e: MediaError) -> Self {
        match e {
            MediaError::MalformedOffer(why) => Self::MalformedOffer(why),
            MediaError::NoUsableCodec(why) => Self::NoUsableCodec(why),
            MediaError::NotProducing => Self::NotProducing(stream),
            MediaError::Negotiation(why) => Self::Negotiation(why),
            MediaError::Overloaded(reason) => Self::Overloaded { stream, reason },
        }
    }
}

/// What a PATCH did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Patched {
    /// Trickled candidates were added (204).
    Trickled,
    /// ICE restarted (200): the session's new ETag and our answer fragment (new credentials, candidates).
    Restarted { etag: ETag, frag: String },
}

/// A new viewer session.
#[derive(Debug, Clone)]
pub struct Created {
    pub id: SessionId,
    pub answer: String,
    pub etag: ETag,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StreamInfo {
    #[schema(value_type = String)]
    pub name: StreamName,
    pub state: String,
    pub producing: bool,
    pub viewers: usize,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub audio: bool,
    pub encoder: &'static str,
    /// What it captures: `test pattern`, `X11 :0`, `ScreenCast portal`, `camera /dev/video0`, `feed
    /// rtsp://host:port/...` (never a URL's path, query or credentials), `WHIP publisher`.
    pub source: String,
}

pub use crate::ids::Role;

/// A live session, as the admin API lists it (no token, only its id and label).
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct SessionInfo {
    pub id: String,
    /// A viewer (WHEP) or the stream's publisher (WHIP).
    pub role: Role,
    pub stream: String,
    /// The viewer token's id (`None`: admin token, or access control disabled).
    pub token_id: Option<String>,
    pub label: Option<String>,
    /// Unix seconds when the session was created.
    pub since: u64,
    /// ICE and DTLS completed.
    pub connected: bool,
    pub ice_restarts: u32,
    /// Where the session's POST came from (`ip:port`).
    pub client: Option<String>,
    /// The transport's view: media address, bytes, packets, RTT, loss, NACKs, PLIs.
    #[serde(flatten)]
    pub transport: TransportStats,
}

pub use report::{PushReport, RecordingReport, RelayReport, RungReport, TransportStats};

#[derive(Debug, Clone, Serialize)]
pub struct StreamReadiness {
    pub name: StreamName,
    pub ready: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub frames: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_frame_age_ms: Option<u64>,
    /// Raw frames per second into the encoder and encoded frames per second out (smoothed; `None` until
    /// measured, and for a passed-through feed's input), raw frames dropped because the encoder was busy,
    /// and the encoded video bytes so far (their rate is the bitrate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fps_in: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fps_out: Option<f64>,
    pub frames_dropped: u64,
    pub encoded_bytes: u64,
    /// Keyframes asked for (joins, PLIs, FIRs) and passed to the encoder (at most one per 250 ms).
    pub keyframes_requested: u64,
    pub keyframes_sent: u64,
    /// The encoder's bitrate now, kbit/s (lower than configured while congestion control backs off).
    pub bitrate_kbps: u32,
    /// Forwarding transport: how long packets wait for the media thread, ms (smoothed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send_lag_ms: Option<f64>,
    /// Restarts of the stream's capture or encode chains after they failed while it ran.
    pub restarts: u64,
    /// The H.264 encoder in use, and the ones tried before it with why each was not used.
    pub encoder: &'static str,
    pub encoders_rejected: Vec<String>,
    /// Pushes to WHIP endpoints and Janus rooms: target (scheme, host, port), state, bytes, attempts, last error.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pushes: Vec<PushReport>,
    /// `[streams.record]`: recording, waiting (why) or stopped; its directory, files and bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recording: Option<RecordingReport>,
    /// The video encodings running now and their viewers: H.264 always, VP8 while viewers need it.
    pub encodings: Vec<EncodingReadiness>,
    /// The H.264 quality ladder's rungs, the top (the stream's own encoding) first; absent for one encoding.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ladder: Vec<RungReport>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EncodingReadiness {
    pub codec: &'static str,
    pub viewers: usize,
    /// The VP8 encoding's own frame rate and keyframes (the H.264 encoder's are the stream's fields).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fps: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keyframes_requested: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keyframes_sent: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    pub ready: bool,
    pub streams: Vec<StreamReadiness>,
    /// `webrtc.relay`: the TURN server, and whether the allocation is made (its address), being asked, or
    /// failed (why; tried again every 30 s). It does not make the server unready: LAN viewers still play.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay: Option<RelayReport>,
    /// The forwarding transport's media threads (`None` on the webrtcbin transport). Not alive (one stopped,
    /// or its loop has not gone round for 5 s): the server is not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mux: Option<MuxReadiness>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MuxReadiness {
    pub alive: bool,
    /// Since its loop last went round (it does at least once a second), ms.
    pub last_loop_ms: u64,
    /// Datagrams sent on the media port so far, and the system calls they took (with UDP GSO a frame's
    /// packets to one viewer take one).
    pub datagrams_sent: u64,
    pub send_calls: u64,
    /// Viewers each mux thread serves (`webrtc.mux_threads`; the first also reads the sockets).
    pub viewers_per_thread: Vec<usize>,
    /// The ICE-TCP port (absent when `webrtc.ice_tcp` is off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ice_tcp: Option<IceTcpReadiness>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct IceTcpReadiness {
    /// Connections open now.
    pub open: u64,
    /// Connections the server closed or refused so far, by why: `per_address` (its address held
    /// `webrtc.ice_tcp_per_address`), `full` (all 2048 taken), `evicted` (made room for a new one),
    /// `no_check` (no valid ICE check within 5 s), `bad_frame`, `idle` (30 s since a viewer took a packet).
    pub closed: std::collections::BTreeMap<&'static str, u64>,
}

/// A WHEP or WHIP POST: an offer for a new session of `role` on `stream`, bound to `grant`'s token.
pub(crate) struct Post {
    pub role: Role,
    pub stream: StreamName,
    pub offer: String,
    pub grant: Grant,
    pub client: Option<SocketAddr>,
    pub reply: oneshot::Sender<Result<Created, SessionError>>,
}

pub(crate) enum Command {
    Post(Post),
    Patch {
        id: SessionId,
        role: Role,
        grant: Grant,
        if_match: Option<String>,
        frag: String,
        reply: oneshot::Sender<Result<Patched, SessionError>>,
    },
    Delete {
        id: SessionId,
        role: Option<Role>,
        grant: Grant,
        reply: oneshot::Sender<Result<(), SessionError>>,
    },
    Streams {
        reply: oneshot::Sender<Vec<StreamInfo>>,
    },
    Readiness {
        reply: oneshot::Sender<Readiness>,
    },
    Mux {
        reply: oneshot::Sender<Option<MuxReadiness>>,
    },
    Viewer {
        id: SessionId,
        reply: oneshot::Sender<Option<ViewerHandle>>,
    },
    Sessions {
        reply: oneshot::Sender<Vec<(SessionInfo, Peer)>>,
    },
    Health {
        stream: String,
        reply: oneshot::Sender<Option<StreamHealth>>,
    },
    Healths {
        reply: oneshot::Sender<Vec<(StreamName, StreamHealth)>>,
    },
    StopStream {
        stream: StreamName,
        reply: oneshot::Sender<Result<(), SessionError>>,
    },
    StartStream {
        stream: StreamName,
        reply: oneshot::Sender<Result<(), SessionError>>,
    },
    Record {
        stream: StreamName,
        on: bool,
        reply: oneshot::Sender<Result<(), SessionError>>,
    },
    RecordingDir {
        stream: String,
        reply: oneshot::Sender<Option<(std::path::PathBuf, Option<std::path::PathBuf>)>>,
    },
    Push {
        stream: StreamName,
        url: String,
        token: Option<String>,
        reply: oneshot::Sender<Result<u32, SessionError>>,
    },
    Unpush {
        stream: StreamName,
        id: u32,
        reply: oneshot::Sender<Result<(), SessionError>>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

/// Handle to the session manager. Cheap to clone.
#[derive(Clone)]
pub struct Sessions {
    tx: mpsc::Sender<Command>,
}

/// How long a request waits for the manager before giving up (it never should).
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

impl Sessions {
    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Option<T> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(make(reply)).await.ok()?;
        tokio::time::timeout(REPLY_TIMEOUT, rx).await.ok()?.ok()
    }

    /// A WHEP offer for `stream`: negotiates a new viewer session, bound to `grant`'s token.
    pub async fn offer(
        &self,
        stream: &StreamName,
        offer: String,
        grant: Grant,
        client: Option<SocketAddr>,
    ) -> Result<Created, SessionError> {
        self.post(Role::Viewer, stream, offer, grant, client).await
    }

    /// A WHIP offer for `stream`: its publisher from now on (one at a time), bound to `grant`'s token.
    pub async fn publish(
        &self,
        stream: &StreamName,
        offer: String,
        grant: Grant,
        client: Option<SocketAddr>,
    ) -> Result<Created, SessionError> {
        self.post(Role::Publisher, stream, offer, grant, client).await
    }

    async fn post(
        &self,
        role: Role,
        stream: &StreamName,
        offer: String,
        grant: Grant,
        client: Option<SocketAddr>,
    ) -> Result<Created, SessionError> {
        let stream = stream.clone();
        self.ask(|reply| Command::Post(Post { role, stream, offer, grant, client, reply }))
            .await
            .unwrap_or(Err(SessionError::ShuttingDown))
    }

    /// A WHEP PATCH: adds trickled candidates, or restarts ICE when the fragment carries new credentials.
    /// Trickles to, or restarts ICE on, session `id`, which must be a `role` session (a WHIP session URL
    /// does not reach a viewer's session, nor a WHEP one a publisher's: 404).
    pub async fn patch(
        &self,
        id: SessionId,
        role: Role,
        grant: Grant,
        if_match: Option<String>,
        frag: String,
    ) -> Result<Patched, SessionError> {
        self.ask(|reply| Command::Patch { id, role, grant, if_match, frag, reply })
            .await
            .unwrap_or(Err(SessionError::ShuttingDown))
    }

    /// Ends a session now (only its own token, or the admin, may); `role`: only a session of that role
    /// (the WHEP and WHIP session URLs), `None`: any (the admin API).
    pub async fn delete(&self, id: SessionId, role: Option<Role>, grant: Grant) -> Result<(), SessionError> {
        self.ask(|reply| Command::Delete { id, role, grant, reply }).await.unwrap_or(Err(SessionError::ShuttingDown))
    }

    pub async fn streams(&self) -> Vec<StreamInfo> {
        self.ask(|reply| Command::Streams { reply }).await.unwrap_or_default()
    }

    pub async fn readiness(&self) -> Readiness {
        self.ask(|reply| Command::Readiness { reply }).await.unwrap_or(Readiness {
            ready: false,
            streams: Vec::new(),
            relay: None,
            mux: None,
        })
    }

    /// The forwarding transport's media thread and its send counters (`None` on webrtcbin), without the
    /// streams' health that [`Sessions::readiness`] also gathers.
    pub async fn mux(&self) -> Option<MuxReadiness> {
        self.ask(|reply| Command::Mux { reply }).await.flatten()
    }

    /// The live sessions, oldest first, with their transport's stats (read outside the manager's task:
    /// webrtcbin answers stats from its own thread).
    pub async fn sessions(&self) -> Vec<SessionInfo> {
        let all = self.ask(|reply| Command::Sessions { reply }).await.unwrap_or_default();
        tokio::task::spawn_blocking(move || {
            all.into_iter().map(|(info, p)| SessionInfo { transport: p.stats().into(), ..info }).collect()
        })
        .await
        .unwrap_or_default()
    }

    /// The media handle of a session (diagnostics and tests).
    pub async fn viewer(&self, id: SessionId) -> Option<ViewerHandle> {
        self.ask(|reply| Command::Viewer { id, reply }).await.flatten()
    }

    /// A stream's media health (state, frames, viewer pads on its tees).
    pub async fn health(&self, stream: &str) -> Option<StreamHealth> {
        let stream = stream.to_owned();
        self.ask(|reply| Command::Health { stream, reply }).await.flatten()
    }

    /// Every stream's media health, by name.
    async fn stream_healths(&self) -> Vec<(StreamName, StreamHealth)> {
        self.ask(|reply| Command::Healths { reply }).await.unwrap_or_default()
    }

    /// Viewer branches linked to a stream's RTP tees (0 for an unknown stream).
    pub async fn viewer_pads(&self, stream: &str) -> usize {
        self.health(stream).await.map_or(0, |h| h.viewer_pads)
    }

    /// Also pushes `stream` to the WHIP endpoint `url` (with `token`), from its encoder, until it stops.
    pub async fn push(&self, stream: &StreamName, url: String, token: Option<String>) -> Result<u32, SessionError> {
        let stream = stream.clone();
        self.ask(|reply| Command::Push { stream, url, token, reply }).await.unwrap_or(Err(SessionError::ShuttingDown))
    }

    /// Stops a stream's push `id` (one added at run time or from the configuration; a configured one comes
    /// back when the stream starts again).
    pub async fn unpush(&self, stream: &StreamName, id: u32) -> Result<(), SessionError> {
        let stream = stream.clone();
        self.ask(|reply| Command::Unpush { stream, id, reply }).await.unwrap_or(Err(SessionError::ShuttingDown))
    }

    /// Ends a stream's sessions and stops its pipeline; new viewers get 409 until it runs again.
    pub async fn stop_stream(&self, stream: &StreamName) -> Result<(), SessionError> {
        let stream = stream.clone();
        self.ask(|reply| Command::StopStream { stream, reply }).await.unwrap_or(Err(SessionError::ShuttingDown))
    }

    /// Starts a stopped (or failed) stream's pipeline again; a no-op for a running one.
    pub async fn start_stream(&self, stream: &StreamName) -> Result<(), SessionError> {
        let stream = stream.clone();
        self.ask(|reply| Command::StartStream { stream, reply }).await.unwrap_or(Err(SessionError::ShuttingDown))
    }

    /// Starts (`on`) or stops recording `stream` now; it stays so across the stream's stops and starts
    /// until the server restarts (`[streams.record] enabled` decides at start).
    pub async fn record(&self, stream: &StreamName, on: bool) -> Result<(), SessionError> {
        let stream = stream.clone();
        self.ask(|reply| Command::Record { stream, on, reply }).await.unwrap_or(Err(SessionError::ShuttingDown))
    }

    /// The stream's recordings directory, and the file being written now; `None` for an unknown stream.
    pub async fn recording_dir(&self, stream: &str) -> Option<(std::path::PathBuf, Option<std::path::PathBuf>)> {
        let stream = stream.to_owned();
        self.ask(|reply| Command::RecordingDir { stream, reply }).await.flatten()
    }

    /// Ends every session and stops every pipeline.
    pub async fn shutdown(&self) {
        let _ = self.ask(|reply| Command::Shutdown { reply }).await;
    }
}

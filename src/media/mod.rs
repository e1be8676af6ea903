//! GStreamer side of glasscast: sources, the encoder, the encode-once fan-out and one `webrtcbin` per viewer.
//!
//! Architecture invariant: nothing here knows about HTTP. The session manager calls in with SDP text and
//! session ids and gets SDP text, handles and [`MediaEvent`]s back.

pub mod dtls;
pub mod encode;
pub mod forward;
mod handle;
mod ingest;
mod offer;
pub mod source;
pub mod stream;
pub mod tap;
pub mod webrtcbin;

pub use encode::encoder::{Encoder, choose_encoder};
pub use encode::ladder::RungStatus;
pub use forward::Forward;
pub use handle::{GateStats, IceCredentials, Peer, PublisherPeer, ViewerHandle};
pub use ingest::publisher::Publisher;
pub use offer::negotiate::{H264Profile, OfferPlan, plan_offer, plan_offer_for, plan_offer_with};
pub use stream::{PushStatus, StreamHealth, StreamPipeline, StreamState, encoded_video_chain};
pub use webrtcbin::viewer::{IceSettings, WebrtcbinViewer};

use thiserror::Error;

use crate::ids::{SessionId, StreamName};

/// Initializes GStreamer; call once before building pipelines.
pub fn init() -> Result<(), gstreamer::glib::Error> {
    gstreamer::init()
}

/// Test-only fault injection: `GLASSCAST_TEST_FAULT` (read once; unset in any real deployment). Its
/// values: `forward::liveness` (the mux) and `stream::recover` (encoder, sources).
pub(crate) fn test_fault() -> Option<&'static str> {
    static FAULT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    FAULT.get_or_init(|| std::env::var("GLASSCAST_TEST_FAULT").ok()).as_deref()
}

/// Swallows the probed buffer or event. (`PadProbeReturn::Drop` makes gstreamer-rs 0.25 unref it twice, a
/// GStreamer-CRITICAL; taking it and answering `Handled` is the clean way.)
fn swallow(info: &mut gstreamer::PadProbeInfo) -> gstreamer::PadProbeReturn {
    drop(info.data.take());
    gstreamer::PadProbeReturn::Handled
}

/// A queue that drops its oldest data (leaky downstream) beyond `max_buffers` buffers or `max_time`
/// (0: no limit of that kind), never by bytes.
fn leaky_queue(max_buffers: u32, max_time: std::time::Duration) -> anyhow::Result<gstreamer::Element> {
    use anyhow::Context;
    gstreamer::ElementFactory::make("queue")
        .property_from_str("leaky", "downstream")
        .property("max-size-buffers", max_buffers)
        .property("max-size-bytes", 0u32)
        .property("max-size-time", max_time.as_nanos() as u64)
        .build()
        .context("creating queue")
}

/// Does the one-time work of the first viewer's join now: loads the WebRTC plugins (webrtcbin, libnice,
/// DTLS, SRTP) and lets GStreamer's DTLS element generate its process-wide certificate, which otherwise
/// adds ~200 ms to the first join after start.
pub fn prewarm() {
    dtls::certificate();
    for factory in ["webrtcbin", "dtlsdec", "dtlsenc", "srtpenc", "nicesink"] {
        if let Err(e) = gstreamer::ElementFactory::make(factory).build() {
            tracing::warn!(factory, error = %e, "prewarm: could not create element");
        }
    }
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum MediaError {
    /// The offer could not be parsed or lacks what WebRTC needs (ICE credentials, DTLS fingerprint).
    #[error("malformed SDP offer: {0}")]
    MalformedOffer(String),
    /// The offer parses but has nothing we can send (say which codec is missing).
    #[error("{0}")]
    NoUsableCodec(String),
    /// The stream's pipeline is not producing media right now.
    #[error("the stream is not producing media")]
    NotProducing,
    /// webrtcbin refused or timed out; the viewer's branch has been removed.
    #[error("WebRTC negotiation failed: {0}")]
    Negotiation(String),
    /// Another viewer would make the encoding it needs worse for everyone on it (say why).
    #[error("the stream is overloaded: {0}, so it takes no more viewers on that encoding until it recovers")]
    Overloaded(String),
}

/// A peer's connection (a viewer's or a WHIP publisher's) as its transport sees it (the admin API shows it as
/// `session::TransportStats`, whose fields say what each is).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PeerStats {
    /// The remote end of the selected candidate pair, and our end's candidate type and protocol.
    pub remote_address: Option<std::net::SocketAddr>,
    pub candidate_type: Option<String>,
    pub protocol: Option<String>,
    pub bytes_sent: u64,
    pub packets_sent: u64,
    /// From the peer's last receiver report (video's, or the highest of the tracks).
    pub rtt_ms: Option<f64>,
    pub fraction_lost: Option<f64>,
    pub jitter_ms: Option<f64>,
    pub nacks: u64,
    pub plis: u64,
    /// A WHIP publisher's media (0 for a viewer).
    pub bytes_received: u64,
    pub packets_received: u64,
    /// A viewer of a stream with a quality ladder (forwarding transport): its rung (0: the top), its
    /// send-side estimate (kbit/s; `None` without transport-wide CC or before the first), and its switches.
    pub rung: Option<u8>,
    pub estimate_kbps: Option<u32>,
    pub switches_up: u64,
    pub switches_down: u64,
}

/// Why a peer's connection (a viewer's or a WHIP publisher's) ended, as seen by the media side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerEnd {
    /// ICE failed, or the peer vanished (consent/keepalive checks stopped being answered).
    IceFailed,
    /// The DTLS handshake or the DTLS connection failed.
    DtlsFailed,
    /// The peer closed the connection (DTLS close notify).
    Closed,
    /// An element of the peer's branch posted an error.
    Error(String),
}

/// What the media side reports to the session manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    /// A peer's connection (a viewer's or a WHIP publisher's: the session knows which) completed.
    PeerConnected {
        stream: StreamName,
        id: SessionId,
    },
    /// A peer's connection ended, once per peer.
    PeerEnded {
        stream: StreamName,
        id: SessionId,
        why: PeerEnd,
    },
    StreamFailed {
        stream: StreamName,
        reason: String,
    },
}

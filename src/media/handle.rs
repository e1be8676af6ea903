//! A session's media side: [`Peer`], one interface for a viewer (whichever transport carries it) and a
//! WHIP publisher. The session manager only sees this.

use std::sync::Arc;

use gstreamer as gst;
use gstreamer::glib;

use super::forward::ForwardViewer;
use super::webrtcbin::viewer::WebrtcbinViewer;
use rand::Rng;

use super::{MediaError, PeerStats, Publisher, StreamPipeline};
use crate::sdpfrag::SdpFrag;

#[derive(Clone)]
pub enum ViewerHandle {
    /// Its own `webrtcbin` in the stream's pipeline.
    Webrtcbin(WebrtcbinViewer),
    /// A peer in the forwarding transport's mux.
    Forward(Arc<ForwardViewer>),
}

impl ViewerHandle {
    /// Adds trickled remote candidates; returns how many.
    pub fn add_remote_candidates(&self, frag: &SdpFrag) -> usize {
        match self {
            Self::Webrtcbin(v) => v.add_remote_candidates(frag),
            Self::Forward(v) => v.add_remote_candidates(frag),
        }
    }

    /// The client's current ICE ufrag: a PATCH with another one asks for an ICE restart.
    pub fn remote_ufrag(&self) -> String {
        match self {
            Self::Webrtcbin(v) => v.remote_ufrag(),
            Self::Forward(v) => v.remote_ufrag(),
        }
    }

    /// Restarts ICE with the fragment's new credentials; returns our answer fragment.
    pub fn restart_ice(&self, frag: &SdpFrag) -> Result<SdpFrag, MediaError> {
        match self {
            Self::Webrtcbin(v) => v.restart_ice(frag),
            Self::Forward(v) => v.restart_ice(frag),
        }
    }

    /// What the keyframe gate let through and dropped.
    pub fn gate_stats(&self) -> GateStats {
        match self {
            Self::Webrtcbin(v) => v.gate_stats(),
            Self::Forward(v) => v.gate_stats(),
        }
    }

    /// The viewer's webrtcbin (to check it is freed after removal); `None` on the forwarding transport.
    pub fn webrtcbin_weak(&self) -> Option<glib::WeakRef<gst::Element>> {
        match self {
            Self::Webrtcbin(v) => Some(v.webrtcbin_weak()),
            Self::Forward(_) => None,
        }
    }

    /// libnice's UPnP is off for this viewer (always true on the forwarding transport: no libnice).
    pub fn upnp_disabled(&self) -> bool {
        match self {
            Self::Webrtcbin(v) => v.upnp_disabled(),
            Self::Forward(_) => true,
        }
    }

    /// The connection's address, bytes, RTT and loss; may block up to a second (webrtcbin's get-stats).
    pub fn stats(&self) -> PeerStats {
        match self {
            Self::Webrtcbin(v) => v.stats(),
            Self::Forward(v) => v.stats(),
        }
    }

    /// Tears the viewer down; idempotent. May block briefly (webrtcbin waits for its threads).
    pub fn remove(&self) {
        match self {
            Self::Webrtcbin(v) => v.remove(),
            Self::Forward(v) => v.remove(),
        }
    }
}

/// A WHIP publisher and the stream it feeds (removing it detaches it from there).
#[derive(Clone)]
pub struct PublisherPeer {
    pub publisher: Publisher,
    pub stream: StreamPipeline,
}

/// One session's peer, a viewer or a WHIP publisher: what the session manager does with either (trickle,
/// ICE restart, stats, remove). Each reports its connection's completion and end as
/// [`super::MediaEvent::PeerConnected`] and [`super::MediaEvent::PeerEnded`]. Cheap to clone.
#[derive(Clone)]
pub enum Peer {
    Viewer(ViewerHandle),
    Publisher(PublisherPeer),
}

impl Peer {
    /// The client's current ICE ufrag: a PATCH with another one asks for an ICE restart.
    pub fn remote_ufrag(&self) -> String {
        match self {
            Self::Viewer(v) => v.remote_ufrag(),
            Self::Publisher(p) => p.publisher.remote_ufrag(),
        }
    }

    /// Adds trickled candidates; how many were taken. May block (libnice).
    pub fn add_remote_candidates(&self, frag: &SdpFrag) -> usize {
        match self {
            Self::Viewer(v) => v.add_remote_candidates(frag),
            Self::Publisher(p) => p.publisher.add_remote_candidates(frag),
        }
    }

    /// Restarts ICE with the client's new credentials; our answer fragment. May block.
    pub fn restart_ice(&self, frag: &SdpFrag) -> Result<SdpFrag, MediaError> {
        match self {
            Self::Viewer(v) => v.restart_ice(frag),
            Self::Publisher(p) => p.publisher.restart_ice(frag),
        }
    }

    /// The connection's address, bytes, RTT and loss; may block up to a second (webrtcbin's get-stats).
    pub fn stats(&self) -> PeerStats {
        match self {
            Self::Viewer(v) => v.stats(),
            Self::Publisher(p) => p.publisher.stats(),
        }
    }

    /// Tears the peer down (a publisher: detached from its stream, which waits for the next one);
    /// idempotent. May block while its elements stop.
    pub fn remove(&self) {
        match self {
            Self::Viewer(v) => v.remove(),
            Self::Publisher(p) => p.stream.detach_publisher(&p.publisher),
        }
    }

    /// The viewer's handle (`None` for a publisher).
    pub fn viewer(&self) -> Option<&ViewerHandle> {
        match self {
            Self::Viewer(v) => Some(v),
            Self::Publisher(_) => None,
        }
    }
}

/// Counters of one viewer's gate (for diagnostics and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateStats {
    /// Buffers dropped because the viewer was not connected yet or was waiting for a keyframe.
    pub dropped: u64,
    pub forwarded: u64,
    /// The first video buffer let through started a keyframe (SPS/PPS/IDR).
    pub first_forwarded_was_keyframe: bool,
    /// Flow errors from the viewer's branch that were kept away from the shared tee.
    pub flow_errors: u64,
}

/// An ICE username fragment and password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceCredentials {
    pub ufrag: String,
    pub pwd: String,
}

impl IceCredentials {
    /// Fresh random credentials: 8-character ufrag and 32-character password of ice-chars (RFC 8839 §5.4
    /// asks for at least 24 bits and 128 bits of randomness).
    pub fn random() -> Self {
        const ICE_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut rng = rand::rng();
        let mut pick = |n: usize| -> String {
            (0..n).map(|_| char::from(ICE_CHARS[rng.random_range(0..ICE_CHARS.len())])).collect()
        };
        Self { ufrag: pick(8), pwd: pick(32) }
    }
}

//! A viewer session's media side, whichever transport carries it. The session manager only sees this.

use std::sync::Arc;

use gstreamer as gst;
use gstreamer::glib;

use super::forward::ForwardViewer;
use super::viewer::WebrtcbinViewer;
use super::{GateStats, MediaError, ViewerStats};
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
    pub fn stats(&self) -> ViewerStats {
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

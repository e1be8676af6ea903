//! ICE restart as the answerer (RFC 8445 §9; WHEP/RFC 9725 PATCH with new credentials), which webrtcbin 1.22
//! does not do by itself: it keeps its credentials and never restarts its checks when a new remote description
//! carries a new ufrag/pwd. So we drive its libnice agent directly:
//!
//! ```text
//! {webrtcbin} - transceiver 0 - DTLS transport - ICE transport - ICE stream (bundled: the only one)
//!      nice_agent_restart_stream(stream)   -> checks reset, remote candidates dropped, local ones kept,
//!                                             the selected pair keeps carrying media until a new one wins
//!      set_local_credentials(fresh)        -> what the 200 sdpfrag tells the client
//!      set_remote_credentials(client's new ones), then the client's candidates
//! ```
//! DTLS and SRTP are untouched: they run over whichever pair ICE selects.

// libnice's restart has no binding (below): the FFI declaration and its one call are this module's.
#![allow(unsafe_code)]

use std::ffi::c_uint;

use crate::media::IceCredentials;
use gstreamer as gst;
use gstreamer::glib;
use gstreamer::glib::translate::ToGlibPtr;
use gstreamer::prelude::*;
use gstreamer_webrtc as gst_webrtc;
use gstreamer_webrtc::prelude::*;

use crate::media::MediaError;
use crate::sdpfrag::{FragMedia, SdpFrag};

// libnice's public API (nice/agent.h, since 0.1.6). Neither gstreamer-rs nor a maintained crate binds it, and
// GstWebRTCICE has no restart; this is the one call we need. build.rs links libnice via pkg-config.
unsafe extern "C" {
    fn nice_agent_restart_stream(agent: *mut glib::gobject_ffi::GObject, stream_id: c_uint) -> glib::ffi::gboolean;
}

fn restart_error(msg: impl Into<String>) -> MediaError {
    MediaError::Negotiation(format!("ICE restart: {}", msg.into()))
}

/// The ICE stream under the webrtcbin's (max-bundle, so single) transport.
fn ice_stream(webrtcbin: &gst::Element) -> Result<gst_webrtc::WebRTCICEStream, MediaError> {
    let transceiver = webrtcbin
        .emit_by_name::<Option<gst_webrtc::WebRTCRTPTransceiver>>("get-transceiver", &[&0i32])
        .ok_or_else(|| restart_error("the session has no transceiver"))?;
    let sender = transceiver.sender().ok_or_else(|| restart_error("the transceiver has no sender"))?;
    let dtls = sender
        .property::<Option<gst_webrtc::WebRTCDTLSTransport>>("transport")
        .ok_or_else(|| restart_error("the sender has no transport yet"))?;
    let ice_transport = dtls
        .property::<Option<gst_webrtc::WebRTCICETransport>>("transport")
        .ok_or_else(|| restart_error("the DTLS transport has no ICE transport"))?;
    if ice_transport.find_property("stream").is_none() {
        return Err(restart_error("the ICE transport is not libnice's (no `stream` property)"));
    }
    ice_transport
        .property::<Option<glib::Object>>("stream")
        .and_then(|s| s.downcast::<gst_webrtc::WebRTCICEStream>().ok())
        .ok_or_else(|| restart_error("the ICE transport has no stream"))
}

/// Restarts ICE on a connected (or failing) webrtcbin: new local credentials `local`, the client's new
/// `remote` ones. The caller then adds the client's candidates (they were dropped by the restart).
pub fn restart(webrtcbin: &gst::Element, local: &IceCredentials, remote: &IceCredentials) -> Result<(), MediaError> {
    let ice = webrtcbin.property::<gst_webrtc::WebRTCICE>("ice-agent");
    if ice.find_property("agent").is_none() {
        return Err(restart_error("webrtcbin's ICE agent is not libnice"));
    }
    let agent = ice.property::<glib::Object>("agent");
    if !agent.type_().name().starts_with("NiceAgent") {
        return Err(restart_error(format!("unexpected ICE agent type {}", agent.type_().name())));
    }
    let stream = ice_stream(webrtcbin)?;
    // SAFETY: `agent` is a live NiceAgent (type checked above, a strong reference held for the call) and
    // the stream id comes from the same agent's stream; libnice locks the agent itself.
    let ok = unsafe { nice_agent_restart_stream(agent.to_glib_none().0, stream.stream_id()) };
    if ok == glib::ffi::GFALSE {
        return Err(restart_error(format!("libnice refused to restart stream {}", stream.stream_id())));
    }
    if !ice.set_local_credentials(&stream, &local.ufrag, &local.pwd) {
        return Err(restart_error("setting the new local credentials failed"));
    }
    if !ice.set_remote_credentials(&stream, &remote.ufrag, &remote.pwd) {
        return Err(restart_error("setting the client's new credentials failed"));
    }
    Ok(())
}

/// A webrtcbin peer's trickle and ICE restart, as a WHEP viewer and a WHIP publisher both need them: the
/// offer's `a=mid`s (to map trickled candidates to m-lines) and the peer's current ufrag.
pub struct PeerIce {
    mids: Vec<String>,
    remote_ufrag: std::sync::Mutex<String>,
}

impl PeerIce {
    pub fn new(mids: Vec<String>, remote_ufrag: String) -> Self {
        Self { mids, remote_ufrag: std::sync::Mutex::new(remote_ufrag) }
    }

    /// The peer's current ICE ufrag (from its offer, then from its last restart): a PATCH with another one
    /// asks for an ICE restart.
    pub fn remote_ufrag(&self) -> String {
        self.remote_ufrag.lock().expect("ufrag lock").clone()
    }

    /// Adds trickled remote candidates; `mid`s are mapped to m-line indexes of the offer.
    pub fn add_remote_candidates(&self, webrtcbin: &gst::Element, frag: &SdpFrag) -> usize {
        let mut added = 0;
        for media in &frag.media {
            let mline = media.mid.as_ref().and_then(|mid| self.mids.iter().position(|m| m == mid)).unwrap_or(0) as u32;
            for cand in &media.candidates {
                webrtcbin.emit_by_name::<()>("add-ice-candidate", &[&mline, cand]);
                added += 1;
            }
        }
        added
    }

    /// Restarts ICE with the peer's new credentials and candidates from `frag` (which must carry both ufrag
    /// and pwd). Returns our answer: fresh credentials, our host candidates (a restart keeps them) and
    /// end-of-candidates. DTLS/SRTP and the media flow carry on.
    pub fn restart(&self, webrtcbin: &gst::Element, frag: &SdpFrag) -> Result<SdpFrag, MediaError> {
        let (Some(ufrag), Some(pwd)) = (&frag.ufrag, &frag.pwd) else {
            return Err(restart_error("the fragment needs a=ice-ufrag and a=ice-pwd"));
        };
        let local = IceCredentials::random();
        let remote = IceCredentials { ufrag: ufrag.clone(), pwd: pwd.clone() };
        restart(webrtcbin, &local, &remote)?;
        *self.remote_ufrag.lock().expect("ufrag lock") = remote.ufrag;
        self.add_remote_candidates(webrtcbin, frag);
        let media = FragMedia {
            mid: self.mids.first().cloned(),
            candidates: local_candidates(webrtcbin),
            end_of_candidates: true,
        };
        Ok(SdpFrag { ufrag: Some(local.ufrag), pwd: Some(local.pwd), media: vec![media] })
    }
}

/// Our gathered candidates (`candidate:...` values) from the local description's bundled section.
fn local_candidates(webrtcbin: &gst::Element) -> Vec<String> {
    let Some(local) = webrtcbin.property::<Option<gst_webrtc::WebRTCSessionDescription>>("local-description") else {
        return Vec::new();
    };
    let mut out: Vec<String> = Vec::new();
    for media in local.sdp().medias() {
        for a in media.attributes().filter(|a| a.key() == "candidate") {
            let c = format!("candidate:{}", a.value().unwrap_or_default());
            if !out.contains(&c) {
                out.push(c);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_credentials_are_valid_ice_chars_and_differ() {
        let a = IceCredentials::random();
        let b = IceCredentials::random();
        assert_ne!(a, b);
        assert_eq!(a.ufrag.len(), 8);
        assert_eq!(a.pwd.len(), 32);
        let ice_char = |c: char| c.is_ascii_alphanumeric() || c == '+' || c == '/';
        assert!(a.ufrag.chars().chain(a.pwd.chars()).all(ice_char));
    }
}

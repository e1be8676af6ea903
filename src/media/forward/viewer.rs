//! A viewer on the forwarding transport as the session manager holds it: its commands go to the mux thread
//! that owns its peer.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::Ordering;

use str0m::{Candidate, IceCreds};

use super::PeerCounters;
use super::mux::{self, Cmd};
use crate::ids::SessionId;
use crate::media::GateStats;
use crate::media::IceCredentials;
use crate::media::{MediaError, PeerStats};
use crate::sdpfrag::{FragMedia, SdpFrag};

/// A viewer on the forwarding transport, as the session manager holds it.
pub struct ForwardViewer {
    pub(super) id: SessionId,
    /// Kept while the viewer lives: its share of an on-demand encoding (VP8), released on drop.
    pub(super) lease: Option<Box<dyn Send + Sync>>,
    pub(super) mux: mux::MuxSender,
    pub(super) stats: Arc<PeerCounters>,
    pub(super) remote_ufrag: Mutex<String>,
    pub(super) first_mid: Option<String>,
    /// Our host candidates, `candidate:...`.
    pub(super) candidates: Vec<String>,
}

impl ForwardViewer {
    /// Keeps `lease` (an encoding this viewer needs) until the viewer is dropped.
    pub fn hold(&mut self, lease: Box<dyn Send + Sync>) {
        self.lease = Some(lease);
    }

    /// Adds trickled candidates. With ICE lite on our side they only help str0m know the client's
    /// addresses early (connectivity comes from the client's checks); with full ICE (a relay) they are
    /// checked too.
    pub fn add_remote_candidates(&self, frag: &SdpFrag) -> usize {
        let cands: Vec<Candidate> = frag
            .media
            .iter()
            .flat_map(|m| m.candidates.iter())
            // The client's text: a panic in str0m's parser drops the candidate, not the manager task.
            .filter_map(|c| std::panic::catch_unwind(|| Candidate::from_sdp_string(c)).ok()?.ok())
            .collect();
        let n = cands.len();
        if n > 0 {
            self.mux.send(Cmd::Candidates { id: self.id, cands });
        }
        n
    }

    pub fn remote_ufrag(&self) -> String {
        self.remote_ufrag.lock().expect("ufrag lock").clone()
    }

    /// Restarts ICE: the client's new credentials, fresh ones of ours; DTLS and media carry on.
    pub fn restart_ice(&self, frag: &SdpFrag) -> Result<SdpFrag, MediaError> {
        let (Some(ufrag), Some(pwd)) = (&frag.ufrag, &frag.pwd) else {
            return Err(MediaError::Negotiation("ICE restart: the fragment needs a=ice-ufrag and a=ice-pwd".into()));
        };
        let local = IceCredentials::random();
        self.mux.send(Cmd::Restart {
            id: self.id,
            local: IceCreds { ufrag: local.ufrag.clone(), pass: local.pwd.clone() },
            remote: IceCreds { ufrag: ufrag.clone(), pass: pwd.clone() },
        });
        *self.remote_ufrag.lock().expect("ufrag lock") = ufrag.clone();
        self.add_remote_candidates(frag);
        let media =
            FragMedia { mid: self.first_mid.clone(), candidates: self.candidates.clone(), end_of_candidates: true };
        Ok(SdpFrag { ufrag: Some(local.ufrag), pwd: Some(local.pwd), media: vec![media] })
    }

    pub fn gate_stats(&self) -> GateStats {
        GateStats {
            dropped: self.stats.dropped.load(Ordering::Relaxed),
            forwarded: self.stats.forwarded.load(Ordering::Relaxed),
            first_forwarded_was_keyframe: self.stats.first_forwarded_was_keyframe.load(Ordering::Relaxed),
            flow_errors: 0,
        }
    }

    /// What the viewer's connection reported last (at most [`packet::LOSS_REPORT_EVERY`] old).
    pub fn stats(&self) -> PeerStats {
        self.stats.transport.lock().expect("stats lock").clone()
    }

    /// Ends the viewer's peer connection in the mux (sends a DTLS close). Returns at once.
    pub fn remove(&self) {
        self.mux.send(Cmd::Remove(self.id));
    }
}

//! PATCH on a session resource (RFC 9725 section 4.3), for WHEP viewers and WHIP publishers alike: trickled
//! candidates, or an ICE restart guarded by the resource's ETag.
//!
//! The manager decides what a PATCH is on its own task (parse, ETag, trickle or restart: no media work),
//! and the media work (candidates into libnice or str0m, a restart) runs in `spawn_blocking`, so a slow
//! agent keeps no other request waiting. A restart's result comes back to the manager as
//! `Done::Restarted`, which bumps the ETag; while one is under way, another restart is refused with 412
//! (the ETag it matched is about to be replaced).

use tokio::sync::oneshot;

use crate::ids::{ETag, SessionId};
use crate::media::{MediaError, Peer};
use crate::sdpfrag::SdpFrag;
use crate::session::{Patched, SessionError};

/// A trickle PATCH's candidates and where its answer goes.
pub(super) type Trickle = (SdpFrag, oneshot::Sender<Result<Patched, SessionError>>);

/// A session's ICE state as PATCH sees it: its ETag, the restarts so far, and whether one is under way.
pub(super) struct SessionIce {
    pub etag: ETag,
    /// Bumped by every ICE restart; part of the ETag.
    pub generation: u32,
    pub restarting: bool,
    /// Trickles that came while a restart was under way: applied after it, in order (their candidates may
    /// be for the new credentials).
    pub held: Vec<Trickle>,
}

impl SessionIce {
    pub fn new(id: SessionId) -> Self {
        SessionIce { etag: ETag::new(id, 0), generation: 0, restarting: false, held: Vec::new() }
    }

    /// A restart finished: on success the ETag moves on and the client gets our new credentials.
    pub fn restarted(
        &mut self,
        id: SessionId,
        result: Result<SdpFrag, MediaError>,
        span: &tracing::Span,
    ) -> Result<Patched, SessionError> {
        self.restarting = false;
        match result {
            Ok(answer) => {
                self.generation += 1;
                self.etag = ETag::new(id, self.generation);
                tracing::info!(parent: span, generation = self.generation, "ICE restarted");
                Ok(Patched::Restarted { etag: self.etag.clone(), frag: answer.render() })
            }
            Err(e) => {
                tracing::warn!(parent: span, error = %e, "ICE restart failed");
                Err(SessionError::IceRestartFailed(e.to_string()))
            }
        }
    }
}

/// What a PATCH asks for, decided without touching the media.
pub(super) enum PatchPlan {
    /// Candidates to add (204).
    Trickle(SdpFrag),
    /// New credentials: an ICE restart (200 with ours and a new ETag), which needs `If-Match`.
    Restart(SdpFrag),
}

/// Reads a PATCH body against the session's state: a trickle, a restart, or why neither.
pub(super) fn plan_patch(
    peer: &Peer,
    ice: &SessionIce,
    if_match: Option<&str>,
    body: &str,
) -> Result<PatchPlan, SessionError> {
    let frag = SdpFrag::parse(body)?;
    if if_match.is_some_and(|tag| !ice.etag.matches(tag)) {
        return Err(SessionError::PreconditionFailed);
    }
    let restart = match (&frag.ufrag, &frag.pwd) {
        (Some(u), Some(_)) => *u != peer.remote_ufrag(),
        _ => false,
    };
    if !restart {
        return Ok(PatchPlan::Trickle(frag));
    }
    if if_match.is_none() {
        return Err(SessionError::PreconditionRequired);
    }
    if ice.restarting {
        return Err(SessionError::PreconditionFailed);
    }
    Ok(PatchPlan::Restart(frag))
}

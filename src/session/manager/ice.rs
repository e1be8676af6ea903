//! PATCH on a session resource (RFC 9725 section 4.3), for WHEP viewers and WHIP publishers alike: trickled
//! candidates, or an ICE restart guarded by the resource's ETag.

use crate::ids::{ETag, SessionId};
use crate::media::{MediaError, Publisher, ViewerHandle};
use crate::sdpfrag::SdpFrag;
use crate::session::{Patched, SessionError};

/// What PATCH needs of a peer (a WHEP viewer or a WHIP publisher): trickle, and ICE restart.
pub(super) trait IcePeer {
    fn remote_ufrag(&self) -> String;
    fn add_remote_candidates(&self, frag: &SdpFrag) -> usize;
    fn restart_ice(&self, frag: &SdpFrag) -> Result<SdpFrag, MediaError>;
}

impl IcePeer for ViewerHandle {
    fn remote_ufrag(&self) -> String {
        ViewerHandle::remote_ufrag(self)
    }
    fn add_remote_candidates(&self, frag: &SdpFrag) -> usize {
        ViewerHandle::add_remote_candidates(self, frag)
    }
    fn restart_ice(&self, frag: &SdpFrag) -> Result<SdpFrag, MediaError> {
        ViewerHandle::restart_ice(self, frag)
    }
}

impl IcePeer for Publisher {
    fn remote_ufrag(&self) -> String {
        Publisher::remote_ufrag(self)
    }
    fn add_remote_candidates(&self, frag: &SdpFrag) -> usize {
        Publisher::add_remote_candidates(self, frag)
    }
    fn restart_ice(&self, frag: &SdpFrag) -> Result<SdpFrag, MediaError> {
        Publisher::restart_ice(self, frag)
    }
}

/// A session's ETag and ICE generation (bumped by each restart), and its log span.
pub(super) struct IceState<'a> {
    pub etag: &'a mut ETag,
    pub generation: &'a mut u32,
    pub span: &'a tracing::Span,
}

/// A PATCH (RFC 9725 section 4.3): candidates to add (204), or new credentials, an ICE restart, which needs
/// `If-Match` (200 with our new credentials and candidates, and a new ETag).
pub(super) fn patch_ice(
    id: SessionId,
    peer: &dyn IcePeer,
    ice: IceState,
    if_match: Option<String>,
    body: &str,
) -> Result<Patched, SessionError> {
    let frag = SdpFrag::parse(body)?;
    if if_match.as_deref().is_some_and(|tag| !ice.etag.matches(tag)) {
        return Err(SessionError::PreconditionFailed);
    }
    let restart = match (&frag.ufrag, &frag.pwd) {
        (Some(u), Some(_)) => *u != peer.remote_ufrag(),
        _ => false,
    };
    if !restart {
        let n = peer.add_remote_candidates(&frag);
        tracing::debug!(parent: ice.span, candidates = n, "trickle");
        return Ok(Patched::Trickled);
    }
    if if_match.is_none() {
        return Err(SessionError::PreconditionRequired);
    }
    // New credentials: an ICE restart. Quick (no gathering: a restart keeps our host candidates).
    match peer.restart_ice(&frag) {
        Ok(answer) => {
            *ice.generation += 1;
            *ice.etag = ETag::new(id, *ice.generation);
            tracing::info!(parent: ice.span, generation = *ice.generation, "ICE restarted");
            Ok(Patched::Restarted { etag: ice.etag.clone(), frag: answer.render() })
        }
        Err(e) => {
            tracing::warn!(parent: ice.span, error = %e, "ICE restart failed");
            Err(SessionError::IceRestartFailed(e.to_string()))
        }
    }
}

//! The manager's side of PATCH ([`super::ice`]): which session it is for, what it asks, and the media
//! work handed to `spawn_blocking`.

use std::time::Duration;

use tokio::sync::oneshot;

use super::ice::{PatchPlan, Trickle, plan_patch};
use super::{Done, Manager};
use crate::auth::Grant;
use crate::ids::SessionId;
use crate::media::{MediaError, Peer};
use crate::sdpfrag::SdpFrag;
use crate::session::{Patched, Role, SessionError};

/// With `GLASSCAST_TEST_FAULT=slow-ice-restart` an ICE restart takes this long (a slow agent).
const SLOW_RESTART: Duration = Duration::from_secs(5);

impl Manager {
    pub(super) fn patch(
        &mut self,
        id: SessionId,
        role: Role,
        grant: Grant,
        if_match: Option<String>,
        body: String,
        reply: oneshot::Sender<Result<Patched, SessionError>>,
    ) {
        let done = self.done_tx.clone();
        let Some(s) = self.sessions.get_mut(&id).filter(|s| s.role == role) else {
            let _ = reply.send(Err(SessionError::UnknownSession));
            return;
        };
        if !s.allows(&grant) {
            let _ = reply.send(Err(SessionError::NotYourSession));
            return;
        }
        let (peer, ice, span) = (s.peer.clone(), &mut s.ice, &s.span);
        match plan_patch(&peer, ice, if_match.as_deref(), &body) {
            Err(e) => {
                let _ = reply.send(Err(e));
            }
            Ok(PatchPlan::Trickle(frag)) if ice.restarting => ice.held.push((frag, reply)),
            Ok(PatchPlan::Trickle(frag)) => trickle(peer, vec![(frag, reply)], span.clone()),
            Ok(PatchPlan::Restart(frag)) => {
                ice.restarting = true;
                tokio::task::spawn_blocking(move || {
                    if crate::media::test_fault() == Some("slow-ice-restart") {
                        std::thread::sleep(SLOW_RESTART);
                    }
                    let result = peer.restart_ice(&frag);
                    let _ = done.send(Done::Restarted { id, result, reply });
                });
            }
        }
    }

    /// A restart finished: the ETag moves on, the client hears, and the trickles held meanwhile go in.
    pub(super) fn on_restarted(
        &mut self,
        id: SessionId,
        result: Result<SdpFrag, MediaError>,
        reply: oneshot::Sender<Result<Patched, SessionError>>,
    ) {
        let Some(s) = self.sessions.get_mut(&id) else {
            // Ended while restarting.
            let _ = reply.send(Err(SessionError::UnknownSession));
            return;
        };
        let _ = reply.send(s.ice.restarted(id, result, &s.span));
        let held = std::mem::take(&mut s.ice.held);
        if !held.is_empty() {
            trickle(s.peer.clone(), held, s.span.clone());
        }
    }
}

/// Adds trickled candidates off the manager task (libnice may block), in order, answering each PATCH.
fn trickle(peer: Peer, trickles: Vec<Trickle>, span: tracing::Span) {
    tokio::task::spawn_blocking(move || {
        for (frag, reply) in trickles {
            let n = peer.add_remote_candidates(&frag);
            tracing::debug!(parent: &span, candidates = n, "trickle");
            let _ = reply.send(Ok(Patched::Trickled));
        }
    });
}

//! The mux's TURN relay (`webrtc.relay`, the first mux thread only): allocating, falling over to the next
//! `turn:` server when one fails, its timers, and what arrives through it.
//!
//! ```text
//!   servers [s0, s1, ... sn] (every turn: URL in ice_servers, in order)
//!   si fails (unreachable, refused, lost, or no allocation within 5 s) -> s(i+1) at once
//!   sn fails -> its own retry, 30 s later, starts again at s0
//! ```
//!
//! An allocation that works is kept: the mux does not go back to an earlier server while it holds.

use std::net::SocketAddr;
use std::time::Instant;

use str0m::net::Protocol;

use super::Mux;
use crate::media::forward::relay::{self, Relay, RelaySpec, RelayState};

/// The TURN servers the relay may use, in order, and where it stands among them.
#[derive(Default)]
pub(super) struct RelayPlan {
    specs: Vec<RelaySpec>,
    /// The server allocated on, or being tried.
    at: usize,
    /// The last server's connection could not be opened: start a new round at this one then.
    retry: Option<(usize, Instant)>,
}

impl RelayPlan {
    /// When that new round starts.
    pub fn retry_at(&self) -> Option<Instant> {
        self.retry.map(|(_, at)| at)
    }

    fn on_last(&self) -> bool {
        self.at + 1 >= self.specs.len()
    }
}

impl Mux {
    /// The relay's TURN servers (in the order to try them): allocating starts again on the first.
    pub(super) fn set_relay_servers(&mut self, specs: Vec<RelaySpec>) {
        self.relay_plan = RelayPlan { specs, at: 0, retry: None };
        self.start_relay(0);
    }

    /// Replaces the TURN allocation with a new one on server `i`.
    fn start_relay(&mut self, i: usize) {
        if let Some(mut old) = self.relay.take() {
            old.release(self.poll.registry());
        }
        self.relay_plan.retry = None;
        self.relay_plan.at = i;
        let Some(spec) = self.relay_plan.specs.get(i).cloned() else { return };
        match Relay::start(spec.clone(), self.poll.registry(), self.relay_status.clone()) {
            Ok(r) => self.relay = Some(r),
            Err(e) => {
                tracing::warn!(turn = %spec.url, error = %e, "webrtc.relay: cannot reach the TURN server");
                let state = RelayState::Failed { reason: format!("cannot reach {}: {e}", spec.server) };
                *self.relay_status.lock().expect("relay status lock") =
                    Some(relay::RelayStatus { server: spec.url.clone(), state });
                self.fall_over(Instant::now());
            }
        }
    }

    /// The server being tried failed: the next one now, or after the last the first again in 30 s.
    fn fall_over(&mut self, now: Instant) {
        let plan = &self.relay_plan;
        if plan.on_last() {
            self.relay_plan.retry = Some((0, now + relay::RETRY_EVERY));
            return;
        }
        let why = match self.relay_status.lock().expect("relay status lock").as_ref().map(|s| &s.state) {
            Some(RelayState::Failed { reason }) => reason.clone(),
            _ => relay::NOT_ALLOCATED.to_owned(),
        };
        let (from, to) = (&plan.specs[plan.at].url, &plan.specs[plan.at + 1].url);
        tracing::warn!(turn = %from, reason = %why, next = %to, "webrtc.relay: no allocation; trying the next TURN server");
        self.start_relay(plan.at + 1);
    }

    /// The relay's timer work: the next server when this one failed, and a new round when the last one
    /// failed a while ago.
    pub(super) fn relay_timers(&mut self, now: Instant) {
        if let Some((i, at)) = self.relay_plan.retry
            && at <= now
        {
            self.start_relay(i);
        }
        let on_last = self.relay_plan.on_last();
        let Some(relay) = &mut self.relay else { return };
        if !on_last && relay.failed(now) {
            self.fall_over(now);
        } else if relay.retry_due(now) {
            self.start_relay(0);
        } else if relay.wake_at() <= now {
            relay.on_timeout(now);
        }
    }

    /// The TURN server sent something (peers' datagrams go to their peers as any other), or the TCP
    /// connection to it became writable.
    pub(super) fn on_relay(&mut self, readable: bool, writable: bool, buf: &mut [u8]) {
        let Some(relay) = &mut self.relay else { return };
        if writable {
            relay.on_writable();
        }
        if !readable {
            return;
        }
        let now = Instant::now();
        let mut got: Vec<(SocketAddr, SocketAddr, Vec<u8>)> = Vec::new();
        relay.on_readable(buf, now, &mut |peer, relayed, data| got.push((peer, relayed, data.to_vec())));
        for (peer, relayed, data) in got {
            self.route(Protocol::Udp, peer, relayed, &data, false);
        }
    }
}

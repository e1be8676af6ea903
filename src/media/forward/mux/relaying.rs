//! The mux's TURN relay (`webrtc.relay`, the first mux thread only): allocating, its timers, and what
//! arrives through it.

use std::net::SocketAddr;
use std::time::Instant;

use str0m::net::Protocol;

use super::Mux;
use crate::media::forward::relay::{self, Relay, RelaySpec};

impl Mux {
    /// Replaces the TURN allocation with a new one on `spec`'s server.
    pub(super) fn start_relay(&mut self, spec: RelaySpec) {
        if let Some(mut old) = self.relay.take() {
            old.release(self.poll.registry());
        }
        self.relay_retry = None;
        match Relay::start(spec.clone(), self.poll.registry(), self.relay_status.clone()) {
            Ok(r) => self.relay = Some(r),
            Err(e) => {
                tracing::warn!(turn = %spec.url, error = %e, "webrtc.relay: cannot reach the TURN server");
                let state = relay::RelayState::Failed { reason: format!("cannot reach {}: {e}", spec.server) };
                *self.relay_status.lock().expect("relay status lock") =
                    Some(relay::RelayStatus { server: spec.url.clone(), state });
                self.relay_retry = Some((spec, Instant::now() + relay::RETRY_EVERY));
            }
        }
    }

    /// The relay's timer work, and a new allocation when the last one failed a while ago.
    pub(super) fn relay_timers(&mut self, now: Instant) {
        if let Some((spec, at)) = &self.relay_retry
            && *at <= now
        {
            let spec = spec.clone();
            self.start_relay(spec);
        }
        let Some(relay) = &mut self.relay else { return };
        if relay.retry_due(now) {
            let spec = relay.spec().clone();
            self.start_relay(spec);
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

//! What answers announce, kept current: the local addresses (checked every 5 s: one that appears is bound
//! and announced to the next viewer, one that goes is no longer announced) and `webrtc.advertise` (names
//! looked up at start, before the first viewer, and every minute after, so a dynamic-DNS name that moves is
//! followed without a restart; a lookup that fails keeps the addresses that name had).

use std::net::SocketAddr;
use std::time::Duration;

use super::{Credentials, Forward, RelaySpec, RelayState, RelayStatus};
use crate::config::{Advertised, TurnUrl};

const RESOLVE_EVERY: Duration = Duration::from_secs(60);
const STUN_EVERY: Duration = Duration::from_secs(300);

/// Asks `url` (a `stun:` server) for the public address once now, then every 5 minutes in a task (returned,
/// to abort on shutdown); a failed ask keeps the last answer and logs why.
pub async fn keep_discovered(forward: Forward, url: String) -> tokio::task::JoinHandle<()> {
    let mut last = None;
    discover(&forward, &url, &mut last).await;
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(STUN_EVERY).await;
            discover(&forward, &url, &mut last).await;
        }
    })
}

async fn discover(forward: &Forward, url: &str, last: &mut Option<std::net::IpAddr>) {
    let u = url.to_owned();
    let asked = tokio::task::spawn_blocking(move || {
        let servers = super::stun::server_addrs(&u)?;
        let server = servers.first().copied().ok_or_else(|| std::io::Error::other("the name has no address"))?;
        super::stun::public_address(server)
    })
    .await;
    match asked {
        Ok(Ok(public)) if Some(public.ip()) != *last => {
            tracing::info!(stun = url, public = %public.ip(), "webrtc.stun_discover: announcing the public address");
            *last = Some(public.ip());
            forward.set_discovered(*last);
        }
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(stun = url, error = %e, kept = ?last, "webrtc.stun_discover: no answer"),
        Err(e) => tracing::warn!(error = %e, "webrtc.stun_discover: the task failed"),
    }
}
/// One `turn:` URL the relay may allocate on, as configured.
#[derive(Clone)]
pub struct RelayTarget {
    pub url: String,
    pub turn: TurnUrl,
    pub credentials: Credentials,
}

impl RelayTarget {
    /// What the mux allocates with, once the server's name is `server`.
    pub fn spec(&self, server: SocketAddr) -> RelaySpec {
        RelaySpec { url: self.url.clone(), server, tcp: self.turn.tcp, credentials: self.credentials.clone() }
    }
}

/// Looks the relay's TURN servers up now (blocking lookups off the runtime) and has the mux allocate on
/// the first that works, then every minute in a task (returned, to abort on shutdown): a server that moved
/// gets a new allocation; a lookup that fails keeps that server's last address.
pub async fn keep_relayed(forward: Forward, targets: Vec<RelayTarget>) -> tokio::task::JoinHandle<()> {
    let mut last = vec![None; targets.len()];
    relay_lookup(&forward, &targets, &mut last).await;
    // The first viewers get the relay too: wait (a little) for the TURN server's answer.
    for _ in 0..30 {
        let allocating = forward.relay_status().is_none_or(|s| s.state == RelayState::Allocating);
        if !allocating {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(RESOLVE_EVERY).await;
            relay_lookup(&forward, &targets, &mut last).await;
        }
    })
}

/// Resolves every target; when an address changed, hands the mux the servers that have one, in order.
async fn relay_lookup(forward: &Forward, targets: &[RelayTarget], last: &mut [Option<SocketAddr>]) {
    let mut changed = false;
    for (target, known) in targets.iter().zip(last.iter_mut()) {
        let t = target.turn.clone();
        match tokio::task::spawn_blocking(move || t.server_addr()).await {
            Ok(Ok(addr)) if Some(addr) != *known => (*known, changed) = (Some(addr), true),
            Ok(Ok(_)) | Err(_) => {}
            Ok(Err(e)) => {
                tracing::warn!(turn = %target.url, error = %e, "webrtc.relay: the TURN server's name does not resolve")
            }
        }
    }
    let specs: Vec<RelaySpec> =
        targets.iter().zip(last.iter()).filter_map(|(t, server)| server.map(|s| t.spec(s))).collect();
    if changed {
        forward.set_relay(specs);
    } else if specs.is_empty()
        && let Some(first) = targets.first()
    {
        let reason = format!("{} does not resolve", first.turn.host);
        forward.set_relay_status(RelayStatus { server: first.url.clone(), state: RelayState::Failed { reason } });
    }
}

const LOCAL_EVERY: Duration = Duration::from_secs(5);

/// Follows the local addresses in a task (returned, to abort on shutdown).
pub fn follow_local(forward: Forward) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(LOCAL_EVERY).await;
            let f = forward.clone();
            let _ = tokio::task::spawn_blocking(move || f.follow_local_addresses()).await;
        }
    })
}

/// Resolves every entry (blocking lookups off the runtime) and announces the result. `last` holds each
/// entry's previous addresses, kept when its lookup fails.
async fn resolve(forward: &Forward, entries: &[Advertised], port: u16, last: &mut [Vec<SocketAddr>]) {
    for (entry, known) in entries.iter().zip(last.iter_mut()) {
        let e = entry.clone();
        match tokio::task::spawn_blocking(move || e.resolve(port)).await {
            Ok(Ok(addrs)) if &addrs != known => {
                tracing::info!(entry = ?entry, addresses = ?addrs, "webrtc.advertise resolved");
                *known = addrs;
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(entry = ?entry, error = %e, kept = ?known, "webrtc.advertise: lookup failed")
            }
            Err(e) => tracing::warn!(error = %e, "webrtc.advertise: the lookup task failed"),
        }
    }
    let all: Vec<SocketAddr> = last.iter().flatten().copied().collect();
    forward.set_advertised(&all);
}

/// Resolves `entries` once now, then every minute in a task (returned, to abort on shutdown).
pub async fn keep_resolved(forward: Forward, entries: Vec<Advertised>, port: u16) -> tokio::task::JoinHandle<()> {
    let mut last = vec![Vec::new(); entries.len()];
    resolve(&forward, &entries, port, &mut last).await;
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(RESOLVE_EVERY).await;
            resolve(&forward, &entries, port, &mut last).await;
        }
    })
}

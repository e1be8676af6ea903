//! What answers announce, kept current: the local addresses (checked every 5 s: one that appears is bound
//! and announced to the next viewer, one that goes is no longer announced) and `webrtc.advertise` (names
//! looked up at start, before the first viewer, and every minute after, so a dynamic-DNS name that moves is
//! followed without a restart; a lookup that fails keeps the addresses that name had).

use std::net::SocketAddr;
use std::time::Duration;

use super::Forward;
use crate::config::Advertised;

const RESOLVE_EVERY: Duration = Duration::from_secs(60);
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

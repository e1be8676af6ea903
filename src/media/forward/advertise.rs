//! `webrtc.advertise`: the announced addresses kept resolved. Names are looked up at start (before the
//! first viewer) and every minute after, so a dynamic-DNS name that moves is followed without a restart; a
//! lookup that fails keeps the addresses that name had.

use std::net::SocketAddr;
use std::time::Duration;

use super::Forward;
use crate::config::Advertised;

const EVERY: Duration = Duration::from_secs(60);

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
            tokio::time::sleep(EVERY).await;
            resolve(&forward, &entries, port, &mut last).await;
        }
    })
}

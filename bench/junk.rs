//! Junk datagrams at a glasscast media port, for bench/soak.mjs (issue 17's junk flood): the same mix as
//! tests/load/junk_flood.rs, sent with `sendmmsg` so that one core reaches 100k datagrams/s and the sender is
//! not what limits the run. Prints one JSON line when done.
//!
//!   cargo run --release --example junk -- --to 192.0.2.1:8444 --rate 100000 --seconds 30 [--ufrag U]

#[path = "../tests/common/junk.rs"]
mod junk;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let to: SocketAddr =
        arg(&args, "--to").ok_or("--to ADDR:PORT is required")?.parse().map_err(|e| format!("--to: {e}"))?;
    let rate: u64 =
        arg(&args, "--rate").unwrap_or_else(|| "100000".into()).parse().map_err(|e| format!("--rate: {e}"))?;
    let seconds: f64 =
        arg(&args, "--seconds").unwrap_or_else(|| "30".into()).parse().map_err(|e| format!("--seconds: {e}"))?;
    let ufrag = arg(&args, "--ufrag").unwrap_or_else(|| "nobody".into());
    let stop = Arc::new(AtomicBool::new(false));
    let drops = junk::rcvbuf_drops();
    let t0 = Instant::now();
    let sent = junk::flood(to, rate, ufrag, stop.clone());
    std::thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    let (n, wall) = (sent.load(Ordering::Relaxed), t0.elapsed().as_secs_f64());
    let dropped = junk::rcvbuf_drops() - drops;
    let rate = (n as f64 / wall).round();
    // rcvbuf_drops: UDP datagrams this machine's kernel dropped for a full receive buffer meanwhile.
    println!("{{\"to\":\"{to}\",\"sent\":{n},\"seconds\":{wall:.2},\"rate_per_s\":{rate},\"rcvbuf_drops\":{dropped}}}");
    Ok(())
}

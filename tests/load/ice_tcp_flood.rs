//! A flood at the ICE-TCP port (issue 34): four loopback connections, each opened with a real ICE check
//! for a live viewer (so the server takes it as a viewer's connection and lets it send frames of any
//! size), then sending the largest RFC 4571 frames as fast as the kernel takes them for 10 s. The
//! server's memory grows by less than 64 MiB (it reads each connection into one frame buffer, in turns),
//! the mux's send lag stays under 100 ms, and the UDP viewers (webrtcbin) and a watching Chromium keep
//! playing. Before, the connections' bytes were read until none were left into buffers without a bound:
//! RSS went from ~100 MiB to 3.8 GiB in 10 s and Chromium froze.

use crate::common;

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::*;

/// This process's resident memory (the server runs in it), bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kb = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).expect("VmRSS");
    kb.trim().trim_end_matches("kB").trim().parse::<u64>().expect("a number") * 1024
}

/// Four connections to `to`, each starting with `check` and then sending 65535-byte frames until `stop`;
/// the bytes sent in all.
fn flood(to: std::net::SocketAddr, check: Vec<u8>, stop: Arc<AtomicBool>) -> Arc<AtomicU64> {
    let sent = Arc::new(AtomicU64::new(0));
    let mut frame = vec![0xff, 0xff];
    // RTP-looking, so str0m reads a header before it gives up on it.
    frame.extend((0..65_535u32).map(|i| if i == 0 { 0x80 } else { (i % 251) as u8 }));
    for _ in 0..4 {
        let (check, frame, stop, sent) = (check.clone(), frame.clone(), stop.clone(), sent.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let Ok(mut c) = std::net::TcpStream::connect(to) else { continue };
                let mut first = (check.len() as u16).to_be_bytes().to_vec();
                first.extend_from_slice(&check);
                if c.write_all(&first).is_err() {
                    continue;
                }
                std::thread::sleep(Duration::from_millis(100));
                while !stop.load(Ordering::Relaxed) && c.write_all(&frame).is_ok() {
                    sent.fetch_add(frame.len() as u64, Ordering::Relaxed);
                }
            }
        });
    }
    sent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_of_the_largest_frames_at_the_ice_tcp_port_is_held_to_bounded_memory_and_viewers_play_on() {
    let srv = start_forward(vec![small_stream("main")]).await;
    let mut first = WebrtcbinViewer::new(96, "42e01f", true);
    let (offer, answer) = first.connect_sdp(&srv, "main").await;
    let username = format!("{}:{}", sdp_attr(&answer, "ice-ufrag"), sdp_attr(&offer, "ice-ufrag"));
    let check = common::junk::valid_check(&username, sdp_attr(&answer, "ice-pwd"));
    let mut viewers = vec![first];
    for pt in [97, 98] {
        let mut v = WebrtcbinViewer::new(pt, "42e01f", true);
        v.connect(&srv, "main").await;
        viewers.push(v);
    }
    for v in &viewers {
        assert!(v.gets_frames(10, 20).await, "every viewer plays before the flood");
    }
    let tcp_port = srv.server.forward.as_ref().and_then(|f| f.tcp_port()).expect("ICE-TCP listening");
    let to = std::net::SocketAddr::new(mux_addr(&answer).ip(), tcp_port);

    let encoded = || async { srv.server.sessions.readiness().await.streams[0].frames };
    let (before, made_before, rss_before) =
        (viewers.iter().map(|v| v.frames()).collect::<Vec<_>>(), encoded().await, rss());
    let stop = Arc::new(AtomicBool::new(false));
    let sent = flood(to, check, stop.clone());
    // Chromium watches through the flood; meanwhile the memory and the send lag are read every 250 ms.
    let url = format!("{}/watch/main", srv.base);
    let watch = tokio::spawn(async move { chromium_plays_with(None, &url, 320, 240, &[("WATCH_S", "10")]).await });
    let (mut rss_max, mut lag_max) = (rss_before, 0.0f64);
    while !watch.is_finished() {
        tokio::time::sleep(Duration::from_millis(250)).await;
        rss_max = rss_max.max(rss());
        let lag = srv.server.sessions.readiness().await.streams[0].send_lag_ms;
        lag_max = lag_max.max(lag.unwrap_or(0.0));
    }
    let played = watch.await.expect("the Chromium task");
    stop.store(true, Ordering::Relaxed);
    let made = encoded().await - made_before;
    let flooded = sent.load(Ordering::Relaxed);
    let grown_mib = rss_max.saturating_sub(rss_before) as f64 / (1 << 20) as f64;
    let watch = &played["watch"];
    eprintln!(
        "{} MiB sent over ICE-TCP; RSS grew {grown_mib:.1} MiB; send lag up to {lag_max} ms; Chromium: {watch}",
        flooded >> 20
    );
    assert!(flooded > 64 << 20, "the flood ran: {flooded} bytes sent");
    assert!(grown_mib < 64.0, "the server's memory grew {grown_mib:.1} MiB under the flood");
    assert!(lag_max < 100.0, "the mux fell behind: send lag {lag_max} ms");
    for (v, b) in viewers.iter().zip(before) {
        let got = v.frames() - b;
        assert!(made > 100 && got + 10 >= made, "a UDP viewer lost frames to the flood: {got} of {made}");
    }
    assert_eq!(watch["connects"], 0, "Chromium's connection dropped: {watch}");
    assert!(watch["frames"].as_u64() >= Some(250), "Chromium's picture stalled: {watch}");
    for v in &viewers {
        v.stop();
    }
    srv.shutdown().await;
}

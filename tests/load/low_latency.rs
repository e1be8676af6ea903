//! Low-latency features, end to end with an independent client (webrtcbin + avdec). Latency itself is measured
//! by bench/latency, never asserted here.
//! - The latency probe: with `latency_probe = true` the wall-clock time painted into each raw frame survives
//!   H.264 encoding, RTP and decoding, and is read back from the decoded pictures.
//! - Zero playout delay: when the offer lists the playout-delay RTP header extension, the answer accepts it
//!   and every video packet carries min = max = 0 (browsers then render frames as soon as they are decoded).

use crate::common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::*;
use glasscast::config::StreamConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn probe_codes_survive_encoding_and_are_read_from_decoded_frames() {
    let stream = StreamConfig { width: 640, height: 360, latency_probe: true, ..small_stream("main") };
    let srv = start(vec![stream]).await;
    let mut v = WebrtcbinViewer::new(96, "42e01f", true);
    v.connect(&srv, "main").await;
    assert!(v.gets_frames(60, 20).await, "no frames decoded");
    let codes = v.probe_codes.lock().expect("lock").clone();
    let read: Vec<u64> = codes.iter().flatten().copied().collect();
    assert!(codes.len() >= 60, "{} frames checked", codes.len());
    assert!(
        read.len() * 100 >= codes.len() * 95,
        "only {} of {} frames carried a readable code",
        read.len(),
        codes.len()
    );
    assert!(read.windows(2).all(|w| w[0] <= w[1]), "painted times must not go backwards: {read:?}");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as u64;
    let last = *read.last().expect("codes");
    assert!(last <= now && now - last < 60_000, "the code is the wall clock in ms: {last} vs now {now}");

    // Without the option nothing is painted.
    srv.shutdown().await;
    let srv = start(vec![small_stream("plain")]).await;
    let mut v = WebrtcbinViewer::new(96, "42e01f", true);
    v.connect(&srv, "plain").await;
    assert!(v.gets_frames(30, 20).await);
    assert!(v.probe_codes.lock().expect("lock").iter().all(Option::is_none), "no code without latency_probe");
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn video_packets_carry_zero_playout_delay_when_the_offer_lists_it() {
    let srv = start(vec![small_stream("main")]).await;

    // Offered (as browsers do) under id 7: answered under id 7, and on the packets.
    let v = WebrtcbinViewer::new(96, "42e01f", true);
    let offer = with_playout_delay(&v.offer().await);
    let resp = srv.post_offer("main", &offer).await;
    let status = resp.status();
    let answer = resp.text().await.expect("answer");
    assert_eq!(status, 201, "{answer}");
    assert!(answer.contains(&format!("a=extmap:7 {PLAYOUT_DELAY}")), "{answer}");
    v.set_answer(&answer).await;
    assert!(v.gets_frames(10, 20).await);
    let exts = v.video_rtp_extensions.lock().expect("lock").clone();
    assert_eq!(exts.get(&7), Some(&vec![0u8, 0, 0]), "playout delay min = max = 0 on video packets: {exts:?}");

    // Not offered: not answered, not sent.
    let mut plain = WebrtcbinViewer::new(96, "42e01f", true);
    plain.connect(&srv, "main").await;
    assert!(plain.gets_frames(10, 20).await);
    assert!(plain.video_rtp_extensions.lock().expect("lock").is_empty());
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_answer_carries_glasscasts_ecdsa_dtls_certificate_and_dtls_connects() {
    let srv = start(vec![small_stream("main")]).await;
    let mut v = WebrtcbinViewer::new(96, "42e01f", true);
    let offer = v.offer().await;
    let resp = srv.post_offer("main", &offer).await;
    assert_eq!(resp.status(), 201);
    let answer = resp.text().await.expect("answer");
    let cert = glasscast::media::dtls::certificate().expect("certificate");
    assert!(
        answer.contains(&format!("a=fingerprint:sha-256 {}", cert.fingerprint)),
        "the answer must name the ECDSA certificate {}: {answer}",
        cert.fingerprint
    );
    v.set_answer(&answer).await;
    assert!(v.gets_frames(10, 20).await, "DTLS with the ECDSA certificate must connect");
    v.location = None;
    srv.shutdown().await;
}

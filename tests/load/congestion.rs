//! Congestion feedback on the forwarding transport: when the viewers' receiver reports show loss, the shared
//! encoder's bitrate goes down (not below `min_bitrate_kbps`), and it climbs back once the loss stops. The
//! viewers are webrtcbin clients that drop every 8th video packet as it arrives (12.5% loss, no NACK), so
//! their RTCP receiver reports carry a real fraction lost.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use glasscast::config::StreamConfig;
use gstreamer as gst;
use gstreamer::prelude::*;

/// The stream's encoder's own `bitrate` property, as the stream's health reads it.
async fn bitrate(srv: &TestServer) -> u32 {
    srv.server.sessions.health("main").await.expect("stream").bitrate_kbps
}

/// Polls the stream's bitrate every 250 ms for up to `secs` until `f` holds; returns the last value.
async fn wait_bitrate(srv: &TestServer, secs: u64, f: impl Fn(u32) -> bool) -> u32 {
    eventually_async(secs, || async { f(bitrate(srv).await) }).await;
    bitrate(srv).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn viewers_losing_packets_lower_the_encoder_bitrate_and_it_recovers() {
    let stream = StreamConfig { min_bitrate_kbps: Some(300), ..small_stream("main") };
    let srv = start_forward(vec![stream]).await;
    assert_eq!(bitrate(&srv).await, 600);

    let lossy = Arc::new(AtomicBool::new(true));
    let mut viewers = Vec::new();
    let mut drops = Vec::new();
    for _ in 0..2 {
        let mut v = WebrtcbinViewer::new(96, "42e01f", false);
        v.connect(&srv, "main").await;
        let rtpbin = find_by_factory(v.webrtcbin.downcast_ref::<gst::Bin>().expect("bin"), "rtpbin").expect("rtpbin");
        drops.push(drop_video_packets(&rtpbin, 8, lossy.clone()));
        viewers.push(v);
    }
    for v in &viewers {
        assert!(v.gets_frames(10, 20).await, "a viewer decoded nothing");
    }

    let low = wait_bitrate(&srv, 30, |b| b <= 400).await;
    assert!(low <= 400, "the bitrate did not go down under 12.5% loss: {low} kbit/s");
    let floor = wait_bitrate(&srv, 20, |b| b == 300).await;
    assert_eq!(floor, 300, "it stops at min_bitrate_kbps");
    assert!(drops.iter().all(|d| d.load(Ordering::Relaxed) > 10), "the viewers dropped packets");

    // Loss stops: after 5 clean seconds it climbs back, 8% per 2 s.
    lossy.store(false, Ordering::Relaxed);
    let up = wait_bitrate(&srv, 30, |b| b >= 400).await;
    assert!(up >= 400, "the bitrate did not recover once the loss stopped: {up} kbit/s");
    for v in &viewers {
        assert!(v.gets_frames(10, 20).await, "a viewer stalled");
    }
    srv.shutdown().await;
}

//! Loss (issue 17): a viewer whose network drops inbound UDP at random (nftables `numgen random` in its
//! namespace, on the outside of a home router that forwards glasscast's ports). Headless Chromium keeps
//! playing at 10% loss: it asks for retransmissions (NACK), glasscast resends them (RTX), and the stream's
//! shared encoder steps its bitrate down (congestion control: the one viewer is lossy). Freezes, NACK,
//! PLI and retransmission counts are printed; the 1/5/10% numbers with glass-to-glass latency are
//! bench/loss.mjs's (docs/performance.md). The stream has one encoding (`ladder = false`): with a ladder,
//! str0m's estimate may take the random loss for congestion and move the viewer down a rung instead, and
//! then the shared step-down (which hears only viewers on the top rung) has nobody to hear.

use crate::common;

use common::netns::{Glasscast, HomeRouter, ROUTER_WAN};

/// nftables for the viewer's namespace: drop `permille`/1000 of inbound UDP at random.
fn random_udp_loss(permille: u32) -> String {
    format!(
        "table inet random_loss {{\n chain input {{\n  type filter hook input priority 0;\n  \
         meta l4proto udp numgen random mod 1000 < {permille} drop\n }}\n}}\n"
    )
}

/// The stream's `glasscast_viewer_nacks_total` (and PLIs), scraped in the server's namespace.
fn nacks_and_plis(server_ns: &str) -> (u64, u64) {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", server_ns, "curl", "-s", "http://127.0.0.1:9464/metrics"])
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout);
    let value = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name) && l.contains("stream=\"main\""))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or(0.0) as u64
    };
    (value("glasscast_viewer_nacks_total"), value("glasscast_viewer_plis_total"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chromium_keeps_playing_at_ten_percent_loss_and_the_encoder_steps_down() {
    let bed = HomeRouter::new(&[8443], &[8189]);
    let base = format!("https://{ROUTER_WAN}:8443");
    let config = format!(
        "[auth]\nmode = \"disabled\"\n[webrtc]\nmux_port = 8189\nadvertise = [\"{ROUTER_WAN}\"]\n\
         [[streams]]\nname = \"main\"\nwidth = 640\nheight = 360\nbitrate_kbps = 1500\nladder = false\n"
    );
    let gc = Glasscast::start(&bed.server, &config);
    gc.wait_ready(&bed.viewer, &base).await;
    bed.filter_viewer(&random_udp_loss(100));

    let url = format!("{base}/watch/main");
    let played = common::chromium_plays_with(Some(&bed.viewer), &url, 640, 360, &[("WATCH_S", "20")]).await;
    let watch = &played["watch"];
    let inbound = &watch["inbound"];
    let ready = common::netns::curl_json(&bed.viewer, &format!("{base}/readyz"));
    let (nacks, plis) = nacks_and_plis(&bed.server);
    eprintln!("10% loss: chromium {watch}; glasscast nacks {nacks} plis {plis}; readyz {}", ready["streams"][0]);

    assert!(watch["lastFrames"].as_u64() >= Some(30), "Chromium stopped playing: {watch}");
    assert!(inbound["nackCount"].as_u64() > Some(0), "Chromium asked for no retransmission: {inbound}");
    assert!(nacks > 0, "glasscast counted no NACK");
    assert!(
        inbound["retransmittedPacketsReceived"].as_u64() > Some(0),
        "no retransmission reached Chromium: {inbound}"
    );
    let kbps = ready["streams"][0]["bitrate_kbps"].as_u64().expect("bitrate in /readyz");
    assert!(kbps < 1500, "the encoder did not step down at 10% loss: {kbps} kbit/s");
    drop(gc);
}

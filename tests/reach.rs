//! Reach (issue 15): viewers that are not on the server's LAN. A network-namespace testbed (a server behind a
//! home router that forwards 8443/tcp and the mux port, a viewer on the router's outside) with headless
//! Chromium and aiortc as viewers; and the announced-address settings on this host.

mod common;

use common::netns::{Glasscast, HomeRouter, ROUTER_WAN, SERVER_LAN};
use glasscast::config::{Config, LocalCandidates};

/// The answer's candidates, `ip port`.
fn candidates(answer: &str) -> Vec<String> {
    answer
        .lines()
        .filter_map(|l| l.trim_end().strip_prefix("a=candidate:"))
        .map(|c| c.split_whitespace().skip(4).take(2).collect::<Vec<_>>().join(" "))
        .collect()
}

/// Home router: glasscast on a private address, the router's outside address in `webrtc.advertise`. Both
/// viewers on the outside play, over the advertised host candidate (the private one is announced too, by
/// default, and simply never works from outside).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_viewer_outside_a_home_router_plays_through_its_port_forward() {
    let bed = HomeRouter::new(&[8443], &[8189]);
    let config = format!(
        "[auth]\nmode = \"disabled\"\n[metrics]\nenabled = false\n\
         [webrtc]\nmux_port = 8189\nadvertise = [\"{ROUTER_WAN}\"]\n\
         [[streams]]\nname = \"main\"\nwidth = 320\nheight = 240\nbitrate_kbps = 600\n"
    );
    let gc = Glasscast::start(&bed.server, &config);
    let base = format!("https://{ROUTER_WAN}:8443");
    gc.wait_ready(&bed.viewer, &base).await;

    let report = common::aiortc::watch_url(Some(&bed.viewer), &format!("{base}/whep/main"), None, &["--audio"]).await;
    let announced = candidates(report["answer"].as_str().expect("answer"));
    assert!(announced.contains(&format!("{ROUTER_WAN} 8189")), "the router's address is announced: {announced:?}");
    assert!(announced.contains(&format!("{SERVER_LAN} 8189")), "local_candidates = \"all\": {announced:?}");
    assert!(report["frames"].as_u64() >= Some(30), "aiortc decodes from outside: {report}");
    assert_eq!((report["width"].as_u64(), report["height"].as_u64()), (Some(320), Some(240)));

    let played = common::chromium_plays_url(Some(&bed.viewer), &format!("{base}/watch/main"), 320, 240).await;
    let pair = &played["pair"];
    assert_eq!(pair["remote"], format!("{ROUTER_WAN}:8189"), "Chromium's media goes through the forward: {played}");
    assert_eq!((pair["type"].as_str(), pair["protocol"].as_str()), (Some("host"), Some("udp")), "{played}");
    drop(gc);
}

/// `local_candidates = "none"` with an advertised address: the answer announces only that one, and a viewer
/// plays over it. (On this host: the advertised address is one of its own.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hidden_local_addresses_leave_only_the_advertised_one_and_it_plays() {
    let own = if_addrs::get_if_addrs()
        .expect("interfaces")
        .into_iter()
        .map(|i| i.ip())
        .find(|ip| ip.is_ipv4() && !ip.is_loopback())
        .expect("an IPv4 address");
    let mut cfg = Config::default();
    cfg.server.plain_http = true;
    cfg.webrtc.local_candidates = LocalCandidates::None;
    cfg.webrtc.advertise = vec![own.to_string()];
    cfg.streams = vec![common::small_stream("main")];
    let srv = common::start_with(cfg).await;
    let port = srv.server.forward.as_ref().expect("forward transport").port();

    let mut viewer = common::WebrtcbinViewer::new(96, "42e01f", true);
    let resp = srv.post_offer_with("main", &viewer.offer().await, None).await;
    assert_eq!(resp.status(), 201);
    viewer.location = Some(format!("{}{}", srv.base, resp.headers()["location"].to_str().expect("ascii")));
    let answer = resp.text().await.expect("answer");
    assert_eq!(candidates(&answer), vec![format!("{own} {port}")], "only the advertised address:\n{answer}");
    viewer.set_answer(&answer).await;
    assert!(viewer.gets_frames(30, 20).await, "the viewer plays over the advertised address");
    srv.shutdown().await;
}

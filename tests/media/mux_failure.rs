//! When the forwarding transport's media thread fails despite its guards (issue 17), glasscast says so
//! and gets out of the way of its supervisor: a panic ends the process with status 70 (not 2, so systemd's
//! `Restart=on-failure` with `RestartPreventExitStatus=2` restarts it) after logging why; a stuck loop makes
//! `/readyz` answer 503 with `mux.alive = false`. The faults are injected with `GLASSCAST_TEST_FAULT` when the
//! first viewer is added, into the real binary.

use crate::common;

use std::time::Duration;

use common::binary::Running;
use common::{WebrtcbinViewer, eventually_some};

/// `glasscast serve` (a small test stream, the forwarding transport on a free port) with `fault`.
async fn serve_with_fault(fault: &str) -> Running {
    let streams = "[webrtc]\nmux_port = 0\n[[streams]]\nname = \"main\"\nwidth = 320\nheight = 240\n";
    common::binary::serve(streams, &[("GLASSCAST_TEST_FAULT", fault)]).await
}

/// POSTs a viewer's offer (the mux gets its first peer); the answer may not come.
async fn add_a_viewer(base: &str) -> WebrtcbinViewer {
    let v = WebrtcbinViewer::new(96, "42e01f", true);
    let offer = v.offer().await;
    let _ = reqwest::Client::new()
        .post(format!("{base}/whep/main"))
        .header("content-type", "application/sdp")
        .body(offer)
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mux_panic_ends_the_process_with_status_70_and_says_why() {
    let mut gc = serve_with_fault("mux-panic").await;
    let _v = add_a_viewer(&gc.base).await;
    let exited = eventually_some(10, || std::future::ready(gc.child.try_wait().expect("wait"))).await;
    let status = exited.expect("glasscast still runs after its media thread panicked");
    assert_eq!(status.code(), Some(70), "{status:?}");
    let log = gc.kill_and_log();
    assert!(log.contains("media thread panicked") && log.contains("mux-panic"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stuck_mux_makes_the_server_unready_and_readyz_says_so() {
    let gc = serve_with_fault("mux-stall").await;
    let ready = gc.readyz().await;
    assert_eq!(ready["mux"]["alive"], true, "alive before the fault: {ready}");
    let _v = add_a_viewer(&gc.base).await;
    let readyz = || async {
        let r = reqwest::get(format!("{}/readyz", gc.base)).await.ok()?;
        let code = r.status();
        let body: serde_json::Value = serde_json::from_str(&r.text().await.unwrap_or_default()).unwrap_or_default();
        (code == 503 && body["mux"]["alive"] == false).then_some(body)
    };
    let last = eventually_some(20, readyz).await.expect("/readyz never said the mux was stuck");
    assert!(last["mux"]["last_loop_ms"].as_u64() >= Some(5000), "{last}");
}

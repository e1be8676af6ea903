//! When the forwarding transport's media thread fails despite its guards (issue 17), glasscast says so
//! and gets out of the way of its supervisor: a panic ends the process with status 70 (not 2, so systemd's
//! `Restart=on-failure` with `RestartPreventExitStatus=2` restarts it) after logging why; a stuck loop makes
//! `/readyz` answer 503 with `mux.alive = false`. The faults are injected with `GLASSCAST_TEST_FAULT` when the
//! first viewer is added, into the real binary.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::WebrtcbinViewer;

struct Running {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `glasscast serve` (plain HTTP on a free port, access control off, a small test stream) with `fault`.
async fn serve_with_fault(fault: &str) -> Running {
    common::init();
    let dir = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nplain_http = true\nstate_dir = \"{}\"\n[auth]\nmode = \"disabled\"\n\
         [metrics]\nenabled = false\n[webrtc]\nmux_port = 0\n[[streams]]\nname = \"main\"\nwidth = 320\nheight = 240\n",
        dir.path().join("state").display()
    );
    let path = dir.path().join("glasscast.toml");
    std::fs::write(&path, config).expect("config");
    let child = Command::new(env!("CARGO_BIN_EXE_glasscast"))
        .args(["--config", path.to_str().expect("utf-8"), "serve"])
        .env("GLASSCAST_TEST_FAULT", fault)
        .env_remove("GLASSCAST_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("glasscast starts");
    let base = format!("http://127.0.0.1:{port}");
    let up = common::eventually_async(30, || async {
        reqwest::get(format!("{base}/readyz")).await.is_ok_and(|r| r.status() == 200)
    })
    .await;
    assert!(up, "glasscast never got ready");
    Running { child, base, _dir: dir }
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
    let mut status = None;
    for _ in 0..100 {
        if let Some(s) = gc.child.try_wait().expect("wait") {
            status = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = status.expect("glasscast still runs after its media thread panicked");
    assert_eq!(status.code(), Some(70), "{status:?}");
    let mut log = String::new();
    std::io::Read::read_to_string(gc.child.stderr.as_mut().expect("stderr"), &mut log).expect("log");
    assert!(log.contains("media thread panicked") && log.contains("mux-panic"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stuck_mux_makes_the_server_unready_and_readyz_says_so() {
    let gc = serve_with_fault("mux-stall").await;
    let ready = reqwest::get(format!("{}/readyz", gc.base)).await.expect("readyz").text().await.expect("body");
    let ready: serde_json::Value = serde_json::from_str(&ready).expect("json");
    assert_eq!(ready["mux"]["alive"], true, "alive before the fault: {ready}");
    let _v = add_a_viewer(&gc.base).await;
    let mut last = serde_json::Value::Null;
    let mut unready = false;
    for _ in 0..200 {
        if let Ok(r) = reqwest::get(format!("{}/readyz", gc.base)).await {
            let code = r.status();
            last = serde_json::from_str(&r.text().await.unwrap_or_default()).unwrap_or_default();
            if code == 503 && last["mux"]["alive"] == false {
                unready = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(unready, "/readyz never said the mux was stuck: {last}");
    assert!(last["mux"]["last_loop_ms"].as_u64() >= Some(5000), "{last}");
}

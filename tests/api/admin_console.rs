//! The admin console (`/admin`, issue 20) in headless Chromium (`tests/browser/admin.mjs`) against a live
//! server with access control on: a wrong token gets the sign-in form and a message; the admin token shows
//! the streams and the session of a viewer this test started; kicking it ends the session on the server;
//! stopping and starting a stream from the page does so on the server. The stream table shows rates and a
//! bitrate sparkline; a push added on the page shows its state and is removed on the server. A link issued on the page plays in a
//! second page, and its QR code (as the page shows it, read by `zbarimg`) is that link; revoking it stops
//! that player and revokes the token on the server. Rotating and retiring a key leaves one key. The host
//! panel shows every on-call condition. No console error, no CSP violation; screenshots of each view in
//! artifacts/.

use crate::common;

use common::WebrtcbinViewer;
use common::admin::{ADMIN, issue, start_auth_with};
use glasscast::config::Transport;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_console_signs_in_shows_a_viewer_kicks_it_and_stops_and_starts_a_stream() {
    // The page adds a push to this origin (nothing listens there) and removes it.
    let srv = start_auth_with(Transport::Forward, |c| c.auth.push_allow = vec!["http://127.0.0.1:1".into()]).await;
    let token =
        issue(&srv, json!({ "stream": "main", "label": "desk" })).await["token"].as_str().expect("t").to_owned();
    let mut viewer = WebrtcbinViewer::new(96, "42e01f", true);
    viewer.connect_with(&srv, "main", Some(&token)).await;
    assert!(viewer.gets_frames(10, 20).await, "the test's viewer plays");
    let id = viewer.location.clone().expect("location").rsplit('/').next().expect("id").to_owned();

    let root = env!("CARGO_MANIFEST_DIR");
    std::fs::create_dir_all(format!("{root}/artifacts")).expect("artifacts dir");
    let mut node = tokio::process::Command::new("node");
    node.arg("tests/browser/admin.mjs")
        .args([srv.base.as_str(), ADMIN, "main", "other", &format!("{root}/artifacts")])
        .current_dir(root);
    let (report, exited_0, stderr) = common::script_report(&mut node).await;
    eprintln!("admin console: {report}");
    assert!(exited_0 && report["ok"] == true, "{report}\n{stderr}");
    assert_eq!(report["kicked"], id.as_str(), "the row kicked is the test's viewer: {report}");
    assert!(srv.server.sessions.sessions().await.iter().all(|s| s.id != id), "kicked on the server too");
    let other = srv.server.sessions.streams().await.into_iter().find(|s| s.name.as_str() == "other").expect("other");
    assert_ne!(other.state, "stopped", "started again from the page: {other:?}");

    let link = report["link"].as_str().expect("the issued link");
    assert_eq!(read_qr(&format!("{root}/artifacts/admin-qr.png")), link, "the QR code is the link");
    let tokens = common::admin::list_tokens(&srv).await;
    let phone = tokens.as_array().expect("tokens").iter().find(|t| t["label"] == "phone").expect("the page's link");
    assert_eq!((phone["stream"].as_str(), phone["max_sessions"].as_u64()), (Some("main"), Some(2)), "{phone}");
    assert_eq!(phone["revoked"], true, "revoked on the server: {phone}");
    assert_eq!(srv.server.auth.keys().len(), 1, "rotated, then the older key retired");
    let pushes = srv.server.sessions.health("other").await.expect("other").pushes;
    assert!(pushes.is_empty(), "the page's push was removed on the server: {pushes:?}");
    let conditions = report["conditions"].as_array().expect("conditions");
    assert_eq!(conditions.len(), 10, "{report}");
    // The push to nowhere failed: its warning is in the host panel's log.
    let host = report["steps"].as_array().and_then(|s| s.iter().find(|s| s["step"] == "host")).expect("host step");
    let logged = host["logged"].as_array().expect("log rows");
    assert!(
        logged.iter().any(|l| l.as_str().is_some_and(|l| l.contains("WARN") && l.contains("push failed"))),
        "{host}"
    );
    viewer.stop();
    srv.shutdown().await;
}

/// The text of the QR code in the image at `path` (`zbarimg`, Debian's zbar-tools).
fn read_qr(path: &str) -> String {
    let out = std::process::Command::new("zbarimg")
        .args(["--quiet", "--raw", path])
        .output()
        .expect("zbarimg (zbar-tools; scripts/install-deps.sh --test installs it)");
    assert!(out.status.success(), "zbarimg found no QR code in {path}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim_end().to_owned()
}

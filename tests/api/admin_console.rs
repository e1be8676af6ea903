//! The admin console (`/admin`, issue 20, first part) in headless Chromium (`tests/browser/admin.mjs`)
//! against a live server with access control on: a wrong token gets the sign-in form and a message; the
//! admin token shows the streams and the session of a viewer this test started; kicking it ends the session
//! on the server; stopping and starting a stream from the page does so on the server. No console error, no
//! CSP violation; screenshots of each view in artifacts/.

use crate::common;

use common::WebrtcbinViewer;
use common::admin::{ADMIN, issue, start_auth_with};
use glasscast::config::Transport;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_console_signs_in_shows_a_viewer_kicks_it_and_stops_and_starts_a_stream() {
    let srv = start_auth_with(Transport::Forward, |_| {}).await;
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
    viewer.stop();
    srv.shutdown().await;
}

//! Cascade: glasscast A (test source) pushes its stream over WHIP (gst-plugins-rs `whipclientsink`, fed from
//! A's encoder) to glasscast B, which relays it without an encoder; a webrtcbin viewer and headless Chromium
//! watching B decode A's frames. B going away makes A's push retry; B coming back gets A's picture again.

use crate::common;

use common::admin::{issue, start_auth_with};
use common::{WebrtcbinViewer, chromium_plays, eventually, eventually_async, small_stream, start_with};
use glasscast::config::{PushConfig, StreamConfig, Transport, VideoSource};
use serde_json::json;

/// A viewer token for every stream of `srv`.
async fn watch_any(srv: &common::TestServer) -> String {
    issue(srv, json!({ "stream": "*" })).await["token"].as_str().expect("t").to_owned()
}

async fn push_state(srv: &common::TestServer, stream: &str) -> Option<&'static str> {
    let h = srv.server.sessions.health(stream).await?;
    h.pushes.first().map(|p| p.state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stream_pushed_from_one_glasscast_plays_on_another() {
    let b = start_auth_with(Transport::Forward, |cfg| {
        let whip = |name| StreamConfig { source: VideoSource::Whip, ..small_stream(name) };
        cfg.streams = vec![whip("live"), whip("live2")];
    })
    .await;
    let publish =
        issue(&b, json!({ "stream": "live", "publish": true })).await["token"].as_str().expect("t").to_owned();
    let watch = issue(&b, json!({ "stream": "live" })).await["token"].as_str().expect("t").to_owned();

    let push = PushConfig { url: format!("{}/whip/live", b.base), token: Some(publish), token_file: None };
    // A lets its admin API push to B only (auth.push_allow; `[[streams.push]]` is not checked).
    let mut cfg = glasscast::config::Config::default();
    cfg.server.plain_http = true;
    cfg.auth.push_allow = vec![b.base.clone()];
    cfg.streams = vec![StreamConfig { push: vec![push], ..small_stream("main") }];
    let a = start_with(cfg).await;

    let connected = eventually_async(15, || async { push_state(&a, "main").await == Some("connected") }).await;
    assert!(connected, "A's push never connected: {:?}", a.server.sessions.health("main").await.map(|h| h.pushes));
    // Connected is not yet producing: B's stream is ready once A's first keyframe has arrived (a viewer
    // joining in between got 409, once in CI).
    assert!(
        eventually_async(15, || async { b.server.sessions.health("live").await.is_some_and(|h| h.producing()) }).await,
        "B's stream never produced A's frames"
    );
    let mut viewer = WebrtcbinViewer::new(96, "42e01f", true);
    viewer.connect_with(&b, "live", Some(&watch)).await;
    assert!(viewer.gets_frames(30, 20).await, "B's viewer decodes A's frames");
    assert_eq!(*viewer.size.lock().expect("size"), Some((320, 240)));
    assert!(eventually(10, || viewer.audio() > 10).await, "and A's audio");
    // B relays (no encoder); A encodes once (its one encoder feeds its own viewers and the push).
    assert_eq!(b.server.sessions.health("live").await.expect("health").encoder, "passthrough");
    chromium_plays(&b, &format!("/watch/live#token={watch}"), 320, 240).await;
    let health = a.server.sessions.health("main").await.expect("health");
    assert!(health.pushes[0].bytes_sent > 10_000, "{:?}", health.pushes);
    assert!(health.pushes[0].target.starts_with("http://127.0.0.1:"), "{:?}", health.pushes);

    viewer.stop();

    // The same, started from the CLI (`glasscast stream push`, the admin API) instead of the configuration.
    let publish2 =
        issue(&b, json!({ "stream": "live2", "publish": true })).await["token"].as_str().expect("t").to_owned();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_glasscast"))
        .args(["stream", "push", "main", &format!("{}/whip/live2", b.base), "--server", &a.base])
        .arg(format!("--admin-token={}", a.admin_token()))
        .env("GLASSCAST_PUSH_TOKEN", &publish2)
        .output()
        .expect("glasscast runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut second = WebrtcbinViewer::new(96, "42e01f", true);
    let joined = || async { b.server.sessions.health("live2").await.is_some_and(|h| h.producing()) };
    assert!(eventually_async(10, joined).await, "the pushed stream never arrived");
    second.connect_with(&b, "live2", Some(&watch_any(&b).await)).await;
    assert!(second.gets_frames(30, 20).await, "B's second stream plays A's frames too");
    second.stop();

    // `glasscast stream unpush main ID` (DELETE /api/v1/streams/main/push/ID) stops that push: A lists it no
    // more, B's publisher of live2 goes, and A's configured push to live goes on.
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let id = text.split(": push ").nth(1).and_then(|t| t.split(' ').next()).expect("the push's id").to_owned();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_glasscast"))
        .args(["stream", "unpush", "main", &id, "--server", &a.base])
        .arg(format!("--admin-token={}", a.admin_token()))
        .output()
        .expect("glasscast runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let pushes = a.server.sessions.health("main").await.expect("health").pushes;
    assert!(pushes.len() == 1 && pushes[0].id.to_string() != id, "{pushes:?}");
    let gone = || async { !b.server.sessions.health("live2").await.is_some_and(|h| h.producing()) };
    assert!(eventually_async(10, gone).await, "B's live2 still gets A's frames after the unpush");
    assert!(b.server.sessions.health("live").await.is_some_and(|h| h.producing()), "the other push goes on");
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_glasscast"))
        .args(["stream", "unpush", "main", &id, "--server", &a.base])
        .arg(format!("--admin-token={}", a.admin_token()))
        .output()
        .expect("glasscast runs");
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("no push with id"));
    a.shutdown().await;
    b.shutdown().await;
}

//! The admin API endpoints under the console (issue 20): the QR code of a link (`POST /api/v1/qr`), the host
//! panel (`GET /api/v1/host`), and retiring a signing key (`DELETE /api/v1/keys/{kid}`). Each refuses
//! what it should with problem+json, and what it answers is what the console needs.

use crate::common;

use common::admin::{ADMIN, issue, start_auth};
use serde_json::{Value, json};

async fn call(srv: &common::TestServer, method: reqwest::Method, path: &str, body: Option<Value>) -> reqwest::Response {
    let mut req = srv.http.request(method, format!("{}/api/v1{path}", srv.base)).bearer_auth(ADMIN);
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b.to_string());
    }
    req.send().await.expect("request")
}

async fn json(r: reqwest::Response) -> Value {
    serde_json::from_str(&r.text().await.expect("body")).expect("json")
}

async fn problem(r: reqwest::Response, status: u16, kind: &str) -> Value {
    assert_eq!(r.status(), status);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let p: Value = json(r).await;
    assert!(p["type"].as_str().is_some_and(|t| t.ends_with(kind)), "{p}");
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_qr_code_is_svg_for_the_admin_only_and_bad_text_is_refused() {
    let srv = start_auth().await;
    let link = format!("{}/watch/main#token=abc", srv.base);
    let r = call(&srv, reqwest::Method::POST, "/qr", Some(json!({ "text": link }))).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/svg+xml");
    assert_eq!(r.headers()["cache-control"], "no-store", "it may hold a token");
    let svg = r.text().await.expect("svg");
    assert!(svg.contains("<svg") && svg.contains("<path"), "{svg}");

    let too_long = call(&srv, reqwest::Method::POST, "/qr", Some(json!({ "text": "x".repeat(1001) }))).await;
    problem(too_long, 422, "bad-qr-text").await;
    let empty = call(&srv, reqwest::Method::POST, "/qr", Some(json!({ "text": "" }))).await;
    problem(empty, 422, "bad-qr-text").await;
    let junk = call(&srv, reqwest::Method::POST, "/qr", Some(json!({ "link": "x" }))).await;
    problem(junk, 400, "malformed-json").await;
    let plain =
        srv.http.post(format!("{}/api/v1/qr", srv.base)).bearer_auth(ADMIN).body("x").send().await.expect("post");
    assert_eq!(plain.status(), 415);
    let viewer = issue(&srv, json!({ "stream": "main" })).await["token"].as_str().expect("token").to_owned();
    let r = srv
        .http
        .post(format!("{}/api/v1/qr", srv.base))
        .bearer_auth(viewer)
        .header("content-type", "application/json")
        .body(json!({ "text": "x" }).to_string())
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 403, "a viewer token makes no QR codes");
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_panel_reports_resources_readiness_conditions_and_the_log() {
    let srv = start_auth().await;
    let r = call(&srv, reqwest::Method::GET, "/host", None).await;
    assert_eq!(r.status(), 200);
    let h: Value = json(r).await;
    assert_eq!(h["version"], env!("CARGO_PKG_VERSION"));
    assert!(h["cpus"].as_u64().is_some_and(|n| n >= 1), "{h}");
    assert!(h["rss_bytes"].as_u64().is_some_and(|n| n > 1 << 20), "{h}");
    assert!(h["open_files"].as_u64().is_some_and(|n| n > 3), "{h}");
    assert!(h["memory_total_bytes"].as_u64() > h["memory_available_bytes"].as_u64(), "{h}");
    assert!(h["state_dir_free_bytes"].as_u64().is_some_and(|n| n > 0), "{h}");
    assert!(h["ready"].is_boolean() && h["not_ready"].is_array() && h["log"].is_array(), "{h}");
    // Every condition is an alert of docs/alerts.yml, with the same runbook line.
    let alerts = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/alerts.yml")).expect("alerts.yml");
    let conditions = h["conditions"].as_array().expect("conditions");
    assert_eq!(conditions.len(), 10, "all but GlasscastDown (the console cannot see itself down): {h}");
    for c in conditions {
        let alert = c["alert"].as_str().expect("alert");
        assert!(alerts.contains(&format!("- alert: {alert}\n")), "{alert} is not in docs/alerts.yml");
        let runbook = c["runbook"].as_str().expect("runbook");
        assert!(alerts.contains(&format!("runbook: \"{runbook}\"")), "{alert}'s runbook differs from docs/alerts.yml");
        assert!(c["holds"].is_boolean() && c["detail"].as_str().is_some_and(|d| !d.is_empty()), "{c}");
    }
    let r = srv.http.get(format!("{}/api/v1/host", srv.base)).send().await.expect("get");
    problem(r, 401, "unauthorized").await;
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_signing_key_is_retired_and_the_current_one_is_not() {
    let srv = start_auth().await;
    let old = issue(&srv, json!({ "stream": "main" })).await["token"].as_str().expect("token").to_owned();
    let r = call(&srv, reqwest::Method::POST, "/keys/rotate", None).await;
    assert_eq!(r.status(), 201);
    let keys: Value = json(r).await;
    let kid = |current: bool| {
        keys.as_array().expect("keys").iter().find(|k| k["current"] == current).expect("key")["kid"]
            .as_str()
            .expect("kid")
            .to_owned()
    };
    let (older, current) = (kid(false), kid(true));
    problem(call(&srv, reqwest::Method::DELETE, &format!("/keys/{current}"), None).await, 409, "current-key").await;
    problem(call(&srv, reqwest::Method::DELETE, "/keys/nope", None).await, 404, "not-found").await;
    let streams = || srv.http.get(format!("{}/streams", srv.base)).bearer_auth(&old).send();
    assert_eq!(streams().await.expect("get").status(), 200, "the older key's token works until its key is retired");
    assert_eq!(call(&srv, reqwest::Method::DELETE, &format!("/keys/{older}"), None).await.status(), 204);
    assert_eq!(streams().await.expect("get").status(), 401, "its tokens stop working");
    let left: Value = json(call(&srv, reqwest::Method::GET, "/keys", None).await).await;
    assert_eq!(left.as_array().map(|k| k.len()), Some(1), "{left}");
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_gets_an_id_shows_in_readiness_and_is_removed_by_it() {
    let srv = common::admin::start_auth_with(glasscast::config::Transport::default(), |c| {
        c.auth.push_allow = vec!["http://127.0.0.1:1".into()];
    })
    .await;
    let body = json!({ "url": "http://127.0.0.1:1/whip/nowhere" });
    let r = call(&srv, reqwest::Method::POST, "/streams/main/push", Some(body)).await;
    assert_eq!(r.status(), 202);
    let id = json(r).await["id"].as_u64().expect("the push's id");
    let pushes = srv.server.sessions.health("main").await.expect("main").pushes;
    assert_eq!(pushes.iter().map(|p| u64::from(p.id)).collect::<Vec<_>>(), vec![id], "{pushes:?}");
    problem(call(&srv, reqwest::Method::DELETE, "/streams/main/push/x1", None).await, 400, "bad-push-id").await;
    problem(call(&srv, reqwest::Method::DELETE, "/streams/main/push/999", None).await, 404, "unknown-push").await;
    problem(
        call(&srv, reqwest::Method::DELETE, &format!("/streams/nope/push/{id}"), None).await,
        404,
        "unknown-stream",
    )
    .await;
    let r = call(&srv, reqwest::Method::DELETE, &format!("/streams/main/push/{id}"), None).await;
    assert_eq!(r.status(), 204);
    assert!(srv.server.sessions.health("main").await.expect("main").pushes.is_empty());
    problem(call(&srv, reqwest::Method::DELETE, &format!("/streams/main/push/{id}"), None).await, 404, "unknown-push")
        .await;
    srv.shutdown().await;
}

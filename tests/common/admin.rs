//! Helpers for tests that run with access control on: a server with a known admin token, and the admin
//! API calls they make.

use glasscast::config::{Config, Transport};
use serde_json::Value;

use super::{TestServer, small_stream, start_as_configured};

pub const ADMIN: &str = "test-admin-token-0123456789";

/// Access control on (the default), plain HTTP, streams `main` and `other`, no limit on refused tokens per
/// address (the abuse suite sends hundreds from 127.0.0.1; the limit has its own test).
pub async fn start_auth() -> TestServer {
    start_auth_with(Transport::default(), |_| {}).await
}

/// [`start_auth`] on `transport`, with `tweak` applied to the configuration last.
pub async fn start_auth_with(transport: Transport, tweak: impl FnOnce(&mut Config)) -> TestServer {
    let mut cfg = Config::default();
    cfg.server.plain_http = true;
    cfg.auth.admin_token = Some(ADMIN.into());
    cfg.auth.failures_burst = 0;
    cfg.webrtc.transport = transport;
    cfg.streams = vec![small_stream("main"), small_stream("other")];
    tweak(&mut cfg);
    start_as_configured(cfg).await
}

/// Issues a viewer token through the admin API.
pub async fn issue(srv: &TestServer, body: Value) -> Value {
    let r = srv
        .http
        .post(format!("{}/api/v1/tokens", srv.base))
        .bearer_auth(ADMIN)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("post");
    let status = r.status();
    let text = r.text().await.expect("body");
    assert_eq!(status, 201, "{text}");
    serde_json::from_str(&text).expect("json")
}

/// Revokes an issued token (the JSON `issue` returned) through the admin API.
pub async fn revoke(srv: &TestServer, issued: &Value) {
    let url = format!("{}/api/v1/tokens/{}", srv.base, issued["id"].as_str().expect("id"));
    let r = srv.http.delete(url).bearer_auth(ADMIN).send().await.expect("revoke");
    assert_eq!(r.status(), 204);
}

pub async fn list_tokens(srv: &TestServer) -> Value {
    let r = srv.http.get(format!("{}/api/v1/tokens", srv.base)).bearer_auth(ADMIN).send().await.expect("list");
    assert_eq!(r.status(), 200);
    serde_json::from_str(&r.text().await.expect("body")).expect("json")
}

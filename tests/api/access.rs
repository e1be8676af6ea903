//! Access control beyond the abuse suite (tests/api/auth.rs): refused tokens are limited per client address;
//! signing keys rotate (old tokens kept or retired, and a retired key's sessions end); the stream list, the
//! player page and /readyz tell strangers nothing; the admin session list carries the transport's stats;
//! HTML carries the security headers.

use crate::common;

use std::time::Duration;

use common::admin::*;
use common::*;
use glasscast::config::Transport;
use reqwest::Method;
use serde_json::{Value, json};

async fn get(srv: &TestServer, path: &str, token: Option<&str>) -> reqwest::Response {
    let mut req = srv.http.get(format!("{}{path}", srv.base));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.expect("request")
}

async fn json_of(r: reqwest::Response) -> Value {
    serde_json::from_str(&r.text().await.expect("body")).expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_address_that_keeps_sending_bad_tokens_is_refused_for_a_while() {
    let srv = start_auth_with(Transport::default(), |c| {
        c.auth.failures_burst = 3;
        c.auth.failures_per_minute = 1;
        // This client (loopback) is not trusted for the admin token here: below, the default.
        c.auth.admin_trusted.clear();
    })
    .await;
    // No token at all is not guessing: it never counts.
    for _ in 0..5 {
        assert_eq!(get(&srv, "/api/v1/streams", None).await.status(), 401);
    }
    for _ in 0..3 {
        assert_eq!(get(&srv, "/api/v1/streams", Some("wrong-token-0123456789")).await.status(), 401);
    }
    // The allowance is used up: even the right token is refused from this address until it refills.
    let r = get(&srv, "/api/v1/streams", Some(ADMIN)).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let wait: u64 = r.headers()["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    let body = json_of(r).await;
    assert_eq!(body["type"].as_str().map(|t| t.ends_with("too-many-auth-failures")), Some(true), "{body}");
    let offer = WebrtcbinViewer::new(96, "42e01f", true).offer().await;
    assert_eq!(srv.post_offer_with("main", &offer, Some(ADMIN)).await.status(), 429, "WHEP too");
    // What needs no token still works.
    assert_eq!(get(&srv, "/healthz", None).await.status(), 200);
    srv.shutdown().await;
}

/// `auth.admin_trusted` (loopback by default): a script on the server's own machine that keeps sending a
/// stale token uses up the address's allowance, and the admin on that machine still gets in with the admin
/// token; any other token from there is refused as from anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_admin_is_not_locked_out_of_its_own_machine_by_bad_tokens_from_it() {
    let srv = start_auth_with(Transport::default(), |c| {
        c.auth.failures_burst = 3;
        c.auth.failures_per_minute = 1;
    })
    .await;
    for _ in 0..3 {
        assert_eq!(get(&srv, "/api/v1/streams", Some("wrong-token-0123456789")).await.status(), 401);
    }
    assert_eq!(get(&srv, "/api/v1/streams", Some("wrong-token-0123456789")).await.status(), 429);
    assert_eq!(get(&srv, "/api/v1/streams", Some(ADMIN)).await.status(), 200, "the admin token from loopback");
    let viewer = issue(&srv, serde_json::json!({"stream": "main"})).await;
    let token = viewer["token"].as_str().expect("token");
    assert_eq!(get(&srv, "/streams", Some(token)).await.status(), 429, "other tokens from here are limited");
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotating_the_key_keeps_old_tokens_and_retiring_it_ends_their_sessions() {
    let srv = start_auth().await;
    let old = issue(&srv, json!({"stream": "main"})).await;
    let old_token = old["token"].as_str().expect("token").to_owned();
    let mut viewer = WebrtcbinViewer::new(96, "42e01f", true);
    viewer.connect_with(&srv, "main", Some(&old_token)).await;
    assert!(viewer.gets_frames(5, 20).await, "plays with the first key's token");

    let rotate = |body: Option<&'static str>| {
        let mut req = srv.http.post(format!("{}/api/v1/keys/rotate", srv.base)).bearer_auth(ADMIN);
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        req.send()
    };
    let r = rotate(None).await.expect("rotate");
    assert_eq!(r.status(), 201);
    let keys = json_of(r).await;
    assert_eq!(keys.as_array().map(Vec::len), Some(2), "{keys}");
    assert_eq!(keys.as_array().expect("keys").iter().filter(|k| k["current"] == true).count(), 1);
    assert!(!serde_json::to_string(&keys).expect("text").contains("key\":"), "never the keys themselves");
    assert_eq!(get(&srv, "/streams", Some(&old_token)).await.status(), 200, "old tokens keep working");
    let new = issue(&srv, json!({"stream": "main"})).await;
    let new_token = new["token"].as_str().expect("token").to_owned();
    assert!(viewer.gets_frames(viewer.frames() + 5, 10).await, "the old token's session plays on");

    // Bad bodies are explained and change nothing.
    let r = rotate(Some(r#"{"retire":true}"#)).await.expect("rotate");
    assert_eq!(r.status(), 400);
    assert_eq!(json_of(get(&srv, "/api/v1/keys", Some(ADMIN)).await).await.as_array().map(Vec::len), Some(2));

    // Retiring: only a new key is left; every earlier token is refused and its session ends within 5 s.
    let r = rotate(Some(r#"{"retire_previous":true}"#)).await.expect("rotate");
    assert_eq!(r.status(), 201);
    assert_eq!(json_of(r).await.as_array().map(Vec::len), Some(1));
    for t in [&old_token, &new_token] {
        assert_eq!(get(&srv, "/streams", Some(t)).await.status(), 401);
    }
    let id = session_of(&viewer);
    assert!(srv.session_ends(id, 5).await, "the retired key's session still runs after 5 s");
    let fresh = issue(&srv, json!({"stream": "main"})).await;
    assert_eq!(get(&srv, "/streams", fresh["token"].as_str()).await.status(), 200, "new tokens work");
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_stream_list_player_page_and_readyz_tell_strangers_nothing() {
    let srv = start_auth().await;
    let names = |v: &Value| -> Vec<String> {
        v.as_array().expect("array").iter().map(|s| s["name"].as_str().expect("name").to_owned()).collect()
    };
    assert_eq!(get(&srv, "/streams", None).await.status(), 401);
    let main = issue(&srv, json!({"stream": "main"})).await;
    let every = issue(&srv, json!({"stream": "*"})).await;
    assert_eq!(names(&json_of(get(&srv, "/streams", main["token"].as_str()).await).await), ["main"]);
    assert_eq!(names(&json_of(get(&srv, "/streams", every["token"].as_str()).await).await), ["main", "other"]);
    assert_eq!(names(&json_of(get(&srv, "/streams", Some(ADMIN)).await).await), ["main", "other"]);
    // A `*` link opens the stream list, which carries the token on to each player.
    assert_eq!(every["watch_path"], format!("/#token={}", every["token"].as_str().expect("t")));

    // The index page holds no stream names; the player page is the same for a stream that does not exist.
    let index = get(&srv, "/", None).await.text().await.expect("html");
    assert!(!index.contains("/watch/") && !index.contains("other"), "{index}");
    let real = get(&srv, "/watch/main", None).await;
    assert_eq!(real.status(), 200);
    let real = real.text().await.expect("html");
    let fake = get(&srv, "/watch/nosuchstream", None).await;
    assert_eq!(fake.status(), 200);
    assert_eq!(fake.text().await.expect("html"), real);
    assert_eq!(get(&srv, "/watch/bad%20name", None).await.status(), 404, "not a stream name at all");

    // /readyz: status and counts for anyone; which stream and why only with the admin token.
    let r = get(&srv, "/readyz", None).await;
    assert_eq!(r.status(), 200);
    let open = json_of(r).await;
    assert_eq!(open, json!({"ready": true, "streams": 2, "streams_ready": 2}));
    let full = json_of(get(&srv, "/readyz", Some(ADMIN)).await).await;
    assert_eq!(full["streams"][0]["name"], "main", "{full}");
    assert_eq!(get(&srv, "/readyz", main["token"].as_str()).await.status(), 403, "a viewer token is not admin");
    assert_eq!(get(&srv, "/readyz", Some("not-the-admin-token")).await.status(), 401);
    srv.shutdown().await;
}

/// The admin list of sessions says where each viewer is and how its connection does, on both transports.
async fn session_list_has_transport_stats(transport: Transport) {
    let srv = start_auth_with(transport, |_| {}).await;
    let t = issue(&srv, json!({"stream": "main", "label": "desk"})).await;
    let mut viewer = WebrtcbinViewer::new(96, "42e01f", true);
    viewer.connect_with(&srv, "main", t["token"].as_str()).await;
    assert!(viewer.gets_frames(10, 20).await, "plays");
    // Stats come with RTCP receiver reports (every 1 to 5 s) and are folded every 2 s; str0m reports a loss
    // fraction once two reports fall in one period.
    let first = || async { json_of(get(&srv, "/api/v1/sessions", Some(ADMIN)).await).await[0].clone() };
    let complete = |s: &Value| {
        let reports = ["rtt_ms", "fraction_lost"].iter().all(|k| s[k].is_number());
        let path = s["candidate_type"].is_string() && s["protocol"].is_string();
        reports && path && s["remote_address"].is_string() && s["bytes_sent"].as_u64() > Some(0)
    };
    let last = match eventually_some(15, || async { Some(first().await).filter(complete) }).await {
        Some(s) => s,
        None => first().await,
    };
    eprintln!("{transport:?}: {last}");
    assert_eq!(last["label"], "desk");
    assert!(last["client"].as_str().is_some_and(|c| c.starts_with("127.0.0.1:")), "{last}");
    let remote: std::net::SocketAddr =
        last["remote_address"].as_str().and_then(|a| a.parse().ok()).unwrap_or_else(|| panic!("{last}"));
    assert_ne!(remote.port(), 0);
    // The path the media took: a host candidate of ours over UDP (the loopback viewer has UDP).
    assert_eq!((last["candidate_type"].as_str(), last["protocol"].as_str()), (Some("host"), Some("udp")), "{last}");
    assert!(last["bytes_sent"].as_u64() > Some(10_000) && last["packets_sent"].as_u64() > Some(10), "{last}");
    let rtt = last["rtt_ms"].as_f64().unwrap_or_else(|| panic!("no RTT: {last}"));
    assert!((0.0..1000.0).contains(&rtt), "{last}");
    let lost = last["fraction_lost"].as_f64().unwrap_or_else(|| panic!("no loss figure: {last}"));
    assert!((0.0..=1.0).contains(&lost), "{last}");
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn session_list_has_transport_stats_forward() {
    session_list_has_transport_stats(Transport::Forward).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn session_list_has_transport_stats_webrtcbin() {
    session_list_has_transport_stats(Transport::Webrtcbin).await;
}

/// Every `<script>` in a page must load a file: the CSP forbids inline script.
fn inline_scripts(html: &str) -> usize {
    html.match_indices("<script").filter(|(i, _)| !html[*i..].split('>').next().unwrap_or("").contains("src=")).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn html_has_security_headers_and_hsts_only_over_tls() {
    for tls in [false, true] {
        let srv = start_auth_with(Transport::default(), |c| c.server.plain_http = !tls).await;
        for path in ["/", "/watch/main"] {
            let r = get(&srv, path, None).await;
            assert_eq!(r.status(), 200, "{path}");
            let h = r.headers().clone();
            let csp = h["content-security-policy"].to_str().expect("ascii").to_owned();
            assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{path}: {csp}");
            assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
            assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
            assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
            assert_eq!(h.contains_key("strict-transport-security"), tls, "{path}: HSTS only over TLS");
            assert_eq!(inline_scripts(&r.text().await.expect("html")), 0, "{path} has inline script");
        }
        srv.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_route_with_a_body_refuses_an_oversized_one_even_from_the_admin() {
    let srv = start_auth().await;
    let doc = json_of(get(&srv, "/api/v1/openapi.json", None).await).await;
    let big = "a".repeat(glasscast::http::MAX_BODY + 1);
    let mut checked = 0;
    for (template, ops) in doc["paths"].as_object().expect("paths") {
        for (method, op) in ops.as_object().expect("operations") {
            let Some(ct) = op["requestBody"]["content"].as_object().and_then(|c| c.keys().next().cloned()) else {
                continue;
            };
            let path = template
                .replace("{stream}", "main")
                .replace("{id}", "0123456789abcdef0123456789abcdef")
                .replace("{name}", "main");
            let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).expect("method");
            let r = srv
                .http
                .request(method.clone(), format!("{}{path}", srv.base))
                .bearer_auth(ADMIN)
                .header("content-type", ct)
                .body(big.clone())
                .send()
                .await
                .expect("request");
            assert_eq!(r.status(), 413, "{method} {path}");
            assert_eq!(r.headers()["content-type"], "application/problem+json", "{method} {path}");
            checked += 1;
        }
    }
    assert_eq!(checked, 8, "WHEP and WHIP POST and PATCH, token issue, key rotation, push, QR code");
    assert_eq!(json_of(get(&srv, "/api/v1/keys", Some(ADMIN)).await).await.as_array().map(Vec::len), Some(1));
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_that_stalls_its_body_gets_408_and_others_are_served_meanwhile() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let srv = start_auth_with(Transport::default(), |c| c.server.request_timeout_s = 1).await;
    let addr = srv.base.trim_start_matches("http://").to_owned();
    let mut stalled = tokio::net::TcpStream::connect(&addr).await.expect("connect");
    let head = format!(
        "POST /whep/main HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {ADMIN}\r\n\
         Content-Type: application/sdp\r\nContent-Length: 1000\r\n\r\nv=0\r\n"
    );
    stalled.write_all(head.as_bytes()).await.expect("write");
    // Meanwhile other requests are answered.
    assert_eq!(get(&srv, "/healthz", None).await.status(), 200);
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 4096];
        loop {
            let n = stalled.read(&mut buf).await.expect("read");
            answer.extend_from_slice(&buf[..n]);
            if n == 0 || String::from_utf8_lossy(&answer).contains("\r\n\r\n{") {
                break;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer to a stalled request");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("application/problem+json"), "{text}");
    assert_eq!(srv.server.sessions.streams().await.iter().map(|s| s.viewers).sum::<usize>(), 0);
    srv.shutdown().await;
}

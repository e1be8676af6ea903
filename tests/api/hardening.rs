//! Hostile and careless clients (issue 17) against a live server: slow and half-open connections
//! (slowloris, over TLS and plain HTTP) are closed by the header and idle timeouts while `/healthz` answers
//! throughout; a client address over its connection share is closed at once and others are served; an
//! error answer to a request whose body is not read says `Connection: close`; with watching open
//! (`auth.mode = "disabled"`) the admin API still needs the admin token, and pushes only where
//! `auth.push_allow` says; a publish token lists no streams; a token's `max_sessions` holds against
//! concurrent POSTs.

use crate::common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::admin::{ADMIN, issue, start_auth_with};
use common::*;
use glasscast::config::{Config, Transport};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A connection from `from` (any 127.0.0.0/8 address: one "client") to `to`.
async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.bind(format!("{from}:0").parse().expect("addr")).expect("bind");
    socket.connect(to).await.expect("connect")
}

/// Whether the server closes `s` within `secs` (EOF or a reset on read).
async fn closed_within(s: &mut (impl AsyncReadExt + Unpin), secs: u64) -> bool {
    closed_by(s, tokio::time::Instant::now() + Duration::from_secs(secs)).await
}

/// How many of `conns` the server has not closed `secs` from now (one deadline for all of them).
async fn still_open_after(conns: &mut [impl AsyncReadExt + Unpin], secs: u64) -> usize {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    let mut open = 0;
    for s in conns {
        if !closed_by(s, deadline).await {
            open += 1;
        }
    }
    open
}

/// Whether the server closes `s` by `deadline`.
async fn closed_by(s: &mut (impl AsyncReadExt + Unpin), deadline: tokio::time::Instant) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// `/healthz` from 127.0.0.1 answers 200.
/// The value of an unlabelled metric in a Prometheus scrape.
fn gauge_value(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

async fn healthy(srv: &TestServer) -> bool {
    let r = srv.http.get(format!("{}/healthz", srv.base)).send().await;
    r.is_ok_and(|r| r.status() == 200)
}

fn limited(plain_http: bool, tweak: impl FnOnce(&mut glasscast::config::ConnLimits)) -> Config {
    let mut cfg = Config::default();
    cfg.server.plain_http = plain_http;
    cfg.server.limits.header_timeout_s = 2;
    cfg.server.limits.idle_timeout_s = 3;
    tweak(&mut cfg.server.limits);
    cfg.streams = vec![small_stream("main")];
    cfg
}

/// A rustls client that trusts the server's own certificate.
fn tls_connector(srv: &TestServer) -> tokio_rustls::TlsConnector {
    use rustls_pki_types::pem::PemObject;
    let pem = std::fs::read(&srv.server.tls.as_ref().expect("TLS").cert_path).expect("cert");
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.expect("pem")).expect("a root");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

/// 200 TLS connections that finish the handshake and then send half a request header, and 100 that never
/// start TLS: every one is closed (header timeout 2 s; TLS handshake timeout 10 s) and `/healthz` answers
/// all the while.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slowloris_over_tls_is_closed_by_the_timeouts_and_healthz_answers_throughout() {
    let srv = start_with(limited(false, |_| {})).await;
    let connector = tls_connector(&srv);
    let mut half = Vec::new();
    for i in 0..200 {
        let tcp = connect_from(&format!("127.0.1.{}", i % 4 + 1), srv.server.addr).await;
        let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
        let mut tls = connector.connect(name, tcp).await.expect("TLS handshake");
        tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ").await.expect("half a header");
        half.push(tls);
    }
    let mut silent = Vec::new();
    for i in 0..100 {
        silent.push(connect_from(&format!("127.0.2.{}", i % 4 + 1), srv.server.addr).await);
    }
    assert!(healthy(&srv).await, "/healthz answers with 300 slow connections open");
    let open = still_open_after(&mut half, 10).await;
    assert_eq!(open, 0, "half-header TLS connections still open 10 s on (header timeout 2 s)");
    assert!(healthy(&srv).await, "/healthz answers after the header timeout");
    assert_eq!(still_open_after(&mut silent, 15).await, 0, "connections that never started TLS still open");
    assert!(healthy(&srv).await);
    srv.shutdown().await;
}

/// Plain HTTP: a header sent a byte at a time (each byte inside the idle timeout) is cut off by the header
/// timeout; a connection that sends nothing is closed by the idle timeout; a kept-alive connection too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_trickled_header_and_a_silent_connection_are_closed() {
    let srv = start_with(limited(true, |_| {})).await;
    let mut trickle = connect_from("127.0.3.1", srv.server.addr).await;
    let mut cut = false;
    for b in b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".iter() {
        if trickle.write_all(&[*b]).await.is_err() || closed_within(&mut trickle, 1).await {
            cut = true;
            break;
        }
    }
    assert!(cut, "a header trickled over 40+ s was never cut off");
    let mut silent = connect_from("127.0.3.2", srv.server.addr).await;
    assert!(closed_within(&mut silent, 10).await, "a silent connection is closed by the idle timeout");
    let mut kept = connect_from("127.0.3.3", srv.server.addr).await;
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").await.expect("request");
    assert!(closed_within(&mut kept, 10).await, "an idle kept-alive connection is closed");
    srv.shutdown().await;
}

/// With 20 connections per client, a client holding 20 gets its 21st closed at once; another client (and
/// the same one once it closed some) is served; the refusals are counted in the metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_over_its_connection_share_is_closed_and_others_are_served() {
    let srv = start_with(limited(true, |l| {
        l.idle_timeout_s = 60;
        l.header_timeout_s = 60;
        l.max_connections_per_client = 20;
    }))
    .await;
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(connect_from("127.0.4.1", srv.server.addr).await);
    }
    assert!(healthy(&srv).await, "another client is served");
    // Each connection is admitted in a task of its own, in no set order: the 21st is the 21st only once
    // the 20 (and the pooled one `healthy` used) are counted.
    let counted = eventually_async(10, || async {
        let text = metrics_text(&srv).await;
        gauge_value(&text, "glasscast_http_connections_open").is_some_and(|n| n >= 21.0)
    });
    assert!(counted.await, "the 20 connections are admitted: {}", metrics_text(&srv).await);
    let mut extra = connect_from("127.0.4.1", srv.server.addr).await;
    extra.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").await.ok();
    assert!(closed_within(&mut extra, 5).await, "the 21st connection of one client is closed");
    held.truncate(10);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut again = connect_from("127.0.4.1", srv.server.addr).await;
    again.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await.expect("send");
    let mut answer = String::new();
    again.read_to_string(&mut answer).await.ok();
    assert!(answer.starts_with("HTTP/1.1 200"), "served again once it closed some: {answer:?}");
    let metrics = metrics_text(&srv).await;
    assert!(
        metrics.lines().any(|l| l.starts_with("glasscast_http_connections_refused_total{limit=\"per-client\"}")),
        "counted: {metrics}"
    );
    srv.shutdown().await;
}

/// A 413 (the body is not read past the limit) and a 415 (not read at all) say `Connection: close`, so a
/// pooling client does not send its next request into a connection the server closes; that client's next
/// request then works.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_error_before_the_body_is_read_closes_the_connection_and_says_so() {
    let srv = start(vec![small_stream("main")]).await;
    let url = format!("{}/whep/main", srv.base);
    let big = "v=0\r\n".repeat(20_000);
    let r = srv.http.post(&url).header("content-type", "application/sdp").body(big).send().await.expect("post");
    assert_eq!(r.status(), 413);
    assert_eq!(r.headers().get("connection").map(|v| v.to_str().ok()), Some(Some("close")), "{:?}", r.headers());
    let r = srv.http.post(&url).header("content-type", "text/plain").body("v=0\r\n").send().await.expect("post");
    assert_eq!(r.status(), 415);
    assert_eq!(r.headers().get("connection").map(|v| v.to_str().ok()), Some(Some("close")));
    assert!(healthy(&srv).await, "the same pooled client's next request works");
    srv.shutdown().await;
}

/// `auth.mode = "disabled"` opens watching, not the admin API: no token gets 401 on every admin route;
/// the admin token works; `open_admin_api = true` opens it (the tests' own servers never do).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watching_without_a_token_does_not_open_the_admin_api() {
    let srv = start(vec![small_stream("main")]).await;
    let admin = srv.admin_token();
    for (method, path) in [
        (reqwest::Method::GET, "/api/v1/sessions"),
        (reqwest::Method::GET, "/api/v1/tokens"),
        (reqwest::Method::POST, "/api/v1/streams/main/stop"),
        (reqwest::Method::POST, "/api/v1/keys/rotate"),
        (reqwest::Method::DELETE, "/api/v1/sessions/0123456789abcdef0123456789abcdef"),
    ] {
        let url = format!("{}{path}", srv.base);
        let r = srv.http.request(method.clone(), &url).send().await.expect("request");
        assert_eq!(r.status(), 401, "{method} {path} without a token");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
    }
    let r = srv.http.get(format!("{}/api/v1/sessions", srv.base)).bearer_auth(&admin).send().await.expect("get");
    assert_eq!(r.status(), 200, "the admin token works");
    srv.shutdown().await;

    let mut cfg = Config::default();
    cfg.server.plain_http = true;
    cfg.auth.open_admin_api = true;
    cfg.streams = vec![small_stream("main")];
    let open = start_with(cfg).await;
    let r = open.http.get(format!("{}/api/v1/sessions", open.base)).send().await.expect("get");
    assert_eq!(r.status(), 200, "open_admin_api opens it");
    open.shutdown().await;
}

/// The admin API pushes only to an origin in `auth.push_allow`: another host (the metadata address clouds
/// use, a LAN device) gets 403 naming the setting, a URL that is neither WHIP nor Janus 400; the allowed
/// origins 202 (a Janus room's origin is its WebSocket's, `ws://host:port`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pushes_go_only_where_push_allow_says() {
    let srv = start_auth_with(Transport::Forward, |cfg| {
        cfg.auth.push_allow = vec!["http://198.18.0.9:8080".into(), "ws://198.18.0.9:8188".into()]
    })
    .await;
    let push = |url: &'static str| {
        let srv = &srv;
        async move {
            let r = srv
                .http
                .post(format!("{}/api/v1/streams/main/push", srv.base))
                .bearer_auth(ADMIN)
                .header("content-type", "application/json")
                .body(json!({ "url": url }).to_string())
                .send()
                .await
                .expect("post");
            (r.status().as_u16(), r.text().await.expect("body"))
        }
    };
    let (status, body) = push("http://169.254.169.254/latest/meta-data").await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("push-not-allowed") && body.contains("auth.push_allow"), "{body}");
    assert_eq!(push("http://198.18.0.9:9999/whip").await.0, 403, "another port is another origin");
    assert_eq!(push("file:///etc/passwd").await.0, 400);
    assert_eq!(push("http://198.18.0.9:8080/whip/x").await.0, 202, "the allowed origin");
    assert_eq!(push("janus+ws://198.18.0.9:8188/?room=1234&feed=7").await.0, 202, "the allowed Janus origin");
    assert_eq!(push("janus+wss://198.18.0.9:8188/?room=1234").await.0, 403, "wss is another origin");
    assert_eq!(push("janus+ws://198.18.0.10:8188/?room=1234").await.0, 403, "another Janus host");
    let (status, body) = push("janus+ws://198.18.0.9:8188/").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("bad-url") && body.contains("room=ROOM"), "a Janus URL without a room says so: {body}");
    let (status, body) = push("janus+ws://198.18.0.9:8188/?room=1&pin=x").await;
    assert!(status == 400 && body.contains("`pin`"), "{status} {body}");
    srv.shutdown().await;
}

/// A publish token is for publishing: `GET /streams` refuses it (403) rather than listing the streams.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_publish_token_lists_no_streams() {
    let srv = start_auth_with(Transport::Forward, |_| {}).await;
    let publish =
        issue(&srv, json!({ "stream": "main", "publish": true })).await["token"].as_str().expect("t").to_owned();
    let r = srv.http.get(format!("{}/streams", srv.base)).bearer_auth(&publish).send().await.expect("get");
    assert_eq!(r.status(), 403);
    let viewer = issue(&srv, json!({ "stream": "main" })).await["token"].as_str().expect("t").to_owned();
    let r = srv.http.get(format!("{}/streams", srv.base)).bearer_auth(&viewer).send().await.expect("get");
    assert_eq!(r.status(), 200);
    srv.shutdown().await;
}

/// Eight POSTs at once with a token allowed two sessions: two are created, six get 429, whatever the order
/// in which their negotiations finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn max_sessions_holds_against_concurrent_posts() {
    let srv = start_auth_with(Transport::Forward, |_| {}).await;
    let token =
        issue(&srv, json!({ "stream": "main", "max_sessions": 2 })).await["token"].as_str().expect("t").to_owned();
    let offer = WebrtcbinViewer::new(96, "42e01f", true).offer().await;
    let posts = (0..8).map(|_| srv.post_offer_with("main", &offer, Some(&token)));
    let statuses: Vec<u16> = futures::future::join_all(posts).await.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 2, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 6, "{statuses:?}");
    srv.shutdown().await;
}

//! The HTTP rules that need no media, checked on the router itself with `oneshot` (axum's testing example):
//! a session manager with no stream and no transport, so no GStreamer, no socket and no browser. Content
//! types, body limits, malformed SDP, unknown streams and sessions, tokens and CORS preflights each get
//! their status and a problem body. What needs a playing stream (and a peer that is not ours) stays in
//! tests/api/whep_errors.rs.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use tower::ServiceExt;

use super::{AppState, router};
use crate::auth::Auth;
use crate::config::{AuthMode, Config};

const ADMIN: &str = "an-admin-token-for-the-rules-suite";

/// The router over a manager with no streams; `required`: access control on (else disabled).
fn app(required: bool, dir: &std::path::Path) -> axum::Router {
    let mut cfg = Config::default();
    cfg.streams.clear();
    cfg.server.state_dir = dir.to_path_buf();
    cfg.auth.admin_token = Some(ADMIN.into());
    if !required {
        cfg.auth.mode = AuthMode::Disabled;
    }
    let (auth, _) = Auth::load(&cfg.auth, dir).expect("auth");
    let (media, _events) = crate::session::lifecycle::Media::none();
    let sessions = crate::session::spawn(media, std::time::Duration::from_secs(30), auth.clone(), dir.to_path_buf());
    router(AppState::new(sessions, auth, &cfg), &cfg.server.cors_origins)
}

/// A request as a client sends it (with its `Content-Length`).
fn request(method: Method, uri: &str, content_type: Option<&str>, body: impl AsRef<[u8]>) -> Request<Body> {
    let body = body.as_ref().to_vec();
    let mut r = Request::builder().method(method).uri(uri);
    if let Some(ct) = content_type {
        r = r.header(header::CONTENT_TYPE, ct);
    }
    if !body.is_empty() {
        r = r.header(header::CONTENT_LENGTH, body.len());
    }
    r.body(Body::from(body)).expect("a request")
}

/// Sends `req` and checks the answer is `status` with a problem body whose detail mentions `needle`.
async fn problem(app: &axum::Router, req: Request<Body>, status: StatusCode, needle: &str) -> axum::http::HeaderMap {
    let what = format!("{} {}", req.method(), req.uri());
    let resp = app.clone().oneshot(req).await.expect("infallible");
    assert_eq!(resp.status(), status, "{what}");
    let headers = resp.headers().clone();
    assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json", "{what}");
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 16).await.expect("body");
    let body: serde_json::Value = serde_json::from_slice(&bytes).expect("problem json");
    assert_eq!(body["status"], status.as_u16(), "{what}");
    let detail = body["detail"].as_str().expect("detail");
    assert!(detail.contains(needle), "{what}: detail `{detail}` does not mention `{needle}`");
    headers
}

#[tokio::test]
async fn whep_and_whip_requests_get_their_status_and_a_problem_body() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = app(false, dir.path());
    let sdp = Some("application/sdp");
    let frag = Some("application/trickle-ice-sdpfrag");
    for path in ["/whep/main", "/whip/main"] {
        let req = request(Method::POST, path, Some("text/plain"), "v=0\r\n");
        problem(&app, req, StatusCode::UNSUPPORTED_MEDIA_TYPE, "application/sdp").await;
        problem(&app, request(Method::POST, path, None, "v=0\r\n"), StatusCode::UNSUPPORTED_MEDIA_TYPE, "none").await;
        // Over 64 KiB: 413, and the connection is closed (the body was not read).
        let headers =
            problem(&app, request(Method::POST, path, sdp, vec![b'a'; 70_000]), StatusCode::PAYLOAD_TOO_LARGE, "65536")
                .await;
        assert_eq!(headers[header::CONNECTION], "close");
    }
    // An unknown stream is a 404 whatever the offer (a malformed one for a real stream: whep_errors.rs).
    problem(&app, request(Method::POST, "/whep/main", sdp, "this is not sdp"), StatusCode::NOT_FOUND, "main").await;
    problem(&app, request(Method::POST, "/whep/Bad%20Name", sdp, "v=0\r\n"), StatusCode::NOT_FOUND, "stream").await;
    let unknown = "/whep/sessions/0123456789abcdef0123456789abcdef";
    let end = "a=end-of-candidates\r\n";
    problem(&app, request(Method::PATCH, unknown, frag, end), StatusCode::NOT_FOUND, "session").await;
    problem(&app, request(Method::PATCH, unknown, sdp, end), StatusCode::UNSUPPORTED_MEDIA_TYPE, "trickle-ice-sdpfrag")
        .await;
    problem(&app, request(Method::DELETE, unknown, None, ""), StatusCode::NOT_FOUND, "session").await;
    problem(&app, request(Method::DELETE, "/whep/sessions/not-an-id", None, ""), StatusCode::NOT_FOUND, "session")
        .await;
}

#[tokio::test]
async fn tokens_are_required_and_checked_before_anything_is_done() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = app(true, dir.path());
    let offer = || request(Method::POST, "/whep/main", Some("application/sdp"), "v=0\r\n");
    let headers = problem(&app, offer(), StatusCode::UNAUTHORIZED, "token").await;
    assert!(headers[header::WWW_AUTHENTICATE].to_str().expect("ascii").starts_with("Bearer"));
    let mut forged = offer();
    forged.headers_mut().insert(header::AUTHORIZATION, "Bearer not.a.jwt".parse().expect("a header"));
    problem(&app, forged, StatusCode::UNAUTHORIZED, "token").await;
    let admin = || request(Method::GET, "/api/v1/sessions", None, "");
    problem(&app, admin(), StatusCode::UNAUTHORIZED, "token").await;
    let mut with_admin = admin();
    with_admin.headers_mut().insert(header::AUTHORIZATION, format!("Bearer {ADMIN}").parse().expect("a header"));
    let resp = app.clone().oneshot(with_admin).await.expect("infallible");
    assert_eq!(resp.status(), StatusCode::OK, "the admin token opens the admin API");
}

#[tokio::test]
async fn a_cors_preflight_advertises_whep_without_a_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = app(true, dir.path());
    let req = Request::builder()
        .method(Method::OPTIONS)
        .uri("/whep/main")
        .header(header::ORIGIN, "https://player.example")
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "content-type, authorization")
        .body(Body::empty())
        .expect("a request");
    let resp = app.oneshot(req).await.expect("infallible");
    assert!(resp.status().is_success(), "{}", resp.status());
    let h = resp.headers();
    assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    assert_eq!(h["accept-post"], "application/sdp");
    let methods = h[header::ACCESS_CONTROL_ALLOW_METHODS].to_str().expect("ascii");
    assert!(methods.contains("POST") && methods.contains("PATCH") && methods.contains("DELETE"), "{methods}");
}

/// What a tracing subscriber writes, for a test to read.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("capture lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_signed_links_query_is_never_logged_even_at_trace_level() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = app(true, dir.path());
    let out = Captured::default();
    let writer = out.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let uri = "/api/v1/streams/main/recordings/20261207T120000Z.mp4?exp=1799999999&sig=THE-SIGNATURE";
    let logged = || String::from_utf8(out.0.lock().expect("capture lock").clone()).expect("utf-8");
    // Another test thread setting its own subscriber can leave the span's callsite disabled for a moment
    // (tracing caches interest per callsite): ask again until the span is there.
    for _ in 0..20 {
        tracing::callsite::rebuild_interest_cache();
        let resp = app.clone().oneshot(request(Method::GET, uri, None, "")).await.expect("infallible");
        assert!(resp.status().is_client_error(), "{}", resp.status());
        if logged().contains("request{") {
            break;
        }
    }
    let logged = logged();
    assert!(logged.contains("/api/v1/streams/main/recordings/20261207T120000Z.mp4"), "the path is logged: {logged}");
    assert!(!logged.contains("THE-SIGNATURE") && !logged.contains("exp="), "the query is not: {logged}");
}

#[tokio::test]
async fn a_label_with_a_control_or_bidi_override_character_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = app(true, dir.path());
    let issue = |label: &str| {
        let body = serde_json::json!({"stream": "*", "label": label}).to_string();
        let mut r = request(Method::POST, "/api/v1/tokens", Some("application/json"), body);
        r.headers_mut().insert(header::AUTHORIZATION, format!("Bearer {ADMIN}").parse().expect("a header"));
        r
    };
    for label in ["invoice\u{202e}fdp.exe", "two\nlines", "bell\u{7}"] {
        problem(&app, issue(label), StatusCode::BAD_REQUEST, "U+").await;
    }
    let resp = app.clone().oneshot(issue("Büro – Bildschirm 2")).await.expect("infallible");
    assert_eq!(resp.status(), StatusCode::CREATED, "a label in any script is taken");
}

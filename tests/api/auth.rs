//! Access control, with the default `auth.mode = "required"`: every WHEP and admin route refuses missing,
//! malformed, wrong-scheme, forged, foreign-key, expired, revoked and out-of-scope tokens with the RFC 6750
//! status and challenge and a problem body, and changes nothing; a session belongs to the token that made
//! it; revoking a token ends its live session within 5 s; an issued token plays. (tests/api/access.rs: the
//! refusal limit per address, key rotation, the stream list, /readyz, the session list's stats, headers.)

use crate::common;

use common::admin::*;
use common::*;
use futures::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};

/// A token for `main` signed with the server's own key but already expired (claims written by hand).
fn expired_token(srv: &TestServer) -> String {
    let keys: Value =
        serde_json::from_str(&std::fs::read_to_string(srv.state.path().join("auth/keys.json")).expect("keys"))
            .expect("json");
    let kid = keys["current"].as_str().expect("kid").to_owned();
    let key = base64::Engine::decode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        keys["keys"][&kid].as_str().expect("key"),
    )
    .expect("b64");
    let header = jsonwebtoken::Header { kid: Some(kid), ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256) };
    let claims = json!({"jti": "0123456789abcdef0123456789abcdef", "stream": "main", "iat": 1, "exp": 2});
    jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_secret(&key)).expect("sign")
}

/// One refusal case: the Authorization header, the status, the challenge's `error=`, and what it is.
type Case<'a> = (Option<String>, u16, Option<&'a str>, &'a str);

/// Sends `route` with `case`'s credentials and checks the refusal: its status, a problem+json body that
/// echoes no token of `secrets`, and a Bearer challenge with the expected `error=`.
async fn refused(srv: &TestServer, route: &Route, (auth, status, error, what): &Case<'_>, secrets: &[&str]) {
    let mut req = srv.http.request(route.method.clone(), format!("{}{}", srv.base, route.path));
    if !route.content_type.is_empty() {
        req = req.header("content-type", &route.content_type).body(route.body.clone());
    }
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let r = req.send().await.expect("request");
    let label = format!("{} {} with {what}", route.method, route.path);
    assert_eq!(r.status().as_u16(), *status, "{label}");
    assert_eq!(r.headers()["content-type"], "application/problem+json", "{label}");
    let challenge = r.headers().get("www-authenticate").map(|v| v.to_str().expect("ascii").to_owned());
    let challenge = challenge.unwrap_or_else(|| panic!("{label}: no WWW-Authenticate"));
    assert!(challenge.starts_with("Bearer realm=\"glasscast\""), "{label}: {challenge}");
    match error {
        Some(e) => assert!(challenge.contains(&format!("error=\"{e}\"")), "{label}: {challenge}"),
        None => assert!(!challenge.contains("error="), "{label}: {challenge}"),
    }
    let body = r.text().await.expect("body");
    for secret in secrets {
        assert!(!body.contains(secret), "{label}: a token is echoed in the error");
    }
}

#[derive(Debug)]
struct Route {
    method: Method,
    path: String,
    content_type: String,
    body: String,
    admin_only: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_route_refuses_bad_credentials_and_changes_nothing() {
    let srv = start_auth().await;
    let other_server = start_auth().await;
    let viewer = issue(&srv, json!({"stream": "main", "label": "abuse"})).await;
    let viewer_token = viewer["token"].as_str().expect("token").to_owned();
    let other_stream = issue(&srv, json!({"stream": "other"})).await["token"].as_str().expect("t").to_owned();
    let revoked = issue(&srv, json!({"stream": "main"})).await;
    revoke(&srv, &revoked).await;
    let foreign = issue(&other_server, json!({"stream": "main"})).await["token"].as_str().expect("t").to_owned();
    let tokens_before = list_tokens(&srv).await;
    let keys_before = std::fs::read(srv.state.path().join("auth/keys.json")).expect("keys");

    // The routes come from the OpenAPI document the server generates from its handlers, so a new route
    // cannot be left out of this suite. (The document itself is public: it holds no data.)
    let doc = srv.http.get(format!("{}/api/v1/openapi.json", srv.base)).send().await.expect("openapi");
    assert_eq!(doc.status(), 200);
    let doc: Value = serde_json::from_str(&doc.text().await.expect("body")).expect("json");
    let offer = WebrtcbinViewer::new(96, "42e01f", true).offer().await;
    let sid = "0123456789abcdef0123456789abcdef";
    let kid = srv.server.auth.keys()[0].kid.clone();
    let mut routes = Vec::new();
    for (template, ops) in doc["paths"].as_object().expect("paths") {
        for (method, op) in ops.as_object().expect("operations") {
            let path = template
                .replace("{stream}", "main")
                .replace("{name}", "main")
                .replace("/sessions/{id}", &format!("/sessions/{sid}"))
                .replace("/tokens/{id}", &format!("/tokens/{}", viewer["id"].as_str().expect("id")))
                .replace("/push/{id}", "/push/1")
                .replace("{kid}", &kid)
                .replace("{file}", "20261203T134501Z.mp4");
            let content_type =
                op["requestBody"]["content"].as_object().and_then(|c| c.keys().next().cloned()).unwrap_or_default();
            let body = match content_type.as_str() {
                "application/sdp" => offer.clone(),
                "application/trickle-ice-sdpfrag" => "a=end-of-candidates\r\n".into(),
                "application/json" => r#"{"stream":"main"}"#.into(),
                _ => String::new(),
            };
            let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).expect("method");
            let admin_only = template.starts_with("/api/v1/");
            assert!(op["security"].is_array(), "{method} {template} declares no security");
            routes.push(Route { method, path, content_type, body, admin_only });
        }
    }
    assert_eq!(routes.len(), 28, "WHEP and WHIP POST/PATCH/DELETE, /streams, 21 admin operations: {routes:?}");
    // (Authorization header, expected status, expected `error=` in the challenge)
    let forged = {
        let (head, rest) = viewer_token.split_once('.').expect("jwt");
        let sig = rest.split_once('.').expect("jwt").1;
        let claims = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            r#"{"jti":"x","stream":"*","iat":1,"exp":9999999999}"#,
        );
        format!("{head}.{claims}.{sig}")
    };
    let cases: Vec<Case> = vec![
        (None, 401, None, "no token"),
        (Some("Bearer".into()), 400, Some("invalid_request"), "scheme without token"),
        (Some("Bearer a b".into()), 400, Some("invalid_request"), "malformed bearer"),
        (Some(format!("Basic {}", "dXNlcjpwYXNz")), 401, None, "wrong scheme"),
        (Some("Bearer not.a.token".into()), 401, Some("invalid_token"), "garbage"),
        (Some(format!("Bearer {forged}")), 401, Some("invalid_token"), "forged claims"),
        (Some(format!("Bearer {foreign}")), 401, Some("invalid_token"), "another server's key"),
        (Some(format!("Bearer {}", expired_token(&srv))), 401, Some("invalid_token"), "expired"),
        (Some(format!("Bearer {}", revoked["token"].as_str().expect("t"))), 401, Some("invalid_token"), "revoked"),
    ];
    // Every refusal waits 200 ms (it slows guessing): the ~180 requests go 32 at a time.
    let mut checks = Vec::new();
    for route in &routes {
        let mut cases = cases.clone();
        if route.admin_only {
            cases.push((Some(format!("Bearer {viewer_token}")), 403, Some("insufficient_scope"), "viewer on admin"));
        } else if route.method == Method::POST {
            cases.push((Some(format!("Bearer {other_stream}")), 403, Some("insufficient_scope"), "other stream"));
        }
        checks.extend(cases.into_iter().map(move |case| (route, case)));
    }
    let secrets = [viewer_token.as_str(), ADMIN, foreign.as_str()];
    futures::stream::iter(checks.iter().map(|(route, case)| refused(&srv, route, case, &secrets)))
        .buffer_unordered(32)
        .collect::<Vec<()>>()
        .await;
    // Nothing changed: no session, the same tokens, the same revocations.
    assert_eq!(srv.server.sessions.streams().await.iter().map(|s| s.viewers).sum::<usize>(), 0);
    assert_eq!(list_tokens(&srv).await, tokens_before);
    assert_eq!(std::fs::read(srv.state.path().join("auth/keys.json")).expect("keys"), keys_before, "no key rotated");
    // CORS preflight and /healthz need no token.
    let pre = srv
        .http
        .request(Method::OPTIONS, format!("{}/whep/main", srv.base))
        .header("origin", "https://elsewhere.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .expect("preflight");
    assert!(pre.status().is_success(), "{}", pre.status());
    assert_eq!(srv.http.get(format!("{}/healthz", srv.base)).send().await.expect("healthz").status(), 200);
    other_server.shutdown().await;
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_session_belongs_to_its_token_and_revoking_the_token_ends_it() {
    let srv = start_auth().await;
    let mine = issue(&srv, json!({"stream": "main", "label": "living room", "ttl_s": 3600})).await;
    let theirs = issue(&srv, json!({"stream": "*"})).await;
    let token = mine["token"].as_str().expect("token");
    assert_eq!(mine["watch_path"], format!("/watch/main#token={token}"));

    let mut v = WebrtcbinViewer::new(96, "42e01f", true);
    v.connect_with(&srv, "main", Some(token)).await;
    assert!(v.gets_frames(10, 20).await, "the token's viewer plays");
    let loc = v.location.clone().expect("location");

    // Another valid token may not touch this session; the owner and the admin may.
    let frag = "a=end-of-candidates\r\n";
    let patch = |t: &str| {
        srv.http.patch(&loc).bearer_auth(t).header("content-type", "application/trickle-ice-sdpfrag").body(frag).send()
    };
    let r = patch(theirs["token"].as_str().expect("t")).await.expect("patch");
    assert_eq!(r.status(), 403);
    let r = srv.http.delete(&loc).bearer_auth(theirs["token"].as_str().expect("t")).send().await.expect("delete");
    assert_eq!(r.status(), 403);
    assert_eq!(patch(token).await.expect("patch").status(), 204);
    assert_eq!(patch(ADMIN).await.expect("patch").status(), 204);

    // The list shows the label; revoking ends the live session within 5 s, and the token is refused.
    let list = list_tokens(&srv).await;
    let entry = list.as_array().expect("array").iter().find(|t| t["id"] == mine["id"]).expect("listed").clone();
    assert_eq!(entry["label"], "living room");
    assert_eq!(entry["revoked"], false);
    revoke(&srv, &mine).await;
    let ended = eventually_async(5, || async { srv.server.sessions.streams().await.iter().all(|s| s.viewers == 0) });
    assert!(ended.await, "the revoked token's session still runs after 5 s");
    let offer = WebrtcbinViewer::new(96, "42e01f", true).offer().await;
    assert_eq!(srv.post_offer_with("main", &offer, Some(token)).await.status(), 401);
    // The revocation is on disk (0600), so it survives a restart.
    let ledger = std::fs::read_to_string(srv.state.path().join("auth/tokens.json")).expect("ledger");
    assert!(ledger.contains(mine["id"].as_str().expect("id")) && !ledger.contains(token), "ids only, no tokens");
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_issue_requests_are_explained_and_max_sessions_is_enforced() {
    let srv = start_auth().await;
    let post = |body: &'static str| {
        srv.http
            .post(format!("{}/api/v1/tokens", srv.base))
            .bearer_auth(ADMIN)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    for (body, status) in [
        (r#"{"stream":"nope"}"#, 422),
        (r#"{"stream":"main","ttl_s":5}"#, 400),
        (r#"{"stream":"main","max_sessions":0}"#, 400),
        (r#"{"stream":"main","extra":1}"#, 400),
        (r#"not json"#, 400),
    ] {
        let r = post(body).await.expect("post");
        assert_eq!(r.status(), status, "{body}");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
    }
    let one = issue(&srv, json!({"stream": "main", "max_sessions": 1})).await;
    let token = one["token"].as_str().expect("token");
    let mut a = WebrtcbinViewer::new(96, "42e01f", true);
    a.connect_with(&srv, "main", Some(token)).await;
    let offer = WebrtcbinViewer::new(96, "42e01f", true).offer().await;
    let r = srv.post_offer_with("main", &offer, Some(token)).await;
    assert_eq!(r.status(), 429, "a second session on a max_sessions=1 token");
    assert!(a.gets_frames(10, 20).await, "the first session plays on");
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_issued_link_plays_in_chromium_and_revoking_it_stops_the_page_within_5_s() {
    link_plays_until_revoked("main", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_link_for_every_stream_lists_them_in_chromium_and_the_one_clicked_plays_until_revoked() {
    link_plays_until_revoked("*", Some("main")).await;
}

/// Issues a token for `stream`, opens its link in Chromium (clicking `via_index` on the stream list when
/// the link is a list's), and checks it plays, then that revoking the token stops the page within 5 s.
async fn link_plays_until_revoked(stream: &str, via_index: Option<&str>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let srv = start_auth().await;
    let issued = issue(&srv, json!({"stream": stream, "label": "chromium"})).await;
    let link = format!("{}{}", srv.base, issued["watch_path"].as_str().expect("watch_path"));
    let mut node = tokio::process::Command::new("node")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("tests/browser/revoke.mjs")
        .arg(&link)
        .args(via_index)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs (make test installs it)");
    let mut stdin = node.stdin.take().expect("stdin");
    let mut lines = BufReader::new(node.stdout.take().expect("stdout")).lines();
    if via_index.is_some() {
        let listed = lines.next_line().await.expect("read").expect("a line from revoke.mjs");
        let listed: Value = serde_json::from_str(&listed).expect("json");
        assert_eq!(listed["streams"], json!(["main", "other"]), "{listed}");
    }
    let first = lines.next_line().await.expect("read").expect("a line from revoke.mjs");
    let playing: Value = serde_json::from_str(&first).expect("json");
    assert_eq!(playing["phase"], "playing", "{playing}");
    assert_eq!(srv.server.sessions.streams().await[0].viewers, 1);

    revoke(&srv, &issued).await;
    stdin.write_all(b"revoked\n").await.expect("signal");
    let last = lines.next_line().await.expect("read").expect("the result line");
    let done: Value = serde_json::from_str(&last).expect("json");
    eprintln!("revocation in Chromium: {done}");
    assert_eq!(done["ok"], true, "{done}");
    let stopped = done["lastPlayingFrameAfterRevokeMs"].as_u64().expect("ms");
    assert!(stopped <= 5000, "the page kept playing {stopped} ms after the revocation: {done}");
    assert!(done["deniedAfterMs"].as_u64().is_some(), "the player did not say the link no longer works: {done}");
    assert_eq!(srv.server.sessions.streams().await[0].viewers, 0);
    let _ = node.wait().await;
    srv.shutdown().await;
}

//! WHEP (draft-ietf-wish-whep) endpoints. The parts shared with WHIP (RFC 9725): the session resource with
//! PATCH (trickle / ICE restart with ETag + If-Match), DELETE, OPTIONS, `Link: rel="ice-server"`.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState, Caller, read_body};
use crate::config::IceServer;
use crate::ids::SessionId;
use crate::session::{Created, Patched, Role, SessionError};

pub const SDP: &str = "application/sdp";
pub const SDPFRAG: &str = "application/trickle-ice-sdpfrag";

/// 415 unless the request's Content-Type (parameters aside) is `expected`.
pub fn require_content_type(headers: &HeaderMap, expected: &str) -> Result<(), ApiError> {
    let got = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let essence = got.map(|v| v.split(';').next().unwrap_or_default().trim().to_ascii_lowercase());
    if essence.as_deref() == Some(expected) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported-media-type",
        format!("expected Content-Type {expected}, got {}", got.unwrap_or("none")),
    ))
}

/// The body as UTF-8 text (413 over the limit, 400 when not text).
pub fn body_text(body: Result<Bytes, BytesRejection>, what: &'static str) -> Result<String, ApiError> {
    let bytes = read_body(body)?;
    String::from_utf8(bytes.to_vec())
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, what, "the body is not UTF-8 text"))
}

/// `Link` header values for the configured STUN/TURN servers (RFC 9725 section 4.6). A server with a shared
/// `secret` gets TURN REST credentials valid until `expires_at` (Unix seconds).
pub fn ice_server_links(servers: &[IceServer], expires_at: u64) -> Vec<String> {
    let mut links = Vec::new();
    for s in servers {
        let rest = s.secret.as_ref().map(|secret| crate::auth::turn::rest_credentials(secret, expires_at, "glasscast"));
        let (username, credential) = match &rest {
            Some((u, c)) => (Some(u), Some(c)),
            None => (s.username.as_ref(), s.credential.as_ref()),
        };
        for url in &s.urls {
            let mut link = format!("<{url}>; rel=\"ice-server\"");
            if let (Some(u), Some(c)) = (username, credential) {
                link.push_str(&format!(
                    "; username=\"{}\"; credential=\"{}\"; credential-type=\"password\"",
                    u.replace('"', "\\\""),
                    c.replace('"', "\\\"")
                ));
            }
            links.push(link);
        }
    }
    links
}

pub fn session_id(raw: &str) -> Result<SessionId, ApiError> {
    SessionId::parse(raw).ok_or_else(|| SessionError::UnknownSession.into())
}

/// `POST /whep/{stream}`: offer in, 201 + answer out.
#[utoipa::path(post, path = "/whep/{stream}", security(("bearer" = [])),
    params(("stream" = String, Path, description = "the stream's name")),
    request_body(content = String, content_type = "application/sdp", description = "the viewer's SDP offer"),
    responses((status = 201, body = String, content_type = "application/sdp", description = "the SDP answer"),
        (status = 400), (status = 401), (status = 403), (status = 404), (status = 409), (status = 413),
        (status = 415), (status = 429), (status = 503)))]
pub async fn create(
    State(st): State<AppState>,
    Path(stream): Path<String>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let grant = caller.check(&st, |h| st.auth.authorize_stream(h, &stream)).await?;
    require_content_type(&headers, SDP)?;
    let offer = body_text(body, "malformed-sdp")?;
    let links = ice_links(&st, &grant);
    let stream = super::stream_in_path(&stream)?;
    let created = st.sessions.offer(&stream, offer, grant, caller.addr).await?;
    Ok(created_response(created, "/whep/sessions", &links, true))
}

/// Until when TURN REST credentials handed to `grant`'s holder at `now_s` are good: `ttl_s` from now
/// (`webrtc.turn_credential_ttl_s`), and never past its token's expiry. TURN has no revocation, so they
/// are kept short; a player gets fresh ones with each ICE restart and each new session.
pub fn turn_expiry(grant: &crate::auth::Grant, now_s: u64, ttl_s: u64) -> u64 {
    let cap = now_s.saturating_add(ttl_s);
    grant.expires_at().map_or(cap, |token| token.min(cap))
}

/// The `Link` ice-server headers for `grant`'s holder, with TURN REST credentials made now.
pub fn ice_links(st: &AppState, grant: &crate::auth::Grant) -> Vec<String> {
    ice_server_links(&st.ice_servers, turn_expiry(grant, crate::auth::now_s(), st.turn_ttl_s))
}

/// 201 with the answer, the session resource's `Location` (under `sessions`), its ETag, and the STUN/TURN
/// servers' `links` (WHEP and WHIP alike). `patchable`: the resource takes PATCH (trickle, ICE restart).
pub fn created_response(created: Created, sessions: &str, links: &[String], patchable: bool) -> Response {
    let mut resp = (StatusCode::CREATED, created.answer).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(SDP));
    h.insert(
        header::LOCATION,
        HeaderValue::from_str(&format!("{sessions}/{}", created.id)).expect("hex is a valid header"),
    );
    h.insert(header::ETAG, HeaderValue::from_str(created.etag.as_str()).expect("etag is ASCII"));
    if patchable {
        h.insert("accept-patch", HeaderValue::from_static(SDPFRAG));
    }
    for link in links {
        if let Ok(v) = HeaderValue::from_str(link) {
            h.append(header::LINK, v);
        }
    }
    resp
}

/// `PATCH /whep/sessions/{id}`: trickle (204), or an ICE restart (new ufrag/pwd, `If-Match` required): 200 with
/// our new credentials and candidates as an sdpfrag and the session's new ETag.
#[utoipa::path(patch, path = "/whep/sessions/{id}", security(("bearer" = [])),
    params(("id" = String, Path, description = "the session's id")),
    request_body(content = String, content_type = "application/trickle-ice-sdpfrag"),
    responses((status = 204), (status = 200, body = String, content_type = "application/trickle-ice-sdpfrag"),
        (status = 400), (status = 401), (status = 403), (status = 404), (status = 412), (status = 415),
        (status = 428)))]
pub async fn patch(
    st: State<AppState>,
    id: Path<String>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    patch_session(st, id, caller, headers, body, Role::Viewer).await
}

/// PATCH on a `role` session's resource (WHEP: a viewer's, WHIP: a publisher's; the other's id is 404).
pub async fn patch_session(
    State(st): State<AppState>,
    Path(id): Path<String>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    role: Role,
) -> Result<Response, ApiError> {
    let grant = caller.check(&st, |h| st.auth.authenticate(h)).await?;
    let id = session_id(&id)?;
    require_content_type(&headers, SDPFRAG)?;
    let frag = body_text(body, "malformed-sdpfrag")?;
    let if_match = headers
        .get(header::IF_MATCH)
        .map(|v| v.to_str().map(str::to_owned))
        .transpose()
        .map_err(|_| SessionError::PreconditionFailed)?;
    let turn_until = turn_expiry(&grant, crate::auth::now_s(), st.turn_ttl_s);
    match st.sessions.patch(id, role, grant, if_match, frag).await? {
        Patched::Trickled => Ok(StatusCode::NO_CONTENT.into_response()),
        Patched::Restarted { etag, frag } => {
            let mut resp = (StatusCode::OK, [(header::CONTENT_TYPE, SDPFRAG)], frag).into_response();
            let tag = HeaderValue::from_str(etag.as_str()).expect("ETags are quoted hex and digits");
            resp.headers_mut().insert(header::ETAG, tag);
            // Fresh TURN credentials for the restarted agent's gathering (the player applies them first).
            let links = ice_server_links(&st.ice_servers, turn_until);
            for link in links.iter().filter_map(|l| HeaderValue::from_str(l).ok()) {
                resp.headers_mut().append(header::LINK, link);
            }
            Ok(resp)
        }
    }
}

/// `DELETE /whep/sessions/{id}`: ends the session now.
#[utoipa::path(delete, path = "/whep/sessions/{id}", security(("bearer" = [])),
    params(("id" = String, Path, description = "the session's id")),
    responses((status = 200), (status = 401), (status = 403), (status = 404)))]
pub async fn delete(st: State<AppState>, id: Path<String>, caller: Caller) -> Result<StatusCode, ApiError> {
    delete_session(st, id, caller, Role::Viewer).await
}

/// DELETE on a `role` session's resource (WHEP: a viewer's, WHIP: a publisher's; the other's id is 404).
pub async fn delete_session(
    State(st): State<AppState>,
    Path(id): Path<String>,
    caller: Caller,
    role: Role,
) -> Result<StatusCode, ApiError> {
    let grant = caller.check(&st, |h| st.auth.authenticate(h)).await?;
    st.sessions.delete(session_id(&id)?, Some(role), grant).await?;
    Ok(StatusCode::OK)
}

pub async fn options_endpoint() -> Response {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST, OPTIONS"));
    resp.headers_mut().insert("accept-post", HeaderValue::from_static(SDP));
    resp
}

pub async fn options_session() -> Response {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut().insert(header::ALLOW, HeaderValue::from_static("PATCH, DELETE, OPTIONS"));
    resp.headers_mut().insert("accept-patch", HeaderValue::from_static(SDPFRAG));
    resp
}

/// CORS preflights are answered by the CORS layer; add what WHEP clients look for on OPTIONS.
pub async fn advertise_on_preflight(req: Request, next: Next) -> Response {
    let is_options = req.method() == Method::OPTIONS;
    let is_session = req.uri().path().starts_with("/whep/sessions/") || req.uri().path().starts_with("/whip/sessions/");
    let mut resp = next.run(req).await;
    if is_options && resp.status().is_success() {
        let (k, v) = if is_session { ("accept-patch", SDPFRAG) } else { ("accept-post", SDP) };
        resp.headers_mut().entry(k).or_insert(HeaderValue::from_static(v));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ice_server_link_headers() {
        let servers = vec![
            IceServer { urls: vec!["stun:stun.example.net:3478".into()], ..IceServer::default() },
            IceServer {
                urls: vec!["turn:turn.example.net:3478?transport=udp".into()],
                username: Some("u".into()),
                credential: Some("p\"w".into()),
                secret: None,
            },
        ];
        assert_eq!(
            ice_server_links(&servers, 0),
            vec![
                "<stun:stun.example.net:3478>; rel=\"ice-server\"".to_owned(),
                "<turn:turn.example.net:3478?transport=udp>; rel=\"ice-server\"; username=\"u\"; \
                 credential=\"p\\\"w\"; credential-type=\"password\""
                    .to_owned(),
            ]
        );
    }

    #[test]
    fn turn_credentials_last_the_configured_hours_and_never_past_the_token() {
        use crate::auth::{Grant, TokenGrant, TokenKind};
        use crate::ids::StreamScope;
        let token = |expires_at| {
            Grant::Token(TokenGrant {
                token_id: "t".into(),
                kid: "k".into(),
                scope: StreamScope::All,
                label: None,
                expires_at,
                max_sessions: None,
                kind: TokenKind::View,
            })
        };
        let (now, ttl) = (1_800_000_000, 4 * 3600);
        assert_eq!(turn_expiry(&token(now + 365 * 86_400), now, ttl), now + ttl, "a year's link: hours only");
        assert_eq!(turn_expiry(&token(now + 600), now, ttl), now + 600, "never past the token");
        assert_eq!(turn_expiry(&Grant::Admin, now, ttl), now + ttl);
        assert_eq!(turn_expiry(&Grant::Anyone, now, ttl), now + ttl);
    }

    #[test]
    fn content_type_check_ignores_parameters_and_case() {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("Application/SDP; charset=utf-8"));
        assert!(require_content_type(&h, SDP).is_ok());
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        let e = require_content_type(&h, SDP).expect_err("wrong type");
        assert_eq!(e.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(e.detail.contains("application/sdp") && e.detail.contains("text/plain"));
        assert!(require_content_type(&HeaderMap::new(), SDP).is_err());
    }
}

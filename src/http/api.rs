//! The admin API, `/api/v1` (admin token only): streams, and viewer tokens (issue, list, revoke).
//! JSON in and out; errors are problem+json like everywhere else.

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use serde::{Deserialize, Serialize};

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use super::{ApiError, AppState, Caller, admin, read_body, read_json, whep};
use crate::auth::Grant;
use crate::auth::{IssueRequest, Issued, KeyInfo, Retired, TokenKind};
use crate::ids::SessionId;
use crate::ids::StreamScope;
use crate::session::{SessionError, SessionInfo, StreamInfo};

/// A token lives at most a year, at least a minute; two hours when not said.
const MAX_TTL_S: u64 = 365 * 24 * 3600;
const DEFAULT_TTL_S: u64 = 2 * 3600;

/// The OpenAPI document of glasscast's HTTP API (the admin API and WHEP), generated from the handlers.
#[derive(OpenApi)]
#[openapi(
    info(title = "glasscast", description = "Admin API (admin token), WHEP endpoints and the stream list (viewer or admin token), WHIP ingest (publish or admin token)."),
    paths(
        streams,
        stop_stream,
        start_stream,
        push_stream,
        unpush_stream,
        list_sessions,
        end_session,
        list_tokens,
        issue_token,
        revoke_token,
        list_keys,
        rotate_key,
        retire_key,
        super::console::qr,
        super::console::host,
        super::recordings::start,
        super::recordings::stop,
        super::recordings::list,
        super::recordings::download,
        super::recordings::remove,
        super::recordings::link,
        super::web::streams,
        whep::create,
        whep::patch,
        whep::delete,
        super::whip::create,
        super::whip::patch,
        super::whip::delete
    ),
    components(schemas(PushBody, IssueBody, TokenInfo, IssuedToken, StreamInfo, SessionInfo, KeyInfo, RotateBody,
        super::console::QrBody, super::console::HostInfo, crate::recordings::FileInfo, super::recordings::Link)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

/// Declares the bearer scheme every operation uses.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

/// `GET /api/v1/openapi.json`: the document above (no token needed: it describes, it holds no data).
async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(openapi))
        .route("/streams", get(streams))
        .route("/streams/{name}/stop", axum::routing::post(stop_stream))
        .route("/streams/{name}/start", axum::routing::post(start_stream))
        .route("/streams/{name}/push", axum::routing::post(push_stream))
        .route("/streams/{name}/push/{id}", delete(unpush_stream))
        .route("/sessions", get(list_sessions))
        .route("/sessions/{id}", delete(end_session))
        .route("/tokens", get(list_tokens).post(issue_token))
        .route("/tokens/{id}", delete(revoke_token))
        .route("/keys", get(list_keys))
        .route("/keys/rotate", axum::routing::post(rotate_key))
        .route("/keys/{kid}", delete(retire_key))
        .merge(super::console::router())
        .merge(super::recordings::router())
}

/// Streams with their state and viewer counts.
#[utoipa::path(get, path = "/api/v1/streams", security(("bearer" = [])),
    responses((status = 200, body = [StreamInfo]), (status = 401), (status = 403)))]
async fn streams(State(st): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    admin(&st, &caller).await?;
    Ok(Json(st.sessions.streams().await).into_response())
}

/// Stops a stream: its sessions end, its pipeline stops; new viewers get 409 until it starts again.
#[utoipa::path(post, path = "/api/v1/streams/{name}/stop", security(("bearer" = [])),
    params(("name" = String, Path, description = "the stream's name")),
    responses((status = 204), (status = 401), (status = 403), (status = 404)))]
async fn stop_stream(
    State(st): State<AppState>,
    Path(name): Path<String>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    admin(&st, &caller).await?;
    st.sessions.stop_stream(&super::stream_in_path(&name)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PushBody {
    /// A WHIP endpoint (`http://` or `https://`) or a Janus VideoRoom
    /// (`janus+ws(s)://host:port/path?room=ROOM[&feed=ID][&display=NAME]`).
    url: String,
    /// The bearer token the WHIP endpoint wants, or the Janus API secret, if any.
    token: Option<String>,
}

/// Pushes a stream to a WHIP endpoint or a Janus VideoRoom too (an SFU, a CDN, another glasscast), from its encoder, retrying
/// with backoff until the stream stops. Only to an origin in `auth.push_allow` (else 403); its state shows in `/readyz` and the metrics. Not kept across
/// restarts: put it in the configuration (`[[streams.push]]`) for that.
#[utoipa::path(post, path = "/api/v1/streams/{name}/push", security(("bearer" = [])),
    params(("name" = String, Path, description = "the stream's name")),
    request_body(content = PushBody, content_type = "application/json"),
    responses((status = 202, description = "started; the body is `{\"id\": N}`, the push's id"), (status = 400),
        (status = 401), (status = 403), (status = 404), (status = 413), (status = 415)))]
async fn push_stream(
    State(st): State<AppState>,
    Path(name): Path<String>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    admin(&st, &caller).await?;
    let body: PushBody = read_json(&headers, body)?;
    let endpoint = crate::push::Endpoint::parse(&body.url).map_err(|e| bad_request("bad-url", e.to_string()))?;
    let origin = endpoint.origin();
    if !st.push_allow.contains(&origin) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "push-not-allowed",
            format!("pushing to {origin} is not allowed: add it to auth.push_allow in the configuration"),
        ));
    }
    let id = st.sessions.push(&super::stream_in_path(&name)?, body.url, body.token).await?;
    Ok((StatusCode::ACCEPTED, Json(serde_json::json!({ "id": id }))).into_response())
}

/// Stops a stream's push (one added at run time, or a configured one until the stream starts again).
#[utoipa::path(delete, path = "/api/v1/streams/{name}/push/{id}", security(("bearer" = [])),
    params(("name" = String, Path, description = "the stream's name"),
        ("id" = u32, Path, description = "the push's id (`/readyz` lists them)")),
    responses((status = 204), (status = 400), (status = 401), (status = 403), (status = 404)))]
async fn unpush_stream(
    State(st): State<AppState>,
    Path((name, id)): Path<(String, String)>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    admin(&st, &caller).await?;
    let id: u32 = id.parse().map_err(|_| bad_request("bad-push-id", format!("`{id}` is not a push id (a number)")))?;
    st.sessions.unpush(&super::stream_in_path(&name)?, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Starts a stopped stream again (no-op when it runs).
#[utoipa::path(post, path = "/api/v1/streams/{name}/start", security(("bearer" = [])),
    params(("name" = String, Path, description = "the stream's name")),
    responses((status = 204), (status = 401), (status = 403), (status = 404), (status = 500)))]
async fn start_stream(
    State(st): State<AppState>,
    Path(name): Path<String>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    admin(&st, &caller).await?;
    st.sessions.start_stream(&super::stream_in_path(&name)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Live sessions: stream, token id and label, since when, connected, ICE restarts.
#[utoipa::path(get, path = "/api/v1/sessions", security(("bearer" = [])),
    responses((status = 200, body = [SessionInfo]), (status = 401), (status = 403)))]
async fn list_sessions(State(st): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    admin(&st, &caller).await?;
    Ok(Json(st.sessions.sessions().await).into_response())
}

/// Ends a session now (as its viewer's DELETE would).
#[utoipa::path(delete, path = "/api/v1/sessions/{id}", security(("bearer" = [])),
    params(("id" = String, Path, description = "the session's id")),
    responses((status = 204), (status = 401), (status = 403), (status = 404)))]
async fn end_session(
    State(st): State<AppState>,
    Path(id): Path<String>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    admin(&st, &caller).await?;
    let id = SessionId::parse(&id).ok_or(SessionError::UnknownSession)?;
    st.sessions.delete(id, None, Grant::Admin).await?;
    tracing::info!(session = %id, "session ended by the admin");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct IssueBody {
    /// A stream name, or `*` for all streams.
    stream: String,
    /// Lifetime in seconds (60 to one year; default two hours).
    ttl_s: Option<u64>,
    label: Option<String>,
    max_sessions: Option<u32>,
    /// Issue a publish token (it publishes to POST /whip/{stream} and cannot watch) instead of a viewer token.
    #[serde(default)]
    publish: bool,
}

#[derive(Debug, Serialize, ToSchema)]
struct TokenInfo {
    id: String,
    stream: String,
    label: Option<String>,
    issued_at: u64,
    expires_at: u64,
    max_sessions: Option<u32>,
    /// A publish token (WHIP ingest) rather than a viewer token.
    publish: bool,
    revoked: bool,
}

impl TokenInfo {
    fn of(t: Issued, revoked: bool) -> Self {
        let Issued { id, stream, label, issued_at, expires_at, max_sessions, publish } = t;
        Self { id, stream: stream.to_string(), label, issued_at, expires_at, max_sessions, publish, revoked }
    }
}

#[derive(Debug, Serialize, ToSchema)]
struct IssuedToken {
    #[serde(flatten)]
    info: TokenInfo,
    /// The token itself: shown once, never stored by glasscast.
    token: String,
    /// The player link's path and fragment (prefix it with the server's origin).
    watch_path: String,
}

#[cfg(test)]
#[test]
fn labels_refuse_controls_and_bidi_overrides_and_take_the_rest() {
    for ok in ["desk", "Büro – Bildschirm 2", "表示", "a label with emoji 🖥"] {
        assert_eq!(label_problem(ok), None, "{ok}");
    }
    for bad in
        ["tab\there", "new\nline", "nul\0", "del\u{7f}", "c1\u{85}", "evil\u{202e}txt.exe", "iso\u{2066}x", "m\u{200f}"]
    {
        let why = label_problem(bad).unwrap_or_else(|| panic!("{bad:?} taken"));
        assert!(why.contains("U+"), "{why}");
    }
    assert!(label_problem(&"x".repeat(101)).is_some_and(|w| w.contains("100")));
}

fn bad_request(kind: &'static str, detail: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, kind, detail)
}

/// The streams a token is to be issued for: `*`, or a configured stream (422 naming what is wrong).
/// What is wrong with a token's label, if anything: over 100 characters, or a character that would change
/// how the console, the CLI's table or a log line reads (C0 and C1 controls, DEL, and the bidirectional
/// embeddings, overrides, isolates and marks).
fn label_problem(label: &str) -> Option<String> {
    if label.chars().count() > 100 {
        return Some("label is limited to 100 characters".into());
    }
    let bidi =
        |c: char| matches!(c, '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    let (at, c) = label.chars().enumerate().find(|(_, c)| c.is_control() || bidi(*c))?;
    Some(format!(
        "label has U+{:04X} at character {at}: control and bidirectional-override characters are refused",
        c as u32
    ))
}

async fn issue_scope(st: &AppState, asked: &str) -> Result<StreamScope, ApiError> {
    let unknown = || {
        let detail = format!("no stream named `{asked}` (give a configured stream, or `*`)");
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unknown-stream", detail)
    };
    let scope = StreamScope::parse(asked).map_err(|_| unknown())?;
    if let StreamScope::One(name) = &scope
        && !st.sessions.streams().await.iter().any(|s| &s.name == name)
    {
        return Err(unknown());
    }
    Ok(scope)
}

/// Issues a viewer token. The token is in this answer only; glasscast keeps its id and claims.
#[utoipa::path(post, path = "/api/v1/tokens", security(("bearer" = [])), request_body = IssueBody,
    responses((status = 201, body = IssuedToken), (status = 400), (status = 401), (status = 403),
        (status = 415), (status = 422)))]
async fn issue_token(
    State(st): State<AppState>,
    caller: Caller,
    body: Result<Json<IssueBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    admin(&st, &caller).await?;
    let Json(body) = body.map_err(|e| match e {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "expected Content-Type application/json",
        ),
        JsonRejection::BytesRejection(b) => read_body(Err(b)).expect_err("a rejection stays an error"),
        other => bad_request("malformed-json", other.body_text()),
    })?;
    let scope = issue_scope(&st, &body.stream).await?;
    let ttl_s = body.ttl_s.unwrap_or(DEFAULT_TTL_S);
    if !(60..=MAX_TTL_S).contains(&ttl_s) {
        return Err(bad_request("bad-ttl", format!("ttl_s must be 60 to {MAX_TTL_S} seconds, got {ttl_s}")));
    }
    if let Some(why) = body.label.as_deref().and_then(label_problem) {
        return Err(bad_request("bad-label", why));
    }
    if body.max_sessions == Some(0) {
        return Err(bad_request("bad-max-sessions", "max_sessions must be at least 1 (or left out)"));
    }
    let kind = if body.publish { TokenKind::Publish } else { TokenKind::View };
    let req = IssueRequest {
        scope,
        ttl: Duration::from_secs(ttl_s),
        label: body.label,
        max_sessions: body.max_sessions,
        kind,
    };
    let (token, issued) = st.auth.issue(&req).map_err(|e| {
        tracing::error!(error = %format!("{e:#}"), "issuing a token");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "token-store", "could not record the token")
    })?;
    let kind = kind.as_str();
    tracing::info!(token = %issued.id, stream = %issued.stream, label = ?issued.label, kind, "token issued");
    // A publish token's "link" is the WHIP endpoint (the token goes in its Authorization header); a token
    // for every stream links to the stream list.
    let watch_path = match (&issued.stream, issued.publish) {
        (StreamScope::One(name), true) => format!("/whip/{name}"),
        (StreamScope::All, true) => "/whip/".to_owned(),
        (StreamScope::One(name), false) => format!("/watch/{name}#token={token}"),
        (StreamScope::All, false) => format!("/#token={token}"),
    };
    let out = IssuedToken { info: TokenInfo::of(issued, false), token, watch_path };
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

/// Tokens issued and not expired (never the tokens themselves), and whether each is revoked.
#[utoipa::path(get, path = "/api/v1/tokens", security(("bearer" = [])),
    responses((status = 200, body = [TokenInfo]), (status = 401), (status = 403)))]
async fn list_tokens(State(st): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    admin(&st, &caller).await?;
    let all: Vec<TokenInfo> = st.auth.list().into_iter().map(|(t, revoked)| TokenInfo::of(t, revoked)).collect();
    Ok(Json(all).into_response())
}

/// Revokes a token; its live sessions end within a second or two (the session manager's sweep).
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", security(("bearer" = [])),
    params(("id" = String, Path, description = "the token's id")),
    responses((status = 204), (status = 401), (status = 403), (status = 404)))]
async fn revoke_token(
    State(st): State<AppState>,
    Path(id): Path<String>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    admin(&st, &caller).await?;
    match st.auth.revoke(&id) {
        Ok(true) => {
            tracing::info!(token = %id, "viewer token revoked");
            Ok(StatusCode::NO_CONTENT)
        }
        Ok(false) => Err(ApiError::not_found(format!("no token with id `{id}` (issued and not expired)"))),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "revoking a token");
            Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "token-store", "could not record the revocation"))
        }
    }
}

/// The signing keys kept for viewer tokens (ids and ages, never the keys).
#[utoipa::path(get, path = "/api/v1/keys", security(("bearer" = [])),
    responses((status = 200, body = [KeyInfo]), (status = 401), (status = 403)))]
async fn list_keys(State(st): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    admin(&st, &caller).await?;
    Ok(Json(st.auth.keys()).into_response())
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RotateBody {
    /// Drop every older key too: tokens they signed stop working and their sessions end within seconds.
    #[serde(default)]
    retire_previous: bool,
}

/// Makes a new signing key for new viewer tokens. Older tokens keep working unless `retire_previous`.
/// The body is optional (no body: keep the older keys).
#[utoipa::path(post, path = "/api/v1/keys/rotate", security(("bearer" = [])), request_body = Option<RotateBody>,
    responses((status = 201, body = [KeyInfo]), (status = 400), (status = 401), (status = 403), (status = 415)))]
async fn rotate_key(
    State(st): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    admin(&st, &caller).await?;
    let body = read_body(body)?;
    let body: RotateBody = if body.iter().all(u8::is_ascii_whitespace) {
        RotateBody::default()
    } else {
        whep::require_content_type(&headers, "application/json")?;
        serde_json::from_slice(&body).map_err(|e| bad_request("malformed-json", e.to_string()))?
    };
    let kid = st.auth.rotate_key(body.retire_previous).map_err(|e| {
        tracing::error!(error = %format!("{e:#}"), "rotating the signing key");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "key-store", "could not write the new key")
    })?;
    tracing::info!(kid = %kid, retired = body.retire_previous, "signing key rotated");
    Ok((StatusCode::CREATED, Json(st.auth.keys())).into_response())
}

/// Retires the older signing key `kid`: tokens it signed stop working and their sessions end within
/// seconds. The current key cannot be retired (409: rotate first).
#[utoipa::path(delete, path = "/api/v1/keys/{kid}", security(("bearer" = [])),
    params(("kid" = String, Path, description = "the key's id")),
    responses((status = 204), (status = 401), (status = 403), (status = 404), (status = 409)))]
async fn retire_key(
    State(st): State<AppState>,
    Path(kid): Path<String>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    admin(&st, &caller).await?;
    match st.auth.retire_key(&kid) {
        Ok(Retired::Done) => {
            tracing::info!(kid = %kid, "signing key retired");
            Ok(StatusCode::NO_CONTENT)
        }
        Ok(Retired::Unknown) => Err(ApiError::not_found(format!("no signing key with id `{kid}`"))),
        Ok(Retired::Current) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "current-key",
            format!("`{kid}` signs new tokens; rotate first (POST /api/v1/keys/rotate), then retire it"),
        )),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "retiring a signing key");
            Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "key-store", "could not write the key file"))
        }
    }
}

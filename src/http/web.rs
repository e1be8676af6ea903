//! The web player, embedded in the binary (no build step): `/` lists the streams a link's token may watch
//! (`GET /streams`), `/watch/{stream}` plays one, `/admin` is the admin console (its script talks to the
//! admin API with the admin token as a bearer header).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState, Caller};
use crate::ids::StreamName;
use crate::session::StreamInfo;

const INDEX: &str = include_str!("../../web/index.html");
const WATCH: &str = include_str!("../../web/watch.html");
const INDEX_JS: &str = include_str!("../../web/index.js");
const PLAYER_JS: &str = include_str!("../../web/player.js");
const WHEP_JS: &str = include_str!("../../web/whep.js");
const LATENCY_JS: &str = include_str!("../../web/latency.js");
const STYLE_CSS: &str = include_str!("../../web/style.css");
const ADMIN: &str = include_str!("../../web/admin.html");
const ADMIN_JS: &str = include_str!("../../web/admin.js");
const ADMIN_LIB_JS: &str = include_str!("../../web/admin-lib.js");
const ADMIN_LINKS_JS: &str = include_str!("../../web/admin-links.js");
const ADMIN_HOST_JS: &str = include_str!("../../web/admin-host.js");
const ADMIN_STREAMS_JS: &str = include_str!("../../web/admin-streams.js");
const ADMIN_PUSHES_JS: &str = include_str!("../../web/admin-pushes.js");
const ADMIN_RECORDINGS_JS: &str = include_str!("../../web/admin-recordings.js");

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   media-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'";

fn html(st: &AppState, body: String) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if st.tls {
        h.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000"));
    }
    resp
}

/// `/admin`: the admin console. The page holds nothing secret; everything it shows comes from the admin
/// API, which checks the token.
pub async fn admin(State(st): State<AppState>) -> Response {
    html(&st, ADMIN.to_owned())
}

/// `/`: the stream list page; its script fetches [`streams`] with the link's token.
pub async fn index(State(st): State<AppState>) -> Response {
    html(&st, INDEX.to_owned())
}

/// `GET /streams`: the streams the caller's token may watch (a viewer token: its stream, or all for `*`;
/// the admin token or access control off: all), for the stream list page. A publish token watches nothing
/// and lists nothing (403).
#[utoipa::path(get, path = "/streams", security(("bearer" = [])),
    responses((status = 200, body = [StreamInfo]), (status = 401), (status = 403)))]
pub async fn streams(State(st): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    let grant = caller
        .check(&st, |h| match st.auth.authenticate(h)? {
            crate::auth::Grant::Token(t) if t.kind == crate::auth::TokenKind::Publish => {
                Err(crate::auth::AuthError::PublishOnly)
            }
            grant => Ok(grant),
        })
        .await?;
    let visible: Vec<StreamInfo> =
        st.sessions.streams().await.into_iter().filter(|s| grant.covers(s.name.as_str())).collect();
    Ok(Json(visible).into_response())
}

/// `/watch/{stream}`: the player. With access control on, the page is served for any well-formed name (the
/// player's WHEP request, with its token, finds out whether the stream exists): the page must not tell
/// strangers which streams there are.
pub async fn watch(State(st): State<AppState>, Path(stream): Path<String>) -> Result<Response, ApiError> {
    let unknown = || ApiError::new(StatusCode::NOT_FOUND, "unknown-stream", format!("no stream named `{stream}`"));
    if st.auth.required() {
        StreamName::parse(&stream).map_err(|_| unknown())?;
    } else if !st.sessions.streams().await.iter().any(|s| s.name.as_str() == stream) {
        return Err(unknown());
    }
    Ok(html(&st, WATCH.to_owned()))
}

pub async fn asset(Path(file): Path<String>) -> Result<Response, ApiError> {
    let (body, mime) = match file.as_str() {
        "index.js" => (INDEX_JS, "text/javascript; charset=utf-8"),
        "admin.js" => (ADMIN_JS, "text/javascript; charset=utf-8"),
        "admin-lib.js" => (ADMIN_LIB_JS, "text/javascript; charset=utf-8"),
        "admin-links.js" => (ADMIN_LINKS_JS, "text/javascript; charset=utf-8"),
        "admin-host.js" => (ADMIN_HOST_JS, "text/javascript; charset=utf-8"),
        "admin-streams.js" => (ADMIN_STREAMS_JS, "text/javascript; charset=utf-8"),
        "admin-pushes.js" => (ADMIN_PUSHES_JS, "text/javascript; charset=utf-8"),
        "admin-recordings.js" => (ADMIN_RECORDINGS_JS, "text/javascript; charset=utf-8"),
        "player.js" => (PLAYER_JS, "text/javascript; charset=utf-8"),
        "whep.js" => (WHEP_JS, "text/javascript; charset=utf-8"),
        "latency.js" => (LATENCY_JS, "text/javascript; charset=utf-8"),
        "style.css" => (STYLE_CSS, "text/css; charset=utf-8"),
        _ => return Err(ApiError::not_found(format!("no asset named `{file}`"))),
    };
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(resp)
}

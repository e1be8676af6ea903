//! The web player, embedded in the binary (no build step): `/` lists streams, `/watch/{stream}` plays one.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};

const INDEX: &str = include_str!("../../web/index.html");
const WATCH: &str = include_str!("../../web/watch.html");
const PLAYER_JS: &str = include_str!("../../web/player.js");
const WHEP_JS: &str = include_str!("../../web/whep.js");
const LATENCY_JS: &str = include_str!("../../web/latency.js");
const STYLE_CSS: &str = include_str!("../../web/style.css");

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

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

pub async fn index(State(st): State<AppState>) -> Response {
    let items: String = st
        .sessions
        .streams()
        .await
        .iter()
        .map(|s| {
            let name = escape(s.name.as_str());
            format!(
                "<li><a href=\"/watch/{name}\">{name}</a> <span class=\"meta\">{}x{}@{}{}, {}, {} viewer{}</span></li>\n",
                s.width,
                s.height,
                s.fps,
                if s.audio { " + audio" } else { "" },
                s.state,
                s.viewers,
                if s.viewers == 1 { "" } else { "s" },
            )
        })
        .collect();
    html(&st, INDEX.replace("<!--STREAMS-->", &items))
}

pub async fn watch(State(st): State<AppState>, Path(stream): Path<String>) -> Result<Response, ApiError> {
    if !st.sessions.streams().await.iter().any(|s| s.name.as_str() == stream) {
        return Err(ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "unknown-stream",
            format!("no stream named `{stream}`"),
        ));
    }
    Ok(html(&st, WATCH.to_owned()))
}

pub async fn asset(Path(file): Path<String>) -> Result<Response, ApiError> {
    let (body, mime) = match file.as_str() {
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

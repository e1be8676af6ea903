//! Admin API endpoints the console (`/admin`) is built on, beside the ones in [`super::api`]: a QR code
//! of a link (`POST /api/v1/qr`) and the host's state (`GET /api/v1/host`: CPU, memory, files, uptime,
//! readiness with reasons, the on-call conditions that hold, and the last warnings and errors).

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::admin;
use super::{ApiError, AppState, Caller, read_json};
use crate::host::{self, HostSample};
use crate::logging::ring::{self, LogEntry};
use crate::session::oncall::{Condition, OnCall};

/// The longest text a QR code is made of (a link with a token is ~150 characters).
const MAX_QR_TEXT: usize = 1000;

pub fn router() -> Router<AppState> {
    Router::new().route("/qr", post(qr)).route("/host", get(host))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct QrBody {
    /// What the code says: a viewer link (up to 1000 characters).
    text: String,
}

/// A QR code of `text` as SVG (made here, so the console needs no script from elsewhere). A POST, so a
/// link with a token in it is never in a URL or a log.
#[utoipa::path(post, path = "/api/v1/qr", security(("bearer" = [])), request_body = QrBody,
    responses((status = 200, content_type = "image/svg+xml"), (status = 400), (status = 401), (status = 403),
        (status = 415), (status = 422)))]
pub(super) async fn qr(
    State(st): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    admin(&st, &caller).await?;
    let QrBody { text } = read_json(&headers, body)?;
    let unfit = |detail: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "bad-qr-text", detail);
    if text.is_empty() || text.len() > MAX_QR_TEXT {
        return Err(unfit(format!("text must be 1 to {MAX_QR_TEXT} bytes, got {}", text.len())));
    }
    let code = qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::M)
        .map_err(|e| unfit(format!("no QR code holds this text: {e}")))?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(240, 240)
        .dark_color(qrcode::render::svg::Color("#000"))
        .light_color(qrcode::render::svg::Color("#fff"))
        .build();
    let mut resp = svg.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/svg+xml"));
    // It may hold a token.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// The host panel's data.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct HostInfo {
    version: &'static str,
    #[serde(flatten)]
    sample: HostSample,
    /// Whether `/readyz` says ready, and why not (each stream's reason, the media threads).
    ready: bool,
    not_ready: Vec<String>,
    /// What `/readyz` says in full (per stream: frames, rates, keyframes, bitrate, send lag, encoders,
    /// pushes; the media threads; the relay), for the console's stream table.
    #[schema(value_type = Object)]
    readiness: crate::session::Readiness,
    /// The on-call conditions (docs/alerts.yml) that hold now.
    conditions: Vec<Condition>,
    /// The last warnings and errors (at most 100, oldest first) and how many were logged since start.
    log: Vec<LogEntry>,
    log_total: u64,
}

/// The host's CPU, memory, open files and uptime, readiness with reasons, the on-call conditions that
/// hold, and the last warnings and errors from the log.
#[utoipa::path(get, path = "/api/v1/host", security(("bearer" = [])),
    responses((status = 200, body = HostInfo), (status = 401), (status = 403)))]
pub(super) async fn host(State(st): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    admin(&st, &caller).await?;
    let dir = st.state_dir.clone();
    let sample = tokio::task::spawn_blocking(move || host::sample(&dir)).await.map_err(|_| {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "host-sample", "reading the host's state failed")
    })?;
    let OnCall { readiness, not_ready, conditions } = st.sessions.on_call(&sample).await;
    let (log, log_total) = ring::recent();
    let info = HostInfo {
        version: env!("CARGO_PKG_VERSION"),
        sample,
        ready: readiness.ready,
        not_ready,
        readiness,
        conditions,
        log,
        log_total,
    };
    Ok(Json(info).into_response())
}

//! Health endpoints: `/healthz` (the process is up) and `/readyz` (every enabled stream produces frames).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState, Caller};

/// Also tells the server's wall clock (`unix_ms`, with sub-ms precision): the player's latency meter
/// estimates its offset to the clock the latency probe paints with from a few round trips (NTP-style).
pub async fn healthz() -> impl IntoResponse {
    let unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or_default();
    Json(serde_json::json!({ "status": "ok", "unix_ms": unix_ms }))
}

/// 200 when every enabled stream is playing and encoded a frame in the last 2 s; 503 otherwise. The body
/// says which stream is not ready and why when the admin token comes with the request (or access control is
/// off, or `server.public_readyz`); otherwise only counts, so stream names do not leak. A wrong token is
/// refused like anywhere else (and counts against the client's address).
pub async fn readyz(State(st): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    let detailed = if caller.has_token() {
        caller.check(&st, |h| st.auth.authorize_admin(h)).await?;
        true
    } else {
        st.public_readyz || !st.auth.required()
    };
    let r = st.sessions.readiness().await;
    let status = if r.ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    if detailed {
        return Ok((status, Json(r)).into_response());
    }
    let summary = serde_json::json!({
        "ready": r.ready,
        "streams": r.streams.len(),
        "streams_ready": r.streams.iter().filter(|s| s.ready).count(),
    });
    Ok((status, Json(summary)).into_response())
}

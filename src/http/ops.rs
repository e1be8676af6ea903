//! Health endpoints: `/healthz` (the process is up) and `/readyz` (every enabled stream produces frames).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;

use super::AppState;

/// Also tells the server's wall clock (`unix_ms`, with sub-ms precision): the player's latency meter
/// estimates its offset to the clock the latency probe paints with from a few round trips (NTP-style).
pub async fn healthz() -> impl IntoResponse {
    let unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or_default();
    Json(serde_json::json!({ "status": "ok", "unix_ms": unix_ms }))
}

/// 200 when every enabled stream is playing and encoded a frame in the last 2 s; 503 otherwise, with a
/// JSON body saying which stream is not and why.
pub async fn readyz(State(st): State<AppState>) -> impl IntoResponse {
    let r = st.sessions.readiness().await;
    let status = if r.ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(r))
}

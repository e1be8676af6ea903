//! Health endpoints: `/healthz` (the process is up) and `/readyz` (every enabled stream produces frames).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;

use super::AppState;

pub async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "ok" }))
}

/// 200 when every enabled stream is playing and encoded a frame in the last 2 s; 503 otherwise, with a
/// JSON body saying which stream is not and why.
pub async fn readyz(State(st): State<AppState>) -> impl IntoResponse {
    let r = st.sessions.readiness().await;
    let status = if r.ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(r))
}

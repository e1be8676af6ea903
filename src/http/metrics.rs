//! Metrics over HTTP: the Prometheus scrape endpoint (`GET /metrics` on its own listener, `[metrics]`), and
//! the middleware that counts and times every request of the main listener by route template.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use subtle::ConstantTimeEq;

use super::problem::ApiError;
use crate::auth::{Auth, AuthError};
use crate::session::Sessions;

#[derive(Clone)]
struct Scrape {
    sessions: Sessions,
    token: Option<Arc<str>>,
    /// `server.state_dir`, whose free space is a metric.
    state_dir: Arc<std::path::Path>,
}

/// The scrape listener's routes: `GET /metrics` (with the bearer token when one is configured).
pub fn router(sessions: Sessions, token: Option<String>, state_dir: &std::path::Path) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .fallback(|req: Request| async move {
            ApiError::not_found(format!("nothing at {}; try /metrics", req.uri().path()))
        })
        .with_state(Scrape { sessions, token: token.map(Arc::from), state_dir: Arc::from(state_dir) })
}

async fn metrics(State(st): State<Scrape>, headers: HeaderMap) -> Result<Response, ApiError> {
    if let Some(want) = &st.token {
        let given = Auth::bearer(headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()));
        let ok = given.as_ref().is_ok_and(|g| bool::from(g.as_bytes().ct_eq(want.as_bytes())));
        if !ok {
            let e = given.err().unwrap_or_else(|| AuthError::Invalid("not the metrics token".into()));
            crate::telemetry::auth_failure(e.kind());
            return Err(e.into());
        }
    }
    let body = crate::session::scrape(&st.sessions, &st.state_dir).await;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response())
}

/// Where the inner, per-route layer ([`note_route`]) leaves the matched route for [`track`].
#[derive(Clone, Default)]
struct RouteSlot(Arc<Mutex<Option<String>>>);

/// Outermost layer: counts and times the request (`glasscast_http_requests_total`,
/// `glasscast_http_request_duration_seconds`) under its route template, or `unmatched`. It sits outside
/// the timeout, so a request cut off with 408 is counted too.
pub async fn track(mut req: Request, next: Next) -> Response {
    let slot = RouteSlot::default();
    req.extensions_mut().insert(slot.clone());
    let method = req.method().clone();
    let start = Instant::now();
    let resp = next.run(req).await;
    let route = slot.0.lock().expect("route slot lock").take();
    crate::telemetry::http_request(
        route.as_deref().unwrap_or("unmatched"),
        method.as_str(),
        resp.status().as_u16(),
        start.elapsed(),
    );
    resp
}

/// Per-route layer: notes the matched route template (only known once routing chose a route).
pub async fn note_route(req: Request, next: Next) -> Response {
    if let (Some(slot), Some(path)) = (req.extensions().get::<RouteSlot>(), req.extensions().get::<MatchedPath>()) {
        *slot.0.lock().expect("route slot lock") = Some(path.as_str().to_owned());
    }
    next.run(req).await
}

//! HTTP side: axum routers, one module per protocol.
//!
//! Architecture invariant: nothing here knows about GStreamer. Handlers talk only to the session manager
//! ([`crate::session::Sessions`]) and turn its errors into `application/problem+json`.

pub mod api;
pub mod ops;
pub mod problem;
pub mod tls;
pub mod web;
pub mod whep;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::auth::{Auth, AuthError};
use crate::config::{Config, IceServer};
use crate::session::Sessions;
pub use problem::ApiError;

/// Largest request body accepted anywhere (an SDP offer is a few KiB).
pub const MAX_BODY: usize = 64 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub sessions: Sessions,
    pub auth: Auth,
    pub ice_servers: Arc<Vec<IceServer>>,
    pub tls: bool,
}

impl AppState {
    pub fn new(sessions: Sessions, auth: Auth, cfg: &Config) -> Self {
        Self { sessions, auth, ice_servers: Arc::new(cfg.webrtc.ice_servers.clone()), tls: !cfg.server.plain_http }
    }
}

/// How long a refused credential waits before its answer (slows down guessing; a token is never logged).
const AUTH_FAILURE_DELAY: Duration = Duration::from_millis(200);

/// The request's `Authorization` header, if it is text.
fn authorization(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION).map(|v| v.to_str().unwrap_or("\u{0}"))
}

/// Turns an auth failure into its response after [`AUTH_FAILURE_DELAY`], logging why (never the token).
async fn refused(e: AuthError, method: &Method, path: &str) -> ApiError {
    tracing::info!(%method, path, reason = %e, "request refused by access control");
    tokio::time::sleep(AUTH_FAILURE_DELAY).await;
    e.into()
}

/// Checks the request's token against `check`; a refusal becomes a delayed problem response.
async fn check_auth<T>(
    headers: &axum::http::HeaderMap,
    method: &Method,
    path: &str,
    check: impl FnOnce(Option<&str>) -> Result<T, AuthError>,
) -> Result<T, ApiError> {
    match check(authorization(headers)) {
        Ok(v) => Ok(v),
        Err(e) => Err(refused(e, method, path).await),
    }
}

pub fn router(state: AppState, cors_origins: &[String]) -> Router {
    let whep = Router::new()
        .route("/whep/{stream}", post(whep::create).options(whep::options_endpoint))
        .route(
            "/whep/sessions/{id}",
            axum::routing::patch(whep::patch).delete(whep::delete).options(whep::options_session),
        )
        .layer(cors(cors_origins))
        .layer(middleware::from_fn(whep::advertise_on_preflight));
    Router::new()
        .merge(whep)
        .nest("/api/v1", api::router())
        .route("/", get(web::index))
        .route("/watch/{stream}", get(web::watch))
        .route("/assets/{file}", get(web::asset))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(problem_for_bare_errors))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, Duration::from_secs(30)))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

fn cors(origins: &[String]) -> CorsLayer {
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::POST, Method::PATCH, Method::DELETE, Method::OPTIONS])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, header::IF_MATCH])
        .expose_headers([
            header::LOCATION,
            header::ETAG,
            header::LINK,
            header::RETRY_AFTER,
            header::HeaderName::from_static("accept-patch"),
            header::HeaderName::from_static("accept-post"),
        ])
        .max_age(Duration::from_secs(3600))
}

async fn not_found(req: Request) -> ApiError {
    ApiError::not_found(format!("nothing at {}", req.uri().path()))
}

async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        format!("{} is not allowed on {}", req.method(), req.uri().path()),
    )
}

/// Errors produced by layers (timeouts, body limits) come without a body; give them a problem body too.
async fn problem_for_bare_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    if (status.is_client_error() || status.is_server_error()) && !resp.headers().contains_key(header::CONTENT_TYPE) {
        let kind = match status {
            StatusCode::PAYLOAD_TOO_LARGE => "body-too-large",
            StatusCode::REQUEST_TIMEOUT => "timeout",
            _ => "error",
        };
        let detail = match status {
            StatusCode::PAYLOAD_TOO_LARGE => format!("request bodies are limited to {MAX_BODY} bytes"),
            StatusCode::REQUEST_TIMEOUT => "the request took too long".to_owned(),
            _ => status.canonical_reason().unwrap_or("error").to_owned(),
        };
        let mut problem = ApiError::new(status, kind, detail).into_response();
        problem.headers_mut().extend(
            resp.headers().iter().filter(|(k, _)| *k != header::CONTENT_LENGTH).map(|(k, v)| (k.clone(), v.clone())),
        );
        return problem;
    }
    resp
}

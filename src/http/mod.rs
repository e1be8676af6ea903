//! HTTP side: axum routers, one module per protocol.
//!
//! Architecture invariant: nothing here knows about GStreamer. Handlers talk only to the session manager
//! ([`crate::session::Sessions`]) and turn its errors into `application/problem+json`.

pub mod api;
pub mod conn;
mod console;
pub mod limit;
pub mod metrics;
pub mod ops;
pub mod problem;
mod recordings;
pub mod tls;
pub mod web;
pub mod whep;
pub mod whip;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequestParts, MatchedPath, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::auth::{Auth, AuthError};
use crate::config::{Config, IceServer};
use crate::ids::StreamName;
use crate::session::Sessions;
pub use problem::ApiError;

/// Largest request body accepted anywhere (an SDP offer is a few KiB).
pub const MAX_BODY: usize = 64 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub sessions: Sessions,
    pub auth: Auth,
    pub ice_servers: Arc<Vec<IceServer>>,
    /// How long TURN REST credentials handed out last at most (`webrtc.turn_credential_ttl_s`).
    pub turn_ttl_s: u64,
    pub tls: bool,
    pub limiter: Arc<limit::FailureLimiter>,
    /// Where the admin token is taken even from an address the limiter refuses (`auth.admin_trusted`).
    pub admin_trusted: Arc<crate::config::Networks>,
    /// `/readyz` shows per-stream detail without the admin token.
    pub public_readyz: bool,
    /// A request (body included) that takes longer gets 408.
    pub request_timeout: Duration,
    /// Origins the admin API may push to (`auth.push_allow`), as `Url::origin` writes them.
    pub push_allow: Arc<Vec<String>>,
    /// `server.state_dir` (the host panel and the metrics report its free space).
    pub state_dir: Arc<std::path::PathBuf>,
    /// Signs recording links (`POST .../recordings/{file}/link`).
    pub link_key: Arc<recordings::LinkKey>,
}

impl AppState {
    pub fn new(sessions: Sessions, auth: Auth, cfg: &Config) -> Self {
        Self {
            sessions,
            auth,
            ice_servers: Arc::new(cfg.webrtc.ice_servers.clone()),
            turn_ttl_s: cfg.webrtc.turn_credential_ttl_s,
            tls: !cfg.server.plain_http,
            limiter: Arc::new(limit::FailureLimiter::new(cfg.auth.failures_burst, cfg.auth.failures_per_minute)),
            admin_trusted: Arc::new(cfg.auth.admin_trusted()),
            public_readyz: cfg.server.public_readyz,
            request_timeout: Duration::from_secs(cfg.server.request_timeout_s.into()),
            push_allow: Arc::new(cfg.auth.push_allow.iter().filter_map(|o| origin_of(o)).collect()),
            state_dir: Arc::new(cfg.server.state_dir.clone()),
            link_key: Arc::new(recordings::LinkKey::generate()),
        }
    }
}

/// An allowed push origin as `Url::origin` writes it (`https://host` without a default port,
/// `http://host:8080`, `ws://host:8188`), `None` when it is no http(s) or ws(s) URL with a host.
fn origin_of(url: &str) -> Option<String> {
    let u = reqwest::Url::parse(url).ok()?;
    (matches!(u.scheme(), "http" | "https" | "ws" | "wss") && u.host().is_some())
        .then(|| u.origin().ascii_serialization())
}

/// How long a refused credential waits before its answer (slows down guessing; a token is never logged).
const AUTH_FAILURE_DELAY: Duration = Duration::from_millis(200);

/// Who is asking: the request's `Authorization` header, method, route and client address. Handlers check
/// its token with [`Caller::check`].
pub struct Caller {
    authorization: Option<String>,
    method: Method,
    route: String,
    pub addr: Option<SocketAddr>,
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let route = parts.extensions.get::<MatchedPath>().map_or(parts.uri.path(), MatchedPath::as_str).to_owned();
        Ok(Self {
            // A header that is not text is kept as a value no token check accepts.
            authorization: parts
                .headers
                .get(header::AUTHORIZATION)
                .map(|v| v.to_str().map_or_else(|_| "\u{0}".to_owned(), str::to_owned)),
            method: parts.method.clone(),
            route,
            // A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d: name them by their IPv4 address (the
            // rate limit groups IPv6 clients by /64, which would put every IPv4 client in one group).
            addr: parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| SocketAddr::new(c.0.ip().to_canonical(), c.0.port())),
        })
    }
}

impl Caller {
    /// The request carries an `Authorization` header.
    pub fn has_token(&self) -> bool {
        self.authorization.is_some()
    }

    /// Checks the token against `check`. A refusal is logged (never the token), counted against the
    /// client's address and answered after [`AUTH_FAILURE_DELAY`]; an address with too many refusals gets
    /// 429 whatever it sends, until its allowance refills ([`limit::FailureLimiter`]).
    pub async fn check<T>(
        &self,
        st: &AppState,
        check: impl FnOnce(Option<&str>) -> Result<T, AuthError>,
    ) -> Result<T, ApiError> {
        let ip = self.addr.map(|a| a.ip());
        let (method, route) = (&self.method, self.route.as_str());
        if let Some(wait) = st.limiter.blocked(ip, Instant::now())
            && !(st.admin_trusted.contains(ip) && st.auth.is_admin_header(self.authorization.as_deref()))
        {
            crate::telemetry::auth_failure("rate-limited");
            tracing::info!(%method, route, client = ?ip, "refused: too many failed tokens from this address");
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too-many-auth-failures",
                format!("too many refused tokens from this address; try again in {} s", wait.as_secs()),
            )
            .retry_after(u32::try_from(wait.as_secs()).unwrap_or(u32::MAX)));
        }
        match check(self.authorization.as_deref()) {
            Ok(v) => Ok(v),
            Err(e) => {
                crate::telemetry::auth_failure(e.kind());
                if e != AuthError::Missing {
                    st.limiter.failed(ip, Instant::now());
                }
                tracing::info!(%method, route, client = ?ip, reason = %e, "request refused by access control");
                tokio::time::sleep(AUTH_FAILURE_DELAY).await;
                Err(e.into())
            }
        }
    }
}

/// A stream named in a request's path, parsed where it enters: a name no stream can have is as unknown
/// as one that is not configured (404).
pub fn stream_in_path(name: &str) -> Result<StreamName, ApiError> {
    StreamName::parse(name).map_err(|_| crate::session::SessionError::UnknownStream(name.to_owned()).into())
}

/// The request body, or 413 (over [`MAX_BODY`]) / 400 (could not be read) as problem+json.
pub fn read_body(body: Result<axum::body::Bytes, BytesRejection>) -> Result<axum::body::Bytes, ApiError> {
    body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(r.status(), "body-too-large", format!("request bodies are limited to {MAX_BODY} bytes"))
        } else {
            ApiError::new(StatusCode::BAD_REQUEST, "unreadable-body", r.body_text())
        }
    })
}

/// A JSON request body: read within the size limit, `Content-Type: application/json` (415 otherwise),
/// and parsed into `T` (400 `malformed-json` naming what is wrong).
pub fn read_json<T: serde::de::DeserializeOwned>(
    headers: &axum::http::HeaderMap,
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let body = read_body(body)?;
    whep::require_content_type(headers, "application/json")?;
    serde_json::from_slice(&body).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "malformed-json", e.to_string()))
}

pub fn router(state: AppState, cors_origins: &[String]) -> Router {
    let timeout = state.request_timeout;
    let whep = Router::new()
        .route("/whep/{stream}", post(whep::create).options(whep::options_endpoint))
        .route(
            "/whep/sessions/{id}",
            axum::routing::patch(whep::patch).delete(whep::delete).options(whep::options_session),
        )
        .route("/whip/{stream}", post(whip::create).options(whip::options_endpoint))
        .route(
            "/whip/sessions/{id}",
            axum::routing::patch(whip::patch).delete(whip::delete).options(whip::options_session),
        )
        .layer(cors(cors_origins))
        .layer(middleware::from_fn(whep::advertise_on_preflight));
    Router::new()
        .merge(whep)
        .nest("/api/v1", api::router())
        .route("/", get(web::index))
        .route("/streams", get(web::streams))
        .route("/watch/{stream}", get(web::watch))
        .route("/admin", get(web::admin))
        .route("/assets/{file}", get(web::asset))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route_layer(middleware::from_fn(metrics::note_route))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, timeout))
        // Outside the timeout, so a 408 gets its problem body too.
        .layer(middleware::from_fn(problem_for_bare_errors))
        .layer(middleware::from_fn(close_after_refused_body))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(middleware::from_fn(metrics::track))
        .with_state(state)
}

/// The admin API's guard: the admin token only (`auth.open_admin_api` aside), refused tokens counted.
pub(crate) async fn admin(st: &AppState, caller: &Caller) -> Result<(), ApiError> {
    caller.check(st, |h| st.auth.authorize_admin(h)).await
}

/// The span every request is traced in: its method and path, never its query (a recording link's `exp` and
/// `sig` are a credential) and never its headers (tokens).
fn request_span<B>(req: &axum::http::Request<B>) -> tracing::Span {
    tracing::debug_span!("request", method = %req.method(), path = %req.uri().path(), version = ?req.version())
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

/// An error answer to an HTTP/1 request that came with a body may leave some of that body unread (a 413
/// stops reading at the limit, a 415 or 401 never starts): hyper then closes the connection after the
/// answer, and a client that pools connections (aiohttp) would send its next request into the closed one.
/// `Connection: close` tells it so. HTTP/2 streams end on their own.
async fn close_after_refused_body(req: Request, next: Next) -> Response {
    let h1 = req.version() <= axum::http::Version::HTTP_11;
    let had_body = req.headers().contains_key(header::TRANSFER_ENCODING)
        || req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .is_some_and(|n| n > 0);
    let mut resp = next.run(req).await;
    let status = resp.status();
    if h1 && had_body && (status.is_client_error() || status.is_server_error()) {
        resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
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

#[cfg(test)]
mod rules_tests;

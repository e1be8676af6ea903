//! `application/problem+json` (RFC 9457) errors: every 4xx/5xx glasscast sends names what is wrong.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::auth::AuthError;
use crate::session::SessionError;

/// An error response. `kind` becomes the problem type `urn:glasscast:problem:<kind>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub detail: String,
    pub retry_after: Option<u32>,
    /// An RFC 6750 challenge for 401/403/400 auth failures.
    pub www_authenticate: Option<String>,
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    type_: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, detail: impl Into<String>) -> Self {
        Self { status, kind, detail: detail.into(), retry_after: None, www_authenticate: None }
    }

    pub fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", detail)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("Error");
        let body = Problem {
            type_: format!("urn:glasscast:problem:{}", self.kind),
            title,
            status: self.status.as_u16(),
            detail: &clipped(&self.detail),
        };
        let json = serde_json::to_vec(&body).expect("a problem always serializes");
        let mut resp = (self.status, json).into_response();
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Some(secs) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(challenge) = self.www_authenticate.and_then(|c| HeaderValue::from_str(&c).ok()) {
            h.insert(header::WWW_AUTHENTICATE, challenge);
        }
        resp
    }
}

/// The longest detail sent: a detail echoes what was asked (a stream's name, a file's, a URL), and a
/// request may carry tens of kilobytes of it.
const MAX_DETAIL: usize = 1024;

/// `detail` cut at `MAX_DETAIL` bytes, on a character boundary, saying how much was left out.
fn clipped(detail: &str) -> std::borrow::Cow<'_, str> {
    if detail.len() <= MAX_DETAIL {
        return detail.into();
    }
    let end = (0..=MAX_DETAIL).rev().find(|&i| detail.is_char_boundary(i)).unwrap_or(0);
    format!("{}... ({} more bytes not shown)", &detail[..end], detail.len() - end).into()
}

impl From<SessionError> for ApiError {
    fn from(e: SessionError) -> Self {
        use StatusCode as S;
        let detail = e.to_string();
        match e {
            SessionError::UnknownStream(_) => Self::new(S::NOT_FOUND, "unknown-stream", detail),
            SessionError::UnknownSession => Self::new(S::NOT_FOUND, "unknown-session", detail),
            SessionError::NotProducing(_) => Self::new(S::CONFLICT, "stream-not-producing", detail).retry_after(2),
            SessionError::ViewerCap { .. } => Self::new(S::SERVICE_UNAVAILABLE, "viewer-cap", detail).retry_after(10),
            SessionError::Overloaded { .. } => Self::new(S::SERVICE_UNAVAILABLE, "overloaded", detail).retry_after(10),
            SessionError::MalformedOffer(_) => Self::new(S::BAD_REQUEST, "malformed-sdp", detail),
            SessionError::NoUsableCodec(_) => Self::new(S::BAD_REQUEST, "no-usable-codec", detail),
            SessionError::Negotiation(_) => Self::new(S::INTERNAL_SERVER_ERROR, "negotiation-failed", detail),
            SessionError::BadFrag(_) => Self::new(S::BAD_REQUEST, "malformed-sdpfrag", detail),
            SessionError::PreconditionRequired => Self::new(S::PRECONDITION_REQUIRED, "if-match-required", detail),
            SessionError::PreconditionFailed => Self::new(S::PRECONDITION_FAILED, "etag-mismatch", detail),
            SessionError::IceRestartFailed(_) => Self::new(S::INTERNAL_SERVER_ERROR, "ice-restart-failed", detail),
            SessionError::ShuttingDown => Self::new(S::SERVICE_UNAVAILABLE, "shutting-down", detail).retry_after(5),
            SessionError::NotYourSession => Self::new(S::FORBIDDEN, "not-your-session", detail),
            SessionError::StartFailed(..) => Self::new(S::INTERNAL_SERVER_ERROR, "stream-start-failed", detail),
            SessionError::TokenSessionLimit(_) => Self::new(S::TOO_MANY_REQUESTS, "token-session-limit", detail),
            SessionError::NotWhip(_) => Self::new(S::CONFLICT, "not-a-whip-stream", detail),
            SessionError::AlreadyPublished(_) => Self::new(S::CONFLICT, "already-published", detail),
            SessionError::BadPush(..) => Self::new(S::BAD_REQUEST, "bad-push", detail),
            SessionError::UnknownPush(..) => Self::new(S::NOT_FOUND, "unknown-push", detail),
        }
    }
}

/// RFC 6750 section 3: 401 with a `Bearer` challenge (and `invalid_token` when a token was given and is
/// bad), 400 `invalid_request` for a malformed header, 403 `insufficient_scope` for a token that is valid
/// but does not cover what was asked.
impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        use StatusCode as S;
        let detail = e.to_string();
        let (status, kind, code) = match e {
            AuthError::Missing | AuthError::WrongScheme => (S::UNAUTHORIZED, "unauthorized", None),
            AuthError::Malformed(_) => (S::BAD_REQUEST, "malformed-authorization", Some("invalid_request")),
            AuthError::Invalid(_) | AuthError::Expired | AuthError::Revoked => {
                (S::UNAUTHORIZED, "invalid-token", Some("invalid_token"))
            }
            AuthError::WrongStream(_) | AuthError::NotAdmin | AuthError::PublishOnly | AuthError::NotPublish => {
                (S::FORBIDDEN, "insufficient-scope", Some("insufficient_scope"))
            }
        };
        let challenge = match code {
            None => r#"Bearer realm="glasscast""#.to_owned(),
            Some(code) => format!(
                r#"Bearer realm="glasscast", error="{code}", error_description="{}""#,
                detail.replace(['"', '\\'], "'")
            ),
        };
        Self { www_authenticate: Some(challenge), ..Self::new(status, kind, detail) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::StreamName;

    async fn body_json(resp: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 16).await.expect("body");
        serde_json::from_slice(&bytes).expect("json")
    }

    #[tokio::test]
    async fn problem_body_and_headers() {
        let main = StreamName::parse("main").expect("valid");
        let resp = ApiError::from(SessionError::NotProducing(main)).into_response();
        assert_eq!(resp.status(), StatusCode::CONFLICT);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/problem+json");
        assert_eq!(resp.headers()[header::RETRY_AFTER], "2");
        let v = body_json(resp).await;
        assert_eq!(v["status"], 409);
        assert_eq!(v["type"], "urn:glasscast:problem:stream-not-producing");
        assert!(v["detail"].as_str().expect("detail").contains("main"));
    }

    #[tokio::test]
    async fn a_long_detail_is_cut_on_a_character_boundary() {
        let name = "é".repeat(40_000);
        let resp = ApiError::not_found(format!("no stream named `{name}`")).into_response();
        let detail = body_json(resp).await["detail"].as_str().expect("detail").to_owned();
        assert!(detail.len() < MAX_DETAIL + 64, "{} bytes", detail.len());
        assert!(detail.starts_with("no stream named `éé") && detail.ends_with("more bytes not shown)"), "{detail}");
        assert_eq!(clipped("short"), "short");
    }

    #[test]
    fn statuses_for_every_session_error() {
        let main = StreamName::parse("main").expect("valid");
        let cases = [
            (SessionError::UnknownStream("x".into()), 404),
            (SessionError::UnknownSession, 404),
            (SessionError::ViewerCap { stream: main.clone(), max: 1 }, 503),
            (
                SessionError::Overloaded { stream: main, reason: "it encodes 12.5 of its 30 frames per second".into() },
                503,
            ),
            (SessionError::MalformedOffer("x".into()), 400),
            (SessionError::NoUsableCodec("x".into()), 400),
            (SessionError::BadFrag(crate::sdpfrag::FragError::Empty), 400),
            (SessionError::PreconditionRequired, 428),
            (SessionError::PreconditionFailed, 412),
            (SessionError::IceRestartFailed("x".into()), 500),
            (SessionError::ShuttingDown, 503),
        ];
        for (err, status) in cases {
            let api = ApiError::from(err.clone());
            assert_eq!(api.status.as_u16(), status, "{err:?}");
            assert!(!api.detail.is_empty());
        }
    }
}

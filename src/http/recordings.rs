//! The admin API's recordings (docs/recording.md): start and stop recording a stream, list its files,
//! download one (HTTP range requests, so a player seeks), delete one, and make a link to one that a
//! `<video>` element can open (it cannot send a bearer header): the file's path with `exp` and `sig`, an
//! HMAC of stream, file and expiry under a key made at start (links die with the process, or in an hour).

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use aws_lc_rs::hmac;
use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use httpdate::HttpDate;
use serde::{Deserialize, Serialize};
use tower::ServiceExt;
use utoipa::ToSchema;

use super::admin;
use super::{ApiError, AppState, Caller, stream_in_path};
use crate::auth::now_s;
use crate::recordings::{self, DeleteError, FileInfo};

/// How long a link stays good.
const LINK_TTL_S: u64 = 3600;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/streams/{name}/record", post(start).delete(stop))
        .route("/streams/{name}/recordings", get(list))
        .route("/streams/{name}/recordings/{file}", get(download).delete(remove))
        .route("/streams/{name}/recordings/{file}/link", post(link))
}

/// The key links are signed with (made at start; never leaves the process).
pub struct LinkKey(hmac::Key);

impl LinkKey {
    pub fn generate() -> Self {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        Self(hmac::Key::generate(hmac::HMAC_SHA256, &rng).expect("the system's random source works"))
    }

    fn message(stream: &str, file: &str, exp: u64) -> String {
        format!("recording\n{stream}\n{file}\n{exp}")
    }

    fn sign(&self, stream: &str, file: &str, exp: u64) -> String {
        let tag = hmac::sign(&self.0, Self::message(stream, file, exp).as_bytes());
        tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }

    fn verify(&self, stream: &str, file: &str, exp: u64, sig: &str) -> bool {
        let Some(tag) = unhex(sig) else { return false };
        hmac::verify(&self.0, Self::message(stream, file, exp).as_bytes(), &tag).is_ok()
    }
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.len() > 128 {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok())).collect()
}

/// The stream's directory and the file being written (404 for an unknown stream).
async fn dir_of(st: &AppState, name: &str) -> Result<(PathBuf, Option<PathBuf>), ApiError> {
    let stream = stream_in_path(name)?;
    st.sessions
        .recording_dir(stream.as_str())
        .await
        .ok_or_else(|| crate::session::SessionError::UnknownStream(name.to_owned()).into())
}

fn no_file(file: &str) -> ApiError {
    ApiError::not_found(format!("no recording named `{file}` in this stream's directory"))
}

/// Recording `file` of stream `name` (404 for an unknown stream or a file that is not one of its
/// recordings).
async fn found(st: &AppState, name: &str, file: &str) -> Result<PathBuf, ApiError> {
    let (dir, _) = dir_of(st, name).await?;
    let asked = file.to_owned();
    let path = tokio::task::spawn_blocking(move || recordings::find(&dir, &asked)).await.ok().flatten();
    path.ok_or_else(|| no_file(file))
}

/// Starts recording the stream now, into its `[streams.record]` directory with its retention (the
/// defaults when the stream has no such table). It lasts across the stream's stops and starts until the
/// server restarts; a recording that cannot write now waits and says why in `/readyz`.
#[utoipa::path(post, path = "/api/v1/streams/{name}/record", security(("bearer" = [])),
    params(("name" = String, Path, description = "the stream's name")),
    responses((status = 204), (status = 401), (status = 403), (status = 404)))]
pub(super) async fn start(
    State(st): State<AppState>,
    name: Path<String>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    switch(&st, &name, &caller, true).await
}

/// Stops recording the stream; the file being written is finished first.
#[utoipa::path(delete, path = "/api/v1/streams/{name}/record", security(("bearer" = [])),
    params(("name" = String, Path, description = "the stream's name")),
    responses((status = 204), (status = 401), (status = 403), (status = 404)))]
pub(super) async fn stop(
    State(st): State<AppState>,
    name: Path<String>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    switch(&st, &name, &caller, false).await
}

async fn switch(st: &AppState, name: &str, caller: &Caller, on: bool) -> Result<StatusCode, ApiError> {
    admin(st, caller).await?;
    st.sessions.record(&stream_in_path(name)?, on).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The stream's recordings, oldest first (only files glasscast made; `writing`: the one being written).
#[utoipa::path(get, path = "/api/v1/streams/{name}/recordings", security(("bearer" = [])),
    params(("name" = String, Path, description = "the stream's name")),
    responses((status = 200, body = [FileInfo]), (status = 401), (status = 403), (status = 404)))]
pub(super) async fn list(
    State(st): State<AppState>,
    Path(name): Path<String>,
    caller: Caller,
) -> Result<Response, ApiError> {
    admin(&st, &caller).await?;
    let (dir, current) = dir_of(&st, &name).await?;
    let files =
        tokio::task::spawn_blocking(move || recordings::list(&dir, current.as_slice())).await.unwrap_or_default();
    Ok(Json(files).into_response())
}

#[derive(Debug, Deserialize)]
pub(super) struct LinkQuery {
    exp: Option<u64>,
    sig: Option<String>,
}

/// One recording, `video/mp4`, with range requests (206) so players seek. The admin token, or the `exp`
/// and `sig` of a link (`POST .../link`) instead.
#[utoipa::path(get, path = "/api/v1/streams/{name}/recordings/{file}", security(("bearer" = [])),
    params(("name" = String, Path, description = "the stream's name"), ("file" = String, Path, description = "the file's name"),
        ("exp" = Option<u64>, Query, description = "a link's expiry (unix seconds)"), ("sig" = Option<String>, Query, description = "a link's signature")),
    responses((status = 200, content_type = "video/mp4"), (status = 206), (status = 401), (status = 403), (status = 404), (status = 416)))]
pub(super) async fn download(
    State(st): State<AppState>,
    Path((name, file)): Path<(String, String)>,
    q: Result<Query<LinkQuery>, axum::extract::rejection::QueryRejection>,
    caller: Caller,
    req: Request,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad-link", e.body_text()))?;
    match (q.exp, q.sig.as_deref()) {
        (Some(exp), Some(sig)) if st.link_key.verify(&name, &file, exp, sig) => {
            if exp < now_s() {
                return Err(ApiError::new(StatusCode::FORBIDDEN, "link-expired", "this recording link has expired"));
            }
        }
        (None, None) => admin(&st, &caller).await?,
        _ => return Err(ApiError::new(StatusCode::FORBIDDEN, "bad-link", "this recording link is not valid")),
    }
    let path = found(&st, &name, &file).await?;
    let modified = tokio::fs::metadata(&path).await.and_then(|m| m.modified()).ok();
    let mut req = req;
    settle_range(&mut req, modified);
    let range = req.headers().get(header::RANGE).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    // `video/mp4` by its extension; one byte range (206), HEAD, Last-Modified and 416.
    let served = tower_http::services::ServeFile::new(&path).oneshot(req).await;
    let mut resp = match served {
        Ok(r) => r.map(axum::body::Body::new),
        Err(e) => match e {},
    };
    if resp.status() == StatusCode::RANGE_NOT_SATISFIABLE {
        resp = range_refused(&resp, range.as_deref().unwrap_or_default());
    }
    let disposition = format!("inline; filename=\"{file}\"");
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    Ok(resp)
}

/// Leaves the request's `Range` to ServeFile only where RFC 9110 (section 14) says to act on it: for a
/// GET, in a unit other than `bytes` (ignored: MUST), one range (several are ignored, as it allows: the
/// whole file rather than a multipart body), and an `If-Range` that matches the file's Last-Modified
/// (a void range otherwise: MUST; no ETag is sent, so an entity tag never matches). `Bytes=` is `bytes=`.
fn settle_range(req: &mut Request, modified: Option<SystemTime>) {
    let holds = if_range_holds(req.headers(), modified);
    let get = req.method() == Method::GET;
    let headers = req.headers_mut();
    let Some(range) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else { return };
    let Some((unit, spec)) = range.trim().split_once('=') else { return };
    let bytes = unit.eq_ignore_ascii_case("bytes");
    let other_unit = !bytes
        && !unit.is_empty()
        && unit.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !get || other_unit || (bytes && (spec.contains(',') || !holds)) {
        headers.remove(header::RANGE);
    } else if bytes && unit != "bytes" {
        let lower = HeaderValue::from_str(&format!("bytes={spec}")).expect("a visible-ASCII header value stays one");
        headers.insert(header::RANGE, lower);
    }
}

/// Whether the request's `If-Range` (if any) is the file's Last-Modified, which is a strong validator only
/// once the file is a second old (RFC 9110 section 8.8.2.2: it could change twice in its last second).
fn if_range_holds(headers: &HeaderMap, modified: Option<SystemTime>) -> bool {
    let Some(v) = headers.get(header::IF_RANGE) else { return true };
    let date = v.to_str().ok().and_then(|s| httpdate::parse_http_date(s.trim()).ok());
    let (Some(date), Some(modified)) = (date, modified) else { return false };
    let strong = modified.elapsed().is_ok_and(|age| age >= Duration::from_secs(1));
    strong && HttpDate::from(date) == HttpDate::from(modified)
}

/// A 416 as a problem naming the range, keeping the file's size (`Content-Range: bytes */N`): ServeFile's
/// own has an empty or plain-text body labelled `video/mp4`.
fn range_refused(served: &Response, range: &str) -> Response {
    let size = served.headers().get(header::CONTENT_RANGE).cloned();
    let of = size.as_ref().and_then(|v| v.to_str().ok()?.strip_prefix("bytes */")).unwrap_or("?");
    let shown: String = range.chars().take(100).collect();
    let detail = format!(
        "the range `{shown}` cannot be served: it must be a `bytes=` range that starts inside the file ({of} bytes)"
    );
    let mut resp = ApiError::new(StatusCode::RANGE_NOT_SATISFIABLE, "range-not-satisfiable", detail).into_response();
    if let Some(v) = size {
        resp.headers_mut().insert(header::CONTENT_RANGE, v);
    }
    resp
}

/// Deletes one recording (409 for the file being written: stop the recording first).
#[utoipa::path(delete, path = "/api/v1/streams/{name}/recordings/{file}", security(("bearer" = [])),
    params(("name" = String, Path, description = "the stream's name"), ("file" = String, Path, description = "the file's name")),
    responses((status = 204), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub(super) async fn remove(
    State(st): State<AppState>,
    Path((name, file)): Path<(String, String)>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    admin(&st, &caller).await?;
    let (dir, current) = dir_of(&st, &name).await?;
    let asked = file.clone();
    let deleted = tokio::task::spawn_blocking(move || recordings::delete(&dir, &asked, current.as_deref()))
        .await
        .unwrap_or_else(|e| Err(DeleteError::Io(file.clone(), std::io::Error::other(e))));
    match deleted {
        Ok(bytes) => {
            tracing::info!(stream = %name, file = %file, bytes, reason = "api", "recording deleted");
            crate::telemetry::recording_deleted(&name, recordings::Why::Api.as_str());
            Ok(StatusCode::NO_CONTENT)
        }
        Err(DeleteError::NotFound(_)) => Err(no_file(&file)),
        Err(e @ DeleteError::InUse(_)) => Err(ApiError::new(StatusCode::CONFLICT, "recording-in-use", e.to_string())),
        Err(e) => {
            tracing::error!(stream = %name, error = %e, "deleting a recording");
            Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "recording-delete-failed", e.to_string()))
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Link {
    /// The file's path with its signature (prefix it with the server's origin); good for one file.
    url: String,
    expires_at: u64,
}

/// A link to one recording, good for an hour (or until the server restarts), that needs no header: for a
/// `<video>` element or a download. Whoever has it can fetch that file.
#[utoipa::path(post, path = "/api/v1/streams/{name}/recordings/{file}/link", security(("bearer" = [])),
    params(("name" = String, Path, description = "the stream's name"), ("file" = String, Path, description = "the file's name")),
    responses((status = 201, body = Link), (status = 401), (status = 403), (status = 404)))]
pub(super) async fn link(
    State(st): State<AppState>,
    Path((name, file)): Path<(String, String)>,
    caller: Caller,
) -> Result<Response, ApiError> {
    admin(&st, &caller).await?;
    found(&st, &name, &file).await?;
    let expires_at = now_s() + LINK_TTL_S;
    let sig = st.link_key.sign(&name, &file, expires_at);
    let url = format!("/api/v1/streams/{name}/recordings/{file}?exp={expires_at}&sig={sig}");
    Ok((StatusCode::CREATED, Json(Link { url, expires_at })).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_is_good_for_its_file_and_expiry_only() {
        let key = LinkKey::generate();
        let sig = key.sign("main", "20261203T134501Z.mp4", 100);
        assert!(key.verify("main", "20261203T134501Z.mp4", 100, &sig));
        assert!(!key.verify("main", "20261203T134501Z.mp4", 101, &sig));
        assert!(!key.verify("main", "20261203T134502Z.mp4", 100, &sig));
        assert!(!key.verify("other", "20261203T134501Z.mp4", 100, &sig));
        assert!(!LinkKey::generate().verify("main", "20261203T134501Z.mp4", 100, &sig));
        assert!(!key.verify("main", "20261203T134501Z.mp4", 100, "zz"));
    }
}

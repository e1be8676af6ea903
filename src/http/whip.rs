//! WHIP ingest (RFC 9725): `POST /whip/{stream}` takes a publisher's offer for a `source = "whip"` stream
//! (with a publish token) and answers; `PATCH /whip/sessions/{id}` trickles candidates or restarts ICE (the
//! same handling as WHEP's); `DELETE` ends the publisher. One publisher per stream at a time (409 for a
//! second).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::whep::{SDP, body_text, created_response, ice_links, require_content_type};
use super::{ApiError, AppState, Caller};
use crate::session::Role;

/// `POST /whip/{stream}`: the publisher's offer in, 201 + answer out.
#[utoipa::path(post, path = "/whip/{stream}", security(("bearer" = [])),
    params(("stream" = String, Path, description = "the stream's name (its source is \"whip\")")),
    request_body(content = String, content_type = "application/sdp", description = "the publisher's SDP offer"),
    responses((status = 201, body = String, content_type = "application/sdp", description = "the SDP answer"),
        (status = 400), (status = 401), (status = 403), (status = 404), (status = 409), (status = 413),
        (status = 415), (status = 429)))]
pub async fn create(
    State(st): State<AppState>,
    Path(stream): Path<String>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let grant = caller.check(&st, |h| st.auth.authorize_publish(h, &stream)).await?;
    require_content_type(&headers, SDP)?;
    let offer = body_text(body, "malformed-sdp")?;
    let links = ice_links(&st, &grant);
    let stream = super::stream_in_path(&stream)?;
    let created = st.sessions.publish(&stream, offer, grant, caller.addr).await?;
    Ok(created_response(created, "/whip/sessions", &links, true))
}

/// `PATCH /whip/sessions/{id}`: trickle (204), or an ICE restart (new ufrag/pwd, `If-Match` required): 200
/// with our new credentials and candidates as an sdpfrag and the resource's new ETag.
#[utoipa::path(patch, path = "/whip/sessions/{id}", security(("bearer" = [])),
    params(("id" = String, Path, description = "the publisher session's id")),
    request_body(content = String, content_type = "application/trickle-ice-sdpfrag"),
    responses((status = 204), (status = 200, body = String, content_type = "application/trickle-ice-sdpfrag"),
        (status = 400), (status = 401), (status = 403), (status = 404), (status = 412), (status = 415),
        (status = 428)))]
pub async fn patch(
    st: State<AppState>,
    id: Path<String>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    super::whep::patch_session(st, id, caller, headers, body, Role::Publisher).await
}

/// `DELETE /whip/sessions/{id}`: the publisher stops; viewers stay and wait for the next one.
#[utoipa::path(delete, path = "/whip/sessions/{id}", security(("bearer" = [])),
    params(("id" = String, Path, description = "the publisher session's id")),
    responses((status = 200), (status = 401), (status = 403), (status = 404)))]
pub async fn delete(st: State<AppState>, id: Path<String>, caller: Caller) -> Result<StatusCode, ApiError> {
    super::whep::delete_session(st, id, caller, Role::Publisher).await
}

/// `OPTIONS` on the endpoint and on a session: the same answers as WHEP's.
pub use super::whep::{options_endpoint, options_session};

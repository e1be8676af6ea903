//! The media side's state as the HTTP API shows it (the admin API's session list, `/readyz`): the JSON and
//! OpenAPI types live here, at the boundary, and media's own types ([`media::PeerStats`],
//! [`media::PushStatus`], the recorder's and the relay's status) carry no serialization of their own.
//! Each type here is made from media's by `From`, which names every field (no `..`): a field media adds does
//! not compile here until it is shown, or left out on purpose.

use std::net::SocketAddr;

use serde::Serialize;

use crate::media;
use crate::media::forward::{RelayState, RelayStatus};
use crate::media::tap::recorder::RecordingStatus;

/// A session's connection (a viewer's or a WHIP publisher's) as its transport sees it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TransportStats {
    /// The peer's media address (`ip:port`): the remote end of the selected ICE candidate pair, once
    /// there is one.
    #[schema(value_type = Option<String>)]
    pub remote_address: Option<SocketAddr>,
    /// The path the media took: glasscast's end of the selected pair, by ICE candidate type (`host`,
    /// `srflx`, `relay`) and transport protocol (`udp`, `tcp`), once there is one.
    pub candidate_type: Option<String>,
    pub protocol: Option<String>,
    /// RTP bytes and packets sent to the viewer (retransmissions included).
    pub bytes_sent: u64,
    pub packets_sent: u64,
    /// Round-trip time from the viewer's last RTCP receiver report.
    pub rtt_ms: Option<f64>,
    /// Fraction of packets the viewer's last receiver report said were lost (0 to 1; video's, or the
    /// highest of the tracks where the transport cannot tell them apart).
    pub fraction_lost: Option<f64>,
    /// Interarrival jitter from the viewer's last receiver report (video's, or the highest of the tracks).
    pub jitter_ms: Option<f64>,
    /// NACKs and PLIs received from the viewer.
    pub nacks: u64,
    pub plis: u64,
    /// RTP bytes and packets received from the peer (a WHIP publisher's media; 0 for a viewer).
    pub bytes_received: u64,
    pub packets_received: u64,
    /// The stream's quality ladder (forwarding transport): the viewer's rung (0: the top; `null` for one
    /// encoding), its send-side bandwidth estimate in kbit/s (`null` before the first, or for a client
    /// without transport-wide congestion control feedback), and its switches so far.
    pub rung: Option<u8>,
    pub estimate_kbps: Option<u32>,
    pub switches_up: u64,
    pub switches_down: u64,
}

impl From<media::PeerStats> for TransportStats {
    #[rustfmt::skip]
    fn from(s: media::PeerStats) -> Self {
        let media::PeerStats {
            remote_address, candidate_type, protocol, bytes_sent, packets_sent, rtt_ms,
            fraction_lost, jitter_ms, nacks, plis, bytes_received, packets_received,
            rung, estimate_kbps, switches_up, switches_down,
        } = s;
        Self {
            remote_address, candidate_type, protocol, bytes_sent, packets_sent, rtt_ms,
            fraction_lost, jitter_ms, nacks, plis, bytes_received, packets_received,
            rung, estimate_kbps, switches_up, switches_down,
        }
    }
}

/// One rung of a stream's quality ladder in `/readyz`: its picture, rate and bitrate, its viewers (with those
/// switching to it), whether its encoder runs now (a lower rung only while watched), and its switches.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RungReport {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub bitrate_kbps: u32,
    pub viewers: usize,
    pub running: bool,
    /// Viewers switched onto it from a lower rung, and from a higher one, so far.
    pub switches_up: u64,
    pub switches_down: u64,
    /// Its encoded frames per second (lower rungs, while running).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fps_out: Option<f64>,
}

impl From<media::RungStatus> for RungReport {
    fn from(s: media::RungStatus) -> Self {
        let r = s.rung;
        Self {
            width: r.width,
            height: r.height,
            fps: r.fps,
            bitrate_kbps: r.bitrate_kbps,
            viewers: s.viewers,
            running: s.running,
            switches_up: s.switches_up,
            switches_down: s.switches_down,
            fps_out: s.fps.map(|f| (f * 10.0).round() / 10.0),
        }
    }
}

/// One push (WHIP or Janus) in `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PushReport {
    /// Names it in `DELETE /api/v1/streams/{name}/push/{id}` (unique while the stream runs).
    pub id: u32,
    /// The endpoint's scheme, host and port (its path may hold a secret).
    pub target: String,
    /// connecting, connected, retrying, stopped.
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    pub bytes_sent: u64,
    pub attempts: u64,
}

impl From<media::PushStatus> for PushReport {
    fn from(p: media::PushStatus) -> Self {
        let media::PushStatus { id, target, state, last_error, bytes_sent, attempts } = p;
        Self { id, target, state, last_error, bytes_sent, attempts }
    }
}

/// A stream's recording in `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordingReport {
    /// `recording`; `waiting` (it should record and cannot now: `reason` says why; it resumes by itself);
    /// `stopped` (the operator stopped it, or its stream stopped).
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub dir: String,
    /// Files started, bytes written and files retention deleted, since the server started.
    pub files: u64,
    pub bytes_written: u64,
    pub files_deleted: u64,
    /// The file being written, and the unix time (ms) of its first frame.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_started_ms: Option<u64>,
    /// What the stream's files in `dir` take, and the space free there, at the last look.
    pub dir_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub free_bytes: Option<u64>,
}

impl From<RecordingStatus> for RecordingReport {
    #[rustfmt::skip]
    fn from(r: RecordingStatus) -> Self {
        let RecordingStatus {
            state, reason, dir, files, bytes_written, files_deleted,
            current_file, current_started_ms, dir_bytes, free_bytes,
        } = r;
        Self {
            state, reason, dir, files, bytes_written, files_deleted,
            current_file, current_started_ms, dir_bytes, free_bytes,
        }
    }
}

/// `webrtc.relay` in `/readyz`: the TURN server, and its allocation's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RelayReport {
    pub server: String,
    #[serde(flatten)]
    pub state: RelayReportState,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum RelayReportState {
    /// Asked, no answer yet.
    Allocating,
    /// The relayed address, announced to the viewers who join from now on; `via`: our end of the
    /// connection to the TURN server.
    Allocated { address: SocketAddr, via: SocketAddr },
    /// Refused, unanswered or lost; tried again every 30 s.
    Failed { reason: String },
}

impl From<RelayStatus> for RelayReport {
    fn from(r: RelayStatus) -> Self {
        let state = match r.state {
            RelayState::Allocating => RelayReportState::Allocating,
            RelayState::Allocated { address, via } => RelayReportState::Allocated { address, via },
            RelayState::Failed { reason } => RelayReportState::Failed { reason },
        };
        Self { server: r.server, state }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::StreamName;
    use crate::media::MediaError;
    use crate::session::SessionError;

    /// The API's JSON keeps its shape (the admin session list and `/readyz` read these names).
    #[test]
    fn the_reports_serialize_as_the_api_documents_them() {
        let stats = media::PeerStats {
            remote_address: Some("198.18.0.2:5000".parse().expect("addr")),
            nacks: 3,
            ..Default::default()
        };
        let json = serde_json::to_value(TransportStats::from(stats)).expect("serializes");
        assert_eq!(json["remote_address"], "198.18.0.2:5000");
        assert_eq!(json["nacks"], 3);
        assert!(json["rtt_ms"].is_null());
        let relay =
            RelayStatus { server: "turn:198.18.0.9".into(), state: RelayState::Failed { reason: "refused".into() } };
        let json = serde_json::to_value(RelayReport::from(relay)).expect("serializes");
        assert_eq!(json, serde_json::json!({ "server": "turn:198.18.0.9", "state": "failed", "reason": "refused" }));
        let push = media::PushStatus {
            id: 1,
            target: "https://198.18.0.9".into(),
            state: "connected",
            last_error: None,
            bytes_sent: 9,
            attempts: 1,
        };
        let json = serde_json::to_value(PushReport::from(push)).expect("serializes");
        assert!(json.get("last_error").is_none(), "{json}");
    }

    /// Media's refusals become the session layer's own, with the stream they concern.
    #[test]
    fn a_media_refusal_is_said_in_session_terms() {
        let main = StreamName::parse("main").expect("a name");
        let e = SessionError::refused(main.clone(), MediaError::NotProducing);
        assert_eq!(e, SessionError::NotProducing(main.clone()));
        let e = SessionError::refused(main.clone(), MediaError::Overloaded("the VP8 encoding is behind".into()));
        assert_eq!(
            e.to_string(),
            "stream `main` is overloaded: the VP8 encoding is behind, so it takes no more viewers until it recovers"
        );
        assert!(matches!(
            SessionError::refused(main, MediaError::MalformedOffer("x".into())),
            SessionError::MalformedOffer(_)
        ));
    }
}

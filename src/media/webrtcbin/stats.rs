//! A webrtcbin peer's [`PeerStats`] (a viewer's or a WHIP publisher's), read from webrtcbin's `get-stats` (W3C webrtc-stats names).

use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_webrtc as gst_webrtc;

use crate::media::PeerStats;

/// How long webrtcbin gets to answer (it answers from its own thread, normally within a millisecond).
const STATS_TIMEOUT: Duration = Duration::from_secs(1);

/// Asks `webrtcbin` for its stats and folds them into a [`PeerStats`]; blocking, at most
/// [`STATS_TIMEOUT`]. Default (empty) stats when webrtcbin does not answer.
pub fn of(webrtcbin: &gst::Element) -> PeerStats {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let promise = gst::Promise::with_change_func(move |reply| {
        let _ = tx.send(reply.ok().flatten().map(gst::StructureRef::to_owned));
    });
    webrtcbin.emit_by_name::<()>("get-stats", &[&None::<gst::Pad>, &promise]);
    match rx.recv_timeout(STATS_TIMEOUT) {
        Ok(Some(reply)) => fold(&reply),
        _ => PeerStats::default(),
    }
}

fn kind(s: &gst::StructureRef) -> Option<gst_webrtc::WebRTCStatsType> {
    s.get::<gst_webrtc::WebRTCStatsType>("type").ok()
}

/// Sums outbound and inbound RTP, takes the highest RTT and loss of the remote-inbound reports, and the
/// remote address from the selected candidate pair's remote candidate. (webrtcbin 1.22 labels every stream `kind=audio`
/// and swaps the local/remote candidate stats types, so neither field is trusted: the pair's
/// `remote-candidate-id` is looked up by id.)
fn fold(reply: &gst::StructureRef) -> PeerStats {
    use gst_webrtc::WebRTCStatsType as T;
    let all: Vec<gst::Structure> = reply.iter().filter_map(|(_, v)| v.get::<gst::Structure>().ok()).collect();
    let mut out = PeerStats::default();
    let num = |s: &gst::StructureRef, f: &str| -> u64 {
        s.get::<u64>(f).or_else(|_| s.get::<u32>(f).map(u64::from)).unwrap_or_default()
    };
    let max = |a: Option<f64>, b: f64| Some(a.map_or(b, |a| a.max(b)));
    for s in &all {
        match kind(s) {
            Some(T::OutboundRtp) => {
                out.bytes_sent += num(s, "bytes-sent");
                out.packets_sent += num(s, "packets-sent");
                out.nacks += num(s, "nack-count");
                out.plis += num(s, "pli-count") + num(s, "fir-count");
            }
            Some(T::InboundRtp) => {
                out.bytes_received += num(s, "bytes-received");
                out.packets_received += num(s, "packets-received");
            }
            Some(T::RemoteInboundRtp) => {
                if let Ok(rtt) = s.get::<f64>("round-trip-time") {
                    out.rtt_ms = max(out.rtt_ms, rtt * 1000.0);
                }
                if let Ok(lost) = s.get::<f64>("fraction-lost") {
                    out.fraction_lost = max(out.fraction_lost, lost);
                }
                if let Ok(jitter) = s.get::<f64>("jitter") {
                    out.jitter_ms = max(out.jitter_ms, jitter * 1000.0);
                }
            }
            _ => {}
        }
    }
    let selected = all
        .iter()
        .find(|s| kind(s) == Some(T::Transport))
        .and_then(|s| s.get::<String>("selected-candidate-pair-id").ok());
    let pair = all.iter().find(|s| {
        kind(s) == Some(T::CandidatePair)
            && selected.as_ref().is_none_or(|id| s.get::<&str>("id").is_ok_and(|i| i == id))
    });
    let by_id = |field: &str| {
        let id = pair.and_then(|p| p.get::<String>(field).ok())?;
        all.iter().find(|s| s.get::<&str>("id").is_ok_and(|i| i == id))
    };
    let remote = by_id("remote-candidate-id");
    if let Some(local) = by_id("local-candidate-id") {
        out.candidate_type = local.get::<String>("candidate-type").ok();
        out.protocol = local.get::<String>("protocol").ok().map(|p| p.to_ascii_lowercase());
    }
    out.remote_address = remote.and_then(|s| {
        let ip: std::net::IpAddr = s.get::<String>("address").ok()?.parse().ok()?;
        let port = u16::try_from(num(s, "port")).ok()?;
        Some(std::net::SocketAddr::new(ip, port))
    });
    out
}

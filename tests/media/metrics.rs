//! The Prometheus endpoint during a live session: the series move (frames, bytes, sessions, setup time,
//! viewers' RTCP, HTTP requests, auth failures, process), and the endpoint wants its token.
//!
//! Metrics are process-wide, so this file's streams have names no other test in this binary uses.

use crate::common;

use std::collections::BTreeMap;

use common::admin::{ADMIN, start_auth_with};
use common::{TestServer, WebrtcbinViewer, eventually_async, small_stream};
use glasscast::config::Transport;

const TOKEN: &str = "metrics-scrape-token-0123456789";

/// One sample: metric name and labels -> value.
fn parse(text: &str) -> Vec<(String, BTreeMap<String, String>, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("`series value`");
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split("\",")
                .filter(|kv| !kv.is_empty())
                .map(|kv| {
                    let (k, v) = kv.split_once('=').expect("label=value");
                    (k.to_owned(), v.trim_matches('"').to_owned())
                })
                .collect();
            (name.to_owned(), labels, value.parse().expect("a number"))
        })
        .collect()
}

struct Scrape(Vec<(String, BTreeMap<String, String>, f64)>);

impl Scrape {
    /// The sum of `name`'s samples whose labels include all of `want` (0 when there are none).
    fn get(&self, name: &str, want: &[(&str, &str)]) -> f64 {
        self.0
            .iter()
            .filter(|(n, l, _)| n == name && want.iter().all(|(k, v)| l.get(*k).is_some_and(|x| x == v)))
            .map(|(_, _, v)| v)
            .sum()
    }

    fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _, _)| n == name)
    }
}

async fn scrape(srv: &TestServer) -> Scrape {
    let url = format!("http://{}/metrics", srv.server.metrics_addr.expect("metrics enabled"));
    let r = srv.http.get(url).bearer_auth(TOKEN).send().await.expect("scrape");
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().expect("ascii").starts_with("text/plain; version=0.0.4"));
    Scrape(parse(&r.text().await.expect("body")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_move_during_a_live_session() {
    let srv = start_auth_with(Transport::Forward, |cfg| {
        cfg.streams = vec![small_stream("metered")];
        cfg.metrics.token = Some(TOKEN.into());
    })
    .await;
    let s = [("stream", "metered")];

    // The scrape endpoint wants its token.
    let url = format!("http://{}/metrics", srv.server.metrics_addr.expect("metrics enabled"));
    for token in [None, Some("wrong-token-wrong-token")] {
        let mut req = srv.http.get(&url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.expect("scrape");
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers()["content-type"], "application/problem+json");
    }

    let before = scrape(&srv).await;
    assert_eq!(before.get("glasscast_stream_state", &[("stream", "metered"), ("state", "playing")]), 1.0);
    assert_eq!(before.get("glasscast_stream_encoder_info", &[("stream", "metered"), ("encoder", "x264enc")]), 1.0);
    // The on-demand VP8 encoding (tests/media/vp8.rs runs it) is off while no viewer needs it.
    assert!(before.has("glasscast_stream_encoding_running") && before.has("glasscast_stream_encoding_viewers"));
    assert_eq!(before.get("glasscast_stream_encoding_running", &[("stream", "metered"), ("codec", "vp8")]), 0.0);
    assert_eq!(before.get("glasscast_stream_encoding_viewers", &[("stream", "metered"), ("codec", "vp8")]), 0.0);
    assert!(before.get("glasscast_encoder_bitrate_bits_per_second", &s) == 600_000.0);
    assert!(before.has("process_resident_memory_bytes") && before.has("process_cpu_seconds_total"));
    assert!(before.get("process_open_fds", &[]) > 0.0);
    assert_eq!(before.get("glasscast_build_info", &[("version", env!("CARGO_PKG_VERSION"))]), 1.0);

    // A refused POST (no token) and a viewer that plays.
    let refused = srv.post_offer_with("metered", "v=0", None).await;
    assert_eq!(refused.status(), 401);
    let mut viewer = WebrtcbinViewer::new(96, "42e01f", true);
    viewer.connect_with(&srv, "metered", Some(ADMIN)).await;
    assert!(viewer.gets_frames(30, 20).await, "the viewer decodes frames");
    // Viewers' RTCP receiver reports come every second or so; wait for one to be in the stats.
    let mut during = scrape(&srv).await;
    let host_udp = [("stream", "metered"), ("candidate_type", "host"), ("protocol", "udp")];
    for _ in 0..40 {
        let rtt = during.get("glasscast_viewer_rtt_seconds", &[("stream", "metered"), ("stat", "max")]);
        if rtt > 0.0 && during.get("glasscast_sessions_by_path", &host_udp) > 0.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        during = scrape(&srv).await;
    }
    let grew = |name: &str| during.get(name, &s) > before.get(name, &s);
    for name in [
        "glasscast_frames_captured_total",
        "glasscast_frames_encoded_total",
        "glasscast_encoded_bytes_total",
        "glasscast_encode_latency_seconds_count",
        "glasscast_keyframes_requested_total",
        "glasscast_sessions_started_total",
        "glasscast_session_setup_seconds_count",
        "glasscast_viewer_sent_bytes_total",
    ] {
        assert!(grew(name), "{name}: {} -> {}", before.get(name, &s), during.get(name, &s));
    }
    assert_eq!(during.get("glasscast_sessions", &[("stream", "metered"), ("state", "connected")]), 1.0);
    assert_eq!(during.get("glasscast_sessions_by_path", &host_udp), 1.0, "the viewer's media path");
    let rtt = during.get("glasscast_viewer_rtt_seconds", &[("stream", "metered"), ("stat", "max")]);
    assert!(rtt > 0.0 && rtt < 1.0, "a loopback RTT: {rtt}");
    let posted = [("route", "/whep/{stream}"), ("method", "POST")];
    assert!(during.get("glasscast_http_requests_total", &[posted[0], posted[1], ("status", "201")]) >= 1.0);
    assert!(during.get("glasscast_http_requests_total", &[posted[0], posted[1], ("status", "401")]) >= 1.0);
    assert!(during.get("glasscast_http_request_duration_seconds_count", &posted) >= 2.0);
    assert!(during.get("glasscast_auth_failures_total", &[("reason", "missing")]) >= 1.0);

    // DELETE ends the session: counted as closed, no session left, its bytes still counted.
    let r = srv.http.delete(viewer.location.clone().expect("location")).bearer_auth(ADMIN).send().await;
    assert_eq!(r.expect("delete").status(), 200);
    let ended = [("stream", "metered"), ("reason", "closed")];
    let after = scrape(&srv).await;
    assert_eq!(after.get("glasscast_sessions_ended_total", &ended), 1.0, "the DELETE counts as closed");
    assert_eq!(after.get("glasscast_sessions", &[("stream", "metered"), ("state", "connected")]), 0.0);
    assert_eq!(after.get("glasscast_sessions_by_path", &host_udp), 0.0);
    assert!(after.get("glasscast_viewer_sent_bytes_total", &s) >= during.get("glasscast_viewer_sent_bytes_total", &s));

    // A session that comes and goes between two scrapes is counted too: its final numbers reach the totals
    // as it ends (the manager's session-ended event), not from scrape diffs.
    let bytes = |sc: &Scrape| sc.get("glasscast_viewer_sent_bytes_total", &s);
    let mut brief = WebrtcbinViewer::new(97, "42e01f", true);
    brief.connect_with(&srv, "metered", Some(ADMIN)).await;
    // 100 frames (over 3 s): the forwarding transport's stats come every 2 s.
    assert!(brief.gets_frames(100, 20).await, "the brief viewer decodes frames");
    let r = srv.http.delete(brief.location.clone().expect("location")).bearer_auth(ADMIN).send().await;
    assert_eq!(r.expect("delete").status(), 200);
    let before_brief = bytes(&after);
    // Its teardown reads the final numbers off the manager task: they arrive a moment after the DELETE.
    assert!(
        eventually_async(10, || async { bytes(&scrape(&srv).await) > before_brief }).await,
        "a session shorter than a scrape left no bytes in glasscast_viewer_sent_bytes_total"
    );
    let last = scrape(&srv).await;
    assert_eq!(last.get("glasscast_sessions_ended_total", &ended), 2.0);

    // docs/grafana-dashboard.json queries only series this server really exports.
    let dashboard = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/grafana-dashboard.json"))
        .expect("the dashboard");
    let names = metric_names(&dashboard);
    assert!(names.len() > 20, "{names:?}");
    for name in names {
        assert!(after.has(&name), "the dashboard queries {name}, which /metrics does not export");
    }
    srv.shutdown().await;
}

/// Every `glasscast_*` and `process_*` name in `text`.
fn metric_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    for (i, _) in text.match_indices(['g', 'p']) {
        let rest = &text[i..];
        if (rest.starts_with("glasscast_") || rest.starts_with("process_"))
            && !text[..i].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        {
            let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
            out.insert(rest[..end].to_owned());
        }
    }
    out
}

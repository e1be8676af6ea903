//! WHIP ingest (RFC 9725): a publisher on GStreamer's webrtcbin sends H.264 + Opus to `POST /whip/live`;
//! glasscast relays it without an encoder to WHEP viewers; publish and viewer tokens do not mix; a second
//! publisher and an offer with nothing to relay are refused with what is wrong; when the publisher leaves,
//! its viewers stay and get the next publisher's picture.
//! Sections a stream does not relay (audio into `audio = "none"`, a second video, a data channel) are refused
//! in the answer, from publishers on aiortc and webrtcbin, and Chromium plays the picture each time.

use crate::common;

use common::admin::{ADMIN, issue, start_auth_with};
use common::publisher::WebrtcbinPublisher;
use common::{
    TestServer, WebrtcbinViewer, eventually, eventually_async, eventually_some, on_both_transports, small_stream,
};
use glasscast::config::{StreamConfig, Transport, VideoSource};
use serde_json::json;

async fn start(transport: Transport) -> TestServer {
    start_auth_with(transport, |cfg| {
        let live = StreamConfig { source: VideoSource::Whip, ..small_stream("live") };
        cfg.streams = vec![live, small_stream("main")];
    })
    .await
}

async fn problem(resp: reqwest::Response) -> (u16, serde_json::Value) {
    let status = resp.status().as_u16();
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    (status, serde_json::from_str(&resp.text().await.expect("body")).expect("json"))
}

async fn ready(srv: &TestServer, stream: &str) -> bool {
    srv.server.sessions.health(stream).await.is_some_and(|h| h.producing())
}

/// Waits up to 15 s for `stream` to be producing (`want`) or not.
async fn becomes_ready(srv: &TestServer, stream: &str, want: bool) -> bool {
    eventually_async(15, || async { ready(srv, stream).await == want }).await
}

async fn relays(transport: Transport) {
    let in_chromium = transport == Transport::Forward;
    let srv = start(transport).await;
    let publish = issue(&srv, json!({ "stream": "live", "publish": true })).await;
    let publish = publish["token"].as_str().expect("token").to_owned();
    let viewer_token = issue(&srv, json!({ "stream": "live" })).await["token"].as_str().expect("token").to_owned();
    assert!(!ready(&srv, "live").await, "no publisher yet");

    let mut publisher = WebrtcbinPublisher::new("constrained-baseline", 320, 240);
    let offer = publisher.offer().await;
    // A viewer token does not publish, and a publish token does not watch.
    let (status, p) = problem(WebrtcbinPublisher::post(&srv, "live", &offer, &viewer_token).await).await;
    assert_eq!((status, p["type"].as_str()), (403, Some("urn:glasscast:problem:insufficient-scope")));
    assert!(p["detail"].as_str().expect("detail").contains("publish token"), "{p}");
    let (status, _) = problem(
        srv.post_offer_with("live", &WebrtcbinViewer::new(96, "42e01f", true).offer().await, Some(&publish)).await,
    )
    .await;
    assert_eq!(status, 403);
    // A stream with its own source takes no publisher.
    let (status, p) = problem(WebrtcbinPublisher::post(&srv, "main", &offer, ADMIN).await).await;
    assert_eq!(status, 409);
    assert!(p["detail"].as_str().expect("detail").contains("whip"), "{p}");

    publisher.publish(&srv, "live", &publish).await;
    assert!(becomes_ready(&srv, "live", true).await, "the publisher's frames make the stream ready");
    let mut viewer = WebrtcbinViewer::new(96, "42e01f", true);
    viewer.connect_with(&srv, "live", Some(&viewer_token)).await;
    assert!(viewer.gets_frames(30, 20).await, "the viewer decodes the publisher's frames");
    assert_eq!(*viewer.size.lock().expect("size"), Some((320, 240)));
    assert!(eventually(10, || viewer.audio() > 10).await, "and its audio");
    if in_chromium {
        common::chromium_plays(&srv, &format!("/watch/live#token={viewer_token}"), 320, 240).await;
    }
    // Relayed, not transcoded: the stream has no encoder at all.
    let health = srv.server.sessions.health("live").await.expect("health");
    assert_eq!(health.encoder, "passthrough");
    // The publisher makes a keyframe every 100 s: the viewer's picture came from the keyframe its join
    // asked for, forwarded to the publisher as a PLI.
    assert!(health.keyframes_sent >= 1, "{} keyframe requests passed on", health.keyframes_sent);
    let made = publisher.keyframes.load(std::sync::atomic::Ordering::Relaxed);
    assert!(made >= 2, "the publisher's encoder made {made} keyframes: the join's request never reached it");

    // The admin's session list shows the publisher in the one table, with what it has sent us.
    let publisher_row = publisher_in_list(&srv).await;
    assert!(publisher_row["connected"].as_bool().unwrap_or_default(), "{publisher_row}");
    assert!(publisher_row["bytes_received"].as_u64().unwrap_or_default() > 0, "{publisher_row}");

    // One publisher at a time.
    let second = WebrtcbinPublisher::new("constrained-baseline", 320, 240);
    let (status, p) = problem(WebrtcbinPublisher::post(&srv, "live", &second.offer().await, &publish).await).await;
    assert_eq!((status, p["type"].as_str()), (409, Some("urn:glasscast:problem:already-published")));
    drop(second);

    // The publisher leaves: its viewer stays; new viewers hear 409 until the next publisher.
    let url = publisher.location.clone().expect("location");
    let r = srv.http.delete(&url).bearer_auth(&publish).send().await.expect("delete");
    assert_eq!(r.status(), 200);
    publisher.stop();
    // Publishers are counted as sessions are (tests in this binary share the counters: at least one).
    let scraped = publisher_counts(&srv).await;
    assert!(scraped.0 >= 1.0 && scraped.1 >= 1.0, "publishers started, ended (closed): {scraped:?}");
    // Its final stats are counted when it ends (no scrape saw it live).
    let received = || async { scrape_value(&srv, "glasscast_publisher_received_bytes_total{stream=\"live\"}").await };
    assert!(eventually_async(10, || async { received().await > 0.0 }).await, "the publisher's bytes are counted");
    assert!(becomes_ready(&srv, "live", false).await, "without a publisher the stream is not producing");
    let late = WebrtcbinViewer::new(96, "42e01f", true);
    let (status, p) = problem(srv.post_offer_with("live", &late.offer().await, Some(&viewer_token)).await).await;
    assert_eq!(status, 409, "{p}");
    let readiness = srv.server.sessions.readiness().await;
    let live = readiness.streams.iter().find(|s| s.name.as_str() == "live").expect("live");
    assert!(live.reason.as_deref().is_some_and(|r| r.contains("publisher left")), "{:?}", live.reason);

    let mut again = WebrtcbinPublisher::new("constrained-baseline", 320, 240);
    again.publish(&srv, "live", &publish).await;
    assert!(viewer.gets_frames(30, 20).await, "the same viewer gets the next publisher's picture");
    srv.shutdown().await;
}

/// `glasscast_publishers_started_total` and `glasscast_publishers_ended_total{reason="closed"}` for
/// stream `live`, from the metrics listener.
async fn publisher_counts(srv: &TestServer) -> (f64, f64) {
    (
        scrape_value(srv, "glasscast_publishers_started_total{stream=\"live\"}").await,
        scrape_value(srv, "glasscast_publishers_ended_total{stream=\"live\",reason=\"closed\"}").await,
    )
}

/// The sum of the series starting with `prefix`, from one scrape of the metrics listener.
async fn scrape_value(srv: &TestServer, prefix: &str) -> f64 {
    let url = format!("http://{}/metrics", srv.server.metrics_addr.expect("metrics enabled"));
    let text = srv.http.get(url).send().await.expect("scrape").text().await.expect("body");
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum::<f64>()
}

/// The publisher's row in the admin API's session list (`role = "publisher"`), once it reports received
/// bytes (within 10 s).
async fn publisher_in_list(srv: &TestServer) -> serde_json::Value {
    let row = || async {
        let url = format!("{}/api/v1/sessions", srv.base);
        let body = srv.http.get(&url).bearer_auth(ADMIN).send().await.expect("list").text().await.expect("body");
        let list: serde_json::Value = serde_json::from_str(&body).expect("json");
        let rows = list.as_array().expect("an array");
        assert_eq!(rows.iter().filter(|r| r["role"] == "publisher").count(), 1, "{list}");
        rows.iter().find(|r| r["role"] == "publisher").cloned().expect("the publisher")
    };
    let received = || async { Some(row().await).filter(|r| r["bytes_received"].as_u64().unwrap_or_default() > 0) };
    match eventually_some(10, received).await {
        Some(r) => r,
        None => row().await,
    }
}

on_both_transports!(
    /// Chromium watches too on the forwarding transport.
    a_publisher_is_relayed_to_viewers_and_can_come_back,
    relays
);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn offers_with_nothing_to_relay_are_refused_with_what_is_wrong() {
    let srv = start(Transport::Forward).await;
    // An offer of High profile only, as OBS makes with its encoder on "high" (which many viewers cannot
    // decode, and which glasscast does not transcode).
    let publisher = WebrtcbinPublisher::new("constrained-baseline", 320, 240);
    let offer = publisher.offer().await;
    let at = offer.find("profile-level-id=").expect("the offer states its profile") + "profile-level-id=".len();
    let high = format!("{}640015{}", &offer[..at], &offer[at + 6..]);
    let (status, p) = problem(WebrtcbinPublisher::post(&srv, "live", &high, ADMIN).await).await;
    assert_eq!((status, p["type"].as_str()), (400, Some("urn:glasscast:problem:no-usable-codec")));
    let detail = p["detail"].as_str().expect("detail");
    assert!(detail.contains("not High") && detail.contains("baseline or main"), "{detail}");
    // VP8 only (a browser told to prefer it, with H.264 left out): nothing to relay.
    let vp8 = offer.replace("H264/90000", "VP8/90000");
    let (status, p) = problem(WebrtcbinPublisher::post(&srv, "live", &vp8, ADMIN).await).await;
    assert_eq!(status, 400);
    assert!(p["detail"].as_str().expect("detail").contains("offered: VP8"), "{p}");
    // A viewer's (recvonly) offer sent to the WHIP endpoint.
    let viewer_offer = WebrtcbinViewer::new(96, "42e01f", true).offer().await;
    let (status, p) = problem(WebrtcbinPublisher::post(&srv, "live", &viewer_offer, ADMIN).await).await;
    assert_eq!(status, 400);
    assert!(p["detail"].as_str().expect("detail").contains("recvonly"), "{p}");
    // A refused offer leaves no publisher behind: a good one is taken right after.
    let resp = WebrtcbinPublisher::post(&srv, "live", &offer, ADMIN).await;
    assert_eq!(resp.status(), 201, "{:?}", resp.text().await);
    publisher.stop();
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_publisher_that_vanishes_without_delete_is_ended_and_the_next_one_is_taken() {
    let srv = start(Transport::Forward).await;
    let mut gone = WebrtcbinPublisher::new("constrained-baseline", 320, 240);
    gone.publish(&srv, "live", ADMIN).await;
    assert!(becomes_ready(&srv, "live", true).await);
    let mut viewer = WebrtcbinViewer::new(96, "42e01f", true);
    viewer.connect_with(&srv, "live", Some(ADMIN)).await;
    assert!(viewer.gets_frames(30, 20).await);
    // The publisher's process "dies": no DELETE, no more packets. Its ICE connection fails (consent checks go
    // unanswered) and glasscast ends it; meanwhile a second publisher is refused.
    gone.stop();
    let next = WebrtcbinPublisher::new("constrained-baseline", 320, 240);
    let offer = next.offer().await;
    assert_eq!(WebrtcbinPublisher::post(&srv, "live", &offer, ADMIN).await.status(), 409);
    let mut taken = false;
    for _ in 0..90 {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let r = WebrtcbinPublisher::post(&srv, "live", &next.offer().await, ADMIN).await;
        if r.status() == 201 {
            taken = true;
            break;
        }
        assert_eq!(r.status(), 409);
    }
    assert!(taken, "the vanished publisher was never ended");
    srv.shutdown().await;
}

/// PATCH on the publisher's resource: trickle (204), an ICE restart without If-Match (428), and with it (200,
/// our new credentials and candidates, a new ETag); the publisher restarts too and its picture keeps
/// reaching the viewer.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_publisher_trickles_and_restarts_ice_with_patch() {
    use glasscast::media::IceCredentials;
    use glasscast::media::webrtcbin::ice_restart;
    use gstreamer::prelude::*;
    let srv = start_auth_with(Transport::Forward, |cfg| {
        cfg.auth.mode = glasscast::config::AuthMode::Disabled;
        cfg.streams = vec![StreamConfig { source: VideoSource::Whip, ..small_stream("live") }];
    })
    .await;
    let publisher = WebrtcbinPublisher::new("constrained-baseline", 320, 240);
    let offer = publisher.offer().await;
    let resp = WebrtcbinPublisher::post(&srv, "live", &offer, ADMIN).await;
    assert_eq!(resp.status(), 201);
    assert_eq!(resp.headers()["accept-patch"], "application/trickle-ice-sdpfrag");
    let etag0 = resp.headers()["etag"].to_str().expect("ascii").to_owned();
    let url = format!("{}{}", srv.base, resp.headers()["location"].to_str().expect("ascii"));
    let answer = resp.text().await.expect("answer");
    publisher.set_answer(&answer).await;
    assert!(becomes_ready(&srv, "live", true).await);
    let mut viewer = WebrtcbinViewer::new(96, "42e01f", true);
    viewer.connect(&srv, "live").await;
    assert!(viewer.gets_frames(30, 20).await);

    let ufrag = offer.lines().find_map(|l| l.trim_end().strip_prefix("a=ice-ufrag:")).expect("ufrag").to_owned();
    let trickle =
        format!("a=ice-ufrag:{ufrag}\r\nm=video 9 UDP/TLS/RTP/SAVPF 102\r\na=mid:video0\r\na=end-of-candidates\r\n");
    assert_eq!(srv.patch_frag(&url, None, &trickle).await.status(), 204);
    let client = IceCredentials::random();
    let mut frag = format!(
        "a=ice-ufrag:{}\r\na=ice-pwd:{}\r\nm=video 9 UDP/TLS/RTP/SAVPF 102\r\na=mid:video0\r\n",
        client.ufrag, client.pwd
    );
    for cand in offer.lines().filter(|l| l.starts_with("a=candidate:")) {
        frag.push_str(cand.trim_end());
        frag.push_str("\r\n");
    }
    assert_eq!(srv.patch_frag(&url, None, &frag).await.status(), 428, "a restart needs If-Match");
    let r = srv.patch_frag(&url, Some(&etag0), &frag).await;
    assert_eq!(r.status(), 200);
    let etag1 = r.headers()["etag"].to_str().expect("ascii").to_owned();
    assert_ne!(etag1, etag0);
    let server = glasscast::sdpfrag::SdpFrag::parse(&r.text().await.expect("body")).expect("an sdpfrag");
    let server_creds = IceCredentials { ufrag: server.ufrag.expect("ufrag"), pwd: server.pwd.expect("pwd") };
    ice_restart::restart(&publisher.webrtcbin, &client, &server_creds).expect("publisher-side restart");
    for cand in &server.media[0].candidates {
        publisher.webrtcbin.emit_by_name::<()>("add-ice-candidate", &[&0u32, cand]);
    }
    assert!(viewer.gets_frames(60, 20).await, "the publisher's picture keeps coming after the restart");
    assert_eq!(srv.patch_frag(&url, Some(&etag0), &trickle).await.status(), 412, "the old ETag is gone");
    srv.shutdown().await;
}

/// Two WHIP streams without a password: `live` (audio = "none") and `av` (with audio).
async fn start_unwanted() -> TestServer {
    start_auth_with(Transport::Forward, |cfg| {
        cfg.auth.mode = glasscast::config::AuthMode::Disabled;
        let whip = |name: &str| StreamConfig { source: VideoSource::Whip, ..small_stream(name) };
        cfg.streams = vec![StreamConfig { audio: glasscast::config::AudioSource::None, ..whip("live") }, whip("av")];
    })
    .await
}

/// The answer has one section per offered one, exactly one video section is used, and the sections the
/// stream does not relay are refused (port 0 or inactive); returns (kind, used) per section.
fn answered(answer: &str, offered: usize) -> Vec<(String, bool)> {
    let sections = common::aiortc::sections(answer);
    assert_eq!(sections.len(), offered, "one answer section per offered one:\n{answer}");
    assert_eq!(sections.iter().filter(|(k, used)| k == "video" && *used).count(), 1, "one video used:\n{answer}");
    sections
}

/// After a publisher connected: the stream produces, Chromium decodes the publisher's picture, and the
/// stream is still producing afterwards (the failure this guards against came within 300 ms of connecting
/// and ended the publisher 5 s later).
async fn plays_in_chromium(srv: &TestServer, stream: &str) {
    assert!(becomes_ready(srv, stream, true).await, "{stream}: the publisher's frames make it ready");
    common::chromium_plays(srv, &format!("/watch/{stream}"), 320, 240).await;
    assert!(ready(srv, stream).await, "{stream}: still producing after the viewer played");
}

/// A publisher on aiortc (Python; H.264 + Opus as OBS sends) offering what the stream does not relay:
/// audio into `audio = "none"`, two video sections, a data channel. Each is refused in the answer, and a
/// Chromium viewer decodes the publisher's video every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_aiortc_publisher_s_unrelayed_sections_are_refused_and_its_picture_plays() {
    use common::aiortc::AiortcPublisher;
    let srv = start_unwanted().await;
    type Case<'a> = (&'a str, &'a [&'a str], &'a [(&'a str, bool)]);
    let cases: [Case; 3] = [
        ("live", &["--audio"], &[("video", true), ("audio", false)]),
        ("av", &["--videos", "2", "--audio"], &[("video", true), ("video", false), ("audio", true)]),
        ("live", &["--audio", "--datachannel"], &[("video", true), ("audio", false), ("application", false)]),
    ];
    for (stream, args, want) in cases {
        let mut publisher = AiortcPublisher::start(&srv, stream, ADMIN, args).await;
        assert_eq!(publisher.status, 201, "{stream} {args:?}: {}", publisher.answer);
        let sections = answered(&publisher.answer, want.len());
        assert_eq!(sections, common::aiortc::expect(want), "{args:?}: which are used:\n{}", publisher.answer);
        assert!(publisher.connected().await, "{args:?}: aiortc connects with the refusing answer");
        plays_in_chromium(&srv, stream).await;
        publisher.stop().await;
        assert!(becomes_ready(&srv, stream, false).await, "{args:?}: the publisher's DELETE ends it");
    }
    srv.shutdown().await;
}

/// The same on GStreamer's webrtcbin: audio into `audio = "none"`, a second video section, a data channel.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_webrtcbin_publisher_s_unrelayed_sections_are_refused_and_its_picture_plays() {
    use common::publisher::Extras;
    let srv = start_unwanted().await;
    let cases = [
        ("live", Extras::default(), 2),
        ("av", Extras { second_video: true, ..Extras::default() }, 3),
        ("live", Extras { datachannel: true, second_video: true }, 4),
    ];
    for (stream, extras, sections) in cases {
        let mut publisher = WebrtcbinPublisher::with("constrained-baseline", 320, 240, extras);
        let offer = publisher.offer().await;
        let resp = WebrtcbinPublisher::post(&srv, stream, &offer, ADMIN).await;
        assert_eq!(resp.status(), 201, "{extras:?}");
        publisher.location = Some(format!("{}{}", srv.base, resp.headers()["location"].to_str().expect("ascii")));
        let answer = resp.text().await.expect("answer");
        let refused = answered(&answer, sections).iter().filter(|(_, used)| !used).count();
        let want = usize::from(stream == "live") + usize::from(extras.second_video) + usize::from(extras.datachannel);
        assert_eq!(refused, want, "{extras:?}:\n{answer}");
        publisher.set_answer(&answer).await;
        plays_in_chromium(&srv, stream).await;
        let url = publisher.location.clone().expect("location");
        assert_eq!(srv.http.delete(&url).send().await.expect("delete").status(), 200);
        publisher.stop();
        assert!(becomes_ready(&srv, stream, false).await);
    }
    srv.shutdown().await;
}

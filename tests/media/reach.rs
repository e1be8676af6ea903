//! Reach (issue 15): viewers that are not on the server's LAN. A network-namespace testbed (a server behind a
//! home router that forwards 8443/tcp and the mux port, a viewer on the router's outside) with headless
//! Chromium and aiortc as viewers; and the announced-address settings on this host.

use crate::common;

use common::netns::{Coturn, Glasscast, HomeRouter, ROUTER_WAN, SERVER_LAN, curl_json, curl_json_with};
use glasscast::config::{Config, LocalCandidates};

/// The answer's candidates, `proto ip port` (`udp 198.18.20.1 8189`).
fn candidates(answer: &str) -> Vec<String> {
    answer
        .lines()
        .filter_map(|l| l.trim_end().strip_prefix("a=candidate:"))
        .map(|c| {
            let f: Vec<&str> = c.split_whitespace().collect();
            format!("{} {}", f.get(2).unwrap_or(&"").to_ascii_lowercase(), f[4..6.min(f.len())].join(" "))
        })
        .collect()
}

/// glasscast in the server namespace (`[webrtc]` with `webrtc_extra`), serving a small test stream, with no
/// token needed; ready as the viewer sees it at `base`.
/// Two mux threads whatever the machine: a test's second viewer is served by the second thread (ties go
/// in turn), so the ICE-TCP and relay paths are crossed by a thread that owns neither (`forward/mux.rs`).
async fn serve(bed: &HomeRouter, webrtc_extra: &str, base: &str) -> Glasscast {
    let config = format!(
        "[auth]\nmode = \"disabled\"\n[metrics]\nenabled = false\n[webrtc]\nmux_port = 8189\nmux_threads = 2\n{webrtc_extra}\n\
         [[streams]]\nname = \"main\"\nwidth = 320\nheight = 240\nbitrate_kbps = 600\n"
    );
    let gc = Glasscast::start(&bed.server, &config);
    gc.wait_ready(&bed.viewer, base).await;
    gc
}

/// Home router: glasscast on a private address, the router's outside address in `webrtc.advertise`. Both
/// viewers on the outside play, over the advertised host candidate (the private one is announced too, by
/// default, and simply never works from outside).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_viewer_outside_a_home_router_plays_through_its_port_forward() {
    let bed = HomeRouter::new(&[8443], &[8189]);
    let base = format!("https://{ROUTER_WAN}:8443");
    let gc = serve(&bed, &format!("advertise = [\"{ROUTER_WAN}\"]"), &base).await;

    let report = common::aiortc::watch_url(Some(&bed.viewer), &format!("{base}/whep/main"), None, &["--audio"]).await;
    let announced = candidates(report["answer"].as_str().expect("answer"));
    assert!(announced.contains(&format!("udp {ROUTER_WAN} 8189")), "the router's address is announced: {announced:?}");
    assert!(announced.contains(&format!("udp {SERVER_LAN} 8189")), "local_candidates = \"all\": {announced:?}");
    assert!(report["frames"].as_u64() >= Some(30), "aiortc decodes from outside: {report}");
    assert_eq!((report["width"].as_u64(), report["height"].as_u64()), (Some(320), Some(240)));

    let played = common::chromium_plays_url(Some(&bed.viewer), &format!("{base}/watch/main"), 320, 240).await;
    let pair = &played["pair"];
    assert_eq!(pair["remote"], format!("{ROUTER_WAN}:8189"), "Chromium's media goes through the forward: {played}");
    assert_eq!((pair["type"].as_str(), pair["protocol"].as_str()), (Some("host"), Some("udp")), "{played}");
    drop(gc);
}

/// The home router forwarding 8443 and 8189 over TCP (and 8189 over UDP), glasscast advertising its outside
/// address, and a viewer namespace whose every outgoing UDP packet is dropped.
async fn udp_blocked() -> (HomeRouter, Glasscast, String) {
    let bed = HomeRouter::new(&[8443, 8189], &[8189]);
    let base = format!("https://{ROUTER_WAN}:8443");
    let gc = serve(&bed, &format!("advertise = [\"{ROUTER_WAN}\"]"), &base).await;
    let rules =
        "table inet no_udp {\n chain out {\n  type filter hook output priority 0;\n  meta l4proto udp drop\n }\n}\n";
    bed.filter_viewer(rules);
    (bed, gc, base)
}

/// UDP blocked: the same home router (forwarding 8189/tcp too), and the viewer's network drops every UDP
/// packet. Chromium plays over ICE-TCP to the advertised address; so does GStreamer's webrtcbin (libnice's
/// ICE-TCP, in a process of its own: `tests/peers/webrtcbin_watch.py`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_viewer_whose_network_blocks_udp_plays_over_ice_tcp() {
    let (bed, gc, base) = udp_blocked().await;

    let played = common::chromium_plays_url(Some(&bed.viewer), &format!("{base}/watch/main"), 320, 240).await;
    let pair = &played["pair"];
    assert_eq!(pair["remote"], format!("{ROUTER_WAN}:8189"), "through the router's forward: {played}");
    assert_eq!((pair["type"].as_str(), pair["protocol"].as_str()), (Some("host"), Some("tcp")), "{played}");

    let mut python = tokio::process::Command::new("ip");
    python
        .args(["netns", "exec", &bed.viewer, "/usr/bin/python3", "tests/peers/webrtcbin_watch.py"])
        .arg(format!("{base}/whep/main"))
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    let (report, _, _) = common::script_report(&mut python).await;
    assert!(report["frames"].as_u64() >= Some(30), "webrtcbin decodes over ICE-TCP: {report}");
    assert_eq!((report["width"].as_u64(), report["height"].as_u64()), (Some(320), Some(240)));
    drop(gc);
}

/// One address trying to hold every ICE-TCP slot (issue 34): a host on the server's LAN (the router's
/// inside address) keeps 2100 connections open, reopening each one the server closes and sending each a
/// byte every 5 s (`tests/peers/tcp_hog.py`). It holds at most `webrtc.ice_tcp_per_address` (8) at a time
/// (each closed when no ICE check came within 5 s), and Chromium outside, UDP blocked, still connects over
/// ICE-TCP and plays. (Before: one global limit of 2048, reset by any byte, and the viewer was refused.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_address_holding_every_ice_tcp_slot_does_not_lock_out_a_viewer() {
    use tokio::io::AsyncBufReadExt;
    let (bed, gc, base) = udp_blocked().await;

    let mut hog = tokio::process::Command::new("ip")
        .args(["netns", "exec", &bed.router, "/usr/bin/python3", "tests/peers/tcp_hog.py", SERVER_LAN, "8189"])
        .args(["--connections", "2100", "--seconds", "60"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs");
    let mut lines = tokio::io::BufReader::new(hog.stdout.take().expect("stdout")).lines();
    let mut report = serde_json::Value::Null;
    // Until it has opened all 2100 and kept at it for a few seconds more.
    while report["opened"].as_u64() < Some(2100 + 500) {
        let line = lines.next_line().await.expect("hog output").expect("the hog runs on");
        report = serde_json::from_str(&line).expect("JSON");
    }
    let played = common::chromium_plays_url(Some(&bed.viewer), &format!("{base}/watch/main"), 320, 240).await;
    let pair = &played["pair"];
    assert_eq!((pair["type"].as_str(), pair["protocol"].as_str()), (Some("host"), Some("tcp")), "{played}");
    let line = lines.next_line().await.expect("hog output").expect("the hog runs on");
    let report: serde_json::Value = serde_json::from_str(&line).expect("JSON");
    eprintln!("the hog while Chromium played: {report}");
    assert!(report["held_2s"].as_u64() <= Some(8), "one address holds at most 8 connections: {report}");
    assert!(report["closed_by_server"].as_u64() > Some(2000), "the server closed the rest: {report}");
    let ready = curl_json(&bed.viewer, &format!("{base}/readyz"));
    let closed = &ready["mux"]["ice_tcp"]["closed"];
    assert!(closed["per_address"].as_u64() > Some(2000), "and counted why: {ready}");
    drop(hog);
    drop(gc);
}

/// `local_candidates = "none"` with an advertised address: the answer announces only that one, and a viewer
/// plays over it. (On this host: the advertised address is one of its own.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hidden_local_addresses_leave_only_the_advertised_one_and_it_plays() {
    let own = if_addrs::get_if_addrs()
        .expect("interfaces")
        .into_iter()
        .map(|i| i.ip())
        .find(|ip| ip.is_ipv4() && !ip.is_loopback())
        .expect("an IPv4 address");
    let mut cfg = Config::default();
    cfg.server.plain_http = true;
    cfg.webrtc.local_candidates = LocalCandidates::None;
    cfg.webrtc.advertise = vec![own.to_string()];
    cfg.streams = vec![common::small_stream("main")];
    let srv = common::start_with(cfg).await;
    let port = srv.server.forward.as_ref().expect("forward transport").port();

    let mut viewer = common::WebrtcbinViewer::new(96, "42e01f", true);
    let resp = srv.post_offer_with("main", &viewer.offer().await, None).await;
    assert_eq!(resp.status(), 201);
    viewer.location = Some(format!("{}{}", srv.base, resp.headers()["location"].to_str().expect("ascii")));
    let answer = resp.text().await.expect("answer");
    let tcp = srv.server.forward.as_ref().and_then(|f| f.tcp_port()).expect("ICE-TCP listening");
    let want = vec![format!("udp {own} {port}"), format!("tcp {own} {tcp}")];
    assert_eq!(candidates(&answer), want, "only the advertised address (and its ICE-TCP twin):\n{answer}");
    viewer.set_answer(&answer).await;
    assert!(viewer.gets_frames(30, 20).await, "the viewer plays over the advertised address");
    srv.shutdown().await;
}

/// IPv6: the server has a global IPv6 address besides its NATed IPv4 one, no port forward. A viewer given
/// the IPv6 address plays with the default listener (`[::]:8443`, dual-stack), media over IPv6. Then an
/// address added to the server while it runs is announced to the next viewer, which plays over it (the
/// viewer's UDP and TCP to the mux port of every other address of the server is dropped).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_ipv6_viewer_plays_with_the_default_listener_and_a_new_address_is_used_without_a_restart() {
    let bed = HomeRouter::dual_stack(&[], &[]);
    let base = format!("https://[{}]:8443", common::netns::SERVER_V6);
    let gc = serve(&bed, "", &base).await;
    let played = common::chromium_plays_url(Some(&bed.viewer), &format!("{base}/watch/main"), 320, 240).await;
    let remote = played["pair"]["remote"].as_str().unwrap_or_default().to_owned();
    assert_eq!(remote, format!("{}:8189", common::netns::SERVER_V6), "media over IPv6: {played}");

    bed.add_server_address("2001:db8:10::3/64");
    // The viewer can now reach the mux port only at the new address.
    let rules = "table inet only_new {\n chain out {\n  type filter hook output priority 0;\n  \
                 meta nfproto ipv4 meta l4proto { tcp, udp } th dport 8189 drop\n  \
                 ip6 daddr != 2001:db8:10::3 meta l4proto { tcp, udp } th dport 8189 drop\n }\n}\n";
    bed.filter_viewer(rules);
    let mut announced = Vec::new();
    for _ in 0..30 {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let report =
            common::aiortc::watch_url(Some(&bed.viewer), &format!("{base}/whep/main"), None, &["--seconds", "8"]).await;
        announced = candidates(report["answer"].as_str().unwrap_or_default());
        if announced.contains(&"udp 2001:db8:10::3 8189".to_owned()) {
            assert!(report["frames"].as_u64() >= Some(30), "aiortc plays over the new address: {report}");
            break;
        }
    }
    assert!(
        announced.contains(&"udp 2001:db8:10::3 8189".to_owned()),
        "the new address was never announced: {announced:?}"
    );
    let played = common::chromium_plays_url(Some(&bed.viewer), &format!("{base}/watch/main"), 320, 240).await;
    assert_eq!(played["pair"]["remote"], "2001:db8:10::3:8189", "Chromium over the new address: {played}");
    drop(gc);
}

/// TURN REST credentials (`ice_servers` entry with a shared `secret`): the WHEP answer's `Link` header carries
/// a username that expires with the viewer's token (or in `webrtc.turn_credential_ttl_s`, 4 h, if that comes
/// first) and a credential coturn accepts. An aiortc viewer that
/// may use relayed candidates only (iceTransportPolicy "relay") plays with them; with a secret coturn does
/// not share, it cannot.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn turn_rest_credentials_from_the_link_header_work_at_coturn_and_expire_with_the_token() {
    use common::admin::{issue, start_auth_with};
    let relay = common::netns::own_ipv4().expect("an IPv4 address to relay from").to_string();
    let secret = ["--use-auth-secret", "--static-auth-secret=shared-secret", "--realm=glasscast"];
    let _turn = Coturn::start(None, "127.0.0.1", 34781, &[&[&format!("--relay-ip={relay}")[..]][..], &secret].concat());
    let with_secret = |secret: &'static str| {
        move |cfg: &mut Config| {
            cfg.webrtc.ice_servers = vec![glasscast::config::IceServer {
                urls: vec!["turn:127.0.0.1:34781?transport=udp".into()],
                secret: Some(secret.into()),
                ..Default::default()
            }];
        }
    };
    let srv = start_auth_with(glasscast::config::Transport::Forward, with_secret("shared-secret")).await;
    let token = issue(&srv, serde_json::json!({"stream": "main", "ttl_s": 600})).await;
    let url = format!("{}/whep/main", srv.base);
    let report = common::aiortc::watch_url(None, &url, token["token"].as_str(), &["--relay-from-link"]).await;
    let servers = report["ice_servers"].as_array().cloned().unwrap_or_default();
    let username = servers.first().and_then(|s| s["username"].as_str()).unwrap_or_else(|| panic!("{report}"));
    assert_eq!(username, format!("{}:glasscast", token["expires_at"]), "expires with the token: {report}");
    assert!(report["frames"].as_u64() >= Some(30), "plays through coturn's relay only: {report}");
    // A link good for a year gets credentials for hours (webrtc.turn_credential_ttl_s, 4 h by default):
    // TURN cannot revoke them, so they must not outlive a revoked link by long.
    let year = issue(&srv, serde_json::json!({"stream": "main", "ttl_s": 365 * 86_400})).await;
    let since = glasscast::auth::now_s();
    let report = common::aiortc::watch_url(None, &url, year["token"].as_str(), &["--relay-from-link"]).await;
    let servers = report["ice_servers"].as_array().cloned().unwrap_or_default();
    let username = servers.first().and_then(|s| s["username"].as_str()).unwrap_or_else(|| panic!("{report}"));
    let expiry: u64 = username.split(':').next().and_then(|e| e.parse().ok()).expect("EXPIRY:name");
    assert!((since + 4 * 3600..=glasscast::auth::now_s() + 4 * 3600).contains(&expiry), "hours, not a year: {report}");
    assert!(report["frames"].as_u64() >= Some(30), "and they work at coturn: {report}");
    srv.shutdown().await;

    let wrong = start_auth_with(glasscast::config::Transport::Forward, with_secret("not-coturns-secret")).await;
    let token = issue(&wrong, serde_json::json!({"stream": "main"})).await;
    let url = format!("{}/whep/main", wrong.base);
    let args = ["--relay-from-link", "--seconds", "6"];
    let report = common::aiortc::watch_url(None, &url, token["token"].as_str(), &args).await;
    assert_eq!(report["frames"], 0, "credentials coturn does not accept get no relay: {report}");
    wrong.shutdown().await;
}

/// `webrtc.stun_discover` instead of `advertise`: behind the same home router (port forwards, no advertised
/// address), glasscast asks a STUN server on the outside (coturn, STUN only) which public address it leaves
/// from, announces it with the mux port, and the viewer outside plays over it; `doctor` says what the STUN
/// server sees.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stun_discovered_public_address_is_announced_and_plays() {
    let bed = HomeRouter::new(&[8443], &[8189]);
    let _stun = Coturn::start(Some(&bed.viewer), "198.18.20.2", 3478, &["--stun-only"]);
    let base = format!("https://{ROUTER_WAN}:8443");
    let gc = serve(&bed, "stun_discover = \"stun:198.18.20.2:3478\"", &base).await;
    let report = common::aiortc::watch_url(Some(&bed.viewer), &format!("{base}/whep/main"), None, &[]).await;
    let announced = candidates(report["answer"].as_str().expect("answer"));
    let log = gc.log();
    let stun_lines: Vec<&str> = log.lines().filter(|l| l.contains("stun")).collect();
    assert!(
        announced.contains(&format!("udp {ROUTER_WAN} 8189")),
        "the discovered address: {announced:?}\n{stun_lines:?}"
    );
    assert!(report["frames"].as_u64() >= Some(30), "aiortc decodes from outside: {report}");
    let played = common::chromium_plays_url(Some(&bed.viewer), &format!("{base}/watch/main"), 320, 240).await;
    assert_eq!(played["pair"]["remote"], format!("{ROUTER_WAN}:8189"), "{played}");
    let text = gc.doctor(&bed.server);
    assert!(text.contains(&format!("stun:198.18.20.2:3478 sees this host as {ROUTER_WAN}")), "{text}");
    drop(gc);
}

/// The router's forward filter, replacing any earlier one: `rule` applies to what the LAN sends out.
fn strict_router(bed: &HomeRouter, rule: &str) {
    let lan = format!("{}l", bed.router);
    bed.filter_router(&format!(
        "table inet strict\ndelete table inet strict\ntable inet strict {{\n chain lan_out {{\n  \
         type filter hook forward priority 0;\n  iifname \"{lan}\" {rule}\n }}\n}}\n"
    ));
}

/// The session list's first entry once its selected path is known (the admin API, with `gc`'s token).
async fn path_seen(bed: &HomeRouter, gc: &Glasscast, base: &str) -> serde_json::Value {
    let token = gc.admin_token();
    let first = || curl_json_with(&bed.viewer, &format!("{base}/api/v1/sessions"), Some(&token))[0].clone();
    let with_path = || async {
        let s = first();
        s["candidate_type"].is_string().then_some(s)
    };
    common::eventually_some(10, with_path).await.unwrap_or_else(first)
}

/// The home router forwarding only 8443/tcp, coturn on its outside (198.18.20.2:3478, TURN REST with the
/// secret `shared-secret`), and the base URL viewers outside use.
fn router_with_coturn_outside() -> (HomeRouter, Coturn, String) {
    let bed = HomeRouter::new(&[8443], &[]);
    let secret = ["--use-auth-secret", "--static-auth-secret=shared-secret", "--realm=glasscast"];
    let turn = Coturn::start(Some(&bed.viewer), "198.18.20.2", 3478, &secret);
    (bed, turn, format!("https://{ROUTER_WAN}:8443"))
}

/// No port forward for media: the router forwards only 8443/tcp (signalling, as a reverse proxy or tunnel
/// would carry it) and lets no UDP out but to the TURN server (so no hole punching either). With
/// `relay = true` glasscast allocates on coturn outside (TURN REST credentials from a shared secret),
/// announces the relayed address, and both viewers play through it: aiortc with relayed candidates only
/// from the Link header's credentials, and Chromium. Then the same over TCP to the TURN server, with all
/// UDP out of the LAN dropped. `/readyz` and `doctor` say the allocation works.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn behind_a_nat_that_forwards_no_media_port_viewers_play_through_the_servers_turn_relay() {
    let (bed, _turn, base) = router_with_coturn_outside();
    for (transport, rule) in [("udp", "udp dport != 3478 drop"), ("tcp", "meta l4proto udp drop")] {
        strict_router(&bed, rule);
        let webrtc = format!(
            "relay = true\n[[webrtc.ice_servers]]\nurls = [\"turn:198.18.20.2:3478?transport={transport}\"]\n\
             secret = \"shared-secret\"\n"
        );
        let gc = serve(&bed, &webrtc, &base).await;
        let url = format!("{base}/whep/main");
        let args = ["--relay-from-link", "--frames", "240", "--seconds", "20"];
        let (report, path) = tokio::join!(common::aiortc::watch_url(Some(&bed.viewer), &url, None, &args), async {
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            path_seen(&bed, &gc, &base).await
        });
        let announced = candidates(report["answer"].as_str().expect("answer"));
        let relayed: Vec<&String> = announced.iter().filter(|c| c.starts_with("udp 198.18.20.2 ")).collect();
        assert_eq!(relayed.len(), 1, "{transport}: the relayed address is announced: {announced:?}\n{}", gc.log());
        assert!(
            report["frames"].as_u64() >= Some(30),
            "{transport}: aiortc plays through both relays: {report}\n{}",
            gc.log()
        );
        assert_eq!(path["candidate_type"], "relay", "{transport}: the session's path: {path}");

        let played = common::chromium_plays_url(Some(&bed.viewer), &format!("{base}/watch/main"), 320, 240).await;
        assert_eq!(played["pair"]["type"], "relay", "{transport}: Chromium's media comes from the relay: {played}");

        let ready = curl_json(&bed.viewer, &format!("{base}/readyz"));
        assert_eq!(ready["relay"]["state"], "allocated", "{ready}");
        let text = gc.doctor(&bed.server);
        let line = text.lines().find(|l| l.contains("TURN relay")).unwrap_or_else(|| panic!("{text}"));
        assert!(line.contains("allocated 198.18.20.2:"), "{transport}: {line}");
        drop(gc);
    }
}

/// A network that lets no UDP out at all, and two `turn:` URLs for the one coturn outside, UDP first: the
/// allocation over UDP gets no answer, so within seconds the relay falls over to the next URL (TCP) by
/// itself, and a viewer with relayed candidates only (aiortc) plays through it. `/readyz` names the URL in
/// use and the log why it moved on; `doctor` says UDP failed and TCP allocated.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_relay_falls_over_to_the_next_turn_url_when_the_first_gets_no_answer() {
    let (bed, _turn, base) = router_with_coturn_outside();
    strict_router(&bed, "meta l4proto udp drop");
    let (udp, tcp) = ("turn:198.18.20.2:3478?transport=udp", "turn:198.18.20.2:3478?transport=tcp");
    let webrtc =
        format!("relay = true\n[[webrtc.ice_servers]]\nurls = [\"{udp}\", \"{tcp}\"]\nsecret = \"shared-secret\"\n");
    let gc = serve(&bed, &webrtc, &base).await;
    let ready = || curl_json(&bed.viewer, &format!("{base}/readyz"));
    let allocated = || async {
        let r = ready();
        (r["relay"]["state"] == "allocated").then_some(r)
    };
    let r = common::eventually_some(20, allocated).await;
    let r = r.unwrap_or_else(|| panic!("no allocation: {}\n{}", ready(), gc.log()));
    assert_eq!(r["relay"]["server"], tcp, "the second URL holds the allocation: {r}");
    let log = gc.log();
    assert!(log.contains("trying the next TURN server") && log.contains(udp), "the log says why: {log}");

    let args = ["--relay-from-link", "--frames", "120", "--seconds", "20"];
    let report = common::aiortc::watch_url(Some(&bed.viewer), &format!("{base}/whep/main"), None, &args).await;
    let announced = candidates(report["answer"].as_str().expect("answer"));
    assert!(announced.iter().any(|c| c.starts_with("udp 198.18.20.2 ")), "the relayed address: {announced:?}");
    assert!(report["frames"].as_u64() >= Some(30), "aiortc plays through the relay: {report}\n{}", gc.log());

    let text = gc.doctor(&bed.server);
    let line = text.lines().find(|l| l.contains("TURN relay")).unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains(&format!("{tcp} allocated 198.18.20.2:")) && line.contains(&format!("{udp}: ")), "{line}");
    drop(gc);
}

/// A TURN server that refuses the relay (a secret it does not share): `/readyz` names the server and says
/// the allocation failed, `doctor` fails its TURN line with the reason, and viewers on the LAN still play
/// over the host candidates.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_turn_server_that_refuses_the_relay_is_named_in_readiness_and_doctor_and_nothing_else_breaks() {
    use common::admin::{ADMIN, start_auth_with};
    let secret = ["--use-auth-secret", "--static-auth-secret=shared-secret", "--realm=glasscast"];
    let _turn = Coturn::start(None, "127.0.0.1", 34782, &secret);
    let wrong = |cfg: &mut Config| {
        cfg.webrtc.relay = true;
        cfg.webrtc.ice_servers = vec![glasscast::config::IceServer {
            urls: vec!["turn:127.0.0.1:34782".into()],
            secret: Some("not-coturns-secret".into()),
            ..Default::default()
        }];
    };
    let mut cfg = Config::default();
    wrong(&mut cfg);
    let srv = start_auth_with(glasscast::config::Transport::Forward, wrong).await;
    let readyz = || async {
        let r = srv.http.get(format!("{}/readyz", srv.base)).bearer_auth(ADMIN).send().await.ok()?;
        serde_json::from_slice::<serde_json::Value>(&r.bytes().await.ok()?).ok()
    };
    let failed = || async { readyz().await.filter(|r| r["relay"]["state"] == "failed") };
    let ready = match common::eventually_some(15, failed).await {
        Some(r) => r,
        None => readyz().await.unwrap_or_default(),
    };
    assert_eq!(ready["relay"]["state"], "failed", "readiness says the relay failed: {ready}");
    assert_eq!(ready["relay"]["server"], "turn:127.0.0.1:34782", "{ready}");
    assert!(ready["relay"]["reason"].as_str().is_some_and(|r| !r.is_empty()), "{ready}");
    assert_eq!(ready["ready"], true, "LAN viewers still play, so the server stays ready: {ready}");

    let token = common::admin::issue(&srv, serde_json::json!({"stream": "main"})).await;
    let report = common::aiortc::watch(&srv, "main", token["token"].as_str(), &[]).await;
    assert!(report["frames"].as_u64() >= Some(30), "a viewer plays on the host candidates: {report}");
    srv.shutdown().await;

    let findings = tokio::task::spawn_blocking(move || glasscast::doctor::run(&cfg)).await.expect("doctor");
    let turn = findings.iter().find(|f| f.what == "TURN relay").expect("a TURN relay line");
    assert_eq!(turn.level, glasscast::doctor::Level::Fail, "{turn}");
    assert!(turn.detail.contains("turn:127.0.0.1:34782"), "{turn}");
}

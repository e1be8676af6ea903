//! Mutation fuzzing on stable Rust (issue 17): real inputs, mutated deterministically, against a live server
//! and the configuration loader. Offers from Chromium 156, Firefox ESR 153 and aiortc (tests/fixtures/offers,
//! captured once) and GStreamer's webrtcbin (made here) go to `POST /whep/main`; trickle and ICE-restart
//! sdpfrags to a live session's `PATCH`; viewer tokens to an access-controlled server; configuration files
//! to `Config::load_from`; STUN checks for a live viewer (with the right integrity, made by str0m's encoder),
//! RTCP, RTP and DTLS datagrams to the mux port. Every answer must be 201/204/200 or a 4xx or 503 with an
//! `application/problem+json` body (never a 500, never a hang past the client's timeout), the server must
//! stay healthy, and a webrtcbin viewer watching throughout must keep decoding. `GLASSCAST_FUZZ_N` mutations
//! per input (default 500 here; 10000 for the issue's count).

use crate::common;

use common::admin::{ADMIN, issue, start_auth_with};
use common::*;
use glasscast::config::{Config, StreamConfig, Transport};

fn rounds() -> u64 {
    std::env::var("GLASSCAST_FUZZ_N").ok().and_then(|v| v.parse().ok()).unwrap_or(500)
}

/// A deterministic xorshift stream.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One mutation of `input`: a byte changed, a line removed, doubled, swapped or garbled, a number made huge
/// or negative, a very long line added, or the text cut short.
fn mutate(input: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut lines: Vec<Vec<u8>> = input.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
    let i = rng.below(lines.len());
    match rng.below(9) {
        0 => {
            let mut out = input.to_vec();
            let at = rng.below(out.len());
            out[at] = rng.next() as u8;
            return out;
        }
        1 => {
            lines.remove(i);
        }
        2 => {
            let l = lines[i].clone();
            lines.insert(i, l);
        }
        3 => return input[..rng.below(input.len())].to_vec(),
        4 => {
            let n = [b"0".to_vec(), b"-1".to_vec(), b"4294967296".to_vec(), b"99999999999999999999".to_vec()];
            let pick = n[rng.below(n.len())].clone();
            if let Some(at) = lines[i].iter().position(u8::is_ascii_digit) {
                let end = at + lines[i][at..].iter().take_while(|b| b.is_ascii_digit()).count();
                lines[i].splice(at..end, pick);
            }
        }
        5 => lines.insert(i, [b"a=x-long:".to_vec(), vec![b'x'; 4000]].concat()),
        6 => {
            let j = rng.below(lines.len());
            lines.swap(i, j);
        }
        7 => {
            let cut = lines[i].iter().position(|b| *b == b':' || *b == b' ').map_or(0, |p| p + 1);
            lines[i].truncate(cut);
            lines[i].extend((0..rng.below(40)).map(|_| rng.next() as u8));
        }
        _ => {
            let j = rng.below(lines.len());
            let l = lines[j].clone();
            lines[i].extend(l);
        }
    }
    lines.join(&b'\n')
}

/// What a fuzzed request got: fine (`ok`), or why it is a defect.
fn judge(what: &str, status: u16, content_type: Option<&str>, ok: &[u16]) -> Result<(), String> {
    if ok.contains(&status) {
        return Ok(());
    }
    let problem = content_type.is_some_and(|t| t.starts_with("application/problem+json"));
    if ((400..500).contains(&status) || status == 503) && problem {
        return Ok(());
    }
    Err(format!("{what}: {status} ({content_type:?})"))
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/fixtures/offers/{name}", env!("CARGO_MANIFEST_DIR"))).expect("fixture")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mutated_offers_and_sdpfrags_get_an_answer_or_a_problem_and_a_viewer_keeps_playing() {
    // Offers that survive mutation make sessions that never connect: they end after 2 s.
    let mut cfg = Config::default();
    cfg.server.plain_http = true;
    cfg.webrtc.connect_timeout_s = 2;
    cfg.streams = vec![StreamConfig { max_viewers: 40, ..small_stream("main") }];
    let srv = start_with(cfg).await;
    let mut watcher = WebrtcbinViewer::new(96, "42e01f", true);
    watcher.connect(&srv, "main").await;
    assert!(watcher.gets_frames(10, 20).await);
    let gst_offer = WebrtcbinViewer::new(97, "42e01f", true).offer().await.into_bytes();
    let bases = [
        ("chromium", fixture("chromium-156.sdp")),
        ("firefox", fixture("firefox-esr-153.sdp")),
        ("aiortc", fixture("aiortc.sdp")),
        ("webrtcbin", gst_offer),
    ];
    let url = format!("{}/whep/main", srv.base);
    let mut defects = Vec::new();
    let mut rng = Rng(0x5e_ed0f_f022);
    let mut created = 0;
    for (name, base) in &bases {
        for n in 0..rounds() {
            let body = mutate(base, &mut rng);
            let r = srv.http.post(&url).header("content-type", "application/sdp").body(body).send().await;
            let r = r.unwrap_or_else(|e| panic!("{name} #{n}: no answer ({e}): the server hung or died"));
            let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
            created += u32::from(r.status() == 201);
            if let Err(e) = judge(&format!("offer {name} #{n}"), r.status().as_u16(), ct.as_deref(), &[201]) {
                defects.push(format!("{e}: {}", r.text().await.unwrap_or_default()));
            }
        }
    }
    // The watcher's session: trickle and ICE-restart fragments, mutated.
    let session = watcher.location.clone().expect("location");
    let frag = b"a=ice-ufrag:abcd\r\na=ice-pwd:0123456789abcdef012345\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n\
                 a=candidate:1 1 udp 2130706431 198.18.0.9 50000 typ host\r\na=end-of-candidates\r\n";
    for n in 0..rounds() {
        let body = String::from_utf8_lossy(&mutate(frag, &mut rng)).into_owned();
        let r = srv.patch_frag(&session, Some("*"), &body).await;
        let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
        if let Err(e) = judge(&format!("sdpfrag #{n}"), r.status().as_u16(), ct.as_deref(), &[200, 204]) {
            defects.push(e);
        }
    }
    eprintln!("{} offers ({created} created), {} sdpfrags; defects: {defects:?}", 4 * rounds(), rounds());
    assert!(defects.is_empty(), "{} defects, first: {:?}", defects.len(), &defects[..defects.len().min(10)]);
    let health = srv.http.get(format!("{}/healthz", srv.base)).send().await.expect("healthz");
    assert_eq!(health.status(), 200);
    // The restarts may have moved the watcher's ICE credentials away from its own: it is judged by whether
    // the stream still serves a new viewer, and by its own frames up to the fragments.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await; // the never-connected sessions end
    let mut after = WebrtcbinViewer::new(98, "42e01f", true);
    after.connect(&srv, "main").await;
    assert!(after.gets_frames(10, 20).await, "a new viewer plays after the fuzzing");
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mutated_tokens_are_refused_with_a_problem_and_never_let_in() {
    let srv = start_auth_with(Transport::Forward, |_| {}).await;
    let token = issue(&srv, serde_json::json!({ "stream": "main" })).await["token"].as_str().expect("t").to_owned();
    let mut rng = Rng(0x70_4e_11);
    // Every refusal waits 200 ms (AUTH_FAILURE_DELAY): 50 at a time.
    let headers: Vec<reqwest::header::HeaderValue> = (0..rounds())
        .filter_map(|_| {
            let mutated = mutate(token.as_bytes(), &mut rng);
            reqwest::header::HeaderValue::from_bytes(&[b"Bearer ".as_slice(), &mutated].concat()).ok()
        })
        .collect();
    let mut defects = Vec::new();
    for (batch, chunk) in headers.chunks(50).enumerate() {
        let asks = chunk
            .iter()
            .map(|h| srv.http.get(format!("{}/api/v1/sessions", srv.base)).header("authorization", h.clone()).send());
        for (i, r) in futures::future::join_all(asks).await.into_iter().enumerate() {
            let r = r.unwrap_or_else(|e| panic!("token #{}: no answer ({e})", batch * 50 + i));
            let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
            // A viewer token never opens the admin API, mutated or not: 200 would be a defect.
            if let Err(e) = judge(&format!("token #{}", batch * 50 + i), r.status().as_u16(), ct.as_deref(), &[]) {
                defects.push(e);
            }
        }
    }
    assert!(defects.is_empty(), "{defects:?}");
    let r = srv.http.get(format!("{}/api/v1/sessions", srv.base)).bearer_auth(ADMIN).send().await.expect("get");
    assert_eq!(r.status(), 200, "the admin still gets in");
    srv.shutdown().await;
}

#[test]
fn mutated_configuration_files_load_or_are_refused_without_a_panic() {
    let base = std::fs::read(format!("{}/config/glasscast.toml", env!("CARGO_MANIFEST_DIR"))).expect("config");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("glasscast.toml");
    let mut rng = Rng(0xc04f_0016);
    let (mut loaded, mut refused) = (0, 0);
    for n in 0..rounds() {
        std::fs::write(&path, mutate(&base, &mut rng)).expect("write");
        match std::panic::catch_unwind(|| Config::load_from(Some(&path), Vec::new())) {
            Ok(Ok(_)) => loaded += 1,
            Ok(Err(e)) => {
                refused += 1;
                assert!(!e.to_string().is_empty(), "#{n}: an empty error");
            }
            Err(_) => panic!("#{n}: the configuration loader panicked"),
        }
    }
    eprintln!("{loaded} mutated configurations loaded, {refused} refused with a reason");
    assert!(refused > 0, "the mutations reached the loader");
}

/// One mutation of a binary datagram: bytes changed, a length field made huge or zero, cut short, grown
/// with garbage, or a stretch of it repeated.
fn mutate_bytes(input: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut out = input.to_vec();
    match rng.below(6) {
        0 => {
            for _ in 0..=rng.below(4) {
                let at = rng.below(out.len());
                out[at] = rng.next() as u8;
            }
        }
        1 => {
            let at = rng.below(out.len().saturating_sub(1));
            let v = [[0xff, 0xff], [0, 0], [0x80, 0x00]][rng.below(3)];
            out[at..at + 2].copy_from_slice(&v);
        }
        2 => out.truncate(rng.below(out.len())),
        3 => out.extend((0..rng.below(300)).map(|_| rng.next() as u8)),
        4 => {
            let (a, b) = (rng.below(out.len()), rng.below(out.len()));
            let stretch = out[a.min(b)..a.max(b)].to_vec();
            out.splice(a..a, stretch);
        }
        _ => {
            let at = rng.below(out.len());
            out[at] ^= 1 << rng.below(8);
        }
    }
    out
}

/// Real datagrams of each kind the mux meets: a STUN check for the live viewer with the right
/// MESSAGE-INTEGRITY (str0m's own encoder), an RTCP receiver report with a PLI for the stream's video SSRC,
/// an RTP packet with a header extension, and a DTLS ClientHello.
fn real_datagrams(username: &str, password: &str, ssrc: u32) -> Vec<(&'static str, Vec<u8>)> {
    let stun = common::junk::valid_check(username, password);
    let s = ssrc.to_be_bytes();
    let mut rtcp = vec![0x81, 201, 0, 7, 0, 0, 0, 9];
    rtcp.extend_from_slice(&s);
    rtcp.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0x10, 0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0]);
    rtcp.extend_from_slice(&[0x81, 206, 0, 2, 0, 0, 0, 9]);
    rtcp.extend_from_slice(&s);
    let mut rtp = vec![0x90, 96, 0x12, 0x34, 0, 0, 0x10, 0, 0xde, 0xad, 0xbe, 0xef, 0xbe, 0xde, 0, 1, 0x10, 0x55, 0, 0];
    rtp.extend_from_slice(&[0x7c, 0x85, 0xb8, 0x00, 0x11, 0x22]);
    let mut hello = vec![1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xfe, 0xfd];
    hello.extend_from_slice(&[0x42; 32]);
    hello.extend_from_slice(&[0, 0, 0, 2, 0xc0, 0x2b, 1, 0, 0, 0]);
    let body = (hello.len() - 12) as u32;
    hello[1..4].copy_from_slice(&body.to_be_bytes()[1..]);
    hello[9..12].copy_from_slice(&body.to_be_bytes()[1..]);
    let mut dtls = vec![22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0];
    dtls.extend_from_slice(&(hello.len() as u16).to_be_bytes());
    dtls.extend(hello);
    vec![("stun", stun), ("rtcp", rtcp), ("rtp", rtp), ("dtls", dtls)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mutated_stun_rtcp_rtp_and_dtls_datagrams_at_the_mux_port_hurt_no_viewer() {
    let srv = start_forward(vec![small_stream("main")]).await;
    let mut watcher = WebrtcbinViewer::new(96, "42e01f", true);
    let (offer, answer) = watcher.connect_sdp(&srv, "main").await;
    assert!(watcher.gets_frames(10, 20).await, "the watcher plays before the fuzzing");
    let to = mux_addr(&answer);
    let username = format!("{}:{}", sdp_attr(&answer, "ice-ufrag"), sdp_attr(&offer, "ice-ufrag"));
    let ssrc = sdp_attr(&answer, "ssrc").split_whitespace().next().and_then(|s| s.parse().ok()).unwrap_or(1);
    let seeds = real_datagrams(&username, sdp_attr(&answer, "ice-pwd"), ssrc);

    let encoded = || async { srv.server.sessions.readiness().await.streams[0].frames };
    let (frames_before, made_before) = (watcher.frames(), encoded().await);
    let socket = tokio::net::UdpSocket::bind("0.0.0.0:0").await.expect("bind");
    // The STUN seed is a real check: the viewer's peer answers it (so its mutations reach that peer's
    // parser, not only the mux's routing). Without USE-CANDIDATE it moves nothing.
    socket.send_to(&seeds[0].1, to).await.expect("send");
    let mut reply = [0u8; 1500];
    let got = tokio::time::timeout(std::time::Duration::from_secs(5), socket.recv(&mut reply)).await;
    let n = got.expect("the live peer answers a real check").expect("recv");
    assert!(n >= 20 && reply[..2] == [0x01, 0x01], "a STUN success response: {:02x?}", &reply[..n.min(20)]);
    let mut rng = Rng(0xda7a_9a4a);
    for (kind, seed) in &seeds {
        for n in 0..rounds() {
            let datagram = mutate_bytes(seed, &mut rng);
            socket.send_to(&datagram, to).await.unwrap_or_else(|e| panic!("{kind} #{n}: {e}"));
            if n % 50 == 0 {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        }
    }
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let made = encoded().await - made_before;
    let got = watcher.frames() - frames_before;
    eprintln!("{} mutated datagrams; the watcher decoded {got} of {made} frames meanwhile", 4 * rounds());
    let ready = srv.server.sessions.readiness().await;
    assert!(ready.mux.as_ref().is_some_and(|m| m.alive), "the mux died: {:?}", ready.mux);
    assert!(made > 10 && got + 10 >= made, "the watcher lost frames to the fuzzing: {got} of {made}");
    let mut after = WebrtcbinViewer::new(97, "42e01f", true);
    after.connect(&srv, "main").await;
    assert!(after.gets_frames(10, 20).await, "a new viewer plays after the fuzzing");
    srv.shutdown().await;
}

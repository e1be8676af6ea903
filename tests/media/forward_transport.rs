//! The forwarding transport (`webrtc.transport = "forward"`, str0m peers in mux threads on one UDP port),
//! end to end over WHEP with GStreamer's own webrtcbin as the viewer: decoded video and audio, several
//! payload types at once, keyframe on join, DELETE, ICE restart, a viewer that vanishes, UDP GSO, and
//! viewers spread over several mux threads.

use crate::common;

use common::*;
use gstreamer::prelude::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forwarded_viewer_decodes_video_and_audio_from_the_one_port() {
    let srv = start_forward(vec![small_stream("main")]).await;
    let port = srv.server.forward.as_ref().expect("forward transport").port();

    let mut v = WebrtcbinViewer::new(96, "42e01f", true);
    v.connect(&srv, "main").await;
    assert!(v.gets_frames(30, 20).await, "no video frames decoded");
    assert_eq!(*v.size.lock().expect("lock"), Some((320, 240)));
    assert!(eventually(10, || v.audio() > 10).await, "no Opus audio decoded");

    // Every candidate we answered is on the one mux port.
    let answer = v
        .webrtcbin
        .property::<Option<gstreamer_webrtc::WebRTCSessionDescription>>("remote-description")
        .expect("answer")
        .sdp()
        .as_text()
        .expect("text");
    let ports: Vec<&str> = answer
        .lines()
        .filter_map(|l| l.strip_prefix("a=candidate:"))
        .filter_map(|c| c.split_whitespace().nth(5))
        .collect();
    assert!(!ports.is_empty(), "no candidates in the answer:\n{answer}");
    assert!(ports.iter().all(|p| *p == port.to_string()), "candidates not on port {port}: {ports:?}");

    let handle = srv.server.sessions.viewer(session_of(&v)).await.expect("session exists");
    let stats = handle.gate_stats();
    assert!(stats.first_forwarded_was_keyframe, "the first packet sent must start a keyframe: {stats:?}");
    assert!(handle.webrtcbin_weak().is_none(), "no webrtcbin on the forwarding transport");

    let resp = srv.http.delete(v.location.clone().expect("location")).send().await.expect("delete");
    assert_eq!(resp.status(), 200);
    assert!(srv.server.sessions.viewer(session_of(&v)).await.is_none());
    let again = srv.http.delete(v.location.clone().expect("location")).send().await.expect("delete");
    assert_eq!(again.status(), 404, "a deleted session is gone");
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn viewers_with_different_payload_types_play_and_one_leaving_or_vanishing_spares_the_other() {
    let srv = start_forward(vec![small_stream("main")]).await;
    // A GStreamer-style offer (96, 42e016) and a browser-style one (127, 42e01f, no audio).
    let mut a = WebrtcbinViewer::new(96, "42e016", true);
    let mut b = WebrtcbinViewer::new(127, "42e01f", false);
    a.connect(&srv, "main").await;
    b.connect(&srv, "main").await;
    assert!(a.gets_frames(20, 20).await, "viewer a (pt 96) decoded nothing");
    assert!(b.gets_frames(20, 20).await, "viewer b (pt 127) decoded nothing");

    // a leaves with DELETE: b keeps playing.
    let resp = srv.http.delete(a.location.clone().expect("location")).send().await.expect("delete");
    assert_eq!(resp.status(), 200);
    a.stop();
    assert!(b.gets_frames(30, 20).await, "b stalled after a left");

    // A third viewer vanishes without DELETE (its process "dies"): its session is ended once its ICE
    // checks stop (str0m notices, then a 10 s grace for an ICE restart), and b never notices.
    let mut c = WebrtcbinViewer::new(96, "42e01f", true);
    c.connect(&srv, "main").await;
    assert!(c.gets_frames(10, 20).await, "viewer c decoded nothing");
    let c_id = session_of(&c);
    c.stop();
    assert!(srv.session_ends(c_id, 60).await, "a vanished viewer's session must end by itself");
    assert!(b.gets_frames(30, 20).await, "b stalled while c vanished");
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_garbage_datagram_on_the_mux_port_hurts_nobody() {
    let srv = start_forward(vec![small_stream("main")]).await;
    let port = srv.server.forward.as_ref().expect("forward transport").port();
    let mut v = WebrtcbinViewer::new(96, "42e01f", true);
    v.connect(&srv, "main").await;
    assert!(v.gets_frames(10, 20).await, "no frames");
    // Whatever a stranger sends to the one public port (STUN with an unknown user, fake DTLS/RTP, noise) is
    // dropped; the viewer keeps playing.
    let sock = std::net::UdpSocket::bind("0.0.0.0:0").expect("udp");
    let target = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let local_ip = if_addrs_first_ipv4().unwrap_or([127, 0, 0, 1].into());
    let stun_unknown_user = {
        let mut m = vec![0x00, 0x01, 0x00, 0x0c, 0x21, 0x12, 0xa4, 0x42];
        m.extend_from_slice(&[7u8; 12]);
        m.extend_from_slice(&[0x00, 0x06, 0x00, 0x08]);
        m.extend_from_slice(b"nobody:x");
        m
    };
    let packets: Vec<Vec<u8>> = vec![
        stun_unknown_user,
        vec![22, 254, 253, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 1, 2, 3, 4, 5],
        vec![0x80, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 2, 3],
        vec![0xff; 1400],
        vec![],
    ];
    for dst in [target, std::net::SocketAddr::new(local_ip, port)] {
        for p in &packets {
            let _ = sock.send_to(p, dst);
        }
    }
    assert!(v.gets_frames(30, 20).await, "the viewer stalled after garbage on the mux port");

    // The ICE-TCP port likewise: noise, a zero-length frame, frames of junk, a half frame left hanging,
    // connections opened and abandoned. The viewer keeps playing and the port still takes connections.
    let tcp =
        std::net::SocketAddr::new(local_ip, srv.server.forward.as_ref().and_then(|f| f.tcp_port()).expect("ICE-TCP"));
    let mut framed: Vec<u8> = Vec::new();
    for p in &packets {
        framed.extend_from_slice(&(p.len() as u16).to_be_bytes());
        framed.extend_from_slice(p);
    }
    let junk: [&[u8]; 4] = [&[0xff; 3000], &[0, 0, 1, 2], &framed, &[0x05, 0xdc, 1, 2, 3]];
    let mut open = Vec::new();
    for bytes in junk {
        use std::io::Write;
        let mut c = std::net::TcpStream::connect(tcp).expect("the ICE-TCP port accepts");
        let _ = c.write_all(bytes);
        open.push(c);
    }
    assert!(v.gets_frames(30, 20).await, "the viewer stalled after junk on the ICE-TCP port");
    drop(open);
    assert!(std::net::TcpStream::connect(tcp).is_ok(), "the ICE-TCP port still accepts");
    srv.shutdown().await;
}

fn if_addrs_first_ipv4() -> Option<std::net::IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:9").ok()?;
    Some(s.local_addr().ok()?.ip())
}

/// The mux port's send paths (`webrtc.udp_gso`, `webrtc.udp_mmsg`) with two viewers: each decodes every
/// frame the encoder makes on every path. The system calls show what each path batches: one per datagram
/// with neither; GSO puts a frame's packets to one viewer in one call; `sendmmsg` puts both viewers' packets
/// in one, so with both it takes fewer calls per datagram than GSO alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_send_path_delivers_every_frame_and_batches_what_it_says() {
    let mut per_call = std::collections::HashMap::new();
    for (gso, mmsg) in [(false, false), (true, false), (false, true), (true, true)] {
        let mut cfg = glasscast::config::Config::default();
        cfg.server.plain_http = true;
        (cfg.webrtc.udp_gso, cfg.webrtc.udp_mmsg) = (gso, mmsg);
        // ~8 KB frames: several packets each.
        let stream =
            glasscast::config::StreamConfig { width: 640, height: 360, bitrate_kbps: 2000, ..small_stream("main") };
        cfg.streams = vec![stream];
        let srv = start_with(cfg).await;
        let mut viewers = [WebrtcbinViewer::new(96, "42e01f", false), WebrtcbinViewer::new(96, "42e01f", false)];
        for v in &mut viewers {
            v.connect(&srv, "main").await;
            assert!(v.gets_frames(30, 20).await, "gso = {gso}, mmsg = {mmsg}: no video decoded");
        }
        let made = || async { srv.server.sessions.health("main").await.expect("health").frames };
        let before = srv.server.sessions.readiness().await.mux.expect("the forwarding transport's mux");
        let (frames_before, made_before) = (viewers.each_ref().map(|v| v.frames()), made().await);
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        let encoded = made().await - made_before;
        for (v, before) in viewers.iter().zip(frames_before) {
            let got = v.frames() - before;
            // Read a moment apart from the encoder's count: a few frames are on their way.
            assert!(
                encoded > 30 && got + 5 >= encoded,
                "gso = {gso}, mmsg = {mmsg}: decoded {got} of {encoded} frames"
            );
        }
        let mux = srv.server.sessions.readiness().await.mux.expect("the forwarding transport's mux");
        let (datagrams, calls) = (mux.datagrams_sent - before.datagrams_sent, mux.send_calls - before.send_calls);
        eprintln!("gso = {gso}, mmsg = {mmsg}: {datagrams} datagrams in {calls} calls");
        per_call.insert((gso, mmsg), datagrams as f64 / calls.max(1) as f64);
        if (gso, mmsg) == (false, false) {
            assert_eq!(datagrams, calls, "with neither, one call per datagram");
        } else {
            assert!(
                per_call[&(gso, mmsg)] > 1.5,
                "gso = {gso}, mmsg = {mmsg}: {datagrams} datagrams took {calls} calls"
            );
        }
        srv.shutdown().await;
    }
    assert!(per_call[&(true, true)] > per_call[&(true, false)], "sendmmsg added nothing to GSO: {per_call:?}");
}

/// Viewers spread over several mux threads (`webrtc.mux_threads = 3`): one per thread, all on the one port,
/// all decode (the second and third threads get their datagrams from the first and send on their own
/// handles of its sockets); readiness counts them per thread; one leaving spares the others, and the next
/// viewer takes the thread it left.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn viewers_spread_over_three_mux_threads_all_play_and_one_leaving_spares_the_others() {
    let mut cfg = glasscast::config::Config::default();
    cfg.server.plain_http = true;
    cfg.webrtc.transport = glasscast::config::Transport::Forward;
    cfg.webrtc.mux_threads = 3;
    cfg.streams = vec![small_stream("main")];
    let srv = start_with(cfg).await;
    let per_thread = || async { srv.server.sessions.readiness().await.mux.expect("mux").viewers_per_thread };
    assert_eq!(per_thread().await, [0, 0, 0]);
    let mut viewers = Vec::new();
    for _ in 0..3 {
        let mut v = WebrtcbinViewer::new(96, "42e01f", true);
        v.connect(&srv, "main").await;
        viewers.push(v);
    }
    for (i, v) in viewers.iter().enumerate() {
        assert!(v.gets_frames(30, 20).await, "viewer {i} decoded no video");
        assert!(eventually(10, || v.audio() > 10).await, "viewer {i} decoded no audio");
    }
    assert_eq!(per_thread().await, [1, 1, 1]);
    let ready = srv.server.sessions.readiness().await;
    assert!(ready.ready && ready.mux.as_ref().is_some_and(|m| m.alive), "{ready:?}");

    let gone = srv.http.delete(viewers[1].location.clone().expect("location")).send().await.expect("delete");
    assert_eq!(gone.status(), 200);
    viewers[1].stop();
    assert!(eventually_async(10, || async { per_thread().await == [1, 0, 1] }).await, "{:?}", per_thread().await);
    let (a, c) = (viewers[0].frames(), viewers[2].frames());
    assert!(viewers[0].gets_frames(a + 30, 10).await && viewers[2].gets_frames(c + 30, 10).await);
    let mut next = WebrtcbinViewer::new(96, "42e01f", true);
    next.connect(&srv, "main").await;
    assert!(next.gets_frames(30, 20).await, "a viewer on the freed thread plays");
    assert_eq!(per_thread().await, [1, 1, 1]);
    srv.shutdown().await;
}

//! Screen capture through the real ScreenCast portal: a headless sway session with PipeWire,
//! xdg-desktop-portal and the (patched) wlr backend, a moving ball on its 1280x720 output
//! (scripts/testbed/wayland-session.sh). glasscast streams the monitor over WHEP to the webrtcbin client,
//! which decodes frames with the ball's picture; restarted, it restores the saved choice (the portal accepts
//! the kept restore token and hands the same one back); the screen cast killed under it (the portal backend
//! dies), the stream says why it has no picture and retries, and the connected viewer gets frames again.
//! (Its own test binary: the session bus address is a process-wide environment variable.)

use crate::common;

use std::process::Command;

use common::*;
use glasscast::config::{AudioSource, Config, PortalCursor, StreamConfig, VideoSource};

/// Kills one of the Wayland session's processes (by its name in DIR/pids).
fn kill(wl: &testbed::Testbed, name: &str) {
    let pids = std::fs::read_to_string(format!("{}/pids", wl.dir)).expect("pids");
    let pid = pids
        .lines()
        .find_map(|l| l.split_once(' ').filter(|(n, _)| *n == name).map(|(_, p)| p.trim().to_owned()))
        .unwrap_or_else(|| panic!("no {name} in {pids}"));
    let ok = Command::new("kill").args(["-KILL", &pid]).status().expect("kill").success();
    assert!(ok, "kill {name} ({pid})");
}

fn portal_config(state: &std::path::Path) -> Config {
    let mut cfg = Config::default();
    cfg.server.plain_http = true;
    cfg.streams = vec![StreamConfig {
        source: VideoSource::Portal { cursor: PortalCursor::Embedded },
        audio: AudioSource::None,
        width: 640,
        height: 360,
        bitrate_kbps: 800,
        ..StreamConfig::test_pattern("screen")
    }];
    cfg.server.state_dir = state.to_path_buf();
    cfg
}

async fn readiness(srv: &TestServer) -> (bool, Option<String>) {
    let r = srv.server.sessions.readiness().await;
    (r.ready, r.streams[0].reason.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_monitor_streams_through_the_portal_restores_unattended_and_survives_a_lost_cast() {
    let wl = testbed::Testbed::start("wayland-session.sh", "gc-wl.", &[]);
    wl.export("");
    let state = tempfile::tempdir().expect("state");
    let screen = glasscast::ids::StreamName::parse("screen").expect("a valid name");
    let token_file = glasscast::media::source::portal::token_path(state.path(), &screen);

    let srv = start_with_state(portal_config(state.path()), &state).await;
    let mut v = WebrtcbinViewer::new(96, "42e01f", false);
    v.connect(&srv, "screen").await;
    assert!(v.gets_frames(10, 20).await, "frames from the portal");
    assert_eq!(*v.size.lock().expect("lock"), Some((640, 360)), "the 1280x720 monitor scaled to the stream");
    assert!(testbed::sees_a_picture(&v, 10).await, "the picture is not the screen: {:?}", v.luma_range);
    let seen = chromium_plays(&srv, "/watch/screen", 640, 360).await;
    assert!(seen["lumaMax"].as_i64().unwrap_or(0) - seen["lumaMin"].as_i64().unwrap_or(0) > 120, "{seen}");
    let token = std::fs::read_to_string(&token_file).expect("the portal's restore token is saved");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&token_file).expect("token").permissions().mode() & 0o777, 0o600);

    // The screen cast dies under us (its portal backend is killed, as when the compositor or the backend
    // crashes): the stream says why it has no picture, the viewer stays, and once the backend is back (D-Bus
    // starts it again on the next call) the viewer gets the screen again without doing anything.
    kill(&wl, "xdpw");
    // (First "no frame encoded in the last 2 s", then the supervisor's diagnosis.)
    let lost = || async {
        match readiness(&srv).await {
            (false, Some(reason)) if reason.starts_with("no picture: ") => Some(reason),
            _ => None,
        }
    };
    let why = eventually_some(10, lost).await.expect("the stream stayed ready with its screen cast gone");
    assert!(why.starts_with("no picture: ") && why.contains("retrying in"), "{why}");
    assert!(testbed::sees_a_picture(&v, 40).await, "the viewer did not get the screen back");
    assert!(readiness(&srv).await.0, "ready again: {:?}", readiness(&srv).await);
    srv.shutdown().await;

    // Restart: the kept token is offered and accepted (the portal hands the same one back), and it plays.
    let srv = start_with_state(portal_config(state.path()), &state).await;
    let mut again = WebrtcbinViewer::new(96, "42e01f", false);
    again.connect(&srv, "screen").await;
    assert!(testbed::sees_a_picture(&again, 20).await, "no screen after the restart");
    assert_eq!(std::fs::read_to_string(&token_file).expect("token"), token, "the saved choice was restored");
    srv.shutdown().await;

    // `glasscast doctor` restores the saved choice too and sees frames of the screen.
    let config = state.path().join("glasscast.toml");
    let text = format!(
        "[server]\nplain_http = true\nlisten = \"127.0.0.1:0\"\nstate_dir = \"{}\"\n[webrtc]\nmux_port = 0\n\
         [[streams]]\nname = \"screen\"\nsource = \"portal\"\naudio = \"none\"\nwidth = 640\nheight = 360\n",
        state.path().display()
    );
    std::fs::write(&config, text).expect("config");
    let out = Command::new(env!("CARGO_BIN_EXE_glasscast")).arg("--config").arg(&config).arg("doctor").output();
    let out = out.expect("glasscast doctor");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(
        text.contains("ok    stream screen video source: ScreenCast portal delivers 640x360")
            && text.contains("restored the saved choice"),
        "{text}"
    );
    drop(wl);
}

//! `glasscast doctor` and `glasscast sources`, run as the binary: a configuration that works here gets only
//! ok/warn lines and exit 0; one whose X display, audio device and forced encoder cannot work gets a FAIL
//! line with a fix for each and exit 1. `sources` lists the encoders with their probe results.

use std::process::Command;

fn glasscast(config: &str, args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("glasscast.toml");
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nstate_dir = \"{}\"\n[webrtc]\nmux_port = 0\n{config}",
        dir.path().join("state").display()
    );
    std::fs::write(&path, config).expect("write config");
    let out = Command::new(env!("CARGO_BIN_EXE_glasscast"))
        .arg("--config")
        .arg(&path)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run glasscast");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn a_configuration_that_works_here_passes() {
    let (code, text) = glasscast("[[streams]]\nname = \"main\"\nwidth = 320\nheight = 240\n", &["doctor"], &[]);
    assert_eq!(code, 0, "{text}");
    assert!(!text.contains("FAIL"), "{text}");
    assert!(text.contains("ok    stream main encoder: x264enc"), "{text}");
    assert!(text.contains("ok    stream main video source: test pattern delivers 320x240"), "{text}");
    assert!(text.contains("ok    stream main audio: test tone delivers 48000 Hz x2"), "{text}");
    assert!(text.contains("VA-API"), "the VA-API device check is reported: {text}");
    assert!(text.contains("state directory") && text.contains("is writable"), "{text}");
    assert!(text.contains("ok    announced addresses: "), "the addresses viewers are given: {text}");
}

/// What viewers would be given, and why it may not reach them: a name that does not resolve, and a set of
/// private addresses only.
#[test]
fn announced_addresses_say_what_viewers_get_and_what_will_not_reach_them() {
    let config = "advertise = [\"192.168.1.20\", \"no-such-host.invalid\"]\nlocal_candidates = [\"10.99.0.0/16\"]\n\
                  [[streams]]\nname = \"main\"\nwidth = 320\nheight = 240\n";
    let (code, text) = glasscast(config, &["doctor"], &[]);
    assert_eq!(code, 0, "warnings only: {text}");
    assert!(
        text.contains("warn  announced addresses: webrtc.advertise entry `no-such-host.invalid` does not resolve"),
        "{text}"
    );
    assert!(text.contains("warn  announced addresses: 192.168.1.20 (private only"), "{text}");
    assert!(text.contains("webrtc.advertise"), "the fix names the key: {text}");
}

#[test]
fn what_cannot_work_is_a_fail_line_with_its_fix_and_exit_1() {
    let config = "[[streams]]\nname = \"desk\"\nencoder = \"nvenc\"\n\
                  source = { kind = \"x11\", display = \":4321\" }\n\
                  audio = { kind = \"input\", device = \"no-such-microphone\" }\n";
    // No sound server reachable either: a private, empty runtime directory.
    let runtime = tempfile::tempdir().expect("tempdir");
    let rt = runtime.path().to_str().expect("utf-8");
    let (code, text) =
        glasscast(config, &["doctor"], &[("XDG_RUNTIME_DIR", rt), ("PULSE_SERVER", "unix:/nonexistent")]);
    assert_eq!(code, 1, "{text}");
    let line = |what: &str| -> String {
        let i =
            text.find(&format!("FAIL  stream desk {what}")).unwrap_or_else(|| panic!("no FAIL for {what}:\n{text}"));
        text[i..].lines().take(2).collect::<Vec<_>>().join("\n")
    };
    let enc = line("encoder");
    assert!(enc.contains("nvh264enc") && enc.contains("fix:"), "{enc}");
    let video = line("video source");
    assert!(video.contains("X11 display :4321") && video.contains("fix:") && video.contains("DISPLAY"), "{video}");
    let audio = line("audio");
    assert!(audio.contains("input no-such-microphone") && audio.contains("pactl"), "{audio}");
}

#[test]
fn sources_lists_encoders_with_their_probe_results_and_the_display() {
    let (code, text) = glasscast("", &["sources"], &[("DISPLAY", ":7")]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("x11 :7"), "{text}");
    assert!(text.lines().any(|l| l.contains("x264enc") && l.ends_with("works")), "{text}");
    assert!(text.lines().any(|l| l.contains("vah264lpenc") && l.contains("no: ")), "{text}");
    for section in ["cameras:", "audio inputs:", "audio outputs:", "encoders"] {
        assert!(text.contains(section), "{section}: {text}");
    }
}

/// `check-config` refuses what `serve` refuses (issue 34): an admin token under 16 characters, and metrics
/// on an address beyond loopback with no token unless `metrics.allow_public`; with it, `check-config`,
/// `doctor` and the log at start warn.
#[test]
fn check_config_refuses_what_serve_refuses_and_public_metrics_are_warned_about() {
    let stream = "[[streams]]\nname = \"main\"\nwidth = 160\nheight = 120\n";
    let short = format!("[auth]\nadmin_token = \"only-15-chars!!\"\n{stream}");
    for command in ["check-config", "serve"] {
        let (code, text) = glasscast(&short, &[command], &[]);
        assert_eq!(code, 2, "{command}: {text}");
        assert!(text.contains("auth.admin_token") && text.contains("16") && !text.contains("only-15"), "{text}");
    }
    let public = format!("[metrics]\nlisten = \"0.0.0.0:0\"\n{stream}");
    for command in ["check-config", "serve", "doctor"] {
        let (code, text) = glasscast(&public, &[command], &[]);
        assert_eq!(code, 2, "{command}: {text}");
        assert!(text.contains("metrics.listen") && text.contains("metrics.allow_public"), "{text}");
    }
    let allowed = format!("[metrics]\nlisten = \"0.0.0.0:0\"\nallow_public = true\n{stream}");
    let (code, text) = glasscast(&allowed, &["check-config"], &[]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("warning: metrics.allow_public = true"), "{text}");
    let (_, text) = glasscast(&allowed, &["doctor"], &[]);
    assert!(text.contains("warn  configuration: metrics.allow_public = true"), "{text}");
    let with_token = format!("[metrics]\nlisten = \"0.0.0.0:0\"\ntoken = \"a-metrics-token-0123\"\n{stream}");
    let (code, text) = glasscast(&with_token, &["check-config"], &[]);
    assert_eq!(code, 0, "{text}");
    assert!(!text.contains("warning"), "a token needs no warning: {text}");
}

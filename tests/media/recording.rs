//! Recording (issue 21, first part): `[streams.record]` writes the stream's own H.264 and Opus (no second
//! encoder) into fragmented MP4 files named by their UTC start time, a new one per `segment_s`, each
//! starting on a keyframe; ffprobe (FFmpeg, a reader that is not ours) finds both tracks and the expected
//! length in each; a stop finishes the last one. `/readyz`'s detail shows the recording.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::*;
use glasscast::config::{Config, RecordConfig, StreamConfig};
use serde_json::Value;

/// ffprobe's view of a file: its streams' codecs, its duration, and whether its first video frame is a
/// keyframe.
fn probe(path: &Path) -> (Vec<String>, f64, bool) {
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "stream=codec_name:format=duration", "-of", "json"])
        .arg(path)
        .output()
        .expect("ffprobe (FFmpeg; scripts/install-deps.sh --test installs it)");
    assert!(out.status.success(), "ffprobe refused {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("ffprobe json");
    let mut codecs: Vec<String> = v["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .filter_map(|s| s["codec_name"].as_str().map(str::to_owned))
        .collect();
    codecs.sort();
    let duration = v["format"]["duration"].as_str().and_then(|d| d.parse().ok()).unwrap_or(0.0);
    let first = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries", "packet=flags", "-read_intervals", "%+#1"])
        .args(["-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe");
    let keyframe_first = String::from_utf8_lossy(&first.stdout).trim_start().starts_with('K');
    (codecs, duration, keyframe_first)
}

/// GStreamer's discoverer on a file: its tracks' kinds (sorted) and its duration in seconds.
fn discover(path: &Path) -> (Vec<String>, f64) {
    let out = std::process::Command::new("gst-discoverer-1.0")
        .arg(path)
        .output()
        .expect("gst-discoverer-1.0 (gstreamer1.0-plugins-base-apps; scripts/install-deps.sh --test installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("Done discovering"), "discoverer refused {}: {text}", path.display());
    let mut kinds: Vec<String> = text
        .lines()
        .filter_map(|l| l.trim_start().split_once(':').map(|(k, _)| k.trim().to_owned()))
        .filter(|k| k.starts_with("video #") || k.starts_with("audio #"))
        .map(|k| k[..5].to_owned())
        .collect();
    kinds.sort();
    kinds.dedup();
    let duration = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Duration: "))
        .and_then(|d| {
            let mut p = d.split(':');
            let (h, m, s) =
                (p.next()?.parse::<f64>().ok()?, p.next()?.parse::<f64>().ok()?, p.next()?.parse::<f64>().ok()?);
            Some(h * 3600.0 + m * 60.0 + s)
        })
        .unwrap_or(0.0);
    (kinds, duration)
}

fn recordings(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(dir).map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect()).unwrap_or_default();
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_recorded_stream_leaves_segmented_mp4_files_with_both_tracks_that_start_on_keyframes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = Config::default();
    cfg.server.plain_http = true;
    let record = RecordConfig { enabled: true, dir: Some(dir.path().join("main")), segment_s: 5, ..Default::default() };
    cfg.streams = vec![StreamConfig { record, ..small_stream("main") }];
    let srv = start_with(cfg).await;
    let encoders = srv.server.sessions.health("main").await.expect("health").encoder;
    // The first file starts at the first keyframe after the recording does (up to a keyframe interval).
    tokio::time::sleep(Duration::from_secs(20)).await;
    let status = srv.server.sessions.readiness().await.streams[0].recording.clone().expect("recording status");
    assert_eq!(status.state, "recording", "{status:?}");
    assert!(status.files >= 3, "a file every 5 s: {status:?}");
    srv.server.sessions.stop_stream(&glasscast::ids::StreamName::parse("main").expect("name")).await.expect("stop");

    let files = recordings(&dir.path().join("main"));
    assert!(files.len() >= 3, "{files:?}");
    for (i, f) in files.iter().enumerate() {
        let name = f.file_name().and_then(|n| n.to_str()).expect("a name");
        assert!(
            name.len() == "20261203T134501Z.mp4".len() && name.ends_with("Z.mp4") && name.as_bytes()[8] == b'T',
            "{name}"
        );
        let (codecs, duration, keyframe_first) = probe(f);
        assert_eq!(codecs, ["h264", "opus"], "{name}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(f).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{name}: a recording is its owner's only");
        let (discovered, gst_duration) = discover(f);
        assert_eq!(discovered, ["audio", "video"], "{name}: GStreamer's discoverer finds both tracks");
        assert!((gst_duration - duration).abs() < 0.2, "{name}: discoverer {gst_duration} s, ffprobe {duration} s");
        assert!(keyframe_first, "{name} starts on a keyframe");
        // A new file starts at the first keyframe (every 2 s) after the recorder (which looks every second)
        // sees the file is 5 s old; the last is what was left.
        if i + 1 < files.len() {
            assert!((4.5..=8.5).contains(&duration), "{name}: {duration} s");
        } else {
            assert!(duration > 0.0, "{name}: {duration} s");
        }
    }
    // Named by their UTC start: each name is the previous one plus the previous file's length.
    let secs = |f: &PathBuf| {
        let n = f.file_name().and_then(|n| n.to_str()).expect("a name");
        let hms: u32 = n[9..15].parse().expect("HHMMSS");
        f64::from(hms / 10000 * 3600 + hms / 100 % 100 * 60 + hms % 100)
    };
    for w in files.windows(2) {
        let gap = (secs(&w[1]) - secs(&w[0])).rem_euclid(86_400.0);
        assert!((gap - probe(&w[0]).1).abs() <= 1.5, "{:?} then {:?}: {gap} s apart", w[0], w[1]);
    }
    let total: f64 = files.iter().map(|f| probe(f).1).sum();
    assert!(
        (17.0..=22.0).contains(&total),
        "about 20 s recorded in all, less the wait for a keyframe: {total} s over {files:?}"
    );
    assert_eq!(encoders, srv.server.sessions.health("main").await.expect("health").encoder, "no encoder added");
    srv.shutdown().await;
}

/// `[[streams]]` recording `main` (`bitrate_kbps` at 640x480) into `dir` with `record` (more keys).
fn recorded(dir: &Path, bitrate_kbps: u32, record: &str) -> String {
    format!(
        "[webrtc]\nmux_port = 0\n[[streams]]\nname = \"main\"\nwidth = 640\nheight = 480\nbitrate_kbps = {bitrate_kbps}\n\
         [streams.record]\nenabled = true\ndir = \"{}\"\n{record}\n",
        dir.display()
    )
}

/// `/readyz`'s `streams[0].recording`.
async fn recording_of(gc: &binary::Running) -> Value {
    gc.readyz().await["streams"][0]["recording"].clone()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Killed 6.5 s into a file (segments of 10 min), the process leaves a file that plays (both tracks) up to
/// within about a second of the kill: its fragments are of at most a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_recording_killed_mid_file_plays_to_within_about_a_second_of_the_kill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut gc = binary::serve(&recorded(dir.path(), 1000, "segment_s = 600"), &[]).await;
    let started = eventually_some(20, || async { recording_of(&gc).await["current_started_ms"].as_u64() }).await;
    let started = started.expect("a file starts");
    let file = recording_of(&gc).await["current_file"].as_str().expect("current file").to_owned();
    tokio::time::sleep(Duration::from_millis(6500)).await;
    let killed = now_ms();
    gc.kill_and_log();
    let (codecs, duration, keyframe_first) = probe(Path::new(&file));
    let lived = (killed - started) as f64 / 1000.0;
    eprintln!("killed {lived:.2} s into the file; it plays {duration:.2} s");
    assert_eq!(codecs, ["h264", "opus"]);
    assert!(keyframe_first);
    assert!((lived - 1.5..=lived + 0.3).contains(&duration), "lost {:.2} s at the kill", lived - duration);
}

/// A full filesystem (a small tmpfs mounted in the server's own mount namespace, mostly taken by a file
/// that is not glasscast's): the recording stops with the reason in `/readyz`, the stream keeps playing to a
/// viewer (webrtcbin), and once there is room again the recording resumes by itself in a new file.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_disk_stops_the_recording_not_the_stream_and_it_resumes_when_there_is_room() {
    let mnt = tempfile::tempdir().expect("tempdir");
    let d = mnt.path().display().to_string();
    let script = format!(
        "mount -t tmpfs -o size=8m,mode=0700 glasscast-test {d} && head -c 5767168 /dev/zero > {d}/filler.bin \
         && exec \"$0\" \"$@\""
    );
    let wrapper = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script.as_str()];
    let extra = recorded(mnt.path(), 3000, "segment_s = 2\nmin_free_mb = 0");
    let mut gc = binary::serve_under(&extra, &[], &wrapper).await;
    // The server's view of its tmpfs (the test's own is the empty directory under it).
    let inside = PathBuf::from(format!("/proc/{}/root{d}", gc.child.id()));
    let mut viewer = WebrtcbinViewer::new(96, "42e01f", true);
    viewer.connect_to(&gc.base, "main").await;
    assert!(viewer.gets_frames(10, 20).await, "the viewer plays");

    let full = eventually_some(90, || async {
        let r = recording_of(&gc).await;
        (r["state"] == "waiting").then_some(r)
    })
    .await
    .unwrap_or_else(|| panic!("the recording never stopped on the full disk: {}", gc.kill_and_log()));
    let reason = full["reason"].as_str().unwrap_or_default();
    assert!(reason.contains(&d) && reason.to_lowercase().contains("space"), "the reason says where and why: {full}");
    let ready = gc.readyz().await;
    assert_eq!(ready["ready"], true, "the server stays ready: {ready}");
    let seen = viewer.frames();
    assert!(viewer.gets_frames(seen + 30, 10).await, "the viewer keeps playing while the recording waits");
    let files = full["files"].as_u64().expect("files");

    std::fs::remove_file(inside.join("filler.bin")).expect("room again");
    let resumed = eventually_some(30, || async {
        let r = recording_of(&gc).await;
        (r["state"] == "recording" && r["files"].as_u64() > Some(files)).then_some(r)
    })
    .await;
    let log = gc.kill_and_log();
    assert!(resumed.is_some(), "recording resumes by itself: {log}");
    assert!(log.contains("recording waits") && log.contains("recording resumed"), "{log}");
}

/// A stream a WHIP publisher (webrtcbin) sends is recorded like any other: from the relayed H.264 and
/// Opus, not encoded again; the file, finished when the stream stops, has both tracks. Recording starts
/// while the publisher sends, and its keyframe interval is 100 s: the file begins at once all the same
/// (the recorder asks for a keyframe, which reaches the publisher as a PLI).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stream_relayed_from_a_whip_publisher_is_recorded_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let record = RecordConfig { dir: Some(dir.path().to_owned()), ..Default::default() };
    let srv = crate::common::admin::start_auth_with(Default::default(), |cfg| {
        let live = StreamConfig { source: glasscast::config::VideoSource::Whip, record, ..small_stream("live") };
        cfg.streams = vec![live];
    })
    .await;
    let mut publisher = crate::common::publisher::WebrtcbinPublisher::new("constrained-baseline", 320, 240);
    publisher.publish(&srv, "live", crate::common::admin::ADMIN).await;
    let frames = || async { srv.server.sessions.health("live").await.map_or(0, |h| h.frames) };
    assert!(eventually_async(20, || async { frames().await > 60 }).await, "the publisher's frames arrive");
    let live = glasscast::ids::StreamName::parse("live").expect("name");
    let keyframes = publisher.keyframes.load(std::sync::atomic::Ordering::Relaxed);
    srv.server.sessions.record(&live, true).await.expect("record");
    let written = eventually_some(30, || async {
        let r = srv.server.sessions.readiness().await.streams[0].recording.clone()?;
        (r.bytes_written > 100_000).then_some(r)
    })
    .await;
    let health = srv.server.sessions.health("live").await;
    let written = written.unwrap_or_else(|| {
        let made = publisher.keyframes.load(std::sync::atomic::Ordering::Relaxed);
        panic!("the relayed stream is not recorded: {health:?}; publisher keyframes {keyframes} -> {made}")
    });
    let file = PathBuf::from(written.current_file.expect("a file"));
    let asked = publisher.keyframes.load(std::sync::atomic::Ordering::Relaxed);
    assert!(asked > keyframes, "the publisher made a keyframe for the recording ({keyframes} before, {asked} after)");
    srv.server.sessions.stop_stream(&live).await.expect("stop");
    publisher.stop();
    let (codecs, duration, keyframe_first) = probe(&file);
    assert_eq!(codecs, ["h264", "opus"], "{}", file.display());
    assert!(keyframe_first && duration > 1.0, "{}: {duration} s", file.display());
    assert_eq!(srv.server.sessions.health("live").await.expect("health").encoder, "passthrough", "no encoder");
}

/// An encoder that fails three times (the chain restarts each time: `GLASSCAST_TEST_FAULT`) neither ends
/// nor corrupts the recording: it records on through the restarts in 4 s files, each plays with both
/// tracks from a keyframe, and each starts where the one before ended (the restarts' gaps are inside the
/// files, as time without pictures, not lost between them).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stream_whose_encoder_fails_and_restarts_records_on_in_files_that_play() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fault = [("GLASSCAST_TEST_FAULT", "encoder-error:3@150")];
    let mut gc = binary::serve(&recorded(dir.path(), 1000, "segment_s = 4"), &fault).await;
    let restarts = || async { gc.readyz().await["streams"][0]["restarts"].as_u64().unwrap_or(0) };
    assert!(eventually_async(60, || async { restarts().await >= 3 }).await, "three restarts:\n{}", gc.kill_and_log());
    // Two more hand-overs: a whole file begun after the last restart.
    let current = || async { recording_of(&gc).await["current_file"].as_str().map(str::to_owned) };
    for _ in 0..2 {
        let now = current().await;
        let moved = eventually_some(20, || async { current().await.filter(|f| Some(f) != now.as_ref()) }).await;
        assert!(moved.is_some(), "a next file: {}", recording_of(&gc).await);
    }
    let status = recording_of(&gc).await;
    assert_eq!(status["state"], "recording", "{status}");
    let log = gc.kill_and_log();
    let mut files = recordings(dir.path());
    files.pop(); // the one being written at the kill
    assert!(files.len() >= 4, "files through the restarts: {files:?}\n{log}");
    let mut previous: Option<(u64, f64)> = None;
    for file in &files {
        let name = file.file_name().and_then(|n| n.to_str()).expect("a name");
        let (codecs, duration, keyframe_first) = probe(file);
        eprintln!("{name}: {duration:.2} s");
        assert_eq!(codecs, ["h264", "opus"], "{name}");
        assert!(keyframe_first, "{name} starts on a keyframe");
        // 4 s, up to a keyframe interval and a second more, and a restart's time without keyframes.
        assert!((1.0..=10.0).contains(&duration), "{name}: {duration} s");
        let start = glasscast::recordings::started_at(name).expect("a glasscast name");
        if let Some((before, lasted)) = previous {
            let between = (start - before) as f64;
            assert!(
                (between - lasted).abs() <= 1.5,
                "{name} starts {between} s after the file before, which lasts {lasted:.2} s"
            );
        }
        previous = Some((start, duration));
    }
}

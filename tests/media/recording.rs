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
    let record = RecordConfig { enabled: true, dir: Some(dir.path().join("main")), segment_s: 2 };
    cfg.streams = vec![StreamConfig { record, ..small_stream("main") }];
    let srv = start_with(cfg).await;
    let encoders = srv.server.sessions.health("main").await.expect("health").encoder;
    // The first file starts at the first keyframe after the recording does (up to a keyframe interval).
    tokio::time::sleep(Duration::from_secs(8)).await;
    let status = srv.server.sessions.readiness().await.streams[0].recording.clone().expect("recording status");
    assert_eq!(status.state, "recording", "{status:?}");
    assert!(status.files >= 3, "a file every 2 s: {status:?}");
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
        assert!(keyframe_first, "{name} starts on a keyframe");
        // Full files hold about one segment (split at the first keyframe after 2 s); the last is what was left.
        if i + 1 < files.len() {
            assert!((1.5..=4.5).contains(&duration), "{name}: {duration} s");
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
        (5.0..=10.0).contains(&total),
        "about 8 s recorded in all, less the wait for a keyframe: {total} s over {files:?}"
    );
    assert_eq!(encoders, srv.server.sessions.health("main").await.expect("health").encoder, "no encoder added");
    srv.shutdown().await;
}

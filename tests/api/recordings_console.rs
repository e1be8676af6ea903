//! The admin console's recordings view (issue 21) in headless Chromium (`tests/browser/recordings.mjs`)
//! against a live server with access control on, its stream `main` recording 2 s files: the page lists
//! them, plays a finished one in its `<video>` through the file's signed link (Chromium fetches it with
//! Range requests: a 206), seeks into its middle and plays on from there with a picture; downloads it whole;
//! deletes another file (after its confirm dialog), which is gone from the disk and from the API; and stops
//! the recording, which the server's readiness then says. No console error, no CSP violation; screenshots
//! in artifacts/admin-recordings*.png. Firefox ESR plays and seeks one too.

use crate::common;

use common::admin::{ADMIN, start_auth_with};
use glasscast::config::{RecordConfig, Transport};
use serde_json::Value;

/// `GET /api/v1/streams/main/recordings` with the admin token: the files, oldest first.
async fn listed(srv: &common::TestServer) -> Vec<Value> {
    let r = srv
        .http
        .get(format!("{}/api/v1/streams/main/recordings", srv.base))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("list recordings");
    assert_eq!(r.status(), 200);
    serde_json::from_str(&r.text().await.expect("body")).expect("a JSON list")
}

fn names(files: &[Value]) -> Vec<&str> {
    files.iter().filter_map(|f| f["name"].as_str()).collect()
}

/// A server with access control on whose stream `main` records 2 s files, once three are listed.
async fn recording_server() -> common::TestServer {
    let srv = start_auth_with(Transport::Forward, |c| {
        c.streams[0].record = RecordConfig { enabled: true, segment_s: 2, ..Default::default() };
    })
    .await;
    let three = common::eventually_async(30, || async { listed(&srv).await.len() >= 3 }).await;
    assert!(three, "three files in 30 s: {:?}", listed(&srv).await);
    srv
}

fn num(v: &Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or_else(|| panic!("{k} in {v}"))
}

/// The seek landed in the middle of a file of a plausible length, and playback went on from there.
fn played_on_after_seeking(seek: &Value, after: &Value) {
    let (duration, target, landed) = (num(seek, "duration"), num(seek, "target"), num(seek, "landed"));
    let (time_after, frames_at_seek, frames_after) =
        (num(after, "currentTime"), num(seek, "frames"), num(after, "frames"));
    eprintln!(
        "duration {duration:.3} s, seek target {target:.3} s, landed at {landed:.3} s ({frames_at_seek} frames), \
         then {time_after:.3} s ({frames_after} frames)"
    );
    assert!((1.0..=6.5).contains(&duration), "a 2 s segment, up to a keyframe interval more: {seek}");
    assert!((target - duration / 2.0).abs() < 0.01, "{seek}");
    assert!((landed - target).abs() < 0.1, "the seek landed in the middle: {seek}");
    assert!(time_after > target && frames_after > frames_at_seek, "playback went on after the seek: {after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_console_plays_seeks_downloads_deletes_and_stops_a_recording() {
    let srv = recording_server().await;
    let dir = srv.state.path().join("recordings").join("main");
    let root = env!("CARGO_MANIFEST_DIR");
    std::fs::create_dir_all(format!("{root}/artifacts")).expect("artifacts dir");
    let mut node = tokio::process::Command::new("node");
    node.arg("tests/browser/recordings.mjs")
        .args([srv.base.as_str(), ADMIN, "main", &format!("{root}/artifacts")])
        .current_dir(root);
    let (report, exited_0, stderr) = common::script_report(&mut node).await;
    eprintln!("recordings console: {report}");
    assert!(exited_0 && report["ok"] == true, "{report}\n{stderr}");

    let played = report["file"].as_str().expect("the played file");
    let (play, seek, after) = (&report["play"], &report["seek"], &report["after"]);
    assert_eq!((play["width"].as_u64(), play["height"].as_u64()), (Some(320), Some(240)), "{play}");
    assert_eq!(play["file"], played, "the player plays the row's file: {play}");
    eprintln!("played {played}");
    played_on_after_seeking(seek, after);
    let luma = &report["luma"];
    assert!(num(luma, "max") - num(luma, "min") > 60.0, "the test pattern, not a blank picture: {luma}");

    // Chromium fetched the file through the link (no bearer header) with Range requests.
    let media = report["media"].as_array().expect("media responses");
    let ranged =
        media.iter().find(|m| m["file"] == played && m["status"] == 206).unwrap_or_else(|| panic!("{media:?}"));
    assert!(ranged["signed"] == true && ranged["bearer"] == false, "{ranged}");
    assert!(ranged["contentRange"].as_str().is_some_and(|c| c.starts_with("bytes ")), "{ranged}");
    let download = &report["download"];
    assert_eq!(download["name"], played, "{download}");
    let size = std::fs::metadata(dir.join(played)).expect("the played file").len();
    assert_eq!(download["bytes"].as_u64(), Some(size), "downloaded whole: {download}");

    let deleted = report["deleted"].as_str().expect("the deleted file");
    assert_ne!(deleted, played);
    assert!(report["dialog"]["message"].as_str().is_some_and(|m| m.contains(deleted)), "asked first: {report}");
    assert!(!dir.join(deleted).exists(), "{deleted} is gone from {}", dir.display());
    let files = listed(&srv).await;
    assert!(!names(&files).contains(&deleted), "{deleted} is gone from the list: {files:?}");
    assert!(names(&files).contains(&played), "{files:?}");
    assert!(files.iter().all(|f| f["writing"] == false), "nothing is written after the stop: {files:?}");

    let readiness = srv.server.sessions.readiness().await;
    let main = readiness.streams.iter().find(|s| s.name.as_str() == "main").expect("main");
    let recording = main.recording.as_ref().expect("main's recording state");
    assert_eq!(recording.state, "stopped", "stopped from the page: {recording:?}");
    srv.shutdown().await;
}

/// Firefox ESR (Pop!_OS's default browser; `tests/browser/recordings_firefox.mjs`) plays a recording from
/// the console and seeks into its middle: the file's H.264 and Opus through Firefox's own `<video>` path.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn firefox_plays_a_recording_from_the_console_and_seeks_into_its_middle() {
    let srv = recording_server().await;
    let root = env!("CARGO_MANIFEST_DIR");
    let mut node = tokio::process::Command::new("node");
    node.arg("tests/browser/recordings_firefox.mjs").args([srv.base.as_str(), ADMIN, "main"]).current_dir(root);
    let (report, exited_0, stderr) = common::script_report(&mut node).await;
    eprintln!("recordings in firefox: {report}");
    assert!(exited_0 && report["ok"] == true, "{report}\n{stderr}");
    let play = &report["play"];
    assert_eq!(play["file"], report["file"], "the player plays the row's file: {play}");
    assert_eq!((play["width"].as_u64(), play["height"].as_u64()), (Some(320), Some(240)), "{play}");
    assert_eq!(play["audio"], true, "the Opus track is there: {play}");
    played_on_after_seeking(&report["seek"], &report["after"]);
    srv.shutdown().await;
}

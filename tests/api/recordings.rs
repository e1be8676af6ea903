//! The admin API's recordings (issue 21) on a live server recording `main` in 2 s files, with files of
//! its own and others planted in its directory first: retention deletes glasscast's files older than
//! `keep_days` and the oldest over `max_size_mb`, never a file it did not name; the list is oldest first
//! and marks the file being written; a download answers range requests (206, Content-Range) and HEAD, the
//! whole file equals what is on disk; a link works without the header, for its file only; a delete takes a
//! finished file and refuses the one being written (409) and anything not glasscast's (404); stopping
//! finishes the file and starting again makes a new one; the metrics count it all.

use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::common;
use common::admin::{ADMIN, start_auth_with};
use glasscast::config::RecordConfig;
use serde_json::Value;

fn plant(dir: &Path, name: &str, bytes: usize, age_days: u64) {
    let path = dir.join(name);
    std::fs::write(&path, vec![7u8; bytes]).expect("plant");
    let when = SystemTime::now() - Duration::from_secs(age_days * 86_400);
    std::fs::File::options().write(true).open(&path).and_then(|f| f.set_modified(when)).expect("mtime");
}

/// RFC 9110 section 14: several ranges or another unit are ignored (the whole file, 200), `Bytes=` is
/// `bytes=`, and `If-Range` keeps the range only while the file is as the client last saw it.
async fn ranges_the_rfc_way(srv: &common::TestServer, url: &str, size: u64) {
    let get = |range: &str| srv.http.get(url).bearer_auth(ADMIN).header("range", range);
    for range in ["bytes=0-1,5-6", "items=0-5"] {
        let r = get(range).send().await.expect("ignored range");
        assert_eq!((r.status().as_u16(), r.bytes().await.expect("b").len() as u64), (200, size), "{range}");
    }
    let r = get("Bytes=0-9").send().await.expect("Bytes=");
    assert_eq!(r.status(), 206);
    // Once the file is a second old its Last-Modified is a strong validator.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let seen = r.headers()["last-modified"].to_str().expect("a date").to_owned();
    for (if_range, status, len) in
        [(seen.as_str(), 206, 10), ("Fri, 09 Aug 1996 14:21:40 GMT", 200, size), ("\"an-etag\"", 200, size)]
    {
        let r = get("bytes=0-9").header("if-range", if_range).send().await.expect("if-range");
        assert_eq!((r.status().as_u16(), r.bytes().await.expect("b").len() as u64), (status, len), "{if_range}");
    }
    let r = srv.http.head(url).bearer_auth(ADMIN).header("range", "bytes=0-9").send().await.expect("head");
    assert_eq!(r.status(), 200, "a HEAD ignores Range");
}

async fn list(srv: &common::TestServer) -> Vec<Value> {
    let r = srv.http.get(format!("{}/api/v1/streams/main/recordings", srv.base)).bearer_auth(ADMIN).send().await;
    let r = r.expect("list");
    assert_eq!(r.status(), 200);
    serde_json::from_str(&r.text().await.expect("body")).expect("json")
}

async fn problem(r: reqwest::Response, status: u16, kind: &str) {
    assert_eq!(r.status(), status);
    let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert_eq!(ct, "application/problem+json");
    let body: Value = serde_json::from_str(&r.text().await.expect("body")).expect("problem json");
    assert!(body["type"].as_str().is_some_and(|t| t.ends_with(kind)), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn recordings_are_kept_by_policy_listed_downloaded_in_ranges_linked_and_deleted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rec = dir.path().join("main");
    std::fs::create_dir(&rec).expect("dir");
    plant(&rec, "20200101T000000Z.mp4", 10_000, 400);
    plant(&rec, "20261001T000000Z.mp4", 700 << 10, 0);
    plant(&rec, "20261001T000010Z.mp4", 200 << 10, 0);
    plant(&rec, "notes.txt", 10_000, 400);
    plant(&rec, "20200101T000000Z.mkv", 10_000, 400);
    let record = RecordConfig {
        enabled: true,
        dir: Some(rec.clone()),
        segment_s: 2,
        keep_days: Some(30),
        max_size_mb: Some(1),
        min_free_mb: 0,
    };
    let srv = start_auth_with(Default::default(), |c| c.streams[0].record = record).await;
    let base = format!("{}/api/v1/streams/main", srv.base);

    // Retention: the old one by age, the oldest by size; what glasscast did not name stays.
    let files = common::eventually_some(30, || async {
        let l = list(&srv).await;
        (l.iter().filter(|f| f["writing"] == false && f["name"].as_str() > Some("2026120")).count() >= 2).then_some(l)
    })
    .await
    .expect("two finished files");
    assert!(!rec.join("20200101T000000Z.mp4").exists() && !rec.join("20261001T000000Z.mp4").exists());
    assert!(rec.join("notes.txt").exists() && rec.join("20200101T000000Z.mkv").exists());
    let names: Vec<&str> = files.iter().filter_map(|f| f["name"].as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "oldest first");
    assert!(!names.contains(&"notes.txt"));
    assert_eq!(files.iter().filter(|f| f["writing"] == true).count(), 1, "{files:?}");
    assert_eq!(files.last().expect("a file")["writing"], true, "the newest is being written");
    let total: u64 = files.iter().filter_map(|f| f["bytes"].as_u64()).sum();
    assert!(total <= (1 << 20) + 400_000, "kept near max_size_mb: {total}");

    // Download: ranges, HEAD, the whole file.
    let done = files.iter().find(|f| f["writing"] == false && f["name"].as_str() > Some("2026120")).expect("done");
    let name = done["name"].as_str().expect("name");
    let url = format!("{base}/recordings/{name}");
    let r = srv.http.get(&url).bearer_auth(ADMIN).header("range", "bytes=0-99").send().await.expect("range");
    assert_eq!(r.status(), 206);
    let size = std::fs::metadata(rec.join(name)).expect("on disk").len();
    assert_eq!(r.headers()["content-range"], format!("bytes 0-99/{size}").as_str());
    assert_eq!(r.headers()["content-type"], "video/mp4");
    assert_eq!(r.bytes().await.expect("body").len(), 100);
    let r = srv.http.get(&url).bearer_auth(ADMIN).header("range", format!("bytes={}-", size - 10)).send().await;
    assert_eq!(
        r.expect("tail").bytes().await.expect("tail").as_ref(),
        &std::fs::read(rec.join(name)).expect("f")[size as usize - 10..]
    );
    let r = srv.http.head(&url).bearer_auth(ADMIN).send().await.expect("head");
    assert_eq!(
        (r.status().as_u16(), r.headers()["content-length"].to_str().ok()),
        (200, Some(size.to_string().as_str()))
    );
    let whole = srv.http.get(&url).bearer_auth(ADMIN).send().await.expect("get").bytes().await.expect("bytes");
    assert_eq!(whole.as_ref(), std::fs::read(rec.join(name)).expect("file"), "the file as it is on disk");
    ranges_the_rfc_way(&srv, &url, size).await;
    // A range past the end, junk: 416 as a problem, with the file's size.
    for range in [format!("bytes={}-", size + 10), "bytes=abc".into()] {
        let r = srv.http.get(&url).header("range", &range).bearer_auth(ADMIN).send().await.expect("416");
        let content_range = r.headers().get("content-range").and_then(|v| v.to_str().ok()).map(str::to_owned);
        if range.ends_with('-') {
            assert_eq!(content_range, Some(format!("bytes */{size}")), "{range}");
        }
        problem(r, 416, "range-not-satisfiable").await;
    }
    problem(srv.http.get(&url).send().await.expect("no token"), 401, "unauthorized").await;

    // A link: no header needed, that file only, not forged.
    let r = srv.http.post(format!("{url}/link")).bearer_auth(ADMIN).send().await.expect("link");
    assert_eq!(r.status(), 201);
    let link: Value = serde_json::from_str(&r.text().await.expect("body")).expect("link json");
    let path = link["url"].as_str().expect("url");
    let r = srv.http.get(format!("{}{path}", srv.base)).send().await.expect("by link");
    assert_eq!((r.status().as_u16(), r.bytes().await.expect("b").len() as u64), (200, size));
    let other = files.iter().find(|f| f["name"] != name).and_then(|f| f["name"].as_str()).expect("another");
    let query = path.split_once('?').expect("query").1;
    let forged = srv.http.get(format!("{base}/recordings/{other}?{query}")).send().await.expect("forged");
    problem(forged, 403, "bad-link").await;
    let tampered = format!("{}{}", srv.base, path.replace("&sig=", "&sig=00"));
    problem(srv.http.get(tampered).send().await.expect("tampered"), 403, "bad-link").await;

    // Delete: a finished file; never the one being written, nor what is not glasscast's.
    let writing = files.iter().find(|f| f["writing"] == true).and_then(|f| f["name"].as_str()).expect("writing");
    let del = |n: &str| srv.http.delete(format!("{base}/recordings/{n}")).bearer_auth(ADMIN).send();
    problem(del(writing).await.expect("delete writing"), 409, "recording-in-use").await;
    assert_eq!(del(name).await.expect("delete").status(), 204);
    assert!(!rec.join(name).exists());
    problem(del(name).await.expect("again"), 404, "not-found").await;
    problem(del("notes.txt").await.expect("notes"), 404, "not-found").await;
    problem(del("..%2Fnotes.txt").await.expect("traversal"), 404, "not-found").await;
    assert!(rec.join("notes.txt").exists());
    let r = srv.http.get(format!("{}/api/v1/streams/nope/recordings", srv.base)).bearer_auth(ADMIN).send().await;
    problem(r.expect("unknown stream"), 404, "unknown-stream").await;

    // Stop finishes the file; start again makes a new one.
    let r = srv.http.delete(format!("{base}/record")).bearer_auth(ADMIN).send().await.expect("stop");
    assert_eq!(r.status(), 204);
    let status = srv.server.sessions.readiness().await.streams[0].recording.clone().expect("status");
    assert_eq!(status.state, "stopped", "{status:?}");
    let stopped = list(&srv).await;
    assert!(stopped.iter().all(|f| f["writing"] == false), "{stopped:?}");
    let r = srv.http.post(format!("{base}/record")).bearer_auth(ADMIN).send().await.expect("start");
    assert_eq!(r.status(), 204);
    let newer = common::eventually_some(15, || async {
        let l = list(&srv).await;
        l.iter().find(|f| f["writing"] == true && !stopped.iter().any(|s| s["name"] == f["name"])).cloned()
    })
    .await;
    assert!(newer.is_some(), "a new file after the start");

    let status = srv.server.sessions.readiness().await.streams[0].recording.clone().expect("status");
    assert!(status.files_deleted >= 2 && status.bytes_written > 100_000 && status.files >= 3, "{status:?}");
    let metrics = common::metrics_text(&srv).await;
    for wanted in [
        "glasscast_recording_state{stream=\"main\",state=\"recording\"} 1",
        "glasscast_recording_files_deleted_total{stream=\"main\",reason=\"age\"} 1",
        "glasscast_recording_files_deleted_total{stream=\"main\",reason=\"api\"} 1",
        "glasscast_recording_files_deleted_total{stream=\"main\",reason=\"size\"}",
        "glasscast_recording_bytes_total{stream=\"main\"}",
    ] {
        assert!(metrics.lines().any(|l| l.starts_with(wanted)), "{wanted} in {metrics}");
    }
}

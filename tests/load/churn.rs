//! Churn (issue 17): sessions that come and go leave nothing behind and cost the steady viewers nothing.
//! Against the real binary (its own fds and threads, read from /proc): four webrtcbin viewers watch while
//! 30 more connect, decode and DELETE one after another and 300 more POST and DELETE without ever
//! connecting (a page closed at once). Meanwhile the steady viewers decode every frame the encoder makes;
//! afterwards the server's open fds and threads come back to where they were before the churn. The full
//! size (1000 cycles while 20 viewers watch, stalls timed, RSS per session) is `bench/churn.mjs`.

use crate::common;

use std::time::Duration;

use common::WebrtcbinViewer;
use common::binary::Running;

/// The server's open fds and threads.
fn footprint(gc: &Running) -> (usize, usize) {
    let pid = gc.child.id();
    let count = |dir: &str| std::fs::read_dir(format!("/proc/{pid}/{dir}")).map_or(0, |d| d.count());
    (count("fd"), count("task"))
}

async fn delete(url: &str) -> u16 {
    reqwest::Client::new().delete(url).send().await.map_or(0, |r| r.status().as_u16())
}

/// POSTs an offer that never connects, then DELETEs the session; both statuses (and the body of a
/// refusal).
async fn post_and_leave(base: &str, offer: &str) -> (u16, u16, String) {
    let resp = reqwest::Client::new()
        .post(format!("{base}/whep/main"))
        .header("content-type", "application/sdp")
        .body(offer.to_owned())
        .send()
        .await
        .expect("POST");
    let status = resp.status().as_u16();
    let Some(location) = resp.headers().get("location").and_then(|l| l.to_str().ok()).map(str::to_owned) else {
        return (status, 0, resp.text().await.unwrap_or_default());
    };
    (status, delete(&format!("{base}{location}")).await, String::new())
}

async fn encoded(gc: &Running) -> u64 {
    gc.readyz().await["streams"][0]["frames"].as_u64().expect("frames in /readyz")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sessions_that_come_and_go_leave_nothing_behind_and_the_steady_viewers_lose_nothing() {
    let extra = "[webrtc]\nmux_port = 0\n[[streams]]\nname = \"main\"\nwidth = 320\nheight = 240\nmax_viewers = 50\n";
    let gc = common::binary::serve(extra, &[]).await;
    let mut steady = Vec::new();
    for pt in [96, 97, 98, 99] {
        let mut v = WebrtcbinViewer::new(pt, "42e01f", true);
        v.connect_to(&gc.base, "main").await;
        steady.push(v);
    }
    for v in &steady {
        assert!(v.gets_frames(10, 20).await, "every steady viewer plays before the churn");
    }
    // One full session first, so one-time allocations (the first DTLS context, thread pools) are paid.
    let mut warm = WebrtcbinViewer::new(100, "42e01f", true);
    warm.connect_to(&gc.base, "main").await;
    assert!(warm.gets_frames(5, 20).await);
    assert_eq!(delete(warm.location.as_deref().expect("location")).await, 200);
    drop(warm);
    tokio::time::sleep(Duration::from_secs(12)).await; // tokio's idle blocking threads linger 10 s
    let before = footprint(&gc);
    let (frames_before, made_before) = (steady.iter().map(|v| v.frames()).collect::<Vec<_>>(), encoded(&gc).await);

    for i in 0..30u8 {
        let mut v = WebrtcbinViewer::new(100 + i % 20, "42e01f", i % 2 == 0);
        // Admission control may ask a join to come back later while the machine is busy (two cores, five
        // WebRTC clients and the encoder): a client waits and retries, as the player does.
        v.connect_to_retrying(&gc.base, "main", 5).await;
        assert!(v.gets_frames(3, 20).await, "churn viewer {i} played");
        assert_eq!(delete(v.location.as_deref().expect("location")).await, 200, "churn viewer {i} left");
    }
    let offer = WebrtcbinViewer::new(96, "42e01f", true).offer().await;
    for i in 0..300 {
        let mut outcome = post_and_leave(&gc.base, &offer).await;
        // The same for these joins.
        for _ in 0..5 {
            if outcome.0 != 503 {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            outcome = post_and_leave(&gc.base, &offer).await;
        }
        let (posted, deleted, why) = outcome;
        assert_eq!((posted, deleted), (201, 200), "half-open session {i}: {why}");
    }
    let made = encoded(&gc).await - made_before;
    for (v, b) in steady.iter().zip(frames_before) {
        let got = v.frames() - b;
        // Read a moment apart from the encoder's count: a few frames are on their way.
        assert!(made > 100 && got + 10 >= made, "a steady viewer lost frames to the churn: {got} of {made}");
    }
    let mut after = footprint(&gc);
    for _ in 0..30 {
        if after.0 <= before.0 && after.1 <= before.1 {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        after = footprint(&gc);
    }
    eprintln!("fds, threads before the churn {before:?}, after {after:?}; {made} frames meanwhile");
    assert!(after.0 <= before.0, "fds left behind: {before:?} -> {after:?}");
    assert!(after.1 <= before.1, "threads left behind: {before:?} -> {after:?}");
    let viewers = gc.readyz().await["streams"][0]["encodings"][0]["viewers"].clone();
    assert_eq!(viewers, 4, "only the steady viewers are left");
}

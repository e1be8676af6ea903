//! Audio and video stay in sync: the test source with `sync_marks` flashes white and starts a beep at every
//! second of its one pipeline clock; the webrtcbin viewer must get each beep within 45 ms of its flash
//! (ITU-R BT.1359's detectability threshold for sound ahead of picture), at an offset that does not move.

use crate::common;

use common::*;
use glasscast::config::{StreamConfig, Transport};

on_both_transports!(flashes_and_beeps_arrive_together, arrive_together);

async fn arrive_together(transport: Transport) {
    let srv = start_on(transport, vec![StreamConfig { sync_marks: true, ..small_stream("main") }]).await;
    let mut v = WebrtcbinViewer::new(96, "42e01f", true);
    v.connect(&srv, "main").await;
    assert!(v.gets_frames(10, 20).await, "plays");
    let offsets = || {
        let video = v.video_marks.lock().expect("lock").clone();
        let audio = v.audio_onsets.lock().expect("lock").clone();
        analyze::sync_offsets_ms(&video, &audio)
    };
    eventually(10, || offsets().len() >= 5).await;
    let offsets = offsets();
    eprintln!("{transport:?}: audio minus video at each flash, ms: {offsets:?}");
    assert!(offsets.len() >= 5, "too few flash/beep pairs: {offsets:?}");
    // ITU-R BT.1359: sound more than 45 ms before its picture is detectable. Measured here: audio 8-9 ms
    // early (forward) and 11-19 ms early (webrtcbin), each run steady to within 1 ms (docs/performance.md).
    // Before videorate stopped holding each frame for one interval, it was 36-74 ms.
    let mut sorted = offsets.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    assert!(median.abs() <= 45.0, "audio and video are {median:.1} ms apart (median): {offsets:?}");
    assert!(sorted[sorted.len() - 1] - sorted[0] < 20.0, "the offset moves: {offsets:?}");
    srv.shutdown().await;
}

//! Interop with a WHEP client glasscast does not implement: gst-plugins-rs `whepclientsrc` (offers H.264
//! 42e016 without level-asymmetry-allowed, does its own HTTP). It must decode video of the configured size and
//! Opus audio, and its DELETE on stop must end the session, on both transports.

use crate::common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use common::*;
use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;

on_both_transports!(whepclientsrc_plays_video_and_audio_and_its_delete_ends_the_session, whepclientsrc_plays);

async fn whepclientsrc_plays(transport: glasscast::config::Transport) {
    let srv = start_on(transport, vec![small_stream("main")]).await;
    gstrswebrtc::plugin_register_static().expect("register gst-plugins-rs webrtc");

    let pipeline = gst::Pipeline::new();
    let src = gst::ElementFactory::make("whepclientsrc").build().expect("whepclientsrc");
    src.property::<glib::Object>("signaller").set_property("whep-endpoint", format!("{}/whep/main", srv.base));
    pipeline.add(&src).expect("add");

    let frames = Arc::new(AtomicU64::new(0));
    let audio = Arc::new(AtomicU64::new(0));
    let size = Arc::new(Mutex::new(None::<(i32, i32)>));
    count_decoded_pads(&pipeline, &src, &frames, &audio, &size);
    pipeline.set_state(gst::State::Playing).expect("playing");

    assert!(eventually(30, || frames.load(Ordering::Relaxed) >= 30).await, "whepclientsrc decoded no video");
    assert_eq!(*size.lock().expect("lock"), Some((320, 240)));
    assert!(eventually(10, || audio.load(Ordering::Relaxed) >= 10).await, "whepclientsrc decoded no audio");
    assert_eq!(srv.server.sessions.streams().await[0].viewers, 1);

    // whepclientsrc's stop blocks on its own runtime: not from inside ours.
    let p = pipeline.clone();
    tokio::task::spawn_blocking(move || p.set_state(gst::State::Null)).await.expect("join").expect("null");
    let ended = eventually_async(5, || async { srv.server.sessions.streams().await[0].viewers == 0 }).await;
    assert!(ended, "whepclientsrc's DELETE must end its session");
    srv.shutdown().await;
}

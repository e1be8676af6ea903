//! A track's tap on a stream's encoded tee, for a consumer that runs its own pipeline (a push, a
//! recording): a leaky queue and an appsink on the stream's pipeline, whose samples (timestamps made running
//! time) go to the consumer's current appsrc, if any. The queue keeps a slow or dead consumer from stalling
//! the stream's viewers.
//!
//! ```text
//!   {tee} - {queue leaky 300 ms} - {appsink}  ==> samples ==> the consumer's {appsrc}
//! ```

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

const QUEUE_TIME: Duration = Duration::from_millis(300);

/// One track's branch on the stream pipeline, and the current attempt's appsrc it feeds.
pub(in crate::media) struct Tap {
    pub video: bool,
    pub tee: gst::Element,
    pub tee_pad: gst::Pad,
    pub queue: gst::Element,
    pub sink: gst::Element,
    pub feed: Arc<Mutex<Option<gst_app::AppSrc>>>,
}

pub(in crate::media) fn add_tap(
    pipeline: &gst::Pipeline,
    tee: &gst::Element,
    video: bool,
    id: &str,
) -> anyhow::Result<Tap> {
    let queue = crate::media::leaky_queue(0, QUEUE_TIME)?;
    let feed: Arc<Mutex<Option<gst_app::AppSrc>>> = Arc::default();
    let to = Arc::clone(&feed);
    let callbacks = gst_app::AppSinkCallbacks::builder()
        .new_sample(move |sink| {
            let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
            if let (Some(src), Some(sample)) = (to.lock().expect("egress feed lock").as_ref(), retimed(&sample)) {
                // Never blocks (leaky appsrc); a stopped attempt's flushing is no concern of the stream's.
                let _ = src.push_sample(&sample);
            }
            Ok(gst::FlowSuccess::Ok)
        })
        .build();
    let name = format!("{id}-{}", if video { "video" } else { "audio" });
    let sink = gst_app::AppSink::builder().name(name).sync(false).async_(false).callbacks(callbacks).build();
    let sink = sink.upcast::<gst::Element>();
    pipeline.add_many([&queue, &sink]).context("adding the tap")?;
    queue.link(&sink).expect("a queue links to an appsink");
    for e in [&sink, &queue] {
        if let Err(err) = e.sync_state_with_parent() {
            let _ = pipeline.remove_many([&queue, &sink]);
            bail!("starting the tap: {err}");
        }
    }
    let tee_pad = tee.request_pad_simple("src_%u").expect("a tee gives source pads");
    tee_pad.link(&queue.static_pad("sink").expect("a queue has a sink pad")).expect("a queue takes any caps");
    Ok(Tap { video, tee: tee.clone(), tee_pad, queue, sink, feed })
}

pub(in crate::media) fn remove_tap(pipeline: &gst::Pipeline, tap: &Tap) {
    *tap.feed.lock().expect("egress feed lock") = None;
    if let Some(peer) = tap.tee_pad.peer() {
        let _ = tap.tee_pad.unlink(&peer);
    }
    tap.tee.release_request_pad(&tap.tee_pad);
    let _ = tap.queue.set_state(gst::State::Null);
    let _ = tap.sink.set_state(gst::State::Null);
    let _ = pipeline.remove_many([&tap.queue, &tap.sink]);
}

/// The sample with its timestamps as the stream's running time (the egress pipeline shares the stream's
/// clock and base time, so the two mean the same instant).
fn retimed(sample: &gst::Sample) -> Option<gst::Sample> {
    let mut buffer = sample.buffer_owned()?;
    if let Some(segment) = sample.segment().and_then(|s| s.downcast_ref::<gst::ClockTime>()) {
        let b = buffer.make_mut();
        let (pts, dts) =
            (b.pts().and_then(|t| segment.to_running_time(t)), b.dts().and_then(|t| segment.to_running_time(t)));
        b.set_pts(pts);
        b.set_dts(dts);
    }
    let builder = gst::Sample::builder().buffer(&buffer);
    Some(match sample.caps_owned() {
        Some(caps) => builder.caps(&caps).build(),
        None => builder.build(),
    })
}

/// Asks the shared encoder for a keyframe with SPS/PPS, up the video branch (the stream's limiter applies).
pub(in crate::media) fn request_keyframe(taps: &[Tap]) {
    if let Some(pad) = taps.iter().find(|t| t.video).and_then(|t| t.queue.static_pad("sink")) {
        pad.push_event(crate::media::encode::keyframes::request_event());
    }
}

/// The consumer's end of a tap: a live appsrc in time format that never blocks the tap, dropping its
/// oldest buffers beyond `max_buffers`.
pub(in crate::media) fn feed_src(max_buffers: u64) -> gst_app::AppSrc {
    gst_app::AppSrc::builder()
        .is_live(true)
        .format(gst::Format::Time)
        .block(false)
        .max_buffers(max_buffers)
        .leaky_type(gst_app::AppLeakyType::Downstream)
        .build()
}

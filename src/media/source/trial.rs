//! Trial runs: a throwaway pipeline that shows whether a chain of elements really produces buffers. The
//! encoder probe and `glasscast doctor` use it (an element that exists is not an element that works).
//!
//! ```text
//! {elements...} - {fakesink}   until `want` buffers reach the sink, an error, EOS, or the timeout
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::Context;
use gstreamer as gst;
use gstreamer::prelude::*;

/// Runs `elements` (linked in order) into a fakesink until `want` buffers arrive. `Ok` with the caps of
/// what arrived; `Err` with the first error GStreamer reported, or what went wrong otherwise.
pub fn first_buffers(elements: Vec<gst::Element>, want: u32, timeout: Duration) -> Result<gst::Caps, String> {
    let run = || -> anyhow::Result<Result<gst::Caps, String>> {
        let pipeline = gst::Pipeline::builder().name("trial").build();
        let sink = gst::ElementFactory::make("fakesink").property("sync", false).build()?;
        let mut all = elements;
        all.push(sink.clone());
        pipeline.add_many(&all)?;
        gst::Element::link_many(&all)?;
        let seen = Arc::new(AtomicU32::new(0));
        let counter = seen.clone();
        let bus = pipeline.bus().context("a pipeline has a bus")?;
        let poster = bus.clone();
        let pad = sink.static_pad("sink").context("fakesink has a sink pad")?;
        pad.add_probe(gst::PadProbeType::BUFFER, move |pad, _| {
            if counter.fetch_add(1, Ordering::Relaxed) + 1 == want {
                let caps = pad.current_caps().unwrap_or_else(gst::Caps::new_any);
                let s = gst::Structure::builder("trial-done").field("caps", caps).build();
                let _ = poster.post(gst::message::Application::new(s));
            }
            gst::PadProbeReturn::Ok
        });
        let started = pipeline.set_state(gst::State::Playing);
        let msg = bus.timed_pop_filtered(
            gst::ClockTime::from_nseconds(timeout.as_nanos() as u64),
            &[gst::MessageType::Eos, gst::MessageType::Error, gst::MessageType::Application],
        );
        let _ = pipeline.set_state(gst::State::Null);
        let got = seen.load(Ordering::Relaxed);
        Ok(match (started, msg.as_ref().map(|m| m.view())) {
            (_, Some(gst::MessageView::Application(a))) => {
                Ok(a.structure().and_then(|s| s.get::<gst::Caps>("caps").ok()).unwrap_or_else(gst::Caps::new_any))
            }
            (_, Some(gst::MessageView::Error(e))) => Err(format!(
                "{}{}",
                e.error(),
                e.debug().map(|d| format!(" ({})", d.lines().next().unwrap_or_default())).unwrap_or_default()
            )),
            (_, Some(_)) => Err(format!("ended after {got} of {want} buffers")),
            (Err(_), None) => Err("failed to start (state change refused)".to_owned()),
            (Ok(_), None) => Err(format!("{got} of {want} buffers within {} s", timeout.as_secs())),
        })
    };
    run().unwrap_or_else(|e| Err(format!("could not build the trial pipeline: {e:#}")))
}

/// `WxH@fps FORMAT` (video) or `RATE Hz xCH FORMAT` (audio) from caps, for messages.
pub fn describe(caps: &gst::Caps) -> String {
    let Some(s) = caps.structure(0) else { return "unknown format".into() };
    if s.name().starts_with("video/") {
        let w = s.get::<i32>("width").unwrap_or_default();
        let h = s.get::<i32>("height").unwrap_or_default();
        let fps = s.get::<gst::Fraction>("framerate").map(|f| format!("@{}/{}", f.numer(), f.denom()));
        let format = s.get::<String>("format").unwrap_or_else(|_| s.name().to_string());
        format!("{w}x{h}{} {format}", fps.unwrap_or_default())
    } else if s.name().starts_with("audio/") {
        let rate = s.get::<i32>("rate").unwrap_or_default();
        let ch = s.get::<i32>("channels").unwrap_or_default();
        format!("{rate} Hz x{ch} {}", s.get::<String>("format").unwrap_or_default())
    } else {
        s.name().to_string()
    }
}

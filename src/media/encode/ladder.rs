//! A stream's quality ladder: the lower rungs, each one more encoding of the same raw picture, made once
//! for every viewer on it and only while one is (or is about to be). The forwarding transport moves each
//! viewer between the rungs by its own link ([`crate::media::forward`]'s switching); the top rung is the
//! stream's own encoding. Per lower rung:
//!
//! ```text
//! {tee raw} - {valve drop while nobody watches} - {queue leaky 1} - (pace fps) {videoscale}
//!           - {capsfilter I420 WxH} - {capssetter framerate} - {encoder (the stream's kind)} - {capsfilter h264}
//!           - {rtph264pay pt=96, the top's timestamp offset} - {appsink} --> mux thread
//! ```
//!
//! The raw tee sits before the top encoder's own leaky queue, so no rung waits for another. Every rung's
//! payloader has the top's RTP timestamp offset, so a frame has the same timestamp on every rung and a
//! viewer switched between them sees one clock. A rung's valve opens when its first viewer comes (or is
//! about to: a switch asks for a keyframe of the rung it goes to) and closes when its last leaves; a
//! closed rung costs nothing. Keyframe requests go upstream from the payloader's sink pad, rate-limited
//! like the top's ([`super::keyframes`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use anyhow::Context;
use gstreamer as gst;
use gstreamer::prelude::*;

use super::encoder::{EncodeParams, Encoder, build_encoder};
use super::keyframes::{self, KeyframeCounters};
use super::meter::FrameMeter;
use crate::config::Rung;

/// One rung of a stream's ladder as the mux sees it: its bitrate, who watches it, its valve and where its
/// keyframes are asked for. The top rung has no valve (it always runs: recordings and pushes use it).
pub struct RungGate {
    pub rung: Rung,
    valve: Option<gst::Element>,
    keyframe_pad: gst::Pad,
    /// Viewers on the rung or switching to it, over every mux thread.
    viewers: AtomicUsize,
    /// Viewers switched onto it from a lower rung, and from a higher one.
    switches_up: AtomicU64,
    switches_down: AtomicU64,
    keyframes: Arc<KeyframeCounters>,
    meter: Option<Arc<FrameMeter>>,
}

/// What a rung did so far (readiness, metrics).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RungStatus {
    pub rung: Rung,
    pub viewers: usize,
    /// Its encoder runs (the top: always).
    pub running: bool,
    /// Viewers switched onto it so far, from a lower rung and from a higher one.
    pub switches_up: u64,
    pub switches_down: u64,
    pub fps: Option<f64>,
    pub keyframes_requested: u64,
    pub keyframes_sent: u64,
}

impl RungGate {
    /// The top rung: the stream's own encoding, its keyframes asked for at `keyframe_pad`.
    pub fn top(rung: Rung, keyframe_pad: gst::Pad, keyframes: Arc<KeyframeCounters>) -> Arc<Self> {
        Self::new(rung, None, keyframe_pad, keyframes, None)
    }

    fn new(
        rung: Rung,
        valve: Option<gst::Element>,
        keyframe_pad: gst::Pad,
        keyframes: Arc<KeyframeCounters>,
        meter: Option<Arc<FrameMeter>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            rung,
            valve,
            keyframe_pad,
            viewers: AtomicUsize::new(0),
            switches_up: AtomicU64::new(0),
            switches_down: AtomicU64::new(0),
            keyframes,
            meter,
        })
    }

    /// A viewer comes to this rung (or is switching to it): the first opens the valve.
    pub fn join(&self) {
        if self.viewers.fetch_add(1, Ordering::Relaxed) == 0
            && let Some(valve) = &self.valve
        {
            valve.set_property("drop", false);
        }
    }

    /// A viewer left it (or gave up switching to it): the last closes the valve.
    pub fn leave(&self) {
        let was = self.viewers.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1));
        if was == Ok(1)
            && let Some(valve) = &self.valve
        {
            valve.set_property("drop", true);
        }
    }

    /// A viewer's switch onto this rung completed (`up`: from a lower one).
    pub fn switched_to(&self, up: bool) {
        let counter = if up { &self.switches_up } else { &self.switches_down };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Asks the rung's encoder for a keyframe (rate-limited).
    pub fn request_keyframe(&self) {
        self.keyframe_pad.push_event(keyframes::request_event());
    }

    pub fn status(&self) -> RungStatus {
        let k = &self.keyframes;
        RungStatus {
            rung: self.rung,
            viewers: self.viewers.load(Ordering::Relaxed),
            running: self.valve.as_ref().is_none_or(|v| !v.property::<bool>("drop")),
            switches_up: self.switches_up.load(Ordering::Relaxed),
            switches_down: self.switches_down.load(Ordering::Relaxed),
            fps: self.meter.as_ref().and_then(|m| m.fps()),
            keyframes_requested: k.requested.load(Ordering::Relaxed),
            keyframes_sent: k.sent.load(Ordering::Relaxed),
        }
    }
}

/// A lower rung's branch, built: its gate, and the payloader's src pad (for the mux's appsink).
pub struct RungBranch {
    pub gate: Arc<RungGate>,
    pub rtp_src: gst::Pad,
}

/// Builds the lower rung `rung` (`index` >= 1) of a stream into `pipeline` from `raw_tee`, encoded with
/// `encoder` (the stream's kind) and payloaded with `ts_offset`; its valve starts closed.
pub fn build_rung(
    pipeline: &gst::Pipeline,
    raw_tee: &gst::Element,
    (index, rung): (usize, Rung),
    encoder: Encoder,
    keyframe_interval_s: u32,
    ts_offset: u32,
) -> anyhow::Result<RungBranch> {
    let valve = gst::ElementFactory::make("valve").property("drop", true).build().context("creating valve")?;
    let queue = crate::media::leaky_queue(1, std::time::Duration::ZERO)?;
    let sized = crate::media::source::scale_stating_rate(rung.width, rung.height, rung.fps)?;
    crate::media::source::pace::limit(&sized[0].static_pad("sink").expect("videoscale has a sink pad"), rung.fps);
    let params = EncodeParams { bitrate_kbps: rung.bitrate_kbps, fps: rung.fps, keyframe_interval_s };
    let payloader = super::encoder::h264_payloader(crate::media::forward::VIDEO_PT)?;
    payloader.set_property("timestamp-offset", ts_offset);
    let mut chain = vec![valve.clone(), queue];
    chain.extend(sized);
    chain.extend(build_encoder(encoder, &params)?);
    chain.push(payloader.clone());
    pipeline.add_many(&chain)?;
    gst::Element::link_many(&chain).with_context(|| format!("linking rung {index}"))?;
    let tee_pad = raw_tee.request_pad_simple("src_%u").context("requesting a raw tee pad")?;
    tee_pad.link(&valve.static_pad("sink").expect("valve has a sink pad")).context("linking the raw tee")?;
    let keyframe_pad = payloader.static_pad("sink").expect("rtph264pay has a sink pad");
    let keyframes = keyframes::limit(&keyframe_pad);
    let meter = FrameMeter::new(std::time::Instant::now());
    meter.attach(&keyframe_pad);
    let gate = RungGate::new(rung, Some(valve), keyframe_pad, keyframes, Some(meter));
    Ok(RungBranch { gate, rtp_src: payloader.static_pad("src").expect("rtph264pay has a src pad") })
}

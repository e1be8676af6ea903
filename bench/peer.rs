//! bench/peer: the same latency-probe test source served by another WebRTC server, for comparison runs:
//! gst-plugins-rs `whepserversink` (webrtcsink: one encoder per viewer, its own WHEP server on warp).
//!
//!   cargo run --release --example peer -- [--port 18700] [--mode 1280x720@60] [--bitrate 2500]
//!
//! ```text
//! {glasscast's test source + conform + latency probe + queue leaky 1} - {whepserversink video_0}
//! {audiotestsrc 440 Hz} - {audioconvert} - {whepserversink audio_0}
//! ```
//! WHEP endpoint: http://127.0.0.1:PORT/whep/endpoint. Congestion control is off and the bitrate fixed, like
//! glasscast's. Runs until killed (SIGTERM/SIGINT) or the pipeline fails. bench/latency.mjs --peer drives it.

#[path = "common.rs"]
mod common;

use std::time::Duration;

use clap::Parser;

use glasscast::config::StreamConfig;
use glasscast::media::encoded_video_chain;
use gstreamer as gst;
use gstreamer::prelude::*;

/// The probe source on gst-plugins-rs whepserversink, for comparison runs.
#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 18700)]
    port: u16,
    /// WxH@FPS
    #[arg(long, default_value = "1280x720@60")]
    mode: String,
    /// kbit/s
    #[arg(long, default_value_t = 2500)]
    bitrate: u32,
}

fn main() -> anyhow::Result<()> {
    let Args { port, mode, bitrate } = Args::parse();
    let (width, height, fps) = common::parse_mode(&mode).map_err(anyhow::Error::msg)?;
    let cfg = StreamConfig {
        width,
        height,
        fps,
        bitrate_kbps: bitrate,
        latency_probe: true,
        ..StreamConfig::test_pattern("peer")
    };

    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    gst::init()?;
    gstrswebrtc::plugin_register_static()?;

    let pipeline = gst::Pipeline::new();
    let sink = gst::ElementFactory::make("whepserversink").build()?;
    sink.set_property_from_str("congestion-control", "disabled");
    sink.set_property("start-bitrate", bitrate * 1000);
    sink.set_property("video-caps", gst::Caps::builder("video/x-h264").build());
    sink.set_property("stun-server", None::<String>);
    let signaller = sink
        .dynamic_cast_ref::<gst::ChildProxy>()
        .and_then(|c| c.child_by_name("signaller"))
        .ok_or_else(|| anyhow::anyhow!("whepserversink has no signaller"))?;
    signaller.set_property("host-addr", Some(format!("http://127.0.0.1:{port}/")));
    pipeline.add(&sink)?;

    let video = encoded_video_chain(&cfg, None)?;
    pipeline.add_many(&video)?;
    gst::Element::link_many(&video)?;
    let vpad = sink.request_pad_simple("video_%u").ok_or_else(|| anyhow::anyhow!("no video pad"))?;
    video.last().expect("chain").static_pad("src").expect("src").link(&vpad)?;

    let asrc =
        gst::ElementFactory::make("audiotestsrc").property("is-live", true).property("volume", 0.2f64).build()?;
    let aconv = gst::ElementFactory::make("audioconvert").build()?;
    pipeline.add_many([&asrc, &aconv])?;
    asrc.link(&aconv)?;
    let apad = sink.request_pad_simple("audio_%u").ok_or_else(|| anyhow::anyhow!("no audio pad"))?;
    aconv.static_pad("src").expect("src").link(&apad)?;

    pipeline.set_state(gst::State::Playing)?;
    eprintln!("peer: whepserversink on http://127.0.0.1:{port}/whep/endpoint ({mode}, {bitrate} kbit/s)");
    let bus = pipeline.bus().expect("pipeline bus");
    loop {
        if let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(200)) {
            match msg.view() {
                gst::MessageView::Error(e) => {
                    let _ = pipeline.set_state(gst::State::Null);
                    anyhow::bail!("pipeline error from {:?}: {}", e.src().map(|s| s.path_string()), e.error());
                }
                gst::MessageView::Latency(_) => {
                    let _ = pipeline.recalculate_latency();
                }
                _ => {}
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

//! bench/conform: how long the conforming chain (size, rate, format) holds each frame of a variable-rate
//! source such as the portal's PipeWire stream (framerate 0/1), and the rate it passes on.
//!
//!   cargo run --release --example conform -- [--seconds 10] [--fps 30]
//!
//! A live `appsrc` (framerate 0/1, timestamps from the clock, as `pipewiresrc do-timestamp=true` makes
//! them) is fed 320x240 I420 frames in two patterns: `moving` (a 60 Hz screen, 0-2 ms of jitter) and `still`
//! (keepalive repeats every 1000/fps ms, 0-3 ms of timer lateness). Each pattern goes through
//! - `videorate`: `{videoconvert} - {videoscale} - {videorate} - {capsfilter I420 WxH@fps}`, the chain
//!   before the pace (videorate's default mode, the only one that takes 0/1), and
//! - `pace`: glasscast's chain for portal streams (`media::encoded_video_chain` with a portal source, no
//!   encoder),
//!
//! into a fakesink. Hold = time a frame leaves the chain minus the time it was pushed in (frames carry their
//! number in their first bytes; a duplicate counts from its original). Prints JSON on stdout, a line per run on stderr.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use glasscast::config::{PortalCursor, StreamConfig, VideoSource};
use glasscast::media::encoded_video_chain;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    #[arg(long, default_value_t = 30)]
    fps: u32,
}

const W: i32 = 320;
const H: i32 = 240;

fn videorate_chain(fps: u32) -> anyhow::Result<Vec<gst::Element>> {
    let caps = gst::Caps::builder("video/x-raw")
        .field("format", "I420")
        .field("width", W)
        .field("height", H)
        .field("framerate", gst::Fraction::new(fps as i32, 1))
        .build();
    Ok(vec![
        gst::ElementFactory::make("videoconvert").build()?,
        gst::ElementFactory::make("videoscale").build()?,
        gst::ElementFactory::make("videorate").build()?,
        gst::ElementFactory::make("capsfilter").property("caps", caps).build()?,
    ])
}

fn pace_chain(fps: u32) -> anyhow::Result<Vec<gst::Element>> {
    let cfg = StreamConfig {
        width: W as u32,
        height: H as u32,
        fps,
        source: VideoSource::Portal { cursor: PortalCursor::default() },
        ..StreamConfig::test_pattern("bench")
    };
    encoded_video_chain(&cfg, None)
}

/// Runs one chain with one input pattern; returns (holds in ms, frames in, frames out).
fn run(chain: Vec<gst::Element>, still: bool, fps: u32, seconds: u64) -> anyhow::Result<(Vec<f64>, u64, u64)> {
    let pipeline = gst::Pipeline::new();
    let caps = gst::Caps::builder("video/x-raw")
        .field("format", "I420")
        .field("width", W)
        .field("height", H)
        .field("framerate", gst::Fraction::new(0, 1))
        .build();
    let src = gst_app::AppSrc::builder().caps(&caps).is_live(true).do_timestamp(true).format(gst::Format::Time).build();
    let sink = gst::ElementFactory::make("fakesink").property("sync", false).build()?;
    pipeline.add(&src)?;
    pipeline.add_many(&chain)?;
    pipeline.add(&sink)?;
    src.link(&chain[0])?;
    gst::Element::link_many(&chain)?;
    chain.last().expect("a chain").link(&sink)?;

    // Frames are numbered in their first bytes (I420 in, so conversion and scaling pass them through
    // untouched, and a duplicate carries its original's number).
    let pushed: Arc<Mutex<HashMap<u32, Instant>>> = Arc::default();
    let holds: Arc<Mutex<Vec<f64>>> = Arc::default();
    let out = Arc::new(std::sync::atomic::AtomicU64::new(0));
    {
        let (pushed, holds, out) = (pushed.clone(), holds.clone(), out.clone());
        sink.static_pad("sink").expect("fakesink has a sink pad").add_probe(
            gst::PadProbeType::BUFFER,
            move |_, info| {
                if let Some(n) = info.buffer().and_then(|b| number(b)) {
                    out.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if let Some(t) = pushed.lock().expect("lock").get(&n) {
                        holds.lock().expect("lock").push(t.elapsed().as_secs_f64() * 1000.0);
                    }
                }
                gst::PadProbeReturn::Ok
            },
        );
    }
    pipeline.set_state(gst::State::Playing)?;
    let mut frame = vec![0x80u8; (W * H * 3 / 2) as usize];
    let (mut n, mut i) = (0u64, 0u32);
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut next = Instant::now();
    while Instant::now() < end {
        frame[..4].copy_from_slice(&i.to_le_bytes());
        pushed.lock().expect("lock").insert(i, Instant::now());
        src.push_buffer(gst::Buffer::from_slice(frame.clone()))?;
        n += 1;
        i = i.wrapping_add(1);
        // Deterministic jitter: moving = 16.7 ms + 0..2 ms; still = 1000/fps ms + 0..3 ms (timer lateness).
        let (base_us, jitter_us) = if still { (1_000_000 / u64::from(fps), 1_000) } else { (16_667, 667) };
        next += Duration::from_micros(base_us + jitter_us * u64::from(i % 4));
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    pipeline.set_state(gst::State::Null)?;
    let holds = std::mem::take(&mut *holds.lock().expect("lock"));
    Ok((holds, n, out.load(std::sync::atomic::Ordering::Relaxed)))
}

fn number(buffer: &gst::BufferRef) -> Option<u32> {
    let map = buffer.map_readable().ok()?;
    Some(u32::from_le_bytes(map.get(..4)?.try_into().ok()?))
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let v = sorted.get(((p * sorted.len() as f64) as usize).min(sorted.len().saturating_sub(1))).copied();
    (v.unwrap_or(f64::NAN) * 100.0).round() / 100.0
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    gst::init()?;
    let mut results = Vec::new();
    for pattern in ["moving", "still"] {
        for name in ["videorate", "pace"] {
            let chain = if name == "pace" { pace_chain(args.fps)? } else { videorate_chain(args.fps)? };
            let (mut holds, frames_in, frames_out) = run(chain, pattern == "still", args.fps, args.seconds)?;
            holds.sort_by(f64::total_cmp);
            let r = serde_json::json!({
                "chain": name, "input": pattern, "seconds": args.seconds, "target_fps": args.fps,
                "fps_in": frames_in as f64 / args.seconds as f64,
                "fps_out": frames_out as f64 / args.seconds as f64,
                "hold_ms_p50": pct(&holds, 0.5), "hold_ms_p95": pct(&holds, 0.95), "hold_ms_max": pct(&holds, 1.0),
            });
            eprintln!("{r}");
            results.push(r);
        }
    }
    println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "bench": "conform", "runs": results }))?);
    Ok(())
}

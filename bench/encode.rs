//! bench/encode: CPU cost of the capture + encode pipeline alone (no viewers), per mode and encoder.
//!
//!   cargo run --release --example encode -- [--seconds 10] [--modes 1280x720@30,1280x720@60,1920x1080@30]
//!                                           [--bitrate 2500] [--ladder]
//!
//! For each mode it runs glasscast's own video chain (`media::encoded_video_chain`: test source, conversion,
//! leaky queue, encoder with glasscast's settings) into a fakesink for a 2 s warm-up plus --seconds, first
//! without an encoder (what the source costs), then with each available encoder; with `--ladder`, each
//! encoder again with the default quality ladder's lower rungs running too (`media::encode::ladder`, their
//! valves open, payloaded into fakesinks): the ladder's cost is the difference. Reports this process's CPU
//! (utime + stime from /proc/self/stat) as % of one core, frames and bitrate out, and the encoder's own
//! latency (input buffer -> its output buffer). Prints JSON on stdout, a line per run on stderr.

#[path = "common.rs"]
mod common;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use glasscast::config::StreamConfig;
use glasscast::media::{self, Encoder, encoded_video_chain};
use gstreamer as gst;
use gstreamer::prelude::*;

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or_default();
    let f: Vec<&str> = after.split(' ').collect();
    let ticks: f64 =
        f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0) + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

#[derive(Default)]
struct Counters {
    frames: u64,
    bytes: u64,
    /// Arrival times of frames not out yet: without B-frames encoders output in input order, one for one.
    /// (PTS cannot pair them: x264enc shifts its output timestamps by 1000 h.)
    entered: VecDeque<Instant>,
    latencies_ms: Vec<f64>,
}

fn pct(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let v = sorted[((p * sorted.len() as f64) as usize).min(sorted.len() - 1)];
    Some((v * 100.0).round() / 100.0)
}

/// The stream's lower rungs from the chain's raw tee, running, each into a fakesink.
fn add_rungs(pipeline: &gst::Pipeline, cfg: &StreamConfig, encoder: Encoder) -> anyhow::Result<usize> {
    let raw = pipeline.by_name("raw").ok_or_else(|| anyhow::anyhow!("the chain's raw tee"))?;
    let rungs = cfg.rungs();
    for (i, rung) in rungs.iter().enumerate().skip(1) {
        let branch =
            media::encode::ladder::build_rung(pipeline, &raw, (i, *rung), encoder, cfg.keyframe_interval_s, 0)?;
        let sink = gst::ElementFactory::make("fakesink").property("sync", false).build()?;
        pipeline.add(&sink)?;
        branch.rtp_src.link(&sink.static_pad("sink").expect("fakesink has a sink pad"))?;
        branch.gate.join();
    }
    Ok(rungs.len() - 1)
}

fn run(cfg: &StreamConfig, encoder: Option<Encoder>, seconds: u64, ladder: bool) -> anyhow::Result<serde_json::Value> {
    let pipeline = gst::Pipeline::new();
    let mut chain = encoded_video_chain(cfg, encoder)?;
    let sink = gst::ElementFactory::make("fakesink").property("sync", false).build()?;
    chain.push(sink);
    pipeline.add_many(&chain)?;
    gst::Element::link_many(&chain)?;
    let lower_rungs = match (ladder, encoder) {
        (true, Some(enc)) => add_rungs(&pipeline, cfg, enc)?,
        _ => 0,
    };

    let counters = Arc::new(Mutex::new(Counters::default()));
    let measuring = Arc::new(std::sync::atomic::AtomicBool::new(false));
    if let Some(enc) = encoder {
        let element = chain
            .iter()
            .find(|e| e.factory().is_some_and(|f| f.name() == enc.factory()))
            .expect("the chain has the encoder");
        let c = Arc::clone(&counters);
        element.static_pad("sink").expect("sink").add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if info.buffer().is_some() {
                c.lock().expect("lock").entered.push_back(Instant::now());
            }
            gst::PadProbeReturn::Ok
        });
        let (c, m) = (Arc::clone(&counters), Arc::clone(&measuring));
        element.static_pad("src").expect("src").add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(buf) = info.buffer() {
                let mut c = c.lock().expect("lock");
                let entered = c.entered.pop_front();
                if m.load(std::sync::atomic::Ordering::Relaxed) {
                    c.frames += 1;
                    c.bytes += buf.size() as u64;
                    if let Some(t) = entered {
                        c.latencies_ms.push(t.elapsed().as_secs_f64() * 1000.0);
                    }
                }
            }
            gst::PadProbeReturn::Ok
        });
    }
    pipeline.set_state(gst::State::Playing)?;
    std::thread::sleep(Duration::from_secs(2));
    measuring.store(true, std::sync::atomic::Ordering::Relaxed);
    let (cpu0, t0) = (cpu_seconds(), Instant::now());
    std::thread::sleep(Duration::from_secs(seconds));
    let (cpu1, wall) = (cpu_seconds(), t0.elapsed().as_secs_f64());
    measuring.store(false, std::sync::atomic::Ordering::Relaxed);
    pipeline.set_state(gst::State::Null)?;

    let mut c = counters.lock().expect("lock");
    c.latencies_ms.sort_by(f64::total_cmp);
    Ok(serde_json::json!({
        "mode": format!("{}x{}@{}", cfg.width, cfg.height, cfg.fps),
        "encoder": encoder.map_or("none (source only)", |e| e.factory()),
        "lower_rungs": lower_rungs,
        "cpu_pct_of_core": ((cpu1 - cpu0) / wall * 1000.0).round() / 10.0,
        "frames_out": c.frames,
        "fps_out": ((c.frames as f64 / wall) * 10.0).round() / 10.0,
        "kbps_out": (c.bytes as f64 * 8.0 / wall / 1000.0).round(),
        "encode_ms": {"p50": pct(&c.latencies_ms, 0.5), "p95": pct(&c.latencies_ms, 0.95), "max": pct(&c.latencies_ms, 1.0)},
    }))
}

/// CPU cost of glasscast's capture + encode chain alone.
#[derive(Parser)]
struct Args {
    /// Measured seconds per run (after a 2 s warm-up).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Comma-separated WxH@FPS.
    #[arg(long, default_value = "1280x720@30,1280x720@60,1920x1080@30")]
    modes: String,
    /// kbit/s
    #[arg(long, default_value_t = 2500)]
    bitrate: u32,
    /// Also run each encoder with the default quality ladder's lower rungs.
    #[arg(long)]
    ladder: bool,
}

fn main() -> anyhow::Result<()> {
    let Args { seconds, modes, bitrate, ladder } = Args::parse();
    media::init()?;
    // Every encoder that passes its probe here (hardware ones too, on a machine that has them).
    let encoders: Vec<Encoder> =
        Encoder::ALL.into_iter().filter(|e| media::encode::encoder::probe(*e).is_ok()).collect();
    let mut runs = Vec::new();
    for mode in modes.split(',') {
        let (width, height, fps) = common::parse_mode(mode).map_err(anyhow::Error::msg)?;
        let cfg = StreamConfig { width, height, fps, bitrate_kbps: bitrate, ..StreamConfig::test_pattern("bench") };
        let with_ladder = encoders.iter().copied().map(|e| (Some(e), true)).filter(|_| ladder);
        let plain = std::iter::once(None).chain(encoders.iter().copied().map(Some)).map(|e| (e, false));
        for (enc, ladder) in plain.chain(with_ladder) {
            let r = run(&cfg, enc, seconds, ladder)?;
            eprintln!(
                "encode {} {} (+{} rungs): {}% of a core, {} fps, {} kbit/s, encode p50 {} ms",
                r["mode"],
                r["encoder"],
                r["lower_rungs"],
                r["cpu_pct_of_core"],
                r["fps_out"],
                r["kbps_out"],
                r["encode_ms"]["p50"]
            );
            runs.push(r);
        }
    }
    let out = serde_json::json!({
        "bench": "encode",
        "command": format!("cargo run --release --example encode -- {}", std::env::args().skip(1).collect::<Vec<_>>().join(" ")),
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "gstreamer": gst::version_string().to_string(),
        "runs": runs,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

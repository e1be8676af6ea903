//! The parts a stream's pipeline is built from, one per source kind and per delivery; each draws its part.
//! [`super::StreamPipeline::build`] puts them together.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use gstreamer as gst;
use gstreamer::prelude::*;

use super::slot::SourceSlot;
use crate::config::{AudioSource, StreamConfig, VideoCodec, VideoSource};
use crate::ids::StreamName;
use crate::media::encode::congestion::{LossReport, RateControl};
use crate::media::encode::encoder::{EncodeParams, Encoder, EncoderChoice, build_encoder, choose_encoder, set_bitrate};
use crate::media::encode::keyframes::KeyframeCounters;
use crate::media::encode::ladder::{RungBranch, RungGate, build_rung};
use crate::media::encode::meter::FrameMeter;
use crate::media::encode::vp8::{Vp8Encoding, Vp8Input, Vp8Params};
use crate::media::forward::{self, Forward, StreamSlot};
use crate::media::webrtcbin::fanout::{BranchKey, Codec, Fanout};
use crate::media::{H264Profile, source, source::probe};

pub(super) fn add_chain(pipeline: &gst::Pipeline, chain: &[gst::Element]) -> anyhow::Result<()> {
    pipeline.add_many(chain)?;
    gst::Element::link_many(chain)?;
    Ok(())
}

pub(super) fn tee(name: &str) -> anyhow::Result<gst::Element> {
    gst::ElementFactory::make("tee").name(name).property("allow-not-linked", true).build().context("creating tee")
}

/// The name of the queue in front of the encoder.
const RAW_QUEUE: &str = "raw-queue";
/// The name of the tee in front of it (where an on-demand VP8 encoding takes the raw video).
const RAW_TEE: &str = "raw";

/// The capture + encode part of a stream, up to (not including) the H.264 tee:
/// `{source ... capsfilter} (- latency probe) - {tee raw} - {queue leaky 1} - {encoder} - {capsfilter h264}`.
/// Without an encoder it ends at the raw queue (to measure what the source alone costs).
pub fn encoded_video_chain(cfg: &StreamConfig, encoder: Option<Encoder>) -> anyhow::Result<Vec<gst::Element>> {
    let mut video = source::video(cfg)?;
    if cfg.latency_probe {
        let conformed = video.last().expect("a source chain ends in its capsfilter");
        probe::attach(&conformed.static_pad("src").expect("capsfilter has a src pad"));
    }
    if cfg.sync_marks {
        let conformed = video.last().expect("a source chain ends in its capsfilter");
        crate::media::source::sync_marks::flash(&conformed.static_pad("src").expect("capsfilter has a src pad"));
    }
    video.push(tee(RAW_TEE)?);
    // Never let a slow encoder build up latency: keep only the newest raw frame.
    let queue = crate::media::leaky_queue(1, Duration::ZERO)?;
    queue.set_property("name", RAW_QUEUE);
    video.push(queue);
    if let Some(encoder) = encoder {
        let params =
            EncodeParams { bitrate_kbps: cfg.bitrate_kbps, fps: cfg.fps, keyframe_interval_s: cfg.keyframe_interval_s };
        video.extend(build_encoder(encoder, &params)?);
    }
    Ok(video)
}

/// A stream's video up to its H.264 tee, which restarts as one chain when it fails ([`super::recover`]).
pub(super) struct VideoPart {
    /// The chain (source to the encoder's capsfilter); empty for H.264 that passes through.
    pub chain: Vec<gst::Element>,
    /// `None`: passed through (a feed browsers decode as it is, or a WHIP publisher's).
    pub choice: Option<EncoderChoice>,
    pub encoder: Option<gst::Element>,
    pub raw_queue: Option<gst::Element>,
    pub raw_tee: Option<gst::Element>,
}

impl VideoPart {
    /// Encoded: `{source ...} - {tee raw} - {queue leaky 1} - {encoder} - {capsfilter h264}` with the first of
    /// `encoders` that passes its probe (or the stream's forced one). Passed through (`passthrough`): no
    /// chain; the feed's or publisher's H.264 links straight to `{tee h264}`.
    pub fn new(cfg: &StreamConfig, encoders: &[Encoder], passthrough: Option<H264Profile>) -> anyhow::Result<Self> {
        let name = cfg.stream_name();
        if let Some(profile) = passthrough {
            tracing::info!(stream = %name, profile = profile.name(), "the feed's H.264 passes through (no encoder)");
            return Ok(VideoPart { chain: Vec::new(), choice: None, encoder: None, raw_queue: None, raw_tee: None });
        }
        let choice = choose_encoder(cfg.encoder, encoders).map_err(anyhow::Error::msg)?;
        let factory = choice.encoder.factory();
        tracing::info!(stream = %name, encoder = factory, rejected = ?choice.rejected_reasons(), "encoder chosen");
        let chain = encoded_video_chain(cfg, Some(choice.encoder))?;
        let find = |f: &dyn Fn(&gst::Element) -> bool| chain.iter().find(|e| f(e)).cloned();
        let encoder = find(&|e| e.factory().is_some_and(|f| f.name() == factory)).expect("the chain holds its encoder");
        let (raw_queue, raw_tee) = (find(&|e| e.name() == RAW_QUEUE), find(&|e| e.name() == RAW_TEE));
        Ok(VideoPart { chain, choice: Some(choice), encoder: Some(encoder), raw_queue, raw_tee })
    }
}

/// Where a source that comes later links in: the portal's, a feed's (`uridecodebin`, which may go and come
/// back) and a WHIP publisher's, at the start of the video chain (or the H.264 tee) and at the Opus tee.
pub(super) fn source_slot(
    cfg: &StreamConfig,
    first: &gst::Element,
    audio_sink: Option<gst::Pad>,
) -> Option<SourceSlot> {
    let whip = cfg.source == VideoSource::Whip;
    if !matches!(cfg.source, VideoSource::Portal { .. } | VideoSource::Uri { .. } | VideoSource::Whip) {
        return None;
    }
    let name = cfg.stream_name();
    let waiting = if whip {
        format!("waiting for a WHIP publisher (POST /whip/{name})")
    } else {
        "waiting for the source".into()
    };
    Some(SourceSlot {
        sink: first.static_pad("sink").expect("an attached source's chain starts with a sink pad"),
        audio_sink,
        current: Mutex::new(None),
        problem: Mutex::new(Some(waiting)),
        lost: tokio::sync::watch::Sender::new(0),
        last_buffer_us: Arc::new(AtomicU64::new(0)),
    })
}

/// The stream's audio: `{source chain} - {opusenc} - {tee opus}`, with its chain up to the tee (which
/// restarts as one); or, for a WHIP stream, a bare Opus tee and its sink pad for the publisher's audio; or
/// none (`audio = "none"`).
pub(super) fn build_audio(
    cfg: &StreamConfig,
    pipeline: &gst::Pipeline,
) -> anyhow::Result<(Option<Fanout>, Vec<gst::Element>, Option<gst::Pad>)> {
    let opus_tee = tee("opus")?;
    if cfg.source == VideoSource::Whip && cfg.audio != AudioSource::None {
        pipeline.add(&opus_tee)?;
        let sink = opus_tee.static_pad("sink");
        return Ok((Some(Fanout::new(Codec::Opus, pipeline, opus_tee)), Vec::new(), sink));
    }
    let Some(mut chain) = source::audio(cfg)? else { return Ok((None, Vec::new(), None)) };
    if cfg.sync_marks {
        let conformed = chain.last().expect("an audio chain ends in its capsfilter");
        crate::media::source::sync_marks::beep(&conformed.static_pad("src").expect("capsfilter has a src pad"));
    }
    chain.push(source::opus_encoder(cfg.audio_frame_ms)?);
    let restartable = chain.clone();
    chain.push(opus_tee.clone());
    add_chain(pipeline, &chain)?;
    Ok((Some(Fanout::new(Codec::Opus, pipeline, opus_tee)), restartable, None))
}

/// The stream's congestion control (forwarding transport): each 2-second loss report may move the encoder's
/// bitrate within `[min_bitrate_kbps, bitrate_kbps]` (see [`crate::media::encode::congestion`]).
fn congestion_control(
    name: &StreamName,
    cfg: &StreamConfig,
    encoder: Encoder,
    element: gst::Element,
    ladder: bool,
) -> impl Fn(LossReport) + Send + 'static {
    let control = RateControl::new(cfg.min_bitrate(), cfg.bitrate_kbps);
    let control = Mutex::new(if ladder { control.with_ladder() } else { control });
    let name = name.clone();
    move |report| {
        let mut control = control.lock().expect("rate control lock");
        let was = control.current_kbps();
        if let Some(kbps) = control.on_report(report, Instant::now()) {
            tracing::info!(stream = %name, from = was, to = kbps, ?report, "video bitrate changed (viewers' loss)");
            set_bitrate(&element, encoder, kbps);
        }
    }
}

/// The stream's place in the forwarding transport.
pub(super) type ForwardPart = (Forward, StreamSlot);

/// Delivery by the forwarding transport: one payloader per codec and an appsink into the mux,
/// `{tee h264} - {rtph264pay pt=96} - {tee rtp} - {appsink}` (likewise Opus), with the stream's congestion
/// control on the encoder, and the lower rungs of its ladder ([`ladder`]). (With webrtcbin delivery each
/// viewer gets its own branch later: no part here.)
pub(super) fn attach_forward(
    fwd: &Forward,
    cfg: &StreamConfig,
    pipeline: &gst::Pipeline,
    (video, audio): (&Fanout, Option<&Fanout>),
    part: &VideoPart,
    (encoded_pad, keyframes): (&gst::Pad, Arc<KeyframeCounters>),
) -> anyhow::Result<(ForwardPart, Vec<Arc<RungGate>>)> {
    let name = cfg.stream_name();
    let key = |pt| BranchKey { pt, profile_level_id: None, playout_delay_ext: None };
    let video_rtp = video.rtp_tee(&key(forward::VIDEO_PT))?;
    let audio_rtp = audio.map(|a| a.rtp_tee(&key(forward::AUDIO_PT))).transpose()?;
    let lower = ladder(cfg, pipeline, part, &video_rtp)?;
    let on_loss: Box<dyn Fn(LossReport) + Send> = match (&part.choice, &part.encoder) {
        (Some(c), Some(e)) => Box::new(congestion_control(&name, cfg, c.encoder, e.clone(), !lower.is_empty())),
        // A passed-through feed's bitrate is the camera's.
        _ => Box::new(|_| {}),
    };
    let top = RungGate::top(cfg.top_rung(), encoded_pad.clone(), keyframes);
    // Its rungs for the stream's health (none shown for one encoding).
    let gates = match lower.is_empty() {
        true => Vec::new(),
        false => std::iter::once(top.clone()).chain(lower.iter().map(|r| r.gate.clone())).collect(),
    };
    let slot = fwd.attach_stream(&name, pipeline, &video_rtp, audio_rtp.as_ref(), (top, lower), on_loss)?;
    Ok(((fwd.clone(), slot), gates))
}

/// The lower rungs of the stream's ladder (`cfg.rungs()` past the top), from the raw tee with the stream's
/// encoder kind, their RTP timestamps offset like the top payloader's (which gets a fixed offset here).
/// None when the stream has no raw video (a passed-through feed, a WHIP relay) or `ladder = false`.
fn ladder(
    cfg: &StreamConfig,
    pipeline: &gst::Pipeline,
    part: &VideoPart,
    video_rtp: &gst::Element,
) -> anyhow::Result<Vec<RungBranch>> {
    let rungs = cfg.rungs();
    let (Some(raw_tee), Some(choice)) = (&part.raw_tee, &part.choice) else { return Ok(Vec::new()) };
    if rungs.len() < 2 {
        return Ok(Vec::new());
    }
    let top_payloader = video_rtp
        .static_pad("sink")
        .and_then(|p| p.peer())
        .and_then(|p| p.parent_element())
        .context("the RTP tee's payloader")?;
    let ts_offset = rand::random::<u32>();
    top_payloader.set_property("timestamp-offset", ts_offset);
    let built: anyhow::Result<Vec<RungBranch>> = rungs
        .iter()
        .enumerate()
        .skip(1)
        .map(|(i, r)| build_rung(pipeline, raw_tee, (i, *r), choice.encoder, cfg.keyframe_interval_s, ts_offset))
        .collect();
    let lower = built?;
    tracing::info!(stream = %cfg.name, rungs = ?rungs, "quality ladder");
    Ok(lower)
}

/// The stream's on-demand VP8 encoding when `codecs` allows it (forwarding transport): from the raw tee, or
/// (a WHIP relay, a passed-through feed) decoding the H.264 tee.
pub(super) fn vp8_encoding(
    cfg: &StreamConfig,
    pipeline: &gst::Pipeline,
    forward: &(Forward, StreamSlot),
    raw_tee: Option<gst::Element>,
    h264_tee: &gst::Element,
) -> Option<Arc<Vp8Encoding>> {
    if !cfg.codecs.contains(&VideoCodec::Vp8) {
        return None;
    }
    let input = match raw_tee {
        Some(tee) => Vp8Input::Raw(tee),
        None => Vp8Input::Decode(h264_tee.clone()),
    };
    let params = Vp8Params {
        bitrate_kbps: cfg.bitrate_kbps,
        min_bitrate_kbps: cfg.min_bitrate(),
        fps: cfg.fps,
        keyframe_interval_s: cfg.keyframe_interval_s,
    };
    Some(Vp8Encoding::new(cfg.stream_name(), pipeline.clone(), input, forward.clone(), params))
}

/// The stream's frame meters: encoded frames at `{tee h264}`'s sink, and raw frames entering the encoder's
/// queue with the queue's overruns (none for passed-through H.264).
pub(super) struct Meters {
    pub epoch: Instant,
    pub encoded: Arc<FrameMeter>,
    pub raw: Option<Arc<FrameMeter>>,
    pub dropped: Arc<AtomicU64>,
}

impl Meters {
    pub fn attach(encoded_pad: &gst::Pad, raw_queue: Option<&gst::Element>) -> Self {
        let epoch = Instant::now();
        let encoded = FrameMeter::new(epoch);
        encoded.attach(encoded_pad);
        let dropped = Arc::new(AtomicU64::new(0));
        let raw = raw_queue.map(|queue| {
            let meter = FrameMeter::new(epoch);
            meter.attach(&queue.static_pad("sink").expect("queue has a sink pad"));
            let dropped = dropped.clone();
            queue.connect("overrun", false, move |_| {
                dropped.fetch_add(1, Ordering::Relaxed);
                None
            });
            meter
        });
        Meters { epoch, encoded, raw, dropped }
    }
}

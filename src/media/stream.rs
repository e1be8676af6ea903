//! One stream: one capture+encode pipeline, payloaded per payload type, fanned out to viewers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use gstreamer as gst;
use gstreamer::prelude::*;
use tokio::sync::mpsc;

use super::congestion::{LossReport, RateControl};
use super::egress::{Egress, EgressState, PushTarget};
use super::encoder::{EncodeParams, Encoder, EncoderChoice, bitrate_kbps, build_encoder, choose_encoder, set_bitrate};
use super::fanout::{BranchKey, Codec, Fanout};
use super::forward::{self, Forward, StreamSlot};
use super::keyframes::{self, KeyframeCounters};
use super::meter::FrameMeter;
use super::viewer::{Feeds, IceSettings, WebrtcbinViewer};
use super::vp8::{Vp8Encoding, Vp8Input, Vp8Lease, Vp8Params, Vp8Status};
use super::{H264Profile, MediaError, MediaEvent, ViewerHandle, plan_offer_with, probe, source};
use crate::config::{AudioSource, StreamConfig, VideoCodec, VideoSource};
use crate::ids::{SessionId, StreamName};

mod bus;
mod recover;
mod slot;

use recover::Recovery;
use slot::SourceSlot;

/// A stream counts as producing when its encoder output a frame this recently.
pub const FRAME_FRESHNESS: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamState {
    Starting,
    Playing,
    Failed(String),
    Stopped,
}

#[derive(Debug, Clone)]
pub struct StreamHealth {
    pub state: StreamState,
    /// Encoded video frames so far, and their bytes.
    pub frames: u64,
    pub encoded_bytes: u64,
    pub last_frame_age: Option<Duration>,
    /// Encoded frames per second, smoothed over the last ~50 frames (and lower while frames stall); `None`
    /// until a frame comes a second after the first (the start-up is not the rate: `FrameMeter`).
    pub encoded_fps: Option<f64>,
    /// Raw frames that reached the encoder's queue (after the rate limit), and their rate likewise; 0 and
    /// `None` for a passed-through feed.
    pub raw_frames: u64,
    pub raw_fps: Option<f64>,
    /// Raw frames the encoder's queue dropped because the encoder was still busy with the previous one.
    pub frames_dropped: u64,
    pub encoder: &'static str,
    /// Encoders tried before it, and why each was not used (`factory: reason`).
    pub encoders_rejected: Vec<String>,
    /// Viewer branches linked to the stream's RTP tees (video + audio pads; the forwarding transport's
    /// appsinks count too).
    pub viewer_pads: usize,
    /// Keyframe requests (joins, PLIs, FIRs) and those passed to the encoder after rate limiting.
    pub keyframes_requested: u64,
    pub keyframes_sent: u64,
    /// The encoder's bitrate now (congestion control lowers it from the configured one under loss).
    pub bitrate_kbps: u32,
    /// Forwarding transport: how long packets wait for the mux thread (ms, smoothed).
    pub send_lag_ms: Option<f64>,
    /// Why a source that comes and goes (the portal) gives no picture now, and when it is retried.
    pub source_problem: Option<String>,
    /// Restarts of the stream's capture or encode chains after they failed at run time, and what failed
    /// while one is pending ([`recover`]).
    pub restarts: u64,
    pub restart_problem: Option<String>,
    /// WHIP pushes to other endpoints (`[[streams.push]]`).
    pub pushes: Vec<PushStatus>,
    /// The on-demand VP8 encoding, when the stream can make one: whether it runs now, and its viewers.
    pub vp8: Option<Vp8Status>,
}

/// One WHIP push, as health and metrics show it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PushStatus {
    /// The endpoint's scheme, host and port (its path may hold a secret).
    pub target: String,
    /// connecting, connected, retrying, stopped.
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    pub bytes_sent: u64,
    pub attempts: u64,
}

impl StreamHealth {
    pub fn producing(&self) -> bool {
        self.state == StreamState::Playing && self.last_frame_age.is_some_and(|a| a < FRAME_FRESHNESS)
    }
}

#[derive(Clone)]
pub struct StreamPipeline {
    inner: Arc<Inner>,
}

struct Inner {
    name: StreamName,
    pipeline: gst::Pipeline,
    video: Fanout,
    audio: Option<Fanout>,
    /// `None`: a passed-through feed.
    encoder: Option<EncoderChoice>,
    /// The H.264 profile viewers receive (a WHIP stream's changes with its publisher).
    profile: Mutex<H264Profile>,
    state: Mutex<StreamState>,
    /// Encoded frames (at the H.264 tee), and raw frames entering the encoder's queue (`None`: passthrough).
    encoded: Arc<FrameMeter>,
    raw: Option<Arc<FrameMeter>>,
    /// Raw frames the encoder's queue dropped (its overruns).
    dropped: Arc<AtomicU64>,
    /// The encoder itself (its bitrate is read for health and set by congestion control).
    encoder_element: Option<gst::Element>,
    epoch: Instant,
    ice: IceSettings,
    /// Set when viewers are served by the forwarding transport (else each gets a webrtcbin).
    forward: Option<(Forward, StreamSlot)>,
    keyframes: Arc<KeyframeCounters>,
    events: mpsc::UnboundedSender<MediaEvent>,
    bus_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Where a source attached later (the portal's) links in; `None` for sources built with the stream.
    slot: Option<SourceSlot>,
    /// The capture and encode chains that restart when they fail.
    recovery: Recovery,
    /// WHIP pushes fed from the encoded tees.
    pushes: Mutex<Vec<Egress>>,
    /// The video encodings viewers may get (`codecs`), and the VP8 one when this stream can make it
    /// (forwarding transport; a WHIP relay or a passed-through feed decodes its H.264 for it).
    codecs: Vec<VideoCodec>,
    vp8: Option<Arc<Vp8Encoding>>,
}

fn add_chain(pipeline: &gst::Pipeline, chain: &[gst::Element]) -> anyhow::Result<()> {
    pipeline.add_many(chain)?;
    gst::Element::link_many(chain)?;
    Ok(())
}

fn tee(name: &str) -> anyhow::Result<gst::Element> {
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
        super::sync_marks::flash(&conformed.static_pad("src").expect("capsfilter has a src pad"));
    }
    video.push(tee(RAW_TEE)?);
    // Never let a slow encoder build up latency: keep only the newest raw frame.
    let queue = super::leaky_queue(1, Duration::ZERO)?;
    queue.set_property("name", RAW_QUEUE);
    video.push(queue);
    if let Some(encoder) = encoder {
        video.extend(build_encoder(
            encoder,
            &EncodeParams {
                bitrate_kbps: cfg.bitrate_kbps,
                fps: cfg.fps,
                keyframe_interval_s: cfg.keyframe_interval_s,
            },
        )?);
    }
    Ok(video)
}

/// The stream's congestion control (forwarding transport): each 2-second loss report may move the encoder's
/// bitrate within `[min_bitrate_kbps, bitrate_kbps]` (see [`super::congestion`]).
fn congestion_control(
    name: &StreamName,
    cfg: &StreamConfig,
    encoder: Encoder,
    element: gst::Element,
) -> impl Fn(LossReport) + Send + 'static {
    let control = Mutex::new(RateControl::new(cfg.min_bitrate(), cfg.bitrate_kbps));
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

/// The stream's on-demand VP8 encoding when `codecs` allows it (forwarding transport): from the raw tee, or
/// (a WHIP relay, a passed-through feed) decoding the H.264 tee.
fn vp8_encoding(
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

/// The stream's audio: `{source chain} - {opusenc} - {tee opus}`, with its chain up to the tee (which
/// restarts as one); or, for a WHIP stream, a bare Opus tee and its sink pad for the publisher's audio; or
/// none (`audio = "none"`).
fn build_audio(
    cfg: &StreamConfig,
    pipeline: &gst::Pipeline,
    whip: bool,
) -> anyhow::Result<(Option<Fanout>, Vec<gst::Element>, Option<gst::Pad>)> {
    let opus_tee = tee("opus")?;
    if whip && cfg.audio != AudioSource::None {
        pipeline.add(&opus_tee)?;
        let sink = opus_tee.static_pad("sink");
        return Ok((Some(Fanout::new(Codec::Opus, pipeline, opus_tee)), Vec::new(), sink));
    }
    let Some(mut chain) = source::audio(cfg)? else { return Ok((None, Vec::new(), None)) };
    if cfg.sync_marks {
        let conformed = chain.last().expect("an audio chain ends in its capsfilter");
        super::sync_marks::beep(&conformed.static_pad("src").expect("capsfilter has a src pad"));
    }
    chain.push(source::opus_encoder(cfg.audio_frame_ms)?);
    let restartable = chain.clone();
    chain.push(opus_tee.clone());
    add_chain(pipeline, &chain)?;
    Ok((Some(Fanout::new(Codec::Opus, pipeline, opus_tee)), restartable, None))
}

impl StreamPipeline {
    /// Builds (does not start) the stream's pipeline:
    ///
    /// ```text
    /// {videotestsrc - clockoverlay | ximagesrc | v4l2src - decodebin | uridecodebin}
    ///   - {videoconvert} - {videoscale} - {videorate drop-only | pace + capssetter} - {capsfilter}
    ///   (- latency probe painted here when configured) - {queue leaky 1} - {x264enc} - {capsfilter h264} - {tee h264}
    ///       - per payload type: {rtph264pay} - {capssetter} - {tee rtp} - per viewer: {gate} - {queue} - {webrtcbin}
    /// {audiotestsrc | pulsesrc} - {audioconvert} - {audioresample} - {capsfilter} - {opusenc} - {tee opus}
    ///       - per payload type: {rtpopuspay} - {tee rtp} - per viewer: {gate} - {queue} - {webrtcbin}
    /// ```
    ///
    /// With the forwarding transport each codec has one payloader instead, and no per-viewer element:
    /// `{tee h264} - {rtph264pay pt=96} - {tee rtp} - {appsink}` (likewise Opus), see [`forward`].
    /// The encoder is the first of `encoders` that passes its probe (or the stream's forced one). With
    /// `passthrough` (a feed whose H.264 browsers decode as it is) there is no encoder: the feed's source
    /// bin links straight to `{tee h264}` and the SDP answers state its profile.
    pub fn build(
        cfg: &StreamConfig,
        encoders: &[Encoder],
        passthrough: Option<H264Profile>,
        ice: IceSettings,
        forward: Option<&Forward>,
        events: mpsc::UnboundedSender<MediaEvent>,
    ) -> anyhow::Result<Self> {
        let name = cfg.stream_name();
        let pipeline = gst::Pipeline::builder().name(format!("stream-{name}")).build();

        let whip = cfg.source == VideoSource::Whip;
        let passthrough = if whip { Some(H264Profile::default()) } else { passthrough };
        let (choice, mut video, encoder_element) = match passthrough {
            Some(profile) => {
                tracing::info!(stream = %name, profile = profile.name(), "the feed's H.264 passes through (no encoder)");
                (None, Vec::new(), None)
            }
            None => {
                let choice = choose_encoder(cfg.encoder, encoders).map_err(anyhow::Error::msg)?;
                let encoder = choice.encoder;
                let rejected = choice.rejected_reasons();
                tracing::info!(stream = %name, encoder = encoder.factory(), ?rejected, "encoder chosen");
                let video = encoded_video_chain(cfg, Some(encoder))?;
                let element = video
                    .iter()
                    .find(|e| e.factory().is_some_and(|f| f.name() == encoder.factory()))
                    .expect("the chain holds its encoder")
                    .clone();
                (Some(choice), video, Some(element))
            }
        };
        let raw_queue = video.iter().find(|e| e.name() == RAW_QUEUE).cloned();
        let raw_tee = video.iter().find(|e| e.name() == RAW_TEE).cloned();
        let mut recovery = Recovery::default();
        let video_chain = video.clone();
        let h264_tee = tee("h264")?;
        video.push(h264_tee.clone());
        let attached_later =
            matches!(cfg.source, VideoSource::Portal { .. } | VideoSource::Uri { .. } | VideoSource::Whip);
        let video_sink = attached_later
            .then(|| video[0].static_pad("sink").expect("an attached source's chain starts with a sink pad"));
        add_chain(&pipeline, &video)?;

        let (audio, audio_chain, audio_sink) = build_audio(cfg, &pipeline, whip)?;
        recover::inject_faults(&video_chain, encoder_element.as_ref(), &audio_chain);
        recovery.add("audio", audio_chain);
        recovery.add("video", video_chain);
        let waiting = if whip {
            format!("waiting for a WHIP publisher (POST /whip/{name})")
        } else {
            "waiting for the source".into()
        };
        let slot = video_sink.map(|sink| SourceSlot {
            sink,
            audio_sink,
            current: Mutex::new(None),
            problem: Mutex::new(Some(waiting)),
            lost: tokio::sync::watch::Sender::new(0),
            last_buffer_us: Arc::new(AtomicU64::new(0)),
        });
        let video = Fanout::new(Codec::H264, &pipeline, h264_tee.clone());
        let encoded_pad = h264_tee.static_pad("sink").expect("tee has a sink pad");
        let keyframes = keyframes::limit(&encoded_pad);
        let forward = match forward {
            Some(fwd) => {
                let key = |pt| BranchKey { pt, profile_level_id: None, playout_delay_ext: None };
                let video_rtp = video.rtp_tee(&key(forward::VIDEO_PT))?;
                let audio_rtp = audio.as_ref().map(|a| a.rtp_tee(&key(forward::AUDIO_PT))).transpose()?;
                let on_loss: Box<dyn Fn(LossReport) + Send> = match (&choice, &encoder_element) {
                    (Some(c), Some(e)) => Box::new(congestion_control(&name, cfg, c.encoder, e.clone())),
                    // A passed-through feed's bitrate is the camera's.
                    _ => Box::new(|_| {}),
                };
                let slot =
                    fwd.attach_stream(&name, &pipeline, &video_rtp, audio_rtp.as_ref(), encoded_pad.clone(), on_loss)?;
                Some((fwd.clone(), slot))
            }
            None => None,
        };
        if let Some(e) = &encoder_element {
            super::meter::time_encoder(e, name.to_string());
        }
        let vp8 = forward.as_ref().and_then(|fwd| vp8_encoding(cfg, &pipeline, fwd, raw_tee, &h264_tee));
        let epoch = Instant::now();
        let encoded = FrameMeter::new(epoch);
        encoded.attach(&encoded_pad);
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
        let inner = Arc::new(Inner {
            name,
            video,
            audio,
            pipeline,
            encoder: choice,
            profile: Mutex::new(passthrough.unwrap_or_default()),
            state: Mutex::new(StreamState::Starting),
            encoded,
            raw,
            dropped,
            encoder_element,
            epoch,
            ice,
            forward,
            keyframes,
            events,
            bus_task: Mutex::new(None),
            slot,
            recovery,
            pushes: Mutex::new(Vec::new()),
            codecs: cfg.codecs.clone(),
            vp8,
        });
        Ok(Self { inner })
    }

    pub fn name(&self) -> &StreamName {
        &self.inner.name
    }

    /// Says the stream is starting (before [`StreamPipeline::start`] runs, elsewhere).
    pub fn mark_starting(&self) {
        *self.inner.state.lock().expect("state lock") = StreamState::Starting;
    }

    /// Sets the pipeline playing and starts the bus task that turns errors into stream state. May block
    /// while sources open their devices; call it off any task others wait on. Needs the runtime (the bus
    /// task is spawned on it).
    pub fn start(&self) -> anyhow::Result<()> {
        // (Again after `stop`: the state goes back to Starting, and Playing once the pipeline says so.)
        *self.inner.state.lock().expect("state lock") = StreamState::Starting;
        if let Some(old) = self.inner.bus_task.lock().expect("bus task lock").take() {
            old.abort();
        }
        let bus = self.inner.pipeline.bus().expect("a pipeline has a bus");
        let weak = Arc::downgrade(&self.inner);
        let task = tokio::spawn(async move {
            let mut messages = bus.stream();
            while let Some(msg) = messages.next().await {
                let Some(inner) = weak.upgrade() else { break };
                bus::on_message(&inner, &msg);
            }
        });
        *self.inner.bus_task.lock().expect("bus task lock") = Some(task);
        self.inner
            .pipeline
            .set_state(gst::State::Playing)
            .with_context(|| format!("starting stream {}", self.inner.name))?;
        Ok(())
    }

    /// Pushes the stream to a WHIP endpoint too, from its encoded tees (no second encode), retrying with
    /// backoff while the stream runs (docs/whip.md).
    pub fn start_push(&self, target: PushTarget) -> anyhow::Result<()> {
        let inner = &self.inner;
        let audio = inner.audio.as_ref().map(Fanout::encoded_tee);
        let egress =
            super::egress::push(&inner.pipeline, inner.video.encoded_tee(), audio, target, inner.name.as_str())?;
        inner.pushes.lock().expect("pushes lock").push(egress);
        Ok(())
    }

    /// Stops the pipeline (blocking: waits for its streaming threads).
    pub fn stop(&self) {
        for push in self.inner.pushes.lock().expect("pushes lock").drain(..) {
            push.stop();
        }
        let _ = self.inner.pipeline.set_state(gst::State::Null);
        *self.inner.state.lock().expect("state lock") = StreamState::Stopped;
        if let Some(task) = self.inner.bus_task.lock().expect("bus task lock").take() {
            task.abort();
        }
    }

    pub fn health(&self) -> StreamHealth {
        let inner = &self.inner;
        StreamHealth {
            state: inner.state.lock().expect("state lock").clone(),
            frames: inner.encoded.count(),
            encoded_bytes: inner.encoded.bytes(),
            last_frame_age: inner.encoded.last_age(),
            encoded_fps: inner.encoded.fps(),
            raw_frames: inner.raw.as_ref().map_or(0, |m| m.count()),
            raw_fps: inner.raw.as_ref().and_then(|m| m.fps()),
            frames_dropped: inner.dropped.load(Ordering::Relaxed),
            encoder: inner.encoder.as_ref().map_or("passthrough", |c| c.encoder.factory()),
            encoders_rejected: inner.encoder.as_ref().map(EncoderChoice::rejected_reasons).unwrap_or_default(),
            viewer_pads: inner.video.viewer_pads() + inner.audio.as_ref().map_or(0, Fanout::viewer_pads),
            keyframes_requested: inner.keyframes.requested.load(Ordering::Relaxed),
            keyframes_sent: inner.keyframes.sent.load(Ordering::Relaxed),
            bitrate_kbps: match (&inner.encoder_element, &inner.encoder) {
                (Some(e), Some(c)) => bitrate_kbps(e, c.encoder),
                _ => 0,
            },
            send_lag_ms: inner.forward.as_ref().and_then(|(f, _)| f.send_lag_ms()),
            source_problem: inner.slot.as_ref().and_then(|s| s.problem.lock().expect("slot lock").clone()),
            restarts: inner.recovery.restarts(),
            restart_problem: inner.recovery.problem(),
            pushes: inner.pushes.lock().expect("pushes lock").iter().map(push_status).collect(),
            vp8: inner.vp8.as_ref().map(|v| v.status()),
        }
    }

    pub fn has_audio(&self) -> bool {
        self.inner.audio.is_some()
    }

    /// A share of the VP8 encoding for a viewer whose offer has no usable H.264 (started if need be), or
    /// why this stream cannot make one.
    fn vp8_lease(&self) -> Result<Vp8Lease, MediaError> {
        let inner = &self.inner;
        let why = match (&inner.forward, &inner.vp8) {
            (_, Some(enc)) => {
                if let Some(reason) = enc.overloaded() {
                    tracing::warn!(stream = %inner.name, %reason, "overloaded: refusing a new VP8 viewer");
                    return Err(MediaError::Overloaded(reason));
                }
                return enc.lease().map_err(|e| MediaError::Negotiation(format!("{e:#}")));
            }
            (None, _) => "VP8 viewers (no H.264 in the offer) need webrtc.transport = \"forward\"",
            (Some(_), None) => "this stream's codecs are [\"h264\"]: the viewer needs H.264",
        };
        Err(MediaError::NoUsableCodec(why.into()))
    }

    /// Checks the offer, links a new viewer branch and negotiates it. Returns the handle and the answer.
    pub async fn add_viewer(&self, id: SessionId, offer: &str) -> Result<(ViewerHandle, String), MediaError> {
        let inner = &self.inner;
        let profile = *inner.profile.lock().expect("profile lock");
        let (msg, plan) = plan_offer_with(offer, inner.audio.is_some(), profile, &inner.codecs)?;
        if !self.health().producing() {
            return Err(MediaError::NotProducing);
        }
        if !plan.aside.is_empty() {
            tracing::info!(stream = %inner.name, session = %id, refused = %plan.aside.describe(), "viewer's offered sections not used");
        }
        let lease = match plan.video.codec {
            VideoCodec::Vp8 => Some(self.vp8_lease()?),
            VideoCodec::H264 => None,
        };
        if let Some((fwd, slot)) = &inner.forward {
            let (mut viewer, answer) = fwd.add_viewer(*slot, id, &plan.aside.trim(offer), &plan)?;
            if let Some(lease) = lease {
                viewer.hold(Box::new(lease));
            }
            return Ok((ViewerHandle::Forward(Arc::new(viewer)), plan.aside.restore(&answer)));
        }
        let internal = |e: anyhow::Error| MediaError::Negotiation(format!("{e:#}"));
        let video = inner
            .video
            .rtp_tee(&BranchKey {
                pt: plan.video.pt,
                profile_level_id: Some(plan.video.profile_level_id.clone()),
                playout_delay_ext: plan.video.playout_delay_ext,
            })
            .map_err(internal)?;
        let audio = match (&plan.audio, &inner.audio) {
            (Some(pick), Some(fanout)) => Some(
                fanout
                    .rtp_tee(&BranchKey { pt: pick.pt, profile_level_id: None, playout_delay_ext: None })
                    .map_err(internal)?,
            ),
            _ => None,
        };
        let (viewer, answer) = WebrtcbinViewer::negotiate(
            &inner.name,
            id,
            &inner.pipeline,
            Feeds { video, audio },
            msg,
            &plan,
            &inner.ice,
            inner.events.clone(),
        )
        .await?;
        Ok((ViewerHandle::Webrtcbin(viewer), plan.aside.restore(&answer)))
    }
}

fn push_status(e: &Egress) -> PushStatus {
    let (state, last_error) = match e.state() {
        EgressState::Connecting => ("connecting", None),
        EgressState::Connected => ("connected", None),
        EgressState::Retrying { last_error, .. } => ("retrying", Some(last_error)),
        EgressState::Stopped => ("stopped", None),
    };
    PushStatus { target: e.target(), state, last_error, bytes_sent: e.bytes_sent(), attempts: e.attempts() }
}

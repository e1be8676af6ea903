//! One stream: one capture+encode pipeline, payloaded per payload type, fanned out to viewers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use gstreamer as gst;
use gstreamer::prelude::*;
use tokio::sync::mpsc;

use super::encode::encoder::{Encoder, EncoderChoice, bitrate_kbps};
use super::encode::keyframes::{self, KeyframeCounters};
use super::encode::ladder::{RungGate, RungStatus};
use super::encode::meter::FrameMeter;
use super::encode::vp8::{Vp8Encoding, Vp8Lease, Vp8Status};
use super::forward::{Forward, StreamSlot};
use super::tap::egress::{Egress, EgressState, PushTarget};
use super::webrtcbin::fanout::{BranchKey, Codec, Fanout};
use super::webrtcbin::viewer::{Feeds, IceSettings, WebrtcbinViewer};
use super::{H264Profile, MediaError, MediaEvent, Peer, ViewerHandle, plan_offer_with};
use crate::config::{StreamConfig, VideoCodec, VideoSource};
use crate::ids::{SessionId, StreamName};

mod build;
mod bus;
mod recover;
mod slot;
pub mod supervise;

pub use build::encoded_video_chain;
use build::{Meters, VideoPart, add_chain, build_audio, source_slot, tee};
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
    /// Pushes to WHIP endpoints and Janus rooms (`[[streams.push]]`).
    pub pushes: Vec<PushStatus>,
    /// `[streams.record]`: its state, directory, files and last error.
    pub recording: Option<super::tap::recorder::RecordingStatus>,
    /// The on-demand VP8 encoding, when the stream can make one: whether it runs now, and its viewers.
    pub vp8: Option<Vp8Status>,
    /// The quality ladder's rungs, the top first (empty: one encoding, or the webrtcbin transport).
    pub ladder: Vec<RungStatus>,
}

/// One push (WHIP or Janus) now (`session::PushReport` shows it in `/readyz`; the metrics read it too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushStatus {
    /// Unique while the stream runs.
    pub id: u32,
    /// Scheme, host and port only.
    pub target: String,
    /// connecting, connected, retrying, stopped.
    pub state: &'static str,
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
    /// Pushes (WHIP, Janus) fed from the encoded tees, by id (unique in the stream's life).
    pushes: Mutex<Vec<(u32, Egress)>>,
    /// `[streams.record]`: the recorder (kept after it stops, for its status), and what the stream's
    /// recordings did since start.
    recording: Mutex<Option<Arc<super::tap::recorder::Recorder>>>,
    record_counters: Arc<super::tap::record::Counters>,
    next_push: std::sync::atomic::AtomicU32,
    /// The video encodings viewers may get (`codecs`), and the VP8 one when this stream can make it
    /// (forwarding transport; a WHIP relay or a passed-through feed decodes its H.264 for it).
    codecs: Vec<VideoCodec>,
    vp8: Option<Arc<Vp8Encoding>>,
    /// The quality ladder's rungs, top first (forwarding transport; empty: one encoding).
    ladder: Vec<Arc<RungGate>>,
}

impl Inner {
    fn stop(&self) {
        for (_, push) in self.pushes.lock().expect("pushes lock").drain(..) {
            push.stop();
        }
        // Finished before the pipeline stops, so the last file gets its index.
        self.stop_recording();
        let _ = self.pipeline.set_state(gst::State::Null);
        *self.state.lock().expect("state lock") = StreamState::Stopped;
        if let Some(task) = self.bus_task.lock().expect("bus task lock").take() {
            task.abort();
        }
    }

    fn stop_recording(&self) -> bool {
        // Not under the lock: health reads the status meanwhile.
        let rec = self.recording.lock().expect("recording lock").clone();
        let Some(rec) = rec.filter(|r| r.is_running()) else { return false };
        rec.stop();
        true
    }
}

/// A stream dropped without [`StreamPipeline::stop`] (a runtime shutting down with it) still stops: a
/// pipeline disposed while playing leaves its streaming threads running on freed elements (a crash).
impl Drop for Inner {
    fn drop(&mut self) {
        self.stop();
    }
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
        let passthrough = if cfg.source == VideoSource::Whip { Some(H264Profile::default()) } else { passthrough };
        let part = VideoPart::new(cfg, encoders, passthrough)?;
        let h264_tee = tee("h264")?;
        let video: Vec<gst::Element> = part.chain.iter().cloned().chain([h264_tee.clone()]).collect();
        add_chain(&pipeline, &video)?;
        let (audio, audio_chain, audio_sink) = build_audio(cfg, &pipeline)?;
        let slot = source_slot(cfg, &video[0], audio_sink);
        recover::inject_faults(&part.chain, part.encoder.as_ref(), &audio_chain);
        let mut recovery = Recovery::default();
        recovery.add("audio", audio_chain);
        recovery.add("video", part.chain.clone());

        let video = Fanout::new(Codec::H264, &pipeline, h264_tee.clone());
        let encoded_pad = h264_tee.static_pad("sink").expect("tee has a sink pad");
        let keyframes = keyframes::limit(&encoded_pad);
        let forward = forward
            .map(|fwd| {
                let keyframe = (&encoded_pad, keyframes.clone());
                build::attach_forward(fwd, cfg, &pipeline, (&video, audio.as_ref()), &part, keyframe)
            })
            .transpose()?;
        let (forward, ladder) = match forward {
            Some((f, ladder)) => (Some(f), ladder),
            None => (None, Vec::new()),
        };
        if let Some(e) = &part.encoder {
            super::encode::meter::time_encoder(e, name.to_string());
        }
        let vp8 =
            forward.as_ref().and_then(|f| build::vp8_encoding(cfg, &pipeline, f, part.raw_tee.clone(), &h264_tee));
        let meters = Meters::attach(&encoded_pad, part.raw_queue.as_ref());
        let inner = Arc::new(Inner {
            name,
            video,
            audio,
            pipeline,
            encoder: part.choice,
            profile: Mutex::new(passthrough.unwrap_or_default()),
            state: Mutex::new(StreamState::Starting),
            encoded: meters.encoded,
            raw: meters.raw,
            dropped: meters.dropped,
            encoder_element: part.encoder,
            epoch: meters.epoch,
            ice,
            forward,
            keyframes,
            events,
            bus_task: Mutex::new(None),
            slot,
            recovery,
            pushes: Mutex::new(Vec::new()),
            next_push: std::sync::atomic::AtomicU32::new(1),
            recording: Mutex::new(None),
            record_counters: Arc::default(),
            codecs: cfg.codecs.clone(),
            vp8,
            ladder,
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
    /// backoff while the stream runs (docs/whip.md). Returns the push's id ([`PushStatus::id`]).
    pub fn start_push(&self, target: PushTarget) -> anyhow::Result<u32> {
        let inner = &self.inner;
        let audio = inner.audio.as_ref().map(Fanout::encoded_tee);
        let egress =
            super::tap::egress::push(&inner.pipeline, inner.video.encoded_tee(), audio, target, inner.name.as_str())?;
        let id = inner.next_push.fetch_add(1, Ordering::Relaxed);
        inner.pushes.lock().expect("pushes lock").push((id, egress));
        Ok(id)
    }

    /// Records the stream from its encoded tees (no second encode), keeping `settings`' retention; a
    /// recorder already running goes on (blocking briefly when one is replaced). A recording that cannot
    /// start now (no space, an unwritable directory) waits and says why.
    pub fn start_recording(&self, settings: super::tap::recorder::RecordSettings) {
        let inner = &self.inner;
        let mut slot = inner.recording.lock().expect("recording lock");
        if slot.as_ref().is_some_and(|r| r.is_running()) {
            return;
        }
        let tees = super::tap::record::Tees {
            pipeline: inner.pipeline.clone(),
            h264: inner.video.encoded_tee().clone(),
            opus: inner.audio.as_ref().map(|a| a.encoded_tee().clone()),
        };
        let counters = Arc::clone(&inner.record_counters);
        *slot = Some(Arc::new(super::tap::recorder::Recorder::start(tees, settings, inner.name.as_str(), counters)));
    }

    /// Stops recording (blocking until the file being written is finished); false when it did not record.
    pub fn stop_recording(&self) -> bool {
        self.inner.stop_recording()
    }

    /// The recording file being written now, if any.
    pub fn recording_file(&self) -> Option<std::path::PathBuf> {
        self.inner
            .recording
            .lock()
            .expect("recording lock")
            .as_deref()
            .and_then(super::tap::recorder::Recorder::current_file)
    }

    /// Stops and removes push `id` (blocking: unlinks its elements); false when there is none.
    pub fn stop_push(&self, id: u32) -> bool {
        let mut pushes = self.inner.pushes.lock().expect("pushes lock");
        let Some(i) = pushes.iter().position(|(p, _)| *p == id) else { return false };
        let (_, egress) = pushes.remove(i);
        drop(pushes);
        egress.stop();
        true
    }

    /// Stops the pipeline (blocking: waits for its streaming threads).
    pub fn stop(&self) {
        self.inner.stop();
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
            pushes: inner.pushes.lock().expect("pushes lock").iter().map(|(id, e)| push_status(*id, e)).collect(),
            vp8: inner.vp8.as_ref().map(|v| v.status()),
            ladder: inner.ladder.iter().map(|g| g.status()).collect(),
            recording: inner
                .recording
                .lock()
                .expect("recording lock")
                .as_deref()
                .map(super::tap::recorder::Recorder::status),
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

    /// Checks the offer, links a new viewer branch and negotiates it. Returns the viewer and the answer.
    pub async fn add_viewer(&self, id: SessionId, offer: &str) -> Result<(Peer, String), MediaError> {
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
            return Ok((Peer::Viewer(ViewerHandle::Forward(Arc::new(viewer))), plan.aside.restore(&answer)));
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
        Ok((Peer::Viewer(ViewerHandle::Webrtcbin(viewer)), plan.aside.restore(&answer)))
    }
}

fn push_status(id: u32, e: &Egress) -> PushStatus {
    let (state, last_error) = match e.state() {
        EgressState::Connecting => ("connecting", None),
        EgressState::Connected => ("connected", None),
        EgressState::Retrying { last_error, .. } => ("retrying", Some(last_error)),
        EgressState::Stopped => ("stopped", None),
    };
    PushStatus { id, target: e.target(), state, last_error, bytes_sent: e.bytes_sent(), attempts: e.attempts() }
}

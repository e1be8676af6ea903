//! Recording (issue 21, first part): a stream's encoded H.264 and Opus, not encoded again, into fragmented
//! MP4 files named by their UTC start time. Each file starts on a keyframe and is written as a `moov` then
//! fragments of at most about a second, so a process killed mid-file leaves a file that plays up to its
//! last fragment; at a clean stop the file is finished with its full index.
//!
//! ```text
//! stream pipeline, for the recording's lifetime (no encoder added):
//!   {tee h264} - {queue leaky 300 ms} - {appsink}      (tap.rs)
//!  [{tee opus} - {queue leaky 300 ms} - {appsink}]
//!       ==> samples, timestamps made running time
//! recording pipeline (its own bus: a full disk fails the recording, not the stream):
//!   {appsrc h264} - {h264parse} - {splitmuxsink: mp4mux fragment-duration=1 s - filesink DIR/UTC.mp4}
//!  [{appsrc opus} - {opusparse} - /]
//! ```
//!
//! The video appsrc passes nothing before the first keyframe, and the audio nothing before the video has
//! started, so a file never begins with a picture it cannot decode. `splitmuxsink` starts the next file at
//! the encoder's first keyframe after `segment_s` (every `keyframe_interval_s`; asking for extra ones made
//! one-frame files when they came right after a regular one), so files last `segment_s` rounded up to the
//! keyframe interval, and the first one starts at the first keyframe after the recording does.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use super::tap::{Tap, add_tap, feed_src, remove_tap};

/// Fragments of at most this long (what a kill -9 can lose at the end of a file).
const FRAGMENT_MS: u32 = 1000;
/// How long a stop waits for the last file to be finished.
const FINISH_TIMEOUT: Duration = Duration::from_secs(5);

/// A recording's state, as `/readyz` and the admin API show it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RecordingStatus {
    /// recording, failed (`last_error` says why; the stream goes on), stopped.
    pub state: &'static str,
    pub dir: String,
    /// Files started since the recording began, and the one being written.
    pub files: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

#[derive(Default)]
struct Shared {
    failed: Mutex<Option<String>>,
    stopped: AtomicBool,
    files: AtomicU64,
    current: Mutex<Option<PathBuf>>,
    /// The stream running time of the first keyframe let in (the recording's 0; none yet: nothing goes in),
    /// and the wall-clock time it went in (files are named by it plus their first sample's time).
    origin: Mutex<Option<(gst::ClockTime, std::time::SystemTime)>>,
}

/// A running recording; [`Recording::stop`] (or drop) finishes the last file and removes the taps.
pub struct Recording {
    stream: gst::Pipeline,
    pipeline: gst::Pipeline,
    taps: Vec<Tap>,
    sources: Vec<gst_app::AppSrc>,
    dir: PathBuf,
    shared: Arc<Shared>,
}

/// Starts recording `stream` (its encoded tees) into `dir`, a new file every `segment`.
pub fn start(
    stream: &gst::Pipeline,
    h264_tee: &gst::Element,
    opus_tee: Option<&gst::Element>,
    dir: &Path,
    segment: Duration,
    name: &str,
) -> anyhow::Result<Recording> {
    check_dir(dir)?;
    let shared = Arc::new(Shared::default());
    let pipeline = gst::Pipeline::with_name(&format!("record-{name}"));
    let splitmux = splitmux(dir, segment, &shared)?;
    pipeline.add(&splitmux).context("adding splitmuxsink")?;
    let id = format!("record-{name}");
    let mut taps = vec![add_tap(stream, h264_tee, true, &id)?];
    if let Some(tee) = opus_tee {
        taps.push(add_tap(stream, tee, false, &id).inspect_err(|_| remove_tap(stream, &taps[0]))?);
    }
    let mut recording =
        Recording { stream: stream.clone(), pipeline, taps, sources: Vec::new(), dir: dir.to_owned(), shared };
    recording.link(&splitmux)?;
    watch_bus(&recording.pipeline, &recording.shared, name);
    recording.pipeline.set_state(gst::State::Playing).context("starting the recording pipeline")?;
    for (tap, src) in recording.taps.iter().zip(&recording.sources) {
        *tap.feed.lock().expect("tap feed lock") = Some(src.clone());
    }
    tracing::info!(stream = name, dir = %dir.display(), segment_s = segment.as_secs(), "recording");
    Ok(recording)
}

/// `splitmuxsink` with fragmented `mp4mux`, naming each file by the UTC time it starts.
fn splitmux(dir: &Path, segment: Duration, shared: &Arc<Shared>) -> anyhow::Result<gst::Element> {
    let mux = gst::ElementFactory::make("mp4mux").property("fragment-duration", FRAGMENT_MS).build()?;
    let splitmux = gst::ElementFactory::make("splitmuxsink")
        .property("muxer", &mux)
        .property("max-size-time", u64::try_from(segment.as_nanos()).unwrap_or(u64::MAX))
        .build()
        .context("splitmuxsink (gst-plugins-good)")?;
    let (dir, shared) = (dir.to_owned(), Arc::clone(shared));
    splitmux.connect("format-location-full", false, move |args| {
        // Its first sample's time on the recording's timeline, from the wall-clock time of that timeline's 0.
        let offset =
            args.get(2).and_then(|v| v.get::<gst::Sample>().ok()).and_then(|s| s.buffer().and_then(|b| b.pts()));
        let origin = shared.origin.lock().expect("origin lock").map(|(_, wall)| wall);
        let start =
            origin.map_or_else(std::time::SystemTime::now, |o| o + offset.map_or(Duration::ZERO, Duration::from));
        let path = next_file(&dir, start);
        shared.files.fetch_add(1, Ordering::Relaxed);
        *shared.current.lock().expect("current file lock") = Some(path.clone());
        Some(path.to_string_lossy().into_owned().to_value())
    });
    Ok(splitmux)
}

/// `DIR/20261203T134501Z.mp4` for a file starting at `start` (with `-2`, `-3` ... if that name is taken).
fn next_file(dir: &Path, start: std::time::SystemTime) -> PathBuf {
    let unix = start.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let stamp = glib::DateTime::from_unix_utc(i64::try_from(unix).unwrap_or(0))
        .and_then(|t| t.format("%Y%m%dT%H%M%SZ"))
        .map_or_else(|_| "recording".to_owned(), |s| s.to_string());
    let mut path = dir.join(format!("{stamp}.mp4"));
    for n in 2.. {
        if !path.exists() {
            break;
        }
        path = dir.join(format!("{stamp}-{n}.mp4"));
    }
    path
}

impl Recording {
    /// `{appsrc} - {parser} - {splitmuxsink}` per track.
    fn link(&mut self, splitmux: &gst::Element) -> anyhow::Result<()> {
        for tap in &self.taps {
            let src = feed_src(if tap.video { 120 } else { 200 });
            let parser = gst::ElementFactory::make(if tap.video { "h264parse" } else { "opusparse" }).build()?;
            self.pipeline.add_many([src.upcast_ref(), &parser]).context("adding the recording's track")?;
            src.link(&parser).context("linking appsrc to its parser")?;
            let template = if tap.video { "video" } else { "audio_%u" };
            let pad = splitmux.request_pad_simple(template).context("a splitmuxsink pad")?;
            parser.static_pad("src").expect("a parser has a src pad").link(&pad).context("linking to splitmuxsink")?;
            gate(&src, tap, &self.shared);
            self.sources.push(src);
        }
        Ok(())
    }

    pub fn status(&self) -> RecordingStatus {
        let failed = self.shared.failed.lock().expect("failed lock").clone();
        let state = match (&failed, self.shared.stopped.load(Ordering::Relaxed)) {
            (_, true) => "stopped",
            (Some(_), _) => "failed",
            (None, false) => "recording",
        };
        let current = self.shared.current.lock().expect("current file lock").clone();
        RecordingStatus {
            state,
            dir: self.dir.display().to_string(),
            files: self.shared.files.load(Ordering::Relaxed),
            current_file: current.map(|p| p.display().to_string()),
            last_error: failed,
        }
    }

    /// Finishes the last file (EOS through the muxer, up to 5 s) and removes the taps (blocking).
    pub fn stop(&self) {
        if self.shared.stopped.swap(true, Ordering::Relaxed) {
            return;
        }
        for tap in &self.taps {
            *tap.feed.lock().expect("tap feed lock") = None;
        }
        for src in &self.sources {
            let _ = src.end_of_stream();
        }
        if let Some(bus) = self.pipeline.bus() {
            let done = [gst::MessageType::Eos, gst::MessageType::Error];
            let _ = bus.timed_pop_filtered(gst::ClockTime::from_mseconds(FINISH_TIMEOUT.as_millis() as u64), &done);
        }
        let _ = self.pipeline.set_state(gst::State::Null);
        for tap in &self.taps {
            remove_tap(&self.stream, tap);
        }
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Nothing before the first keyframe on the video; nothing on the audio before the video has begun. Both
/// tracks' timestamps are moved so that this keyframe is at 0 (the recording's own timeline: `splitmuxsink`
/// measures its segments from there). Keyframe requests from `splitmuxsink` go up the tap to the shared
/// encoder.
fn gate(src: &gst_app::AppSrc, tap: &Tap, shared: &Arc<Shared>) {
    let pad = src.static_pad("src").expect("appsrc has a src pad");
    let (video, shared) = (tap.video, Arc::clone(shared));
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        let Some(buffer) = info.buffer_mut() else { return gst::PadProbeReturn::Ok };
        let Some(pts) = buffer.pts() else { return gst::PadProbeReturn::Drop };
        let keyframe = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
        let origin = {
            let mut origin = shared.origin.lock().expect("origin lock");
            match (*origin, video && keyframe) {
                (Some((t, _)), _) => t,
                (None, true) => origin.insert((pts, std::time::SystemTime::now())).0,
                (None, false) => return gst::PadProbeReturn::Drop,
            }
        };
        let Some(rebased) = pts.checked_sub(origin) else { return gst::PadProbeReturn::Drop };
        let b = buffer.make_mut();
        b.set_pts(rebased);
        b.set_dts(b.dts().and_then(|d| d.checked_sub(origin)).or(Some(rebased)));
        gst::PadProbeReturn::Ok
    });
}

/// A bus error (an unwritable directory, a full disk) fails the recording; the stream goes on.
fn watch_bus(pipeline: &gst::Pipeline, shared: &Arc<Shared>, name: &str) {
    let Some(bus) = pipeline.bus() else { return };
    let (shared, name) = (Arc::downgrade(shared), name.to_owned());
    bus.set_sync_handler(move |_, msg| {
        if let gst::MessageView::Error(e) = msg.view()
            && let Some(shared) = shared.upgrade()
            && !shared.stopped.load(Ordering::Relaxed)
        {
            let why = e.error().to_string();
            tracing::warn!(stream = %name, error = %why, "recording failed; the stream goes on");
            *shared.failed.lock().expect("failed lock") = Some(why);
        }
        // Only what [`Recording::stop`] waits for stays on the bus.
        match msg.view() {
            gst::MessageView::Eos(_) | gst::MessageView::Error(_) => gst::BusSyncReply::Pass,
            _ => gst::BusSyncReply::Drop,
        }
    });
}

/// Makes `dir` (owner only: recordings hold someone's screen and sound) and fails unless it can be
/// written; checked before a recording starts, so the error names the directory.
fn check_dir(dir: &Path) -> anyhow::Result<()> {
    crate::state::private_dir(dir)?;
    let probe = dir.join(".glasscast-write-test");
    if let Err(e) = std::fs::write(&probe, b"") {
        bail!("cannot write in {}: {e}", dir.display());
    }
    let _ = std::fs::remove_file(probe);
    Ok(())
}

//! One recording file: a stream's encoded H.264 and Opus, not encoded again, into a fragmented MP4 named
//! by the UTC time of its first frame. It starts on a keyframe and is written as a `moov` then fragments
//! of at most a second, straight to the file (no buffering), so a process killed mid-file leaves a file
//! that plays up to its last fragment; at a clean stop the file is finished with its index. The recorder
//! (recorder.rs) starts the next file's pipeline beside this one and hands over at a keyframe: the new one
//! begins at the first keyframe its taps see, and this one ends just before that same keyframe (if it
//! got a few frames past it already, they are in both files: a hand-over never loses a frame).
//!
//! ```text
//! stream pipeline, for the file's lifetime (no encoder added):
//!   {tee h264} - {queue leaky 300 ms} - {appsink}      (tap.rs)
//!  [{tee opus} - {queue leaky 300 ms} - {appsink}]
//!       ==> samples, timestamps made running time
//! the file's pipeline (its own bus: a full disk fails the recording, not the stream):
//!   {appsrc h264} - {h264parse} - {mp4mux fragment-duration=1 s} - {filesink DIR/UTC.mp4, unbuffered}
//!  [{appsrc opus} - {opusparse} - /]
//!   gate (a probe on each appsrc): nothing before the first keyframe, nothing from the next file's first
//!   keyframe on; both tracks rebased to the first keyframe. The filesink opens the file (named then)
//!   when that keyframe comes, and the previous file is told to end there.
//! ```

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use super::feed::{Tap, add_tap, feed_src, remove_tap, request_keyframe};

/// Fragments of at most this long (what a kill -9 can lose at the end of a file).
const FRAGMENT_MS: u32 = 1000;
/// How long a stop waits for the file to be finished.
const FINISH_TIMEOUT: Duration = Duration::from_secs(5);

/// What a stream's recordings have done so far (across the files its recorder started).
#[derive(Debug, Default)]
pub struct Counters {
    /// Files started.
    pub files: AtomicU64,
    /// Bytes handed to the files.
    pub bytes: AtomicU64,
    /// Files retention deleted.
    pub deleted: AtomicU64,
    /// The file being written, and the wall-clock time of its first frame (set as a file opens).
    pub current: Mutex<Option<(PathBuf, SystemTime)>>,
}

/// The stream's pipeline and the encoded tees a recording taps.
#[derive(Clone)]
pub struct Tees {
    pub pipeline: gst::Pipeline,
    pub h264: gst::Element,
    pub opus: Option<gst::Element>,
}

#[derive(Default)]
struct Shared {
    /// Why the file failed (a write error from the filesink is kept over what it made others say).
    failed: Mutex<Option<(String, bool)>>,
    stopped: AtomicBool,
    counters: Arc<Counters>,
    dir: PathBuf,
    /// The first keyframe let in (the file's 0; none yet: nothing goes in), its wall-clock time, and the
    /// file named by it.
    origin: Mutex<Option<(gst::ClockTime, SystemTime, PathBuf)>>,
    /// Nothing from this stream running time on: the next file's first keyframe (set by the next file).
    end_at: Arc<Mutex<Option<gst::ClockTime>>>,
    /// The previous file's `end_at`, set to this file's first keyframe.
    previous_end: Option<Arc<Mutex<Option<gst::ClockTime>>>>,
}

/// A file being recorded; [`Recording::stop`] (or drop) finishes it and removes the taps.
pub struct Recording {
    stream: gst::Pipeline,
    pipeline: gst::Pipeline,
    taps: Vec<Tap>,
    sources: Vec<gst_app::AppSrc>,
    shared: Arc<Shared>,
}

/// Starts a file of the stream (its encoded tees) in `dir` at the first keyframe, counting into
/// `counters`; `previous` (the file it takes over from) ends at that keyframe.
pub fn start(
    tees: &Tees,
    dir: &Path,
    name: &str,
    counters: Arc<Counters>,
    previous: Option<&Recording>,
) -> anyhow::Result<Recording> {
    check_dir(dir)?;
    let previous_end = previous.map(|p| Arc::clone(&p.shared.end_at));
    let shared = Arc::new(Shared { counters, dir: dir.to_owned(), previous_end, ..Shared::default() });
    // Two files' pipelines run at once at a hand-over: their elements on the stream's pipeline need
    // names of their own.
    static SERIAL: AtomicU64 = AtomicU64::new(1);
    let id = format!("record-{name}-{}", SERIAL.fetch_add(1, Ordering::Relaxed));
    let pipeline = gst::Pipeline::with_name(&id);
    let mux = gst::ElementFactory::make("mp4mux").property("fragment-duration", FRAGMENT_MS).build()?;
    // Unbuffered: what the muxer finished is in the file at once (a kill -9 cannot lose a stdio buffer).
    // Opened (and named) when the first keyframe comes: until then it stays in NULL.
    let sink = gst::ElementFactory::make("filesink")
        .property_from_str("buffer-mode", "unbuffered")
        .property("async", false)
        .build()?;
    sink.set_locked_state(true);
    count_bytes(&sink, &shared.counters);
    pipeline.add_many([&mux, &sink]).context("adding the muxer")?;
    mux.link(&sink).context("linking mp4mux to filesink")?;
    let stream = &tees.pipeline;
    let mut taps = vec![add_tap(stream, &tees.h264, true, &id)?];
    if let Some(tee) = &tees.opus {
        taps.push(add_tap(stream, tee, false, &id).inspect_err(|_| remove_tap(stream, &taps[0]))?);
    }
    let mut recording = Recording { stream: stream.clone(), pipeline, taps, sources: Vec::new(), shared };
    recording.link(&mux, &sink)?;
    watch_bus(&recording.pipeline, &recording.shared, name);
    recording.pipeline.set_state(gst::State::Playing).context("starting the recording pipeline")?;
    for (tap, src) in recording.taps.iter().zip(&recording.sources) {
        *tap.feed.lock().expect("tap feed lock") = Some(src.clone());
    }
    // The file begins at a keyframe: ask for one rather than wait for the encoder's next (a WHIP
    // publisher's may be minutes away, and its first passed before this tap was there).
    request_keyframe(&recording.taps);
    Ok(recording)
}

/// Adds what reaches `sink` to `counters.bytes`.
fn count_bytes(sink: &gst::Element, counters: &Arc<Counters>) {
    let pad = sink.static_pad("sink").expect("filesink has a sink pad");
    let counters = Arc::clone(counters);
    pad.add_probe(gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST, move |_, info| {
        let n = match &info.data {
            Some(gst::PadProbeData::Buffer(b)) => b.size(),
            Some(gst::PadProbeData::BufferList(l)) => l.calculate_size(),
            _ => 0,
        };
        counters.bytes.fetch_add(n as u64, Ordering::Relaxed);
        gst::PadProbeReturn::Ok
    });
}

impl Recording {
    /// `{appsrc} - {parser} - {mp4mux}` per track.
    fn link(&mut self, mux: &gst::Element, sink: &gst::Element) -> anyhow::Result<()> {
        for tap in &self.taps {
            let src = feed_src(if tap.video { 120 } else { 200 });
            let parser = gst::ElementFactory::make(if tap.video { "h264parse" } else { "opusparse" }).build()?;
            self.pipeline.add_many([src.upcast_ref(), &parser]).context("adding the recording's track")?;
            src.link(&parser).context("linking appsrc to its parser")?;
            let pad =
                mux.request_pad_simple(if tap.video { "video_%u" } else { "audio_%u" }).context("an mp4mux pad")?;
            parser.static_pad("src").expect("a parser has a src pad").link(&pad).context("linking to mp4mux")?;
            gate(&src, tap.video, &self.shared, sink);
            self.sources.push(src);
        }
        Ok(())
    }

    /// Why it failed (a write error: a full disk, a removed directory), if it did.
    pub fn failed(&self) -> Option<String> {
        self.shared.failed.lock().expect("failed lock").as_ref().map(|(why, _)| why.clone())
    }

    /// This recording's file and the wall-clock time of its first frame, once it is open.
    pub fn current(&self) -> Option<(PathBuf, SystemTime)> {
        self.shared.origin.lock().expect("origin lock").as_ref().map(|(_, t, p)| (p.clone(), *t))
    }

    /// The next file has begun, and this one takes nothing from its first keyframe on.
    pub fn ended(&self) -> bool {
        self.shared.end_at.lock().expect("end lock").is_some()
    }

    /// Finishes the file (EOS through the muxer, up to 5 s) and removes the taps (blocking).
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
        // A file never opened has nothing to finish (and its sink, still in NULL, posts no EOS).
        if let (Some(bus), Some(_)) = (self.pipeline.bus(), self.current()) {
            let done = [gst::MessageType::Eos, gst::MessageType::Error];
            let _ = bus.timed_pop_filtered(gst::ClockTime::from_mseconds(FINISH_TIMEOUT.as_millis() as u64), &done);
        }
        let _ = self.pipeline.set_state(gst::State::Null);
        for tap in &self.taps {
            remove_tap(&self.stream, tap);
        }
        // Unless the next file has taken over already.
        let mine = self.current().map(|(p, _)| p);
        let mut current = self.shared.counters.current.lock().expect("current file lock");
        if current.as_ref().map(|(p, _)| p) == mine.as_ref() {
            *current = None;
        }
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Where a buffer falls: before the file (drop), in it (rebased by the origin), or after it (drop).
fn place(
    shared: &Shared,
    video: bool,
    keyframe: bool,
    pts: gst::ClockTime,
    sink: &gst::Element,
) -> Option<gst::ClockTime> {
    if shared.end_at.lock().expect("end lock").is_some_and(|at| pts >= at) {
        return None;
    }
    let mut origin = shared.origin.lock().expect("origin lock");
    if let Some((t, _, _)) = &*origin {
        return Some(*t);
    }
    if !(video && keyframe) {
        return None;
    }
    let now = SystemTime::now();
    let path = crate::recordings::next_path(&shared.dir, now);
    // Made 0600 before the filesink opens it (it would make it 0644 by the umask): a recording is the
    // user's screen. Should this fail, the filesink's own error says why.
    if let Err(e) = crate::state::private_file(&path) {
        tracing::debug!(path = %path.display(), error = %e, "could not make the recording file 0600 first");
    }
    sink.set_property("location", path.to_string_lossy().as_ref());
    sink.set_locked_state(false);
    if sink.sync_state_with_parent().is_err() {
        return None;
    }
    shared.counters.files.fetch_add(1, Ordering::Relaxed);
    *shared.counters.current.lock().expect("current file lock") = Some((path.clone(), now));
    *origin = Some((pts, now, path));
    if let Some(end) = &shared.previous_end {
        *end.lock().expect("end lock") = Some(pts);
    }
    Some(pts)
}

/// The file's gate on one track's appsrc ([`place`]): both tracks' timestamps moved so that its first
/// keyframe is at 0.
fn gate(src: &gst_app::AppSrc, video: bool, shared: &Arc<Shared>, sink: &gst::Element) {
    let pad = src.static_pad("src").expect("appsrc has a src pad");
    let (shared, sink) = (Arc::clone(shared), sink.clone());
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        let Some(buffer) = info.buffer_mut() else { return gst::PadProbeReturn::Ok };
        let Some(pts) = buffer.pts() else { return gst::PadProbeReturn::Drop };
        let keyframe = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
        let Some(origin) = place(&shared, video, keyframe, pts, &sink) else { return gst::PadProbeReturn::Drop };
        let Some(rebased) = pts.checked_sub(origin) else { return gst::PadProbeReturn::Drop };
        let b = buffer.make_mut();
        b.set_pts(rebased);
        b.set_dts(b.dts().and_then(|d| d.checked_sub(origin)).or(Some(rebased)));
        gst::PadProbeReturn::Ok
    });
}

/// A bus error (an unwritable directory, a full disk) fails the recording; the stream goes on. The
/// filesink's own error (with the system's reason) is kept over what the elements upstream say after it.
fn watch_bus(pipeline: &gst::Pipeline, shared: &Arc<Shared>, name: &str) {
    let Some(bus) = pipeline.bus() else { return };
    let (shared, name) = (Arc::downgrade(shared), name.to_owned());
    bus.set_sync_handler(move |_, msg| {
        if let gst::MessageView::Error(e) = msg.view()
            && let Some(shared) = shared.upgrade()
            && !shared.stopped.load(Ordering::Relaxed)
        {
            let from_sink = msg.src().is_some_and(|s| s.type_().name() == "GstFileSink");
            let system = e.debug().and_then(|d| d.split_once("system error: ").map(|(_, r)| r.to_owned()));
            let why = match system {
                Some(s) => format!("{}: {s}", e.error()),
                None => e.error().to_string(),
            };
            let mut failed = shared.failed.lock().expect("failed lock");
            if failed.as_ref().is_none_or(|(_, sink)| from_sink && !sink) {
                tracing::warn!(stream = %name, error = %why, "recording failed; the stream goes on");
                *failed = Some((why, from_sink));
            }
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
pub fn check_dir(dir: &Path) -> anyhow::Result<()> {
    crate::state::private_dir(dir)?;
    let probe = dir.join(".glasscast-write-test");
    if let Err(e) = std::fs::write(&probe, b"") {
        bail!("cannot write in {}: {e}", dir.display());
    }
    let _ = std::fs::remove_file(probe);
    Ok(())
}

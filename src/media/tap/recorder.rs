//! A stream's recorder: a thread that keeps a recording pipeline ([`super::record`]) going while the
//! operator wants one, and applies the retention policy to the stream's directory.
//!
//! ```text
//!   every second:  a file older than segment_s -> start the next file's pipeline; it begins at the first
//!                  keyframe it sees, where the old one ends; once it has, finish the old one
//!                  sweep dir (keep_days, max_size_mb, min_free_mb; oldest first; never the current file)
//!                  recording, and it failed (a full disk, dir gone)   -> stop it, wait (reason), retry later
//!                  recording, and free < min_free_mb after the sweep  -> finish the file, wait (reason)
//!                  waiting, free >= min_free_mb + 2 MiB, dir writable -> start a new file ("resumed")
//! ```
//!
//! The stream and its viewers never wait for any of it: the recording pipeline is apart, and this thread
//! only adds or removes taps on the stream's tees.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::record::{Counters, Recording, Tees};
use crate::recordings::{self, Retention};

/// How often the recorder looks (retention, free space, a failed pipeline, a retry).
const TICK: Duration = Duration::from_secs(1);
/// Free space, above `min_free_mb`, a new file needs: resuming right at the threshold would stop again at
/// once.
const START_MARGIN: u64 = 2 << 20;
/// Waits between attempts after a failure: doubling from the first to the last.
const BACKOFF: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(10));
/// A recording that ran this long resets the backoff.
const HEALTHY: Duration = Duration::from_secs(30);

/// What a recorder is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSettings {
    pub dir: PathBuf,
    pub segment: Duration,
    pub retention: Retention,
}

/// A stream's recording now (`session::RecordingReport` shows it in `/readyz`; the metrics read it too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingStatus {
    /// `recording`, `waiting` (with the `reason`) or `stopped`.
    pub state: &'static str,
    pub reason: Option<String>,
    pub dir: String,
    pub files: u64,
    pub bytes_written: u64,
    pub files_deleted: u64,
    pub current_file: Option<String>,
    pub current_started_ms: Option<u64>,
    pub dir_bytes: u64,
    pub free_bytes: Option<u64>,
}

/// What the thread last saw.
#[derive(Debug, Default)]
struct View {
    state: &'static str,
    reason: Option<String>,
    dir_bytes: u64,
    free: Option<u64>,
}

/// A running recorder; [`Recorder::stop`] finishes the file and joins the thread.
pub struct Recorder {
    dir: PathBuf,
    counters: Arc<Counters>,
    view: Arc<Mutex<View>>,
    stop: Mutex<Option<Sender<()>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Recorder {
    /// Starts the recorder's thread; the first file starts at once if it can (else it waits, and says
    /// why).
    pub fn start(tees: Tees, settings: RecordSettings, stream: &str, counters: Arc<Counters>) -> Recorder {
        let view = Arc::new(Mutex::new(View { state: "waiting", ..View::default() }));
        let (tx, rx) = channel();
        let mut sup = Supervisor {
            tees,
            settings: settings.clone(),
            stream: stream.to_owned(),
            counters: Arc::clone(&counters),
            view: Arc::clone(&view),
            rec: None,
            next: None,
            retry_at: Instant::now(),
            backoff: BACKOFF.0,
            told_space: false,
        };
        tracing::info!(stream, dir = %settings.dir.display(), segment_s = settings.segment.as_secs(), "recording");
        let thread = std::thread::Builder::new()
            .name(format!("record-{stream}"))
            .spawn(move || sup.run(&rx))
            .expect("a thread for the recorder");
        Recorder { dir: settings.dir, counters, view, stop: Mutex::new(Some(tx)), thread: Mutex::new(Some(thread)) }
    }

    pub fn status(&self) -> RecordingStatus {
        let v = self.view.lock().expect("recorder view lock");
        let c = &self.counters;
        let current = c.current.lock().expect("current file lock").clone();
        RecordingStatus {
            state: v.state,
            reason: v.reason.clone(),
            dir: self.dir.display().to_string(),
            files: c.files.load(Ordering::Relaxed),
            bytes_written: c.bytes.load(Ordering::Relaxed),
            files_deleted: c.deleted.load(Ordering::Relaxed),
            current_file: current.as_ref().map(|(p, _)| p.display().to_string()),
            current_started_ms: current.as_ref().map(|(_, t)| unix_ms(*t)),
            dir_bytes: v.dir_bytes,
            free_bytes: v.free,
        }
    }

    /// Its thread runs (it has not been stopped).
    pub fn is_running(&self) -> bool {
        self.thread.lock().expect("recorder thread lock").is_some()
    }

    /// The file being written now (as it starts, not at the next look).
    pub fn current_file(&self) -> Option<PathBuf> {
        self.counters.current.lock().expect("current file lock").as_ref().map(|(p, _)| p.clone())
    }

    /// Finishes the file being written (up to 5 s) and joins the thread (blocking). The status stays, as
    /// `stopped`.
    pub fn stop(&self) {
        drop(self.stop.lock().expect("recorder stop lock").take());
        if let Some(t) = self.thread.lock().expect("recorder thread lock").take() {
            let _ = t.join();
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop();
    }
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn mib(bytes: u64) -> u64 {
    bytes >> 20
}

/// The recorder thread's state.
struct Supervisor {
    tees: Tees,
    settings: RecordSettings,
    stream: String,
    counters: Arc<Counters>,
    view: Arc<Mutex<View>>,
    rec: Option<(Recording, Instant)>,
    /// The next file, started beside `rec` to take over at a keyframe.
    next: Option<Recording>,
    retry_at: Instant,
    backoff: Duration,
    /// It said it waits for space (once, not at each look: the numbers move).
    told_space: bool,
}

impl Supervisor {
    fn run(&mut self, stop: &Receiver<()>) {
        loop {
            self.tick();
            if !matches!(stop.recv_timeout(TICK), Err(RecvTimeoutError::Timeout)) {
                break;
            }
        }
        self.stop_files();
        let mut v = self.view.lock().expect("recorder view lock");
        (v.state, v.reason) = ("stopped", None);
        tracing::info!(stream = %self.stream, "recording stopped");
    }

    fn tick(&mut self) {
        let dir = self.settings.dir.clone();
        let open: Vec<PathBuf> =
            self.rec.iter().map(|(r, _)| r).chain(&self.next).filter_map(|r| r.current().map(|(p, _)| p)).collect();
        let dir_bytes = self.sweep(&dir, &open);
        let free = crate::host::free_bytes(&dir);
        let min_free = self.settings.retention.min_free;
        match &self.rec {
            Some((rec, _))
                if let Some(err) = rec.failed().or_else(|| self.next.as_ref().and_then(Recording::failed)) =>
            {
                self.pause(format!("writing in {} failed: {err}", dir.display()))
            }
            Some(_) if min_free > 0 && free.is_some_and(|f| f < min_free) => self.pause(format!(
                "{} MiB free in {}, below min_free_mb = {}, and no older recording of this stream is left to delete",
                mib(free.unwrap_or(0)),
                dir.display(),
                mib(min_free)
            )),
            Some(_) => self.rotate(),
            None if Instant::now() >= self.retry_at => self.try_start(free),
            None => {}
        }
        let mut v = self.view.lock().expect("recorder view lock");
        (v.dir_bytes, v.free) = (dir_bytes, free);
    }

    /// Starts the next file once this one is `segment` old; finishes this one once the next has taken over.
    fn rotate(&mut self) {
        let Some((rec, since)) = &self.rec else { return };
        if since.elapsed() > HEALTHY {
            self.backoff = BACKOFF.0;
        }
        if self.next.is_none()
            && rec.current().is_some_and(|(_, t)| t.elapsed().unwrap_or_default() >= self.settings.segment)
        {
            let next = super::record::start(
                &self.tees,
                &self.settings.dir,
                &self.stream,
                Arc::clone(&self.counters),
                Some(rec),
            );
            match next {
                Ok(n) => self.next = Some(n),
                Err(e) => return self.pause(format!("{e:#}")),
            }
        }
        if rec.ended()
            && let Some(next) = self.next.take()
        {
            let since = *since;
            if let Some((old, _)) = self.rec.replace((next, since)) {
                old.stop();
            }
        }
    }

    fn stop_files(&mut self) {
        if let Some((rec, _)) = self.rec.take() {
            rec.stop();
        }
        if let Some(next) = self.next.take() {
            next.stop();
        }
    }

    /// Retention: each deletion logged and counted. Returns what the stream's files take after it.
    fn sweep(&self, dir: &Path, open: &[PathBuf]) -> u64 {
        let r = &self.settings.retention;
        let swept = recordings::sweep(dir, r, open, SystemTime::now(), || crate::host::free_bytes(dir));
        for d in &swept.deleted {
            tracing::info!(stream = %self.stream, file = %d.name, bytes = d.bytes, reason = d.why.as_str(), "recording deleted by retention");
            self.counters.deleted.fetch_add(1, Ordering::Relaxed);
            crate::telemetry::recording_deleted(&self.stream, d.why.as_str());
        }
        swept.bytes
    }

    /// Stops the recording (finishing its file when it can) and waits, saying why.
    fn pause(&mut self, why: String) {
        self.stop_files();
        tracing::warn!(stream = %self.stream, reason = %why, "recording waits; the stream goes on");
        self.wait(why);
        self.retry_at = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(BACKOFF.1);
    }

    fn wait(&self, why: String) {
        let mut v = self.view.lock().expect("recorder view lock");
        (v.state, v.reason) = ("waiting", Some(why));
    }

    /// Starts a file when there is room for one and the directory can be written.
    fn try_start(&mut self, free: Option<u64>) {
        let dir = &self.settings.dir;
        let needed = self.settings.retention.min_free + START_MARGIN;
        if let Some(f) = free.filter(|f| *f < needed) {
            let why = format!("{} MiB free in {}; a new file needs {} MiB", mib(f), dir.display(), mib(needed));
            if !std::mem::replace(&mut self.told_space, true) {
                tracing::warn!(stream = %self.stream, reason = %why, "recording waits for space; the stream goes on");
            }
            return self.wait(why);
        }
        let was_waiting = self.view.lock().expect("recorder view lock").reason.is_some();
        match super::record::start(&self.tees, dir, &self.stream, Arc::clone(&self.counters), None) {
            Ok(rec) => {
                self.told_space = false;
                if was_waiting {
                    tracing::info!(stream = %self.stream, "recording resumed");
                }
                self.rec = Some((rec, Instant::now()));
                let mut v = self.view.lock().expect("recorder view lock");
                (v.state, v.reason) = ("recording", None);
            }
            Err(e) => self.pause(format!("{e:#}")),
        }
    }
}

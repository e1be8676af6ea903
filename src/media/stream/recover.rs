//! Parts of a stream that fail while it runs restart by themselves, and its viewers stay connected.
//!
//! A stream's built-in capture + encode chains (video: source ... encoder, up to the H.264 tee; audio:
//! source ... Opus encoder, up to the Opus tee) each restart as one when an element in them posts an
//! error: a camera unplugged, PulseAudio restarted, an encoder that gave up. Everything from the tees on
//! (payloaders, the forwarding transport's appsinks, webrtcbin viewers, pushes) keeps running, so viewers
//! keep their sessions, sequence numbers and RTP timestamps (the payloaders use running time), and get a
//! fresh keyframe when the encoder starts again. Restarts wait 0.5, 1, 2 ... 30 s when they come in a row
//! (a chain that ran 30 s counts as recovered); errors that arrive while a restart is pending join it.
//! A source attached later (portal, feed, publisher) is not in these chains: `supervise` re-attaches it.
//!
//! `GLASSCAST_TEST_FAULT=encoder-error:N` (`source-error:N`, `audio-error:N`) injects N real failures
//! into the encoder's input (the video source's, the audio source's): every 150th buffer (`...:N@B`: every
//! Bth) fails with a flow error and an error message from the element, as a failing element does. For
//! tests only.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;

use super::Inner;
use crate::ids::StreamName;

/// First wait before a restart, doubled for each failure in a row up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A chain that ran this long since its last restart has recovered: its next failure waits the least.
const STABLE: Duration = Duration::from_secs(30);

/// The wait before restart number `in_row` of a run of failures (1-based).
pub(super) fn backoff(in_row: u32) -> Duration {
    let factor = 1u32 << in_row.saturating_sub(1).min(16);
    FIRST_BACKOFF.saturating_mul(factor).min(MAX_BACKOFF)
}

/// One chain that restarts as one.
pub(super) struct Chain {
    /// "video" or "audio", for logs and `/readyz`.
    what: &'static str,
    /// Upstream first.
    elements: Vec<gst::Element>,
    state: Mutex<ChainState>,
}

#[derive(Debug)]
struct ChainState {
    /// A restart is pending or running.
    restarting: bool,
    /// Failures since the chain last ran [`STABLE`].
    in_row: u32,
    /// When it last (re)started.
    started: Instant,
    /// What failed last, and what is being done about it.
    problem: Option<String>,
}

/// A stream's restartable chains and how often they restarted.
#[derive(Default)]
pub(super) struct Recovery {
    chains: Vec<Chain>,
    restarts: AtomicU64,
}

impl Recovery {
    /// Adds a chain (upstream first); an empty one (a relayed or passed-through stream) is left out. Its
    /// end of stream (a failing element sends one after its error; a live source that ends, one alone)
    /// stops at its last element, which would end every viewer's track, and is a failure of the chain.
    pub(super) fn add(&mut self, what: &'static str, elements: Vec<gst::Element>) {
        let Some(last) = elements.last().cloned() else { return };
        if let Some(pad) = last.static_pad("src") {
            pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
                let Some(gst::PadProbeData::Event(ev)) = &info.data else { return gst::PadProbeReturn::Ok };
                if ev.type_() != gst::EventType::Eos {
                    return gst::PadProbeReturn::Ok;
                }
                gst::element_error!(last, gst::StreamError::Failed, ("the {} chain ended (end of stream)", what));
                crate::media::swallow(info)
            });
        }
        let state = ChainState { restarting: false, in_row: 0, started: Instant::now(), problem: None };
        self.chains.push(Chain { what, elements, state: Mutex::new(state) });
    }

    /// The chain holding the element that posted `msg` (or an ancestor of it), by index.
    pub(super) fn chain_of(&self, msg: &gst::Message) -> Option<usize> {
        let mut obj = msg.src().cloned();
        while let Some(o) = obj {
            if let Some(i) =
                self.chains.iter().position(|c| c.elements.iter().any(|e| e.upcast_ref::<gst::Object>() == &o))
            {
                return Some(i);
            }
            obj = o.parent();
        }
        None
    }

    /// Restarts so far, all chains together.
    pub(super) fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    /// The newest problem of a chain that is restarting now (`None` when every chain runs).
    pub(super) fn problem(&self) -> Option<String> {
        self.chains.iter().find_map(|c| {
            let s = c.state.lock().expect("chain state lock");
            s.restarting.then(|| s.problem.clone()).flatten()
        })
    }

    /// Notes chain `i`'s failure; returns the wait before restarting it, or `None` when a restart is
    /// already pending (the failure joins it).
    fn fail(&self, i: usize, reason: &str) -> Option<Duration> {
        let chain = &self.chains[i];
        let mut s = chain.state.lock().expect("chain state lock");
        if s.restarting {
            return None;
        }
        if s.started.elapsed() >= STABLE {
            s.in_row = 0;
        }
        s.in_row += 1;
        s.restarting = true;
        let wait = backoff(s.in_row);
        s.problem = Some(format!(
            "the {} chain failed: {reason}; restarting it in {} ms (failure {} in a row)",
            chain.what,
            wait.as_millis(),
            s.in_row
        ));
        Some(wait)
    }

    /// Stops chain `i` (upstream first) and starts it again with the pipeline (downstream first), and
    /// `attached` after it (a source attached to a video chain, which stopped with it).
    fn restart(&self, i: usize, attached: Option<gst::Element>) -> Result<(), String> {
        let chain = &self.chains[i];
        for e in &chain.elements {
            let _ = e.set_state(gst::State::Null);
        }
        let started =
            chain.elements.iter().rev().chain(attached.as_ref().filter(|_| chain.what == "video")).try_for_each(|e| {
                e.sync_state_with_parent().map_err(|_| format!("{} would not start again", e.name()))
            });
        let mut s = chain.state.lock().expect("chain state lock");
        s.started = Instant::now();
        s.restarting = false;
        if started.is_ok() {
            self.restarts.fetch_add(1, Ordering::Relaxed);
        }
        started
    }
}

/// Chain `i` of the stream failed: restart it after its backoff, and again (longer) while it will not
/// start. Call on the runtime (the bus task).
pub(super) fn on_failure(inner: &Arc<Inner>, i: usize, reason: String) {
    let Some(wait) = inner.recovery.fail(i, &reason) else { return };
    let name = inner.name.clone();
    let part = inner.recovery.chains[i].what;
    tracing::warn!(stream = %name, part, %reason, retry_in_ms = wait.as_millis() as u64, "stream part failed, restarting it");
    let weak = Arc::downgrade(inner);
    tokio::spawn(restart_after(weak, name, i, wait));
}

async fn restart_after(weak: Weak<Inner>, name: StreamName, i: usize, mut wait: Duration) {
    loop {
        tokio::time::sleep(wait).await;
        let Some(inner) = weak.upgrade() else { return };
        let attached = inner.slot.as_ref().and_then(|s| s.current.lock().expect("slot lock").clone());
        let restarted = {
            let inner = inner.clone();
            tokio::task::spawn_blocking(move || inner.recovery.restart(i, attached)).await
        };
        match restarted {
            Ok(Ok(())) => {
                let part = inner.recovery.chains[i].what;
                tracing::info!(stream = %name, part, restarts = inner.recovery.restarts(), "stream part restarted");
                return;
            }
            Ok(Err(why)) => match inner.recovery.fail(i, &why) {
                Some(next) => {
                    tracing::warn!(stream = %name, %why, retry_in_ms = next.as_millis() as u64, "restart failed");
                    wait = next;
                }
                None => return,
            },
            Err(_) => return,
        }
    }
}

/// The failures `GLASSCAST_TEST_FAULT` asks for at `target` (`encoder`, `source`, `audio`): how many, and
/// every how many buffers (`encoder-error:N` or `encoder-error:N@BUFFERS`; 150 unless said).
fn faults_for(target: &str) -> Option<(u32, u64)> {
    let spec = crate::media::test_fault()?;
    spec.split(',').find_map(|f| {
        let rest = f.strip_prefix(target)?.strip_prefix("-error:")?;
        let (n, every) = rest.split_once('@').unwrap_or((rest, "150"));
        Some((n.parse().ok()?, every.parse().ok().filter(|e| *e > 0)?))
    })
}

/// Injects the test faults asked for (see the module): on the encoder's input, or the first element's
/// output of the video or audio chain.
pub(super) fn inject_faults(video: &[gst::Element], encoder: Option<&gst::Element>, audio: &[gst::Element]) {
    let targets = [
        ("encoder", encoder.and_then(|e| Some((e.clone(), e.static_pad("sink")?)))),
        ("source", video.first().and_then(|e| Some((e.clone(), e.static_pad("src")?)))),
        ("audio", audio.first().and_then(|e| Some((e.clone(), e.static_pad("src")?)))),
    ];
    for (target, at) in targets {
        if let (Some((element, pad)), Some((n, every))) = (at, faults_for(target)) {
            tracing::warn!(target, n, every, "GLASSCAST_TEST_FAULT: injecting failures");
            fail_every(&pad, element, n, every);
        }
    }
}

/// Every `every`th buffer through `pad` fails, `n` times: `element` posts an error and the flow returns
/// one.
fn fail_every(pad: &gst::Pad, element: gst::Element, n: u32, every: u64) {
    let seen = AtomicU64::new(0);
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        let k = seen.fetch_add(1, Ordering::Relaxed) + 1;
        if !k.is_multiple_of(every) || k / every > u64::from(n) {
            return gst::PadProbeReturn::Ok;
        }
        gst::element_error!(element, gst::CoreError::Failed, ("injected failure {} (GLASSCAST_TEST_FAULT)", k / every));
        drop(info.data.take());
        info.flow_res = Err(gst::FlowError::Error);
        gst::PadProbeReturn::Handled
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_up_to_thirty_seconds() {
        let waits: Vec<_> = (1..=9).map(|n| backoff(n).as_millis()).collect();
        assert_eq!(waits, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
        assert_eq!(backoff(0), FIRST_BACKOFF);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }

    #[test]
    fn failures_in_a_row_wait_longer_and_join_a_pending_restart() {
        gst::init().expect("gst init");
        let pipeline = gst::Pipeline::new();
        let identity = gst::ElementFactory::make("identity").build().expect("identity");
        pipeline.add(&identity).expect("add");
        let mut r = Recovery::default();
        r.add("video", vec![identity]);
        r.add("audio", Vec::new());
        assert_eq!(r.chains.len(), 1, "an empty chain is left out");
        assert_eq!(r.fail(0, "boom"), Some(backoff(1)));
        assert_eq!(r.fail(0, "boom again"), None, "joins the pending restart");
        assert!(r.problem().is_some_and(|p| p.contains("video chain failed: boom;")));
        assert_eq!(r.restart(0, None), Ok(()));
        assert_eq!((r.restarts(), r.problem()), (1, None));
        assert_eq!(r.fail(0, "soon again"), Some(backoff(2)), "it did not run 30 s");
        {
            let mut s = r.chains[0].state.lock().expect("lock");
            s.started = s.started.checked_sub(STABLE).expect("the machine has run 30 s");
            s.restarting = false;
        }
        assert_eq!(r.fail(0, "much later"), Some(backoff(1)), "it ran 30 s: recovered");
    }
}

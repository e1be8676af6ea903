//! A stream's second encoding, VP8, made only while a viewer needs it (a browser without H.264: Firefox
//! without its OpenH264 plugin), shared by every VP8 viewer of the stream, and stopped [`LINGER`] after the
//! last one leaves:
//!
//! ```text
//! {tee raw} - {queue leaky 1} - {vp8enc deadline=1 (real time) cbr error-resilient lag 0, 1 thread, nice 10}
//!           - {rtpvp8pay pt=97 picture-id 15 bit} - {appsink} --> mux thread (forwarding transport)
//! ```
//!
//! A stream with no raw video (a WHIP publisher's H.264 relayed, a passed-through feed) decodes its H.264 for
//! these viewers only: `{tee h264} - {queue leaky 60} - {h264parse} - {avdec_h264} - {videoconvert}`, then
//! the same branch from its leaky queue on. The decode costs CPU per stream while VP8 viewers watch, and
//! starts at the next keyframe (one is asked for when the branch starts).
//!
//! The raw tee sits before the H.264 encoder's own leaky queue, so the H.264 branch never waits for this
//! one. Keyframe requests of VP8 viewers go upstream from the payloader's sink pad, rate-limited like the
//! H.264 encoder's ([`super::keyframes`]), and their loss reports step its bitrate down and up like the
//! H.264 encoder's ([`super::congestion`]), each encoder hearing only its own viewers.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use anyhow::Context;
use gstreamer as gst;
use gstreamer::prelude::*;

use super::congestion::{LossReport, RateControl};
use super::keyframes::KeyframeCounters;
use super::meter::FrameMeter;
use crate::ids::StreamName;
use crate::media::forward::{Forward, StreamSlot};

/// How long the encoder keeps running after its last viewer left (a reload or a reconnect reuses it).
pub const LINGER: Duration = Duration::from_secs(5);

/// The payload type the shared VP8 payloader uses (each viewer's packets carry the viewer's own).
pub const VP8_PT: u32 = 97;

/// What the encoder is given: the stream's bitrate (and congestion control's floor), frame rate and keyframe
/// interval.
#[derive(Debug, Clone, Copy)]
pub struct Vp8Params {
    pub bitrate_kbps: u32,
    pub min_bitrate_kbps: u32,
    pub fps: u32,
    pub keyframe_interval_s: u32,
}

struct Branch {
    tee_pad: gst::Pad,
    elements: Vec<gst::Element>,
    /// Encoded VP8 frames (the payloader's input) and keyframe requests of its viewers.
    meter: Arc<FrameMeter>,
    keyframes: Arc<KeyframeCounters>,
}

/// The VP8 encoding now (readiness, metrics, admission).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Vp8Status {
    /// The encoder is in the pipeline.
    pub running: bool,
    pub viewers: usize,
    /// Encoded frames per second while running (`None` in its first second).
    pub fps: Option<f64>,
    /// Keyframes its viewers asked for (joins, PLIs, FIRs) and those passed to the encoder (at most one per
    /// 250 ms), since it last started.
    pub keyframes_requested: u64,
    pub keyframes_sent: u64,
}

#[derive(Default)]
struct State {
    viewers: usize,
    branch: Option<Branch>,
    /// Bumped on every release: a scheduled stop only acts if nothing changed since.
    generation: u64,
}

/// Where the VP8 branch takes its pictures.
pub enum Vp8Input {
    /// The stream's raw video tee (before its H.264 encoder).
    Raw(gst::Element),
    /// The stream's H.264 tee (a relayed stream): decoded first.
    Decode(gst::Element),
}

impl Vp8Input {
    fn tee(&self) -> &gst::Element {
        match self {
            Self::Raw(t) | Self::Decode(t) => t,
        }
    }
}

/// The on-demand VP8 encoding of one stream.
pub struct Vp8Encoding {
    name: StreamName,
    pipeline: gst::Pipeline,
    input: Vp8Input,
    forward: Forward,
    slot: StreamSlot,
    params: Vp8Params,
    state: Mutex<State>,
}

/// A VP8 viewer's share of the encoding: the encoder runs while one is held.
pub struct Vp8Lease(Arc<Vp8Encoding>);

impl Drop for Vp8Lease {
    fn drop(&mut self) {
        self.0.release();
    }
}

impl Vp8Encoding {
    pub fn new(
        name: StreamName,
        pipeline: gst::Pipeline,
        input: Vp8Input,
        (forward, slot): (Forward, StreamSlot),
        params: Vp8Params,
    ) -> Arc<Self> {
        Arc::new(Self { name, pipeline, input, forward, slot, params, state: Mutex::default() })
    }

    /// Whether the encoder is in the pipeline now, how many viewers hold it, its rate and keyframes.
    pub fn status(&self) -> Vp8Status {
        use std::sync::atomic::Ordering::Relaxed;
        let s = self.state.lock().expect("vp8 state lock");
        let branch = s.branch.as_ref();
        Vp8Status {
            running: self.pipeline.by_name(&self.encoder_name()).is_some(),
            viewers: s.viewers,
            fps: branch.and_then(|b| b.meter.fps()),
            keyframes_requested: branch.map_or(0, |b| b.keyframes.requested.load(Relaxed)),
            keyframes_sent: branch.map_or(0, |b| b.keyframes.sent.load(Relaxed)),
        }
    }

    /// Why another viewer would make this encoding worse for all of its viewers: it has viewers and makes
    /// fewer than 80% of the stream's frames (the machine cannot run it at full rate), as admission control
    /// judges the H.264 encoder. `None`: take it.
    pub fn overloaded(&self) -> Option<String> {
        overloaded(&self.status(), self.params.fps)
    }

    fn encoder_name(&self) -> String {
        format!("vp8enc-{}", self.name)
    }

    /// A share for a new VP8 viewer; starts the encoder when none runs.
    pub fn lease(self: &Arc<Self>) -> anyhow::Result<Vp8Lease> {
        let mut s = self.state.lock().expect("vp8 state lock");
        if s.branch.is_none() {
            s.branch = Some(self.start().with_context(|| format!("starting stream `{}`'s VP8 encoder", self.name))?);
            tracing::info!(stream = %self.name, "VP8 encoding started (a viewer without H.264)");
        }
        s.viewers += 1;
        s.generation += 1;
        Ok(Vp8Lease(self.clone()))
    }

    fn release(self: &Arc<Self>) {
        let generation = {
            let mut s = self.state.lock().expect("vp8 state lock");
            s.viewers = s.viewers.saturating_sub(1);
            s.generation += 1;
            if s.viewers > 0 {
                return;
            }
            s.generation
        };
        let weak: Weak<Self> = Arc::downgrade(self);
        std::thread::spawn(move || {
            std::thread::sleep(LINGER);
            if let Some(enc) = weak.upgrade() {
                enc.stop_if_unused(generation);
            }
        });
    }

    fn stop_if_unused(&self, generation: u64) {
        let branch = {
            let mut s = self.state.lock().expect("vp8 state lock");
            if s.viewers > 0 || s.generation != generation {
                return;
            }
            s.branch.take()
        };
        if let Some(b) = branch {
            self.forward.detach_vp8(self.slot);
            self.input.tee().release_request_pad(&b.tee_pad);
            for e in b.elements.iter().rev() {
                let _ = e.set_state(gst::State::Null);
            }
            let _ = self.pipeline.remove_many(&b.elements);
            tracing::info!(stream = %self.name, "VP8 encoding stopped (its last viewer left)");
        }
    }

    /// The decoding front of the branch for a relayed stream (none for raw video).
    fn decoder(&self) -> anyhow::Result<Vec<gst::Element>> {
        let Vp8Input::Decode(_) = &self.input else { return Ok(Vec::new()) };
        let make = |f: &str| gst::ElementFactory::make(f).build().with_context(|| format!("creating {f}"));
        // Leaky, so a slow decoder never holds up the H.264 viewers (it then waits for a keyframe).
        Ok(vec![
            crate::media::leaky_queue(60, Duration::ZERO)?,
            make("h264parse")?,
            make("avdec_h264")?,
            make("videoconvert")?,
        ])
    }

    /// Builds the branch, links it to its input tee and starts it with the pipeline.
    fn start(&self) -> anyhow::Result<Branch> {
        let p = self.params;
        let queue = crate::media::leaky_queue(1, Duration::ZERO)?;
        let vp8enc = gst::ElementFactory::make("vp8enc")
            .name(self.encoder_name())
            .property("deadline", 1i64)
            // The fastest real-time speed: half the CPU of cpu-used 8 at 720p30 on this 2-core machine (gst-launch,
            // docs/performance.md); a second encoder must not starve the first.
            .property("cpu-used", 16i32)
            .property_from_str("end-usage", "cbr")
            .property("target-bitrate", (p.bitrate_kbps * 1000) as i32)
            .property("keyframe-max-dist", (p.fps * p.keyframe_interval_s) as i32)
            .property_from_str("error-resilient", "default")
            .property("lag-in-frames", 0i32)
            // One thread (at nice 10: `yield_to_h264`): with two on two cores the second encoder took the
            // first's core too (720p30, while a VP8 viewer watched, H.264 viewers' G2G p50 28.5 ms; one
            // thread 22.3, at nice 10 15.3 against 14.3 without VP8: bench/latency --vp8-churn,
            // docs/performance.md).
            .property("threads", 1i32)
            .build()
            .context("creating vp8enc (gstreamer1.0-plugins-good)")?;
        yield_to_h264(&vp8enc);
        let pay = gst::ElementFactory::make("rtpvp8pay")
            .property("pt", VP8_PT)
            .property_from_str("picture-id-mode", "15-bit")
            .property("mtu", 1200u32)
            .build()
            .context("creating rtpvp8pay")?;
        let mut elements = self.decoder()?;
        elements.extend([queue, vp8enc.clone(), pay.clone()]);
        self.pipeline.add_many(&elements)?;
        gst::Element::link_many(&elements)?;
        let first = elements[0].static_pad("sink").expect("a queue has a sink pad");
        let keyframe_pad = pay.static_pad("sink").expect("rtpvp8pay has a sink pad");
        let keyframes = super::keyframes::limit(&keyframe_pad);
        let meter = FrameMeter::new(std::time::Instant::now());
        meter.attach(&keyframe_pad);
        let src = pay.static_pad("src").expect("rtpvp8pay has a src pad");
        let on_loss = congestion_control(self.name.clone(), p, vp8enc);
        let sink = self.forward.attach_vp8(self.slot, &self.pipeline, &src, keyframe_pad, on_loss)?;
        for e in &elements {
            e.sync_state_with_parent()?;
        }
        let tee_pad = self.input.tee().request_pad_simple("src_%u").context("requesting a tee pad")?;
        tee_pad.link(&first).context("linking the VP8 branch")?;
        if let Vp8Input::Decode(_) = &self.input {
            // The decoder starts at a keyframe: ask the publisher (or feed) for one now.
            first.push_event(super::keyframes::request_event());
        }
        let mut all = elements;
        all.push(sink);
        Ok(Branch { tee_pad, elements: all, meter, keyframes })
    }
}

/// Lowers the priority of the thread that runs `vp8enc` (the leaky queue's before it; one libvpx thread,
/// so the encoding runs there) to nice 10, the first time a frame enters it: when the two encoders want
/// the same core, the H.264 encoder (every other viewer's) goes first, and the VP8 encoder's leaky queue
/// drops what it cannot take.
#[allow(unsafe_code)] // setpriority(2): libc has no safe wrapper, nix none for a thread id.
fn yield_to_h264(vp8enc: &gst::Element) {
    let Some(sink) = vp8enc.static_pad("sink") else { return };
    sink.add_probe(gst::PadProbeType::BUFFER, |_, _| {
        // SAFETY: plain syscalls on the calling thread's own id, no memory passed.
        let lowered = unsafe { libc::setpriority(libc::PRIO_PROCESS as _, libc::gettid() as libc::id_t, 10) };
        if lowered != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "could not lower the VP8 encoder's priority");
        }
        gst::PadProbeReturn::Remove
    });
}

/// [`Vp8Encoding::overloaded`] for `status` and the stream's frame rate `target_fps`.
fn overloaded(status: &Vp8Status, target_fps: u32) -> Option<String> {
    let expected = f64::from(target_fps);
    let fps = status.fps.filter(|fps| status.viewers > 0 && *fps < 0.8 * expected)?;
    Some(format!("its VP8 encoding makes {fps:.1} of the {expected:.0} frames per second"))
}

/// The VP8 encoder's congestion control: its viewers' loss reports move `target-bitrate` within
/// `[min_bitrate_kbps, bitrate_kbps]`, the same steps as the H.264 encoder's ([`super::congestion`]).
fn congestion_control(name: StreamName, p: Vp8Params, vp8enc: gst::Element) -> impl Fn(LossReport) + Send + 'static {
    let control = Mutex::new(RateControl::new(p.min_bitrate_kbps, p.bitrate_kbps));
    move |report| {
        let mut control = control.lock().expect("rate control lock");
        let was = control.current_kbps();
        if let Some(kbps) = control.on_report(report, std::time::Instant::now()) {
            tracing::info!(stream = %name, from = was, to = kbps, ?report, "VP8 bitrate changed (its viewers' loss)");
            vp8enc.set_property("target-bitrate", (kbps * 1000) as i32);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vp8_encoding_below_80_percent_of_the_rate_with_viewers_takes_no_more() {
        let status = |fps: Option<f64>, viewers| Vp8Status { running: true, viewers, fps, ..Vp8Status::default() };
        assert_eq!(overloaded(&status(Some(29.0), 3), 30), None);
        assert_eq!(overloaded(&status(None, 3), 30), None, "no rate yet (its first second)");
        assert_eq!(overloaded(&status(Some(10.0), 0), 30), None, "no viewers: the new one starts it");
        let why = overloaded(&status(Some(15.0), 2), 30).expect("refused");
        assert!(why.contains("15.0 of the 30"), "{why}");
    }
}

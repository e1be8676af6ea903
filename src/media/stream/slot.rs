//! Sources that come and go while a stream runs (the portal's cast, a feed, a WHIP publisher): the slot
//! they link into, attaching and detaching them, and what the stream knows of them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use gstreamer as gst;
use gstreamer::prelude::*;

use super::StreamPipeline;
use crate::ids::SessionId;
use crate::media::{MediaError, Peer, Publisher, PublisherPeer};

/// A source that is attached and detached while the stream runs.
pub(super) struct SourceSlot {
    /// The conforming chain's sink pad (a passed-through or relayed stream's H.264 tee).
    pub(super) sink: gst::Pad,
    /// A WHIP stream's Opus tee, which its publisher's `audio` pad feeds.
    pub(super) audio_sink: Option<gst::Pad>,
    pub(super) current: Mutex<Option<gst::Element>>,
    pub(super) problem: Mutex<Option<String>>,
    /// Bumped each time the attached source fails (its bin posted an error).
    pub(super) lost: tokio::sync::watch::Sender<u64>,
    /// When the attached source last pushed a buffer (µs since the stream's epoch, +1; 0: not yet).
    pub(super) last_buffer_us: Arc<AtomicU64>,
}

impl StreamPipeline {
    /// Links `source` (a bin with a `src` pad, named `source-*`) into the stream's source slot, replacing
    /// any source there, and starts it. Only for streams whose source comes later (the portal).
    pub fn attach_source(&self, source: gst::Element) -> anyhow::Result<()> {
        let slot = self.inner.slot.as_ref().context("this stream's source is built in")?;
        self.detach_source();
        self.inner.pipeline.add(&source)?;
        let src = source.static_pad("src").context("the source has a src pad")?;
        // A source that ends (a monitor unplugged) must not end the stream: its EOS is a source failure.
        let weak = Arc::downgrade(&self.inner);
        src.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
            let Some(gst::PadProbeData::Event(ev)) = &info.data else { return gst::PadProbeReturn::Ok };
            if ev.type_() != gst::EventType::Eos {
                return gst::PadProbeReturn::Ok;
            }
            if let Some(slot) = weak.upgrade().as_ref().and_then(|i| i.slot.as_ref()) {
                *slot.problem.lock().expect("slot lock") = Some("the screen cast ended".into());
                slot.lost.send_modify(|n| *n += 1);
            }
            crate::media::swallow(info)
        });
        let (last, epoch) = (slot.last_buffer_us.clone(), self.inner.epoch);
        last.store(epoch.elapsed().as_micros() as u64 + 1, Ordering::Relaxed);
        src.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            last.store(epoch.elapsed().as_micros() as u64 + 1, Ordering::Relaxed);
            gst::PadProbeReturn::Ok
        });
        src.link(&slot.sink)?;
        if let (Some(audio), Some(sink)) = (source.static_pad("audio"), &slot.audio_sink) {
            audio.link(sink)?;
        }
        source.sync_state_with_parent()?;
        *slot.current.lock().expect("slot lock") = Some(source);
        *slot.problem.lock().expect("slot lock") = None;
        tracing::info!(stream = %self.inner.name, "video source attached");
        Ok(())
    }

    /// Stops and removes the attached source (blocking while it stops); the stream keeps running without
    /// a picture until another is attached.
    pub fn detach_source(&self) {
        let Some(slot) = &self.inner.slot else { return };
        let Some(old) = slot.current.lock().expect("slot lock").take() else { return };
        if let Some(pad) = old.static_pad("src") {
            let _ = pad.unlink(&slot.sink);
        }
        if let (Some(pad), Some(sink)) = (old.static_pad("audio"), &slot.audio_sink) {
            let _ = pad.unlink(sink);
        }
        let _ = old.set_state(gst::State::Null);
        let _ = self.inner.pipeline.remove(&old);
    }

    /// How long the attached source has pushed nothing (`None`: no source attached, or a built-in one).
    pub fn source_idle(&self) -> Option<Duration> {
        let slot = self.inner.slot.as_ref()?;
        slot.current.lock().expect("slot lock").as_ref()?;
        let last = slot.last_buffer_us.load(Ordering::Relaxed);
        Some(self.inner.epoch.elapsed().saturating_sub(Duration::from_micros(last.saturating_sub(1))))
    }

    /// Says why there is no picture (shown in `/readyz`).
    pub fn set_source_problem(&self, problem: impl Into<String>) {
        if let Some(slot) = &self.inner.slot {
            *slot.problem.lock().expect("slot lock") = Some(problem.into());
        }
    }

    /// Changes each time the attached source fails (`None` for built-in sources).
    pub fn source_failures(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.inner.slot.as_ref().map(|s| s.lost.subscribe())
    }

    /// Takes a WHIP publisher's offer: checks it is something we can relay, attaches a receiving bin in place
    /// of any source, and negotiates. Returns the publisher (for [`StreamPipeline::detach_publisher`]) and the
    /// answer. On error nothing stays attached.
    pub async fn attach_publisher(&self, id: SessionId, offer: &str) -> Result<(Peer, String), MediaError> {
        let audio = slot_audio(self).is_some();
        let (msg, plan) = crate::media::ingest::whip_offer::plan_publish(offer, audio)?;
        let name = &self.inner.name;
        if !plan.aside.is_empty() {
            tracing::info!(stream = %name, publisher = %id, refused = %plan.aside.describe(), "publisher's offered sections not relayed");
        }
        let peer = crate::media::webrtcbin::ice_restart::PeerIce::new(plan.mids.clone(), plan.ice_ufrag.clone());
        let internal = |e: anyhow::Error| MediaError::Negotiation(format!("{e:#}"));
        let publisher =
            Publisher::build(name, id, &self.inner.ice, audio, peer, self.inner.events.clone()).map_err(internal)?;
        self.attach_source(publisher.bin()).map_err(internal)?;
        *self.inner.profile.lock().expect("profile lock") = plan.profile;
        match publisher.answer(msg).await {
            Ok(answer) => {
                tracing::info!(stream = %name, publisher = %id, profile = plan.profile.name(), "publisher attached");
                let peer = Peer::Publisher(PublisherPeer { publisher, stream: self.clone() });
                Ok((peer, plan.aside.restore(&answer)))
            }
            Err(e) => {
                self.detach_publisher(&publisher);
                Err(e)
            }
        }
    }

    /// Detaches `publisher` if it is still the stream's source (blocking while its bin stops); the stream
    /// waits for the next publisher, and its viewers stay connected.
    pub fn detach_publisher(&self, publisher: &Publisher) {
        publisher.release();
        let Some(slot) = &self.inner.slot else { return };
        let current = slot.current.lock().expect("slot lock").clone();
        if current.is_some_and(|c| c == publisher.bin()) {
            self.detach_source();
            let name = &self.inner.name;
            self.set_source_problem(format!("the publisher left; waiting for a WHIP publisher (POST /whip/{name})"));
        }
    }
}

/// The stream's Opus tee a publisher's audio would feed (`None`: the stream has no audio).
fn slot_audio(stream: &StreamPipeline) -> Option<&gst::Pad> {
    stream.inner.slot.as_ref()?.audio_sink.as_ref()
}

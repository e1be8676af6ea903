//! A WHIP publisher's receiving end: a bin named `source-whip-<id>` that its stream attaches to its source
//! slot, like a feed, but fed by a peer instead of a URL:
//!
//! ```text
//! {webrtcbin, answering the publisher's offer}
//!   - {rtph264depay} - {h264parse, SPS/PPS with every IDR; whole units} - {capsfilter byte-stream, au} -> ghost `src` -> {tee h264}
//!   - {rtpopusdepay} -> ghost `audio` -> {tee opus}                  (streams with audio)
//!   - {fakesink}                                                    any other track that still arrives
//! ```
//!
//! Sections of the publisher's offer that the stream does not relay (audio for `audio = "none"`, a second
//! video, a data channel) never reach webrtcbin: `sections::SetAside` refuses them in the answer.
//!
//! Nothing is decoded or encoded. A keyframe request from a viewer (upstream force-key-unit on the H.264
//! tee, already limited to one per 250 ms) travels up through the depayloader into webrtcbin's RTP session,
//! which sends the publisher a PLI. `h264parse` re-sends the last SPS/PPS ahead of every IDR, so a viewer
//! who joins mid-stream can decode from the first keyframe it gets. A publisher's picture-less units
//! (SPS/PPS sent with a marker bit of their own) are joined to the picture after them, which keeps its
//! timestamp ([`super::access_unit`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer_sdp as gst_sdp;
use gstreamer_webrtc as gst_webrtc;
use tokio::sync::{mpsc, watch};

use crate::ids::{SessionId, StreamName};
use crate::media::webrtcbin::ice_restart::PeerIce;
use crate::media::webrtcbin::viewer::{IceSettings, answer_offer, connection_end, local_sdp, make_webrtcbin};
use crate::media::{MediaError, MediaEvent};
use crate::sdpfrag::SdpFrag;

const GATHER_TIMEOUT: Duration = Duration::from_secs(5);

/// A publisher's receiving bin and its webrtcbin. Cheap to clone.
#[derive(Clone)]
pub struct Publisher {
    inner: Arc<Inner>,
}

struct Inner {
    id: SessionId,
    bin: gst::Bin,
    webrtcbin: gst::Element,
    handlers: Mutex<Vec<glib::SignalHandlerId>>,
    gathered: watch::Receiver<bool>,
    own_dtls_certificate: bool,
    removed: AtomicBool,
    /// Trickle and ICE restart (PATCH on the publisher's session).
    ice: PeerIce,
}

fn negotiation(msg: impl Into<String>) -> MediaError {
    MediaError::Negotiation(msg.into())
}

fn make(factory: &str) -> anyhow::Result<gst::Element> {
    gst::ElementFactory::make(factory).build().with_context(|| format!("creating {factory}"))
}

/// Links a webrtcbin source pad nobody relays to a fakesink in the publisher's bin.
fn discard(webrtcbin: &gst::Element, pad: &gst::Pad, media: &str) {
    tracing::info!(media, pad = %pad.name(), "a publisher's track is not relayed: dropped");
    let Some(bin) = webrtcbin.parent().and_then(|p| p.downcast::<gst::Bin>().ok()) else { return };
    let linked = gst::ElementFactory::make("fakesink")
        .property("sync", false)
        .property("async", false)
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|sink| {
            bin.add(&sink)?;
            sink.sync_state_with_parent()?;
            pad.link(&sink.static_pad("sink").context("fakesink has a sink pad")?)?;
            Ok(())
        });
    if let Err(e) = linked {
        tracing::warn!(error = %e, media, "could not drop the publisher's extra track");
    }
}

impl Publisher {
    /// Builds the bin (not yet in a pipeline); `audio`: the stream relays the publisher's Opus. `events`
    /// hears when the publisher's connection ends.
    pub fn build(
        stream: &StreamName,
        id: SessionId,
        ice: &IceSettings,
        audio: bool,
        peer: PeerIce,
        events: mpsc::UnboundedSender<MediaEvent>,
    ) -> anyhow::Result<Self> {
        let bin = gst::Bin::builder().name(format!("source-whip-{id}")).build();
        let (webrtcbin, dtls_handler) = make_webrtcbin(format!("webrtc-{id}"), ice)?;
        let depay = make("rtph264depay")?;
        let parse = gst::ElementFactory::make("h264parse").property("config-interval", -1i32).build()?;
        super::access_unit::whole_units(&parse);
        let caps =
            gst::Caps::builder("video/x-h264").field("stream-format", "byte-stream").field("alignment", "au").build();
        let filter = gst::ElementFactory::make("capsfilter").property("caps", caps).build()?;
        bin.add_many([&webrtcbin, &depay, &parse, &filter])?;
        gst::Element::link_many([&depay, &parse, &filter])?;
        let ghost = |name: &str, target: &gst::Element| -> anyhow::Result<()> {
            let pad = target.static_pad("src").context("a src pad")?;
            bin.add_pad(&gst::GhostPad::builder_with_target(&pad)?.name(name).build())?;
            Ok(())
        };
        ghost("src", &filter)?;
        let opus = if audio { Some(make("rtpopusdepay")?) } else { None };
        if let Some(opus) = &opus {
            bin.add(opus)?;
            ghost("audio", opus)?;
        }

        let own_dtls_certificate = dtls_handler.is_some();
        let mut handlers: Vec<glib::SignalHandlerId> = dtls_handler.into_iter().collect();
        let (video_in, audio_in) = (depay.static_pad("sink"), opus.and_then(|o| o.static_pad("sink")));
        handlers.push(webrtcbin.connect_pad_added(move |w, pad| {
            let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
            let media = caps.structure(0).and_then(|s| s.get::<&str>("media").ok()).unwrap_or_default();
            let sink = match media {
                "video" => video_in.as_ref(),
                "audio" => audio_in.as_ref(),
                _ => None,
            };
            match sink {
                Some(sink) if !sink.is_linked() => {
                    if let Err(e) = pad.link(sink) {
                        tracing::warn!(error = ?e, media, "could not link the publisher's track");
                    }
                }
                // Its answer refused every section we do not relay; whatever still arrives (a stray SSRC)
                // is dropped here, never left unlinked (a not-linked flow error stops the whole receiver).
                _ => discard(w, pad, media),
            }
        }));
        let (gathered_tx, gathered) = watch::channel(false);
        handlers.push(webrtcbin.connect_notify(Some("ice-gathering-state"), move |w, _| {
            let state = w.property::<gst_webrtc::WebRTCICEGatheringState>("ice-gathering-state");
            if state == gst_webrtc::WebRTCICEGatheringState::Complete {
                gathered_tx.send_replace(true);
            }
        }));
        let ended = Arc::new(AtomicBool::new(false));
        let stream = stream.clone();
        handlers.push(webrtcbin.connect_notify(Some("connection-state"), move |w, _| {
            use gst_webrtc::WebRTCPeerConnectionState as S;
            let state = w.property::<S>("connection-state");
            tracing::debug!(publisher = %id, ?state, "publisher connection state");
            if state == S::Connected {
                let _ = events.send(MediaEvent::PeerConnected { stream: stream.clone(), id });
            }
            let Some(why) = connection_end(w, state) else { return };
            if !ended.swap(true, Ordering::AcqRel) {
                let _ = events.send(MediaEvent::PeerEnded { stream: stream.clone(), id, why });
            }
        }));
        let inner = Inner {
            id,
            bin,
            webrtcbin,
            handlers: Mutex::new(handlers),
            gathered,
            own_dtls_certificate,
            removed: AtomicBool::new(false),
            ice: peer,
        };
        Ok(Self { inner: Arc::new(inner) })
    }

    /// The bin to attach to the stream (`src`: H.264 access units; `audio`: Opus).
    pub fn bin(&self) -> gst::Element {
        self.inner.bin.clone().upcast()
    }

    /// Answers the (trimmed) offer once the bin is in the running pipeline; returns the answer SDP with all
    /// our host candidates.
    pub async fn answer(&self, offer: gst_sdp::SDPMessage) -> Result<String, MediaError> {
        let w = &self.inner.webrtcbin;
        answer_offer(w, offer, self.inner.own_dtls_certificate, |_| Ok(())).await?;
        let mut gathered = self.inner.gathered.clone();
        tokio::time::timeout(GATHER_TIMEOUT, gathered.wait_for(|done| *done))
            .await
            .map_err(|_| negotiation("ICE gathering did not complete"))?
            .map_err(|_| negotiation("webrtcbin went away"))?;
        local_sdp(w)
    }

    pub fn id(&self) -> SessionId {
        self.inner.id
    }

    /// Adds trickled remote candidates (PATCH).
    pub fn add_remote_candidates(&self, frag: &SdpFrag) -> usize {
        self.inner.ice.add_remote_candidates(&self.inner.webrtcbin, frag)
    }

    pub fn remote_ufrag(&self) -> String {
        self.inner.ice.remote_ufrag()
    }

    /// Restarts ICE with the publisher's new credentials (PATCH); returns our answer fragment.
    pub fn restart_ice(&self, frag: &SdpFrag) -> Result<SdpFrag, MediaError> {
        self.inner.ice.restart(&self.inner.webrtcbin, frag)
    }

    /// The connection's address, bytes received and path; may block up to a second (webrtcbin's get-stats).
    pub fn stats(&self) -> crate::media::PeerStats {
        crate::media::webrtcbin::stats::of(&self.inner.webrtcbin)
    }

    /// Disconnects the signal handlers (idempotent); the stream detaches and stops the bin.
    pub fn release(&self) {
        if self.inner.removed.swap(true, Ordering::AcqRel) {
            return;
        }
        for h in self.inner.handlers.lock().expect("handlers lock").drain(..) {
            self.inner.webrtcbin.disconnect(h);
        }
    }
}

//! One viewer: `{rtp tee} - {gate} - {queue leaky} - {webrtcbin}` per track, inside a bin of its own.
//!
//! Signal handlers on the webrtcbin never hold a strong reference to it (a captured webrtcbin keeps its
//! sockets and threads alive after removal); they get it as their first argument instead, and all are
//! disconnected on removal.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer_sdp as gst_sdp;
use gstreamer_webrtc as gst_webrtc;
use tokio::sync::{mpsc, oneshot, watch};

use super::gate::{Gate, Track};
use super::ice_restart::PeerIce;
use crate::ids::{SessionId, StreamName};
use crate::media::GateStats;
use crate::media::{MediaError, MediaEvent, OfferPlan, PeerEnd};
use crate::sdpfrag::SdpFrag;

const STEP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the stream gets to put caps on a new viewer's pads (one frame, normally).
const CAPS_TIMEOUT: Duration = Duration::from_secs(3);

/// ICE configuration for each viewer's webrtcbin.
#[derive(Debug, Clone, Default)]
pub struct IceSettings {
    /// `stun://host:port`
    pub stun_server: Option<String>,
    /// `turn://user:pass@host:port`
    pub turn_servers: Vec<String>,
    pub port_range: Option<(u16, u16)>,
}

/// The tees and payload types this viewer is fed from.
pub struct Feeds {
    pub video: gst::Element,
    pub audio: Option<gst::Element>,
}

/// A live viewer. Cheap to clone; [`WebrtcbinViewer::remove`] tears it down (idempotent).
#[derive(Clone)]
pub struct WebrtcbinViewer {
    inner: Arc<Inner>,
}

struct Inner {
    id: SessionId,
    pipeline: gst::Pipeline,
    bin: gst::Bin,
    webrtcbin: gst::Element,
    /// (tee, tee src pad) per track, released on removal.
    links: Mutex<Vec<(gst::Element, gst::Pad)>>,
    gate: Arc<Gate>,
    handlers: Mutex<Vec<glib::SignalHandlerId>>,
    removed: AtomicBool,
    /// The DTLS transport uses glasscast's ECDSA certificate (so the answer restates its fingerprint).
    own_dtls_certificate: bool,
    offer: gst_sdp::SDPMessage,
    /// Trickle and ICE restart (the offer's mids, the client's current ufrag).
    ice: PeerIce,
    /// Counts completed ICE gatherings (one per negotiation or restart).
    gathered: watch::Receiver<u32>,
}

fn negotiation(msg: impl Into<String>) -> MediaError {
    MediaError::Negotiation(msg.into())
}

/// Emits a promise-taking webrtcbin action and waits for the reply.
async fn call(
    webrtcbin: &gst::Element,
    action: &str,
    arg: Option<&gst_webrtc::WebRTCSessionDescription>,
) -> Result<Option<gst::Structure>, MediaError> {
    let (tx, rx) = oneshot::channel();
    let promise = gst::Promise::with_change_func(move |reply| {
        let _ = tx.send(reply.map(|s| s.map(ToOwned::to_owned)).map_err(|e| format!("{e:?}")));
    });
    match arg {
        Some(desc) => webrtcbin.emit_by_name::<()>(action, &[desc, &promise]),
        None => webrtcbin.emit_by_name::<()>(action, &[&None::<gst::Structure>, &promise]),
    }
    let reply = tokio::time::timeout(STEP_TIMEOUT, rx)
        .await
        .map_err(|_| negotiation(format!("{action} timed out")))?
        .map_err(|_| negotiation(format!("{action} was dropped")))?
        .map_err(|e| negotiation(format!("{action}: {e}")))?;
    if let Some(s) = &reply
        && s.has_field("error")
    {
        return Err(negotiation(format!("{action}: {s}")));
    }
    Ok(reply)
}

fn set_if_exists(obj: &impl IsA<glib::Object>, name: &str, value: impl Into<glib::Value>) -> bool {
    let value = value.into();
    match obj.find_property(name) {
        Some(p) if p.value_type() == value.type_() => {
            obj.set_property_from_value(name, &value);
            true
        }
        _ => false,
    }
}

/// Turns off libnice UPnP (+200 ms per join and port-mapping noise on a LAN) and enables conncheck keepalives
/// (so a peer that vanishes without DELETE fails ICE instead of lingering), and applies the port range.
pub(in crate::media) fn tune_ice_agent(webrtcbin: &gst::Element, ice: &IceSettings) -> bool {
    let agent = webrtcbin.property::<glib::Object>("ice-agent");
    if let Some((min, max)) = ice.port_range {
        set_if_exists(&agent, "min-rtp-port", u32::from(min));
        set_if_exists(&agent, "max-rtp-port", u32::from(max));
    }
    if agent.find_property("agent").is_none() {
        return false;
    }
    let nice = agent.property::<glib::Object>("agent");
    let upnp_off = set_if_exists(&nice, "upnp", false);
    set_if_exists(&nice, "keepalive-conncheck", true);
    upnp_off
}

/// Whether a webrtcbin's libnice agent has UPnP turned off (for tests and diagnostics).
pub fn upnp_disabled(webrtcbin: &gst::Element) -> bool {
    let agent = webrtcbin.property::<glib::Object>("ice-agent");
    agent.find_property("agent").is_some() && !agent.property::<glib::Object>("agent").property::<bool>("upnp")
}

/// A `webrtcbin` for one peer (a viewer or a WHIP publisher): max-bundle, the configured STUN/TURN servers,
/// glasscast's DTLS certificate (the handler, `None` when it could not be attached) and a tuned ICE agent.
pub(in crate::media) fn make_webrtcbin(
    name: String,
    ice: &IceSettings,
) -> anyhow::Result<(gst::Element, Option<glib::SignalHandlerId>)> {
    let webrtcbin = gst::ElementFactory::make("webrtcbin")
        .name(name)
        .property_from_str("bundle-policy", "max-bundle")
        .build()
        .context("creating webrtcbin (is gstreamer1.0-nice installed?)")?;
    if let Some(stun) = &ice.stun_server {
        webrtcbin.set_property("stun-server", stun);
    }
    for turn in &ice.turn_servers {
        webrtcbin.emit_by_name::<bool>("add-turn-server", &[turn]);
    }
    // Before any sink pad is requested: requesting one may build the DTLS transport.
    let dtls_handler = crate::media::dtls::attach(&webrtcbin);
    if !tune_ice_agent(&webrtcbin, ice) {
        tracing::warn!("could not turn off libnice UPnP; joins may be slower");
    }
    Ok((webrtcbin, dtls_handler))
}

/// set-remote-description(offer), create-answer, `check` on the answer, set-local-description (with our
/// certificate's fingerprint restated when it is ours). The caller waits for gathering, then reads
/// [`local_sdp`].
pub(in crate::media) async fn answer_offer(
    webrtcbin: &gst::Element,
    offer: gst_sdp::SDPMessage,
    own_dtls_certificate: bool,
    check: impl FnOnce(&gst_sdp::SDPMessageRef) -> Result<(), MediaError>,
) -> Result<(), MediaError> {
    let offer = gst_webrtc::WebRTCSessionDescription::new(gst_webrtc::WebRTCSDPType::Offer, offer);
    call(webrtcbin, "set-remote-description", Some(&offer)).await?;
    let reply =
        call(webrtcbin, "create-answer", None).await?.ok_or_else(|| negotiation("create-answer gave no reply"))?;
    let answer = reply
        .get::<gst_webrtc::WebRTCSessionDescription>("answer")
        .map_err(|_| negotiation(format!("create-answer gave no answer: {reply}")))?;
    check(answer.sdp())?;
    let answer = if own_dtls_certificate {
        let mut sdp = answer.sdp().to_owned();
        crate::media::dtls::restate_fingerprint(&mut sdp);
        gst_webrtc::WebRTCSessionDescription::new(gst_webrtc::WebRTCSDPType::Answer, sdp)
    } else {
        answer
    };
    call(webrtcbin, "set-local-description", Some(&answer)).await?;
    Ok(())
}

/// The local description as SDP text (after gathering: with all our candidates).
pub(in crate::media) fn local_sdp(webrtcbin: &gst::Element) -> Result<String, MediaError> {
    let local = webrtcbin
        .property::<Option<gst_webrtc::WebRTCSessionDescription>>("local-description")
        .ok_or_else(|| negotiation("no local description after gathering"))?;
    local.sdp().as_text().map_err(|e| negotiation(format!("rendering the answer: {e}")))
}

/// Why a webrtcbin's peer connection in `state` ended (`None`: it has not). It fails when either ICE or
/// DTLS does; ICE's own state tells which.
pub(in crate::media) fn connection_end(
    webrtcbin: &gst::Element,
    state: gst_webrtc::WebRTCPeerConnectionState,
) -> Option<PeerEnd> {
    use gst_webrtc::WebRTCPeerConnectionState as S;
    match state {
        S::Closed => Some(PeerEnd::Closed),
        S::Failed
            if webrtcbin.property::<gst_webrtc::WebRTCICEConnectionState>("ice-connection-state")
                == gst_webrtc::WebRTCICEConnectionState::Failed =>
        {
            Some(PeerEnd::IceFailed)
        }
        S::Failed => Some(PeerEnd::DtlsFailed),
        _ => None,
    }
}

/// At most 200 ms of packets wait for a viewer; older ones are dropped.
fn make_queue() -> anyhow::Result<gst::Element> {
    crate::media::leaky_queue(0, Duration::from_millis(200))
}

impl WebrtcbinViewer {
    /// Builds the viewer's branch, negotiates the offer and returns the handle and the answer SDP (with all
    /// our host candidates). On error everything built so far is torn down again.
    #[expect(clippy::too_many_arguments, reason = "what `build` needs, passed through (issue 18 splits it)")]
    pub async fn negotiate(
        stream: &StreamName,
        id: SessionId,
        pipeline: &gst::Pipeline,
        feeds: Feeds,
        offer: gst_sdp::SDPMessage,
        plan: &OfferPlan,
        ice: &IceSettings,
        events: mpsc::UnboundedSender<MediaEvent>,
    ) -> Result<(Self, String), MediaError> {
        let viewer = Self::build(stream, id, pipeline, feeds, offer, plan, ice, events)
            .map_err(|e| negotiation(format!("building the viewer branch: {e:#}")))?;
        match viewer.offer_answer().await {
            Ok(answer) => Ok((viewer, answer)),
            Err(e) => {
                let v = viewer.clone();
                let _ = tokio::task::spawn_blocking(move || v.remove()).await;
                Err(e)
            }
        }
    }

    /// The viewer's branch, added to `pipeline` and linked to the stream's tees:
    ///
    /// ```text
    /// {tee rtp video} - {gate ghost pad} - {queue} - {webrtcbin sink_0, sendonly, nack}
    /// {tee rtp audio} - {gate ghost pad} - {queue} - {webrtcbin sink_1, sendonly}     (in bin viewer-<id>)
    /// ```
    #[expect(clippy::too_many_arguments, reason = "the parts of one viewer, as negotiate receives them")]
    fn build(
        stream: &StreamName,
        id: SessionId,
        pipeline: &gst::Pipeline,
        feeds: Feeds,
        offer: gst_sdp::SDPMessage,
        plan: &OfferPlan,
        ice: &IceSettings,
        events: mpsc::UnboundedSender<MediaEvent>,
    ) -> anyhow::Result<Self> {
        let bin = gst::Bin::builder().name(format!("viewer-{id}")).build();
        let (webrtcbin, dtls_handler) = make_webrtcbin(format!("webrtc-{id}"), ice)?;
        bin.add(&webrtcbin)?;
        let gate = Gate::new();
        let mut tracks = vec![(Track::Video, feeds.video)];
        if let Some(audio) = feeds.audio {
            tracks.push((Track::Audio, audio));
        }
        let ghosts = tracks
            .iter()
            .map(|(track, _)| sendonly_branch(&bin, &webrtcbin, &gate, *track))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let own_dtls_certificate = dtls_handler.is_some();
        let (gathering, gathered) = watch_gathering(&webrtcbin);
        let mut handlers: Vec<glib::SignalHandlerId> = dtls_handler.into_iter().collect();
        handlers.push(gathering);
        handlers.push(watch_connection(&webrtcbin, (stream.clone(), id), &gate, &ghosts[0], events));

        pipeline.add(&bin)?;
        bin.sync_state_with_parent()?;
        let mut links = Vec::new();
        for ((_, tee), ghost) in tracks.into_iter().zip(&ghosts) {
            let src = tee.request_pad_simple("src_%u").context("requesting a tee pad")?;
            links.push((tee, src.clone()));
            src.link(ghost).context("linking the viewer to its tee")?;
        }
        Ok(Self {
            inner: Arc::new(Inner {
                id,
                pipeline: pipeline.clone(),
                bin,
                webrtcbin,
                links: Mutex::new(links),
                gate,
                handlers: Mutex::new(handlers),
                removed: AtomicBool::new(false),
                own_dtls_certificate,
                offer,
                ice: PeerIce::new(plan.mids.clone(), plan.ice_ufrag.clone()),
                gathered,
            }),
        })
    }

    /// Waits until every webrtcbin sink pad carries caps: webrtcbin 1.22 builds the answer from them.
    async fn wait_for_caps(&self) -> Result<(), MediaError> {
        let deadline = tokio::time::Instant::now() + CAPS_TIMEOUT;
        loop {
            let ready = self.inner.webrtcbin.sink_pads().iter().all(|p| p.current_caps().is_some());
            if ready {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(MediaError::NotProducing);
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    async fn wait_gathered(&self, more_than: u32) -> Result<(), MediaError> {
        let mut rx = self.inner.gathered.clone();
        let wait = rx.wait_for(|n| *n > more_than);
        tokio::time::timeout(STEP_TIMEOUT, wait)
            .await
            .map_err(|_| negotiation("ICE gathering did not complete"))?
            .map_err(|_| negotiation("webrtcbin went away"))?;
        Ok(())
    }

    /// set-remote-description(offer), create-answer, set-local-description, gather; returns the local SDP.
    async fn offer_answer(&self) -> Result<String, MediaError> {
        let w = &self.inner.webrtcbin;
        self.wait_for_caps().await?;
        let gathered_before = *self.inner.gathered.borrow();
        answer_offer(w, self.inner.offer.clone(), self.inner.own_dtls_certificate, check_answer_sends).await?;
        self.wait_gathered(gathered_before).await?;
        local_sdp(w)
    }

    /// Adds trickled remote candidates.
    pub fn add_remote_candidates(&self, frag: &SdpFrag) -> usize {
        self.inner.ice.add_remote_candidates(&self.inner.webrtcbin, frag)
    }

    pub fn remote_ufrag(&self) -> String {
        self.inner.ice.remote_ufrag()
    }

    /// Restarts ICE with the client's new credentials and candidates; returns our answer fragment.
    pub fn restart_ice(&self, frag: &SdpFrag) -> Result<SdpFrag, MediaError> {
        self.inner.ice.restart(&self.inner.webrtcbin, frag)
    }

    pub fn id(&self) -> SessionId {
        self.inner.id
    }

    pub fn gate_stats(&self) -> GateStats {
        self.inner.gate.stats()
    }

    /// A weak reference to the webrtcbin, to check it is really freed after removal.
    pub fn webrtcbin_weak(&self) -> glib::WeakRef<gst::Element> {
        self.inner.webrtcbin.downgrade()
    }

    pub fn upnp_disabled(&self) -> bool {
        upnp_disabled(&self.inner.webrtcbin)
    }

    /// webrtcbin's view of the connection (blocking, up to a second).
    pub fn stats(&self) -> crate::media::PeerStats {
        super::stats::of(&self.inner.webrtcbin)
    }

    /// Unlinks from the tees, releases the tee pads and shuts the branch down. Blocking (waits for the
    /// branch's streaming threads); the other viewers and the encoder are not touched.
    pub fn remove(&self) {
        let inner = &self.inner;
        if inner.removed.swap(true, Ordering::AcqRel) {
            return;
        }
        inner.gate.kill();
        for (tee, pad) in inner.links.lock().expect("links lock").drain(..) {
            if let Some(peer) = pad.peer() {
                let _ = pad.unlink(&peer);
            }
            tee.release_request_pad(&pad);
        }
        for h in inner.handlers.lock().expect("handlers lock").drain(..) {
            inner.webrtcbin.disconnect(h);
        }
        let _ = inner.bin.set_state(gst::State::Null);
        let _ = inner.pipeline.remove(&inner.bin);
        tracing::debug!(session = %inner.id, "viewer branch removed");
    }
}

/// webrtcbin answers an m-line without sending (no error) when our caps do not match the offer; catch it.
fn check_answer_sends(answer: &gst_sdp::SDPMessageRef) -> Result<(), MediaError> {
    let video = answer
        .medias()
        .find(|m| m.media() == Some("video"))
        .ok_or_else(|| negotiation("the answer has no video section"))?;
    let sends = video.attributes().any(|a| a.key() == "sendonly" || a.key() == "sendrecv");
    if video.port() == 0 || !sends || video.formats_len() == 0 {
        return Err(negotiation(
            "webrtcbin answered the video section without sending (codec caps did not match the offer)",
        ));
    }
    Ok(())
}

/// One track's `{gate ghost pad} - {queue} - {webrtcbin sink_%u}` in `bin`, its transceiver send-only (and,
/// for video, answering `nack`, so a lost packet is resent from webrtcbin's history instead of the picture
/// breaking up until the next keyframe). Returns the ghost pad the stream's tee links to.
fn sendonly_branch(
    bin: &gst::Bin,
    webrtcbin: &gst::Element,
    gate: &Arc<Gate>,
    track: Track,
) -> anyhow::Result<gst::GhostPad> {
    let queue = make_queue()?;
    bin.add(&queue)?;
    let sink = webrtcbin.request_pad_simple("sink_%u").context("requesting a webrtcbin sink pad")?;
    queue.static_pad("src").expect("queue has src").link(&sink)?;
    let transceiver = sink.property::<gst_webrtc::WebRTCRTPTransceiver>("transceiver");
    transceiver.set_property("direction", gst_webrtc::WebRTCRTPTransceiverDirection::Sendonly);
    if track == Track::Video {
        set_if_exists(&transceiver, "do-nack", true);
    }
    let name = if track == Track::Video { "video" } else { "audio" };
    let ghost = gate.ghost_pad(name, &queue.static_pad("sink").expect("queue has sink"), track)?;
    bin.add_pad(&ghost)?;
    Ok(ghost)
}

/// Counts completed ICE gatherings (one per offer/answer round) on the returned channel.
fn watch_gathering(webrtcbin: &gst::Element) -> (glib::SignalHandlerId, watch::Receiver<u32>) {
    let (gathered_tx, gathered) = watch::channel(0u32);
    let handler = webrtcbin.connect_notify(Some("ice-gathering-state"), move |w, _| {
        let state = w.property::<gst_webrtc::WebRTCICEGatheringState>("ice-gathering-state");
        if state == gst_webrtc::WebRTCICEGatheringState::Complete {
            gathered_tx.send_modify(|n| *n += 1);
        }
    });
    (handler, gathered)
}

/// On connected: opens the gate, asks for a keyframe through the video ghost pad and says
/// `PeerConnected`; on failed or closed, once: `PeerEnded` with why.
fn watch_connection(
    webrtcbin: &gst::Element,
    (stream, id): (StreamName, SessionId),
    gate: &Arc<Gate>,
    video_ghost: &gst::GhostPad,
    events: mpsc::UnboundedSender<MediaEvent>,
) -> glib::SignalHandlerId {
    let video_ghost = video_ghost.downgrade();
    let gate = Arc::clone(gate);
    let ended = AtomicBool::new(false);
    webrtcbin.connect_notify(Some("connection-state"), move |w, _| {
        use gst_webrtc::WebRTCPeerConnectionState as S;
        let state = w.property::<S>("connection-state");
        tracing::debug!(session = %id, ?state, "peer connection state");
        match state {
            S::Connected => {
                gate.connected();
                // A joining viewer gets a keyframe at once.
                if let Some(pad) = video_ghost.upgrade() {
                    pad.push_event(crate::media::encode::keyframes::request_event());
                }
                let _ = events.send(MediaEvent::PeerConnected { stream: stream.clone(), id });
            }
            S::Failed | S::Closed if !ended.swap(true, Ordering::AcqRel) => {
                let why = connection_end(w, state).expect("failed or closed is an end");
                let _ = events.send(MediaEvent::PeerEnded { stream: stream.clone(), id, why });
            }
            _ => {}
        }
    })
}

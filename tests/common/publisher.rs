//! A WHIP publisher on GStreamer's own webrtcbin (a stack glasscast does not implement):
//! `{videotestsrc} - {x264enc PROFILE} - {rtph264pay} - {webrtcbin sendonly}` and
//! `{audiotestsrc} - {opusenc} - {rtpopuspay} - {webrtcbin}`, offering what a real encoder would. Its
//! keyframe interval is 100 s: a viewer who joins later gets a picture only through a keyframe request
//! that glasscast forwards to the publisher (a PLI).

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_webrtc as gst_webrtc;

use super::{TestServer, promise};

/// What a publisher offers beyond H.264 + Opus.
#[derive(Debug, Clone, Copy, Default)]
pub struct Extras {
    /// A second H.264 video section (160x120, a different pattern).
    pub second_video: bool,
    /// A data channel (an `m=application` section).
    pub datachannel: bool,
}

pub struct WebrtcbinPublisher {
    pub pipeline: gst::Pipeline,
    pub webrtcbin: gst::Element,
    pub location: Option<String>,
    /// Keyframes its encoder made (the first, then one per keyframe request that reached it).
    pub keyframes: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl WebrtcbinPublisher {
    /// `profile`: x264enc's output profile (`constrained-baseline`, `main`, `high`); `width`x`height` at 30 fps.
    pub fn new(profile: &str, width: i32, height: i32) -> Self {
        Self::with(profile, width, height, Extras::default())
    }

    /// [`WebrtcbinPublisher::new`] with more in its offer than a stream relays.
    pub fn with(profile: &str, width: i32, height: i32, extras: Extras) -> Self {
        let second_video = if extras.second_video {
            "videotestsrc is-live=true pattern=smpte ! video/x-raw,width=160,height=120,framerate=15/1 \
             ! x264enc tune=zerolatency speed-preset=ultrafast bframes=0 ! video/x-h264,profile=constrained-baseline \
             ! rtph264pay pt=103 config-interval=-1 ! application/x-rtp,media=video,encoding-name=H264,payload=103 ! w. "
        } else {
            ""
        };
        let desc = format!(
            "webrtcbin name=w bundle-policy=max-bundle \
             videotestsrc is-live=true pattern=ball ! video/x-raw,width={width},height={height},framerate=30/1 \
             ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=3000 bframes=0 \
             ! video/x-h264,profile={profile} ! rtph264pay pt=102 config-interval=-1 aggregate-mode=zero-latency \
             ! application/x-rtp,media=video,encoding-name=H264,payload=102 ! w. \
             audiotestsrc is-live=true wave=sine freq=1000 ! audioconvert ! audioresample ! opusenc \
             ! rtpopuspay pt=111 ! application/x-rtp,media=audio,encoding-name=OPUS,payload=111 ! w. {second_video}"
        );
        let pipeline =
            gst::parse::launch(&desc).expect("publisher pipeline").downcast::<gst::Pipeline>().expect("a pipeline");
        let webrtcbin = pipeline.by_name("w").expect("webrtcbin");
        for pad in webrtcbin.sink_pads() {
            let t = pad.property::<gst_webrtc::WebRTCRTPTransceiver>("transceiver");
            t.set_property("direction", gst_webrtc::WebRTCRTPTransceiverDirection::Sendonly);
        }
        let keyframes = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let encoder = super::find_by_factory(pipeline.upcast_ref(), "x264enc").expect("x264enc");
        let count = keyframes.clone();
        encoder.static_pad("src").expect("src").add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if info.buffer().is_some_and(|b| !b.flags().contains(gst::BufferFlags::DELTA_UNIT)) {
                count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            gst::PadProbeReturn::Ok
        });
        pipeline.set_state(gst::State::Playing).expect("playing");
        if extras.datachannel {
            let channel = webrtcbin.emit_by_name::<Option<gst_webrtc::WebRTCDataChannel>>(
                "create-data-channel",
                &[&"chat", &None::<gst::Structure>],
            );
            assert!(channel.is_some(), "webrtcbin made a data channel");
        }
        Self { pipeline, webrtcbin, location: None, keyframes }
    }

    /// The offer with all candidates (once the payloaders have caps: webrtcbin 1.22 offers from them).
    pub async fn offer(&self) -> String {
        super::eventually(5, || self.webrtcbin.sink_pads().iter().all(|p| p.current_caps().is_some())).await;
        let reply = promise(&self.webrtcbin, "create-offer", None).await.expect("offer reply");
        let offer = reply.get::<gst_webrtc::WebRTCSessionDescription>("offer").expect("offer");
        promise(&self.webrtcbin, "set-local-description", Some(&offer)).await;
        super::ice_gathered(&self.webrtcbin).await;
        let local = self.webrtcbin.property::<Option<gst_webrtc::WebRTCSessionDescription>>("local-description");
        local.expect("local description").sdp().as_text().expect("sdp text")
    }

    /// POSTs `offer` to `/whip/{stream}` with `token`; returns the response (answer not applied).
    pub async fn post(srv: &TestServer, stream: &str, offer: &str, token: &str) -> reqwest::Response {
        srv.http
            .post(format!("{}/whip/{stream}", srv.base))
            .bearer_auth(token)
            .header("content-type", "application/sdp")
            .body(offer.to_owned())
            .send()
            .await
            .expect("POST /whip")
    }

    /// Offer, POST, answer. Panics unless the server says 201.
    pub async fn publish(&mut self, srv: &TestServer, stream: &str, token: &str) {
        let offer = self.offer().await;
        let resp = Self::post(srv, stream, &offer, token).await;
        assert_eq!(resp.status(), 201, "POST /whip/{stream}: {:?}", resp.text().await);
        assert_eq!(resp.headers()["content-type"], "application/sdp");
        let location = resp.headers()["location"].to_str().expect("ascii").to_owned();
        assert!(location.starts_with("/whip/sessions/"), "{location}");
        self.location = Some(format!("{}{location}", srv.base));
        let answer = resp.text().await.expect("answer");
        self.set_answer(&answer).await;
    }

    pub async fn set_answer(&self, answer: &str) {
        let sdp = gstreamer_sdp::SDPMessage::parse_buffer(answer.as_bytes()).expect("answer parses");
        let desc = gst_webrtc::WebRTCSessionDescription::new(gst_webrtc::WebRTCSDPType::Answer, sdp);
        promise(&self.webrtcbin, "set-remote-description", Some(&desc)).await;
    }

    pub fn stop(&self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

impl Drop for WebrtcbinPublisher {
    fn drop(&mut self) {
        self.stop();
    }
}

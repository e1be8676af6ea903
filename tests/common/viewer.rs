//! `WebrtcbinViewer`: a WHEP viewer on GStreamer's own webrtcbin (not our WebRTC stack), for the tests.

use super::*;

/// A WHEP viewer on webrtcbin: recvonly H.264 (chosen payload type and profile) + Opus, decoding both.
pub struct WebrtcbinViewer {
    pub pipeline: gst::Pipeline,
    pub webrtcbin: gst::Element,
    pub frames: Arc<AtomicU64>,
    pub audio_buffers: Arc<AtomicU64>,
    pub size: Arc<Mutex<Option<(i32, i32)>>>,
    /// The latency-probe time read from each decoded frame (`None`: no readable code).
    pub probe_codes: Arc<Mutex<Vec<Option<u64>>>>,
    /// (one-byte RTP header extension id, its data) seen on received video packets.
    pub video_rtp_extensions: Arc<Mutex<std::collections::BTreeMap<u8, Vec<u8>>>>,
    /// The last decoded frame's (min, max) luma.
    pub luma_range: Arc<Mutex<Option<(u8, u8)>>>,
    /// The last seconds of decoded audio, mono F32 at 48 kHz.
    pub audio_samples: Arc<Mutex<Vec<f32>>>,
    /// (PTS ns, mean luma) of each decoded frame, and the PTS (ns) where decoded audio turns loud.
    pub video_marks: Arc<Mutex<Vec<(u64, f32)>>>,
    pub audio_onsets: Arc<Mutex<Vec<u64>>>,
    pub location: Option<String>,
    pub etag: Option<String>,
}

impl WebrtcbinViewer {
    pub fn new(video_pt: u8, profile_level_id: &str, with_audio: bool) -> Self {
        let video_caps = gst::Caps::builder("application/x-rtp")
            .field("media", "video")
            .field("encoding-name", "H264")
            .field("payload", i32::from(video_pt))
            .field("clock-rate", 90_000i32)
            .field("packetization-mode", "1")
            .field("profile-level-id", profile_level_id)
            .build();
        Self::with_video(video_caps, with_audio)
    }

    /// A viewer that offers only VP8 (payload type `video_pt`) for video, as a browser without H.264.
    pub fn vp8(video_pt: u8, with_audio: bool) -> Self {
        let video_caps = gst::Caps::builder("application/x-rtp")
            .field("media", "video")
            .field("encoding-name", "VP8")
            .field("payload", i32::from(video_pt))
            .field("clock-rate", 90_000i32)
            .build();
        Self::with_video(video_caps, with_audio)
    }

    fn with_video(video_caps: gst::Caps, with_audio: bool) -> Self {
        let pipeline = gst::Pipeline::new();
        let webrtcbin = gst::ElementFactory::make("webrtcbin")
            .property_from_str("bundle-policy", "max-bundle")
            .build()
            .expect("webrtcbin");
        pipeline.add(&webrtcbin).expect("add");
        let recvonly = gst_webrtc::WebRTCRTPTransceiverDirection::Recvonly;
        webrtcbin.emit_by_name::<gst_webrtc::WebRTCRTPTransceiver>("add-transceiver", &[&recvonly, &video_caps]);
        if with_audio {
            let audio_caps = gst::Caps::builder("application/x-rtp")
                .field("media", "audio")
                .field("encoding-name", "OPUS")
                .field("payload", 111i32)
                .field("clock-rate", 48_000i32)
                .field("encoding-params", "2")
                .build();
            webrtcbin.emit_by_name::<gst_webrtc::WebRTCRTPTransceiver>("add-transceiver", &[&recvonly, &audio_caps]);
        }
        let frames = Arc::new(AtomicU64::new(0));
        let audio_buffers = Arc::new(AtomicU64::new(0));
        let size = Arc::new(Mutex::new(None));
        let pipe_weak = pipeline.downgrade();
        let probe_codes = Arc::new(Mutex::new(Vec::new()));
        let video_rtp_extensions = Arc::new(Mutex::new(std::collections::BTreeMap::new()));
        let (f, a, sz, pc) = (frames.clone(), audio_buffers.clone(), size.clone(), probe_codes.clone());
        let exts = video_rtp_extensions.clone();
        let luma_range = Arc::new(Mutex::new(None));
        let audio_samples = Arc::new(Mutex::new(Vec::new()));
        let (lr, aus) = (luma_range.clone(), audio_samples.clone());
        let video_marks = Arc::new(Mutex::new(Vec::new()));
        let audio_onsets = Arc::new(Mutex::new(Vec::new()));
        let (vm, ao) = (video_marks.clone(), audio_onsets.clone());
        webrtcbin.connect_pad_added(move |_, pad| {
            let Some(pipeline) = pipe_weak.upgrade() else {
                return;
            };
            let is_video_rtp = pad
                .current_caps()
                .and_then(|c| c.structure(0).and_then(|s| s.get::<String>("media").ok()))
                .is_some_and(|m| m == "video");
            if is_video_rtp {
                record_rtp_extensions(pad, &exts);
            }
            let decodebin = gst::ElementFactory::make("decodebin").build().expect("decodebin");
            pipeline.add(&decodebin).expect("add");
            decodebin.sync_state_with_parent().expect("sync");
            pad.link(&decodebin.static_pad("sink").expect("sink")).expect("link decodebin");
            let pipe_weak = pipeline.downgrade();
            let (f, a, sz, pc) = (f.clone(), a.clone(), sz.clone(), pc.clone());
            let (lr, aus) = (lr.clone(), aus.clone());
            let (vm, ao) = (vm.clone(), ao.clone());
            decodebin.connect_pad_added(move |_, dpad| {
                let Some(pipeline) = pipe_weak.upgrade() else {
                    return;
                };
                let caps = dpad.current_caps().expect("decoded caps");
                let is_video = caps.structure(0).expect("s").name().starts_with("video/");
                let sink = gst::ElementFactory::make("fakesink").property("sync", false).build().expect("fakesink");
                pipeline.add(&sink).expect("add");
                if is_video {
                    dpad.link(&sink.static_pad("sink").expect("sink")).expect("link sink");
                    read_probe_codes(dpad, &pc);
                    analyze::record_luma_range(dpad, &lr);
                    analyze::record_video_marks(dpad, &vm);
                } else {
                    // Audio is analysed as 48 kHz mono float.
                    let convert = gst::ElementFactory::make("audioconvert").build().expect("audioconvert");
                    let resample = gst::ElementFactory::make("audioresample").build().expect("audioresample");
                    let caps = gst::Caps::builder("audio/x-raw")
                        .field("format", "F32LE")
                        .field("channels", 1i32)
                        .field("rate", 48_000i32)
                        .build();
                    let filter = gst::ElementFactory::make("capsfilter").property("caps", caps).build().expect("caps");
                    let chain = [&convert, &resample, &filter, &sink];
                    pipeline.add_many(&chain[..3]).expect("add");
                    gst::Element::link_many(chain).expect("link audio analysis");
                    for e in chain {
                        e.sync_state_with_parent().expect("sync");
                    }
                    dpad.link(&convert.static_pad("sink").expect("sink")).expect("link audio");
                    analyze::record_audio(&filter.static_pad("src").expect("src"), &aus);
                    analyze::record_audio_onsets(&filter.static_pad("src").expect("src"), &ao);
                }
                sink.sync_state_with_parent().expect("sync");
                count_decoded(dpad, is_video, &f, &a, &sz);
            });
        });
        pipeline.set_state(gst::State::Playing).expect("playing");
        Self {
            pipeline,
            webrtcbin,
            frames,
            audio_buffers,
            size,
            probe_codes,
            video_rtp_extensions,
            luma_range,
            audio_samples,
            video_marks,
            audio_onsets,
            location: None,
            etag: None,
        }
    }

    /// Creates the offer and waits for ICE gathering, so the offer carries our candidates.
    pub async fn offer(&self) -> String {
        let reply = promise(&self.webrtcbin, "create-offer", None).await.expect("offer reply");
        let offer = reply.get::<gst_webrtc::WebRTCSessionDescription>("offer").expect("offer");
        promise(&self.webrtcbin, "set-local-description", Some(&offer)).await;
        super::ice_gathered(&self.webrtcbin).await;
        let local = self
            .webrtcbin
            .property::<Option<gst_webrtc::WebRTCSessionDescription>>("local-description")
            .expect("local description");
        local.sdp().as_text().expect("sdp text")
    }

    pub async fn set_answer(&self, answer: &str) {
        let sdp = gstreamer_sdp::SDPMessage::parse_buffer(answer.as_bytes()).expect("answer parses");
        let desc = gst_webrtc::WebRTCSessionDescription::new(gst_webrtc::WebRTCSDPType::Answer, sdp);
        promise(&self.webrtcbin, "set-remote-description", Some(&desc)).await;
    }

    /// Offer, POST, answer. Panics unless the server says 201 (a 503 from admission control on a busy
    /// machine is tried again: [`TestServer::post_offer_admitted`]).
    pub async fn connect(&mut self, srv: &TestServer, stream: &str) {
        self.connect_with(srv, stream, None).await;
    }

    /// [`WebrtcbinViewer::connect`] with a bearer token.
    pub async fn connect_with(&mut self, srv: &TestServer, stream: &str, token: Option<&str>) {
        let offer = self.offer().await;
        let resp = srv.post_offer_admitted(stream, &offer, token).await;
        self.take_answer(resp, &srv.base, stream).await;
    }

    /// [`WebrtcbinViewer::connect`], returning the offer and the answer (their ICE credentials and the
    /// server's candidates).
    pub async fn connect_sdp(&mut self, srv: &TestServer, stream: &str) -> (String, String) {
        let offer = self.offer().await;
        let resp = srv.post_offer_admitted(stream, &offer, None).await;
        let answer = self.take_answer(resp, &srv.base, stream).await;
        (offer, answer)
    }

    /// [`WebrtcbinViewer::connect`] to a server at `base` (another process).
    pub async fn connect_to(&mut self, base: &str, stream: &str) {
        self.connect_to_retrying(base, stream, 0).await;
    }

    /// [`WebrtcbinViewer::connect_to`], coming back a second later up to `retries` times while admission
    /// control answers 503 (the machine is busy), as the player does.
    pub async fn connect_to_retrying(&mut self, base: &str, stream: &str, retries: u32) {
        let offer = self.offer().await;
        for attempt in 0..=retries {
            let resp = reqwest::Client::new()
                .post(format!("{base}/whep/{stream}"))
                .header("content-type", "application/sdp")
                .body(offer.clone())
                .send()
                .await
                .expect("POST offer");
            if resp.status() != 503 || attempt == retries {
                self.take_answer(resp, base, stream).await;
                return;
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    }

    /// Takes a POST's 201: keeps its Location (under `base`) and ETag, sets and returns the answer. Panics
    /// on any other status.
    pub async fn take_answer(&mut self, resp: reqwest::Response, base: &str, stream: &str) -> String {
        assert_eq!(resp.status(), 201, "POST /whep/{stream}: {:?}", resp.text().await);
        let location = resp.headers()["location"].to_str().expect("ascii").to_owned();
        self.etag = resp.headers().get("etag").map(|v| v.to_str().expect("ascii").to_owned());
        self.location = Some(format!("{base}{location}"));
        let answer = resp.text().await.expect("answer");
        self.set_answer(&answer).await;
        answer
    }

    pub fn frames(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }

    pub fn audio(&self) -> u64 {
        self.audio_buffers.load(Ordering::Relaxed)
    }

    /// Waits until `n` more video frames decode than now; false on timeout.
    pub async fn gets_frames(&self, n: u64, secs: u64) -> bool {
        let start = self.frames();
        eventually(secs, || self.frames() >= start + n).await
    }

    pub fn stop(&self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

impl Drop for WebrtcbinViewer {
    fn drop(&mut self) {
        self.stop();
    }
}

//! `[[streams]]` and `[encoding]`: what each stream captures, how it is encoded, and the encoder order.

use std::str::FromStr;

use serde::{Deserialize, Deserializer};

use super::{ConfigError, invalid};
use crate::ids::StreamName;

/// The narrowest stream the latency probe (`latency_probe`) can be drawn in: its 64 cells of 4 pixels.
pub const MIN_PROBE_WIDTH: u32 = 256;

/// Where a stream's picture comes from: `source = "test"` (a name), or a table with `kind` and options.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum VideoSource {
    /// Moving test pattern with a running clock (videotestsrc + clockoverlay).
    Test,
    /// An X11 display (ximagesrc), for hosts without a ScreenCast portal.
    X11 {
        /// `:0`; default: `$DISPLAY`.
        #[serde(default)]
        display: Option<String>,
        #[serde(default = "yes")]
        show_pointer: bool,
    },
    /// A monitor through the xdg-desktop-portal ScreenCast interface (Wayland desktops; X11 ones with a
    /// portal). The first start shows the portal's chooser (or the compositor's configured output); the
    /// choice is kept as a restore token in the state directory, so later starts need nobody.
    Portal {
        #[serde(default)]
        cursor: PortalCursor,
    },
    /// A camera or capture card (v4l2src), by device path (`/dev/video0`) or name; its native format is
    /// negotiated and MJPEG decoded.
    V4l2 { device: String },
    /// An RTSP, SRT, HTTP or file URL, reopened with backoff when it drops. H.264 that browsers decode as
    /// it is (constrained baseline or main, no B-frames) passes through without re-encoding when
    /// `passthrough` (default); anything else is decoded and encoded like any source.
    Uri {
        url: String,
        #[serde(default = "yes")]
        passthrough: bool,
    },
    /// A WHIP publisher (OBS, ffmpeg, GStreamer, a browser) sends H.264 and Opus to `POST /whip/NAME` with a
    /// publish token; glasscast relays them to every viewer without decoding or encoding. The stream's audio
    /// is the publisher's (`audio = "none"` drops it); width, height, fps and bitrate are the publisher's.
    Whip,
}

impl VideoSource {
    /// What the source is, for the admin API and console: a feed's URL only as `scheme://host:port/...`
    /// (its path, query or credentials may hold a secret).
    pub fn describe(&self) -> String {
        match self {
            Self::Test => "test pattern".into(),
            Self::X11 { display, .. } => format!("X11 {}", display.as_deref().unwrap_or("$DISPLAY")),
            Self::Portal { .. } => "ScreenCast portal".into(),
            Self::V4l2 { device } => format!("camera {device}"),
            Self::Uri { url, .. } => format!("feed {}", crate::push::redacted(url)),
            Self::Whip => "WHIP publisher".into(),
        }
    }
}

/// How the pointer appears in portal capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PortalCursor {
    /// Drawn into the picture.
    #[default]
    Embedded,
    Hidden,
}

impl FromStr for VideoSource {
    type Err = String;
    fn from_str(v: &str) -> Result<Self, String> {
        match v {
            "test" => Ok(Self::Test),
            "x11" => Ok(Self::X11 { display: None, show_pointer: true }),
            "portal" => Ok(Self::Portal { cursor: PortalCursor::default() }),
            "whip" => Ok(Self::Whip),
            "v4l2" | "uri" => Err(format!(
                "`{v}` needs options: write a table, e.g. source = {{ kind = \"{v}\", {} }}",
                if v == "v4l2" { "device = \"/dev/video0\"" } else { "url = \"rtsp://camera/stream\"" }
            )),
            _ => Err(format!(
                "unknown value \"{v}\" (allowed: \"test\", \"x11\", \"portal\", \"whip\", or a table with kind = \"v4l2\" or \"uri\")"
            )),
        }
    }
}

/// Where a stream's sound comes from: a name (`"test"`, `"none"`, `"desktop"`) or a table with `kind`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum AudioSource {
    /// A 440 Hz tone (audiotestsrc).
    Test,
    /// No audio track.
    None,
    /// What the desktop plays: the monitor of the default output, or of the named sink (PulseAudio or
    /// PipeWire's pulse server; `glasscast sources` lists the names).
    Desktop {
        #[serde(default)]
        sink: Option<String>,
    },
    /// A microphone, line-in or capture card's audio, by source name.
    Input { device: String },
}

impl FromStr for AudioSource {
    type Err = String;
    fn from_str(v: &str) -> Result<Self, String> {
        match v {
            "test" => Ok(Self::Test),
            "none" => Ok(Self::None),
            "desktop" => Ok(Self::Desktop { sink: None }),
            "input" => Err("`input` needs a device: audio = { kind = \"input\", device = \"NAME\" }".into()),
            _ => Err(format!(
                "unknown value \"{v}\" (allowed: \"test\", \"none\", \"desktop\", or a table with kind = \"input\")"
            )),
        }
    }
}

/// A table, or its short name.
fn name_or_table<'de, T, D>(d: D) -> Result<T, D::Error>
where
    T: Deserialize<'de> + FromStr<Err = String>,
    D: Deserializer<'de>,
{
    struct V<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de> + FromStr<Err = String>> serde::de::Visitor<'de> for V<T> {
        type Value = T;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a name or a table with `kind`")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<T, E> {
            v.parse().map_err(E::custom)
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
        }
    }
    d.deserialize_any(V(std::marker::PhantomData))
}

/// The H.264 encoders glasscast can drive, in the default order of preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub enum Encoder {
    /// VA-API, low-power mode (`va` plugin `vah264lpenc`; Intel).
    VaLp,
    /// VA-API (`va` plugin `vah264enc`; Intel, AMD).
    Va,
    /// VA-API through the legacy gstreamer-vaapi plugin (`vaapih264enc`).
    Vaapi,
    /// NVIDIA NVENC (`nvh264enc`).
    Nvenc,
    /// Intel Quick Sync (`qsvh264enc`).
    Qsv,
    /// Software: `x264enc`.
    X264,
    /// Software: `openh264enc`.
    OpenH264,
}

impl Encoder {
    pub const ALL: [Encoder; 7] =
        [Self::VaLp, Self::Va, Self::Vaapi, Self::Nvenc, Self::Qsv, Self::X264, Self::OpenH264];

    /// The name in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            Self::VaLp => "va-lp",
            Self::Va => "va",
            Self::Vaapi => "vaapi",
            Self::Nvenc => "nvenc",
            Self::Qsv => "qsv",
            Self::X264 => "x264",
            Self::OpenH264 => "openh264",
        }
    }

    /// The GStreamer element.
    pub fn factory(self) -> &'static str {
        match self {
            Self::VaLp => "vah264lpenc",
            Self::Va => "vah264enc",
            Self::Vaapi => "vaapih264enc",
            Self::Nvenc => "nvh264enc",
            Self::Qsv => "qsvh264enc",
            Self::X264 => "x264enc",
            Self::OpenH264 => "openh264enc",
        }
    }

    pub fn hardware(self) -> bool {
        !matches!(self, Self::X264 | Self::OpenH264)
    }
}

impl TryFrom<String> for Encoder {
    type Error = String;
    fn try_from(v: String) -> Result<Self, String> {
        Self::ALL.into_iter().find(|e| e.name() == v || e.factory() == v).ok_or_else(|| {
            let names: Vec<String> = Self::ALL.iter().map(|e| format!("\"{}\"", e.name())).collect();
            format!("unknown encoder \"{v}\" (allowed: {})", names.join(", "))
        })
    }
}

/// A stream's encoder: the first that works in `[encoding] order`, or exactly this one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum EncoderPref {
    Auto,
    Only(Encoder),
}

impl TryFrom<String> for EncoderPref {
    type Error = String;
    fn try_from(v: String) -> Result<Self, String> {
        if v == "auto" { Ok(Self::Auto) } else { Encoder::try_from(v).map(Self::Only) }
    }
}

/// `[encoding]`: the order `encoder = "auto"` tries encoders in (each is probed by encoding a few frames).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EncodingConfig {
    pub order: Vec<Encoder>,
}

impl Default for EncodingConfig {
    fn default() -> Self {
        Self { order: Encoder::ALL.to_vec() }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    pub name: StreamName,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "default_source", deserialize_with = "name_or_table")]
    pub source: VideoSource,
    #[serde(default = "default_audio", deserialize_with = "name_or_table")]
    pub audio: AudioSource,
    #[serde(default = "default_width")]
    pub width: u32,
    #[serde(default = "default_height")]
    pub height: u32,
    #[serde(default = "default_fps")]
    pub fps: u32,
    /// Video bitrate in kbit/s.
    #[serde(default = "default_bitrate")]
    pub bitrate_kbps: u32,
    /// The lowest bitrate congestion control may go to when many viewers lose packets (forwarding transport).
    /// Default: a quarter of `bitrate_kbps` (at least 100). Equal to `bitrate_kbps`: a fixed bitrate.
    #[serde(default)]
    pub min_bitrate_kbps: Option<u32>,
    /// Seconds between forced keyframes (joins get one at once regardless).
    #[serde(default = "default_keyframe_interval")]
    pub keyframe_interval_s: u32,
    #[serde(default = "default_encoder")]
    pub encoder: EncoderPref,
    /// The video encodings viewers may get, in order of preference: H.264 always (the stream's own),
    /// then VP8 made on demand for viewers whose browser has no H.264 (Firefox without OpenH264).
    #[serde(default = "default_codecs")]
    pub codecs: Vec<VideoCodec>,
    /// Concurrent viewers allowed on this stream; further joins get 503.
    #[serde(default = "default_max_viewers")]
    pub max_viewers: u32,
    /// Paint the capture wall-clock time into each frame (a strip of cells along the top) so the player can
    /// show glass-to-glass latency; for measuring, not for watching.
    #[serde(default)]
    pub latency_probe: bool,
    /// Opus frame length in ms: 10 (lowest audio latency) or 20 (half the audio packets per viewer).
    #[serde(default = "default_audio_frame_ms")]
    pub audio_frame_ms: u32,
    /// Test source only: flash the picture white for one frame and beep for 100 ms at every second of the
    /// stream clock (silence in between), to check audio/video sync by eye and ear or with a tool.
    #[serde(default)]
    pub sync_marks: bool,
    /// WHIP endpoints and Janus VideoRooms this stream is also pushed to (an SFU, a CDN, another glasscast),
    /// from the same encoding.
    #[serde(default)]
    pub push: Vec<PushConfig>,
    /// Recording to fragmented MP4 files (off by default).
    #[serde(default)]
    pub record: super::record::RecordConfig,
    /// The lower encodings viewers on weak links are moved to (forwarding transport; on by default).
    #[serde(default)]
    pub ladder: super::ladder::LadderConfig,
}

/// `[[streams.push]]`: a WHIP endpoint (`https://...`) or a Janus VideoRoom
/// (`janus+wss://host:port/path?room=ROOM[&feed=ID][&display=NAME]`, see [`crate::push`]) and the token it
/// wants (a bearer token, a Janus API secret), or the file holding it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushConfig {
    pub url: String,
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub token_file: Option<std::path::PathBuf>,
}

/// `check-config` prints the configuration: never the token.
impl std::fmt::Debug for PushConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushConfig")
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| "(hidden)"))
            .field("token_file", &self.token_file)
            .finish()
    }
}

impl PushConfig {
    /// The token, read from `token_file` when given that way.
    pub fn load_token(&self) -> std::io::Result<Option<String>> {
        match (&self.token, &self.token_file) {
            (Some(t), _) => Ok(Some(t.clone())),
            (None, Some(path)) => Ok(Some(std::fs::read_to_string(path)?.trim().to_owned())),
            (None, None) => Ok(None),
        }
    }
}

fn default_audio_frame_ms() -> u32 {
    10
}
pub(super) fn yes() -> bool {
    true
}
fn default_source() -> VideoSource {
    VideoSource::Test
}
fn default_audio() -> AudioSource {
    AudioSource::Test
}
fn default_width() -> u32 {
    1280
}
fn default_height() -> u32 {
    720
}
fn default_fps() -> u32 {
    30
}
fn default_bitrate() -> u32 {
    2500
}
fn default_keyframe_interval() -> u32 {
    2
}
fn default_encoder() -> EncoderPref {
    EncoderPref::Auto
}
fn default_codecs() -> Vec<VideoCodec> {
    vec![VideoCodec::H264, VideoCodec::Vp8]
}

/// A video encoding a viewer can get (`codecs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VideoCodec {
    H264,
    Vp8,
}

impl VideoCodec {
    pub fn name(self) -> &'static str {
        match self {
            Self::H264 => "h264",
            Self::Vp8 => "vp8",
        }
    }
}
fn default_max_viewers() -> u32 {
    50
}

impl StreamConfig {
    /// The embedded default: the test pattern with a tone, 1280x720@30, 2.5 Mbit/s, named `name` (which must
    /// be a valid stream name).
    pub fn test_pattern(name: &str) -> Self {
        Self {
            name: StreamName::parse(name).expect("test_pattern is given a valid name"),
            enabled: true,
            source: VideoSource::Test,
            audio: AudioSource::Test,
            width: default_width(),
            height: default_height(),
            fps: default_fps(),
            bitrate_kbps: default_bitrate(),
            min_bitrate_kbps: None,
            keyframe_interval_s: default_keyframe_interval(),
            encoder: EncoderPref::Auto,
            codecs: default_codecs(),
            max_viewers: default_max_viewers(),
            latency_probe: false,
            audio_frame_ms: default_audio_frame_ms(),
            sync_marks: false,
            push: Vec::new(),
            record: super::record::RecordConfig::default(),
            ladder: super::ladder::LadderConfig::default(),
        }
    }

    /// The stream's own encoding as the ladder's top rung.
    pub fn top_rung(&self) -> super::ladder::Rung {
        super::ladder::Rung { width: self.width, height: self.height, fps: self.fps, bitrate_kbps: self.bitrate_kbps }
    }

    /// Every encoding of the stream's ladder, the top (its own) first; just that one with `ladder = false`.
    pub fn rungs(&self) -> Vec<super::ladder::Rung> {
        self.ladder.rungs(self.top_rung())
    }

    /// The floor for congestion control: `min_bitrate_kbps`, else a quarter of `bitrate_kbps` (at least 100).
    pub fn min_bitrate(&self) -> u32 {
        self.min_bitrate_kbps.unwrap_or((self.bitrate_kbps / 4).max(100)).min(self.bitrate_kbps)
    }

    pub fn stream_name(&self) -> StreamName {
        self.name.clone()
    }

    /// Checks this stream's values; `i` is its index in `streams` (for the key in the error).
    pub(super) fn validate(&self, i: usize) -> Result<(), ConfigError> {
        let st = self;
        let k = |f: &str| format!("streams[{i}].{f}");
        if !(16..=7680).contains(&st.width) || !st.width.is_multiple_of(2) {
            return Err(invalid(k("width"), st.width, "an even number from 16 to 7680"));
        }
        if !(16..=4320).contains(&st.height) || !st.height.is_multiple_of(2) {
            return Err(invalid(k("height"), st.height, "an even number from 16 to 4320"));
        }
        if !(1..=120).contains(&st.fps) {
            return Err(invalid(k("fps"), st.fps, "1 to 120"));
        }
        if ![10, 20].contains(&st.audio_frame_ms) {
            return Err(invalid(k("audio_frame_ms"), st.audio_frame_ms, "10 or 20"));
        }
        if st.latency_probe && st.width < MIN_PROBE_WIDTH {
            return Err(invalid(k("width"), st.width, "at least 256 with latency_probe = true"));
        }
        if !(100..=100_000).contains(&st.bitrate_kbps) {
            return Err(invalid(k("bitrate_kbps"), st.bitrate_kbps, "100 to 100000 (kbit/s)"));
        }
        if let Some(min) = st.min_bitrate_kbps
            && !(100..=st.bitrate_kbps).contains(&min)
        {
            return Err(invalid(k("min_bitrate_kbps"), min, format!("100 to bitrate_kbps ({})", st.bitrate_kbps)));
        }
        if !(1..=60).contains(&st.keyframe_interval_s) {
            return Err(invalid(k("keyframe_interval_s"), st.keyframe_interval_s, "1 to 60 (seconds)"));
        }
        if st.codecs.first() != Some(&VideoCodec::H264)
            || (1..st.codecs.len()).any(|j| st.codecs[..j].contains(&st.codecs[j]))
        {
            return Err(invalid(
                k("codecs"),
                format!("{:?}", st.codecs),
                "[\"h264\"] or [\"h264\", \"vp8\"]: H.264 first, each once",
            ));
        }
        if !(1..=10_000).contains(&st.max_viewers) {
            return Err(invalid(k("max_viewers"), st.max_viewers, "1 to 10000"));
        }
        match &st.source {
            VideoSource::X11 { display: Some(d), .. } if !d.contains(':') => {
                return Err(invalid(k("source.display"), d, "an X display such as :0 or host:0"));
            }
            VideoSource::V4l2 { device } if device.trim().is_empty() => {
                return Err(invalid(k("source.device"), device, "a device path (/dev/video0) or name"));
            }
            VideoSource::Uri { url, .. } => {
                let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
                let known = ["rtsp", "rtsps", "rtspt", "srt", "http", "https", "file", "udp", "rtmp"];
                if !scheme.is_some_and(|s| known.contains(&s.as_str())) {
                    return Err(invalid(k("source.url"), url, format!("a URL with scheme {}", known.join(", "))));
                }
            }
            _ => {}
        }
        for (j, p) in st.push.iter().enumerate() {
            if let Err(e) = crate::push::Endpoint::parse(&p.url) {
                let allowed = format!(
                    "an http(s):// WHIP endpoint or a janus+ws(s)://host:port/?room=ROOM Janus VideoRoom ({e})"
                );
                return Err(invalid(k(&format!("push[{j}].url")), crate::push::redacted(&p.url), allowed));
            }
            if p.token.is_some() && p.token_file.is_some() {
                return Err(invalid(k(&format!("push[{j}].token_file")), &p.token_file, "token or token_file"));
            }
        }
        if !(1..=super::record::MAX_SEGMENT_S).contains(&st.record.segment_s) {
            let allowed = format!("1 to {} seconds", super::record::MAX_SEGMENT_S);
            return Err(invalid(k("record.segment_s"), st.record.segment_s, allowed));
        }
        if let Some(days) = st.record.keep_days.filter(|d| !(1..=super::record::MAX_KEEP_DAYS).contains(d)) {
            let allowed = format!("1 to {} days, or left out (no age limit)", super::record::MAX_KEEP_DAYS);
            return Err(invalid(k("record.keep_days"), days, allowed));
        }
        if st.record.max_size_mb == Some(0) {
            return Err(invalid(k("record.max_size_mb"), 0, "at least 1 MiB, or left out (no size limit)"));
        }
        if st.sync_marks && (st.source != VideoSource::Test || st.audio != AudioSource::Test) {
            return Err(invalid(k("sync_marks"), true, "only with source = \"test\" and audio = \"test\""));
        }
        if let AudioSource::Input { device } = &st.audio
            && device.trim().is_empty()
        {
            return Err(invalid(k("audio.device"), device, "a source name (see `glasscast sources`)"));
        }
        st.ladder.validate(i, st.top_rung())
    }
}

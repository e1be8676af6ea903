//! H.264 encoders: how each is configured for low latency, and the probe that picks one.
//!
//! Every encoder here must make constrained-baseline H.264 without B-frames (browsers without a High
//! decoder, such as headless Chromium, must decode it; the SDP answer states constrained baseline). An
//! encoder is only chosen after it actually encoded a few frames in a tiny pipeline ([`probe`]): a VA-API
//! plugin that loads while its driver cannot encode is the classic black screen, and the probe catches it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;
use gstreamer as gst;
use gstreamer::prelude::*;

pub use crate::config::Encoder;
use crate::config::EncoderPref;

/// An encoder that was considered and not used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub encoder: Encoder,
    pub reason: String,
}

/// The encoder a stream uses, and the ones tried before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncoderChoice {
    pub encoder: Encoder,
    pub rejected: Vec<Rejected>,
}

impl EncoderChoice {
    /// The rejected encoders as `factory: reason` lines (logs, `/readyz`).
    pub fn rejected_reasons(&self) -> Vec<String> {
        self.rejected.iter().map(|r| format!("{}: {}", r.encoder.factory(), r.reason)).collect()
    }
}

/// How long a probe may take to encode its frames (a hardware encoder's first open can take ~1 s).
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Picks the stream's encoder: the first in `order` whose probe passes (`Auto`), or exactly the one asked
/// for (`Only`), whose failure is an error naming why.
pub fn choose_encoder(pref: EncoderPref, order: &[Encoder]) -> Result<EncoderChoice, String> {
    let candidates: Vec<Encoder> = match pref {
        EncoderPref::Auto => order.to_vec(),
        EncoderPref::Only(e) => vec![e],
    };
    let mut rejected = Vec::new();
    for encoder in candidates {
        match probe(encoder) {
            Ok(()) => return Ok(EncoderChoice { encoder, rejected }),
            Err(reason) => rejected.push(Rejected { encoder, reason }),
        }
    }
    let why: Vec<String> = rejected.iter().map(|r| format!("{}: {}", r.encoder.factory(), r.reason)).collect();
    Err(match pref {
        EncoderPref::Only(e) => format!("encoder = \"{}\" cannot work here: {}", e.name(), why.join("; ")),
        EncoderPref::Auto => format!("no H.264 encoder works here ({})", why.join("; ")),
    })
}

/// Probes `encoder` once per process (the result is kept): `Ok` when it encoded frames, else why not.
pub fn probe(encoder: Encoder) -> Result<(), String> {
    static DONE: Mutex<Option<HashMap<Encoder, Result<(), String>>>> = Mutex::new(None);
    if let Some(r) = DONE.lock().expect("probe lock").as_ref().and_then(|m| m.get(&encoder)) {
        return r.clone();
    }
    let result = probe_uncached(encoder);
    match &result {
        Ok(()) => tracing::debug!(encoder = encoder.factory(), "encoder probe passed"),
        Err(why) => tracing::debug!(encoder = encoder.factory(), why, "encoder probe failed"),
    }
    DONE.lock().expect("probe lock").get_or_insert_with(HashMap::new).insert(encoder, result.clone());
    result
}

fn probe_uncached(encoder: Encoder) -> Result<(), String> {
    if gst::ElementFactory::find(encoder.factory()).is_none() {
        return Err(missing(encoder));
    }
    let params = EncodeParams { bitrate_kbps: 500, fps: 30, keyframe_interval_s: 1 };
    let chain = build_encoder(encoder, &params).map_err(|e| format!("{e:#}"))?;
    encodes_frames(chain)
}

/// The GPU render nodes (`/dev/dri/renderD*`) VA-API encoders open; none: no GPU, or not passed into the
/// container.
pub fn render_nodes() -> Vec<std::path::PathBuf> {
    std::fs::read_dir("/dev/dri")
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("renderD")))
                .collect()
        })
        .unwrap_or_default()
}

/// Why an encoder's element does not exist, with what would provide it.
fn missing(encoder: Encoder) -> String {
    let dri = !render_nodes().is_empty();
    let plugin = |name: &str| gst::Registry::get().find_plugin(name).is_some();
    match encoder {
        Encoder::VaLp | Encoder::Va | Encoder::Vaapi => {
            let (plugin_name, package) = if encoder == Encoder::Vaapi {
                ("vaapi", "gstreamer1.0-vaapi")
            } else {
                ("va", "gstreamer1.0-plugins-bad")
            };
            if !dri {
                "no VA-API device (/dev/dri/renderD* missing: no GPU, or not passed into the container)".into()
            } else if !plugin(plugin_name) {
                format!("the `{plugin_name}` plugin is not installed ({package})")
            } else {
                format!(
                    "the `{plugin_name}` plugin found no encoder on /dev/dri (VA driver missing or without H.264 \
                     encode: intel-media-va-driver, mesa-va-drivers; check `vainfo`)"
                )
            }
        }
        Encoder::Nvenc => {
            "no nvh264enc (needs an NVIDIA GPU, its driver and gstreamer1.0-plugins-bad's nvcodec)".into()
        }
        Encoder::Qsv => "no qsvh264enc (needs an Intel GPU with oneVPL and GStreamer's qsv plugin)".into(),
        Encoder::X264 => "x264enc is not installed (gstreamer1.0-plugins-ugly)".into(),
        Encoder::OpenH264 => "openh264enc is not installed (gstreamer1.0-plugins-bad)".into(),
    }
}

/// `{videotestsrc 5 frames 320x240} - {chain} - {fakesink}`: `Ok` when encoded buffers reach the sink.
pub(crate) fn encodes_frames(chain: Vec<gst::Element>) -> Result<(), String> {
    let src = gst::ElementFactory::make("videotestsrc").property("num-buffers", 5i32).build();
    let caps = gst::Caps::builder("video/x-raw")
        .field("format", "I420")
        .field("width", 320i32)
        .field("height", 240i32)
        .field("framerate", gst::Fraction::new(30, 1))
        .build();
    let filter = gst::ElementFactory::make("capsfilter").property("caps", caps).build();
    let (Ok(src), Ok(filter)) = (src, filter) else { return Err("videotestsrc or capsfilter is missing".into()) };
    let mut all = vec![src, filter];
    all.extend(chain);
    crate::media::source::trial::first_buffers(all, 1, PROBE_TIMEOUT)
        .map(|_| ())
        .map_err(|e| format!("failed to encode: {e}"))
}

pub struct EncodeParams {
    pub bitrate_kbps: u32,
    pub fps: u32,
    pub keyframe_interval_s: u32,
}

/// Sets each property the element has (by its string form, so the type does not matter); hardware
/// encoders differ in what they offer between GStreamer versions.
fn set_props(element: &gst::Element, props: &[(&str, String)]) {
    for (name, value) in props {
        if element.has_property(name) {
            element.set_property_from_str(name, value);
        } else {
            tracing::debug!(element = %element.name(), property = name, "encoder has no such property");
        }
    }
}

/// Changes a running encoder's bitrate (openh264enc takes bit/s and a cap; the others kbit/s).
pub fn set_bitrate(element: &gst::Element, enc: Encoder, kbps: u32) {
    match enc {
        Encoder::OpenH264 => {
            element.set_property("bitrate", kbps * 1000);
            element.set_property("max-bitrate", kbps * 1000);
        }
        _ => set_props(element, &[("bitrate", kbps.to_string())]),
    }
}

/// A running encoder's bitrate, kbit/s.
pub fn bitrate_kbps(element: &gst::Element, enc: Encoder) -> u32 {
    let raw = element.property_value("bitrate").transform::<u32>().ok().and_then(|v| v.get::<u32>().ok());
    let raw = raw.unwrap_or_default();
    if enc == Encoder::OpenH264 { raw / 1000 } else { raw }
}

/// The H.264 payloader every delivery uses: SPS/PPS with every keyframe, each access unit sent as soon as
/// it is payloaded, payload type `pt`.
pub fn h264_payloader(pt: u8) -> anyhow::Result<gst::Element> {
    gst::ElementFactory::make("rtph264pay")
        .property("config-interval", -1i32)
        .property_from_str("aggregate-mode", "zero-latency")
        .property("pt", u32::from(pt))
        .build()
        .context("creating rtph264pay")
}

/// `({videoconvert} -) {encoder} - {capsfilter video/x-h264,constrained-baseline,byte-stream,au}`
/// (hardware encoders get a videoconvert: they take NV12, the sources give I420).
pub fn build_encoder(enc: Encoder, p: &EncodeParams) -> anyhow::Result<Vec<gst::Element>> {
    let gop = (p.fps * p.keyframe_interval_s).to_string();
    let kbps = p.bitrate_kbps.to_string();
    let element =
        gst::ElementFactory::make(enc.factory()).build().with_context(|| format!("creating {}", enc.factory()))?;
    match enc {
        Encoder::X264 => {
            element.set_property_from_str("tune", "zerolatency");
            element.set_property_from_str("speed-preset", "ultrafast");
            element.set_property("bitrate", p.bitrate_kbps);
            element.set_property("key-int-max", p.fps * p.keyframe_interval_s);
            element.set_property("bframes", 0u32);
            // A small VBV keeps keyframes from bursting far above the bitrate (latency spikes).
            element.set_property("vbv-buf-capacity", 300u32);
        }
        Encoder::OpenH264 => {
            element.set_property("bitrate", p.bitrate_kbps * 1000);
            // Without a cap openh264 overshoots (bench/encode: 3.8 Mbit/s at 720p30, 7 at 720p60 for 2.5).
            element.set_property("max-bitrate", p.bitrate_kbps * 1000);
            element.set_property("gop-size", p.fps * p.keyframe_interval_s);
            element.set_property_from_str("complexity", "low");
            element.set_property_from_str("rate-control", "bitrate");
        }
        // `va` plugin (GStreamer >= 1.22): CBR, no B-frames, the fastest target usage.
        Encoder::VaLp | Encoder::Va => set_props(
            &element,
            &[
                ("rate-control", "cbr".into()),
                ("bitrate", kbps),
                ("key-int-max", gop),
                ("b-frames", "0".into()),
                ("target-usage", "7".into()),
            ],
        ),
        Encoder::Vaapi => set_props(
            &element,
            &[
                ("rate-control", "cbr".into()),
                ("bitrate", kbps),
                ("keyframe-period", gop),
                ("max-bframes", "0".into()),
                ("quality-level", "7".into()),
            ],
        ),
        Encoder::Nvenc => set_props(
            &element,
            &[
                ("preset", "low-latency-hq".into()),
                ("rc-mode", "cbr".into()),
                ("bitrate", kbps),
                ("gop-size", gop),
                ("bframes", "0".into()),
                ("zerolatency", "true".into()),
            ],
        ),
        Encoder::Qsv => set_props(
            &element,
            &[
                ("rate-control", "cbr".into()),
                ("bitrate", kbps),
                ("gop-size", gop),
                ("b-frames", "0".into()),
                ("target-usage", "7".into()),
            ],
        ),
    }
    let profile = match enc {
        // openh264 only makes (constrained) baseline, which it labels either way.
        Encoder::OpenH264 => "baseline",
        // The others pick their profile from downstream caps.
        _ => "constrained-baseline",
    };
    let caps = gst::Caps::builder("video/x-h264")
        .field("stream-format", "byte-stream")
        .field("alignment", "au")
        .field("profile", profile)
        .build();
    let filter =
        gst::ElementFactory::make("capsfilter").property("caps", caps).build().context("creating capsfilter")?;
    let mut chain = Vec::new();
    if enc.hardware() {
        chain.push(gst::ElementFactory::make("videoconvert").build().context("creating videoconvert")?);
    }
    chain.extend([element, filter]);
    Ok(chain)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn init() {
        gst::init().expect("gstreamer");
    }

    #[test]
    fn auto_falls_back_to_software_and_says_why_each_hardware_encoder_was_passed_over() {
        init();
        let choice = choose_encoder(EncoderPref::Auto, &Encoder::ALL).expect("a software encoder works here");
        assert_eq!(choice.encoder, Encoder::X264, "no GPU here: x264 is the first that works");
        let passed_over: Vec<Encoder> = choice.rejected.iter().map(|r| r.encoder).collect();
        assert_eq!(passed_over, &Encoder::ALL[..5], "every hardware encoder was tried first, in order");
        for r in &choice.rejected {
            assert!(!r.reason.is_empty(), "{r:?}");
        }
        let va = &choice.rejected[0].reason;
        assert!(va.contains("/dev/dri") || va.contains("plugin"), "says what VA-API lacks: {va}");
    }

    #[test]
    fn the_order_is_configurable_and_a_forced_encoder_that_cannot_work_is_an_error_naming_why() {
        init();
        let choice = choose_encoder(EncoderPref::Auto, &[Encoder::OpenH264, Encoder::X264]).expect("works");
        assert_eq!(choice, EncoderChoice { encoder: Encoder::OpenH264, rejected: vec![] });
        let err = choose_encoder(EncoderPref::Only(Encoder::Nvenc), &Encoder::ALL).expect_err("no NVENC here");
        assert!(err.starts_with("encoder = \"nvenc\" cannot work here: nvh264enc: "), "{err}");
        assert_eq!(choose_encoder(EncoderPref::Only(Encoder::X264), &[]).map(|c| c.encoder), Ok(Encoder::X264));
    }

    #[test]
    fn an_encoder_that_exists_but_cannot_encode_fails_the_probe() {
        init();
        // x264enc exists, but asked for 10-bit 4:4:4 from 8-bit 4:2:0 input it cannot negotiate: the probe
        // must see that, as it would a VA plugin whose driver is broken.
        let enc = gst::ElementFactory::make("x264enc").build().expect("x264enc");
        let caps =
            gst::Caps::builder("video/x-h264").field("profile", "high-4:4:4").field("chroma-format", "4:4:4").build();
        let filter = gst::ElementFactory::make("capsfilter").property("caps", caps).build().expect("capsfilter");
        let err = encodes_frames(vec![enc, filter]).expect_err("cannot encode");
        assert!(err.starts_with("failed to encode"), "{err}");
        let ok = build_encoder(Encoder::X264, &EncodeParams { bitrate_kbps: 500, fps: 30, keyframe_interval_s: 1 });
        assert_eq!(encodes_frames(ok.expect("chain")), Ok(()));
    }
}

//! The H.264 encoder choice: the one place where encoders are picked and configured, so VA-API, NVENC and
//! others slot in later. Every encoder here must produce constrained-baseline without B-frames (browsers
//! without a High decoder, such as headless Chromium, must decode it).

use anyhow::Context;
use gstreamer as gst;
use gstreamer::prelude::*;

use crate::config::EncoderPref;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoder {
    X264,
    OpenH264,
}

impl Encoder {
    pub fn factory(self) -> &'static str {
        match self {
            Encoder::X264 => "x264enc",
            Encoder::OpenH264 => "openh264enc",
        }
    }
}

/// Picks the encoder for a preference from the factories that exist. `Err` lists what was missing.
pub fn choose_encoder(pref: EncoderPref) -> Result<Encoder, String> {
    let candidates: &[Encoder] = match pref {
        EncoderPref::Auto => &[Encoder::X264, Encoder::OpenH264],
        EncoderPref::X264 => &[Encoder::X264],
        EncoderPref::Openh264 => &[Encoder::OpenH264],
    };
    candidates.iter().copied().find(|e| gst::ElementFactory::find(e.factory()).is_some()).ok_or_else(|| {
        let names: Vec<_> = candidates.iter().map(|e| e.factory()).collect();
        format!("no H.264 encoder available (tried {})", names.join(", "))
    })
}

pub struct EncodeParams {
    pub bitrate_kbps: u32,
    pub fps: u32,
    pub keyframe_interval_s: u32,
}

/// Changes a running encoder's bitrate (x264enc takes kbit/s, openh264enc bit/s and a cap).
pub fn set_bitrate(element: &gst::Element, enc: Encoder, kbps: u32) {
    match enc {
        Encoder::X264 => element.set_property("bitrate", kbps),
        Encoder::OpenH264 => {
            element.set_property("bitrate", kbps * 1000);
            element.set_property("max-bitrate", kbps * 1000);
        }
    }
}

/// A running encoder's bitrate, kbit/s.
pub fn bitrate_kbps(element: &gst::Element, enc: Encoder) -> u32 {
    match enc {
        Encoder::X264 => element.property::<u32>("bitrate"),
        Encoder::OpenH264 => element.property::<u32>("bitrate") / 1000,
    }
}

/// `{encoder} - {capsfilter video/x-h264,constrained-baseline,byte-stream,au}`
pub fn build_encoder(enc: Encoder, p: &EncodeParams) -> anyhow::Result<Vec<gst::Element>> {
    let gop = p.fps * p.keyframe_interval_s;
    let element = match enc {
        Encoder::X264 => gst::ElementFactory::make("x264enc")
            .property_from_str("tune", "zerolatency")
            .property_from_str("speed-preset", "ultrafast")
            .property("bitrate", p.bitrate_kbps)
            .property("key-int-max", gop)
            .property("bframes", 0u32)
            // A small VBV keeps keyframes from bursting far above the bitrate (latency spikes).
            .property("vbv-buf-capacity", 300u32)
            .build(),
        Encoder::OpenH264 => gst::ElementFactory::make("openh264enc")
            .property("bitrate", p.bitrate_kbps * 1000)
            // Without a cap openh264 overshoots (bench/encode: 3.8 Mbit/s at 720p30, 7 at 720p60 for 2.5).
            .property("max-bitrate", p.bitrate_kbps * 1000)
            .property("gop-size", gop)
            .property_from_str("complexity", "low")
            .property_from_str("rate-control", "bitrate")
            .build(),
    }
    .with_context(|| format!("creating {}", enc.factory()))?;
    let profile = match enc {
        // x264 picks its profile from downstream caps.
        Encoder::X264 => "constrained-baseline",
        // openh264 only makes (constrained) baseline, which it labels either way.
        Encoder::OpenH264 => "baseline",
    };
    let caps = gst::Caps::builder("video/x-h264")
        .field("stream-format", "byte-stream")
        .field("alignment", "au")
        .field("profile", profile)
        .build();
    let filter =
        gst::ElementFactory::make("capsfilter").property("caps", caps).build().context("creating capsfilter")?;
    Ok(vec![element, filter])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choice_follows_preference_and_reports_what_is_missing() {
        gst::init().expect("gstreamer");
        assert_eq!(choose_encoder(EncoderPref::X264), Ok(Encoder::X264));
        assert_eq!(choose_encoder(EncoderPref::Auto), Ok(Encoder::X264));
        // openh264enc is in gst-plugins-bad on Debian; whichever way, the answer names it.
        match choose_encoder(EncoderPref::Openh264) {
            Ok(e) => assert_eq!(e, Encoder::OpenH264),
            Err(msg) => assert!(msg.contains("openh264enc"), "{msg}"),
        }
    }
}

//! Raw sources. Today: the embedded test source (moving pattern with a running clock, and a tone).

use anyhow::Context;
use gstreamer as gst;

use crate::config::StreamConfig;

fn make(factory: &str) -> anyhow::Result<gst::Element> {
    gst::ElementFactory::make(factory)
        .build()
        .with_context(|| format!("creating {factory} (is its GStreamer plugin installed?)"))
}

/// `{videotestsrc smpte, scrolling} - {clockoverlay} - {videoconvert} - {videoscale} - {videorate}
///  - {capsfilter I420 WxH@fps}`
pub fn test_video(cfg: &StreamConfig) -> anyhow::Result<Vec<gst::Element>> {
    let src = gst::ElementFactory::make("videotestsrc")
        .property("is-live", true)
        .property_from_str("pattern", "smpte")
        .property("horizontal-speed", 4i32)
        .build()
        .context("creating videotestsrc")?;
    let clock = gst::ElementFactory::make("clockoverlay")
        .property("time-format", "%H:%M:%S")
        .property_from_str("halignment", "right")
        .property_from_str("valignment", "bottom")
        .property("font-desc", "Sans Bold 28")
        .property("shaded-background", true)
        .build()
        .context("creating clockoverlay")?;
    let mut chain = vec![src, clock];
    chain.extend(conform_video(cfg)?);
    Ok(chain)
}

/// `{videoconvert} - {videoscale} - {videorate} - {capsfilter}`: any raw video to the configured size and rate.
pub fn conform_video(cfg: &StreamConfig) -> anyhow::Result<Vec<gst::Element>> {
    let caps = gst::Caps::builder("video/x-raw")
        .field("format", "I420")
        .field("width", cfg.width as i32)
        .field("height", cfg.height as i32)
        .field("framerate", gst::Fraction::new(cfg.fps as i32, 1))
        .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
        .build();
    let filter =
        gst::ElementFactory::make("capsfilter").property("caps", caps).build().context("creating capsfilter")?;
    Ok(vec![make("videoconvert")?, make("videoscale")?, make("videorate")?, filter])
}

/// `{audiotestsrc 440 Hz, frame_ms buffers} - {audioconvert} - {audioresample} - {capsfilter 48 kHz stereo}`
pub fn test_audio(frame_ms: u32) -> anyhow::Result<Vec<gst::Element>> {
    let src = gst::ElementFactory::make("audiotestsrc")
        .property("is-live", true)
        .property_from_str("wave", "sine")
        .property("freq", 440.0f64)
        .property("volume", 0.2f64)
        .property("samplesperbuffer", (48 * frame_ms) as i32)
        .build()
        .context("creating audiotestsrc")?;
    let caps = gst::Caps::builder("audio/x-raw").field("rate", 48_000i32).field("channels", 2i32).build();
    let filter =
        gst::ElementFactory::make("capsfilter").property("caps", caps).build().context("creating capsfilter")?;
    Ok(vec![src, make("audioconvert")?, make("audioresample")?, filter])
}

/// `{opusenc 10 or 20 ms frames, low delay}`
pub fn opus_encoder(frame_ms: u32) -> anyhow::Result<gst::Element> {
    gst::ElementFactory::make("opusenc")
        .property_from_str("frame-size", &frame_ms.to_string())
        .property_from_str("audio-type", "restricted-lowdelay")
        .property("bitrate", 96_000i32)
        .build()
        .context("creating opusenc")
}

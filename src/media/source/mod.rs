//! Raw sources: the embedded test source (moving pattern with a running clock, and a tone), X11 displays,
//! V4L2 cameras and capture cards, URL feeds, and desktop or input audio (PulseAudio, or PipeWire's pulse
//! server). Every video source ends conformed to the stream's size, rate and I420; every audio source to
//! 48 kHz stereo.
//!
//! The room also holds the ScreenCast portal (`portal`; the stream's `supervise` keeps a cast attached),
//! variable-rate pacing (`pace`), running a source until buffers
//! arrive (`trial`, `discover`: what `doctor` and the feed passthrough use), and the test marks (`sync_marks`,
//! `probe`: the latency probe).
//!
//! May use: the media root's vocabulary and `ingest::access_unit` (a passed-through feed's H.264).

pub mod discover;
pub(in crate::media) mod pace;
pub mod portal;
pub mod probe;
pub(in crate::media) mod sync_marks;
pub(in crate::media) mod trial;

use anyhow::Context;
use gstreamer as gst;
use gstreamer::prelude::*;

use crate::config::{AudioSource, StreamConfig, VideoSource};

/// The raw video chain for the stream's configured source, ending in its conforming capsfilter. A portal
/// stream's chain is only the conforming part: its source is attached once the portal grants a screen
/// ([`portal_source`], [`crate::media::stream::supervise::portal`]).
pub fn video(cfg: &StreamConfig) -> anyhow::Result<Vec<gst::Element>> {
    let mut chain = match &cfg.source {
        VideoSource::Test => return test_video(cfg),
        VideoSource::Portal { .. } | VideoSource::Uri { .. } => return conform_video(cfg),
        // A publisher's H.264 is relayed as it is: no raw chain.
        VideoSource::Whip => return Ok(Vec::new()),
        VideoSource::X11 { display, show_pointer } => {
            let mut src = gst::ElementFactory::make("ximagesrc")
                .property("use-damage", false)
                .property("show-pointer", *show_pointer)
                .property("do-timestamp", true);
            if let Some(d) = display {
                src = src.property("display-name", d);
            }
            vec![src.build().context("creating ximagesrc (gstreamer1.0-x)")?]
        }
        VideoSource::V4l2 { device } => {
            let src = gst::ElementFactory::make("v4l2src")
                .property("device", device)
                .property("do-timestamp", true)
                .build()
                .context("creating v4l2src (gstreamer1.0-plugins-good)")?;
            vec![decoded("v4l2", src)?]
        }
    };
    chain.extend(conform_video(cfg)?);
    Ok(chain)
}

/// `{uridecodebin url}` in a bin named `source-uri` exposing the feed's decoded video (RTSP over TCP with
/// a 100 ms jitter buffer, not the default 2 s). Attached and re-attached by [`crate::media::stream::supervise::feed`].
pub fn uri_source(url: &str) -> anyhow::Result<gst::Element> {
    video_pad_of("uri", uridecodebin(url, None)?)
}

/// `{uridecodebin url, stopping at H.264} - {h264parse, SPS/PPS with every IDR; whole units} - {capsfilter
/// byte-stream, au}` in a bin named `source-uri`: the feed's own H.264, for a stream that passes it through.
pub fn uri_h264_source(url: &str) -> anyhow::Result<gst::Element> {
    let decode = uridecodebin(url, Some(gst::Caps::builder("video/x-h264").build()))?;
    let parse = gst::ElementFactory::make("h264parse").property("config-interval", -1i32).build()?;
    // An RTSP camera's SPS/PPS may come as units of their own, like a WHIP publisher's.
    crate::media::ingest::access_unit::whole_units(&parse);
    let caps =
        gst::Caps::builder("video/x-h264").field("stream-format", "byte-stream").field("alignment", "au").build();
    let filter = gst::ElementFactory::make("capsfilter").property("caps", caps).build()?;
    let bin = gst::Bin::builder().name("source-uri").async_handling(true).build();
    bin.add_many([&decode, &parse, &filter])?;
    parse.link(&filter)?;
    let sink = parse.static_pad("sink").context("h264parse has a sink pad")?;
    decode.connect_pad_added(move |_, pad| {
        let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
        if caps.structure(0).is_some_and(|s| s.name() == "video/x-h264")
            && !sink.is_linked()
            && let Err(e) = pad.link(&sink)
        {
            tracing::warn!(error = ?e, "could not link the feed's H.264");
        }
    });
    let src = filter.static_pad("src").context("capsfilter has a src pad")?;
    bin.add_pad(&gst::GhostPad::builder_with_target(&src)?.name("src").build())?;
    Ok(bin.upcast())
}

/// A `uridecodebin` for `url` (stopping at `caps` when given), RTSP over TCP with a 100 ms jitter buffer.
fn uridecodebin(url: &str, caps: Option<gst::Caps>) -> anyhow::Result<gst::Element> {
    let mut b = gst::ElementFactory::make("uridecodebin").property("uri", url);
    if let Some(caps) = caps {
        b = b.property("caps", caps);
    }
    let src = b.build().context("creating uridecodebin")?;
    src.connect("source-setup", false, |args| {
        if let Some(source) = args.get(1).and_then(|v| v.get::<gst::Element>().ok())
            && source.has_property("latency")
        {
            source.set_property_from_str("latency", "100");
            // RTP over the RTSP connection: no UDP ports to open or lose, and a reconnect starts clean.
            if source.has_property("protocols") {
                source.set_property_from_str("protocols", "tcp");
            }
        }
        None
    });
    Ok(src)
}

/// `{pipewiresrc fd node, repeating the last frame while the screen is still}` in a bin named
/// `source-portal` (errors from inside it are the source's, not the stream's).
pub fn portal_source(cfg: &StreamConfig, fd: i32, node: u32) -> anyhow::Result<gst::Element> {
    let src = gst::ElementFactory::make("pipewiresrc")
        .property("fd", fd)
        .property("path", node.to_string())
        .property("do-timestamp", true)
        // Capture is damage-driven: a still screen sends nothing. Resend the last frame at the stream's rate
        // so joins get a picture and the encoder keeps its pace.
        .property("keepalive-time", (1000 / cfg.fps.max(1)) as i32)
        .property("always-copy", true)
        .build()
        .context("creating pipewiresrc (gstreamer1.0-pipewire)")?;
    let bin = gst::Bin::builder().name("source-portal").build();
    bin.add(&src)?;
    let pad = src.static_pad("src").context("pipewiresrc has a src pad")?;
    bin.add_pad(&gst::GhostPad::builder_with_target(&pad)?.name("src").build())?;
    Ok(bin.upcast())
}

/// A bin `{src} - {decodebin}` whose src pad is decodebin's video pad once it appears.
fn decoded(name: &str, src: gst::Element) -> anyhow::Result<gst::Element> {
    let bin = gst::Bin::builder().name(format!("source-{name}")).async_handling(true).build();
    let decode = make("decodebin")?;
    bin.add_many([&src, &decode])?;
    src.link(&decode)?;
    ghost_video_pad(&bin, &decode)?;
    Ok(bin.upcast())
}

/// A bin holding `element` (which makes pads as it finds streams), exposing its video pad.
fn video_pad_of(name: &str, element: gst::Element) -> anyhow::Result<gst::Element> {
    // async-handling: the bin finishes its own asynchronous state changes (decodebin prerolls when the
    // stream appears), so one attached to a running pipeline really reaches PLAYING.
    let bin = gst::Bin::builder().name(format!("source-{name}")).async_handling(true).build();
    bin.add(&element)?;
    ghost_video_pad(&bin, &element)?;
    Ok(bin.upcast())
}

/// Gives `bin` a src ghost pad now, pointed at `element`'s first raw video pad when it appears (other pads,
/// such as a feed's audio, are left unlinked).
fn ghost_video_pad(bin: &gst::Bin, element: &gst::Element) -> anyhow::Result<()> {
    let ghost = gst::GhostPad::builder(gst::PadDirection::Src).name("src").build();
    bin.add_pad(&ghost)?;
    let weak = ghost.downgrade();
    element.connect_pad_added(move |_, pad| {
        let Some(ghost) = weak.upgrade() else { return };
        let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
        let video = caps.structure(0).is_some_and(|s| s.name().starts_with("video/"));
        if video
            && ghost.target().is_none()
            && let Err(e) = ghost.set_target(Some(pad))
        {
            tracing::warn!(error = %e, "could not expose the source's video pad");
        }
    });
    Ok(())
}

/// The raw audio chain for the stream's configured audio (`None`: no audio track), ending at 48 kHz stereo.
pub fn audio(cfg: &StreamConfig) -> anyhow::Result<Option<Vec<gst::Element>>> {
    let src = match &cfg.audio {
        AudioSource::None => return Ok(None),
        AudioSource::Test => return test_audio(cfg.audio_frame_ms).map(Some),
        AudioSource::Desktop { sink } => {
            pulse(&sink.as_ref().map_or("@DEFAULT_MONITOR@".into(), |s| format!("{s}.monitor")), cfg)?
        }
        AudioSource::Input { device } => pulse(device, cfg)?,
    };
    let mut chain = vec![src];
    chain.extend(conform_audio()?);
    Ok(Some(chain))
}

/// `{pulsesrc device, 10/20 ms buffers}`: PulseAudio, or PipeWire through pipewire-pulse (which captures a
/// sink's monitor reliably; `pipewiresrc` with stream.capture.sink stalled on PipeWire 0.3.65).
fn pulse(device: &str, cfg: &StreamConfig) -> anyhow::Result<gst::Element> {
    let frame_us = i64::from(cfg.audio_frame_ms) * 1000;
    gst::ElementFactory::make("pulsesrc")
        .property("device", device)
        .property("buffer-time", frame_us * 4)
        .property("latency-time", frame_us)
        .property("do-timestamp", true)
        .property("client-name", format!("glasscast {}", cfg.name))
        .build()
        .context("creating pulsesrc (gstreamer1.0-pulseaudio)")
}

/// `{audioconvert} - {audioresample} - {capsfilter 48 kHz stereo}`
fn conform_audio() -> anyhow::Result<Vec<gst::Element>> {
    let caps = gst::Caps::builder("audio/x-raw").field("rate", 48_000i32).field("channels", 2i32).build();
    let filter =
        gst::ElementFactory::make("capsfilter").property("caps", caps).build().context("creating capsfilter")?;
    Ok(vec![make("audioconvert")?, make("audioresample")?, filter])
}

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

/// Any raw video to the configured size, rate and I420. Sources with a fixed rate (test, X11, V4L2):
/// `{videoconvert} - {videoscale} - {videorate drop-only} - {capsfilter I420 WxH@fps}`.
/// Sources with a variable rate (portal, feeds): `(pace fps) {videoconvert} - {videoscale}
/// - {capsfilter I420 WxH} - {capssetter framerate fps}`, where the pace is a probe on the chain's sink pad
/// ([`pace`]).
pub fn conform_video(cfg: &StreamConfig) -> anyhow::Result<Vec<gst::Element>> {
    let fixed_rate = matches!(cfg.source, VideoSource::Test | VideoSource::X11 { .. } | VideoSource::V4l2 { .. });
    let convert = make("videoconvert")?;
    if fixed_rate {
        let caps = i420_caps(cfg.width, cfg.height).field("framerate", gst::Fraction::new(cfg.fps as i32, 1));
        let filter = gst::ElementFactory::make("capsfilter")
            .property("caps", caps.build())
            .build()
            .context("creating capsfilter")?;
        // drop-only: pass each frame on at once (dropping what exceeds the rate) instead of holding it until
        // the next arrives to decide on duplicates, which delays every frame by one interval (33 ms at 30 fps).
        let rate =
            gst::ElementFactory::make("videorate").property("drop-only", true).build().context("creating videorate")?;
        return Ok(vec![convert, make("videoscale")?, rate, filter]);
    }
    // videorate cannot take a variable rate (0/1) without holding every frame; the pace drops what exceeds
    // the rate at the chain's entrance (before any conversion is paid for) and the caps state the nominal
    // rate for the encoder.
    pace::limit(&convert.static_pad("sink").context("videoconvert has a sink pad")?, cfg.fps);
    let mut chain = vec![convert];
    chain.extend(scale_stating_rate(cfg.width, cfg.height, cfg.fps)?);
    Ok(chain)
}

/// `{videoscale} - {capsfilter I420 WxH 1:1} - {capssetter framerate fps}`: raw video of an already limited
/// rate (a pace in front) to `width`x`height`, its caps stating the nominal rate for the encoder. The
/// variable-rate sources' conforming chain and the quality ladder's lower rungs end this way.
pub(in crate::media) fn scale_stating_rate(width: u32, height: u32, fps: u32) -> anyhow::Result<Vec<gst::Element>> {
    let filter = gst::ElementFactory::make("capsfilter")
        .property("caps", i420_caps(width, height).build())
        .build()
        .context("creating capsfilter")?;
    let setter = gst::ElementFactory::make("capssetter")
        .property(
            "caps",
            gst::Caps::builder("video/x-raw").field("framerate", gst::Fraction::new(fps as i32, 1)).build(),
        )
        .build()
        .context("creating capssetter (gstreamer1.0-plugins-good)")?;
    Ok(vec![make("videoscale")?, filter, setter])
}

/// I420 at `width`x`height` with square pixels.
fn i420_caps(width: u32, height: u32) -> gst::caps::Builder<gst::caps::NoFeature> {
    gst::Caps::builder("video/x-raw")
        .field("format", "I420")
        .field("width", width as i32)
        .field("height", height as i32)
        .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
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
    let mut chain = vec![src];
    chain.extend(conform_audio()?);
    Ok(chain)
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

//! What this machine can capture: cameras and capture cards, audio sources and sinks (GStreamer's device
//! monitor: V4L2, PulseAudio/PipeWire-pulse), and whether a configured source really produces media.

use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;

use crate::config::StreamConfig;
use crate::media::{source, source::trial};

/// A capture or playback device.
#[derive(Debug, Clone)]
pub struct Device {
    /// `camera`, `audio-source` or `audio-sink`.
    pub kind: &'static str,
    /// Its human name.
    pub name: String,
    /// What to write in the configuration (`device = ...`, `sink = ...`): the element's `device` property.
    pub id: Option<String>,
    /// Formats it offers, shortened.
    pub formats: String,
}

/// Lists cameras, audio sources and audio sinks (empty lists when the providers find nothing).
pub fn devices() -> Vec<Device> {
    let monitor = gst::DeviceMonitor::new();
    for class in ["Video/Source", "Audio/Source", "Audio/Sink"] {
        monitor.add_filter(Some(class), None);
    }
    if monitor.start().is_err() {
        return Vec::new();
    }
    let found = monitor.devices();
    monitor.stop();
    found
        .iter()
        .map(|d| {
            let class = d.device_class();
            let kind = if class.contains("Video") {
                "camera"
            } else if class.contains("Sink") {
                "audio-sink"
            } else {
                "audio-source"
            };
            let id = d
                .create_element(None)
                .ok()
                .filter(|e| e.has_property("device"))
                .and_then(|e| e.property::<Option<String>>("device"));
            let formats = d.caps().map(|c| summarize(&c)).unwrap_or_default();
            Device { kind, name: d.display_name().to_string(), id, formats }
        })
        .collect()
}

/// A few distinct media types with sizes, e.g. `image/jpeg 1920x1080, video/x-raw 640x480`.
fn summarize(caps: &gst::Caps) -> String {
    let mut out: Vec<String> = Vec::new();
    for s in caps.iter() {
        let w = s.get::<i32>("width").ok();
        let h = s.get::<i32>("height").ok();
        let item = match (w, h) {
            (Some(w), Some(h)) => format!("{} {w}x{h}", s.name()),
            _ => s.name().to_string(),
        };
        if !out.contains(&item) {
            out.push(item);
        }
        if out.len() == 4 {
            out.push("...".into());
            break;
        }
    }
    out.join(", ")
}

/// How long a configured source gets to deliver its first buffers in a trial.
const SOURCE_TRIAL: Duration = Duration::from_secs(6);

/// Runs the stream's video source (conformed to its size) until two frames arrive: `Ok` with what came.
pub fn try_video(cfg: &StreamConfig) -> Result<String, String> {
    let mut chain = source::video(cfg).map_err(|e| format!("{e:#}"))?;
    if let crate::config::VideoSource::Uri { url, .. } = &cfg.source {
        chain.insert(0, source::uri_source(url).map_err(|e| format!("{e:#}"))?);
    }
    trial::first_buffers(chain, 2, SOURCE_TRIAL).map(|c| trial::describe(&c))
}

/// A portal stream: with a saved restore token, opens the cast with it (no chooser) and runs it until two
/// frames arrive; without one, only checks the portal is there (`Ok("warn: ...")`: opening it would ask).
pub fn try_portal(
    cfg: &StreamConfig,
    token_file: &std::path::Path,
    cursor: crate::config::PortalCursor,
) -> Result<String, String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        if !token_file.exists() {
            return super::portal::available()
                .await
                .map(|()| "warn: reachable; no screen chosen yet (the first `serve` shows the portal's chooser)".into())
                .map_err(|e| e.to_string());
        }
        let capture = super::portal::open(token_file, cursor).await.map_err(|e| e.to_string())?;
        let mut chain = vec![source::portal_source(cfg, capture.fd(), capture.node).map_err(|e| format!("{e:#}"))?];
        chain.extend(source::conform_video(cfg).map_err(|e| format!("{e:#}"))?);
        let got = tokio::task::block_in_place(|| trial::first_buffers(chain, 2, SOURCE_TRIAL));
        drop(capture);
        got.map(|c| format!("{} (restored the saved choice)", trial::describe(&c)))
    })
}

/// What a feed's H.264 is, as far as passing it through goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedH264 {
    /// The `profile` of its caps (`constrained-baseline`, `main`, `high`, ...).
    pub profile: String,
    /// Frames arrive out of presentation order: B-frames.
    pub reordered: bool,
}

impl FeedH264 {
    /// The profile viewers would receive if it passed through; `None` when it must be re-encoded.
    pub fn passthrough(&self) -> Option<crate::media::H264Profile> {
        match (self.profile.as_str(), self.reordered) {
            (_, true) => None,
            ("constrained-baseline" | "baseline", false) => Some(crate::media::H264Profile::ConstrainedBaseline),
            ("main", false) => Some(crate::media::H264Profile::Main),
            _ => None,
        }
    }
}

/// Opens a feed and reads its first 30 frames of H.264 (profile, and whether any arrives with an earlier
/// timestamp than the one before it: B-frames). `Err` when it does not deliver H.264 within 8 s.
pub fn feed_h264(url: &str) -> Result<FeedH264, String> {
    let source = source::uri_h264_source(url).map_err(|e| format!("{e:#}"))?;
    let pad = source.static_pad("src").ok_or("the feed's bin has no src pad")?;
    let reordered = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (flag, last) = (reordered.clone(), std::sync::Mutex::new(None::<gst::ClockTime>));
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let Some(pts) = info.buffer().and_then(|b| b.pts()) {
            let mut last = last.lock().expect("probe lock");
            if last.is_some_and(|l| pts < l) {
                flag.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            *last = Some(pts);
        }
        gst::PadProbeReturn::Ok
    });
    let caps = trial::first_buffers(vec![source], 30, Duration::from_secs(8))?;
    let profile = caps.structure(0).and_then(|s| s.get::<String>("profile").ok()).unwrap_or_else(|| "unknown".into());
    Ok(FeedH264 { profile, reordered: reordered.load(std::sync::atomic::Ordering::Relaxed) })
}

/// Runs the stream's audio source until a few buffers arrive (`Ok(None)`: the stream has no audio).
pub fn try_audio(cfg: &StreamConfig) -> Result<Option<String>, String> {
    let Some(chain) = source::audio(cfg).map_err(|e| format!("{e:#}"))? else { return Ok(None) };
    trial::first_buffers(chain, 3, SOURCE_TRIAL).map(|c| Some(trial::describe(&c)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::H264Profile;

    #[test]
    fn only_h264_browsers_take_as_it_is_passes_through() {
        let feed = |profile: &str, reordered| FeedH264 { profile: profile.into(), reordered };
        assert_eq!(feed("constrained-baseline", false).passthrough(), Some(H264Profile::ConstrainedBaseline));
        assert_eq!(feed("baseline", false).passthrough(), Some(H264Profile::ConstrainedBaseline));
        assert_eq!(feed("main", false).passthrough(), Some(H264Profile::Main));
        assert_eq!(feed("main", true).passthrough(), None, "B-frames");
        assert_eq!(feed("high", false).passthrough(), None, "headless Chromium has no High decoder");
        assert_eq!(feed("unknown", false).passthrough(), None);
    }
}

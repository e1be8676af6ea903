//! What this machine can capture: cameras and capture cards, audio sources and sinks (GStreamer's device
//! monitor: V4L2, PulseAudio/PipeWire-pulse), and whether a configured source really produces media.

use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;

use super::{source, trial};
use crate::config::StreamConfig;

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
    if let crate::config::VideoSource::Uri { url } = &cfg.source {
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

/// Runs the stream's audio source until a few buffers arrive (`Ok(None)`: the stream has no audio).
pub fn try_audio(cfg: &StreamConfig) -> Result<Option<String>, String> {
    let Some(chain) = source::audio(cfg).map_err(|e| format!("{e:#}"))? else { return Ok(None) };
    trial::first_buffers(chain, 3, SOURCE_TRIAL).map(|c| Some(trial::describe(&c)))
}

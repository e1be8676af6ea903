//! The per-viewer gate between a shared RTP tee and a viewer's webrtcbin.
//!
//! It is the ghost sink pad of the viewer's bin, with its own chain functions, so that:
//! - nothing is queued while the viewer negotiates (no stale packets go out on connect): buffers are dropped
//!   until the connection is up, then until the first keyframe packet, then passed;
//! - a flow error inside the viewer's branch (not-negotiated, a failed webrtcbin) is swallowed here and never
//!   travels up the shared tee to the encoder and the other viewers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

use gstreamer as gst;

use crate::media::GateStats;

const CLOSED: u8 = 0;
const WAIT_KEYFRAME: u8 = 1;
const OPEN: u8 = 2;
const DEAD: u8 = 3;

#[derive(Debug, Default)]
pub struct Gate {
    state: AtomicU8,
    dropped: AtomicU64,
    forwarded: AtomicU64,
    first_forwarded_was_keyframe: AtomicBool,
    flow_errors: AtomicU64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Track {
    /// Opens at the first keyframe once connected.
    Video,
    /// Follows the video track (opens together with it, so audio and video start together).
    Audio,
}

impl Gate {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The peer connection is up: wait for the next keyframe, then pass everything.
    pub fn connected(&self) {
        let _ = self.state.compare_exchange(CLOSED, WAIT_KEYFRAME, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Drops everything from now on (teardown).
    pub fn kill(&self) {
        self.state.store(DEAD, Ordering::Release);
    }

    pub fn stats(&self) -> GateStats {
        GateStats {
            dropped: self.dropped.load(Ordering::Relaxed),
            forwarded: self.forwarded.load(Ordering::Relaxed),
            first_forwarded_was_keyframe: self.first_forwarded_was_keyframe.load(Ordering::Relaxed),
            flow_errors: self.flow_errors.load(Ordering::Relaxed),
        }
    }

    /// How many leading buffers of `bufs` (flags given by `is_delta`) to drop; `None` drops all.
    fn admit(&self, track: Track, deltas: impl Iterator<Item = bool>) -> Option<usize> {
        match (self.state.load(Ordering::Acquire), track) {
            (OPEN, _) => Some(0),
            (WAIT_KEYFRAME, Track::Video) => {
                let first_key = deltas.enumerate().find(|(_, delta)| !delta).map(|(i, _)| i)?;
                if self.state.compare_exchange(WAIT_KEYFRAME, OPEN, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                    self.first_forwarded_was_keyframe.store(true, Ordering::Relaxed);
                }
                Some(first_key)
            }
            _ => None,
        }
    }

    fn swallow(&self, result: Result<gst::FlowSuccess, gst::FlowError>) -> Result<gst::FlowSuccess, gst::FlowError> {
        if result.is_err() {
            self.flow_errors.fetch_add(1, Ordering::Relaxed);
        }
        Ok(gst::FlowSuccess::Ok)
    }

    /// A ghost sink pad targeting `target` that applies this gate to everything passing.
    pub fn ghost_pad(self: &Arc<Self>, name: &str, target: &gst::Pad, track: Track) -> anyhow::Result<gst::GhostPad> {
        let gate = Arc::clone(self);
        let gate_list = Arc::clone(self);
        let pad = gst::GhostPad::builder_with_target(target)?
            .name(name)
            .chain_function(move |pad, parent, buffer| {
                let delta = buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
                match gate.admit(track, std::iter::once(delta)) {
                    Some(0) => {
                        gate.forwarded.fetch_add(1, Ordering::Relaxed);
                        gate.swallow(gst::ProxyPad::chain_default(pad, parent, buffer))
                    }
                    _ => {
                        gate.dropped.fetch_add(1, Ordering::Relaxed);
                        Ok(gst::FlowSuccess::Ok)
                    }
                }
            })
            .chain_list_function(move |pad, parent, list| {
                let deltas: Vec<bool> = list.iter().map(|b| b.flags().contains(gst::BufferFlags::DELTA_UNIT)).collect();
                match gate_list.admit(track, deltas.iter().copied()) {
                    None => {
                        gate_list.dropped.fetch_add(deltas.len() as u64, Ordering::Relaxed);
                        Ok(gst::FlowSuccess::Ok)
                    }
                    Some(0) => {
                        gate_list.forwarded.fetch_add(deltas.len() as u64, Ordering::Relaxed);
                        gate_list.swallow(gst::ProxyPad::chain_list_default(pad, parent, list))
                    }
                    Some(skip) => {
                        let mut kept = gst::BufferList::new_sized(deltas.len() - skip);
                        {
                            let kept = kept.get_mut().expect("a new list is writable");
                            for b in list.iter().skip(skip) {
                                kept.add(b.to_owned());
                            }
                        }
                        gate_list.dropped.fetch_add(skip as u64, Ordering::Relaxed);
                        gate_list.forwarded.fetch_add((deltas.len() - skip) as u64, Ordering::Relaxed);
                        gate_list.swallow(gst::ProxyPad::chain_list_default(pad, parent, kept))
                    }
                }
            })
            .build();
        Ok(pad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_gate_drops_everything() {
        let g = Gate::default();
        assert_eq!(g.admit(Track::Video, [false].into_iter()), None);
        assert_eq!(g.admit(Track::Audio, [false].into_iter()), None);
    }

    #[test]
    fn connected_gate_waits_for_a_keyframe_then_opens() {
        let g = Gate::default();
        g.connected();
        assert_eq!(g.admit(Track::Video, [true, true].into_iter()), None);
        assert_eq!(g.admit(Track::Audio, [false].into_iter()), None, "audio waits for video");
        assert_eq!(g.admit(Track::Video, [true, false, true].into_iter()), Some(1));
        assert!(g.stats().first_forwarded_was_keyframe);
        assert_eq!(g.admit(Track::Video, [true].into_iter()), Some(0));
        assert_eq!(g.admit(Track::Audio, [false].into_iter()), Some(0));
    }

    #[test]
    fn killed_gate_stays_shut() {
        let g = Gate::default();
        g.connected();
        g.kill();
        g.connected();
        assert_eq!(g.admit(Track::Video, [false].into_iter()), None);
    }
}

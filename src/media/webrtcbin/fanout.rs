//! Encode once, payload per payload type: `{encoded tee} - {payloader pt=N} - [{capssetter}] - {rtp tee}`.
//!
//! webrtcbin does not rewrite RTP payload types and clients offer H.264/Opus under different numbers
//! (Chromium 102..127, GStreamer 96), so there is one payloader + RTP tee per (payload type, profile-level-id)
//! in use, all fed by the one encoder. The profile-level-id the client offered is restated on the RTP caps
//! (capssetter), because webrtcbin 1.22 only answers an m-line as sending when the caps on its input pad
//! match the offered format; a mismatch answers without sending (no video, no error).

use std::collections::HashMap;
use std::sync::Mutex;

use anyhow::Context;
use gstreamer as gst;
use gstreamer::prelude::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    H264,
    Opus,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BranchKey {
    pub pt: u8,
    /// The offered H.264 profile-level-id to restate; `None` for Opus.
    pub profile_level_id: Option<String>,
    /// The offered id of the playout-delay header extension, sent with zero delay when present.
    pub playout_delay_ext: Option<u8>,
}

pub struct Fanout {
    codec: Codec,
    pipeline: gst::Pipeline,
    encoded_tee: gst::Element,
    branches: Mutex<HashMap<BranchKey, gst::Element>>,
}

impl Fanout {
    pub fn new(codec: Codec, pipeline: &gst::Pipeline, encoded_tee: gst::Element) -> Self {
        Self { codec, pipeline: pipeline.clone(), encoded_tee, branches: Mutex::new(HashMap::new()) }
    }

    /// The RTP tee for `key`, built and linked on first use.
    pub fn rtp_tee(&self, key: &BranchKey) -> anyhow::Result<gst::Element> {
        let mut branches = self.branches.lock().expect("fanout lock poisoned");
        if let Some(tee) = branches.get(key) {
            return Ok(tee.clone());
        }
        let payloader = match self.codec {
            Codec::H264 => crate::media::encode::encoder::h264_payloader(key.pt)?,
            Codec::Opus => gst::ElementFactory::make("rtpopuspay")
                .property("pt", u32::from(key.pt))
                .build()
                .context("creating rtpopuspay")?,
        };
        if let Some(id) = key.playout_delay_ext {
            super::playout_delay::add_to(&payloader, id);
        }
        let mut chain = vec![payloader];
        if let Some(plid) = &key.profile_level_id {
            let caps = gst::Caps::builder("application/x-rtp").field("profile-level-id", plid.as_str()).build();
            chain.push(
                gst::ElementFactory::make("capssetter")
                    .property("caps", caps)
                    .property("join", true)
                    .property("replace", false)
                    .build()
                    .context("creating capssetter")?,
            );
        }
        // Unique per branch: one payload type may come with several profile-level-ids.
        let tee = gst::ElementFactory::make("tee")
            .name(format!("rtp-{:?}-{}-{}", self.codec, key.pt, branches.len()).to_lowercase())
            .property("allow-not-linked", true)
            .build()
            .context("creating tee")?;
        chain.push(tee.clone());
        self.pipeline.add_many(&chain)?;
        if let Err(e) = self.link_branch(&chain) {
            // Leave nothing half-built in the shared pipeline.
            for el in &chain {
                let _ = el.set_state(gst::State::Null);
                let _ = self.pipeline.remove(el);
            }
            return Err(e);
        }
        branches.insert(key.clone(), tee.clone());
        Ok(tee)
    }

    fn link_branch(&self, chain: &[gst::Element]) -> anyhow::Result<()> {
        gst::Element::link_many(chain)?;
        for e in chain.iter().rev() {
            e.sync_state_with_parent()?;
        }
        let src = self.encoded_tee.request_pad_simple("src_%u").context("requesting an encoded tee pad")?;
        let sink = chain[0].static_pad("sink").expect("payloaders have a sink pad");
        if let Err(e) = src.link(&sink) {
            self.encoded_tee.release_request_pad(&src);
            return Err(e).context("linking payloader");
        }
        Ok(())
    }

    /// Source pads on all RTP tees: one per connected or negotiating viewer.
    /// The tee of the encoded (not yet payloaded) stream.
    pub fn encoded_tee(&self) -> &gst::Element {
        &self.encoded_tee
    }

    pub fn viewer_pads(&self) -> usize {
        let branches = self.branches.lock().expect("fanout lock poisoned");
        branches.values().map(|t| t.src_pads().len()).sum()
    }
}

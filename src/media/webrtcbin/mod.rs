//! The webrtcbin viewer transport (`webrtc.transport = "webrtcbin"`, ADR 0001): payloader branches per
//! payload type and profile (`fanout`), a `webrtcbin` per viewer (`viewer`) behind a keyframe gate (`gate`),
//! libnice's ICE restart (`ice_restart`: one of the two `unsafe` places), the playout-delay header
//! extension and webrtcbin's stats. WHIP ingest and egress build their `webrtcbin`s with `viewer`'s helpers.
//!
//! May use: the media root's vocabulary, `offer` (what an offer asked for) and `encode::keyframes`.

pub(in crate::media) mod fanout;
mod gate;
pub mod ice_restart;
pub(in crate::media) mod playout_delay;
pub(in crate::media) mod stats;
pub(in crate::media) mod viewer;

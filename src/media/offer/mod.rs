//! Offers: what a WHEP offer asks for and what we answer with (`negotiate`: payload types, H.264 profile,
//! Opus, header extensions), and the sections we set aside and refuse in the answer (`sections`). SDP in,
//! plans out: no pipeline.
//!
//! May use: the media root's vocabulary only.

pub(in crate::media) mod negotiate;
pub(in crate::media) mod sections;

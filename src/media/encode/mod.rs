//! Encoding: the H.264 encoders and the probe that picks one (`encoder`), the on-demand VP8 encoding for
//! browsers without H.264 (`vp8`), the lower rungs of a stream's quality ladder (`ladder`), the loss-driven bitrate steps (`congestion`), the keyframe-request
//! limiter (`keyframes`) and the frame meter (`meter`).
//!
//! May use: the media root's vocabulary, `source::trial` (the probe runs a test chain through each
//! encoder) and `forward` (the VP8 encoding hands its packets to the forwarding transport's mux).

pub(in crate::media) mod congestion;
pub mod encoder;
pub(in crate::media) mod keyframes;
pub mod ladder;
pub(in crate::media) mod meter;
pub mod vp8;

//! Consumers of a stream's encoded tees that are not viewers: the shared `queue - appsink` tap feeding a
//! consumer's `appsrc` (`feed`), recording (`record`: one file's pipeline; `recorder`: the thread that keeps
//! files going, rotates and applies retention) and egress to a WHIP endpoint or Janus room (`egress`).
//!
//! May use: the media root's vocabulary, `encode::keyframes` and `webrtcbin` (egress's `webrtcbin` tuning
//! and end reasons).

pub mod egress;
mod feed;
pub(in crate::media) mod record;
pub mod recorder;

//! WHIP ingest: a publisher's offer read and answered (`whip_offer`), its `webrtcbin` and depayloaded
//! H.264/Opus (`publisher`), and the access-unit joiner that also serves passed-through URL feeds
//! (`access_unit`).
//!
//! May use: the media root's vocabulary, `offer` and `webrtcbin` (the publisher's `webrtcbin`).

pub(in crate::media) mod access_unit;
pub(in crate::media) mod publisher;
pub(in crate::media) mod whip_offer;

//! Media-path tests: real pipelines, viewers on webrtcbin, aiortc, whepclientsrc and Chromium, both
//! transports, WHIP in and out, a Janus VideoRoom cascade, network testbeds (TURN, ICE-TCP, NAT).

#[path = "../common/mod.rs"]
mod common;

mod browser_player;
mod egress;
mod feeds;
mod forward_transport;
mod ice_restart;
mod interop_whepclientsrc;
mod janus_cascade;
mod metrics;
mod mux_failure;
mod reach;
mod recording;
mod restart;
mod retransmission;
mod sources;
mod vp8;
mod whep_media;
mod whip_cascade;
mod whip_ingest;

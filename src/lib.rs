//! glasscast: a self-hosted, low-latency screen + audio streaming appliance.
//!
//! See ARCHITECTURE.md for the map. Layers: [`media`] (GStreamer, no HTTP), [`http`] (axum, no GStreamer),
//! and [`session`], the one owner of all sessions that both talk to.

pub mod config;
pub mod ids;
pub mod media;
pub mod sdpfrag;
pub mod session;
pub mod http;
pub mod serve;

//! glasscast: a self-hosted, low-latency screen + audio streaming appliance.
//!
//! See ARCHITECTURE.md for the map. Layers: [`media`] (GStreamer, no HTTP), [`http`] (axum, no GStreamer),
//! and [`session`], the one owner of all sessions that both talk to.

// Nothing a peer or a configuration controls is unwrapped (`expect("why this holds")` for invariants).
#![cfg_attr(not(test), deny(clippy::unwrap_used))]
// No `unsafe` but in two places, each allowed where it is with its reason (ARCHITECTURE.md).
#![deny(unsafe_code)]

pub mod auth;
pub mod cli;
pub mod config;
pub mod doctor;
pub mod host;
pub mod http;
pub mod ids;
pub mod logging;
pub mod media;
pub mod net;

pub mod push;
pub mod recordings;
pub mod sdpfrag;
pub mod serve;
pub mod session;
pub mod state;
pub mod telemetry;

/// The layering rules, held on the import graph (`src/layers.rs`).
#[cfg(test)]
mod layers;

//! Measurements that need the machine to themselves (`.config/nextest.toml` gives this binary every
//! slot): frame rate, latency and loss, congestion, A/V sync, admission under load, the junk flood, churn.

#[path = "../common/mod.rs"]
mod common;

mod av_sync;
mod churn;
mod congestion;
mod ice_tcp_flood;
mod junk_flood;
mod ladder;
mod loss;
mod low_latency;
mod vp8_features;

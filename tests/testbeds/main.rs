//! The heavy testbeds (`.config/nextest.toml` gives this binary every slot): Podman containers, the
//! headless Wayland session's portal, PipeWire desktop audio.

#[path = "../common/mod.rs"]
mod common;

mod container;
mod desktop_audio;
mod portal;

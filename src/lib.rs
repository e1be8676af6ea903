//! glasscast: a self-hosted, low-latency screen + audio streaming appliance.
//!
//! See ARCHITECTURE.md for the map. Layers: [`media`] (GStreamer, no HTTP), [`http`] (axum, no GStreamer),
//! and [`session`], the one owner of all sessions that both talk to.

// Nothing a peer or a configuration controls is unwrapped (`expect("why this holds")` for invariants).
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod auth;
pub mod cli;
pub mod config;
pub mod doctor;
pub mod http;
pub mod ids;
pub mod logging;
pub mod media;
pub mod net;
pub mod oncall;
pub mod push;
pub mod recordings;
pub mod sdpfrag;
pub mod serve;
pub mod session;
pub mod state;
pub mod telemetry;

/// The layering rules, held by reading the sources: `media` knows no HTTP, tokens or axum; `http` knows no
/// GStreamer, str0m or `media` (it sees sessions, whose errors classify media's).
#[cfg(test)]
mod layers {
    use std::path::Path;

    /// Every `.rs` file under `src/DIR` (and `src/DIR.rs`), with its text.
    fn sources(dir: &str) -> Vec<(String, String)> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut todo = vec![root.join(dir)];
        let mut out = Vec::new();
        if let Ok(text) = std::fs::read_to_string(root.join(format!("{dir}.rs"))) {
            out.push((format!("src/{dir}.rs"), text));
        }
        while let Some(d) = todo.pop() {
            for entry in std::fs::read_dir(&d).expect("a source directory").flatten() {
                let path = entry.path();
                if path.is_dir() {
                    todo.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).expect("a source file");
                    out.push((path.display().to_string(), text));
                }
            }
        }
        assert!(!out.is_empty(), "no sources under src/{dir}");
        out
    }

    fn offenders(dir: &str, forbidden: &[&str]) -> Vec<String> {
        let mut found = Vec::new();
        for (path, text) in sources(dir) {
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or_default();
                if let Some(f) = forbidden.iter().find(|f| code.contains(*f)) {
                    found.push(format!("{path}:{}: {f}", n + 1));
                }
            }
        }
        found
    }

    #[test]
    fn media_knows_no_http_tokens_or_axum() {
        let found = offenders("media", &["crate::http", "crate::auth", "axum", "hyper"]);
        assert!(found.is_empty(), "media reaches across its layer: {found:?}");
    }

    #[test]
    fn http_knows_no_gstreamer_str0m_or_media() {
        let found = offenders("http", &["crate::media", "gstreamer", "str0m"]);
        assert!(found.is_empty(), "http reaches across its layer: {found:?}");
    }
}

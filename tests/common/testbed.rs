//! The session testbeds in scripts/testbed/ (a private PipeWire audio session, a headless Wayland session
//! with the ScreenCast portal), started for a test and stopped when dropped.

use std::process::Command;

/// A running testbed: its directory and the environment a client needs (`DIR/env`).
pub struct Testbed {
    script: String,
    pub dir: String,
    pub env: Vec<(String, String)>,
}

impl Testbed {
    /// Runs `scripts/testbed/SCRIPT start DIR ARGS...` in a fresh short directory under /tmp (socket paths
    /// have a length limit) and reads its `DIR/env`.
    pub fn start(script: &str, prefix: &str, args: &[&str]) -> Self {
        let script = format!("{}/scripts/testbed/{script}", env!("CARGO_MANIFEST_DIR"));
        let dir = tempfile::Builder::new().prefix(prefix).tempdir_in("/tmp").expect("tempdir").keep();
        let dir = dir.to_str().expect("utf-8").to_owned();
        let out = Command::new(&script)
            .arg("start")
            .arg(&dir)
            .args(args)
            .env("GLASSCAST_PW_OWNER_PID", std::process::id().to_string())
            .output()
            .expect("the testbed script runs");
        assert!(
            out.status.success(),
            "{script} start failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::fs::read_to_string(format!("{dir}/env")).expect("env file");
        let env = text
            .lines()
            .filter_map(|l| l.strip_prefix("export ").unwrap_or(l).split_once('='))
            .map(|(k, v)| (k.to_owned(), v.trim_matches(['"', '\'']).to_owned()))
            .collect();
        Self { script, dir, env }
    }

    /// Puts the environment variables whose names start with `prefix` (all: "") into this process's
    /// environment. Call before GStreamer, libpulse or D-Bus start threads in this test binary.
    pub fn export(&self, prefix: &str) {
        for (k, v) in self.env.iter().filter(|(k, _)| k.starts_with(prefix)) {
            // SAFETY: called before this test binary starts GStreamer, libpulse or D-Bus threads.
            unsafe { std::env::set_var(k, v) };
        }
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        let _ = Command::new(&self.script).env("KEEP_LOGS", "0").args(["stop", &self.dir]).output();
    }
}

/// Waits until `v` decodes new frames whose picture spans a wide luma range (a moving ball on black, bars),
/// which an uncaptured (black or frozen-blank) picture does not.
pub async fn sees_a_picture(v: &super::WebrtcbinViewer, secs: u64) -> bool {
    let start = v.frames();
    let wide = || v.luma_range.lock().expect("lock").is_some_and(|(lo, hi)| hi - lo > 120);
    super::eventually(secs, || v.frames() > start + 5 && wide()).await
}

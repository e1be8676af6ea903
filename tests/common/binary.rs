//! The real `glasscast` binary as a child process: plain HTTP on a free port, access control off, with
//! extra configuration and environment (test faults), and its log kept.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

/// A running `glasscast serve`, killed on drop. Its log is read as it comes (a full pipe would stop it).
pub struct Running {
    pub child: Child,
    pub base: String,
    log: Arc<Mutex<Vec<u8>>>,
    reader: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    /// Kills the server and returns what it logged.
    pub fn kill_and_log(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        String::from_utf8_lossy(&self.log.lock().expect("log lock")).into_owned()
    }

    /// Its admin token (generated into its state directory at start).
    pub fn admin_token(&self) -> String {
        let path = self._dir.path().join("state/auth/admin_token");
        std::fs::read_to_string(path).expect("admin token").trim().to_owned()
    }

    /// `/readyz`, parsed (Null when it does not answer JSON).
    pub async fn readyz(&self) -> serde_json::Value {
        match reqwest::get(format!("{}/readyz", self.base)).await {
            Ok(r) => serde_json::from_str(&r.text().await.unwrap_or_default()).unwrap_or_default(),
            Err(_) => serde_json::Value::Null,
        }
    }
}

/// Starts `glasscast serve` with `[server]`, `[auth]` and `[metrics]` set for a test, then `extra` (more
/// tables: `[webrtc]`, `[[streams]]`), and `env`; waits until `/readyz` says ready.
pub async fn serve(extra: &str, env: &[(&str, &str)]) -> Running {
    serve_under(extra, env, &[]).await
}

/// [`serve`], started through `wrapper` (a command that ends by running its arguments: the binary and
/// its own, as `sh -c '...; exec "$0" "$@"'` does), such as `unshare` into a namespace of its own.
pub async fn serve_under(extra: &str, env: &[(&str, &str)], wrapper: &[&str]) -> Running {
    super::init();
    let dir = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nplain_http = true\nstate_dir = \"{}\"\n[auth]\nmode = \"disabled\"\n\
         [metrics]\nenabled = false\n{extra}",
        dir.path().join("state").display()
    );
    let path = dir.path().join("glasscast.toml");
    std::fs::write(&path, config).expect("config");
    let binary = env!("CARGO_BIN_EXE_glasscast");
    let mut command = match wrapper.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(binary);
            c
        }
        None => Command::new(binary),
    };
    let mut child = command
        .args(["--config", path.to_str().expect("utf-8"), "serve"])
        .envs(env.iter().copied())
        .env_remove("GLASSCAST_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("glasscast starts");
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut stderr = child.stderr.take().expect("piped stderr");
    let sink = log.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n @ 1..) = stderr.read(&mut buf) {
            sink.lock().expect("log lock").extend_from_slice(&buf[..n]);
        }
    });
    let base = format!("http://127.0.0.1:{port}");
    let up = super::eventually_async(30, || async {
        reqwest::get(format!("{base}/readyz")).await.is_ok_and(|r| r.status() == 200)
    })
    .await;
    assert!(up, "glasscast never got ready");
    Running { child, base, log, reader: Some(reader), _dir: dir }
}

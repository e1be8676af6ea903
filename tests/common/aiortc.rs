//! Peers on aiortc (Python; a WebRTC stack glasscast does not implement), driven through
//! `tests/peers/aiortc_peer.py` in the virtualenv `make test` installs (`AIORTC_PYTHON` overrides it).

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

use super::TestServer;

fn python() -> String {
    std::env::var("AIORTC_PYTHON").unwrap_or_else(|_| "/usr/local/lib/glasscast-aiortc/bin/python".into())
}

fn command(netns: Option<&str>, role: &str, url: &str, token: Option<&str>, args: &[&str]) -> Command {
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(python());
            c
        }
        None => Command::new(python()),
    };
    cmd.current_dir(env!("CARGO_MANIFEST_DIR")).arg("tests/peers/aiortc_peer.py").args([role, url]);
    if let Some(t) = token {
        cmd.args(["--token", t]);
    }
    cmd.args(args).kill_on_drop(true);
    cmd
}

async fn json_line(lines: &mut Lines<BufReader<ChildStdout>>, what: &str) -> serde_json::Value {
    let line = tokio::time::timeout(Duration::from_secs(40), lines.next_line())
        .await
        .unwrap_or_else(|_| panic!("aiortc {what}: no line within 40 s"))
        .expect("read aiortc's output")
        .unwrap_or_else(|| panic!("aiortc {what}: exited without a line"));
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("aiortc {what}: not JSON ({e}): {line}"))
}

/// A WHIP publisher on aiortc, publishing until [`AiortcPublisher::stop`] (or drop).
pub struct AiortcPublisher {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    /// The POST's status and body (the answer, or a problem).
    pub status: u16,
    pub answer: String,
}

impl AiortcPublisher {
    /// POSTs to `/whip/{stream}`; `args` as aiortc_peer.py takes them (`--videos 2 --audio --datachannel`).
    pub async fn start(srv: &TestServer, stream: &str, token: &str, args: &[&str]) -> Self {
        let url = format!("{}/whip/{stream}", srv.base);
        let mut child = command(None, "publish", &url, Some(token), args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("aiortc runs (make test installs it)");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let first = json_line(&mut lines, "publish").await;
        let status = first["status"].as_u64().expect("status") as u16;
        let answer = first["answer"].as_str().unwrap_or_default().to_owned();
        Self { child, lines, status, answer }
    }

    /// Whether aiortc reports its peer connection up (within its 20 s).
    pub async fn connected(&mut self) -> bool {
        let line = json_line(&mut self.lines, "connect").await;
        eprintln!("aiortc publisher: {line}");
        line["event"] == "connected"
    }

    /// Closes its stdin: it DELETEs its resource and exits.
    pub async fn stop(mut self) {
        drop(self.child.stdin.take());
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }
}

/// A WHEP viewer on aiortc: POSTs to `/whep/{stream}` and decodes until 30 frames or 20 s. Returns its
/// report (`status`, `answer`, `frames`, `width`, `height`, `audio_frames`, `connection`).
pub async fn watch(srv: &TestServer, stream: &str, token: Option<&str>, args: &[&str]) -> serde_json::Value {
    watch_url(None, &format!("{}/whep/{stream}", srv.base), token, args).await
}

/// [`watch`] any WHEP URL, from network namespace `netns` when given.
pub async fn watch_url(netns: Option<&str>, url: &str, token: Option<&str>, args: &[&str]) -> serde_json::Value {
    let mut child = command(netns, "watch", url, token, args).stdout(Stdio::piped()).spawn().expect("aiortc runs");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let report = json_line(&mut lines, "watch").await;
    let _ = child.wait().await;
    report
}

/// The sections of an SDP answer: (kind, used). A section is refused with port 0 or `a=inactive`.
pub fn sections(sdp: &str) -> Vec<(String, bool)> {
    let mut out: Vec<(String, bool)> = Vec::new();
    for line in sdp.lines().map(str::trim_end) {
        if let Some(m) = line.strip_prefix("m=") {
            let mut m = m.split_whitespace();
            let kind = m.next().unwrap_or_default().to_owned();
            out.push((kind, m.next() != Some("0")));
        } else if let Some(last) = out.last_mut().filter(|_| line == "a=inactive") {
            last.1 = false;
        }
    }
    out
}

/// `want` as [`sections`] returns it.
pub fn expect(want: &[(&str, bool)]) -> Vec<(String, bool)> {
    want.iter().map(|(k, used)| ((*k).to_owned(), *used)).collect()
}

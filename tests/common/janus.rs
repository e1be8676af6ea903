//! Janus (Debian's `janus` package), started for a test with a configuration of its own: the VideoRoom plugin
//! only, the WebSocket transport only on `127.0.0.1:<free port>`, an API secret, and one H.264 + Opus room.
//! Killed on drop; [`Janus::restart`] stops it and starts it again on the same port.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The room every test Janus has (numeric ids).
pub const ROOM: u64 = 1234;
/// The API secret every request must carry (`secret-key` on gst-plugins-rs' Janus signaller).
pub const SECRET: &str = "janus-test-secret";

pub struct Janus {
    child: Option<Child>,
    dir: tempfile::TempDir,
    pub port: u16,
}

impl Janus {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        write_config(dir.path(), port);
        let mut janus = Self { child: None, dir, port };
        janus.spawn();
        janus
    }

    /// The WebSocket API's URL.
    pub fn ws(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    /// Kills Janus (every session and publisher gone, the port closed).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts Janus again after [`Janus::kill`], on the same port.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "Janus is running");
        let d = self.dir.path();
        let cfg = d.join("janus.jcfg");
        let child = Command::new("janus")
            .args(["-F", path(d), "-C", path(&cfg), "-L", path(&d.join("janus.log")), "-N", "-o"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("janus runs (make test installs Debian's janus)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "Janus' WebSocket port never opened:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("janus.log")).unwrap_or_default()
    }
}

impl Drop for Janus {
    fn drop(&mut self) {
        self.kill();
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Where Debian puts Janus' plugins and transports (`/usr/lib/<triplet>/janus`).
fn lib_dir() -> PathBuf {
    let found = std::fs::read_dir("/usr/lib").expect("/usr/lib").flatten().map(|e| e.path().join("janus"));
    found.into_iter().find(|p| p.join("plugins/libjanus_videoroom.so").exists()).expect("Janus' VideoRoom plugin")
}

fn write_config(dir: &Path, port: u16) {
    let lib = lib_dir();
    let all_but = |sub: &str, keep: &str| {
        let names = std::fs::read_dir(lib.join(sub)).expect("janus lib dir").flatten();
        let mut v: Vec<String> = names
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".so") && n != keep)
            .collect();
        v.sort();
        v.join(",")
    };
    let main = format!(
        "general: {{\n  configs_folder = \"{d}\"\n  plugins_folder = \"{l}/plugins\"\n  \
         transports_folder = \"{l}/transports\"\n  events_folder = \"{l}/events\"\n  \
         loggers_folder = \"{l}/loggers\"\n  debug_level = 4\n  api_secret = \"{SECRET}\"\n}}\n\
         media: {{\n  rtp_port_range = \"40000-40999\"\n}}\n\
         nat: {{\n  nice_debug = false\n  ignore_mdns = true\n}}\n\
         plugins: {{\n  disable = \"{p}\"\n}}\n\
         transports: {{\n  disable = \"{t}\"\n}}\n\
         events: {{\n  broadcast = false\n}}\n\
         loggers: {{\n  disable = \"{g}\"\n}}\n",
        d = path(dir),
        l = path(&lib),
        p = all_but("plugins", "libjanus_videoroom.so"),
        t = all_but("transports", "libjanus_websockets.so"),
        g = all_but("loggers", ""),
    );
    std::fs::write(dir.join("janus.jcfg"), main).expect("janus.jcfg");
    let ws =
        format!("general: {{\n  json = \"indented\"\n  ws = true\n  ws_port = {port}\n  ws_ip = \"127.0.0.1\"\n}}\n");
    std::fs::write(dir.join("janus.transport.websockets.jcfg"), ws).expect("websockets config");
    let room = format!(
        "general: {{\n}}\nroom-{ROOM}: {{\n  description = \"glasscast test\"\n  publishers = 4\n  \
         bitrate = 4000000\n  videocodec = \"h264\"\n  audiocodec = \"opus\"\n  fir_freq = 2\n}}\n"
    );
    std::fs::write(dir.join("janus.plugin.videoroom.jcfg"), room).expect("videoroom config");
}

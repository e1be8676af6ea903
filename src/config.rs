//! Configuration: built-in defaults < TOML file < environment (`GLASSCAST__SECTION__KEY`).
//!
//! Everything is deserialized into typed structs and then validated; an invalid value is reported with its
//! key, the value and what is allowed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

use crate::ids::StreamName;

/// Where the file is looked for when `--config` is not given.
pub const SYSTEM_CONFIG: &str = "/etc/glasscast/glasscast.toml";

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("invalid configuration: `{key}` = {value}: {allowed}")]
    Invalid { key: String, value: String, allowed: String },
}

fn invalid(key: impl Into<String>, value: impl std::fmt::Debug, allowed: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key: key.into(), value: format!("{value:?}"), allowed: allowed.into() }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub webrtc: WebrtcConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub auth: AuthConfig,
    #[serde(default = "default_streams")]
    pub streams: Vec<StreamConfig>,
}

/// Access control (`[auth]`).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// `required` (default): every WHEP request needs a token. `disabled`: anyone who reaches the port can
    /// watch (a warning is logged at start).
    pub mode: AuthMode,
    /// The admin token itself (at least 16 characters); prefer `admin_token_file` or the environment
    /// (GLASSCAST__AUTH__ADMIN_TOKEN). Neither: one is generated into state_dir/auth/admin_token.
    pub admin_token: Option<String>,
    /// A file holding the admin token (compose/systemd secrets).
    pub admin_token_file: Option<PathBuf>,
    /// Refused tokens one client address may send at once before it gets 429 (0: no limit) ...
    pub failures_burst: u32,
    /// ... and how many more it may send per minute after that.
    pub failures_per_minute: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            mode: AuthMode::default(),
            admin_token: None,
            admin_token_file: None,
            failures_burst: 10,
            failures_per_minute: 10,
        }
    }
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("mode", &self.mode)
            .field("admin_token", &self.admin_token.as_ref().map(|_| "<redacted>"))
            .field("admin_token_file", &self.admin_token_file)
            .field("failures_burst", &self.failures_burst)
            .field("failures_per_minute", &self.failures_per_minute)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(try_from = "String")]
pub enum AuthMode {
    #[default]
    Required,
    Disabled,
}

impl TryFrom<String> for AuthMode {
    type Error = String;
    fn try_from(v: String) -> Result<Self, String> {
        match v.as_str() {
            "required" => Ok(Self::Required),
            "disabled" => Ok(Self::Disabled),
            _ => Err(format!("unknown value \"{v}\" (allowed: \"required\", \"disabled\")")),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server: ServerConfig::default(),
            webrtc: WebrtcConfig::default(),
            log: LogConfig::default(),
            auth: AuthConfig::default(),
            streams: default_streams(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address and port of the HTTPS (or, with `plain_http`, HTTP) listener.
    pub listen: String,
    /// PEM certificate chain; with `tls_key`. Neither: a self-signed certificate in `state_dir`.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP instead of HTTPS (only behind a TLS-terminating reverse proxy).
    pub plain_http: bool,
    /// Origins allowed to call the WHEP endpoints from a browser; `*` allows any.
    pub cors_origins: Vec<String>,
    /// Where generated state (the self-signed certificate) lives.
    pub state_dir: PathBuf,
    /// Host name printed in the viewer link; defaults to the first non-loopback address.
    pub public_host: Option<String>,
    /// `/readyz` tells everyone which stream is unready and why (names, bitrates). Off (default): without the
    /// admin token it answers the status code and counts only.
    pub public_readyz: bool,
    /// A request that is not complete (body included) and answered within this many seconds gets 408.
    pub request_timeout_s: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:8443".into(),
            tls_cert: None,
            tls_key: None,
            plain_http: false,
            cors_origins: vec!["*".into()],
            state_dir: default_state_dir(),
            public_host: None,
            public_readyz: false,
            request_timeout_s: 30,
        }
    }
}

/// `$STATE_DIRECTORY` (systemd), else /var/lib/glasscast for root, else `$XDG_STATE_HOME`/glasscast.
fn default_state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("STATE_DIRECTORY") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    match (std::env::var_os("XDG_STATE_HOME"), home) {
        (Some(x), _) => PathBuf::from(x).join("glasscast"),
        (None, Some(h)) if h != Path::new("/root") && h != Path::new("/") => h.join(".local/state/glasscast"),
        _ => PathBuf::from("/var/lib/glasscast"),
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebrtcConfig {
    /// STUN/TURN servers, given to our ICE agent and to clients in `Link: rel="ice-server"` headers.
    pub ice_servers: Vec<IceServer>,
    /// Local UDP port range for media; 0/0 lets the OS choose.
    pub udp_port_min: u16,
    pub udp_port_max: u16,
    /// A session whose client has not completed ICE + DTLS this many seconds after its answer is ended.
    pub connect_timeout_s: u32,
    /// How viewers are served: one webrtcbin each, or all from one thread and one UDP port (ADR 0003).
    pub transport: Transport,
    /// The forwarding transport's one UDP port, on every local address (0: the OS picks one).
    pub mux_port: u16,
}

impl Default for WebrtcConfig {
    fn default() -> Self {
        Self {
            ice_servers: Vec::new(),
            udp_port_min: 0,
            udp_port_max: 0,
            connect_timeout_s: 30,
            transport: Transport::default(),
            mux_port: 8189,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(try_from = "String")]
pub enum Transport {
    /// One webrtcbin (libnice, DTLS, SRTP elements, queues) per viewer; ports from udp_port_min..max.
    Webrtcbin,
    /// str0m peers in one mux thread, one UDP port (`mux_port`); payloads shared by every viewer.
    #[default]
    Forward,
}

impl TryFrom<String> for Transport {
    type Error = String;
    fn try_from(v: String) -> Result<Self, String> {
        match v.as_str() {
            "webrtcbin" => Ok(Self::Webrtcbin),
            "forward" => Ok(Self::Forward),
            _ => Err(format!("unknown value \"{v}\" (allowed: \"webrtcbin\", \"forward\")")),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct IceServer {
    /// `stun:host:port`, `turn:host:port?transport=udp`, `turns:...`
    pub urls: Vec<String>,
    pub username: Option<String>,
    pub credential: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A tracing env-filter, e.g. `info` or `glasscast=debug,info`; `RUST_LOG` wins when set.
    pub filter: String,
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { filter: "info".into(), format: LogFormat::Auto }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(try_from = "String")]
pub enum LogFormat {
    /// Human-readable on a terminal, JSON otherwise.
    Auto,
    Human,
    Json,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(try_from = "String")]
pub enum VideoSource {
    /// Moving test pattern with a running clock (videotestsrc + clockoverlay).
    Test,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(try_from = "String")]
pub enum AudioSource {
    /// A 440 Hz tone (audiotestsrc).
    Test,
    /// No audio track.
    None,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(try_from = "String")]
pub enum EncoderPref {
    /// The best working encoder (today: x264, then openh264).
    Auto,
    X264,
    Openh264,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    pub name: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "default_source")]
    pub source: VideoSource,
    #[serde(default = "default_audio")]
    pub audio: AudioSource,
    #[serde(default = "default_width")]
    pub width: u32,
    #[serde(default = "default_height")]
    pub height: u32,
    #[serde(default = "default_fps")]
    pub fps: u32,
    /// Video bitrate in kbit/s.
    #[serde(default = "default_bitrate")]
    pub bitrate_kbps: u32,
    /// The lowest bitrate congestion control may go to when many viewers lose packets (forwarding transport).
    /// Default: a quarter of `bitrate_kbps` (at least 100). Equal to `bitrate_kbps`: a fixed bitrate.
    #[serde(default)]
    pub min_bitrate_kbps: Option<u32>,
    /// Seconds between forced keyframes (joins get one at once regardless).
    #[serde(default = "default_keyframe_interval")]
    pub keyframe_interval_s: u32,
    #[serde(default = "default_encoder")]
    pub encoder: EncoderPref,
    /// Concurrent viewers allowed on this stream; further joins get 503.
    #[serde(default = "default_max_viewers")]
    pub max_viewers: u32,
    /// Paint the capture wall-clock time into each frame (a strip of cells along the top) so the player can
    /// show glass-to-glass latency; for measuring, not for watching.
    #[serde(default)]
    pub latency_probe: bool,
    /// Opus frame length in ms: 10 (lowest audio latency) or 20 (half the audio packets per viewer).
    #[serde(default = "default_audio_frame_ms")]
    pub audio_frame_ms: u32,
}

fn default_audio_frame_ms() -> u32 {
    10
}

fn yes() -> bool {
    true
}
fn default_source() -> VideoSource {
    VideoSource::Test
}
fn default_audio() -> AudioSource {
    AudioSource::Test
}
fn default_width() -> u32 {
    1280
}
fn default_height() -> u32 {
    720
}
fn default_fps() -> u32 {
    30
}
fn default_bitrate() -> u32 {
    2500
}
fn default_keyframe_interval() -> u32 {
    2
}
fn default_encoder() -> EncoderPref {
    EncoderPref::Auto
}
fn default_max_viewers() -> u32 {
    50
}

fn default_streams() -> Vec<StreamConfig> {
    vec![StreamConfig::test_pattern("main")]
}

impl StreamConfig {
    /// The embedded default: the test pattern with a tone, 1280x720@30, 2.5 Mbit/s.
    pub fn test_pattern(name: &str) -> Self {
        Self {
            name: name.into(),
            enabled: true,
            source: VideoSource::Test,
            audio: AudioSource::Test,
            width: default_width(),
            height: default_height(),
            fps: default_fps(),
            bitrate_kbps: default_bitrate(),
            min_bitrate_kbps: None,
            keyframe_interval_s: default_keyframe_interval(),
            encoder: EncoderPref::Auto,
            max_viewers: default_max_viewers(),
            latency_probe: false,
            audio_frame_ms: default_audio_frame_ms(),
        }
    }

    /// The floor for congestion control: `min_bitrate_kbps`, else a quarter of `bitrate_kbps` (at least 100).
    pub fn min_bitrate(&self) -> u32 {
        self.min_bitrate_kbps.unwrap_or((self.bitrate_kbps / 4).max(100)).min(self.bitrate_kbps)
    }

    pub fn stream_name(&self) -> StreamName {
        StreamName::parse(&self.name).expect("validated by Config::validate")
    }
}

impl Config {
    /// Loads defaults, then the file (`path`, else [`SYSTEM_CONFIG`] when it exists), then the environment,
    /// and validates the result.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(path, env)
    }

    /// [`Config::load`] with an explicit environment (for tests).
    pub fn load_from(path: Option<&Path>, env: Vec<(String, String)>) -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder();
        let file = path.map(Path::to_path_buf).or_else(|| Some(PathBuf::from(SYSTEM_CONFIG)).filter(|p| p.exists()));
        if let Some(file) = file {
            builder = builder.add_source(config::File::from(file).format(config::FileFormat::Toml).required(true));
        }
        let env_map = env.into_iter().filter(|(k, _)| k.starts_with("GLASSCAST__")).collect();
        builder = builder.add_source(
            config::Environment::with_prefix("GLASSCAST")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .list_separator(",")
                .with_list_parse_key("server.cors_origins")
                .source(Some(env_map)),
        );
        let cfg: Config = builder.build()?.try_deserialize()?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn listen_addr(&self) -> SocketAddr {
        self.server.listen.parse().expect("validated by Config::validate")
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let s = &self.server;
        if s.listen.parse::<SocketAddr>().is_err() {
            return Err(invalid("server.listen", &s.listen, "an address and port such as 0.0.0.0:8443 or [::]:8443"));
        }
        if s.tls_cert.is_some() != s.tls_key.is_some() {
            return Err(invalid(
                if s.tls_cert.is_some() { "server.tls_key" } else { "server.tls_cert" },
                "(unset)",
                "tls_cert and tls_key are given together, or neither (self-signed)",
            ));
        }
        if s.plain_http && s.tls_cert.is_some() {
            return Err(invalid("server.plain_http", true, "false when a TLS certificate is configured"));
        }
        if !(1..=600).contains(&s.request_timeout_s) {
            return Err(invalid("server.request_timeout_s", s.request_timeout_s, "1 to 600 seconds"));
        }
        for (i, o) in s.cors_origins.iter().enumerate() {
            let ok = o == "*" || ((o.starts_with("http://") || o.starts_with("https://")) && !o.ends_with('/'));
            if !ok {
                return Err(invalid(
                    format!("server.cors_origins[{i}]"),
                    o,
                    "`*` or an origin like https://example.com (scheme and host, no path)",
                ));
            }
        }
        let w = &self.webrtc;
        for (i, server) in w.ice_servers.iter().enumerate() {
            if server.urls.is_empty() {
                return Err(invalid(format!("webrtc.ice_servers[{i}].urls"), &server.urls, "at least one URL"));
            }
            for (j, url) in server.urls.iter().enumerate() {
                let scheme = url.split(':').next().unwrap_or_default();
                if !["stun", "stuns", "turn", "turns"].contains(&scheme) || !url.contains(':') {
                    return Err(invalid(
                        format!("webrtc.ice_servers[{i}].urls[{j}]"),
                        url,
                        "a stun:, stuns:, turn: or turns: URL",
                    ));
                }
                if scheme.starts_with("turn") && (server.username.is_none() || server.credential.is_none()) {
                    return Err(invalid(
                        format!("webrtc.ice_servers[{i}].username"),
                        &server.username,
                        "TURN servers need a username and a credential",
                    ));
                }
            }
        }
        if !(1..=300).contains(&w.connect_timeout_s) {
            return Err(invalid("webrtc.connect_timeout_s", w.connect_timeout_s, "1 to 300 (seconds)"));
        }
        if (w.udp_port_min == 0) != (w.udp_port_max == 0) || w.udp_port_min > w.udp_port_max {
            return Err(invalid(
                "webrtc.udp_port_max",
                w.udp_port_max,
                format!("0 together with udp_port_min = 0, or >= udp_port_min ({})", w.udp_port_min),
            ));
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.filter) {
            return Err(invalid("log.filter", &self.log.filter, format!("a tracing filter ({e})")));
        }
        if self.streams.is_empty() {
            return Err(invalid("streams", "[]", "at least one [[streams]] entry"));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, st) in self.streams.iter().enumerate() {
            let k = |f: &str| format!("streams[{i}].{f}");
            if let Err(why) = StreamName::parse(&st.name) {
                return Err(invalid(k("name"), &st.name, why));
            }
            if !seen.insert(st.name.as_str()) {
                return Err(invalid(k("name"), &st.name, "a name no other stream uses"));
            }
            if !(16..=7680).contains(&st.width) || st.width % 2 != 0 {
                return Err(invalid(k("width"), st.width, "an even number from 16 to 7680"));
            }
            if !(16..=4320).contains(&st.height) || st.height % 2 != 0 {
                return Err(invalid(k("height"), st.height, "an even number from 16 to 4320"));
            }
            if !(1..=120).contains(&st.fps) {
                return Err(invalid(k("fps"), st.fps, "1 to 120"));
            }
            if ![10, 20].contains(&st.audio_frame_ms) {
                return Err(invalid(k("audio_frame_ms"), st.audio_frame_ms, "10 or 20"));
            }
            if st.latency_probe && st.width < crate::media::probe::MIN_WIDTH {
                return Err(invalid(k("width"), st.width, "at least 256 with latency_probe = true"));
            }
            if !(100..=100_000).contains(&st.bitrate_kbps) {
                return Err(invalid(k("bitrate_kbps"), st.bitrate_kbps, "100 to 100000 (kbit/s)"));
            }
            if let Some(min) = st.min_bitrate_kbps
                && !(100..=st.bitrate_kbps).contains(&min)
            {
                return Err(invalid(k("min_bitrate_kbps"), min, format!("100 to bitrate_kbps ({})", st.bitrate_kbps)));
            }
            if !(1..=60).contains(&st.keyframe_interval_s) {
                return Err(invalid(k("keyframe_interval_s"), st.keyframe_interval_s, "1 to 60 (seconds)"));
            }
            if !(1..=10_000).contains(&st.max_viewers) {
                return Err(invalid(k("max_viewers"), st.max_viewers, "1 to 10000"));
            }
        }
        if !self.streams.iter().any(|s| s.enabled) {
            return Err(invalid("streams", "all disabled", "at least one enabled stream"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_toml(toml: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("g.toml");
        std::fs::write(&path, toml).expect("write");
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::load_from(Some(&path), env)
    }

    fn err_text(r: Result<Config, ConfigError>) -> String {
        r.expect_err("should be rejected").to_string()
    }

    #[test]
    fn defaults_are_valid_and_have_the_test_stream() {
        let cfg = load_toml("", &[]).expect("empty file is valid");
        assert_eq!(cfg.streams.len(), 1);
        assert_eq!(cfg.streams[0].name, "main");
        assert_eq!(cfg.streams[0].source, VideoSource::Test);
        assert_eq!(cfg.listen_addr().port(), 8443);
        assert!(!cfg.server.plain_http);
    }

    #[test]
    fn the_shipped_example_config_is_valid() {
        let text = include_str!("../config/glasscast.toml");
        let cfg = load_toml(text, &[]).expect("config/glasscast.toml is valid");
        assert!(!cfg.streams.is_empty());
    }

    #[test]
    fn environment_overrides_the_file() {
        let cfg = load_toml(
            "[server]\nlisten = \"127.0.0.1:1000\"\n",
            &[("GLASSCAST__SERVER__LISTEN", "127.0.0.1:2000"), ("GLASSCAST__SERVER__PLAIN_HTTP", "true")],
        )
        .expect("valid");
        assert_eq!(cfg.listen_addr().port(), 2000);
        assert!(cfg.server.plain_http);
    }

    #[test]
    fn several_streams() {
        let cfg = load_toml("[[streams]]\nname = \"a\"\n[[streams]]\nname = \"b\"\nfps = 60\naudio = \"none\"\n", &[])
            .expect("valid");
        assert_eq!(cfg.streams.len(), 2);
        assert_eq!(cfg.streams[1].fps, 60);
        assert_eq!(cfg.streams[1].audio, AudioSource::None);
    }

    #[test]
    fn bad_values_name_key_value_and_what_is_allowed() {
        let e = err_text(load_toml("[[streams]]\nname = \"main\"\nfps = 0\n", &[]));
        assert!(e.contains("streams[0].fps") && e.contains('0') && e.contains("1 to 120"), "{e}");

        let e = err_text(load_toml("[[streams]]\nname = \"Bad Name\"\n", &[]));
        assert!(e.contains("streams[0].name") && e.contains("Bad Name"), "{e}");

        let e = err_text(load_toml("[[streams]]\nname = \"a\"\n[[streams]]\nname = \"a\"\n", &[]));
        assert!(e.contains("streams[1].name") && e.contains("no other stream"), "{e}");

        let e = err_text(load_toml("[[streams]]\nname = \"a\"\nwidth = 641\n", &[]));
        assert!(e.contains("streams[0].width") && e.contains("641") && e.contains("even"), "{e}");

        let e = err_text(load_toml("[server]\nlisten = \"nowhere\"\n", &[]));
        assert!(e.contains("server.listen") && e.contains("nowhere"), "{e}");

        let e = err_text(load_toml("[server]\ntls_cert = \"/x.pem\"\n", &[]));
        assert!(e.contains("server.tls_key"), "{e}");

        let e = err_text(load_toml("[[webrtc.ice_servers]]\nurls = [\"http://x\"]\n", &[]));
        assert!(e.contains("webrtc.ice_servers[0].urls[0]") && e.contains("http://x"), "{e}");

        let e = err_text(load_toml("[[webrtc.ice_servers]]\nurls = [\"turn:t:3478\"]\n", &[]));
        assert!(e.contains("username"), "{e}");

        let e = err_text(load_toml("[[streams]]\nname = \"a\"\naudio_frame_ms = 15\n", &[]));
        assert!(e.contains("audio_frame_ms") && e.contains("10 or 20") && e.contains("15"), "{e}");
        let e = err_text(load_toml("[webrtc]\nconnect_timeout_s = 0\n", &[]));
        assert!(e.contains("webrtc.connect_timeout_s") && e.contains("1 to 300"), "{e}");
        let e = err_text(load_toml("[webrtc]\nudp_port_min = 5000\n", &[]));
        assert!(e.contains("webrtc.udp_port_max"), "{e}");
    }

    #[test]
    fn type_errors_and_unknown_keys_name_the_key() {
        let e = err_text(load_toml("[[streams]]\nname = \"a\"\nfps = \"fast\"\n", &[]));
        assert!(e.contains("fps") && e.contains("fast"), "{e}");

        let e = err_text(load_toml("[[streams]]\nname = \"a\"\nsource = \"webcam9\"\n", &[]));
        assert!(e.contains("webcam9") && e.contains("allowed: \"test\"") && e.contains("source"), "{e}");

        let e = err_text(load_toml("[server]\nlisten_port = 1\n", &[]));
        assert!(e.contains("listen_port"), "{e}");

        let e = err_text(load_toml("", &[("GLASSCAST__SERVER__PLAIN_HTTP", "maybe")]));
        assert!(e.contains("plain_http") && e.contains("maybe"), "{e}");
    }
}

impl TryFrom<String> for LogFormat {
    type Error = String;
    fn try_from(v: String) -> Result<Self, String> {
        match v.as_str() {
            "auto" => Ok(Self::Auto),
            "human" => Ok(Self::Human),
            "json" => Ok(Self::Json),
            _ => Err(format!("unknown value \"{v}\" (allowed: \"auto\", \"human\", \"json\")")),
        }
    }
}

impl TryFrom<String> for VideoSource {
    type Error = String;
    fn try_from(v: String) -> Result<Self, String> {
        match v.as_str() {
            "test" => Ok(Self::Test),
            _ => Err(format!("unknown value \"{v}\" (allowed: \"test\")")),
        }
    }
}

impl TryFrom<String> for AudioSource {
    type Error = String;
    fn try_from(v: String) -> Result<Self, String> {
        match v.as_str() {
            "test" => Ok(Self::Test),
            "none" => Ok(Self::None),
            _ => Err(format!("unknown value \"{v}\" (allowed: \"test\", \"none\")")),
        }
    }
}

impl TryFrom<String> for EncoderPref {
    type Error = String;
    fn try_from(v: String) -> Result<Self, String> {
        match v.as_str() {
            "auto" => Ok(Self::Auto),
            "x264" => Ok(Self::X264),
            "openh264" => Ok(Self::Openh264),
            _ => Err(format!("unknown value \"{v}\" (allowed: \"auto\", \"x264\", \"openh264\")")),
        }
    }
}

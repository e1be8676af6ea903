//! Configuration: built-in defaults < TOML file < environment (`GLASSCAST__SECTION__KEY`).
//!
//! Everything is deserialized into typed structs and then validated; an invalid value is reported with its
//! key, the value and what is allowed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};
use thiserror::Error;

mod auth;
mod ladder;
mod limits;
mod ops;
mod record;
mod stream;
mod webrtc;

pub use auth::{AuthConfig, AuthMode, MIN_ADMIN_TOKEN, Networks};
pub use ladder::{LadderConfig, MAX_LOWER_RUNGS, Rung, RungConfig};
pub use limits::ConnLimits;
pub use ops::{LogConfig, LogFormat, MetricsConfig};
pub use record::RecordConfig;
pub use stream::{
    AudioSource, Encoder, EncoderPref, EncodingConfig, MIN_PROBE_WIDTH, PortalCursor, PushConfig, StreamConfig,
    VideoCodec, VideoSource,
};
pub use webrtc::{Advertised, IceServer, LocalCandidates, Transport, TurnUrl, WebrtcConfig};

/// Where the file is looked for when `--config` is not given.
pub const SYSTEM_CONFIG: &str = "/etc/glasscast/glasscast.toml";

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read configuration: {}", dotted_keys(&.0.to_string()))]
    Load(#[from] config::ConfigError),
    #[error("invalid configuration: `{key}` = {value}: {allowed}")]
    Invalid { key: String, value: String, allowed: String },
}

/// `http(s)://host[:port]`: a scheme and authority, nothing after.
fn is_origin(o: &str) -> bool {
    is_origin_with(o, &["https://", "http://"])
}

/// A push target's origin: an HTTP one (WHIP) or a WebSocket one (Janus).
fn is_push_origin(o: &str) -> bool {
    is_origin_with(o, &["https://", "http://", "wss://", "ws://"])
}

fn is_origin_with(o: &str, schemes: &[&str]) -> bool {
    let rest = schemes.iter().find_map(|s| o.strip_prefix(s));
    rest.is_some_and(|r| !r.is_empty() && !r.contains(['/', '?', '#', '@']))
}

/// The `config` crate writes an array element's key as `streams[0]name`; ours read `streams[0].name`.
fn dotted_keys(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len() + 4);
    let mut chars = msg.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == ']' && chars.peek().is_some_and(|n| n.is_ascii_alphabetic() || *n == '_') {
            out.push('.');
        }
    }
    out
}

/// A `listen` key: an address and port, parsed where it is read (the error names the value).
fn socket_addr<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map_err(|_| {
        serde::de::Error::custom(format!("{s:?} is not an address and port such as 0.0.0.0:8443 or [::]:8443"))
    })
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
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub auth: AuthConfig,
    #[serde(default)]
    pub encoding: EncodingConfig,
    #[serde(default = "default_streams")]
    pub streams: Vec<StreamConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server: ServerConfig::default(),
            webrtc: WebrtcConfig::default(),
            log: LogConfig::default(),
            metrics: MetricsConfig::default(),
            auth: AuthConfig::default(),
            encoding: EncodingConfig::default(),
            streams: default_streams(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address and port of the HTTPS (or, with `plain_http`, HTTP) listener.
    #[serde(deserialize_with = "socket_addr")]
    pub listen: SocketAddr,
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
    /// Connections: header and idle timeouts, how many in total and per client, HTTP/2 streams.
    pub limits: ConnLimits,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 8443)),
            tls_cert: None,
            tls_key: None,
            plain_http: false,
            cors_origins: vec!["*".into()],
            state_dir: default_state_dir(),
            public_host: None,
            public_readyz: false,
            request_timeout_s: 30,
            limits: ConnLimits::default(),
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

fn default_streams() -> Vec<StreamConfig> {
    vec![StreamConfig::test_pattern("main")]
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
                .with_list_parse_key("webrtc.advertise")
                .with_list_parse_key("auth.push_allow")
                .source(Some(env_map)),
        );
        let cfg: Config = builder.build()?.try_deserialize()?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn listen_addr(&self) -> SocketAddr {
        self.server.listen
    }

    /// What a valid configuration allows but should be said at start, by `check-config` and by `doctor`.
    pub fn warnings(&self) -> Vec<String> {
        self.metrics.warning().into_iter().collect()
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let s = &self.server;
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
        s.limits.validate()?;
        for (i, o) in s.cors_origins.iter().enumerate() {
            if !(o == "*" || is_origin(o)) {
                return Err(invalid(
                    format!("server.cors_origins[{i}]"),
                    o,
                    "`*` or an origin like https://example.com (scheme and host, no path)",
                ));
            }
        }
        for (i, o) in self.auth.push_allow.iter().enumerate() {
            if !is_push_origin(o) {
                return Err(invalid(
                    format!("auth.push_allow[{i}]"),
                    o,
                    "an origin like https://sfu.example.com, http://198.18.0.5:8080 or, for Janus, \
                     ws://198.18.0.5:8188 (scheme, host, port; no path)",
                ));
            }
        }
        self.auth.validate()?;
        self.webrtc.validate()?;
        self.log.validate()?;
        self.metrics.validate()?;
        if self.streams.is_empty() {
            return Err(invalid("streams", "[]", "at least one [[streams]] entry"));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, st) in self.streams.iter().enumerate() {
            st.validate(i)?;
            if !seen.insert(st.name.as_str()) {
                return Err(invalid(format!("streams[{i}].name"), &st.name, "a name no other stream uses"));
            }
        }
        if !self.streams.iter().any(|s| s.enabled) {
            return Err(invalid("streams", "all disabled", "at least one enabled stream"));
        }
        // Retention deletes a stream's oldest files in its directory: two streams must not share one.
        let mut dirs = std::collections::HashSet::new();
        for (i, st) in self.streams.iter().enumerate() {
            let dir = st.record.dir_or_default(&self.server.state_dir, st.name.as_str());
            if !dirs.insert(dir.clone()) {
                return Err(invalid(
                    format!("streams[{i}].record.dir"),
                    dir,
                    "a directory no other stream records into",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_is_described_without_a_feeds_secrets() {
        let feed = VideoSource::Uri { url: "rtsp://user:pw@cam.lan:8554/live?key=s3cret".into(), passthrough: true };
        assert_eq!(feed.describe(), "feed rtsp://cam.lan:8554/...");
        assert_eq!(VideoSource::V4l2 { device: "/dev/video0".into() }.describe(), "camera /dev/video0");
        assert_eq!(VideoSource::X11 { display: Some(":1".into()), show_pointer: true }.describe(), "X11 :1");
        assert_eq!(VideoSource::Test.describe(), "test pattern");
    }

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
        assert_eq!(cfg.streams[0].name.as_str(), "main");
        assert_eq!(cfg.streams[0].source, VideoSource::Test);
        assert_eq!(cfg.listen_addr().port(), 8443);
        assert!(!cfg.server.plain_http);
    }

    #[test]
    fn the_printed_configuration_has_no_secret() {
        let toml = r#"
            [auth]
            admin_token = "admin-secret-0123456789"
            push_allow = ["https://sfu.example.com"]
            [metrics]
            token = "metrics-secret-0123456789"
            [[webrtc.ice_servers]]
            urls = ["turn:198.18.0.1:3478"]
            username = "u"
            credential = "turn-credential-secret"
            [[webrtc.ice_servers]]
            urls = ["turn:198.18.0.2:3478"]
            secret = "turn-shared-secret"
            [[streams]]
            name = "main"
            [[streams.push]]
            url = "https://sfu.example.com/whip"
            token = "push-secret-0123456789"
        "#;
        let printed = format!("{:#?}", load_toml(toml, &[]).expect("valid"));
        for secret in ["admin-secret", "metrics-secret", "turn-credential-secret", "turn-shared-secret", "push-secret"]
        {
            assert!(!printed.contains(secret), "{secret} printed:\n{printed}");
        }
        assert!(printed.contains("https://sfu.example.com/whip"), "the rest is printed");
    }

    #[test]
    fn limits_and_push_origins_are_checked() {
        assert!(
            err_text(load_toml("[server.limits]\nheader_timeout_s = 0\n", &[]))
                .contains("server.limits.header_timeout_s")
        );
        let toml = "[server.limits]\nmax_connections = 10\nmax_connections_per_client = 11\n";
        assert!(err_text(load_toml(toml, &[])).contains("max_connections_per_client"));
        for bad in ["sfu.example.com", "https://sfu.example.com/whip", "ftp://x", "https://"] {
            let toml = format!("[auth]\npush_allow = [\"{bad}\"]\n");
            assert!(err_text(load_toml(&toml, &[])).contains("auth.push_allow[0]"), "{bad}");
        }
        let allow = "https://a.example,http://198.18.0.5:8080,wss://sfu.example:8989";
        let cfg = load_toml("", &[("GLASSCAST__AUTH__PUSH_ALLOW", allow)]).expect("valid");
        assert_eq!(cfg.auth.push_allow, ["https://a.example", "http://198.18.0.5:8080", "wss://sfu.example:8989"]);
        let push = |url: &str| format!("[[streams]]\nname = \"main\"\n[[streams.push]]\nurl = \"{url}\"\n");
        assert!(load_toml(&push("janus+ws://198.18.0.5:8188/?room=1234&feed=7"), &[]).is_ok());
        let no_room = err_text(load_toml(&push("janus+ws://198.18.0.5:8188/janus"), &[]));
        assert!(no_room.contains("streams[0].push[0].url") && no_room.contains("room=ROOM"), "{no_room}");
        assert!(err_text(load_toml(&push("rtmp://198.18.0.5/live"), &[])).contains("neither a WHIP endpoint"));
    }

    #[test]
    fn the_shipped_example_config_is_valid() {
        let text = include_str!("../../config/glasscast.toml");
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
        // What a container on a bridge network sets (compose.bridge.yaml).
        let env = [
            ("GLASSCAST__WEBRTC__ADVERTISE", "203.0.113.7,home.example.net:8190"),
            ("GLASSCAST__WEBRTC__LOCAL_CANDIDATES", "none"),
        ];
        let cfg = load_toml("", &env).expect("valid");
        assert_eq!(cfg.webrtc.advertise, vec!["203.0.113.7", "home.example.net:8190"]);
        assert_eq!(cfg.webrtc.local_candidates, LocalCandidates::None);
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
        let e = err_text(load_toml("[webrtc]\nmux_threads = 65\n", &[]));
        assert!(e.contains("webrtc.mux_threads") && e.contains("0 (one per core) to 64"), "{e}");
        let e = err_text(load_toml("[webrtc]\nnack_history_ms = 50\n", &[]));
        assert!(e.contains("webrtc.nack_history_ms") && e.contains("100 to 10000"), "{e}");
        let cfg = load_toml("[webrtc]\nmux_threads = 3\n", &[]).expect("valid");
        assert_eq!(cfg.webrtc.mux_threads(), 3);
        assert!(load_toml("", &[]).expect("valid").webrtc.mux_threads() >= 1, "0 takes the core count");
        let e = err_text(load_toml("[webrtc]\nudp_port_min = 5000\n", &[]));
        assert!(e.contains("webrtc.udp_port_max"), "{e}");
    }

    #[test]
    fn type_errors_and_unknown_keys_name_the_key() {
        let e = err_text(load_toml("[[streams]]\nname = \"a\"\nfps = \"fast\"\n", &[]));
        assert!(e.contains("fps") && e.contains("fast"), "{e}");

        let e = err_text(load_toml("[[streams]]\nname = \"a\"\nsource = \"webcam9\"\n", &[]));
        assert!(e.contains("webcam9") && e.contains("allowed: \"test\", \"x11\"") && e.contains("source"), "{e}");

        let e = err_text(load_toml("[server]\nlisten_port = 1\n", &[]));
        assert!(e.contains("listen_port"), "{e}");

        let e = err_text(load_toml("", &[("GLASSCAST__SERVER__PLAIN_HTTP", "maybe")]));
        assert!(e.contains("plain_http") && e.contains("maybe"), "{e}");
    }

    #[test]
    fn sources_are_a_name_or_a_table_and_say_what_is_wrong() {
        let stream = |body: &str| load_toml(&format!("[[streams]]\nname = \"a\"\n{body}"), &[]);
        let cfg = stream("source = \"x11\"\naudio = \"desktop\"\n").expect("short names");
        assert_eq!(cfg.streams[0].source, VideoSource::X11 { display: None, show_pointer: true });
        assert_eq!(cfg.streams[0].audio, AudioSource::Desktop { sink: None });
        let cfg = stream(
            "source = { kind = \"x11\", display = \":97\", show_pointer = false }\n\
             audio = { kind = \"input\", device = \"alsa_input.usb-mic\" }\n",
        )
        .expect("tables");
        assert_eq!(cfg.streams[0].source, VideoSource::X11 { display: Some(":97".into()), show_pointer: false });
        assert_eq!(cfg.streams[0].audio, AudioSource::Input { device: "alsa_input.usb-mic".into() });
        let cfg = stream("[streams.source]\nkind = \"v4l2\"\ndevice = \"/dev/video2\"\n").expect("a sub-table");
        assert_eq!(cfg.streams[0].source, VideoSource::V4l2 { device: "/dev/video2".into() });
        let cfg = stream("source = { kind = \"uri\", url = \"rtsp://cam.lan/live\" }\n").expect("uri");
        assert_eq!(cfg.streams[0].source, VideoSource::Uri { url: "rtsp://cam.lan/live".into(), passthrough: true });

        let e = err_text(stream("source = \"v4l2\"\n"));
        assert!(e.contains("needs options") && e.contains("device"), "{e}");
        let e = err_text(stream("source = { kind = \"v4l2\" }\n"));
        assert!(e.contains("device"), "{e}");
        let e = err_text(stream("source = { kind = \"x11\", screen = 2 }\n"));
        assert!(e.contains("screen"), "an unknown option is named: {e}");
        let e = err_text(stream("source = { kind = \"uri\", url = \"cam.lan/live\" }\n"));
        assert!(e.contains("streams[0].source.url") && e.contains("rtsp"), "{e}");
        let e = err_text(stream("source = { kind = \"x11\", display = \"zero\" }\n"));
        assert!(e.contains("streams[0].source.display"), "{e}");
        let e = err_text(stream("audio = \"input\"\n"));
        assert!(e.contains("needs a device"), "{e}");
    }

    #[test]
    fn encoders_by_name_or_factory_and_a_configurable_order() {
        let cfg = load_toml(
            "[encoding]\norder = [\"nvenc\", \"openh264enc\"]\n[[streams]]\nname = \"a\"\nencoder = \"va-lp\"\n",
            &[],
        )
        .expect("valid");
        assert_eq!(cfg.encoding.order, vec![Encoder::Nvenc, Encoder::OpenH264]);
        assert_eq!(cfg.streams[0].encoder, EncoderPref::Only(Encoder::VaLp));
        assert_eq!(load_toml("", &[]).expect("defaults").encoding.order, Encoder::ALL.to_vec());
        let e = err_text(load_toml("[[streams]]\nname = \"a\"\nencoder = \"h265\"\n", &[]));
        assert!(e.contains("h265") && e.contains("\"va-lp\"") && e.contains("\"x264\""), "{e}");
    }
}

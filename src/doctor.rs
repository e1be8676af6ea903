//! `glasscast doctor` and `glasscast sources`: what this machine can capture and encode, and whether the
//! configuration can work here, one line per finding with the fix.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;

use crate::config::{AudioSource, Config, StreamConfig, Transport, VideoSource};
use crate::media::{self, Encoder, source::discover};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Ok,
    Warn,
    /// Something configured cannot work: `doctor` exits non-zero.
    Fail,
}

#[derive(Debug, Clone)]
pub struct Finding {
    pub level: Level,
    pub what: String,
    pub detail: String,
    pub fix: Option<String>,
}

fn finding(level: Level, what: impl Into<String>, detail: impl Into<String>, fix: Option<&str>) -> Finding {
    Finding { level, what: what.into(), detail: detail.into(), fix: fix.map(str::to_owned) }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tag = match self.level {
            Level::Ok => "ok  ",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        };
        write!(f, "{tag}  {}: {}", self.what, self.detail)?;
        if let Some(fix) = &self.fix {
            write!(f, "\n      fix: {fix}")?;
        }
        Ok(())
    }
}

/// Every check, in order: GStreamer elements, per stream its encoder and sources, VA-API devices, the
/// PipeWire/portal session, the ports, the certificate and the state directory.
pub fn run(cfg: &Config) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Err(e) = media::init() {
        out.push(finding(Level::Fail, "GStreamer", e.to_string(), Some("install GStreamer 1.22 or newer")));
        return out;
    }
    out.extend(elements(cfg));
    for s in cfg.streams.iter().filter(|s| s.enabled) {
        out.extend(stream(cfg, s));
    }
    out.push(va_devices(cfg));
    out.push(pipewire_session());
    out.extend(ports(cfg));
    if cfg.webrtc.transport == Transport::Forward {
        out.extend(announced(cfg));
    }
    out.push(certificate(cfg));
    out.push(state_dir(&cfg.server.state_dir));
    let fix = "set metrics.token (or token_file), or listen on 127.0.0.1";
    out.extend(cfg.warnings().into_iter().map(|w| finding(Level::Warn, "configuration", w, Some(fix))));
    out
}

fn elements(cfg: &Config) -> Vec<Finding> {
    let mut need = vec![("rtph264pay", "gstreamer1.0-plugins-good"), ("opusenc", "gstreamer1.0-plugins-base")];
    need.push(("rtpopuspay", "gstreamer1.0-plugins-good"));
    if cfg.webrtc.transport == Transport::Webrtcbin {
        need.extend([("webrtcbin", "gstreamer1.0-plugins-bad"), ("nicesrc", "gstreamer1.0-nice")]);
    }
    let missing: Vec<String> = need
        .iter()
        .filter(|(f, _)| gstreamer::ElementFactory::find(f).is_none())
        .map(|(f, p)| format!("{f} ({p})"))
        .collect();
    if missing.is_empty() {
        vec![finding(
            Level::Ok,
            "GStreamer",
            format!("{} with the elements streaming needs", gstreamer::version_string()),
            None,
        )]
    } else {
        let fix = "scripts/install-deps.sh installs them";
        vec![finding(Level::Fail, "GStreamer", format!("missing: {}", missing.join(", ")), Some(fix))]
    }
}

fn stream(cfg: &Config, s: &StreamConfig) -> Vec<Finding> {
    let what = |part: &str| format!("stream {} {part}", s.name);
    if s.source == VideoSource::Whip {
        // Nothing to open or encode here: the publisher brings both.
        let detail = format!("relays what a WHIP publisher sends to POST /whip/{} (no encoder)", s.name);
        return vec![finding(Level::Ok, what("source"), detail, None)];
    }
    let mut out = Vec::new();
    match media::choose_encoder(s.encoder, &cfg.encoding.order) {
        Ok(choice) => {
            let passed: Vec<&str> = choice.rejected.iter().map(|r| r.encoder.factory()).collect();
            let detail = if passed.is_empty() {
                choice.encoder.factory().to_owned()
            } else {
                format!(
                    "{} (passed over {}: `glasscast sources` says why)",
                    choice.encoder.factory(),
                    passed.join(", ")
                )
            };
            out.push(finding(Level::Ok, what("encoder"), detail, None));
        }
        Err(why) => out.push(finding(
            Level::Fail,
            what("encoder"),
            why,
            Some("set encoder = \"auto\", or install the encoder's driver and plugin (docs/hardware.md)"),
        )),
    }
    let source_fix = match &s.source {
        VideoSource::Test => None,
        VideoSource::X11 { .. } => Some("is the X display running, and may this user open it (DISPLAY, XAUTHORITY)?"),
        VideoSource::V4l2 { .. } => {
            Some("check the device with `glasscast sources`; is this user in the `video` group?")
        }
        VideoSource::Uri { .. } => Some("is the feed reachable from here (URL, credentials, firewall)?"),
        VideoSource::Whip => None,
        VideoSource::Portal { .. } => Some(
            "run glasscast in the desktop user's session (its D-Bus session bus and PipeWire); the first start \
             shows the portal's chooser",
        ),
    };
    let video = match &s.source {
        VideoSource::Portal { cursor } => {
            discover::try_portal(s, &crate::media::source::portal::token_path(&cfg.server.state_dir, &s.name), *cursor)
        }
        _ => discover::try_video(s),
    };
    out.push(match video {
        Ok(got) if got.starts_with("warn: ") => {
            finding(Level::Warn, what("video source"), format!("{}: {}", source_name(&s.source), &got[6..]), source_fix)
        }
        Ok(got) => finding(Level::Ok, what("video source"), format!("{} delivers {got}", source_name(&s.source)), None),
        Err(why) => {
            finding(Level::Fail, what("video source"), format!("{}: {why}", source_name(&s.source)), source_fix)
        }
    });
    let audio_fix = "is PulseAudio or pipewire-pulse running for this user (`pactl info`), and is the name one \
                     `glasscast sources` lists?";
    match discover::try_audio(s) {
        Ok(None) => {}
        Ok(Some(got)) => {
            out.push(finding(Level::Ok, what("audio"), format!("{} delivers {got}", audio_name(&s.audio)), None))
        }
        Err(why) => {
            let fix = matches!(s.audio, AudioSource::Desktop { .. } | AudioSource::Input { .. }).then_some(audio_fix);
            out.push(finding(Level::Fail, what("audio"), format!("{}: {why}", audio_name(&s.audio)), fix));
        }
    }
    out
}

fn source_name(s: &VideoSource) -> String {
    match s {
        VideoSource::Test => "test pattern".into(),
        VideoSource::Portal { .. } => "ScreenCast portal".into(),
        VideoSource::X11 { display, .. } => format!("X11 display {}", display.as_deref().unwrap_or("$DISPLAY")),
        VideoSource::V4l2 { device } => format!("V4L2 {device}"),
        VideoSource::Uri { url, .. } => format!("feed {}", url.split('@').next_back().unwrap_or(url)),
        VideoSource::Whip => "WHIP publisher".into(),
    }
}

fn audio_name(a: &AudioSource) -> String {
    match a {
        AudioSource::Test => "test tone".into(),
        AudioSource::None => "none".into(),
        AudioSource::Desktop { sink } => format!("desktop audio ({})", sink.as_deref().unwrap_or("default output")),
        AudioSource::Input { device } => format!("input {device}"),
    }
}

/// `/dev/dri/renderD*`: present and openable, or why hardware encoding is off.
fn va_devices(cfg: &Config) -> Finding {
    let wants_va = cfg.encoding.order.iter().any(|e| matches!(e, Encoder::VaLp | Encoder::Va | Encoder::Vaapi));
    let nodes = media::encode::encoder::render_nodes();
    if nodes.is_empty() {
        let level = if wants_va { Level::Warn } else { Level::Ok };
        let fix = "a GPU with its VA driver (intel-media-va-driver, mesa-va-drivers); in a container, pass /dev/dri";
        return finding(level, "VA-API", "no /dev/dri/renderD* device: hardware encoding is off", Some(fix));
    }
    let closed: Vec<String> = nodes
        .iter()
        .filter(|p| std::fs::OpenOptions::new().read(true).write(true).open(p).is_err())
        .map(|p| p.display().to_string())
        .collect();
    if closed.is_empty() {
        let names: Vec<String> = nodes.iter().map(|p| p.display().to_string()).collect();
        finding(Level::Ok, "VA-API", format!("devices {}", names.join(", ")), None)
    } else {
        let fix = "add the user running glasscast to the `render` group";
        finding(Level::Warn, "VA-API", format!("cannot open {}", closed.join(", ")), Some(fix))
    }
}

/// The desktop session's PipeWire socket and D-Bus session bus (desktop audio through PipeWire, and the
/// ScreenCast portal).
fn pipewire_session() -> Finding {
    let runtime = std::env::var_os("XDG_RUNTIME_DIR").map(std::path::PathBuf::from);
    let socket = runtime.as_ref().map(|d| d.join("pipewire-0")).filter(|p| p.exists());
    let bus = std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some();
    match (socket, bus) {
        (Some(s), true) => {
            finding(Level::Ok, "desktop session", format!("PipeWire at {}, a D-Bus session bus", s.display()), None)
        }
        (s, b) => finding(
            Level::Warn,
            "desktop session",
            format!(
                "{}{}",
                if s.is_none() { "no PipeWire socket in $XDG_RUNTIME_DIR" } else { "PipeWire found" },
                if b { "" } else { "; no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS)" }
            ),
            Some("run glasscast in the desktop user's session (a systemd --user service) for desktop capture"),
        ),
    }
}

fn ports(cfg: &Config) -> Vec<Finding> {
    let mut out = Vec::new();
    let listen = cfg.listen_addr();
    out.push(match crate::serve::bind_listener(cfg) {
        Ok(_) => finding(Level::Ok, "HTTPS port", format!("{listen} is free"), None),
        Err(e) => finding(
            Level::Warn,
            "HTTPS port",
            format!("cannot listen on {listen}: {e}"),
            Some("is glasscast (or something else) already running there? Change server.listen"),
        ),
    });
    let (what, port) = match cfg.webrtc.transport {
        Transport::Forward => ("media port", cfg.webrtc.mux_port),
        Transport::Webrtcbin => ("media ports", cfg.webrtc.udp_port_min),
    };
    if port != 0 {
        let addr = SocketAddr::from(([0, 0, 0, 0], port));
        out.push(match UdpSocket::bind(addr) {
            Ok(_) => finding(Level::Ok, what, format!("UDP {port} is free; open it in the firewall"), None),
            Err(e) => finding(
                Level::Warn,
                what,
                format!("cannot bind UDP {port}: {e}"),
                Some("is glasscast already running? Otherwise change webrtc.mux_port"),
            ),
        });
    }
    let tcp_port = if cfg.webrtc.tcp_port == 0 { cfg.webrtc.mux_port } else { cfg.webrtc.tcp_port };
    if cfg.webrtc.transport == Transport::Forward && cfg.webrtc.ice_tcp && tcp_port != 0 {
        let any = SocketAddr::new(std::net::Ipv6Addr::UNSPECIFIED.into(), tcp_port);
        out.push(match crate::net::listen_tcp(any) {
            Ok(_) => {
                finding(Level::Ok, "ICE-TCP port", format!("TCP {tcp_port} is free; open it in the firewall"), None)
            }
            Err(e) => finding(
                Level::Warn,
                "ICE-TCP port",
                format!("cannot listen on TCP {tcp_port}: {e} (viewers without UDP could not play)"),
                Some("is glasscast already running? Otherwise change webrtc.tcp_port, or set ice_tcp = false"),
            ),
        });
    }
    out
}

/// `webrtc.relay`: one allocation, released at once, on the first `turn:` server that gives one (in the
/// order the relay tries them); the relayed address when one works, and why each before it did not.
fn relay(cfg: &Config) -> (Finding, Option<std::net::IpAddr>) {
    use crate::media::forward::relay_try_allocate;
    let targets = crate::session::lifecycle::relay_targets(&cfg.webrtc);
    if targets.is_empty() {
        return (finding(Level::Fail, "TURN relay", "no turn: server in webrtc.ice_servers", None), None);
    }
    let mut failed = Vec::new();
    for t in targets {
        let tried = t.turn.server_addr().map_err(|e| format!("{} does not resolve: {e}", t.turn.host));
        match tried.and_then(|server| relay_try_allocate(t.spec(server), std::time::Duration::from_secs(5))) {
            Ok(relayed) => {
                let before = failed.iter().map(|f| format!("; {f}")).collect::<String>();
                let what = format!("{} allocated {relayed} (released again){before}", t.url);
                return (finding(Level::Ok, "TURN relay", what, None), Some(relayed.ip()));
            }
            Err(why) => failed.push(format!("{}: {why}", t.url)),
        }
    }
    let fix = "check the TURN server, its credentials (username/credential or secret) and that it is reachable";
    (finding(Level::Fail, "TURN relay", failed.join("; "), Some(fix)), None)
}

/// What answers will announce (the forward transport): the local addresses `local_candidates` keeps and
/// every `advertise` entry resolved now; a warning for a name that does not resolve, and for a set that is
/// private only (viewers outside this network could not reach any of it).
fn announced(cfg: &Config) -> Vec<Finding> {
    let w = &cfg.webrtc;
    let mut out = Vec::new();
    let mut addrs: Vec<std::net::IpAddr> =
        crate::media::forward::local_ips().into_iter().filter(|ip| w.local_candidates.announces(*ip)).collect();
    for (entry, text) in w.advertised().iter().zip(&w.advertise) {
        match entry.resolve(w.mux_port) {
            Ok(found) => addrs.extend(found.iter().map(SocketAddr::ip)),
            Err(e) => out.push(finding(
                Level::Warn,
                "announced addresses",
                format!("webrtc.advertise entry `{text}` does not resolve now: {e}"),
                Some("fix the name in webrtc.advertise (glasscast keeps trying every minute)"),
            )),
        }
    }
    if let Some(url) = &w.stun_discover {
        let asked = crate::media::forward::stun::server_addrs(url).and_then(|servers| {
            let server = servers.first().copied().ok_or_else(|| std::io::Error::other("the name has no address"))?;
            crate::media::forward::stun::public_address(server)
        });
        out.push(match asked {
            Ok(public) => {
                addrs.push(public.ip());
                finding(Level::Ok, "public address", format!("{url} sees this host as {}", public.ip()), None)
            }
            Err(e) => finding(
                Level::Warn,
                "public address",
                format!("{url} did not answer: {e}"),
                Some("check webrtc.stun_discover and that UDP to it is allowed"),
            ),
        });
    }
    if w.relay {
        let (finding, relayed) = relay(cfg);
        out.push(finding);
        addrs.extend(relayed);
    }
    addrs.dedup();
    let list = addrs.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
    out.push(if addrs.is_empty() {
        finding(
            Level::Fail,
            "announced addresses",
            "none: no viewer could reach the media",
            Some("set webrtc.advertise, or local_candidates = \"all\""),
        )
    } else if addrs.iter().all(|ip| crate::net::private(*ip)) {
        finding(
            Level::Warn,
            "announced addresses",
            format!("{list} (private only: viewers outside this network cannot reach them)"),
            Some("for viewers elsewhere set webrtc.advertise to the public address or name (docs/networking.md)"),
        )
    } else {
        finding(Level::Ok, "announced addresses", list, None)
    });
    out
}

fn certificate(cfg: &Config) -> Finding {
    let (path, configured) = match &cfg.server.tls_cert {
        _ if cfg.server.plain_http => return finding(Level::Ok, "certificate", "plain HTTP (TLS at the proxy)", None),
        Some(p) => (p.clone(), true),
        None => (cfg.server.state_dir.join("tls/cert.pem"), false),
    };
    let Ok(pem) = std::fs::read(&path) else {
        return if configured {
            finding(Level::Fail, "certificate", format!("cannot read {}", path.display()), Some("fix server.tls_cert"))
        } else {
            finding(Level::Ok, "certificate", "a self-signed one is made at first start", None)
        };
    };
    let parsed = x509_parser::pem::parse_x509_pem(&pem)
        .map_err(|e| e.to_string())
        .and_then(|(_, p)| p.parse_x509().map(|c| c.validity().not_after.timestamp()).map_err(|e| e.to_string()));
    let not_after = match parsed {
        Ok(t) => t,
        Err(e) => {
            return finding(
                Level::Fail,
                "certificate",
                format!("{} is not a PEM certificate: {e}", path.display()),
                None,
            );
        }
    };
    let days = (not_after - crate::auth::now_s() as i64) / 86_400;
    let fix = if configured { "renew it (server.tls_cert)" } else { "delete it; a new one is made at start" };
    match days {
        d if d < 0 => finding(Level::Fail, "certificate", format!("{} expired", path.display()), Some(fix)),
        d if d < 14 => {
            finding(Level::Warn, "certificate", format!("{} expires in {d} days", path.display()), Some(fix))
        }
        d => finding(Level::Ok, "certificate", format!("{} valid for {d} more days", path.display()), None),
    }
}

fn state_dir(dir: &Path) -> Finding {
    let probe = dir.join(".doctor-write-test");
    let ok = std::fs::create_dir_all(dir)
        .and_then(|_| std::fs::write(&probe, b""))
        .and_then(|_| std::fs::remove_file(&probe));
    match ok {
        Ok(()) => finding(Level::Ok, "state directory", format!("{} is writable", dir.display()), None),
        Err(e) => finding(
            Level::Fail,
            "state directory",
            format!("{}: {e}", dir.display()),
            Some("set server.state_dir (or STATE_DIRECTORY) to a directory this user may write"),
        ),
    }
}

/// `glasscast sources`: displays, cameras, audio, encoders.
pub fn sources(cfg: &Config) -> anyhow::Result<String> {
    use std::fmt::Write;
    media::init()?;
    let mut out = String::new();
    writeln!(out, "screens:")?;
    match std::env::var("DISPLAY") {
        Ok(d) => writeln!(out, "  x11 {d}    source = {{ kind = \"x11\", display = \"{d}\" }}")?,
        Err(_) => writeln!(out, "  (no X11 display: DISPLAY is not set)")?,
    }
    if let Ok(w) = std::env::var("WAYLAND_DISPLAY") {
        writeln!(
            out,
            "  wayland {w}    source = \"portal\" (the portal's chooser picks the monitor at the first start)"
        )?;
    }
    for s in cfg.streams.iter().filter(|s| matches!(s.source, VideoSource::Portal { .. })) {
        let token = crate::media::source::portal::token_path(&cfg.server.state_dir, &s.name);
        let state =
            if token.exists() { "a monitor is chosen (delete the file to choose again)" } else { "not chosen yet" };
        writeln!(out, "  stream {}: {} ({})", s.name, state, token.display())?;
    }
    let devices = discover::devices();
    for (kind, title, key) in [
        ("camera", "cameras", "device"),
        ("audio-source", "audio inputs", "device"),
        ("audio-sink", "audio outputs", "sink"),
    ] {
        writeln!(out, "{title}:")?;
        let mut any = false;
        for d in devices.iter().filter(|d| d.kind == kind) {
            any = true;
            let id = d.id.as_deref().unwrap_or("?");
            writeln!(out, "  {}    {key} = \"{id}\"    {}", d.name, d.formats)?;
        }
        if !any {
            writeln!(out, "  (none found)")?;
        }
    }
    writeln!(out, "encoders (in [encoding] order):")?;
    for e in &cfg.encoding.order {
        match media::encode::encoder::probe(*e) {
            Ok(()) => writeln!(out, "  {:<9} {:<13} works", e.name(), e.factory())?,
            Err(why) => writeln!(out, "  {:<9} {:<13} no: {why}", e.name(), e.factory())?,
        }
    }
    Ok(out)
}

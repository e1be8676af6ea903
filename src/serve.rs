//! `glasscast serve`: builds the streams, the session manager and the HTTP(S) listener, and shuts them down
//! gracefully.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::mpsc;

use crate::auth::{AdminTokenSource, Auth};
use crate::config::{Config, IceServer, Transport, VideoSource, WebrtcConfig};
use crate::http::{self, AppState, tls};
use crate::media::{self, IceSettings, StreamPipeline};
use crate::session::{self, Sessions};

/// What the user needs to trust the self-signed certificate.
#[derive(Debug, Clone)]
pub struct TlsInfo {
    pub fingerprint: String,
    pub spki_sha256: Option<String>,
    pub self_signed: bool,
    pub cert_path: std::path::PathBuf,
}

pub struct Server {
    pub addr: SocketAddr,
    /// The Prometheus scrape listener (`GET /metrics`), when `[metrics] enabled`.
    pub metrics_addr: Option<SocketAddr>,
    pub sessions: Sessions,
    pub tls: Option<TlsInfo>,
    /// The forwarding transport, when `webrtc.transport = "forward"`.
    pub forward: Option<media::Forward>,
    pub auth: Auth,
    /// Where the admin token came from (a generated one's file is printed at start).
    pub admin_token: AdminTokenSource,
    /// Supervisors of sources that come and go (portal, feeds); aborting one releases its source.
    supervisors: Vec<tokio::task::JoinHandle<()>>,
    handle: axum_server::Handle<SocketAddr>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Everything but RFC 3986 unreserved characters is escaped in TURN user info.
const USERINFO: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// How long the TURN REST credentials glasscast's own webrtcbin agents use are good for (made once at start).
const OWN_TURN_CREDENTIAL_S: u64 = 30 * 24 * 3600;

/// The relay's TURN credentials: the configured pair, or a TURN REST pair made from the shared secret
/// for each allocation (good for 30 days; a refresh after that fails and the relay allocates anew).
pub(crate) fn relay_credentials(server: &IceServer) -> media::forward::Credentials {
    let server = server.clone();
    std::sync::Arc::new(move || match &server.secret {
        Some(s) => crate::auth::turn::rest_credentials(s, crate::auth::now_s() + OWN_TURN_CREDENTIAL_S, "glasscast"),
        None => (server.username.clone().unwrap_or_default(), server.credential.clone().unwrap_or_default()),
    })
}

/// The relay's `turn:` URLs ([`WebrtcConfig::relay_servers`], in order) with their credentials; a URL that
/// does not parse is left out (the configuration check refuses it when `relay` is on).
pub(crate) fn relay_targets(w: &WebrtcConfig) -> Vec<media::forward::RelayTarget> {
    let target = |(server, url): (&IceServer, &str)| {
        let turn = crate::config::TurnUrl::parse(url).ok()?;
        Some(media::forward::RelayTarget { url: url.to_owned(), turn, credentials: relay_credentials(server) })
    };
    w.relay_servers().into_iter().filter_map(target).collect()
}

/// `stun:`/`turn:` URLs from the config in the form webrtcbin takes (`stun://host:port`, `turn://u:p@host:port`).
pub fn ice_settings(w: &WebrtcConfig) -> IceSettings {
    fn host_port(url: &str) -> Option<(&str, &str)> {
        let (scheme, rest) = url.split_once(':')?;
        Some((scheme, rest.split('?').next().unwrap_or(rest)))
    }
    let mut ice = IceSettings {
        port_range: (w.udp_port_min != 0).then_some((w.udp_port_min, w.udp_port_max)),
        ..IceSettings::default()
    };
    for IceServer { urls, username, credential, secret } in &w.ice_servers {
        let rest = secret.as_ref().map(|s| {
            let (u, c) =
                crate::auth::turn::rest_credentials(s, crate::auth::now_s() + OWN_TURN_CREDENTIAL_S, "glasscast");
            (Some(u), Some(c))
        });
        let (username, credential) = match &rest {
            Some((u, c)) => (u, c),
            None => (username, credential),
        };
        for url in urls {
            match host_port(url) {
                Some(("stun", hp)) if ice.stun_server.is_none() => ice.stun_server = Some(format!("stun://{hp}")),
                Some((scheme @ ("turn" | "turns"), hp)) => {
                    // Percent-encoded: TURN REST usernames contain ':' and secrets may contain '@' or '/';
                    // webrtcbin's libnice glue unescapes both parts.
                    let enc = |s: &Option<String>| {
                        percent_encoding::utf8_percent_encode(s.as_deref().unwrap_or_default(), USERINFO).to_string()
                    };
                    ice.turn_servers.push(format!("{scheme}://{}:{}@{hp}", enc(username), enc(credential)));
                }
                _ => {}
            }
        }
    }
    ice
}

impl Server {
    /// Starts every enabled stream and the listener. Returns once the listener is bound.
    pub async fn start(cfg: &Config) -> anyhow::Result<Self> {
        let cfg = &cfg.with_record_dirs();
        media::init().context("initializing GStreamer")?;
        crate::telemetry::install();
        media::prewarm();
        // Each viewer holds ~10 file descriptors (sockets, pipes); the usual soft limit of 1024 would cap a
        // stream near 100 viewers. Raise it to the hard limit.
        match rlimit::increase_nofile_limit(u64::MAX) {
            Ok(n) => tracing::debug!(limit = n, "open-file limit"),
            Err(e) => tracing::warn!(error = %e, "could not raise the open-file limit"),
        }
        let (auth, admin_token) = Auth::load(&cfg.auth, &cfg.server.state_dir).context("loading access control")?;
        for w in cfg.warnings() {
            tracing::warn!("{w}");
        }
        if !auth.required() {
            tracing::warn!("auth.mode = \"disabled\": anyone who can reach this server can watch every stream");
        }
        if auth.admin_open() {
            tracing::error!(
                "auth.open_admin_api = true: anyone who can reach this server can end sessions, stop streams, \
                 rotate keys and make it push to any URL; never do this on a network you do not control"
            );
        }
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let ice = ice_settings(&cfg.webrtc);
        let forward = match cfg.webrtc.transport {
            Transport::Forward => Some(
                media::Forward::start(&cfg.webrtc, events_tx.clone())
                    .context("starting the forwarding transport (webrtc.mux_port)")?,
            ),
            Transport::Webrtcbin => None,
        };
        let mut streams = Vec::new();
        let mut supervisors = Vec::new();
        if let Some(fwd) = &forward {
            supervisors.extend(keep_announcing(fwd, &cfg.webrtc).await);
        }
        for s in cfg.streams.iter().filter(|s| s.enabled) {
            let passthrough = feed_passthrough(s).await;
            let pipeline = StreamPipeline::build(
                s,
                &cfg.encoding.order,
                passthrough,
                ice.clone(),
                forward.as_ref(),
                events_tx.clone(),
            )
            .with_context(|| format!("building stream `{}`", s.name))?;
            pipeline.start()?;
            session::start_pushes(&pipeline, s).with_context(|| format!("pushing stream `{}`", s.name))?;
            match &s.source {
                VideoSource::Portal { cursor } => {
                    let token = media::source::portal::token_path(&cfg.server.state_dir, &s.name);
                    supervisors.push(media::stream::supervise::portal(pipeline.clone(), s.clone(), token, *cursor));
                }
                VideoSource::Uri { url, .. } => {
                    let feed = media::stream::supervise::feed(
                        pipeline.clone(),
                        s.name.clone(),
                        url.clone(),
                        passthrough.is_some(),
                    );
                    supervisors.push(feed);
                }
                _ => {}
            }
            streams.push((s.clone(), pipeline));
        }
        let sessions = session::spawn(
            streams,
            events_rx,
            Duration::from_secs(cfg.webrtc.connect_timeout_s.into()),
            auth.clone(),
            forward.clone(),
        );
        let handle = axum_server::Handle::new();
        let metrics_addr = match cfg.metrics.enabled {
            true => Some(serve_metrics(cfg, sessions.clone(), handle.clone())?),
            false => None,
        };
        let app = http::router(AppState::new(sessions.clone(), auth.clone(), cfg), &cfg.server.cors_origins);
        let listener = bind_listener(cfg).with_context(|| format!("listening on {}", cfg.listen_addr()))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let service = app.into_make_service_with_connect_info::<SocketAddr>();
        let (task, tls) = serve_http(cfg, listener, service, handle.clone())?;
        Ok(Self { addr, metrics_addr, sessions, tls, forward, auth, admin_token, supervisors, handle, task })
    }

    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// Stops accepting, lets requests finish (up to 5 s), closes every session and stops the pipelines.
    pub async fn shutdown(self) {
        self.handle.graceful_shutdown(Some(Duration::from_secs(5)));
        for s in &self.supervisors {
            s.abort();
        }
        self.sessions.shutdown().await;
        if let Some(fwd) = self.forward {
            let _ = tokio::task::spawn_blocking(move || fwd.stop()).await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(6), self.task).await;
    }

    /// Runs until SIGINT or SIGTERM, then shuts down gracefully.
    pub async fn run_until_signal(self) -> anyhow::Result<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        }
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
        self.shutdown().await;
        Ok(())
    }
}

/// Serves `service` on `listener`: HTTPS (the configured or self-signed certificate) or plain HTTP, either
/// way within `[server.limits]` (http::conn). Returns the serving task and, for HTTPS, the certificate's
/// description.
fn serve_http(
    cfg: &Config,
    listener: std::net::TcpListener,
    service: axum::extract::connect_info::IntoMakeServiceWithConnectInfo<axum::Router, SocketAddr>,
    handle: axum_server::Handle<SocketAddr>,
) -> anyhow::Result<(tokio::task::JoinHandle<std::io::Result<()>>, Option<TlsInfo>)> {
    let limits = &cfg.server.limits;
    let acceptor = http::conn::LimitAcceptor::new(axum_server::accept::DefaultAcceptor, limits);
    if cfg.server.plain_http {
        let mut server = axum_server::from_tcp(listener)?.handle(handle).acceptor(acceptor);
        http::conn::configure(server.http_builder(), limits);
        return Ok((tokio::spawn(server.serve(service)), None));
    }
    let material = tls::load_or_create(&cfg.server)?;
    let info = TlsInfo {
        fingerprint: material.fingerprint.clone(),
        spki_sha256: material.spki_sha256.clone(),
        self_signed: material.self_signed,
        cert_path: material.cert_path.clone(),
    };
    let rustls_cfg = axum_server::tls_rustls::RustlsConfig::from_config(material.config);
    let mut server = axum_server::tls_rustls::from_tcp_rustls(listener, rustls_cfg)?
        .handle(handle)
        .map(|tls| tls.acceptor(acceptor));
    http::conn::configure(server.http_builder(), limits);
    Ok((tokio::spawn(server.serve(service)), Some(info)))
}

/// Binds `[metrics] listen` and serves `GET /metrics` there (plain HTTP), shut down with the main listener.
fn serve_metrics(
    cfg: &Config,
    sessions: Sessions,
    handle: axum_server::Handle<SocketAddr>,
) -> anyhow::Result<SocketAddr> {
    let token = cfg.metrics.load_token().context("reading metrics.token_file")?;
    let listener = std::net::TcpListener::bind(cfg.metrics.listen_addr())
        .with_context(|| format!("listening for metrics on {} (metrics.listen)", cfg.metrics.listen))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let service = http::metrics::router(sessions, token, &cfg.server.state_dir).into_make_service();
    tokio::spawn(axum_server::from_tcp(listener)?.handle(handle).serve(service));
    tracing::info!(%addr, "metrics at /metrics");
    Ok(addr)
}

/// For a feed with `passthrough`: reads its H.264 (up to 8 s) and says whether browsers can take it as it is
/// (the profile viewers then receive); `None` (decode and encode) otherwise, or when the feed cannot be read
/// at start.
async fn feed_passthrough(s: &crate::config::StreamConfig) -> Option<media::H264Profile> {
    let VideoSource::Uri { url, passthrough: true } = &s.source else { return None };
    let url = url.clone();
    let found = tokio::task::spawn_blocking(move || media::source::discover::feed_h264(&url)).await.ok()?;
    match found {
        Ok(feed) => {
            let profile = feed.passthrough();
            match profile {
                Some(p) => tracing::info!(stream = %s.name, profile = p.name(), "the feed's H.264 passes through"),
                None => tracing::info!(
                    stream = %s.name, feed_profile = %feed.profile, b_frames = feed.reordered,
                    "the feed is re-encoded: browsers need constrained-baseline or main H.264 without B-frames"
                ),
            }
            profile
        }
        Err(why) => {
            tracing::warn!(stream = %s.name, %why, "could not read the feed's H.264 at start; it is decoded and re-encoded");
            None
        }
    }
}

/// The tasks that keep what the forwarding transport announces current (local addresses, `advertise`,
/// `stun_discover`), after their first round: the first viewer already gets the result.
async fn keep_announcing(fwd: &media::Forward, w: &WebrtcConfig) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = vec![media::forward::follow_local(fwd.clone())];
    if !w.advertise.is_empty() {
        tasks.push(media::forward::keep_resolved(fwd.clone(), w.advertised(), fwd.port()).await);
    }
    if let Some(url) = &w.stun_discover {
        tasks.push(media::forward::keep_discovered(fwd.clone(), url.clone()).await);
    }
    let targets = if w.relay { relay_targets(w) } else { Vec::new() };
    if !targets.is_empty() {
        tasks.push(media::forward::keep_relayed(fwd.clone(), targets).await);
    }
    tracing::info!(announced = ?fwd.announced(), "forwarding transport announces");
    tasks
}

/// Binds `server.listen` (see [`crate::net::listen_tcp`]: `[::]` takes IPv4 too).
pub fn bind_listener(cfg: &Config) -> std::io::Result<std::net::TcpListener> {
    crate::net::listen_tcp(cfg.listen_addr())
}

/// The host to print in links: the configured public host, else the first non-loopback IPv4 address.
pub fn display_host(cfg: &Config, addr: SocketAddr) -> String {
    if let Some(h) = &cfg.server.public_host {
        return h.clone();
    }
    if !addr.ip().is_unspecified() {
        return match addr {
            SocketAddr::V6(a) => format!("[{}]", a.ip()),
            SocketAddr::V4(a) => a.ip().to_string(),
        };
    }
    if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .find(|i| !i.is_loopback() && i.ip().is_ipv4())
        .map(|i| i.ip().to_string())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ice_urls_become_webrtcbin_uris() {
        let w = WebrtcConfig {
            ice_servers: vec![
                IceServer { urls: vec!["stun:stun.example.net:3478".into()], ..IceServer::default() },
                IceServer {
                    urls: vec!["turn:turn.example.net:3478?transport=udp".into()],
                    username: Some("u".into()),
                    credential: Some("p".into()),
                    secret: None,
                },
                IceServer {
                    urls: vec!["turns:turn.example.net:5349".into()],
                    username: Some("1700000000:alice".into()),
                    credential: Some("s3cr@t/+=".into()),
                    secret: None,
                },
                IceServer {
                    urls: vec!["turn:rest.example.net:3478".into()],
                    secret: Some("shared".into()),
                    ..IceServer::default()
                },
            ],
            udp_port_min: 40000,
            udp_port_max: 40100,
            ..WebrtcConfig::default()
        };
        let ice = ice_settings(&w);
        assert_eq!(ice.stun_server.as_deref(), Some("stun://stun.example.net:3478"));
        assert_eq!(
            ice.turn_servers[..2],
            [
                "turn://u:p@turn.example.net:3478".to_owned(),
                "turns://1700000000%3Aalice:s3cr%40t%2F%2B%3D@turn.example.net:5349".to_owned(),
            ]
        );
        // A shared secret: REST credentials of our own, good for 30 days.
        let rest = &ice.turn_servers[2];
        let user = rest.strip_prefix("turn://").and_then(|r| r.split("%3Aglasscast:").next()).expect("user");
        let expiry: u64 = user.parse().expect("an expiry");
        assert!(expiry > crate::auth::now_s() + 29 * 24 * 3600, "{rest}");
        assert_eq!(ice.port_range, Some((40000, 40100)));
    }
}

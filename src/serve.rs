//! `glasscast serve`: wires the parts together: the session manager (which builds and owns the media:
//! `session::lifecycle`), the HTTP(S) listener and the metrics listener; and shuts them down gracefully.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;

use crate::auth::{AdminTokenSource, Auth};
use crate::config::Config;
use crate::http::{self, AppState, tls};
use crate::media;
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
    /// The forwarding transport, when `webrtc.transport = "forward"` (the session manager owns and stops it).
    pub forward: Option<media::Forward>,
    pub auth: Auth,
    /// Where the admin token came from (a generated one's file is printed at start).
    pub admin_token: AdminTokenSource,
    handle: axum_server::Handle<SocketAddr>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Starts every enabled stream and the listener. Returns once the listener is bound.
    pub async fn start(cfg: &Config) -> anyhow::Result<Self> {
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
        let media = session::lifecycle::start(cfg).await?;
        let forward = media.forward.clone();
        let connect_timeout = Duration::from_secs(cfg.webrtc.connect_timeout_s.into());
        let sessions = session::spawn(media, connect_timeout, auth.clone(), cfg.server.state_dir.clone());
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
        Ok(Self { addr, metrics_addr, sessions, tls, forward, auth, admin_token, handle, task })
    }

    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// Stops accepting, lets requests finish (up to 5 s), closes every session and stops the pipelines.
    pub async fn shutdown(self) {
        self.handle.graceful_shutdown(Some(Duration::from_secs(5)));
        self.sessions.shutdown().await;
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

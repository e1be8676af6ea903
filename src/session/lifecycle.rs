//! Stream lifecycle, owned by the session layer: the one place the configuration becomes media's terms
//! (ICE settings, the relay's targets, push targets, recording settings, whether a feed passes through),
//! and where the media transport, the streams, their pushes, recordings and source supervisors are built
//! and started ([`start`]). The manager stops and starts them again (`manager/control.rs`) and stops them
//! all at shutdown. `serve.rs` only wires the result to the HTTP listener.

use std::path::Path;

use anyhow::Context;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::{Config, IceServer, StreamConfig, Transport, VideoSource, WebrtcConfig};
use crate::media::tap::egress::PushTarget;
use crate::media::tap::recorder::RecordSettings;
use crate::media::{self, IceSettings, MediaEvent, StreamPipeline};

/// Everything media that [`start`] built: the session manager owns it from then on.
pub struct Media {
    /// The forwarding transport, when `webrtc.transport = "forward"`.
    pub forward: Option<media::Forward>,
    pub(super) streams: Vec<Stream>,
    pub(super) events: mpsc::UnboundedReceiver<MediaEvent>,
    /// What keeps the forwarding transport's announced addresses current.
    pub(super) tasks: Vec<JoinHandle<()>>,
}

/// One enabled stream, started.
pub(super) struct Stream {
    pub cfg: StreamConfig,
    pub pipeline: StreamPipeline,
    /// Keeps a source that comes and goes (portal, feed) attached; aborted at shutdown.
    pub supervisor: Option<JoinHandle<()>>,
}

impl Media {
    /// No transport and no stream (the router's tests), and the sender of its media events.
    pub fn none() -> (Self, mpsc::UnboundedSender<MediaEvent>) {
        let (tx, events) = mpsc::unbounded_channel();
        (Self { forward: None, streams: Vec::new(), events, tasks: Vec::new() }, tx)
    }
}

/// Starts the media transport and every enabled stream with its pushes, recording and supervisor.
pub async fn start(cfg: &Config) -> anyhow::Result<Media> {
    let (events_tx, events) = mpsc::unbounded_channel();
    let ice = ice_settings(&cfg.webrtc);
    let forward = match cfg.webrtc.transport {
        Transport::Forward => Some(
            media::Forward::start(&cfg.webrtc, events_tx.clone())
                .context("starting the forwarding transport (webrtc.mux_port)")?,
        ),
        Transport::Webrtcbin => None,
    };
    let tasks = match &forward {
        Some(fwd) => keep_announcing(fwd, &cfg.webrtc).await,
        None => Vec::new(),
    };
    let mut streams = Vec::new();
    for s in cfg.streams.iter().filter(|s| s.enabled) {
        let passthrough = feed_passthrough(s).await;
        let order = &cfg.encoding.order;
        let pipeline = StreamPipeline::build(s, order, passthrough, ice.clone(), forward.as_ref(), events_tx.clone())
            .with_context(|| format!("building stream `{}`", s.name))?;
        pipeline.start()?;
        start_extras(&pipeline, s, &cfg.server.state_dir).with_context(|| format!("pushing stream `{}`", s.name))?;
        let supervisor = supervise(&pipeline, s, &cfg.server.state_dir, passthrough.is_some());
        streams.push(Stream { cfg: s.clone(), pipeline, supervisor });
    }
    Ok(Media { forward, streams, events, tasks })
}

/// Starts what a started stream runs besides its viewers: its configured pushes (`[[streams.push]]`: WHIP
/// endpoints, Janus rooms) and, when `[streams.record]` is on, its recording. At start and after an
/// operator's stop and start.
pub(super) fn start_extras(pipeline: &StreamPipeline, cfg: &StreamConfig, state_dir: &Path) -> anyhow::Result<()> {
    for p in &cfg.push {
        let token = p.load_token().with_context(|| format!("reading streams `{}` push token_file", cfg.name))?;
        let started = pipeline.start_push(PushTarget { url: p.url.clone(), token });
        started.map_err(|e| anyhow::anyhow!(crate::push::scrub(&format!("{e:#}"), &p.url)))?;
    }
    if cfg.record.enabled {
        pipeline.start_recording(record_settings(cfg, state_dir));
    }
    Ok(())
}

/// `[streams.record]` as the recorder takes it; its `dir` defaults to `state_dir/recordings/<stream>`
/// (here, through [`crate::config::RecordConfig::dir_or_default`], as the configuration check does).
pub(super) fn record_settings(cfg: &StreamConfig, state_dir: &Path) -> RecordSettings {
    let r = &cfg.record;
    RecordSettings {
        dir: r.dir_or_default(state_dir, cfg.name.as_str()),
        segment: std::time::Duration::from_secs(r.segment_s.into()),
        retention: crate::recordings::Retention {
            keep: r.keep(),
            max_bytes: r.max_bytes(),
            min_free: r.min_free_bytes(),
        },
    }
}

/// The task that keeps a portal cast or a URL feed attached to its stream, for those sources.
fn supervise(
    pipeline: &StreamPipeline,
    s: &StreamConfig,
    state_dir: &Path,
    passthrough: bool,
) -> Option<JoinHandle<()>> {
    match &s.source {
        VideoSource::Portal { cursor } => {
            let token = media::source::portal::token_path(state_dir, &s.name);
            Some(media::stream::supervise::portal(pipeline.clone(), s.clone(), token, *cursor))
        }
        VideoSource::Uri { url, .. } => {
            Some(media::stream::supervise::feed(pipeline.clone(), s.name.clone(), url.clone(), passthrough))
        }
        _ => None,
    }
}

/// Everything but RFC 3986 unreserved characters is escaped in TURN user info.
const USERINFO: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// How long the TURN REST credentials glasscast's own webrtcbin agents use are good for (made once at start).
const OWN_TURN_CREDENTIAL_S: u64 = 30 * 24 * 3600;

/// The relay's TURN credentials: the configured pair, or a TURN REST pair made from the shared secret
/// for each allocation (good for 30 days; a refresh after that fails and the relay allocates anew).
fn relay_credentials(server: &IceServer) -> media::forward::Credentials {
    let server = server.clone();
    std::sync::Arc::new(move || match &server.secret {
        Some(s) => crate::auth::turn::rest_credentials(s, crate::auth::now_s() + OWN_TURN_CREDENTIAL_S, "glasscast"),
        None => (server.username.clone().unwrap_or_default(), server.credential.clone().unwrap_or_default()),
    })
}

/// The relay's `turn:` URLs ([`WebrtcConfig::relay_servers`], in order) with their credentials; a URL that
/// does not parse is left out (the configuration check refuses it when `relay` is on).
pub fn relay_targets(w: &WebrtcConfig) -> Vec<media::forward::RelayTarget> {
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

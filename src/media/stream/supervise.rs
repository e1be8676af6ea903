//! Sources that come and go (a portal screen cast, a network feed; the stream owns them, the `source` room
//! makes them): a task per stream that attaches the
//! source to the running stream ([`StreamPipeline::attach_source`]), watches it, and when it is lost says
//! why in the stream's health (`/readyz`) and tries again after 1, 2, 4 ... 30 s. Viewers stay connected
//! meanwhile and get the picture again when it returns.

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use gstreamer as gst;

use crate::config::{PortalCursor, StreamConfig};
use crate::ids::StreamName;
use crate::media::StreamPipeline;
use crate::media::source::portal;

/// A source ready to attach, what keeps it alive (dropped when it is detached), and optionally a signal
/// that it ended (the compositor closed a portal session).
pub struct Attached {
    pub source: gst::Element,
    pub guard: Box<dyn Send>,
    pub closed: Option<tokio::sync::watch::Receiver<bool>>,
}

/// Longest wait between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A live feed at any frame rate sends a frame within this; longer, it is gone.
const FEED_STALL: Duration = Duration::from_secs(5);

/// With `keepalive-time`, a live cast delivers frames at the stream's rate even on a still screen; this
/// long without one, the cast is gone (a backend that dies takes its PipeWire stream with it, and neither
/// pipewiresrc nor the portal says so).
const PORTAL_STALL: Duration = Duration::from_secs(3);

/// Keeps a portal stream's picture coming ([`supervise`]): each attempt opens the cast and attaches
/// `pipewiresrc`; the compositor closing the session, an error or EOS from the source, or [`PORTAL_STALL`] without
/// a frame ends it, and the portal is asked again (with the restore token: nobody is asked).
pub fn portal(
    pipeline: StreamPipeline,
    cfg: StreamConfig,
    token_file: PathBuf,
    cursor: PortalCursor,
) -> tokio::task::JoinHandle<()> {
    let name = cfg.name.clone();
    supervise(pipeline, name, PORTAL_STALL, move || {
        let (cfg, token_file) = (cfg.clone(), token_file.clone());
        async move {
            let capture = portal::open(&token_file, cursor).await.map_err(|e| e.to_string())?;
            let source =
                crate::media::source::portal_source(&cfg, capture.fd(), capture.node).map_err(|e| format!("{e:#}"))?;
            let closed = Some(capture.closed.clone());
            Ok(Attached { source, guard: Box::new(capture), closed })
        }
    })
}

/// Keeps a URL feed's picture coming: each attempt attaches a new `uridecodebin` (decoding, or stopping at
/// the feed's H.264 when it `passthrough`); an error or EOS (the feed went away), or [`FEED_STALL`] without
/// a frame, ends it and it is opened again.
pub fn feed(
    pipeline: StreamPipeline,
    stream: StreamName,
    url: String,
    passthrough: bool,
) -> tokio::task::JoinHandle<()> {
    supervise(pipeline, stream, FEED_STALL, move || {
        let url = url.clone();
        async move {
            let source = if passthrough {
                crate::media::source::uri_h264_source(&url)
            } else {
                crate::media::source::uri_source(&url)
            };
            let source = source.map_err(|e| format!("{e:#}"))?;
            Ok(Attached { source, guard: Box::new(()), closed: None })
        }
    })
}

/// Resolves once the attached source has pushed nothing for `stall`, with how long.
async fn stalled(pipeline: &StreamPipeline, stall: Duration) -> Duration {
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if let Some(idle) = pipeline.source_idle().filter(|i| *i >= stall) {
            return idle;
        }
    }
}

/// Resolves when `closed` says so (never without one).
async fn ended(closed: Option<tokio::sync::watch::Receiver<bool>>) {
    match closed {
        Some(mut c) => {
            let _ = c.wait_for(|closed| *closed).await;
        }
        None => std::future::pending().await,
    }
}

/// Runs `acquire` and keeps its source attached to `pipeline`, as the module says. A source is lost when
/// its bin posts an error or EOS, when it pushes nothing for `stall`, or when its `closed` signal fires.
/// Aborting the task drops the current source's guard.
pub fn supervise<F, Fut>(
    pipeline: StreamPipeline,
    stream: StreamName,
    stall: Duration,
    mut acquire: F,
) -> tokio::task::JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = Result<Attached, String>> + Send,
{
    tokio::spawn(async move {
        let Some(mut failures) = pipeline.source_failures() else { return };
        let mut backoff = Duration::from_secs(1);
        loop {
            let why = match acquire().await {
                Ok(Attached { source, guard, closed }) => match pipeline.attach_source(source) {
                    Ok(()) => {
                        let since = Instant::now();
                        failures.borrow_and_update();
                        let why = tokio::select! {
                            () = ended(closed) => "the source was closed".to_owned(),
                            _ = failures.changed() => {
                                pipeline.health().source_problem.unwrap_or_else(|| "the source failed".into())
                            }
                            idle = stalled(&pipeline, stall) => {
                                format!("the source stopped delivering frames ({} s without one)", idle.as_secs())
                            }
                        };
                        let p = pipeline.clone();
                        let _ = tokio::task::spawn_blocking(move || p.detach_source()).await;
                        drop(guard);
                        if since.elapsed() > MAX_BACKOFF {
                            backoff = Duration::from_secs(1);
                        }
                        why
                    }
                    Err(e) => format!("{e:#}"),
                },
                Err(e) => e,
            };
            tracing::warn!(%stream, %why, retry_in_s = backoff.as_secs(), "no picture from the source");
            pipeline.set_source_problem(format!("{why}; retrying in {} s", backoff.as_secs()));
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    })
}

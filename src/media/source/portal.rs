//! Screen capture through the xdg-desktop-portal ScreenCast interface (ashpd over the D-Bus session bus):
//! CreateSession -> SelectSources (one monitor, cursor mode, persist until revoked, the saved restore token)
//! -> Start -> OpenPipeWireRemote. The PipeWire fd and node feed `pipewiresrc` ([`crate::media::source`]).
//!
//! The restore token the portal returns is kept in `state_dir/portal/<stream>.token` (0600, written
//! atomically) and offered on the next start, so a restarted service is not asked again: the appliance
//! comes back unattended.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use ashpd::desktop::PersistMode;
use ashpd::desktop::screencast::{
    CursorMode, OpenPipeWireRemoteOptions, Screencast, SelectSourcesOptions, SourceType, StartCastOptions,
};
use futures::StreamExt;
use thiserror::Error;

use crate::config::PortalCursor;
use crate::ids::StreamName;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PortalError {
    /// No session bus, or no ScreenCast portal on it.
    #[error("no ScreenCast portal: {0} (glasscast must run in the desktop user's session, with its D-Bus session bus)")]
    Unavailable(String),
    /// The user cancelled the dialog, or the compositor refused.
    #[error("the ScreenCast portal refused to share the screen ({0})")]
    Refused(String),
    #[error("the ScreenCast portal answered without a stream")]
    NoStream,
    #[error("the ScreenCast portal failed: {0}")]
    Failed(String),
}

/// A running screen cast: the PipeWire remote's fd and the monitor's node. Dropping it closes the portal
/// session (the compositor stops the cast).
pub struct PortalCapture {
    fd: OwnedFd,
    pub node: u32,
    /// The monitor's size, as the portal reports it.
    pub size: Option<(i32, i32)>,
    /// The saved restore token was accepted (no chooser was shown).
    pub restored: bool,
    /// Resolves when the compositor closes the session (e.g. the user stopped sharing).
    pub closed: tokio::sync::watch::Receiver<bool>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl PortalCapture {
    /// The PipeWire remote's fd, for `pipewiresrc fd=` (valid while `self` lives).
    pub fn fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }
}

impl Drop for PortalCapture {
    fn drop(&mut self) {
        // The session's task closes the portal session and ends.
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Where a stream's restore token is kept.
pub fn token_path(state_dir: &Path, stream: &StreamName) -> PathBuf {
    state_dir.join("portal").join(format!("{stream}.token"))
}

fn failed(e: ashpd::Error) -> PortalError {
    match e {
        ashpd::Error::Response(r) => PortalError::Refused(format!("{r:?}")),
        ashpd::Error::Zbus(z) => PortalError::Unavailable(z.to_string()),
        ashpd::Error::PortalNotFound(name) => PortalError::Unavailable(format!("{name} not found")),
        other => PortalError::Failed(other.to_string()),
    }
}

/// Is there a ScreenCast portal on the session bus?
pub async fn available() -> Result<(), PortalError> {
    let proxy = Screencast::new().await.map_err(failed)?;
    proxy.available_source_types().await.map_err(failed)?;
    Ok(())
}

/// Opens a screen cast of one monitor, restoring the previous choice when `token_file` holds a token the
/// portal accepts, and saving the token it returns.
pub async fn open(token_file: &Path, cursor: PortalCursor) -> Result<PortalCapture, PortalError> {
    let saved = std::fs::read_to_string(token_file).ok().map(|t| t.trim().to_owned()).filter(|t| !t.is_empty());
    let proxy = Screencast::new().await.map_err(failed)?;
    let session = proxy.create_session(Default::default()).await.map_err(failed)?;
    let cursor_mode = match cursor {
        PortalCursor::Embedded => CursorMode::Embedded,
        PortalCursor::Hidden => CursorMode::Hidden,
    };
    let options = SelectSourcesOptions::default()
        .set_cursor_mode(cursor_mode)
        .set_sources(ashpd::enumflags2::BitFlags::from(SourceType::Monitor))
        .set_multiple(false)
        .set_persist_mode(PersistMode::ExplicitlyRevoked)
        .set_restore_token(saved.as_deref());
    proxy.select_sources(&session, options).await.map_err(failed)?.response().map_err(failed)?;
    let streams =
        proxy.start(&session, None, StartCastOptions::default()).await.map_err(failed)?.response().map_err(failed)?;
    let stream = streams.streams().first().ok_or(PortalError::NoStream)?;
    let (node, size) = (stream.pipe_wire_node_id(), stream.size());
    let token = streams.restore_token().map(str::to_owned);
    let restored = saved.is_some() && token == saved;
    if let Some(t) = &token
        && Some(t) != saved.as_ref()
    {
        if let Some(dir) = token_file.parent() {
            let _ = crate::state::private_dir(dir);
        }
        if let Err(e) = crate::state::write_atomic(token_file, t.as_bytes(), 0o600) {
            tracing::warn!(error = %format!("{e:#}"), path = %token_file.display(), "could not save the portal's restore token");
        }
    }
    let fd = proxy.open_pipe_wire_remote(&session, OpenPipeWireRemoteOptions::default()).await.map_err(failed)?;
    let (closed_tx, closed) = tokio::sync::watch::channel(false);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        // Owns the proxy and the session: the cast lasts until the capture is dropped or the compositor
        // closes it.
        let _proxy = proxy;
        let Ok(mut signal) = session.receive_closed().await else {
            tracing::warn!("cannot watch the ScreenCast portal session; it is kept open regardless");
            let _ = stopped.await;
            let _ = session.close().await;
            return;
        };
        tokio::select! {
            _ = stopped => {
                let _ = session.close().await;
            }
            Some(_) = signal.next() => {
                tracing::warn!("the ScreenCast portal session was closed by the compositor");
                let _ = closed_tx.send(true);
            }
        }
    });
    tracing::info!(node, ?size, restored, "screen cast started through the portal");
    Ok(PortalCapture { fd, node, size, restored, closed, stop: Some(stop) })
}

//! A stream's bus: errors end a viewer, fail an attached source or restart a chain; state changes say
//! when it plays.

use std::sync::Arc;

use gstreamer as gst;
use gstreamer::prelude::*;

use super::{Inner, StreamState, recover};
use crate::ids::SessionId;
use crate::media::{MediaEvent, PeerEnd};

/// Turns the stream's bus messages into state (errors: [`on_error`]).
pub(super) fn on_message(inner: &Arc<Inner>, msg: &gst::Message) {
    use gst::MessageView;
    match msg.view() {
        MessageView::Error(err) => on_error(inner, msg, &err.error()),
        MessageView::Warning(w) => {
            tracing::debug!(stream = %inner.name, warning = %w.error(), "pipeline warning");
        }
        MessageView::StateChanged(sc)
            if msg.src() == Some(inner.pipeline.upcast_ref()) && sc.current() == gst::State::Playing =>
        {
            let mut state = inner.state.lock().expect("state lock");
            if *state == StreamState::Starting {
                *state = StreamState::Playing;
                let encoder = inner.encoder.as_ref().map_or("passthrough", |c| c.encoder.factory());
                tracing::info!(stream = %inner.name, encoder, "stream playing");
            }
        }
        _ => {}
    }
}

/// An error ends the viewer whose branch posted it, fails the attached source (its supervisor re-attaches
/// it) or restarts the capture or encode chain it came from ([`recover`]); anything else fails the stream.
fn on_error(inner: &Arc<Inner>, msg: &gst::Message, error: &gst::glib::Error) {
    let name = &inner.name;
    let reason = format!("{error} ({})", msg.src().map(|s| s.path_string().to_string()).unwrap_or_default());
    if let (Some(slot), true) = (&inner.slot, from_source(msg)) {
        tracing::warn!(stream = %name, %reason, "video source failed");
        *slot.problem.lock().expect("slot lock") = Some(format!("the source failed: {error}"));
        slot.lost.send_modify(|n| *n += 1);
    } else if let Some(id) = viewer_of(msg) {
        tracing::warn!(stream = %name, session = %id, %reason, "viewer branch error");
        let why = PeerEnd::Error(error.to_string());
        let _ = inner.events.send(MediaEvent::PeerEnded { stream: name.clone(), id, why });
    } else if let Some(chain) = inner.recovery.chain_of(msg) {
        recover::on_failure(inner, chain, reason);
    } else {
        tracing::error!(stream = %name, %reason, "stream pipeline error");
        *inner.state.lock().expect("state lock") = StreamState::Failed(reason.clone());
        let _ = inner.events.send(MediaEvent::StreamFailed { stream: name.clone(), reason });
    }
}

/// Did an element inside an attached source bin (`source-*`) post `msg`?
fn from_source(msg: &gst::Message) -> bool {
    let mut obj = msg.src().cloned();
    while let Some(o) = obj {
        if o.name().starts_with("source-") {
            return true;
        }
        obj = o.parent();
    }
    false
}

/// The viewer session whose branch (bin `viewer-<id>`) posted `msg`, if any.
fn viewer_of(msg: &gst::Message) -> Option<SessionId> {
    let mut obj = msg.src().cloned();
    while let Some(o) = obj {
        if let Some(id) = o.name().strip_prefix("viewer-").and_then(SessionId::parse) {
            return Some(id);
        }
        obj = o.parent();
    }
    None
}

//! The operator's control of streams (the admin API and `glasscast stream`): stop, start, push. Each
//! does its media work off the manager task and replies from there.

use tokio::sync::oneshot;

use super::{Manager, StreamEntry, finish};
use crate::ids::StreamName;
use crate::media::StreamState;
use crate::media::tap::egress::PushTarget;
use crate::session::SessionError;
use crate::session::lifecycle::{record_settings, start_extras};
use crate::telemetry::EndReason;

impl Manager {
    /// Ends a stream's sessions (its publisher too) and stops its pipeline (blocking while its threads
    /// stop: off this task).
    pub(super) fn stop_stream(&mut self, stream: StreamName, reply: oneshot::Sender<Result<(), SessionError>>) {
        let Some((name, entry)) = self.streams.get_key_value(&stream) else {
            let _ = reply.send(Err(SessionError::UnknownStream(stream.to_string())));
            return;
        };
        let name = name.clone();
        let pipeline = entry.pipeline.clone();
        let ids: Vec<_> = self.sessions.iter().filter(|(_, s)| s.stream == name).map(|(id, _)| *id).collect();
        let sessions: Vec<_> =
            ids.into_iter().filter_map(|id| self.take_ended(id, EndReason::Stopped, "its stream stops")).collect();
        tracing::info!(stream = %name, sessions = sessions.len(), "stopping stream");
        tokio::task::spawn_blocking(move || {
            sessions.iter().for_each(finish);
            pipeline.stop();
            let _ = reply.send(Ok(()));
        });
    }

    /// Starts a stopped stream off this task (a source may take its time to open a device); replies from
    /// there.
    pub(super) fn start_stream(&self, stream: StreamName, reply: oneshot::Sender<Result<(), SessionError>>) {
        let Some((name, entry)) = self.streams.get_key_value(&stream) else {
            let _ = reply.send(Err(SessionError::UnknownStream(stream.to_string())));
            return;
        };
        if matches!(entry.pipeline.health().state, StreamState::Playing | StreamState::Starting) {
            let _ = reply.send(Ok(()));
            return;
        }
        tracing::info!(stream = %name, "starting stream");
        // Starting opens devices (a camera, the audio server) and may take a while: off this task, so
        // no other request waits for it. Marked starting first, so a second start is answered at once.
        entry.pipeline.mark_starting();
        let (name, pipeline, cfg) = (name.clone(), entry.pipeline.clone(), entry.cfg.clone());
        let state_dir = self.state_dir.clone();
        tokio::task::spawn_blocking(move || {
            if crate::media::test_fault() == Some("slow-start") {
                // GLASSCAST_TEST_FAULT=slow-start: a start after a stop takes 5 s (a slow device).
                std::thread::sleep(std::time::Duration::from_secs(5));
            }
            // Stopping ended its pushes (they follow the pipeline's clock): the configured ones start again.
            let result = pipeline.start().and_then(|()| start_extras(&pipeline, &cfg, &state_dir));
            let _ = reply.send(result.map_err(|e| SessionError::StartFailed(name, format!("{e:#}"))));
        });
    }

    /// Starts a push (WHIP or Janus) of a stream off this task (it builds and links elements into the running
    /// pipeline); replies from there.
    pub(super) fn push(
        &self,
        stream: StreamName,
        url: String,
        token: Option<String>,
        reply: oneshot::Sender<Result<u32, SessionError>>,
    ) {
        let Some((name, entry)) = self.streams.get_key_value(&stream) else {
            let _ = reply.send(Err(SessionError::UnknownStream(stream.to_string())));
            return;
        };
        let (name, pipeline) = (name.clone(), entry.pipeline.clone());
        // Builds and links elements into the running pipeline: off this task, as a start is.
        tokio::task::spawn_blocking(move || {
            let shown = crate::push::redacted(&url);
            let started = pipeline.start_push(PushTarget { url: url.clone(), token });
            tracing::info!(stream = %name, target = %shown, ok = started.is_ok(), "push requested");
            let why = |e: anyhow::Error| SessionError::BadPush(name, crate::push::scrub(&format!("{e:#}"), &url));
            let _ = reply.send(started.map_err(why));
        });
    }

    /// Stops a push off this task (it unlinks elements from the running pipeline); replies from there.
    pub(super) fn unpush(&self, stream: StreamName, id: u32, reply: oneshot::Sender<Result<(), SessionError>>) {
        let Some(entry) = self.streams.get(&stream) else {
            let _ = reply.send(Err(SessionError::UnknownStream(stream.to_string())));
            return;
        };
        let pipeline = entry.pipeline.clone();
        tokio::task::spawn_blocking(move || {
            let stopped = pipeline.stop_push(id);
            tracing::info!(stream = %stream, push = id, stopped, "push removed");
            let _ = reply.send(if stopped { Ok(()) } else { Err(SessionError::UnknownPush(stream, id)) });
        });
    }

    /// Starts or stops recording a stream (`on`), off this task (a stop finishes the file being written);
    /// replies from there. The wish outlives the stream's stops and starts: they follow `cfg.record`.
    pub(super) fn record(&mut self, stream: &StreamName, on: bool, reply: oneshot::Sender<Result<(), SessionError>>) {
        let Some(entry) = self.streams.get_mut(stream) else {
            let _ = reply.send(Err(SessionError::UnknownStream(stream.to_string())));
            return;
        };
        entry.cfg.record.enabled = on;
        let running = matches!(entry.pipeline.health().state, StreamState::Playing | StreamState::Starting);
        let (pipeline, settings) = (entry.pipeline.clone(), record_settings(&entry.cfg, &self.state_dir));
        tracing::info!(stream = %stream, on, running, "recording asked for");
        tokio::task::spawn_blocking(move || {
            match (on, running) {
                (true, true) => pipeline.start_recording(settings),
                (false, _) => drop(pipeline.stop_recording()),
                (true, false) => {}
            }
            let _ = reply.send(Ok(()));
        });
    }

    /// The stream called `name` (as a request names it), with its entry.
    pub(super) fn stream_named(&self, name: &str) -> Option<(&StreamName, &StreamEntry)> {
        self.streams.iter().find(|(k, _)| k.as_str() == name)
    }
}

//! The last warnings and errors, kept in memory for the admin console (`GET /api/v1/host`).
//!
//! A bounded ring of [`RING_SIZE`] entries: a flood of warnings costs a fixed amount of memory and pushes
//! the oldest out (counted, so the console can say how many it lost). What is kept is what the log line
//! says (message and fields, cut at [`MAX_TEXT`] characters), which by the logging rules never holds a
//! token.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;

/// Entries kept.
pub const RING_SIZE: usize = 100;
/// Characters kept of one entry's text.
const MAX_TEXT: usize = 600;

/// One warning or error.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LogEntry {
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// `WARN` or `ERROR`.
    pub level: String,
    /// The module that logged it.
    pub target: String,
    /// The message, then its fields as `key=value`.
    pub text: String,
}

static RING: Mutex<VecDeque<LogEntry>> = Mutex::new(VecDeque::new());
/// Every entry ever recorded (those pushed out included).
static SEEN: AtomicU64 = AtomicU64::new(0);

/// The entries kept, oldest first, and how many were recorded since start.
pub fn recent() -> (Vec<LogEntry>, u64) {
    let ring = RING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    (ring.iter().cloned().collect(), SEEN.load(Ordering::Relaxed))
}

fn record(entry: LogEntry) {
    let mut ring = RING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if ring.len() == RING_SIZE {
        ring.pop_front();
    }
    ring.push_back(entry);
    SEEN.fetch_add(1, Ordering::Relaxed);
}

/// The layer that fills the ring with every `WARN` and `ERROR` event.
pub struct RingLayer;

impl<S: Subscriber> Layer<S> for RingLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        // More verbose levels compare greater.
        if *meta.level() > Level::WARN {
            return;
        }
        let mut text = Text::default();
        event.record(&mut text);
        let mut text = if text.fields.is_empty() { text.message } else { format!("{} {}", text.message, text.fields) };
        if let Some((cut, _)) = text.char_indices().nth(MAX_TEXT) {
            text.truncate(cut);
            text.push('…');
        }
        let at_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        record(LogEntry { at_ms, level: meta.level().to_string(), target: meta.target().to_owned(), text });
    }
}

#[derive(Default)]
struct Text {
    message: String,
    fields: String,
}

impl Visit for Text {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.add(field, format_args!("{value}"));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            self.add(field, format_args!("{value:?}"));
        }
    }
}

impl Text {
    fn add(&mut self, field: &Field, value: std::fmt::Arguments<'_>) {
        if !self.fields.is_empty() {
            self.fields.push(' ');
        }
        let _ = write!(self.fields, "{}={value}", field.name());
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[test]
    fn warnings_and_errors_are_kept_with_their_fields_and_the_ring_stays_bounded() {
        let subscriber = tracing_subscriber::registry().with(RingLayer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("ring-test: not kept");
            tracing::warn!(port = 8189, addr = "198.18.0.1", "ring-test: kept");
            let kept = recent().0.last().map(|e| (e.level.clone(), e.text.clone()));
            assert_eq!(kept, Some(("WARN".into(), "ring-test: kept port=8189 addr=198.18.0.1".into())));
            for i in 0..RING_SIZE + 5 {
                tracing::error!(i, "ring-test: flood");
            }
            tracing::error!(long = %"x".repeat(2000), "ring-test: long");
        });
        let (entries, seen) = recent();
        assert_eq!(entries.len(), RING_SIZE, "bounded");
        assert!(seen >= RING_SIZE as u64 + 7);
        assert!(!entries.iter().any(|e| e.text.contains("not kept")));
        let last = entries.last().expect("an entry");
        assert_eq!(last.level, "ERROR");
        assert!(last.text.starts_with("ring-test: long long=xxx") && last.text.chars().count() == MAX_TEXT + 1);
        let flood: Vec<&LogEntry> = entries.iter().filter(|e| e.text.starts_with("ring-test: flood")).collect();
        assert_eq!(flood.last().map(|e| e.text.as_str()), Some(&*format!("ring-test: flood i={}", RING_SIZE + 4)));
    }
}

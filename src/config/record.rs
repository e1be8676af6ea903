//! `[streams.record]`: recording a stream from its encoded tees into fragmented MP4 files, and how long the
//! files are kept (docs/recording.md).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The longest segment a file may be asked to hold (a day).
pub const MAX_SEGMENT_S: u32 = 86_400;
/// The longest `keep_days` (a hundred years: "forever" is leaving it out).
pub const MAX_KEEP_DAYS: u32 = 36_500;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordConfig {
    /// Record this stream from start (default: no; the admin API starts and stops it at run time too).
    pub enabled: bool,
    /// Where its files go; default `state_dir/recordings/STREAM` (filled in at start).
    pub dir: Option<PathBuf>,
    /// A new file at the first keyframe after this many seconds (default 600).
    pub segment_s: u32,
    /// Delete a file this many days after it was last written (default: no age limit).
    pub keep_days: Option<u32>,
    /// Delete the oldest files while this stream's files take more than this many MiB (default: no limit).
    pub max_size_mb: Option<u64>,
    /// Keep this many MiB free on `dir`'s filesystem: delete this stream's oldest files, and stop
    /// recording (until there is room again) when that is not enough. Default 1024; 0: no threshold.
    pub min_free_mb: u64,
}

impl Default for RecordConfig {
    fn default() -> Self {
        Self { enabled: false, dir: None, segment_s: 600, keep_days: None, max_size_mb: None, min_free_mb: 1024 }
    }
}

/// Bytes in the MiB the `_mb` keys count.
pub const MIB: u64 = 1024 * 1024;

impl RecordConfig {
    /// The directory the files go to: `dir`, or `state_dir/recordings/STREAM`.
    pub fn dir_or_default(&self, state_dir: &Path, stream: &str) -> PathBuf {
        self.dir.clone().unwrap_or_else(|| state_dir.join("recordings").join(stream))
    }

    /// `keep_days` as a duration.
    pub fn keep(&self) -> Option<Duration> {
        self.keep_days.map(|d| Duration::from_secs(u64::from(d) * 86_400))
    }

    /// `max_size_mb` in bytes.
    pub fn max_bytes(&self) -> Option<u64> {
        self.max_size_mb.map(|m| m.saturating_mul(MIB))
    }

    /// `min_free_mb` in bytes.
    pub fn min_free_bytes(&self) -> u64 {
        self.min_free_mb.saturating_mul(MIB)
    }
}

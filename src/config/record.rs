//! `[streams.record]`: recording a stream from its encoded tees into fragmented MP4 files (issue 21, first
//! part: the files; retention, run-time control and the API come next).

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The longest segment a file may be asked to hold (a day).
pub const MAX_SEGMENT_S: u32 = 86_400;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordConfig {
    /// Record this stream (default: no).
    pub enabled: bool,
    /// Where its files go; default `state_dir/recordings/STREAM` (filled in at start).
    pub dir: Option<PathBuf>,
    /// A new file at the first keyframe after this many seconds (default 600).
    pub segment_s: u32,
}

impl Default for RecordConfig {
    fn default() -> Self {
        Self { enabled: false, dir: None, segment_s: 600 }
    }
}

impl RecordConfig {
    /// The directory the files go to: `dir`, or `state_dir/recordings/STREAM`.
    pub fn dir_or_default(&self, state_dir: &Path, stream: &str) -> PathBuf {
        self.dir.clone().unwrap_or_else(|| state_dir.join("recordings").join(stream))
    }
}

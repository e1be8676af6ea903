//! A stream's recordings directory as files: which files are glasscast's (by name), listing them, deleting
//! one, and the retention sweep (age, total size, free space; oldest first). No GStreamer here: the
//! recorder (media/tap/recorder.rs) and the admin API (http/recordings.rs) both use it.
//!
//! Only files glasscast names, `YYYYMMDDTHHMMSSZ.mp4` or `YYYYMMDDTHHMMSSZ-N.mp4`, regular files (never a
//! symlink) directly in the directory, are listed, served or deleted: whatever else is in `dir` is left
//! alone, and nothing outside it is ever touched.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// One recording, as the admin API lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FileInfo {
    /// The file's name in the stream's directory (`20261203T134501Z.mp4`).
    pub name: String,
    pub bytes: u64,
    /// Unix seconds of its first frame (from its name).
    pub started_at: u64,
    /// Unix seconds it was last written.
    pub modified_at: u64,
    /// It is the file being written now (it grows; it cannot be deleted).
    pub writing: bool,
}

/// Why retention deleted a file (the `reason` label of `glasscast_recording_files_deleted_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// Older than `keep_days`.
    Age,
    /// The stream's files took more than `max_size_mb`.
    Size,
    /// Less than `min_free_mb` was free.
    Free,
    /// The admin API (or console) deleted it.
    Api,
}

impl Why {
    pub fn as_str(self) -> &'static str {
        match self {
            Why::Age => "age",
            Why::Size => "size",
            Why::Free => "free-space",
            Why::Api => "api",
        }
    }
}

/// `keep_days`, `max_size_mb` and `min_free_mb`, in their units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    pub keep: Option<Duration>,
    pub max_bytes: Option<u64>,
    /// 0: no threshold.
    pub min_free: u64,
}

/// What a sweep did: the files it deleted, and what the stream's files take after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Swept {
    pub deleted: Vec<Deleted>,
    pub bytes: u64,
}

/// A file retention deleted, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deleted {
    pub name: String,
    pub bytes: u64,
    pub why: Why,
}

/// Why a delete was refused.
#[derive(Debug, thiserror::Error)]
pub enum DeleteError {
    #[error("no recording named `{0}`")]
    NotFound(String),
    #[error("`{0}` is being written; stop the recording first")]
    InUse(String),
    #[error("deleting `{0}`: {1}")]
    Io(String, std::io::Error),
}

/// The unix time a glasscast file name says its first frame was, or `None` for a name glasscast does not
/// make (so such a file is never listed, served or deleted).
pub fn started_at(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".mp4")?;
    let (stamp, n) = stem.split_once('-').map_or((stem, None), |(s, n)| (s, Some(n)));
    if n.is_some_and(|n| n.is_empty() || n.starts_with('0') || !n.bytes().all(|b| b.is_ascii_digit()) || n.len() > 6) {
        return None;
    }
    let b = stamp.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let digits = |r: std::ops::Range<usize>| -> Option<u64> {
        b.get(r)
            .filter(|d| d.iter().all(u8::is_ascii_digit))
            .map(|d| d.iter().fold(0, |a, c| a * 10 + u64::from(c - b'0')))
    };
    let (y, mo, d) = (digits(0..4)?, digits(4..6)?, digits(6..8)?);
    let (h, mi, s) = (digits(9..11)?, digits(11..13)?, digits(13..15)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 || y < 1970 {
        return None;
    }
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s)
}

/// Days since 1970-01-01 of a Gregorian date (Howard Hinnant's algorithm), for years from 1970.
fn days_from_civil(y: u64, m: u64, d: u64) -> u64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `20261203T134501Z` for a unix time (the inverse of [`started_at`] without the suffix).
pub fn stamp(unix: u64) -> String {
    let (days, secs) = (unix / 86_400, unix % 86_400);
    // Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z", secs / 3600, secs / 60 % 60, secs % 60)
}

/// A new file's path for a recording starting at `start`: `DIR/STAMP.mp4`, or `-2`, `-3` ... if taken.
pub fn next_path(dir: &Path, start: SystemTime) -> PathBuf {
    let stamp = stamp(start.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()));
    let mut path = dir.join(format!("{stamp}.mp4"));
    for n in 2.. {
        if !path.exists() {
            break;
        }
        path = dir.join(format!("{stamp}-{n}.mp4"));
    }
    path
}

/// The order files were made in: their start time, then their `-N`.
fn order_key(name: &str) -> (u64, u32) {
    let n = name.strip_suffix(".mp4").and_then(|s| s.split_once('-')).and_then(|(_, n)| n.parse().ok());
    (started_at(name).unwrap_or(0), n.unwrap_or(1))
}

fn unix(t: std::io::Result<SystemTime>) -> u64 {
    t.ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_secs())
}

/// glasscast's files in `dir`, oldest first; those in `open` (being written) are marked. A missing
/// directory has none.
pub fn list(dir: &Path, open: &[PathBuf]) -> Vec<FileInfo> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut out: Vec<FileInfo> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let started_at = started_at(&name)?;
            // `DirEntry::metadata` does not follow a symlink: a link named like a recording is not one.
            let meta = e.metadata().ok().filter(std::fs::Metadata::is_file)?;
            let writing = open.contains(&e.path());
            Some(FileInfo { name, bytes: meta.len(), started_at, modified_at: unix(meta.modified()), writing })
        })
        .collect();
    out.sort_by_key(|f| order_key(&f.name));
    out
}

/// The path of recording `name` in `dir`, if it is one of glasscast's files there (a regular file).
pub fn find(dir: &Path, name: &str) -> Option<PathBuf> {
    started_at(name)?;
    let path = dir.join(name);
    std::fs::symlink_metadata(&path).ok().filter(std::fs::Metadata::is_file).map(|_| path)
}

/// Deletes recording `name` from `dir` unless it is `current` (being written).
pub fn delete(dir: &Path, name: &str, current: Option<&Path>) -> Result<u64, DeleteError> {
    let path = find(dir, name).ok_or_else(|| DeleteError::NotFound(name.to_owned()))?;
    if current.is_some_and(|c| c == path) {
        return Err(DeleteError::InUse(name.to_owned()));
    }
    let bytes = std::fs::symlink_metadata(&path).map_or(0, |m| m.len());
    std::fs::remove_file(&path).map_err(|e| DeleteError::Io(name.to_owned(), e))?;
    Ok(bytes)
}

/// Applies `r` to `dir`, oldest files first, never one in `open` (being written): deletes those last written more than
/// `keep` ago, then the oldest while the files take more than `max_bytes`, then the oldest while less than
/// `min_free` is free (`free` asks the filesystem). Returns what it deleted and what is left; a file it
/// cannot delete is skipped (the next sweep tries again).
pub fn sweep(dir: &Path, r: &Retention, open: &[PathBuf], now: SystemTime, free: impl Fn() -> Option<u64>) -> Swept {
    let files = list(dir, open);
    let mut total: u64 = files.iter().map(|f| f.bytes).sum();
    let now = unix(Ok(now));
    let mut deleted = Vec::new();
    for f in files.iter().filter(|f| !f.writing) {
        let old = r.keep.is_some_and(|k| f.modified_at.saturating_add(k.as_secs()) < now);
        let big = r.max_bytes.is_some_and(|m| total > m);
        let why = if old {
            Why::Age
        } else if big {
            Why::Size
        } else if r.min_free > 0 && free().is_some_and(|b| b < r.min_free) {
            Why::Free
        } else {
            continue;
        };
        if delete(dir, &f.name, None).is_ok() {
            total = total.saturating_sub(f.bytes);
            deleted.push(Deleted { name: f.name.clone(), bytes: f.bytes, why });
        }
    }
    Swept { deleted, bytes: total }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_glasscasts_only_and_say_their_time() {
        assert_eq!(started_at("20261203T134501Z.mp4"), Some(1_796_305_501));
        assert_eq!(stamp(1_796_305_501), "20261203T134501Z");
        assert_eq!(started_at("19700101T000000Z-2.mp4"), Some(0));
        for bad in [
            "20261203T134501Z.mp4.part",
            "x20261203T134501Z.mp4",
            "20261203T134501Z-0.mp4",
            "20261203T134501Z-.mp4",
            "20261303T134501Z.mp4",
            "20261203T134501.mp4",
            "../20261203T134501Z.mp4",
            "notes.txt",
        ] {
            assert_eq!(started_at(bad), None, "{bad}");
        }
        for t in [0, 951_782_400, 1_796_305_501, 4_102_444_799] {
            assert_eq!(started_at(&format!("{}.mp4", stamp(t))), Some(t));
        }
    }

    fn file(dir: &Path, name: &str, bytes: usize, age_days: u64) {
        let path = dir.join(name);
        std::fs::write(&path, vec![0u8; bytes]).expect("write");
        let when = SystemTime::now() - Duration::from_secs(age_days * 86_400);
        std::fs::File::options().write(true).open(&path).and_then(|f| f.set_modified(when)).expect("mtime");
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut n: Vec<String> =
            std::fs::read_dir(dir).expect("dir").flatten().filter_map(|e| e.file_name().into_string().ok()).collect();
        n.sort();
        n
    }

    #[test]
    fn retention_deletes_the_oldest_of_glasscasts_files_by_age_then_size_then_free_space() {
        let d = tempfile::tempdir().expect("tempdir");
        let dir = d.path();
        file(dir, "20260101T000000Z.mp4", 100, 30);
        file(dir, "20260102T000000Z.mp4", 100, 29);
        file(dir, "20260102T000000Z-2.mp4", 100, 20);
        file(dir, "20260103T000000Z.mp4", 100, 1);
        file(dir, "20260104T000000Z.mp4", 100, 0);
        file(dir, "notes.txt", 5000, 400);
        file(dir, "20250101T000000Z.mkv", 5000, 400);
        std::os::unix::fs::symlink("/etc/hostname", dir.join("20250101T000000Z.mp4")).expect("symlink");
        let current = dir.join("20260104T000000Z.mp4");
        let r = Retention { keep: Some(Duration::from_secs(25 * 86_400)), max_bytes: Some(250), min_free: 0 };
        let swept = sweep(dir, &r, std::slice::from_ref(&current), SystemTime::now(), || None);
        assert_eq!(swept.bytes, 200, "the two left");
        let why: Vec<_> = swept.deleted.iter().map(|g| (g.name.as_str(), g.why)).collect();
        assert_eq!(
            why,
            [
                ("20260101T000000Z.mp4", Why::Age),
                ("20260102T000000Z.mp4", Why::Age),
                ("20260102T000000Z-2.mp4", Why::Size)
            ]
        );
        // What is not glasscast's stays, and the file being written is never deleted.
        assert_eq!(
            names(dir),
            [
                "20250101T000000Z.mkv",
                "20250101T000000Z.mp4",
                "20260103T000000Z.mp4",
                "20260104T000000Z.mp4",
                "notes.txt"
            ]
        );
        let free = std::cell::Cell::new(0u64);
        let r = Retention { min_free: 1000, ..Retention::default() };
        let gone = sweep(dir, &r, std::slice::from_ref(&current), SystemTime::now(), || Some(free.replace(2000)));
        assert_eq!(
            gone.deleted.iter().map(|g| (g.name.as_str(), g.why)).collect::<Vec<_>>(),
            [("20260103T000000Z.mp4", Why::Free)]
        );
        assert!(matches!(delete(dir, "20260104T000000Z.mp4", Some(&current)), Err(DeleteError::InUse(_))));
        assert!(matches!(delete(dir, "20250101T000000Z.mp4", None), Err(DeleteError::NotFound(_))), "a symlink");
        assert!(matches!(delete(dir, "../x/20260104T000000Z.mp4", None), Err(DeleteError::NotFound(_))));
        assert_eq!(list(dir, std::slice::from_ref(&current)).iter().map(|f| f.writing).collect::<Vec<_>>(), [true]);
    }
}

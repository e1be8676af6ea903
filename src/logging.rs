//! Logging: tracing to stderr (human on a terminal, JSON otherwise: journald under systemd, a container's
//! log driver) and, when `log.file` is set, to a file rotated by size. Each stream and session has its own
//! span fields (`stream`, `session`, `client`; never a token), so one viewer's life can be followed from its
//! POST to its end with `journalctl -u glasscast | grep SESSION_ID` or a JSON query. The last warnings and
//! errors are also kept in memory for the admin console ([`ring`]).

use std::io::IsTerminal;
use std::sync::Mutex;

use file_rotate::suffix::AppendCount;
use file_rotate::{ContentLimit, FileRotate, compression::Compression};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, fmt};

use crate::config::{LogConfig, LogFormat};

pub mod ring;

/// A writer for `log.file`: appends, and once the file reaches `file_max_bytes` renames it `FILE.1` (older
/// ones `FILE.2` ...), keeping `file_keep` of them.
pub fn rotating_file(cfg: &LogConfig) -> std::io::Result<Option<Mutex<FileRotate<AppendCount>>>> {
    let Some(path) = &cfg.file else { return Ok(None) };
    // Fail here with the path in the error, not inside file-rotate (which panics on a directory it
    // cannot create and silently drops lines for a file it cannot open).
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    // 0600, like every file glasscast keeps (a log names clients' addresses and sessions); the files it
    // rotates to are renamed, and a new one is made the same way.
    crate::state::private_file(path)?;
    let limit = ContentLimit::BytesSurpassed(usize::try_from(cfg.file_max_bytes).unwrap_or(usize::MAX));
    let open = Some(crate::state::private_append());
    Ok(Some(Mutex::new(FileRotate::new(path, AppendCount::new(cfg.file_keep), limit, Compression::None, open))))
}

/// Installs the process's subscriber. `RUST_LOG` overrides `log.filter`.
pub fn init(cfg: &LogConfig) -> std::io::Result<()> {
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&cfg.filter));
    let json = match cfg.format {
        LogFormat::Json => true,
        LogFormat::Human => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let stderr = fmt::layer().with_writer(std::io::stderr);
    let stderr = if json { stderr.json().boxed() } else { stderr.boxed() };
    // The file is for machines and for grep: JSON unless `human` was asked for.
    let file = rotating_file(cfg)?.map(|w| {
        let layer = fmt::layer().with_ansi(false).with_writer(w);
        if cfg.format == LogFormat::Human { layer.boxed() } else { layer.json().boxed() }
    });
    tracing_subscriber::registry()
        .with(stderr.with_filter(filter()))
        .with(file.map(|l| l.with_filter(filter())))
        .with(ring::RingLayer.with_filter(filter()))
        .init();
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn the_file_rotates_by_size_and_keeps_n() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("logs/glasscast.log");
        let cfg = LogConfig { file: Some(path.clone()), file_max_bytes: 4096, file_keep: 2, ..LogConfig::default() };
        let w = rotating_file(&cfg).expect("opens").expect("configured");
        let line = [b'x'; 1000];
        for _ in 0..20 {
            let mut f = w.lock().expect("lock");
            f.write_all(&line).expect("write");
            f.write_all(b"\n").expect("write");
        }
        let mut names: Vec<String> = std::fs::read_dir(path.parent().expect("parent"))
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["glasscast.log", "glasscast.log.1", "glasscast.log.2"]);
        for n in &names {
            use std::os::unix::fs::PermissionsExt;
            let meta = std::fs::metadata(dir.path().join("logs").join(n)).expect("meta");
            assert!(meta.len() <= 4096 + 1001, "{n}: {} bytes", meta.len());
            assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{n} is the owner's only");
        }
    }

    #[test]
    fn a_log_file_made_by_someone_else_first_is_made_the_owners_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("glasscast.log");
        std::fs::write(&path, b"older lines\n").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let cfg = LogConfig { file: Some(path.clone()), ..LogConfig::default() };
        rotating_file(&cfg).expect("opens").expect("configured");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read(&path).expect("read"), b"older lines\n", "appended to, not truncated");
    }

    /// The query docs/operations.md gives (`jq 'select(.span.session == ID)'`) finds a line logged, as the
    /// session manager does, with the session's span as explicit parent outside it.
    #[test]
    fn json_lines_carry_the_session_span_given_as_parent() {
        #[derive(Clone, Default)]
        struct Buf(std::sync::Arc<Mutex<Vec<u8>>>);
        impl Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().expect("lock").extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::registry()
            .with(fmt::layer().json().with_writer(move || writer.clone()).with_filter(EnvFilter::new("info")));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("session", session = "abc123", stream = "main", client = "10.0.0.2:5000");
            tracing::info!(parent: &span, "viewer connected");
        });
        let text = String::from_utf8(buf.0.lock().expect("lock").clone()).expect("utf-8");
        let line: serde_json::Value = serde_json::from_str(text.lines().next().expect("a line")).expect("json");
        assert_eq!(line["span"]["session"], "abc123", "{text}");
        assert_eq!(line["span"]["stream"], "main");
    }

    #[test]
    fn an_unusable_path_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, "").expect("write");
        let cfg = LogConfig { file: Some(blocker.join("sub/glasscast.log")), ..LogConfig::default() };
        assert!(rotating_file(&cfg).is_err());
    }
}

//! The state directory's files: private (0600 files, 0700 directories) and replaced atomically.

use std::io::Write;
use std::path::Path;

use anyhow::Context;

/// Writes `data` to `path` atomically: a temporary file in the same directory, fsync, rename. A crash leaves
/// the old file or the new one, never half of one.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().context("path has a parent")?;
    let mut tmp =
        tempfile::NamedTempFile::new_in(dir).with_context(|| format!("creating a file in {}", dir.display()))?;
    tmp.as_file().set_permissions(std::fs::Permissions::from_mode(mode))?;
    tmp.write_all(data)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).with_context(|| format!("renaming into {}", path.display()))?;
    // The rename is in the directory: without syncing it, a power loss can bring back the old file (a
    // revocation or a new key lost although the call returned).
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing the directory {}", dir.display()))?;
    Ok(())
}

/// Creates `dir` (and its parents) if missing; `dir` itself is made 0700.
/// Options that open `path` for appending and make it, if it is not there, readable by its owner only
/// (0600; an existing file keeps its mode).
pub fn private_append() -> std::fs::OpenOptions {
    use std::os::unix::fs::OpenOptionsExt;
    let mut o = std::fs::OpenOptions::new();
    o.read(true).create(true).append(true).mode(0o600);
    o
}

/// Makes `path` an empty file readable by its owner only (0600), or makes an existing one so, for a writer
/// (a GStreamer filesink) that would create it by the umask (0644).
pub fn private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    private_append().open(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

pub fn private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("making {} private", dir.display()))?;
    Ok(())
}

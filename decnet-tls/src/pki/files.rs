//! Atomic, permission-aware file writes for keys and certificates.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

/// Writes a private file (mode 0600) atomically: see [`write_file_atomic`].
pub fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    write_file_atomic(path, contents, 0o600)
}

/// Writes `contents` to `path` atomically with permission bits `mode`: a temporary file in the
/// same directory (created with `mode`, never wider), fsync, rename over `path`, fsync of the
/// directory. A reader sees the old file or the new one, never a partial or wider-permission
/// one. A missing parent directory is created with mode 0700 (an existing one is left as it
/// is).
pub fn write_file_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let file_name = path
        .file_name()
        .ok_or_else(|| {
            Error::io(
                "write",
                path,
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "path has no file name"),
            )
        })?
        .to_string_lossy()
        .into_owned();
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| Error::io("create dir", &dir, e))?;
    }
    let tmp = dir.join(format!(
        ".{file_name}.tmp.{}.{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = write_then_rename(&tmp, path, contents, mode);
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    // Make the rename durable; failure to sync a directory is not worth failing the write.
    if let Ok(d) = fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn write_then_rename(tmp: &Path, path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(tmp)
        .map_err(|e| Error::io("create", tmp, e))?;
    // The umask may only narrow `mode`; set it exactly.
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io("chmod", tmp, e))?;
    file.write_all(contents)
        .map_err(|e| Error::io("write", tmp, e))?;
    file.sync_all().map_err(|e| Error::io("fsync", tmp, e))?;
    drop(file);
    fs::rename(tmp, path).map_err(|e| Error::io("rename", path, e))
}

//! `decnet backup` and `decnet restore`: the master's data dir — CA, master certificate and
//! keys, the admin token, the unihost state and spools — and its store, consistent while the
//! master runs.
//!
//! - Files are copied as they are (the master writes each one atomically, so a copy is an old
//!   or a new version, never half of one), keeping their modes (secrets stay 0600).
//! - A SQLite store is copied with `VACUUM INTO` (one read transaction, while the master
//!   writes through WAL). A PostgreSQL store is backed up with `pg_dump`: the backup says so.
//! - The backup is written to `<out>.partial` and renamed when whole, with a manifest
//!   (`backup.json`) that `restore` checks first.
//! - `restore` refuses a non-empty data dir without `--force`, checks the CA and the master
//!   certificate before copying anything, and removes a stale `-wal`/`-shm` and `master.json`.
//!   The restored master has the same CA, master certificate and pinned worker fingerprints:
//!   every enrolled worker keeps trusting it, and it them.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::cli::{BackupArgs, RestoreArgs};
use crate::error::CliError;
use crate::master::layout::DataDir;

/// The manifest's file name.
pub const MANIFEST: &str = "backup.json";
/// The manifest format this build writes and reads.
pub const FORMAT: u32 = 1;
/// The store's file name inside a backup (SQLite).
pub const STORE_FILE: &str = "decnet.db";

/// What a backup holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: u32,
    pub decnet_version: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// SHA-256 of the CA certificate (what enrolled workers pin).
    pub ca_fingerprint: String,
    /// `sqlite` (the store is `decnet.db` in the backup) or `postgres` (not included: use
    /// `pg_dump`).
    pub store: String,
    /// The data dir's files, relative to it.
    pub files: Vec<String>,
}

/// Files of a data dir that are not copied: the store (copied by `VACUUM INTO`), its WAL,
/// the running master's address and spool locks.
fn skipped(rel: &Path) -> bool {
    let name = rel.file_name().and_then(|n| n.to_str()).unwrap_or("");
    matches!(
        name,
        "decnet.db" | "decnet.db-wal" | "decnet.db-shm" | "master.json" | "lock"
    ) || name.ends_with(".tmp")
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let kind = e.file_type()?;
        if kind.is_dir() {
            walk(root, &path, out)?;
        } else if kind.is_file() {
            let rel = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
            if !skipped(&rel) {
                out.push(rel);
            }
        }
    }
    Ok(())
}

/// Copies `from` to `to` (creating its parents 0700) with `from`'s mode.
fn copy_file(from: &Path, to: &Path) -> anyhow::Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .with_context(|| format!("create {}", parent.display()))?;
    }
    let mode = std::fs::metadata(from)
        .with_context(|| format!("stat {}", from.display()))?
        .permissions()
        .mode()
        & 0o777;
    std::fs::copy(from, to)
        .with_context(|| format!("copy {} to {}", from.display(), to.display()))?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", to.display()))?;
    Ok(())
}

fn is_empty_dir(path: &Path) -> Result<bool, std::io::Error> {
    Ok(std::fs::read_dir(path)?.next().is_none())
}

fn db_url(layout: &DataDir, db: Option<&str>) -> String {
    db.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| layout.default_db_url())
}

/// `decnet backup --out DIR`.
pub async fn backup(
    data_dir: &Path,
    args: &BackupArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let layout = DataDir::new(data_dir);
    let field = |rule: &str| CliError::usage(format!("--data-dir {}: {rule}", data_dir.display()));
    if !data_dir.is_dir() {
        return Err(field(
            "not a directory (run `decnet init` first, or pass --data-dir)",
        ));
    }
    let ca_pem = std::fs::read_to_string(layout.ca_cert())
        .map_err(|e| field(&format!("ca.crt: {e}; not a master's data dir")))?;
    let ca_fingerprint =
        decnet_tls::pki::fingerprint_pem(&ca_pem).map_err(|e| field(&format!("ca.crt: {e}")))?;
    let dest = &args.out;
    if dest.exists() && !(dest.is_dir() && is_empty_dir(dest).unwrap_or(false)) {
        return Err(CliError::usage(format!(
            "--out {}: exists and is not an empty directory; back up into a new one",
            dest.display()
        )));
    }
    let url = db_url(&layout, args.db.as_deref());
    let store = if url.starts_with("sqlite:") {
        "sqlite"
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        "postgres"
    } else {
        return Err(CliError::usage(format!(
            "--db {}: expected sqlite://<path> or postgres://…",
            decnet_store::redact(&url)
        )));
    };
    let partial = PathBuf::from(format!("{}.partial", dest.display()));
    if partial.exists() {
        std::fs::remove_dir_all(&partial)
            .with_context(|| format!("remove the leftover {}", partial.display()))?;
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&partial)
        .map_err(|e| CliError::usage(format!("--out {}: cannot create: {e}", dest.display())))?;
    let mut files = Vec::new();
    walk(data_dir, data_dir, &mut files).with_context(|| format!("read {}", data_dir.display()))?;
    for rel in &files {
        copy_file(&data_dir.join(rel), &partial.join(rel))?;
    }
    if store == "sqlite" {
        decnet_store::backup_sqlite(&url, &partial.join(STORE_FILE))
            .await
            .map_err(|e| CliError::Failed(e.into()))?;
    }
    let manifest = Manifest {
        format: FORMAT,
        decnet_version: env!("CARGO_PKG_VERSION").to_string(),
        created_at: chrono::Utc::now(),
        ca_fingerprint,
        store: store.to_string(),
        files: files
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect(),
    };
    let text = serde_json::to_string_pretty(&manifest).context("encode the manifest")?;
    decnet_tls::pki::write_file_atomic(&partial.join(MANIFEST), text.as_bytes(), 0o600)
        .map_err(|e| CliError::Failed(anyhow::anyhow!("{e}")))?;
    if dest.exists() {
        std::fs::remove_dir(dest).with_context(|| format!("replace {}", dest.display()))?;
    }
    std::fs::rename(&partial, dest)
        .with_context(|| format!("rename {} to {}", partial.display(), dest.display()))?;
    writeln!(
        out,
        "backed up {} files of {} to {} (CA fingerprint {})",
        manifest.files.len(),
        data_dir.display(),
        dest.display(),
        manifest.ca_fingerprint
    )
    .context("write")?;
    match store {
        "sqlite" => writeln!(
            out,
            "store: {} copied online (VACUUM INTO)",
            decnet_store::redact(&url)
        ),
        _ => writeln!(
            out,
            "store: PostgreSQL is not in this backup; dump it with PostgreSQL's own tool: \
             pg_dump --format=custom --file={}/decnet.pgdump '{}'",
            dest.display(),
            decnet_store::redact(&url)
        ),
    }
    .context("write")?;
    Ok(())
}

/// Reads and checks a backup's manifest and its files; errors name `--from`.
pub fn read_backup(from: &Path) -> Result<Manifest, CliError> {
    let bad = |rule: String| CliError::usage(format!("--from {}: {rule}", from.display()));
    if !from.is_dir() {
        return Err(bad("not a directory".into()));
    }
    let text = std::fs::read_to_string(from.join(MANIFEST))
        .map_err(|e| bad(format!("{MANIFEST}: {e}; not a `decnet backup`")))?;
    let manifest: Manifest =
        serde_json::from_str(&text).map_err(|e| bad(format!("{MANIFEST}: {e}")))?;
    if manifest.format != FORMAT {
        return Err(bad(format!(
            "{MANIFEST} format {} is not the format {FORMAT} this decnet reads",
            manifest.format
        )));
    }
    for rel in &manifest.files {
        let p = Path::new(rel);
        if p.is_absolute()
            || p.components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(bad(format!("{MANIFEST} files: {rel:?} leaves the backup")));
        }
        if !from.join(p).is_file() {
            return Err(bad(format!("{rel}: listed in {MANIFEST} but missing")));
        }
    }
    if manifest.store == "sqlite" && !from.join(STORE_FILE).is_file() {
        return Err(bad(format!("{STORE_FILE}: missing (the store)")));
    }
    if manifest.store != "sqlite" && manifest.store != "postgres" {
        return Err(bad(format!(
            "{MANIFEST} store {:?}: must be sqlite or postgres",
            manifest.store
        )));
    }
    // The CA and the master certificate must be whole and belong together.
    let read = |name: &str| {
        std::fs::read_to_string(from.join(name)).map_err(|e| bad(format!("{name}: {e}")))
    };
    let (ca_crt, ca_key) = (read("ca.crt")?, read("ca.key")?);
    let ca = decnet_tls::pki::Ca::load(&ca_crt, &ca_key)
        .map_err(|e| bad(format!("ca.crt / ca.key: not a usable CA: {e}")))?;
    if ca.fingerprint() != manifest.ca_fingerprint {
        return Err(bad(format!(
            "ca.crt: fingerprint {} is not the manifest's {}",
            ca.fingerprint(),
            manifest.ca_fingerprint
        )));
    }
    let (m_crt, m_key) = (read("master.crt")?, read("master.key")?);
    super::init::check_master_cert(&ca, &m_crt, &m_key, std::time::SystemTime::now())
        .map_err(|e| bad(format!("master.crt: {e}")))?;
    Ok(manifest)
}

/// `decnet restore --from DIR [--force]` into the data dir.
pub async fn restore(
    data_dir: &Path,
    args: &RestoreArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let from = &args.from;
    let manifest = read_backup(from)?;
    if data_dir.exists() {
        if !data_dir.is_dir() {
            return Err(CliError::usage(format!(
                "--data-dir {}: not a directory",
                data_dir.display()
            )));
        }
        let empty = is_empty_dir(data_dir)
            .map_err(|e| CliError::usage(format!("--data-dir {}: {e}", data_dir.display())))?;
        if !empty && !args.force {
            return Err(CliError::usage(format!(
                "--data-dir {}: not empty; restore into an empty or new directory, or pass \
                 --force to overwrite what the backup holds",
                data_dir.display()
            )));
        }
    }
    super::init::create_private_dir(data_dir)?;
    let layout = DataDir::new(data_dir);
    // What a previous master left would not match the restored store.
    for stale in ["decnet.db-wal", "decnet.db-shm", "master.json"] {
        let p = data_dir.join(stale);
        if p.exists() {
            std::fs::remove_file(&p).with_context(|| format!("remove {}", p.display()))?;
        }
    }
    for rel in &manifest.files {
        copy_file(&from.join(rel), &data_dir.join(rel))?;
    }
    let mut hosts = None;
    if manifest.store == "sqlite" {
        let db = layout.sqlite_path();
        let tmp = data_dir.join("decnet.db.restore.tmp");
        copy_file(&from.join(STORE_FILE), &tmp)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("chmod {}", tmp.display()))?;
        std::fs::rename(&tmp, &db).with_context(|| format!("rename to {}", db.display()))?;
        // Opening migrates it to this build's schema and proves it reads.
        let repo = decnet_store::open(&layout.default_db_url())
            .await
            .map_err(|e| CliError::Failed(e.into()))?;
        hosts = Some(
            repo.hosts()
                .await
                .map_err(|e| CliError::Failed(anyhow::anyhow!("{e}")))?
                .len(),
        );
    }
    writeln!(
        out,
        "restored {} files of the backup made {} into {} (CA fingerprint {})",
        manifest.files.len(),
        manifest.created_at.format("%Y-%m-%d %H:%M:%S UTC"),
        data_dir.display(),
        manifest.ca_fingerprint
    )
    .context("write")?;
    match hosts {
        Some(n) => writeln!(
            out,
            "store: {} ({n} enrolled hosts keep their pinned certificates)",
            layout.sqlite_path().display()
        ),
        None => writeln!(
            out,
            "store: PostgreSQL is not in the backup; restore it with pg_restore and start the \
             master with the same --db"
        ),
    }
    .context("write")?;
    writeln!(
        out,
        "next: decnet serve --data-dir {} (on the swarm address the workers know)",
        data_dir.display()
    )
    .context("write")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_files_are_not_copied() {
        for (p, skip) in [
            ("decnet.db", true),
            ("decnet.db-wal", true),
            ("master.json", true),
            ("attacks/master-spool/lock", true),
            ("ca.key", false),
            ("attacks/master-spool/00000001.seg", false),
            ("host-id", false),
        ] {
            assert_eq!(skipped(Path::new(p)), skip, "{p}");
        }
    }
}

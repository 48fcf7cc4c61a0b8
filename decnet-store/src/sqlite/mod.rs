//! The store on SQLite: one file, WAL journal, `busy_timeout` 5 s, foreign keys on,
//! `synchronous = NORMAL`. Every compare-and-set is one statement (no read-then-write
//! transaction, which SQLite may fail at once with SQLITE_BUSY whatever the busy timeout).
//!
//! Times are stored as fixed-width RFC 3339 text with microseconds, UUIDs as lowercase text.
//!
//! The database holds host addresses, token hashes and the desired fleet: the file and its
//! `-wal`/`-shm` companions are owner-only (0600). A missing file is created 0600 before
//! SQLite opens it (SQLite gives `-wal` and `-shm` the database file's mode); existing files
//! with group or other bits (an older release made them 0644) are tightened at every open.

use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::{migrations, redact, StoreError};

/// Connections in the pool: readers run side by side under WAL; writers queue on the lock.
const MAX_CONNECTIONS: u32 = 8;
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The [`Repository`](decnet_core::traits::Repository) on a SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteRepository {
    pool: SqlitePool,
}

impl SqliteRepository {
    /// Opens (creating it if missing) the database at a `sqlite://<path>` URL and migrates
    /// it. In-memory databases are refused: each pooled connection would get its own.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        if url.contains(":memory:") || url.contains("mode=memory") {
            return Err(StoreError::InMemory(url.to_string()));
        }
        let options = SqliteConnectOptions::from_str(url).map_err(|source| StoreError::Url {
            url: redact(url),
            source,
        })?;
        Self::open_with(options, url).await
    }

    /// Opens (creating it if missing) the database file at `path` and migrates it.
    pub async fn open_path(path: &Path) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new().filename(path);
        Self::open_with(options, &path.display().to_string()).await
    }

    async fn open_with(options: SqliteConnectOptions, what: &str) -> Result<Self, StoreError> {
        let path = options.get_filename().to_path_buf();
        secure_files(&path)?;
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Connect {
                url: redact(what),
                source,
            })?;
        let migrate = |source| StoreError::Migrate {
            url: redact(what),
            source,
        };
        migrations::migrator(migrations::SQLITE)
            .await
            .map_err(migrate)?
            .run(&pool)
            .await
            .map_err(migrate)?;
        // The connection and the migrations created `-wal` and `-shm` from the file's mode;
        // check again so nothing is left readable whatever happened in between.
        secure_files(&path)?;
        tracing::debug!(store = %redact(what), "sqlite store open");
        Ok(Self { pool })
    }

    /// The connection pool (for diagnostics and tests).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

/// Only the owner may read or write the database file and its companions.
const DB_MODE: u32 = 0o600;

/// Creates the database file `path` with mode 0600 when it is missing, and takes the group
/// and other bits off it and off its `-wal` and `-shm` files when they have any.
fn secure_files(path: &Path) -> Result<(), StoreError> {
    if path.as_os_str().is_empty() {
        return Ok(());
    }
    let io_err = |path: &Path| {
        let path = path.display().to_string();
        move |source| StoreError::Permissions { path, source }
    };
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(DB_MODE)
        .open(path)
    {
        Ok(_) => tracing::debug!(path = %path.display(), "sqlite file created 0600"),
        // Exists already (tightened below), or its directory is missing: SQLite reports that.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err(path)(e)),
    }
    for file in [
        path.to_path_buf(),
        companion(path, "-wal"),
        companion(path, "-shm"),
    ] {
        let mode = match std::fs::metadata(&file) {
            Ok(meta) => meta.permissions().mode() & 0o777,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err(&file)(e)),
        };
        if mode & 0o077 != 0 {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(DB_MODE))
                .map_err(io_err(&file))?;
            tracing::info!(path = %file.display(), from = %format!("{mode:o}"), "sqlite file tightened to 0600");
        }
    }
    Ok(())
}

/// `<path><suffix>`, as SQLite names the `-wal` and `-shm` files.
fn companion(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

mod codec;
mod repository;

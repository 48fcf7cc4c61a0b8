//! The store on SQLite: one file, WAL journal, `busy_timeout` 5 s, foreign keys on,
//! `synchronous = NORMAL`. Every compare-and-set is one statement (no read-then-write
//! transaction, which SQLite may fail at once with SQLITE_BUSY whatever the busy timeout).
//!
//! Times are stored as fixed-width RFC 3339 text with microseconds, UUIDs as lowercase text.

use std::path::Path;
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
        tracing::debug!(store = %redact(what), "sqlite store open");
        Ok(Self { pool })
    }

    /// The connection pool (for diagnostics and tests).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

mod codec;
mod repository;

//! # decnet-store
//!
//! The master's one authoritative store: [`decnet_core::traits::Repository`] over sqlx, on
//! SQLite (a file, WAL) or PostgreSQL. Queries are checked at run time (`sqlx::query` with
//! `.bind`), so building needs no database. Each backend has its own migration set, embedded in
//! the binary and applied at open. Both pass `decnet_core::testkit::repository_conformance`.
//!
//! Compare-and-set (lifecycle transitions, token consumption, heartbeat observations) is one
//! conditional `UPDATE` per attempt, followed by a read only to classify an update that did
//! not apply; SQLite never sees a read-then-write transaction.
//!
//! ```no_run
//! # async fn demo() -> Result<(), decnet_store::StoreError> {
//! let repo = decnet_store::open("sqlite:///var/lib/decnet/master.db").await?;
//! let hosts = repo.hosts().await;
//! # Ok(()) }
//! ```

mod attacks;
mod backup;
mod common;
mod migrations;
mod postgres;
mod sqlite;

use std::sync::Arc;

use decnet_core::traits::Repository;

pub use backup::backup_sqlite;
pub use postgres::PgRepository;
pub use sqlite::SqliteRepository;

/// Why a store could not be opened. URLs in messages have their password replaced by `***`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported store url {0:?}: expected sqlite://<path> or postgres://…")]
    UnsupportedUrl(String),
    #[error(
        "store url {0:?}: an in-memory SQLite database is not shared between pooled \
         connections; use a file (sqlite://<path>)"
    )]
    InMemory(String),
    #[error("store url {url:?}: {source}")]
    Url {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("open store {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("secure store file {path} (mode 0600): {source}")]
    Permissions {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("back up store {url}: {source}")]
    Backup {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("migrate store {url}: {source}")]
    Migrate {
        url: String,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
}

/// How long a backup waits for a writer to let go of the database.
const BUSY_TIMEOUT_FOR_BACKUP: std::time::Duration = std::time::Duration::from_secs(30);

/// Opens the store at `url` and brings its schema up to date:
/// - `sqlite://<path>` (or `sqlite:<path>`): the file is created if missing; it, its `-wal`
///   and its `-shm` are owner-only (0600, tightened at open when wider); journal WAL,
///   `busy_timeout` 5 s, foreign keys on, `synchronous = NORMAL`. In-memory URLs are refused.
/// - `postgres://…` / `postgresql://…`: no TLS (a local socket or loopback).
pub async fn open(url: &str) -> Result<Arc<dyn Repository>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteRepository::open(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PgRepository::open(url).await?))
    } else {
        Err(StoreError::UnsupportedUrl(redact(url)))
    }
}

/// `url` with the password of its user info (if any) replaced by `***`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_string();
    };
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        let cases = [
            (
                "postgres://decnet:s3cr%40t@127.0.0.1:5432/db?sslmode=disable",
                "postgres://decnet:***@127.0.0.1:5432/db?sslmode=disable",
            ),
            (
                "postgres://decnet@localhost/db",
                "postgres://decnet@localhost/db",
            ),
            ("postgres://localhost/db@x", "postgres://localhost/db@x"),
            (
                "sqlite:///var/lib/decnet/master.db",
                "sqlite:///var/lib/decnet/master.db",
            ),
            ("sqlite:master.db", "sqlite:master.db"),
        ];
        for (url, expect) in cases {
            assert_eq!(redact(url), expect, "{url}");
        }
    }

    #[tokio::test]
    async fn unsupported_and_in_memory_urls_are_refused() {
        let err = open("mysql://root@localhost/db").await.err().unwrap();
        assert!(matches!(err, StoreError::UnsupportedUrl(_)), "{err}");
        for url in ["sqlite::memory:", "sqlite://?mode=memory"] {
            let err = open(url).await.err().unwrap();
            assert!(matches!(err, StoreError::InMemory(_)), "{url}: {err}");
            assert!(err.to_string().contains("use a file"), "{err}");
        }
    }
}

//! Online backup of a SQLite store: `VACUUM INTO` writes a consistent copy (one read
//! transaction) while the master keeps writing through WAL. PostgreSQL stores are backed up
//! with PostgreSQL's own `pg_dump` (docs/operations.md).

use std::path::Path;
use std::str::FromStr;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

use crate::{redact, StoreError, BUSY_TIMEOUT_FOR_BACKUP};

/// Copies the SQLite database at `url` (`sqlite://<path>`) into the new file `dest` (which
/// must not exist), consistently, while other connections write; `dest` is made 0600.
pub async fn backup_sqlite(url: &str, dest: &Path) -> Result<(), StoreError> {
    if !url.starts_with("sqlite:") {
        return Err(StoreError::UnsupportedUrl(redact(url)));
    }
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|source| StoreError::Url {
            url: redact(url),
            source,
        })?
        .create_if_missing(false)
        .busy_timeout(BUSY_TIMEOUT_FOR_BACKUP);
    let failed = |source| StoreError::Backup {
        url: redact(url),
        source,
    };
    let mut conn = options.connect().await.map_err(failed)?;
    sqlx::query("VACUUM INTO ?")
        .bind(dest.to_string_lossy().into_owned())
        .execute(&mut conn)
        .await
        .map_err(failed)?;
    conn.close().await.map_err(failed)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dest, std::fs::Permissions::from_mode(0o600)).map_err(|source| {
        StoreError::Permissions {
            path: dest.display().to_string(),
            source,
        }
    })?;
    Ok(())
}

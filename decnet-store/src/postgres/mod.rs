//! The store on PostgreSQL (15 and later): `timestamptz` times, `uuid` ids, names in the "C"
//! collation. Every compare-and-set is one statement; no transaction reads before it writes.

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::{migrations, redact, StoreError};

const MAX_CONNECTIONS: u32 = 10;

/// The [`Repository`](decnet_core::traits::Repository) on a PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PgRepository {
    pool: PgPool,
}

impl PgRepository {
    /// Connects to a `postgres://` URL and migrates the database (under sqlx's advisory lock,
    /// so concurrent openers are safe). No TLS: use a local socket or loopback.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url).map_err(|source| StoreError::Url {
            url: redact(url),
            source,
        })?;
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Connect {
                url: redact(url),
                source,
            })?;
        let migrate = |source| StoreError::Migrate {
            url: redact(url),
            source,
        };
        migrations::migrator(migrations::POSTGRES)
            .await
            .map_err(migrate)?
            .run(&pool)
            .await
            .map_err(migrate)?;
        tracing::debug!(store = %redact(url), "postgres store open");
        Ok(Self { pool })
    }

    /// The connection pool (for diagnostics and tests).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

mod codec;
mod repository;

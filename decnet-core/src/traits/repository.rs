//! `Repository`: the master's one authoritative store (hosts, shards, lifecycle rows, the
//! desired fleet). This is the first cut; the store issue grows it, with an in-memory fake and
//! one conformance suite for every backend.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::model::{
    DecnetConfig, Host, HostUuid, LifecycleRow, LifecycleStatus, Shard, TransitionError,
};

/// Store errors.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("{0} already exists")]
    Conflict(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error("store: {0}")]
    Backend(String),
}

/// The master's store.
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
#[async_trait::async_trait]
pub trait Repository: Send + Sync {
    /// Adds a host; `Conflict` when its name or uuid is taken.
    async fn insert_host(&self, host: &Host) -> Result<(), RepoError>;
    async fn host(&self, uuid: HostUuid) -> Result<Option<Host>, RepoError>;
    async fn hosts(&self) -> Result<Vec<Host>, RepoError>;
    /// Removes a host and its shards; `false` when there was none.
    async fn delete_host(&self, uuid: HostUuid) -> Result<bool, RepoError>;

    /// The fleet the operator asked for.
    async fn desired_fleet(&self) -> Result<Option<DecnetConfig>, RepoError>;
    async fn put_desired_fleet(&self, config: &DecnetConfig) -> Result<(), RepoError>;

    /// Inserts or replaces the shard keyed by `(host_uuid, decky_name)`.
    async fn upsert_shard(&self, shard: &Shard) -> Result<(), RepoError>;
    /// Shards of one host, or of every host.
    async fn shards(&self, host: Option<HostUuid>) -> Result<Vec<Shard>, RepoError>;

    async fn create_lifecycle(&self, row: &LifecycleRow) -> Result<(), RepoError>;
    /// The rows with these ids, oldest first; unknown ids are omitted.
    async fn lifecycle_rows(&self, ids: &[Uuid]) -> Result<Vec<LifecycleRow>, RepoError>;
    /// Compare-and-set under [`crate::model::check_transition`]; returns the row after it.
    async fn transition_lifecycle(
        &self,
        id: Uuid,
        to: LifecycleStatus,
        error: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<LifecycleRow, RepoError>;
}

//! `Repository`: the master's one authoritative store — hosts, revoked certificates, tokens,
//! the desired fleet, shards and lifecycle rows. Compare-and-set rules live in the model
//! (`check_transition`, `ShardState::is_transitional`) so every backend applies the same ones;
//! `crate::testkit::repository_conformance` runs the same suite against each backend.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::agent::BoxError;
use crate::model::attack::{AttackEvent, AttackQuery, AttackerProfile};
use crate::model::{
    ApiToken, DeckyName, DecnetConfig, EnrollToken, Host, HostName, HostUuid, LifecycleRow,
    LifecycleStatus, Operation, Shard, ShardState, TransitionError,
};

/// Store errors, by kind.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RepoError {
    #[error("{0} already exists")]
    /// A row with this key already exists (host uuid, name or fingerprint; token; lifecycle id).
    Conflict(String),
    #[error("{0} not found")]
    /// The row the operation names does not exist.
    NotFound(String),
    #[error(transparent)]
    /// A lifecycle transition the rules refuse.
    Transition(#[from] TransitionError),
    #[error("store: {message}")]
    /// The backend failed (I/O, SQL, a corrupt row).
    Backend {
        /// What failed, with the backend's text.
        message: String,
        /// The underlying error, when there is one.
        #[source]
        source: Option<BoxError>,
    },
}

impl RepoError {
    /// A backend failure described by `message`.
    pub fn backend(message: impl Into<String>) -> Self {
        RepoError::Backend {
            message: message.into(),
            source: None,
        }
    }

    /// A backend failure while doing `what`, caused by `e` (kept as the source).
    pub fn backend_from(what: &str, e: impl std::error::Error + Send + Sync + 'static) -> Self {
        RepoError::Backend {
            message: format!("{what}: {e}"),
            source: Some(Box::new(e)),
        }
    }
}

/// What a heartbeat says it saw of one decky.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedShard {
    /// The host that sent the heartbeat.
    pub host_uuid: HostUuid,
    /// The decky the heartbeat speaks for.
    pub decky_name: DeckyName,
    /// `Running` or `Degraded`.
    pub state: ShardState,
    /// When the agent took the snapshot.
    pub taken_at: DateTime<Utc>,
}

/// A certificate renewal: the host's new pin, and the certificate it replaces, kept valid
/// for an overlap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertRenewal {
    /// The new certificate's fingerprint (becomes the host's pin).
    pub fingerprint: String,
    /// The new certificate's `notAfter`.
    pub cert_expires_at: DateTime<Utc>,
    /// The certificate the host renewed with; accepted until `previous_valid_until`.
    pub previous_fingerprint: String,
    /// The end of the overlap: after it, the previous certificate is refused.
    pub previous_valid_until: DateTime<Utc>,
}

/// The outcome of applying an observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObserveOutcome {
    /// The shard's state changed from `previous`.
    Changed {
        /// The state before the observation.
        previous: ShardState,
    },
    /// Same state: nothing written (an unchanged snapshot costs nothing).
    Unchanged,
    /// Not applied: the shard is in a transitional state, was updated after the snapshot, or
    /// is not assigned to the reporting host.
    Refused,
}

/// The master's store.
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
#[async_trait::async_trait]
pub trait Repository: Send + Sync {
    // --- hosts -------------------------------------------------------------------------------
    /// Adds a host; `Conflict` when its uuid, name or fingerprint is taken.
    async fn insert_host(&self, host: &Host) -> Result<(), RepoError>;
    /// The host with this uuid, if enrolled.
    async fn host(&self, uuid: HostUuid) -> Result<Option<Host>, RepoError>;
    /// The host enrolled under this name, if any.
    async fn host_by_name(&self, name: &HostName) -> Result<Option<Host>, RepoError>;
    /// Every enrolled host.
    async fn hosts(&self) -> Result<Vec<Host>, RepoError>;
    /// A heartbeat arrived: status `active`, `last_heartbeat = at`, agent version recorded.
    async fn record_heartbeat(
        &self,
        uuid: HostUuid,
        at: DateTime<Utc>,
        agent_version: Option<String>,
    ) -> Result<(), RepoError>;
    /// `active` hosts last heard from before `cutoff` become `unreachable`; returns the ones
    /// that changed. (Hosts that never heartbeated stay `enrolled`.)
    async fn mark_unreachable(&self, cutoff: DateTime<Utc>) -> Result<Vec<HostUuid>, RepoError>;
    /// Removes a host and its shards; `false` when there was none.
    async fn delete_host(&self, uuid: HostUuid) -> Result<bool, RepoError>;
    /// Pins a renewed certificate: `fingerprint`, `cert_expires_at`, `previous_fingerprint`
    /// and `previous_valid_until` are set from `renewal` (a previous overlap's fingerprint is
    /// replaced, not revoked: the caller revokes what it abandons). `NotFound` for an unknown
    /// host; `Conflict` when another host has that fingerprint.
    async fn renew_host_certificate(
        &self,
        uuid: HostUuid,
        renewal: &CertRenewal,
    ) -> Result<(), RepoError>;
    /// Ends a renewal overlap in one step: the host's previous fingerprint is recorded as
    /// revoked at `at` and cleared (with its `previous_valid_until`). Returns it; `None` when
    /// the host had none or does not exist.
    async fn end_certificate_overlap(
        &self,
        uuid: HostUuid,
        at: DateTime<Utc>,
    ) -> Result<Option<String>, RepoError>;

    // --- revocation --------------------------------------------------------------------------
    /// Records a certificate fingerprint as revoked (idempotent).
    async fn revoke_fingerprint(
        &self,
        fingerprint: &str,
        at: DateTime<Utc>,
    ) -> Result<(), RepoError>;
    /// True when the fingerprint was revoked (a decommissioned host's, or an abandoned renewal's).
    async fn is_revoked(&self, fingerprint: &str) -> Result<bool, RepoError>;

    // --- tokens ------------------------------------------------------------------------------
    /// Stores a new enrollment token; `Conflict` when its id or hash is taken.
    async fn insert_enroll_token(&self, token: &EnrollToken) -> Result<(), RepoError>;
    /// Consumes the token with this hash atomically: only an unused, unexpired token is
    /// returned (and marked used); used, expired and unknown tokens give `None`.
    async fn consume_enroll_token(
        &self,
        hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<EnrollToken>, RepoError>;
    /// Stores a new operator API token; `Conflict` when its id or hash is taken.
    async fn insert_api_token(&self, token: &ApiToken) -> Result<(), RepoError>;
    /// The token whose secret hashes to `hash` (lowercase hex SHA-256), if any.
    async fn api_token_by_hash(&self, hash: &str) -> Result<Option<ApiToken>, RepoError>;
    /// Every operator API token (hashes only, never secrets).
    async fn api_tokens(&self) -> Result<Vec<ApiToken>, RepoError>;
    /// `false` when there was no such token.
    async fn delete_api_token(&self, id: Uuid) -> Result<bool, RepoError>;

    // --- desired fleet -----------------------------------------------------------------------
    /// The fleet the operator asked for.
    async fn desired_fleet(&self) -> Result<Option<DecnetConfig>, RepoError>;
    /// Replaces the desired fleet (the whole config, as the operator's last change left it).
    async fn put_desired_fleet(&self, config: &DecnetConfig) -> Result<(), RepoError>;

    // --- shards ------------------------------------------------------------------------------
    /// Inserts or replaces the shard keyed by `(host_uuid, decky_name)` (the runner's view).
    async fn upsert_shard(&self, shard: &Shard) -> Result<(), RepoError>;
    /// Shards of one host, or of every host.
    async fn shards(&self, host: Option<HostUuid>) -> Result<Vec<Shard>, RepoError>;
    /// `false` when there was none.
    async fn delete_shard(&self, host: HostUuid, decky: &DeckyName) -> Result<bool, RepoError>;
    /// Applies a heartbeat's observation under the rules of PRODUCT §6: only for a shard of the
    /// reporting host, never over a transitional state or a state set after `taken_at`, and
    /// without writing when nothing changed (`last_seen` may be kept elsewhere).
    async fn observe_shard(
        &self,
        observed: &ObservedShard,
        now: DateTime<Utc>,
    ) -> Result<ObserveOutcome, RepoError>;

    // --- lifecycle ---------------------------------------------------------------------------
    /// Stores a new `pending` row; `Conflict` when its id is taken.
    async fn create_lifecycle(&self, row: &LifecycleRow) -> Result<(), RepoError>;
    /// The rows with these ids, oldest first; unknown ids are omitted.
    async fn lifecycle_rows(&self, ids: &[Uuid]) -> Result<Vec<LifecycleRow>, RepoError>;
    /// Compare-and-set under [`crate::model::check_transition`]; returns the row after it
    /// (unchanged when already there). `NotFound` for an unknown id; `Transition` when the
    /// rule refuses (a terminal row never changes).
    async fn transition_lifecycle(
        &self,
        id: Uuid,
        to: LifecycleStatus,
        error: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<LifecycleRow, RepoError>;
    /// The oldest open (pending or running) row of this decky, operation and host.
    async fn find_open_lifecycle(
        &self,
        decky: &DeckyName,
        operation: Operation,
        host: Option<HostUuid>,
    ) -> Result<Option<LifecycleRow>, RepoError>;
    /// Every open row (for the sweep and start-up recovery).
    async fn open_lifecycle_rows(&self) -> Result<Vec<LifecycleRow>, RepoError>;
    /// The newest rows, newest first (by `started_at`, then id), at most `limit`; only
    /// `decky`'s when given (`decnet lifecycle --recent [--decky N]`).
    async fn recent_lifecycle_rows(
        &self,
        decky: Option<DeckyName>,
        limit: u32,
    ) -> Result<Vec<LifecycleRow>, RepoError>;
    /// Marks progress on open rows of `host` (its agent listed them in `in_flight`):
    /// `updated_at = now`. Rows of other hosts and the master's own are left alone, so one
    /// worker's certificate cannot keep another host's row alive past the sweep.
    async fn touch_lifecycle(
        &self,
        host: HostUuid,
        ids: &[Uuid],
        now: DateTime<Utc>,
    ) -> Result<(), RepoError>;

    // --- attacker events (PRODUCT §10) ------------------------------------------------------
    /// Stores the events not stored yet — idempotent by event id, so a batch delivered twice
    /// is stored once; returns how many were new.
    async fn insert_attack_events(&self, events: &[AttackEvent]) -> Result<u64, RepoError>;

    /// The events matching `query`, in id order, after `query.after`, at most `query.page()`.
    async fn attack_events(&self, query: &AttackQuery) -> Result<Vec<AttackEvent>, RepoError>;

    /// One profile per source address, most recently seen first (as
    /// [`AttackerProfile::from_events`] computes them).
    async fn attacker_profiles(&self) -> Result<Vec<AttackerProfile>, RepoError>;

    /// Retention: deletes the events older than `before`, then all but the newest `keep`
    /// (by id); returns how many were deleted.
    async fn prune_attack_events(
        &self,
        before: Option<DateTime<Utc>>,
        keep: Option<u64>,
    ) -> Result<u64, RepoError>;
}

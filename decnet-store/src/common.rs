//! What both backends share: the SQL that reads the same on SQLite and PostgreSQL, error
//! mapping, column decoding, and the pure rules that classify a compare-and-set that did not
//! apply.

use std::fmt::Display;
use std::str::FromStr;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use decnet_core::model::{
    check_transition, Host, LifecycleRow, LifecycleStatus, ShardState, TransitionOutcome,
};
use decnet_core::traits::{ObservedShard, RepoError};
use sqlx::{ColumnIndex, Decode, Row, Type};

// Placeholders are `$N` on both backends (sqlx's SQLite driver binds `$N` by number).

pub(crate) const HOST_COLS: &str = "uuid, name, address, fingerprint, status, last_heartbeat, \
     agent_version, enrolled_at, cert_expires_at, previous_fingerprint, previous_valid_until";
pub(crate) const ENROLL_COLS: &str =
    "id, hash, host_name, address, created_at, expires_at, used_at";
pub(crate) const API_COLS: &str = "id, hash, role, created_at";
pub(crate) const SHARD_COLS: &str =
    "host_uuid, decky_name, decky, state, last_error, last_seen, updated_at";
pub(crate) const LIFECYCLE_COLS: &str =
    "id, decky_name, host_uuid, operation, status, error, started_at, updated_at, completed_at";

/// The open statuses, as the `IN (…)` of a query.
pub(crate) const OPEN: &str = "('pending', 'running')";

pub(crate) const RECORD_HEARTBEAT: &str = "UPDATE hosts SET status = 'active', \
     last_heartbeat = $2, agent_version = COALESCE($3, agent_version) WHERE uuid = $1";
pub(crate) const MARK_UNREACHABLE: &str = "UPDATE hosts SET status = 'unreachable' \
     WHERE status = 'active' AND last_heartbeat < $1 RETURNING uuid";
pub(crate) const REVOKE: &str = "INSERT INTO revoked_certs (fingerprint, revoked_at) \
     VALUES ($1, $2) ON CONFLICT (fingerprint) DO NOTHING";
pub(crate) const IS_REVOKED: &str = "SELECT fingerprint FROM revoked_certs WHERE fingerprint = $1";
pub(crate) const RENEW_HOST_CERT: &str = "UPDATE hosts SET fingerprint = $2, \
     cert_expires_at = $3, previous_fingerprint = $4, previous_valid_until = $5 WHERE uuid = $1";
pub(crate) const SELECT_FLEET: &str = "SELECT config FROM desired_fleet WHERE id = 1";
pub(crate) const PUT_FLEET: &str = "INSERT INTO desired_fleet (id, config) VALUES (1, $1) \
     ON CONFLICT (id) DO UPDATE SET config = excluded.config";
pub(crate) const UPSERT_SHARD: &str = "INSERT INTO shards \
     (host_uuid, decky_name, decky, state, last_error, last_seen, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) \
     ON CONFLICT (host_uuid, decky_name) DO UPDATE SET decky = excluded.decky, \
     state = excluded.state, last_error = excluded.last_error, \
     last_seen = excluded.last_seen, updated_at = excluded.updated_at";
pub(crate) const SHARD_NOW: &str =
    "SELECT state, updated_at FROM shards WHERE host_uuid = $1 AND decky_name = $2";
/// Applies an observation only while the shard is still what was read (`$5`) and the runner
/// has not written it after the snapshot (`$6`).
pub(crate) const OBSERVE_SHARD: &str = "UPDATE shards SET state = $3, updated_at = $4, \
     last_seen = $4 WHERE host_uuid = $1 AND decky_name = $2 AND state = $5 \
     AND updated_at <= $6";
pub(crate) const DELETE_SHARD: &str = "DELETE FROM shards WHERE host_uuid = $1 AND decky_name = $2";

/// How often a compare-and-set that lost a race is retried before giving up.
pub(crate) const CAS_ATTEMPTS: usize = 8;

pub(crate) fn select_hosts(filter: &str) -> String {
    format!("SELECT {HOST_COLS} FROM hosts {filter}")
}

pub(crate) fn select_api_tokens(filter: &str) -> String {
    format!("SELECT {API_COLS} FROM api_tokens {filter}")
}

pub(crate) fn select_shards(filter: &str) -> String {
    format!("SELECT {SHARD_COLS} FROM shards {filter}")
}

/// Consumes an enroll token in one statement: only an unused, unexpired one is marked used
/// and returned. Binds: `$1` hash, `$2` now.
pub(crate) fn consume_sql() -> String {
    format!(
        "UPDATE enroll_tokens SET used_at = $2 \
         WHERE hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING {ENROLL_COLS}"
    )
}

/// The oldest open row of a decky, operation and host (`$3` NULL: the master's own).
pub(crate) fn find_open_sql() -> String {
    select_lifecycle(&format!(
        "WHERE decky_name = $1 AND operation = $2 AND host_uuid IS NOT DISTINCT FROM $3 \
         AND status IN {OPEN} ORDER BY started_at, id LIMIT 1"
    ))
}

pub(crate) fn open_rows_sql() -> String {
    select_lifecycle(&format!("WHERE status IN {OPEN} ORDER BY started_at, id"))
}

/// `Conflict` text for a host whose `key` (uuid, name or fingerprint) is taken.
pub(crate) fn host_key(host: &Host, key: &str) -> String {
    match key {
        "name" => format!("host name {}", host.name),
        "fingerprint" => format!("host fingerprint {}", host.fingerprint),
        _ => format!("host uuid {}", host.uuid),
    }
}

const SHARD_STATES: [ShardState; 6] = ShardState::ALL;

pub(crate) fn shard_state(s: &str) -> Result<ShardState, RepoError> {
    SHARD_STATES
        .into_iter()
        .find(|st| st.as_str() == s)
        .ok_or_else(|| RepoError::backend(format!("column state holds {s:?}")))
}

/// `t` cut to whole microseconds, the precision both backends keep.
pub(crate) fn trunc_us(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(TimeDelta::microseconds(1)).unwrap_or(t)
}

pub(crate) fn select_lifecycle(filter: &str) -> String {
    format!("SELECT {LIFECYCLE_COLS} FROM lifecycle {filter}")
}

pub(crate) fn insert_sql(table: &str, cols: &str) -> String {
    let n = cols.split(',').count();
    let params: Vec<String> = (1..=n).map(|i| format!("${i}")).collect();
    format!(
        "INSERT INTO {table} ({cols}) VALUES ({})",
        params.join(", ")
    )
}

/// The compare-and-set of a lifecycle transition to `to`: one `UPDATE … WHERE status IN (…)`
/// returning the row as written. `None` when no status may move to `to` (`pending`).
/// Binds: `$1` id, `$2` status, `$3` now, `$4` error (NULL keeps the current one).
pub(crate) fn transition_sql(to: LifecycleStatus) -> Option<String> {
    let from = to.allowed_from();
    if from.is_empty() {
        return None;
    }
    let from: Vec<String> = from.iter().map(|s| format!("'{}'", s.as_str())).collect();
    let completed_at = if to.is_terminal() {
        "$3"
    } else {
        "completed_at"
    };
    Some(format!(
        "UPDATE lifecycle SET status = $2, updated_at = $3, error = COALESCE($4, error), \
         completed_at = {completed_at} WHERE id = $1 AND status IN ({}) RETURNING {LIFECYCLE_COLS}",
        from.join(", ")
    ))
}

/// The lifecycle compare-and-set did not apply; the row as read now decides the answer.
/// `None`: the row has moved to a state the transition applies from, so try again.
pub(crate) fn refused_transition(
    current: Option<LifecycleRow>,
    id: uuid::Uuid,
    to: LifecycleStatus,
) -> Option<Result<LifecycleRow, RepoError>> {
    let Some(row) = current else {
        return Some(Err(RepoError::NotFound(format!("lifecycle row {id}"))));
    };
    match check_transition(row.status, to) {
        Ok(TransitionOutcome::AlreadyThere) => Some(Ok(row)),
        Ok(TransitionOutcome::Apply) => None,
        Err(e) => Some(Err(e.into())),
    }
}

/// What to do with a heartbeat's observation given the shard as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Observe {
    Refuse,
    Unchanged,
    /// Write it, provided the shard is still `previous` and unwritten since the snapshot.
    Apply {
        previous: ShardState,
    },
}

/// The rules of PRODUCT §6 for a shard read as `current` (state, updated_at).
pub(crate) fn classify_observation(
    current: Option<(ShardState, DateTime<Utc>)>,
    observed: &ObservedShard,
) -> Observe {
    match current {
        None => Observe::Refuse,
        Some((state, updated_at))
            if state.is_transitional() || updated_at > trunc_us(observed.taken_at) =>
        {
            Observe::Refuse
        }
        Some((state, _)) if state == observed.state => Observe::Unchanged,
        Some((previous, _)) => Observe::Apply { previous },
    }
}

/// A store error with what was being done.
pub(crate) fn backend(
    what: impl Display,
    e: impl std::error::Error + Send + Sync + 'static,
) -> RepoError {
    RepoError::backend_from(&what.to_string(), e)
}

/// `Conflict(what)` for a unique-key violation, else a backend error.
pub(crate) fn conflict_or_backend(e: sqlx::Error, what: impl Display) -> RepoError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            RepoError::Conflict(what.to_string())
        }
        _ => backend(format_args!("insert {what}"), e),
    }
}

/// For a unique violation on `hosts`, which key was taken.
pub(crate) fn host_conflict_key(e: &sqlx::Error) -> &'static str {
    let sqlx::Error::Database(db) = e else {
        return "uuid";
    };
    let text = format!("{} {}", db.constraint().unwrap_or_default(), db.message());
    if text.contains("fingerprint") {
        "fingerprint"
    } else if text.contains("name") {
        "name"
    } else {
        "uuid"
    }
}

/// Reads column `col`.
pub(crate) fn get<'r, R, T>(row: &'r R, col: &str) -> Result<T, RepoError>
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    T: Decode<'r, R::Database> + Type<R::Database>,
{
    row.try_get(col)
        .map_err(|e| backend(format_args!("read column {col}"), e))
}

/// Reads text column `col` and parses it.
pub(crate) fn parse<R, T>(row: &R, col: &str) -> Result<T, RepoError>
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    T: FromStr,
    T::Err: Display,
{
    let s: String = get(row, col)?;
    s.parse()
        .map_err(|e| RepoError::backend(format!("column {col} holds {s:?}: {e}")))
}

/// Reads a JSON text column.
pub(crate) fn json<R, T>(row: &R, col: &str) -> Result<T, RepoError>
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    T: serde::de::DeserializeOwned,
{
    let s: String = get(row, col)?;
    serde_json::from_str(&s).map_err(|e| backend(format_args!("column {col}"), e))
}

pub(crate) fn to_json<T: serde::Serialize>(what: &str, v: &T) -> Result<String, RepoError> {
    serde_json::to_string(v).map_err(|e| backend(format_args!("encode {what}"), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_sql_lists_the_allowed_sources() {
        assert_eq!(transition_sql(LifecycleStatus::Pending), None);
        let running = transition_sql(LifecycleStatus::Running).unwrap();
        assert!(running.contains("status IN ('pending')"), "{running}");
        assert!(running.contains("completed_at = completed_at"), "{running}");
        let failed = transition_sql(LifecycleStatus::Failed).unwrap();
        assert!(
            failed.contains("status IN ('pending', 'running')"),
            "{failed}"
        );
        assert!(failed.contains("completed_at = $3"), "{failed}");
    }

    #[test]
    fn every_shard_state_parses_back() {
        for st in SHARD_STATES {
            assert_eq!(shard_state(st.as_str()).unwrap(), st);
        }
        assert!(shard_state("torn_down").is_err());
    }

    #[test]
    fn insert_sql_numbers_every_column() {
        assert_eq!(
            insert_sql("api_tokens", API_COLS),
            "INSERT INTO api_tokens (id, hash, role, created_at) VALUES ($1, $2, $3, $4)"
        );
    }
}

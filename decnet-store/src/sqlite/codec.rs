//! Rows in and out of SQLite: column codecs and row decoders.

use chrono::{DateTime, Utc};
use decnet_core::model::{ApiToken, EnrollToken, Host, HostUuid, LifecycleRow, Shard, ShardState};
use decnet_core::traits::RepoError;
use sqlx::sqlite::SqliteRow;
use uuid::Uuid;

use crate::common::{self, backend, get, json, parse};

/// `2026-03-04T05:06:07.123456Z`: fixed width, sortable, microseconds.
pub(super) fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

pub(super) fn ts_opt(t: Option<DateTime<Utc>>) -> Option<String> {
    t.map(ts)
}

pub(super) fn parse_ts(col: &str, s: &str) -> Result<DateTime<Utc>, RepoError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| backend(format_args!("column {col} holds {s:?}"), e))
}

pub(super) fn get_ts(row: &SqliteRow, col: &str) -> Result<DateTime<Utc>, RepoError> {
    let s: String = get(row, col)?;
    parse_ts(col, &s)
}

pub(super) fn get_ts_opt(row: &SqliteRow, col: &str) -> Result<Option<DateTime<Utc>>, RepoError> {
    let s: Option<String> = get(row, col)?;
    s.map(|s| parse_ts(col, &s)).transpose()
}

pub(super) fn get_host_uuid_opt(row: &SqliteRow, col: &str) -> Result<Option<HostUuid>, RepoError> {
    let s: Option<String> = get(row, col)?;
    s.map(|s| {
        s.parse()
            .map_err(|e| backend(format_args!("column {col} holds {s:?}"), e))
    })
    .transpose()
}

pub(super) fn uid(u: Uuid) -> String {
    u.hyphenated().to_string()
}

/// A list of ids as one bound JSON array (`IN (SELECT value FROM json_each($n))`), so any
/// number of ids is one parameter.
pub(super) fn ids_json(ids: &[Uuid]) -> String {
    let ids: Vec<String> = ids.iter().map(|u| uid(*u)).collect();
    serde_json::Value::from(ids).to_string()
}

pub(super) fn host_from(row: &SqliteRow) -> Result<Host, RepoError> {
    Ok(Host {
        uuid: parse(row, "uuid")?,
        name: parse(row, "name")?,
        address: get(row, "address")?,
        fingerprint: get(row, "fingerprint")?,
        status: parse(row, "status")?,
        last_heartbeat: get_ts_opt(row, "last_heartbeat")?,
        agent_version: get(row, "agent_version")?,
        enrolled_at: get_ts(row, "enrolled_at")?,
        cert_expires_at: get_ts_opt(row, "cert_expires_at")?,
        previous_fingerprint: get(row, "previous_fingerprint")?,
        previous_valid_until: get_ts_opt(row, "previous_valid_until")?,
    })
}

pub(super) fn enroll_from(row: &SqliteRow) -> Result<EnrollToken, RepoError> {
    Ok(EnrollToken {
        id: parse(row, "id")?,
        hash: get(row, "hash")?,
        host_name: parse(row, "host_name")?,
        address: get(row, "address")?,
        created_at: get_ts(row, "created_at")?,
        expires_at: get_ts(row, "expires_at")?,
        used_at: get_ts_opt(row, "used_at")?,
    })
}

pub(super) fn api_from(row: &SqliteRow) -> Result<ApiToken, RepoError> {
    Ok(ApiToken {
        id: parse(row, "id")?,
        hash: get(row, "hash")?,
        role: parse(row, "role")?,
        created_at: get_ts(row, "created_at")?,
    })
}

pub(super) fn shard_from(row: &SqliteRow) -> Result<Shard, RepoError> {
    Ok(Shard {
        host_uuid: parse(row, "host_uuid")?,
        decky_name: parse(row, "decky_name")?,
        decky: json(row, "decky")?,
        state: parse_shard_state(row)?,
        last_error: get(row, "last_error")?,
        last_seen: get_ts_opt(row, "last_seen")?,
        updated_at: get_ts(row, "updated_at")?,
    })
}

pub(super) fn parse_shard_state(row: &SqliteRow) -> Result<ShardState, RepoError> {
    let s: String = get(row, "state")?;
    common::shard_state(&s)
}

pub(super) fn lifecycle_from(row: &SqliteRow) -> Result<LifecycleRow, RepoError> {
    Ok(LifecycleRow {
        id: parse(row, "id")?,
        decky_name: parse(row, "decky_name")?,
        host_uuid: get_host_uuid_opt(row, "host_uuid")?,
        operation: parse(row, "operation")?,
        status: parse(row, "status")?,
        error: get(row, "error")?,
        started_at: get_ts(row, "started_at")?,
        updated_at: get_ts(row, "updated_at")?,
        completed_at: get_ts_opt(row, "completed_at")?,
    })
}

pub(super) fn rows<T>(
    rows: Vec<SqliteRow>,
    f: fn(&SqliteRow) -> Result<T, RepoError>,
) -> Result<Vec<T>, RepoError> {
    rows.iter().map(f).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_fixed_width_and_exact() {
        let t: DateTime<Utc> = "2026-03-04T05:06:07.000001Z".parse().unwrap();
        assert_eq!(ts(t), "2026-03-04T05:06:07.000001Z");
        assert_eq!(parse_ts("t", &ts(t)).unwrap(), t);
        let whole: DateTime<Utc> = "2026-03-04T05:06:07Z".parse().unwrap();
        assert_eq!(ts(whole), "2026-03-04T05:06:07.000000Z");
        assert!(ts(whole) < ts(t));
    }

    #[test]
    fn ids_are_one_json_parameter() {
        let u = Uuid::nil();
        assert_eq!(
            ids_json(&[u]),
            r#"["00000000-0000-0000-0000-000000000000"]"#
        );
    }
}

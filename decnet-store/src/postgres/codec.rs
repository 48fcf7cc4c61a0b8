//! Rows in and out of PostgreSQL: column codecs and row decoders.

use decnet_core::model::{ApiToken, EnrollToken, Host, HostUuid, LifecycleRow, Shard, ShardState};
use decnet_core::traits::RepoError;
use sqlx::postgres::PgRow;
use uuid::Uuid;

use crate::common::{self, get, json, parse};

pub(super) fn host_uuid(row: &PgRow, col: &str) -> Result<HostUuid, RepoError> {
    get(row, col).map(HostUuid)
}

pub(super) fn host_uuid_opt(row: &PgRow, col: &str) -> Result<Option<HostUuid>, RepoError> {
    get::<_, Option<Uuid>>(row, col).map(|u| u.map(HostUuid))
}

pub(super) fn host_from(row: &PgRow) -> Result<Host, RepoError> {
    Ok(Host {
        uuid: host_uuid(row, "uuid")?,
        name: parse(row, "name")?,
        address: get(row, "address")?,
        fingerprint: get(row, "fingerprint")?,
        status: parse(row, "status")?,
        last_heartbeat: get(row, "last_heartbeat")?,
        agent_version: get(row, "agent_version")?,
        enrolled_at: get(row, "enrolled_at")?,
        cert_expires_at: get(row, "cert_expires_at")?,
        previous_fingerprint: get(row, "previous_fingerprint")?,
        previous_valid_until: get(row, "previous_valid_until")?,
    })
}

pub(super) fn enroll_from(row: &PgRow) -> Result<EnrollToken, RepoError> {
    Ok(EnrollToken {
        id: get(row, "id")?,
        hash: get(row, "hash")?,
        host_name: parse(row, "host_name")?,
        address: get(row, "address")?,
        created_at: get(row, "created_at")?,
        expires_at: get(row, "expires_at")?,
        used_at: get(row, "used_at")?,
    })
}

pub(super) fn api_from(row: &PgRow) -> Result<ApiToken, RepoError> {
    Ok(ApiToken {
        id: get(row, "id")?,
        hash: get(row, "hash")?,
        role: parse(row, "role")?,
        created_at: get(row, "created_at")?,
    })
}

pub(super) fn shard_from(row: &PgRow) -> Result<Shard, RepoError> {
    Ok(Shard {
        host_uuid: host_uuid(row, "host_uuid")?,
        decky_name: parse(row, "decky_name")?,
        decky: json(row, "decky")?,
        state: parse_shard_state(row)?,
        last_error: get(row, "last_error")?,
        last_seen: get(row, "last_seen")?,
        updated_at: get(row, "updated_at")?,
    })
}

pub(super) fn parse_shard_state(row: &PgRow) -> Result<ShardState, RepoError> {
    let s: String = get(row, "state")?;
    common::shard_state(&s)
}

pub(super) fn lifecycle_from(row: &PgRow) -> Result<LifecycleRow, RepoError> {
    Ok(LifecycleRow {
        id: get(row, "id")?,
        decky_name: parse(row, "decky_name")?,
        host_uuid: host_uuid_opt(row, "host_uuid")?,
        operation: parse(row, "operation")?,
        status: parse(row, "status")?,
        error: get(row, "error")?,
        started_at: get(row, "started_at")?,
        updated_at: get(row, "updated_at")?,
        completed_at: get(row, "completed_at")?,
    })
}

pub(super) fn rows<T>(
    rows: Vec<PgRow>,
    f: fn(&PgRow) -> Result<T, RepoError>,
) -> Result<Vec<T>, RepoError> {
    rows.iter().map(f).collect()
}

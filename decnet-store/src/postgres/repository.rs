//! The [`Repository`] implementation on PostgreSQL.

use chrono::{DateTime, Utc};
use decnet_core::model::attack::{AttackEvent, AttackQuery, AttackerProfile};
use decnet_core::model::lifecycle::truncate_error;
use decnet_core::model::{
    ApiToken, DeckyName, DecnetConfig, EnrollToken, Host, HostName, HostUuid, LifecycleRow,
    LifecycleStatus, Operation, Shard,
};
use decnet_core::traits::{CertRenewal, ObserveOutcome, ObservedShard, RepoError, Repository};
use uuid::Uuid;

use super::codec::{
    api_from, enroll_from, host_from, host_uuid, lifecycle_from, parse_shard_state, rows,
    shard_from,
};
use super::PgRepository;
use crate::attacks::{self, AttackParam};
use crate::common::{self, backend, get, json, Observe};

impl PgRepository {
    async fn lifecycle_row(&self, id: Uuid) -> Result<Option<LifecycleRow>, RepoError> {
        sqlx::query(&common::select_lifecycle("WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| backend("read lifecycle row", e))?
            .as_ref()
            .map(lifecycle_from)
            .transpose()
    }
}

#[async_trait::async_trait]
impl Repository for PgRepository {
    async fn insert_host(&self, host: &Host) -> Result<(), RepoError> {
        sqlx::query(&common::insert_sql("hosts", common::HOST_COLS))
            .bind(host.uuid.0)
            .bind(host.name.as_str())
            .bind(&host.address)
            .bind(&host.fingerprint)
            .bind(host.status.as_str())
            .bind(host.last_heartbeat)
            .bind(&host.agent_version)
            .bind(host.enrolled_at)
            .bind(host.cert_expires_at)
            .bind(&host.previous_fingerprint)
            .bind(host.previous_valid_until)
            .execute(&self.pool)
            .await
            .map_err(|e| {
                let key = common::host_conflict_key(&e);
                common::conflict_or_backend(e, common::host_key(host, key))
            })?;
        Ok(())
    }

    async fn host(&self, uuid: HostUuid) -> Result<Option<Host>, RepoError> {
        sqlx::query(&common::select_hosts("WHERE uuid = $1"))
            .bind(uuid.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| backend("read host", e))?
            .as_ref()
            .map(host_from)
            .transpose()
    }

    async fn host_by_name(&self, name: &HostName) -> Result<Option<Host>, RepoError> {
        sqlx::query(&common::select_hosts("WHERE name = $1"))
            .bind(name.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| backend("read host", e))?
            .as_ref()
            .map(host_from)
            .transpose()
    }

    async fn hosts(&self) -> Result<Vec<Host>, RepoError> {
        let all = sqlx::query(&common::select_hosts("ORDER BY name"))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| backend("list hosts", e))?;
        rows(all, host_from)
    }

    async fn record_heartbeat(
        &self,
        uuid: HostUuid,
        at: DateTime<Utc>,
        agent_version: Option<String>,
    ) -> Result<(), RepoError> {
        let done = sqlx::query(common::RECORD_HEARTBEAT)
            .bind(uuid.0)
            .bind(at)
            .bind(agent_version)
            .execute(&self.pool)
            .await
            .map_err(|e| backend("record heartbeat", e))?;
        if done.rows_affected() == 0 {
            return Err(RepoError::NotFound(format!("host {uuid}")));
        }
        Ok(())
    }

    async fn mark_unreachable(&self, cutoff: DateTime<Utc>) -> Result<Vec<HostUuid>, RepoError> {
        let changed = sqlx::query(common::MARK_UNREACHABLE)
            .bind(cutoff)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| backend("mark hosts unreachable", e))?;
        let mut uuids = changed
            .iter()
            .map(|r| host_uuid(r, "uuid"))
            .collect::<Result<Vec<HostUuid>, _>>()?;
        uuids.sort();
        Ok(uuids)
    }

    async fn delete_host(&self, uuid: HostUuid) -> Result<bool, RepoError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| backend("delete host", e))?;
        sqlx::query("DELETE FROM shards WHERE host_uuid = $1")
            .bind(uuid.0)
            .execute(&mut *tx)
            .await
            .map_err(|e| backend("delete host shards", e))?;
        let done = sqlx::query("DELETE FROM hosts WHERE uuid = $1")
            .bind(uuid.0)
            .execute(&mut *tx)
            .await
            .map_err(|e| backend("delete host", e))?;
        tx.commit().await.map_err(|e| backend("delete host", e))?;
        Ok(done.rows_affected() > 0)
    }

    async fn renew_host_certificate(
        &self,
        uuid: HostUuid,
        renewal: &CertRenewal,
    ) -> Result<(), RepoError> {
        let done = sqlx::query(common::RENEW_HOST_CERT)
            .bind(uuid.0)
            .bind(&renewal.fingerprint)
            .bind(renewal.cert_expires_at)
            .bind(&renewal.previous_fingerprint)
            .bind(renewal.previous_valid_until)
            .execute(&self.pool)
            .await
            .map_err(|e| {
                common::conflict_or_backend(e, format!("host fingerprint {}", renewal.fingerprint))
            })?;
        if done.rows_affected() == 0 {
            return Err(RepoError::NotFound(format!("host {uuid}")));
        }
        Ok(())
    }

    async fn end_certificate_overlap(
        &self,
        uuid: HostUuid,
        at: DateTime<Utc>,
    ) -> Result<Option<String>, RepoError> {
        // One statement: the row is locked, cleared and its previous fingerprint revoked.
        let previous: Option<String> = sqlx::query_scalar(
            "WITH old AS (SELECT uuid, previous_fingerprint AS fp FROM hosts \
                 WHERE uuid = $1 AND previous_fingerprint IS NOT NULL FOR UPDATE), \
             cleared AS (UPDATE hosts h SET previous_fingerprint = NULL, \
                 previous_valid_until = NULL FROM old WHERE h.uuid = old.uuid RETURNING old.fp), \
             revoked AS (INSERT INTO revoked_certs (fingerprint, revoked_at) \
                 SELECT fp, $2 FROM cleared ON CONFLICT (fingerprint) DO NOTHING) \
             SELECT fp FROM cleared",
        )
        .bind(uuid.0)
        .bind(at)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| backend("end certificate overlap", e))?;
        Ok(previous)
    }

    async fn revoke_fingerprint(
        &self,
        fingerprint: &str,
        at: DateTime<Utc>,
    ) -> Result<(), RepoError> {
        sqlx::query(common::REVOKE)
            .bind(fingerprint)
            .bind(at)
            .execute(&self.pool)
            .await
            .map_err(|e| backend("revoke fingerprint", e))?;
        Ok(())
    }

    async fn is_revoked(&self, fingerprint: &str) -> Result<bool, RepoError> {
        let hit = sqlx::query(common::IS_REVOKED)
            .bind(fingerprint)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| backend("read revocations", e))?;
        Ok(hit.is_some())
    }

    async fn insert_enroll_token(&self, token: &EnrollToken) -> Result<(), RepoError> {
        sqlx::query(&common::insert_sql("enroll_tokens", common::ENROLL_COLS))
            .bind(token.id)
            .bind(&token.hash)
            .bind(token.host_name.as_str())
            .bind(&token.address)
            .bind(token.created_at)
            .bind(token.expires_at)
            .bind(token.used_at)
            .execute(&self.pool)
            .await
            .map_err(|e| common::conflict_or_backend(e, format!("enroll token {}", token.id)))?;
        Ok(())
    }

    async fn consume_enroll_token(
        &self,
        hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<EnrollToken>, RepoError> {
        sqlx::query(&common::consume_sql())
            .bind(hash)
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| backend("consume enroll token", e))?
            .as_ref()
            .map(enroll_from)
            .transpose()
    }

    async fn insert_api_token(&self, token: &ApiToken) -> Result<(), RepoError> {
        sqlx::query(&common::insert_sql("api_tokens", common::API_COLS))
            .bind(token.id)
            .bind(&token.hash)
            .bind(token.role.as_str())
            .bind(token.created_at)
            .execute(&self.pool)
            .await
            .map_err(|e| common::conflict_or_backend(e, format!("api token {}", token.id)))?;
        Ok(())
    }

    async fn api_token_by_hash(&self, hash: &str) -> Result<Option<ApiToken>, RepoError> {
        sqlx::query(&common::select_api_tokens("WHERE hash = $1"))
            .bind(hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| backend("read api token", e))?
            .as_ref()
            .map(api_from)
            .transpose()
    }

    async fn api_tokens(&self) -> Result<Vec<ApiToken>, RepoError> {
        let all = sqlx::query(&common::select_api_tokens("ORDER BY created_at, id"))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| backend("list api tokens", e))?;
        rows(all, api_from)
    }

    async fn delete_api_token(&self, id: Uuid) -> Result<bool, RepoError> {
        let done = sqlx::query("DELETE FROM api_tokens WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(|e| backend("delete api token", e))?;
        Ok(done.rows_affected() > 0)
    }

    async fn desired_fleet(&self) -> Result<Option<DecnetConfig>, RepoError> {
        sqlx::query(common::SELECT_FLEET)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| backend("read desired fleet", e))?
            .map(|row| json(&row, "config"))
            .transpose()
    }

    async fn put_desired_fleet(&self, config: &DecnetConfig) -> Result<(), RepoError> {
        sqlx::query(common::PUT_FLEET)
            .bind(common::to_json("desired fleet", config)?)
            .execute(&self.pool)
            .await
            .map_err(|e| backend("write desired fleet", e))?;
        Ok(())
    }

    async fn upsert_shard(&self, shard: &Shard) -> Result<(), RepoError> {
        sqlx::query(common::UPSERT_SHARD)
            .bind(shard.host_uuid.0)
            .bind(shard.decky_name.as_str())
            .bind(common::to_json("shard decky", &shard.decky)?)
            .bind(shard.state.as_str())
            .bind(&shard.last_error)
            .bind(shard.last_seen)
            .bind(shard.updated_at)
            .execute(&self.pool)
            .await
            .map_err(|e| backend("upsert shard", e))?;
        Ok(())
    }

    async fn shards(&self, host: Option<HostUuid>) -> Result<Vec<Shard>, RepoError> {
        let all = match host {
            Some(h) => {
                sqlx::query(&common::select_shards(
                    "WHERE host_uuid = $1 ORDER BY decky_name",
                ))
                .bind(h.0)
                .fetch_all(&self.pool)
                .await
            }
            None => {
                sqlx::query(&common::select_shards("ORDER BY host_uuid, decky_name"))
                    .fetch_all(&self.pool)
                    .await
            }
        }
        .map_err(|e| backend("list shards", e))?;
        rows(all, shard_from)
    }

    async fn delete_shard(&self, host: HostUuid, decky: &DeckyName) -> Result<bool, RepoError> {
        let done = sqlx::query(common::DELETE_SHARD)
            .bind(host.0)
            .bind(decky.as_str())
            .execute(&self.pool)
            .await
            .map_err(|e| backend("delete shard", e))?;
        Ok(done.rows_affected() > 0)
    }

    async fn observe_shard(
        &self,
        observed: &ObservedShard,
        now: DateTime<Utc>,
    ) -> Result<ObserveOutcome, RepoError> {
        for _ in 0..common::CAS_ATTEMPTS {
            let current = sqlx::query(common::SHARD_NOW)
                .bind(observed.host_uuid.0)
                .bind(observed.decky_name.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| backend("read shard", e))?
                .map(|row| Ok::<_, RepoError>((parse_shard_state(&row)?, get(&row, "updated_at")?)))
                .transpose()?;
            let previous = match common::classify_observation(current, observed) {
                Observe::Refuse => return Ok(ObserveOutcome::Refused),
                Observe::Unchanged => return Ok(ObserveOutcome::Unchanged),
                Observe::Apply { previous } => previous,
            };
            let done = sqlx::query(common::OBSERVE_SHARD)
                .bind(observed.host_uuid.0)
                .bind(observed.decky_name.as_str())
                .bind(observed.state.as_str())
                .bind(now)
                .bind(previous.as_str())
                .bind(observed.taken_at)
                .execute(&self.pool)
                .await
                .map_err(|e| backend("write shard state", e))?;
            if done.rows_affected() == 1 {
                return Ok(ObserveOutcome::Changed { previous });
            }
            // The runner wrote the shard between the read and the update: look again.
        }
        // The runner keeps writing this shard: its state wins.
        Ok(ObserveOutcome::Refused)
    }

    async fn create_lifecycle(&self, row: &LifecycleRow) -> Result<(), RepoError> {
        sqlx::query(&common::insert_sql("lifecycle", common::LIFECYCLE_COLS))
            .bind(row.id)
            .bind(row.decky_name.as_str())
            .bind(row.host_uuid.map(|h| h.0))
            .bind(row.operation.as_str())
            .bind(row.status.as_str())
            .bind(row.error.as_deref().map(truncate_error))
            .bind(row.started_at)
            .bind(row.updated_at)
            .bind(row.completed_at)
            .execute(&self.pool)
            .await
            .map_err(|e| common::conflict_or_backend(e, format!("lifecycle row {}", row.id)))?;
        Ok(())
    }

    async fn lifecycle_rows(&self, ids: &[Uuid]) -> Result<Vec<LifecycleRow>, RepoError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let all = sqlx::query(&common::select_lifecycle(
            "WHERE id = ANY($1) ORDER BY started_at, id",
        ))
        .bind(ids)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| backend("read lifecycle rows", e))?;
        rows(all, lifecycle_from)
    }

    async fn transition_lifecycle(
        &self,
        id: Uuid,
        to: LifecycleStatus,
        error: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<LifecycleRow, RepoError> {
        let error = error.as_deref().map(truncate_error);
        let sql = common::transition_sql(to);
        for _ in 0..common::CAS_ATTEMPTS {
            if let Some(sql) = &sql {
                let written = sqlx::query(sql)
                    .bind(id)
                    .bind(to.as_str())
                    .bind(now)
                    .bind(&error)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(|e| backend("transition lifecycle row", e))?;
                if let Some(row) = written {
                    return lifecycle_from(&row);
                }
            }
            let current = self.lifecycle_row(id).await?;
            if let Some(answer) = common::refused_transition(current, id, to) {
                return answer;
            }
        }
        Err(RepoError::backend(format!(
            "lifecycle row {id} kept changing while moving it to {to}"
        )))
    }

    async fn find_open_lifecycle(
        &self,
        decky: &DeckyName,
        operation: Operation,
        host: Option<HostUuid>,
    ) -> Result<Option<LifecycleRow>, RepoError> {
        sqlx::query(&common::find_open_sql())
            .bind(decky.as_str())
            .bind(operation.as_str())
            .bind(host.map(|h| h.0))
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| backend("find open lifecycle row", e))?
            .as_ref()
            .map(lifecycle_from)
            .transpose()
    }

    async fn recent_lifecycle_rows(
        &self,
        decky: Option<DeckyName>,
        limit: u32,
    ) -> Result<Vec<LifecycleRow>, RepoError> {
        let all = sqlx::query(&common::select_lifecycle(
            "WHERE ($1::text IS NULL OR decky_name = $1) ORDER BY started_at DESC, id DESC LIMIT $2",
        ))
        .bind(decky.as_ref().map(DeckyName::as_str))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| backend("read recent lifecycle rows", e))?;
        rows(all, lifecycle_from)
    }

    async fn open_lifecycle_rows(&self) -> Result<Vec<LifecycleRow>, RepoError> {
        let all = sqlx::query(&common::open_rows_sql())
            .fetch_all(&self.pool)
            .await
            .map_err(|e| backend("list open lifecycle rows", e))?;
        rows(all, lifecycle_from)
    }

    async fn touch_lifecycle(
        &self,
        host: HostUuid,
        ids: &[Uuid],
        now: DateTime<Utc>,
    ) -> Result<(), RepoError> {
        if ids.is_empty() {
            return Ok(());
        }
        sqlx::query(&format!(
            "UPDATE lifecycle SET updated_at = $2 \
             WHERE id = ANY($1) AND host_uuid = $3 AND status IN {}",
            common::OPEN
        ))
        .bind(ids)
        .bind(now)
        .bind(host.0)
        .execute(&self.pool)
        .await
        .map_err(|e| backend("touch lifecycle rows", e))?;
        Ok(())
    }

    async fn insert_attack_events(&self, events: &[AttackEvent]) -> Result<u64, RepoError> {
        if events.is_empty() {
            return Ok(0);
        }
        let what = "store attacker events";
        let sql = attacks::insert_attack_sql();
        let mut tx = self.pool.begin().await.map_err(|e| backend(what, e))?;
        let mut new = 0;
        for e in events {
            let r = sqlx::query(&sql)
                .bind(e.id)
                .bind(e.ts)
                .bind(&e.host)
                .bind(&e.decky)
                .bind(&e.service)
                .bind(e.kind.as_str())
                .bind(e.src_ip.to_string())
                .bind(&e.details.username)
                .bind(&e.details.password)
                .bind(e.to_json_line())
                .execute(&mut *tx)
                .await
                .map_err(|err| backend(what, err))?;
            new += r.rows_affected();
        }
        tx.commit().await.map_err(|e| backend(what, e))?;
        Ok(new)
    }

    async fn attack_events(&self, query: &AttackQuery) -> Result<Vec<AttackEvent>, RepoError> {
        let (sql, params) = attacks::attack_select(query);
        let mut q = sqlx::query(&sql);
        for p in params {
            q = match p {
                AttackParam::Ts(t) => q.bind(t),
                AttackParam::Text(s) => q.bind(s),
                AttackParam::Id(id) => q.bind(id),
                AttackParam::Limit(n) => q.bind(n),
            };
        }
        let found = q
            .fetch_all(&self.pool)
            .await
            .map_err(|e| backend("read attacker events", e))?;
        found
            .iter()
            .map(|row| attacks::attack_from_body(&get::<_, String>(row, "body")?))
            .collect()
    }

    async fn attacker_profiles(&self) -> Result<Vec<AttackerProfile>, RepoError> {
        let what = "read attacker profiles";
        let totals = sqlx::query(attacks::PROFILE_TOTALS)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| backend(what, e))?
            .iter()
            .map(|r| {
                Ok(attacks::ProfileTotals {
                    src_ip: get(r, "src_ip")?,
                    first_seen: get(r, "first_seen")?,
                    last_seen: get(r, "last_seen")?,
                    events: get(r, "events")?,
                    attempts: get(r, "attempts")?,
                })
            })
            .collect::<Result<Vec<_>, RepoError>>()?;
        let touched = sqlx::query_as::<_, (String, String, String)>(attacks::PROFILE_TOUCHED)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| backend(what, e))?;
        let usernames = sqlx::query_as::<_, (String, String)>(attacks::PROFILE_USERNAMES)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| backend(what, e))?;
        let last = sqlx::query_as::<_, (String, Option<String>, Option<String>)>(
            attacks::PROFILE_LAST_AUTH,
        )
        .fetch_all(&self.pool)
        .await
        .map_err(|e| backend(what, e))?;
        attacks::assemble_profiles(totals, touched, usernames, last)
    }

    async fn prune_attack_events(
        &self,
        before: Option<DateTime<Utc>>,
        keep: Option<u64>,
    ) -> Result<u64, RepoError> {
        let what = "prune attacker events";
        let mut deleted = 0;
        if let Some(t) = before {
            deleted += sqlx::query(attacks::PRUNE_BEFORE)
                .bind(t)
                .execute(&self.pool)
                .await
                .map_err(|e| backend(what, e))?
                .rows_affected();
        }
        if let Some(keep) = keep {
            deleted += sqlx::query(attacks::PRUNE_KEEP)
                .bind(i64::try_from(keep).unwrap_or(i64::MAX))
                .execute(&self.pool)
                .await
                .map_err(|e| backend(what, e))?
                .rows_affected();
        }
        Ok(deleted)
    }
}

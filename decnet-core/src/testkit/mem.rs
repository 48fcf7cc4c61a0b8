//! `MemRepository`: the master's store in memory, for tests of code that uses a
//! [`Repository`]. One mutex over every map, so each call is atomic like one SQL statement.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::trunc_us;
use crate::model::attack::{AttackEvent, AttackQuery, AttackerProfile};
use crate::model::lifecycle::truncate_error;
use crate::model::{
    ApiToken, DeckyName, DecnetConfig, EnrollToken, Host, HostName, HostStatus, HostUuid,
    LifecycleRow, LifecycleStatus, Operation, Shard,
};
use crate::traits::{CertRenewal, ObserveOutcome, ObservedShard, RepoError, Repository};

/// An in-memory [`Repository`] with the same semantics as the SQL stores (it passes the same
/// conformance suite). Times are kept at microsecond precision, like PostgreSQL.
#[derive(Debug, Default)]
pub struct MemRepository {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    hosts: HashMap<HostUuid, Host>,
    revoked: HashMap<String, DateTime<Utc>>,
    enroll_tokens: HashMap<Uuid, EnrollToken>,
    api_tokens: HashMap<Uuid, ApiToken>,
    desired_fleet: Option<DecnetConfig>,
    shards: BTreeMap<(HostUuid, DeckyName), Shard>,
    lifecycle: HashMap<Uuid, LifecycleRow>,
    attacks: BTreeMap<Uuid, AttackEvent>,
}

impl MemRepository {
    /// An empty store: no hosts, no tokens, no desired fleet, no rows.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every call leaves the maps consistent before it can panic, so a poisoned lock
        // still guards valid state.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn t_opt(t: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    t.map(trunc_us)
}

fn oldest_first(rows: &mut [LifecycleRow]) {
    rows.sort_by_key(|r| (r.started_at, r.id));
}

fn is_open(row: &LifecycleRow) -> bool {
    !row.status.is_terminal()
}

#[async_trait::async_trait]
impl Repository for MemRepository {
    async fn insert_host(&self, host: &Host) -> Result<(), RepoError> {
        let mut st = self.state();
        if st.hosts.contains_key(&host.uuid) {
            return Err(RepoError::Conflict(format!("host uuid {}", host.uuid)));
        }
        if st.hosts.values().any(|h| h.name == host.name) {
            return Err(RepoError::Conflict(format!("host name {}", host.name)));
        }
        if st.hosts.values().any(|h| h.fingerprint == host.fingerprint) {
            return Err(RepoError::Conflict(format!(
                "host fingerprint {}",
                host.fingerprint
            )));
        }
        let mut host = host.clone();
        host.last_heartbeat = t_opt(host.last_heartbeat);
        host.enrolled_at = trunc_us(host.enrolled_at);
        host.cert_expires_at = t_opt(host.cert_expires_at);
        host.previous_valid_until = t_opt(host.previous_valid_until);
        st.hosts.insert(host.uuid, host);
        Ok(())
    }

    async fn host(&self, uuid: HostUuid) -> Result<Option<Host>, RepoError> {
        Ok(self.state().hosts.get(&uuid).cloned())
    }

    async fn host_by_name(&self, name: &HostName) -> Result<Option<Host>, RepoError> {
        Ok(self
            .state()
            .hosts
            .values()
            .find(|h| &h.name == name)
            .cloned())
    }

    async fn hosts(&self) -> Result<Vec<Host>, RepoError> {
        let mut hosts: Vec<Host> = self.state().hosts.values().cloned().collect();
        hosts.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(hosts)
    }

    async fn record_heartbeat(
        &self,
        uuid: HostUuid,
        at: DateTime<Utc>,
        agent_version: Option<String>,
    ) -> Result<(), RepoError> {
        let mut st = self.state();
        let host = st
            .hosts
            .get_mut(&uuid)
            .ok_or_else(|| RepoError::NotFound(format!("host {uuid}")))?;
        host.status = HostStatus::Active;
        host.last_heartbeat = Some(trunc_us(at));
        if agent_version.is_some() {
            host.agent_version = agent_version;
        }
        Ok(())
    }

    async fn mark_unreachable(&self, cutoff: DateTime<Utc>) -> Result<Vec<HostUuid>, RepoError> {
        let cutoff = trunc_us(cutoff);
        let mut st = self.state();
        let mut changed = Vec::new();
        for host in st.hosts.values_mut() {
            if host.status == HostStatus::Active && host.last_heartbeat.is_some_and(|t| t < cutoff)
            {
                host.status = HostStatus::Unreachable;
                changed.push(host.uuid);
            }
        }
        changed.sort();
        Ok(changed)
    }

    async fn delete_host(&self, uuid: HostUuid) -> Result<bool, RepoError> {
        let mut st = self.state();
        st.shards.retain(|(host, _), _| *host != uuid);
        Ok(st.hosts.remove(&uuid).is_some())
    }

    async fn renew_host_certificate(
        &self,
        uuid: HostUuid,
        renewal: &CertRenewal,
    ) -> Result<(), RepoError> {
        let mut st = self.state();
        if st
            .hosts
            .values()
            .any(|h| h.uuid != uuid && h.fingerprint == renewal.fingerprint)
        {
            return Err(RepoError::Conflict(format!(
                "host fingerprint {}",
                renewal.fingerprint
            )));
        }
        let host = st
            .hosts
            .get_mut(&uuid)
            .ok_or_else(|| RepoError::NotFound(format!("host {uuid}")))?;
        host.fingerprint = renewal.fingerprint.clone();
        host.cert_expires_at = Some(trunc_us(renewal.cert_expires_at));
        host.previous_fingerprint = Some(renewal.previous_fingerprint.clone());
        host.previous_valid_until = Some(trunc_us(renewal.previous_valid_until));
        Ok(())
    }

    async fn end_certificate_overlap(
        &self,
        uuid: HostUuid,
        at: DateTime<Utc>,
    ) -> Result<Option<String>, RepoError> {
        let mut st = self.state();
        let Some(host) = st.hosts.get_mut(&uuid) else {
            return Ok(None);
        };
        host.previous_valid_until = None;
        let Some(previous) = host.previous_fingerprint.take() else {
            return Ok(None);
        };
        st.revoked.entry(previous.clone()).or_insert(trunc_us(at));
        Ok(Some(previous))
    }

    async fn revoke_fingerprint(
        &self,
        fingerprint: &str,
        at: DateTime<Utc>,
    ) -> Result<(), RepoError> {
        self.state()
            .revoked
            .entry(fingerprint.to_string())
            .or_insert(trunc_us(at));
        Ok(())
    }

    async fn is_revoked(&self, fingerprint: &str) -> Result<bool, RepoError> {
        Ok(self.state().revoked.contains_key(fingerprint))
    }

    async fn insert_enroll_token(&self, token: &EnrollToken) -> Result<(), RepoError> {
        let mut st = self.state();
        if st.enroll_tokens.contains_key(&token.id) {
            return Err(RepoError::Conflict(format!("enroll token {}", token.id)));
        }
        if st.enroll_tokens.values().any(|t| t.hash == token.hash) {
            return Err(RepoError::Conflict("enroll token hash".to_string()));
        }
        let mut token = token.clone();
        token.created_at = trunc_us(token.created_at);
        token.expires_at = trunc_us(token.expires_at);
        token.used_at = t_opt(token.used_at);
        st.enroll_tokens.insert(token.id, token);
        Ok(())
    }

    async fn consume_enroll_token(
        &self,
        hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<EnrollToken>, RepoError> {
        let now = trunc_us(now);
        let mut st = self.state();
        let token = st
            .enroll_tokens
            .values_mut()
            .find(|t| t.hash == hash && t.used_at.is_none() && t.expires_at > now);
        Ok(token.map(|t| {
            t.used_at = Some(now);
            t.clone()
        }))
    }

    async fn insert_api_token(&self, token: &ApiToken) -> Result<(), RepoError> {
        let mut st = self.state();
        if st.api_tokens.contains_key(&token.id) {
            return Err(RepoError::Conflict(format!("api token {}", token.id)));
        }
        if st.api_tokens.values().any(|t| t.hash == token.hash) {
            return Err(RepoError::Conflict("api token hash".to_string()));
        }
        let mut token = token.clone();
        token.created_at = trunc_us(token.created_at);
        st.api_tokens.insert(token.id, token);
        Ok(())
    }

    async fn api_token_by_hash(&self, hash: &str) -> Result<Option<ApiToken>, RepoError> {
        Ok(self
            .state()
            .api_tokens
            .values()
            .find(|t| t.hash == hash)
            .cloned())
    }

    async fn api_tokens(&self) -> Result<Vec<ApiToken>, RepoError> {
        let mut tokens: Vec<ApiToken> = self.state().api_tokens.values().cloned().collect();
        tokens.sort_by_key(|t| (t.created_at, t.id));
        Ok(tokens)
    }

    async fn delete_api_token(&self, id: Uuid) -> Result<bool, RepoError> {
        Ok(self.state().api_tokens.remove(&id).is_some())
    }

    async fn desired_fleet(&self) -> Result<Option<DecnetConfig>, RepoError> {
        Ok(self.state().desired_fleet.clone())
    }

    async fn put_desired_fleet(&self, config: &DecnetConfig) -> Result<(), RepoError> {
        self.state().desired_fleet = Some(config.clone());
        Ok(())
    }

    async fn upsert_shard(&self, shard: &Shard) -> Result<(), RepoError> {
        let mut shard = shard.clone();
        shard.last_seen = t_opt(shard.last_seen);
        shard.updated_at = trunc_us(shard.updated_at);
        self.state()
            .shards
            .insert((shard.host_uuid, shard.decky_name.clone()), shard);
        Ok(())
    }

    async fn shards(&self, host: Option<HostUuid>) -> Result<Vec<Shard>, RepoError> {
        // BTreeMap order: by host uuid, then decky name.
        Ok(self
            .state()
            .shards
            .values()
            .filter(|s| host.is_none_or(|h| s.host_uuid == h))
            .cloned()
            .collect())
    }

    async fn delete_shard(&self, host: HostUuid, decky: &DeckyName) -> Result<bool, RepoError> {
        Ok(self.state().shards.remove(&(host, decky.clone())).is_some())
    }

    async fn observe_shard(
        &self,
        observed: &ObservedShard,
        now: DateTime<Utc>,
    ) -> Result<ObserveOutcome, RepoError> {
        let taken_at = trunc_us(observed.taken_at);
        let mut st = self.state();
        let key = (observed.host_uuid, observed.decky_name.clone());
        let Some(shard) = st.shards.get_mut(&key) else {
            return Ok(ObserveOutcome::Refused);
        };
        if shard.state.is_transitional() || shard.updated_at > taken_at {
            return Ok(ObserveOutcome::Refused);
        }
        if shard.state == observed.state {
            return Ok(ObserveOutcome::Unchanged);
        }
        let previous = shard.state;
        let now = trunc_us(now);
        shard.state = observed.state;
        shard.updated_at = now;
        shard.last_seen = Some(now);
        Ok(ObserveOutcome::Changed { previous })
    }

    async fn create_lifecycle(&self, row: &LifecycleRow) -> Result<(), RepoError> {
        let mut st = self.state();
        if st.lifecycle.contains_key(&row.id) {
            return Err(RepoError::Conflict(format!("lifecycle row {}", row.id)));
        }
        let mut row = row.clone();
        row.error = row.error.as_deref().map(truncate_error);
        row.started_at = trunc_us(row.started_at);
        row.updated_at = trunc_us(row.updated_at);
        row.completed_at = t_opt(row.completed_at);
        st.lifecycle.insert(row.id, row);
        Ok(())
    }

    async fn lifecycle_rows(&self, ids: &[Uuid]) -> Result<Vec<LifecycleRow>, RepoError> {
        let st = self.state();
        let ids: HashSet<&Uuid> = ids.iter().collect();
        let mut rows: Vec<LifecycleRow> = ids
            .into_iter()
            .filter_map(|id| st.lifecycle.get(id).cloned())
            .collect();
        oldest_first(&mut rows);
        Ok(rows)
    }

    async fn transition_lifecycle(
        &self,
        id: Uuid,
        to: LifecycleStatus,
        error: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<LifecycleRow, RepoError> {
        let mut st = self.state();
        let row = st
            .lifecycle
            .get_mut(&id)
            .ok_or_else(|| RepoError::NotFound(format!("lifecycle row {id}")))?;
        // `transition` applies `check_transition`: terminal rows never change, and a row
        // already in `to` is returned as it is.
        row.transition(to, error.as_deref(), trunc_us(now))?;
        Ok(row.clone())
    }

    async fn find_open_lifecycle(
        &self,
        decky: &DeckyName,
        operation: Operation,
        host: Option<HostUuid>,
    ) -> Result<Option<LifecycleRow>, RepoError> {
        Ok(self
            .state()
            .lifecycle
            .values()
            .filter(|r| {
                is_open(r)
                    && &r.decky_name == decky
                    && r.operation == operation
                    && r.host_uuid == host
            })
            .min_by_key(|r| (r.started_at, r.id))
            .cloned())
    }

    async fn recent_lifecycle_rows(
        &self,
        decky: Option<DeckyName>,
        limit: u32,
    ) -> Result<Vec<LifecycleRow>, RepoError> {
        let mut rows: Vec<LifecycleRow> = self
            .state()
            .lifecycle
            .values()
            .filter(|r| decky.as_ref().is_none_or(|d| &r.decky_name == d))
            .cloned()
            .collect();
        rows.sort_by_key(|r| std::cmp::Reverse((r.started_at, r.id)));
        rows.truncate(limit as usize);
        Ok(rows)
    }

    async fn open_lifecycle_rows(&self) -> Result<Vec<LifecycleRow>, RepoError> {
        let mut rows: Vec<LifecycleRow> = self
            .state()
            .lifecycle
            .values()
            .filter(|r| is_open(r))
            .cloned()
            .collect();
        oldest_first(&mut rows);
        Ok(rows)
    }

    async fn touch_lifecycle(
        &self,
        host: HostUuid,
        ids: &[Uuid],
        now: DateTime<Utc>,
    ) -> Result<(), RepoError> {
        let now = trunc_us(now);
        let mut st = self.state();
        for id in ids {
            if let Some(row) = st.lifecycle.get_mut(id) {
                if is_open(row) && row.host_uuid == Some(host) {
                    row.updated_at = now;
                }
            }
        }
        Ok(())
    }

    async fn insert_attack_events(&self, events: &[AttackEvent]) -> Result<u64, RepoError> {
        let mut st = self.state();
        let mut new = 0;
        for e in events {
            if let std::collections::btree_map::Entry::Vacant(v) = st.attacks.entry(e.id) {
                v.insert(e.clone());
                new += 1;
            }
        }
        Ok(new)
    }

    async fn attack_events(&self, query: &AttackQuery) -> Result<Vec<AttackEvent>, RepoError> {
        let st = self.state();
        let start = match query.after {
            Some(after) => std::ops::Bound::Excluded(after),
            None => std::ops::Bound::Unbounded,
        };
        Ok(st
            .attacks
            .range((start, std::ops::Bound::Unbounded))
            .map(|(_, e)| e)
            .filter(|e| query.matches(e))
            .take(query.page() as usize)
            .cloned()
            .collect())
    }

    async fn attacker_profiles(&self) -> Result<Vec<AttackerProfile>, RepoError> {
        Ok(AttackerProfile::from_events(self.state().attacks.values()))
    }

    async fn prune_attack_events(
        &self,
        before: Option<DateTime<Utc>>,
        keep: Option<u64>,
    ) -> Result<u64, RepoError> {
        let mut st = self.state();
        let n = st.attacks.len();
        if let Some(t) = before {
            st.attacks.retain(|_, e| e.ts >= t);
        }
        if let Some(keep) = keep {
            let keep = usize::try_from(keep).unwrap_or(usize::MAX);
            while st.attacks.len() > keep {
                st.attacks.pop_first();
            }
        }
        Ok((n - st.attacks.len()) as u64)
    }
}

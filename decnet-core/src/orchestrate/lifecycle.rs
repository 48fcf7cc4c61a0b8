//! Lifecycle transitions: compare-and-set in the [`Repository`], then a bus event, and a
//! closed row settles its decky's shard. Every writer of lifecycle rows goes through
//! [`Lifecycle`] — the runner, the sweep, restart recovery, the operator API and the workers'
//! deltas — so the rules hold whoever moves a row.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::model::{
    AgentStatus, DeckyConfig, DeckyName, FieldError, HeartbeatBody, HostUuid, LifecycleDelta,
    LifecycleRow, LifecycleStatus, Operation, Shard, ShardState,
};
use crate::traits::{
    Bus, BusEvent, Clock, ObserveOutcome, ObservedShard, RepoError, Repository, StateTransition,
};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What an embedder learns of the lifecycle's work, to keep caches and metrics. Every method
/// has a no-op default ([`NoHooks`]).
pub trait LifecycleHooks: Send + Sync {
    /// A closed row settled the shard of `decky` on `host` (its state may have changed).
    fn shard_settled(&self, _host: HostUuid, _decky: &DeckyName) {}
    /// A teardown succeeded: the shard of `decky` on `host` is about to be deleted, at `at`.
    fn shard_retiring(&self, _host: HostUuid, _decky: &DeckyName, _at: DateTime<Utc>) {}
    /// A worker's delta closed a row.
    fn delta_applied(&self) {}
    /// A worker's delta changed nothing: it matches no open row (`"no open row"`), or the
    /// row it names belongs to another host (`"another host's row"`).
    fn delta_ignored(&self, _host: HostUuid, _delta: &LifecycleDelta, _why: &'static str) {}
    /// Work was sent to a host's agent: accepted (`error` is `None`), or not (then the agent
    /// was probed and the rows settled from what it runs).
    fn dispatched(&self, _host: HostUuid, _error: Option<&str>) {}
}

/// [`LifecycleHooks`] that do nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHooks;

impl LifecycleHooks for NoHooks {}

/// Last observed state per (host, decky): a heartbeat whose decky states did not change
/// costs no store round-trip.
type ObservedCache = Mutex<HashMap<(HostUuid, String), ShardState>>;

/// Why a mutation was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MutateError {
    /// The desired fleet has no such decky.
    #[error("no decky {0}")]
    NotFound(DeckyName),
    /// The services given break a rule (unknown, clashing ports, …).
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// None given, and the decky's archetype offers nothing to choose from.
    #[error("{0}: no services to choose from")]
    NoServices(DeckyName),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] RepoError),
}

/// What one [`Lifecycle::mutation_pass`] did.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct MutationPass {
    /// Deckies given new services, with their mutate rows.
    pub mutated: Vec<(DeckyName, Vec<Uuid>)>,
    /// Due deckies left for a later pass: an operation on them is open, their worker is not
    /// live, or they are local and there is no local deployer.
    pub deferred: Vec<DeckyName>,
    /// Due deckies whose mutation was refused.
    pub refused: Vec<(DeckyName, MutateError)>,
    /// When the next not-yet-due decky is due (`None`: none is scheduled).
    pub next_in: Option<std::time::Duration>,
}

/// Moves lifecycle rows, settles shards and takes in what workers report. Clones share one
/// observed-state cache and one fleet lock.
#[derive(Clone)]
pub struct Lifecycle {
    repo: Arc<dyn Repository>,
    bus: Arc<dyn Bus>,
    clock: Arc<dyn Clock>,
    hooks: Arc<dyn LifecycleHooks>,
    observed: Arc<ObservedCache>,
    fleet_lock: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for Lifecycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lifecycle").finish_non_exhaustive()
    }
}

impl Lifecycle {
    /// Rows in `repo`, events on `bus` (each stamped with `ts` from `clock`).
    pub fn new(repo: Arc<dyn Repository>, bus: Arc<dyn Bus>, clock: Arc<dyn Clock>) -> Self {
        Self {
            repo,
            bus,
            clock,
            hooks: Arc::new(NoHooks),
            observed: Arc::default(),
            fleet_lock: Arc::default(),
        }
    }

    /// Serialises changes of the desired fleet: hold it from reading the fleet to
    /// [`Lifecycle::commit`] (a plan made against a fleet another change replaced meanwhile
    /// would undo that change). [`Lifecycle::mutate`] takes it itself.
    pub async fn lock_fleet(&self) -> tokio::sync::OwnedMutexGuard<()> {
        self.fleet_lock.clone().lock_owned().await
    }

    /// Gives `name` new services in the desired fleet — `services`, checked, or (`None`) a
    /// clash-free new set from its archetype, as the mutator picks — stamps `last_mutated`,
    /// records a mutate row and publishes `decky.<name>.mutation` with `trigger` (`operator`,
    /// `scheduled`, …). The row ids; wake the runner afterwards. Takes the fleet lock.
    pub async fn mutate(
        &self,
        name: &DeckyName,
        services: Option<Vec<String>>,
        trigger: &str,
        rng: &mut (impl rand::Rng + Send),
    ) -> Result<Vec<Uuid>, MutateError> {
        let guard = self.lock_fleet().await;
        let mut fleet = self
            .repo
            .desired_fleet()
            .await?
            .ok_or_else(|| MutateError::NotFound(name.clone()))?;
        let custom = fleet.custom_services.clone();
        let d = fleet
            .deckies
            .iter_mut()
            .find(|d| d.name == *name)
            .ok_or_else(|| MutateError::NotFound(name.clone()))?;
        let old = d.services.clone();
        let services = match services {
            Some(s) => {
                crate::model::validate::validate_services("services", &s, &custom)?;
                s
            }
            None => crate::plan::pick_new_services(rng, d)
                .ok_or_else(|| MutateError::NoServices(name.clone()))?,
        };
        let now = self.clock.now();
        d.services = services.clone();
        d.last_mutated = now.timestamp_micros() as f64 / 1e6;
        let changed = d.clone();
        self.repo.put_desired_fleet(&fleet).await?;
        let ids = self.record(&[(changed, Operation::Mutate)], now).await?;
        drop(guard);
        self.publish(BusEvent::mutation(name, &old, &services, trigger));
        Ok(ids)
    }

    /// One pass of the mutator (PRODUCT §3): every decky due for new services by its
    /// `mutate_interval` is mutated with trigger `scheduled`, unless an operation on it is
    /// still open, its worker is not in `live`, or it is a local decky and `local_deployer`
    /// is false (then it waits for a later pass). Wake the runner when something was mutated.
    pub async fn mutation_pass(
        &self,
        live: &BTreeSet<HostUuid>,
        local_deployer: bool,
        rng: &mut (impl rand::Rng + Send),
    ) -> Result<MutationPass, RepoError> {
        let mut out = MutationPass::default();
        let Some(fleet) = self.repo.desired_fleet().await? else {
            return Ok(out);
        };
        let now = self.clock.now().timestamp_micros() as f64 / 1e6;
        let due = crate::plan::due_mutations(&fleet, now);
        out.next_in = due
            .next_in
            .map(|s| std::time::Duration::from_secs_f64(s.max(0.0)));
        if due.due.is_empty() {
            return Ok(out);
        }
        let busy: BTreeSet<DeckyName> = self
            .repo
            .open_lifecycle_rows()
            .await?
            .into_iter()
            .map(|r| r.decky_name)
            .collect();
        for name in due.due {
            let ready = match fleet.decky(name.as_str()).and_then(|d| d.host_uuid) {
                Some(h) => live.contains(&h),
                None => local_deployer,
            };
            if busy.contains(&name) || !ready {
                out.deferred.push(name);
                continue;
            }
            match self.mutate(&name, None, "scheduled", rng).await {
                Ok(ids) => out.mutated.push((name, ids)),
                Err(MutateError::Store(e)) => return Err(e),
                Err(e) => out.refused.push((name, e)),
            }
        }
        Ok(out)
    }

    /// The same, telling `hooks` what it does.
    pub fn with_hooks(mut self, hooks: Arc<dyn LifecycleHooks>) -> Self {
        self.hooks = hooks;
        self
    }

    /// The store the rows live in.
    pub fn repo(&self) -> &Arc<dyn Repository> {
        &self.repo
    }

    /// The clock transitions are stamped with.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The embedder's hooks.
    pub fn hooks(&self) -> &Arc<dyn LifecycleHooks> {
        &self.hooks
    }

    /// Publishes `event` with its `ts`.
    pub fn publish(&self, mut event: BusEvent) {
        event.stamp(self.clock.now());
        self.bus.publish(event);
    }

    /// Moves row `id` to `to` and publishes `decky.<name>.lifecycle` when it changed; a row
    /// that reaches a terminal status settles its shard. Terminal rows never change: that is
    /// an `Ok(None)`, not an error; so is an unknown id.
    pub async fn transition(
        &self,
        id: Uuid,
        to: LifecycleStatus,
        error: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Option<LifecycleRow>, RepoError> {
        let before = self.repo.lifecycle_rows(&[id]).await?.into_iter().next();
        let Some(before) = before else {
            return Ok(None);
        };
        match self.repo.transition_lifecycle(id, to, error, now).await {
            Ok(row) => {
                if row.status == before.status {
                    return Ok(None);
                }
                self.publish(BusEvent::lifecycle(
                    &row.decky_name,
                    row.id,
                    row.operation,
                    row.status,
                    row.error.as_deref(),
                ));
                if row.status.is_terminal() {
                    self.settle_shard(&row, now).await?;
                }
                Ok(Some(row))
            }
            Err(RepoError::Transition(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A closed row settles its decky's shard: running or failed after a deploy or mutate,
    /// gone (or teardown_failed) after a teardown. Observed-state events go on the bus.
    async fn settle_shard(&self, row: &LifecycleRow, now: DateTime<Utc>) -> Result<(), RepoError> {
        let host = row.host_uuid.unwrap_or(HostUuid::LOCAL);
        let shard = self
            .repo
            .shards(Some(host))
            .await?
            .into_iter()
            .find(|s| s.decky_name == row.decky_name);
        lock(&self.observed).remove(&(host, row.decky_name.to_string()));
        self.hooks.shard_settled(host, &row.decky_name);
        let ok = row.status == LifecycleStatus::Succeeded;
        match (row.operation, shard) {
            (Operation::Teardown, Some(_)) if ok => {
                // Retiring first: whoever races the delete finds the decky in one or the
                // other, never in neither.
                self.hooks
                    .shard_retiring(host, &row.decky_name, self.clock.now());
                self.repo.delete_shard(host, &row.decky_name).await?;
                self.publish(BusEvent::state(
                    host,
                    &row.decky_name,
                    "torn_down",
                    StateTransition::Deleted,
                ));
            }
            (op, Some(mut s)) => {
                let previous = s.state;
                s.state = match (op, ok) {
                    (Operation::Teardown, _) => ShardState::TeardownFailed,
                    (_, true) => ShardState::Running,
                    (_, false) => ShardState::Failed,
                };
                s.last_error = row.error.clone();
                s.updated_at = now;
                self.repo.upsert_shard(&s).await?;
                if previous != s.state {
                    self.publish(BusEvent::state(
                        host,
                        &row.decky_name,
                        s.state.as_str(),
                        StateTransition::StateChanged {
                            previous: previous.as_str(),
                        },
                    ));
                }
            }
            (_, None) => {}
        }
        Ok(())
    }

    /// Records a change of the desired fleet: per changed decky, its shard as `pending` (or
    /// `tearing_down` for a teardown) and a new `pending` row of its operation, with a
    /// `.state` event where the recorded state changes. The row ids, in order. The caller has
    /// stored the new desired fleet (see [`Lifecycle::commit`]) and wakes its runner.
    pub async fn record(
        &self,
        changes: &[(DeckyConfig, Operation)],
        now: DateTime<Utc>,
    ) -> Result<Vec<Uuid>, RepoError> {
        // The recorded states before this change, for the `.state` events: one read per host
        // the change touches.
        let mut before: BTreeMap<(HostUuid, String), ShardState> = BTreeMap::new();
        let hosts: BTreeSet<HostUuid> = changes
            .iter()
            .map(|(d, _)| d.host_uuid.unwrap_or(HostUuid::LOCAL))
            .collect();
        for host in hosts {
            for s in self.repo.shards(Some(host)).await? {
                before.insert((s.host_uuid, s.decky_name.to_string()), s.state);
            }
        }
        let mut ids = Vec::with_capacity(changes.len());
        for (d, op) in changes {
            let row = LifecycleRow::new(d.name.clone(), d.host_uuid, *op, now);
            let host = d.host_uuid.unwrap_or(HostUuid::LOCAL);
            let state = match op {
                Operation::Teardown => ShardState::TearingDown,
                _ => ShardState::Pending,
            };
            self.repo
                .upsert_shard(&Shard {
                    host_uuid: host,
                    decky_name: d.name.clone(),
                    decky: d.clone(),
                    state,
                    last_error: None,
                    last_seen: None,
                    updated_at: now,
                })
                .await?;
            self.repo.create_lifecycle(&row).await?;
            match before.get(&(host, d.name.to_string())) {
                None => self.publish(BusEvent::state(
                    host,
                    &d.name,
                    state.as_str(),
                    StateTransition::Inserted,
                )),
                Some(previous) if *previous != state => self.publish(BusEvent::state(
                    host,
                    &d.name,
                    state.as_str(),
                    StateTransition::StateChanged {
                        previous: previous.as_str(),
                    },
                )),
                Some(_) => {}
            }
            ids.push(row.id);
        }
        Ok(ids)
    }

    /// Applies a planned fleet change ([`crate::fleet::plan_fleet_change`]): stores its fleet
    /// as the desired one and [records](Lifecycle::record) its per-decky changes. The row
    /// ids; wake the runner afterwards.
    ///
    /// ```
    /// use std::sync::Arc;
    ///
    /// use decnet_core::fleet::change::*;
    /// use decnet_core::fleet::{FleetFlags, NetInputs};
    /// use decnet_core::model::{LifecycleStatus, Mode, Operation, ShardState, Subnet};
    /// use decnet_core::orchestrate::Lifecycle;
    /// use decnet_core::testkit::{ManualClock, MemRepository};
    /// use decnet_core::traits::{Bus, BusEvent, Clock, Repository};
    /// use rand::SeedableRng;
    ///
    /// /// Collects the events the lifecycle publishes.
    /// #[derive(Default)]
    /// struct Events(std::sync::Mutex<Vec<BusEvent>>);
    /// impl Bus for Events {
    ///     fn publish(&self, event: BusEvent) {
    ///         self.0.lock().unwrap().push(event);
    ///     }
    /// }
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// // Two unihost deckies running ssh, planned on 10.9.0.0/24.
    /// let req = FleetChangeRequest {
    ///     requested: Requested::Flags(FleetFlags {
    ///         count: 2,
    ///         services: Some(vec!["ssh".into()]),
    ///         ..FleetFlags::default()
    ///     }),
    ///     net: NetRequest::Inputs(NetInputs {
    ///         interface: Some("eth1".into()),
    ///         subnet: Some(Subnet::parse("subnet", "10.9.0.0/24").unwrap()),
    ///         gateway: Some("10.9.0.1".parse().unwrap()),
    ///         host_ip: Some("10.9.0.2".parse().unwrap()),
    ///         driver: None,
    ///     }),
    ///     replace: true,
    ///     mode: ModeChoice::Fixed(Mode::Unihost),
    ///     mutate_interval: None,
    ///     log_file: None,
    ///     host_ip_optional: false,
    /// };
    /// let facts = FleetFacts {
    ///     existing: None,
    ///     live_hosts: &[],
    ///     reserved: &[],
    ///     local_deployer: true,
    ///     host_net: None,
    ///     fleet_limit: Some(256),
    ///     now_epoch: 0.0,
    /// };
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    /// let change = plan_fleet_change(&req, &facts, &mut rng).unwrap();
    ///
    /// let repo = Arc::new(MemRepository::new());
    /// let events = Arc::new(Events::default());
    /// let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    /// let lifecycle = Lifecycle::new(repo.clone(), events.clone(), clock.clone());
    /// let ids = lifecycle.commit(&change, clock.now()).await.unwrap();
    ///
    /// // The desired fleet is stored, and each new decky has a pending deploy row and a
    /// // pending shard on the master's own host, announced by a `.state` event.
    /// assert_eq!(repo.desired_fleet().await.unwrap(), Some(change.fleet.clone()));
    /// let rows = repo.lifecycle_rows(&ids).await.unwrap();
    /// assert_eq!(rows.len(), 2);
    /// assert!(rows.iter().all(|r| r.operation == Operation::Deploy
    ///     && r.status == LifecycleStatus::Pending));
    /// let shards = repo.shards(None).await.unwrap();
    /// assert!(shards.iter().all(|s| s.state == ShardState::Pending));
    /// let events = events.0.lock().unwrap();
    /// assert_eq!(events.len(), 2);
    /// assert!(events.iter().all(|e| e.topic.ends_with(".state")));
    /// # });
    /// ```
    pub async fn commit(
        &self,
        change: &crate::fleet::FleetChange,
        now: DateTime<Utc>,
    ) -> Result<Vec<Uuid>, RepoError> {
        self.repo.put_desired_fleet(&change.fleet).await?;
        let changes: Vec<(DeckyConfig, Operation)> = change
            .changes
            .iter()
            .map(|c| (c.decky.clone(), c.operation))
            .collect();
        self.record(&changes, now).await
    }

    /// Takes in one accepted heartbeat of `host` (its identity already checked): applies its
    /// lifecycle deltas, refreshes the host's own open rows still in flight (`in_flight`,
    /// never another host's), and records the snapshot's decky states ([`Lifecycle::observe`]).
    pub async fn ingest_heartbeat(
        &self,
        host: HostUuid,
        beat: &HeartbeatBody,
        now: DateTime<Utc>,
    ) -> Result<(), RepoError> {
        for delta in &beat.lifecycle {
            self.apply_delta(host, delta).await?;
        }
        if !beat.status.in_flight.is_empty() {
            self.repo
                .touch_lifecycle(host, &beat.status.in_flight, now)
                .await?;
        }
        self.observe(host, &beat.status, now).await
    }

    /// Records a snapshot's per-decky states (`running`, or `degraded` when the runtime does
    /// not show the decky running) as observed at `status.taken_at`, skipping deckies whose
    /// state is unchanged since the last snapshot (no store round-trip at all). A snapshot
    /// that is not deployed (none yet, or an unreadable worker state) changes nothing. Changes
    /// go on the bus. Used for workers' heartbeats and for this machine's own deckies
    /// (`host` [`HostUuid::LOCAL`]).
    pub async fn observe(
        &self,
        host: HostUuid,
        status: &AgentStatus,
        now: DateTime<Utc>,
    ) -> Result<(), RepoError> {
        if !status.deployed {
            return Ok(());
        }
        let empty = Default::default();
        let runtime = status.runtime.as_ref().unwrap_or(&empty);
        for d in &status.deckies {
            let state = if runtime.get(d.name.as_str()).is_some_and(|r| r.running) {
                ShardState::Running
            } else {
                ShardState::Degraded
            };
            let key = (host, d.name.to_string());
            if lock(&self.observed).get(&key) == Some(&state) {
                continue;
            }
            let outcome = self
                .repo
                .observe_shard(
                    &ObservedShard {
                        host_uuid: host,
                        decky_name: d.name.clone(),
                        state,
                        taken_at: status.taken_at,
                    },
                    now,
                )
                .await?;
            match outcome {
                ObserveOutcome::Changed { previous } => {
                    lock(&self.observed).insert(key, state);
                    self.publish(BusEvent::state(
                        host,
                        &d.name,
                        state.as_str(),
                        StateTransition::StateChanged {
                            previous: previous.as_str(),
                        },
                    ));
                }
                ObserveOutcome::Unchanged => {
                    lock(&self.observed).insert(key, state);
                }
                ObserveOutcome::Refused => {}
            }
        }
        Ok(())
    }

    /// Forgets what was observed on `host` (it was decommissioned).
    pub fn forget_observed(&self, host: HostUuid) {
        lock(&self.observed).retain(|(h, _), _| *h != host);
    }

    /// Closes the row a worker's delta speaks of: by `lifecycle_id` when given (and only if
    /// that row belongs to the reporting host), else the oldest open row of that decky and
    /// operation on that host. Applying the same delta twice changes nothing. `true` when a
    /// row changed.
    pub async fn apply_delta(
        &self,
        host: HostUuid,
        delta: &LifecycleDelta,
    ) -> Result<bool, RepoError> {
        let row = match delta.lifecycle_id {
            Some(id) => self.repo.lifecycle_rows(&[id]).await?.into_iter().next(),
            None => {
                self.repo
                    .find_open_lifecycle(&delta.decky_name, delta.operation, Some(host))
                    .await?
            }
        };
        let Some(row) = row else {
            self.hooks.delta_ignored(host, delta, "no open row");
            return Ok(false);
        };
        if row.host_uuid != Some(host) {
            // A worker speaks only for its own rows.
            self.hooks.delta_ignored(host, delta, "another host's row");
            return Ok(false);
        }
        let changed = self
            .transition(
                row.id,
                delta.status.into(),
                delta.error.clone(),
                delta.completed_at,
            )
            .await?
            .is_some();
        if changed {
            self.hooks.delta_applied();
        }
        Ok(changed)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::model::fixtures::{config, decky};
    use crate::model::{DeckyRuntime, Mode, RuntimeMap};
    use crate::testkit::{ManualClock, MemRepository};
    use crate::traits::MockRepository;

    fn t0() -> DateTime<Utc> {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    #[derive(Debug, Default)]
    struct Quiet;
    impl Bus for Quiet {
        fn publish(&self, _: BusEvent) {}
    }

    const H: HostUuid = HostUuid(uuid::Uuid::from_u128(7));

    fn snapshot(running: bool) -> AgentStatus {
        let c = config(
            Mode::Swarm,
            "10.0.0.0/24",
            "10.0.0.1",
            vec![decky("a", [10, 0, 0, 10].into(), &["ssh"])],
        );
        let state = if running { "running" } else { "exited" };
        let rt: RuntimeMap = [(
            "a".to_string(),
            DeckyRuntime::from_services(BTreeMap::from([("ssh".into(), state.into())])),
        )]
        .into();
        AgentStatus::deployed(&c, "/x".into(), rt, t0(), vec![])
    }

    #[tokio::test]
    async fn an_unchanged_snapshot_costs_no_store_call() {
        let mut repo = MockRepository::new();
        // Running once, degraded once: the repeated running snapshot never reaches the store.
        repo.expect_observe_shard()
            .withf(|o, _| o.state == ShardState::Running)
            .times(1)
            .returning(|_, _| {
                Ok(ObserveOutcome::Changed {
                    previous: ShardState::Pending,
                })
            });
        repo.expect_observe_shard()
            .withf(|o, _| o.state == ShardState::Degraded)
            .times(1)
            .returning(|_, _| {
                Ok(ObserveOutcome::Changed {
                    previous: ShardState::Running,
                })
            });
        let l = Lifecycle::new(
            Arc::new(repo),
            Arc::new(Quiet),
            Arc::new(ManualClock::new(t0())),
        );
        for _ in 0..3 {
            l.observe(H, &snapshot(true), t0()).await.unwrap();
        }
        l.observe(H, &snapshot(false), t0()).await.unwrap();
        l.observe(H, &snapshot(false), t0()).await.unwrap();
        // Not deployed (an unreadable state file): nothing is observed at all.
        let mut unreadable = snapshot(false);
        unreadable.deployed = false;
        l.observe(H, &unreadable, t0()).await.unwrap();
    }

    #[tokio::test]
    async fn a_heartbeat_refreshes_only_its_own_hosts_rows_and_applies_its_deltas() {
        let repo = Arc::new(MemRepository::new());
        let clock = Arc::new(ManualClock::new(t0()));
        let l = Lifecycle::new(repo.clone(), Arc::new(Quiet), clock.clone());
        let other = HostUuid(uuid::Uuid::from_u128(8));
        let name = DeckyName::new("a").unwrap();
        let mine = LifecycleRow::new(name.clone(), Some(H), Operation::Deploy, t0());
        let theirs = LifecycleRow::new(name.clone(), Some(other), Operation::Deploy, t0());
        let closing = LifecycleRow::new(name.clone(), Some(H), Operation::Mutate, t0());
        for r in [&mine, &theirs, &closing] {
            repo.create_lifecycle(r).await.unwrap();
        }
        clock.advance(std::time::Duration::from_secs(60));
        let now = clock.now();
        let mut status = snapshot(true);
        status.deployed = false;
        status.in_flight = vec![mine.id, theirs.id];
        let beat = HeartbeatBody {
            host_uuid: H,
            agent_version: None,
            wire_version: None,
            status,
            lifecycle: vec![LifecycleDelta::new(
                Some(closing.id),
                name,
                Operation::Mutate,
                Ok(()),
                now,
            )],
        };
        l.ingest_heartbeat(H, &beat, now).await.unwrap();
        let rows = repo
            .lifecycle_rows(&[mine.id, theirs.id, closing.id])
            .await
            .unwrap();
        let get = |id: Uuid| rows.iter().find(|r| r.id == id).unwrap();
        assert_eq!(get(mine.id).updated_at, now, "its own row is refreshed");
        assert_eq!(get(theirs.id).updated_at, t0(), "another host's is not");
        assert_eq!(get(closing.id).status, LifecycleStatus::Succeeded);
    }

    #[tokio::test]
    async fn the_mutation_pass_mutates_what_is_due_and_ready_and_defers_the_rest() {
        use rand::SeedableRng;
        let repo = Arc::new(MemRepository::new());
        let clock = Arc::new(ManualClock::new(t0()));
        let l = Lifecycle::new(repo.clone(), Arc::new(Quiet), clock.clone());
        let dead = HostUuid(uuid::Uuid::from_u128(9));
        let mut deckies = vec![
            decky("ready", [10, 0, 0, 10].into(), &["ssh"]),
            decky("busy", [10, 0, 0, 11].into(), &["ssh"]),
            decky("orphan", [10, 0, 0, 12].into(), &["ssh"]),
            decky("later", [10, 0, 0, 13].into(), &["ssh"]),
        ];
        for d in &mut deckies {
            d.host_uuid = Some(H);
            d.archetype = Some("linux-server".into());
            d.mutate_interval = Some(30);
        }
        deckies[2].host_uuid = Some(dead);
        deckies[3].last_mutated = (t0().timestamp() + 600) as f64;
        let mut fleet = config(Mode::Swarm, "10.0.0.0/24", "10.0.0.1", deckies);
        fleet.mutate_interval = Some(30);
        repo.put_desired_fleet(&fleet).await.unwrap();
        let open = LifecycleRow::new(
            DeckyName::new("busy").unwrap(),
            Some(H),
            Operation::Deploy,
            t0(),
        );
        repo.create_lifecycle(&open).await.unwrap();
        let live = BTreeSet::from([H]);
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let pass = l.mutation_pass(&live, false, &mut rng).await.unwrap();
        let names = |v: &[DeckyName]| v.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let mutated: Vec<DeckyName> = pass.mutated.iter().map(|(n, _)| n.clone()).collect();
        assert_eq!(names(&mutated), ["ready"]);
        assert_eq!(names(&pass.deferred), ["busy", "orphan"]);
        assert!(pass.refused.is_empty());
        // `later` carries a last mutation in the future (a clock that went back), which counts
        // as just now: due in one interval.
        assert_eq!(pass.next_in, Some(std::time::Duration::from_secs(30 * 60)));
        let rows = repo.lifecycle_rows(&pass.mutated[0].1).await.unwrap();
        assert_eq!(rows[0].operation, Operation::Mutate);
        // Mutated just now: not due again in this pass's time.
        let again = l.mutation_pass(&live, false, &mut rng).await.unwrap();
        assert!(again.mutated.iter().all(|(n, _)| n.as_str() != "ready"));
    }
}

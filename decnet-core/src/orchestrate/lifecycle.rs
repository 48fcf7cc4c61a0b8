//! Lifecycle transitions: compare-and-set in the [`Repository`], then a bus event, and a
//! closed row settles its decky's shard. Every writer of lifecycle rows goes through
//! [`Lifecycle`] — the runner, the sweep, restart recovery, the operator API and the workers'
//! deltas — so the rules hold whoever moves a row.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::model::{
    DeckyConfig, DeckyName, HostUuid, LifecycleDelta, LifecycleRow, LifecycleStatus, Operation,
    Shard, ShardState,
};
use crate::traits::{Bus, BusEvent, Clock, RepoError, Repository, StateTransition};

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

/// Moves lifecycle rows and settles shards.
#[derive(Clone)]
pub struct Lifecycle {
    repo: Arc<dyn Repository>,
    bus: Arc<dyn Bus>,
    clock: Arc<dyn Clock>,
    hooks: Arc<dyn LifecycleHooks>,
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
        }
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

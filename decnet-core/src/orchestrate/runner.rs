//! The lifecycle runner (feature `runtime`): picks up pending rows and carries them out, per
//! host and one host at a time. Local (unihost) rows run through the in-process [`Deployer`]
//! and are closed here; swarm rows are sent to the host's agent through an [`AgentConnector`]
//! with their lifecycle ids and closed by the agent's deltas. A failed dispatch probes (the
//! agent's `/status`, or the deployer's runtime) and records per-decky outcomes; only a failed
//! probe fails every row ([`super::dispatch`]). The sweep fails rows without progress past
//! their operation's timeout; [`Runner::recover`] fails rows a previous process left open.
//!
//! The embedder starts and stops it: [`Runner::run`] and [`Runner::sweep`] run until their
//! shutdown future resolves, and `run` waits for the dispatches it started before it returns.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::model::{DecnetConfig, HostUuid, LifecycleRow, LifecycleStatus, Operation};
use crate::orchestrate::dispatch::{dispatch_local, dispatch_swarm, RowOutcome, SwarmDispatch};
use crate::orchestrate::lifecycle::Lifecycle;
use crate::traits::{AgentConnector, Deployer, RepoError};

/// The reason [`Runner::recover`] gives.
pub const RESTARTED: &str = "master restarted during operation";

/// Why a row with no local deployer fails.
pub const NO_LOCAL_DEPLOYER: &str =
    "this master has no local deployer (start it where Docker runs, or enroll a worker)";

/// The runner's timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunnerSettings {
    /// Per-operation timeouts of the sweep, from a row's last progress.
    /// After this long without progress a `deploy` row is failed by the sweep.
    pub deploy_timeout: Duration,
    /// The same for a `mutate` row.
    pub mutate_timeout: Duration,
    /// The same for a `teardown` row.
    pub teardown_timeout: Duration,
    /// How often the sweep looks.
    pub sweep_every: Duration,
    /// How long one dispatch to an agent may take.
    pub dispatch_timeout: Duration,
    /// How often the runner looks for pending rows when nobody wakes it.
    pub poll_every: Duration,
}

impl Default for RunnerSettings {
    fn default() -> Self {
        Self {
            deploy_timeout: Duration::from_secs(15 * 60),
            mutate_timeout: Duration::from_secs(10 * 60),
            teardown_timeout: Duration::from_secs(5 * 60),
            sweep_every: Duration::from_secs(30),
            dispatch_timeout: Duration::from_secs(30),
            poll_every: Duration::from_secs(5),
        }
    }
}

impl RunnerSettings {
    /// The same, with `timeout` as the sweep's timeout of `op`.
    pub fn with_timeout(mut self, op: Operation, timeout: Duration) -> Self {
        match op {
            Operation::Deploy => self.deploy_timeout = timeout,
            Operation::Mutate => self.mutate_timeout = timeout,
            Operation::Teardown => self.teardown_timeout = timeout,
        }
        self
    }

    /// The same, sweeping every `every`.
    pub fn with_sweep_every(mut self, every: Duration) -> Self {
        self.sweep_every = every;
        self
    }

    /// The same, giving one dispatch to an agent `timeout`.
    pub fn with_dispatch_timeout(mut self, timeout: Duration) -> Self {
        self.dispatch_timeout = timeout;
        self
    }

    /// The sweep's timeout of `op`.
    pub fn timeout_of(&self, op: Operation) -> Duration {
        match op {
            Operation::Deploy => self.deploy_timeout,
            Operation::Mutate => self.mutate_timeout,
            Operation::Teardown => self.teardown_timeout,
        }
    }
}

/// Carries out lifecycle rows; see the module docs.
///
/// An embedder builds one over its [`Lifecycle`], a [`Deployer`] for this machine's deckies
/// and an [`AgentConnector`] for workers, then runs it until its shutdown future resolves:
///
/// ```
/// use std::collections::BTreeMap;
/// use std::sync::{Arc, Mutex};
///
/// use decnet_core::model::{DeckyName, DeckyRuntime, DecnetConfig, LifecycleStatus, RuntimeMap};
/// use decnet_core::orchestrate::{Lifecycle, Runner, RunnerSettings};
/// use decnet_core::testkit::{ManualClock, MemRepository};
/// use decnet_core::traits::{
///     DeckyOutcome, DeployReport, Deployer, DeployerError, MockAgentConnector, MockBus,
///     Repository,
/// };
/// # use decnet_core::fleet::change::*;
/// # use decnet_core::fleet::{FleetFlags, NetInputs};
/// # use decnet_core::model::{Mode, Subnet};
/// # use decnet_core::traits::Clock;
/// # use rand::SeedableRng;
///
/// /// "Runs" deckies in memory: decky name → its services.
/// #[derive(Default)]
/// struct InMemory(Mutex<BTreeMap<String, Vec<String>>>);
///
/// #[async_trait::async_trait]
/// impl Deployer for InMemory {
///     async fn deploy(&self, desired: &DecnetConfig) -> Result<DeployReport, DeployerError> {
///         let mut running = self.0.lock().unwrap();
///         let mut report = DeployReport::default();
///         for d in &desired.deckies {
///             running.insert(d.name.to_string(), d.services.clone());
///             report.outcomes.insert(d.name.clone(), DeckyOutcome::Succeeded);
///         }
///         Ok(report)
///     }
///     async fn mutate(&self, d: &DeckyName, s: &[String]) -> Result<DeployReport, DeployerError> {
///         self.0.lock().unwrap().insert(d.to_string(), s.to_vec());
///         let mut report = DeployReport::default();
///         report.outcomes.insert(d.clone(), DeckyOutcome::Succeeded);
///         Ok(report)
///     }
///     async fn teardown<'a>(
///         &self,
///         d: Option<&'a DeckyName>,
///     ) -> Result<DeployReport, DeployerError> {
///         let mut running = self.0.lock().unwrap();
///         match d {
///             Some(d) => drop(running.remove(d.as_str())),
///             None => running.clear(),
///         }
///         Ok(DeployReport::default())
///     }
///     async fn runtime(&self) -> Result<RuntimeMap, DeployerError> {
///         let running = self.0.lock().unwrap();
///         Ok(running
///             .iter()
///             .map(|(name, svcs)| {
///                 let states = svcs.iter().map(|s| (s.clone(), "running".to_string())).collect();
///                 (name.clone(), DeckyRuntime::from_services(states))
///             })
///             .collect())
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let repo = Arc::new(MemRepository::new());
/// let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
/// let mut bus = MockBus::new();
/// bus.expect_publish().returning(|_| ());
/// let lifecycle = Lifecycle::new(repo.clone(), Arc::new(bus), clock.clone());
/// # let req = FleetChangeRequest {
/// #     requested: Requested::Flags(FleetFlags {
/// #         count: 2,
/// #         services: Some(vec!["ssh".into()]),
/// #         ..FleetFlags::default()
/// #     }),
/// #     net: NetRequest::Inputs(NetInputs {
/// #         interface: Some("eth1".into()),
/// #         subnet: Some(Subnet::parse("subnet", "10.9.0.0/24").unwrap()),
/// #         gateway: Some("10.9.0.1".parse().unwrap()),
/// #         host_ip: Some("10.9.0.2".parse().unwrap()),
/// #         driver: None,
/// #     }),
/// #     replace: true,
/// #     mode: ModeChoice::Fixed(Mode::Unihost),
/// #     mutate_interval: None,
/// #     log_file: None,
/// #     host_ip_optional: false,
/// # };
/// # let facts = FleetFacts {
/// #     existing: None,
/// #     live_hosts: &[],
/// #     reserved: &[],
/// #     local_deployer: true,
/// #     host_net: None,
/// #     fleet_limit: Some(256),
/// #     now_epoch: 0.0,
/// # };
/// # let change = plan_fleet_change(&req, &facts, &mut rand::rngs::StdRng::seed_from_u64(7))
/// #     .unwrap();
/// // Two unihost deckies planned (see `plan_fleet_change`) and committed as pending rows.
/// let ids = lifecycle.commit(&change, clock.now()).await.unwrap();
///
/// // Unihost only: the runner never reaches for a worker, so the connector expects nothing.
/// let deployer = Arc::new(InMemory::default());
/// let runner = Arc::new(Runner::new(
///     lifecycle,
///     Arc::new(MockAgentConnector::new()),
///     Some(deployer.clone()),
///     RunnerSettings::default(),
/// ));
/// // Shutdown is a parameter. Already resolved here: the runner makes one pass, waits for
/// // the dispatch it started, and returns. A real embedder passes e.g. a cancellation token.
/// runner.run(std::future::ready(()), |e| eprintln!("store: {e}")).await;
///
/// let rows = repo.lifecycle_rows(&ids).await.unwrap();
/// assert!(rows.iter().all(|r| r.status == LifecycleStatus::Succeeded));
/// assert_eq!(deployer.0.lock().unwrap().len(), 2);
/// # });
/// ```
pub struct Runner {
    lifecycle: Lifecycle,
    agents: Arc<dyn AgentConnector>,
    local: Option<Arc<dyn Deployer>>,
    settings: RunnerSettings,
    wake: tokio::sync::Notify,
    /// Hosts (None = local) with a dispatch in progress.
    busy: Mutex<HashSet<Option<HostUuid>>>,
    /// The dispatches started and not yet awaited.
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("settings", &self.settings)
            .field("local", &self.local.is_some())
            .finish_non_exhaustive()
    }
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 && s.is_multiple_of(60) {
        format!("{} min", s / 60)
    } else {
        format!("{s} s")
    }
}

impl Runner {
    /// A runner moving rows through `lifecycle`, reaching workers through `agents` and this
    /// machine's deckies through `local` (`None`: local rows fail, [`NO_LOCAL_DEPLOYER`]).
    pub fn new(
        lifecycle: Lifecycle,
        agents: Arc<dyn AgentConnector>,
        local: Option<Arc<dyn Deployer>>,
        settings: RunnerSettings,
    ) -> Self {
        Self {
            lifecycle,
            agents,
            local,
            settings,
            wake: tokio::sync::Notify::new(),
            busy: Mutex::new(HashSet::new()),
            tasks: Mutex::new(Vec::new()),
        }
    }

    /// The lifecycle the runner moves rows through.
    pub fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }

    /// The runner's settings.
    pub fn settings(&self) -> &RunnerSettings {
        &self.settings
    }

    /// Tells the runner that rows are pending (it looks at once instead of at its next poll).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Fails every row a previous process left open; how many.
    pub async fn recover(&self) -> Result<usize, RepoError> {
        let now = self.lifecycle.clock().now();
        let mut n = 0;
        for row in self.lifecycle.repo().open_lifecycle_rows().await? {
            if self
                .lifecycle
                .transition(row.id, LifecycleStatus::Failed, Some(RESTARTED.into()), now)
                .await?
                .is_some()
            {
                n += 1;
            }
        }
        Ok(n)
    }

    /// One pass of the sweep: fails open rows whose last progress is older than their
    /// operation's timeout; how many.
    pub async fn sweep_once(&self) -> Result<usize, RepoError> {
        let now = self.lifecycle.clock().now();
        let mut n = 0;
        for row in self.lifecycle.repo().open_lifecycle_rows().await? {
            let limit = self.settings.timeout_of(row.operation);
            let idle = (now - row.updated_at).to_std().unwrap_or_default();
            if idle < limit {
                continue;
            }
            let reason = format!(
                "no progress for {} ({} timeout {}); the {} never reported back",
                human(idle),
                row.operation,
                human(limit),
                if row.host_uuid.is_some() {
                    "agent"
                } else {
                    "deployer"
                }
            );
            if self
                .lifecycle
                .transition(row.id, LifecycleStatus::Failed, Some(reason), now)
                .await?
                .is_some()
            {
                n += 1;
            }
        }
        Ok(n)
    }

    /// The sweep every [`RunnerSettings::sweep_every`] until `shutdown` resolves; `report`
    /// hears each pass that failed rows (or could not read the store).
    pub async fn sweep<F>(
        self: Arc<Self>,
        shutdown: F,
        report: impl Fn(Result<usize, RepoError>) + Send,
    ) where
        F: Future<Output = ()> + Send,
    {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(self.settings.sweep_every) => {}
            }
            match self.sweep_once().await {
                Ok(0) => {}
                r => report(r),
            }
        }
    }

    /// Looks for pending rows whenever woken (and every [`RunnerSettings::poll_every`]) until
    /// `shutdown` resolves, then waits for the dispatches it started. `report` hears store
    /// errors.
    pub async fn run<F>(self: Arc<Self>, shutdown: F, report: impl Fn(RepoError) + Send)
    where
        F: Future<Output = ()> + Send,
    {
        tokio::pin!(shutdown);
        loop {
            if let Err(e) = self.run_once().await {
                report(e);
            }
            tokio::select! {
                _ = &mut shutdown => break,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(self.settings.poll_every) => {}
            }
        }
        self.join().await;
    }

    /// Waits for every dispatch started so far.
    pub async fn join(&self) {
        loop {
            let tasks: Vec<_> = std::mem::take(&mut *lock(&self.tasks));
            if tasks.is_empty() {
                return;
            }
            for t in tasks {
                let _ = t.await;
            }
        }
    }

    /// Starts a dispatch for every host that has pending rows and none in progress.
    pub async fn run_once(self: &Arc<Self>) -> Result<(), RepoError> {
        let mut by_host: BTreeMap<Option<HostUuid>, Vec<LifecycleRow>> = BTreeMap::new();
        for row in self.lifecycle.repo().open_lifecycle_rows().await? {
            if row.status == LifecycleStatus::Pending {
                by_host.entry(row.host_uuid).or_default().push(row);
            }
        }
        let mut tasks = lock(&self.tasks);
        tasks.retain(|t| !t.is_finished());
        for (host, rows) in by_host {
            if !lock(&self.busy).insert(host) {
                continue;
            }
            let me = self.clone();
            tasks.push(tokio::spawn(async move {
                let _ = match host {
                    None => me.run_local(rows).await,
                    Some(h) => me.run_swarm(h, rows).await,
                };
                lock(&me.busy).remove(&host);
                // Rows may have arrived meanwhile.
                me.wake.notify_one();
            }));
        }
        Ok(())
    }

    /// Marks rows running; returns the ones that are (a row the sweep closed meanwhile is
    /// not).
    async fn start_rows(&self, rows: Vec<LifecycleRow>) -> Result<Vec<LifecycleRow>, RepoError> {
        let now = self.lifecycle.clock().now();
        let mut out = Vec::new();
        for row in rows {
            if let Some(r) = self
                .lifecycle
                .transition(row.id, LifecycleStatus::Running, None, now)
                .await?
            {
                out.push(r);
            }
        }
        Ok(out)
    }

    async fn fail_all(&self, rows: &[LifecycleRow], error: &str) -> Result<(), RepoError> {
        let now = self.lifecycle.clock().now();
        for row in rows {
            self.lifecycle
                .transition(
                    row.id,
                    LifecycleStatus::Failed,
                    Some(error.to_string()),
                    now,
                )
                .await?;
        }
        Ok(())
    }

    async fn apply(&self, outcomes: Vec<RowOutcome>) -> Result<(), RepoError> {
        let now = self.lifecycle.clock().now();
        for o in outcomes {
            self.lifecycle
                .transition(o.id, o.status, o.error, now)
                .await?;
        }
        Ok(())
    }

    async fn run_local(&self, rows: Vec<LifecycleRow>) -> Result<(), RepoError> {
        let rows = self.start_rows(rows).await?;
        if rows.is_empty() {
            return Ok(());
        }
        let Some(deployer) = self.local.clone() else {
            return self.fail_all(&rows, NO_LOCAL_DEPLOYER).await;
        };
        // The complete local set converges; with nothing left, everything local goes.
        let desired = desired_for(self.lifecycle.repo().as_ref(), None).await?;
        let outcomes = dispatch_local(deployer.as_ref(), desired.as_ref(), &rows).await;
        self.apply(outcomes).await
    }

    async fn run_swarm(
        &self,
        host_uuid: HostUuid,
        rows: Vec<LifecycleRow>,
    ) -> Result<(), RepoError> {
        let host = self.lifecycle.repo().host(host_uuid).await?;
        let rows = self.start_rows(rows).await?;
        if rows.is_empty() {
            return Ok(());
        }
        let Some(host) = host else {
            let why = format!("host {host_uuid} is not enrolled (decommissioned?)");
            return self.fail_all(&rows, &why).await;
        };
        let shard = desired_for(self.lifecycle.repo().as_ref(), Some(host_uuid)).await?;
        let agent = match self.agents.connect(&host, self.settings.dispatch_timeout) {
            Ok(c) => c,
            Err(e) => return self.fail_all(&rows, &e.to_string()).await,
        };
        // The host's complete shard: deckies not in it are removed by the agent's converge,
        // and their teardown deltas close the teardown rows.
        match dispatch_swarm(agent.as_ref(), shard.as_ref(), &rows).await {
            SwarmDispatch::Settled { error, outcomes } => {
                self.lifecycle
                    .hooks()
                    .dispatched(host_uuid, Some(&error.to_string()));
                self.apply(outcomes).await
            }
            _ => {
                self.lifecycle.hooks().dispatched(host_uuid, None);
                Ok(())
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The desired deckies of one host (`None`: this machine), as a complete config; `None` when
/// no fleet was ever deployed.
pub async fn desired_for(
    repo: &dyn crate::traits::Repository,
    host: Option<HostUuid>,
) -> Result<Option<DecnetConfig>, RepoError> {
    let Some(mut fleet) = repo.desired_fleet().await? else {
        return Ok(None);
    };
    fleet.deckies.retain(|d| d.host_uuid == host);
    Ok(Some(fleet))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    //! The runner over [`MemRepository`], mock agents and deployers, a [`ManualClock`] and
    //! paused tokio time: no test waits on the wall clock.

    use std::collections::BTreeMap;

    use chrono::{DateTime, Utc};
    use uuid::Uuid;

    use super::*;
    use crate::model::fixtures::{config, decky};
    use crate::model::{
        AgentStatus, DeckyName, DeckyRuntime, Host, HostName, HostStatus, Mode, RuntimeMap,
    };
    use crate::testkit::{ManualClock, MemRepository};
    use crate::traits::{
        AgentError, Bus, BusEvent, DeployerError, MockAgentClient, MockAgentConnector,
        MockDeployer, Repository,
    };

    fn t0() -> DateTime<Utc> {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    /// Keeps what was published.
    #[derive(Debug, Default)]
    struct Recorded(Mutex<Vec<BusEvent>>);

    impl Bus for Recorded {
        fn publish(&self, event: BusEvent) {
            self.0.lock().unwrap().push(event);
        }
    }

    const H: HostUuid = HostUuid(uuid::Uuid::from_u128(7));

    struct World {
        repo: Arc<MemRepository>,
        clock: Arc<ManualClock>,
        bus: Arc<Recorded>,
    }

    /// A store with worker `H` and the desired fleet `names` (on `host`), one pending `op`
    /// row per name.
    async fn world(host: Option<HostUuid>, names: &[&str], op: Operation) -> (World, Vec<Uuid>) {
        let repo = Arc::new(MemRepository::new());
        repo.insert_host(&Host {
            uuid: H,
            name: HostName::new_worker("w-1").unwrap(),
            address: "10.0.0.2:8765".into(),
            fingerprint: "ab".repeat(32),
            status: HostStatus::Active,
            last_heartbeat: Some(t0()),
            agent_version: None,
            enrolled_at: t0(),
            cert_expires_at: None,
            previous_fingerprint: None,
            previous_valid_until: None,
        })
        .await
        .unwrap();
        let mut deckies: Vec<_> = names
            .iter()
            .enumerate()
            .map(|(i, n)| decky(n, [10, 0, 0, 10 + i as u8].into(), &["ssh"]))
            .collect();
        for d in &mut deckies {
            d.host_uuid = host;
        }
        let mode = if host.is_some() {
            Mode::Swarm
        } else {
            Mode::Unihost
        };
        repo.put_desired_fleet(&config(mode, "10.0.0.0/24", "10.0.0.1", deckies))
            .await
            .unwrap();
        let mut ids = Vec::new();
        for n in names {
            let row = LifecycleRow::new(DeckyName::new(*n).unwrap(), host, op, t0());
            repo.create_lifecycle(&row).await.unwrap();
            ids.push(row.id);
        }
        let w = World {
            repo,
            clock: Arc::new(ManualClock::new(t0())),
            bus: Arc::new(Recorded::default()),
        };
        (w, ids)
    }

    impl World {
        fn runner(
            &self,
            agents: MockAgentConnector,
            local: Option<MockDeployer>,
            settings: RunnerSettings,
        ) -> Arc<Runner> {
            let lifecycle = Lifecycle::new(self.repo.clone(), self.bus.clone(), self.clock.clone());
            Arc::new(Runner::new(
                lifecycle,
                Arc::new(agents),
                local.map(|d| Arc::new(d) as Arc<dyn Deployer>),
                settings,
            ))
        }

        async fn statuses(&self, ids: &[Uuid]) -> Vec<(LifecycleStatus, Option<String>)> {
            let rows = self.repo.lifecycle_rows(ids).await.unwrap();
            ids.iter()
                .map(|id| {
                    let r = rows.iter().find(|r| r.id == *id).unwrap();
                    (r.status, r.error.clone())
                })
                .collect()
        }
    }

    fn runtime(up: &[&str]) -> RuntimeMap {
        up.iter()
            .map(|n| {
                (
                    n.to_string(),
                    DeckyRuntime::from_services(BTreeMap::from([("ssh".into(), "running".into())])),
                )
            })
            .collect()
    }

    fn reset() -> AgentError {
        AgentError::Unreachable {
            message: "connection reset".into(),
            source: None,
        }
    }

    /// An agent whose deploy fails and whose `/status` shows `up` running (or cannot be read).
    fn agents(up: Option<&'static [&'static str]>) -> MockAgentConnector {
        let mut c = MockAgentConnector::new();
        c.expect_connect().returning(move |host, _| {
            assert_eq!(host.uuid, H);
            let mut a = MockAgentClient::new();
            a.expect_deploy().times(1).returning(|_| Err(reset()));
            a.expect_status().times(1).returning(move || match up {
                Some(up) => Ok(AgentStatus::deployed(
                    &config(Mode::Swarm, "10.0.0.0/24", "10.0.0.1", vec![]),
                    "/x".into(),
                    runtime(up),
                    t0(),
                    vec![],
                )),
                None => Err(reset()),
            });
            Ok(Arc::new(a))
        });
        c
    }

    fn failed(s: &[(LifecycleStatus, Option<String>)]) -> usize {
        s.iter()
            .filter(|(st, _)| *st == LifecycleStatus::Failed)
            .count()
    }

    #[tokio::test(start_paused = true)]
    async fn swarm_dispatch_error_and_probe_two_of_three_running_fail_exactly_one() {
        let (w, ids) = world(Some(H), &["a", "b", "c"], Operation::Deploy).await;
        let r = w.runner(agents(Some(&["a", "c"])), None, RunnerSettings::default());
        r.run_once().await.unwrap();
        r.join().await;
        let s = w.statuses(&ids).await;
        assert_eq!(failed(&s), 1, "{s:?}");
        assert_eq!(s[0].0, LifecycleStatus::Succeeded);
        assert_eq!(s[1].0, LifecycleStatus::Failed);
        assert!(
            s[1].1.as_deref().unwrap().contains("connection reset"),
            "{s:?}"
        );
        // Each row went pending → running → terminal on the bus, each event with its ts.
        let events = w.bus.0.lock().unwrap();
        let lifecycle: Vec<_> = events
            .iter()
            .filter(|e| e.topic.ends_with(".lifecycle"))
            .collect();
        assert_eq!(lifecycle.len(), 6);
        assert!(events.iter().all(|e| e.body["ts"].is_string()));
    }

    #[tokio::test(start_paused = true)]
    async fn swarm_probe_failure_fails_every_row() {
        let (w, ids) = world(Some(H), &["a", "b", "c"], Operation::Deploy).await;
        let r = w.runner(agents(None), None, RunnerSettings::default());
        r.run_once().await.unwrap();
        r.join().await;
        let s = w.statuses(&ids).await;
        assert_eq!(failed(&s), 3, "{s:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn local_deployer_error_and_runtime_two_of_three_running_fail_exactly_one() {
        let (w, ids) = world(None, &["a", "b", "c"], Operation::Deploy).await;
        let mut d = MockDeployer::new();
        d.expect_deploy()
            .times(1)
            .returning(|_| Err(DeployerError::network("403: Address already in use")));
        d.expect_runtime()
            .times(1)
            .returning(|| Ok(runtime(&["a", "b"])));
        let r = w.runner(
            MockAgentConnector::new(),
            Some(d),
            RunnerSettings::default(),
        );
        r.run_once().await.unwrap();
        r.join().await;
        let s = w.statuses(&ids).await;
        assert_eq!(failed(&s), 1, "{s:?}");
        assert_eq!(s[2].0, LifecycleStatus::Failed);
        assert!(s[2]
            .1
            .as_deref()
            .unwrap()
            .contains("Address already in use"));
    }

    #[tokio::test(start_paused = true)]
    async fn local_rows_without_a_deployer_fail_saying_so() {
        let (w, ids) = world(None, &["a"], Operation::Deploy).await;
        let r = w.runner(MockAgentConnector::new(), None, RunnerSettings::default());
        r.run_once().await.unwrap();
        r.join().await;
        let s = w.statuses(&ids).await;
        assert_eq!(
            s[0],
            (LifecycleStatus::Failed, Some(NO_LOCAL_DEPLOYER.into()))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_sweep_fails_rows_only_past_their_timeout() {
        let (w, ids) = world(Some(H), &["a"], Operation::Deploy).await;
        let settings = RunnerSettings {
            deploy_timeout: Duration::from_secs(60),
            ..RunnerSettings::default()
        };
        let r = w.runner(MockAgentConnector::new(), None, settings);
        w.clock.advance(Duration::from_secs(59));
        assert_eq!(r.sweep_once().await.unwrap(), 0);
        w.clock.advance(Duration::from_secs(1));
        assert_eq!(r.sweep_once().await.unwrap(), 1);
        let s = w.statuses(&ids).await;
        assert_eq!(s[0].0, LifecycleStatus::Failed);
        assert_eq!(
            s[0].1.as_deref(),
            Some("no progress for 1 min (deploy timeout 1 min); the agent never reported back")
        );
        assert_eq!(
            r.sweep_once().await.unwrap(),
            0,
            "a closed row stays closed"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_sweep_loop_runs_every_interval_until_shutdown() {
        let (w, ids) = world(Some(H), &["a"], Operation::Deploy).await;
        let settings = RunnerSettings {
            deploy_timeout: Duration::from_secs(60),
            sweep_every: Duration::from_secs(10),
            ..RunnerSettings::default()
        };
        let r = w.runner(MockAgentConnector::new(), None, settings);
        w.clock.advance(Duration::from_secs(120));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let reports = Arc::new(Mutex::new(Vec::new()));
        let seen = reports.clone();
        let sweep = tokio::spawn(r.clone().sweep(
            async move {
                let _ = stopped.await;
            },
            move |n| seen.lock().unwrap().push(n.unwrap()),
        ));
        // Paused time: the sleep of the first pass ends as soon as the runtime idles.
        tokio::time::sleep(Duration::from_secs(11)).await;
        assert_eq!(*reports.lock().unwrap(), [1]);
        assert_eq!(w.statuses(&ids).await[0].0, LifecycleStatus::Failed);
        stop.send(()).unwrap();
        sweep.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn recover_fails_every_open_row() {
        let (w, ids) = world(Some(H), &["a", "b"], Operation::Teardown).await;
        let r = w.runner(MockAgentConnector::new(), None, RunnerSettings::default());
        assert_eq!(r.recover().await.unwrap(), 2);
        let s = w.statuses(&ids).await;
        assert!(s
            .iter()
            .all(|x| *x == (LifecycleStatus::Failed, Some(RESTARTED.into()))));
        assert_eq!(r.recover().await.unwrap(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn run_returns_at_shutdown_after_its_dispatches() {
        let (w, ids) = world(Some(H), &["a", "b"], Operation::Deploy).await;
        let r = w.runner(agents(Some(&["a", "b"])), None, RunnerSettings::default());
        // Shutdown is already due: one pass, then the dispatch it started is awaited.
        r.clone().run(async {}, |e| panic!("{e}")).await;
        let s = w.statuses(&ids).await;
        assert!(s.iter().all(|x| x.0 == LifecycleStatus::Succeeded), "{s:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_delta_closes_only_its_own_hosts_row() {
        let (w, ids) = world(Some(H), &["a"], Operation::Deploy).await;
        let lifecycle = Lifecycle::new(w.repo.clone(), w.bus.clone(), w.clock.clone());
        let other = HostUuid(uuid::Uuid::from_u128(8));
        let delta = crate::model::LifecycleDelta::new(
            Some(ids[0]),
            DeckyName::new("a").unwrap(),
            Operation::Deploy,
            Ok(()),
            t0(),
        );
        assert!(!lifecycle.apply_delta(other, &delta).await.unwrap());
        assert_eq!(w.statuses(&ids).await[0].0, LifecycleStatus::Pending);
        assert!(lifecycle.apply_delta(H, &delta).await.unwrap());
        assert!(
            !lifecycle.apply_delta(H, &delta).await.unwrap(),
            "twice changes nothing"
        );
        assert_eq!(w.statuses(&ids).await[0].0, LifecycleStatus::Succeeded);
    }
}

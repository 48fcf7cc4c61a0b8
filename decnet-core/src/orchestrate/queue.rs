//! The per-host work queue (PRODUCT §5): deploy, mutate and teardown requests run one at a
//! time, in the order they were accepted — never raced (the original ran them as concurrent
//! background tasks on one compose file).
//!
//! [`WorkQueue::submit`] only enqueues, so the HTTP handler answers 202 at once. A single worker
//! task executes the jobs. Every finished job yields exactly one [`LifecycleDelta`] per decky,
//! echoing the lifecycle id the master sent for it, and hands them to the [`LifecycleSink`] (the
//! durable outbox) *before* the job counts as done — so `in_flight` and the outbox never both
//! miss an operation.
//!
//! Swarm deploys are relocalized first, against the worker's *current* state (loaded when the
//! job runs, not when it was submitted) and the pinned interface's facts: deckies already here
//! keep their addresses.
//!
//! Every job checks the state file when it starts: a file that broke after the job was
//! accepted fails the job's deckies with [`UnreadableState`]'s message, and the deployer —
//! which would rewrite or delete the file — is never called.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::model::{DeckyName, DecnetConfig, LifecycleDelta, Mode, Operation};
use crate::plan::relocalize;
use crate::plan::shards::{merge_probe_of, Probed};
use crate::traits::{
    Clock, DeckyOutcome, DeployReport, Deployer, HostNetError, HostNetwork, LifecycleSink,
    LocalNetFacts,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::adapters::worker_state::{self as state, UnreadableState};

/// How many jobs may wait behind the running one before `submit` refuses more.
pub const DEFAULT_CAPACITY: usize = 256;

/// How often recording a job's deltas is tried before giving up (with 1 s, 2 s, … between).
const RECORD_ATTEMPTS: u32 = 4;

/// The reason recorded for jobs still queued when the agent shuts down.
pub const SHUTDOWN_REASON: &str = "agent shut down before the operation started";

/// One unit of work for this host.
#[derive(Debug, Clone, PartialEq)]
pub enum Job {
    /// Converge the host to this complete shard.
    Deploy {
        /// The host's complete desired shard, as the master planned it.
        config: DecnetConfig,
        /// Decky name → the master's lifecycle row id.
        lifecycle_ids: BTreeMap<String, Uuid>,
    },
    /// Replace one decky's services.
    Mutate {
        /// The decky.
        decky: DeckyName,
        /// Its new services.
        services: Vec<String>,
        /// The master's lifecycle row id.
        lifecycle_id: Option<Uuid>,
    },
    /// Tear down one decky, or all of this host's when `decky` is `None`.
    Teardown {
        /// The decky, or `None` for every decky of this host.
        decky: Option<DeckyName>,
        /// Decky name → the master's lifecycle row id.
        lifecycle_ids: BTreeMap<String, Uuid>,
    },
}

impl Job {
    /// The operation, for logs and deltas.
    pub fn operation(&self) -> Operation {
        match self {
            Job::Deploy { .. } => Operation::Deploy,
            Job::Mutate { .. } => Operation::Mutate,
            Job::Teardown { .. } => Operation::Teardown,
        }
    }

    /// The lifecycle ids this job will close.
    pub fn lifecycle_ids(&self) -> Vec<Uuid> {
        match self {
            Job::Deploy { lifecycle_ids, .. } | Job::Teardown { lifecycle_ids, .. } => {
                lifecycle_ids.values().copied().collect()
            }
            Job::Mutate { lifecycle_id, .. } => lifecycle_id.iter().copied().collect(),
        }
    }

    /// The deckies the request names (the config's deckies, the mutated decky, the torn-down
    /// decky) plus any decky the master sent a lifecycle id for: each gets a delta even when
    /// the job fails as a whole.
    fn requested(&self) -> Vec<(DeckyName, Option<Uuid>)> {
        let mut out: BTreeMap<DeckyName, Option<Uuid>> = BTreeMap::new();
        let ids = match self {
            Job::Deploy {
                config,
                lifecycle_ids,
            } => {
                for d in &config.deckies {
                    out.insert(d.name.clone(), lifecycle_ids.get(d.name.as_str()).copied());
                }
                Some(lifecycle_ids)
            }
            Job::Mutate {
                decky,
                lifecycle_id,
                ..
            } => {
                out.insert(decky.clone(), *lifecycle_id);
                None
            }
            Job::Teardown {
                decky,
                lifecycle_ids,
            } => {
                if let Some(d) = decky {
                    out.insert(d.clone(), lifecycle_ids.get(d.as_str()).copied());
                }
                Some(lifecycle_ids)
            }
        };
        for (name, id) in ids.into_iter().flatten() {
            match DeckyName::new(name.as_str()) {
                Ok(n) => {
                    out.entry(n).or_insert(Some(*id));
                }
                Err(e) => {
                    tracing::warn!(lifecycle_id = %id, error = %e, "lifecycle id for an invalid decky name ignored")
                }
            }
        }
        out.into_iter().collect()
    }
}

/// Why a job was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// As many jobs wait as the queue holds (the API answers 503).
    #[error("work queue is full ({capacity} jobs waiting); try again later")]
    Full {
        /// The queue's bound.
        capacity: usize,
    },
    /// The agent is shutting down.
    #[error("work queue has stopped (the agent is shutting down)")]
    Stopped,
}

/// Where relocalize takes the worker's network facts from.
#[async_trait::async_trait]
pub trait LocalFactsSource: Send + Sync {
    /// The facts relocalize needs: the parent interface, its subnet, gateway and address.
    async fn local_facts(&self) -> Result<LocalNetFacts, HostNetError>;
}

/// Facts of the `--interface` the operator pinned, or of the default route's interface.
pub struct PinnedInterface {
    /// The kernel's network facts.
    pub net: Arc<dyn HostNetwork>,
    /// The pinned interface (`--interface`), if any.
    pub interface: Option<String>,
}

impl PinnedInterface {
    /// Facts of `interface` (or of the default route's interface) from `net`.
    pub fn new(net: Arc<dyn HostNetwork>, interface: Option<String>) -> Self {
        Self { net, interface }
    }
}

impl std::fmt::Debug for PinnedInterface {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PinnedInterface")
            .field("interface", &self.interface)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl LocalFactsSource for PinnedInterface {
    async fn local_facts(&self) -> Result<LocalNetFacts, HostNetError> {
        self.net.facts(self.interface.as_deref()).await
    }
}

/// A job with its place in line.
struct Queued {
    seq: u64,
    job: Job,
}

#[derive(Default)]
struct Line {
    next_seq: u64,
    /// Submitted, not yet finished, in submission order: (seq, lifecycle ids).
    entries: Vec<(u64, Vec<Uuid>)>,
}

/// Everything a job needs to run.
struct Worker {
    deployer: Arc<dyn Deployer>,
    sink: Arc<dyn LifecycleSink>,
    local: Arc<dyn LocalFactsSource>,
    state_path: PathBuf,
    clock: Arc<dyn Clock>,
}

/// The handle to the queue: submit work, see what is in flight. Cheap to share in an `Arc`.
pub struct WorkQueue {
    tx: mpsc::Sender<Queued>,
    line: Arc<Mutex<Line>>,
    capacity: usize,
    stopped: CancellationToken,
}

impl std::fmt::Debug for WorkQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkQueue")
            .field("in_flight", &self.in_flight())
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

fn lock(line: &Mutex<Line>) -> MutexGuard<'_, Line> {
    line.lock().unwrap_or_else(|e| e.into_inner())
}

impl WorkQueue {
    /// Starts the worker task (on the current tokio runtime) with [`DEFAULT_CAPACITY`].
    ///
    /// On `shutdown` the running job is finished (its deltas recorded), and every job still
    /// waiting gets a failed delta ([`SHUTDOWN_REASON`]) so no master row waits for it.
    pub fn start(
        deployer: Arc<dyn Deployer>,
        sink: Arc<dyn LifecycleSink>,
        local: Arc<dyn LocalFactsSource>,
        state_path: PathBuf,
        clock: Arc<dyn Clock>,
        shutdown: CancellationToken,
    ) -> WorkQueue {
        Self::with_capacity(
            deployer,
            sink,
            local,
            state_path,
            clock,
            shutdown,
            DEFAULT_CAPACITY,
        )
    }

    /// [`start`](Self::start) with a bound on waiting jobs.
    #[allow(clippy::too_many_arguments)]
    pub fn with_capacity(
        deployer: Arc<dyn Deployer>,
        sink: Arc<dyn LifecycleSink>,
        local: Arc<dyn LocalFactsSource>,
        state_path: PathBuf,
        clock: Arc<dyn Clock>,
        shutdown: CancellationToken,
        capacity: usize,
    ) -> WorkQueue {
        let capacity = capacity.max(1);
        let (tx, rx) = mpsc::channel(capacity);
        let line = Arc::new(Mutex::new(Line::default()));
        let stopped = CancellationToken::new();
        let worker = Arc::new(Worker {
            deployer,
            sink,
            local,
            state_path,
            clock,
        });
        tokio::spawn(run_worker(
            worker,
            rx,
            line.clone(),
            shutdown,
            stopped.clone(),
        ));
        WorkQueue {
            tx,
            line,
            capacity,
            stopped,
        }
    }

    /// Enqueues a job; never waits for the work.
    pub fn submit(&self, job: Job) -> Result<(), QueueError> {
        if self.stopped.is_cancelled() {
            return Err(QueueError::Stopped);
        }
        let ids = job.lifecycle_ids();
        let op = job.operation();
        // Under the lock so `entries` keeps the channel's order.
        let mut line = lock(&self.line);
        let seq = line.next_seq;
        match self.tx.try_send(Queued { seq, job }) {
            Ok(()) => {
                line.next_seq += 1;
                line.entries.push((seq, ids));
                tracing::debug!(operation = %op, seq, "job queued");
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(_)) => Err(QueueError::Full {
                capacity: self.capacity,
            }),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(QueueError::Stopped),
        }
    }

    /// Lifecycle ids of the jobs queued or running, in submission order.
    pub fn in_flight(&self) -> Vec<Uuid> {
        lock(&self.line)
            .entries
            .iter()
            .flat_map(|(_, ids)| ids.iter().copied())
            .collect()
    }

    /// How many jobs are queued or running.
    pub fn len(&self) -> usize {
        lock(&self.line).entries.len()
    }

    /// Whether no job waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Resolves once the worker has stopped (after shutdown, its last deltas recorded).
    pub async fn stopped(&self) {
        self.stopped.cancelled().await
    }
}

async fn run_worker(
    worker: Arc<Worker>,
    mut rx: mpsc::Receiver<Queued>,
    line: Arc<Mutex<Line>>,
    shutdown: CancellationToken,
    stopped: CancellationToken,
) {
    loop {
        let next = tokio::select! {
            biased;
            _ = shutdown.cancelled() => None,
            q = rx.recv() => q,
        };
        let Some(Queued { seq, job }) = next else {
            break;
        };
        let op = job.operation();
        let span =
            tracing::info_span!("job", operation = %op, seq, lifecycle_ids = ?job.lifecycle_ids());
        // Its own task, so a panicking deployer fails this job, not the queue. Shutdown does
        // not cancel it: a half-done deploy is worse than a late exit.
        let w = worker.clone();
        let requested = job.requested();
        let result =
            tokio::spawn(async move { w.execute(job).await }.instrument(span.clone())).await;
        let deltas = match result {
            Ok(deltas) => deltas,
            Err(e) => {
                let reason = format!("internal error: the job's task failed: {e}");
                tracing::error!(parent: &span, %reason, "job failed");
                failed_deltas(&requested, op, &reason, worker.clock.now())
            }
        };
        worker.record(deltas, &shutdown).instrument(span).await;
        lock(&line).entries.retain(|(s, _)| *s != seq);
        if shutdown.is_cancelled() {
            break;
        }
    }
    // Stop accepting, then fail whatever was still waiting so no master row waits for it.
    stopped.cancel();
    rx.close();
    while let Ok(Queued { seq, job }) = rx.try_recv() {
        let deltas = failed_deltas(
            &job.requested(),
            job.operation(),
            SHUTDOWN_REASON,
            worker.clock.now(),
        );
        worker.record(deltas, &shutdown).await;
        lock(&line).entries.retain(|(s, _)| *s != seq);
    }
    tracing::info!("work queue stopped");
}

/// Why a job failed: before the deployer ran (nothing changed), or in it (part of the work
/// may be done: probe).
enum JobError {
    Before(String),
    Deployer(String),
}

fn failed_deltas(
    requested: &[(DeckyName, Option<Uuid>)],
    op: Operation,
    reason: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<LifecycleDelta> {
    requested
        .iter()
        .map(|(name, id)| LifecycleDelta::new(*id, name.clone(), op, Err(reason), now))
        .collect()
}

impl Worker {
    /// Runs one job; returns its deltas (one per decky).
    async fn execute(&self, job: Job) -> Vec<LifecycleDelta> {
        let requested = job.requested();
        let op = job.operation();
        tracing::info!("job started");
        if let Err(e) = state::load(&self.state_path).await {
            tracing::warn!(error = %e, "job refused: the state file is unreadable");
            return failed_deltas(&requested, op, &e.to_string(), self.clock.now());
        }
        let result = match job {
            Job::Deploy {
                config,
                lifecycle_ids,
            } => self.deploy(config, &lifecycle_ids).await,
            Job::Mutate {
                decky,
                services,
                lifecycle_id,
            } => self
                .deployer
                .mutate(&decky, &services)
                .await
                .map(|report| {
                    let ids = BTreeMap::from([(decky.clone(), lifecycle_id)]);
                    self.report_deltas(op, &report, &ids, Missing::Failed)
                })
                .map_err(|e| JobError::Deployer(e.to_string())),
            Job::Teardown {
                decky,
                lifecycle_ids,
            } => self
                .deployer
                .teardown(decky.as_ref())
                .await
                .map(|report| {
                    let ids: BTreeMap<DeckyName, Option<Uuid>> =
                        requested.iter().cloned().collect();
                    // Nothing to tear down is torn down.
                    let mut deltas = self.report_deltas(op, &report, &ids, Missing::Succeeded);
                    // Deckies it removed that the request did not name (teardown of all).
                    let now = self.clock.now();
                    for (name, outcome) in &report.outcomes {
                        if !ids.contains_key(name) {
                            let id = lifecycle_ids.get(name.as_str()).copied();
                            deltas.push(outcome_delta(id, name, op, outcome, now));
                        }
                    }
                    deltas
                })
                .map_err(|e| JobError::Deployer(e.to_string())),
        };
        match result {
            Ok(deltas) => {
                let failed = deltas.iter().filter(|d| d.error.is_some()).count();
                tracing::info!(deckies = deltas.len(), failed, "job finished");
                deltas
            }
            Err(JobError::Before(reason)) => {
                tracing::warn!(%reason, "job failed before the deployer ran");
                failed_deltas(&requested, op, &reason, self.clock.now())
            }
            Err(JobError::Deployer(reason)) => {
                tracing::warn!(%reason, "job failed; probing the container runtime");
                self.probed_deltas(&requested, op, &reason).await
            }
        }
    }

    /// After a deployer error part of the work may be done: the runtime says, per decky,
    /// whether it reached the operation's goal (running, or gone for a teardown). A runtime
    /// that cannot be read fails every decky.
    async fn probed_deltas(
        &self,
        requested: &[(DeckyName, Option<Uuid>)],
        op: Operation,
        reason: &str,
    ) -> Vec<LifecycleDelta> {
        let runtime = self.deployer.runtime().await.map_err(|e| e.to_string());
        let pairs: Vec<(DeckyName, Operation)> =
            requested.iter().map(|(n, _)| (n.clone(), op)).collect();
        let now = self.clock.now();
        merge_probe_of(
            Probed::Runtime,
            &pairs,
            runtime.as_ref().map_err(String::as_str),
            reason,
        )
        .into_iter()
        .zip(requested)
        .map(|((name, _, error), (_, id))| {
            let result = match &error {
                None => Ok(()),
                Some(e) => Err(e.as_str()),
            };
            LifecycleDelta::new(*id, name, op, result, now)
        })
        .collect()
    }

    async fn deploy(
        &self,
        config: DecnetConfig,
        lifecycle_ids: &BTreeMap<String, Uuid>,
    ) -> Result<Vec<LifecycleDelta>, JobError> {
        let config = match config.mode {
            Mode::Unihost => config,
            Mode::Swarm => self.relocalized(&config).await.map_err(JobError::Before)?,
        };
        let report = self
            .deployer
            .deploy(&config)
            .await
            .map_err(|e| JobError::Deployer(e.to_string()))?;
        let mut ids: BTreeMap<DeckyName, Option<Uuid>> = config
            .deckies
            .iter()
            .map(|d| (d.name.clone(), lifecycle_ids.get(d.name.as_str()).copied()))
            .collect();
        let mut deltas = self.report_deltas(Operation::Deploy, &report, &ids, Missing::Failed);
        let now = self.clock.now();
        // Deckies the deploy removed because they are not in the shard: teardown deltas.
        for (name, outcome) in &report.outcomes {
            if !ids.contains_key(name) {
                let id = lifecycle_ids.get(name.as_str()).copied();
                deltas.push(outcome_delta(id, name, Operation::Teardown, outcome, now));
                ids.insert(name.clone(), id);
            }
        }
        // A lifecycle id for a decky that is neither in the config nor removed: its row must
        // still close.
        for (name, id) in lifecycle_ids {
            if let Ok(n) = DeckyName::new(name.as_str()) {
                if !ids.contains_key(&n) {
                    let reason = format!("decky {name:?} is not in the deployed config");
                    deltas.push(LifecycleDelta::new(
                        Some(*id),
                        n,
                        Operation::Deploy,
                        Err(&reason),
                        now,
                    ));
                }
            }
        }
        Ok(deltas)
    }

    /// The config fitted to this worker: current state, pinned interface.
    async fn relocalized(&self, config: &DecnetConfig) -> Result<DecnetConfig, String> {
        let current = state::load(&self.state_path)
            .await
            .map_err(|e: UnreadableState| e.to_string())?;
        let facts = self
            .local
            .local_facts()
            .await
            .map_err(|e| format!("local network facts: {e}"))?;
        let out = relocalize(config, &facts, current.as_ref().map(|s| &s.config))
            .map_err(|e| format!("relocalize to {}: {e}", facts.subnet))?;
        tracing::info!(
            interface = %out.interface,
            subnet = %out.subnet,
            gateway = %out.gateway,
            "config relocalized"
        );
        Ok(out)
    }

    /// One delta per requested decky from the report; `missing` decides a decky the report
    /// does not mention.
    fn report_deltas(
        &self,
        op: Operation,
        report: &DeployReport,
        requested: &BTreeMap<DeckyName, Option<Uuid>>,
        missing: Missing,
    ) -> Vec<LifecycleDelta> {
        let now = self.clock.now();
        requested
            .iter()
            .map(|(name, id)| match report.outcomes.get(name) {
                Some(outcome) => outcome_delta(*id, name, op, outcome, now),
                None => match missing {
                    Missing::Succeeded => LifecycleDelta::new(*id, name.clone(), op, Ok(()), now),
                    Missing::Failed => LifecycleDelta::new(
                        *id,
                        name.clone(),
                        op,
                        Err("the deployer reported no outcome for this decky"),
                        now,
                    ),
                },
            })
            .collect()
    }

    /// Hands the deltas to the sink, retrying a failing sink a few times.
    async fn record(&self, deltas: Vec<LifecycleDelta>, shutdown: &CancellationToken) {
        if deltas.is_empty() {
            return;
        }
        let mut delay = Duration::from_secs(1);
        for attempt in 1..=RECORD_ATTEMPTS {
            match self.sink.record(deltas.clone()).await {
                Ok(()) => return,
                Err(e) if attempt < RECORD_ATTEMPTS && !shutdown.is_cancelled() => {
                    tracing::warn!(error = %e, attempt, "recording lifecycle deltas failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(e) => {
                    // The master's sweep fails these rows after their timeout.
                    let names: BTreeSet<&str> =
                        deltas.iter().map(|d| d.decky_name.as_str()).collect();
                    tracing::error!(error = %e, deckies = ?names, "lifecycle deltas lost: the outbox refused them");
                    return;
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Missing {
    Succeeded,
    Failed,
}

fn outcome_delta(
    id: Option<Uuid>,
    name: &DeckyName,
    op: Operation,
    outcome: &DeckyOutcome,
    now: chrono::DateTime<chrono::Utc>,
) -> LifecycleDelta {
    let result = match outcome {
        DeckyOutcome::Succeeded => Ok(()),
        DeckyOutcome::Failed { reason } => Err(reason.as_str()),
    };
    LifecycleDelta::new(id, name.clone(), op, result, now)
}

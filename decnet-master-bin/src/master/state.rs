//! What every handler and loop of the master shares.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use decnet_core::model::{Host, HostStatus, HostUuid, Operation};
use decnet_core::orchestrate::{Lifecycle, Runner, RunnerSettings};
use decnet_core::traits::{
    AgentConnector, Bus, BusEvent, Clock, Deployer, HostNetwork, RepoError, Repository,
};

use super::metrics::Metrics;
use super::pki::MasterPki;
use super::ratelimit::RateLimiter;

/// Default [`MasterSettings::renewal_overlap`]: a day, so a worker that renewed and then lost
/// its connection still gets through with either certificate.
pub const DEFAULT_RENEWAL_OVERLAP: Duration = Duration::from_secs(86_400);

/// The runner's part of the master's settings.
fn runner_settings(s: &MasterSettings) -> RunnerSettings {
    RunnerSettings::default()
        .with_timeout(Operation::Deploy, s.deploy_timeout)
        .with_timeout(Operation::Mutate, s.mutate_timeout)
        .with_timeout(Operation::Teardown, s.teardown_timeout)
        .with_sweep_every(s.sweep_every)
        .with_dispatch_timeout(s.dispatch_timeout)
}

/// Tunables of the master.
#[derive(Debug, Clone)]
pub struct MasterSettings {
    /// The agents' heartbeat interval; hosts go unreachable after 3 missed ones.
    pub heartbeat_interval: Duration,
    pub enroll_token_ttl: Duration,
    /// Enroll attempts per minute per source address.
    pub enroll_per_minute: u32,
    /// The swarm URL printed in enrollment commands.
    pub advertise: String,
    /// Most deckies the fleet may hold.
    pub fleet_limit: usize,
    /// How long decommission waits for an agent's self-destruct answer.
    pub self_destruct_timeout: Duration,
    /// Per-operation timeouts of the sweep, from the last progress.
    pub deploy_timeout: Duration,
    pub mutate_timeout: Duration,
    pub teardown_timeout: Duration,
    /// How often the sweep looks.
    pub sweep_every: Duration,
    /// How long one dispatch to an agent may take.
    pub dispatch_timeout: Duration,
    /// How often the mutator looks for deckies due for new services (sooner when one is due
    /// sooner).
    pub mutator_poll: Duration,
    /// Timeouts and connection caps of each listener (operator API and swarm endpoint, each
    /// with its own counts).
    pub serve_limits: decnet_web::ServeLimits,
    /// Validity of the worker certificates the master issues, at enrollment and renewal
    /// (1 year; tests issue short-lived ones).
    pub worker_cert_lifetime: Duration,
    /// After a renewal, how long the certificate it replaces is still accepted, unless the
    /// worker uses the new one first (then the old one is revoked at once).
    pub renewal_overlap: Duration,
    /// The master certificate's rollover begins (a successor is issued and workers are told
    /// to pin it) with less than this left; `None`: a third of its lifetime.
    pub master_renew_before: Option<Duration>,
    /// How often the rollover is checked (also at start-up).
    pub master_cert_check_every: Duration,
    /// Attacker events older than this are deleted (`None`: kept however old).
    pub attack_retention: Option<Duration>,
    /// At most this many attacker events are kept, the newest (`None`: no bound).
    pub attack_retention_max: Option<u64>,
}

impl Default for MasterSettings {
    fn default() -> Self {
        let runner = RunnerSettings::default();
        Self {
            heartbeat_interval: Duration::from_secs(30),
            enroll_token_ttl: Duration::from_secs(15 * 60),
            enroll_per_minute: 10,
            advertise: "https://127.0.0.1:8770".into(),
            fleet_limit: 256,
            self_destruct_timeout: Duration::from_secs(5),
            deploy_timeout: runner.deploy_timeout,
            mutate_timeout: runner.mutate_timeout,
            teardown_timeout: runner.teardown_timeout,
            sweep_every: runner.sweep_every,
            dispatch_timeout: runner.dispatch_timeout,
            mutator_poll: Duration::from_secs(10),
            worker_cert_lifetime: decnet_tls::pki::WORKER_CERT_VALIDITY,
            renewal_overlap: DEFAULT_RENEWAL_OVERLAP,
            master_renew_before: None,
            master_cert_check_every: Duration::from_secs(3600),
            serve_limits: decnet_web::ServeLimits::default(),
            attack_retention: Some(Duration::from_secs(90 * 24 * 3600)),
            attack_retention_max: Some(10_000_000),
        }
    }
}

/// In-memory view of a host's heartbeats, so an unchanged heartbeat costs no write: the
/// store's `last_heartbeat` is refreshed at most once per interval.
#[derive(Debug, Clone)]
pub struct Seen {
    pub last: DateTime<Utc>,
    pub flushed: DateTime<Utc>,
    pub version: Option<String>,
}

/// The master.
pub struct Master {
    pub repo: Arc<dyn Repository>,
    pub pki: Arc<MasterPki>,
    /// Reaches the workers' agents (the HTTPS adapter over [`MasterPki`] unless replaced
    /// with [`Master::with_agents`]).
    pub agents: Arc<dyn AgentConnector>,
    pub clock: Arc<dyn Clock>,
    pub bus: Arc<dyn Bus>,
    pub settings: MasterSettings,
    pub metrics: Arc<Metrics>,
    pub enroll_limiter: RateLimiter,
    /// Host identity cache: uuid → host (fingerprint, name, status). The store is
    /// authoritative; this process is its only writer of hosts.
    pub hosts: Mutex<HashMap<HostUuid, Host>>,
    pub revoked: Mutex<HashSet<String>>,
    pub not_revoked: Mutex<HashSet<String>>,
    pub seen: Mutex<HashMap<HostUuid, Seen>>,
    /// Per host, its latest heartbeat's time and the deckies it echoed: a decky's `last_seen`
    /// is the last heartbeat that echoed it, kept here rather than written per heartbeat (the
    /// store's `last_seen` moves on state changes and is the fallback after a restart).
    pub echoed: Mutex<HashMap<HostUuid, Echo>>,
    /// Per host, why its worker state file is unreadable, as its latest heartbeat said
    /// (`state_error`); absent once a heartbeat no longer says so. In memory only: the next
    /// heartbeat after a restart tells again.
    pub state_errors: Mutex<HashMap<HostUuid, String>>,
    /// Per host, why its latest heartbeat was refused for its wire version.
    pub version_errors: super::compat::VersionErrors,
    /// Deckies torn down on a host, and when: the host may still deliver the events they saw
    /// before removal (`POST /swarm/events`) for [`RETIRED_EVENTS_GRACE`].
    pub retired: super::lifecycle::Retired,
    /// Per host, the master-certificate successor its agent last said it pinned
    /// (`POST /swarm/master-pins`). In memory: after a restart agents tell again.
    pub master_pins: Mutex<HashMap<HostUuid, Option<String>>>,
    /// Runs unihost deckies on this machine (`None`: this master only drives agents).
    pub local: Option<Arc<dyn Deployer>>,
    /// This machine's network facts (planning unihost fleets).
    pub hostnet: Arc<dyn HostNetwork>,
    /// Carries out lifecycle rows (the core runner over this master's store, agents and
    /// local deployer); every row transition goes through its [`Runner::lifecycle`].
    pub runner: Arc<Runner>,
}

impl std::fmt::Debug for Master {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Master")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// A host's latest heartbeat and the deckies it echoed.
#[derive(Debug, Clone)]
pub struct Echo {
    pub at: DateTime<Utc>,
    pub names: HashSet<String>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// How long after a teardown a host may still deliver a retired decky's events.
pub const RETIRED_EVENTS_GRACE: chrono::Duration = chrono::Duration::hours(24);

impl Master {
    /// Notes that `decky` left `host` now (its events may still arrive).
    pub fn note_retired(&self, host: HostUuid, decky: &str, now: chrono::DateTime<chrono::Utc>) {
        super::lifecycle::note_retired(&self.retired, host, decky, now);
    }

    /// Moves lifecycle rows (see [`Lifecycle`]).
    pub fn lifecycle(&self) -> &Lifecycle {
        self.runner.lifecycle()
    }

    /// The deckies `host` retired within the grace.
    pub fn retired_on(&self, host: HostUuid, now: chrono::DateTime<chrono::Utc>) -> Vec<String> {
        self.retired
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|((h, _), at)| *h == host && now - **at < RETIRED_EVENTS_GRACE)
            .map(|((_, d), _)| d.clone())
            .collect()
    }

    pub fn new(
        repo: Arc<dyn Repository>,
        pki: MasterPki,
        clock: Arc<dyn Clock>,
        bus: Arc<dyn Bus>,
        settings: MasterSettings,
        local: Option<Arc<dyn Deployer>>,
        hostnet: Arc<dyn HostNetwork>,
    ) -> Self {
        let limiter = RateLimiter::new(settings.enroll_per_minute, Duration::from_secs(60));
        let pki = Arc::new(pki);
        let metrics = Arc::new(Metrics::default());
        let retired = super::lifecycle::Retired::default();
        let hooks = Arc::new(super::lifecycle::MasterHooks {
            retired: retired.clone(),
            metrics: metrics.clone(),
        });
        let lifecycle = Lifecycle::new(repo.clone(), bus.clone(), clock.clone()).with_hooks(hooks);
        let agents: Arc<dyn AgentConnector> = pki.clone();
        let runner = Arc::new(Runner::new(
            lifecycle,
            agents.clone(),
            local.clone(),
            runner_settings(&settings),
        ));
        Self {
            repo,
            agents,
            pki,
            clock,
            bus,
            settings,
            metrics,
            enroll_limiter: limiter,
            hosts: Mutex::new(HashMap::new()),
            revoked: Mutex::new(HashSet::new()),
            not_revoked: Mutex::new(HashSet::new()),
            seen: Mutex::new(HashMap::new()),
            echoed: Mutex::new(HashMap::new()),
            state_errors: Mutex::new(HashMap::new()),
            version_errors: super::compat::VersionErrors::default(),
            retired,
            master_pins: Mutex::new(HashMap::new()),
            local,
            hostnet,
            runner,
        }
    }

    /// The same master reaching its agents through `agents` (a mock in tests, an embedder's
    /// own transport).
    pub fn with_agents(mut self, agents: Arc<dyn AgentConnector>) -> Self {
        self.runner = Arc::new(Runner::new(
            self.runner.lifecycle().clone(),
            agents.clone(),
            self.local.clone(),
            runner_settings(&self.settings),
        ));
        self.agents = agents;
        self
    }

    /// Loads the caches from the store (hosts; revocations are checked in the store on a
    /// cache miss).
    pub async fn warm(&self) -> Result<(), RepoError> {
        let hosts = self.repo.hosts().await?;
        let mut map = lock(&self.hosts);
        for h in hosts {
            map.insert(h.uuid, h);
        }
        Ok(())
    }

    pub async fn host(&self, uuid: HostUuid) -> Result<Option<Host>, RepoError> {
        if let Some(h) = lock(&self.hosts).get(&uuid) {
            return Ok(Some(h.clone()));
        }
        let h = self.repo.host(uuid).await?;
        if let Some(h) = &h {
            lock(&self.hosts).insert(uuid, h.clone());
        }
        Ok(h)
    }

    /// Revocation, cached both ways: this process is the only one that revokes, and
    /// [`Master::forget_host`] moves a fingerprint from "not revoked" to "revoked".
    pub async fn is_revoked(&self, fingerprint: &str) -> Result<bool, RepoError> {
        if lock(&self.revoked).contains(fingerprint) {
            return Ok(true);
        }
        if lock(&self.not_revoked).contains(fingerprint) {
            return Ok(false);
        }
        let r = self.repo.is_revoked(fingerprint).await?;
        if r {
            lock(&self.revoked).insert(fingerprint.to_string());
        } else {
            lock(&self.not_revoked).insert(fingerprint.to_string());
        }
        Ok(r)
    }

    /// A fingerprint just revoked (the cache must not keep calling it valid).
    pub fn note_revoked(&self, fingerprint: &str) {
        lock(&self.not_revoked).remove(fingerprint);
        lock(&self.revoked).insert(fingerprint.to_string());
    }

    /// Ends `uuid`'s renewal overlap: its previous certificate is revoked and forgotten, and
    /// the master's client towards the agent pins the current one only.
    pub async fn end_overlap(&self, uuid: HostUuid, at: DateTime<Utc>) -> Result<(), RepoError> {
        let revoked = self.repo.end_certificate_overlap(uuid, at).await?;
        if let Some(fp) = &revoked {
            self.note_revoked(fp);
            tracing::info!(host_uuid = %uuid, fingerprint = %fp, "previous worker certificate revoked");
        }
        if let Some(h) = lock(&self.hosts).get_mut(&uuid) {
            h.previous_fingerprint = None;
            h.previous_valid_until = None;
        }
        self.agents.forget(uuid);
        Ok(())
    }

    pub fn forget_host(&self, uuid: HostUuid, fingerprint: &str) {
        lock(&self.hosts).remove(&uuid);
        lock(&self.seen).remove(&uuid);
        self.lifecycle().forget_observed(uuid);
        lock(&self.echoed).remove(&uuid);
        lock(&self.state_errors).remove(&uuid);
        lock(&self.not_revoked).remove(fingerprint);
        lock(&self.revoked).insert(fingerprint.to_string());
        self.agents.forget(uuid);
    }

    /// Records that `host`'s heartbeat at `at` echoed exactly `deckies`. Allocates only when
    /// the set changed since the host's previous heartbeat.
    pub fn note_echo<'a>(
        &self,
        host: HostUuid,
        at: DateTime<Utc>,
        deckies: impl ExactSizeIterator<Item = &'a str> + Clone,
    ) {
        let mut echoed = lock(&self.echoed);
        let echo = echoed.entry(host).or_insert_with(|| Echo {
            at,
            names: HashSet::new(),
        });
        echo.at = echo.at.max(at);
        let same =
            echo.names.len() == deckies.len() && deckies.clone().all(|d| echo.names.contains(d));
        if !same {
            echo.names = deckies.map(str::to_string).collect();
        }
    }

    /// Records the `state_error` of `host`'s latest heartbeat (`None`: its state file reads
    /// fine), logging when it appears or goes away.
    pub fn note_state_error(&self, host: HostUuid, error: Option<&str>) {
        let mut errors = lock(&self.state_errors);
        match error {
            Some(e) if errors.get(&host).map(String::as_str) != Some(e) => {
                tracing::warn!(host_uuid = %host, state_error = %e, "worker reports an unreadable state file; it refuses work until the operator fixes it");
                errors.insert(host, e.to_string());
            }
            Some(_) => {}
            None => {
                if errors.remove(&host).is_some() {
                    tracing::info!(host_uuid = %host, "worker state file readable again");
                }
            }
        }
    }

    /// Why `host`'s worker state file is unreadable, if its latest heartbeat said so.
    pub fn state_error(&self, host: HostUuid) -> Option<String> {
        lock(&self.state_errors).get(&host).cloned()
    }

    /// When `host`'s heartbeats last echoed `decky` (`None`: not in its latest heartbeat, or
    /// none since this process started).
    pub fn echoed_at(&self, host: HostUuid, decky: &str) -> Option<DateTime<Utc>> {
        lock(&self.echoed)
            .get(&host)
            .filter(|e| e.names.contains(decky))
            .map(|e| e.at)
    }

    pub fn remember_host(&self, host: Host) {
        lock(&self.hosts).insert(host.uuid, host);
    }

    /// Records a heartbeat: written through when the host was not active, its version
    /// changed, or the last write is an interval old; otherwise kept in memory.
    pub async fn note_heartbeat(
        &self,
        host: &Host,
        version: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<(), RepoError> {
        let write = {
            let mut seen = lock(&self.seen);
            let entry = seen.entry(host.uuid).or_insert(Seen {
                last: now,
                flushed: DateTime::<Utc>::MIN_UTC,
                version: None,
            });
            entry.last = now;
            let interval = chrono::Duration::from_std(self.settings.heartbeat_interval)
                .unwrap_or(chrono::Duration::seconds(30));
            let stale = now - entry.flushed >= interval;
            let w = host.status != HostStatus::Active || entry.version != version || stale;
            if w {
                entry.flushed = now;
                entry.version = version.clone();
            }
            w
        };
        if write {
            self.repo
                .record_heartbeat(host.uuid, now, version.clone())
                .await?;
            if let Some(h) = lock(&self.hosts).get_mut(&host.uuid) {
                h.status = HostStatus::Active;
                h.last_heartbeat = Some(now);
                if version.is_some() {
                    h.agent_version = version;
                }
            }
        }
        Ok(())
    }

    /// Hosts as the store has them, with fresher heartbeat times from memory.
    pub async fn hosts_view(&self) -> Result<Vec<Host>, RepoError> {
        let mut hosts = self.repo.hosts().await?;
        let seen = lock(&self.seen);
        for h in &mut hosts {
            if let Some(s) = seen.get(&h.uuid) {
                if h.last_heartbeat.is_none_or(|t| t < s.last) {
                    h.last_heartbeat = Some(s.last);
                }
            }
        }
        Ok(hosts)
    }

    /// Publishes `event` with its `ts` (PRODUCT §9: every body carries one; an attacker event
    /// keeps its own, the time it happened).
    pub fn publish(&self, mut event: BusEvent) {
        event.stamp(self.clock.now());
        self.bus.publish(event);
    }
}

pub use decnet_core::orchestrate::bus::{BroadcastBus, Numbered};

//! What every handler and loop of the master shares.

use std::sync::Arc;
use std::time::Duration;

use decnet_core::model::{HostUuid, Operation};
use decnet_core::orchestrate::{Lifecycle, Runner, RunnerSettings, Swarm, SwarmSettings};
use decnet_core::traits::{
    AgentConnector, Bus, BusEvent, CertIssuer, Clock, Deployer, HostNetwork, Repository,
};

use super::metrics::Metrics;
use super::pki::MasterPki;
use super::ratelimit::RateLimiter;

/// Default [`MasterSettings::renewal_overlap`]: a day, so a worker that renewed and then lost
/// its connection still gets through with either certificate.
pub const DEFAULT_RENEWAL_OVERLAP: Duration = Duration::from_secs(86_400);

/// The core swarm protocol over this master's store, CA, agents and lifecycle.
fn swarm(
    repo: &Arc<dyn Repository>,
    clock: &Arc<dyn Clock>,
    pki: &Arc<MasterPki>,
    agents: &Arc<dyn AgentConnector>,
    lifecycle: &Lifecycle,
    s: &MasterSettings,
    metrics: &Arc<Metrics>,
) -> Swarm {
    let issuer: Arc<dyn CertIssuer> = pki.clone();
    Swarm::new(
        repo.clone(),
        clock.clone(),
        issuer,
        agents.clone(),
        lifecycle.clone(),
        SwarmSettings::default()
            .with_heartbeat_interval(s.heartbeat_interval)
            .with_worker_cert_lifetime(s.worker_cert_lifetime)
            .with_renewal_overlap(s.renewal_overlap),
    )
    .with_hooks(Arc::new(super::lifecycle::MasterSwarmHooks {
        metrics: metrics.clone(),
    }))
}

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
    /// The swarm protocol (core [`Swarm`]): enrollment, identity, renewal, heartbeats, and
    /// the host caches that make an unchanged heartbeat cost no write.
    pub swarm: Arc<Swarm>,
    /// Deckies torn down on a host, and when: the host may still deliver the events they saw
    /// before removal (`POST /swarm/events`) for [`RETIRED_EVENTS_GRACE`].
    pub retired: super::lifecycle::Retired,
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
        let agents: Arc<dyn AgentConnector> = pki.agents();
        let swarm = Arc::new(swarm(
            &repo, &clock, &pki, &agents, &lifecycle, &settings, &metrics,
        ));
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
            swarm,
            retired,
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
        self.swarm = Arc::new(swarm(
            &self.repo,
            &self.clock,
            &self.pki,
            &agents,
            self.runner.lifecycle(),
            &self.settings,
            &self.metrics,
        ));
        self.agents = agents;
        self
    }

    /// Publishes `event` with its `ts` (PRODUCT §9: every body carries one; an attacker event
    /// keeps its own, the time it happened).
    pub fn publish(&self, mut event: BusEvent) {
        event.stamp(self.clock.now());
        self.bus.publish(event);
    }
}

pub use decnet_core::orchestrate::bus::{BroadcastBus, Numbered};

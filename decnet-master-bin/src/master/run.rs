//! `decnet serve`: the operator API, the swarm endpoint and the background loops in one
//! process, with graceful shutdown. `<data-dir>/master.json` says where it listens while it
//! runs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use decnet_core::model::HostUuid;
use decnet_core::traits::{Bus, Clock, Deployer, HostNetwork, Repository};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::layout::DataDir;
use super::pki::MasterPki;
use super::state::{BroadcastBus, Master, MasterSettings};

/// Request body limit of both listeners.
pub const BODY_LIMIT: usize = 16 * 1024 * 1024;

/// How `decnet serve` runs.
#[derive(Debug, Clone)]
pub struct MasterConfig {
    pub data_dir: DataDir,
    pub db_url: Option<String>,
    pub api_bind: SocketAddr,
    pub swarm_bind: SocketAddr,
    pub settings: MasterSettings,
}

/// Why the master could not start (exit 2) or stopped (exit 1).
#[derive(Debug, thiserror::Error)]
pub enum MasterError {
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Runtime(String),
}

/// A started master.
#[derive(Debug)]
pub struct RunningMaster {
    pub master: Arc<Master>,
    pub bus: BroadcastBus,
    pub api_addr: SocketAddr,
    pub swarm_addr: SocketAddr,
    pub api_url: String,
    pub swarm_url: String,
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningMaster {
    /// Waits for every task after `shutdown` was cancelled.
    pub async fn join(self) {
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// The adapters a master runs with.
pub struct MasterDeps {
    pub repo: Arc<dyn Repository>,
    pub clock: Arc<dyn Clock>,
    /// Runs unihost deckies on this machine; `None` when this master only drives agents.
    pub local: Option<Arc<dyn Deployer>>,
    pub hostnet: Arc<dyn HostNetwork>,
    /// Attacker events of the local deckies, collected into the store.
    pub local_events: Option<LocalEvents>,
}

/// The master's own attacker-event pipeline (its unihost deckies).
pub struct LocalEvents {
    pub pipeline: Arc<decnet_core::orchestrate::pipeline::EventPipeline>,
    pub logs: Arc<dyn decnet_core::traits::ServiceLogs>,
}

impl std::fmt::Debug for LocalEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalEvents")
            .field("pipeline", &self.pipeline)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for MasterDeps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterDeps").finish_non_exhaustive()
    }
}

/// Starts the master on the given listeners (tests pass `127.0.0.1:0` ones).
pub async fn start(
    cfg: &MasterConfig,
    deps: MasterDeps,
    api: TcpListener,
    swarm: TcpListener,
    shutdown: CancellationToken,
) -> Result<RunningMaster, MasterError> {
    let MasterDeps {
        repo,
        clock,
        local,
        hostnet,
        local_events,
    } = deps;
    let pki = MasterPki::load(&cfg.data_dir).map_err(MasterError::Config)?;
    let api_addr = api
        .local_addr()
        .map_err(|e| MasterError::Runtime(e.to_string()))?;
    let swarm_addr = swarm
        .local_addr()
        .map_err(|e| MasterError::Runtime(e.to_string()))?;
    // Plain HTTP on loopback only; anywhere else the operator API speaks HTTPS.
    let api_tls = if api_addr.ip().is_loopback() {
        None
    } else {
        Some(pki.api_tls(api_addr).map_err(MasterError::Config)?)
    };
    let swarm_tls = pki.swarm_tls().map_err(MasterError::Config)?;
    let api_url = format!(
        "{}://{}",
        if api_tls.is_some() { "https" } else { "http" },
        api_addr
    );
    let swarm_url = format!("https://{swarm_addr}");
    let mut settings = cfg.settings.clone();
    if settings.advertise.is_empty() {
        settings.advertise = swarm_url.clone();
    }
    let bus = BroadcastBus::new(1024);
    let master = Arc::new(Master::new(
        repo,
        pki,
        clock,
        Arc::new(bus.clone()) as Arc<dyn Bus>,
        settings,
        local,
        hostnet,
    ));
    master
        .swarm
        .warm()
        .await
        .map_err(|e| MasterError::Runtime(format!("store: {e}")))?;
    // Rows left open by a previous process have no runner any more.
    super::runner::recover(&master)
        .await
        .map_err(|e| MasterError::Runtime(format!("store: {e}")))?;

    let mut tasks = vec![super::metrics::spawn_row_observer(
        master.clone(),
        &bus,
        shutdown.clone(),
    )];
    let hub = super::events::EventsHub {
        bus: bus.clone(),
        shutdown: shutdown.clone(),
    };
    let limits = master.settings.serve_limits;
    let app = super::api::router(master.clone(), BODY_LIMIT, hub);
    let token = shutdown.clone();
    tasks.push(tokio::spawn(async move {
        if let Err(e) = decnet_web::serve(api, api_tls, app, limits, token).await {
            tracing::error!(error = %e, "operator API stopped");
        }
    }));
    let app = super::swarm::router(master.clone(), BODY_LIMIT);
    let token = shutdown.clone();
    tasks.push(tokio::spawn(async move {
        if let Err(e) = decnet_web::serve(swarm, Some(swarm_tls), app, limits, token).await {
            tracing::error!(error = %e, "swarm endpoint stopped");
        }
    }));
    tasks.push(tokio::spawn(master_cert_loop(
        master.clone(),
        shutdown.clone(),
    )));
    tasks.push(tokio::spawn(unreachable_loop(
        master.clone(),
        shutdown.clone(),
    )));
    tasks.push(tokio::spawn(super::runner::runner_loop(
        master.clone(),
        shutdown.clone(),
    )));
    tasks.push(tokio::spawn(super::runner::sweep_loop(
        master.clone(),
        shutdown.clone(),
    )));
    tasks.push(tokio::spawn(super::observer::local_loop(
        master.clone(),
        shutdown.clone(),
    )));
    tasks.push(tokio::spawn(super::mutator::mutator_loop(
        master.clone(),
        shutdown.clone(),
    )));
    if let Some(ev) = local_events {
        let stop = shutdown.clone();
        tasks.push(tokio::spawn(ev.pipeline.run(
            ev.logs,
            Arc::new(super::attacks::StoreTransport {
                master: master.clone(),
            }),
            decnet_core::orchestrate::pipeline::DEFAULT_EVENTS_INTERVAL,
            async move { stop.cancelled().await },
            |n, why| tracing::warn!(events = n, %why, "local attacker events refused; counted as dropped"),
        )));
    }
    tasks.push(tokio::spawn(super::attacks::retention_loop(
        master.clone(),
        shutdown.clone(),
    )));
    tracing::info!(%api_url, %swarm_url, "master serving");
    Ok(RunningMaster {
        master,
        bus,
        api_addr,
        swarm_addr,
        api_url,
        swarm_url,
        tasks,
    })
}

/// One step of the master certificate's rollover (see [`super::pki::MasterPki::roll`]): the
/// successor is promoted once every enrolled host's agent has pinned it.
pub async fn roll_master(m: &Master) -> Result<Option<super::pki::Roll>, String> {
    let unpinned = match m.pki.next_fingerprint() {
        Some(next) => m
            .swarm
            .unpinned(&next)
            .await
            .map_err(|e| format!("store: {e}"))?,
        None => vec![],
    };
    let roll = m.pki.roll(
        std::time::SystemTime::now(),
        m.settings.master_renew_before,
        |_| unpinned.is_empty(),
    )?;
    match &roll {
        Some(super::pki::Roll::Issued { fingerprint }) => tracing::info!(
            %fingerprint,
            "master certificate rollover: successor issued; workers are told to pin it"
        ),
        Some(super::pki::Roll::Promoted { fingerprint }) => {
            let left = &unpinned;
            if left.is_empty() {
                tracing::info!(%fingerprint, "master certificate rollover: successor promoted");
            } else {
                tracing::warn!(%fingerprint, hosts = ?left, "master certificate rollover: successor promoted before these workers pinned it (the old certificate expires); enroll them again");
            }
        }
        None => {}
    }
    Ok(roll)
}

/// Warns when the CA has less than a year left: it is not rolled over (a new PKI and
/// re-enrolling every worker replace it), so the operator must plan it.
fn warn_ca_expiry(m: &Master) {
    let left = m
        .pki
        .ca_not_after()
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    if left < Duration::from_secs(365 * 86_400) {
        tracing::warn!(
            days_left = left.as_secs() / 86_400,
            "the DECNET CA expires within a year; worker and master certificates are cut to its expiry. Plan a new PKI (ARCHITECTURE.md, Swarm: who trusts whom)"
        );
    }
}

/// The rollover at start-up and every [`super::state::MasterSettings::master_cert_check_every`].
async fn master_cert_loop(m: Arc<Master>, shutdown: CancellationToken) {
    loop {
        warn_ca_expiry(&m);
        if let Err(e) = roll_master(&m).await {
            tracing::warn!(error = %e, "master certificate rollover");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(m.settings.master_cert_check_every) => {}
        }
    }
}

/// Every interval: hosts silent for 3 intervals become `unreachable`. Their deckies are not
/// moved (that would put duplicate IPs and MACs on the LAN).
async fn unreachable_loop(m: Arc<Master>, shutdown: CancellationToken) {
    let interval = m.settings.heartbeat_interval;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        check_hosts(&m, m.clock.now()).await;
    }
}

/// One pass of the unreachable check at `now`: heartbeat times kept in memory are flushed
/// first — only those of hosts still within the grace, and each once — then hosts silent for 3
/// intervals become `unreachable`. Returns the hosts that changed. A silent host's last,
/// unflushed heartbeat must not mark it active again on every pass (it flapped between
/// `active` and `unreachable`, and a deploy at that instant could choose it).
pub async fn check_hosts(m: &Master, now: chrono::DateTime<chrono::Utc>) -> Vec<HostUuid> {
    match m.swarm.check_hosts(now).await {
        Ok(changed) => changed,
        Err(e) => {
            tracing::warn!(error = %e, "unreachable check");
            vec![]
        }
    }
}

/// Writes `master.json` (where clients find this master); removed on shutdown.
pub fn write_master_json(layout: &DataDir, api_url: &str, swarm_url: &str) -> std::io::Result<()> {
    let body = crate::client::MasterJson {
        api_url: api_url.to_string(),
        swarm_url: Some(swarm_url.to_string()),
        pid: Some(std::process::id()),
    };
    let text = serde_json::to_string(&body).map_err(std::io::Error::other)?;
    decnet_tls::pki::write_file_atomic(&layout.master_json(), text.as_bytes(), 0o644)
        .map_err(|e| std::io::Error::other(e.to_string()))
}

/// The time a heartbeat interval from now.
pub fn interval_secs(s: u64) -> Duration {
    Duration::from_secs(s.max(1))
}

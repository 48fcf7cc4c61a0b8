//! Starting an agent: the bundle and identity from the agent dir, the mTLS server, the work
//! queue, the outbox and — when enrolled — the heartbeat loop. The adapters (deployer, host
//! network, reaper launcher, heartbeat transport) are passed in, so tests run the real server
//! in-process with mocks.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use decnet_core::adapters::state_file;
use decnet_core::traits::{
    Clock, Deployer, EventTransport, HeartbeatTransport, HostNetwork, ServiceLogs,
};
use decnet_tls::pki::{Bundle, MASTER_CN};
use decnet_tls::verify::{
    reloadable_server_config, ClientAuth, PeerPolicy, ReloadableCert, SharedPins,
};
use decnet_web::ServeLimits;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::heartbeat::HeartbeatLoop;
use crate::master_pins::MasterPinSync;
use crate::outbox::{Outbox, OutboxSink};
use crate::paths::Identity;
use crate::queue::{PinnedInterface, WorkQueue};
use crate::reaper::{Launcher, ReaperPlan};
use crate::renew::{recover_pending, Renewer};
use crate::server::{router, AgentApi, Reaper};
use crate::snapshot::LiveStatus;
use crate::transport::{HttpsEventTransport, HttpsTransport};
use decnet_core::orchestrate::pipeline::EventPipeline;

/// Default agent API port.
pub const DEFAULT_PORT: u16 = 8765;
/// Default state dir of an agent.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/decnet/agent";

/// How an agent runs.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub agent_dir: PathBuf,
    pub state_dir: PathBuf,
    /// Pins the parent interface of this worker's deckies.
    pub interface: Option<String>,
    pub body_limit: usize,
    pub heartbeat_interval: Duration,
    /// `DECNET_REAPER_PATHS`, parsed.
    pub reaper_paths: Vec<PathBuf>,
    /// Timeouts and connection caps of the agent API.
    pub limits: ServeLimits,
    /// Renew `worker.crt` when less than this is left (`None`: a third of its lifetime).
    pub renew_before: Option<Duration>,
    /// How often the master's certificate pins are checked (its rollover).
    pub master_pin_check: Duration,
}

impl AgentConfig {
    pub fn state_path(&self) -> PathBuf {
        state_file::state_path(&self.state_dir)
    }
}

/// The adapters an agent runs with.
pub struct AgentDeps {
    pub deployer: Arc<dyn Deployer>,
    pub hostnet: Arc<dyn HostNetwork>,
    pub launcher: Arc<dyn Launcher>,
    pub clock: Arc<dyn Clock>,
    /// Overrides the HTTPS heartbeat transport (tests).
    pub transport: Option<Arc<dyn HeartbeatTransport>>,
    /// Attacker-event collection and shipping (enrolled agents).
    pub events: Option<EventsDeps>,
}

/// What the attacker-event loop runs with.
pub struct EventsDeps {
    pub pipeline: Arc<EventPipeline>,
    pub logs: Arc<dyn ServiceLogs>,
    /// Overrides the HTTPS transport (tests).
    pub transport: Option<Arc<dyn EventTransport>>,
    pub interval: Duration,
}

impl std::fmt::Debug for EventsDeps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventsDeps")
            .field("pipeline", &self.pipeline)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for AgentDeps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentDeps").finish_non_exhaustive()
    }
}

/// Why an agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Exit 2: the agent dir holds no (complete) certificate bundle; the message says
    /// "no cert bundle".
    #[error("{0}")]
    NoBundle(String),
    /// Exit 2.
    #[error("{0}")]
    Config(String),
    /// Exit 1.
    #[error("{0}")]
    Io(String),
}

impl StartError {
    pub fn exit_code(&self) -> u8 {
        match self {
            StartError::NoBundle(_) | StartError::Config(_) => 2,
            StartError::Io(_) => 1,
        }
    }
}

/// The bundle and the enrolled identity of an agent dir.
pub fn load_credentials(agent_dir: &Path) -> Result<(Bundle, Option<Identity>), StartError> {
    recover_pending(agent_dir).map_err(|e| StartError::Config(e.to_string()))?;
    let bundle = Bundle::load_worker_dir(agent_dir).map_err(|e| match e {
        decnet_tls::Error::MissingBundle { .. } => StartError::NoBundle(e.to_string()),
        other => StartError::Config(other.to_string()),
    })?;
    let identity = Identity::load(agent_dir).map_err(|e| StartError::Config(e.to_string()))?;
    Ok((bundle, identity))
}

/// A running agent.
#[derive(Debug)]
pub struct RunningAgent {
    pub addr: SocketAddr,
    pub identity: Option<Identity>,
    pub server: JoinHandle<()>,
    pub heartbeat: Option<JoinHandle<()>>,
    /// The attacker-event loop, when enrolled and configured.
    pub events: Option<JoinHandle<()>>,
    pub queue: Arc<WorkQueue>,
    pub outbox: Arc<Outbox>,
}

/// Starts the agent on `listener`. Nothing is converged or rewritten at start-up: the master
/// drives all work. Cancel `shutdown` to stop; the queue finishes its running job.
pub async fn start(
    cfg: &AgentConfig,
    deps: AgentDeps,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<RunningAgent, StartError> {
    let (bundle, identity) = load_credentials(&cfg.agent_dir)?;
    let mut policy = PeerPolicy::from_ca_pem(&bundle.ca_pem)
        .map_err(|e| StartError::Config(format!("ca.crt: {e}")))?
        .with_expected_cn(MASTER_CN);
    // The master's pins, shared by the API's verifier and every client towards the master:
    // its certificate's rollover changes them while the agent runs.
    let pins = match &identity {
        Some(id) => Some(
            SharedPins::new(&id.master_pins())
                .map_err(|e| StartError::Config(format!("identity.json: {e}")))?,
        ),
        None => None,
    };
    if let Some(pins) = &pins {
        policy = policy.with_shared_pins(pins.clone());
    }
    // Swappable, so a renewed certificate is served without a restart.
    let server_cert =
        ReloadableCert::new(&bundle).map_err(|e| StartError::Config(e.to_string()))?;
    let tls = reloadable_server_config(server_cert.clone(), &policy, ClientAuth::Required)
        .map_err(|e| StartError::Config(e.to_string()))?;

    let outbox = Arc::new(
        Outbox::open(cfg.state_dir.join("outbox")).map_err(|e| StartError::Io(e.to_string()))?,
    );
    let wake = Arc::new(Notify::new());
    let sink = Arc::new(OutboxSink::new(outbox.clone(), wake.clone()));
    let local = Arc::new(PinnedInterface::new(
        deps.hostnet.clone(),
        cfg.interface.clone(),
    ));
    let queue = Arc::new(WorkQueue::start(
        deps.deployer.clone(),
        sink,
        local,
        cfg.state_path(),
        deps.clock.clone(),
        shutdown.clone(),
    ));
    let status = Arc::new(LiveStatus {
        deployer: deps.deployer.clone(),
        state_path: cfg.state_path(),
        queue: queue.clone(),
        clock: deps.clock.clone(),
    });
    let reaper = Arc::new(Reaper {
        deployer: deps.deployer.clone(),
        launcher: deps.launcher.clone(),
        plan: ReaperPlan::new(cfg.reaper_paths.clone()),
    });
    let api = Arc::new(AgentApi {
        queue: queue.clone(),
        status: status.clone(),
        state_path: cfg.state_path(),
        host_uuid: identity.as_ref().map(|i| i.host_uuid),
        self_destruct: reaper,
    });
    let app = router(api, cfg.body_limit);
    let addr = listener
        .local_addr()
        .map_err(|e| StartError::Io(e.to_string()))?;
    let token = shutdown.clone();
    let limits = cfg.limits;
    let server = tokio::spawn(async move {
        if let Err(e) = decnet_web::serve(listener, Some(tls), app, limits, token).await {
            tracing::error!(error = %e, "agent server failed");
        }
    });

    let mut events_task = None;
    let heartbeat = match &identity {
        None => {
            tracing::info!("not enrolled: serving without heartbeats");
            None
        }
        Some(id) => {
            let pins = pins.clone().unwrap_or_default();
            let served = server_cert.clone();
            let mut renewer = Renewer::new(&cfg.agent_dir, id, cfg.renew_before)
                .with_pins(pins.clone())
                .on_renewed(Arc::new(move |b: &Bundle| {
                    served.replace(b).map_err(|e| e.to_string())
                }));
            if let Some(ev) = deps.events {
                let transport: Arc<dyn EventTransport> = match ev.transport {
                    Some(t) => t,
                    None => {
                        let https = Arc::new(
                            HttpsEventTransport::new(&bundle, &id.master_url, &pins)
                                .map_err(|e| StartError::Config(e.to_string()))?,
                        );
                        let reload = https.clone();
                        renewer = renewer.on_renewed(Arc::new(move |b: &Bundle| {
                            reload.reload(b).map_err(|e| e.to_string())
                        }));
                        https
                    }
                };
                let stop = shutdown.clone();
                events_task = Some(tokio::spawn(ev.pipeline.run(
                    ev.logs,
                    transport,
                    ev.interval,
                    async move { stop.cancelled().await },
                    |n, why| {
                        tracing::warn!(events = n, %why, "the master refused attacker events for good; counted as dropped");
                    },
                )));
            }
            let transport: Arc<dyn HeartbeatTransport> = match deps.transport {
                Some(t) => t,
                None => {
                    let https = Arc::new(
                        HttpsTransport::new(&bundle, &id.master_url, &pins)
                            .map_err(|e| StartError::Config(e.to_string()))?,
                    );
                    let reload = https.clone();
                    renewer = renewer.on_renewed(Arc::new(move |b: &Bundle| {
                        reload.reload(b).map_err(|e| e.to_string())
                    }));
                    https
                }
            };
            let mut hb = HeartbeatLoop::new(transport, outbox.clone(), status, id.host_uuid);
            hb.interval = cfg.heartbeat_interval;
            hb.before_beat = vec![
                Arc::new(renewer),
                Arc::new(MasterPinSync::new(
                    cfg.agent_dir.clone(),
                    id.clone(),
                    pins,
                    cfg.master_pin_check,
                )),
            ];
            let token = shutdown.clone();
            Some(tokio::spawn(hb.run(wake, token)))
        }
    };
    tracing::info!(%addr, enrolled = identity.is_some(), "agent serving");
    Ok(RunningAgent {
        addr,
        identity,
        server,
        heartbeat,
        events: events_task,
        queue,
        outbox,
    })
}

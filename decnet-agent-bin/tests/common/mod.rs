//! Shared fixtures of the agent's end-to-end tests: a PKI, an agent dir, a fake deployer, and
//! an mTLS client playing the master.

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use decnet_agent::app::{self, AgentConfig, AgentDeps, RunningAgent};
use decnet_agent::paths::Identity;
use decnet_agent::reaper::{Launcher, ReaperPlan};
use decnet_core::model::{DeckyName, DeckyRuntime, DecnetConfig, HostUuid, RuntimeMap};
use decnet_core::traits::{
    DeckyOutcome, DeployReport, Deployer, DeployerError, HeartbeatTransport, MockHostNetwork,
    SystemClock,
};
use decnet_tls::pki::{
    Bundle, Ca, IssuedKeyPair, LeafSpec, San, WORKER_CERT_FILE, WORKER_KEY_FILE,
};
use decnet_tls::verify::{client_config, PeerPolicy};
use tokio_util::sync::CancellationToken;

/// A CA, the master's certificate and a worker's bundle.
pub struct Pki {
    pub ca: Ca,
    pub master: IssuedKeyPair,
    pub worker: IssuedKeyPair,
}

impl Pki {
    pub fn new() -> Pki {
        let ca = Ca::generate("DECNET test CA").unwrap();
        let master = ca.issue_keypair(&LeafSpec::master(vec![])).unwrap();
        let worker = ca
            .issue_keypair(&LeafSpec::worker("worker-1", vec![San::parse("127.0.0.1")]))
            .unwrap();
        Pki { ca, master, worker }
    }

    pub fn bundle(&self, pair: &IssuedKeyPair) -> Bundle {
        Bundle {
            ca_pem: self.ca.cert_pem().to_string(),
            cert_pem: pair.cert_pem.clone(),
            key_pem: pair.key_pem.clone(),
        }
    }

    /// Writes the worker bundle (and, when enrolled, identity.json) into `dir`.
    pub fn write_agent_dir(&self, dir: &Path, identity: Option<&Identity>) {
        self.bundle(&self.worker)
            .write_dir(dir, WORKER_CERT_FILE, WORKER_KEY_FILE)
            .unwrap();
        if let Some(id) = identity {
            id.save(dir).unwrap();
        }
    }

    /// An HTTP client presenting `client` and trusting the agent by CA + the worker's pin.
    pub fn client_as(&self, client: &IssuedKeyPair) -> reqwest::Client {
        let policy = PeerPolicy::from_ca_pem(self.ca.cert_pem())
            .unwrap()
            .with_pinned_fingerprint(self.worker.fingerprint.clone());
        let tls = client_config(&self.bundle(client), &policy).unwrap();
        reqwest::Client::builder()
            .use_preconfigured_tls((*tls).clone())
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    }

    pub fn master_client(&self) -> reqwest::Client {
        self.client_as(&self.master)
    }
}

/// A deployer that records calls and reports success (or what it is told to fail).
#[derive(Default)]
pub struct FakeDeployer {
    pub calls: Mutex<Vec<String>>,
    pub fail: Mutex<BTreeMap<String, String>>,
    pub running: Mutex<RuntimeMap>,
    pub delay: Mutex<Duration>,
    /// When set, a deploy waits for a permit of this semaphore (tests hold a job in place).
    pub gate: Mutex<Option<Arc<tokio::sync::Semaphore>>>,
}

#[async_trait::async_trait]
impl Deployer for FakeDeployer {
    async fn deploy(&self, desired: &DecnetConfig) -> Result<DeployReport, DeployerError> {
        let delay = *self.delay.lock().unwrap();
        tokio::time::sleep(delay).await;
        self.calls
            .lock()
            .unwrap()
            .push(format!("deploy {}", desired.deckies.len()));
        // Recorded first, so a test sees the deploy in the deployer's hands while it waits.
        let gate = self.gate.lock().unwrap().clone();
        if let Some(gate) = gate {
            let _permit = gate.acquire().await.unwrap();
        }
        let fail = self.fail.lock().unwrap().clone();
        let mut outcomes = BTreeMap::new();
        let mut running = self.running.lock().unwrap();
        for d in &desired.deckies {
            let o = match fail.get(d.name.as_str()) {
                Some(r) => DeckyOutcome::Failed { reason: r.clone() },
                None => DeckyOutcome::Succeeded,
            };
            running.insert(
                d.name.to_string(),
                DeckyRuntime::from_services(
                    d.services
                        .iter()
                        .map(|s| (s.clone(), "running".into()))
                        .collect(),
                ),
            );
            outcomes.insert(d.name.clone(), o);
        }
        // The real deployer writes the state file; so does this fake.
        Ok(DeployReport { outcomes })
    }

    async fn mutate(
        &self,
        decky: &DeckyName,
        services: &[String],
    ) -> Result<DeployReport, DeployerError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("mutate {decky} {}", services.join(",")));
        Ok(DeployReport {
            outcomes: BTreeMap::from([(decky.clone(), DeckyOutcome::Succeeded)]),
        })
    }

    async fn teardown<'a>(
        &self,
        decky: Option<&'a DeckyName>,
    ) -> Result<DeployReport, DeployerError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("teardown {decky:?}"));
        let mut outcomes = BTreeMap::new();
        if let Some(d) = decky {
            outcomes.insert(d.clone(), DeckyOutcome::Succeeded);
        }
        Ok(DeployReport { outcomes })
    }

    async fn runtime(&self) -> Result<RuntimeMap, DeployerError> {
        Ok(self.running.lock().unwrap().clone())
    }
}

/// A launcher that records plans (and can fail).
#[derive(Default)]
pub struct FakeLauncher {
    pub launched: Mutex<Vec<ReaperPlan>>,
    pub fail: Mutex<bool>,
}

impl Launcher for FakeLauncher {
    fn launch(&self, plan: &ReaperPlan) -> Result<(), String> {
        if *self.fail.lock().unwrap() {
            return Err("systemd-run exited 1".into());
        }
        self.launched.lock().unwrap().push(plan.clone());
        Ok(())
    }
}

/// A started in-process agent and what it was started with.
pub struct TestAgent {
    pub agent: RunningAgent,
    pub url: String,
    pub deployer: Arc<FakeDeployer>,
    pub launcher: Arc<FakeLauncher>,
    pub shutdown: CancellationToken,
    pub state_dir: PathBuf,
}

impl TestAgent {
    pub fn state_path(&self) -> PathBuf {
        self.state_dir.join("decnet-state.json")
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.agent.server.await;
        if let Some(h) = self.agent.heartbeat {
            let _ = h.await;
        }
    }
}

pub fn lan_facts() -> MockHostNetwork {
    let mut net = MockHostNetwork::new();
    net.expect_facts().returning(|_| {
        Ok(decnet_core::traits::LocalNetFacts {
            interface: "ens3".into(),
            subnet: "10.50.0.0/24".parse().unwrap(),
            host_ip: "10.50.0.5".parse().unwrap(),
            gateway: Some("10.50.0.1".parse().unwrap()),
        })
    });
    net
}

pub async fn start_agent(
    agent_dir: &Path,
    state_dir: &Path,
    transport: Option<Arc<dyn HeartbeatTransport>>,
    body_limit: usize,
) -> TestAgent {
    let launcher = Arc::new(FakeLauncher::default());
    let mut a = start_agent_with_launcher(
        agent_dir,
        state_dir,
        transport,
        body_limit,
        launcher.clone(),
        vec![PathBuf::from("/opt/decnet")],
    )
    .await;
    a.launcher = launcher;
    a
}

/// [`start_agent`] with a launcher of the test's choice (a real one against a temporary root)
/// and its allow-list; `TestAgent::launcher` is then an unused recorder.
pub async fn start_agent_with_launcher(
    agent_dir: &Path,
    state_dir: &Path,
    transport: Option<Arc<dyn HeartbeatTransport>>,
    body_limit: usize,
    launcher: Arc<dyn Launcher>,
    reaper_paths: Vec<PathBuf>,
) -> TestAgent {
    let deployer = Arc::new(FakeDeployer::default());
    let cfg = AgentConfig {
        agent_dir: agent_dir.to_path_buf(),
        state_dir: state_dir.to_path_buf(),
        interface: Some("ens3".into()),
        body_limit,
        heartbeat_interval: Duration::from_secs(1),
        reaper_paths,
        limits: decnet_web::ServeLimits::default(),
        renew_before: None,
        master_pin_check: decnet_agent::master_pins::DEFAULT_MASTER_PIN_CHECK,
    };
    let deps = AgentDeps {
        deployer: deployer.clone(),
        hostnet: Arc::new(lan_facts()),
        launcher,
        clock: Arc::new(SystemClock),
        transport,
        events: None,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let shutdown = CancellationToken::new();
    let agent = app::start(&cfg, deps, listener, shutdown.clone())
        .await
        .unwrap();
    let url = format!("https://127.0.0.1:{}", agent.addr.port());
    TestAgent {
        agent,
        url,
        deployer,
        launcher: Arc::new(FakeLauncher::default()),
        shutdown,
        state_dir: state_dir.to_path_buf(),
    }
}

pub fn identity(pki: &Pki, host_uuid: HostUuid, master_url: &str) -> Identity {
    Identity {
        host_uuid,
        master_url: master_url.to_string(),
        master_fingerprint: pki.master.fingerprint.clone(),
        master_next_fingerprint: None,
    }
}

/// A leaf whose validity ended a day ago.
pub fn expired_master(pki: &Pki) -> IssuedKeyPair {
    let mut spec = LeafSpec::master(vec![]);
    spec.validity = Duration::from_secs(3600);
    spec.not_before = Some(SystemTime::now() - Duration::from_secs(2 * 86_400));
    pki.ca.issue_keypair(&spec).unwrap()
}

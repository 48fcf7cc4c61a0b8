//! `DockerDeployer`: the `Deployer` trait over the Docker Engine API.
//!
//! A deploy converges the host to its complete desired set (PRODUCT §3, §5): it plans with
//! `decnet_core::plan::plan_converge` from the containers found by label, creates what is
//! missing, recreates what changed (services follow their base), leaves unchanged containers
//! running with the same ids, and removes this host's deckies that are no longer desired.
//! Deckies come up in parallel, bounded; one failing never rolls back the others.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::query_parameters::{
    CreateContainerOptions, InspectContainerOptions, ListContainersOptions, LogsOptions,
    RemoveContainerOptions, StartContainerOptions, StopContainerOptions,
};
use bollard::Docker;
use decnet_core::adapters::state_file;
use decnet_core::model::{
    DeckyName, DeckyRuntime, DecnetConfig, NetworkDriver, RuntimeMap, WorkerState, ABSENT,
};
use decnet_core::plan::{container_name, plan_converge, ContainerRole, DeckySteps, Observed, Role};
use decnet_core::traits::{
    DeckyOutcome, DeployReport, Deployer, DeployerError, HostNetwork, OutputCollector,
};
use futures_util::StreamExt;
use ipnet::Ipv4Net;
use tokio::sync::{Mutex, OnceCell, Semaphore};

use crate::labels::{self, host_filter};
use crate::network::{self, NetworkSpec};
use crate::retry::retry;
use crate::shapes::{DeckyShape, Shaper};
use crate::{image, DockerError};

/// Seconds a stopping container has to write its last events before it is killed.
pub const OUTPUT_DRAIN_GRACE_SECS: i32 = 3;
/// What the decky binary prints (stderr) once every port of a service is bound.
pub const READY_MARKER: &str = "decnet-decky: serving ";
/// How long a service from an operator's own image must stay up to count as started.
pub const CUSTOM_SETTLE: Duration = Duration::from_secs(1);
/// Name of the host-side helper link for macvlan deckies.
pub use decnet_net::HOST_MACVLAN_IFACE;

/// How the deployer is set up on this host.
#[derive(Debug, Clone)]
pub struct DockerDeployerConfig {
    /// The `decnet.host` label: `local` for unihost, the worker's uuid on an agent.
    pub host: String,
    /// Docker network name (default `decnet_lan`).
    pub network: String,
    /// The state file, `<state-dir>/decnet-state.json`.
    pub state_path: PathBuf,
    /// The decky binary the image is built from.
    pub decky_binary: PathBuf,
    /// Create the host-side macvlan link so this host can reach its own deckies.
    pub host_link: bool,
    /// Its name (default `decnet_macvlan0`).
    pub host_link_name: String,
    /// Deckies brought up at once.
    pub parallelism: usize,
    /// How long a service may take to listen.
    pub ready_timeout: Duration,
    /// Earlier `decnet.host` labels of this host's deckies (unihost deckies were all labelled
    /// `local` before each data dir had its own identity). Containers with such a label are
    /// adopted when the state file lists their decky: listed, torn down, and recreated under
    /// `host` by the next deploy. Never containers the state file does not list.
    pub adopt_labels: Vec<String>,
}

impl DockerDeployerConfig {
    pub fn new(host: impl Into<String>, state_path: PathBuf, decky_binary: PathBuf) -> Self {
        Self {
            host: host.into(),
            network: "decnet_lan".into(),
            state_path,
            decky_binary,
            host_link: true,
            host_link_name: HOST_MACVLAN_IFACE.to_string(),
            parallelism: 8,
            ready_timeout: Duration::from_secs(30),
            adopt_labels: Vec::new(),
        }
    }
}

/// The Docker-backed deployer. Operations on one host are serialised.
pub struct DockerDeployer {
    docker: Docker,
    cfg: DockerDeployerConfig,
    hostnet: Arc<dyn HostNetwork>,
    image: OnceCell<String>,
    lock: Mutex<()>,
    /// Reads what service containers wrote before they are removed (attacker events).
    collector: Option<Arc<dyn OutputCollector>>,
}

impl std::fmt::Debug for DockerDeployer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerDeployer")
            .field("cfg", &self.cfg)
            .finish()
    }
}

/// The host link to set up for a deploy, decided before any side effect.
struct LinkPlan {
    parent: String,
    host_ip: Ipv4Addr,
    routes: Vec<Ipv4Net>,
}

impl DockerDeployer {
    /// Connects to the daemon (API version negotiated).
    pub async fn connect(
        cfg: DockerDeployerConfig,
        hostnet: Arc<dyn HostNetwork>,
    ) -> Result<Self, DockerError> {
        let docker = image::connect().await?;
        Ok(Self::with_docker(docker, cfg, hostnet))
    }

    pub fn with_docker(
        docker: Docker,
        cfg: DockerDeployerConfig,
        hostnet: Arc<dyn HostNetwork>,
    ) -> Self {
        Self {
            docker,
            cfg,
            hostnet,
            image: OnceCell::new(),
            lock: Mutex::new(()),
            collector: None,
        }
    }

    /// Before any container is removed (a redeploy, a mutate, a teardown) the containers are
    /// stopped — a decky service drains its sessions and writes their last events on SIGTERM
    /// — and `collector` reads their remaining output, so no attacker event goes with them.
    pub fn with_output_collector(mut self, collector: Arc<dyn OutputCollector>) -> Self {
        self.collector = Some(collector);
        self
    }

    /// Stops `ids` (bounded grace) and lets the collector read them, when there is one.
    async fn drain_output(&self, ids: &[String]) {
        let Some(collector) = &self.collector else {
            return;
        };
        if ids.is_empty() {
            return;
        }
        let stops = ids.iter().map(|id| {
            let opts = StopContainerOptions {
                t: Some(OUTPUT_DRAIN_GRACE_SECS),
                ..Default::default()
            };
            // A container that is already stopped or gone is fine as it is.
            async move { self.docker.stop_container(id, Some(opts)).await }
        });
        futures_util::future::join_all(stops).await;
        collector.collect(self).await;
    }

    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    pub fn config(&self) -> &DockerDeployerConfig {
        &self.cfg
    }

    /// The decky image tag, built once per process when missing.
    pub async fn image(&self) -> Result<String, DockerError> {
        self.image
            .get_or_try_init(|| async {
                image::ensure_image(&self.docker, &self.cfg.decky_binary)
                    .await
                    .map_err(DockerError::from)
            })
            .await
            .cloned()
    }

    /// The state file as it is (`None` when nothing is deployed).
    pub fn load_state(&self) -> Result<Option<WorkerState>, DockerError> {
        Ok(state_file::load(&self.cfg.state_path)?)
    }

    /// Every container of this host's deckies (adopted labels included), for the log reader.
    pub(crate) async fn list_observed_for_logs(&self) -> Result<Vec<Observed>, DockerError> {
        Ok(self
            .list_observed(None)
            .await?
            .into_iter()
            .map(|(o, _)| o)
            .collect())
    }

    async fn list_observed(
        &self,
        decky: Option<&DeckyName>,
    ) -> Result<Vec<(Observed, String)>, DockerError> {
        let mut out = self.list_labelled(&self.cfg.host, decky).await?;
        if self.cfg.adopt_labels.iter().all(|l| l == &self.cfg.host) {
            return Ok(out);
        }
        // Deckies this host's state file lists, under a label it used before: adopted. Their
        // shape hash is dropped so the next deploy recreates them under today's label.
        let listed: std::collections::BTreeSet<DeckyName> = match self.load_state() {
            Ok(Some(st)) => st.config.deckies.iter().map(|d| d.name.clone()).collect(),
            _ => return Ok(out),
        };
        for label in self
            .cfg
            .adopt_labels
            .iter()
            .filter(|l| *l != &self.cfg.host)
        {
            for (mut o, state) in self.list_labelled(label, decky).await? {
                if listed.contains(&o.decky) {
                    o.hash = None;
                    out.push((o, state));
                }
            }
        }
        Ok(out)
    }

    async fn list_labelled(
        &self,
        host: &str,
        decky: Option<&DeckyName>,
    ) -> Result<Vec<(Observed, String)>, DockerError> {
        let opts = ListContainersOptions {
            all: true,
            filters: Some(host_filter(host, decky)),
            ..Default::default()
        };
        let list = retry("list containers", || {
            self.docker.list_containers(Some(opts.clone()))
        })
        .await?;
        Ok(list
            .iter()
            .filter_map(|c| labels::observed(c).map(|o| (o, labels::state_word(c))))
            .collect())
    }

    async fn remove_container(&self, id: &str) -> Result<(), DockerError> {
        let opts = RemoveContainerOptions {
            force: true,
            v: true,
            ..Default::default()
        };
        match self.docker.remove_container(id, Some(opts.clone())).await {
            Ok(()) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(_) => {
                retry("remove container", || {
                    self.docker.remove_container(id, Some(opts.clone()))
                })
                .await
            }
        }
    }

    /// Decides the host link before anything changes; fails early without CAP_NET_ADMIN.
    async fn link_plan(&self, config: &DecnetConfig) -> Result<Option<LinkPlan>, DockerError> {
        if !self.cfg.host_link {
            return Ok(None);
        }
        match config.driver() {
            NetworkDriver::Bridge => return Ok(None),
            NetworkDriver::Ipvlan => {
                tracing::warn!(
                    "no host-side link for ipvlan deckies: this host cannot reach them directly"
                );
                return Ok(None);
            }
            NetworkDriver::Macvlan => {}
        }
        let facts = match self.hostnet.facts(Some(&config.interface)).await {
            Ok(f) if config.subnet.contains(f.host_ip) => f,
            Ok(_) | Err(_) => {
                tracing::info!(parent = %config.interface, "the host has no address in the deckies' subnet on the parent: no host-side link");
                return Ok(None);
            }
        };
        if !decnet_net::has_net_admin() {
            return Err(DockerError::Permission(format!(
                "the host-side link {} needs CAP_NET_ADMIN (run as root, or pass --no-host-link)",
                self.cfg.host_link_name
            )));
        }
        let routes = config
            .deckies
            .iter()
            .filter_map(|d| Ipv4Net::new(d.ip, 32).ok())
            .collect();
        Ok(Some(LinkPlan {
            parent: config.interface.clone(),
            host_ip: facts.host_ip,
            routes,
        }))
    }

    async fn deploy_locked(&self, desired: &DecnetConfig) -> Result<DeployReport, DockerError> {
        for c in &desired.custom_services {
            if self.docker.inspect_image(&c.image).await.is_err() {
                return Err(DockerError::Invalid(format!(
                    "custom service {:?}: image {:?} does not exist locally (DECNET never pulls; build or load it first)",
                    c.name, c.image
                )));
            }
        }
        let image = self.image().await?;
        let link = self.link_plan(desired).await?;
        let spec = NetworkSpec {
            name: self.cfg.network.clone(),
            driver: desired.driver(),
            parent: desired.interface.clone(),
            subnet: desired.subnet,
            gateway: desired.gateway,
            ips: desired.deckies.iter().map(|d| d.ip).collect(),
            host: self.cfg.host.clone(),
        };
        network::ensure(&self.docker, &spec).await?;
        if let Some(l) = &link {
            decnet_net::ensure_host_macvlan(
                &l.parent,
                &self.cfg.host_link_name,
                l.host_ip,
                &l.routes,
            )
            .await?;
        }

        let shaper = Shaper {
            host: &self.cfg.host,
            network: &self.cfg.network,
            driver: desired.driver(),
            image: &image,
            custom: &desired.custom_services,
        };
        let shapes = shaper.shapes(desired);
        let observed = self.list_observed(None).await?;
        let observed_only: Vec<Observed> = observed.iter().map(|(o, _)| o.clone()).collect();
        let desired_list: Vec<_> = shapes.iter().map(DeckyShape::desired).collect();
        let plan = plan_converge(&desired_list, &observed_only);
        tracing::info!(
            deckies = shapes.len(),
            changing = plan.deckies.len(),
            "converging"
        );

        // Removals first, all of them, then creations: a new decky may be given the address
        // of one being retired or recreated elsewhere (replacing a fleet reuses the freed
        // IPs), and Docker refuses an address still held ("Address already in use").
        let retiring: Vec<String> = plan
            .deckies
            .values()
            .flat_map(|s| s.remove.iter().cloned())
            .collect();
        self.drain_output(&retiring).await;
        let sem = Arc::new(Semaphore::new(self.cfg.parallelism.max(1)));
        let mut outcomes = BTreeMap::new();
        let removals = plan.deckies.iter().map(|(name, steps)| {
            let sem = sem.clone();
            async move {
                let _permit = sem.acquire().await;
                (name, self.remove_ids(&steps.remove).await)
            }
        });
        let mut removed = Vec::new();
        for (name, r) in futures_util::future::join_all(removals).await {
            match r {
                Ok(()) => removed.push(name),
                Err(reason) => {
                    tracing::warn!(decky = %name, %reason, "decky failed");
                    outcomes.insert(name.clone(), DeckyOutcome::Failed { reason });
                }
            }
        }
        let mut tasks = Vec::new();
        let shaper = &shaper;
        for name in removed {
            let steps = &plan.deckies[name];
            let Some(shape) = shapes.iter().find(|s| &s.decky.name == name) else {
                // Retired: removing it was all there was to do, and its outcome is reported
                // (the agent turns it into the teardown delta).
                outcomes.insert(name.clone(), DeckyOutcome::Succeeded);
                continue;
            };
            let kept_base = observed_only
                .iter()
                .find(|o| &o.decky == name && o.role == Role::Base && !steps.remove.contains(&o.id))
                .map(|o| o.id.clone());
            let sem = sem.clone();
            let fut = async move {
                let _permit = sem.acquire().await;
                let r = self.create(shaper, shape, steps, kept_base).await;
                (name.clone(), r)
            };
            tasks.push(fut);
        }
        for (name, r) in futures_util::future::join_all(tasks).await {
            let outcome = match r {
                Ok(()) => DeckyOutcome::Succeeded,
                Err(reason) => {
                    tracing::warn!(decky = %name, %reason, "decky failed");
                    DeckyOutcome::Failed { reason }
                }
            };
            outcomes.insert(name, outcome);
        }
        for s in &shapes {
            outcomes
                .entry(s.decky.name.clone())
                .or_insert(DeckyOutcome::Succeeded);
        }

        let mut state = self
            .load_state()
            .ok()
            .flatten()
            .unwrap_or_else(|| WorkerState::new(desired.clone()));
        state.config = desired.clone();
        state_file::save(&self.cfg.state_path, &state)?;
        Ok(DeployReport { outcomes })
    }

    /// Removes one decky's containers that the plan retires. Errors are the reason the decky
    /// failed.
    async fn remove_ids(&self, ids: &[String]) -> Result<(), String> {
        for id in ids {
            self.remove_container(id).await.map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Creates what one decky's steps add, once every removal of the deploy is done. Errors
    /// are the reason the decky failed.
    async fn create(
        &self,
        shaper: &Shaper<'_>,
        shape: &DeckyShape,
        steps: &DeckySteps,
        kept_base: Option<String>,
    ) -> Result<(), String> {
        let name = &shape.decky.name;
        let base_id = if steps.create_base {
            let body = shaper.base_body(shape);
            let cname = container_name(name, ContainerRole::Base);
            self.create_and_start(&cname, body)
                .await
                .map_err(|e| format!("base container {cname}: {e}"))?
        } else {
            kept_base.ok_or_else(|| "base container vanished during deploy".to_string())?
        };
        let waits = steps.create_services.iter().map(|svc| {
            let base_id = base_id.clone();
            async move {
                let cname = container_name(name, ContainerRole::Service(svc));
                let mut body = shaper.service_body(shape, svc, &base_id);
                crate::hostkey::mount_ssh_host_key(
                    &self.cfg.state_path,
                    name.as_str(),
                    svc,
                    &mut body,
                )
                .map_err(|e| format!("service {svc}: ssh host key: {e}"))?;
                let custom = shaper.custom.iter().any(|c| &c.name == svc);
                let id = self
                    .create_and_start(&cname, body)
                    .await
                    .map_err(|e| format!("service {svc}: {e}"))?;
                if let Err(e) = self.wait_ready(&id, custom).await {
                    // Do not leave a crash-looping container behind; the next deploy retries.
                    let _ = self.remove_container(&id).await;
                    return Err(format!("service {svc}: {e}"));
                }
                Ok(())
            }
        });
        let errors: Vec<String> = futures_util::future::join_all(waits)
            .await
            .into_iter()
            .filter_map(Result::err)
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    async fn create_and_start(
        &self,
        name: &str,
        body: bollard::models::ContainerCreateBody,
    ) -> Result<String, DockerError> {
        let opts = CreateContainerOptions {
            name: Some(name.to_string()),
            ..Default::default()
        };
        let created = match self.docker.create_container(Some(opts.clone()), body.clone()).await {
            Ok(c) => c,
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 409, .. }) => {
                return Err(DockerError::Invalid(format!(
                    "a container named {name:?} exists and is not one of this host's deckies; remove or rename it"
                )))
            }
            Err(e) if crate::retry::is_transient(&e) => {
                retry("create container", || self.docker.create_container(Some(opts.clone()), body.clone())).await?
            }
            Err(e) => {
                return Err(DockerError::Api {
                    what: "create container".into(),
                    source: e,
                })
            }
        };
        retry("start container", || {
            self.docker
                .start_container(&created.id, None::<StartContainerOptions>)
        })
        .await?;
        Ok(created.id)
    }

    /// Waits until the service says it listens (an operator's own image: until it has stayed up
    /// for [`CUSTOM_SETTLE`]), or fails with what it printed.
    async fn wait_ready(&self, id: &str, custom: bool) -> Result<(), String> {
        let started = Instant::now();
        let deadline = started + self.cfg.ready_timeout;
        loop {
            let info = self
                .docker
                .inspect_container(id, None::<InspectContainerOptions>)
                .await
                .map_err(|e| e.to_string())?;
            let state = info.state.unwrap_or_default();
            let restarted = info.restart_count.unwrap_or(0) > 0;
            let running = state.running.unwrap_or(false) && !state.restarting.unwrap_or(false);
            if !running || restarted {
                let code = state.exit_code.unwrap_or_default();
                return Err(format!(
                    "exited with code {code}: {}",
                    self.log_tail(id).await
                ));
            }
            if custom {
                if started.elapsed() >= CUSTOM_SETTLE {
                    return Ok(());
                }
            } else if self.log_tail(id).await.contains(READY_MARKER) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "did not listen within {}s",
                    self.cfg.ready_timeout.as_secs()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn log_tail(&self, id: &str) -> String {
        let opts = LogsOptions {
            stdout: true,
            stderr: true,
            tail: "20".into(),
            ..Default::default()
        };
        let mut out = String::new();
        let mut stream = self.docker.logs(id, Some(opts));
        while let Some(Ok(chunk)) = stream.next().await {
            out.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
        }
        out.trim()
            .lines()
            .rev()
            .take(5)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join(" | ")
    }

    async fn teardown_locked(
        &self,
        decky: Option<&DeckyName>,
    ) -> Result<DeployReport, DockerError> {
        let state = self.load_state()?;
        if let Some(name) = decky {
            let found = self.list_observed(Some(name)).await?;
            let in_state = state
                .as_ref()
                .is_some_and(|s| s.config.decky(name.as_str()).is_some());
            if found.is_empty() && !in_state {
                return Err(DockerError::UnknownDecky(name.to_string()));
            }
            let ids: Vec<String> = found.iter().map(|(o, _)| o.id.clone()).collect();
            self.drain_output(&ids).await;
            let outcome = self.remove_all(&found).await;
            if let Some(mut st) = state {
                st.config.deckies.retain(|d| &d.name != name);
                if st.config.deckies.is_empty() && st.rejected.is_empty() {
                    state_file::clear(&self.cfg.state_path)?;
                } else {
                    state_file::save(&self.cfg.state_path, &st)?;
                }
            }
            return Ok(DeployReport {
                outcomes: BTreeMap::from([(name.clone(), outcome)]),
            });
        }

        // Everything: check the permission the host link needs before removing anything. The
        // link is this deployer's only when it makes links and its deckies were on macvlan;
        // another deployment's link of the same name is left alone.
        let link_ours = self.cfg.host_link
            && state
                .as_ref()
                .is_some_and(|s| s.config.driver() == NetworkDriver::Macvlan);
        let link_exists = link_ours
            && self
                .hostnet
                .interfaces()
                .await
                .map(|l| l.iter().any(|i| i.name == self.cfg.host_link_name))
                .unwrap_or(false);
        if link_exists && !decnet_net::has_net_admin() {
            return Err(DockerError::Permission(format!(
                "removing {} needs CAP_NET_ADMIN; nothing was torn down",
                self.cfg.host_link_name
            )));
        }
        let found = self.list_observed(None).await?;
        let ids: Vec<String> = found.iter().map(|(o, _)| o.id.clone()).collect();
        self.drain_output(&ids).await;
        let mut by_decky: BTreeMap<DeckyName, Vec<(Observed, String)>> = BTreeMap::new();
        for o in found {
            by_decky.entry(o.0.decky.clone()).or_default().push(o);
        }
        if let Some(st) = &state {
            for d in &st.config.deckies {
                by_decky.entry(d.name.clone()).or_default();
            }
        }
        // Deckies go in parallel, bounded like deploys.
        let sem = Semaphore::new(self.cfg.parallelism.max(1));
        let removals = by_decky.into_iter().map(|(name, list)| {
            let sem = &sem;
            async move {
                let _permit = sem.acquire().await;
                (name, self.remove_all(&list).await)
            }
        });
        let outcomes: BTreeMap<_, _> = futures_util::future::join_all(removals)
            .await
            .into_iter()
            .collect();
        network::remove(&self.docker, &self.cfg.network).await?;
        if link_exists {
            let routes: Vec<Ipv4Net> = state
                .iter()
                .flat_map(|s| s.config.deckies.iter())
                .filter_map(|d| Ipv4Net::new(d.ip, 32).ok())
                .collect();
            decnet_net::remove_host_link(&self.cfg.host_link_name, &routes).await?;
        }
        state_file::clear(&self.cfg.state_path)?;
        Ok(DeployReport { outcomes })
    }

    /// Removes one decky's containers: its services together, then the base.
    async fn remove_all(&self, list: &[(Observed, String)]) -> DeckyOutcome {
        let services = list
            .iter()
            .filter(|(o, _)| o.role != Role::Base)
            .map(|(o, _)| self.remove_container(&o.id));
        let mut errors: Vec<String> = futures_util::future::join_all(services)
            .await
            .into_iter()
            .filter_map(|r| r.err().map(|e| e.to_string()))
            .collect();
        for (o, _) in list.iter().filter(|(o, _)| o.role == Role::Base) {
            if let Err(e) = self.remove_container(&o.id).await {
                errors.push(e.to_string());
            }
        }
        if errors.is_empty() {
            DeckyOutcome::Succeeded
        } else {
            DeckyOutcome::Failed {
                reason: errors.join("; "),
            }
        }
    }

    async fn runtime_map(&self) -> Result<RuntimeMap, DockerError> {
        let found = self.list_observed(None).await?;
        let state = self.load_state()?;
        let mut map: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        if let Some(st) = &state {
            for d in &st.config.deckies {
                let svcs = map.entry(d.name.to_string()).or_default();
                for s in &d.services {
                    svcs.insert(s.clone(), ABSENT.to_string());
                }
            }
        }
        for (o, word) in found {
            if let Role::Service(s) = o.role {
                map.entry(o.decky.to_string()).or_default().insert(s, word);
            } else {
                map.entry(o.decky.to_string()).or_default();
            }
        }
        Ok(map
            .into_iter()
            .map(|(k, v)| (k, DeckyRuntime::from_services(v)))
            .collect())
    }
}

#[async_trait::async_trait]
impl Deployer for DockerDeployer {
    async fn deploy(&self, desired: &DecnetConfig) -> Result<DeployReport, DeployerError> {
        let _g = self.lock.lock().await;
        if desired.deckies.is_empty() {
            return Ok(self.teardown_locked(None).await?);
        }
        Ok(self.deploy_locked(desired).await?)
    }

    async fn mutate(
        &self,
        decky: &DeckyName,
        services: &[String],
    ) -> Result<DeployReport, DeployerError> {
        let _g = self.lock.lock().await;
        let state = self
            .load_state()?
            .ok_or_else(|| DeployerError::UnknownDecky(decky.to_string()))?;
        let mut config = state.config.clone();
        let d = config
            .deckies
            .iter_mut()
            .find(|d| &d.name == decky)
            .ok_or_else(|| DeployerError::UnknownDecky(decky.to_string()))?;
        decnet_core::model::validate::validate_services(
            "services",
            services,
            &config.custom_services,
        )
        .map_err(|e| DeployerError::invalid(e.to_string()))?;
        d.services = services.to_vec();
        d.last_mutated = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|t| t.as_secs_f64())
            .unwrap_or(0.0);
        let mut report = self.deploy_locked(&config).await?;
        report.outcomes.retain(|n, _| n == decky);
        Ok(report)
    }

    async fn teardown<'a>(
        &self,
        decky: Option<&'a DeckyName>,
    ) -> Result<DeployReport, DeployerError> {
        let _g = self.lock.lock().await;
        Ok(self.teardown_locked(decky).await?)
    }

    async fn runtime(&self) -> Result<RuntimeMap, DeployerError> {
        Ok(self.runtime_map().await?)
    }
}

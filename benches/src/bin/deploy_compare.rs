//! `deploy_compare`: the Docker deploy engine (`DockerDeployer`) against the original's
//! mechanism (`docker-compose`) and the raw Docker API floor, all measured in one run on one
//! machine. Figures and how to read them: BENCHMARKS.md, "Deploy engine vs docker-compose".
//!
//! Scenario: N deckies (default 20) × ssh + http on macvlan over a fresh lab LAN (a veth pair
//! and an attacker namespace, `decnet_net::lab`), one prebuilt decky image for everyone.
//!
//! * (a) first deploy: `DockerDeployer::deploy` vs `docker-compose up -d` vs the raw floor
//!   (bollard: every decky at once, its base then its services, create + start, no readiness).
//! * (b) redeploying the unchanged fleet: `deploy` again (a converge no-op) vs the original's
//!   `docker-compose down --remove-orphans` + `up -d`.
//! * (c) tearing down: `teardown(None)` vs `docker-compose down` (and the raw floor: parallel
//!   force-remove).
//!
//! Fairness: every container of every system has the same create body — the deployer's own
//! `Shaper` output (image, command, hostname, MAC, sysctls, capabilities, read-only root, limits,
//! log rotation, restart policy, labels); only names and the `decnet.host` label differ. The
//! compose file is those bodies translated key by key (file format 2.4, which carries
//! `mem_limit`, `pids_limit` and `mac_address`); a body field with no translation aborts the
//! run instead of silently comparing different containers. Before each (a) the Docker network
//! exists, created the same way for all three (`decnet_docker::network::ensure`, one spec);
//! its creation and removal are timed on their own. Systems are interleaved and their order
//! rotates from run to run.
//!
//! Needs root (the lab LAN), a Docker daemon and `docker-compose` on PATH; fails with a clear
//! message otherwise. Everything it makes carries this run's names and labels and is removed at
//! the end, also on error or Ctrl-C.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bollard::models::{ContainerCreateBody, ContainerSummary, ContainerSummaryStateEnum};
use bollard::query_parameters::{
    CreateContainerOptions, EventsOptions, ListContainersOptions, LogsOptions,
    RemoveContainerOptions, StartContainerOptions,
};
use bollard::Docker;
use clap::Parser;
use decnet_core::fleet::{build_from_specs, BuildContext, DeckySpec, FleetSpec, NetPlan};
use decnet_core::model::{DeckyName, DecnetConfig, Mode, NetworkDriver, Subnet};
use decnet_core::plan::{container_name, ContainerRole};
use decnet_core::traits::{DeployReport, Deployer};
use decnet_docker::labels::{host_filter, ROLE};
use decnet_docker::network::{self, NetworkSpec};
use decnet_docker::shapes::{DeckyShape, Shaper};
use decnet_docker::{image, DockerDeployer, DockerDeployerConfig, READY_MARKER};
use decnet_net::lab::{self, LabLan};
use decnet_net::NetlinkHostNetwork;
use futures_util::future::join_all;
use futures_util::StreamExt;
use ipnet::Ipv4Net;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::{json, Map, Value};

/// The services every decky runs (clash-free: ports 22 and 80).
const SERVICES: [&str; 2] = ["ssh", "http"];
/// How long a service may take to print its ready line in the untimed checks.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Extra label on the compose and raw containers (ours carry the deployer's labels only).
const BENCH_LABEL: &str = "decnet.bench";

/// Our deploy engine vs docker-compose vs the raw Docker API, on a lab LAN (needs root and
/// Docker).
#[derive(Debug, Parser)]
#[command(name = "deploy_compare")]
struct Args {
    /// Measured runs per figure (median and min are reported).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Unmeasured runs first (page cache, daemon warm-up).
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Deckies in the fleet (each runs ssh + http: 3 containers per decky).
    #[arg(long, default_value_t = 20)]
    deckies: usize,
    /// Lab LAN subnet (must not overlap another Docker network).
    #[arg(long, default_value = "10.216.0.0/24")]
    subnet: Ipv4Net,
    /// Write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// The decky binary the image is built from (default: next to this executable).
    #[arg(long, env = "DECNET_DECKY_BIN")]
    decky_bin: Option<PathBuf>,
    /// The docker-compose executable.
    #[arg(long, default_value = "docker-compose")]
    compose: String,
}

type Res<T> = Result<T, String>;
/// Figure key → samples in milliseconds.
type Samples = BTreeMap<&'static str, Vec<f64>>;

fn main() -> ExitCode {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("deploy_compare: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run_all(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("deploy_compare: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Everything the run learned about the machine it ran on.
#[derive(Debug)]
struct Env {
    docker_version: String,
    api_version: String,
    compose_version: String,
    image: String,
    cpus: usize,
    /// `/proc/loadavg` before the first run (other work on the machine shows here).
    load_before: String,
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

async fn run_all(args: Args) -> Res<()> {
    if args.runs == 0 {
        return Err("--runs must be at least 1".into());
    }
    if args.deckies == 0 || args.deckies > 200 {
        return Err("--deckies must be between 1 and 200".into());
    }
    // Preconditions, checked before anything is made.
    if !decnet_net::has_net_admin() {
        return Err("needs root (CAP_NET_ADMIN): it builds a lab LAN (a veth pair and a network namespace) as the deckies' macvlan parent".into());
    }
    let docker = image::connect()
        .await
        .map_err(|e| format!("needs a running Docker daemon: {e}"))?;
    let version = docker
        .version()
        .await
        .map_err(|e| format!("needs a running Docker daemon: docker version: {e}"))?;
    let compose_version = compose_version(&args.compose).await?;
    let binary = image::find_decky_binary(args.decky_bin.as_deref()).map_err(|e| e.to_string())?;
    let image_tag = image::ensure_image(&docker, &binary)
        .await
        .map_err(|e| format!("decky image from {}: {e}", binary.display()))?;
    let env = Env {
        docker_version: version.version.unwrap_or_default(),
        api_version: version.api_version.unwrap_or_default(),
        compose_version,
        image: image_tag.clone(),
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_before: loadavg(),
    };
    eprintln!(
        "deploy_compare: Docker {} (API {}), docker-compose {}, image {}, binary {}",
        env.docker_version,
        env.api_version,
        env.compose_version,
        env.image,
        binary.display()
    );

    let id = std::process::id() % 100_000;
    let tag = format!("dc{id}");
    let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let _ = lab::destroy_by_tag(&tag).await;
    let lan = LabLan::create(&tag, args.subnet)
        .await
        .map_err(|e| format!("create the lab LAN {tag} on {}: {e}", args.subnet))?;

    let (result, cleanup) = match Bench::new(&args, docker, image_tag, &lan, dir.path(), id) {
        Ok(bench) => {
            let result = tokio::select! {
                r = bench.run(&args) => r,
                s = interrupted() => Err(format!("interrupted by {s}; cleaning up")),
            };
            (result, bench.cleanup().await)
        }
        Err(e) => (Err(e), vec![]),
    };
    let mut cleanup = cleanup;
    if let Err(e) = lan.destroy().await {
        cleanup.push(format!("lab LAN {tag}: {e}"));
    }
    drop(dir);
    for e in &cleanup {
        eprintln!("deploy_compare: cleanup: {e}");
    }
    let samples = result?;
    if !cleanup.is_empty() {
        return Err("cleanup was incomplete (see above)".into());
    }
    let report = Report::new(&args, &env, samples);
    println!("{}", report.markdown());
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report.json())
            .map_err(|e| format!("serialise results: {e}"))?;
        std::fs::write(path, text + "\n").map_err(|e| format!("write {}: {e}", path.display()))?;
        eprintln!("deploy_compare: results written to {}", path.display());
    }
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM, naming it.
async fn interrupted() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = tokio::signal::ctrl_c() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        },
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}

async fn compose_version(bin: &str) -> Res<String> {
    let out = tokio::process::Command::new(bin)
        .args(["version", "--short"])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| format!("needs docker-compose ({bin}) for the baseline: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "needs docker-compose ({bin}) for the baseline: `{bin} version` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The three systems, measured one after the other in each run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum System {
    Ours,
    Compose,
    /// The raw floor, every decky at once.
    Raw,
    /// The raw floor, as many deckies at a time as the deployer takes.
    RawBounded,
}

/// The fleet and every name this run uses.
#[derive(Debug)]
struct Bench {
    docker: Docker,
    image: String,
    /// The one network spec all three systems use.
    net: NetworkSpec,
    ours: DockerDeployer,
    ours_cfg: DecnetConfig,
    /// What `ours_cfg` was planned from: the redeploy plans again, without a seed.
    ours_plan: (FleetSpec, BuildContext),
    raw_cfg: DecnetConfig,
    ours_host: String,
    compose_host: String,
    raw_host: String,
    bench_tag: String,
    compose_bin: String,
    project: String,
    compose_file: PathBuf,
    containers: usize,
}

impl Bench {
    fn new(
        args: &Args,
        docker: Docker,
        image: String,
        lan: &LabLan,
        dir: &Path,
        id: u32,
    ) -> Res<Bench> {
        let base = fleet(lan, args.deckies)?;
        let ours_cfg = renamed(&base, &format!("o{id}"))?;
        let ours_plan = fleet_spec(lan, args.deckies, &format!("o{id}"))?;
        let compose_cfg = renamed(&base, &format!("c{id}"))?;
        let raw_cfg = renamed(&base, &format!("r{id}"))?;
        let ours_host = format!("bench-ours-{id}");
        let compose_host = format!("bench-compose-{id}");
        let raw_host = format!("bench-raw-{id}");
        let bench_tag = format!("deploy_compare-{id}");
        let net_name = format!("decnet_bench_{id}");

        let binary =
            image::find_decky_binary(args.decky_bin.as_deref()).map_err(|e| e.to_string())?;
        let mut cfg =
            DockerDeployerConfig::new(ours_host.clone(), dir.join("decnet-state.json"), binary);
        cfg.network = net_name.clone();
        // The lab's host end has no address in the deckies' subnet: no host-side link either way.
        cfg.host_link = false;
        let ours =
            DockerDeployer::with_docker(docker.clone(), cfg, Arc::new(NetlinkHostNetwork::new()));
        // The same spec the deployer builds for its own deploys.
        let net = NetworkSpec {
            name: net_name.clone(),
            driver: ours_cfg.driver(),
            parent: ours_cfg.interface.clone(),
            subnet: ours_cfg.subnet,
            gateway: ours_cfg.gateway,
            ips: ours_cfg.deckies.iter().map(|d| d.ip).collect(),
            host: ours_host.clone(),
        };

        let shaper = Shaper {
            host: &compose_host,
            network: &net_name,
            driver: compose_cfg.driver(),
            image: &image,
            custom: &[],
        };
        let file = compose_document(&shaper, &shaper.shapes(&compose_cfg), &net_name, &bench_tag)?;
        let compose_file = dir.join("decnet-compose.json");
        let text = serde_json::to_string_pretty(&file).map_err(|e| format!("compose file: {e}"))?;
        std::fs::write(&compose_file, text)
            .map_err(|e| format!("write {}: {e}", compose_file.display()))?;

        let containers = base
            .deckies
            .iter()
            .map(|d| 1 + d.services.len())
            .sum::<usize>();
        Ok(Bench {
            docker,
            image,
            net,
            ours,
            ours_cfg,
            ours_plan,
            raw_cfg,
            ours_host,
            compose_host,
            raw_host,
            bench_tag,
            compose_bin: args.compose.clone(),
            project: format!("decnetbench{id}"),
            compose_file,
            containers,
        })
    }

    async fn run(&self, args: &Args) -> Res<Samples> {
        // The deployer builds (here: finds) its image once per process; do that outside the
        // timed deploys, as compose and the raw floor get the tag for free.
        let tag = self.ours.image().await.map_err(|e| e.to_string())?;
        if tag != self.image {
            return Err(format!(
                "the deployer's image {tag} is not the benchmark's {}",
                self.image
            ));
        }
        let mut samples = Samples::new();
        let total = args.warmup + args.runs;
        for r in 0..total {
            let mut order = [
                System::Ours,
                System::Compose,
                System::Raw,
                System::RawBounded,
            ];
            let n = order.len();
            order.rotate_left(r % n);
            let mut got = Vec::new();
            for system in order {
                match system {
                    System::Ours => self.cycle_ours(&mut got).await?,
                    System::Compose => self.cycle_compose(&mut got).await?,
                    System::Raw => self.cycle_raw(&mut got, None).await?,
                    System::RawBounded => {
                        let limit = self.ours.config().parallelism;
                        self.cycle_raw(&mut got, Some(limit)).await?
                    }
                }
            }
            let label = if r < args.warmup {
                format!("warm-up {}/{}", r + 1, args.warmup)
            } else {
                format!("run {}/{}", r + 1 - args.warmup, args.runs)
            };
            let line: Vec<String> = got.iter().map(|(k, v)| format!("{k}={:.0}ms", v)).collect();
            eprintln!("deploy_compare: {label}: {}", line.join(" "));
            if r >= args.warmup {
                for (k, v) in got {
                    samples.entry(k).or_default().push(v);
                }
            }
        }
        Ok(samples)
    }

    /// Our deployer: deploy, deploy again, teardown.
    async fn cycle_ours(&self, got: &mut Vec<(&'static str, f64)>) -> Res<()> {
        self.expect_empty(&self.ours_host).await?;
        network::ensure(&self.docker, &self.net)
            .await
            .map_err(|e| format!("network: {e}"))?;

        let (since, t0) = (SystemTime::now(), Instant::now());
        let report = self
            .ours
            .deploy(&self.ours_cfg)
            .await
            .map_err(|e| format!("ours: deploy: {e}"))?;
        let a = t0.elapsed();
        check_report("ours: deploy", &report)?;
        got.push(("a.ours", ms(a)));
        let started = self
            .last_start(&self.ours_host, since, SystemTime::now())
            .await?;
        got.push(("a.ours_started", ms(started)));
        let before = self.running(&self.ours_host).await?;

        // The redeploy plans the same spec again as `decnet deploy` does, with no seed: the
        // current fleet is what keeps hostnames (and so containers) as they are.
        let t0 = Instant::now();
        let (spec, ctx) = &self.ours_plan;
        let ctx = BuildContext {
            current: self.ours_cfg.deckies.clone(),
            ..ctx.clone()
        };
        let replanned = build_from_specs(spec, &ctx, &mut StdRng::from_entropy())
            .map_err(|e| format!("ours: replan: {e}"))?;
        let report = self
            .ours
            .deploy(&replanned)
            .await
            .map_err(|e| format!("ours: redeploy: {e}"))?;
        let b = t0.elapsed();
        check_report("ours: redeploy", &report)?;
        got.push(("b.ours", ms(b)));
        if self.running(&self.ours_host).await? != before {
            return Err("ours: the redeploy of an unchanged fleet changed containers".into());
        }

        let t0 = Instant::now();
        let report = self
            .ours
            .teardown(None)
            .await
            .map_err(|e| format!("ours: teardown: {e}"))?;
        let c = t0.elapsed();
        check_report("ours: teardown", &report)?;
        got.push(("c.ours", ms(c)));
        self.expect_empty(&self.ours_host).await?;
        if network::find(&self.docker, &self.net.name)
            .await
            .map_err(|e| e.to_string())?
            .is_some()
        {
            return Err("ours: teardown left the network".into());
        }
        Ok(())
    }

    /// The original's mechanism: `up -d`; `down --remove-orphans` + `up -d`; `down`.
    async fn cycle_compose(&self, got: &mut Vec<(&'static str, f64)>) -> Res<()> {
        self.expect_empty(&self.compose_host).await?;
        let t0 = Instant::now();
        network::ensure(&self.docker, &self.net)
            .await
            .map_err(|e| format!("network: {e}"))?;
        got.push(("net.create", ms(t0.elapsed())));

        let (since, t0) = (SystemTime::now(), Instant::now());
        self.compose(&["up", "-d"]).await?;
        got.push(("a.compose", ms(t0.elapsed())));
        let until = SystemTime::now();
        // Readiness is not part of compose's job; the bench waits for it to compare with ours.
        let services = self.service_ids(&self.compose_host).await?;
        wait_ready(&self.docker, &services).await?;
        got.push(("a.compose_ready", ms(t0.elapsed())));
        let started = self.last_start(&self.compose_host, since, until).await?;
        got.push(("a.compose_started", ms(started)));
        self.running(&self.compose_host).await?;

        let t0 = Instant::now();
        self.compose(&["down", "--remove-orphans"]).await?;
        self.compose(&["up", "-d"]).await?;
        got.push(("b.compose", ms(t0.elapsed())));
        let services = self.service_ids(&self.compose_host).await?;
        wait_ready(&self.docker, &services).await?;
        self.running(&self.compose_host).await?;

        let t0 = Instant::now();
        self.compose(&["down"]).await?;
        got.push(("c.compose", ms(t0.elapsed())));
        self.expect_empty(&self.compose_host).await?;

        let t0 = Instant::now();
        network::remove(&self.docker, &self.net.name)
            .await
            .map_err(|e| format!("network: {e}"))?;
        got.push(("net.remove", ms(t0.elapsed())));
        Ok(())
    }

    /// The floor: create + start through the API, every decky at once (or `limit` deckies at a
    /// time); parallel removal.
    async fn cycle_raw(&self, got: &mut Vec<(&'static str, f64)>, limit: Option<usize>) -> Res<()> {
        self.expect_empty(&self.raw_host).await?;
        network::ensure(&self.docker, &self.net)
            .await
            .map_err(|e| format!("network: {e}"))?;
        let shaper = Shaper {
            host: &self.raw_host,
            network: &self.net.name,
            driver: self.raw_cfg.driver(),
            image: &self.image,
            custom: &[],
        };
        let shapes = shaper.shapes(&self.raw_cfg);

        let (since, t0) = (SystemTime::now(), Instant::now());
        let services = raw_up(&self.docker, &shaper, &shapes, &self.bench_tag, limit).await?;
        if limit.is_some() {
            got.push(("a.raw_bounded", ms(t0.elapsed())));
            wait_ready(&self.docker, &services).await?;
            self.running(&self.raw_host).await?;
            remove_all(&self.docker, &self.raw_host).await?;
            self.expect_empty(&self.raw_host).await?;
            return network::remove(&self.docker, &self.net.name)
                .await
                .map_err(|e| format!("network: {e}"));
        }
        got.push(("a.raw", ms(t0.elapsed())));
        let until = SystemTime::now();
        wait_ready(&self.docker, &services).await?;
        got.push(("a.raw_ready", ms(t0.elapsed())));
        let started = self.last_start(&self.raw_host, since, until).await?;
        got.push(("a.raw_started", ms(started)));
        self.running(&self.raw_host).await?;

        let t0 = Instant::now();
        remove_all(&self.docker, &self.raw_host).await?;
        got.push(("c.raw", ms(t0.elapsed())));
        self.expect_empty(&self.raw_host).await?;
        network::remove(&self.docker, &self.net.name)
            .await
            .map_err(|e| format!("network: {e}"))?;
        Ok(())
    }

    async fn compose(&self, args: &[&str]) -> Res<()> {
        let out = tokio::process::Command::new(&self.compose_bin)
            .arg("-p")
            .arg(&self.project)
            .arg("-f")
            .arg(&self.compose_file)
            .args(args)
            .stdin(std::process::Stdio::null())
            // An interrupted run stops compose too.
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| format!("{}: {e}", self.compose_bin))?;
        if out.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.trim().lines().rev().take(8).collect();
        Err(format!(
            "docker-compose {}: {}: {}",
            args.join(" "),
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        ))
    }

    /// Time from `since` to the last container `start` event of `host`'s containers in
    /// [`since`, `until`] (daemon timestamps); checks every container started once.
    async fn last_start(&self, host: &str, since: SystemTime, until: SystemTime) -> Res<Duration> {
        let opts = EventsOptions {
            since: Some(docker_time(since)?),
            until: Some(docker_time(until)?),
            filters: Some(HashMap::from([
                ("type".to_string(), vec!["container".to_string()]),
                ("event".to_string(), vec!["start".to_string()]),
                ("label".to_string(), vec![format!("decnet.host={host}")]),
            ])),
        };
        let mut stream = self.docker.events(Some(opts));
        let mut count = 0usize;
        let mut last = 0i64;
        while let Some(ev) = stream.next().await {
            let ev = ev.map_err(|e| format!("docker events: {e}"))?;
            count += 1;
            last = last.max(ev.time_nano.unwrap_or_default());
        }
        if count != self.containers {
            return Err(format!(
                "{host}: {count} container start events, expected {}",
                self.containers
            ));
        }
        let since_ns = since
            .duration_since(UNIX_EPOCH)
            .map_err(|e| e.to_string())?
            .as_nanos();
        let last = u128::try_from(last).unwrap_or_default();
        Ok(Duration::from_nanos(
            u64::try_from(last.saturating_sub(since_ns)).unwrap_or(u64::MAX),
        ))
    }

    /// Sorted ids of `host`'s containers, checking they are all there and running.
    async fn running(&self, host: &str) -> Res<Vec<String>> {
        let list = list(&self.docker, host).await?;
        let running = list
            .iter()
            .filter(|c| c.state == Some(ContainerSummaryStateEnum::RUNNING))
            .count();
        if list.len() != self.containers || running != self.containers {
            return Err(format!(
                "{host}: {} containers, {running} running; expected {} running",
                list.len(),
                self.containers
            ));
        }
        let mut ids: Vec<String> = list.into_iter().filter_map(|c| c.id).collect();
        ids.sort();
        Ok(ids)
    }

    async fn service_ids(&self, host: &str) -> Res<Vec<String>> {
        Ok(list(&self.docker, host)
            .await?
            .into_iter()
            .filter(|c| {
                c.labels
                    .as_ref()
                    .and_then(|l| l.get(ROLE))
                    .is_some_and(|r| r == "service")
            })
            .filter_map(|c| c.id)
            .collect())
    }

    async fn expect_empty(&self, host: &str) -> Res<()> {
        let n = list(&self.docker, host).await?.len();
        if n == 0 {
            Ok(())
        } else {
            Err(format!("{host}: {n} containers left where none should be"))
        }
    }

    /// Removes everything this run made on the daemon; returns what failed. Run after an error
    /// or an interruption too, when a create may still be in flight: the removal is repeated
    /// until nothing with this run's labels is left.
    async fn cleanup(&self) -> Vec<String> {
        let mut errors = Vec::new();
        let compose_left = list(&self.docker, &self.compose_host)
            .await
            .map(|l| !l.is_empty())
            .unwrap_or(true);
        if compose_left {
            if let Err(e) = self.compose(&["down", "--remove-orphans"]).await {
                errors.push(format!("compose: {e}"));
            }
        }
        let hosts = [&self.ours_host, &self.compose_host, &self.raw_host];
        for attempt in 0..3 {
            let mut left = 0;
            for host in hosts {
                if let Err(e) = remove_all(&self.docker, host).await {
                    if attempt == 2 {
                        errors.push(e);
                    }
                }
                left += list(&self.docker, host).await.map_or(1, |l| l.len());
            }
            if left == 0 {
                break;
            }
            if attempt == 2 {
                errors.push(format!("{left} containers of this run are left"));
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        // The deployer's own teardown: its state file (and the network, now unused).
        if let Err(e) = self.ours.teardown(None).await {
            errors.push(format!("ours: teardown: {e}"));
        }
        if let Err(e) = network::remove(&self.docker, &self.net.name).await {
            errors.push(format!("network {}: {e}", self.net.name));
        }
        errors
    }
}

/// The fleet: `n` deckies × ssh + http, Linux profile, addresses from the subnet's 10th host.
fn fleet(lan: &LabLan, n: usize) -> Res<DecnetConfig> {
    let (spec, ctx) = fleet_spec(lan, n, "d")?;
    build_from_specs(&spec, &ctx, &mut StdRng::seed_from_u64(1)).map_err(|e| format!("fleet: {e}"))
}

/// The spec of [`fleet`] with decky names `<prefix>-01`, …, and its build context.
fn fleet_spec(lan: &LabLan, n: usize, prefix: &str) -> Res<(FleetSpec, BuildContext)> {
    let ips: Vec<Ipv4Addr> = lan.subnet.hosts().skip(9).take(n).collect();
    if ips.len() < n {
        return Err(format!(
            "subnet {} is too small for {n} deckies",
            lan.subnet
        ));
    }
    let specs: Vec<Value> = ips
        .iter()
        .enumerate()
        .map(|(i, ip)| {
            json!({"name": format!("{prefix}-{:02}", i + 1), "ip": ip, "services": SERVICES, "nmap_os": "linux"})
        })
        .collect();
    let spec = FleetSpec {
        deckies: serde_json::from_value::<Vec<DeckySpec>>(Value::Array(specs))
            .map_err(|e| format!("fleet spec: {e}"))?,
        ..Default::default()
    };
    let ctx = BuildContext {
        mode: Mode::Unihost,
        net: NetPlan {
            interface: lan.parent.clone(),
            subnet: Subnet::new(lan.subnet),
            gateway: lan.gateway,
            host_ip: None,
            driver: NetworkDriver::Macvlan,
        },
        reserved: BTreeSet::from([lan.attacker_ip]),
        taken_names: BTreeSet::new(),
        current: Vec::new(),
        mutate_interval: None,
        log_file: None,
        now_epoch: 0.0,
    };
    Ok((spec, ctx))
}

/// The same fleet under other names (`<prefix>-01`, …): same addresses, hostnames, services.
fn renamed(base: &DecnetConfig, prefix: &str) -> Res<DecnetConfig> {
    let mut c = base.clone();
    for (i, d) in c.deckies.iter_mut().enumerate() {
        d.name = DeckyName::new(format!("{prefix}-{:02}", i + 1)).map_err(|e| e.to_string())?;
    }
    Ok(c)
}

/// The compose file of `shapes`: per decky a base service (`container_name`, the external
/// network with `ipv4_address`) and per decky service one in the base's namespace
/// (`network_mode: service:<base>`, `depends_on`), each carrying the create body's settings.
fn compose_document(
    shaper: &Shaper<'_>,
    shapes: &[DeckyShape],
    network: &str,
    bench_tag: &str,
) -> Res<Value> {
    let mut services = Map::new();
    for s in shapes {
        let base_key = s.decky.name.to_string();
        let mut base = compose_service(&shaper.base_body(s), bench_tag, network)?;
        base.insert("container_name".into(), json!(base_key));
        base.insert(
            "networks".into(),
            json!({ network: { "ipv4_address": s.decky.ip.to_string() } }),
        );
        services.insert(base_key.clone(), Value::Object(base));
        for svc in s.services.keys() {
            let body = shaper.service_body(s, svc, &base_key);
            let key = format!("{base_key}-{svc}");
            let mut v = compose_service(&body, bench_tag, network)?;
            v.insert("container_name".into(), json!(key));
            v.insert("network_mode".into(), json!(format!("service:{base_key}")));
            v.insert("depends_on".into(), json!([base_key]));
            services.insert(key, Value::Object(v));
        }
    }
    Ok(json!({
        "version": "2.4",
        "services": services,
        "networks": { network: { "external": true } },
    }))
}

/// One create body as compose keys. Fails on any body field without a translation here, so
/// the compose containers cannot silently differ from ours.
fn compose_service(
    body: &ContainerCreateBody,
    bench_tag: &str,
    network: &str,
) -> Res<Map<String, Value>> {
    let mut rest = serde_json::to_value(body).map_err(|e| format!("create body: {e}"))?;
    let mut m = Map::new();
    put(&mut m, "image", take(&mut rest, "Image"));
    put(&mut m, "command", take(&mut rest, "Cmd"));
    put(&mut m, "hostname", take(&mut rest, "Hostname"));
    put(&mut m, "mac_address", take(&mut rest, "MacAddress"));
    put(&mut m, "environment", take(&mut rest, "Env"));
    let mut labels = take(&mut rest, "Labels").unwrap_or_else(|| json!({}));
    if let Some(l) = labels.as_object_mut() {
        l.insert(BENCH_LABEL.into(), json!(bench_tag));
    }
    m.insert("labels".into(), labels);
    // The network is the compose file's own `networks` / `network_mode`.
    let _ = take(&mut rest, "NetworkingConfig");
    if let Some(mut hc) = take(&mut rest, "HostConfig") {
        let mode = take(&mut hc, "NetworkMode");
        let mode_ok = mode
            .as_ref()
            .and_then(Value::as_str)
            .is_some_and(|m| m == network || m.starts_with("container:"));
        if !mode_ok {
            return Err(format!("create body: unexpected network mode {mode:?}"));
        }
        put(&mut m, "sysctls", take(&mut hc, "Sysctls"));
        if let Some(p) = take(&mut hc, "RestartPolicy") {
            put(&mut m, "restart", p.get("Name").cloned());
        }
        put(&mut m, "cap_drop", take(&mut hc, "CapDrop"));
        put(&mut m, "cap_add", take(&mut hc, "CapAdd"));
        put(&mut m, "security_opt", take(&mut hc, "SecurityOpt"));
        put(&mut m, "read_only", take(&mut hc, "ReadonlyRootfs"));
        put(&mut m, "mem_limit", take(&mut hc, "Memory"));
        put(&mut m, "pids_limit", take(&mut hc, "PidsLimit"));
        if let Some(lc) = take(&mut hc, "LogConfig") {
            m.insert(
                "logging".into(),
                json!({ "driver": lc.get("Type"), "options": lc.get("Config") }),
            );
        }
        leftovers("HostConfig", &hc)?;
    }
    leftovers("create body", &rest)?;
    Ok(m)
}

/// Removes `key` from the object `from`; `None` when absent or null.
fn take(from: &mut Value, key: &str) -> Option<Value> {
    from.as_object_mut()?.remove(key).filter(|v| !v.is_null())
}

fn put(m: &mut Map<String, Value>, key: &str, v: Option<Value>) {
    if let Some(v) = v {
        m.insert(key.to_string(), v);
    }
}

/// Fails when `v` still has a non-empty field.
fn leftovers(what: &str, v: &Value) -> Res<()> {
    let left: Vec<&String> = v
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(_, v)| !v.is_null() && *v != &json!({}) && *v != &json!([]))
                .map(|(k, _)| k)
                .collect()
        })
        .unwrap_or_default();
    if left.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{what}: fields without a compose translation: {left:?}; the compose baseline would differ"
        ))
    }
}

/// The raw floor: every decky at once (or `limit` at a time); in each, the base, then its
/// services in parallel. Returns the service containers' ids.
async fn raw_up(
    docker: &Docker,
    shaper: &Shaper<'_>,
    shapes: &[DeckyShape],
    bench_tag: &str,
    limit: Option<usize>,
) -> Res<Vec<String>> {
    let sem = &tokio::sync::Semaphore::new(limit.unwrap_or(shapes.len()).max(1));
    let with_label = |mut body: ContainerCreateBody| {
        body.labels
            .get_or_insert_with(HashMap::new)
            .insert(BENCH_LABEL.into(), bench_tag.into());
        body
    };
    let deckies = shapes.iter().map(|s| async move {
        let _permit = sem.acquire().await.map_err(|e| e.to_string())?;
        let name = &s.decky.name;
        let base = container_name(name, ContainerRole::Base);
        let base_id = create_start(docker, &base, with_label(shaper.base_body(s))).await?;
        let services = s.services.keys().map(|svc| {
            let cname = container_name(name, ContainerRole::Service(svc));
            let body = with_label(shaper.service_body(s, svc, &base_id));
            async move { create_start(docker, &cname, body).await }
        });
        join_all(services)
            .await
            .into_iter()
            .collect::<Res<Vec<_>>>()
    });
    let mut ids = Vec::new();
    for r in join_all(deckies).await {
        ids.extend(r?);
    }
    Ok(ids)
}

async fn create_start(docker: &Docker, name: &str, body: ContainerCreateBody) -> Res<String> {
    let opts = CreateContainerOptions {
        name: Some(name.to_string()),
        ..Default::default()
    };
    let created = docker
        .create_container(Some(opts), body)
        .await
        .map_err(|e| format!("raw: create {name}: {e}"))?;
    docker
        .start_container(&created.id, None::<StartContainerOptions>)
        .await
        .map_err(|e| format!("raw: start {name}: {e}"))?;
    Ok(created.id)
}

/// `host`'s containers (this run's labels only).
async fn list(docker: &Docker, host: &str) -> Res<Vec<ContainerSummary>> {
    let opts = ListContainersOptions {
        all: true,
        filters: Some(host_filter(host, None)),
        ..Default::default()
    };
    docker
        .list_containers(Some(opts))
        .await
        .map_err(|e| format!("list containers of {host}: {e}"))
}

/// Force-removes `host`'s containers in parallel, services before bases.
async fn remove_all(docker: &Docker, host: &str) -> Res<()> {
    let all = list(docker, host).await?;
    let (bases, services): (Vec<_>, Vec<_>) = all.into_iter().partition(|c| {
        c.labels
            .as_ref()
            .and_then(|l| l.get(ROLE))
            .is_some_and(|r| r == "base")
    });
    for group in [services, bases] {
        let removals = group.into_iter().filter_map(|c| c.id).map(|id| async move {
            let opts = RemoveContainerOptions {
                force: true,
                v: true,
                ..Default::default()
            };
            match docker.remove_container(&id, Some(opts)).await {
                Ok(())
                | Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => Ok(()),
                Err(e) => Err(format!("remove container {id} of {host}: {e}")),
            }
        });
        let errors: Vec<String> = join_all(removals)
            .await
            .into_iter()
            .filter_map(Result::err)
            .collect();
        if !errors.is_empty() {
            return Err(errors.join("; "));
        }
    }
    Ok(())
}

/// Waits until every container printed the decky's ready line (polls its log every 100 ms, as
/// the deployer does).
async fn wait_ready(docker: &Docker, ids: &[String]) -> Res<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let each = ids.iter().map(|id| async move {
        loop {
            if log_text(docker, id).await.contains(READY_MARKER) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "container {id} did not print {READY_MARKER:?} within {}s: {}",
                    READY_TIMEOUT.as_secs(),
                    log_text(docker, id).await.trim()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let errors: Vec<String> = join_all(each)
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

async fn log_text(docker: &Docker, id: &str) -> String {
    let opts = LogsOptions {
        stdout: true,
        stderr: true,
        tail: "20".into(),
        ..Default::default()
    };
    let mut out = String::new();
    let mut stream = docker.logs(id, Some(opts));
    while let Some(Ok(chunk)) = stream.next().await {
        out.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
    }
    out
}

fn check_report(what: &str, report: &DeployReport) -> Res<()> {
    if report.all_succeeded() {
        return Ok(());
    }
    let failed: Vec<String> = report
        .failed()
        .map(|(n, reason)| format!("{n}: {reason}"))
        .collect();
    Err(format!("{what}: {}", failed.join("; ")))
}

/// `seconds.nanoseconds`, as the daemon's `since`/`until` take it.
fn docker_time(t: SystemTime) -> Res<String> {
    let d = t.duration_since(UNIX_EPOCH).map_err(|e| e.to_string())?;
    Ok(format!("{}.{:09}", d.as_secs(), d.subsec_nanos()))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

// ---------------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------------

/// One reported figure.
#[derive(Debug)]
struct Figure {
    key: &'static str,
    phase: &'static str,
    name: &'static str,
    includes: &'static str,
}

const fn fig(
    key: &'static str,
    phase: &'static str,
    name: &'static str,
    includes: &'static str,
) -> Figure {
    Figure {
        key,
        phase,
        name,
        includes,
    }
}

const A: &str = "(a) first deploy";
const B: &str = "(b) redeploy, unchanged";
const C: &str = "(c) teardown";
const N: &str = "network";

const FIGURES: &[Figure] = &[
    fig("a.ours", A, "ours: `DockerDeployer::deploy`",
        "network lookup (it exists), list + plan, create + start every container (8 deckies at a time), \
         **wait until every service printed its ready line** (log polled every 100 ms), state file"),
    fig("a.ours_started", A, "ours, until the last container started",
        "the same deploy, up to the last container `start` event (daemon timestamp): no readiness, no state file"),
    fig("a.compose", A, "`docker-compose up -d`",
        "compose start-up, create + start every container; no readiness"),
    fig("a.compose_started", A, "compose, until the last container started",
        "the same `up -d`, up to the last container `start` event (so without compose's exit)"),
    fig("a.compose_ready", A, "`docker-compose up -d`, then readiness",
        "`up -d`, then the bench polls every service's log for its ready line (100 ms)"),
    fig("a.raw", A, "raw floor (bollard), all at once",
        "create + start every container: all deckies at once, in each the base then its services in parallel; no readiness"),
    fig("a.raw_bounded", A, "raw floor (bollard), 8 at a time",
        "the same with at most 8 deckies in flight (the deployer's default parallelism)"),
    fig("a.raw_started", A, "raw all at once, until the last container started",
        "the same as raw all at once, up to the last container `start` event"),
    fig("a.raw_ready", A, "raw all at once, then readiness",
        "raw all at once, then the same log polling as for compose"),
    fig("b.ours", B, "ours: `deploy` again",
        "network lookup, list + plan (a no-op: same container ids after), state file"),
    fig("b.compose", B, "`down --remove-orphans` + `up -d`",
        "stop + remove every container, then create + start every container (what the original ran on every deploy)"),
    fig("c.ours", C, "ours: `teardown(None)`",
        "force-remove every container (deckies in parallel, 8 at a time; in each its services \
         together, then the base) **and the Docker network**, clear the state file"),
    fig("c.compose", C, "`docker-compose down`",
        "stop (SIGTERM; the decky binary exits at once) + remove every container, in parallel; the network is external and stays"),
    fig("c.raw", C, "raw floor (bollard)",
        "parallel force-remove (services, then bases); the network stays"),
    fig("net.create", N, "macvlan network create",
        "`network::ensure` on a fresh name (done untimed before every (a), the same way for all systems)"),
    fig("net.remove", N, "macvlan network remove",
        "`network::remove` (part of ours' teardown, not of `docker-compose down`)"),
];

/// The raw floor: the faster (by median) of the two raw variants.
const FLOOR: &str = "a.floor";

/// One reported ratio of medians.
#[derive(Debug)]
struct Ratio {
    name: &'static str,
    num: &'static str,
    den: &'static str,
    target: Option<f64>,
}

const fn ratio(
    name: &'static str,
    num: &'static str,
    den: &'static str,
    target: Option<f64>,
) -> Ratio {
    Ratio {
        name,
        num,
        den,
        target,
    }
}

const RATIOS: &[Ratio] = &[
    ratio(
        "(a) ours / raw floor (the faster raw variant)",
        "a.ours",
        FLOOR,
        Some(1.1),
    ),
    ratio(
        "(a) ours until started / raw floor",
        "a.ours_started",
        FLOOR,
        None,
    ),
    ratio("(a) ours / raw all at once", "a.ours", "a.raw", None),
    ratio(
        "(a) ours / raw 8 at a time",
        "a.ours",
        "a.raw_bounded",
        None,
    ),
    ratio(
        "(a) ours / raw all at once + readiness",
        "a.ours",
        "a.raw_ready",
        None,
    ),
    ratio("(a) ours / compose `up -d`", "a.ours", "a.compose", None),
    ratio(
        "(a) ours / compose `up -d` + readiness",
        "a.ours",
        "a.compose_ready",
        None,
    ),
    ratio("(a) compose `up -d` / raw floor", "a.compose", FLOOR, None),
    ratio(
        "(b) ours / compose down + up",
        "b.ours",
        "b.compose",
        Some(0.05),
    ),
    ratio(
        "(c) ours / compose `down`",
        "c.ours",
        "c.compose",
        Some(0.2),
    ),
    ratio("(c) ours / raw floor", "c.ours", "c.raw", None),
    ratio("(c) compose `down` / raw floor", "c.compose", "c.raw", None),
];

#[derive(Debug)]
struct Report {
    runs: usize,
    warmup: usize,
    deckies: usize,
    containers: usize,
    command: String,
    env: Vec<(&'static str, String)>,
    samples: Samples,
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => s[n / 2],
        _ => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NAN, f64::min)
}

fn fmt_ms(v: f64) -> String {
    if v >= 1000.0 {
        format!("{:.2} s", v / 1000.0)
    } else if v >= 10.0 {
        format!("{v:.0} ms")
    } else {
        format!("{v:.1} ms")
    }
}

impl Report {
    fn new(args: &Args, env: &Env, samples: Samples) -> Report {
        Report {
            runs: args.runs,
            warmup: args.warmup,
            deckies: args.deckies,
            containers: args.deckies * (1 + SERVICES.len()),
            command: std::env::args().collect::<Vec<_>>().join(" "),
            env: vec![
                ("docker", env.docker_version.clone()),
                ("docker_api", env.api_version.clone()),
                ("docker_compose", env.compose_version.clone()),
                ("image", env.image.clone()),
                ("cpus", env.cpus.to_string()),
                ("loadavg_before", env.load_before.clone()),
                ("loadavg_after", loadavg()),
            ],
            samples,
        }
    }

    fn stat(&self, key: &str) -> Option<(f64, f64)> {
        if key == FLOOR {
            return self.stat(self.floor_key()?);
        }
        self.samples
            .get(key)
            .filter(|v| !v.is_empty())
            .map(|v| (median(v), min(v)))
    }

    /// Which raw variant is the floor.
    fn floor_key(&self) -> Option<&'static str> {
        let all = self.stat("a.raw");
        let bounded = self.stat("a.raw_bounded");
        match (all, bounded) {
            (Some(a), Some(b)) => Some(if b.0 < a.0 { "a.raw_bounded" } else { "a.raw" }),
            (Some(_), None) => Some("a.raw"),
            (None, Some(_)) => Some("a.raw_bounded"),
            (None, None) => None,
        }
    }

    fn ratio(&self, num: &str, den: &str) -> Option<f64> {
        Some(self.stat(num)?.0 / self.stat(den)?.0)
    }

    /// The ratio within each run (the systems of one run ran back to back), sorted.
    fn per_run(&self, num: &str, den: &str) -> Option<Vec<f64>> {
        let den = if den == FLOOR { self.floor_key()? } else { den };
        let (n, d) = (self.samples.get(num)?, self.samples.get(den)?);
        let mut v: Vec<f64> = n.iter().zip(d).map(|(a, b)| a / b).collect();
        v.sort_by(f64::total_cmp);
        (!v.is_empty()).then_some(v)
    }

    fn markdown(&self) -> String {
        let mut out = format!(
            "{} deckies × {} ({} containers), macvlan on a lab LAN; {} measured runs after {} warm-up; median and min of the runs.\n\n",
            self.deckies,
            SERVICES.join(" + "),
            self.containers,
            self.runs,
            self.warmup
        );
        let load = |k: &str| {
            self.env
                .iter()
                .find(|(n, _)| *n == k)
                .map_or("", |(_, v)| v.as_str())
        };
        out.push_str(&format!(
            "Load average (1, 5, 15 min) before: {}; after: {}.\n\n",
            load("loadavg_before"),
            load("loadavg_after")
        ));
        out.push_str(
            "| phase | figure | median | min | what the time includes |\n|---|---|---|---|---|\n",
        );
        for f in FIGURES {
            if let Some((med, mn)) = self.stat(f.key) {
                out.push_str(&format!(
                    "| {} | {} | {} | {} | {} |\n",
                    f.phase,
                    f.name,
                    fmt_ms(med),
                    fmt_ms(mn),
                    f.includes
                ));
            }
        }
        if let Some(k) = self.floor_key() {
            out.push_str(&format!(
                "\nRaw floor = the faster raw variant by median: `{k}`.\n"
            ));
        }
        out.push_str(
            "\n| ratio | of the medians | per run: median (range) | target | met |\n|---|---|---|---|---|\n",
        );
        for r in RATIOS {
            let Some(v) = self.ratio(r.num, r.den) else {
                continue;
            };
            let per_run = self.per_run(r.num, r.den).map_or(String::new(), |p| {
                format!("{:.3}× ({:.3}–{:.3})", median(&p), p[0], p[p.len() - 1])
            });
            let (t, met) = match r.target {
                Some(t) => (format!("≤ {t}×"), if v <= t { "yes" } else { "**no**" }),
                None => ("–".to_string(), "–"),
            };
            out.push_str(&format!(
                "| {} | {v:.3}× | {per_run} | {t} | {met} |\n",
                r.name
            ));
        }
        out
    }

    fn json(&self) -> Value {
        let figures: Vec<Value> = FIGURES
            .iter()
            .filter_map(|f| {
                let (med, mn) = self.stat(f.key)?;
                Some(json!({
                    "key": f.key, "phase": f.phase, "figure": f.name, "includes": f.includes,
                    "median_ms": med, "min_ms": mn, "samples_ms": self.samples.get(f.key),
                }))
            })
            .collect();
        let ratios: Vec<Value> = RATIOS
            .iter()
            .filter_map(|r| {
                let v = self.ratio(r.num, r.den)?;
                let den = if r.den == FLOOR {
                    self.floor_key()?
                } else {
                    r.den
                };
                Some(json!({
                    "ratio": r.name, "numerator": r.num, "denominator": den, "value": v,
                    "per_run": self.per_run(r.num, r.den),
                    "target_max": r.target, "met": r.target.map(|t| v <= t),
                }))
            })
            .collect();
        let env: Map<String, Value> = self
            .env
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        json!({
            "benchmark": "deploy_compare",
            "command": self.command,
            "deckies": self.deckies,
            "services_per_decky": SERVICES,
            "containers": self.containers,
            "runs": self.runs,
            "warmup": self.warmup,
            "environment": env,
            "figures": figures,
            "ratios": ratios,
        })
    }
}

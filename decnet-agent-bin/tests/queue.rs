#![allow(clippy::unwrap_used)]
//! The per-host work queue: serialised execution, in-flight reporting, deltas, relocalize.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use decnet_agent::queue::{Job, LocalFactsSource, PinnedInterface, QueueError, WorkQueue};
use decnet_core::adapters::state_file;
use decnet_core::model::{
    DeckyConfig, DeckyName, DecnetConfig, DeltaStatus, LifecycleDelta, Mode, Operation, RuntimeMap,
    Subnet, WorkerState,
};
use decnet_core::traits::{
    DeckyOutcome, DeployReport, Deployer, DeployerError, FixedClock, HostNetError, LifecycleSink,
    LocalNetFacts, MockDeployer, MockHostNetwork, SinkError,
};
use tokio::sync::Semaphore;
use tokio::time::sleep;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

fn now() -> DateTime<Utc> {
    "2026-03-01T12:00:00Z".parse().unwrap()
}

fn name(s: &str) -> DeckyName {
    DeckyName::new(s).unwrap()
}

fn decky(n: &str, ip: &str) -> DeckyConfig {
    DeckyConfig {
        name: name(n),
        ip: ip.parse().unwrap(),
        services: vec!["ssh".into()],
        distro: "debian".into(),
        base_image: "debian:bookworm-slim".into(),
        build_base: "debian:bookworm-slim".into(),
        hostname: format!("host-{n}"),
        archetype: None,
        service_config: Default::default(),
        nmap_os: Default::default(),
        mutate_interval: None,
        last_mutated: 0.0,
        last_login_attempt: 0.0,
        host_uuid: None,
    }
}

fn config(mode: Mode, subnet: &str, gw: &str, deckies: &[(&str, &str)]) -> DecnetConfig {
    DecnetConfig {
        mode,
        interface: "eth0".into(),
        subnet: Subnet::parse("subnet", subnet).unwrap(),
        gateway: gw.parse().unwrap(),
        deckies: deckies.iter().map(|(n, ip)| decky(n, ip)).collect(),
        log_file: None,
        ipvlan: false,
        mutate_interval: Some(30),
        network_driver: None,
        custom_services: vec![],
    }
}

fn ids(pairs: &[(&str, Uuid)]) -> BTreeMap<String, Uuid> {
    pairs.iter().map(|(n, id)| (n.to_string(), *id)).collect()
}

fn report(outcomes: &[(&str, Result<(), &str>)]) -> DeployReport {
    DeployReport {
        outcomes: outcomes
            .iter()
            .map(|(n, r)| {
                let o = match r {
                    Ok(()) => DeckyOutcome::Succeeded,
                    Err(reason) => DeckyOutcome::Failed {
                        reason: reason.to_string(),
                    },
                };
                (name(n), o)
            })
            .collect(),
    }
}

/// Records deltas; optionally holds `record` until released.
#[derive(Default)]
struct RecordingSink {
    deltas: Mutex<Vec<LifecycleDelta>>,
    gate: Option<Semaphore>,
}

impl RecordingSink {
    fn gated() -> Arc<Self> {
        Arc::new(Self {
            deltas: Mutex::new(vec![]),
            gate: Some(Semaphore::new(0)),
        })
    }
    fn all(&self) -> Vec<LifecycleDelta> {
        self.deltas.lock().unwrap().clone()
    }
    async fn wait_for(&self, n: usize) -> Vec<LifecycleDelta> {
        for _ in 0..10_000 {
            if self.deltas.lock().unwrap().len() >= n {
                return self.all();
            }
            sleep(Duration::from_millis(10)).await;
        }
        panic!("only {:?} deltas arrived", self.all().len());
    }
}

#[async_trait::async_trait]
impl LifecycleSink for RecordingSink {
    async fn record(&self, deltas: Vec<LifecycleDelta>) -> Result<(), SinkError> {
        if let Some(g) = &self.gate {
            g.acquire().await.unwrap().forget();
        }
        self.deltas.lock().unwrap().extend(deltas);
        Ok(())
    }
}

/// A deployer that takes its time and counts how many operations run at once.
#[derive(Default)]
struct SlowDeployer {
    active: AtomicUsize,
    max_active: AtomicUsize,
    log: Mutex<Vec<String>>,
    /// When set, `deploy` waits for a permit.
    gate: Option<Semaphore>,
}

impl SlowDeployer {
    async fn op<T>(&self, what: String, gate: bool, out: T) -> T {
        let n = self.active.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_active.fetch_max(n, Ordering::SeqCst);
        self.log.lock().unwrap().push(format!("{what} start"));
        if gate {
            if let Some(g) = &self.gate {
                g.acquire().await.unwrap().forget();
            }
        }
        sleep(Duration::from_secs(2)).await;
        self.log.lock().unwrap().push(format!("{what} end"));
        self.active.fetch_sub(1, Ordering::SeqCst);
        out
    }
}

#[async_trait::async_trait]
impl Deployer for SlowDeployer {
    async fn deploy(&self, desired: &DecnetConfig) -> Result<DeployReport, DeployerError> {
        let outcomes = desired
            .deckies
            .iter()
            .map(|d| (d.name.clone(), DeckyOutcome::Succeeded))
            .collect();
        self.op("deploy".into(), true, Ok(DeployReport { outcomes }))
            .await
    }
    async fn mutate(
        &self,
        decky: &DeckyName,
        _services: &[String],
    ) -> Result<DeployReport, DeployerError> {
        let r = report(&[(decky.as_str(), Ok(()))]);
        self.op(format!("mutate {decky}"), false, Ok(r)).await
    }
    async fn teardown<'a>(
        &self,
        decky: Option<&'a DeckyName>,
    ) -> Result<DeployReport, DeployerError> {
        let r = match decky {
            Some(d) => report(&[(d.as_str(), Ok(()))]),
            None => DeployReport::default(),
        };
        self.op(format!("teardown {decky:?}"), false, Ok(r)).await
    }
    async fn runtime(&self) -> Result<RuntimeMap, DeployerError> {
        Ok(RuntimeMap::new())
    }
}

/// Facts that must never be asked for (unihost deploys, mutate, teardown).
struct NoFacts;

#[async_trait::async_trait]
impl LocalFactsSource for NoFacts {
    async fn local_facts(&self) -> Result<LocalNetFacts, HostNetError> {
        panic!("local facts asked for a job that does not relocalize")
    }
}

struct Setup {
    queue: WorkQueue,
    shutdown: CancellationToken,
    _tmp: tempfile::TempDir,
}

fn start(
    deployer: Arc<dyn Deployer>,
    sink: Arc<dyn LifecycleSink>,
    local: Arc<dyn LocalFactsSource>,
    state: Option<&WorkerState>,
) -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let path: PathBuf = state_file::state_path(tmp.path());
    if let Some(s) = state {
        state_file::save(&path, s).unwrap();
    }
    let shutdown = CancellationToken::new();
    let queue = WorkQueue::start(
        deployer,
        sink,
        local,
        path,
        Arc::new(FixedClock(now())),
        shutdown.clone(),
    );
    Setup {
        queue,
        shutdown,
        _tmp: tmp,
    }
}

#[tokio::test(start_paused = true)]
async fn jobs_run_one_at_a_time_in_submission_order() {
    let deployer = Arc::new(SlowDeployer::default());
    let sink = Arc::new(RecordingSink::default());
    let s = start(deployer.clone(), sink.clone(), Arc::new(NoFacts), None);
    let (a, b, m, t) = (
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
    );

    let cfg = config(
        Mode::Unihost,
        "10.0.0.0/24",
        "10.0.0.1",
        &[("decky-a", "10.0.0.10"), ("decky-b", "10.0.0.11")],
    );
    // Submitted back to back (as concurrent HTTP requests would): none of them waits.
    s.queue
        .submit(Job::Deploy {
            config: cfg,
            lifecycle_ids: ids(&[("decky-a", a), ("decky-b", b)]),
        })
        .unwrap();
    s.queue
        .submit(Job::Mutate {
            decky: name("decky-a"),
            services: vec!["http".into()],
            lifecycle_id: Some(m),
        })
        .unwrap();
    s.queue
        .submit(Job::Teardown {
            decky: Some(name("decky-b")),
            lifecycle_ids: ids(&[("decky-b", t)]),
        })
        .unwrap();

    let deltas = sink.wait_for(4).await;
    assert_eq!(
        deployer.max_active.load(Ordering::SeqCst),
        1,
        "never two at once"
    );
    assert_eq!(
        *deployer.log.lock().unwrap(),
        [
            "deploy start",
            "deploy end",
            "mutate decky-a start",
            "mutate decky-a end",
            "teardown Some(DeckyName(\"decky-b\")) start",
            "teardown Some(DeckyName(\"decky-b\")) end",
        ]
    );
    let summary: Vec<(String, Operation, Option<Uuid>, DeltaStatus)> = deltas
        .iter()
        .map(|d| {
            (
                d.decky_name.to_string(),
                d.operation,
                d.lifecycle_id,
                d.status,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "decky-a".into(),
                Operation::Deploy,
                Some(a),
                DeltaStatus::Succeeded
            ),
            (
                "decky-b".into(),
                Operation::Deploy,
                Some(b),
                DeltaStatus::Succeeded
            ),
            (
                "decky-a".into(),
                Operation::Mutate,
                Some(m),
                DeltaStatus::Succeeded
            ),
            (
                "decky-b".into(),
                Operation::Teardown,
                Some(t),
                DeltaStatus::Succeeded
            ),
        ]
    );
    assert!(deltas
        .iter()
        .all(|d| d.completed_at == now() && d.error.is_none()));
    // Unique delta ids, so re-delivery is recognisable.
    let mut seen: Vec<Uuid> = deltas.iter().map(|d| d.id).collect();
    seen.dedup();
    assert_eq!(seen.len(), 4);
    sleep(Duration::from_millis(10)).await;
    assert!(s.queue.in_flight().is_empty());
    s.shutdown.cancel();
}

#[tokio::test(start_paused = true)]
async fn in_flight_lists_queued_and_running_ids_until_their_deltas_are_recorded() {
    let deployer = Arc::new(SlowDeployer {
        gate: Some(Semaphore::new(0)),
        ..Default::default()
    });
    let sink = RecordingSink::gated();
    let s = start(deployer.clone(), sink.clone(), Arc::new(NoFacts), None);
    let (a, b, m, t) = (
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
    );
    let cfg = config(
        Mode::Unihost,
        "10.0.0.0/24",
        "10.0.0.1",
        &[("decky-a", "10.0.0.10"), ("decky-b", "10.0.0.11")],
    );
    s.queue
        .submit(Job::Deploy {
            config: cfg,
            lifecycle_ids: ids(&[("decky-a", a), ("decky-b", b)]),
        })
        .unwrap();
    // Right after submit, before the worker even looked at it.
    assert_eq!(s.queue.in_flight(), [a, b]);
    s.queue
        .submit(Job::Mutate {
            decky: name("decky-a"),
            services: vec!["http".into()],
            lifecycle_id: Some(m),
        })
        .unwrap();
    // A mutate without a lifecycle id (the agent's own mutator) lists nothing.
    s.queue
        .submit(Job::Mutate {
            decky: name("decky-b"),
            services: vec!["ftp".into()],
            lifecycle_id: None,
        })
        .unwrap();
    s.queue
        .submit(Job::Teardown {
            decky: None,
            lifecycle_ids: ids(&[("decky-a", t)]),
        })
        .unwrap();

    // The deploy is running (held by the gate); everything is in flight, in order.
    sleep(Duration::from_secs(30)).await;
    assert_eq!(*deployer.log.lock().unwrap(), ["deploy start"]);
    assert_eq!(s.queue.in_flight(), [a, b, m, t]);
    assert_eq!(s.queue.len(), 4);

    // The deploy finished but its deltas are not recorded yet: still in flight, and the next
    // job has not started.
    deployer.gate.as_ref().unwrap().add_permits(1);
    sleep(Duration::from_secs(30)).await;
    assert_eq!(
        *deployer.log.lock().unwrap(),
        ["deploy start", "deploy end"]
    );
    assert_eq!(s.queue.in_flight(), [a, b, m, t]);

    sink.gate.as_ref().unwrap().add_permits(1);
    sleep(Duration::from_secs(1)).await;
    assert_eq!(sink.all().len(), 2);
    assert_eq!(s.queue.in_flight(), [m, t]);

    sink.gate.as_ref().unwrap().add_permits(10);
    sink.wait_for(4).await;
    sleep(Duration::from_secs(10)).await;
    assert!(s.queue.in_flight().is_empty());
    assert!(s.queue.is_empty());
    s.shutdown.cancel();
}

#[tokio::test(start_paused = true)]
async fn a_job_level_error_fails_every_decky_of_the_request_with_the_reason() {
    let mut deployer = MockDeployer::new();
    deployer
        .expect_deploy()
        .times(1)
        .returning(|_| Err(DeployerError::unavailable("docker is down")));
    deployer
        .expect_mutate()
        .times(1)
        .returning(|d, _| Err(DeployerError::UnknownDecky(d.to_string())));
    // After each deployer error the queue probes the runtime: down, then showing nothing.
    deployer
        .expect_runtime()
        .times(1)
        .returning(|| Err(DeployerError::unavailable("docker is down")));
    deployer
        .expect_runtime()
        .times(1)
        .returning(|| Ok(RuntimeMap::new()));
    deployer
        .expect_teardown()
        .times(1)
        .returning(|_| Ok(report(&[("decky-a", Err("container stuck"))])));
    let sink = Arc::new(RecordingSink::default());
    let s = start(Arc::new(deployer), sink.clone(), Arc::new(NoFacts), None);
    let (a, b, m, t) = (
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
    );
    let cfg = config(
        Mode::Unihost,
        "10.0.0.0/24",
        "10.0.0.1",
        &[("decky-a", "10.0.0.10"), ("decky-b", "10.0.0.11")],
    );
    s.queue
        .submit(Job::Deploy {
            config: cfg,
            lifecycle_ids: ids(&[("decky-a", a), ("decky-b", b)]),
        })
        .unwrap();
    s.queue
        .submit(Job::Mutate {
            decky: name("decky-zz"),
            services: vec!["http".into()],
            lifecycle_id: Some(m),
        })
        .unwrap();
    s.queue
        .submit(Job::Teardown {
            decky: Some(name("decky-a")),
            lifecycle_ids: ids(&[("decky-a", t)]),
        })
        .unwrap();
    let deltas = sink.wait_for(4).await;
    let summary: Vec<(&str, Operation, Option<Uuid>, DeltaStatus, &str)> = deltas
        .iter()
        .map(|d| {
            (
                d.decky_name.as_str(),
                d.operation,
                d.lifecycle_id,
                d.status,
                d.error.as_deref().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "decky-a",
                Operation::Deploy,
                Some(a),
                DeltaStatus::Failed,
                "deploy failed (container runtime unavailable: docker is down) and the container runtime could not be read (container runtime unavailable: docker is down)"
            ),
            (
                "decky-b",
                Operation::Deploy,
                Some(b),
                DeltaStatus::Failed,
                "deploy failed (container runtime unavailable: docker is down) and the container runtime could not be read (container runtime unavailable: docker is down)"
            ),
            (
                "decky-zz",
                Operation::Mutate,
                Some(m),
                DeltaStatus::Failed,
                "mutate failed (decky \"decky-zz\" is not deployed on this host); the container runtime shows the decky absent"
            ),
            (
                "decky-a",
                Operation::Teardown,
                Some(t),
                DeltaStatus::Failed,
                "container stuck"
            ),
        ]
    );
    s.shutdown.cancel();
}

/// A deploy that fails part way (Docker refused one decky's network after the others came
/// up): the runtime is read, and only the decky it does not show running fails.
#[tokio::test(start_paused = true)]
async fn a_deployer_error_is_probed_and_only_the_deckies_not_running_fail() {
    let mut deployer = MockDeployer::new();
    deployer
        .expect_deploy()
        .times(1)
        .returning(|_| Err(DeployerError::network("decky-c: address in use")));
    deployer.expect_runtime().times(1).returning(|| {
        let running = |n: &str| {
            (
                n.to_string(),
                decnet_core::model::DeckyRuntime::from_services(BTreeMap::from([(
                    "ssh".to_string(),
                    "running".to_string(),
                )])),
            )
        };
        Ok(RuntimeMap::from([running("decky-a"), running("decky-b")]))
    });
    let sink = Arc::new(RecordingSink::default());
    let s = start(Arc::new(deployer), sink.clone(), Arc::new(NoFacts), None);
    let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let cfg = config(
        Mode::Unihost,
        "10.0.0.0/24",
        "10.0.0.1",
        &[
            ("decky-a", "10.0.0.10"),
            ("decky-b", "10.0.0.11"),
            ("decky-c", "10.0.0.12"),
        ],
    );
    s.queue
        .submit(Job::Deploy {
            config: cfg,
            lifecycle_ids: ids(&[("decky-a", a), ("decky-b", b), ("decky-c", c)]),
        })
        .unwrap();
    let deltas = sink.wait_for(3).await;
    let summary: Vec<(Option<Uuid>, DeltaStatus)> =
        deltas.iter().map(|d| (d.lifecycle_id, d.status)).collect();
    assert_eq!(
        summary,
        [
            (Some(a), DeltaStatus::Succeeded),
            (Some(b), DeltaStatus::Succeeded),
            (Some(c), DeltaStatus::Failed),
        ]
    );
    assert_eq!(
        deltas[2].error.as_deref(),
        Some("deploy failed (network: decky-c: address in use); the container runtime shows the decky absent")
    );
    s.shutdown.cancel();
}

#[tokio::test(start_paused = true)]
async fn partial_outcomes_and_removed_deckies() {
    let mut deployer = MockDeployer::new();
    deployer.expect_deploy().times(1).returning(|_| {
        Ok(report(&[
            ("decky-a", Ok(())),
            ("decky-b", Err("port 22 in use")),
            // Not in the shard: the deploy removed it.
            ("decky-old", Ok(())),
        ]))
    });
    let sink = Arc::new(RecordingSink::default());
    let s = start(Arc::new(deployer), sink.clone(), Arc::new(NoFacts), None);
    let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let cfg = config(
        Mode::Unihost,
        "10.0.0.0/24",
        "10.0.0.1",
        &[
            ("decky-a", "10.0.0.10"),
            ("decky-b", "10.0.0.11"),
            ("decky-c", "10.0.0.12"),
        ],
    );
    s.queue
        .submit(Job::Deploy {
            config: cfg,
            lifecycle_ids: ids(&[("decky-a", a), ("decky-b", b), ("decky-c", c)]),
        })
        .unwrap();
    let deltas = sink.wait_for(4).await;
    let by_name: BTreeMap<&str, &LifecycleDelta> =
        deltas.iter().map(|d| (d.decky_name.as_str(), d)).collect();
    assert_eq!(deltas.len(), 4, "exactly one per decky");
    assert_eq!(by_name["decky-a"].status, DeltaStatus::Succeeded);
    assert_eq!(by_name["decky-b"].error.as_deref(), Some("port 22 in use"));
    assert_eq!(by_name["decky-b"].lifecycle_id, Some(b));
    // The deployer forgot decky-c: its row still closes, as failed.
    assert_eq!(by_name["decky-c"].status, DeltaStatus::Failed);
    assert_eq!(by_name["decky-c"].lifecycle_id, Some(c));
    let old = by_name["decky-old"];
    assert_eq!(
        (old.operation, old.lifecycle_id, old.status),
        (Operation::Teardown, None, DeltaStatus::Succeeded)
    );
    s.shutdown.cancel();
}

fn facts() -> LocalNetFacts {
    LocalNetFacts {
        interface: "ens3".into(),
        subnet: "10.0.0.0/24".parse().unwrap(),
        host_ip: Ipv4Addr::new(10, 0, 0, 4),
        gateway: Some(Ipv4Addr::new(10, 0, 0, 1)),
    }
}

#[tokio::test(start_paused = true)]
async fn swarm_deploys_are_relocalized_against_the_current_state_and_the_pinned_interface() {
    // On the worker now: decky-b on .3, and decky-z (which the new shard drops) on .2.
    let current = WorkerState::new(config(
        Mode::Swarm,
        "10.0.0.0/24",
        "10.0.0.1",
        &[("decky-b", "10.0.0.3"), ("decky-z", "10.0.0.2")],
    ));
    let mut net = MockHostNetwork::new();
    net.expect_facts()
        .withf(|i| *i == Some("ens3"))
        .times(1)
        .returning(|_| Ok(facts()));
    let seen: Arc<Mutex<Option<DecnetConfig>>> = Arc::default();
    let seen_c = seen.clone();
    let mut deployer = MockDeployer::new();
    deployer.expect_deploy().times(1).returning(move |c| {
        *seen_c.lock().unwrap() = Some(c.clone());
        Ok(report(&[
            ("decky-a", Ok(())),
            ("decky-b", Ok(())),
            ("decky-c", Ok(())),
            ("decky-z", Ok(())),
        ]))
    });
    let sink = Arc::new(RecordingSink::default());
    let local = Arc::new(PinnedInterface::new(Arc::new(net), Some("ens3".into())));
    let s = start(Arc::new(deployer), sink.clone(), local, Some(&current));

    // The master planned on its own LAN.
    let shard = config(
        Mode::Swarm,
        "192.168.1.0/24",
        "192.168.1.1",
        &[
            ("decky-a", "192.168.1.10"),
            ("decky-b", "192.168.1.11"),
            ("decky-c", "192.168.1.12"),
        ],
    );
    let a = Uuid::new_v4();
    s.queue
        .submit(Job::Deploy {
            config: shard,
            lifecycle_ids: ids(&[("decky-a", a)]),
        })
        .unwrap();
    let deltas = sink.wait_for(4).await;

    let deployed = seen.lock().unwrap().clone().unwrap();
    assert_eq!(deployed.interface, "ens3");
    assert_eq!(deployed.subnet.to_string(), "10.0.0.0/24");
    assert_eq!(deployed.gateway, Ipv4Addr::new(10, 0, 0, 1));
    let ips: Vec<(String, String)> = deployed
        .deckies
        .iter()
        .map(|d| (d.name.to_string(), d.ip.to_string()))
        .collect();
    assert_eq!(
        ips,
        [
            ("decky-a".into(), "10.0.0.5".into()),
            // Already here: keeps its address.
            ("decky-b".into(), "10.0.0.3".into()),
            ("decky-c".into(), "10.0.0.6".into()),
        ]
    );
    let z = deltas
        .iter()
        .find(|d| d.decky_name.as_str() == "decky-z")
        .unwrap();
    assert_eq!((z.operation, z.lifecycle_id), (Operation::Teardown, None));
    let a_delta = deltas
        .iter()
        .find(|d| d.decky_name.as_str() == "decky-a")
        .unwrap();
    assert_eq!(a_delta.lifecycle_id, Some(a));
    s.shutdown.cancel();
}

#[tokio::test(start_paused = true)]
async fn relocalize_reads_the_state_when_the_job_runs_not_when_it_was_submitted() {
    // The first deploy (held) writes the state; the second must see it.
    struct StatefulDeployer {
        path: Mutex<Option<PathBuf>>,
        configs: Mutex<Vec<DecnetConfig>>,
    }
    #[async_trait::async_trait]
    impl Deployer for StatefulDeployer {
        async fn deploy(&self, desired: &DecnetConfig) -> Result<DeployReport, DeployerError> {
            sleep(Duration::from_secs(5)).await;
            let path = self.path.lock().unwrap().clone().unwrap();
            state_file::save(&path, &WorkerState::new(desired.clone())).unwrap();
            self.configs.lock().unwrap().push(desired.clone());
            Ok(DeployReport {
                outcomes: desired
                    .deckies
                    .iter()
                    .map(|d| (d.name.clone(), DeckyOutcome::Succeeded))
                    .collect(),
            })
        }
        async fn mutate(&self, _: &DeckyName, _: &[String]) -> Result<DeployReport, DeployerError> {
            unreachable!()
        }
        async fn teardown<'a>(
            &self,
            _: Option<&'a DeckyName>,
        ) -> Result<DeployReport, DeployerError> {
            unreachable!()
        }
        async fn runtime(&self) -> Result<RuntimeMap, DeployerError> {
            Ok(RuntimeMap::new())
        }
    }
    let mut net = MockHostNetwork::new();
    net.expect_facts().returning(|_| Ok(facts()));
    let deployer = Arc::new(StatefulDeployer {
        path: Mutex::new(None),
        configs: Mutex::new(vec![]),
    });
    let sink = Arc::new(RecordingSink::default());
    let local = Arc::new(PinnedInterface::new(Arc::new(net), None));
    let s = start(deployer.clone(), sink.clone(), local, None);
    // The state path the queue uses.
    let path = state_file::state_path(s._tmp.path());
    *deployer.path.lock().unwrap() = Some(path);

    let first = config(
        Mode::Swarm,
        "192.168.1.0/24",
        "192.168.1.1",
        &[("decky-b", "192.168.1.50")],
    );
    let second = config(
        Mode::Swarm,
        "192.168.1.0/24",
        "192.168.1.1",
        &[("decky-a", "192.168.1.10"), ("decky-b", "192.168.1.11")],
    );
    s.queue
        .submit(Job::Deploy {
            config: first,
            lifecycle_ids: BTreeMap::new(),
        })
        .unwrap();
    s.queue
        .submit(Job::Deploy {
            config: second,
            lifecycle_ids: BTreeMap::new(),
        })
        .unwrap();
    sink.wait_for(3).await;
    let configs = deployer.configs.lock().unwrap().clone();
    let b_first = configs[0].decky("decky-b").unwrap().ip;
    assert_eq!(b_first, Ipv4Addr::new(10, 0, 0, 2));
    // decky-b keeps the address the first deploy gave it; decky-a gets a new one.
    assert_eq!(configs[1].decky("decky-b").unwrap().ip, b_first);
    assert_eq!(
        configs[1].decky("decky-a").unwrap().ip,
        Ipv4Addr::new(10, 0, 0, 3)
    );
    s.shutdown.cancel();
}

#[tokio::test(start_paused = true)]
async fn failing_facts_or_relocalize_fail_the_deploy() {
    let mut net = MockHostNetwork::new();
    net.expect_facts()
        .times(1)
        .returning(|i| Err(HostNetError::NoSuchInterface(i.unwrap_or("").to_string())));
    net.expect_facts().times(1).returning(|_| {
        Ok(LocalNetFacts {
            subnet: "10.0.0.0/30".parse().unwrap(),
            host_ip: Ipv4Addr::new(10, 0, 0, 2),
            ..facts()
        })
    });
    let mut deployer = MockDeployer::new();
    deployer.expect_deploy().never();
    let sink = Arc::new(RecordingSink::default());
    let local = Arc::new(PinnedInterface::new(Arc::new(net), Some("eth9".into())));
    let s = start(Arc::new(deployer), sink.clone(), local, None);
    let shard = config(
        Mode::Swarm,
        "192.168.1.0/24",
        "192.168.1.1",
        &[("decky-a", "192.168.1.10"), ("decky-b", "192.168.1.11")],
    );
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    for _ in 0..2 {
        s.queue
            .submit(Job::Deploy {
                config: shard.clone(),
                lifecycle_ids: ids(&[("decky-a", a), ("decky-b", b)]),
            })
            .unwrap();
    }
    let deltas = sink.wait_for(4).await;
    assert!(deltas.iter().all(|d| d.status == DeltaStatus::Failed));
    assert_eq!(
        deltas.iter().map(|d| d.lifecycle_id).collect::<Vec<_>>(),
        [Some(a), Some(b), Some(a), Some(b)]
    );
    let e0 = deltas[0].error.as_deref().unwrap();
    assert!(
        e0.contains("local network facts") && e0.contains("eth9"),
        "{e0}"
    );
    let e2 = deltas[2].error.as_deref().unwrap();
    assert!(e2.contains("relocalize"), "{e2}");
    s.shutdown.cancel();
}

/// Every job on a state file that does not parse fails with the file's path and reason; the
/// deployer (which would rewrite or delete the file) is never called, the file stays.
#[tokio::test(start_paused = true)]
async fn a_corrupt_state_file_fails_every_job_with_the_path_and_is_kept() {
    let mut deployer = MockDeployer::new();
    deployer.expect_deploy().never();
    deployer.expect_mutate().never();
    deployer.expect_teardown().never();
    let mut net = MockHostNetwork::new();
    net.expect_facts().returning(|_| Ok(facts()));
    let sink = Arc::new(RecordingSink::default());
    let local = Arc::new(PinnedInterface::new(Arc::new(net), None));
    let s = start(Arc::new(deployer), sink.clone(), local, None);
    let path = state_file::state_path(s._tmp.path());
    std::fs::write(&path, "{not json").unwrap();
    for mode in [Mode::Swarm, Mode::Unihost] {
        s.queue
            .submit(Job::Deploy {
                config: config(
                    mode,
                    "192.168.1.0/24",
                    "192.168.1.1",
                    &[("decky-a", "192.168.1.10")],
                ),
                lifecycle_ids: BTreeMap::new(),
            })
            .unwrap();
    }
    s.queue
        .submit(Job::Mutate {
            decky: DeckyName::new("decky-a").unwrap(),
            services: vec!["ssh".into()],
            lifecycle_id: None,
        })
        .unwrap();
    s.queue
        .submit(Job::Teardown {
            decky: Some(DeckyName::new("decky-a").unwrap()),
            lifecycle_ids: BTreeMap::new(),
        })
        .unwrap();
    let d = sink.wait_for(4).await;
    for delta in &d {
        let e = delta.error.as_deref().unwrap();
        assert!(
            e.starts_with(&format!(
                "worker state file {} is unreadable: ",
                path.display()
            )) && e.ends_with("; fix or move it, then retry"),
            "{e}"
        );
    }
    assert_eq!(std::fs::read(&path).unwrap(), b"{not json");
    s.shutdown.cancel();
}

#[tokio::test(start_paused = true)]
async fn a_panicking_deployer_fails_its_job_and_the_queue_goes_on() {
    let mut deployer = MockDeployer::new();
    deployer
        .expect_mutate()
        .times(1)
        .returning(|_, _| panic!("deployer bug"));
    deployer
        .expect_mutate()
        .times(1)
        .returning(|d, _| Ok(report(&[(d.as_str(), Ok(()))])));
    let sink = Arc::new(RecordingSink::default());
    let s = start(Arc::new(deployer), sink.clone(), Arc::new(NoFacts), None);
    for n in ["decky-a", "decky-b"] {
        s.queue
            .submit(Job::Mutate {
                decky: name(n),
                services: vec!["ssh".into()],
                lifecycle_id: None,
            })
            .unwrap();
    }
    let d = sink.wait_for(2).await;
    assert_eq!(d[0].status, DeltaStatus::Failed);
    assert!(d[0].error.as_deref().unwrap().contains("internal error"));
    assert_eq!(d[1].status, DeltaStatus::Succeeded);
    s.shutdown.cancel();
}

#[tokio::test(start_paused = true)]
async fn shutdown_finishes_the_running_job_and_fails_the_waiting_ones() {
    let deployer = Arc::new(SlowDeployer {
        gate: Some(Semaphore::new(0)),
        ..Default::default()
    });
    let sink = Arc::new(RecordingSink::default());
    let s = start(deployer.clone(), sink.clone(), Arc::new(NoFacts), None);
    let (a, m) = (Uuid::new_v4(), Uuid::new_v4());
    s.queue
        .submit(Job::Deploy {
            config: config(
                Mode::Unihost,
                "10.0.0.0/24",
                "10.0.0.1",
                &[("decky-a", "10.0.0.10")],
            ),
            lifecycle_ids: ids(&[("decky-a", a)]),
        })
        .unwrap();
    s.queue
        .submit(Job::Mutate {
            decky: name("decky-a"),
            services: vec!["ftp".into()],
            lifecycle_id: Some(m),
        })
        .unwrap();
    sleep(Duration::from_secs(1)).await;
    s.shutdown.cancel();
    sleep(Duration::from_secs(1)).await;
    // Still running the deploy; the queue is draining.
    assert_eq!(s.queue.in_flight(), [a, m]);
    deployer.gate.as_ref().unwrap().add_permits(1);
    tokio::time::timeout(Duration::from_secs(60), s.queue.stopped())
        .await
        .unwrap();
    let d = sink.all();
    assert_eq!(d.len(), 2);
    assert_eq!(
        (d[0].lifecycle_id, d[0].status),
        (Some(a), DeltaStatus::Succeeded)
    );
    assert_eq!(
        (d[1].lifecycle_id, d[1].status),
        (Some(m), DeltaStatus::Failed)
    );
    assert_eq!(
        d[1].error.as_deref(),
        Some(decnet_agent::queue::SHUTDOWN_REASON)
    );
    assert_eq!(
        *deployer.log.lock().unwrap(),
        ["deploy start", "deploy end"]
    );
    assert!(s.queue.in_flight().is_empty());
    assert_eq!(
        s.queue.submit(Job::Teardown {
            decky: None,
            lifecycle_ids: BTreeMap::new()
        }),
        Err(QueueError::Stopped)
    );
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_refuses_instead_of_blocking() {
    let deployer = Arc::new(SlowDeployer {
        gate: Some(Semaphore::new(0)),
        ..Default::default()
    });
    let sink = Arc::new(RecordingSink::default());
    let tmp = tempfile::tempdir().unwrap();
    let shutdown = CancellationToken::new();
    let queue = WorkQueue::with_capacity(
        deployer.clone(),
        sink,
        Arc::new(NoFacts),
        state_file::state_path(tmp.path()),
        Arc::new(FixedClock(now())),
        shutdown.clone(),
        2,
    );
    let job = || Job::Deploy {
        config: config(
            Mode::Unihost,
            "10.0.0.0/24",
            "10.0.0.1",
            &[("decky-a", "10.0.0.10")],
        ),
        lifecycle_ids: BTreeMap::new(),
    };
    queue.submit(job()).unwrap();
    sleep(Duration::from_secs(1)).await; // the worker took the first one
    queue.submit(job()).unwrap();
    queue.submit(job()).unwrap();
    assert_eq!(queue.submit(job()), Err(QueueError::Full { capacity: 2 }));
    assert_eq!(queue.len(), 3);
    shutdown.cancel();
    deployer.gate.as_ref().unwrap().add_permits(10);
}

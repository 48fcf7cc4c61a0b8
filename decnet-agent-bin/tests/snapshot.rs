#![allow(clippy::unwrap_used)]
//! The live status snapshot: state file, runtime map and the queue's in-flight ids.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use decnet_agent::heartbeat::StatusSource;
use decnet_agent::queue::{Job, PinnedInterface, WorkQueue};
use decnet_agent::snapshot::LiveStatus;
use decnet_core::adapters::state_file;
use decnet_core::model::{parse_state, DeckyName, DeckyRuntime, DecnetConfig, Mode, RuntimeMap};
use decnet_core::traits::{
    DeployReport, Deployer, DeployerError, FixedClock, MockHostNetwork, MockLifecycleSink,
};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const STATE: &str = r#"{"config": {"mode": "swarm", "interface": "eth0",
  "subnet": "10.0.0.0/24", "gateway": "10.0.0.1", "deckies": [{"name": "decky-01",
  "ip": "10.0.0.5", "services": ["ssh"], "distro": "debian", "base_image": "debian:bookworm-slim",
  "hostname": "SRV-DB-11"}]}, "compose_path": ""}"#;

fn at() -> DateTime<Utc> {
    "2026-03-01T12:00:00Z".parse().unwrap()
}

/// Teardown waits for a permit; runtime answers, or fails when `docker_down`.
struct Fake {
    gate: Semaphore,
    docker_down: AtomicBool,
}

#[async_trait::async_trait]
impl Deployer for Fake {
    async fn deploy(&self, _: &DecnetConfig) -> Result<DeployReport, DeployerError> {
        unreachable!()
    }
    async fn mutate(&self, _: &DeckyName, _: &[String]) -> Result<DeployReport, DeployerError> {
        unreachable!()
    }
    async fn teardown<'a>(&self, _: Option<&'a DeckyName>) -> Result<DeployReport, DeployerError> {
        self.gate.acquire().await.unwrap().forget();
        Ok(DeployReport::default())
    }
    async fn runtime(&self) -> Result<RuntimeMap, DeployerError> {
        if self.docker_down.load(Ordering::SeqCst) {
            return Err(DeployerError::unavailable("docker is down"));
        }
        let services = BTreeMap::from([("ssh".to_string(), "running".to_string())]);
        Ok(RuntimeMap::from([(
            "decky-01".to_string(),
            DeckyRuntime::from_services(services),
        )]))
    }
}

#[tokio::test(start_paused = true)]
async fn snapshot_reports_state_runtime_and_in_flight() {
    let tmp = tempfile::tempdir().unwrap();
    let path = state_file::state_path(tmp.path());
    let deployer = Arc::new(Fake {
        gate: Semaphore::new(0),
        docker_down: AtomicBool::new(false),
    });
    let mut sink = MockLifecycleSink::new();
    sink.expect_record().returning(|_| Ok(()));
    let shutdown = CancellationToken::new();
    let queue = Arc::new(WorkQueue::start(
        deployer.clone(),
        Arc::new(sink),
        Arc::new(PinnedInterface::new(Arc::new(MockHostNetwork::new()), None)),
        path.clone(),
        Arc::new(FixedClock(at())),
        shutdown.clone(),
    ));
    let status = LiveStatus {
        deployer: deployer.clone(),
        state_path: path.clone(),
        queue: queue.clone(),
        clock: Arc::new(FixedClock(at())),
    };

    // Nothing deployed yet.
    let s = status.snapshot().await;
    assert!(!s.deployed && s.deckies.is_empty() && s.runtime.is_none());
    assert_eq!(s.taken_at, at());
    assert!(s.in_flight.is_empty());

    // Deployed, with a teardown running (held) and its lifecycle id in flight.
    state_file::save(&path, &parse_state(STATE).unwrap()).unwrap();
    let t = Uuid::new_v4();
    queue
        .submit(Job::Teardown {
            decky: Some(DeckyName::new("decky-01").unwrap()),
            lifecycle_ids: BTreeMap::from([("decky-01".to_string(), t)]),
        })
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let s = status.snapshot().await;
    assert!(s.deployed);
    assert_eq!(s.mode, Some(Mode::Swarm));
    assert_eq!(s.deckies[0].name.as_str(), "decky-01");
    assert!(s.runtime.as_ref().unwrap()["decky-01"].running);
    assert_eq!(s.in_flight, [t]);

    // A runtime error: an empty map (every decky looks not running), never a failure.
    deployer.docker_down.store(true, Ordering::SeqCst);
    let s = status.snapshot().await;
    assert_eq!(s.runtime, Some(RuntimeMap::new()));

    deployer.gate.add_permits(1);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(status.snapshot().await.in_flight.is_empty());
    shutdown.cancel();
}

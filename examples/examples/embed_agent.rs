//! Recipe: embed a worker agent's work queue in-process with your own `Deployer` — what
//! `decnet-agent` runs behind its `/deploy`, `/mutate` and `/teardown` routes. Jobs run one at a
//! time; each finished job leaves one lifecycle delta per decky in a `LifecycleSink` (the agent
//! binary's is a durable outbox that its heartbeat loop drains to the master).
//!
//! 1. Plan three deckies (pure) and submit a deploy job for them.
//! 2. The deployer brings two up and fails the third; the queue reads its runtime and records
//!    per-decky deltas: two `succeeded`, one `failed` with the deployer's error.
//! 3. A teardown job removes one decky.
//! 4. Shutdown: the running job is finished and the queue's worker task ends.
//!
//! Run it with `cargo run -p decnet-examples --example embed_agent`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use decnet_core::model::{DeckyName, DeltaStatus, LifecycleDelta};
use decnet_core::orchestrate::queue::{Job, LocalFactsSource, WorkQueue};
use decnet_core::testkit::ManualClock;
use decnet_core::traits::{HostNetError, LifecycleSink, LocalNetFacts, SinkError};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

#[path = "shared/in_memory_deployer.rs"]
mod in_memory_deployer;
use in_memory_deployer::InMemoryDeployer;
#[path = "shared/fleet.rs"]
mod fleet;
use fleet::plan;

/// Keeps the deltas in memory and wakes the recipe (the agent's is a durable outbox).
#[derive(Debug, Default)]
struct MemorySink {
    deltas: Mutex<Vec<LifecycleDelta>>,
    recorded: Notify,
}

#[async_trait::async_trait]
impl LifecycleSink for MemorySink {
    async fn record(&self, deltas: Vec<LifecycleDelta>) -> Result<(), SinkError> {
        self.deltas.lock().expect("lock").extend(deltas);
        self.recorded.notify_one();
        Ok(())
    }
}

impl MemorySink {
    /// Waits until `n` deltas were recorded in all.
    async fn wait_for(&self, n: usize) -> Vec<LifecycleDelta> {
        loop {
            let notified = self.recorded.notified();
            {
                let deltas = self.deltas.lock().expect("lock");
                if deltas.len() >= n {
                    return deltas.clone();
                }
            }
            notified.await;
        }
    }
}

/// The worker's network facts (a swarm shard is relocalized onto them; this unihost one is
/// deployed as planned).
#[derive(Debug)]
struct FixedFacts;

#[async_trait::async_trait]
impl LocalFactsSource for FixedFacts {
    async fn local_facts(&self) -> Result<LocalNetFacts, HostNetError> {
        Ok(LocalNetFacts {
            interface: "eth0".into(),
            subnet: "192.168.60.0/24".parse().expect("subnet"),
            host_ip: "192.168.60.2".parse().expect("host ip"),
            gateway: Some("192.168.60.1".parse().expect("gateway")),
        })
    }
}

/// (decky, operation, status, error) per delta, in the order recorded.
type Outcome = Vec<(String, String, DeltaStatus, Option<String>)>;

async fn run(state_dir: &std::path::Path) -> Result<Outcome, Box<dyn std::error::Error>> {
    let change = plan()?;
    let sink = Arc::new(MemorySink::default());
    let shutdown = CancellationToken::new();
    let queue = WorkQueue::start(
        Arc::new(InMemoryDeployer::default()),
        sink.clone(),
        Arc::new(FixedFacts),
        state_dir.join("decnet-state.json"),
        Arc::new(ManualClock::new(chrono::Utc::now())),
        shutdown.clone(),
    );

    // 1–2: one deploy job for the whole shard; the master would send its row ids.
    let ids: BTreeMap<String, uuid::Uuid> = change
        .fleet
        .deckies
        .iter()
        .map(|d| (d.name.to_string(), uuid::Uuid::now_v7()))
        .collect();
    queue.submit(Job::Deploy {
        config: change.fleet.clone(),
        lifecycle_ids: ids,
    })?;
    sink.wait_for(3).await;

    // 3: tear one down.
    queue.submit(Job::Teardown {
        decky: Some(DeckyName::new("db")?),
        lifecycle_ids: BTreeMap::new(),
    })?;
    let deltas = sink.wait_for(4).await;

    // 4: stop; `stopped` resolves once the worker task has ended.
    shutdown.cancel();
    queue.stopped().await;
    Ok(deltas
        .into_iter()
        .map(|d| {
            (
                d.decky_name.to_string(),
                d.operation.to_string(),
                d.status,
                d.error,
            )
        })
        .collect())
}

/// A fresh directory for the worker state file.
fn state_dir() -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("decnet-embed-agent-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

#[cfg_attr(test, allow(dead_code))]
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = state_dir()?;
    let out = run(&dir).await;
    std::fs::remove_dir_all(&dir)?;
    for (decky, op, status, error) in out? {
        println!(
            "{op:<8} {decky:<6} {:<9} {}",
            decnet_core::model::LifecycleStatus::from(status),
            error.as_deref().unwrap_or("")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_partial_deploy_gives_per_decky_deltas_and_a_teardown_follows() {
        let dir = state_dir().expect("temp dir");
        let out = run(&dir).await.expect("the recipe runs");
        std::fs::remove_dir_all(&dir).expect("clean up");
        let deploys: Vec<_> = out.iter().filter(|d| d.1 == "deploy").collect();
        assert_eq!(deploys.len(), 3, "{out:?}");
        let failed: Vec<_> = deploys
            .iter()
            .filter(|d| d.2 == DeltaStatus::Failed)
            .collect();
        assert_eq!(failed.len(), 1, "{out:?}");
        assert_eq!(failed[0].0, "flaky");
        assert!(failed[0].3.as_deref().unwrap_or("").contains("flaky"));
        assert_eq!(
            out.last().map(|d| (d.0.as_str(), d.1.as_str(), d.2)),
            Some(("db", "teardown", DeltaStatus::Succeeded))
        );
    }
}

//! Recipe: embed DECNET's orchestration in-process with `decnet-core` alone — an in-memory
//! store, your own `Deployer`, the lifecycle runner, probing after a partial failure and the
//! sweep. No Docker, no network, no master binary.
//!
//! 1. Plan a fleet change with `plan_fleet_change` (pure).
//! 2. Commit it through `Lifecycle::commit`: the desired fleet, the shards, one pending
//!    lifecycle row per decky.
//! 3. Let the `Runner` carry the rows out through the `Deployer`. This one fails its deploy
//!    after two of three deckies came up; the runner reads the deployer's runtime and
//!    records per-decky outcomes: exactly one row fails.
//! 4. A row nobody carries out is failed by the sweep once its timeout passes.
//!
//! Run it with `cargo run -p decnet-examples --example embed_runner`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use decnet_core::model::{Host, LifecycleRow, LifecycleStatus, Operation};
use decnet_core::orchestrate::{Lifecycle, Runner, RunnerSettings};
use decnet_core::testkit::{ManualClock, MemRepository};
use decnet_core::traits::{
    AgentClient, AgentConnector, AgentError, Bus, BusEvent, Clock, Repository,
};

#[path = "shared/in_memory_deployer.rs"]
mod in_memory_deployer;
use in_memory_deployer::InMemoryDeployer;
#[path = "shared/fleet.rs"]
mod fleet;
use fleet::plan;

/// Unihost only: no workers to reach.
#[derive(Debug)]
struct NoWorkers;

impl AgentConnector for NoWorkers {
    fn connect(&self, host: &Host, _: Duration) -> Result<Arc<dyn AgentClient>, AgentError> {
        Err(AgentError::Unreachable {
            message: format!("{}: this embedding drives no workers", host.name),
            source: None,
        })
    }

    fn forget(&self, _: decnet_core::model::HostUuid) {}
}

/// Prints every event the orchestration publishes (a real embedder forwards them).
#[derive(Debug, Default)]
struct PrintBus(Mutex<Vec<BusEvent>>);

impl Bus for PrintBus {
    fn publish(&self, event: BusEvent) {
        self.0.lock().expect("lock").push(event);
    }
}

/// What the recipe ends with, for its test.
#[derive(Debug)]
struct Outcome {
    /// Deploy rows: (decky, status, error).
    deploys: Vec<(String, LifecycleStatus, Option<String>)>,
    /// The mutate row the sweep failed.
    swept: (LifecycleStatus, Option<String>),
    events: usize,
}

async fn run() -> Result<Outcome, Box<dyn std::error::Error>> {
    let repo = Arc::new(MemRepository::new());
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let bus = Arc::new(PrintBus::default());
    let lifecycle = Lifecycle::new(repo.clone(), bus.clone(), clock.clone());
    let settings =
        RunnerSettings::default().with_timeout(Operation::Mutate, Duration::from_secs(600));
    let runner = Arc::new(Runner::new(
        lifecycle.clone(),
        Arc::new(NoWorkers),
        Some(Arc::new(InMemoryDeployer::default())),
        settings,
    ));

    // 1–2: plan and commit.
    let change = plan()?;
    let ids = lifecycle.commit(&change, clock.now()).await?;

    // 3: one pass of the runner; `join` waits for the dispatch it started. An embedder runs
    // `runner.clone().run(shutdown, report)` in a task instead.
    runner.run_once().await?;
    runner.join().await;
    let rows = repo.lifecycle_rows(&ids).await?;
    let deploys = rows
        .iter()
        .map(|r: &LifecycleRow| (r.decky_name.to_string(), r.status, r.error.clone()))
        .collect();

    // 4: a mutate row that nothing carries out (no runner pass), and time passes.
    let web = change
        .fleet
        .deckies
        .iter()
        .find(|d| d.name.as_str() == "web")
        .ok_or("web planned")?
        .clone();
    let stuck = lifecycle
        .record(&[(web, Operation::Mutate)], clock.now())
        .await?;
    clock.advance(Duration::from_secs(601));
    runner.sweep_once().await?;
    let swept = repo
        .lifecycle_rows(&stuck)
        .await?
        .first()
        .map(|r| (r.status, r.error.clone()))
        .ok_or("the mutate row")?;
    let events = bus.0.lock().expect("lock").len();
    Ok(Outcome {
        deploys,
        swept,
        events,
    })
}

#[cfg_attr(test, allow(dead_code))]
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = run().await?;
    for (name, status, error) in &out.deploys {
        println!(
            "deploy {name:<6} {status:<9} {}",
            error.as_deref().unwrap_or("")
        );
    }
    println!(
        "mutate web    {:<9} {}",
        out.swept.0,
        out.swept.1.as_deref().unwrap_or("")
    );
    println!("{} bus events published", out.events);
    Ok(())
}

#[tokio::test]
async fn the_recipe_shows_probing_and_the_sweep() {
    let out = run().await.expect("recipe");
    let failed: Vec<_> = out
        .deploys
        .iter()
        .filter(|(_, s, _)| *s == LifecycleStatus::Failed)
        .collect();
    assert_eq!(failed.len(), 1, "{:?}", out.deploys);
    assert_eq!(failed[0].0, "flaky");
    assert!(failed[0]
        .2
        .as_deref()
        .is_some_and(|e| e.contains("Address already in use")));
    assert!(out
        .deploys
        .iter()
        .filter(|(n, _, _)| n != "flaky")
        .all(|(_, s, _)| *s == LifecycleStatus::Succeeded));
    assert_eq!(out.swept.0, LifecycleStatus::Failed);
    assert!(out
        .swept
        .1
        .as_deref()
        .is_some_and(|e| e.contains("no progress")));
    assert!(out.events > 0);
}

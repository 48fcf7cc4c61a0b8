//! Recipe: implement a `Deployer` — the one trait that decides where deckies run. This one
//! keeps them in memory; `decnet-docker` implements it over the Docker Engine API. Shared by
//! the `embed_runner` and `embed_agent` recipes (`#[path]`-included).
//!
//! The contract an implementation keeps:
//! - `deploy` converges to the complete desired fleet (deckies absent from it are removed) and
//!   reports a per-decky outcome; when it fails part way, it returns the error and the caller
//!   reads `runtime()` to learn which deckies did come up (partial-failure probing);
//! - `mutate` replaces one decky's services; `teardown` removes one decky or all;
//! - `runtime` lists what really runs, per decky and service.

use std::collections::BTreeMap;
use std::sync::Mutex;

use decnet_core::model::{DeckyName, DeckyRuntime, DecnetConfig, RuntimeMap};
use decnet_core::traits::{DeckyOutcome, DeployReport, Deployer, DeployerError};

/// A `Deployer` of your own: here it keeps "running" deckies in memory. A decky whose name
/// starts with `flaky` never comes up, and the deploy as a whole then fails — after the
/// others were started, as a real container runtime can.
#[derive(Debug, Default)]
pub struct InMemoryDeployer {
    running: Mutex<BTreeMap<String, Vec<String>>>,
}

#[async_trait::async_trait]
impl Deployer for InMemoryDeployer {
    async fn deploy(&self, desired: &DecnetConfig) -> Result<DeployReport, DeployerError> {
        let mut running = self.running.lock().expect("lock");
        running.retain(|name, _| desired.deckies.iter().any(|d| d.name.as_str() == name));
        let mut broken = None;
        for d in &desired.deckies {
            if d.name.as_str().starts_with("flaky") {
                broken = Some(d.name.to_string());
                continue;
            }
            running.insert(d.name.to_string(), d.services.clone());
        }
        match broken {
            Some(name) => Err(DeployerError::network(format!(
                "{name}: 403 Address already in use"
            ))),
            None => Ok(DeployReport {
                outcomes: desired
                    .deckies
                    .iter()
                    .map(|d| (d.name.clone(), DeckyOutcome::Succeeded))
                    .collect(),
            }),
        }
    }

    async fn mutate(
        &self,
        decky: &DeckyName,
        services: &[String],
    ) -> Result<DeployReport, DeployerError> {
        self.running
            .lock()
            .expect("lock")
            .insert(decky.to_string(), services.to_vec());
        let mut report = DeployReport::default();
        report
            .outcomes
            .insert(decky.clone(), DeckyOutcome::Succeeded);
        Ok(report)
    }

    async fn teardown<'a>(
        &self,
        decky: Option<&'a DeckyName>,
    ) -> Result<DeployReport, DeployerError> {
        let mut running = self.running.lock().expect("lock");
        match decky {
            Some(d) => {
                running.remove(d.as_str());
            }
            None => running.clear(),
        }
        Ok(DeployReport::default())
    }

    async fn runtime(&self) -> Result<RuntimeMap, DeployerError> {
        Ok(self
            .running
            .lock()
            .expect("lock")
            .iter()
            .map(|(name, services)| {
                let states = services
                    .iter()
                    .map(|s| (s.clone(), "running".to_string()))
                    .collect();
                (name.clone(), DeckyRuntime::from_services(states))
            })
            .collect())
    }
}

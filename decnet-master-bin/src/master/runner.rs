//! The master's lifecycle runner, sweep and start-up recovery: the core
//! [`decnet_core::orchestrate::Runner`] over the master's store, agents and local deployer,
//! with its reports logged.

use std::sync::Arc;

use decnet_core::model::HostUuid;
use decnet_core::traits::RepoError;
use tokio_util::sync::CancellationToken;

use super::state::Master;

pub use decnet_core::orchestrate::runner::RESTARTED;

/// Fails every row a previous process left open.
pub async fn recover(m: &Master) -> Result<usize, RepoError> {
    let n = m.runner.recover().await?;
    if n > 0 {
        tracing::warn!(rows = n, "failed lifecycle rows orphaned by a restart");
    }
    Ok(n)
}

pub async fn sweep_loop(m: Arc<Master>, shutdown: CancellationToken) {
    m.runner
        .clone()
        .sweep(shutdown.cancelled_owned(), |r| match r {
            Ok(n) => tracing::warn!(rows = n, "sweep failed stalled lifecycle rows"),
            Err(e) => tracing::warn!(error = %e, "sweep"),
        })
        .await;
}

pub async fn runner_loop(m: Arc<Master>, shutdown: CancellationToken) {
    m.runner
        .clone()
        .run(
            shutdown.cancelled_owned(),
            |e| tracing::warn!(error = %e, "lifecycle runner"),
        )
        .await;
}

/// The hosts a deploy may use: enrolled hosts heard from recently.
pub fn live_hosts(hosts: &[decnet_core::model::Host]) -> Vec<HostUuid> {
    let mut live: Vec<HostUuid> = hosts
        .iter()
        .filter(|h| h.status == decnet_core::model::HostStatus::Active)
        .map(|h| h.uuid)
        .collect();
    live.sort();
    live
}

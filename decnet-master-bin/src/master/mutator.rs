//! The mutator: deckies get new services every `mutate_interval` minutes (PRODUCT §3), through
//! the same path as an operator's mutate (a lifecycle row, `decky.<name>.mutation` with trigger
//! `scheduled`, the runner doing the work and the row closing on the real outcome — the
//! original counted an agent's 202 as success and lost the worker's answer).
//!
//! A due decky is left for a later pass while an operation on it is still open, while its
//! worker is not live, or when it is a unihost decky and this master runs no deckies itself.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use decnet_core::model::HostUuid;
use decnet_core::traits::RepoError;
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio_util::sync::CancellationToken;

use super::runner::live_hosts;
use super::state::Master;

/// Runs passes until `shutdown`; sleeps `mutator_poll` between them, or less when a decky is
/// due sooner.
pub async fn mutator_loop(m: Arc<Master>, shutdown: CancellationToken) {
    loop {
        let wait = match pass(&m).await {
            Ok(wait) => wait,
            Err(e) => {
                tracing::warn!(error = %e, "mutator pass failed; retrying");
                m.settings.mutator_poll
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// One pass: mutates the due deckies it may; returns how long to wait before the next pass.
pub async fn pass(m: &Master) -> Result<Duration, RepoError> {
    let poll = m.settings.mutator_poll;
    let live: BTreeSet<HostUuid> = live_hosts(&m.swarm.hosts_view().await?)
        .into_iter()
        .collect();
    let pass = m
        .lifecycle()
        .mutation_pass(&live, m.local.is_some(), &mut StdRng::from_entropy())
        .await?;
    for (name, ids) in &pass.mutated {
        tracing::info!(decky = %name, lifecycle = ?ids, "scheduled mutation");
    }
    for name in &pass.deferred {
        tracing::debug!(decky = %name, "mutation due, deferred (busy or not ready)");
    }
    for (name, e) in &pass.refused {
        tracing::warn!(decky = %name, error = %e, "scheduled mutation refused");
    }
    if !pass.mutated.is_empty() {
        m.runner.wake();
    }
    Ok(pass
        .next_in
        .map_or(poll, |d| d.max(Duration::from_secs(1)).min(poll)))
}

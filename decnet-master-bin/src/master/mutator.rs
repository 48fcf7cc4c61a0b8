//! The mutator: deckies get new services every `mutate_interval` minutes (PRODUCT §3), through
//! the same path as an operator's mutate (a lifecycle row, `decky.<name>.mutation` with trigger
//! `scheduled`, the runner doing the work and the row closing on the real outcome — the
//! original counted an agent's 202 as success and lost the worker's answer).
//!
//! A due decky is left for a later pass while an operation on it is still open, while its
//! worker is not live, or when it is a unihost decky and this master runs no deckies itself.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use decnet_core::model::{DeckyName, HostUuid};
use decnet_core::plan::due_mutations;
use decnet_core::traits::RepoError;
use tokio_util::sync::CancellationToken;

use super::fleet::{epoch, mutate_decky};
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
    let Some(fleet) = m.repo.desired_fleet().await? else {
        return Ok(poll);
    };
    let due = due_mutations(&fleet, epoch(m.clock.now()));
    if !due.due.is_empty() {
        let busy: HashSet<DeckyName> = m
            .repo
            .open_lifecycle_rows()
            .await?
            .into_iter()
            .map(|r| r.decky_name)
            .collect();
        let live: HashSet<HostUuid> = live_hosts(&m.hosts_view().await?).into_iter().collect();
        for name in &due.due {
            let host = fleet.decky(name.as_str()).and_then(|d| d.host_uuid);
            let ready = match host {
                Some(h) => live.contains(&h),
                None => m.local.is_some(),
            };
            if busy.contains(name) || !ready {
                tracing::debug!(decky = %name, busy = busy.contains(name), ready, "mutation due, deferred");
                continue;
            }
            match mutate_decky(m, name, None, "scheduled").await {
                Ok(ids) => tracing::info!(decky = %name, lifecycle = ?ids, "scheduled mutation"),
                Err(e) => tracing::warn!(decky = %name, error = ?e, "scheduled mutation refused"),
            }
        }
    }
    Ok(due
        .next_in
        .map_or(poll, |s| Duration::from_secs_f64(s.max(1.0)).min(poll)))
}

//! The lifecycle runner: picks up pending rows and carries them out, per host and one host at
//! a time. Local (unihost) rows run through the in-process `Deployer` and are closed here;
//! swarm rows are sent to the host's agent with their lifecycle ids and closed by the agent's
//! deltas. A failed dispatch probes the agent's `/status` and records per-decky outcomes;
//! only a failed probe fails the whole shard. The sweep fails rows without progress past their
//! operation's timeout; start-up recovery fails rows a previous process left open.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use decnet_core::model::{DecnetConfig, HostUuid, LifecycleRow, LifecycleStatus, Operation};
use decnet_core::orchestrate::{dispatch_local, dispatch_swarm, RowOutcome, SwarmDispatch};
use decnet_core::traits::RepoError;
use tokio_util::sync::CancellationToken;

use super::lifecycle::transition;
use super::metrics::Metrics;
use super::state::Master;

/// The reason start-up recovery gives.
pub const RESTARTED: &str = "master restarted during operation";

/// Fails every row a previous process left open.
pub async fn recover(m: &Master) -> Result<usize, RepoError> {
    let now = m.clock.now();
    let mut n = 0;
    for row in m.repo.open_lifecycle_rows().await? {
        if transition(
            m,
            row.id,
            LifecycleStatus::Failed,
            Some(RESTARTED.into()),
            now,
        )
        .await?
        .is_some()
        {
            n += 1;
        }
    }
    if n > 0 {
        tracing::warn!(rows = n, "failed lifecycle rows orphaned by a restart");
    }
    Ok(n)
}

fn timeout_of(m: &Master, op: Operation) -> Duration {
    match op {
        Operation::Deploy => m.settings.deploy_timeout,
        Operation::Mutate => m.settings.mutate_timeout,
        Operation::Teardown => m.settings.teardown_timeout,
    }
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 && s.is_multiple_of(60) {
        format!("{} min", s / 60)
    } else {
        format!("{s} s")
    }
}

/// One pass of the sweep: fails open rows whose last progress is older than their timeout.
pub async fn sweep_once(m: &Master) -> Result<usize, RepoError> {
    let now = m.clock.now();
    let mut n = 0;
    for row in m.repo.open_lifecycle_rows().await? {
        let limit = timeout_of(m, row.operation);
        let idle = (now - row.updated_at).to_std().unwrap_or_default();
        if idle >= limit {
            let reason = format!(
                "no progress for {} ({} timeout {}); the {} never reported back",
                human(idle),
                row.operation,
                human(limit),
                if row.host_uuid.is_some() {
                    "agent"
                } else {
                    "deployer"
                }
            );
            if transition(m, row.id, LifecycleStatus::Failed, Some(reason), now)
                .await?
                .is_some()
            {
                n += 1;
            }
        }
    }
    Ok(n)
}

pub async fn sweep_loop(m: Arc<Master>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(m.settings.sweep_every) => {}
        }
        match sweep_once(&m).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(rows = n, "sweep failed stalled lifecycle rows"),
            Err(e) => tracing::warn!(error = %e, "sweep"),
        }
    }
}

pub async fn runner_loop(m: Arc<Master>, shutdown: CancellationToken) {
    loop {
        if let Err(e) = run_once(&m).await {
            tracing::warn!(error = %e, "lifecycle runner");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = m.wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}

/// Starts a dispatch for every host that has pending rows and none in progress.
pub async fn run_once(m: &Arc<Master>) -> Result<(), RepoError> {
    let mut by_host: BTreeMap<Option<HostUuid>, Vec<LifecycleRow>> = BTreeMap::new();
    for row in m.repo.open_lifecycle_rows().await? {
        if row.status == LifecycleStatus::Pending {
            by_host.entry(row.host_uuid).or_default().push(row);
        }
    }
    for (host, rows) in by_host {
        {
            let mut busy = m.busy.lock().unwrap_or_else(|p| p.into_inner());
            if !busy.insert(host) {
                continue;
            }
        }
        let m = m.clone();
        tokio::spawn(async move {
            let result = match host {
                None => run_local(&m, rows).await,
                Some(h) => run_swarm(&m, h, rows).await,
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, host = ?host, "dispatch");
            }
            m.busy
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&host);
            // Rows may have arrived meanwhile.
            m.wake.notify_one();
        });
    }
    Ok(())
}

/// Marks rows running; returns the ones that are (a row the sweep closed meanwhile is not).
async fn start_rows(m: &Master, rows: Vec<LifecycleRow>) -> Result<Vec<LifecycleRow>, RepoError> {
    let now = m.clock.now();
    let mut out = Vec::new();
    for row in rows {
        if let Some(r) = transition(m, row.id, LifecycleStatus::Running, None, now).await? {
            out.push(r);
        }
    }
    Ok(out)
}

async fn close(
    m: &Master,
    row: &LifecycleRow,
    result: Result<(), String>,
) -> Result<(), RepoError> {
    let now = m.clock.now();
    let (to, err) = match result {
        Ok(()) => (LifecycleStatus::Succeeded, None),
        Err(e) => (LifecycleStatus::Failed, Some(e)),
    };
    transition(m, row.id, to, err, now).await.map(|_| ())
}

/// The desired deckies of one host (`None`: this machine), as a complete config.
pub async fn desired_for(
    m: &Master,
    host: Option<HostUuid>,
) -> Result<Option<DecnetConfig>, RepoError> {
    let Some(mut fleet) = m.repo.desired_fleet().await? else {
        return Ok(None);
    };
    fleet.deckies.retain(|d| d.host_uuid == host);
    Ok(Some(fleet))
}

async fn run_local(m: &Master, rows: Vec<LifecycleRow>) -> Result<(), RepoError> {
    let rows = start_rows(m, rows).await?;
    if rows.is_empty() {
        return Ok(());
    }
    let Some(deployer) = m.local.clone() else {
        for row in &rows {
            close(m, row, Err("this master has no local deployer (start it where Docker runs, or enroll a worker)".into())).await?;
        }
        return Ok(());
    };
    // The complete local set converges; with nothing left, everything local goes.
    let desired = desired_for(m, None).await?;
    let outcomes = dispatch_local(deployer.as_ref(), desired.as_ref(), &rows).await;
    apply(m, outcomes).await
}

async fn apply(m: &Master, outcomes: Vec<RowOutcome>) -> Result<(), RepoError> {
    let now = m.clock.now();
    for o in outcomes {
        transition(m, o.id, o.status, o.error, now).await?;
    }
    Ok(())
}

async fn run_swarm(
    m: &Master,
    host_uuid: HostUuid,
    rows: Vec<LifecycleRow>,
) -> Result<(), RepoError> {
    let Some(host) = m.host(host_uuid).await? else {
        let rows = start_rows(m, rows).await?;
        for row in &rows {
            close(
                m,
                row,
                Err(format!(
                    "host {host_uuid} is not enrolled (decommissioned?)"
                )),
            )
            .await?;
        }
        return Ok(());
    };
    let rows = start_rows(m, rows).await?;
    if rows.is_empty() {
        return Ok(());
    }
    let shard = desired_for(m, Some(host_uuid)).await?;
    let agent = match m.agents.connect(&host, m.settings.dispatch_timeout) {
        Ok(c) => c,
        Err(e) => {
            for row in &rows {
                close(m, row, Err(e.to_string())).await?;
            }
            return Ok(());
        }
    };
    // The host's complete shard: deckies not in it are removed by the agent's converge, and
    // their teardown deltas close the teardown rows.
    match dispatch_swarm(agent.as_ref(), shard.as_ref(), &rows).await {
        SwarmDispatch::Settled { error, outcomes } => {
            Metrics::inc(&m.metrics.dispatches_failed);
            tracing::warn!(host = %host.name, error = %error, "dispatch failed; probed the agent");
            apply(m, outcomes).await
        }
        _ => {
            Metrics::inc(&m.metrics.dispatches_accepted);
            Ok(())
        }
    }
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

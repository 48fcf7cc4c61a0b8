//! The lifecycle runner: picks up pending rows and carries them out, per host and one host at
//! a time. Local (unihost) rows run through the in-process `Deployer` and are closed here;
//! swarm rows are sent to the host's agent with their lifecycle ids and closed by the agent's
//! deltas. A failed dispatch probes the agent's `/status` and records per-decky outcomes;
//! only a failed probe fails the whole shard. The sweep fails rows without progress past their
//! operation's timeout; start-up recovery fails rows a previous process left open.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use decnet_core::model::{
    AgentStatus, DeckyName, DecnetConfig, HostUuid, LifecycleRow, LifecycleStatus, Operation,
};
use decnet_core::plan::merge_probe;
use decnet_core::traits::{DeckyOutcome, RepoError};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

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
    if s >= 60 && s % 60 == 0 {
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
    let result = match desired_for(m, None).await? {
        Some(desired) if !desired.deckies.is_empty() => deployer.deploy(&desired).await,
        _ => deployer.teardown(None).await,
    };
    for row in &rows {
        let outcome = match &result {
            Err(e) => Err(e.to_string()),
            Ok(report) => match report.outcomes.get(&row.decky_name) {
                Some(DeckyOutcome::Failed { reason }) => Err(reason.clone()),
                Some(DeckyOutcome::Succeeded) | None => Ok(()),
            },
        };
        close(m, row, outcome).await?;
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
    let ids: BTreeMap<String, Uuid> = rows
        .iter()
        .filter(|r| r.operation != Operation::Teardown)
        .map(|r| (r.decky_name.to_string(), r.id))
        .collect();
    let teardown_ids: BTreeMap<String, Uuid> = rows
        .iter()
        .filter(|r| r.operation == Operation::Teardown)
        .map(|r| (r.decky_name.to_string(), r.id))
        .collect();
    let client = match m.pki.agent_client(&host, m.settings.dispatch_timeout) {
        Ok(c) => c,
        Err(e) => {
            for row in &rows {
                close(m, row, Err(format!("agent client: {e}"))).await?;
            }
            return Ok(());
        }
    };
    let base = format!("https://{}", host.address);
    // The host's complete shard: deckies not in it are removed by the agent's converge, and
    // their teardown deltas close the teardown rows.
    let dispatch = async {
        match shard.filter(|s| !s.deckies.is_empty()) {
            Some(shard) => {
                let mut all = ids.clone();
                all.extend(teardown_ids.clone());
                all.retain(|k, _| shard.decky(k).is_some());
                send(
                    &client,
                    &format!("{base}/deploy"),
                    json!({"config": shard, "lifecycle_ids": all}),
                )
                .await?;
                for (name, id) in &teardown_ids {
                    send(
                        &client,
                        &format!("{base}/teardown"),
                        json!({"decky_id": name, "lifecycle_ids": {name: id}}),
                    )
                    .await?;
                }
                Ok(())
            }
            None => {
                let mut all = ids.clone();
                all.extend(teardown_ids.clone());
                send(
                    &client,
                    &format!("{base}/teardown"),
                    json!({"decky_id": null, "lifecycle_ids": all}),
                )
                .await
            }
        }
    };
    let dispatched = dispatch.await;
    Metrics::inc(if dispatched.is_ok() {
        &m.metrics.dispatches_accepted
    } else {
        &m.metrics.dispatches_failed
    });
    if let Err(dispatch_error) = dispatched {
        tracing::warn!(host = %host.name, error = %dispatch_error, "dispatch failed; probing the agent");
        let probe = probe(&client, &base).await;
        let pairs: Vec<(DeckyName, Operation)> = rows
            .iter()
            .map(|r| (r.decky_name.clone(), r.operation))
            .collect();
        let merged = match &probe {
            // The agent refuses all work on an unreadable state file: whatever runs there,
            // this operation did not happen.
            Ok(status) if status.state_error.is_some() => pairs
                .iter()
                .map(|(name, _)| {
                    (
                        name.clone(),
                        LifecycleStatus::Failed,
                        Some(dispatch_error.clone()),
                    )
                })
                .collect(),
            Ok(status) => {
                let runtime = status.runtime.clone().unwrap_or_default();
                merge_probe(&pairs, Ok(&runtime), &dispatch_error)
            }
            Err(e) => merge_probe(&pairs, Err(e.as_str()), &dispatch_error),
        };
        let now = m.clock.now();
        for ((name, status, error), row) in merged.into_iter().zip(&rows) {
            debug_assert_eq!(name, row.decky_name);
            transition(m, row.id, status, error, now).await?;
        }
    }
    Ok(())
}

async fn send(client: &reqwest::Client, url: &str, body: serde_json::Value) -> Result<(), String> {
    let resp = client
        .post(url)
        .json(&body)
        .send()
        .await
        .map_err(|e| crate::client::error_chain(&e))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let detail = resp
        .json::<serde_json::Value>()
        .await
        .ok()
        .and_then(|v| v["detail"].as_str().map(str::to_string))
        .unwrap_or_default();
    Err(format!("agent answered {status}: {detail}"))
}

async fn probe(client: &reqwest::Client, base: &str) -> Result<AgentStatus, String> {
    let resp = client
        .get(format!("{base}/status"))
        .send()
        .await
        .map_err(|e| crate::client::error_chain(&e))?;
    if !resp.status().is_success() {
        return Err(format!("agent answered {}", resp.status()));
    }
    resp.json::<AgentStatus>().await.map_err(|e| e.to_string())
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

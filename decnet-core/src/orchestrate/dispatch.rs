//! Dispatch of pending lifecycle rows, with partial-failure probing on both paths.
//!
//! - **Swarm**: the host's complete shard goes to its agent ([`AgentClient`]); the agent's
//!   deltas close the rows later. When the dispatch fails, the agent's `/status` is probed and
//!   each row is settled from its runtime map; only a failed probe fails every row.
//! - **Local** (unihost): the [`Deployer`] converges this machine and its report settles each
//!   row at once. When it fails as a whole after part of the work, the runtime is read the same
//!   way, so deckies that did come up are not reported failed.

use crate::model::wire::{DeployRequest, LifecycleIds, TeardownRequest};
use crate::model::{DecnetConfig, LifecycleRow, LifecycleStatus, Operation};
use crate::plan::{merge_probe_of, Probed};
use crate::traits::{AgentClient, AgentError, DeckyOutcome, Deployer};

/// What a row becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowOutcome {
    /// The lifecycle row.
    pub id: uuid::Uuid,
    /// `succeeded` or `failed`.
    pub status: LifecycleStatus,
    /// Why it failed.
    pub error: Option<String>,
}

/// How a dispatch to an agent came out.
#[derive(Debug)]
#[non_exhaustive]
pub enum SwarmDispatch {
    /// The agent accepted all the work: its deltas close the rows.
    Accepted,
    /// The dispatch failed; the probe settled every row.
    Settled {
        /// Why the dispatch failed.
        error: AgentError,
        /// One outcome per row, in the rows' order.
        outcomes: Vec<RowOutcome>,
    },
}

/// Sends a host's work to its agent: `shard` is the host's complete desired shard (`None` or
/// empty: everything on that host goes), `rows` the running rows of that host. Deckies of the
/// agent not in the shard are removed by its converge; each teardown row of a decky that is
/// still in the shard is sent as its own `/teardown`.
///
/// ```
/// # use decnet_core::orchestrate::dispatch::{dispatch_swarm, SwarmDispatch};
/// # use decnet_core::traits::MockAgentClient;
/// # use decnet_core::model::wire::{Acceptance, TeardownAnswer};
/// # block_on(async {
/// let mut agent = MockAgentClient::new();
/// agent.expect_teardown().returning(|_| {
///     Ok(TeardownAnswer { status: Acceptance::Accepted, decky_id: None })
/// });
/// // Nothing desired on this host: one teardown of everything.
/// assert!(matches!(dispatch_swarm(&agent, None, &[]).await, SwarmDispatch::Accepted));
/// # });
/// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
pub async fn dispatch_swarm(
    agent: &dyn AgentClient,
    shard: Option<&DecnetConfig>,
    rows: &[LifecycleRow],
) -> SwarmDispatch {
    match send_swarm(agent, shard, rows).await {
        Ok(()) => SwarmDispatch::Accepted,
        Err(error) => {
            let probe = agent.status().await;
            let message = error.to_string();
            let outcomes = match probe {
                // The agent refuses all work on an unreadable state file: whatever runs
                // there, this operation did not happen.
                Ok(status) if status.state_error.is_some() => rows
                    .iter()
                    .map(|r| RowOutcome {
                        id: r.id,
                        status: LifecycleStatus::Failed,
                        error: Some(message.clone()),
                    })
                    .collect(),
                Ok(status) => settle(
                    Probed::Agent,
                    rows,
                    Ok(&status.runtime.unwrap_or_default()),
                    &message,
                ),
                Err(e) => settle(Probed::Agent, rows, Err(&e.to_string()), &message),
            };
            SwarmDispatch::Settled { error, outcomes }
        }
    }
}

async fn send_swarm(
    agent: &dyn AgentClient,
    shard: Option<&DecnetConfig>,
    rows: &[LifecycleRow],
) -> Result<(), AgentError> {
    let ids = |teardown: bool| -> LifecycleIds {
        rows.iter()
            .filter(|r| (r.operation == Operation::Teardown) == teardown)
            .map(|r| (r.decky_name.to_string(), r.id))
            .collect()
    };
    let (work, teardowns) = (ids(false), ids(true));
    match shard.filter(|s| !s.deckies.is_empty()) {
        Some(shard) => {
            let mut all = work;
            all.extend(teardowns.clone());
            all.retain(|k, _| shard.decky(k).is_some());
            agent
                .deploy(&DeployRequest::new(shard.clone(), all))
                .await?;
            for (name, id) in teardowns {
                agent
                    .teardown(&TeardownRequest {
                        decky_id: Some(name.clone()),
                        lifecycle_ids: Some(LifecycleIds::from([(name, id)])),
                    })
                    .await?;
            }
            Ok(())
        }
        None => {
            let mut all = work;
            all.extend(teardowns);
            agent
                .teardown(&TeardownRequest {
                    decky_id: None,
                    lifecycle_ids: Some(all),
                })
                .await
                .map(|_| ())
        }
    }
}

/// Converges this machine to `desired` (`None` or empty: every local decky goes) and settles
/// every row. A deployer error as a whole is followed by a read of the runtime: a decky that
/// runs (or, for a teardown, is gone) succeeded; only when that read fails too does every row
/// fail.
pub async fn dispatch_local(
    deployer: &dyn Deployer,
    desired: Option<&DecnetConfig>,
    rows: &[LifecycleRow],
) -> Vec<RowOutcome> {
    let result = match desired.filter(|d| !d.deckies.is_empty()) {
        Some(desired) => deployer.deploy(desired).await,
        None => deployer.teardown(None).await,
    };
    match result {
        Ok(report) => rows
            .iter()
            .map(|row| match report.outcomes.get(&row.decky_name) {
                Some(DeckyOutcome::Failed { reason }) => RowOutcome {
                    id: row.id,
                    status: LifecycleStatus::Failed,
                    error: Some(reason.clone()),
                },
                Some(DeckyOutcome::Succeeded) | None => RowOutcome {
                    id: row.id,
                    status: LifecycleStatus::Succeeded,
                    error: None,
                },
            })
            .collect(),
        Err(error) => {
            let message = error.to_string();
            match deployer.runtime().await {
                Ok(runtime) => settle(Probed::Runtime, rows, Ok(&runtime), &message),
                Err(e) => settle(Probed::Runtime, rows, Err(&e.to_string()), &message),
            }
        }
    }
}

fn settle(
    who: Probed,
    rows: &[LifecycleRow],
    probe: Result<&crate::model::RuntimeMap, &str>,
    message: &str,
) -> Vec<RowOutcome> {
    let pairs: Vec<_> = rows
        .iter()
        .map(|r| (r.decky_name.clone(), r.operation))
        .collect();
    merge_probe_of(who, &pairs, probe, message)
        .into_iter()
        .zip(rows)
        .map(|((_, status, error), row)| RowOutcome {
            id: row.id,
            status,
            error,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::{DateTime, Utc};

    use super::*;
    use crate::model::fixtures::{config, decky};
    use crate::model::wire::{Acceptance, DeployAnswer, TeardownAnswer};
    use crate::model::{AgentStatus, DeckyName, DeckyRuntime, HostUuid, Mode, RuntimeMap};
    use crate::traits::{DeployReport, DeployerError, MockAgentClient, MockDeployer};

    fn t0() -> DateTime<Utc> {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    fn rows(host: Option<HostUuid>, names: &[&str], op: Operation) -> Vec<LifecycleRow> {
        names
            .iter()
            .map(|n| LifecycleRow::new(DeckyName::new(*n).unwrap(), host, op, t0()))
            .collect()
    }

    fn shard(names: &[&str]) -> DecnetConfig {
        let deckies = names
            .iter()
            .enumerate()
            .map(|(i, n)| decky(n, [10, 0, 0, 10 + i as u8].into(), &["ssh"]))
            .collect();
        config(Mode::Swarm, "10.0.0.0/24", "10.0.0.1", deckies)
    }

    fn runtime(up: &[&str], down: &[&str]) -> RuntimeMap {
        let entry = |state: &str| {
            DeckyRuntime::from_services(BTreeMap::from([("ssh".into(), state.into())]))
        };
        up.iter()
            .map(|n| (n.to_string(), entry("running")))
            .chain(down.iter().map(|n| (n.to_string(), entry("exited"))))
            .collect()
    }

    fn status(rt: RuntimeMap) -> AgentStatus {
        AgentStatus::deployed(&shard(&[]), "/x".into(), rt, t0(), vec![])
    }

    fn failed(outcomes: &[RowOutcome]) -> usize {
        outcomes
            .iter()
            .filter(|o| o.status == LifecycleStatus::Failed)
            .count()
    }

    fn reset() -> AgentError {
        AgentError::Unreachable {
            message: "connection reset".into(),
            source: None,
        }
    }

    #[tokio::test]
    async fn swarm_dispatch_error_then_probe_two_of_three_running_fails_exactly_one() {
        let h = Some(HostUuid(uuid::Uuid::from_u128(7)));
        let rows = rows(h, &["a", "b", "c"], Operation::Deploy);
        let mut agent = MockAgentClient::new();
        agent.expect_deploy().times(1).returning(|_| Err(reset()));
        agent
            .expect_status()
            .times(1)
            .returning(|| Ok(status(runtime(&["a", "c"], &["b"]))));
        let out = dispatch_swarm(&agent, Some(&shard(&["a", "b", "c"])), &rows).await;
        let SwarmDispatch::Settled { error, outcomes } = out else {
            panic!("a failed dispatch settles the rows");
        };
        assert!(matches!(error, AgentError::Unreachable { .. }));
        assert_eq!(failed(&outcomes), 1);
        assert_eq!(outcomes[1].id, rows[1].id);
        assert_eq!(outcomes[1].status, LifecycleStatus::Failed);
        let e = outcomes[1].error.as_deref().unwrap();
        assert!(
            e.contains("connection reset") && e.contains("not running"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn swarm_probe_failure_fails_every_row() {
        let rows = rows(None, &["a", "b", "c"], Operation::Deploy);
        let mut agent = MockAgentClient::new();
        agent.expect_deploy().returning(|_| {
            Err(AgentError::Rejected {
                status: 503,
                detail: "queue full".into(),
            })
        });
        agent.expect_status().returning(|| Err(reset()));
        let SwarmDispatch::Settled { outcomes, .. } =
            dispatch_swarm(&agent, Some(&shard(&["a", "b", "c"])), &rows).await
        else {
            panic!("settled");
        };
        assert_eq!(failed(&outcomes), 3);
        assert!(outcomes.iter().all(|o| o
            .error
            .as_deref()
            .unwrap()
            .contains("could not be probed")));
    }

    #[tokio::test]
    async fn swarm_unreadable_worker_state_fails_every_row_whatever_runs() {
        let rows = rows(None, &["a"], Operation::Deploy);
        let mut agent = MockAgentClient::new();
        agent.expect_deploy().returning(|_| {
            Err(AgentError::Rejected {
                status: 409,
                detail: "state unreadable".into(),
            })
        });
        agent.expect_status().returning(|| {
            Ok(AgentStatus::unreadable_state(
                "bad".into(),
                Some(runtime(&["a"], &[])),
                t0(),
                vec![],
            ))
        });
        let SwarmDispatch::Settled { outcomes, .. } =
            dispatch_swarm(&agent, Some(&shard(&["a"])), &rows).await
        else {
            panic!("settled");
        };
        assert_eq!(failed(&outcomes), 1);
    }

    #[tokio::test]
    async fn swarm_sends_the_shard_with_its_ids_and_separate_teardowns() {
        let mut rows_ = rows(None, &["a", "b"], Operation::Deploy);
        rows_.extend(rows(None, &["c", "gone"], Operation::Teardown));
        let (a, c) = (rows_[0].id, rows_[2].id);
        let mut agent = MockAgentClient::new();
        agent
            .expect_deploy()
            .withf(move |r| {
                let ids = r.lifecycle_ids.clone().unwrap();
                // "gone" is not in the shard: the converge removes it, no id to echo.
                ids.len() == 3 && ids["a"] == a && ids["c"] == c && !r.dry_run
            })
            .times(1)
            .returning(|r| {
                Ok(DeployAnswer {
                    status: Acceptance::Accepted,
                    deckies: r
                        .config
                        .deckies
                        .iter()
                        .map(|d| d.name.to_string())
                        .collect(),
                })
            });
        agent.expect_teardown().times(2).returning(|r| {
            Ok(TeardownAnswer {
                status: Acceptance::Accepted,
                decky_id: r.decky_id.clone(),
            })
        });
        agent.expect_status().never();
        let out = dispatch_swarm(&agent, Some(&shard(&["a", "b", "c"])), &rows_).await;
        assert!(matches!(out, SwarmDispatch::Accepted));
    }

    #[tokio::test]
    async fn local_deployer_error_then_runtime_two_of_three_running_fails_exactly_one() {
        let rows = rows(None, &["a", "b", "c"], Operation::Deploy);
        let mut d = MockDeployer::new();
        d.expect_deploy()
            .times(1)
            .returning(|_| Err(DeployerError::network("403: Address already in use")));
        d.expect_runtime()
            .times(1)
            .returning(|| Ok(runtime(&["a", "b"], &[])));
        let out = dispatch_local(&d, Some(&shard(&["a", "b", "c"])), &rows).await;
        assert_eq!(failed(&out), 1);
        assert_eq!(out[2].id, rows[2].id);
        let e = out[2].error.as_deref().unwrap();
        assert!(
            e.contains("Address already in use")
                && e.contains("container runtime shows the decky absent"),
            "{e}"
        );
        assert_eq!(out[0].status, LifecycleStatus::Succeeded);
    }

    #[tokio::test]
    async fn local_runtime_unreadable_fails_every_row() {
        let rows = rows(None, &["a", "b", "c"], Operation::Deploy);
        let mut d = MockDeployer::new();
        d.expect_deploy()
            .returning(|_| Err(DeployerError::other("boom")));
        d.expect_runtime()
            .returning(|| Err(DeployerError::unavailable("daemon gone")));
        let out = dispatch_local(&d, Some(&shard(&["a", "b", "c"])), &rows).await;
        assert_eq!(failed(&out), 3);
        assert!(out[0]
            .error
            .as_deref()
            .unwrap()
            .contains("could not be read (container runtime unavailable: daemon gone)"));
    }

    #[tokio::test]
    async fn local_report_settles_each_row_and_teardown_probe_wants_absence() {
        let rows_ = rows(None, &["a", "b"], Operation::Deploy);
        let mut d = MockDeployer::new();
        d.expect_deploy().returning(|_| {
            let mut r = DeployReport::default();
            r.outcomes
                .insert(DeckyName::new("a").unwrap(), DeckyOutcome::Succeeded);
            r.outcomes.insert(
                DeckyName::new("b").unwrap(),
                DeckyOutcome::Failed {
                    reason: "image".into(),
                },
            );
            Ok(r)
        });
        let out = dispatch_local(&d, Some(&shard(&["a", "b"])), &rows_).await;
        assert_eq!(out[0].status, LifecycleStatus::Succeeded);
        assert_eq!(out[1].error.as_deref(), Some("image"));

        // A failed teardown of everything: the decky still present failed, the other is gone.
        let rows_ = rows(None, &["a", "b"], Operation::Teardown);
        let mut d = MockDeployer::new();
        d.expect_teardown()
            .returning(|_| Err(DeployerError::other("network in use")));
        d.expect_runtime().returning(|| Ok(runtime(&[], &["b"])));
        let out = dispatch_local(&d, None, &rows_).await;
        assert_eq!(out[0].status, LifecycleStatus::Succeeded);
        assert_eq!(out[1].status, LifecycleStatus::Failed);
    }
}

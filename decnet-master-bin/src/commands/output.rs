//! The `--json` output of the commands that change or show the fleet: one schema per command,
//! whether it ran on this host or through a master (docs/cli-json.md). These are CLI output,
//! not protocol bodies: the wire types stay in `decnet_core::model::wire`.

use std::io::Write;

use anyhow::Context;
use decnet_core::model::wire::DeckyView;
use decnet_core::model::{DecnetConfig, RuntimeMap, ShardState, WorkerState};
use decnet_core::traits::{DeckyOutcome, DeployReport};
use serde::Serialize;
use uuid::Uuid;

use super::wait::RowView;
use crate::error::CliError;

/// Where a command's answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// This host's own deployer (no master).
    Local,
    /// A master's operator API.
    Master,
}

/// `deploy --json`, `mutate --json`, `teardown --json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangeOutput {
    /// `deploy`, `mutate` or `teardown`.
    pub operation: &'static str,
    pub source: Source,
    /// The master's URL (`null` on this host).
    pub master: Option<String>,
    /// `unihost` or `swarm` (deploy; `null` otherwise).
    pub mode: Option<String>,
    /// The lifecycle rows the master opened (empty on this host: the work is done already).
    pub lifecycle_ids: Vec<Uuid>,
    /// One entry per decky the operation touched.
    pub deckies: Vec<ChangeDecky>,
}

/// One decky of a [`ChangeOutput`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangeDecky {
    pub name: String,
    /// `pending`, `running` (through a master without --wait), `succeeded` or `failed`.
    pub status: String,
    /// Its lifecycle row (`null` on this host).
    pub lifecycle_id: Option<Uuid>,
    pub error: Option<String>,
}

impl ChangeOutput {
    /// On this host: the deployer's report.
    pub fn local(operation: &'static str, mode: Option<String>, report: &DeployReport) -> Self {
        let deckies = report
            .outcomes
            .iter()
            .map(|(name, outcome)| {
                let (status, error) = match outcome {
                    DeckyOutcome::Succeeded => ("succeeded", None),
                    DeckyOutcome::Failed { reason } => ("failed", Some(reason.clone())),
                };
                ChangeDecky {
                    name: name.to_string(),
                    status: status.to_string(),
                    lifecycle_id: None,
                    error,
                }
            })
            .collect();
        Self {
            operation,
            source: Source::Local,
            master: None,
            mode,
            lifecycle_ids: Vec::new(),
            deckies,
        }
    }

    /// Through a master: the lifecycle rows of `ids`.
    pub fn master(
        operation: &'static str,
        url: String,
        mode: Option<String>,
        ids: &[Uuid],
        rows: &[RowView],
    ) -> Self {
        let deckies = rows
            .iter()
            .map(|r| ChangeDecky {
                name: r.decky_name.clone(),
                status: r.status.clone(),
                lifecycle_id: r.id.parse().ok(),
                error: r.error.clone(),
            })
            .collect();
        Self {
            operation,
            source: Source::Master,
            master: Some(url),
            mode,
            lifecycle_ids: ids.to_vec(),
            deckies,
        }
    }
}

/// `status --json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusOutput {
    pub source: Source,
    pub master: Option<String>,
    /// Whether there is a fleet at all.
    pub deployed: bool,
    /// This host's network (`null` through a master, or with nothing deployed).
    pub network: Option<NetworkView>,
    /// The deckies, as `GET /api/v1/deckies` lists them.
    pub deckies: Vec<DeckyView>,
    /// Per decky, its containers (this host only; `{}` through a master).
    pub runtime: RuntimeMap,
    /// Deckies in this host's state file that break today's rules (never acted upon).
    pub rejected: Vec<RejectedView>,
}

/// This host's fleet network.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NetworkView {
    pub mode: String,
    pub interface: String,
    pub subnet: String,
    pub gateway: String,
    pub driver: String,
}

/// A rejected entry of the state file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RejectedView {
    pub name: Option<String>,
    pub reason: String,
}

impl StatusOutput {
    /// Nothing deployed on this host.
    pub fn nothing_local() -> Self {
        Self {
            source: Source::Local,
            master: None,
            deployed: false,
            network: None,
            deckies: Vec::new(),
            runtime: RuntimeMap::new(),
            rejected: Vec::new(),
        }
    }

    /// This host's state and its containers. A decky whose containers all run is `running`,
    /// any other `degraded` (as the master records a worker's).
    pub fn local(state: &WorkerState, runtime: RuntimeMap) -> Self {
        let c: &DecnetConfig = &state.config;
        let deckies = c
            .deckies
            .iter()
            .map(|d| DeckyView {
                name: d.name.to_string(),
                host_uuid: None,
                host: "local".to_string(),
                ip: d.ip,
                services: d.services.clone(),
                state: if runtime.get(d.name.as_str()).is_some_and(|r| r.running) {
                    ShardState::Running
                } else {
                    ShardState::Degraded
                },
                last_seen: None,
            })
            .collect();
        Self {
            source: Source::Local,
            master: None,
            deployed: true,
            network: Some(NetworkView {
                mode: c.mode.to_string(),
                interface: c.interface.clone(),
                subnet: c.subnet.to_string(),
                gateway: c.gateway.to_string(),
                driver: c.driver().to_string(),
            }),
            deckies,
            runtime,
            rejected: state
                .rejected
                .iter()
                .map(|r| RejectedView {
                    name: r.name.clone(),
                    reason: r.reason.clone(),
                })
                .collect(),
        }
    }

    /// The master's fleet.
    pub fn master(url: String, deckies: Vec<DeckyView>) -> Self {
        Self {
            source: Source::Master,
            master: Some(url),
            deployed: !deckies.is_empty(),
            network: None,
            deckies,
            runtime: RuntimeMap::new(),
            rejected: Vec::new(),
        }
    }
}

/// Prints `value` as the command's whole output (pretty JSON).
pub fn print<T: Serialize>(value: &T, out: &mut dyn Write) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value).context("serialise")?;
    writeln!(out, "{text}").context("write")?;
    Ok(())
}

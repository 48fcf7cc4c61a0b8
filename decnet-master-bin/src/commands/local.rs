//! Acting directly on this host (unihost, no master): the Docker deployer, the state in the
//! data dir, `status`, `teardown` and `mutate`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use decnet_core::adapters::state_file;
use decnet_core::fleet::pick_services;
use decnet_core::model::validate::validate_services;
use decnet_core::model::{DeckyName, WorkerState};
use decnet_core::traits::{DeckyOutcome, DeployReport, Deployer, DeployerError};
use decnet_docker::{image, DockerDeployer, DockerDeployerConfig};
use decnet_net::NetlinkHostNetwork;
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::output::{ChangeOutput, StatusOutput};
use crate::cli::{DockerArgs, MutateArgs, StatusArgs, TeardownArgs};
use crate::error::CliError;

/// `--data-dir`, else `/var/lib/decnet` for root, else `~/.decnet`.
pub fn data_dir(flag: Option<&Path>) -> PathBuf {
    if let Some(d) = flag {
        return d.to_path_buf();
    }
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false);
    match (root, std::env::var_os("HOME")) {
        (false, Some(home)) => PathBuf::from(home).join(".decnet"),
        _ => PathBuf::from("/var/lib/decnet"),
    }
}

pub fn state_path(data_dir: &Path) -> PathBuf {
    state_file::state_path(data_dir)
}

/// The label unihost deckies carried before each data dir had its own identity.
pub const LEGACY_HOST_LABEL: &str = "local";

/// This data dir's host identity for Docker labels (`decnet.host`): `<data-dir>/host-id`,
/// made once (`local-` and 12 random hex digits). Two data dirs — two unihost fleets, or a
/// fleet and a master's own deckies — on one Docker daemon never see each other's containers.
/// Bus topics and lists keep saying `local`.
pub fn host_identity(data_dir: &Path) -> Result<String, CliError> {
    let path = data_dir.join("host-id");
    let valid = |s: &str| {
        !s.is_empty()
            && s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let id = text.trim();
            if valid(id) {
                return Ok(id.to_string());
            }
            return Err(CliError::Failed(anyhow::anyhow!(
                "{}: {id:?} is not a host identity (lowercase letters, digits and '-'); remove the file to get a new one",
                path.display()
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(CliError::Failed(anyhow::anyhow!(
                "read {}: {e}",
                path.display()
            )))
        }
    }
    let id = format!("local-{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff);
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("create the data dir {}", data_dir.display()))?;
    decnet_tls::pki::write_file_atomic(&path, format!("{id}\n").as_bytes(), 0o644)
        .map_err(|e| CliError::Failed(anyhow::anyhow!("write {}: {e}", path.display())))?;
    Ok(id)
}

/// Connects the Docker deployer for this host; the output of removed service containers goes
/// into the data dir's attacker-event spool.
pub async fn deployer(data_dir: &Path, args: &DockerArgs) -> Result<DockerDeployer, CliError> {
    let collector = Arc::new(super::attacks::SpoolCollector {
        data_dir: data_dir.to_path_buf(),
    });
    deployer_with(data_dir, args, collector).await
}

/// Connects the Docker deployer for this host with `collector` reading what removed service
/// containers leave.
pub async fn deployer_with(
    data_dir: &Path,
    args: &DockerArgs,
    collector: Arc<dyn decnet_core::traits::OutputCollector>,
) -> Result<DockerDeployer, CliError> {
    let binary = image::find_decky_binary(args.decky_bin.as_deref())
        .map_err(|e| CliError::usage(e.to_string()))?;
    let label = match &args.host_label {
        Some(l) => l.clone(),
        None => host_identity(data_dir)?,
    };
    let mut cfg = DockerDeployerConfig::new(label, state_path(data_dir), binary);
    // Deckies of an earlier release, labelled `local`, that this data dir's state lists.
    cfg.adopt_labels = vec![LEGACY_HOST_LABEL.to_string()];
    cfg.network = args.network_name.clone();
    cfg.host_link = !args.no_host_link;
    cfg.host_link_name = args.host_link_name.clone();
    DockerDeployer::connect(cfg, Arc::new(NetlinkHostNetwork::new()))
        .await
        .map(|d| d.with_output_collector(collector))
        .map_err(|e| CliError::Failed(anyhow::anyhow!(e)))
}

pub fn deployer_error(e: DeployerError) -> CliError {
    match e {
        DeployerError::Invalid { message, .. } => CliError::Usage(message),
        DeployerError::UnknownDecky(d) => {
            CliError::not_found(format!("decky {d:?} is not deployed on this host"))
        }
        other => CliError::Failed(anyhow::anyhow!(other)),
    }
}

/// Prints `json` (the command's `--json` output); then, as [`report`], an error when any
/// decky failed.
pub fn json_report(
    json: &ChangeOutput,
    report: &DeployReport,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    super::output::print(json, out)?;
    let failed = report.outcomes.values().filter(|o| !o.is_success()).count();
    if failed > 0 {
        return Err(CliError::Failed(anyhow::anyhow!(
            "{failed} of {} decky(ies) failed",
            report.outcomes.len()
        )));
    }
    Ok(())
}

/// Prints per-decky outcomes; an error when any failed.
pub fn report(report: &DeployReport, verb: &str, out: &mut dyn Write) -> Result<(), CliError> {
    let mut failed = 0;
    for (name, outcome) in &report.outcomes {
        match outcome {
            DeckyOutcome::Succeeded => writeln!(out, "{name:<24} {verb}"),
            DeckyOutcome::Failed { reason } => {
                failed += 1;
                writeln!(out, "{name:<24} FAILED: {reason}")
            }
        }
        .context("write")?;
    }
    if failed > 0 {
        return Err(CliError::Failed(anyhow::anyhow!(
            "{failed} of {} decky(ies) failed",
            report.outcomes.len()
        )));
    }
    Ok(())
}

pub async fn status(
    data_dir: &Path,
    args: &StatusArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let state = state_file::load(&state_path(data_dir)).map_err(|e| CliError::Failed(e.into()))?;
    let Some(state) = state else {
        if args.json {
            super::output::print(&StatusOutput::nothing_local(), out)?;
        } else {
            writeln!(
                out,
                "No active deployment (no state in {}).",
                data_dir.display()
            )
            .context("write")?;
        }
        return Ok(());
    };
    let deployer = deployer(data_dir, &args.docker).await?;
    let runtime = deployer.runtime().await.map_err(deployer_error)?;
    if args.json {
        return super::output::print(&StatusOutput::local(&state, runtime), out);
    }
    print_status(&state, &runtime, out).context("write")?;
    Ok(())
}

fn print_status(
    state: &WorkerState,
    runtime: &decnet_core::model::RuntimeMap,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let c = &state.config;
    writeln!(
        out,
        "{} decky(ies), {} on {} (subnet {}, gateway {})",
        c.deckies.len(),
        c.driver(),
        c.interface,
        c.subnet,
        c.gateway
    )?;
    writeln!(
        out,
        "{:<20} {:<15} {:<9} {:<20} SERVICES",
        "DECKY", "IP", "STATUS", "HOSTNAME"
    )?;
    for d in &c.deckies {
        let rt = runtime.get(d.name.as_str());
        let status = match rt {
            Some(r) if r.running => "up",
            Some(r) if r.services.values().any(|s| s == "running") => "degraded",
            _ => "down",
        };
        let services: Vec<String> = d
            .services
            .iter()
            .map(|s| {
                let st = rt
                    .and_then(|r| r.services.get(s))
                    .map_or("absent", String::as_str);
                format!("{s}({st})")
            })
            .collect();
        writeln!(
            out,
            "{:<20} {:<15} {:<9} {:<20} {}",
            d.name,
            d.ip,
            status,
            d.hostname,
            services.join(" ")
        )?;
    }
    for r in &state.rejected {
        writeln!(
            out,
            "{:<20} ignored: {}",
            r.name.as_deref().unwrap_or("?"),
            r.reason
        )?;
    }
    Ok(())
}

pub async fn teardown(
    data_dir: &Path,
    args: &TeardownArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let name = args
        .id
        .as_deref()
        .map(|n| DeckyName::new(n).map_err(|e| CliError::usage(format!("--id: {e}"))))
        .transpose()?;
    let deployer = deployer(data_dir, &args.docker).await?;
    let r = deployer
        .teardown(name.as_ref())
        .await
        .map_err(deployer_error)?;
    if args.json {
        return json_report(&ChangeOutput::local("teardown", None, &r), &r, out);
    }
    report(&r, "removed", out)?;
    if name.is_none() {
        writeln!(
            out,
            "All deckies torn down; network {} removed.",
            args.docker.network_name
        )
        .context("write")?;
    }
    Ok(())
}

/// `decnet mutate NAME [--services a,b]` on this host: the decky's containers are recreated
/// with the new services (default: a fresh clash-free draw, never the same set, as the
/// mutator would).
pub async fn mutate(
    data_dir: &Path,
    name: &DeckyName,
    args: &MutateArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let state = state_file::load(&state_path(data_dir))
        .map_err(|e| CliError::Failed(e.into()))?
        .ok_or_else(|| {
            CliError::usage(format!(
                "no active deployment on this host (no state in {}) and no master: deploy \
                 first, or pass --master URL",
                data_dir.display()
            ))
        })?;
    let decky = state.config.decky(name.as_str()).ok_or_else(|| {
        CliError::not_found(format!(
            "decky {:?} is not deployed on this host",
            name.as_str()
        ))
    })?;
    let services = match &args.services {
        Some(s) => {
            validate_services("--services", s, &state.config.custom_services)?;
            s.clone()
        }
        None => pick_services(
            &mut StdRng::from_entropy(),
            &[decky.services.iter().cloned().collect()],
        ),
    };
    if !args.json {
        writeln!(
            out,
            "Mutating {name}: {} -> {}",
            decky.services.join(","),
            services.join(",")
        )
        .context("write")?;
    }
    let deployer = deployer(data_dir, &args.docker).await?;
    let r = deployer
        .mutate(name, &services)
        .await
        .map_err(deployer_error)?;
    if args.json {
        return json_report(&ChangeOutput::local("mutate", None, &r), &r, out);
    }
    report(&r, "mutated", out)
}

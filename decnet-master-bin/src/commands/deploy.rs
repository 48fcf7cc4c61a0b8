//! `decnet deploy`: plan a fleet from flags or the original's INI. With `--dry-run` the plan is
//! printed and nothing is touched; the kernel is asked only for what the flags leave open.

use std::io::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use decnet_core::adapters::state_file;
use decnet_core::fleet::{
    build_from_flags, build_from_specs, parse_fleet_ini, resolve_net, BuildContext, FleetFlags,
    FleetSpec, NetInputs,
};
use decnet_core::model::{
    parse_ipv4, validate_config, DeckyConfig, DecnetConfig, NetworkDriver, Subnet,
};
use decnet_core::traits::{Deployer, HostNetwork};
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::cli::DeployArgs;
use crate::commands::{local, remote};
use crate::error::CliError;

/// What the flags say about the network.
pub(crate) fn flag_inputs(args: &DeployArgs) -> Result<NetInputs, CliError> {
    let driver = match (args.network_driver, args.ipvlan) {
        (Some(d), _) => Some(NetworkDriver::from(d)),
        (None, true) => Some(NetworkDriver::Ipvlan),
        (None, false) => None,
    };
    Ok(NetInputs {
        interface: args.interface.clone(),
        subnet: args
            .subnet
            .as_deref()
            .map(|s| Subnet::parse("--subnet", s))
            .transpose()?,
        gateway: args
            .gateway
            .as_deref()
            .map(|s| parse_ipv4("--gateway", s))
            .transpose()?,
        host_ip: args.host_ip,
        driver,
    })
}

/// Reads and parses `--config`, if given.
fn read_spec(args: &DeployArgs) -> Result<Option<FleetSpec>, CliError> {
    let Some(path) = &args.config else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::usage(format!("--config {}: {e}", path.display())))?;
    parse_fleet_ini(&text)
        .map(Some)
        .map_err(|e| CliError::usage(format!("{}: {e}", path.display())))
}

/// Builds the planned fleet. The kernel is asked only when the flags and INI leave a gap.
/// With `existing` (`--add`), the new deckies join it: its names and addresses are taken, and
/// its network is the default. `current` is the fleet a replacing deploy replaces: deckies of
/// the same name keep their address and hostname (see `BuildContext::current`).
pub async fn plan(
    args: &DeployArgs,
    hostnet: &dyn HostNetwork,
    existing: Option<&DecnetConfig>,
    current: &[DeckyConfig],
) -> Result<DecnetConfig, CliError> {
    let spec = read_spec(args)?;
    if spec.is_none() && args.deckies.is_none() {
        return Err(CliError::usage(
            "--deckies: required when --config is not given",
        ));
    }
    let ini_inputs = spec
        .as_ref()
        .map_or_else(NetInputs::default, |s| NetInputs {
            interface: s.general.interface.clone(),
            subnet: s.general.subnet,
            gateway: s.general.gateway,
            host_ip: None,
            driver: s.general.driver,
        });
    let existing_inputs = existing.map_or_else(NetInputs::default, |c| NetInputs {
        interface: Some(c.interface.clone()),
        subnet: Some(c.subnet),
        gateway: Some(c.gateway),
        host_ip: None,
        driver: Some(c.driver()),
    });
    let inputs = flag_inputs(args)?.or(ini_inputs).or(existing_inputs);
    let facts = if inputs.needs_facts() {
        let f = hostnet.facts(inputs.interface.as_deref()).await;
        tracing::debug!(?f, "host network facts");
        Some(f.map_err(|e| e.to_string()))
    } else {
        None
    };
    let net = resolve_net(&inputs, facts.as_ref())?;

    let ctx = BuildContext {
        mode: args.mode.into(),
        net,
        reserved: existing
            .map(|c| c.deckies.iter().map(|d| d.ip).collect())
            .unwrap_or_default(),
        taken_names: existing
            .map(|c| c.deckies.iter().map(|d| d.name.to_string()).collect())
            .unwrap_or_default(),
        current: current.to_vec(),
        mutate_interval: args.mutate_interval,
        log_file: args.log_file.clone(),
        now_epoch: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0),
    };
    let mut rng = match args.seed {
        Some(seed) => StdRng::seed_from_u64(seed),
        None => StdRng::from_entropy(),
    };
    let config = match &spec {
        Some(spec) => {
            let path = args.config.as_deref().unwrap_or(std::path::Path::new("-"));
            build_from_specs(spec, &ctx, &mut rng)
                .map_err(|e| CliError::usage(format!("{}: {e}", path.display())))?
        }
        None => {
            let flags = FleetFlags {
                count: args.deckies.unwrap_or(0),
                services: args.services.clone(),
                randomize_services: args.randomize_services,
                archetype: args.archetype.clone(),
                distros: args.distro.clone(),
                randomize_distros: args.randomize_distros,
                ip_start: args.ip_start,
            };
            build_from_flags(&flags, &ctx, &mut rng)?
        }
    };
    match existing {
        None => Ok(config),
        Some(old) => {
            let mut merged = old.clone();
            merged.deckies.extend(config.deckies);
            for c in config.custom_services {
                if merged.custom_service(&c.name).is_none() {
                    merged.custom_services.push(c);
                }
            }
            validate_config(&merged).map_err(|e| CliError::usage(e.to_string()))?;
            Ok(merged)
        }
    }
}

/// Prints the plan as a table.
pub fn print_plan(config: &DecnetConfig, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "Planned fleet: {} decky(ies), mode {}, {} on {} (subnet {}, gateway {})",
        config.deckies.len(),
        config.mode,
        config.driver(),
        config.interface,
        config.subnet,
        config.gateway
    )?;
    writeln!(
        out,
        "{:<20} {:<15} {:<28} {:<9} {:<14} {:<20} HOSTNAME",
        "DECKY", "IP", "SERVICES", "DISTRO", "OS", "ARCHETYPE"
    )?;
    for d in &config.deckies {
        writeln!(
            out,
            "{:<20} {:<15} {:<28} {:<9} {:<14} {:<20} {}",
            d.name,
            d.ip,
            d.services.join(","),
            d.distro,
            d.nmap_os,
            d.archetype.as_deref().unwrap_or("-"),
            d.hostname
        )?;
    }
    Ok(())
}

pub async fn run(
    args: &DeployArgs,
    data_dir: &Path,
    hostnet: &dyn HostNetwork,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    if args.json && !args.dry_run {
        return Err(CliError::usage("--json: only meaningful with --dry-run"));
    }
    // A master owns the deckies when there is one: it plans, also a dry run.
    if let Some(client) = remote::master(data_dir, &args.client)? {
        return remote::deploy(&client, args, out).await;
    }
    let (existing, current) = if args.add {
        let state = state_file::load(&local::state_path(data_dir))
            .map_err(|e| CliError::Failed(e.into()))?;
        (state.map(|s| s.config), vec![])
    } else {
        // What a replacing deploy replaces; unreadable, it is replaced all the same.
        match state_file::load(&local::state_path(data_dir)) {
            Ok(state) => (None, state.map(|s| s.config.deckies).unwrap_or_default()),
            Err(e) => {
                tracing::warn!(error = %e, "the current fleet is unreadable: planning afresh");
                (None, vec![])
            }
        }
    };
    let config = plan(args, hostnet, existing.as_ref(), &current).await?;
    if !args.dry_run {
        let deployer = local::deployer(data_dir, &args.docker).await?;
        writeln!(
            out,
            "Deploying {} decky(ies) on {} ({}, subnet {})",
            config.deckies.len(),
            config.interface,
            config.driver(),
            config.subnet
        )
        .context("write")?;
        let report = deployer
            .deploy(&config)
            .await
            .map_err(local::deployer_error)?;
        return local::report(&report, "up", out);
    }
    if args.json {
        let json = serde_json::to_string_pretty(&config).context("serialise the plan")?;
        writeln!(out, "{json}").context("write the plan")?;
    } else {
        print_plan(&config, out).context("write the plan")?;
    }
    Ok(())
}

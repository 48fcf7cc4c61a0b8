//! `decnet deploy`: plan a fleet from flags or the original's INI. With `--dry-run` the plan is
//! printed and nothing is touched; the kernel is asked only for what the flags leave open.

use std::io::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use decnet_core::adapters::state_file;
use decnet_core::fleet::change::needs_host_facts;
use decnet_core::fleet::{
    net_inputs, parse_fleet_ini, plan_fleet_change, FleetChange, FleetChangeRequest, FleetError,
    FleetFacts, FleetFlags, FleetSpec, ModeChoice, NetInputs, NetRequest, Requested,
};
use decnet_core::model::{parse_ipv4, DecnetConfig, FieldError, NetworkDriver, Subnet};
use decnet_core::traits::{Deployer, HostNetwork};
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::cli::DeployArgs;
use crate::commands::output::ChangeOutput;
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

/// Plans the fleet through the library's fleet-change planner. The kernel is asked only when
/// the flags, the INI and the current fleet leave a gap. `existing` is this host's fleet: with
/// `--add` the new deckies join it (its names and addresses are taken); without, it is replaced,
/// and deckies of the same name keep their address and hostname (see `BuildContext::current`).
/// Either way its network is the default for what the flags and INI leave open.
pub async fn plan(
    args: &DeployArgs,
    hostnet: &dyn HostNetwork,
    existing: Option<&DecnetConfig>,
) -> Result<FleetChange, CliError> {
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
    let ini_path = args.config.clone();
    let requested = match spec {
        Some(spec) => Requested::Specs(spec),
        None => Requested::Flags(FleetFlags {
            count: args.deckies.unwrap_or(0),
            services: args.services.clone(),
            randomize_services: args.randomize_services,
            archetype: args.archetype.clone(),
            distros: args.distro.clone(),
            randomize_distros: args.randomize_distros,
            ip_start: args.ip_start,
        }),
    };
    let request = FleetChangeRequest {
        requested,
        net: NetRequest::Inputs(flag_inputs(args)?.or(ini_inputs)),
        replace: !args.add,
        mode: ModeChoice::Fixed(args.mode.into()),
        mutate_interval: args.mutate_interval,
        log_file: args.log_file.clone(),
        host_ip_optional: false,
    };
    let host_net = if needs_host_facts(&request, existing) {
        let inputs = net_inputs(&request, existing);
        let f = hostnet.facts(inputs.interface.as_deref()).await;
        tracing::debug!(?f, "host network facts");
        Some(f.map_err(|e| e.to_string()))
    } else {
        None
    };
    let facts = FleetFacts {
        existing,
        live_hosts: &[],
        reserved: &[],
        local_deployer: true,
        host_net: host_net.as_ref(),
        fleet_limit: None,
        now_epoch: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0),
    };
    let mut rng = match args.seed {
        Some(seed) => StdRng::seed_from_u64(seed),
        None => StdRng::from_entropy(),
    };
    plan_fleet_change(&request, &facts, &mut rng).map_err(|e| match (e, &ini_path) {
        (FleetError::Net(f), _) => CliError::from(f),
        (e, Some(path)) => CliError::usage(format!("{}: {e}", path.display())),
        (e, None) => CliError::from(e),
    })
}

/// A macvlan/ipvlan parent must exist and be up: said by name (exit 2) before Docker is
/// asked, which would only answer "invalid subinterface vlan name". A bridge has no parent.
pub async fn check_parent(
    config: &DecnetConfig,
    hostnet: &dyn HostNetwork,
) -> Result<(), CliError> {
    if config.driver() == NetworkDriver::Bridge {
        return Ok(());
    }
    let name = config.interface.as_str();
    let interfaces = hostnet
        .interfaces()
        .await
        .map_err(|e| CliError::Failed(anyhow::anyhow!("cannot list the interfaces: {e}")))?;
    match interfaces.iter().find(|i| i.name == name) {
        None => {
            Err(FieldError::new("--interface", name, "is not an interface of this host").into())
        }
        Some(i) if !i.up => Err(FieldError::new(
            "--interface",
            name,
            "is down (bring it up with `ip link set dev NAME up`)",
        )
        .into()),
        Some(_) => Ok(()),
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
    // A master owns the deckies when there is one: it plans, also a dry run.
    if let Some(client) = remote::master(data_dir, &args.client)? {
        return remote::deploy(&client, args, out).await;
    }
    let existing = if args.add {
        state_file::load(&local::state_path(data_dir))
            .map_err(|e| CliError::Failed(e.into()))?
            .map(|s| s.config)
    } else {
        // What a replacing deploy replaces; unreadable, it is replaced all the same.
        match state_file::load(&local::state_path(data_dir)) {
            Ok(state) => state.map(|s| s.config),
            Err(e) => {
                tracing::warn!(error = %e, "the current fleet is unreadable: planning afresh");
                None
            }
        }
    };
    let config = plan(args, hostnet, existing.as_ref()).await?.fleet;
    if !args.dry_run {
        check_parent(&config, hostnet).await?;
        let deployer = local::deployer(data_dir, &args.docker).await?;
        if !args.json {
            writeln!(
                out,
                "Deploying {} decky(ies) on {} ({}, subnet {})",
                config.deckies.len(),
                config.interface,
                config.driver(),
                config.subnet
            )
            .context("write")?;
        }
        let report = deployer
            .deploy(&config)
            .await
            .map_err(local::deployer_error)?;
        if args.json {
            let json = ChangeOutput::local("deploy", Some(config.mode.to_string()), &report);
            return local::json_report(&json, &report, out);
        }
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

//! `decnet serve`: runs the master until SIGTERM/SIGINT, then drains.

use decnet_core::orchestrate::pipeline::EventPipeline;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use decnet_core::traits::{Deployer, SystemClock};
use tokio_util::sync::CancellationToken;

use crate::cli::ServeArgs;
use crate::error::CliError;
use crate::master::layout::DataDir;
use crate::master::run::{self, MasterConfig, MasterDeps, MasterError, RunningMaster};
use crate::master::state::MasterSettings;

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// What `--advertise` defaults to: the swarm listener's address, or this machine's name when
/// it listens on every address.
pub fn default_advertise(swarm: SocketAddr) -> String {
    if swarm.ip().is_unspecified() {
        format!("https://{}:{}", hostname(), swarm.port())
    } else {
        format!("https://{swarm}")
    }
}

pub async fn run(data_dir: &Path, args: &ServeArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let serve_limits = args.limits.limits().map_err(CliError::usage)?;
    if args.renewal_overlap >= args.worker_cert_lifetime {
        return Err(CliError::usage(format!(
            "--renewal-overlap {}: must be shorter than --worker-cert-lifetime ({} seconds)",
            args.renewal_overlap, args.worker_cert_lifetime
        )));
    }
    let layout = DataDir::new(data_dir);
    let db = args.db.clone().unwrap_or_else(|| layout.default_db_url());
    let bind = |addr: SocketAddr| async move {
        tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| CliError::Failed(anyhow::anyhow!("bind {addr}: {e}")))
    };
    let api = bind(args.api_bind).await?;
    let swarm = bind(args.swarm_bind).await?;
    let settings = MasterSettings {
        heartbeat_interval: run::interval_secs(args.heartbeat_interval),
        advertise: args
            .advertise
            .clone()
            .unwrap_or_else(|| default_advertise(args.swarm_bind)),
        fleet_limit: args.fleet_limit,
        serve_limits,
        deploy_timeout: Duration::from_secs(args.deploy_timeout),
        mutate_timeout: Duration::from_secs(args.mutate_timeout),
        teardown_timeout: Duration::from_secs(args.teardown_timeout),
        enroll_token_ttl: Duration::from_secs(args.enroll_token_ttl),
        worker_cert_lifetime: Duration::from_secs(args.worker_cert_lifetime),
        renewal_overlap: Duration::from_secs(args.renewal_overlap),
        master_renew_before: (args.master_renew_before > 0)
            .then(|| Duration::from_secs(args.master_renew_before)),
        attack_retention: (args.attack_retention_days > 0)
            .then(|| Duration::from_secs(args.attack_retention_days * 24 * 3600)),
        attack_retention_max: (args.attack_retention_max > 0).then_some(args.attack_retention_max),
        ..MasterSettings::default()
    };
    // Unihost deckies run here through Docker; without Docker the master only drives agents.
    // Their attacker events go through a spool of the master's own into its store.
    let (local, local_events): (Option<Arc<dyn Deployer>>, _) = if args.no_local {
        (None, None)
    } else {
        let pipeline = EventPipeline::open(
            &data_dir.join("attacks").join("master-spool"),
            crate::commands::attacks::LOCAL_HOST,
            decnet_core::model::HostUuid(uuid::Uuid::nil()),
            decnet_core::adapters::spool::DEFAULT_SPOOL_BYTES,
        )
        .map_err(|e| CliError::Failed(e.into()))?;
        let pipeline = Arc::new(pipeline);
        match crate::commands::local::deployer_with(data_dir, &args.docker, pipeline.clone()).await
        {
            Ok(d) => {
                let d = Arc::new(d);
                let events = run::LocalEvents {
                    pipeline,
                    logs: d.clone(),
                };
                (Some(d as Arc<dyn Deployer>), Some(events))
            }
            Err(e) => {
                tracing::warn!(error = %e, "no local deployer: this master only drives workers");
                (None, None)
            }
        }
    };
    let shutdown = CancellationToken::new();
    let running = start_master(
        &layout,
        &db,
        api,
        swarm,
        settings,
        (local, local_events),
        shutdown.clone(),
    )
    .await?;
    writeln!(
        out,
        "decnet master: operator API {} · swarm endpoint {} (advertised as {})",
        running.api_url, running.swarm_url, running.master.settings.advertise
    )
    .context("write")?;
    out.flush().ok();
    wait_for_signal().await;
    shutdown.cancel();
    running.join().await;
    let _ = std::fs::remove_file(layout.master_json());
    Ok(())
}

/// Opens the store at `db` and starts a master on the given listeners (the real network
/// facts, the system clock), then writes `master.json` so clients find it. Shared by `serve`
/// and `demo`.
pub(crate) async fn start_master(
    layout: &DataDir,
    db: &str,
    api: tokio::net::TcpListener,
    swarm: tokio::net::TcpListener,
    settings: MasterSettings,
    (local, local_events): (Option<Arc<dyn Deployer>>, Option<run::LocalEvents>),
    shutdown: CancellationToken,
) -> Result<RunningMaster, CliError> {
    let repo = decnet_store::open(db)
        .await
        .map_err(|e| CliError::usage(format!("--db: {e}")))?;
    let cfg = MasterConfig {
        data_dir: layout.clone(),
        db_url: Some(db.to_string()),
        api_bind: api.local_addr().context("api address")?,
        swarm_bind: swarm.local_addr().context("swarm address")?,
        settings,
    };
    let deps = MasterDeps {
        repo,
        clock: Arc::new(SystemClock),
        local,
        hostnet: Arc::new(decnet_net::NetlinkHostNetwork::new()),
        local_events,
    };
    let running = run::start(&cfg, deps, api, swarm, shutdown)
        .await
        .map_err(|e| match e {
            MasterError::Config(m) => CliError::Usage(m),
            MasterError::Runtime(m) => CliError::Failed(anyhow::anyhow!(m)),
        })?;
    run::write_master_json(layout, &running.api_url, &running.swarm_url)
        .context("write master.json")?;
    Ok(running)
}

/// Ctrl-C or SIGTERM (Ctrl-C only where SIGTERM cannot be watched).
pub(crate) async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

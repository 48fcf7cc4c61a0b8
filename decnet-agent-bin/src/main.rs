//! `decnet-agent`: parses flags, installs logging, wires the Docker deployer, netlink and the
//! reaper into the agent library, runs until SIGTERM/SIGINT, and drains.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use decnet_agent::app::{
    self, AgentConfig, AgentDeps, EventsDeps, DEFAULT_PORT, DEFAULT_STATE_DIR,
};
use decnet_agent::paths::agent_dir;
use decnet_agent::reaper::{
    parse_reaper_paths, run_reap_command, ReapArgs, SystemdRunLauncher, REAP_DELAY,
};
use decnet_agent::server::DEFAULT_BODY_LIMIT;
use decnet_core::adapters::state_file;
use decnet_core::orchestrate::pipeline::EventPipeline;
use decnet_core::traits::SystemClock;
use decnet_docker::{image, DockerDeployer, DockerDeployerConfig};
use decnet_net::NetlinkHostNetwork;
use decnet_web::cli::LimitArgs;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(name = "decnet-agent", version, about = "DECNET-rs worker agent")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start-up: the size of `Serve` does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the agent API over mutual TLS (and heartbeat when enrolled).
    #[command(
        after_help = "Examples:\n  decnet-agent serve\n  decnet-agent serve --interface eth1 --port 8765\n  DECNET_INTERFACE=eth1 decnet-agent serve --agent-dir /etc/decnet/agent"
    )]
    Serve {
        /// The enrolled bundle: ca.crt, worker.crt, worker.key, identity.json (default:
        /// /etc/decnet/agent when it exists, else ~/.decnet/agent).
        #[arg(long, env = "DECNET_AGENT_DIR")]
        agent_dir: Option<PathBuf>,
        /// The address the agent API listens on.
        #[arg(long, env = "DECNET_AGENT_HOST", default_value = "0.0.0.0")]
        host: IpAddr,
        /// The agent API's port (mutual TLS).
        #[arg(long, env = "DECNET_AGENT_PORT", default_value_t = DEFAULT_PORT)]
        port: u16,
        /// Address of the agent's own /metrics (plain HTTP, no token: keep it on loopback
        /// unless the network to your Prometheus is trusted). Default 127.0.0.1:8766; when
        /// the default is taken the agent runs without metrics and says so; a given address
        /// that cannot be bound is an error.
        #[arg(long, env = "DECNET_METRICS_BIND")]
        metrics_bind: Option<SocketAddr>,
        /// Where this worker keeps its state (the deployed shard, the outbox, the event spool).
        #[arg(long, env = "DECNET_STATE_DIR", default_value = DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
        /// Pin the parent interface of this worker's deckies.
        #[arg(long, env = "DECNET_INTERFACE")]
        interface: Option<String>,
        /// Largest request body in bytes.
        #[arg(long, env = "DECNET_BODY_LIMIT", default_value_t = DEFAULT_BODY_LIMIT)]
        body_limit: usize,
        /// Seconds between heartbeats.
        #[arg(long, env = "DECNET_HEARTBEAT_INTERVAL", default_value_t = 30)]
        heartbeat_interval: u64,
        /// Most bytes the attacker-event spool keeps on disk while the master is away; past
        /// it the oldest events are dropped, counted and reported.
        #[arg(long, env = "DECNET_EVENTS_SPOOL_BYTES", default_value_t = decnet_core::adapters::spool::DEFAULT_SPOOL_BYTES)]
        events_spool_bytes: u64,
        /// Milliseconds between attacker-event collection passes.
        #[arg(long, env = "DECNET_EVENTS_INTERVAL_MS", default_value_t = 2000)]
        events_interval_ms: u64,
        /// Renew the worker certificate when fewer than this many seconds of validity are
        /// left (default: a third of its lifetime).
        #[arg(long, env = "DECNET_RENEW_BEFORE")]
        renew_before: Option<u64>,
        /// Seconds between checks of the master certificate's rollover (and one at start-up):
        /// its successor is pinned, then becomes the only pin.
        #[arg(long, value_name = "SECS", env = "DECNET_MASTER_PIN_CHECK",
              default_value_t = decnet_agent::master_pins::DEFAULT_MASTER_PIN_CHECK.as_secs(),
              value_parser = clap::value_parser!(u64).range(1..=86_400))]
        master_pin_check: u64,
        /// Docker network of the deckies.
        #[arg(long, env = "DECNET_NETWORK", default_value = "decnet_lan")]
        network_name: String,
        /// The decky binary (default: next to this executable).
        #[arg(long, env = "DECNET_DECKY_BIN")]
        decky_bin: Option<PathBuf>,
        /// Do not create the host-side macvlan link (this host then cannot reach its deckies).
        #[arg(long, env = "DECNET_NO_HOST_LINK")]
        no_host_link: bool,
        /// Name of the host-side macvlan link.
        #[arg(long, env = "DECNET_HOST_LINK_NAME", default_value = "decnet_macvlan0")]
        host_link_name: String,
        #[command(flatten, next_help_heading = "Listener limits")]
        limits: LimitArgs,
    },
    /// Enroll with a master using a one-time token.
    #[command(
        after_help = "Example (the command `decnet hosts enroll` prints):\n  decnet-agent enroll --master https://master.lan:8770 --token dnet_…"
    )]
    Enroll {
        /// The master's swarm URL (https://HOST:8770).
        #[arg(long)]
        master: String,
        /// The one-time enrollment token (or --token-file, or DECNET_ENROLL_TOKEN).
        #[arg(long, conflicts_with = "token_file")]
        token: Option<String>,
        /// A file holding the one-time enrollment token.
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// Where to write the bundle (default: /etc/decnet/agent as root, else
        /// ~/.decnet/agent).
        #[arg(long, env = "DECNET_AGENT_DIR")]
        agent_dir: Option<PathBuf>,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: decnet_web::manual::Shell,
    },
    /// Write the man pages (decnet-agent.1, decnet-agent-serve.1, …) generated from these
    /// flags.
    Man {
        /// The directory to write the pages into (created when missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// (internal) run a self-destruct plan; launched detached by the agent.
    #[command(hide = true)]
    Reap {
        /// The plan file the agent wrote.
        #[arg(long)]
        plan: PathBuf,
        /// Created once the plan is read: the agent waits for it before it answers.
        #[arg(long)]
        ready: Option<PathBuf>,
        /// What to reap under (tests: a temporary root; then no unit is stopped).
        #[arg(long, default_value = "/")]
        root: PathBuf,
        /// The wait before reaping, so the agent's answer gets out.
        #[arg(long, default_value_t = REAP_DELAY.as_millis() as u64)]
        delay_ms: u64,
    },
}

/// Colour only on a terminal, never with `NO_COLOR` or `TERM=dumb`: the journal and log files
/// get plain text.
fn stderr_decorated() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal()
        && std::env::var("NO_COLOR").map_or(true, |v| v.is_empty())
        && std::env::var("TERM").map_or(true, |t| t != "dumb")
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DECNET_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(stderr_decorated())
        .with_writer(std::io::stderr);
    let json = std::env::var("DECNET_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let _ = if json {
        b.json().try_init()
    } else {
        b.try_init()
    };
}

fn resolve_agent_dir(flag: Option<PathBuf>) -> PathBuf {
    agent_dir(
        flag.as_deref(),
        std::env::var_os("DECNET_AGENT_DIR").as_deref(),
        std::env::var_os("HOME").map(PathBuf::from).as_deref(),
        |p| p.exists(),
    )
}

fn fail(code: u8, msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("decnet-agent: {msg}");
    ExitCode::from(code)
}

fn main() -> ExitCode {
    decnet_tls::install_default_provider();
    let cli = Cli::parse();
    init_logging();
    match &cli.command {
        Command::Completions { shell } => {
            use clap::CommandFactory;
            use std::io::Write as _;
            let script =
                decnet_web::manual::completion_script(*shell, Cli::command(), "decnet-agent");
            // A closed stdout ends the command quietly.
            let _ = std::io::stdout().write_all(&script);
            return ExitCode::SUCCESS;
        }
        Command::Man { out } => {
            use clap::CommandFactory;
            return match decnet_web::manual::write_man_pages(Cli::command(), out) {
                Ok(files) => {
                    use std::io::Write as _;
                    let mut stdout = std::io::stdout().lock();
                    for f in files {
                        if writeln!(stdout, "{}", f.display()).is_err() {
                            break;
                        }
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => fail(2, format!("--out {}: {e}", out.display())),
            };
        }
        _ => {}
    }
    if let Command::Reap {
        plan,
        ready,
        root,
        delay_ms,
    } = &cli.command
    {
        return run_reap_command(&ReapArgs {
            plan: plan.clone(),
            ready: ready.clone(),
            root: root.clone(),
            delay: Duration::from_millis(*delay_ms),
        });
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(1, format!("cannot start the runtime: {e}")),
    };
    rt.block_on(async move {
        match cli.command {
            Command::Enroll {
                master,
                token,
                token_file,
                agent_dir,
            } => {
                let token = match (token, token_file, std::env::var("DECNET_ENROLL_TOKEN").ok()) {
                    (Some(t), _, _) => t,
                    (None, Some(f), _) => match std::fs::read_to_string(&f) {
                        Ok(t) => t,
                        Err(e) => return fail(2, format!("--token-file {}: {e}", f.display())),
                    },
                    (None, None, Some(t)) => t,
                    (None, None, None) => {
                        return fail(2, "give the token with --token, --token-file or DECNET_ENROLL_TOKEN")
                    }
                };
                let dir = resolve_agent_dir(agent_dir);
                match decnet_agent::enroll::enroll(&master, &token, &dir).await {
                    Ok(id) => {
                        use std::io::Write as _;
                        // A closed stdout is no failure: the enrollment is done.
                        let _ = writeln!(
                            std::io::stdout(),
                            "enrolled as host {} with {}; bundle in {} — start it with: decnet-agent serve --agent-dir {}",
                            id.host_uuid,
                            id.master_url,
                            dir.display(),
                            dir.display()
                        );
                        ExitCode::SUCCESS
                    }
                    Err(e) => fail(e.exit_code(), e),
                }
            }
            Command::Serve {
                agent_dir,
                host,
                port,
                metrics_bind,
                state_dir,
                interface,
                body_limit,
                heartbeat_interval,
                events_spool_bytes,
                events_interval_ms,
                renew_before,
                master_pin_check,
                network_name,
                decky_bin,
                no_host_link,
                host_link_name,
                limits,
            } => {
                let limits = match limits.limits() {
                    Ok(l) => l,
                    Err(e) => return fail(2, e),
                };
                let dir = resolve_agent_dir(agent_dir);
                let identity = match app::load_credentials(&dir) {
                    Ok((_, id)) => id,
                    Err(e) => return fail(e.exit_code(), e),
                };
                let reaper_paths = match parse_reaper_paths(
                    &std::env::var("DECNET_REAPER_PATHS").unwrap_or_default(),
                ) {
                    Ok(p) => p,
                    Err(e) => return fail(2, format!("DECNET_REAPER_PATHS: {e}")),
                };
                let binary = match image::find_decky_binary(decky_bin.as_deref()) {
                    Ok(b) => b,
                    Err(e) => return fail(2, e),
                };
                let host_label = identity
                    .as_ref()
                    .map_or_else(|| "agent".to_string(), |i| i.host_uuid.to_string());
                let mut dcfg = DockerDeployerConfig::new(host_label, state_file::state_path(&state_dir), binary);
                dcfg.network = network_name;
                dcfg.host_link = !no_host_link;
                dcfg.host_link_name = host_link_name;
                let hostnet = Arc::new(NetlinkHostNetwork::new());
                // Enrolled: attacker events are collected into a spool and shipped.
                let pipeline = match &identity {
                    Some(id) => match EventPipeline::open(
                        &state_dir.join("events"),
                        &id.host_uuid.to_string(),
                        id.host_uuid,
                        events_spool_bytes,
                    ) {
                        Ok(p) => Some(Arc::new(p)),
                        Err(e) => return fail(1, e),
                    },
                    None => None,
                };
                let deployer = match DockerDeployer::connect(dcfg, hostnet.clone()).await {
                    Ok(d) => match &pipeline {
                        Some(p) => Arc::new(d.with_output_collector(p.clone())),
                        None => Arc::new(d),
                    },
                    Err(e) => return fail(1, e),
                };
                let events_pipeline = pipeline.clone();
                let events = pipeline.map(|pipeline| EventsDeps {
                    pipeline,
                    logs: deployer.clone(),
                    transport: None,
                    interval: Duration::from_millis(events_interval_ms.max(100)),
                });
                let launcher = match SystemdRunLauncher::new(state_dir.clone()) {
                    Ok(l) => Arc::new(l),
                    Err(e) => return fail(1, e),
                };
                tracing::info!(method = ?launcher.method(), "self-destruct reaper launch method");
                let cfg = AgentConfig {
                    agent_dir: dir,
                    state_dir,
                    interface,
                    body_limit,
                    heartbeat_interval: Duration::from_secs(heartbeat_interval.max(1)),
                    reaper_paths,
                    limits,
                    renew_before: renew_before.map(Duration::from_secs),
                    master_pin_check: Duration::from_secs(master_pin_check),
                };
                let listener = match tokio::net::TcpListener::bind(SocketAddr::new(host, port)).await {
                    Ok(l) => l,
                    Err(e) => return fail(1, format!("bind {host}:{port}: {e}")),
                };
                let metrics_listener = match metrics_bind {
                    Some(addr) => match tokio::net::TcpListener::bind(addr).await {
                        Ok(l) => {
                            if !decnet_agent::metrics::is_loopback(&addr) {
                                tracing::warn!(%addr, "the metrics listener is not on loopback (plain HTTP, no token)");
                            }
                            Some(l)
                        }
                        Err(e) => return fail(1, format!("--metrics-bind {addr}: {e}")),
                    },
                    None => match tokio::net::TcpListener::bind(decnet_agent::metrics::DEFAULT_METRICS_BIND).await {
                        Ok(l) => Some(l),
                        Err(e) => {
                            tracing::warn!(addr = decnet_agent::metrics::DEFAULT_METRICS_BIND, error = %e, "metrics listener not started (pass --metrics-bind)");
                            None
                        }
                    },
                };
                let metrics_addr = metrics_listener.as_ref().and_then(|l| l.local_addr().ok());
                let shutdown = CancellationToken::new();
                let deps = AgentDeps {
                    deployer,
                    hostnet,
                    launcher,
                    clock: Arc::new(SystemClock),
                    transport: None,
                    events,
                };
                let agent = match app::start(&cfg, deps, listener, shutdown.clone()).await {
                    Ok(a) => a,
                    Err(e) => return fail(e.exit_code(), e),
                };
                let metrics = metrics_listener.map(|l| {
                    decnet_agent::metrics::spawn(
                        l,
                        decnet_agent::metrics::AgentMetrics {
                            queue: agent.queue.clone(),
                            outbox: agent.outbox.clone(),
                            events: events_pipeline,
                            enrolled: agent.identity.is_some(),
                        },
                        shutdown.clone(),
                    )
                });
                match metrics_addr {
                    Some(m) => eprintln!("decnet-agent: serving on {} (metrics on http://{m}/metrics)", agent.addr),
                    None => eprintln!("decnet-agent: serving on {}", agent.addr),
                }
                wait_for_signal().await;
                shutdown.cancel();
                let _ = agent.server.await;
                if let Some(hb) = agent.heartbeat {
                    let _ = hb.await;
                }
                agent.queue.stopped().await;
                if let Some(m) = metrics {
                    let _ = m.await;
                }
                ExitCode::SUCCESS
            }
            Command::Reap { .. } | Command::Completions { .. } | Command::Man { .. } => {
                ExitCode::SUCCESS
            }
        }
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;
    use decnet_web::manual;

    use super::Cli;

    /// Every flag of every command, hidden ones too, says what it does; every flag of
    /// `decnet-agent serve` can be set from the unit's EnvironmentFile.
    #[test]
    fn every_arg_has_help_and_serve_flags_have_env_vars() {
        Cli::command().debug_assert();
        assert_eq!(
            manual::args_without_help(Cli::command()),
            Vec::<String>::new()
        );
        assert_eq!(
            manual::flags_without_env(Cli::command(), &["serve"]),
            Vec::<String>::new()
        );
    }
}

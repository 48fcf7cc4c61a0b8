//! `decnet demo`, the default form: the whole system on one machine, on a lab LAN.
//!
//! 1. A lab LAN (see [`super::demo`]); the worker gets an address on it, as a real worker has
//!    on its LAN, so the master's plan is relocalized onto it unchanged.
//! 2. A master in this process: `decnet init` into a private data dir (CA, master certificate,
//!    SQLite store, admin token), then the operator API and the swarm endpoint on loopback.
//! 3. A real `decnet-agent` process, enrolled by its one command with a one-time token from the
//!    operator API (mutual TLS, the master pinned by fingerprint), serving on loopback with the
//!    lab's parent link as its interface.
//! 4. The deploy goes through the operator API (202 with lifecycle ids) and is followed until
//!    every row is terminal; the master's view of the fleet is printed.
//! 5. The attacker probes the deckies (ports, greetings, TTL, MAC vendor), then tries an HTTP
//!    and an SSH login; the demo prints what the master recorded of it per decky (the worker
//!    collected the deckies' attacker events and shipped them to `POST /swarm/events`).
//! 6. Unless `--keep`: every decky is deleted through the master (rows followed to terminal),
//!    then the agent is stopped, whatever it left (network, containers) is removed by label,
//!    the master stops and the lab and the data dirs are removed. With `--keep` all of it stays
//!    up until Ctrl-C, then the same clean-up runs.
//!
//! Clean-up also runs after a failure at any step, so a failed demo leaves nothing behind.

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use decnet_core::fleet::{DeckySpec, GeneralSpec};
use decnet_core::model::wire::{
    EnrollTokenAnswer, EnrollTokenRequest, FleetDeployRequest, LifecycleIdsAnswer,
};
use decnet_core::model::Mode;
use decnet_core::traits::Deployer;
use decnet_docker::{Docker, DockerDeployer, DockerDeployerConfig};
use decnet_net::lab::LabLan;
use decnet_net::NetlinkHostNetwork;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::cli::{DemoArgs, InitArgs, DEFAULT_AGENT_ENV, DEFAULT_SYSTEMD_DIR};
use crate::client::{answer, MasterClient, MasterUrl, TokenSource, UrlSource};
use crate::commands::demo::{create_lab, demo_deckies, probe_and_print, Target};
use crate::commands::remote::{self, Accepted, DeckyRow};
use crate::commands::{init, wait};
use crate::error::CliError;
use crate::master::layout::DataDir;
use crate::master::run::RunningMaster;
use crate::master::state::MasterSettings;

/// The agent binary's file name, looked for next to this executable.
const AGENT_BINARY_NAME: &str = "decnet-agent";
/// The demo worker's host name.
const WORKER: &str = "worker-1";
/// The worker's (and the master's) heartbeat interval: short, so the demo is quick.
const HEARTBEAT_S: u64 = 1;
/// How long the worker has to send its first heartbeat.
const LIVE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a deploy or a teardown may take before the demo gives up (building the image
/// included).
const OPERATION_TIMEOUT: Duration = Duration::from_secs(300);

fn failed(e: impl std::fmt::Display) -> CliError {
    CliError::Failed(anyhow::anyhow!("{e}"))
}

/// `decnet-agent`: `explicit`, else next to this executable (or its `deps/` parent in tests).
fn find_agent_binary(explicit: Option<&Path>) -> Result<PathBuf, CliError> {
    decnet_docker::image::find_sibling_binary(AGENT_BINARY_NAME, explicit).map_err(|tried| {
        let tried: Vec<String> = tried.iter().map(|p| p.display().to_string()).collect();
        CliError::usage(format!(
            "demo: the worker agent binary `{AGENT_BINARY_NAME}` was not found (tried {}): run \
             `cargo build --release`, pass --agent-bin FILE, or run the first form with --unihost",
            if tried.is_empty() {
                "nothing".to_string()
            } else {
                tried.join(", ")
            }
        ))
    })
}

/// What the demo started, so clean-up can undo exactly that.
#[derive(Default)]
struct Started {
    master: Option<(RunningMaster, CancellationToken)>,
    client: Option<MasterClient>,
    agent: Option<tokio::process::Child>,
    host_uuid: Option<String>,
    deckies: Vec<String>,
    /// The first decky's address, for `--keep`'s hint.
    first_ip: Option<Ipv4Addr>,
}

/// Where the demo keeps its files.
struct Paths {
    work: PathBuf,
    master: PathBuf,
    agent: PathBuf,
    agent_state: PathBuf,
    agent_log: PathBuf,
}

impl Paths {
    fn new(tag: &str) -> Self {
        let work = std::env::temp_dir().join(format!("decnet-{tag}"));
        Self {
            master: work.join("master"),
            agent: work.join("agent"),
            agent_state: work.join("agent-state"),
            agent_log: work.join("agent.log"),
            work,
        }
    }
}

pub async fn run(
    args: &DemoArgs,
    docker: Docker,
    decky_bin: PathBuf,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let agent_bin = find_agent_binary(args.agent_bin.as_deref())?;
    let (tag, lan) = create_lab(out).await?;
    let paths = Paths::new(&tag);
    let network = format!("decnet_{tag}");
    let mut started = Started::default();
    // Ctrl-C or SIGTERM during the run cleans up like a failure would.
    let mut result = tokio::select! {
        r = drive(&mut started, &lan, &paths, &network, &decky_bin, &agent_bin, out) => r,
        _ = super::serve::wait_for_signal() => Err(interrupted()),
    };
    if result.is_ok() && args.keep {
        result = keep(&lan, &paths, &started, out).await;
    }
    let cleaned = clean_up(
        &mut started,
        lan,
        &paths,
        &network,
        docker,
        decky_bin,
        result.is_ok(),
        out,
    )
    .await;
    result?;
    cleaned
}

/// Steps 1–5; what was started is recorded in `started` as it happens.
async fn drive(
    started: &mut Started,
    lan: &LabLan,
    paths: &Paths,
    network: &str,
    decky_bin: &Path,
    agent_bin: &Path,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    create_private_dir(&paths.work)?;
    // The worker's own address on the LAN (the last host address; the attacker is the first).
    let worker_ip = lan
        .subnet
        .hosts()
        .last()
        .ok_or_else(|| failed("the lab subnet has no host addresses"))?;
    lan.add_host_address(worker_ip).await.map_err(failed)?;

    // The master.
    let layout = DataDir::new(&paths.master);
    let init_args = InitArgs {
        db: None,
        systemd: false,
        systemd_dir: DEFAULT_SYSTEMD_DIR.into(),
        agent_env: DEFAULT_AGENT_ENV.into(),
        local_deckies: false,
        force_token: false,
    };
    init::run(&paths.master, &init_args, &mut std::io::sink()).await?;
    let (master, shutdown) = start_master(&layout).await?;
    writeln!(
        out,
        "Master: operator API {} · swarm endpoint {} (CA, certificate, store and admin token in {})",
        master.api_url,
        master.swarm_url,
        paths.master.display()
    )
    .context("write")?;
    let client = client_for(&layout, &master.api_url)?;
    let swarm_url = master.swarm_url.clone();
    started.master = Some((master, shutdown));

    // The worker: a one-time token, the agent's one enroll command, then `serve`.
    let port = free_port()?;
    let t = client
        .post(
            "/api/v1/swarm/enroll-tokens",
            &EnrollTokenRequest {
                name: WORKER.into(),
                address: format!("127.0.0.1:{port}"),
            },
        )
        .await?;
    let token = answer::<EnrollTokenAnswer>(t, "POST /api/v1/swarm/enroll-tokens")?.token;
    let enrolled = tokio::process::Command::new(agent_bin)
        .args(["enroll", "--master", &swarm_url, "--token", &token])
        .arg("--agent-dir")
        .arg(&paths.agent)
        .env("DECNET_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("run {}", agent_bin.display()))?;
    if !enrolled.status.success() {
        return Err(failed(format!(
            "`decnet-agent enroll` failed: {}",
            String::from_utf8_lossy(&enrolled.stderr).trim()
        )));
    }
    let log = std::fs::File::create(&paths.agent_log)
        .with_context(|| format!("create {}", paths.agent_log.display()))?;
    let log2 = log.try_clone().context("agent log")?;
    let agent = tokio::process::Command::new(agent_bin)
        .arg("serve")
        .arg("--agent-dir")
        .arg(&paths.agent)
        .arg("--state-dir")
        .arg(&paths.agent_state)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--heartbeat-interval", &HEARTBEAT_S.to_string()])
        .args(["--interface", &lan.parent, "--network-name", network])
        .arg("--no-host-link")
        .env("DECNET_LOG", "warn")
        .env("DECNET_DECKY_BIN", decky_bin)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("start {}", agent_bin.display()))?;
    started.agent = Some(agent);
    let host_uuid = wait_until_live(&client, started, paths).await?;
    writeln!(
        out,
        "Worker {WORKER}: decnet-agent enrolled with a one-time token (mutual TLS, master pinned \
         by fingerprint), serving on 127.0.0.1:{port}, LAN address {worker_ip} on {}, host {host_uuid}",
        lan.parent
    )
    .context("write")?;
    started.host_uuid = Some(host_uuid);

    // The deploy, through the operator API.
    let deckies = demo_deckies(&lan.tag);
    let body = FleetDeployRequest {
        general: Some(GeneralSpec {
            subnet: Some(lan.subnet.into()),
            gateway: Some(lan.gateway),
            interface: Some(lan.parent.clone()),
            ..GeneralSpec::default()
        }),
        deckies: Some(
            deckies
                .iter()
                .map(|(name, archetype)| DeckySpec {
                    name: name.clone(),
                    archetype: Some(archetype.to_string()),
                    ..DeckySpec::default()
                })
                .collect(),
        ),
        ..FleetDeployRequest::default()
    };
    let ans: Accepted = answer(
        client.post("/api/v1/deckies/deploy", &body).await?,
        "POST /api/v1/deckies/deploy",
    )?;
    started.deckies = deckies.iter().map(|(n, _)| n.clone()).collect();
    writeln!(
        out,
        "Deploying {} deckies through the master (mode {}; the worker builds the decky image on \
         first use)…",
        deckies.len(),
        ans.mode
    )
    .context("write")?;
    if ans.mode != Mode::Swarm {
        return Err(failed(format!(
            "the master chose mode {:?}, not swarm: the worker is not live",
            ans.mode
        )));
    }
    wait::follow(&client, &ans.lifecycle_ids, OPERATION_TIMEOUT, tty(), out).await?;

    let rows: Vec<DeckyRow> = remote::list(&client).await?;
    writeln!(out, "\nThe fleet, as the master sees it:").context("write")?;
    out.write_all(remote::render_deckies(&rows).as_bytes())
        .context("write")?;
    let targets = rows
        .iter()
        .map(|r| Target {
            name: r.name.clone(),
            ip: r.ip,
            services: r.services.clone(),
        })
        .collect::<Vec<_>>();
    started.first_ip = targets.first().map(|t| t.ip);
    probe_and_print(lan, targets.clone(), out).await?;
    let tried = super::demo_detect::attack_logins(lan, &targets, out).await?;
    let attacker = lan.attacker_ip;
    let events = super::demo_detect::wait_recorded(&tried, || async {
        let body = client
            .get(&format!("/api/v1/attacks?src={attacker}&limit=1000"))
            .await?;
        let page: decnet_core::model::wire::AttackPage = serde_json::from_value(body)
            .map_err(|e| failed(format!("GET /api/v1/attacks: {e}")))?;
        Ok(page.events)
    })
    .await?;
    writeln!(
        out,
        "\nWhat DECNET recorded of the attacker (the worker shipped it; the master's GET /api/v1/attacks):"
    )
    .context("write")?;
    out.write_all(super::demo_detect::render(&events, attacker).as_bytes())
        .context("write")?;
    started.client = Some(client);
    Ok(())
}

fn tty() -> bool {
    crate::logging::stdout_decorated()
}

fn create_private_dir(dir: &Path) -> Result<(), CliError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("create {}", dir.display()))?;
    Ok(())
}

/// A free loopback port for the agent (bound, read and released).
fn free_port() -> Result<u16, CliError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("find a free port")?;
    Ok(l.local_addr().context("find a free port")?.port())
}

async fn start_master(layout: &DataDir) -> Result<(RunningMaster, CancellationToken), CliError> {
    let bind = || async {
        tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("bind 127.0.0.1")
    };
    let (api, swarm) = (bind().await?, bind().await?);
    let settings = MasterSettings {
        heartbeat_interval: Duration::from_secs(HEARTBEAT_S),
        advertise: String::new(),
        ..MasterSettings::default()
    };
    let shutdown = CancellationToken::new();
    // Swarm only (no local deployer): the deckies go to the worker, never to this process.
    // `master.json` lets `decnet status --data-dir <master dir>` find it (with --keep).
    let running = super::serve::start_master(
        layout,
        &layout.default_db_url(),
        api,
        swarm,
        settings,
        (None, None),
        shutdown.clone(),
    )
    .await?;
    Ok((running, shutdown))
}

fn client_for(layout: &DataDir, api_url: &str) -> Result<MasterClient, CliError> {
    let path = layout.admin_token();
    let token = std::fs::read_to_string(&path)
        .with_context(|| format!("read {}", path.display()))?
        .trim()
        .to_string();
    let url = api_url
        .parse()
        .map_err(|e| failed(format!("master URL {api_url}: {e}")))?;
    MasterClient::new(
        MasterUrl {
            url,
            source: UrlSource::MasterJson(layout.master_json()),
        },
        token,
        TokenSource::File(path),
        None,
    )
}

/// Waits for the worker's first heartbeat; its host uuid. Fails early if the agent exits.
async fn wait_until_live(
    client: &MasterClient,
    started: &mut Started,
    paths: &Paths,
) -> Result<String, CliError> {
    let deadline = tokio::time::Instant::now() + LIVE_TIMEOUT;
    loop {
        let hosts: Vec<Value> = answer(
            client.get("/api/v1/swarm/hosts").await?,
            "GET /api/v1/swarm/hosts",
        )?;
        if let Some(h) = hosts
            .iter()
            .find(|h| h["name"] == WORKER && h["status"] == "active")
        {
            return h["uuid"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| failed("the master lists the worker without a uuid"));
        }
        if let Some(agent) = started.agent.as_mut() {
            if let Ok(Some(status)) = agent.try_wait() {
                return Err(failed(format!(
                    "decnet-agent exited ({status}) before its first heartbeat: {}",
                    log_tail(&paths.agent_log)
                )));
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(failed(format!(
                "the worker sent no heartbeat within {} s: {}",
                LIVE_TIMEOUT.as_secs(),
                log_tail(&paths.agent_log)
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The last lines of the agent's log, for an error message.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(5)..].join(" | ");
    if tail.is_empty() {
        format!("(its log {} is empty)", path.display())
    } else {
        format!("its log ends: {tail}")
    }
}

/// `--keep`: says how to look around, then waits for Ctrl-C or SIGTERM.
async fn keep(
    lan: &LabLan,
    paths: &Paths,
    started: &Started,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let ip = started
        .first_ip
        .map_or_else(|| "<ip>".to_string(), |a| a.to_string());
    writeln!(
        out,
        "\nKept running: the master, the worker and the deckies stay up until Ctrl-C (or \
         SIGTERM), then everything is removed. Meanwhile:\n  decnet status --data-dir {}\n  \
         decnet mutate web --wait --data-dir {}\n  ip netns exec {} nc {ip} 22\nThe worker's log: {}",
        paths.master.display(),
        paths.master.display(),
        lan.netns,
        paths.agent_log.display()
    )
    .context("write")?;
    out.flush().ok();
    super::serve::wait_for_signal().await;
    Ok(())
}

/// The error of a demo stopped by Ctrl-C or SIGTERM (after it cleaned up).
pub(crate) fn interrupted() -> CliError {
    failed("interrupted: everything the demo had started was removed")
}

/// Step 6. Every part is attempted even when an earlier one fails; the first error is kept.
#[allow(clippy::too_many_arguments)]
async fn clean_up(
    started: &mut Started,
    lan: LabLan,
    paths: &Paths,
    network: &str,
    docker: Docker,
    decky_bin: PathBuf,
    deployed: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let mut first: Option<CliError> = None;
    let mut note = |r: Result<(), CliError>| {
        if let Err(e) = r {
            tracing::warn!(error = %e, "demo clean-up");
            first.get_or_insert(e);
        }
    };
    writeln!(out, "\nCleaning up…").context("write")?;
    // Through the master first, so the rows of a teardown are seen to close as well.
    let mut how = "by their labels";
    if deployed {
        if let Some(client) = started.client.as_ref() {
            note(delete_through_master(client, &started.deckies, out).await);
            how = "through the master";
        }
    }
    if let Some(mut agent) = started.agent.take() {
        let _ = agent.start_kill();
        let _ = agent.wait().await;
    }
    // Whatever the agent left (all of it after a failure; the network after a clean run) is
    // removed by its host label, the way the agent's own deployer would.
    match started.host_uuid.as_ref() {
        Some(host) => {
            let mut cfg = DockerDeployerConfig::new(
                host.clone(),
                decnet_core::adapters::state_file::state_path(&paths.agent_state),
                decky_bin,
            );
            cfg.network = network.to_string();
            cfg.host_link = false;
            let d = DockerDeployer::with_docker(docker, cfg, Arc::new(NetlinkHostNetwork::new()));
            note(d.teardown(None).await.map(|_| ()).map_err(failed));
            if !deployed {
                // A create the killed agent had asked for may still complete in the daemon:
                // look once more.
                tokio::time::sleep(Duration::from_millis(500)).await;
                note(d.teardown(None).await.map(|_| ()).map_err(failed));
            }
        }
        None => note(
            decnet_docker::network::remove(&docker, network)
                .await
                .map_err(failed),
        ),
    }
    if let Some((master, shutdown)) = started.master.take() {
        shutdown.cancel();
        master.join().await;
    }
    note(lan.destroy().await.map_err(failed));
    if let Err(e) = std::fs::remove_dir_all(&paths.work) {
        if e.kind() != std::io::ErrorKind::NotFound {
            note(Err(failed(format!("remove {}: {e}", paths.work.display()))));
        }
    }
    match first {
        Some(e) => Err(e),
        None => {
            writeln!(
                out,
                "Removed {} deckies ({how}), the worker agent, the master, their network and the \
                 lab.",
                started.deckies.len()
            )
            .context("write")?;
            Ok(())
        }
    }
}

async fn delete_through_master(
    client: &MasterClient,
    deckies: &[String],
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let mut ids = Vec::new();
    for name in deckies {
        let ans: LifecycleIdsAnswer = answer(
            client.delete(&format!("/api/v1/deckies/{name}")).await?,
            "DELETE /api/v1/deckies/{name}",
        )?;
        ids.extend(ans.lifecycle_ids);
    }
    writeln!(out, "Deleting the deckies through the master…").context("write")?;
    wait::follow(client, &ids, OPERATION_TIMEOUT, tty(), out).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_agent_binary_is_a_usage_error_naming_the_way_out() {
        let e = find_agent_binary(Some(Path::new("/nonexistent/decnet-agent"))).unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, CliError::Usage(_)), "{text}");
        assert!(text.contains("/nonexistent/decnet-agent"), "{text}");
        assert!(text.contains("--unihost"), "{text}");
    }

    #[test]
    fn an_explicit_agent_binary_is_used() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("agent");
        std::fs::write(&bin, b"").unwrap();
        assert_eq!(find_agent_binary(Some(&bin)).unwrap(), bin);
    }
}

//! `decnet demo`: an isolated lab on this machine. A veth pair is the LAN (its far end in an
//! "attacker" network namespace), three deckies of different archetypes are deployed on it,
//! and the attacker probes them: open ports, greetings, TTL, MAC. Everything is removed
//! afterwards unless `--keep`.
//!
//! The default form runs the whole system (see [`super::demo_swarm`]): a master, a real
//! `decnet-agent` enrolled with it, and the deploy going through the operator API. `--unihost`
//! is the first form: the Docker deployer in this process, no master, no agent.

use std::io::Write;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use decnet_core::fleet::{
    plan_fleet_change, DeckySpec, FleetChangeRequest, FleetFacts, FleetSpec, ModeChoice, NetPlan,
    NetRequest, Requested,
};
use decnet_core::model::{DecnetConfig, Mode, NetworkDriver, Subnet};
use decnet_core::registry::{self, format_mac, Protocol};
use decnet_core::traits::Deployer;
use decnet_docker::{image, DockerDeployer, DockerDeployerConfig};
use decnet_net::lab::{self, LabLan};
use decnet_net::NetlinkHostNetwork;
use ipnet::Ipv4Net;
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::cli::DemoArgs;
use crate::error::CliError;

const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// What the attacker sends first, for protocols that wait for the client: what a scanner's
/// first probe would be.
fn opener(slug: &str) -> Option<Vec<u8>> {
    match slug {
        "http" | "https" | "docker_api" | "k8s" | "elasticsearch" => {
            Some(b"GET / HTTP/1.0\r\n\r\n".to_vec())
        }
        "redis" => Some(b"PING\r\n".to_vec()),
        "smb" => Some(smb1_negotiate()),
        "rdp" => Some(RDP_CONNECTION_REQUEST.to_vec()),
        "postgres" => Some(postgres_startup("postgres", "postgres")),
        _ => None,
    }
}

/// An SMB1 NEGOTIATE (over direct TCP) offering NT LM 0.12 and SMB 2.002/2.???, as nmap and
/// smbclient open with.
fn smb1_negotiate() -> Vec<u8> {
    let mut smb = vec![0xff, b'S', b'M', b'B', 0x72, 0, 0, 0, 0, 0x18, 0x53, 0xc8];
    smb.extend_from_slice(&[0; 12]); // PID high, signature, reserved
    smb.extend_from_slice(&[0xff, 0xff, 0xfe, 0xff, 0, 0, 0, 0]); // TID, PID, UID, MID
    let mut dialects = Vec::new();
    for d in ["NT LM 0.12", "SMB 2.002", "SMB 2.???"] {
        dialects.push(0x02);
        dialects.extend_from_slice(d.as_bytes());
        dialects.push(0);
    }
    smb.push(0); // word count
    smb.extend_from_slice(&(dialects.len() as u16).to_le_bytes());
    smb.extend_from_slice(&dialects);
    let mut out = vec![0, 0];
    out.extend_from_slice(&(smb.len() as u16).to_be_bytes());
    out.extend_from_slice(&smb);
    out
}

/// An X.224 Connection Request with a `mstshash` cookie and an RDP_NEG_REQ for TLS and
/// CredSSP, as mstsc and nmap send.
const RDP_CONNECTION_REQUEST: &[u8] =
    b"\x03\x00\x00\x2b\x26\xe0\x00\x00\x00\x00\x00Cookie: mstshash=admin\r\n\x01\x00\x08\x00\x03\x00\x00\x00";

/// A PostgreSQL v3 StartupMessage for `user` on `database`.
fn postgres_startup(user: &str, database: &str) -> Vec<u8> {
    let mut body = 196_608u32.to_be_bytes().to_vec(); // protocol 3.0
    for (k, v) in [("user", user), ("database", database)] {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut out = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

/// What a binary answer says, for the protocols the demo opens: SMB2, RDP, PostgreSQL.
fn binary_summary(slug: &str, b: &[u8]) -> Option<String> {
    match slug {
        // NetBIOS length, then an SMB2 header (64 bytes) and the NEGOTIATE response body.
        "smb" if b.len() >= 74 && &b[4..8] == b"\xfeSMB" => {
            let dialect = u16::from_le_bytes([b[72], b[73]]);
            Some(format!("SMB2 negotiate response, dialect 0x{dialect:04x}"))
        }
        // TPKT + X.224 Connection Confirm, then RDP_NEG_RSP (type 2) with the chosen protocol.
        "rdp" if b.len() >= 19 && b[0] == 3 && b[5] == 0xd0 => {
            let chosen = match (b[11], u32::from_le_bytes([b[15], b[16], b[17], b[18]])) {
                (2, 0) => "standard RDP security",
                (2, 1) => "TLS",
                (2, 2 | 3 | 8 | 10) => "CredSSP (NLA)",
                (3, _) => "negotiation failure",
                _ => "an unknown protocol",
            };
            Some(format!("RDP connection confirm: {chosen}"))
        }
        // AuthenticationRequest: 'R', length, the method.
        "postgres" if b.len() >= 9 && b[0] == b'R' => {
            let method = match u32::from_be_bytes([b[5], b[6], b[7], b[8]]) {
                3 => "cleartext password",
                5 => "md5 password",
                10 => "SASL (SCRAM-SHA-256)",
                _ => "authentication",
            };
            Some(format!("PostgreSQL asks for a {method}"))
        }
        _ => None,
    }
}

/// The first line of a greeting, printable.
fn summary(slug: &str, bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "(open, silent)".into();
    }
    if let Some(s) = binary_summary(slug, bytes) {
        return s;
    }
    // MySQL: 3-byte length, sequence 0, protocol 10, NUL-terminated server version.
    if bytes.len() > 5 && bytes[3] == 0 && bytes[4] == 0x0a {
        let version: String = bytes[5..]
            .iter()
            .take_while(|b| **b != 0)
            .map(|b| *b as char)
            .collect();
        return format!("MySQL handshake v10, server {version}");
    }
    let text: String = String::from_utf8_lossy(bytes)
        .lines()
        .next()
        .unwrap_or_default()
        .chars()
        .map(|c| if c.is_control() { '.' } else { c })
        .take(60)
        .collect();
    if text.trim().is_empty() {
        format!("({} bytes)", bytes.len())
    } else {
        text
    }
}

fn demo_fleet(lan: &LabLan) -> Result<DecnetConfig, CliError> {
    let spec = FleetSpec {
        deckies: demo_deckies(&lan.tag)
            .into_iter()
            .map(|(name, archetype)| DeckySpec {
                name,
                archetype: Some(archetype.to_string()),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let request = FleetChangeRequest {
        requested: Requested::Specs(spec),
        net: NetRequest::Resolved(NetPlan {
            interface: lan.parent.clone(),
            subnet: Subnet::new(lan.subnet),
            gateway: lan.gateway,
            host_ip: None,
            driver: NetworkDriver::Macvlan,
        }),
        replace: true,
        mode: ModeChoice::Fixed(Mode::Unihost),
        mutate_interval: Some(0),
        log_file: None,
        host_ip_optional: false,
    };
    let facts = FleetFacts {
        existing: None,
        live_hosts: &[],
        reserved: &[lan.attacker_ip],
        local_deployer: true,
        host_net: None,
        fleet_limit: None,
        now_epoch: 0.0,
    };
    plan_fleet_change(&request, &facts, &mut StdRng::from_entropy())
        .map(|c| c.fleet)
        .map_err(CliError::from)
}

/// A decky the attacker probes.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub name: String,
    pub ip: Ipv4Addr,
    pub services: Vec<String>,
}

impl Target {
    fn of(config: &DecnetConfig) -> Vec<Target> {
        config
            .deckies
            .iter()
            .map(|d| Target {
                name: d.name.to_string(),
                ip: d.ip,
                services: d.services.clone(),
            })
            .collect()
    }
}

fn probe(lan: &LabLan, targets: &[Target], out: &mut dyn Write) -> anyhow::Result<usize> {
    let mut answered = 0;
    writeln!(out, "\nWhat the attacker ({}) sees:", lan.attacker_ip)?;
    writeln!(
        out,
        "{:<10} {:<14} {:<5} {:<18} {:<24} {:<14} GREETING",
        "DECKY", "IP", "TTL", "MAC", "VENDOR", "PORT"
    )?;
    for d in targets {
        let mut lines = Vec::new();
        for svc in &d.services {
            for p in registry::service(svc).map(|s| s.ports).unwrap_or_default() {
                if p.protocol != Protocol::Tcp {
                    continue;
                }
                let r = lab::probe_tcp(&lan.netns, d.ip, p.port, opener(svc), PROBE_TIMEOUT)?;
                let seen = if r.open {
                    answered += 1;
                    summary(svc, &r.greeting)
                } else {
                    "closed".into()
                };
                lines.push(format!("{:<14} {seen}", format!("{}/{svc}", p.port)));
            }
        }
        let ttl = lab::probe_ttl(&lan.netns, d.ip, PROBE_TIMEOUT)?;
        let mac = lab::neighbour_mac(&lan.netns, d.ip)?;
        let vendor = mac
            .and_then(|m| {
                registry::oui::ouis()
                    .iter()
                    .find(|o| o.prefix == [m[0], m[1], m[2]])
                    .map(|o| o.vendor)
            })
            .unwrap_or("-");
        for (i, line) in lines.iter().enumerate() {
            if i == 0 {
                writeln!(
                    out,
                    "{:<10} {:<14} {:<5} {:<18} {:<24} {line}",
                    d.name,
                    d.ip,
                    ttl.map_or("-".into(), |t| t.to_string()),
                    mac.as_ref().map_or("-".into(), format_mac),
                    vendor.chars().take(24).collect::<String>()
                )?;
            } else {
                writeln!(
                    out,
                    "{:<10} {:<14} {:<5} {:<18} {:<24} {line}",
                    "", "", "", "", ""
                )?;
            }
        }
    }
    Ok(answered)
}

/// A lab subnet that no local interface uses, in 10.213.0.0/16.
async fn free_subnet(seed: u32) -> Result<Ipv4Net, CliError> {
    let taken: Vec<Ipv4Net> =
        decnet_core::traits::HostNetwork::interfaces(&NetlinkHostNetwork::new())
            .await
            .map(|l| l.into_iter().flat_map(|i| i.ipv4).collect())
            .unwrap_or_default();
    for i in 0..250u32 {
        let third = ((seed + i) % 250 + 1) as u8;
        let net = Ipv4Net::new(Ipv4Addr::new(10, 213, third, 0), 24)
            .map_err(|e| CliError::Failed(e.into()))?;
        if !taken
            .iter()
            .any(|t| t.contains(&net.network()) || net.contains(&t.network()))
        {
            return Ok(net);
        }
    }
    Err(CliError::Failed(anyhow::anyhow!(
        "no free /24 in 10.213.0.0/16 for the lab"
    )))
}

pub async fn run(args: &DemoArgs, out: &mut dyn Write) -> Result<(), CliError> {
    if !decnet_net::has_net_admin() {
        return Err(rerun_as_root());
    }
    let docker = image::connect()
        .await
        .map_err(|e| CliError::usage(format!("demo: needs a running Docker daemon: {e}")))?;
    let binary = image::find_decky_binary(args.decky_bin.as_deref())
        .map_err(|e| CliError::usage(e.to_string()))?;
    if args.unihost {
        run_unihost(args, docker, binary, out).await
    } else {
        super::demo_swarm::run(args, docker, binary, out).await
    }
}

/// Set on the re-run under sudo, so a sudo that still leaves us without the capability fails
/// instead of looping.
const SUDO_RERUN: &str = "DECNET_DEMO_SUDO_RERUN";

/// Without CAP_NET_ADMIN: re-runs this very command under `sudo` when there is one (the same
/// arguments; on success this never returns), else says how to run it.
fn rerun_as_root() -> CliError {
    const NEED: &str =
        "demo: needs root (CAP_NET_ADMIN) to create the lab network namespace and veth pair";
    let sudo = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("sudo"))
            .find(|p| p.is_file())
    });
    let exe = std::env::current_exe().ok();
    match (sudo, exe, std::env::var_os(SUDO_RERUN)) {
        (Some(sudo), Some(exe), None) => {
            use std::os::unix::process::CommandExt;
            eprintln!("{NEED}; running it again under sudo");
            // `env` sets the marker: sudoers' env_reset may refuse `VAR=value` arguments.
            let err = std::process::Command::new(sudo)
                .args(["--", "env"])
                .arg(format!("{SUDO_RERUN}=1"))
                .arg(exe)
                .args(std::env::args_os().skip(1))
                .exec();
            CliError::usage(format!("{NEED}; sudo could not be run: {err}"))
        }
        (_, _, Some(_)) => CliError::usage(format!("{NEED}; even under sudo it is missing")),
        _ => CliError::usage(format!(
            "{NEED}: run it again as root (there is no sudo here), e.g. `su -c './target/release/decnet demo'`"
        )),
    }
}

/// A fresh lab LAN with a tag of its own (`demo<pid>`).
pub(crate) async fn create_lab(out: &mut dyn Write) -> Result<(String, LabLan), CliError> {
    let pid = std::process::id();
    let tag = format!("demo{:x}", pid % 0xfffff);
    let subnet = free_subnet(pid).await?;
    writeln!(
        out,
        "Creating lab LAN {subnet} (parent {}, attacker namespace {})",
        lab::host_link_name(&tag),
        lab::lab_netns_name(&tag)
    )
    .context("write")?;
    let lan = LabLan::create(&tag, subnet)
        .await
        .map_err(|e| CliError::Failed(e.into()))?;
    Ok((tag, lan))
}

/// Probes `targets` from the attacker namespace and prints what it saw; fails when no port
/// answered at all.
pub(crate) async fn probe_and_print(
    lan: &LabLan,
    targets: Vec<Target>,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let lan2 = lan.clone();
    let (text, answered) = tokio::task::spawn_blocking(move || {
        let mut buf = Vec::new();
        let n = probe(&lan2, &targets, &mut buf);
        (buf, n)
    })
    .await
    .map_err(|e| CliError::Failed(e.into()))?;
    out.write_all(&text).context("write")?;
    let answered = answered.map_err(CliError::Failed)?;
    if answered == 0 {
        return Err(CliError::Failed(anyhow::anyhow!(
            "no decky answered the attacker"
        )));
    }
    Ok(())
}

/// The three deckies of the demo: (role, archetype).
const DEMO_DECKIES: [(&str, &str); 3] = [
    ("web", "linux-server"),
    ("ws", "windows-workstation"),
    ("db", "database-server"),
];

/// The demo's deckies for the lab `tag`: (name, archetype). Container names are global to the
/// Docker daemon, so each run's deckies carry its tag (`web-1a2b3` for lab `demo1a2b3`) and two
/// demos on one daemon never touch each other's containers.
pub(crate) fn demo_deckies(tag: &str) -> Vec<(String, &'static str)> {
    let suffix = tag.strip_prefix("demo").unwrap_or(tag);
    DEMO_DECKIES
        .iter()
        .map(|(role, archetype)| (format!("{role}-{suffix}"), *archetype))
        .collect()
}

/// The first form: the Docker deployer in this process.
async fn run_unihost(
    args: &DemoArgs,
    docker: decnet_docker::Docker,
    binary: std::path::PathBuf,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let (tag, lan) = create_lab(out).await?;

    let state_dir = std::env::temp_dir().join(format!("decnet-{tag}"));
    let mut cfg =
        DockerDeployerConfig::new(tag.clone(), state_dir.join("decnet-state.json"), binary);
    cfg.network = format!("decnet_{tag}");
    cfg.host_link = false;
    let deployer = DockerDeployer::with_docker(docker, cfg, Arc::new(NetlinkHostNetwork::new()));

    // Ctrl-C or SIGTERM during the run cleans up like a failure would.
    let result = tokio::select! {
        r = run_lab(&lan, &deployer, out) => r,
        _ = super::serve::wait_for_signal() => Err(super::demo_swarm::interrupted()),
    };
    if args.keep && result.is_ok() {
        writeln!(
            out,
            "\nKept. Reach the deckies from the attacker namespace, e.g.\n  ip netns exec {} nc {} 22\nRemove everything with:\n  decnet teardown --all --data-dir {} --network-name decnet_{tag}   (then: ip link del {}; ip netns del {})",
            lan.netns,
            result.as_ref().ok().and_then(|c| c.deckies.first()).map_or("<ip>".to_string(), |d| d.ip.to_string()),
            state_dir.display(),
            lan.parent,
            lan.netns,
        )
        .context("write")?;
        return Ok(());
    }
    writeln!(out, "\nCleaning up…").context("write")?;
    let torn = deployer.teardown(None).await;
    let destroyed = lan.destroy().await;
    let _ = std::fs::remove_dir_all(&state_dir);
    let config = result?;
    torn.map_err(|e| CliError::Failed(anyhow::anyhow!("teardown: {e}")))?;
    destroyed.map_err(|e| CliError::Failed(anyhow::anyhow!("remove the lab: {e}")))?;
    writeln!(
        out,
        "Removed {} deckies, their network and the lab.",
        config.deckies.len()
    )
    .context("write")?;
    Ok(())
}

async fn run_lab(
    lan: &LabLan,
    deployer: &DockerDeployer,
    out: &mut dyn Write,
) -> Result<DecnetConfig, CliError> {
    let config = demo_fleet(lan)?;
    writeln!(out, "Building the decky image and deploying 3 deckies…").context("write")?;
    let report = deployer
        .deploy(&config)
        .await
        .map_err(|e| CliError::Failed(anyhow::anyhow!(e)))?;
    crate::commands::deploy::print_plan(&config, out).context("write")?;
    if !report.all_succeeded() {
        let failed: Vec<String> = report.failed().map(|(n, r)| format!("{n}: {r}")).collect();
        return Err(CliError::Failed(anyhow::anyhow!(
            "deploy failed: {}",
            failed.join("; ")
        )));
    }
    let targets = Target::of(&config);
    probe_and_print(lan, targets.clone(), out).await?;
    let tried = super::demo_detect::attack_logins(lan, &targets, out).await?;
    let events = super::demo_detect::wait_recorded(&tried, || async {
        let cursors = decnet_core::orchestrate::collect::Cursors::new();
        decnet_core::orchestrate::collect::collect_all(deployer, "local", &cursors)
            .await
            .map(|(events, _)| events)
            .map_err(|e| CliError::Failed(e.into()))
    })
    .await?;
    writeln!(
        out,
        "\nWhat DECNET recorded of the attacker (the deckies' attacker events):"
    )
    .context("write")?;
    out.write_all(super::demo_detect::render(&events, lan.attacker_ip).as_bytes())
        .context("write")?;
    Ok(config)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io::{BufRead, Read, Write};
    use std::process::{Command, Stdio};

    use super::*;

    /// The decky binary next to this test's (`target/<profile>/decnet-decky`).
    fn decky_bin() -> std::path::PathBuf {
        let exe = std::env::current_exe().unwrap();
        exe.parent().unwrap().parent().unwrap().join("decnet-decky")
    }

    /// What the demo prints for `slug` after sending its opener to a real decky service.
    fn seen(slug: &str) -> String {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new(decky_bin())
            .args(["serve", slug, "--bind", "127.0.0.1", "--port"])
            .arg(format!("{port}/tcp"))
            .env("HOSTNAME", "demo-test")
            .env("DECNET_DECKY", "demo-test")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("decnet-decky is built (cargo build -p decnet-decky)");
        // Ready once it says so on stderr.
        let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        err.read_line(&mut line).unwrap();
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(&opener(slug).unwrap()).unwrap();
        let mut buf = vec![0u8; 4096];
        let n = s.read(&mut buf).unwrap_or(0);
        let _ = child.kill();
        let _ = child.wait();
        summary(slug, &buf[..n])
    }

    #[test]
    fn the_demo_opens_windows_and_database_services_like_a_scanner() {
        let smb = seen("smb");
        assert!(
            smb.starts_with("SMB2 negotiate response, dialect 0x02"),
            "{smb}"
        );
        assert_eq!(seen("rdp"), "RDP connection confirm: CredSSP (NLA)");
        assert_eq!(seen("postgres"), "PostgreSQL asks for a md5 password");
    }
}

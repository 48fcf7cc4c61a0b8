#![allow(clippy::unwrap_used)] // test helpers abort on a broken fixture
//! A decky's ssh host key, seen by `ssh-keyscan` from inside the decky's network namespace,
//! is the same after a redeploy and after a mutation that recreates its ssh container. Needs
//! root, Docker, `ip`, `nsenter` and `ssh-keyscan`; the macvlan parent is a veth pair of the
//! test's own.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::sync::Arc;

use bollard::query_parameters::InspectContainerOptions;
use decnet_core::fleet::{build_from_specs, BuildContext, DeckySpec, FleetSpec, NetPlan};
use decnet_core::model::{DeckyName, DecnetConfig, Mode, NetworkDriver, Subnet};
use decnet_core::traits::{DeckyOutcome, Deployer};
use decnet_docker::{hostkey, image, DockerDeployer, DockerDeployerConfig};
use decnet_net::NetlinkHostNetwork;
use ipnet::Ipv4Net;
use rand::rngs::StdRng;
use rand::SeedableRng;

fn sh(args: &[&str]) -> std::process::Output {
    Command::new(args[0]).args(&args[1..]).output().unwrap()
}

/// Deletes the veth pair however the test ends.
struct Link(String);

impl Drop for Link {
    fn drop(&mut self) {
        let _ = sh(&["ip", "link", "del", &self.0]);
    }
}

fn fleet(parent: &str, subnet: Ipv4Net) -> DecnetConfig {
    let spec = FleetSpec {
        deckies: serde_json::from_value::<Vec<DeckySpec>>(serde_json::json!([
            {"name": "ssh12-key", "services": ["ssh"]}
        ]))
        .unwrap(),
        ..Default::default()
    };
    let ctx = BuildContext {
        mode: Mode::Unihost,
        net: NetPlan {
            interface: parent.to_string(),
            subnet: Subnet::new(subnet),
            gateway: Ipv4Addr::new(10, 198, 212, 1),
            host_ip: None,
            driver: NetworkDriver::Macvlan,
        },
        reserved: BTreeSet::new(),
        taken_names: BTreeSet::new(),
        current: Vec::new(),
        mutate_interval: None,
        log_file: None,
        now_epoch: 0.0,
    };
    build_from_specs(&spec, &ctx, &mut StdRng::seed_from_u64(1)).unwrap()
}

/// The ed25519 key line `ssh-keyscan` gets from the decky, run in the base container's
/// network namespace.
async fn keyscan(deployer: &DockerDeployer, ip: Ipv4Addr) -> String {
    let base = deployer
        .docker()
        .inspect_container("ssh12-key", None::<InspectContainerOptions>)
        .await
        .unwrap();
    let pid = base.state.unwrap().pid.unwrap().to_string();
    let out = sh(&[
        "nsenter",
        "-t",
        &pid,
        "-n",
        "ssh-keyscan",
        "-T",
        "10",
        "-t",
        "ed25519",
        "-p",
        "22",
        &ip.to_string(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let key = text
        .lines()
        .find(|l| l.contains("ssh-ed25519"))
        .unwrap_or_else(|| {
            panic!(
                "no ed25519 key from {ip}: {text} {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    key.split_whitespace().skip(1).collect::<Vec<_>>().join(" ")
}

fn succeeded(report: &decnet_core::traits::DeployReport) {
    assert!(
        report
            .outcomes
            .values()
            .all(|o| *o == DeckyOutcome::Succeeded),
        "{report:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_key_survives_redeploy_and_mutate() {
    let n = std::process::id() % 1000;
    let parent = format!("ssh12p{n}");
    let _ = sh(&["ip", "link", "del", &parent]);
    let peer = format!("ssh12q{n}");
    assert!(
        sh(&["ip", "link", "add", &parent, "type", "veth", "peer", "name", &peer])
            .status
            .success()
    );
    let _link = Link(parent.clone());
    assert!(sh(&["ip", "link", "set", &parent, "up"]).status.success());
    assert!(sh(&["ip", "link", "set", &peer, "up"]).status.success());

    let docker = image::connect()
        .await
        .expect("docker daemon must be running");
    let dir = tempfile::tempdir().unwrap();
    let binary = image::find_decky_binary(None).expect("decnet-decky is built");
    let mut cfg = DockerDeployerConfig::new(
        format!("test-ssh12{n}"),
        dir.path().join("decnet-state.json"),
        binary,
    );
    cfg.network = format!("ssh12_net{n}");
    cfg.host_link = false;
    let deployer = DockerDeployer::with_docker(docker, cfg, Arc::new(NetlinkHostNetwork::new()));
    let _ = deployer.teardown(None).await;

    let subnet = Ipv4Net::new(Ipv4Addr::new(10, 198, 212, 0), 24).unwrap();
    let config = fleet(&parent, subnet);
    let ip = config.decky("ssh12-key").unwrap().ip;
    let name = DeckyName::new("ssh12-key").unwrap();

    succeeded(&deployer.deploy(&config).await.expect("deploy"));
    let path = hostkey::key_path(dir.path(), "ssh12-key");
    let seed = std::fs::read(&path).expect("the deployer wrote the key");
    assert_eq!(seed.len(), 32);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let first = keyscan(&deployer, ip).await;

    // Redeploy from nothing: containers and state file gone, the key kept.
    succeeded(&deployer.teardown(None).await.expect("teardown"));
    succeeded(&deployer.deploy(&config).await.expect("redeploy"));
    assert_eq!(keyscan(&deployer, ip).await, first, "after a redeploy");

    // A mutation away from ssh and back recreates the ssh container.
    succeeded(
        &deployer
            .mutate(&name, &["http".into()])
            .await
            .expect("mutate"),
    );
    succeeded(
        &deployer
            .mutate(&name, &["ssh".into(), "ftp".into()])
            .await
            .expect("mutate back"),
    );
    assert_eq!(keyscan(&deployer, ip).await, first, "after a mutation");
    assert_eq!(std::fs::read(&path).unwrap(), seed);

    succeeded(&deployer.teardown(None).await.expect("teardown"));
}

#![allow(clippy::unwrap_used)] // test helpers abort on a broken fixture

//! Issue 16 end to end with real deckies: one decky per OS family deployed by the Docker
//! deployer on a macvlan lab LAN (its base runs the cloak for every non-Linux family), and
//! `nmap -O --osscan-guess` from the lab's attacker namespace. Asserts the top guess's
//! nmap-os-db class per family and prints every guess with its accuracy. Needs root, Docker
//! and nmap; fails, never skips, without. Serial with the demos (.config/nextest.toml).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::Arc;

use decnet_core::fleet::{build_from_specs, BuildContext, DeckySpec, FleetSpec, NetPlan};
use decnet_core::model::{validate, Mode, NetworkDriver, Subnet};
use decnet_core::registry::{OsFamily, Protocol};
use decnet_core::traits::Deployer;
use decnet_docker::{image, DockerDeployer, DockerDeployerConfig};
use decnet_net::lab::{self, LabLan};
use decnet_net::NetlinkHostNetwork;
use ipnet::Ipv4Net;
use rand::rngs::StdRng;
use rand::SeedableRng;

/// nmap-os-db `Class` OS-family fields a family's top guess must have one of; an embedded
/// persona may also read as an appliance RTOS (not general purpose, not Linux or Windows).
fn class_fits(family: OsFamily, os: &str, device: &str) -> bool {
    match family {
        OsFamily::Linux => os == "Linux",
        OsFamily::Windows | OsFamily::WindowsServer => os == "Windows",
        OsFamily::Bsd => os == "FreeBSD" || os == "OpenBSD",
        OsFamily::Cisco => os == "IOS",
        OsFamily::Embedded => {
            os == "embedded" || (device != "general purpose" && os != "Linux" && os != "Windows")
        }
    }
}

/// The top guess's name (accuracy dropped): "OS details" (the longest prefix that is a known
/// fingerprint name) or the first "Aggressive OS guesses" entry.
fn top_guess(out: &str, db: &str) -> Option<String> {
    let known = |name: &str| {
        db.lines()
            .any(|l| l.strip_prefix("Fingerprint ") == Some(name))
    };
    for line in out.lines() {
        if let Some(rest) = line.strip_prefix("Aggressive OS guesses: ") {
            let first = rest.split("%), ").next()?;
            return Some(first.rsplit_once(" (").map_or(first, |(n, _)| n).to_owned());
        }
        if let Some(rest) = line.strip_prefix("OS details: ") {
            let mut cuts: Vec<usize> = rest.match_indices(", ").map(|(i, _)| i).collect();
            cuts.push(rest.len());
            let top = cuts.iter().rev().map(|&i| &rest[..i]).find(|n| known(n));
            return Some(top.unwrap_or(rest).to_owned());
        }
    }
    None
}

/// (OS family, device type) of every class of the entries named `name`.
fn classes(db: &str, name: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in db.lines() {
        if let Some(n) = line.strip_prefix("Fingerprint ") {
            inside = n == name;
        } else if let Some(class) = line.strip_prefix("Class ").filter(|_| inside) {
            let f: Vec<&str> = class.split('|').map(str::trim).collect();
            if let [_, os, _, device, ..] = f[..] {
                out.push((os.to_owned(), device.to_owned()));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nmap_names_each_real_deckys_os_family() {
    let db = std::fs::read_to_string("/usr/share/nmap/nmap-os-db").expect("nmap-os-db (nmap)");
    let tag = "os16nm";
    let _ = lab::destroy_by_tag(tag).await;
    let subnet = Ipv4Net::new(Ipv4Addr::new(10, 216, 16, 0), 24).unwrap();
    let lan = LabLan::create(tag, subnet).await.expect("lab LAN (root)");
    let docker = image::connect().await.expect("docker daemon");
    let dir = tempfile::tempdir().unwrap();
    let binary = image::find_decky_binary(None).expect("decnet-decky is built");
    let mut cfg =
        DockerDeployerConfig::new(format!("test-{tag}"), dir.path().join("state.json"), binary);
    cfg.network = "os16_nmap_lan".into();
    cfg.host_link = false;
    let deployer = DockerDeployer::with_docker(docker, cfg, Arc::new(NetlinkHostNetwork::new()));
    let _ = deployer.teardown(None).await;

    let specs = serde_json::json!([
        {"name": "os16-lin", "archetype": "linux-server"},
        {"name": "os16-win", "archetype": "windows-workstation"},
        {"name": "os16-srv", "archetype": "windows-server"},
        {"name": "os16-bsd", "services": ["ssh"], "nmap_os": "bsd"},
        {"name": "os16-ios", "services": ["telnet"], "nmap_os": "cisco"},
        {"name": "os16-prn", "archetype": "printer"}
    ]);
    let spec = FleetSpec {
        deckies: serde_json::from_value::<Vec<DeckySpec>>(specs).unwrap(),
        ..Default::default()
    };
    let ctx = BuildContext {
        mode: Mode::Unihost,
        net: NetPlan {
            interface: lan.parent.clone(),
            subnet: Subnet::new(lan.subnet),
            gateway: lan.gateway,
            host_ip: None,
            driver: NetworkDriver::Macvlan,
        },
        reserved: BTreeSet::from([lan.attacker_ip]),
        taken_names: BTreeSet::new(),
        current: Vec::new(),
        mutate_interval: None,
        log_file: None,
        now_epoch: 0.0,
    };
    let config = build_from_specs(&spec, &ctx, &mut StdRng::seed_from_u64(16)).unwrap();
    let report = deployer.deploy(&config).await.expect("deploy");
    assert!(report.all_succeeded(), "{report:?}");

    let mut failures = Vec::new();
    for d in &config.deckies {
        let open = d
            .services
            .iter()
            .flat_map(|s| validate::service_ports(s, &[]).unwrap_or_default())
            .find(|p| p.protocol == Protocol::Tcp)
            .map(|p| p.port)
            .expect("a tcp service");
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &lan.netns,
                "nmap",
                "-n",
                "-Pn",
                "-O",
                "--osscan-guess",
            ])
            .args([
                "--max-os-tries",
                "1",
                "-p",
                &format!("{open},1"),
                &d.ip.to_string(),
            ])
            .output()
            .expect("run nmap");
        let out = String::from_utf8_lossy(&out.stdout).into_owned();
        let top = top_guess(&out, &db);
        let cls = top.as_deref().map(|t| classes(&db, t)).unwrap_or_default();
        let guesses: Vec<&str> = out
            .lines()
            .filter(|l| {
                l.starts_with("Aggressive")
                    || l.starts_with("OS details")
                    || l.starts_with("Running")
            })
            .collect();
        println!(
            "== {} ({}): top {top:?} {cls:?}\n{}",
            d.name,
            d.nmap_os,
            guesses.join("\n")
        );
        if !cls.iter().any(|(os, dev)| class_fits(d.nmap_os, os, dev)) {
            failures.push(format!(
                "{} ({}): top {top:?} {cls:?}\n{out}",
                d.name, d.nmap_os
            ));
        }
    }
    let down = deployer.teardown(None).await.expect("teardown");
    lan.destroy().await.unwrap();
    assert!(down.all_succeeded(), "{down:?}");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

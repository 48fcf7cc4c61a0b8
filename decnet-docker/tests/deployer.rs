#![allow(clippy::unwrap_used)] // test helpers abort on a broken fixture
//! The Docker deployer against the real daemon, on lab LANs: a veth pair is the macvlan
//! parent and an "attacker" network namespace holds the other end. Needs root and Docker; a
//! missing daemon fails these tests. Container names are global to the daemon, so every test
//! uses decky names of its own.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use bollard::query_parameters::{InspectContainerOptions, ListContainersOptions};
use decnet_core::fleet::{build_from_specs, BuildContext, DeckySpec, FleetSpec, NetPlan};
use decnet_core::model::{CustomService, DeckyName, DecnetConfig, Mode, NetworkDriver, Subnet};
use decnet_core::registry::{oui_for, OsFamily};
use decnet_core::traits::{DeckyOutcome, Deployer};
use decnet_docker::{image, network, DockerDeployer, DockerDeployerConfig};
use decnet_net::lab::{self, LabLan};
use decnet_net::NetlinkHostNetwork;
use ipnet::Ipv4Net;
use rand::rngs::StdRng;
use rand::SeedableRng;

const T: Duration = Duration::from_secs(3);

/// One lab: its LAN, its deployer (own host label, network and state file). A test that
/// panics before [`Lab::finish`] still leaves nothing behind: dropping the lab removes its
/// containers (by its label), its network and its LAN, so the next run of the test does not
/// find them holding its container names and subnet.
struct Lab {
    lan: LabLan,
    deployer: DockerDeployer,
    _dir: tempfile::TempDir,
    finished: bool,
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let run = |args: &[&str]| {
            std::process::Command::new(args[0])
                .args(&args[1..])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default()
        };
        let label = format!(
            "label={}={}",
            decnet_docker::labels::HOST,
            self.deployer.config().host
        );
        let ids = run(&["docker", "ps", "-aq", "--filter", &label]);
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            let mut rm = vec!["docker", "rm", "-f"];
            rm.extend(ids);
            run(&rm);
        }
        run(&["docker", "network", "rm", &self.deployer.config().network]);
        run(&["ip", "link", "del", &self.lan.parent]);
        run(&["ip", "netns", "del", &self.lan.netns]);
    }
}

impl Lab {
    async fn new(tag: &str, third: u8) -> Lab {
        let tag = format!("{tag}{}", std::process::id() % 1000);
        let _ = lab::destroy_by_tag(&tag).await;
        let subnet = Ipv4Net::new(Ipv4Addr::new(10, 214, third, 0), 24).unwrap();
        let lan = LabLan::create(&tag, subnet)
            .await
            .expect("create lab LAN (needs root)");
        let docker = image::connect()
            .await
            .expect("docker daemon must be running");
        let dir = tempfile::tempdir().unwrap();
        let binary = image::find_decky_binary(None).expect("decnet-decky is built");
        let mut cfg = DockerDeployerConfig::new(
            format!("test-{tag}"),
            dir.path().join("decnet-state.json"),
            binary,
        );
        cfg.network = format!("decnet_t_{tag}");
        cfg.host_link = false;
        let deployer =
            DockerDeployer::with_docker(docker, cfg, Arc::new(NetlinkHostNetwork::new()));
        // Leftovers of an earlier, aborted run of this test.
        let _ = deployer.teardown(None).await;
        Lab {
            lan,
            deployer,
            _dir: dir,
            finished: false,
        }
    }

    fn fleet(&self, specs: serde_json::Value, custom: Vec<CustomService>) -> DecnetConfig {
        let spec = FleetSpec {
            deckies: serde_json::from_value::<Vec<DeckySpec>>(specs).unwrap(),
            custom_services: custom,
            ..Default::default()
        };
        let ctx = BuildContext {
            mode: Mode::Unihost,
            net: NetPlan {
                interface: self.lan.parent.clone(),
                subnet: Subnet::new(self.lan.subnet),
                gateway: self.lan.gateway,
                host_ip: None,
                driver: NetworkDriver::Macvlan,
            },
            reserved: BTreeSet::from([self.lan.attacker_ip]),
            taken_names: BTreeSet::new(),
            current: Vec::new(),
            mutate_interval: None,
            log_file: None,
            now_epoch: 0.0,
        };
        build_from_specs(&spec, &ctx, &mut StdRng::seed_from_u64(1)).unwrap()
    }

    /// Container name → id of this lab's containers.
    async fn containers(&self) -> BTreeMap<String, String> {
        let opts = ListContainersOptions {
            all: true,
            filters: Some(decnet_docker::labels::host_filter(
                &self.deployer.config().host,
                None,
            )),
            ..Default::default()
        };
        self.deployer
            .docker()
            .list_containers(Some(opts))
            .await
            .unwrap()
            .into_iter()
            .map(|c| {
                (
                    c.names.unwrap()[0].trim_start_matches('/').to_string(),
                    c.id.unwrap(),
                )
            })
            .collect()
    }

    async fn finish(mut self) {
        let report = self.deployer.teardown(None).await.expect("teardown");
        assert!(report.all_succeeded(), "{report:?}");
        assert!(
            self.containers().await.is_empty(),
            "no DECNET container stays"
        );
        assert!(
            network::find(self.deployer.docker(), &self.deployer.config().network)
                .await
                .unwrap()
                .is_none(),
            "the network is removed"
        );
        assert!(
            !self.deployer.config().state_path.exists(),
            "the state file is cleared"
        );
        self.lan.clone().destroy().await.unwrap();
        self.finished = true;
    }
}

fn probe(lan: &LabLan, ip: Ipv4Addr, port: u16, send: Option<&[u8]>) -> String {
    let r = lab::probe_tcp(&lan.netns, ip, port, send.map(<[u8]>::to_vec), T).unwrap();
    assert!(r.open, "{ip}:{port} is closed");
    String::from_utf8_lossy(&r.greeting).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deckies_look_like_real_hosts_to_an_attacker() {
    let lab = Lab::new("dply", 11).await;
    let config = lab.fleet(
        serde_json::json!([
            {"name": "e2e-web", "archetype": "linux-server"},
            {"name": "e2e-ws", "archetype": "windows-workstation"},
            {"name": "e2e-db", "services": ["mysql", "redis", "ftp"], "nmap_os": "embedded",
             "service_config": {"ftp": {"banner": "(ProFTPD 1.3.5)"}}}
        ]),
        vec![],
    );
    let report = lab.deployer.deploy(&config).await.expect("deploy");
    assert!(report.all_succeeded(), "{report:?}");
    let ip = |n: &str| config.decky(n).unwrap().ip;

    // Greetings, from the attacker's namespace.
    assert!(probe(&lab.lan, ip("e2e-web"), 22, None).starts_with("SSH-2.0-OpenSSH_"));
    let http = probe(&lab.lan, ip("e2e-web"), 80, Some(b"GET / HTTP/1.0\r\n\r\n"));
    assert!(
        http.starts_with("HTTP/1.1 ") && http.contains("Server: "),
        "{http}"
    );
    assert!(probe(&lab.lan, ip("e2e-db"), 21, None).starts_with("220 (ProFTPD 1.3.5)"));
    assert!(probe(&lab.lan, ip("e2e-db"), 6379, Some(b"PING\r\n")).starts_with("+PONG"));
    let mysql = lab::probe_tcp(&lab.lan.netns, ip("e2e-db"), 3306, None, T).unwrap();
    assert_eq!(mysql.greeting.get(4), Some(&0x0a), "protocol-10 handshake");
    assert!(
        lab::probe_tcp(&lab.lan.netns, ip("e2e-ws"), 445, None, T)
            .unwrap()
            .open
    );

    // TTLs follow the OS profile.
    for (name, ttl) in [("e2e-web", 64), ("e2e-ws", 128), ("e2e-db", 255)] {
        assert_eq!(
            lab::probe_ttl(&lab.lan.netns, ip(name), T).unwrap(),
            Some(ttl),
            "{name}"
        );
    }
    // MACs are distinct and carry the persona's vendor prefix.
    let mut macs = BTreeSet::new();
    for d in &config.deckies {
        let mac = lab::neighbour_mac(&lab.lan.netns, d.ip)
            .unwrap()
            .expect("attacker learned the MAC");
        let oui = oui_for(d.nmap_os, d.archetype.as_deref());
        assert_eq!(
            mac[..3],
            oui.prefix,
            "{} should look like {}",
            d.name,
            oui.vendor
        );
        assert!(macs.insert(mac));
    }
    assert_eq!(config.decky("e2e-ws").unwrap().nmap_os, OsFamily::Windows);

    // Services run without extra capabilities; a non-Linux persona's base gets NET_ADMIN and
    // NET_RAW for its OS-fingerprint cloak (issue 16, the PRODUCT §11 amendment), Linux bases
    // none.
    let docker = lab.deployer.docker();
    for (name, id) in lab.containers().await {
        let info = docker
            .inspect_container(&id, None::<InspectContainerOptions>)
            .await
            .unwrap();
        let hc = info.host_config.unwrap();
        assert_eq!(
            hc.cap_drop.as_deref(),
            Some(&["ALL".to_string()][..]),
            "{name}"
        );
        let cloaked_base = config
            .decky(&name)
            .is_some_and(|d| d.nmap_os != OsFamily::Linux);
        let added = hc.cap_add.unwrap_or_default();
        if cloaked_base {
            assert_eq!(added, ["NET_ADMIN", "NET_RAW"], "{name}");
        } else {
            assert!(
                added.is_empty() || added == ["NET_BIND_SERVICE"],
                "{name}: {added:?}"
            );
        }
        assert_eq!(hc.readonly_rootfs, Some(true), "{name}");
        assert!(hc
            .security_opt
            .unwrap_or_default()
            .iter()
            .any(|o| o.starts_with("no-new-privileges")));
        let pid = info.state.unwrap().pid.unwrap();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let cap_eff = status.lines().find(|l| l.starts_with("CapEff:")).unwrap();
        let bits = u64::from_str_radix(cap_eff.split_whitespace().nth(1).unwrap(), 16).unwrap();
        let allowed: u64 = if cloaked_base {
            (1 << 12) | (1 << 13)
        } else {
            1 << 10
        };
        assert_eq!(bits & !allowed, 0, "{name}: {cap_eff}");
    }

    // Redeploying the same desired set changes nothing.
    let before = lab.containers().await;
    let again = lab.deployer.deploy(&config).await.unwrap();
    assert!(again.all_succeeded());
    assert_eq!(lab.containers().await, before, "same containers, same ids");

    // A mutate changes that decky only.
    let report = lab
        .deployer
        .mutate(
            &DeckyName::new("e2e-web").unwrap(),
            &["ssh".into(), "telnet".into()],
        )
        .await
        .unwrap();
    assert_eq!(report.outcomes.len(), 1);
    assert!(report.all_succeeded(), "{report:?}");
    let after = lab.containers().await;
    for (name, id) in &before {
        if name.starts_with("e2e-web.") && name != "e2e-web.ssh" {
            assert!(!after.contains_key(name), "{name} is gone");
        } else {
            assert_eq!(after.get(name), Some(id), "{name} is untouched");
        }
    }
    assert!(after.contains_key("e2e-web.telnet"));
    assert!(probe(&lab.lan, ip("e2e-web"), 23, None).contains("login:"));
    let runtime = lab.deployer.runtime().await.unwrap();
    assert!(runtime.values().all(|r| r.running), "{runtime:?}");

    // Tearing down one decky leaves the others.
    lab.deployer
        .teardown(Some(&DeckyName::new("e2e-db").unwrap()))
        .await
        .unwrap();
    let left = lab.containers().await;
    assert!(left.keys().all(|n| !n.starts_with("e2e-db")));
    assert_eq!(left.get("e2e-ws"), before.get("e2e-ws"));
    let state = lab.deployer.load_state().unwrap().unwrap();
    assert!(state.config.decky("e2e-db").is_none() && state.config.decky("e2e-ws").is_some());

    lab.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_failing_decky_does_not_stop_the_others() {
    let lab = Lab::new("fail", 12).await;
    let tag = lab.deployer.image().await.unwrap();
    // A service from a local image that exits at once: its decky must fail, alone.
    let broken = CustomService {
        name: "broken".into(),
        image: tag,
        exec_cmd: "serve broken --port 0/sctp".into(),
        ports: vec![9999],
    };
    let config = lab.fleet(
        serde_json::json!([
            {"name": "pf-good", "services": ["ssh"]},
            {"name": "pf-bad", "services": ["http", "broken"]}
        ]),
        vec![broken],
    );
    let report = lab.deployer.deploy(&config).await.expect("deploy");
    assert_eq!(
        report.outcomes[&DeckyName::new("pf-good").unwrap()],
        DeckyOutcome::Succeeded
    );
    match &report.outcomes[&DeckyName::new("pf-bad").unwrap()] {
        DeckyOutcome::Failed { reason } => assert!(reason.contains("service broken"), "{reason}"),
        other => panic!("bad should fail: {other:?}"),
    }
    let good = config.decky("pf-good").unwrap().ip;
    assert!(probe(&lab.lan, good, 22, None).starts_with("SSH-2.0-"));
    let runtime = lab.deployer.runtime().await.unwrap();
    assert!(runtime["pf-good"].running);
    assert_eq!(runtime["pf-bad"].services["broken"], "absent");

    // A custom service whose image is not here is refused before anything happens.
    let missing = CustomService {
        name: "ghost".into(),
        image: "decnet-test/no-such-image:1".into(),
        exec_cmd: String::new(),
        ports: vec![],
    };
    let mut c2 = lab.fleet(
        serde_json::json!([{"name": "pf-ghost", "services": ["ghost"]}]),
        vec![missing],
    );
    c2.deckies[0].ip = "10.214.12.200".parse().unwrap();
    let before = lab.containers().await;
    let err = lab.deployer.deploy(&c2).await.unwrap_err().to_string();
    assert!(
        err.contains("decnet-test/no-such-image:1") && err.contains("does not exist locally"),
        "{err}"
    );
    assert_eq!(lab.containers().await, before);
    lab.finish().await;
}

/// Replacing the whole fleet: the new deckies get the addresses of the ones being retired
/// (the planner hands out the same free IPs), so the old containers must be gone before the
/// new ones are created, or Docker refuses with "Address already in use".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacing_a_fleet_reuses_the_addresses_it_frees() {
    let lab = Lab::new("repl", 13).await;
    let old = lab.fleet(
        serde_json::json!([
            {"name": "rp-old-1", "services": ["ssh"]},
            {"name": "rp-old-2", "services": ["http"]},
            {"name": "rp-old-3", "services": ["ftp"]}
        ]),
        vec![],
    );
    let report = lab
        .deployer
        .deploy(&old)
        .await
        .expect("deploy the first fleet");
    assert!(report.all_succeeded(), "{report:?}");
    let new = lab.fleet(
        serde_json::json!([
            {"name": "rp-new-1", "services": ["ftp"]},
            {"name": "rp-new-2", "services": ["ssh"]},
            {"name": "rp-new-3", "services": ["http"]}
        ]),
        vec![],
    );
    let old_ips: BTreeSet<Ipv4Addr> = old.deckies.iter().map(|d| d.ip).collect();
    let new_ips: BTreeSet<Ipv4Addr> = new.deckies.iter().map(|d| d.ip).collect();
    assert_eq!(old_ips, new_ips, "the fixture must reuse every address");

    let report = lab.deployer.deploy(&new).await.expect("replace the fleet");
    assert!(report.all_succeeded(), "{report:?}");
    // The retired deckies are reported too (an agent turns them into teardown deltas).
    let reported: BTreeSet<String> = report.outcomes.keys().map(|n| n.to_string()).collect();
    let every: BTreeSet<String> = old
        .deckies
        .iter()
        .chain(&new.deckies)
        .map(|d| d.name.to_string())
        .collect();
    assert_eq!(reported, every);
    let names: BTreeSet<String> = lab.containers().await.into_keys().collect();
    let want: BTreeSet<String> = ["rp-new-1", "rp-new-1.ftp", "rp-new-2", "rp-new-2.ssh"]
        .into_iter()
        .chain(["rp-new-3", "rp-new-3.http"])
        .map(String::from)
        .collect();
    assert_eq!(names, want);
    let ssh = new.decky("rp-new-2").unwrap().ip;
    assert!(probe(&lab.lan, ssh, 22, None).starts_with("SSH-2.0-"));
    lab.finish().await;
}

/// An attacker's touch becomes attacker events read back from the service container's output:
/// one session's connect, disconnect (with the credentials the FTP persona captured), stamped
/// with this host and the container's own decky and service; a second pass from the cursors
/// collects nothing again; a new connection is collected once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attacker_events_are_collected_from_service_output_exactly_once() {
    use decnet_core::model::attack::AttackKind;
    use decnet_core::orchestrate::collect::{collect_all, Cursors};

    let lab = Lab::new("logs", 31).await;
    let config = lab.fleet(
        serde_json::json!([{"name": "lg-ftp", "services": ["ftp"]}]),
        vec![],
    );
    let report = lab.deployer.deploy(&config).await.expect("deploy");
    assert!(report.all_succeeded(), "{report:?}");
    let ip = config.decky("lg-ftp").unwrap().ip;
    let host = lab.deployer.config().host.clone();

    let touch = |user: &str| {
        let greeting = probe(
            &lab.lan,
            ip,
            21,
            Some(format!("USER {user}\r\nPASS hunter2\r\nQUIT\r\n").as_bytes()),
        );
        assert!(greeting.starts_with("220"), "{greeting}");
    };
    // Waits (bounded) until `n` disconnects have been collected in all.
    async fn until_disconnects(
        lab: &Lab,
        host: &str,
        cursors: &mut Cursors,
        seen: &mut Vec<decnet_core::model::attack::AttackEvent>,
        n: usize,
    ) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let (events, next) = collect_all(&lab.deployer, host, cursors).await.unwrap();
            *cursors = next;
            seen.extend(events);
            let done = seen
                .iter()
                .filter(|e| e.kind == AttackKind::Disconnect)
                .count();
            if done >= n {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "only {done} of {n} sessions collected: {seen:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    touch("root");
    let mut cursors = Cursors::new();
    let mut seen = Vec::new();
    until_disconnects(&lab, &host, &mut cursors, &mut seen, 1).await;
    let kinds: Vec<AttackKind> = seen.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [AttackKind::Connect, AttackKind::Disconnect],
        "{seen:?}"
    );
    let done = &seen[1];
    assert_eq!(done.host, host);
    assert_eq!(done.decky, "lg-ftp");
    assert_eq!(done.service, "ftp");
    assert_eq!(done.src_ip, std::net::IpAddr::V4(lab.lan.attacker_ip));
    assert_eq!(done.dst_port, 21);
    assert_eq!(done.session, seen[0].session);
    assert_eq!(done.details.username.as_deref(), Some("root"));

    // Nothing new: the cursor's second is re-read, and nothing is collected twice.
    let (again, next) = collect_all(&lab.deployer, &host, &cursors).await.unwrap();
    assert!(again.is_empty(), "{again:?}");
    cursors = next;

    touch("admin");
    until_disconnects(&lab, &host, &mut cursors, &mut seen, 2).await;
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert_eq!(seen[3].details.username.as_deref(), Some("admin"));
    let ids: BTreeSet<_> = seen.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), 4, "each event once");
    assert!(seen.iter().all(|e| e.kind != AttackKind::Drop));
    lab.finish().await;
}

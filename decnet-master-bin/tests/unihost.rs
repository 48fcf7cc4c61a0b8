#![allow(clippy::unwrap_used)] // test helpers abort on a broken fixture
//! `decnet deploy | status | teardown` and `decnet demo` as the real binary against the real
//! Docker daemon, on a lab LAN of their own. Needs root and Docker; their absence fails.

use std::net::Ipv4Addr;
use std::process::{Command, Output};
use std::time::Duration;

use decnet_net::lab::{self, LabLan};
use ipnet::Ipv4Net;

fn decnet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_decnet"))
        .args(args)
        .env("DECNET_LOG", "info")
        .env_remove("DECNET_INTERFACE")
        .output()
        .expect("run decnet")
}

fn ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {stdout}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn has_link(name: &str) -> bool {
    std::path::Path::new("/sys/class/net").join(name).exists()
}

/// Container ids by name carrying `decnet.host=<label>`.
fn labelled(label: &str) -> std::collections::BTreeMap<String, String> {
    let out = Command::new("docker")
        .args([
            "ps",
            "-a",
            "--no-trunc",
            "--filter",
            &format!("label=decnet.host={label}"),
            "--format",
            "{{.Names}} {{.ID}}",
        ])
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(n, i)| (n.to_string(), i.to_string()))
        .collect()
}

/// Two data dirs on one Docker daemon are two hosts: neither sees nor removes the other's
/// deckies (all unihost deckies were labelled `local` before). Deckies an earlier release
/// labelled `local` that a data dir's state lists are adopted by its next deploy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_data_dirs_on_one_daemon_keep_their_fleets_apart() {
    let tag = format!("hid{}", std::process::id() % 10000);
    let mut lans = vec![];
    for (i, third) in [(0u8, 8u8), (1, 9)] {
        let t = format!("{tag}{i}");
        let _ = lab::destroy_by_tag(&t).await;
        let lan = LabLan::create(
            &t,
            Ipv4Net::new(Ipv4Addr::new(10, 215, third, 0), 24).unwrap(),
        )
        .await
        .expect("lab LAN (needs root)");
        lans.push((t, lan));
    }
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let dir = |i: usize| dirs[i].path().to_str().unwrap().to_string();
    let run = |i: usize, extra: &[&str]| {
        let (t, lan) = &lans[i];
        let d = dir(i);
        let mut args: Vec<String> = ["deploy", "--interface", &lan.parent, "--subnet"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.push(lan.subnet.to_string());
        args.extend(["--gateway".into(), lan.gateway.to_string()]);
        let host_ip = lan.subnet.hosts().last().unwrap();
        args.extend(["--host-ip".into(), host_ip.to_string()]);
        args.extend([
            "--data-dir".into(),
            d,
            "--network-name".into(),
            format!("decnet_{t}"),
        ]);
        args.extend(["--no-host-link".into()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        decnet(&refs)
    };
    let names = |p: &str| format!("{p}-{tag}");
    // Data dir 1 first runs as an earlier release did: label `local`.
    let (n0, n1) = (names("hida"), names("hidb"));
    let ini = |dir: &tempfile::TempDir, name: &str| {
        let p = dir.path().join("fleet.ini");
        std::fs::write(&p, format!("[{name}]\nservices=ssh\n")).unwrap();
        p.to_str().unwrap().to_string()
    };
    let ini0 = ini(&dirs[0], &n0);
    let ini1 = ini(&dirs[1], &n1);
    ok(&run(0, &["--config", &ini0]));
    ok(&run(1, &["--config", &ini1, "--host-label", "local"]));
    let id0 = std::fs::read_to_string(dirs[0].path().join("host-id")).unwrap();
    let id0 = id0.trim();
    assert!(id0.starts_with("local-"), "{id0}");
    assert!(labelled(id0).contains_key(&n0));
    let legacy = labelled("local");
    assert!(legacy.contains_key(&n1), "{legacy:?}");
    // Data dir 0's next deploy leaves data dir 1's `local` deckies alone: its state does not
    // list them.
    ok(&run(0, &["--config", &ini0]));
    assert_eq!(labelled("local").get(&n1), legacy.get(&n1));
    let status = |i: usize| -> serde_json::Value {
        let d = dir(i);
        serde_json::from_str(&ok(&decnet(&["status", "--json", "--data-dir", &d]))).unwrap()
    };
    let s0 = status(0);
    assert!(s0["runtime"].get(&n1).is_none(), "{s0}");
    assert_eq!(s0["runtime"][&n0]["running"], true, "{s0}");
    // Data dir 1, upgraded (no --host-label): it adopts its `local` deckies and brings them
    // under its own identity; data dir 0's deckies are untouched.
    let before0 = labelled(id0);
    ok(&run(1, &["--config", &ini1]));
    let id1 = std::fs::read_to_string(dirs[1].path().join("host-id")).unwrap();
    let id1 = id1.trim().to_string();
    assert_ne!(id0, id1);
    assert!(labelled(&id1).contains_key(&n1));
    assert!(
        !labelled("local").contains_key(&n1),
        "nothing stranded under local"
    );
    assert_eq!(labelled(id0), before0);
    let s1 = status(1);
    assert_eq!(s1["runtime"][&n1]["running"], true, "{s1}");
    assert!(s1["runtime"].get(&n0).is_none(), "{s1}");
    for (i, (t, _)) in lans.iter().enumerate() {
        let d = dir(i);
        let net = format!("decnet_{t}");
        ok(&decnet(&[
            "teardown",
            "--all",
            "--data-dir",
            &d,
            "--network-name",
            &net,
            "--no-host-link",
        ]));
    }
    assert!(labelled(id0).is_empty() && labelled(&id1).is_empty());
    for (_, lan) in lans {
        lan.destroy().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_status_teardown_through_the_cli() {
    let tag = format!("cli{}", std::process::id() % 10000);
    let _ = lab::destroy_by_tag(&tag).await;
    let subnet = Ipv4Net::new(Ipv4Addr::new(10, 215, 7, 0), 24).unwrap();
    let lan = LabLan::create(&tag, subnet)
        .await
        .expect("lab LAN (needs root)");
    // The host sits on the LAN: `--interface` alone is enough, the rest comes from the kernel.
    lan.add_host_address(Ipv4Addr::new(10, 215, 7, 254))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap().to_string();
    let network = format!("decnet_{tag}");
    // Its own label, network and host link: never a real deployment's.
    let label = format!("test-{tag}");
    let link = format!("dm-{tag}");
    let common = [
        "--data-dir",
        &data_dir,
        "--network-name",
        &network,
        "--host-label",
        &label,
        "--host-link-name",
        &link,
    ];

    let mut args = vec![
        "deploy",
        "--interface",
        &lan.parent,
        "--deckies",
        "5",
        "--randomize-services",
        "--seed",
        "5",
    ];
    args.extend_from_slice(&common);
    let out = ok(&decnet(&args));
    assert_eq!(out.matches(" up").count(), 5, "{out}");
    // The host-side link lets this host reach its own deckies.
    assert!(has_link(&link));

    let mut status = vec!["status", "--json"];
    status.extend_from_slice(&common);
    let v: serde_json::Value = serde_json::from_str(&ok(&decnet(&status))).unwrap();
    let deckies = v["deckies"].as_array().unwrap();
    assert_eq!(deckies.len(), 5);
    for d in deckies {
        let name = d["name"].as_str().unwrap();
        assert_eq!(
            v["runtime"][name]["running"], true,
            "{name}: {}",
            v["runtime"][name]
        );
        // The attacker reaches every service port that speaks TCP.
        let ip: Ipv4Addr = d["ip"].as_str().unwrap().parse().unwrap();
        assert_ne!(
            ip,
            Ipv4Addr::new(10, 215, 7, 254),
            "never the host's own address"
        );
        for svc in d["services"].as_array().unwrap() {
            let spec = decnet_core::registry::service(svc.as_str().unwrap()).unwrap();
            if let Some(p) = spec
                .ports
                .iter()
                .find(|p| p.protocol == decnet_core::registry::Protocol::Tcp)
            {
                let r =
                    lab::probe_tcp(&lan.netns, ip, p.port, None, Duration::from_secs(3)).unwrap();
                assert!(r.open, "{name} {svc} {}/tcp", p.port);
            }
        }
        // And so does this host, through its host-side macvlan link.
        let port = d["services"].as_array().unwrap().iter().find_map(|s| {
            decnet_core::registry::service(s.as_str().unwrap())
                .unwrap()
                .ports
                .iter()
                .find(|p| p.protocol == decnet_core::registry::Protocol::Tcp)
                .map(|p| p.port)
        });
        if let Some(port) = port {
            std::net::TcpStream::connect_timeout(&(ip, port).into(), Duration::from_secs(3))
                .unwrap_or_else(|e| panic!("host -> {name} {ip}:{port}: {e}"));
        }
    }
    let mut table = vec!["status"];
    table.extend_from_slice(&common);
    let text = ok(&decnet(&table));
    assert_eq!(text.matches(" up ").count(), 5, "{text}");

    // Redeploying the same request without --seed draws nothing anew: every decky keeps its
    // hostname, address and services, so no container is recreated.
    let ids = || {
        let out = Command::new("docker")
            .args([
                "ps",
                "-aq",
                "--no-trunc",
                "--filter",
                &format!("label=decnet.host={label}"),
            ])
            .output()
            .unwrap();
        let mut ids: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        ids.sort();
        ids
    };
    let before = ids();
    assert!(before.len() > 5, "{before:?}");
    let mut again = args[..args.len() - 2 - common.len()].to_vec();
    assert_eq!(again.last(), Some(&"--randomize-services"));
    again.extend_from_slice(&common);
    let out = ok(&decnet(&again));
    assert_eq!(out.matches(" up").count(), 5, "{out}");
    assert_eq!(ids(), before, "an unchanged redeploy recreated containers");
    let v2: serde_json::Value = serde_json::from_str(&ok(&decnet(&status))).unwrap();
    assert_eq!(v2["deckies"], v["deckies"]);

    // Adding keeps the others and their containers.
    let mut add = vec!["deploy", "--add", "--deckies", "1", "--services", "vnc"];
    add.extend_from_slice(&common);
    let out = ok(&decnet(&add));
    assert!(
        out.contains("decky-06") && out.matches(" up").count() == 6,
        "{out}"
    );

    // Bad input: exit 2, nothing changed.
    let mut bad = vec!["teardown", "--id", "Nope"];
    bad.extend_from_slice(&common);
    assert_eq!(decnet(&bad).status.code(), Some(2));
    let mut unknown = vec!["teardown", "--id", "nope"];
    unknown.extend_from_slice(&common);
    assert_eq!(decnet(&unknown).status.code(), Some(1), "not found exits 1");
    let mut neither = vec!["teardown"];
    neither.extend_from_slice(&common);
    assert_eq!(decnet(&neither).status.code(), Some(2));

    let mut one = vec!["teardown", "--id", "decky-06"];
    one.extend_from_slice(&common);
    ok(&decnet(&one));
    let v: serde_json::Value = serde_json::from_str(&ok(&decnet(&status))).unwrap();
    assert_eq!(v["deckies"].as_array().unwrap().len(), 5);

    let mut all = vec!["teardown", "--all"];
    all.extend_from_slice(&common);
    ok(&decnet(&all));
    assert!(!has_link(&link), "the host link is removed");
    let out = Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            "label=decnet.managed=true",
            "--filter",
            &format!("label=decnet.host={label}"),
        ])
        .output()
        .unwrap();
    assert!(out.stdout.is_empty(), "no DECNET container stays");
    let nets = Command::new("docker")
        .args([
            "network",
            "ls",
            "-q",
            "--filter",
            &format!("name={network}"),
        ])
        .output()
        .unwrap();
    assert!(nets.stdout.is_empty(), "the network is removed");
    let v: serde_json::Value = serde_json::from_str(&ok(&decnet(&status))).unwrap();
    assert_eq!(v["deployed"], false);
    lan.destroy().await.unwrap();
}

#[test]
fn demo_unihost_shows_three_recognisable_deckies_and_cleans_up() {
    let out = ok(&decnet(&["demo", "--unihost"]));
    assert!(out.contains("SSH-2.0-OpenSSH_"), "{out}");
    assert_demo_shows_detection(&out);
    assert!(out.contains("6379/redis     +PONG"), "{out}");
    assert!(out.contains("MySQL handshake v10"), "{out}");
    // The Windows decky answers with TTL 128, the Linux ones with 64.
    let tag = demo_tag(&out);
    let [web, ws, _] = demo_names(&tag);
    let seen = out.split("What the attacker").nth(1).expect("probe table");
    let ws = seen
        .lines()
        .find(|l| l.starts_with(&format!("{ws} ")))
        .expect("ws row");
    assert!(ws.split_whitespace().nth(2) == Some("128"), "{ws}");
    let web = seen
        .lines()
        .find(|l| l.starts_with(&format!("{web} ")))
        .expect("web row");
    assert!(web.split_whitespace().nth(2) == Some("64"), "{web}");
    assert!(out.contains("Removed 3 deckies"), "{out}");
    let left = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&left.stdout).contains(&format!("decnet-lab-{tag}")));
}

/// The demo ends by showing what DECNET recorded of its attacker: the HTTP and the SSH login
/// (setup installs ssh and sshpass), with the credentials tried, refused.
fn assert_demo_shows_detection(out: &str) {
    let report = out
        .split("What DECNET recorded of the attacker")
        .nth(1)
        .unwrap_or_else(|| panic!("no detection report: {out}"));
    assert!(
        report.contains("http  credentials admin / Summer2024! (basic), refused"),
        "{report}"
    );
    assert!(
        report.contains("ssh   credentials root / toor (password), refused"),
        "{report}"
    );
    let [web, _, _] = demo_names(&demo_tag(out));
    assert!(report.contains(&format!("{web} — ")), "{report}");
}

/// The names of a demo's three deckies: its roles web, ws and db carry the run's lab tag, so
/// demos running at once on one daemon never share a container name.
fn demo_names(tag: &str) -> [String; 3] {
    let suffix = tag.strip_prefix("demo").expect("a demo tag");
    ["web", "ws", "db"].map(|role| format!("{role}-{suffix}"))
}

/// The lab tag a demo printed (`… attacker namespace decnet-lab-<tag>)`).
fn demo_tag(stdout: &str) -> String {
    stdout
        .split("attacker namespace decnet-lab-")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .expect("tag")
        .to_string()
}

/// The default demo: a master, a real `decnet-agent` enrolled with it, the deploy and the
/// clean-up through the operator API, the deckies probed from the attacker namespace.
#[test]
fn demo_runs_a_master_and_an_enrolled_agent_and_cleans_up() {
    let out = decnet(&["demo"]);
    let stdout = ok(&out);
    assert!(
        stdout.contains("Master: operator API http://127.0.0.1:"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Worker worker-1: decnet-agent enrolled"),
        "{stdout}"
    );
    assert!(stdout.contains("(mode swarm;"), "{stdout}");
    let names = demo_names(&demo_tag(&stdout));
    for name in &names {
        assert!(
            stdout.contains(&format!("{name} deploy succeeded")),
            "{stdout}"
        );
        assert!(
            stdout.contains(&format!("{name} teardown succeeded")),
            "{stdout}"
        );
    }
    // The master's view: every decky on the worker, running.
    let fleet = stdout
        .split("The fleet, as the master sees it:")
        .nth(1)
        .expect("fleet table");
    for name in &names {
        let row = fleet
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} row: {fleet}"));
        assert!(row.contains("worker-1") && row.contains("running"), "{row}");
    }
    assert!(stdout.contains("SSH-2.0-OpenSSH_"), "{stdout}");
    assert!(stdout.contains("MySQL handshake v10"), "{stdout}");
    assert_demo_shows_detection(&stdout);
    let seen = stdout
        .split("What the attacker")
        .nth(1)
        .expect("probe table");
    let ws = seen
        .lines()
        .find(|l| l.starts_with(&format!("{} ", names[1])))
        .expect("ws row");
    assert!(ws.split_whitespace().nth(2) == Some("128"), "{ws}");
    assert!(
        stdout.contains("Removed 3 deckies (through the master)"),
        "{stdout}"
    );
    assert_swarm_demo_left_nothing(&demo_tag(&stdout));
}

/// Nothing of a swarm demo is left: its lab namespace, its deckies' network and containers,
/// its files, its agent process.
fn assert_swarm_demo_left_nothing(tag: &str) {
    let left = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&left.stdout).contains(&format!("decnet-lab-{tag}")));
    let nets = Command::new("docker")
        .args(["network", "ls", "--format", "{{.Name}}"])
        .output()
        .unwrap();
    let nets = String::from_utf8_lossy(&nets.stdout);
    assert!(!nets.contains(&format!("decnet_{tag}")), "{nets}");
    let containers = Command::new("docker")
        .args(["ps", "-a", "--format", "{{.Names}}"])
        .output()
        .unwrap();
    let containers = String::from_utf8_lossy(&containers.stdout);
    let names = demo_names(tag);
    assert!(
        !containers
            .lines()
            .any(|n| names.iter().any(|d| d == n.split('.').next().unwrap_or(n))),
        "{containers}"
    );
    let work = std::env::temp_dir().join(format!("decnet-{tag}"));
    assert!(!work.exists());
    let agents = Command::new("pgrep")
        .args(["-f", &work.join("agent").display().to_string()])
        .output()
        .unwrap();
    assert!(agents.stdout.is_empty(), "an agent process is left");
}

#[test]
fn demo_without_the_agent_binary_says_so_and_exits_2() {
    let out = decnet(&["demo", "--agent-bin", "/nonexistent/decnet-agent"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent/decnet-agent") && err.contains("--unihost"),
        "{err}"
    );
}

/// Ctrl-C in the middle of the demo (here: while the worker deploys) removes everything it
/// had started, the agent process included, and exits 1 saying so.
#[test]
fn demo_interrupted_mid_deploy_cleans_up() {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(env!("CARGO_BIN_EXE_decnet"))
        .arg("demo")
        .env("DECNET_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run decnet");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.ends_with(" deploy running") {
            break;
        }
    }
    assert!(seen.contains(" deploy running"), "{seen}");
    let tag = demo_tag(&seen);
    // The worker is creating the deckies' containers now.
    std::thread::sleep(Duration::from_millis(1500));
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    for line in lines {
        seen.push_str(&line.unwrap());
        seen.push('\n');
    }
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(1), "{seen}\n{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(
        seen.contains("Removed 3 deckies (by their labels)"),
        "{seen}"
    );
    assert_swarm_demo_left_nothing(&tag);
}

/// `decnet attacks` on a unihost fleet: touches from the attacker namespace are shown with
/// what the persona captured; a second run shows each event once more (not twice); a mutate
/// removes the service's container, and what it saw stays; filters and bad filter values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attacks_shows_each_touch_once_and_keeps_it_across_a_mutate() {
    let tag = format!("atk{}", std::process::id() % 10000);
    let _ = lab::destroy_by_tag(&tag).await;
    let subnet = Ipv4Net::new(Ipv4Addr::new(10, 215, 31, 0), 24).unwrap();
    let lan = LabLan::create(&tag, subnet)
        .await
        .expect("lab LAN (needs root)");
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap().to_string();
    let network = format!("decnet_{tag}");
    let label = format!("test-{tag}");
    let common = [
        "--data-dir",
        &data_dir,
        "--network-name",
        &network,
        "--host-label",
        &label,
        "--no-host-link",
    ];
    let name = format!("atk-{tag}");
    let ini = dir.path().join("fleet.ini");
    std::fs::write(&ini, format!("[{name}]\nservices=ftp\n")).unwrap();
    let gateway = lan.gateway.to_string();
    let host_ip = lan.subnet.hosts().last().unwrap().to_string();
    let mut deploy = vec![
        "deploy",
        "--interface",
        &lan.parent,
        "--subnet",
        "10.215.31.0/24",
        "--gateway",
        &gateway,
        "--host-ip",
        &host_ip,
        "--config",
        ini.to_str().unwrap(),
    ];
    deploy.extend_from_slice(&common);
    ok(&decnet(&deploy));
    let mut status = vec!["status", "--json"];
    status.extend_from_slice(&common);
    let v: serde_json::Value = serde_json::from_str(&ok(&decnet(&status))).unwrap();
    let ip: Ipv4Addr = v["deckies"][0]["ip"].as_str().unwrap().parse().unwrap();

    let touch = |user: &str| {
        let r = lab::probe_tcp(
            &lan.netns,
            ip,
            21,
            Some(format!("USER {user}\r\nPASS pw-{user}\r\nQUIT\r\n").into_bytes()),
            Duration::from_secs(3),
        )
        .unwrap();
        assert!(r.open);
    };
    // The events of `decnet attacks --json [extra]`, once `want` disconnects are there
    // (the decky writes its disconnect just after the attacker's side closes).
    let attacks = |extra: &[&str], want: usize| -> Vec<serde_json::Value> {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let mut args = vec!["attacks", "--json"];
            args.extend_from_slice(extra);
            args.extend_from_slice(&common);
            let events: Vec<serde_json::Value> = ok(&decnet(&args))
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            let done = events.iter().filter(|e| e["kind"] == "disconnect").count();
            if done >= want || std::time::Instant::now() > deadline {
                return events;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    };

    touch("root");
    let events = attacks(&[], 1);
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["kind"].as_str()).collect();
    assert_eq!(kinds, ["connect", "disconnect"], "{events:?}");
    let done = &events[1];
    assert_eq!(done["decky"], name.as_str());
    assert_eq!(done["service"], "ftp");
    assert_eq!(done["host"], "local");
    assert_eq!(done["src_ip"], lan.attacker_ip.to_string());
    assert_eq!(done["details"]["username"], "root");
    assert_eq!(done["session"], events[0]["session"]);

    // Shown again, once.
    assert_eq!(attacks(&[], 1), events);

    // A mutate that drops ftp removes its container: what it saw is collected first and stays.
    touch("admin");
    let mut mutate = vec!["mutate", name.as_str(), "--services", "http"];
    mutate.extend_from_slice(&common);
    ok(&decnet(&mutate));
    let after = attacks(&[], 2);
    let users: Vec<&str> = after
        .iter()
        .filter(|e| e["kind"] == "disconnect")
        .filter_map(|e| e["details"]["username"].as_str())
        .collect();
    assert_eq!(users, ["root", "admin"], "{after:?}");
    let ids: std::collections::BTreeSet<&str> =
        after.iter().filter_map(|e| e["id"].as_str()).collect();
    assert_eq!(ids.len(), after.len(), "each event once");

    // Filters; the table escapes and names each touch.
    let only = attacks(&["--kind", "disconnect", "--decky", &name], 2);
    assert_eq!(only.len(), 2, "{only:?}");
    assert!(attacks(&["--service", "ssh"], 0).is_empty());
    let mut table = vec!["attacks"];
    table.extend_from_slice(&common);
    let text = ok(&decnet(&table));
    assert!(text.contains(&format!("{name}/ftp")), "{text}");
    assert!(text.contains("user=admin"), "{text}");
    let mut who = vec!["attackers", "--json"];
    who.extend_from_slice(&common);
    let profiles: serde_json::Value = serde_json::from_str(&ok(&decnet(&who))).unwrap();
    let me = &profiles["attackers"][0];
    assert_eq!(me["src_ip"], lan.attacker_ip.to_string(), "{profiles}");
    assert_eq!(
        me["usernames"],
        serde_json::json!(["admin", "root"]),
        "{profiles}"
    );
    let mut bad = vec!["attacks", "--kind", "teleport"];
    bad.extend_from_slice(&common);
    let out = decnet(&bad);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--kind"));

    let mut down = vec!["teardown", "--all"];
    down.extend_from_slice(&common);
    ok(&decnet(&down));
    lan.destroy().await.unwrap();
}

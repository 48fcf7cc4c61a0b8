//! `decnet deploy --dry-run` and the registry listings, run as the real binary.

use std::process::{Command, Output};

use decnet_core::model::DecnetConfig;

fn decnet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_decnet"))
        .args(args)
        .env("DECNET_LOG", "debug")
        .env_remove("DECNET_INTERFACE")
        .output()
        .expect("run decnet")
}

/// Network flags for an interface that does not exist: planning must never touch it.
const LAB: &[&str] = &[
    "--interface",
    "veth-nowhere",
    "--subnet",
    "10.77.0.0/24",
    "--gateway",
    "10.77.0.1",
    "--host-ip",
    "10.77.0.2",
];

fn dry_run_json(extra: &[&str]) -> DecnetConfig {
    let mut args = vec!["deploy", "--dry-run", "--json"];
    args.extend_from_slice(LAB);
    args.extend_from_slice(extra);
    let out = decnet(&args);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Logs (DECNET_LOG=debug) go to stderr: stdout is exactly the JSON.
    serde_json::from_slice(&out.stdout).expect("stdout is a DecnetConfig")
}

#[test]
fn plans_from_flags_without_touching_the_interface() {
    let c = dry_run_json(&["--deckies", "4", "--randomize-services", "--seed", "9"]);
    assert_eq!(c.interface, "veth-nowhere");
    assert_eq!(c.deckies.len(), 4);
    let ips: Vec<String> = c.deckies.iter().map(|d| d.ip.to_string()).collect();
    assert_eq!(ips, ["10.77.0.3", "10.77.0.4", "10.77.0.5", "10.77.0.6"]);
    decnet_core::model::validate_config(&c).unwrap();
    // The same seed plans the same fleet.
    assert_eq!(
        c,
        dry_run_json(&["--deckies", "4", "--randomize-services", "--seed", "9"])
    );
}

#[test]
fn plans_from_an_ini_file() {
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("fleet.ini");
    std::fs::write(
        &ini,
        "[general]\nnet=10.88.0.0/24\ngw=10.88.0.254\ninterface=veth-ini\n\n\
         [dc]\nip=10.88.0.10\narchetype=domain-controller\n\n\
         [web]\namount=2\nservices=http,ssh\n\n[web.http]\nserver_header=nginx\n",
    )
    .unwrap();
    let out = decnet(&[
        "deploy",
        "--dry-run",
        "--json",
        "--host-ip",
        "10.88.0.2",
        "--config",
        ini.to_str().unwrap(),
        "--ipvlan",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let c: DecnetConfig = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(c.interface, "veth-ini");
    assert_eq!(c.gateway.to_string(), "10.88.0.254");
    assert!(c.ipvlan);
    let names: Vec<_> = c
        .deckies
        .iter()
        .map(|d| (d.name.to_string(), d.ip.to_string()))
        .collect();
    assert_eq!(
        names,
        [
            ("dc".into(), "10.88.0.10".into()),
            ("web-01".into(), "10.88.0.1".into()),
            ("web-02".into(), "10.88.0.3".into())
        ]
    );
    assert_eq!(
        c.deckies[1].service_config["http"]["server_header"],
        "nginx"
    );
}

#[test]
fn human_output_is_a_table() {
    let mut args = vec![
        "deploy",
        "--dry-run",
        "--deckies",
        "2",
        "--archetype",
        "printer",
    ];
    args.extend_from_slice(LAB);
    let out = decnet(&args);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("decky-01") && text.contains("snmp,ftp") && text.contains("embedded"),
        "{text}"
    );
}

#[test]
fn bad_input_exits_2_naming_the_field_and_rule() {
    let dir = tempfile::tempdir().unwrap();
    let bad_ini = dir.path().join("bad.ini");
    std::fs::write(&bad_ini, "[web]\namount=3\nip=10.77.0.9\n").unwrap();
    let bad_ini = bad_ini.to_str().unwrap().to_string();
    let table: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--services", "ssh"], "--deckies: required"),
        (vec!["--deckies", "2"], "services: none chosen"),
        (
            vec!["--deckies", "1", "--services", "gopher"],
            "\"gopher\" is not a known service",
        ),
        (
            vec!["--deckies", "1", "--services", "http,https"],
            "port clash",
        ),
        (
            vec!["--deckies", "1", "--archetype", "mainframe"],
            "is not a known archetype",
        ),
        (
            vec![
                "--deckies",
                "1",
                "--services",
                "ssh",
                "--ip-start",
                "10.1.1.1",
            ],
            "ip_start: 10.1.1.1 is not inside subnet",
        ),
        (
            vec!["--deckies", "300", "--services", "ssh"],
            "not enough free IPs in 10.77.0.0/24: 300 wanted, 252 free",
        ),
        (
            vec![
                "--deckies",
                "1",
                "--services",
                "ssh",
                "--subnet",
                "10.77.0.0/33",
            ],
            "--subnet: \"10.77.0.0/33\" is not an IPv4 CIDR",
        ),
        (
            vec![
                "--deckies",
                "1",
                "--services",
                "ssh",
                "--gateway",
                "10.9.9.9",
            ],
            "gateway: \"10.9.9.9\" is not inside subnet 10.77.0.0/24",
        ),
        (
            vec!["--deckies", "1", "--services", "ssh", "--interface", "a/b"],
            "interface: \"a/b\" is not a valid interface name",
        ),
        (
            vec!["--config", "/nonexistent/fleet.ini"],
            "--config /nonexistent/fleet.ini",
        ),
        (
            vec!["--config", &bad_ini],
            "cannot be combined with amount > 1",
        ),
        (vec!["--deckies", "abc"], "invalid value 'abc'"),
        (
            vec!["--deckies", "1", "--services", "ssh", "--mode", "cluster"],
            "invalid value 'cluster'",
        ),
    ];
    for (extra, expect) in table {
        // The case's own network flags replace LAB's.
        let mut args = vec!["deploy", "--dry-run"];
        for pair in LAB.chunks(2) {
            if !extra.contains(&pair[0]) {
                args.extend_from_slice(pair);
            }
        }
        args.extend_from_slice(&extra);
        let out = decnet(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {stderr}");
        assert!(
            stderr.contains(expect),
            "{extra:?}\n  got: {stderr}\n want: {expect}"
        );
        assert!(out.stdout.is_empty(), "{extra:?} printed to stdout");
    }
}

#[test]
fn listings() {
    for (cmd, count) in [("services", 29), ("archetypes", 15), ("distros", 9)] {
        let out = decnet(&[cmd, "--json"]);
        assert!(out.status.success());
        let v: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v.len(), count, "{cmd}");
        let table = decnet(&[cmd]);
        assert!(table.status.success() && !table.stdout.is_empty());
    }
}

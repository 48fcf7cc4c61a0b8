//! `decnet init`, run as the real binary against temporary directories (never the system's
//! paths: `--systemd` always gets `--systemd-dir` and `--agent-env`).
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use decnet_core::model::Role;
use decnet_master_bin::master::layout::{token_hash, DataDir};

mod common;

fn decnet(args: &[&str]) -> Output {
    common::decnet_cmd("debug", args)
}

fn ok(args: &[&str]) -> String {
    common::decnet_ok("debug", args)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The hex after "fingerprint " on the CA line.
fn ca_fingerprint(stdout: &str) -> String {
    let line = stdout.lines().find(|l| l.starts_with("CA: ")).unwrap();
    let rest = &line[line.find("fingerprint ").unwrap() + "fingerprint ".len()..];
    rest.chars().take_while(char::is_ascii_hexdigit).collect()
}

fn admin_role(layout: &DataDir, token: &str) -> Option<Role> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let repo = decnet_store::open(&layout.default_db_url()).await.unwrap();
        repo.api_token_by_hash(&token_hash(token))
            .await
            .unwrap()
            .map(|t| t.role)
    })
}

#[test]
fn init_is_idempotent_and_prints_the_token_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let d = dir.to_str().unwrap();
    let layout = DataDir::new(std::fs::canonicalize(tmp.path()).unwrap().join("data"));

    let first = ok(&["init", "--data-dir", d]);
    let token_line = first
        .lines()
        .find(|l| l.starts_with("admin token: dnt_"))
        .unwrap_or_else(|| panic!("token printed on first run:\n{first}"));
    let token = token_line.trim_start_matches("admin token: ");
    assert_eq!(
        std::fs::read_to_string(layout.admin_token())
            .unwrap()
            .trim(),
        token
    );
    assert_eq!(admin_role(&layout, token), Some(Role::Admin));

    assert_eq!(mode(layout.path()), 0o700);
    for secret in [layout.ca_key(), layout.master_key(), layout.admin_token()] {
        assert_eq!(mode(&secret), 0o600, "{}", secret.display());
    }
    assert_eq!(mode(&layout.ca_cert()), 0o644);
    assert_eq!(mode(&layout.master_cert()), 0o644);
    assert!(layout.sqlite_path().exists());
    // The database holds host addresses, token hashes and the fleet: owner-only like the keys.
    assert_eq!(mode(&layout.sqlite_path()), 0o600);

    // The master certificate chains to the CA and is decnet-master's.
    let ca_pem = std::fs::read_to_string(layout.ca_cert()).unwrap();
    let master_pem = std::fs::read_to_string(layout.master_cert()).unwrap();
    let der = decnet_tls::pki::parse_cert_pem(&master_pem).unwrap();
    let info = decnet_tls::pki::cert_info(&der).unwrap();
    assert_eq!(info.cn.as_deref(), Some("decnet-master"));
    assert!(info
        .sans
        .contains(&decnet_tls::pki::San::Ip("127.0.0.1".parse().unwrap())));
    assert!(info
        .sans
        .contains(&decnet_tls::pki::San::Ip("::1".parse().unwrap())));

    let ca_key = std::fs::read(layout.ca_key()).unwrap();
    let master_key = std::fs::read(layout.master_key()).unwrap();
    let second = ok(&["init", "--data-dir", d]);
    assert!(!second.contains("dnt_"), "token printed again:\n{second}");
    assert!(
        second.contains("admin token: already initialized"),
        "{second}"
    );
    assert!(second.contains("CA: already initialized"), "{second}");
    assert!(
        second.contains("master certificate: already initialized"),
        "{second}"
    );
    assert_eq!(ca_fingerprint(&first), ca_fingerprint(&second));
    assert_eq!(
        ca_fingerprint(&first),
        decnet_tls::pki::fingerprint_pem(&ca_pem).unwrap()
    );
    assert_eq!(std::fs::read_to_string(layout.ca_cert()).unwrap(), ca_pem);
    assert_eq!(std::fs::read(layout.ca_key()).unwrap(), ca_key);
    assert_eq!(
        std::fs::read_to_string(layout.master_cert()).unwrap(),
        master_pem
    );
    assert_eq!(std::fs::read(layout.master_key()).unwrap(), master_key);
    assert_eq!(
        std::fs::read_to_string(layout.admin_token())
            .unwrap()
            .trim(),
        token
    );

    // A widened key is tightened again.
    std::fs::set_permissions(layout.ca_key(), std::fs::Permissions::from_mode(0o644)).unwrap();
    let third = ok(&["init", "--data-dir", d]);
    assert!(third.contains("tightened"), "{third}");
    assert_eq!(mode(&layout.ca_key()), 0o600);

    // --force-token: a new token, printed once; the old one no longer works.
    let forced = ok(&["init", "--data-dir", d, "--force-token"]);
    let new_token = forced
        .lines()
        .find_map(|l| l.strip_prefix("admin token: dnt_"))
        .map(|t| format!("dnt_{t}"))
        .unwrap_or_else(|| panic!("{forced}"));
    assert_ne!(new_token, token);
    assert_eq!(admin_role(&layout, &new_token), Some(Role::Admin));
    assert_eq!(admin_role(&layout, token), None);
    assert_eq!(
        std::fs::read_to_string(layout.admin_token())
            .unwrap()
            .trim(),
        new_token
    );
}

#[test]
fn init_refuses_half_or_foreign_pki() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap();
    ok(&["init", "--data-dir", d]);
    let layout = DataDir::new(tmp.path());

    // A master certificate of another CA.
    let other = decnet_tls::pki::Ca::generate("OTHER CA").unwrap();
    let foreign = other
        .issue_keypair(&decnet_tls::pki::LeafSpec::master(vec![]))
        .unwrap();
    let saved = std::fs::read_to_string(layout.master_cert()).unwrap();
    std::fs::write(layout.master_cert(), &foreign.cert_pem).unwrap();
    let out = decnet(&["init", "--data-dir", d]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a master certificate issued by"), "{err}");
    std::fs::write(layout.master_cert(), saved).unwrap();

    // A key without its certificate.
    std::fs::remove_file(layout.master_cert()).unwrap();
    let out = decnet(&["init", "--data-dir", d]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("master.key exists but"), "{err}");

    // A store URL it cannot use.
    let out = decnet(&["init", "--data-dir", d, "--db", "mysql://x"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn init_systemd_writes_units_and_reaper_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(tmp.path()).unwrap();
    let data = root.join("data");
    let units = root.join("units");
    let env = root.join("etc/agent.env");
    std::fs::create_dir_all(env.parent().unwrap()).unwrap();
    std::fs::write(&env, "DECNET_INTERFACE=eth0\nDECNET_REAPER_PATHS=/old\n").unwrap();
    let args = [
        "init",
        "--data-dir",
        data.to_str().unwrap(),
        "--systemd",
        "--systemd-dir",
        units.to_str().unwrap(),
        "--agent-env",
        env.to_str().unwrap(),
    ];
    let first = ok(&args);
    assert!(
        first.contains("systemctl daemon-reload && systemctl enable --now decnet.target"),
        "{first}"
    );

    let exe = std::fs::canonicalize(env!("CARGO_BIN_EXE_decnet")).unwrap();
    let agent = exe.parent().unwrap().join("decnet-agent");
    let master_unit = std::fs::read_to_string(units.join("decnet-master.service")).unwrap();
    assert!(master_unit.contains(&format!(
        "ExecStart={} serve --data-dir {} --no-local\n",
        exe.display(),
        data.display()
    )));
    for line in [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
        "Restart=on-failure",
        &format!("ReadWritePaths={}", data.display()),
    ] {
        assert!(master_unit.contains(&format!("{line}\n")), "{line}");
    }
    let agent_unit = std::fs::read_to_string(units.join("decnet-agent.service")).unwrap();
    assert!(agent_unit.contains(&format!("ExecStart={} serve\n", agent.display())));
    assert!(agent_unit.contains("AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW\n"));
    assert!(agent_unit.contains("CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW\n"));
    assert!(agent_unit.contains(&format!("EnvironmentFile=-{}\n", env.display())));
    let target = std::fs::read_to_string(units.join("decnet.target")).unwrap();
    assert!(target.contains("Wants=decnet-master.service decnet-agent.service\n"));
    for unit in [
        "decnet-master.service",
        "decnet-agent.service",
        "decnet.target",
    ] {
        assert_eq!(mode(&units.join(unit)), 0o644, "{unit}");
    }

    let env_text = std::fs::read_to_string(&env).unwrap();
    assert!(
        env_text.starts_with("DECNET_INTERFACE=eth0\n"),
        "{env_text}"
    );
    let reaper: Vec<&str> = env_text
        .lines()
        .filter_map(|l| l.strip_prefix("DECNET_REAPER_PATHS="))
        .collect();
    assert_eq!(reaper.len(), 1, "{env_text}");
    let paths: Vec<&str> = reaper[0].split(':').collect();
    for unit in [
        "decnet-master.service",
        "decnet-agent.service",
        "decnet.target",
    ] {
        let p = units.join(unit);
        assert!(paths.contains(&p.to_str().unwrap()), "{unit}: {paths:?}");
    }
    assert!(paths.contains(&agent.to_str().unwrap()), "{paths:?}");
    assert!(paths.contains(&exe.to_str().unwrap()), "{paths:?}");
    assert!(!paths.contains(&"/old"));
    assert!(paths.iter().all(|p| p.starts_with('/')));

    // Idempotent: a second run changes nothing.
    let second = ok(&args);
    assert!(!second.contains("wrote "), "{second}");
    assert!(second.contains("unchanged"), "{second}");
    assert_eq!(std::fs::read_to_string(&env).unwrap(), env_text);

    // --systemd-dir without --systemd is a usage error.
    let out = decnet(&[
        "init",
        "--data-dir",
        data.to_str().unwrap(),
        "--systemd-dir",
        units.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
}

/// `systemd-analyze security --offline=yes --threshold=<max>` on one unit file: passes when
/// its exposure is at most `max` (tenths: 30 is the 3.0 it prints). Returns the score line.
fn security(unit: &Path, max: &str) -> String {
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(format!("--threshold={max}"))
        .arg(unit)
        .output()
        .expect("systemd-analyze is installed (scripts/setup: systemd)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let score = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no score for {}:\n{text}", unit.display()))
        .to_string();
    assert!(
        out.status.success(),
        "{} scores above {max}: {score}\n{text}\n{}",
        unit.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    score
}

/// The units the real `decnet init --systemd` writes pass `systemd-analyze verify` and the
/// exposure thresholds of docs/operations.md: a master without local deckies ≤ 3.0, a master
/// with local deckies and the agent ≤ 2.5 (they keep Docker and CAP_NET_ADMIN).
#[test]
fn init_systemd_units_pass_systemd_analyze() {
    for local in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(tmp.path()).unwrap();
        let data = root.join("data");
        let units = root.join("units");
        let env = root.join("etc/agent.env");
        // --db goes to the store init opens (kept in the temp dir) and to master.env.
        let db = format!("sqlite://{}", root.join("other.db").display());
        let mut args = vec![
            "init",
            "--data-dir",
            data.to_str().unwrap(),
            "--db",
            &db,
            "--systemd",
            "--systemd-dir",
            units.to_str().unwrap(),
            "--agent-env",
            env.to_str().unwrap(),
        ];
        if local {
            args.push("--local-deckies");
        }
        ok(&args);

        let master = units.join("decnet-master.service");
        let agent = units.join("decnet-agent.service");
        let target = units.join("decnet.target");
        let text = std::fs::read_to_string(&master).unwrap();
        assert_eq!(text.contains("--no-local"), !local, "{text}");
        assert_eq!(
            text.contains("After=network-online.target docker.service"),
            local
        );
        let doc = root.join("etc/operations.md");
        assert!(text.contains(&format!("Documentation=file:{}\n", doc.display())));
        assert!(std::fs::read_to_string(&doc)
            .unwrap()
            .starts_with("# Operating DECNET-rs"));
        // --db is recorded in the master's environment file, which stays owner-only.
        let master_env = root.join("etc/master.env");
        assert!(std::fs::read_to_string(&master_env)
            .unwrap()
            .contains(&format!("\nDECNET_DB={db}\n")));
        assert_eq!(mode(&master_env), 0o600);
        assert!(text.contains(&format!("EnvironmentFile=-{}\n", master_env.display())));

        let out = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .args([&master, &agent, &target])
            .output()
            .expect("systemd-analyze is installed");
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "systemd-analyze verify: {:?}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let m = security(&master, if local { "25" } else { "30" });
        let a = security(&agent, "25");
        eprintln!("local deckies {local}: master {m}; agent {a}");
    }
}

#![allow(clippy::unwrap_used)] // test helpers abort on a broken fixture
//! Operations (issue 19) against real processes: `decnet serve` and `decnet-agent serve` on
//! free loopback ports with their own temporary dirs — the metrics both expose (checked by
//! `promtool check metrics`), backup and restore of a running master.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

mod common;
use common::{free_port, target_bin, KillOnDrop as Proc};

fn decnet(args: &[&str]) -> Output {
    common::decnet_cmd("warn", args)
}

fn ok(args: &[&str]) -> String {
    common::decnet_ok("warn", args)
}

/// A real `decnet serve --no-local` on free loopback ports.
struct Master {
    _proc: Proc,
    api: String,
    swarm: String,
    admin: String,
}

fn serve(data: &Path) -> Master {
    serve_on(data, free_port(), free_port())
}

fn serve_on(data: &Path, api_port: u16, swarm_port: u16) -> Master {
    let api_bind = format!("127.0.0.1:{api_port}");
    let swarm_bind = format!("127.0.0.1:{swarm_port}");
    let child = Command::new(env!("CARGO_BIN_EXE_decnet"))
        .args([
            "serve",
            "--data-dir",
            data.to_str().unwrap(),
            "--api-bind",
            &api_bind,
            "--swarm-bind",
            &swarm_bind,
            "--no-local",
            "--heartbeat-interval",
            "1",
        ])
        .env("DECNET_LOG", "warn")
        .env_remove("DECNET_DB")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let m = Master {
        _proc: Proc(child),
        api: format!("http://{api_bind}"),
        swarm: format!("https://{swarm_bind}"),
        admin: std::fs::read_to_string(data.join("admin.token"))
            .unwrap()
            .trim()
            .to_string(),
    };
    let health = format!("{}/health", m.api);
    wait_until("the master to answer /health", || {
        rt().block_on(reqwest::get(&health))
            .is_ok_and(|r| r.status().is_success())
    });
    m
}

fn rt() -> tokio::runtime::Runtime {
    decnet_tls::install_default_provider();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..400 {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

fn get_text(url: &str, token: Option<&str>) -> String {
    rt().block_on(async {
        let mut r = reqwest::Client::new().get(url);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        let r = r.send().await.unwrap();
        assert!(r.status().is_success(), "{url}: {}", r.status());
        r.text().await.unwrap()
    })
}

fn hosts(m: &Master) -> Vec<Value> {
    let text = get_text(&format!("{}/api/v1/swarm/hosts", m.api), Some(&m.admin));
    serde_json::from_str(&text).unwrap()
}

/// Enrolls a real agent as `name` (to serve on `port`): its agent dir.
fn enroll(m: &Master, name: &str, port: u16) -> tempfile::TempDir {
    let t: Value = rt().block_on(async {
        let r = reqwest::Client::new()
            .post(format!("{}/api/v1/swarm/enroll-tokens", m.api))
            .bearer_auth(&m.admin)
            .json(&json!({"name": name, "address": format!("127.0.0.1:{port}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        r.json().await.unwrap()
    });
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(target_bin("decnet-agent"))
        .args([
            "enroll",
            "--master",
            &m.swarm,
            "--token",
            t["token"].as_str().unwrap(),
            "--agent-dir",
            dir.path().to_str().unwrap(),
        ])
        .env("DECNET_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

/// `decnet-agent serve` heartbeating every second, its metrics on `metrics_port`.
fn spawn_agent(agent_dir: &Path, state_dir: &Path, port: u16, metrics_port: u16) -> Proc {
    let child = Command::new(target_bin("decnet-agent"))
        .args([
            "serve",
            "--agent-dir",
            agent_dir.to_str().unwrap(),
            "--state-dir",
            state_dir.to_str().unwrap(),
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--heartbeat-interval",
            "1",
            "--network-name",
            "decnet_ops_test",
            "--metrics-bind",
            &format!("127.0.0.1:{metrics_port}"),
        ])
        .env("DECNET_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("decnet-agent is built");
    Proc(child)
}

/// `promtool check metrics` on `text`: no error, no lint problem.
fn promtool_check(what: &str, text: &str) {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed (scripts/setup: prometheus)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics on the {what}'s /metrics: {:?}\n{}{}\n{text}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The value of the sample `series` (name and labels as printed) in `text`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn master_and_agent_metrics_pass_promtool() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    ok(&["init", "--data-dir", data.to_str().unwrap()]);
    let m = serve(&data);
    let port = free_port();
    let metrics_port = free_port();
    let agent_dir = enroll(&m, "metrics-worker", port);
    let state_dir = tempfile::tempdir().unwrap();
    let _agent = spawn_agent(agent_dir.path(), state_dir.path(), port, metrics_port);
    wait_until("the host to be active", || {
        hosts(&m)[0]["status"] == "active"
    });

    let master_text = get_text(&format!("{}/metrics", m.api), None);
    promtool_check("master", &master_text);
    for (series, want) in [
        ("decnet_hosts{status=\"active\"}", 1.0),
        ("decnet_hosts{status=\"enrolled\"}", 0.0),
        ("decnet_enrollments_total", 1.0),
        ("decnet_deckies{state=\"running\"}", 0.0),
        (
            "decnet_lifecycle_open_rows{operation=\"deploy\",status=\"pending\"}",
            0.0,
        ),
        (
            &format!(
                "decnet_hosts_by_agent_version{{version=\"{}\"}}",
                env!("CARGO_PKG_VERSION")
            ),
            1.0,
        ),
    ] {
        assert_eq!(
            sample(&master_text, series),
            Some(want),
            "{series}\n{master_text}"
        );
    }
    assert!(sample(&master_text, "decnet_heartbeats_received_total").unwrap() >= 1.0);
    assert!(sample(
        &master_text,
        "decnet_host_heartbeat_age_seconds{status=\"active\"}"
    )
    .is_some());
    assert!(sample(&master_text, "decnet_process_resident_memory_bytes").unwrap() > 0.0);
    assert!(sample(&master_text, "decnet_process_open_fds").unwrap() > 0.0);
    assert!(sample(&master_text, "decnet_process_cpu_seconds_total").is_some());
    // No host or decky names, no addresses in labels.
    assert!(!master_text.contains("metrics-worker"), "{master_text}");
    assert!(!master_text.contains("127.0.0.1"), "{master_text}");

    let agent_text = get_text(&format!("http://127.0.0.1:{metrics_port}/metrics"), None);
    promtool_check("agent", &agent_text);
    for (series, want) in [
        ("decnet_agent_enrolled", 1.0),
        ("decnet_agent_queue_depth", 0.0),
        ("decnet_agent_outbox_depth", 0.0),
        ("decnet_agent_events_dropped_total", 0.0),
    ] {
        assert_eq!(
            sample(&agent_text, series),
            Some(want),
            "{series}\n{agent_text}"
        );
    }
    assert!(sample(&agent_text, "decnet_agent_event_spool_bytes").is_some());
    assert!(sample(&agent_text, "decnet_process_resident_memory_bytes").unwrap() > 0.0);
}

/// The value of `series` on the master's /metrics.
fn master_sample(m: &Master, series: &str) -> Option<f64> {
    sample(&get_text(&format!("{}/metrics", m.api), None), series)
}

/// A running master with an enrolled, heartbeating agent is backed up; the backup restored
/// into a new dir runs a master (on the swarm address the agent knows) that the agent keeps
/// heartbeating to: the CA, the master certificate and the worker's pin survived.
#[test]
fn a_restored_master_keeps_its_workers_trust() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    ok(&["init", "--data-dir", data.to_str().unwrap()]);
    let swarm_port = free_port();
    let m = serve_on(&data, free_port(), swarm_port);
    let port = free_port();
    let agent_dir = enroll(&m, "backup-worker", port);
    let state_dir = tempfile::tempdir().unwrap();
    let _agent = spawn_agent(agent_dir.path(), state_dir.path(), port, free_port());
    wait_until("the host to be active", || {
        hosts(&m)[0]["status"] == "active"
    });

    // Backed up while the master runs and the agent heartbeats.
    let backup = tmp.path().join("backup");
    let said = ok(&[
        "backup",
        "--data-dir",
        data.to_str().unwrap(),
        "--out",
        backup.to_str().unwrap(),
    ]);
    assert!(said.contains("copied online (VACUUM INTO)"), "{said}");
    for f in [
        "backup.json",
        "ca.crt",
        "ca.key",
        "master.crt",
        "master.key",
        "admin.token",
        "decnet.db",
    ] {
        assert!(backup.join(f).is_file(), "{f}: {said}");
    }
    for secret in ["ca.key", "master.key", "admin.token", "decnet.db"] {
        let mode = std::fs::metadata(backup.join(secret))
            .unwrap()
            .permissions();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.mode() & 0o777, 0o600, "{secret}");
    }
    assert!(!backup.join("master.json").exists());
    // A second backup into the same place is refused, naming --out.
    let again = decnet(&[
        "backup",
        "--data-dir",
        data.to_str().unwrap(),
        "--out",
        backup.to_str().unwrap(),
    ]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--out"));
    drop(m);

    // Bad input: exit 2 naming the field.
    let restored = tmp.path().join("restored");
    let bad = decnet(&[
        "restore",
        "--data-dir",
        restored.to_str().unwrap(),
        "--from",
        tmp.path().join("nope").to_str().unwrap(),
    ]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--from"));
    // Over a non-empty dir only with --force.
    let over = decnet(&[
        "restore",
        "--data-dir",
        data.to_str().unwrap(),
        "--from",
        backup.to_str().unwrap(),
    ]);
    assert_eq!(over.status.code(), Some(2));
    let err = String::from_utf8_lossy(&over.stderr);
    assert!(
        err.contains("--data-dir") && err.contains("--force"),
        "{err}"
    );

    let said = ok(&[
        "restore",
        "--data-dir",
        restored.to_str().unwrap(),
        "--from",
        backup.to_str().unwrap(),
    ]);
    assert!(said.contains("1 enrolled hosts"), "{said}");
    let m2 = serve_on(&restored, free_port(), swarm_port);
    assert_eq!(hosts(&m2).len(), 1);
    // The agent, never told, keeps heartbeating: the new master accepts it.
    wait_until(
        "the agent's heartbeats to reach the restored master",
        || master_sample(&m2, "decnet_heartbeats_received_total").is_some_and(|n| n >= 2.0),
    );
    assert_eq!(
        master_sample(&m2, "decnet_heartbeats_rejected_total"),
        Some(0.0)
    );
    assert_eq!(hosts(&m2)[0]["status"], "active");
}

/// A worker's mTLS client from its agent dir (what `decnet-agent` presents).
fn worker_client(agent_dir: &Path) -> reqwest::Client {
    let b = decnet_tls::pki::Bundle::load_worker_dir(agent_dir).unwrap();
    let policy = decnet_tls::verify::PeerPolicy::from_ca_pem(&b.ca_pem)
        .unwrap()
        .with_expected_cn("decnet-master");
    let tls = decnet_tls::verify::client_config(&b, &policy).unwrap();
    reqwest::Client::builder()
        .use_preconfigured_tls((*tls).clone())
        .build()
        .unwrap()
}

/// An agent newer than its master (a wire version the master does not speak) is refused with
/// 409 and a reason, which the host shows in the API and in `decnet hosts list`, and which a
/// metric counts; once it speaks the master's version again it is accepted and the mark goes.
/// An agent that predates `wire_version` (none sent) is spoken to as version 1.
#[test]
fn a_newer_wire_version_is_refused_and_shown_on_the_host() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    ok(&["init", "--data-dir", data.to_str().unwrap()]);
    let m = serve(&data);
    let agent_dir = enroll(&m, "future-worker", free_port());
    let uuid = hosts(&m)[0]["uuid"].as_str().unwrap().to_string();
    let beat = |version: &str, wire: Option<u32>| {
        let mut b = json!({"host_uuid": uuid, "agent_version": version,
            "status": {"deployed": false, "deckies": [], "taken_at": chrono::Utc::now(),
                "in_flight": []},
            "lifecycle": []});
        if let Some(w) = wire {
            b["wire_version"] = json!(w);
        }
        let c = worker_client(agent_dir.path());
        rt().block_on(async {
            let r = c
                .post(format!("{}/swarm/heartbeat", m.swarm))
                .json(&b)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        })
    };
    let newer = decnet_core::model::WIRE_VERSION + 1;
    let (status, body) = beat("9.0.0", Some(newer));
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("upgrade the master first"), "{body}");
    let h = &hosts(&m)[0];
    let why = h["version_error"].as_str().unwrap();
    assert!(
        why.contains("agent 9.0.0") && why.contains(&format!("wire version {newer}")),
        "{h}"
    );
    assert_eq!(
        h["status"], "enrolled",
        "a refused heartbeat does not make it active"
    );
    assert_eq!(
        master_sample(&m, "decnet_heartbeats_incompatible_total"),
        Some(1.0)
    );
    let listed = ok(&["hosts", "list", "--data-dir", data.to_str().unwrap()]);
    assert!(listed.contains("enrolled (incompatible)"), "{listed}");
    assert!(
        listed.contains("host future-worker: incompatible, heartbeats refused (agent 9.0.0"),
        "{listed}"
    );

    // An agent from before wire_version, and one of this version: both spoken to.
    assert_eq!(beat("0.0.9", None).0, 204);
    let h = &hosts(&m)[0];
    assert!(h.get("version_error").is_none(), "{h}");
    assert_eq!(h["agent_version"], "0.0.9");
    assert_eq!(h["status"], "active");
    assert_eq!(
        beat(
            env!("CARGO_PKG_VERSION"),
            Some(decnet_core::model::WIRE_VERSION)
        )
        .0,
        204
    );
    let listed = ok(&["hosts", "list", "--data-dir", data.to_str().unwrap()]);
    assert!(
        listed.contains(env!("CARGO_PKG_VERSION")) && !listed.contains("incompatible"),
        "{listed}"
    );
}

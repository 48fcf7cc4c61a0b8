#![allow(clippy::unwrap_used)] // test helpers abort on a broken fixture
//! The remote CLI: the real `decnet` binary against a real master (in process, SQLite, plain
//! HTTP on loopback) whose local deployer is faked. The binary finds the master through
//! `<data-dir>/master.json` and the token through `<data-dir>/admin.token`, as an operator's
//! would next to `decnet serve`.

use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use decnet_core::model::{DecnetConfig, Role};
use decnet_core::traits::{Deployer, MockHostNetwork, SystemClock};
use decnet_master_bin::master::layout::DataDir;
use decnet_master_bin::master::run::{self, MasterConfig, MasterDeps, RunningMaster};
use decnet_master_bin::master::state::MasterSettings;
use decnet_tls::pki::write_private;
mod common;
use common::{api_token, write_pki, FakeDeployer as Fake};
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

fn facts() -> MockHostNetwork {
    common::lan_facts(60)
}

struct TestMaster {
    running: RunningMaster,
    fake: Arc<Fake>,
    dir: tempfile::TempDir,
    shutdown: CancellationToken,
}

/// A master on loopback whose data dir holds the PKI, `admin.token` and `master.json`.
async fn start_master(fake: Fake) -> TestMaster {
    decnet_tls::install_default_provider();
    let dir = tempfile::tempdir().unwrap();
    let layout = DataDir::new(dir.path());
    write_pki(&layout);

    let repo = decnet_store::open(&layout.default_db_url()).await.unwrap();
    let admin = api_token(&repo, Role::Admin).await;
    write_private(&layout.admin_token(), admin.as_bytes()).unwrap();

    let cfg = MasterConfig {
        data_dir: layout.clone(),
        db_url: None,
        api_bind: "127.0.0.1:0".parse().unwrap(),
        swarm_bind: "127.0.0.1:0".parse().unwrap(),
        settings: MasterSettings {
            advertise: String::new(),
            ..MasterSettings::default()
        },
    };
    let api = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let swarm = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let shutdown = CancellationToken::new();
    let fake = Arc::new(fake);
    let deps = MasterDeps {
        repo,
        clock: Arc::new(SystemClock),
        local: Some(fake.clone() as Arc<dyn Deployer>),
        hostnet: Arc::new(facts()),
        local_events: None,
    };
    let running = run::start(&cfg, deps, api, swarm, shutdown.clone())
        .await
        .unwrap();
    run::write_master_json(&layout, &running.api_url, &running.swarm_url).unwrap();
    TestMaster {
        running,
        fake,
        dir,
        shutdown,
    }
}

impl TestMaster {
    fn data_dir(&self) -> String {
        self.dir.path().to_str().unwrap().to_string()
    }

    /// Runs `decnet ARGS --data-dir <the master's data dir>`.
    async fn decnet(&self, args: &[&str]) -> Output {
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        all.push("--data-dir".into());
        all.push(self.data_dir());
        decnet(all).await
    }

    /// `status --json`'s deckies (the one schema, here from the master).
    async fn status(&self) -> Vec<Value> {
        let out = ok(&self.decnet(&["status", "--json"]).await);
        let v = serde_json::from_str::<Value>(&out).unwrap();
        assert_eq!(v["source"], "master", "{v}");
        assert_eq!(v["master"], self.running.api_url.as_str(), "{v}");
        assert_eq!(v["runtime"], json!({}), "{v}");
        v["deckies"].as_array().unwrap().clone()
    }

    /// `GET path` on the operator API with the admin token: (status, body).
    async fn api_get(&self, path: &str) -> (u16, Value) {
        let token = std::fs::read_to_string(self.dir.path().join("admin.token")).unwrap();
        let url = format!(
            "{}{path}",
            self.running.api_url.as_str().trim_end_matches('/')
        );
        let r = reqwest::Client::new()
            .get(url)
            .bearer_auth(token.trim())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.running.join().await;
        drop(self.dir);
    }
}

/// The real binary, off the async workers (the master runs on them meanwhile).
async fn decnet(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_decnet"))
            .args(&args)
            .env("DECNET_LOG", "warn")
            .env_remove("DECNET_MASTER_URL")
            .env_remove("DECNET_TOKEN")
            .env_remove("DECNET_DATA_DIR")
            .env_remove("DECNET_INTERFACE")
            .env_remove("DECNET_INGEST_LOG_FILE")
            .output()
            .expect("run decnet")
    })
    .await
    .unwrap()
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(out: &Output) -> String {
    let (stdout, stderr) = text(out);
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {stdout}\nstderr: {stderr}",
        out.status.code()
    );
    stdout
}

/// Asserts the exit code and that stderr says `want`; returns (stdout, stderr).
fn fails(out: &Output, code: i32, want: &str) -> (String, String) {
    let (stdout, stderr) = text(out);
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert!(
        stderr.contains(want),
        "stderr lacks {want:?}:\n{stderr}\nstdout: {stdout}"
    );
    (stdout, stderr)
}

/// The ids of the `lifecycle ids: …` line.
fn lifecycle_ids(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("lifecycle ids: "))
        .unwrap_or_else(|| panic!("no lifecycle ids in {stdout}"))
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

fn names(status: &[Value]) -> Vec<String> {
    status
        .iter()
        .map(|d| d["name"].as_str().unwrap().to_string())
        .collect()
}

const NET: &[&str] = &["--subnet", "10.60.0.0/24", "--gateway", "10.60.0.1"];

fn with_net<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut v = args.to_vec();
    v.extend_from_slice(NET);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_status_mutate_teardown_and_lifecycle_through_the_master() {
    let m = start_master(Fake::default()).await;

    // deploy --wait: plain lines (stdout is not a terminal), every row succeeded.
    let out = m
        .decnet(&with_net(&[
            "deploy",
            "--deckies",
            "3",
            "--services",
            "ssh",
            "--wait",
        ]))
        .await;
    let stdout = ok(&out);
    assert!(
        stdout.contains("(mode unihost, master http://127.0.0.1:"),
        "{stdout}"
    );
    for n in ["decky-01", "decky-02", "decky-03"] {
        assert!(
            stdout.contains(&format!("\n{n} deploy succeeded\n")),
            "{stdout}"
        );
    }
    assert!(stdout.ends_with("3 succeeded, 0 failed\n"), "{stdout}");
    assert!(
        !stdout.contains('\r') && !stdout.contains('\x1b'),
        "{stdout:?}"
    );
    let deploy_ids = lifecycle_ids(&stdout);
    assert_eq!(deploy_ids.len(), 3);

    // status --json: the master's fleet.
    let status = m.status().await;
    assert_eq!(names(&status), ["decky-01", "decky-02", "decky-03"]);
    for d in &status {
        assert_eq!(d["services"], serde_json::json!(["ssh"]));
        assert_eq!(d["host"], "local");
        assert!(d["ip"].as_str().unwrap().starts_with("10.60.0."), "{d}");
    }
    // status: the table.
    let table = ok(&m.decnet(&["status"]).await);
    assert!(
        table.starts_with("NAME      HOST   IP ") && table.contains("LAST SEEN"),
        "{table}"
    );
    assert_eq!(table.lines().count(), 4, "{table}");

    // mutate --wait.
    let stdout = ok(&m
        .decnet(&["mutate", "decky-02", "--services", "ftp", "--wait"])
        .await);
    assert!(stdout.contains("mutating decky-02 to ftp"), "{stdout}");
    assert!(stdout.contains("\ndecky-02 mutate succeeded\n"), "{stdout}");
    assert_eq!(lifecycle_ids(&stdout).len(), 1);
    let status = m.status().await;
    assert_eq!(status[1]["services"], serde_json::json!(["ftp"]));
    assert!(
        m.fake
            .calls
            .lock()
            .unwrap()
            .iter()
            .any(|c| c.contains("decky-02:ftp")),
        "{:?}",
        m.fake.calls.lock().unwrap()
    );

    // teardown --id --wait.
    let stdout = ok(&m.decnet(&["teardown", "--id", "decky-03", "--wait"]).await);
    assert!(
        stdout.contains("\ndecky-03 teardown succeeded\n"),
        "{stdout}"
    );
    assert_eq!(names(&m.status().await), ["decky-01", "decky-02"]);

    // lifecycle: the table and the JSON.
    let table = ok(&m.decnet(&["lifecycle", &deploy_ids[0]]).await);
    let mut lines = table.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("ID                                    DECKY     OPERATION  STATUS"),
        "{table}"
    );
    let row = lines.next().unwrap();
    assert!(
        row.starts_with(&deploy_ids[0]) && row.contains(" deploy ") && row.contains(" succeeded "),
        "{table}"
    );
    let json: Value = serde_json::from_str(&ok(&m
        .decnet(&["lifecycle", "--json", &deploy_ids[0], &deploy_ids[1]])
        .await))
    .unwrap();
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for r in rows {
        assert_eq!(r["status"], "succeeded");
        assert_eq!(r["operation"], "deploy");
        assert!(r["completed_at"].is_string(), "{r}");
    }

    // Bad input: exit 2, the reason on stderr, nothing on stdout; not found: exit 1.
    let (stdout, _) = fails(
        &m.decnet(&["lifecycle", &deploy_ids[0], "not-a-uuid"]).await,
        2,
        "ID: \"not-a-uuid\" is not a lifecycle id",
    );
    assert!(stdout.is_empty());
    fails(
        &m.decnet(&["lifecycle", "00000000-0000-0000-0000-000000000001"])
            .await,
        1,
        "no lifecycle rows",
    );
    fails(
        &m.decnet(&["teardown", "--id", "decky-99"]).await,
        1,
        "no decky decky-99",
    );
    fails(
        &m.decnet(&["mutate", "decky-99", "--services", "ssh"]).await,
        1,
        "no decky decky-99",
    );
    fails(
        &m.decnet(&["mutate", "decky-01", "--services", "gopher"])
            .await,
        2,
        "\"gopher\" is not a known service",
    );
    let (stdout, _) = fails(
        &m.decnet(&with_net(&[
            "deploy",
            "--deckies",
            "1",
            "--services",
            "gopher",
            "--add",
        ]))
        .await,
        2,
        "\"gopher\" is not a known service",
    );
    assert!(stdout.is_empty(), "{stdout}");
    fails(
        &m.decnet(&["deploy", "--deckies", "1", "--distro", "debian"])
            .await,
        2,
        "--distro: not available through a master",
    );
    // Nothing changed by the refused requests.
    assert_eq!(names(&m.status().await), ["decky-01", "decky-02"]);

    // deploy --add keeps the fleet and fills the gap in the names.
    let stdout = ok(&m
        .decnet(&[
            "deploy",
            "--deckies",
            "2",
            "--services",
            "http",
            "--add",
            "--wait",
        ])
        .await);
    assert!(stdout.contains("\ndecky-03 deploy succeeded\n"), "{stdout}");
    assert!(stdout.contains("\ndecky-04 deploy succeeded\n"), "{stdout}");
    assert_eq!(
        names(&m.status().await),
        ["decky-01", "decky-02", "decky-03", "decky-04"]
    );

    // Without --wait: the ids and how to follow them.
    let stdout = ok(&m.decnet(&["mutate", "decky-04"]).await);
    assert!(
        stdout.contains("the master draws its new services"),
        "{stdout}"
    );
    let id = &lifecycle_ids(&stdout)[0];
    assert!(
        stdout.contains(&format!("follow with `decnet lifecycle {id}`")),
        "{stdout}"
    );

    // A plain deploy replaces the fleet.
    let stdout = ok(&m
        .decnet(&with_net(&[
            "deploy",
            "--deckies",
            "1",
            "--services",
            "ssh",
            "--wait",
        ]))
        .await);
    // decky-01 already runs ssh: it stays as it is (no row), the others go.
    assert!(
        stdout.contains("deploying 0 decky(ies), tearing down 3"),
        "{stdout}"
    );
    assert_eq!(names(&m.status().await), ["decky-01"]);

    // teardown --all --wait empties it.
    let stdout = ok(&m.decnet(&["teardown", "--all", "--wait"]).await);
    assert!(
        stdout.contains("\ndecky-01 teardown succeeded\n"),
        "{stdout}"
    );
    assert!(m.status().await.is_empty());
    let stdout = ok(&m.decnet(&["teardown", "--all"]).await);
    assert_eq!(stdout, "no deckies to tear down\n");
    assert!(ok(&m.decnet(&["status"]).await).starts_with("no deckies"));

    m.stop().await;
}

/// `--json` on deploy, mutate, teardown: one schema with the lifecycle ids and each decky's
/// row; `lifecycle --recent`; `GET /api/v1/deckies/{name}`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_output_recent_rows_and_one_decky_through_the_master() {
    let m = start_master(Fake::default()).await;
    let parse = |out: &Output| -> Value { serde_json::from_str(&ok(out)).unwrap() };

    let v = parse(
        &m.decnet(&with_net(&[
            "deploy",
            "--deckies",
            "2",
            "--services",
            "ssh",
            "--wait",
            "--json",
        ]))
        .await,
    );
    assert_eq!(v["operation"], "deploy", "{v}");
    assert_eq!(v["source"], "master");
    assert_eq!(v["master"], m.running.api_url.as_str());
    assert_eq!(v["mode"], "unihost");
    let ids = v["lifecycle_ids"].as_array().unwrap().clone();
    assert_eq!(ids.len(), 2, "{v}");
    let deckies = v["deckies"].as_array().unwrap();
    assert_eq!(deckies.len(), 2, "{v}");
    for d in deckies {
        assert_eq!(d["status"], "succeeded", "{v}");
        assert!(ids.contains(&d["lifecycle_id"]), "{v}");
        assert_eq!(d["error"], Value::Null);
    }

    // Without --wait the rows are as the master opened them.
    let v = parse(
        &m.decnet(&["mutate", "decky-01", "--services", "ftp", "--json"])
            .await,
    );
    assert_eq!(v["operation"], "mutate", "{v}");
    assert_eq!(v["mode"], Value::Null);
    assert_eq!(v["lifecycle_ids"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["deckies"][0]["name"], "decky-01", "{v}");
    let mutate_id = v["lifecycle_ids"][0].as_str().unwrap().to_string();
    ok(&m.decnet(&["lifecycle", &mutate_id]).await);

    // One decky by name; an unknown one is 404, a bad name 422.
    let (code, d) = m.api_get("/api/v1/deckies/decky-02").await;
    assert_eq!(code, 200, "{d}");
    assert_eq!(d["name"], "decky-02");
    assert_eq!(d["services"], json!(["ssh"]));
    assert_eq!(m.api_get("/api/v1/deckies/decky-77").await.0, 404);
    assert_eq!(m.api_get("/api/v1/deckies/Bad_Name").await.0, 422);

    // The newest rows, newest first; one decky's.
    let v = parse(&m.decnet(&["lifecycle", "--recent", "--json"]).await);
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "{v}");
    assert_eq!(rows[0]["id"], mutate_id.as_str(), "{v}");
    let v = parse(
        &m.decnet(&[
            "lifecycle",
            "--recent",
            "--decky",
            "decky-02",
            "--limit",
            "5",
            "--json",
        ])
        .await,
    );
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{v}");
    assert_eq!(rows[0]["decky_name"], "decky-02");
    let table = ok(&m.decnet(&["lifecycle", "--recent", "--limit", "1"]).await);
    assert!(
        table.starts_with("ID ") && table.contains(&mutate_id),
        "{table}"
    );
    assert_eq!(table.lines().count(), 2, "{table}");
    fails(
        &m.decnet(&["lifecycle", "--recent", "--decky", "Bad Name"])
            .await,
        2,
        "--decky",
    );

    let v = parse(&m.decnet(&["teardown", "--all", "--wait", "--json"]).await);
    assert_eq!(v["operation"], "teardown", "{v}");
    let names: Vec<&str> = v["deckies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{v}");
    assert!(
        v["deckies"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["status"] == "succeeded"),
        "{v}"
    );
    let v = parse(&m.decnet(&["teardown", "--all", "--json"]).await);
    assert_eq!(v["deckies"], json!([]), "{v}");
    assert_eq!(v["lifecycle_ids"], json!([]), "{v}");
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_discovery() {
    let m = start_master(Fake::default()).await;
    let url = m.running.api_url.clone();
    let empty = tempfile::tempdir().unwrap();
    let empty = empty.path().to_str().unwrap();

    // A rejected token.
    fails(
        &m.decnet(&["status", "--token", "dnt_wrong"]).await,
        2,
        "token rejected by the master",
    );
    // A master but no token at all.
    fails(
        &decnet(
            ["status", "--master", &url, "--data-dir", empty]
                .map(String::from)
                .to_vec(),
        )
        .await,
        2,
        "no API token",
    );
    // The flags work without the data dir's files.
    let token = std::fs::read_to_string(m.dir.path().join("admin.token")).unwrap();
    let out = ok(&decnet(
        [
            "status",
            "--json",
            "--master",
            &url,
            "--token",
            &token,
            "--data-dir",
            empty,
        ]
        .map(String::from)
        .to_vec(),
    )
    .await);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (&v["source"], &v["deckies"]),
        (&json!("master"), &json!([])),
        "{v}"
    );
    // lifecycle needs a master.
    fails(
        &decnet(
            [
                "lifecycle",
                "00000000-0000-0000-0000-000000000001",
                "--data-dir",
                empty,
            ]
            .map(String::from)
            .to_vec(),
        )
        .await,
        2,
        "no master",
    );
    // mutate without a master acts on this host, which has deployed nothing.
    fails(
        &decnet(
            ["mutate", "decky-01", "--data-dir", empty]
                .map(String::from)
                .to_vec(),
        )
        .await,
        2,
        "no active deployment on this host",
    );
    // --dry-run goes to the master: it plans against its own fleet and commits nothing.
    let dry = |count: &'static str| {
        let m = &m;
        async move {
            m.decnet(&[
                "deploy",
                "--dry-run",
                "--json",
                "--deckies",
                count,
                "--services",
                "ssh",
                "--interface",
                "veth-nowhere",
                "--subnet",
                "10.77.0.0/24",
                "--gateway",
                "10.77.0.1",
            ])
            .await
        }
    };
    let out = dry("2").await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let plan: Value = serde_json::from_str(&stdout).unwrap();
    let fleet: DecnetConfig = serde_json::from_value(plan["fleet"].clone()).unwrap();
    assert_eq!(fleet.deckies.len(), 2);
    assert_eq!(plan["added"], json!(["decky-01", "decky-02"]));
    assert_eq!(plan["removed"], json!([]));
    assert!(m.status().await.is_empty(), "a dry run commits nothing");
    // Against a fleet: replacing two deckies by one shows the one that goes, and the one
    // that stays as it is (same address, hostname and services: nothing to recreate).
    let out = m
        .decnet(&[
            "deploy",
            "--deckies",
            "2",
            "--services",
            "ssh",
            "--interface",
            "veth-nowhere",
            "--subnet",
            "10.77.0.0/24",
            "--gateway",
            "10.77.0.1",
        ])
        .await;
    assert!(out.status.success(), "{}", text(&out).1);
    let out = dry("1").await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let plan: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(plan["removed"], json!(["decky-02"]), "{plan}");
    assert_eq!(plan["unchanged"], json!(["decky-01"]), "{plan}");
    assert_eq!(plan["added"], json!([]), "{plan}");
    assert_eq!(plan["changed"], json!([]), "{plan}");
    assert_eq!(m.status().await.len(), 2, "still the committed fleet");
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_decky_fails_the_wait() {
    let m = start_master(Fake {
        fail: Mutex::new(BTreeMap::from([(
            "decky-02".to_string(),
            "no space left on device".to_string(),
        )])),
        ..Fake::default()
    })
    .await;
    let out = m
        .decnet(&with_net(&[
            "deploy",
            "--deckies",
            "3",
            "--services",
            "ssh",
            "--wait",
        ]))
        .await;
    let (stdout, _) = fails(
        &out,
        1,
        "1 of 3 operation(s) failed: decky-02 deploy failed: no space left on device",
    );
    assert!(stdout.contains("\ndecky-01 deploy succeeded\n"), "{stdout}");
    assert!(
        stdout.contains("\ndecky-02 deploy failed: no space left on device\n"),
        "{stdout}"
    );
    assert!(stdout.contains("\ndecky-03 deploy succeeded\n"), "{stdout}");
    assert!(
        stdout.ends_with("2 succeeded, 1 failed: decky-02 (deploy)\n"),
        "{stdout}"
    );
    // The failed row reads the same through `lifecycle`.
    let ids = lifecycle_ids(&stdout);
    let json: Value = serde_json::from_str(&ok(&m
        .decnet(&["lifecycle", "--json", &ids.join(",")])
        .await))
    .unwrap();
    let failed: Vec<&Value> = json["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["decky_name"], "decky-02");
    assert_eq!(failed[0]["error"], "no space left on device");
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wait_is_bounded() {
    let gate = Arc::new(Semaphore::new(0));
    let m = start_master(Fake {
        gate: Mutex::new(Some(gate.clone())),
        ..Fake::default()
    })
    .await;
    let out = m
        .decnet(&with_net(&[
            "deploy",
            "--deckies",
            "1",
            "--services",
            "ssh",
            "--wait",
            "--wait-timeout",
            "1",
        ]))
        .await;
    let (_, stderr) = fails(&out, 1, "timed out after 1 s (--wait-timeout)");
    assert!(stderr.contains("decky-01 deploy"), "{stderr}");
    assert!(stderr.contains("decnet lifecycle "), "{stderr}");
    // The deploy goes on once the deployer is let go.
    gate.add_permits(100);
    assert_eq!(names(&m.status().await), ["decky-01"]);
    m.stop().await;
}

/// Removes what the Docker test made, by its own names only.
struct Cleanup {
    tag: String,
    label: String,
    network: String,
    link: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let run = |args: &[&str]| {
            let _ = Command::new(args[0])
                .args(&args[1..])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        };
        let ids = Command::new("docker")
            .args([
                "ps",
                "-aq",
                "--filter",
                &format!("label=decnet.host={}", self.label),
            ])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        for id in ids.split_whitespace() {
            run(&["docker", "rm", "-f", id]);
        }
        run(&["docker", "network", "rm", &self.network]);
        run(&["ip", "link", "del", &self.link]);
        run(&[
            "ip",
            "link",
            "del",
            &decnet_net::lab::host_link_name(&self.tag),
        ]);
        run(&[
            "ip",
            "netns",
            "del",
            &decnet_net::lab::lab_netns_name(&self.tag),
        ]);
    }
}

/// Without a master, `mutate` recreates the decky through this host's Docker deployer. Needs
/// root and Docker (a lab LAN of its own, like tests/unihost.rs); their absence fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutate_without_a_master_acts_on_this_host() {
    use decnet_net::lab::{self, LabLan};

    let tag = format!("rm{}", std::process::id() % 10000);
    let _ = lab::destroy_by_tag(&tag).await;
    let lan = LabLan::create(&tag, "10.216.7.0/24".parse().unwrap())
        .await
        .expect("lab LAN (needs root)");
    lan.add_host_address("10.216.7.254".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap().to_string();
    let network = format!("decnet_{tag}");
    let label = format!("test-{tag}");
    let link = format!("dm-{tag}");
    // Even when an assertion fails: no container, network or link outlives the test (a
    // leftover network's subnet would make the next run's overlap).
    let _cleanup = Cleanup {
        tag: tag.clone(),
        label: label.clone(),
        network: network.clone(),
        link: link.clone(),
    };
    let common: Vec<String> = [
        "--data-dir",
        &data_dir,
        "--network-name",
        &network,
        "--host-label",
        &label,
        "--host-link-name",
        &link,
    ]
    .map(String::from)
    .to_vec();
    let run = |args: &[&str]| {
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        all.extend(common.iter().cloned());
        decnet(all)
    };

    let out = ok(&run(&[
        "deploy",
        "--interface",
        &lan.parent,
        "--deckies",
        "1",
        "--services",
        "ssh",
    ])
    .await);
    assert!(out.contains("decky-01") && out.contains(" up"), "{out}");

    // Bad input fails before Docker is touched.
    fails(
        &run(&["mutate", "decky-01", "--services", "gopher"]).await,
        2,
        "--services: \"gopher\" is not a known service",
    );
    fails(
        &run(&["mutate", "decky-09", "--services", "ftp"]).await,
        1,
        "decky \"decky-09\" is not deployed on this host",
    );

    let out = ok(&run(&["mutate", "decky-01", "--services", "ftp", "--wait"]).await);
    assert!(out.starts_with("Mutating decky-01: ssh -> ftp\n"), "{out}");
    assert!(out.contains("mutated"), "{out}");
    let status = |out: String| -> Value { serde_json::from_str(&out).unwrap() };
    let v = status(ok(&run(&["status", "--json"]).await));
    assert_eq!(v["deckies"][0]["services"], serde_json::json!(["ftp"]));
    assert_eq!(v["runtime"]["decky-01"]["running"], true, "{v}");

    // Without --services: a fresh draw, never the same set.
    let out = ok(&run(&["mutate", "decky-01"]).await);
    assert!(out.contains("mutated"), "{out}");
    let v = status(ok(&run(&["status", "--json"]).await));
    assert_ne!(v["deckies"][0]["services"], serde_json::json!(["ftp"]));

    ok(&run(&["teardown", "--all"]).await);
    lan.destroy().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_print_and_follow_the_bus() {
    let m = start_master(Fake::default()).await;
    // A follower started before anything happens.
    let data_dir = m.data_dir();
    let follower = tokio::task::spawn_blocking(move || {
        use std::io::{BufRead, BufReader};
        let mut child = Command::new(env!("CARGO_BIN_EXE_decnet"))
            .args(["events", "--follow", "--data-dir", &data_dir])
            .env("DECNET_LOG", "warn")
            .env_remove("DECNET_MASTER_URL")
            .env_remove("DECNET_TOKEN")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = vec![];
        for line in BufReader::new(child.stdout.take().unwrap()).lines() {
            lines.push(line.unwrap());
        }
        (child.wait().unwrap(), lines)
    });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    ok(&m
        .decnet(&with_net(&[
            "deploy",
            "--deckies",
            "2",
            "--services",
            "ssh",
            "--wait",
        ]))
        .await);

    // Without --follow: what the master keeps, then exit 0.
    let stdout = ok(&m.decnet(&["events"]).await);
    let line = stdout
        .lines()
        .find(|l| l.contains(" decky.decky-01.lifecycle ") && l.contains("\"succeeded\""))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(line.starts_with(|c: char| c.is_ascii_digit()), "{line}");
    assert!(stdout.contains(" decky.local:decky-02.state "), "{stdout}");
    // --json --since: objects, only after the id.
    let stdout = ok(&m.decnet(&["events", "--json", "--since", "2"]).await);
    let objs: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!objs.is_empty());
    assert_eq!(objs[0]["id"], 3);
    assert!(objs
        .iter()
        .all(|o| o["topic"].is_string() && o["body"].is_object()));
    // An unreachable master: exit 1, naming it.
    fails(
        &m.decnet(&["events", "--master", "http://127.0.0.1:1"])
            .await,
        1,
        "cannot reach the master",
    );

    // The follower saw the deploy live and ends when the master stops.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    m.stop().await;
    let (status, lines) = tokio::time::timeout(std::time::Duration::from_secs(10), follower)
        .await
        .expect("the follower ends with the master")
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains(" decky.decky-02.lifecycle ") && l.contains("\"succeeded\"")),
        "{lines:?}"
    );
}

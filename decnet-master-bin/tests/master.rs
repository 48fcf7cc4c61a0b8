#![allow(clippy::unwrap_used)] // test helpers abort on a broken fixture
//! The master (`decnet serve`'s library) over real TLS on loopback, with SQLite and
//! PostgreSQL stores: tokens and roles, enrollment by CSR (against the real `decnet-agent`
//! binary), the heartbeat contract, decommission with revocation.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use decnet_core::model::{
    ApiToken, DeckyName, HostUuid, LifecycleRow, LifecycleStatus, Operation, Role, Shard,
    ShardState,
};
use decnet_core::traits::{Repository, SystemClock};
use decnet_master_bin::master::layout::{new_api_token, token_hash, DataDir};
use decnet_master_bin::master::run::{self, MasterConfig, RunningMaster};
use decnet_master_bin::master::state::MasterSettings;
use serde_json::{json, Value};

mod common;
use common::{free_port, target_bin, write_pki};
use tokio_util::sync::CancellationToken;

struct TestMaster {
    running: RunningMaster,
    repo: Arc<dyn Repository>,
    admin: String,
    viewer: String,
    dir: tempfile::TempDir,
    shutdown: CancellationToken,
}

async fn start_master(db: Option<String>, settings: MasterSettings) -> TestMaster {
    decnet_tls::install_default_provider();
    let dir = tempfile::tempdir().unwrap();
    let layout = DataDir::new(dir.path());
    write_pki(&layout);
    let url = db.unwrap_or_else(|| layout.default_db_url());
    let repo = decnet_store::open(&url).await.expect("store");
    let mut tokens = vec![];
    for role in [Role::Admin, Role::Viewer] {
        let t = new_api_token();
        repo.insert_api_token(&ApiToken {
            id: uuid::Uuid::new_v4(),
            hash: token_hash(&t),
            role,
            created_at: Utc::now(),
        })
        .await
        .unwrap();
        tokens.push(t);
    }
    let cfg = MasterConfig {
        data_dir: layout,
        db_url: Some(url),
        api_bind: "127.0.0.1:0".parse().unwrap(),
        swarm_bind: "127.0.0.1:0".parse().unwrap(),
        settings: MasterSettings {
            advertise: String::new(),
            ..settings
        },
    };
    let api = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let swarm = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let shutdown = CancellationToken::new();
    let deps = run::MasterDeps {
        repo: repo.clone(),
        clock: Arc::new(SystemClock),
        local: None,
        hostnet: Arc::new(decnet_net::NetlinkHostNetwork::new()),
        local_events: None,
    };
    let running = run::start(&cfg, deps, api, swarm, shutdown.clone())
        .await
        .unwrap();
    TestMaster {
        running,
        repo,
        admin: tokens[0].clone(),
        viewer: tokens[1].clone(),
        dir,
        shutdown,
    }
}

impl TestMaster {
    fn api(&self, path: &str) -> String {
        format!("{}{path}", self.running.api_url)
    }

    async fn enroll_token(&self, name: &str, address: &str) -> Value {
        let r = reqwest::Client::new()
            .post(self.api("/api/v1/swarm/enroll-tokens"))
            .bearer_auth(&self.admin)
            .json(&json!({"name": name, "address": address}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        r.json().await.unwrap()
    }

    async fn hosts(&self) -> Vec<Value> {
        reqwest::Client::new()
            .get(self.api("/api/v1/swarm/hosts"))
            .bearer_auth(&self.viewer)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.running.join().await;
        drop(self.dir);
    }
}

fn agent_cmd(args: &[&str]) -> Command {
    let mut c = Command::new(target_bin("decnet-agent"));
    c.args(args).env("DECNET_LOG", "warn");
    c
}

struct Agent(Child);
impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_agent(agent_dir: &Path, state_dir: &Path, port: u16) -> Agent {
    spawn_agent_with(agent_dir, state_dir, port, &[])
}

/// `decnet-agent serve` on `port`, heartbeating every second, with `extra` flags.
fn spawn_agent_with(agent_dir: &Path, state_dir: &Path, port: u16, extra: &[&str]) -> Agent {
    let port = port.to_string();
    let mut args = vec![
        "serve",
        "--agent-dir",
        agent_dir.to_str().unwrap(),
        "--state-dir",
        state_dir.to_str().unwrap(),
        "--host",
        "127.0.0.1",
        "--port",
        &port,
        "--heartbeat-interval",
        "1",
        "--network-name",
        "decnet_master_test",
    ];
    args.extend_from_slice(extra);
    let child = agent_cmd(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("decnet-agent is built");
    Agent(child)
}

/// Enrolls a real `decnet-agent` as `name`, to be served on `port` (`decnet-agent enroll …`,
/// the one command printed for a worker): its agent dir.
async fn enroll_real_agent(m: &TestMaster, name: &str, port: u16) -> tempfile::TempDir {
    let t = m.enroll_token(name, &format!("127.0.0.1:{port}")).await;
    let agent_dir = tempfile::tempdir().unwrap();
    let out = agent_cmd(&[
        "enroll",
        "--master",
        &m.running.swarm_url,
        "--token",
        t["token"].as_str().unwrap(),
        "--agent-dir",
        agent_dir.path().to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    agent_dir
}

async fn until<F: std::future::Future<Output = bool>>(what: &str, mut f: impl FnMut() -> F) {
    for _ in 0..200 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_roles() {
    let m = start_master(None, MasterSettings::default()).await;
    let c = reqwest::Client::new();
    assert_eq!(c.get(m.api("/health")).send().await.unwrap().status(), 200);
    let metrics = c
        .get(m.api("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("decnet_build_info{version=")
            && metrics.contains("decnet_hosts{status=\"active\"} 0"),
        "{metrics}"
    );
    assert_eq!(
        c.get(m.api("/api/v1/tokens"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        c.get(m.api("/api/v1/tokens"))
            .bearer_auth("dnt_nope")
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        c.get(m.api("/api/v1/tokens"))
            .bearer_auth(&m.viewer)
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        c.get(m.api("/api/v1/swarm/hosts"))
            .bearer_auth(&m.viewer)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let r = c
        .post(m.api("/api/v1/tokens"))
        .bearer_auth(&m.admin)
        .json(&json!({"role": "viewer"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    assert_eq!(created["role"], "viewer");
    let new_token = created["token"].as_str().unwrap().to_string();
    let list: Vec<Value> = c
        .get(m.api("/api/v1/tokens"))
        .bearer_auth(&m.admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list.len(), 3);
    assert!(
        list.iter()
            .all(|t| t.get("token").is_none() && t.get("hash").is_none()),
        "no secrets in the list"
    );
    let id = created["id"].as_str().unwrap();
    assert_eq!(
        c.delete(m.api(&format!("/api/v1/tokens/{id}")))
            .bearer_auth(&m.admin)
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        c.get(m.api("/api/v1/swarm/hosts"))
            .bearer_auth(&new_token)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    for (body, field) in [
        (json!({"role": "root"}), "role"),
        (json!({}), "role"),
        (json!({"role": "admin", "x": 1}), "x"),
    ] {
        let r = c
            .post(m.api("/api/v1/tokens"))
            .bearer_auth(&m.admin)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422, "{body}");
        assert!(r.json::<Value>().await.unwrap()["detail"]
            .as_str()
            .unwrap()
            .contains(field));
    }
    assert_eq!(
        c.delete(m.api("/api/v1/tokens/nope"))
            .bearer_auth(&m.admin)
            .send()
            .await
            .unwrap()
            .status(),
        422
    );
    // Enroll tokens: bad names and addresses, the reserved name.
    for (name, address, code) in [
        ("decnet-master", "10.0.0.5:8765", 422),
        ("Worker_1", "10.0.0.5:8765", 422),
        ("worker-1", "10.0.0.5", 422),
        ("worker-1", "10.0.0.5:0", 422),
        ("worker-1", ":8765", 422),
    ] {
        let r = c
            .post(m.api("/api/v1/swarm/enroll-tokens"))
            .bearer_auth(&m.admin)
            .json(&json!({"name": name, "address": address}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), code, "{name} {address}");
    }
    let t = m.enroll_token("worker-1", "10.0.0.5:8765").await;
    assert!(t["token"].as_str().unwrap().starts_with("dnet1_"));
    assert!(t["command"].as_str().unwrap().starts_with(&format!(
        "decnet-agent enroll --master {}",
        m.running.swarm_url
    )));
    m.stop().await;
}

/// Posts a CSR to /swarm/enroll with the token's trust, as a worker would.
async fn raw_enroll(m: &TestMaster, token: &str, csr_pem: &str) -> reqwest::Response {
    let fp = decnet_core::model::EnrollTokenText::parse(token)
        .map(|t| t.ca_fingerprint)
        .unwrap_or_default();
    let tls = decnet_tls::verify::enroll_client_config(&fp).unwrap();
    reqwest::Client::builder()
        .use_preconfigured_tls((*tls).clone())
        .build()
        .unwrap()
        .post(format!("{}/swarm/enroll", m.running.swarm_url))
        .json(&json!({"token": token, "csr_pem": csr_pem}))
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollment_rules() {
    let m = start_master(
        None,
        MasterSettings {
            enroll_token_ttl: Duration::from_secs(1),
            enroll_per_minute: 6,
            ..MasterSettings::default()
        },
    )
    .await;
    // A CSR that asks to be the master gets the enrolled name instead.
    let t = m.enroll_token("worker-9", "127.0.0.1:9").await;
    let token = t["token"].as_str().unwrap().to_string();
    let (_key, csr) = decnet_tls::pki::generate_key_and_csr("decnet-master").unwrap();
    let r = raw_enroll(&m, &token, &csr).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let cert = decnet_tls::pki::parse_cert_pem(v["cert_pem"].as_str().unwrap()).unwrap();
    assert_eq!(decnet_tls::pki::cert_cn(&cert).as_deref(), Some("worker-9"));
    // Used once.
    assert_eq!(raw_enroll(&m, &token, &csr).await.status(), 403);
    // The same name again: refused when asking for a token.
    let r = reqwest::Client::new()
        .post(m.api("/api/v1/swarm/enroll-tokens"))
        .bearer_auth(&m.admin)
        .json(&json!({"name": "worker-9", "address": "127.0.0.1:9"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    // Expired.
    let t = m.enroll_token("worker-10", "127.0.0.1:9").await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        raw_enroll(&m, t["token"].as_str().unwrap(), &csr)
            .await
            .status(),
        403
    );
    // Unknown (well-formed) token.
    let unknown = decnet_core::model::EnrollTokenText {
        secret: "x".repeat(43),
        ca_fingerprint: m.running.master.pki.ca_fingerprint.clone(),
    }
    .render();
    assert_eq!(raw_enroll(&m, &unknown, &csr).await.status(), 403);
    // A bad CSR does not burn the token.
    let t = m.enroll_token("worker-11", "127.0.0.1:9").await;
    let r = raw_enroll(
        &m,
        t["token"].as_str().unwrap(),
        "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
    )
    .await;
    assert_eq!(r.status(), 422);
    assert_eq!(
        raw_enroll(&m, t["token"].as_str().unwrap(), &csr)
            .await
            .status(),
        200
    );
    // Rate limit: 6 a minute from one address in this master; we used 6 already.
    assert_eq!(raw_enroll(&m, &unknown, &csr).await.status(), 429);
    m.stop().await;
}

async fn run_enrollment_and_heartbeats(db: Option<String>) {
    let m = start_master(
        db,
        MasterSettings {
            heartbeat_interval: Duration::from_secs(1),
            ..MasterSettings::default()
        },
    )
    .await;
    let port = free_port();
    // One command on the worker: `decnet-agent enroll …` as printed.
    let agent_dir = enroll_real_agent(&m, "worker-1", port).await;
    let state_dir = tempfile::tempdir().unwrap();
    let hosts = m.hosts().await;
    assert_eq!(hosts.len(), 1);
    assert_eq!(hosts[0]["status"], "enrolled");
    let uuid = hosts[0]["uuid"].as_str().unwrap().to_string();

    // It heartbeats and shows active.
    let agent = spawn_agent(agent_dir.path(), state_dir.path(), port);
    until("the host to be active", || async {
        m.hosts().await[0]["status"] == "active"
    })
    .await;
    let h = &m.hosts().await[0];
    assert_eq!(h["agent_version"], env!("CARGO_PKG_VERSION"));
    assert!(h["last_heartbeat"].is_string());

    // Decommission while the agent is down (so it cannot obey, and no real reaper runs on
    // this machine): the wait is bounded and the certificate is revoked anyway.
    drop(agent);
    let r = reqwest::Client::new()
        .delete(m.api(&format!("/api/v1/swarm/hosts/{uuid}")))
        .bearer_auth(&m.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(m.hosts().await.is_empty(), "gone from every list");
    let fp = decnet_tls::pki::Bundle::load_worker_dir(agent_dir.path())
        .unwrap()
        .fingerprint()
        .unwrap();
    assert!(m.repo.is_revoked(&fp).await.unwrap());
    let rejected = m.running.master.metrics.heartbeats_rejected.get();
    // The agent comes back, ignoring what happened: its heartbeats are refused.
    let _agent = spawn_agent(agent_dir.path(), state_dir.path(), port);
    until("its heartbeats to be refused", || async {
        m.running.master.metrics.heartbeats_rejected.get() > rejected
    })
    .await;
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enroll_heartbeat_decommission_sqlite() {
    run_enrollment_and_heartbeats(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enroll_heartbeat_decommission_postgres() {
    use sqlx::{Connection, Executor};
    let admin = std::env::var("DECNET_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://decnet:decnet@127.0.0.1:5432/decnet_test".into());
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL unreachable ({e}): run scripts/pg-setup"));
    let db = format!("decnet_m_{}", uuid::Uuid::new_v4().simple());
    conn.execute(format!("CREATE DATABASE {db}").as_str())
        .await
        .unwrap();
    let (base, _) = admin
        .rsplit_once('/')
        .expect("DECNET_TEST_PG_URL names a database");
    run_enrollment_and_heartbeats(Some(format!("{base}/{db}"))).await;
    conn.execute(format!("DROP DATABASE {db} WITH (FORCE)").as_str())
        .await
        .unwrap();
}

/// The CA of the master's data dir.
fn master_ca(m: &TestMaster) -> decnet_tls::pki::Ca {
    decnet_tls::pki::Ca::load(
        &std::fs::read_to_string(m.dir.path().join("ca.crt")).unwrap(),
        &std::fs::read_to_string(m.dir.path().join("ca.key")).unwrap(),
    )
    .unwrap()
}

/// Enrolls `name` with a fresh key and CSR (no agent process): its uuid and bundle.
async fn enroll_host(
    m: &TestMaster,
    ca: &decnet_tls::pki::Ca,
    name: &str,
) -> (HostUuid, decnet_tls::pki::Bundle) {
    let t = m.enroll_token(name, "127.0.0.1:9").await;
    let (key, csr) = decnet_tls::pki::generate_key_and_csr(name).unwrap();
    let v: Value = raw_enroll(m, t["token"].as_str().unwrap(), &csr)
        .await
        .json()
        .await
        .unwrap();
    let bundle = decnet_tls::pki::Bundle {
        ca_pem: ca.cert_pem().to_string(),
        cert_pem: v["cert_pem"].as_str().unwrap().into(),
        key_pem: key,
    };
    (v["host_uuid"].as_str().unwrap().parse().unwrap(), bundle)
}

/// A worker's own LAN address is never given to a decky (issue 9, item 5): a master plans a
/// fleet for a live worker whose address is inside the requested subnet, and the address is
/// skipped although the allocator would otherwise hand it out in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workers_own_address_is_reserved_when_the_master_plans() {
    let m = start_master(None, MasterSettings::default()).await;
    let ca = master_ca(&m);
    // The worker sits at 10.66.0.3, inside 10.66.0.0/29 (hosts .1–.6, .1 the gateway).
    let t = m.enroll_token("w-lan", "10.66.0.3:8765").await;
    let (key, csr) = decnet_tls::pki::generate_key_and_csr("w-lan").unwrap();
    let v: Value = raw_enroll(&m, t["token"].as_str().unwrap(), &csr)
        .await
        .json()
        .await
        .unwrap();
    let host: HostUuid = v["host_uuid"].as_str().unwrap().parse().unwrap();
    let bundle = decnet_tls::pki::Bundle {
        ca_pem: ca.cert_pem().to_string(),
        cert_pem: v["cert_pem"].as_str().unwrap().into(),
        key_pem: key,
    };
    let beat = worker_client(&bundle)
        .post(format!("{}/swarm/heartbeat", m.running.swarm_url))
        .json(&idle_beat(host))
        .send()
        .await
        .unwrap();
    assert!(beat.status().is_success(), "{:?}", beat.text().await);
    let deploy = |amount: u32| {
        json!({"dry_run": true,
            "general": {"subnet": "10.66.0.0/29", "gateway": "10.66.0.1", "interface": "eth0"},
            "deckies": [{"name": "d", "amount": amount, "services": ["ssh"]}]})
    };
    let r = reqwest::Client::new()
        .post(m.api("/api/v1/deckies/deploy"))
        .bearer_auth(&m.admin)
        .json(&deploy(4))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let plan: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{plan}");
    assert_eq!(plan["mode"], "swarm", "{plan}");
    let mut ips: Vec<String> = plan["fleet"]["deckies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["ip"].as_str().unwrap().to_string())
        .collect();
    ips.sort();
    assert_eq!(ips, ["10.66.0.2", "10.66.0.4", "10.66.0.5", "10.66.0.6"]);
    // One more decky than the subnet has room for once the worker is left out.
    let r = reqwest::Client::new()
        .post(m.api("/api/v1/deckies/deploy"))
        .bearer_auth(&m.admin)
        .json(&deploy(5))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    m.stop().await;
}

/// A worker's client: presents `b`, trusts the master by CA and CN.
fn worker_client(b: &decnet_tls::pki::Bundle) -> reqwest::Client {
    client_with_policy(b, master_policy(b))
}

/// The master as a worker verifies it: by the CA and CN `decnet-master`.
fn master_policy(b: &decnet_tls::pki::Bundle) -> decnet_tls::verify::PeerPolicy {
    decnet_tls::verify::PeerPolicy::from_ca_pem(&b.ca_pem)
        .unwrap()
        .with_expected_cn("decnet-master")
}

/// A client presenting `b` that accepts the master by `policy`.
fn client_with_policy(
    b: &decnet_tls::pki::Bundle,
    policy: decnet_tls::verify::PeerPolicy,
) -> reqwest::Client {
    let tls = decnet_tls::verify::client_config(b, &policy).unwrap();
    reqwest::Client::builder()
        .use_preconfigured_tls((*tls).clone())
        .build()
        .unwrap()
}

/// A worker whose state file is unreadable says so in its heartbeat: the host list shows it
/// (and stops showing it once the file reads again), and the master does not take the
/// snapshot's "not deployed" for "no deckies": the host's shards stay as they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heartbeat_state_error_shows_on_the_host_and_keeps_its_shards() {
    let m = start_master(None, MasterSettings::default()).await;
    let ca = master_ca(&m);
    let (host, bundle) = enroll_host(&m, &ca, "h-broken").await;
    let (other, _) = enroll_host(&m, &ca, "h-fine").await;
    let c = worker_client(&bundle);
    let url = format!("{}/swarm/heartbeat", m.running.swarm_url);
    let decky = json!({"name": "d-9", "ip": "10.0.0.9", "services": ["ssh"], "distro": "debian",
        "base_image": "debian", "hostname": "h9"});
    let runtime = json!({"d-9": {"running": true, "services": {"ssh": "running"}}});
    let healthy = || {
        json!({"host_uuid": host, "agent_version": "1.2.3",
            "status": {"deployed": true, "mode": "swarm", "compose_path": "", "deckies": [decky],
                "runtime": runtime, "taken_at": Utc::now(), "in_flight": []},
            "lifecycle": []})
    };
    let error = "/var/lib/decnet/agent/decnet-state.json: not valid JSON: expected value at line 1 column 2";
    let broken = || {
        json!({"host_uuid": host, "agent_version": "1.2.3",
            "status": {"deployed": false, "deckies": [], "runtime": runtime,
                "taken_at": Utc::now(), "in_flight": [], "state_error": error},
            "lifecycle": []})
    };
    m.repo
        .upsert_shard(&Shard {
            host_uuid: host,
            decky_name: DeckyName::new("d-9").unwrap(),
            decky: serde_json::from_value(decky.clone()).unwrap(),
            state: ShardState::Running,
            last_error: None,
            last_seen: None,
            updated_at: Utc::now(),
        })
        .await
        .unwrap();
    let r = c.post(&url).json(&healthy()).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let before = m.repo.shards(Some(host)).await.unwrap();

    let mut events = m.running.bus.subscribe();
    let r = c.post(&url).json(&broken()).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let entry = |hosts: Vec<Value>, uuid: HostUuid| {
        hosts
            .into_iter()
            .find(|h| h["uuid"] == json!(uuid))
            .unwrap()
    };
    let h = entry(m.hosts().await, host);
    assert_eq!(h["state_error"], error, "{h}");
    assert_eq!(h["status"], "active");
    let fine = entry(m.hosts().await, other);
    assert!(fine.get("state_error").is_none(), "{fine}");
    let one: Value = reqwest::Client::new()
        .get(m.api(&format!("/api/v1/swarm/hosts/{host}")))
        .bearer_auth(&m.viewer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["state_error"], error, "{one}");
    // The shards are untouched, and nothing was published about them.
    assert_eq!(m.repo.shards(Some(host)).await.unwrap(), before);
    assert_eq!(before[0].state, ShardState::Running);
    assert!(events.try_recv().is_err(), "no event for a broken snapshot");

    // Fixed: the next heartbeat clears it.
    let r = c.post(&url).json(&healthy()).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let h = entry(m.hosts().await, host);
    assert!(h.get("state_error").is_none(), "{h}");
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_contract() {
    let m = start_master(None, MasterSettings::default()).await;
    let ca = master_ca(&m);
    // Two enrolled hosts, each with its own certificate.
    let mut hosts = vec![];
    for name in ["h-a", "h-b"] {
        hosts.push(enroll_host(&m, &ca, name).await);
    }
    let client_for = worker_client;
    let url = format!("{}/swarm/heartbeat", m.running.swarm_url);
    let (a, a_bundle) = (hosts[0].0, &hosts[0].1);
    let (b, b_bundle) = (hosts[1].0, &hosts[1].1);
    let beat = |host: HostUuid, taken: chrono::DateTime<Utc>, running: bool, deltas: Value| {
        json!({
            "host_uuid": host, "agent_version": "1.2.3",
            "status": {"deployed": true, "mode": "swarm", "compose_path": "",
                "deckies": [{"name": "d-1", "ip": "10.0.0.5", "services": ["ssh"], "distro": "debian",
                    "base_image": "debian", "hostname": "h1"}],
                "runtime": {"d-1": {"running": running, "services": {"ssh": if running {"running"} else {"exited"}}}},
                "taken_at": taken, "in_flight": []},
            "lifecycle": deltas,
        })
    };
    let now = Utc::now();

    // Every identity failure is the same 403.
    let anon = reqwest::Client::builder()
        .use_preconfigured_tls(
            (*decnet_tls::verify::anonymous_client_config(
                &decnet_tls::verify::PeerPolicy::from_ca_pem(ca.cert_pem()).unwrap(),
            )
            .unwrap())
            .clone(),
        )
        .build()
        .unwrap();
    let cases: Vec<(&str, reqwest::Client, Value)> = vec![
        ("no certificate", anon, beat(a, now, true, json!([]))),
        (
            "unknown host",
            client_for(a_bundle),
            beat(HostUuid::new_v4(), now, true, json!([])),
        ),
        (
            "another host's certificate",
            client_for(b_bundle),
            beat(a, now, true, json!([])),
        ),
    ];
    let mut bodies = vec![];
    for (what, c, body) in cases {
        let r = c.post(&url).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 403, "{what}");
        bodies.push(r.text().await.unwrap());
    }
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "one 403 for all: {bodies:?}"
    );

    // A shard of host a, and an open deploy row.
    let d1 = DeckyName::new("d-1").unwrap();
    let decky: decnet_core::model::DeckyConfig =
        serde_json::from_value(beat(a, now, true, json!([]))["status"]["deckies"][0].clone())
            .unwrap();
    m.repo
        .upsert_shard(&Shard {
            host_uuid: a,
            decky_name: d1.clone(),
            decky: decky.clone(),
            state: ShardState::Running,
            last_error: None,
            last_seen: None,
            updated_at: now,
        })
        .await
        .unwrap();
    let mut row = LifecycleRow::new(d1.clone(), Some(a), Operation::Deploy, now);
    row.status = LifecycleStatus::Running;
    m.repo.create_lifecycle(&row).await.unwrap();
    let delta = json!([{"id": uuid::Uuid::new_v4(), "lifecycle_id": row.id, "decky_name": "d-1", "operation": "deploy", "status": "succeeded", "completed_at": now}]);

    // Host b reporting a's decky and a's row (as a delta and as in flight) changes nothing:
    // its certificate cannot keep a's row alive past the sweep.
    let mut b_beat = beat(b, Utc::now(), false, delta.clone());
    b_beat["status"]["in_flight"] = json!([row.id]);
    let r = client_for(b_bundle)
        .post(&url)
        .json(&b_beat)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let after_b = m.repo.lifecycle_rows(&[row.id]).await.unwrap()[0].clone();
    assert_eq!(after_b.status, LifecycleStatus::Running);
    assert_eq!(
        after_b.updated_at.timestamp_micros(),
        row.updated_at.timestamp_micros(),
        "another host's in_flight refreshed the row"
    );
    // Its own agent listing it in flight is progress.
    let mut a_beat = beat(a, Utc::now(), true, json!([]));
    a_beat["status"]["in_flight"] = json!([row.id]);
    let r = client_for(a_bundle)
        .post(&url)
        .json(&a_beat)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(m.repo.lifecycle_rows(&[row.id]).await.unwrap()[0].updated_at > row.updated_at);
    assert_eq!(
        m.repo.shards(Some(a)).await.unwrap()[0].state,
        ShardState::Running
    );

    // Host a's delta closes its row once; the same delta again changes nothing.
    for _ in 0..2 {
        let r = client_for(a_bundle)
            .post(&url)
            .json(&beat(a, Utc::now(), true, delta.clone()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
    }
    let closed = m.repo.lifecycle_rows(&[row.id]).await.unwrap()[0].clone();
    assert_eq!(closed.status, LifecycleStatus::Succeeded);
    assert_eq!(m.running.master.metrics.deltas_applied.get(), 1);

    // A stale snapshot (taken before the runner's last change) does not clobber it.
    let later = Utc::now();
    m.repo
        .upsert_shard(&Shard {
            host_uuid: a,
            decky_name: d1.clone(),
            decky: decky.clone(),
            state: ShardState::Running,
            last_error: None,
            last_seen: None,
            updated_at: later,
        })
        .await
        .unwrap();
    m.running.master.lifecycle().forget_observed(a);
    let stale = later - chrono::Duration::seconds(5);
    client_for(a_bundle)
        .post(&url)
        .json(&beat(a, stale, false, json!([])))
        .send()
        .await
        .unwrap();
    assert_eq!(
        m.repo.shards(Some(a)).await.unwrap()[0].state,
        ShardState::Running
    );
    // A fresh one does, and says so on the bus.
    let mut events = m.running.bus.subscribe();
    client_for(a_bundle)
        .post(&url)
        .json(&beat(a, Utc::now(), false, json!([])))
        .send()
        .await
        .unwrap();
    assert_eq!(
        m.repo.shards(Some(a)).await.unwrap()[0].state,
        ShardState::Degraded
    );
    let (_, ev) = events.try_recv().unwrap();
    assert_eq!(ev.topic, format!("decky.{a}:d-1.state"));
    // A transitional state is never overwritten.
    m.repo
        .upsert_shard(&Shard {
            host_uuid: a,
            decky_name: d1.clone(),
            decky: decky.clone(),
            state: ShardState::TearingDown,
            last_error: None,
            last_seen: None,
            updated_at: Utc::now(),
        })
        .await
        .unwrap();
    m.running.master.lifecycle().forget_observed(a);
    client_for(a_bundle)
        .post(&url)
        .json(&beat(
            a,
            Utc::now() + chrono::Duration::seconds(1),
            true,
            json!([]),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(
        m.repo.shards(Some(a)).await.unwrap()[0].state,
        ShardState::TearingDown
    );

    // A decky of host b in the desired fleet, with an open row; and one of host a whose
    // teardown failed (it left the fleet, its containers may still run).
    let mut on_b = decky.clone();
    on_b.name = DeckyName::new("d-on-b").unwrap();
    on_b.host_uuid = Some(b);
    let fleet: decnet_core::model::DecnetConfig = serde_json::from_value(json!({
        "mode": "swarm", "interface": "eth0", "subnet": "10.0.0.0/24", "gateway": "10.0.0.1",
        "deckies": [on_b], "log_file": null, "ipvlan": false, "mutate_interval": 30
    }))
    .unwrap();
    m.repo.put_desired_fleet(&fleet).await.unwrap();
    let b_row = LifecycleRow::new(on_b.name.clone(), Some(b), Operation::Deploy, Utc::now());
    m.repo.create_lifecycle(&b_row).await.unwrap();
    let mut stuck = decky.clone();
    stuck.name = DeckyName::new("d-stuck").unwrap();
    m.repo
        .upsert_shard(&Shard {
            host_uuid: a,
            decky_name: stuck.name.clone(),
            decky: stuck,
            state: ShardState::TeardownFailed,
            last_error: Some("docker said no".into()),
            last_seen: None,
            updated_at: Utc::now(),
        })
        .await
        .unwrap();
    let listed = || async {
        let v: Value = reqwest::Client::new()
            .get(m.api("/api/v1/deckies"))
            .bearer_auth(&m.admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["name"].as_str().unwrap().to_string(),
                    d["state"].as_str().unwrap().to_string(),
                )
            })
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let before = listed().await;
    assert_eq!(before.get("d-on-b").map(String::as_str), Some("pending"));
    assert_eq!(
        before.get("d-stuck").map(String::as_str),
        Some("teardown_failed"),
        "a shard whose teardown failed is listed: {before:?}"
    );

    // Decommission of an unreachable agent still revokes: its heartbeats are refused after.
    let r = reqwest::Client::new()
        .delete(m.api(&format!("/api/v1/swarm/hosts/{b}")))
        .bearer_auth(&m.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = client_for(b_bundle)
        .post(&url)
        .json(&beat(b, Utc::now(), true, json!([])))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Its deckies went with it: no ghost `pending` entry, and its open row is closed.
    let after = listed().await;
    assert!(!after.contains_key("d-on-b"), "{after:?}");
    assert!(after.contains_key("d-stuck"), "{after:?}");
    let closed = m.repo.lifecycle_rows(&[b_row.id]).await.unwrap()[0].clone();
    assert_eq!(closed.status, LifecycleStatus::Failed);
    assert!(
        closed
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("decommissioned"),
        "{closed:?}"
    );
    assert!(m
        .repo
        .desired_fleet()
        .await
        .unwrap()
        .unwrap()
        .deckies
        .is_empty());

    // Host a goes silent. Its last heartbeat, kept in memory, must not mark it active again on
    // every pass of the unreachable check: it becomes unreachable once and stays so.
    let later = Utc::now() + chrono::Duration::hours(1);
    let master = &m.running.master;
    assert_eq!(
        decnet_master_bin::master::run::check_hosts(master, later).await,
        vec![a]
    );
    for pass in 0..3 {
        assert_eq!(
            decnet_master_bin::master::run::check_hosts(master, later).await,
            vec![],
            "pass {pass}: the silent host flapped back to active"
        );
    }
    assert_eq!(
        m.repo.host(a).await.unwrap().unwrap().status,
        decnet_core::model::HostStatus::Unreachable
    );
    m.stop().await;
}

/// A heartbeat body for `host` with nothing deployed.
fn idle_beat(host: HostUuid) -> Value {
    json!({"host_uuid": host, "agent_version": "1.2.3",
        "status": {"deployed": false, "deckies": [], "taken_at": Utc::now(), "in_flight": []},
        "lifecycle": []})
}

async fn renew_with(
    m: &TestMaster,
    c: &reqwest::Client,
    body: &Value,
) -> (reqwest::StatusCode, Value) {
    let r = c
        .post(format!("{}/swarm/renew", m.running.swarm_url))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn host_entry(hosts: &[Value], uuid: HostUuid) -> Value {
    hosts
        .iter()
        .find(|h| h["uuid"] == json!(uuid))
        .cloned()
        .unwrap()
}

/// Issue 9, item 14: a worker renews its certificate over the authenticated channel. The new
/// certificate is pinned at once, the old one keeps working during the overlap and is revoked
/// as soon as the new one has been used (or the overlap is over); the host list shows when the
/// pinned certificate expires. Lifetimes are short (1 hour) and nothing sleeps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_renews_its_certificate_and_the_old_one_is_revoked_after_the_overlap() {
    let m = start_master(
        None,
        MasterSettings {
            worker_cert_lifetime: Duration::from_secs(3600),
            ..MasterSettings::default()
        },
    )
    .await;
    let ca = master_ca(&m);
    let (host, old) = enroll_host(&m, &ca, "h-renew").await;
    let (other, other_bundle) = enroll_host(&m, &ca, "h-other").await;
    let beat_url = format!("{}/swarm/heartbeat", m.running.swarm_url);
    let old_client = worker_client(&old);

    // Enrollment records the expiry of the short-lived certificate.
    let info = |pem: &str| {
        decnet_tls::pki::cert_info(&decnet_tls::pki::parse_cert_pem(pem).unwrap()).unwrap()
    };
    let enrolled_until: chrono::DateTime<Utc> = info(&old.cert_pem).not_after.into();
    assert!(enrolled_until < Utc::now() + chrono::Duration::hours(2));
    let listed = host_entry(&m.hosts().await, host);
    let listed_until: chrono::DateTime<Utc> =
        serde_json::from_value(listed["cert_expires_at"].clone()).unwrap();
    assert_eq!(listed_until, enrolled_until, "{listed}");

    // Identity first, the same 403 for every failure: another host's certificate, an
    // unknown host, no body field at all.
    let (_, csr) = decnet_tls::pki::generate_key_and_csr("").unwrap();
    for (what, c, body) in [
        (
            "another host's certificate",
            worker_client(&other_bundle),
            json!({"host_uuid": host, "csr_pem": csr}),
        ),
        (
            "unknown host",
            old_client.clone(),
            json!({"host_uuid": HostUuid::new_v4(), "csr_pem": csr}),
        ),
        ("no host_uuid", old_client.clone(), json!({"csr_pem": csr})),
    ] {
        let (status, _) = renew_with(&m, &c, &body).await;
        assert_eq!(status, 403, "{what}");
    }
    // A malformed CSR from the right host: 422 naming the field; nothing changes.
    let (status, body) = renew_with(
        &m,
        &old_client,
        &json!({"host_uuid": host, "csr_pem": "not a csr"}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(body.to_string().contains("csr_pem"), "{body}");

    // Renewal: a new key, a CSR, the answer.
    let (new_key, csr) = decnet_tls::pki::generate_key_and_csr("ignored-cn").unwrap();
    let (status, ans) =
        renew_with(&m, &old_client, &json!({"host_uuid": host, "csr_pem": csr})).await;
    assert_eq!(status, 200, "{ans}");
    assert_eq!(ans["ca_pem"].as_str(), Some(ca.cert_pem()));
    let new = decnet_tls::pki::Bundle {
        ca_pem: ca.cert_pem().to_string(),
        cert_pem: ans["cert_pem"].as_str().unwrap().to_string(),
        key_pem: new_key,
    };
    let new_info = info(&new.cert_pem);
    assert_eq!(
        new_info.cn.as_deref(),
        Some("h-renew"),
        "the host's CN, not the CSR's"
    );
    assert_eq!(
        new_info.sans,
        vec![decnet_tls::pki::San::parse("127.0.0.1")]
    );
    let not_after: chrono::DateTime<Utc> =
        serde_json::from_value(ans["not_after"].clone()).unwrap();
    assert_eq!(not_after, chrono::DateTime::<Utc>::from(new_info.not_after));
    // Issued after the enrolled one, with the same lifetime (both within one second is fine).
    assert!(
        not_after >= enrolled_until,
        "{not_after} not before {enrolled_until}"
    );
    assert_ne!(new_info.fingerprint, info(&old.cert_pem).fingerprint);
    let listed = host_entry(&m.hosts().await, host);
    let listed_until: chrono::DateTime<Utc> =
        serde_json::from_value(listed["cert_expires_at"].clone()).unwrap();
    assert_eq!(
        listed_until, not_after,
        "the hosts list moves forward: {listed}"
    );

    // During the overlap both certificates heartbeat; the old one first (in flight).
    let new_client = worker_client(&new);
    let r = old_client
        .post(&beat_url)
        .json(&idle_beat(host))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204, "old certificate during the overlap");
    let r = new_client
        .post(&beat_url)
        .json(&idle_beat(host))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204, "new certificate");
    // The new certificate has been used: the old one is revoked.
    let r = old_client
        .post(&beat_url)
        .json(&idle_beat(host))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        403,
        "old certificate after the new one was proven"
    );
    assert!(m
        .repo
        .is_revoked(&decnet_tls::pki::fingerprint_pem(&old.cert_pem).unwrap())
        .await
        .unwrap());
    let (status, _) =
        renew_with(&m, &old_client, &json!({"host_uuid": host, "csr_pem": csr})).await;
    assert_eq!(status, 403, "a revoked certificate cannot renew");
    // The new certificate cannot speak for another host either.
    let r = new_client
        .post(&beat_url)
        .json(&idle_beat(other))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    m.stop().await;
}

/// With no overlap the old certificate is refused right after the renewal (and revoked), the
/// new one works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_overlap_the_old_certificate_is_refused() {
    let m = start_master(
        None,
        MasterSettings {
            worker_cert_lifetime: Duration::from_secs(3600),
            renewal_overlap: Duration::ZERO,
            ..MasterSettings::default()
        },
    )
    .await;
    let ca = master_ca(&m);
    let (host, old) = enroll_host(&m, &ca, "h-nolap").await;
    let old_client = worker_client(&old);
    let (key, csr) = decnet_tls::pki::generate_key_and_csr("").unwrap();
    let (status, ans) =
        renew_with(&m, &old_client, &json!({"host_uuid": host, "csr_pem": csr})).await;
    assert_eq!(status, 200, "{ans}");
    let beat_url = format!("{}/swarm/heartbeat", m.running.swarm_url);
    let r = old_client
        .post(&beat_url)
        .json(&idle_beat(host))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "old certificate after the overlap");
    let new = decnet_tls::pki::Bundle {
        ca_pem: ca.cert_pem().to_string(),
        cert_pem: ans["cert_pem"].as_str().unwrap().to_string(),
        key_pem: key,
    };
    let r = worker_client(&new)
        .post(&beat_url)
        .json(&idle_beat(host))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(m
        .repo
        .is_revoked(&decnet_tls::pki::fingerprint_pem(&old.cert_pem).unwrap())
        .await
        .unwrap());
    m.stop().await;
}

/// `POST /swarm/events` and the operator's view of what was stored: a worker's batch is stored
/// once however often it is delivered, appears in `GET /api/v1/attacks` (filters, cursor
/// pages) and `/api/v1/attackers`, and goes out on the bus as `attack.<decky>.<service>`; a
/// batch for another host's decky, a malformed or oversized one, and one without a worker
/// certificate are refused whole, naming the field, with nothing stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attacker_events_from_a_worker_are_stored_once_and_shown() {
    use decnet_core::model::attack::{new_event_id, AttackDetails, AttackEvent, AttackKind};
    let m = start_master(None, MasterSettings::default()).await;
    let ca = master_ca(&m);
    let (host, bundle) = enroll_host(&m, &ca, "h-events").await;
    let (other, _) = enroll_host(&m, &ca, "h-other").await;
    for (h, name) in [(host, "ev-1"), (other, "ev-other")] {
        let decky = json!({"name": name, "ip": "10.0.0.9", "services": ["ssh"],
            "distro": "debian", "base_image": "debian", "hostname": "h9"});
        m.repo
            .upsert_shard(&Shard {
                host_uuid: h,
                decky_name: DeckyName::new(name).unwrap(),
                decky: serde_json::from_value(decky).unwrap(),
                state: ShardState::Running,
                last_error: None,
                last_seen: None,
                updated_at: Utc::now(),
            })
            .await
            .unwrap();
    }
    let event = |decky: &str, kind: AttackKind, user: Option<&str>| AttackEvent {
        v: 1,
        id: new_event_id(),
        ts: Utc::now(),
        host: String::new(),
        decky: decky.into(),
        service: "ssh".into(),
        protocol: decnet_core::model::attack::Transport::Tcp,
        src_ip: "10.0.0.66".parse().unwrap(),
        src_port: 50000,
        dst_ip: None,
        dst_port: 22,
        session: new_event_id(),
        stream: new_event_id(),
        seq: 1,
        kind,
        details: AttackDetails {
            username: user.map(str::to_string),
            password: user.map(|_| "hunter2".to_string()),
            ..AttackDetails::default()
        },
    };
    let c = worker_client(&bundle);
    let url = format!("{}/swarm/events", m.running.swarm_url);
    let batch: Vec<AttackEvent> = vec![
        event("ev-1", AttackKind::Connect, None),
        event("ev-1", AttackKind::Auth, Some("root")),
        event("ev-1", AttackKind::Auth, Some("admin")),
    ];
    let mut bus = m.running.bus.subscribe();
    let post = |body: Value| c.post(&url).json(&body).send();
    let r = post(json!({"host_uuid": host, "events": batch}))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let a: Value = r.json().await.unwrap();
    assert_eq!(a, json!({"stored": 3, "duplicates": 0}));
    // Delivered again (the answer was lost): stored once.
    let r = post(json!({"host_uuid": host, "events": batch}))
        .await
        .unwrap();
    let a: Value = r.json().await.unwrap();
    assert_eq!(a, json!({"stored": 0, "duplicates": 3}));
    let published = bus.recv().await.unwrap();
    assert_eq!(published.1.topic, "attack.ev-1.ssh");
    assert!(published.1.body["ts"].is_string());

    // Refused whole, naming the field; nothing stored.
    let cases = [
        (
            json!({"host_uuid": host, "events": [event("ev-1", AttackKind::Connect, None), event("ev-other", AttackKind::Connect, None)]}),
            422,
            "events[1].decky",
        ),
        (json!({"host_uuid": host, "events": "nope"}), 422, "events"),
        (
            json!({"host_uuid": host, "events": (0..1001).map(|_| event("ev-1", AttackKind::Connect, None)).collect::<Vec<_>>()}),
            422,
            "at most 1000",
        ),
    ];
    for (body, status, needle) in cases {
        let r = post(body).await.unwrap();
        assert_eq!(r.status(), status, "{needle}");
        let text = r.text().await.unwrap();
        assert!(text.contains(needle), "{needle}: {text}");
    }
    let stranger = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let r = stranger
        .post(&url)
        .json(&json!({"host_uuid": host, "events": [event("ev-1", AttackKind::Connect, None)]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "no worker certificate");

    // The operator's view.
    let get = |path: String| {
        let m = &m;
        async move {
            let r = reqwest::Client::new()
                .get(m.api(&path))
                .bearer_auth(&m.viewer)
                .send()
                .await
                .unwrap();
            (r.status(), r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (s, page) = get("/api/v1/attacks".into()).await;
    assert_eq!(s, 200);
    let events = page["events"].as_array().unwrap();
    assert_eq!(events.len(), 3, "{page}");
    assert!(events.iter().all(|e| e["host"] == json!(host.to_string())));
    assert!(page.get("next").is_none());
    let (_, auth) = get("/api/v1/attacks?kind=auth&limit=1".into()).await;
    assert_eq!(auth["events"][0]["details"]["username"], "root");
    let next = auth["next"].as_str().unwrap().to_string();
    let (_, rest) = get(format!("/api/v1/attacks?kind=auth&limit=1&after={next}")).await;
    assert_eq!(rest["events"][0]["details"]["username"], "admin");
    let (s, bad) = get("/api/v1/attacks?src=nowhere".into()).await;
    assert_eq!(s, 400);
    assert!(bad.to_string().contains("src"), "{bad}");
    let (s, profiles) = get("/api/v1/attackers".into()).await;
    assert_eq!(s, 200);
    let p = &profiles["attackers"][0];
    assert_eq!(p["src_ip"], "10.0.0.66");
    assert_eq!(p["attempts"], 2);
    assert_eq!(p["usernames"], json!(["admin", "root"]));
    assert_eq!(p["last_username"], "admin");
    let metrics = reqwest::Client::new()
        .get(m.api("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("decnet_attack_events_stored_total 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("decnet_attack_events_duplicate_total 3"),
        "{metrics}"
    );
    m.stop().await;
}

/// Retention (`--attack-retention-days`, `--attack-retention-max`): events older than the age
/// go, then all but the newest `max`. The master's own retention loop is off here (it would
/// race the test); the test applies one retention itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attacker_event_retention_by_age_and_count() {
    use decnet_core::model::attack::{new_event_id, AttackDetails, AttackEvent, AttackKind};
    use decnet_master_bin::master::attacks::apply_retention;
    let m = start_master(
        None,
        MasterSettings {
            attack_retention: None,
            attack_retention_max: None,
            ..MasterSettings::default()
        },
    )
    .await;
    let event = |age_hours: i64| AttackEvent {
        v: 1,
        id: new_event_id(),
        ts: Utc::now() - chrono::Duration::hours(age_hours),
        host: "local".into(),
        decky: "d".into(),
        service: "ssh".into(),
        protocol: decnet_core::model::attack::Transport::Tcp,
        src_ip: "10.0.0.66".parse().unwrap(),
        src_port: 1,
        dst_ip: None,
        dst_port: 22,
        session: new_event_id(),
        stream: new_event_id(),
        seq: 1,
        kind: AttackKind::Connect,
        details: AttackDetails::default(),
    };
    let all = vec![event(48), event(1), event(1), event(0)];
    m.repo.insert_attack_events(&all).await.unwrap();
    let deleted = apply_retention(
        &m.running.master,
        Some(std::time::Duration::from_secs(24 * 3600)),
        Some(2),
    )
    .await
    .unwrap();
    assert_eq!(deleted, 2, "one too old, then one over the count");
    let left = m
        .repo
        .attack_events(&decnet_core::model::attack::AttackQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        left.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![all[2].id, all[3].id]
    );
    m.stop().await;
}

/// Rollover settings: the successor is issued at start-up (6 years before expiry, and the
/// certificate has 5 left) and promoted only once every worker pinned it (the deadline is 3
/// years before expiry); the loop's next pass is an hour away, so each later step is the
/// test's own call to `roll_master`.
fn rollover_settings() -> MasterSettings {
    MasterSettings {
        heartbeat_interval: Duration::from_secs(1),
        master_renew_before: Some(Duration::from_secs(6 * 365 * 86_400)),
        master_cert_check_every: Duration::from_secs(3600),
        ..MasterSettings::default()
    }
}

/// The successor the start-up pass issued.
async fn successor(m: &TestMaster) -> String {
    until("the start-up pass to issue a successor", || async {
        m.running.master.pki.next_fingerprint().is_some()
    })
    .await;
    m.running.master.pki.next_fingerprint().unwrap()
}

/// A worker client that accepts the master only by `pin`.
fn pinned_worker_client(b: &decnet_tls::pki::Bundle, pin: &str) -> reqwest::Client {
    client_with_policy(b, master_policy(b).with_pinned_fingerprint(pin))
}

/// The master certificate rolls over (issue 9, item 14): a successor is issued ahead of
/// expiry and announced on `/swarm/master-pins`; it is not served until every worker said it
/// pinned it; then the swarm endpoint presents it, `master.crt` is it, and the answer names
/// it as current with no successor left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_master_certificate_rolls_over_once_every_worker_pinned_its_successor() {
    let m = start_master(None, rollover_settings()).await;
    let old = m.running.master.pki.fingerprint();
    let next = successor(&m).await;
    assert_ne!(old, next);
    let layout = DataDir::new(m.dir.path());
    assert_eq!(
        mode_of(&layout.master_next_key()),
        0o600,
        "the successor's key is a secret"
    );
    let ca = master_ca(&m);
    let (host, bundle) = enroll_host(&m, &ca, "w-roll").await;
    let url = format!("{}/swarm/master-pins", m.running.swarm_url);
    let ask = |next_fp: Option<&str>| {
        worker_client(&bundle)
            .post(&url)
            .json(&json!({"host_uuid": host, "next_fingerprint": next_fp}))
            .send()
    };
    let a: Value = ask(None).await.unwrap().json().await.unwrap();
    assert_eq!(
        a,
        json!({"master_fingerprint": old, "next_fingerprint": next})
    );
    // Not pinned yet: nothing changes.
    assert_eq!(run::roll_master(&m.running.master).await.unwrap(), None);
    let beat = |pin: &str| {
        pinned_worker_client(&bundle, pin)
            .post(format!("{}/swarm/heartbeat", m.running.swarm_url))
            .json(&idle_beat(host))
            .send()
    };
    assert!(beat(&old).await.unwrap().status().is_success());
    assert!(
        beat(&next).await.is_err(),
        "the successor is not served yet"
    );
    // A malformed pin is refused, naming the field.
    let r = ask(Some("nope")).await.unwrap();
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("next_fingerprint"));
    // The worker pinned it: the next pass promotes it.
    let a: Value = ask(Some(&next.to_uppercase()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(a["next_fingerprint"], next);
    let rolled = run::roll_master(&m.running.master).await.unwrap();
    assert!(
        matches!(&rolled, Some(decnet_master_bin::master::pki::Roll::Promoted { fingerprint }) if *fingerprint == next),
        "{rolled:?}"
    );
    assert!(beat(&next).await.unwrap().status().is_success());
    assert!(
        beat(&old).await.is_err(),
        "the old certificate is no longer served"
    );
    let a: Value = ask(Some(&next)).await.unwrap().json().await.unwrap();
    assert_eq!(
        a,
        json!({"master_fingerprint": next, "next_fingerprint": null})
    );
    let on_disk =
        decnet_tls::pki::fingerprint_pem(&std::fs::read_to_string(layout.master_cert()).unwrap())
            .unwrap();
    assert_eq!(on_disk, next);
    assert!(!layout.master_next_cert().exists() && !layout.master_next_key().exists());
    // /metrics shows when the CA and the (new) master certificate expire.
    let metrics = reqwest::Client::new()
        .get(m.api("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let expiry = |which: &str| -> u64 {
        let key = format!("decnet_cert_expiry_timestamp_seconds{{cert=\"{which}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&key))
            .unwrap_or_else(|| panic!("{key}: {metrics}"))
            .parse()
            .unwrap()
    };
    let new_not_after = m
        .running
        .master
        .pki
        .not_after()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert_eq!(expiry("master"), new_not_after);
    assert!(expiry("ca") >= expiry("master"), "no leaf outlives the CA");
    m.stop().await;
}

fn mode_of(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// The rollover with a real `decnet-agent`: it pins the announced successor in
/// `identity.json`, the master then promotes it, and the agent goes on — its heartbeats are
/// accepted over the new certificate, the master's calls to its API (presenting the new
/// certificate) are accepted, and its identity keeps only the new pin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_agent_follows_the_master_certificate_rollover() {
    let m = start_master(None, rollover_settings()).await;
    let next = successor(&m).await;
    let port = free_port();
    let agent_dir = enroll_real_agent(&m, "w-agent", port).await;
    let state_dir = tempfile::tempdir().unwrap();
    let identity = || -> Value {
        serde_json::from_str(
            &std::fs::read_to_string(agent_dir.path().join("identity.json")).unwrap(),
        )
        .unwrap()
    };
    let _agent = spawn_agent_with(
        agent_dir.path(),
        state_dir.path(),
        port,
        &["--master-pin-check", "1"],
    );
    until("the agent to pin the successor", || async {
        identity()["master_next_fingerprint"] == next.as_str()
    })
    .await;
    // The agent tells the master right after it saved the pin; the pass after that promotes.
    until("the master to hear the agent pinned it", || async {
        m.running
            .master
            .swarm
            .unpinned(&next)
            .await
            .unwrap()
            .is_empty()
    })
    .await;
    let rolled = run::roll_master(&m.running.master).await.unwrap();
    assert!(rolled.is_some(), "promoted once the agent pinned it");
    assert_eq!(m.running.master.pki.fingerprint(), next);
    let beats = || m.running.master.metrics.heartbeats_received.get();
    let before = beats();
    until("heartbeats over the new certificate", || async {
        beats() >= before + 2
    })
    .await;
    until("the agent to keep only the new pin", || async {
        let id = identity();
        id["master_fingerprint"] == next.as_str() && id.get("master_next_fingerprint").is_none()
    })
    .await;
    // The master → agent direction: the agent accepts the master's new client certificate.
    let host = m
        .running
        .master
        .repo
        .hosts()
        .await
        .unwrap()
        .into_iter()
        .next()
        .unwrap();
    let client = m
        .running
        .master
        .agents
        .connect(&host, Duration::from_secs(10))
        .unwrap();
    client
        .status()
        .await
        .expect("the agent's API accepts the new master certificate");
    m.stop().await;
}

/// A promotion interrupted between its two renames (the successor's key already master.key,
/// its certificate still master.next.crt) is finished at the next start: the master serves the
/// successor and the files are whole again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_promotion_is_finished_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let layout = DataDir::new(dir.path());
    let ca = write_pki(&layout);
    let next = ca
        .issue_keypair(&decnet_tls::pki::LeafSpec::master(vec![]))
        .unwrap();
    decnet_tls::pki::write_private(&layout.master_key(), next.key_pem.as_bytes()).unwrap();
    std::fs::write(layout.master_next_cert(), &next.cert_pem).unwrap();
    let pki = decnet_master_bin::master::pki::MasterPki::load(&layout).expect("recovered");
    assert_eq!(pki.fingerprint(), next.fingerprint);
    assert_eq!(pki.next_fingerprint(), None);
    assert!(!layout.master_next_cert().exists());
    let on_disk =
        decnet_tls::pki::fingerprint_pem(&std::fs::read_to_string(layout.master_cert()).unwrap())
            .unwrap();
    assert_eq!(on_disk, next.fingerprint);
    // A key that fits neither certificate is still an error naming the master certificate.
    let other = ca
        .issue_keypair(&decnet_tls::pki::LeafSpec::master(vec![]))
        .unwrap();
    decnet_tls::pki::write_private(&layout.master_key(), other.key_pem.as_bytes()).unwrap();
    let e = decnet_master_bin::master::pki::MasterPki::load(&layout).unwrap_err();
    assert!(e.starts_with("master certificate: "), "{e}");
}

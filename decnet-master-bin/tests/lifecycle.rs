#![allow(clippy::unwrap_used)] // test helpers abort on a broken fixture
//! Master II: the operator deploy API and the lifecycle runner, with an in-process master and
//! in-process agents (the agent library) over real mutual TLS on loopback, their deployers
//! faked. Every lifecycle row must end terminal with the right per-decky outcome, under faults.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use decnet_agent::app::{self, AgentConfig, AgentDeps, RunningAgent};
use decnet_agent::reaper::{Launcher, ReaperPlan};
use decnet_core::model::{
    DeckyName, DeckyRuntime, HeartbeatBody, LifecycleRow, LifecycleStatus, Operation, Role,
    RuntimeMap,
};
use decnet_core::traits::{
    Deployer, HeartbeatAck, HeartbeatTransport, MockHostNetwork, Repository, SystemClock,
    TransportError,
};
use decnet_master_bin::master::layout::DataDir;
use decnet_master_bin::master::run::{self, MasterConfig, MasterDeps, RunningMaster};
use decnet_master_bin::master::state::MasterSettings;
use serde_json::{json, Value};

mod common;
use common::{api_token, write_pki, FakeDeployer as Fake};
use tokio_util::sync::CancellationToken;

// ---------------------------------------------------------------------------------------------
// Fixtures

fn facts() -> MockHostNetwork {
    common::lan_facts(61)
}

struct NoLaunch;
impl Launcher for NoLaunch {
    fn launch(&self, _: &ReaperPlan) -> Result<(), String> {
        Ok(())
    }
}

struct TM {
    running: RunningMaster,
    repo: Arc<dyn Repository>,
    admin: String,
    viewer: String,
    _tmp: Option<tempfile::TempDir>,
    shutdown: CancellationToken,
}

fn fast() -> MasterSettings {
    MasterSettings {
        heartbeat_interval: Duration::from_secs(1),
        sweep_every: Duration::from_millis(200),
        dispatch_timeout: Duration::from_secs(5),
        ..MasterSettings::default()
    }
}

async fn start_master_in(
    dir: PathBuf,
    tmp: Option<tempfile::TempDir>,
    settings: MasterSettings,
    local: Option<Arc<dyn Deployer>>,
) -> TM {
    decnet_tls::install_default_provider();
    let layout = DataDir::new(&dir);
    if !layout.ca_cert().exists() {
        let _ = write_pki(&layout);
    }
    let repo = decnet_store::open(&layout.default_db_url()).await.unwrap();
    let tokens = [
        api_token(&repo, Role::Admin).await,
        api_token(&repo, Role::Viewer).await,
    ];
    let cfg = MasterConfig {
        data_dir: layout,
        db_url: None,
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
    let deps = MasterDeps {
        repo: repo.clone(),
        clock: Arc::new(SystemClock),
        local,
        hostnet: Arc::new(facts()),
        local_events: None,
    };
    let running = run::start(&cfg, deps, api, swarm, shutdown.clone())
        .await
        .unwrap();
    TM {
        running,
        repo,
        admin: tokens[0].clone(),
        viewer: tokens[1].clone(),
        _tmp: tmp,
        shutdown,
    }
}

async fn start_master(settings: MasterSettings, local: Option<Arc<dyn Deployer>>) -> TM {
    let tmp = tempfile::tempdir().unwrap();
    start_master_in(tmp.path().to_path_buf(), Some(tmp), settings, local).await
}

impl TM {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.running.api_url)
    }
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut r = reqwest::Client::new()
            .request(method, self.url(path))
            .bearer_auth(&self.admin);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap();
        let code = resp.status().as_u16();
        (code, resp.json().await.unwrap_or(Value::Null))
    }
    /// `POST /api/v1/deckies/deploy` with `body`, as the admin.
    async fn deploy(&self, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, "/api/v1/deckies/deploy", Some(body))
            .await
    }
    async fn rows(&self, ids: &[Value]) -> Vec<Value> {
        let q: Vec<String> = ids
            .iter()
            .map(|i| format!("ids={}", i.as_str().unwrap()))
            .collect();
        let (code, v) = self
            .call(
                reqwest::Method::GET,
                &format!("/api/v1/deckies/lifecycle?{}", q.join("&")),
                None,
            )
            .await;
        assert_eq!(code, 200);
        v["rows"].as_array().unwrap().clone()
    }
    /// Waits until every row is terminal; returns them.
    async fn settle(&self, ids: &[Value]) -> Vec<Value> {
        for _ in 0..300 {
            let rows = self.rows(ids).await;
            if rows.len() == ids.len()
                && rows
                    .iter()
                    .all(|r| r["status"] == "succeeded" || r["status"] == "failed")
            {
                return rows;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("rows never settled: {:?}", self.rows(ids).await);
    }
    async fn stop(self) {
        self.shutdown.cancel();
        self.running.join().await;
    }
}

/// A transport that loses the first heartbeat carrying deltas (the "immediate push").
struct Lossy {
    inner: Arc<dyn HeartbeatTransport>,
    lost: Mutex<u32>,
}

#[async_trait::async_trait]
impl HeartbeatTransport for Lossy {
    async fn send(&self, body: &HeartbeatBody) -> Result<HeartbeatAck, TransportError> {
        if !body.lifecycle.is_empty() {
            let mut lost = self.lost.lock().unwrap();
            if *lost == 0 {
                *lost += 1;
                return Err(TransportError::unreachable("connection reset (test)"));
            }
        }
        self.inner.send(body).await
    }
}

struct TA {
    agent: RunningAgent,
    fake: Arc<Fake>,
    shutdown: CancellationToken,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

/// Enrolls an in-process agent through the master's real enrollment, then starts it.
async fn start_agent(m: &TM, name: &str, lossy: bool) -> TA {
    start_agent_with(m, name, lossy, None).await
}

/// Waits until the switch reads `cut`.
async fn until(rx: &mut tokio::sync::watch::Receiver<bool>, cut: bool) {
    let _ = rx.wait_for(|c| *c == cut).await.map(|_| ());
}

/// A TCP relay on loopback standing for the network between master and worker. While `cut`
/// is true it carries nothing: open connections freeze and new ones are accepted but never
/// reach the other side, as when a cable is pulled (the peers see timeouts, not resets). A
/// connection that lived through a cut is dropped when the network heals (its state is lost,
/// as behind a NAT); new connections then flow again. Returns the relay's address.
async fn relay(target: std::net::SocketAddr, cut: tokio::sync::watch::Receiver<bool>) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = l.accept().await {
            let mut cut = cut.clone();
            tokio::spawn(async move {
                if *cut.borrow() {
                    until(&mut cut, false).await;
                    return;
                }
                let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                    return;
                };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    _ = until(&mut cut, true) => until(&mut cut, false).await,
                }
            });
        }
    });
    addr.to_string()
}

/// `start_agent`; with `cut`, both directions between master and agent go through relays that
/// the switch cuts and heals.
async fn start_agent_with(
    m: &TM,
    name: &str,
    lossy: bool,
    cut: Option<&tokio::sync::watch::Sender<bool>>,
) -> TA {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (address, master_url) = match cut {
        None => (addr.to_string(), m.running.swarm_url.clone()),
        Some(sw) => (
            relay(addr, sw.subscribe()).await,
            format!(
                "https://{}",
                relay(m.running.swarm_addr, sw.subscribe()).await
            ),
        ),
    };
    let (code, t) = m
        .call(
            reqwest::Method::POST,
            "/api/v1/swarm/enroll-tokens",
            Some(json!({"name": name, "address": address})),
        )
        .await;
    assert_eq!(code, 201, "{t}");
    let agent_dir = tempfile::tempdir().unwrap();
    let state_dir = tempfile::tempdir().unwrap();
    decnet_agent::enroll::enroll(&master_url, t["token"].as_str().unwrap(), agent_dir.path())
        .await
        .unwrap();
    let fake = Arc::new(Fake::default());
    *fake.state_path.lock().unwrap() = Some(decnet_core::adapters::state_file::state_path(
        state_dir.path(),
    ));
    let transport: Option<Arc<dyn HeartbeatTransport>> = if lossy {
        let (bundle, id) = app::load_credentials(agent_dir.path()).unwrap();
        let id = id.unwrap();
        let pins = decnet_tls::verify::SharedPins::new(&id.master_pins()).unwrap();
        let inner = Arc::new(
            decnet_agent::transport::HttpsTransport::new(&bundle, &id.master_url, &pins).unwrap(),
        );
        Some(Arc::new(Lossy {
            inner,
            lost: Mutex::new(0),
        }))
    } else {
        None
    };
    let cfg = AgentConfig {
        agent_dir: agent_dir.path().to_path_buf(),
        state_dir: state_dir.path().to_path_buf(),
        interface: None,
        body_limit: 1 << 24,
        heartbeat_interval: Duration::from_millis(500),
        reaper_paths: vec![],
        limits: decnet_web::ServeLimits::default(),
        renew_before: None,
        master_pin_check: decnet_agent::master_pins::DEFAULT_MASTER_PIN_CHECK,
    };
    let deps = AgentDeps {
        deployer: fake.clone(),
        hostnet: Arc::new(facts()),
        launcher: Arc::new(NoLaunch),
        clock: Arc::new(SystemClock),
        transport,
        events: None,
    };
    let shutdown = CancellationToken::new();
    let agent = app::start(&cfg, deps, listener, shutdown.clone())
        .await
        .unwrap();
    // Live: the master has heard from it.
    for _ in 0..100 {
        let (_, hosts) = m
            .call(reqwest::Method::GET, "/api/v1/swarm/hosts", None)
            .await;
        if hosts
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["name"] == name && h["status"] == "active")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    TA {
        agent,
        fake,
        shutdown,
        _dirs: (agent_dir, state_dir),
    }
}

fn three() -> Value {
    json!({"general": {"subnet": "10.61.0.0/24", "gateway": "10.61.0.1", "interface": "eth0"},
           "deckies": [{"name": "d", "amount": 3, "services": ["ssh"]}]})
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swarm_deploy_mutate_delete_close_every_row() {
    let m = start_master(fast(), None).await;
    let a = start_agent(&m, "w-1", false).await;
    let mut events = m.running.bus.subscribe();
    let (code, v) = m.deploy(three()).await;
    assert_eq!(code, 202, "{v}");
    assert_eq!(v["mode"], "swarm");
    let ids = v["lifecycle_ids"].as_array().unwrap().clone();
    assert_eq!(ids.len(), 3);
    let rows = m.settle(&ids).await;
    assert!(
        rows.iter()
            .all(|r| r["status"] == "succeeded" && r["operation"] == "deploy"),
        "{rows:?}"
    );
    assert!(a.fake.calls.lock().unwrap()[0].starts_with("deploy d-01:ssh,d-02:ssh,d-03:ssh"));
    let (_, list) = m.call(reqwest::Method::GET, "/api/v1/deckies", None).await;
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|d| d["state"] == "running" && d["host"] == "w-1"),
        "{list}"
    );
    // Every transition went on the bus.
    let mut seen = vec![];
    while let Ok((_, e)) = events.try_recv() {
        seen.push(e);
    }
    let topics: Vec<&str> = seen.iter().map(|e| e.topic.as_str()).collect();
    assert!(
        topics
            .iter()
            .filter(|t| **t == "decky.d-01.lifecycle")
            .count()
            >= 2,
        "{topics:?}"
    );
    // The decky's recorded state: inserted (pending), then pending → running; the wire words
    // and fields of the original (`previous_state` only on `state_changed`).
    let host = a.agent.identity.as_ref().unwrap().host_uuid;
    let state_topic = format!("decky.{host}:d-01.state");
    let states: Vec<&Value> = seen
        .iter()
        .filter(|e| e.topic == state_topic)
        .map(|e| &e.body)
        .collect();
    assert_eq!(states.len(), 2, "{states:?}");
    assert_eq!(
        (&states[0]["transition"], &states[0]["state"]),
        (&json!("inserted"), &json!("pending"))
    );
    assert!(states[0].get("previous_state").is_none());
    assert_eq!(
        (
            &states[1]["transition"],
            &states[1]["state"],
            &states[1]["previous_state"]
        ),
        (
            &json!("state_changed"),
            &json!("running"),
            &json!("pending")
        )
    );
    assert_eq!(states[1]["source"], "fleet");
    assert_eq!(states[1]["host_uuid"], host.to_string());

    let mut events = m.running.bus.subscribe();
    let (code, v) = m
        .call(
            reqwest::Method::POST,
            "/api/v1/deckies/d-02/mutate",
            Some(json!({"services": ["ftp"]})),
        )
        .await;
    assert_eq!(code, 202, "{v}");
    let rows = m.settle(v["lifecycle_ids"].as_array().unwrap()).await;
    assert_eq!(rows[0]["status"], "succeeded");
    assert_eq!(rows[0]["operation"], "mutate");
    let mut mutation = None;
    while let Ok((_, e)) = events.try_recv() {
        if e.topic == "decky.d-02.mutation" {
            let mut body = e.body;
            // Every bus body carries its time (PRODUCT §9).
            let ts = body.as_object_mut().and_then(|o| o.remove("ts"));
            assert!(ts.is_some_and(|t| t.is_string()), "a ts");
            mutation = Some(body);
        }
    }
    assert_eq!(
        mutation,
        Some(
            json!({"decky": "d-02", "old_services": ["ssh"], "new_services": ["ftp"],
                    "trigger": "operator"})
        )
    );
    assert!(a
        .fake
        .calls
        .lock()
        .unwrap()
        .last()
        .unwrap()
        .contains("d-02:ftp"));
    // Without services: a fresh draw, never the same set.
    let (code, v) = m
        .call(reqwest::Method::POST, "/api/v1/deckies/d-01/mutate", None)
        .await;
    assert_eq!(code, 202, "{v}");
    m.settle(v["lifecycle_ids"].as_array().unwrap()).await;

    let mut events = m.running.bus.subscribe();
    let (code, v) = m
        .call(reqwest::Method::DELETE, "/api/v1/deckies/d-03", None)
        .await;
    assert_eq!(code, 202);
    let rows = m.settle(v["lifecycle_ids"].as_array().unwrap()).await;
    assert_eq!(
        (rows[0]["operation"].as_str(), rows[0]["status"].as_str()),
        (Some("teardown"), Some("succeeded"))
    );
    let d3 = format!("decky.{host}:d-03.state");
    let mut states = vec![];
    while let Ok((_, e)) = events.try_recv() {
        if e.topic == d3 {
            states.push(e.body);
        }
    }
    let words: Vec<(&str, &str)> = states
        .iter()
        .map(|b| {
            (
                b["transition"].as_str().unwrap(),
                b["state"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        words,
        [("state_changed", "tearing_down"), ("deleted", "torn_down")],
        "{states:?}"
    );
    assert!(states[1].get("previous_state").is_none());
    let (_, list) = m.call(reqwest::Method::GET, "/api/v1/deckies", None).await;
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert!(m
        .repo
        .shards(None)
        .await
        .unwrap()
        .iter()
        .all(|s| s.decky_name.as_str() != "d-03"));
    // Every dispatch was answered 2xx: deploy, two mutates, the teardown.
    let metrics = reqwest::get(m.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("decnet_dispatches_total{result=\"accepted\"} 4\n")
            && metrics.contains("decnet_dispatches_total{result=\"failed\"} 0\n"),
        "{metrics}"
    );
    // Every closed row was counted and timed, by operation and status (the metrics follow
    // the bus, so they may trail the rows by a moment).
    let mut metrics = String::new();
    for _ in 0..200 {
        metrics = reqwest::get(m.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metrics.contains(
            "decnet_operation_duration_seconds_count{operation=\"teardown\",status=\"succeeded\"} 1\n",
        ) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    for op in ["deploy", "mutate", "teardown"] {
        let count = format!(
            "decnet_operation_duration_seconds_count{{operation=\"{op}\",status=\"succeeded\"}} "
        );
        let completed = format!(
            "decnet_lifecycle_rows_completed_total{{operation=\"{op}\",status=\"succeeded\"}} "
        );
        assert!(
            metrics.contains(&count) && metrics.contains(&completed),
            "{op}\n{metrics}"
        );
    }
    assert!(
        metrics.contains("decnet_lifecycle_open_rows{operation=\"deploy\",status=\"running\"} 0\n")
    );
    a.shutdown.cancel();
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unihost_rows_close_through_the_local_deployer() {
    let fake = Arc::new(Fake::default());
    fake.fail
        .lock()
        .unwrap()
        .insert("d-02".into(), "service ssh: exited with code 1".into());
    let m = start_master(fast(), Some(fake.clone())).await;
    let (code, v) = m.deploy(three()).await;
    assert_eq!(code, 202, "{v}");
    assert_eq!(v["mode"], "unihost");
    let rows = m.settle(v["lifecycle_ids"].as_array().unwrap()).await;
    let by: BTreeMap<_, _> = rows
        .iter()
        .map(|r| (r["decky_name"].as_str().unwrap().to_string(), r.clone()))
        .collect();
    assert_eq!(by["d-01"]["status"], "succeeded");
    assert_eq!(by["d-02"]["status"], "failed");
    assert!(by["d-02"]["error"]
        .as_str()
        .unwrap()
        .contains("exited with code 1"));
    assert!(by["d-02"]["host_uuid"].is_null());
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_push_is_closed_by_the_next_heartbeat() {
    let m = start_master(fast(), None).await;
    let _a = start_agent(&m, "w-lossy", true).await;
    let (code, v) = m.deploy(three()).await;
    assert_eq!(code, 202);
    let rows = m.settle(v["lifecycle_ids"].as_array().unwrap()).await;
    assert!(rows.iter().all(|r| r["status"] == "succeeded"), "{rows:?}");
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_killed_mid_deploy_the_sweep_fails_the_rows() {
    let m = start_master(
        MasterSettings {
            deploy_timeout: Duration::from_secs(2),
            ..fast()
        },
        None,
    )
    .await;
    let a = start_agent(&m, "w-dies", false).await;
    let _gate = hold_deploys(&a); // never opened: the agent dies holding the work
                                  // The master has the agent's 202 (the rows turn running before dispatch, so their status
                                  // alone does not say the agent accepted the work); then the agent dies.
    let ids = deploy_and_wait_until_taken(&m, &a).await;
    a.shutdown.cancel();
    a.agent.server.abort();
    let rows = m.settle(&ids).await;
    for r in &rows {
        assert_eq!(r["status"], "failed");
        assert!(
            r["error"].as_str().unwrap().contains("deploy timeout 2 s"),
            "{r}"
        );
    }
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_master_fails_orphaned_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let m = start_master_in(dir.clone(), None, fast(), None).await;
    let now = Utc::now();
    let mut ids = vec![];
    // Rows a runner had started (a pending row would be picked up by this master's runner).
    for (name, status) in [
        ("a", LifecycleStatus::Running),
        ("b", LifecycleStatus::Running),
    ] {
        let mut row =
            LifecycleRow::new(DeckyName::new(name).unwrap(), None, Operation::Deploy, now);
        row.status = status;
        m.repo.create_lifecycle(&row).await.unwrap();
        ids.push(json!(row.id.to_string()));
    }
    // The rows have no runner: a crash. (No local deployer, so nothing picks them up first.)
    m.shutdown.cancel();
    m.running.join().await;
    let m = start_master_in(dir, None, fast(), None).await;
    let rows = m.rows(&ids).await;
    for r in &rows {
        assert_eq!(r["status"], "failed");
        assert_eq!(r["error"], "master restarted during operation");
    }
    m.stop().await;
    drop(tmp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_operations_on_one_decky_close_their_own_rows_in_order() {
    let m = start_master(fast(), None).await;
    let a = start_agent(&m, "w-slow", false).await;
    *a.fake.delay.lock().unwrap() = Duration::from_millis(300);
    let (_, v) = m.call(reqwest::Method::POST, "/api/v1/deckies/deploy",
        Some(json!({"general": {"subnet": "10.61.0.0/24", "gateway": "10.61.0.1", "interface": "eth0"}, "deckies": [{"name": "solo", "services": ["ssh"]}]}))).await;
    let deploy_id = v["lifecycle_ids"][0].clone();
    let (_, v) = m
        .call(
            reqwest::Method::POST,
            "/api/v1/deckies/solo/mutate",
            Some(json!({"services": ["ftp"]})),
        )
        .await;
    let mutate_id = v["lifecycle_ids"][0].clone();
    let rows = m.settle(&[deploy_id.clone(), mutate_id.clone()]).await;
    let get = |id: &Value| rows.iter().find(|r| r["id"] == *id).unwrap().clone();
    let (d, mu) = (get(&deploy_id), get(&mutate_id));
    assert_eq!(
        (d["operation"].as_str(), d["status"].as_str()),
        (Some("deploy"), Some("succeeded"))
    );
    assert_eq!(
        (mu["operation"].as_str(), mu["status"].as_str()),
        (Some("mutate"), Some("succeeded"))
    );
    assert!(d["completed_at"].as_str().unwrap() <= mu["completed_at"].as_str().unwrap());
    assert!(a
        .fake
        .calls
        .lock()
        .unwrap()
        .last()
        .unwrap()
        .contains("solo:ftp"));
    m.stop().await;
}

/// A stand-in agent that refuses work (500) and answers /status with a given runtime map, so
/// the master must probe and decide per decky.
async fn stand_in_agent(m: &TM, name: &str, runtime: Option<RuntimeMap>) -> CancellationToken {
    let status = runtime.map(|rt| json!({"deployed": true, "mode": "swarm", "compose_path": "", "deckies": [], "runtime": rt, "taken_at": Utc::now(), "in_flight": []}));
    let refusal = (axum::http::StatusCode::INTERNAL_SERVER_ERROR, json!("boom"));
    stand_in_agent_with(m, name, status, refusal).await
}

/// A stand-in agent that answers `/deploy` with `refusal` and `/status` with `status`
/// (`None`: 500).
async fn stand_in_agent_with(
    m: &TM,
    name: &str,
    status: Option<Value>,
    refusal: (axum::http::StatusCode, Value),
) -> CancellationToken {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_, t) = m
        .call(
            reqwest::Method::POST,
            "/api/v1/swarm/enroll-tokens",
            Some(json!({"name": name, "address": addr.to_string()})),
        )
        .await;
    let dir = tempfile::tempdir().unwrap();
    let id = decnet_agent::enroll::enroll(
        &m.running.swarm_url,
        t["token"].as_str().unwrap(),
        dir.path(),
    )
    .await
    .unwrap();
    let bundle = decnet_tls::pki::Bundle::load_worker_dir(dir.path()).unwrap();
    let policy = decnet_tls::verify::PeerPolicy::from_ca_pem(&bundle.ca_pem)
        .unwrap()
        .with_expected_cn("decnet-master");
    let tls = decnet_tls::verify::server_config(
        &bundle,
        &policy,
        decnet_tls::verify::ClientAuth::Required,
    )
    .unwrap();
    let app = axum::Router::new()
        .route(
            "/deploy",
            axum::routing::post(move || {
                let (code, body) = refusal.clone();
                async move { (code, axum::Json(body)) }
            }),
        )
        .route(
            "/status",
            axum::routing::get(move || {
                let s = status.clone();
                async move {
                    match s {
                        Some(v) => (axum::http::StatusCode::OK, axum::Json(v)),
                        None => (
                            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                            axum::Json(Value::Null),
                        ),
                    }
                }
            }),
        );
    let shutdown = CancellationToken::new();
    let t2 = shutdown.clone();
    tokio::spawn(async move {
        decnet_web::serve(
            listener,
            Some(tls),
            app,
            decnet_web::ServeLimits::default(),
            t2,
        )
        .await
        .unwrap()
    });
    m.repo
        .record_heartbeat(id.host_uuid, Utc::now(), Some("test".into()))
        .await
        .unwrap();
    std::mem::forget(dir);
    shutdown
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_dispatch_is_settled_per_decky_by_probing() {
    let m = start_master(fast(), None).await;
    let running = |r: bool| {
        DeckyRuntime::from_services(
            [(
                "ssh".to_string(),
                if r { "running" } else { "exited" }.to_string(),
            )]
            .into(),
        )
    };
    let rt: RuntimeMap = [
        ("d-01".to_string(), running(true)),
        ("d-02".to_string(), running(true)),
        ("d-03".to_string(), running(false)),
    ]
    .into();
    let _agent = stand_in_agent(&m, "w-probe", Some(rt)).await;
    let (_, v) = m.deploy(three()).await;
    let rows = m.settle(v["lifecycle_ids"].as_array().unwrap()).await;
    let failed: Vec<_> = rows.iter().filter(|r| r["status"] == "failed").collect();
    assert_eq!(failed.len(), 1, "{rows:?}");
    assert_eq!(failed[0]["decky_name"], "d-03");
    assert!(failed[0]["error"].as_str().unwrap().contains("not running"));
    m.stop().await;

    // The probe itself fails: the whole shard fails.
    let m = start_master(fast(), None).await;
    let _agent = stand_in_agent(&m, "w-probe2", None).await;
    let (_, v) = m.deploy(three()).await;
    let rows = m.settle(v["lifecycle_ids"].as_array().unwrap()).await;
    assert!(
        rows.iter().all(|r| r["status"] == "failed"
            && r["error"].as_str().unwrap().contains("could not be probed")),
        "{rows:?}"
    );
    m.stop().await;
}

/// An agent whose state file is unreadable refuses the deploy (409) and reports
/// `state_error` while its containers still run: the rows fail with the agent's reason, the
/// runtime map does not make them "succeeded".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dispatch_refused_on_an_unreadable_state_file_fails_the_rows() {
    let m = start_master(fast(), None).await;
    let up = DeckyRuntime::from_services([("ssh".to_string(), "running".to_string())].into());
    let rt: RuntimeMap = ["d-01", "d-02", "d-03"]
        .into_iter()
        .map(|n| (n.to_string(), up.clone()))
        .collect();
    let path = "/var/lib/decnet/agent/decnet-state.json";
    let status = json!({"deployed": false, "deckies": [], "runtime": rt, "taken_at": Utc::now(),
        "in_flight": [], "state_error": format!("{path}: not valid JSON")});
    let refusal = (
        axum::http::StatusCode::CONFLICT,
        json!({"detail": format!("worker state file {path} is unreadable: not valid JSON; fix or move it, then retry")}),
    );
    let _agent = stand_in_agent_with(&m, "w-broken", Some(status), refusal).await;
    let (_, v) = m.deploy(three()).await;
    let rows = m.settle(v["lifecycle_ids"].as_array().unwrap()).await;
    assert!(
        rows.iter().all(|r| r["status"] == "failed"
            && r["error"].as_str().unwrap().contains(&format!(
                "409 Conflict: worker state file {path} is unreadable"
            ))),
        "{rows:?}"
    );
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_api_contract() {
    let fake = Arc::new(Fake::default());
    let m = start_master(
        MasterSettings {
            fleet_limit: 5,
            ..fast()
        },
        Some(fake),
    )
    .await;
    let c = reqwest::Client::new();
    // Auth.
    for (method, path) in [
        (reqwest::Method::GET, "/api/v1/deckies"),
        (reqwest::Method::POST, "/api/v1/deckies/deploy"),
        (reqwest::Method::GET, "/api/v1/deckies/lifecycle"),
    ] {
        assert_eq!(
            c.request(method.clone(), m.url(path))
                .send()
                .await
                .unwrap()
                .status(),
            401,
            "{path}"
        );
    }
    assert_eq!(
        c.get(m.url("/api/v1/deckies"))
            .bearer_auth(&m.viewer)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        c.post(m.url("/api/v1/deckies/deploy"))
            .bearer_auth(&m.viewer)
            .json(&three())
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    // The role is checked before the body is read: a viewer's malformed body is 403 too.
    for (path, body) in [
        ("/api/v1/deckies/deploy", "{not json"),
        ("/api/v1/deckies/deploy", r#"{"colour": 1}"#),
        ("/api/v1/deckies/x/mutate", "{not json"),
        ("/api/v1/tokens", "{not json"),
        ("/api/v1/swarm/enroll-tokens", "[]"),
    ] {
        let r = c
            .post(m.url(path))
            .bearer_auth(&m.viewer)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{path} {body}");
    }
    assert_eq!(
        c.delete(m.url("/api/v1/deckies/x"))
            .bearer_auth(&m.viewer)
            .send()
            .await
            .unwrap()
            .status(),
        403
    );

    // Bad input: 4xx naming the field; nothing committed.
    let table: Vec<(Value, u16, &str)> = vec![
        (json!({}), 422, "ini_content"),
        (
            json!({"ini_content": "[a]\nservices=ssh\n", "deckies": []}),
            422,
            "not both",
        ),
        (
            json!({"ini_content": "[a]\nservics=ssh\n"}),
            422,
            "ini_content: [a] (line 2)",
        ),
        (
            json!({"ini_content": ""}),
            422,
            "ini_content: ini: empty input",
        ),
        (
            json!({"deckies": [{"name": "x", "services": ["gopher"]}]}),
            422,
            "deckies[0].services",
        ),
        (
            json!({"deckies": [{"name": "x", "ip": "10.61.0.300"}]}),
            422,
            "deckies[0].ip",
        ),
        (
            json!({"deckies": [{"name": "x", "colour": 1}]}),
            422,
            "unknown field `colour`",
        ),
        (
            json!({"deckies": [{"name": "Bad_Name", "services": ["ssh"]}]}),
            422,
            "must match",
        ),
        (
            json!({"deckies": [{"name": "x", "services": ["http", "https"]}]}),
            422,
            "port clash",
        ),
        (
            json!({"deckies": [{"name": "x", "amount": 300, "services": ["ssh"]}]}),
            422,
            "exceeds the maximum of 100",
        ),
        (
            json!({"deckies": [{"name": "x", "amount": 6, "services": ["ssh"]}]}),
            409,
            "over the limit of 5",
        ),
        // Counted before anything is built: a spec that would fail later changes nothing.
        (
            json!({"deckies": [{"name": "x", "amount": 3, "services": ["ssh"]},
                               {"name": "y", "amount": 3, "services": ["ssh"]},
                               {"name": "z", "archetype": "no-such-archetype"}]}),
            409,
            "would hold 7 deckies, over the limit of 5",
        ),
        (
            json!({"deckies": (0..20_000)
                .map(|i| json!({"name": format!("n{i}"), "amount": 100, "services": ["ssh"]}))
                .collect::<Vec<_>>()}),
            409,
            "would hold 2000000 deckies, over the limit of 5",
        ),
        (
            json!({"general": {"subnet": "10.61.0.0/30"}, "deckies": [{"name": "x", "amount": 3, "services": ["ssh"]}]}),
            409,
            "not enough free IPs",
        ),
        (
            json!({"general": {"subnet": "10.61.0.5/24"}, "deckies": [{"name": "x", "services": ["ssh"]}]}),
            422,
            "general.subnet",
        ),
        (
            json!({"deckies": [{"name": "x", "services": ["ssh"]}], "replace_fleet": "yes"}),
            422,
            "replace_fleet",
        ),
    ];
    for (body, code, detail) in table {
        let (got, v) = m.deploy(body.clone()).await;
        assert_eq!(got, code, "{body} → {v}");
        assert!(
            v["detail"].as_str().unwrap_or_default().contains(detail),
            "{body} → {v}"
        );
    }
    assert!(
        m.repo.desired_fleet().await.unwrap().is_none(),
        "nothing committed"
    );

    // A name or IP collision with the deployed fleet is 409; replace_fleet is not.
    let (code, _) = m
        .deploy(json!({"deckies": [{"name": "x", "ip": "10.61.0.20", "services": ["ssh"]}]}))
        .await;
    assert_eq!(code, 202);
    let (code, v) = m
        .deploy(json!({"deckies": [{"name": "x", "services": ["ssh"]}]}))
        .await;
    assert_eq!(code, 409, "{v}");
    let (code, v) = m
        .deploy(json!({"deckies": [{"name": "y", "ip": "10.61.0.20", "services": ["ssh"]}]}))
        .await;
    assert_eq!(code, 409, "{v}");
    let (code, v) = m.call(reqwest::Method::POST, "/api/v1/deckies/deploy", Some(json!({"deckies": [{"name": "y", "ip": "10.61.0.20", "services": ["ssh"]}], "replace_fleet": true}))).await;
    assert_eq!(code, 202, "{v}");
    assert_eq!(
        v["lifecycle_ids"].as_array().unwrap().len(),
        2,
        "y deployed, x torn down"
    );

    // Mutate / delete / lifecycle input.
    assert_eq!(
        m.call(reqwest::Method::POST, "/api/v1/deckies/nope/mutate", None)
            .await
            .0,
        404
    );
    assert_eq!(
        m.call(
            reqwest::Method::POST,
            "/api/v1/deckies/y/mutate",
            Some(json!({"services": []}))
        )
        .await
        .0,
        422
    );
    assert_eq!(
        m.call(
            reqwest::Method::POST,
            "/api/v1/deckies/y/mutate",
            Some(json!({"services": ["x"], "extra": 1}))
        )
        .await
        .0,
        422
    );
    assert_eq!(
        m.call(reqwest::Method::DELETE, "/api/v1/deckies/nope", None)
            .await
            .0,
        404
    );
    assert_eq!(
        m.call(reqwest::Method::DELETE, "/api/v1/deckies/Not.A.Name", None)
            .await
            .0,
        422
    );
    let (code, v) = m
        .call(
            reqwest::Method::GET,
            "/api/v1/deckies/lifecycle?ids=nope",
            None,
        )
        .await;
    assert_eq!(code, 422, "{v}");
    let (code, v) = m
        .call(
            reqwest::Method::GET,
            &format!("/api/v1/deckies/lifecycle?ids={}", uuid::Uuid::new_v4()),
            None,
        )
        .await;
    assert_eq!(
        (code, v),
        (200, json!({"rows": []})),
        "unknown ids are omitted"
    );

    // Random bodies never get a 5xx.
    let mut seed = 0x9e3779b97f4a7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let atoms = [
        json!(null),
        json!(1),
        json!(-1),
        json!("x"),
        json!("10.61.0.5"),
        json!(""),
        json!([]),
        json!({}),
        json!(true),
        json!(1e300),
        json!("ssh"),
        json!(["ssh", "http"]),
        json!("decky-01"),
    ];
    let keys = [
        "name",
        "ip",
        "services",
        "archetype",
        "amount",
        "nmap_os",
        "service_config",
        "mutate_interval",
        "general",
        "deckies",
        "ini_content",
        "replace_fleet",
        "subnet",
        "bogus",
    ];
    for _ in 0..150 {
        let mut decky = serde_json::Map::new();
        for _ in 0..(next() % 5) {
            decky.insert(
                keys[(next() % keys.len() as u64) as usize].into(),
                atoms[(next() % atoms.len() as u64) as usize].clone(),
            );
        }
        let mut body = serde_json::Map::new();
        body.insert("deckies".into(), json!([Value::Object(decky)]));
        if next() % 3 == 0 {
            body.insert(
                keys[(next() % keys.len() as u64) as usize].into(),
                atoms[(next() % atoms.len() as u64) as usize].clone(),
            );
        }
        let (code, v) = m.deploy(Value::Object(body.clone())).await;
        assert!(code < 500, "{body:?} → {code} {v}");
    }
    m.stop().await;
}

// ---------------------------------------------------------------------------------------------
// The network to a worker cut (both directions, through relays; see `relay`)

fn started(a: &TA) -> bool {
    a.fake.started.load(std::sync::atomic::Ordering::SeqCst) > 0
}

/// Deploys `three()` and returns the row ids once the agent's deployer holds the work.
async fn deploy_and_wait_until_taken(m: &TM, a: &TA) -> Vec<Value> {
    let (code, v) = m.deploy(three()).await;
    assert_eq!(code, 202, "{v}");
    for _ in 0..500 {
        if started(a) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(started(a), "the agent never took the deploy");
    // The agent answers 202 after queueing: wait until the master has the answer.
    let accepted = || m.running.master.metrics.dispatches_accepted.get();
    for _ in 0..500 {
        if accepted() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(accepted(), 1, "the master never had the agent's 202");
    v["lifecycle_ids"].as_array().unwrap().clone()
}

/// Holds the agent's deploys until the returned gate gets a permit (`add_permits`).
fn hold_deploys(a: &TA) -> Arc<tokio::sync::Semaphore> {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    *a.fake.gate.lock().unwrap() = Some(gate.clone());
    gate
}

/// The terminal lifecycle events seen on the bus, per lifecycle id.
fn terminal_events(
    events: &mut tokio::sync::broadcast::Receiver<decnet_master_bin::master::state::Numbered>,
) -> BTreeMap<String, Vec<String>> {
    let mut by: BTreeMap<String, Vec<String>> = BTreeMap::new();
    while let Ok((_, e)) = events.try_recv() {
        let status = e.body["status"].as_str().unwrap_or_default().to_string();
        if e.topic.ends_with(".lifecycle") && (status == "succeeded" || status == "failed") {
            by.entry(e.body["lifecycle_id"].as_str().unwrap().to_string())
                .or_default()
                .push(status);
        }
    }
    by
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_cut_mid_deploy_heals_and_every_row_closes_once() {
    let m = start_master(fast(), None).await;
    let (net, _) = tokio::sync::watch::channel(false);
    let a = start_agent_with(&m, "w-cut", false, Some(&net)).await;
    let gate = hold_deploys(&a);
    let mut events = m.running.bus.subscribe();
    let ids = deploy_and_wait_until_taken(&m, &a).await;

    net.send_replace(true);
    gate.add_permits(1);
    // The agent finishes while cut off: its push and its heartbeats go nowhere.
    for _ in 0..200 {
        if !a.fake.calls.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!a.fake.calls.lock().unwrap().is_empty());
    tokio::time::sleep(Duration::from_secs(2)).await; // four heartbeat intervals lost
    let rows = m.rows(&ids).await;
    assert!(rows.iter().all(|r| r["status"] == "running"), "{rows:?}");
    assert!(!a.agent.outbox.is_empty(), "the deltas wait in the outbox");

    net.send_replace(false);
    let rows = m.settle(&ids).await;
    assert!(rows.iter().all(|r| r["status"] == "succeeded"), "{rows:?}");
    // Each row closed exactly once, whatever the agent had to resend.
    let terminal = terminal_events(&mut events);
    for id in &ids {
        assert_eq!(
            terminal.get(id.as_str().unwrap()),
            Some(&vec!["succeeded".to_string()]),
            "{terminal:?}"
        );
    }
    let (_, list) = m.call(reqwest::Method::GET, "/api/v1/deckies", None).await;
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|d| d["state"] == "running" && d["host"] == "w-cut"),
        "{list}"
    );
    a.shutdown.cancel();
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_cut_past_the_timeout_fails_the_rows_and_late_deltas_change_nothing() {
    let m = start_master(
        MasterSettings {
            deploy_timeout: Duration::from_secs(2),
            ..fast()
        },
        None,
    )
    .await;
    let (net, _) = tokio::sync::watch::channel(false);
    let a = start_agent_with(&m, "w-cut-long", false, Some(&net)).await;
    let gate = hold_deploys(&a);
    let mut events = m.running.bus.subscribe();
    let ids = deploy_and_wait_until_taken(&m, &a).await;

    net.send_replace(true);
    gate.add_permits(1);
    let rows = m.settle(&ids).await;
    for r in &rows {
        assert_eq!(r["status"], "failed", "{r}");
        assert!(
            r["error"].as_str().unwrap().contains("deploy timeout 2 s"),
            "{r}"
        );
    }
    // Heal: the agent's deltas (succeeded) now arrive, for rows that are already terminal.
    net.send_replace(false);
    let mut seen = false;
    for _ in 0..200 {
        let (_, list) = m.call(reqwest::Method::GET, "/api/v1/deckies", None).await;
        if list
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["state"] == "running")
        {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        seen,
        "the healed agent's heartbeats never showed the deckies running: {:?} {:?}",
        m.call(reqwest::Method::GET, "/api/v1/deckies", None).await,
        m.call(reqwest::Method::GET, "/api/v1/swarm/hosts", None)
            .await
    );
    // The late deltas were delivered and acknowledged (a refused transition is still an
    // answer), so the agent stops resending them.
    for _ in 0..100 {
        if a.agent.outbox.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        a.agent.outbox.is_empty(),
        "{:?}",
        a.agent.outbox.pending(10)
    );
    let rows = m.rows(&ids).await;
    assert!(rows.iter().all(|r| r["status"] == "failed"), "{rows:?}");
    let terminal = terminal_events(&mut events);
    for id in &ids {
        assert_eq!(
            terminal.get(id.as_str().unwrap()),
            Some(&vec!["failed".to_string()]),
            "a terminal row changed: {terminal:?}"
        );
    }
    a.shutdown.cancel();
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_while_the_network_is_cut_fails_every_row_with_both_reasons() {
    let m = start_master(
        MasterSettings {
            dispatch_timeout: Duration::from_secs(1),
            ..fast()
        },
        None,
    )
    .await;
    let (net, _) = tokio::sync::watch::channel(false);
    let a = start_agent_with(&m, "w-cut-off", false, Some(&net)).await;
    net.send_replace(true);
    let (code, v) = m.deploy(three()).await;
    // The host was live a moment ago: the fleet is assigned to it, and the rows must still end.
    assert_eq!(code, 202, "{v}");
    assert_eq!(v["mode"], "swarm");
    let rows = m.settle(v["lifecycle_ids"].as_array().unwrap()).await;
    for r in &rows {
        assert_eq!(r["status"], "failed", "{r}");
        let e = r["error"].as_str().unwrap();
        assert!(
            e.contains("dispatch failed") && e.contains("could not be probed"),
            "{r}"
        );
    }
    assert!(!started(&a), "nothing reached the agent");
    net.send_replace(false);
    a.shutdown.cancel();
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_seen_follows_every_heartbeat_that_echoes_the_decky() {
    let m = start_master(fast(), None).await;
    let a = start_agent(&m, "w-seen", false).await;
    let (_, v) = m.deploy(three()).await;
    m.settle(v["lifecycle_ids"].as_array().unwrap()).await;
    let seen = |list: &Value| -> BTreeMap<String, chrono::DateTime<Utc>> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|d| {
                let at = d["last_seen"].as_str().unwrap_or_else(|| panic!("{d}"));
                (d["name"].as_str().unwrap().to_string(), at.parse().unwrap())
            })
            .collect()
    };
    // The state stays `running` (no store write), yet `last_seen` moves with the heartbeats
    // (every 500 ms); the original moved it only on state changes.
    let mut first = BTreeMap::new();
    for _ in 0..100 {
        let (_, list) = m.call(reqwest::Method::GET, "/api/v1/deckies", None).await;
        if list
            .as_array()
            .unwrap()
            .iter()
            .all(|d| !d["last_seen"].is_null())
        {
            first = seen(&list);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(first.len(), 3, "last_seen never set");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, list) = m.call(reqwest::Method::GET, "/api/v1/deckies", None).await;
    assert!(list
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["state"] == "running"));
    let later = seen(&list);
    for (name, t) in &first {
        assert!(later[name] > *t, "{name}: {t} then {}", later[name]);
    }
    a.shutdown.cancel();
    m.stop().await;
}

async fn host_status(m: &TM) -> String {
    let (_, hosts) = m
        .call(reqwest::Method::GET, "/api/v1/swarm/hosts", None)
        .await;
    hosts[0]["status"].as_str().unwrap().to_string()
}

async fn wait_for_host_status(m: &TM, want: &str) {
    for _ in 0..300 {
        if host_status(m).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the host never went {want}: {}", host_status(m).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_cut_off_goes_unreachable_and_comes_back_active() {
    // The master's interval is 1 s: three missed ones make a host unreachable.
    let m = start_master(fast(), None).await;
    let (net, _) = tokio::sync::watch::channel(false);
    let a = start_agent_with(&m, "w-flaky", false, Some(&net)).await;
    assert_eq!(host_status(&m).await, "active");
    net.send_replace(true);
    wait_for_host_status(&m, "unreachable").await;
    let (code, v) = m.deploy(three()).await;
    // No live host and no local deployer: refused, and nothing committed.
    assert_eq!(code, 409, "{v}");
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("no live worker host"),
        "{v}"
    );
    let (_, list) = m.call(reqwest::Method::GET, "/api/v1/deckies", None).await;
    assert_eq!(list, json!([]));
    net.send_replace(false);
    wait_for_host_status(&m, "active").await;
    // Back: the same request is taken and done.
    let (code, v) = m.deploy(three()).await;
    assert_eq!(code, 202, "{v}");
    let rows = m.settle(v["lifecycle_ids"].as_array().unwrap()).await;
    assert!(rows.iter().all(|r| r["status"] == "succeeded"), "{rows:?}");
    a.shutdown.cancel();
    m.stop().await;
}

// ---------------------------------------------------------------------------------------------
// GET /api/v1/events: the bus as server-sent events

/// One SSE frame: (id, event, data).
type Frame = (Option<u64>, String, Value);

/// Splits SSE text into frames, skipping comments (keep-alives).
fn frames(text: &str) -> Vec<Frame> {
    text.split("\n\n")
        .filter_map(|block| {
            let (mut id, mut event, mut data) = (None, None, None);
            for line in block.lines() {
                let field = |p: &str| line.strip_prefix(p).map(|v| v.trim_start().to_string());
                if let Some(v) = field("id:") {
                    id = Some(v.parse::<u64>().unwrap());
                } else if let Some(v) = field("event:") {
                    event = Some(v);
                } else if let Some(v) = field("data:") {
                    data = Some(serde_json::from_str::<Value>(&v).unwrap());
                }
            }
            Some((id, event?, data?))
        })
        .collect()
}

fn terminal_lifecycles(fs: &[Frame]) -> usize {
    fs.iter()
        .filter(|(_, e, d)| e.ends_with(".lifecycle") && d["status"] == "succeeded")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stream_replays_follows_resumes_and_ends_on_shutdown() {
    let fake = Arc::new(Fake::default());
    let m = start_master(fast(), Some(fake.clone())).await;
    let get = |path: &str, token: Option<&str>| {
        let mut r = reqwest::Client::new().get(m.url(path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r
    };
    assert_eq!(
        get("/api/v1/events", None).send().await.unwrap().status(),
        401
    );
    let bad = get("/api/v1/events?follow=maybe", Some(&m.viewer))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    assert!(bad.text().await.unwrap().contains("follow"));

    // A viewer follows the stream while an admin deploys.
    let mut live = get("/api/v1/events", Some(&m.viewer)).send().await.unwrap();
    assert_eq!(live.status(), 200);
    assert!(live.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let (code, v) = m.deploy(three()).await;
    assert_eq!(code, 202, "{v}");
    let mut text = String::new();
    let read = async {
        while terminal_lifecycles(&frames(&text)) < 3 {
            let chunk = live.chunk().await.unwrap().expect("stream ended early");
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .expect("the three deploys' events");
    let seen = frames(&text);
    let ids: Vec<u64> = seen.iter().map(|(id, _, _)| id.unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "{ids:?}");
    let (_, topic, body) = seen
        .iter()
        .find(|(_, e, d)| e == "decky.d-01.lifecycle" && d["status"] == "succeeded")
        .unwrap();
    assert_eq!(topic, "decky.d-01.lifecycle");
    assert_eq!(body["operation"], "deploy");
    assert!(seen
        .iter()
        .any(|(_, e, d)| e == "decky.local:d-02.state" && d["transition"] == "inserted"));

    // Without follow: the kept events, then the end. With Last-Event-ID: only later ones.
    let all = frames(
        &get("/api/v1/events?follow=false", Some(&m.viewer))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    assert_eq!(all.first().map(|f| f.0), Some(Some(1)));
    assert!(all.len() >= seen.len());
    let resumed = frames(
        &get("/api/v1/events?follow=false", Some(&m.viewer))
            .header("Last-Event-ID", "3")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    // Events may still be coming in (shards settling): the resumed replay is `all` from id 4
    // on, then possibly more, with no gap.
    let ids_of = |fs: &[Frame]| fs.iter().map(|f| f.0.unwrap()).collect::<Vec<u64>>();
    let (all_ids, resumed_ids) = (ids_of(&all), ids_of(&resumed));
    assert_eq!(resumed_ids.first(), Some(&4));
    assert!(
        resumed_ids.windows(2).all(|w| w[1] == w[0] + 1),
        "{resumed_ids:?}"
    );
    assert_eq!(&resumed_ids[..all_ids.len() - 3], &all_ids[3..]);

    // An open stream does not hold the master up at shutdown, and it ends.
    tokio::time::timeout(Duration::from_secs(10), m.stop())
        .await
        .expect("shutdown with a stream open");
    let rest = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(Some(_)) = live.chunk().await {}
    })
    .await;
    assert!(rest.is_ok(), "the stream ended with the master");
}

// ---------------------------------------------------------------------------------------------
// The mutator

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mutator_rotates_due_deckies_through_lifecycle_rows() {
    let fake = Arc::new(Fake::default());
    let m = start_master(
        MasterSettings {
            mutator_poll: Duration::from_millis(200),
            ..fast()
        },
        Some(fake.clone()),
    )
    .await;
    let (_, v) = m.deploy(three()).await;
    m.settle(v["lifecycle_ids"].as_array().unwrap()).await;
    let mut events = m.running.bus.subscribe();
    // d-01 and d-02 were last mutated an hour ago (the fleet's interval is 30 min), but d-02
    // says never (0); d-03 was deployed just now.
    let mut fleet = m.repo.desired_fleet().await.unwrap().unwrap();
    let old = fleet.decky("d-01").unwrap().services.clone();
    for d in &mut fleet.deckies {
        if d.name.as_str() != "d-03" {
            d.last_mutated -= 3600.0;
        }
        if d.name.as_str() == "d-02" {
            d.mutate_interval = Some(0);
        }
    }
    m.repo.put_desired_fleet(&fleet).await.unwrap();

    let mut seen = vec![];
    let mut done = false;
    for _ in 0..200 {
        while let Ok((_, e)) = events.try_recv() {
            seen.push(e);
        }
        done = seen.iter().any(|e| {
            e.topic == "decky.d-01.lifecycle"
                && e.body["operation"] == "mutate"
                && e.body["status"] == "succeeded"
        });
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(done, "no scheduled mutation closed: {seen:?}");
    let mutation = seen
        .iter()
        .find(|e| e.topic == "decky.d-01.mutation")
        .expect("mutation event");
    assert_eq!(mutation.body["trigger"], "scheduled");
    assert_eq!(mutation.body["old_services"], json!(old));
    let new: Vec<String> = serde_json::from_value(mutation.body["new_services"].clone()).unwrap();
    assert_ne!(new, old);
    // The desired fleet holds the new services and a fresh stamp, so it is not due again; the
    // others were never touched.
    tokio::time::sleep(Duration::from_secs(1)).await;
    while let Ok((_, e)) = events.try_recv() {
        seen.push(e);
    }
    let mutations: Vec<&str> = seen
        .iter()
        .filter(|e| e.topic.ends_with(".mutation"))
        .map(|e| e.topic.as_str())
        .collect();
    assert_eq!(mutations, ["decky.d-01.mutation"]);
    let fleet = m.repo.desired_fleet().await.unwrap().unwrap();
    let d1 = fleet.decky("d-01").unwrap();
    assert_eq!(d1.services, new);
    let now = Utc::now().timestamp() as f64;
    assert!((now - d1.last_mutated).abs() < 30.0, "{}", d1.last_mutated);
    m.stop().await;
}

// ---------------------------------------------------------------------------------------------
// The local observer (unihost deckies, observed like a worker's)

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unihost_decky_that_stops_shows_degraded_and_back() {
    let fake = Arc::new(Fake::default());
    let m = start_master(fast(), Some(fake.clone())).await;
    let (_, v) = m.deploy(three()).await;
    m.settle(v["lifecycle_ids"].as_array().unwrap()).await;
    let mut events = m.running.bus.subscribe();
    let state_of = |list: &Value, name: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"] == name)
            .unwrap()
            .clone()
    };
    let wait_for = |name: &'static str, want: &'static str| {
        let m = &m;
        async move {
            for _ in 0..200 {
                let (_, list) = m.call(reqwest::Method::GET, "/api/v1/deckies", None).await;
                if state_of(&list, name)["state"] == want {
                    return list;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("{name} never went {want}");
        }
    };
    // d-02's containers stop (the fake no longer reports it running).
    let services = fake.running.lock().unwrap().remove("d-02").unwrap();
    let list = wait_for("d-02", "degraded").await;
    assert_eq!(state_of(&list, "d-01")["state"], "running");
    assert!(!state_of(&list, "d-01")["last_seen"].is_null());
    // And back.
    fake.running.lock().unwrap().insert("d-02".into(), services);
    wait_for("d-02", "running").await;
    let mut words = vec![];
    while let Ok((_, e)) = events.try_recv() {
        if e.topic == "decky.local:d-02.state" {
            words.push((
                e.body["state"].as_str().unwrap().to_string(),
                e.body["previous_state"].as_str().unwrap().to_string(),
            ));
        }
    }
    assert_eq!(
        words,
        [
            ("degraded".to_string(), "running".to_string()),
            ("running".to_string(), "degraded".to_string())
        ]
    );
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mutator_waits_for_a_cut_off_worker() {
    let m = start_master(
        MasterSettings {
            mutator_poll: Duration::from_millis(200),
            ..fast()
        },
        None,
    )
    .await;
    let (net, _) = tokio::sync::watch::channel(false);
    let a = start_agent_with(&m, "w-mut", false, Some(&net)).await;
    let (_, v) = m.deploy(three()).await;
    m.settle(v["lifecycle_ids"].as_array().unwrap()).await;
    net.send_replace(true);
    wait_for_host_status(&m, "unreachable").await;
    let mut events = m.running.bus.subscribe();
    let mut fleet = m.repo.desired_fleet().await.unwrap().unwrap();
    for d in &mut fleet.deckies {
        if d.name.as_str() == "d-01" {
            d.last_mutated -= 3600.0;
        }
    }
    m.repo.put_desired_fleet(&fleet).await.unwrap();
    // Due, but its worker is cut off: nothing is sent into the void.
    tokio::time::sleep(Duration::from_secs(1)).await;
    while let Ok((_, e)) = events.try_recv() {
        assert!(
            !e.topic.ends_with(".mutation") && !e.topic.ends_with(".lifecycle"),
            "a mutation started for an unreachable worker: {e:?}"
        );
    }
    net.send_replace(false);
    wait_for_host_status(&m, "active").await;
    let mut closed = None;
    for _ in 0..200 {
        while let Ok((_, e)) = events.try_recv() {
            if e.topic == "decky.d-01.lifecycle" && e.body["operation"] == "mutate" {
                closed =
                    Some(e.body["status"].clone()).filter(|s| s != "running" && s != "pending");
            }
        }
        if closed.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(closed, Some(json!("succeeded")));
    a.shutdown.cancel();
    m.stop().await;
}

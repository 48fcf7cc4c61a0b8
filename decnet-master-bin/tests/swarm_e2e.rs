#![allow(clippy::unwrap_used)] // test helpers abort on a broken fixture
//! The whole swarm path with real components: an in-process master, a real `decnet-agent`
//! process enrolled by its one command, and the real Docker deployer putting deckies on a lab
//! LAN that an attacker namespace probes. Deploy, mutate and delete end with every lifecycle row
//! terminal; the other deckies keep their containers. Needs root and Docker.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bollard::query_parameters::ListContainersOptions;
use decnet_core::model::Role;
use decnet_core::traits::SystemClock;
use decnet_master_bin::master::layout::DataDir;
use decnet_master_bin::master::run::{self, MasterConfig, MasterDeps};
use decnet_master_bin::master::state::MasterSettings;
use decnet_net::lab::{self, LabLan};
use ipnet::Ipv4Net;
use serde_json::{json, Value};

mod common;
use common::{api_token, write_pki};
use tokio_util::sync::CancellationToken;

struct Agent(Child);
impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn bin(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_decnet"))
        .parent()
        .unwrap()
        .join(name)
}

/// A lab LAN `10.217.<third>.0/24` tagged `<prefix><pid>`, with this host on `.254`.
async fn lab_with_host(prefix: &str, third: u8) -> (String, LabLan) {
    let tag = format!("{prefix}{}", std::process::id() % 10000);
    let _ = lab::destroy_by_tag(&tag).await;
    let lan = LabLan::create(
        &tag,
        Ipv4Net::new(Ipv4Addr::new(10, 217, third, 0), 24).unwrap(),
    )
    .await
    .expect("lab LAN (root)");
    // The host sits on the LAN: relocalize reads the lab subnet from its interface.
    lan.add_host_address(Ipv4Addr::new(10, 217, third, 254))
        .await
        .unwrap();
    (tag, lan)
}

/// An in-process master on loopback ports over `layout` (its PKI written), heartbeats every
/// second, with `local` deckies and their event pipeline when given; and an admin token.
async fn start_master(
    layout: DataDir,
    local: Option<Arc<dyn decnet_core::traits::Deployer>>,
    local_events: Option<run::LocalEvents>,
    shutdown: CancellationToken,
) -> (run::RunningMaster, String) {
    write_pki(&layout);
    let repo = decnet_store::open(&layout.default_db_url()).await.unwrap();
    let admin = api_token(&repo, Role::Admin).await;
    let cfg = MasterConfig {
        data_dir: layout,
        db_url: None,
        api_bind: "127.0.0.1:0".parse().unwrap(),
        swarm_bind: "127.0.0.1:0".parse().unwrap(),
        settings: MasterSettings {
            heartbeat_interval: Duration::from_secs(1),
            advertise: String::new(),
            ..MasterSettings::default()
        },
    };
    let deps = MasterDeps {
        repo,
        clock: Arc::new(SystemClock),
        local,
        hostnet: Arc::new(decnet_net::NetlinkHostNetwork::new()),
        local_events,
    };
    let m = run::start(
        &cfg,
        deps,
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        shutdown,
    )
    .await
    .unwrap();
    (m, admin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_mutate_delete_through_a_real_agent() {
    decnet_tls::install_default_provider();
    let (tag, lan) = lab_with_host("e2e", 3).await;
    let network = format!("decnet_{tag}");
    let tmp = tempfile::tempdir().unwrap();
    let shutdown = CancellationToken::new();
    let (m, admin) = start_master(DataDir::new(tmp.path()), None, None, shutdown.clone()).await;
    let c = reqwest::Client::new();
    let api = |p: &str| format!("{}{p}", m.api_url);
    let call = |method: reqwest::Method, path: String, body: Option<Value>| {
        let mut r = c.request(method, api(&path)).bearer_auth(&admin);
        if let Some(b) = body {
            r = r.json(&b);
        }
        async move {
            let resp = r.send().await.unwrap();
            (
                resp.status().as_u16(),
                resp.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let settle = |ids: Vec<Value>| {
        let call = &call;
        async move {
            let q: Vec<String> = ids
                .iter()
                .map(|i| format!("ids={}", i.as_str().unwrap()))
                .collect();
            for _ in 0..600 {
                let (_, v) = call(
                    reqwest::Method::GET,
                    format!("/api/v1/deckies/lifecycle?{}", q.join("&")),
                    None,
                )
                .await;
                let rows = v["rows"].as_array().unwrap().clone();
                if rows.len() == ids.len()
                    && rows
                        .iter()
                        .all(|r| r["status"] == "succeeded" || r["status"] == "failed")
                {
                    return rows;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("rows never settled");
        }
    };

    // The worker: one command to enroll, then serve.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (code, t) = call(
        reqwest::Method::POST,
        "/api/v1/swarm/enroll-tokens".into(),
        Some(json!({"name": "w-e2e", "address": format!("127.0.0.1:{port}")})),
    )
    .await;
    assert_eq!(code, 201);
    let agent_dir = tempfile::tempdir().unwrap();
    let state_dir = tempfile::tempdir().unwrap();
    let out = Command::new(bin("decnet-agent"))
        .args([
            "enroll",
            "--master",
            &m.swarm_url,
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
    let _agent = Agent(
        Command::new(bin("decnet-agent"))
            .args([
                "serve",
                "--agent-dir",
                agent_dir.path().to_str().unwrap(),
                "--state-dir",
                state_dir.path().to_str().unwrap(),
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--heartbeat-interval",
                "1",
                "--interface",
                &lan.parent,
                "--network-name",
                &network,
                "--no-host-link",
            ])
            .env("DECNET_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut host_uuid = String::new();
    for _ in 0..100 {
        let (_, hosts) = call(reqwest::Method::GET, "/api/v1/swarm/hosts".into(), None).await;
        if let Some(h) = hosts
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["status"] == "active")
        {
            host_uuid = h["uuid"].as_str().unwrap().to_string();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!host_uuid.is_empty(), "the worker heartbeats");

    // Deploy two deckies through the API.
    let general = json!({"subnet": lan.subnet.to_string(), "gateway": lan.gateway.to_string(), "interface": lan.parent});
    let (code, v) = call(reqwest::Method::POST, "/api/v1/deckies/deploy".into(), Some(json!({
        "general": general,
        "deckies": [{"name": "e2e-a", "services": ["ssh"]}, {"name": "e2e-b", "services": ["http"]}]
    }))).await;
    assert_eq!(code, 202, "{v}");
    assert_eq!(v["mode"], "swarm");
    let rows = settle(v["lifecycle_ids"].as_array().unwrap().clone()).await;
    assert!(rows.iter().all(|r| r["status"] == "succeeded"), "{rows:?}");
    let (_, list) = call(reqwest::Method::GET, "/api/v1/deckies".into(), None).await;
    let ip = |name: &str| -> Ipv4Addr {
        list.as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"] == name)
            .unwrap()["ip"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    let (a_ip, b_ip) = (ip("e2e-a"), ip("e2e-b"));
    let greeting = lab::probe_tcp(&lan.netns, a_ip, 22, None, Duration::from_secs(3)).unwrap();
    assert!(String::from_utf8_lossy(&greeting.greeting).starts_with("SSH-2.0-"));
    assert!(
        lab::probe_tcp(
            &lan.netns,
            b_ip,
            80,
            Some(b"GET / HTTP/1.0\r\n\r\n".to_vec()),
            Duration::from_secs(3)
        )
        .unwrap()
        .open
    );

    let docker = decnet_docker::image::connect().await.unwrap();
    let containers = || {
        let docker = docker.clone();
        let host = host_uuid.clone();
        async move {
            let opts = ListContainersOptions {
                all: true,
                filters: Some(decnet_docker::labels::host_filter(&host, None)),
                ..Default::default()
            };
            docker
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
                .collect::<BTreeMap<_, _>>()
        }
    };
    let before = containers().await;
    assert!(
        before.contains_key("e2e-a.ssh") && before.contains_key("e2e-b.http"),
        "{before:?}"
    );

    // Mutate e2e-b: only its containers change.
    let (code, v) = call(
        reqwest::Method::POST,
        "/api/v1/deckies/e2e-b/mutate".into(),
        Some(json!({"services": ["ftp"]})),
    )
    .await;
    assert_eq!(code, 202);
    let rows = settle(v["lifecycle_ids"].as_array().unwrap().clone()).await;
    assert_eq!(rows[0]["status"], "succeeded", "{rows:?}");
    let after = containers().await;
    assert_eq!(after.get("e2e-a"), before.get("e2e-a"));
    assert_eq!(after.get("e2e-a.ssh"), before.get("e2e-a.ssh"));
    assert!(after.contains_key("e2e-b.ftp") && !after.contains_key("e2e-b.http"));
    assert!(String::from_utf8_lossy(
        &lab::probe_tcp(&lan.netns, b_ip, 21, None, Duration::from_secs(3))
            .unwrap()
            .greeting
    )
    .starts_with("220 "));

    // Delete e2e-b: e2e-a keeps its containers.
    let (code, v) = call(
        reqwest::Method::DELETE,
        "/api/v1/deckies/e2e-b".into(),
        None,
    )
    .await;
    assert_eq!(code, 202);
    let rows = settle(v["lifecycle_ids"].as_array().unwrap().clone()).await;
    assert_eq!(
        (rows[0]["operation"].as_str(), rows[0]["status"].as_str()),
        (Some("teardown"), Some("succeeded")),
        "{rows:?}"
    );
    let after = containers().await;
    assert!(after.keys().all(|k| !k.starts_with("e2e-b")), "{after:?}");
    assert_eq!(after.get("e2e-a.ssh"), before.get("e2e-a.ssh"));

    // What the attacker did reached the master: the worker collected each service's output
    // (the http container's before the mutate removed it, the ftp one's before the teardown)
    // and shipped it; every event is there once, stamped with the worker's host.
    let attacker = lan.attacker_ip.to_string();
    let mut seen: Vec<Value> = Vec::new();
    for _ in 0..300 {
        let (code, page) = call(
            reqwest::Method::GET,
            format!("/api/v1/attacks?src={attacker}&limit=1000"),
            None,
        )
        .await;
        assert_eq!(code, 200, "{page}");
        seen = page["events"].as_array().unwrap().clone();
        let has = |decky: &str, service: &str, kind: &str| {
            seen.iter()
                .any(|e| e["decky"] == decky && e["service"] == service && e["kind"] == kind)
        };
        if has("e2e-a", "ssh", "disconnect")
            && has("e2e-b", "http", "request")
            && has("e2e-b", "http", "disconnect")
            && has("e2e-b", "ftp", "disconnect")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let request = seen
        .iter()
        .find(|e| e["kind"] == "request")
        .unwrap_or_else(|| panic!("no request event: {seen:?}"));
    assert_eq!(request["details"]["http_method"], "GET", "{request}");
    assert_eq!(request["host"], host_uuid.as_str());
    let ids: std::collections::BTreeSet<&str> =
        seen.iter().filter_map(|e| e["id"].as_str()).collect();
    assert_eq!(ids.len(), seen.len(), "each event once: {seen:?}");
    let (_, profiles) = call(reqwest::Method::GET, "/api/v1/attackers".into(), None).await;
    let me = profiles["attackers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["src_ip"] == attacker.as_str())
        .unwrap_or_else(|| panic!("{profiles}"));
    assert_eq!(me["deckies"], json!(["e2e-a", "e2e-b"]), "{me}");
    // The CLI through the master shows the same events, and the attacker.
    let cli = |args: &[&str]| {
        let out = Command::new(bin("decnet"))
            .args(args)
            .args(["--master", &m.api_url, "--token", &admin])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let lines = cli(&["attacks", "--json", "--src", &attacker]);
    let cli_ids: std::collections::BTreeSet<String> = lines
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(cli_ids.len() >= ids.len(), "{lines}");
    assert!(ids.iter().all(|i| cli_ids.contains(*i)), "{lines}");
    let table = cli(&["attacks", "--decky", "e2e-b", "--kind", "request"]);
    assert!(
        table.contains("e2e-b/http") && table.contains("http=GET"),
        "{table}"
    );
    let who = cli(&["attackers"]);
    assert!(who.contains(&attacker), "{who}");

    // Clean up through the API too, then the network and the lab.
    let (_, v) = call(
        reqwest::Method::DELETE,
        "/api/v1/deckies/e2e-a".into(),
        None,
    )
    .await;
    let rows = settle(v["lifecycle_ids"].as_array().unwrap().clone()).await;
    assert_eq!(rows[0]["status"], "succeeded");
    assert!(containers().await.is_empty());
    drop(_agent);
    let _ = decnet_docker::network::remove(&docker, &network).await;
    shutdown.cancel();
    m.join().await;
    lan.destroy().await.unwrap();
}

/// A master's own (unihost) deckies: what the attacker does to them goes through the master's
/// spool into its store, stamped `local`, and shows in `GET /api/v1/attacks`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_masters_own_deckies_feed_its_attack_store() {
    use decnet_core::model::HostUuid;
    use decnet_core::orchestrate::pipeline::EventPipeline;
    use decnet_core::traits::Deployer;
    use decnet_docker::{image, DockerDeployer, DockerDeployerConfig};

    decnet_tls::install_default_provider();
    let (tag, lan) = lab_with_host("mle", 31).await;
    let tmp = tempfile::tempdir().unwrap();
    let pipeline = Arc::new(
        EventPipeline::open(
            &tmp.path().join("master-spool"),
            "local",
            HostUuid(uuid::Uuid::nil()),
            1 << 20,
        )
        .unwrap(),
    );
    let mut dcfg = DockerDeployerConfig::new(
        format!("test-{tag}"),
        tmp.path().join("decnet-state.json"),
        image::find_decky_binary(None).unwrap(),
    );
    dcfg.network = format!("decnet_{tag}");
    dcfg.host_link = false;
    let deployer = Arc::new(
        DockerDeployer::with_docker(
            image::connect().await.unwrap(),
            dcfg,
            Arc::new(decnet_net::NetlinkHostNetwork::new()),
        )
        .with_output_collector(pipeline.clone()),
    );
    let shutdown = CancellationToken::new();
    let events = run::LocalEvents {
        pipeline,
        logs: deployer.clone(),
    };
    let master_dir = tmp.path().join("master");
    std::fs::create_dir_all(&master_dir).unwrap();
    let (m, admin) = start_master(
        DataDir::new(master_dir),
        Some(deployer.clone()),
        Some(events),
        shutdown.clone(),
    )
    .await;
    let c = reqwest::Client::new();
    let get = |path: String| {
        let r = c.get(format!("{}{path}", m.api_url)).bearer_auth(&admin);
        async move { r.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let r = c
        .post(format!("{}/api/v1/deckies/deploy", m.api_url))
        .bearer_auth(&admin)
        .json(&json!({
            "general": {"subnet": lan.subnet.to_string(), "gateway": lan.gateway.to_string(), "interface": lan.parent},
            "deckies": [{"name": "mle-a", "services": ["ftp"]}]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["mode"], "unihost", "{v}");
    let id = v["lifecycle_ids"][0].as_str().unwrap().to_string();
    let mut ip = None;
    for _ in 0..600 {
        let rows = get(format!("/api/v1/deckies/lifecycle?ids={id}")).await;
        if rows["rows"][0]["status"] == "succeeded" {
            let list = get("/api/v1/deckies".into()).await;
            ip = list[0]["ip"]
                .as_str()
                .map(|s| s.parse::<Ipv4Addr>().unwrap());
            break;
        }
        assert_ne!(rows["rows"][0]["status"], "failed", "{rows}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ip = ip.expect("the decky is up");
    let r = lab::probe_tcp(
        &lan.netns,
        ip,
        21,
        Some(b"USER mallory\r\nPASS s3cret\r\nQUIT\r\n".to_vec()),
        Duration::from_secs(3),
    )
    .unwrap();
    assert!(r.open);
    let mut found = None;
    for _ in 0..300 {
        let page = get("/api/v1/attacks?kind=disconnect&decky=mle-a".into()).await;
        if let Some(e) = page["events"].as_array().and_then(|a| a.first()).cloned() {
            found = Some(e);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let e = found.expect("the touch reached the master's store");
    assert_eq!(e["host"], "local");
    assert_eq!(e["details"]["username"], "mallory");
    assert_eq!(e["src_ip"], lan.attacker_ip.to_string());

    let r = c
        .delete(format!("{}/api/v1/deckies/mle-a", m.api_url))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let v: Value = r.json().await.unwrap();
    let id = v["lifecycle_ids"][0].as_str().unwrap().to_string();
    for _ in 0..600 {
        let rows = get(format!("/api/v1/deckies/lifecycle?ids={id}")).await;
        if rows["rows"][0]["status"] == "succeeded" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = deployer.teardown(None).await;
    shutdown.cancel();
    m.join().await;
    lan.destroy().await.unwrap();
}

#![allow(clippy::unwrap_used)] // test helpers abort on a broken fixture
//! The agent API over real mutual TLS on loopback: who may talk to it, and every row of
//! PRODUCT §5 with its status codes.

mod common;

use std::time::Duration;

use common::*;
use decnet_core::model::HostUuid;
use decnet_tls::pki::{Ca, LeafSpec};
use serde_json::{json, Value};

const LIMIT: usize = 64 * 1024;

/// Sends `POST /deploy` headers announcing `len` bytes over the master's mTLS identity, and
/// returns the start of the answer.
async fn oversized_head(pki: &Pki, url: &str, len: usize) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = url.trim_start_matches("https://");
    let policy = decnet_tls::verify::PeerPolicy::from_ca_pem(pki.ca.cert_pem())
        .unwrap()
        .with_pinned_fingerprint(pki.worker.fingerprint.clone());
    let tls = decnet_tls::verify::client_config(&pki.bundle(&pki.master), &policy).unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut s = tokio_rustls::TlsConnector::from(tls)
        .connect(decnet_tls::verify::server_name("127.0.0.1"), tcp)
        .await
        .unwrap();
    let req = format!(
        "POST /deploy HTTP/1.1\r\nhost: agent\r\ncontent-type: application/json\r\ncontent-length: {len}\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![0; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("answered without waiting for the body")
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn shard() -> Value {
    json!({
        "mode": "swarm", "interface": "eth0", "subnet": "192.168.1.0/24", "gateway": "192.168.1.1",
        "deckies": [
            {"name": "decky-01", "ip": "192.168.1.10", "services": ["ssh"], "distro": "debian",
             "base_image": "debian:bookworm-slim", "hostname": "SRV-WEB-42"},
            {"name": "decky-02", "ip": "192.168.1.11", "services": ["http"], "distro": "debian",
             "base_image": "debian:bookworm-slim", "hostname": "SRV-DB-11"}
        ]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_pinned_master_gets_in() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let host = HostUuid::new_v4();
    // The master URL is unreachable: this test is about the API, not heartbeats.
    pki.write_agent_dir(
        dir.path(),
        Some(&identity(&pki, host, "https://127.0.0.1:9")),
    );
    let a = start_agent(dir.path(), state.path(), None, LIMIT).await;

    let foreign_ca = Ca::generate("DECNET test CA").unwrap();
    let foreign = foreign_ca.issue_keypair(&LeafSpec::master(vec![])).unwrap();
    let second_master = pki.ca.issue_keypair(&LeafSpec::master(vec![])).unwrap();
    let anonymous = reqwest::Client::builder()
        .use_preconfigured_tls(
            (*decnet_tls::verify::anonymous_client_config(
                &decnet_tls::verify::PeerPolicy::from_ca_pem(pki.ca.cert_pem()).unwrap(),
            )
            .unwrap())
            .clone(),
        )
        .build()
        .unwrap();
    let foreign_client = {
        // Trusts the agent, presents a cert of another CA.
        let policy = decnet_tls::verify::PeerPolicy::from_ca_pem(pki.ca.cert_pem()).unwrap();
        let bundle = decnet_tls::pki::Bundle {
            ca_pem: pki.ca.cert_pem().to_string(),
            cert_pem: foreign.cert_pem.clone(),
            key_pem: foreign.key_pem.clone(),
        };
        let tls = decnet_tls::verify::client_config(&bundle, &policy).unwrap();
        reqwest::Client::builder()
            .use_preconfigured_tls((*tls).clone())
            .build()
            .unwrap()
    };
    let refused = [
        ("no client certificate", anonymous),
        ("foreign CA", foreign_client),
        ("a worker's certificate", pki.client_as(&pki.worker)),
        (
            "a second decnet-master certificate",
            pki.client_as(&second_master),
        ),
        (
            "an expired master certificate",
            pki.client_as(&expired_master(&pki)),
        ),
    ];
    for (what, client) in refused {
        let r = client.get(format!("{}/health", a.url)).send().await;
        assert!(r.is_err(), "{what} must be refused, got {r:?}");
    }
    let ok = pki
        .master_client()
        .get(format!("{}/health", a.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let v: Value = ok.json().await.unwrap();
    assert_eq!(v["status"], "ok");
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));

    // Without identity.json there is no pin: any decnet-master of the CA is accepted, workers
    // still are not.
    a.stop().await;
    let dir2 = tempfile::tempdir().unwrap();
    pki.write_agent_dir(dir2.path(), None);
    let b = start_agent(dir2.path(), state.path(), None, LIMIT).await;
    assert!(b.agent.heartbeat.is_none(), "no identity: no heartbeats");
    assert_eq!(
        pki.client_as(&second_master)
            .get(format!("{}/health", b.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert!(pki
        .client_as(&pki.worker)
        .get(format!("{}/health", b.url))
        .send()
        .await
        .is_err());
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_of_the_contract() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let host = HostUuid::new_v4();
    pki.write_agent_dir(
        dir.path(),
        Some(&identity(&pki, host, "https://127.0.0.1:9")),
    );
    let a = start_agent(dir.path(), state.path(), None, LIMIT).await;
    let c = pki.master_client();
    let post = |path: &str, body: Value| c.post(format!("{}{path}", a.url)).json(&body).send();

    // Nothing deployed yet.
    let s: Value = c
        .get(format!("{}/status", a.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(s["deployed"], false);
    assert_eq!(s["deckies"], json!([]));
    assert!(s["taken_at"].is_string() && s["in_flight"].is_array());

    // Rejections never touch the state file.
    let fingerprint = || std::fs::read(a.state_path()).ok();
    let before = fingerprint();
    let mut bad_ip = shard();
    bad_ip["deckies"][0]["ip"] = json!("192.168.1.300");
    let table: Vec<(&str, Value, u16, &str)> = vec![
        ("/deploy", json!({"config": bad_ip}), 422, "config.deckies"),
        (
            "/deploy",
            json!({"config": shard(), "colour": 1}),
            422,
            "unknown field `colour`",
        ),
        (
            "/deploy",
            json!({"config": shard(), "lifecycle_ids": {"nope": uuid::Uuid::new_v4()}}),
            422,
            "lifecycle_ids.nope",
        ),
        ("/deploy", json!({}), 422, "missing field `config`"),
        (
            "/mutate",
            json!({"decky_id": "decky-01", "services": []}),
            422,
            "at least one service",
        ),
        (
            "/mutate",
            json!({"decky_id": "decky-01", "services": ["gopher"]}),
            422,
            "not a known service",
        ),
        (
            "/mutate",
            json!({"decky_id": "Decky_01", "services": ["ssh"]}),
            422,
            "decky_id",
        ),
        (
            "/mutate",
            json!({"decky_id": "decky-01", "services": ["ssh"], "dry_run": true}),
            404,
            "no active deployment",
        ),
        ("/teardown", json!({"decky_id": "a.b"}), 422, "decky_id"),
        (
            "/self-destruct",
            json!({"host_uuid": HostUuid::new_v4().to_string()}),
            403,
            "not this host",
        ),
        (
            "/self-destruct",
            json!({"host_uuid": "not-a-uuid"}),
            403,
            "not this host",
        ),
    ];
    for (path, body, code, detail) in table {
        let r = post(path, body.clone()).await.unwrap();
        assert_eq!(r.status().as_u16(), code, "{path} {body}");
        let v: Value = r.json().await.unwrap();
        assert!(
            v["detail"].as_str().unwrap().contains(detail),
            "{path}: {v}"
        );
    }
    // Malformed JSON is a 400, an oversized body a 413 decided from Content-Length.
    let r = c
        .post(format!("{}/deploy", a.url))
        .body("{\"config\":")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Only the headers go out: the answer must come without the body being read (a client
    // still writing the body would see the connection close under it).
    let head = oversized_head(&pki, &a.url, LIMIT + 1).await;
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    for path in ["/docs", "/openapi.json"] {
        assert_eq!(
            c.get(format!("{}{path}", a.url))
                .send()
                .await
                .unwrap()
                .status(),
            404
        );
    }
    assert_eq!(
        fingerprint(),
        before,
        "rejected requests leave the state file untouched"
    );

    // Deploy: 202 at once, queued, deltas through the outbox.
    let id1 = uuid::Uuid::new_v4();
    let r = post(
        "/deploy",
        json!({"config": shard(), "lifecycle_ids": {"decky-01": id1}}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"status": "accepted", "deckies": ["decky-01", "decky-02"]})
    );
    let r = post("/deploy", json!({"config": shard(), "dry_run": true}))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Teardown of one decky: 202 with the decky id.
    let r = post("/teardown", json!({"decky_id": "decky-02"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"status": "accepted", "decky_id": "decky-02"})
    );
    let r = post("/teardown", json!({"decky_id": null})).await.unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"status": "accepted", "decky_id": null})
    );

    // Mutate: 202 with the echo.
    let r = post(
        "/mutate",
        json!({"decky_id": "decky-01", "services": ["ssh", "ftp"]}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"status": "accepted", "decky_id": "decky-01", "services": ["ssh", "ftp"]})
    );

    // The work ran, in order, and left one delta per decky per operation in the outbox.
    for _ in 0..100 {
        if a.agent.queue.is_empty() && a.agent.queue.in_flight().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let calls = a.deployer.calls.lock().unwrap().clone();
    assert_eq!(calls[0], "deploy 2", "{calls:?}");
    let deltas = a.agent.outbox.pending(100);
    assert!(deltas
        .iter()
        .any(|d| d.lifecycle_id == Some(id1) && d.decky_name.as_str() == "decky-01"));

    // Self-destruct: bound to this host; the reaper is launched with the allow-list.
    let r = post("/self-destruct", json!({"host_uuid": host.to_string()}))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"status": "self_destruct_scheduled"})
    );
    let plans = a.launcher.launched.lock().unwrap().clone();
    assert_eq!(plans.len(), 1);
    assert_eq!(plans[0].paths, [std::path::PathBuf::from("/opt/decnet")]);
    *a.launcher.fail.lock().unwrap() = true;
    let r = post("/self-destruct", json!({"host_uuid": host.to_string()}))
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
    assert!(r.json::<Value>().await.unwrap()["detail"]
        .as_str()
        .unwrap()
        .contains("reaper not spawned"));
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn original_state_files_are_served() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    pki.write_agent_dir(dir.path(), None);
    for with_host_uuid in [false, true] {
        let state = tempfile::tempdir().unwrap();
        let host = if with_host_uuid {
            format!("\"{}\"", uuid::Uuid::new_v4())
        } else {
            "null".into()
        };
        std::fs::write(
            state.path().join("decnet-state.json"),
            format!(
                r#"{{"config": {{"mode": "swarm", "interface": "eth0", "subnet": "10.0.0.0/24",
                "gateway": "10.0.0.1", "deckies": [{{"name": "decky-01", "ip": "10.0.0.5",
                "services": ["ssh"], "distro": "debian", "base_image": "debian:bookworm-slim",
                "hostname": "SRV-DB-11", "host_uuid": {host}}}]}}, "compose_path": "decnet-compose.yml"}}"#
            ),
        )
        .unwrap();
        let before = std::fs::read(state.path().join("decnet-state.json")).unwrap();
        let a = start_agent(dir.path(), state.path(), None, LIMIT).await;
        let s: Value = pki
            .master_client()
            .get(format!("{}/status", a.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(s["deployed"], true, "{s}");
        assert_eq!(s["mode"], "swarm");
        assert_eq!(s["compose_path"], "decnet-compose.yml");
        assert_eq!(s["deckies"][0]["name"], "decky-01");
        assert!(s["runtime"].is_object());
        // The dry-run mutate finds the decky in the original's file.
        let r = pki
            .master_client()
            .post(format!("{}/mutate", a.url))
            .json(&json!({"decky_id": "decky-01", "services": ["ftp"], "dry_run": true}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.json::<Value>().await.unwrap()["status"], "dry_run");
        a.stop().await;
        // Start-up and reads never rewrite the state file.
        assert_eq!(
            std::fs::read(state.path().join("decnet-state.json")).unwrap(),
            before
        );
    }
}

const GARBAGE: &[u8] = b"{\"config\": {\"mode\": \"swarm\", \"deckies\": [ \x00 truncated";

/// A state file that cannot be read is reported (status and heartbeat), every operation on it
/// is refused with 409 naming the file, and the agent never rewrites or deletes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_state_file_is_reported_refused_and_kept() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    pki.write_agent_dir(dir.path(), None);
    let a = start_agent(dir.path(), state.path(), None, LIMIT).await;
    // Containers of this host still run (found by label).
    a.deployer.running.lock().unwrap().insert(
        "decky-01".into(),
        decnet_core::model::DeckyRuntime::from_services(
            [("ssh".to_string(), "running".to_string())].into(),
        ),
    );
    let path = a.state_path();
    std::fs::write(&path, GARBAGE).unwrap();
    let c = pki.master_client();
    let post = |p: &str, body: Value| c.post(format!("{}{p}", a.url)).json(&body).send();

    let s: Value = c
        .get(format!("{}/status", a.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(s["deployed"], false, "{s}");
    let err = s["state_error"].as_str().unwrap_or_else(|| panic!("{s}"));
    assert!(
        err.starts_with(&format!("{}: ", path.display())) && err.contains("JSON"),
        "{err}"
    );
    assert_eq!(s["runtime"]["decky-01"]["running"], true, "{s}");

    let refused = format!("worker state file {} is unreadable: ", path.display());
    for (route, body) in [
        ("/deploy", json!({"config": shard()})),
        ("/deploy", json!({"config": shard(), "dry_run": true})),
        (
            "/mutate",
            json!({"decky_id": "decky-01", "services": ["ssh", "ftp"]}),
        ),
        (
            "/mutate",
            json!({"decky_id": "decky-01", "services": ["ftp"], "dry_run": true}),
        ),
        ("/teardown", json!({"decky_id": "decky-01"})),
        ("/teardown", json!({"decky_id": null})),
    ] {
        let r = post(route, body.clone()).await.unwrap();
        assert_eq!(r.status(), 409, "{route} {body}");
        let v: Value = r.json().await.unwrap();
        let detail = v["detail"]
            .as_str()
            .unwrap_or_else(|| panic!("{route}: {v}"));
        assert!(
            detail.starts_with(&refused) && detail.ends_with("; fix or move it, then retry"),
            "{route}: {detail}"
        );
    }
    assert!(a.agent.queue.is_empty(), "nothing was queued");
    assert!(a.deployer.calls.lock().unwrap().is_empty());
    a.stop().await;
    assert_eq!(
        std::fs::read(&path).unwrap(),
        GARBAGE,
        "the file is kept as it was"
    );
}

/// A job accepted while the state file was fine, run after it broke: its lifecycle rows fail
/// with the reason, the deployer is not called, the file stays as it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_job_fails_on_a_state_file_that_broke_meanwhile() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    pki.write_agent_dir(dir.path(), None);
    let a = start_agent(dir.path(), state.path(), None, LIMIT).await;
    let path = a.state_path();
    std::fs::write(
        &path,
        serde_json::to_vec(&json!({"config": shard(), "compose_path": "decnet-compose.yml"}))
            .unwrap(),
    )
    .unwrap();
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
    *a.deployer.gate.lock().unwrap() = Some(gate.clone());
    let c = pki.master_client();
    let post = |p: &str, body: Value| c.post(format!("{}{p}", a.url)).json(&body).send();

    // A deploy holds the queue; a mutate and a teardown wait behind it.
    let deploy_id = uuid::Uuid::new_v4();
    let mutate_id = uuid::Uuid::new_v4();
    let teardown_id = uuid::Uuid::new_v4();
    let r = post(
        "/deploy",
        json!({"config": shard(), "lifecycle_ids": {"decky-01": deploy_id}}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 202);
    let r = post(
        "/mutate",
        json!({"decky_id": "decky-01", "services": ["ftp"], "lifecycle_id": mutate_id}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 202);
    let r = post(
        "/teardown",
        json!({"decky_id": "decky-02", "lifecycle_ids": {"decky-02": teardown_id}}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 202);
    // Wait (hang guard only) until the deploy is in the deployer's hands.
    for _ in 0..1000 {
        if !a.deployer.calls.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(*a.deployer.calls.lock().unwrap(), ["deploy 2"]);

    std::fs::write(&path, GARBAGE).unwrap();
    gate.add_permits(1);
    for _ in 0..1000 {
        if a.agent.queue.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(a.agent.queue.is_empty(), "the queue drained");
    let deltas = a.agent.outbox.pending(100);
    for id in [mutate_id, teardown_id] {
        let d = deltas
            .iter()
            .find(|d| d.lifecycle_id == Some(id))
            .unwrap_or_else(|| panic!("a delta for {id}: {deltas:?}"));
        let e = d.error.as_deref().unwrap_or_else(|| panic!("{d:?}"));
        assert!(
            e.starts_with(&format!(
                "worker state file {} is unreadable: ",
                path.display()
            )),
            "{e}"
        );
    }
    let calls = a.deployer.calls.lock().unwrap().clone();
    assert_eq!(
        calls,
        ["deploy 2"],
        "mutate and teardown never reached the deployer"
    );
    a.stop().await;
    assert_eq!(std::fs::read(&path).unwrap(), GARBAGE);
}

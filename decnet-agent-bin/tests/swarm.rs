#![allow(clippy::unwrap_used)] // test helpers abort on a broken fixture
//! The agent against a small stand-in for the master's swarm endpoint, over real TLS:
//! enrollment by CSR with the token's CA fingerprint, then heartbeats that carry lifecycle
//! deltas until the master acknowledges them — through an outage and an agent restart.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Extension, Json, Router};
use common::*;
use decnet_core::model::{EnrollTokenText, HeartbeatBody, HostUuid};
use decnet_tls::pki::{Bundle, LeafSpec, San};
use decnet_tls::verify::{server_config, ClientAuth, PeerPolicy};
use decnet_web::PeerCertificate;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct Master {
    /// Heartbeats received, in order.
    beats: Mutex<Vec<HeartbeatBody>>,
    /// Answer heartbeats with 503 while true ("down").
    down: Mutex<bool>,
    tokens: Mutex<BTreeMap<String, bool>>,
    worker_fp: Mutex<Option<String>>,
    host_uuid: Mutex<Option<HostUuid>>,
    master_fp: String,
}

struct FakeMaster {
    url: String,
    state: Arc<Master>,
    shutdown: CancellationToken,
}

async fn start_master(pki: &Pki) -> FakeMaster {
    let state = Arc::new(Master {
        master_fp: pki.master.fingerprint.clone(),
        ..Default::default()
    });
    let ca = Arc::new(decnet_tls::pki::Ca::load(pki.ca.cert_pem(), pki.ca.key_pem()).unwrap());
    let app = Router::new()
        .route(
            "/swarm/enroll",
            post(
                |State((m, ca)): State<(Arc<Master>, Arc<decnet_tls::pki::Ca>)>,
                 Json(body): Json<Value>| async move {
                    let token = body["token"].as_str().unwrap_or_default().to_string();
                    let fresh = m.tokens.lock().unwrap().insert(token, true) == Some(false);
                    if !fresh {
                        return (
                            StatusCode::FORBIDDEN,
                            Json(json!({"detail": "invalid token"})),
                        );
                    }
                    let spec = LeafSpec::worker("worker-1", vec![San::parse("127.0.0.1")]);
                    let issued = ca
                        .issue_from_csr(body["csr_pem"].as_str().unwrap(), &spec)
                        .unwrap();
                    let host = HostUuid::new_v4();
                    *m.worker_fp.lock().unwrap() = Some(issued.fingerprint.clone());
                    *m.host_uuid.lock().unwrap() = Some(host);
                    (
                        StatusCode::OK,
                        Json(json!({
                            "host_uuid": host, "cert_pem": issued.cert_pem, "ca_pem": ca.cert_pem(),
                            "master_fingerprint": m.master_fp,
                        })),
                    )
                },
            ),
        )
        .route(
            "/swarm/heartbeat",
            post(
                |State((m, _)): State<(Arc<Master>, Arc<decnet_tls::pki::Ca>)>,
                 Extension(peer): Extension<PeerCertificate>,
                 Json(body): Json<HeartbeatBody>| async move {
                    let fp = peer.0.map(|c| decnet_tls::pki::fingerprint(&c));
                    if fp.is_none() || fp != *m.worker_fp.lock().unwrap() {
                        return StatusCode::FORBIDDEN;
                    }
                    if *m.down.lock().unwrap() {
                        return StatusCode::SERVICE_UNAVAILABLE;
                    }
                    m.beats.lock().unwrap().push(body);
                    StatusCode::NO_CONTENT
                },
            ),
        )
        .with_state((state.clone(), ca));
    let bundle = pki.bundle(&pki.master);
    let policy = PeerPolicy::from_ca_pem(pki.ca.cert_pem()).unwrap();
    let tls = server_config(&bundle, &policy, ClientAuth::Optional).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "https://127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    );
    let shutdown = CancellationToken::new();
    let t = shutdown.clone();
    tokio::spawn(async move {
        decnet_web::serve(
            listener,
            Some(tls),
            app,
            decnet_web::ServeLimits::default(),
            t,
        )
        .await
        .unwrap()
    });
    FakeMaster {
        url,
        state,
        shutdown,
    }
}

fn token(pki: &Pki, secret: char) -> String {
    EnrollTokenText {
        secret: secret.to_string().repeat(43),
        ca_fingerprint: pki.ca.fingerprint().to_string(),
    }
    .render()
}

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..300 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enroll_then_heartbeat_deltas_survive_outage_and_restart() {
    let pki = Pki::new();
    let master = start_master(&pki).await;
    let good = token(&pki, 'a');
    master
        .state
        .tokens
        .lock()
        .unwrap()
        .insert(good.clone(), false);

    // A token carrying another CA's fingerprint: the handshake itself is refused.
    let dir = tempfile::tempdir().unwrap();
    let other = decnet_tls::pki::Ca::generate("other").unwrap();
    let wrong = EnrollTokenText {
        secret: "b".repeat(43),
        ca_fingerprint: other.fingerprint().to_string(),
    }
    .render();
    let e = decnet_agent::enroll::enroll(&master.url, &wrong, dir.path())
        .await
        .unwrap_err();
    assert!(
        matches!(e, decnet_agent::enroll::EnrollError::Unreachable { .. }),
        "{e}"
    );
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "nothing written"
    );
    // Malformed token and http:// URL: exit 2 errors.
    let e = decnet_agent::enroll::enroll(&master.url, "nope", dir.path())
        .await
        .unwrap_err();
    assert_eq!(e.exit_code(), 2);
    let e = decnet_agent::enroll::enroll("http://127.0.0.1:1", &good, dir.path())
        .await
        .unwrap_err();
    assert_eq!(e.exit_code(), 2);

    // The real enrollment.
    let id = decnet_agent::enroll::enroll(&master.url, &good, dir.path())
        .await
        .unwrap();
    assert_eq!(id.master_fingerprint, pki.master.fingerprint);
    assert_eq!(Some(id.host_uuid), *master.state.host_uuid.lock().unwrap());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("worker.key"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let bundle = Bundle::load_worker_dir(dir.path()).unwrap();
    assert_eq!(bundle.ca_pem.trim(), pki.ca.cert_pem().trim());
    // The token is single-use.
    let again = tempfile::tempdir().unwrap();
    let e = decnet_agent::enroll::enroll(&master.url, &good, again.path())
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            decnet_agent::enroll::EnrollError::Refused { status: 403, .. }
        ),
        "{e}"
    );

    // A plain start heartbeats at once, with the real agent version.
    let state = tempfile::tempdir().unwrap();
    let agent = start_agent(dir.path(), state.path(), None, 1 << 20).await;
    until("the start-up heartbeat", || {
        !master.state.beats.lock().unwrap().is_empty()
    })
    .await;
    {
        let beats = master.state.beats.lock().unwrap();
        assert_eq!(beats[0].host_uuid, id.host_uuid);
        assert_eq!(
            beats[0].agent_version.as_deref(),
            Some(env!("CARGO_PKG_VERSION"))
        );
    }

    // The master goes down; work finishes meanwhile; its deltas wait in the outbox.
    *master.state.down.lock().unwrap() = true;
    // The master calls the agent with its own certificate (the agent pins it).
    let agent_pki_client = {
        let policy = PeerPolicy::from_ca_pem(pki.ca.cert_pem()).unwrap();
        let tls = decnet_tls::verify::client_config(&pki.bundle(&pki.master), &policy).unwrap();
        reqwest::Client::builder()
            .use_preconfigured_tls((*tls).clone())
            .build()
            .unwrap()
    };
    let lid = uuid::Uuid::new_v4();
    let r = agent_pki_client
        .post(format!("{}/teardown", agent.url))
        .json(&json!({"decky_id": "decky-07", "lifecycle_ids": {"decky-07": lid}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    until("the delta in the outbox", || agent.agent.outbox.len() == 1).await;
    // An agent restart in between.
    agent.stop().await;
    let agent = start_agent(dir.path(), state.path(), None, 1 << 20).await;
    assert_eq!(
        agent.agent.outbox.len(),
        1,
        "the delta survived the restart"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(master
        .state
        .beats
        .lock()
        .unwrap()
        .iter()
        .all(|b| b.lifecycle.is_empty()));

    // The master returns: the delta arrives exactly once and the outbox empties.
    *master.state.down.lock().unwrap() = false;
    until("the acknowledged delta", || agent.agent.outbox.is_empty()).await;
    tokio::time::sleep(Duration::from_millis(2500)).await; // two more heartbeats
    let beats = master.state.beats.lock().unwrap().clone();
    let carried: Vec<_> = beats
        .iter()
        .flat_map(|b| b.lifecycle.iter())
        .filter(|d| d.lifecycle_id == Some(lid))
        .collect();
    assert_eq!(carried.len(), 1, "exactly once: {carried:?}");
    assert_eq!(carried[0].decky_name.as_str(), "decky-07");
    agent.stop().await;
    master.shutdown.cancel();
}

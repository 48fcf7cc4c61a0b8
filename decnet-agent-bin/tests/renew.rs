//! Worker certificate renewal (issue 9, item 14) against a master stand-in over real mutual
//! TLS: the stand-in checks that the caller presents the current worker certificate and signs
//! the CSR's public key with the CA, like the master. Lifetimes are short (1 hour); the check
//! is driven directly, nothing sleeps.
#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Extension, Json, Router};
use common::Pki;
use decnet_agent::paths::Identity;
use decnet_agent::renew::{RenewOutcome, Renewer};
use decnet_core::model::HostUuid;
use decnet_tls::pki::{fingerprint, fingerprint_pem, Ca, LeafSpec, San};
use decnet_tls::verify::{server_config, ClientAuth, PeerPolicy};
use decnet_web::PeerCertificate;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

const HOUR: Duration = Duration::from_secs(3600);

struct StandIn {
    ca: Ca,
    /// The fingerprint a caller must present.
    pinned: Mutex<String>,
    calls: Mutex<Vec<Value>>,
}

async fn renew(
    State(s): State<Arc<StandIn>>,
    Extension(peer): Extension<PeerCertificate>,
    Json(body): Json<Value>,
) -> Result<Json<Value>, StatusCode> {
    s.calls.lock().unwrap().push(body.clone());
    let presented = peer.0.as_ref().map(|c| fingerprint(c));
    if presented.as_deref() != Some(s.pinned.lock().unwrap().as_str()) {
        return Err(StatusCode::FORBIDDEN);
    }
    let spec = LeafSpec {
        validity: HOUR,
        ..LeafSpec::worker("worker-1", vec![San::parse("127.0.0.1")])
    };
    let issued =
        s.ca.issue_from_csr(body["csr_pem"].as_str().unwrap_or_default(), &spec)
            .map_err(|_| StatusCode::UNPROCESSABLE_ENTITY)?;
    *s.pinned.lock().unwrap() = issued.fingerprint.clone();
    Ok(Json(json!({
        "cert_pem": issued.cert_pem,
        "ca_pem": s.ca.cert_pem(),
        "not_after": "2027-01-01T00:00:00Z",
    })))
}

/// An agent dir holding a 1-hour worker certificate, and a master stand-in pinned to it.
async fn setup(dir: &Path) -> (Arc<StandIn>, Identity, CancellationToken) {
    decnet_tls::install_default_provider();
    let pki = Pki::new();
    let short = pki
        .ca
        .issue_keypair(&LeafSpec {
            validity: HOUR,
            ..LeafSpec::worker("worker-1", vec![San::parse("127.0.0.1")])
        })
        .unwrap();
    let pki = Pki {
        worker: short,
        ..pki
    };
    let ca = Ca::load(pki.ca.cert_pem(), pki.ca.key_pem()).unwrap();
    let stand_in = Arc::new(StandIn {
        ca,
        pinned: Mutex::new(pki.worker.fingerprint.clone()),
        calls: Mutex::new(vec![]),
    });
    let tls = server_config(
        &pki.bundle(&pki.master),
        &PeerPolicy::from_ca_pem(pki.ca.cert_pem()).unwrap(),
        ClientAuth::Required,
    )
    .unwrap();
    let app = Router::new()
        .route("/swarm/renew", post(renew))
        .with_state(stand_in.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        decnet_web::serve(
            listener,
            Some(tls),
            app,
            decnet_web::ServeLimits::default(),
            t,
        )
        .await
        .unwrap();
    });
    let identity = Identity {
        host_uuid: HostUuid::new_v4(),
        master_url: format!("https://{addr}"),
        master_fingerprint: pki.master.fingerprint.clone(),
        master_next_fingerprint: None,
    };
    pki.write_agent_dir(dir, Some(&identity));
    (stand_in, identity, token)
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_with_more_than_the_threshold_left_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (stand_in, identity, token) = setup(dir.path()).await;
    let (cert, key) = (
        read(dir.path(), "worker.crt"),
        read(dir.path(), "worker.key"),
    );
    // Default threshold: a third of the hour.
    let renewer = Renewer::new(dir.path(), &identity, None);
    let out = renewer.check(SystemTime::now()).await.unwrap();
    assert!(matches!(out, RenewOutcome::NotDue { .. }), "{out:?}");
    // An explicit threshold below what is left.
    let renewer = Renewer::new(dir.path(), &identity, Some(Duration::from_secs(60)));
    let out = renewer.check(SystemTime::now()).await.unwrap();
    assert!(matches!(out, RenewOutcome::NotDue { .. }), "{out:?}");
    assert_eq!(read(dir.path(), "worker.crt"), cert);
    assert_eq!(read(dir.path(), "worker.key"), key);
    assert!(stand_in.calls.lock().unwrap().is_empty());
    token.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn below_the_threshold_the_worker_certificate_and_key_are_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let (stand_in, identity, token) = setup(dir.path()).await;
    let (old_cert, old_key) = (
        read(dir.path(), "worker.crt"),
        read(dir.path(), "worker.key"),
    );
    let hooked = Arc::new(Mutex::new(vec![]));
    let seen = hooked.clone();
    // Two hours before expiry is due at once for a 1-hour certificate.
    let renewer = Renewer::new(dir.path(), &identity, Some(2 * HOUR)).on_renewed(Arc::new(
        move |b: &decnet_tls::pki::Bundle| {
            seen.lock().unwrap().push(b.fingerprint().unwrap());
            Ok(())
        },
    ));
    let out = renewer.check(SystemTime::now()).await.unwrap();
    let RenewOutcome::Renewed { fingerprint, .. } = out else {
        panic!("expected a renewal, got {out:?}");
    };
    let calls = stand_in.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["host_uuid"], json!(identity.host_uuid));

    let (new_cert, new_key) = (
        read(dir.path(), "worker.crt"),
        read(dir.path(), "worker.key"),
    );
    assert_ne!(new_cert, old_cert);
    assert_ne!(new_key, old_key);
    assert_eq!(fingerprint_pem(&new_cert).unwrap(), fingerprint);
    assert_eq!(*stand_in.pinned.lock().unwrap(), fingerprint);
    let mode = |name: &str| {
        std::fs::metadata(dir.path().join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("worker.key"), 0o600);
    assert!(!dir.path().join("worker.key.next").exists());
    assert!(!dir.path().join("worker.crt.next").exists());
    // The new pair is a working bundle, and the hooks saw it.
    let bundle = decnet_tls::pki::Bundle::load_worker_dir(dir.path()).unwrap();
    decnet_tls::verify::ReloadableCert::new(&bundle).unwrap();
    assert_eq!(*hooked.lock().unwrap(), vec![fingerprint.clone()]);

    // The next check presents the new certificate (the stand-in now pins only that one).
    let out = renewer.check(SystemTime::now()).await.unwrap();
    assert!(matches!(out, RenewOutcome::Renewed { .. }), "{out:?}");
    token.cancel();
}

/// A refused renewal changes nothing on disk but the pending key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_renewal_keeps_the_current_pair() {
    let dir = tempfile::tempdir().unwrap();
    let (stand_in, identity, token) = setup(dir.path()).await;
    *stand_in.pinned.lock().unwrap() = "someone else".into();
    let (cert, key) = (
        read(dir.path(), "worker.crt"),
        read(dir.path(), "worker.key"),
    );
    let renewer = Renewer::new(dir.path(), &identity, Some(2 * HOUR));
    let err = renewer.check(SystemTime::now()).await.unwrap_err();
    assert!(err.to_string().contains("403"), "{err}");
    assert_eq!(read(dir.path(), "worker.crt"), cert);
    assert_eq!(read(dir.path(), "worker.key"), key);
    // The stale pending key is not taken for the current certificate's.
    decnet_agent::renew::recover_pending(dir.path()).unwrap();
    assert_eq!(read(dir.path(), "worker.key"), key);
    token.cancel();
}

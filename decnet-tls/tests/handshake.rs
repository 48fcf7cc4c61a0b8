//! Real mutual-TLS handshakes over 127.0.0.1 with tokio-rustls: who is accepted, who is not.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::{bundle, fixture, handshake};
use decnet_tls::pki::{Bundle, Ca, IssuedKeyPair, LeafSpec, San, MASTER_CN};
use decnet_tls::rustls::{self, ClientConfig, ServerConfig};
use decnet_tls::verify::{
    anonymous_client_config, client_config, enroll_client_config, provider, server_config,
    ClientAuth, PeerPolicy, PolicyClientVerifier, PolicyServerVerifier,
};

const DAY: Duration = Duration::from_secs(86_400);

/// A CA with the master's certificate and one agent's.
struct Fleet {
    ca: Ca,
    master: IssuedKeyPair,
    agent: IssuedKeyPair,
}

fn fleet() -> Fleet {
    let ca = Ca::generate("DECNET test CA").unwrap();
    let master = ca
        .issue_keypair(&LeafSpec::master(vec![San::parse("127.0.0.1")]))
        .unwrap();
    let agent = ca
        .issue_keypair(&LeafSpec::worker(
            "worker-1",
            vec![San::parse("127.0.0.1"), San::parse("worker-1")],
        ))
        .unwrap();
    Fleet { ca, master, agent }
}

fn expired(ca: &Ca, spec: LeafSpec) -> IssuedKeyPair {
    ca.issue_keypair(&LeafSpec {
        not_before: Some(SystemTime::now() - 10 * DAY),
        validity: DAY,
        ..spec
    })
    .unwrap()
}

impl Fleet {
    fn policy(&self) -> PeerPolicy {
        PeerPolicy::new(self.ca.cert_der().clone())
    }

    /// The agent's server: client cert required, CN decnet-master, pinned to `pin`.
    fn agent_server(&self, pin: &str) -> Arc<ServerConfig> {
        let policy = self
            .policy()
            .with_expected_cn(MASTER_CN)
            .with_pinned_fingerprint(pin);
        server_config(
            &bundle(&self.ca, &self.agent),
            &policy,
            ClientAuth::Required,
        )
        .unwrap()
    }

    /// The master dialling the agent, as `client`, pinning the agent's certificate.
    fn to_agent(&self, client: &Bundle) -> Arc<ClientConfig> {
        client_config(
            client,
            &self
                .policy()
                .with_pinned_fingerprint(&self.agent.fingerprint),
        )
        .unwrap()
    }
}

// ---- agent server: CA + CN decnet-master + pinned fingerprint ------------------------------

#[tokio::test]
async fn agent_accepts_only_the_pinned_master() {
    let f = fleet();
    let server = f.agent_server(&f.master.fingerprint);
    let out = handshake(server, f.to_agent(&bundle(&f.ca, &f.master)), "127.0.0.1").await;
    let (peer, seen) = out.assert_accepted();
    let peer = peer.expect("the agent sees the master's certificate");
    assert_eq!(peer.fingerprint, f.master.fingerprint);
    assert_eq!(peer.cn.as_deref(), Some(MASTER_CN));
    assert_eq!(seen.as_deref(), Some(f.agent.fingerprint.as_str()));
}

#[tokio::test]
async fn agent_refuses_a_client_without_certificate() {
    let f = fleet();
    let client =
        anonymous_client_config(&f.policy().with_pinned_fingerprint(&f.agent.fingerprint)).unwrap();
    let out = handshake(f.agent_server(&f.master.fingerprint), client, "127.0.0.1").await;
    out.assert_server_refused("peer sent no certificates");
}

#[tokio::test]
async fn agent_refuses_a_foreign_ca() {
    let f = fleet();
    let foreign = Ca::generate("Evil CA").unwrap();
    let impostor = foreign.issue_keypair(&LeafSpec::master(vec![])).unwrap();
    let out = handshake(
        f.agent_server(&f.master.fingerprint),
        f.to_agent(&bundle(&foreign, &impostor)),
        "127.0.0.1",
    )
    .await;
    out.assert_server_refused("invalid peer certificate: UnknownIssuer");
}

#[tokio::test]
async fn agent_refuses_a_foreign_ca_even_with_the_pinned_fingerprint_of_its_leaf() {
    // The pin alone is not the trust: the chain must also end at the agent's CA.
    let f = fleet();
    let foreign = Ca::generate("DECNET test CA").unwrap();
    let impostor = foreign.issue_keypair(&LeafSpec::master(vec![])).unwrap();
    let out = handshake(
        f.agent_server(&impostor.fingerprint),
        f.to_agent(&bundle(&foreign, &impostor)),
        "127.0.0.1",
    )
    .await;
    // Same CA name, other key: the signature check is what refuses it.
    out.assert_server_refused("invalid peer certificate: BadSignature");
}

#[tokio::test]
async fn agent_refuses_another_worker() {
    // Bug §8.1 of the original: any CA-signed certificate could command every agent.
    let f = fleet();
    let worker2 =
        f.ca.issue_keypair(&LeafSpec::worker("worker-2", vec![]))
            .unwrap();
    let out = handshake(
        f.agent_server(&f.master.fingerprint),
        f.to_agent(&bundle(&f.ca, &worker2)),
        "127.0.0.1",
    )
    .await;
    out.assert_server_refused("is not the pinned");
}

#[tokio::test]
async fn agent_refuses_a_worker_even_when_pinned_to_it() {
    // CN and pin are both required when both are set.
    let f = fleet();
    let worker2 =
        f.ca.issue_keypair(&LeafSpec::worker("worker-2", vec![]))
            .unwrap();
    let out = handshake(
        f.agent_server(&worker2.fingerprint),
        f.to_agent(&bundle(&f.ca, &worker2)),
        "127.0.0.1",
    )
    .await;
    out.assert_server_refused("CN Some(\"worker-2\") is not \"decnet-master\"");
}

#[tokio::test]
async fn agent_refuses_a_second_master_certificate_that_is_not_pinned() {
    let f = fleet();
    let other_master = f.ca.issue_keypair(&LeafSpec::master(vec![])).unwrap();
    let out = handshake(
        f.agent_server(&f.master.fingerprint),
        f.to_agent(&bundle(&f.ca, &other_master)),
        "127.0.0.1",
    )
    .await;
    out.assert_server_refused("is not the pinned");
}

#[tokio::test]
async fn agent_refuses_an_expired_master_certificate_even_when_pinned() {
    let f = fleet();
    let old = expired(&f.ca, LeafSpec::master(vec![]));
    let out = handshake(
        f.agent_server(&old.fingerprint),
        f.to_agent(&bundle(&f.ca, &old)),
        "127.0.0.1",
    )
    .await;
    out.assert_server_refused("certificate expired");
}

#[tokio::test]
async fn agent_without_pin_accepts_any_master_cn_of_its_ca() {
    // Before a pin is known the CN still keeps workers out.
    let f = fleet();
    let policy = f.policy().with_expected_cn(MASTER_CN);
    let server = server_config(&bundle(&f.ca, &f.agent), &policy, ClientAuth::Required).unwrap();
    let other_master = f.ca.issue_keypair(&LeafSpec::master(vec![])).unwrap();
    handshake(
        server.clone(),
        f.to_agent(&bundle(&f.ca, &other_master)),
        "127.0.0.1",
    )
    .await
    .assert_accepted();
    let worker2 =
        f.ca.issue_keypair(&LeafSpec::worker("worker-2", vec![]))
            .unwrap();
    handshake(server, f.to_agent(&bundle(&f.ca, &worker2)), "127.0.0.1")
        .await
        .assert_server_refused("is not \"decnet-master\"");
}

#[tokio::test]
async fn agent_matrix_over_tls12() {
    // The TLS 1.2 signature path of the verifiers, accepted and refused.
    let f = fleet();
    let tls12 = |client: &Bundle| {
        let verifier =
            PolicyServerVerifier::new(&f.policy().with_pinned_fingerprint(&f.agent.fingerprint))
                .unwrap();
        Arc::new(
            ClientConfig::builder_with_provider(provider())
                .with_protocol_versions(&[&rustls::version::TLS12])
                .unwrap()
                .dangerous()
                .with_custom_certificate_verifier(verifier)
                .with_client_auth_cert(client.cert_chain().unwrap(), client.private_key().unwrap())
                .unwrap(),
        )
    };
    let out = handshake(
        f.agent_server(&f.master.fingerprint),
        tls12(&bundle(&f.ca, &f.master)),
        "127.0.0.1",
    )
    .await;
    out.assert_accepted();
    let worker2 =
        f.ca.issue_keypair(&LeafSpec::worker("worker-2", vec![]))
            .unwrap();
    let out = handshake(
        f.agent_server(&f.master.fingerprint),
        tls12(&bundle(&f.ca, &worker2)),
        "127.0.0.1",
    )
    .await;
    out.assert_server_refused("is not the pinned");
}

// ---- client side: CA + pin/CN, never the host name ------------------------------------------

#[tokio::test]
async fn client_ignores_the_host_name_when_ca_and_pin_match() {
    let f = fleet();
    let moved =
        f.ca.issue_keypair(&LeafSpec::worker(
            "worker-1",
            vec![San::parse("elsewhere.example"), San::parse("10.1.2.3")],
        ))
        .unwrap();
    let server_policy = f
        .policy()
        .with_expected_cn(MASTER_CN)
        .with_pinned_fingerprint(&f.master.fingerprint);
    let server =
        server_config(&bundle(&f.ca, &moved), &server_policy, ClientAuth::Required).unwrap();
    let client = client_config(
        &bundle(&f.ca, &f.master),
        &f.policy().with_pinned_fingerprint(&moved.fingerprint),
    )
    .unwrap();
    for dialled in ["127.0.0.1", "agent.invalid"] {
        let out = handshake(server.clone(), client.clone(), dialled).await;
        let (_, seen) = out.assert_accepted();
        assert_eq!(seen.as_deref(), Some(moved.fingerprint.as_str()));
    }
}

#[tokio::test]
async fn client_refuses_a_wrong_pin() {
    let f = fleet();
    let other =
        f.ca.issue_keypair(&LeafSpec::worker("worker-1", vec![]))
            .unwrap();
    let client = client_config(
        &bundle(&f.ca, &f.master),
        &f.policy().with_pinned_fingerprint(&other.fingerprint),
    )
    .unwrap();
    let out = handshake(f.agent_server(&f.master.fingerprint), client, "127.0.0.1").await;
    out.assert_client_refused("is not the pinned");
}

#[tokio::test]
async fn client_refuses_a_foreign_ca() {
    let f = fleet();
    let foreign = Ca::generate("DECNET test CA").unwrap();
    let impostor = foreign
        .issue_keypair(&LeafSpec::worker("worker-1", vec![San::parse("127.0.0.1")]))
        .unwrap();
    let server = server_config(
        &bundle(&foreign, &impostor),
        &PeerPolicy::new(foreign.cert_der().clone()),
        ClientAuth::Optional,
    )
    .unwrap();
    // Even pinned to the impostor's own fingerprint: the chain must end at our CA.
    let client = client_config(
        &bundle(&f.ca, &f.master),
        &f.policy().with_pinned_fingerprint(&impostor.fingerprint),
    )
    .unwrap();
    let out = handshake(server, client, "127.0.0.1").await;
    out.assert_client_refused("BadSignature");
}

#[tokio::test]
async fn worker_refuses_another_worker_posing_as_the_master() {
    // Bug §8.4 of the original: any CA-signed certificate could impersonate the master.
    let f = fleet();
    let worker2 =
        f.ca.issue_keypair(&LeafSpec::worker("worker-2", vec![]))
            .unwrap();
    let fake_master =
        server_config(&bundle(&f.ca, &worker2), &f.policy(), ClientAuth::Optional).unwrap();
    let client = client_config(
        &bundle(&f.ca, &f.agent),
        &f.policy().with_expected_cn(MASTER_CN),
    )
    .unwrap();
    let out = handshake(fake_master, client, "127.0.0.1").await;
    out.assert_client_refused("is not \"decnet-master\"");
}

#[tokio::test]
async fn client_refuses_an_expired_server_even_when_pinned() {
    let f = fleet();
    let old = expired(&f.ca, LeafSpec::worker("worker-1", vec![]));
    let server = server_config(&bundle(&f.ca, &old), &f.policy(), ClientAuth::Optional).unwrap();
    let client = client_config(
        &bundle(&f.ca, &f.master),
        &f.policy().with_pinned_fingerprint(&old.fingerprint),
    )
    .unwrap();
    handshake(server, client, "127.0.0.1")
        .await
        .assert_client_refused("certificate expired");
}

// ---- master swarm endpoint: client certificate optional at the TLS layer -------------------

#[tokio::test]
async fn optional_client_auth_lets_no_certificate_through_and_verifies_presented_ones() {
    let f = fleet();
    let endpoint =
        server_config(&bundle(&f.ca, &f.master), &f.policy(), ClientAuth::Optional).unwrap();
    let to_master = f
        .policy()
        .with_expected_cn(MASTER_CN)
        .with_pinned_fingerprint(&f.master.fingerprint);

    // No certificate (the enrolling worker): the handshake succeeds, the app sees no peer.
    let out = handshake(
        endpoint.clone(),
        anonymous_client_config(&to_master).unwrap(),
        "127.0.0.1",
    )
    .await;
    let (peer, _) = out.assert_accepted();
    assert_eq!(peer, None);

    // An enrolled worker: accepted, the app sees its fingerprint (checked per route).
    let out = handshake(
        endpoint.clone(),
        client_config(&bundle(&f.ca, &f.agent), &to_master).unwrap(),
        "127.0.0.1",
    )
    .await;
    let (peer, _) = out.assert_accepted();
    let peer = peer.unwrap();
    assert_eq!(peer.fingerprint, f.agent.fingerprint);
    assert_eq!(peer.cn.as_deref(), Some("worker-1"));

    // A certificate from a foreign CA: refused at the TLS layer.
    let foreign = Ca::generate("DECNET test CA").unwrap();
    let stranger = foreign
        .issue_keypair(&LeafSpec::worker("worker-1", vec![]))
        .unwrap();
    handshake(
        endpoint.clone(),
        client_config(&bundle(&foreign, &stranger), &to_master).unwrap(),
        "127.0.0.1",
    )
    .await
    .assert_server_refused("BadSignature");

    // An expired certificate of our CA: refused too.
    let old = expired(&f.ca, LeafSpec::worker("worker-1", vec![]));
    handshake(
        endpoint,
        client_config(&bundle(&f.ca, &old), &to_master).unwrap(),
        "127.0.0.1",
    )
    .await
    .assert_server_refused("certificate expired");
}

#[test]
fn client_auth_mandatory_follows_the_mode() {
    use decnet_tls::rustls::server::danger::ClientCertVerifier;
    let f = fleet();
    let required = PolicyClientVerifier::new(&f.policy(), ClientAuth::Required).unwrap();
    let optional = PolicyClientVerifier::new(&f.policy(), ClientAuth::Optional).unwrap();
    assert!(required.offer_client_auth() && required.client_auth_mandatory());
    assert!(optional.offer_client_auth() && !optional.client_auth_mandatory());
}

// ---- enrollment: trust from the token's CA fingerprint -------------------------------------

fn master_endpoint(f: &Fleet, leaf: &IssuedKeyPair) -> Arc<ServerConfig> {
    server_config(&bundle(&f.ca, leaf), &f.policy(), ClientAuth::Optional).unwrap()
}

#[tokio::test]
async fn enroll_trusts_the_master_through_the_ca_fingerprint() {
    let f = fleet();
    let out = handshake(
        master_endpoint(&f, &f.master),
        enroll_client_config(f.ca.fingerprint()).unwrap(),
        "192.0.2.1",
    )
    .await;
    let (peer, seen) = out.assert_accepted();
    assert_eq!(peer, None, "the enrolling worker has no certificate yet");
    assert_eq!(seen.as_deref(), Some(f.master.fingerprint.as_str()));

    // The token may carry the fingerprint in OpenSSL's form.
    let openssl_form =
        f.ca.fingerprint()
            .to_uppercase()
            .as_bytes()
            .chunks(2)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join(":");
    handshake(
        master_endpoint(&f, &f.master),
        enroll_client_config(&openssl_form).unwrap(),
        "127.0.0.1",
    )
    .await
    .assert_accepted();
}

#[tokio::test]
async fn enroll_refuses_another_ca_fingerprint() {
    let f = fleet();
    let foreign = Ca::generate("DECNET test CA").unwrap();
    handshake(
        master_endpoint(&f, &f.master),
        enroll_client_config(foreign.fingerprint()).unwrap(),
        "127.0.0.1",
    )
    .await
    .assert_client_refused("enrollment CA fingerprint");
}

#[tokio::test]
async fn enroll_refuses_a_worker_certificate_of_the_right_ca() {
    let f = fleet();
    handshake(
        master_endpoint(&f, &f.agent),
        enroll_client_config(f.ca.fingerprint()).unwrap(),
        "127.0.0.1",
    )
    .await
    .assert_client_refused("is not \"decnet-master\"");
}

#[tokio::test]
async fn enroll_refuses_a_foreign_leaf_sent_next_to_the_real_ca_certificate() {
    // The CA certificate is public: sending it is not proof of anything.
    let f = fleet();
    let foreign = Ca::generate("DECNET test CA").unwrap();
    let impostor = foreign.issue_keypair(&LeafSpec::master(vec![])).unwrap();
    let rogue = Bundle {
        ca_pem: f.ca.cert_pem().to_owned(),
        cert_pem: impostor.cert_pem.clone(),
        key_pem: impostor.key_pem.clone(),
    };
    let server = server_config(&rogue, &f.policy(), ClientAuth::Optional).unwrap();
    handshake(
        server,
        enroll_client_config(f.ca.fingerprint()).unwrap(),
        "127.0.0.1",
    )
    .await
    .assert_client_refused("invalid peer certificate: BadSignature");
}

#[tokio::test]
async fn enroll_refuses_a_server_that_does_not_send_the_ca() {
    let f = fleet();
    let b = bundle(&f.ca, &f.master);
    let bare = Arc::new(
        ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(b.cert_chain().unwrap(), b.private_key().unwrap())
            .unwrap(),
    );
    handshake(
        bare,
        enroll_client_config(f.ca.fingerprint()).unwrap(),
        "127.0.0.1",
    )
    .await
    .assert_client_refused("enrollment CA fingerprint");
}

#[tokio::test]
async fn enroll_refuses_an_expired_master() {
    let f = fleet();
    let old = expired(&f.ca, LeafSpec::master(vec![]));
    handshake(
        master_endpoint(&f, &old),
        enroll_client_config(f.ca.fingerprint()).unwrap(),
        "127.0.0.1",
    )
    .await
    .assert_client_refused("certificate expired");
}

// ---- the original's bundles: RSA/ECDSA keys in PKCS#1, SEC1, PKCS#8 -------------------------

fn legacy_bundle(cert: &str, key: &str) -> Bundle {
    Bundle {
        ca_pem: fixture("legacy_ca.crt"),
        cert_pem: fixture(cert),
        key_pem: fixture(key),
    }
}

fn legacy_policy(cert: &str) -> PeerPolicy {
    PeerPolicy::from_ca_pem(&fixture("legacy_ca.crt"))
        .unwrap()
        .with_pinned_fingerprint(fixture(&format!("{cert}.sha256")).trim())
}

#[tokio::test]
async fn legacy_keys_serve_in_every_format() {
    // A client of our own CA, pinned to the legacy server certificate.
    let ours = Ca::generate("DECNET test CA").unwrap();
    let master = ours.issue_keypair(&LeafSpec::master(vec![])).unwrap();
    for (cert, key) in [
        ("rsa.crt", "rsa_pkcs1.key"),
        ("rsa.crt", "rsa_pkcs8.key"),
        ("ec.crt", "ec_sec1.key"),
        ("ec.crt", "ec_pkcs8.key"),
    ] {
        let server = server_config(
            &legacy_bundle(cert, key),
            &PeerPolicy::new(ours.cert_der().clone()),
            ClientAuth::Optional,
        )
        .unwrap();
        let client = client_config(&bundle(&ours, &master), &legacy_policy(cert)).unwrap();
        let out = handshake(server, client, "10.9.9.9").await;
        assert!(out.accepted(), "{cert} + {key}: {out:#?}");
    }
}

#[tokio::test]
async fn legacy_pkcs1_and_sec1_keys_authenticate_as_clients() {
    let ours = Ca::generate("DECNET test CA").unwrap();
    let agent = ours
        .issue_keypair(&LeafSpec::worker("worker-1", vec![]))
        .unwrap();
    // The legacy RSA leaf has CN decnet-master: an agent of the legacy CA accepts it.
    let legacy_agent_policy = legacy_policy("rsa.crt").with_expected_cn(MASTER_CN);
    let server = server_config(
        &bundle(&ours, &agent),
        &legacy_agent_policy,
        ClientAuth::Required,
    )
    .unwrap();
    let to_agent =
        PeerPolicy::new(ours.cert_der().clone()).with_pinned_fingerprint(&agent.fingerprint);
    let out = handshake(
        server,
        client_config(&legacy_bundle("rsa.crt", "rsa_pkcs1.key"), &to_agent).unwrap(),
        "127.0.0.1",
    )
    .await;
    let (peer, _) = out.assert_accepted();
    assert_eq!(peer.unwrap().fingerprint, fixture("rsa.crt.sha256").trim());

    let server = server_config(
        &bundle(&ours, &agent),
        &legacy_policy("ec.crt"),
        ClientAuth::Required,
    )
    .unwrap();
    handshake(
        server,
        client_config(&legacy_bundle("ec.crt", "ec_sec1.key"), &to_agent).unwrap(),
        "127.0.0.1",
    )
    .await
    .assert_accepted();
}

#[tokio::test]
async fn legacy_rsa_ca_issues_working_certificates() {
    // The original's RSA 4096 PKCS#8 CA, loaded and signing a worker's P-256 CSR.
    let ca = Ca::load(&fixture("legacy_ca.crt"), &fixture("legacy_ca.key")).unwrap();
    let (key_pem, csr_pem) = decnet_tls::pki::generate_key_and_csr("worker-9").unwrap();
    let issued = ca
        .issue_from_csr(&csr_pem, &LeafSpec::worker("worker-9", vec![]))
        .unwrap();
    let worker = Bundle {
        ca_pem: ca.cert_pem().to_owned(),
        cert_pem: issued.cert_pem.clone(),
        key_pem,
    };
    let master = ca.issue_keypair(&LeafSpec::master(vec![])).unwrap();
    let server = server_config(
        &worker,
        &PeerPolicy::new(ca.cert_der().clone())
            .with_expected_cn(MASTER_CN)
            .with_pinned_fingerprint(&master.fingerprint),
        ClientAuth::Required,
    )
    .unwrap();
    let client = client_config(
        &bundle(&ca, &master),
        &PeerPolicy::new(ca.cert_der().clone()).with_pinned_fingerprint(&issued.fingerprint),
    )
    .unwrap();
    handshake(server, client, "127.0.0.1")
        .await
        .assert_accepted();
}

#[test]
fn a_key_that_is_not_the_certificates_is_refused() {
    let f = fleet();
    let mismatched = Bundle {
        ca_pem: f.ca.cert_pem().to_owned(),
        cert_pem: f.agent.cert_pem.clone(),
        key_pem: f.master.key_pem.clone(),
    };
    let err = server_config(&mismatched, &f.policy(), ClientAuth::Required).unwrap_err();
    assert!(err.to_string().contains("tls configuration"), "{err}");
    assert!(client_config(&mismatched, &f.policy()).is_err());
}

#[tokio::test]
async fn extended_key_usage_is_enforced_both_ways() {
    let f = fleet();
    // A master certificate without clientAuth cannot authenticate to an agent.
    let server_only =
        f.ca.issue_keypair(&LeafSpec {
            client_auth: false,
            ..LeafSpec::master(vec![])
        })
        .unwrap();
    handshake(
        f.agent_server(&server_only.fingerprint),
        f.to_agent(&bundle(&f.ca, &server_only)),
        "127.0.0.1",
    )
    .await
    .assert_server_refused("extended key usage for client authentication");

    // A server certificate without serverAuth is refused by clients.
    let client_only =
        f.ca.issue_keypair(&LeafSpec {
            server_auth: false,
            ..LeafSpec::worker("worker-1", vec![])
        })
        .unwrap();
    let server = server_config(
        &bundle(&f.ca, &client_only),
        &f.policy(),
        ClientAuth::Optional,
    )
    .unwrap();
    let client = client_config(
        &bundle(&f.ca, &f.master),
        &f.policy().with_pinned_fingerprint(&client_only.fingerprint),
    )
    .unwrap();
    handshake(server, client, "127.0.0.1")
        .await
        .assert_client_refused("extended key usage for server authentication");
}

// ---- certificate renewal -----------------------------------------------------------------

/// A renewed agent certificate is served from the next handshake on, without a new
/// ServerConfig; the master's client pinned to both (the overlap) accepts the old and the new,
/// one pinned to the new only refuses the old.
#[tokio::test]
async fn a_reloadable_certificate_is_served_after_replace_and_overlap_pins_accept_both() {
    use decnet_tls::verify::{reloadable_server_config, ReloadableCert};
    let f = fleet();
    let renewed =
        f.ca.issue_keypair(&LeafSpec::worker("worker-1", vec![San::parse("127.0.0.1")]))
            .unwrap();
    let cert = ReloadableCert::new(&bundle(&f.ca, &f.agent)).unwrap();
    let policy = f
        .policy()
        .with_expected_cn(MASTER_CN)
        .with_pinned_fingerprint(&f.master.fingerprint);
    let server = reloadable_server_config(cert.clone(), &policy, ClientAuth::Required).unwrap();
    let master = bundle(&f.ca, &f.master);
    let both = client_config(
        &master,
        &f.policy()
            .with_pinned_fingerprint(&renewed.fingerprint)
            .with_also_pinned_fingerprint(&f.agent.fingerprint),
    )
    .unwrap();
    let new_only = client_config(
        &master,
        &f.policy().with_pinned_fingerprint(&renewed.fingerprint),
    )
    .unwrap();

    let (_, seen) = handshake(server.clone(), both.clone(), "127.0.0.1")
        .await
        .assert_accepted();
    assert_eq!(seen.as_deref(), Some(f.agent.fingerprint.as_str()));
    handshake(server.clone(), new_only.clone(), "127.0.0.1")
        .await
        .assert_client_refused("is not the pinned");

    // A key that is not the certificate's is refused and the served one kept.
    let mismatched = Bundle {
        key_pem: f.master.key_pem.clone(),
        ..bundle(&f.ca, &renewed)
    };
    assert!(cert.replace(&mismatched).is_err());
    assert_eq!(
        cert.fingerprint().as_deref(),
        Some(f.agent.fingerprint.as_str())
    );

    cert.replace(&bundle(&f.ca, &renewed)).unwrap();
    assert_eq!(
        cert.fingerprint().as_deref(),
        Some(renewed.fingerprint.as_str())
    );
    for client in [both, new_only] {
        let (_, seen) = handshake(server.clone(), client, "127.0.0.1")
            .await
            .assert_accepted();
        assert_eq!(seen.as_deref(), Some(renewed.fingerprint.as_str()));
    }
}

//! Recipe: the master's side of the swarm protocol in-process — enrollment signed by your CA,
//! caller identity by certificate fingerprint, heartbeats, and the unreachable check — with
//! `decnet-core`'s `Swarm`, the `decnet-tls` CA behind `decnet-swarm`'s `CaIssuer`, and an
//! in-memory store. No sockets: an embedder puts its own transport (HTTP, a queue, a test
//! harness) in front of these calls, as the `decnet` binary does with axum.
//!
//! 1. The operator issues a one-time enrollment token (its hash is stored).
//! 2. A worker makes a key and a CSR and enrolls: the CA signs the CSR's public key with the
//!    master's fields (CN = the token's host name, SAN = its address); the worker checks the
//!    CA it got against the fingerprint the token carries.
//! 3. The worker's heartbeat is identified by its certificate's fingerprint and taken in:
//!    the host becomes `active`.
//! 4. Three heartbeat intervals of silence later, the unreachable check marks it.
//!
//! Run it with `cargo run -p decnet-examples --example embed_swarm`.

use std::sync::Arc;
use std::time::Duration;

use decnet_core::model::auth::{token_hash, EnrollToken};
use decnet_core::model::{
    AgentStatus, EnrollTokenText, HeartbeatBody, Host, HostName, HostStatus, HostUuid,
};
use decnet_core::orchestrate::bus::BroadcastBus;
use decnet_core::orchestrate::{Lifecycle, Swarm, SwarmSettings};
use decnet_core::testkit::{ManualClock, MemRepository};
use decnet_core::traits::{AgentClient, AgentConnector, AgentError, Clock, Repository};
use decnet_swarm::CaIssuer;
use decnet_tls::pki::{check_fingerprint_pem, fingerprint_pem, generate_key_and_csr, Ca, LeafSpec};

/// This recipe dispatches nothing to workers (see `embed_runner` for the runner).
#[derive(Debug)]
struct NoDispatch;

impl AgentConnector for NoDispatch {
    fn connect(&self, host: &Host, _: Duration) -> Result<Arc<dyn AgentClient>, AgentError> {
        Err(AgentError::Unreachable {
            message: format!("{}: this recipe dispatches nothing", host.name),
            source: None,
        })
    }

    fn forget(&self, _: HostUuid) {}
}

/// What the recipe ends with, for its test.
#[derive(Debug)]
struct Outcome {
    name: String,
    after_enroll: HostStatus,
    after_heartbeat: HostStatus,
    after_silence: HostStatus,
    reused_token_refused: bool,
}

async fn run() -> Result<Outcome, Box<dyn std::error::Error>> {
    let repo = Arc::new(MemRepository::new());
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let lifecycle = Lifecycle::new(repo.clone(), Arc::new(BroadcastBus::new(64)), clock.clone());

    // The master's PKI: a CA, and the certificate the master presents (agents pin it).
    let ca = Ca::generate("Example DECNET CA")?;
    let master = ca.issue_keypair(&LeafSpec::master(vec![]))?;
    let issuer = CaIssuer::new(ca, fingerprint_pem(&master.cert_pem)?);
    let ca_fingerprint = issuer.ca().fingerprint().to_string();
    let swarm = Swarm::new(
        repo.clone(),
        clock.clone(),
        Arc::new(issuer),
        Arc::new(NoDispatch),
        lifecycle,
        SwarmSettings::default().with_heartbeat_interval(Duration::from_secs(30)),
    );

    // 1: a one-time token for worker-1 at 10.0.0.5:8765 (shown once; only its hash is kept).
    let token = EnrollTokenText {
        secret: "example-secret-of-forty-three-characters-xx".into(),
        ca_fingerprint,
    };
    let now = clock.now();
    repo.insert_enroll_token(&EnrollToken {
        id: uuid::Uuid::new_v4(),
        hash: token_hash(&token.render()),
        host_name: HostName::new("worker-1")?,
        address: "10.0.0.5:8765".into(),
        created_at: now,
        expires_at: now + chrono::Duration::minutes(15),
        used_at: None,
    })
    .await?;

    // 2: the worker's side of enrollment.
    let (_worker_key, csr) = generate_key_and_csr("anything; the master sets the fields")?;
    let answer = swarm.enroll(&token.render(), &csr).await?;
    check_fingerprint_pem(&answer.ca_pem, &token.ca_fingerprint)?;
    let worker_fp = fingerprint_pem(&answer.cert_pem)?;
    let status = |h: Option<Host>| h.map(|h| h.status).ok_or("host enrolled");
    let after_enroll = status(repo.host(answer.host_uuid).await?)?;
    let reused_token_refused = swarm.enroll(&token.render(), &csr).await.is_err();

    // 3: a heartbeat, identified by the certificate the TLS layer saw.
    let (host, presented) = swarm
        .identify(Some(&worker_fp), Some(&answer.host_uuid.to_string()))
        .await?;
    let beat = HeartbeatBody {
        host_uuid: host.uuid,
        agent_version: Some("example/1.0".into()),
        wire_version: Some(decnet_core::model::WIRE_VERSION),
        status: AgentStatus::not_deployed(clock.now(), vec![]),
        lifecycle: vec![],
    };
    swarm.heartbeat(&host, presented, &beat).await?;
    let after_heartbeat = status(repo.host(host.uuid).await?)?;

    // 4: silence for three intervals and a bit.
    clock.advance(Duration::from_secs(91));
    swarm.check_hosts(clock.now()).await?;
    let after_silence = status(repo.host(host.uuid).await?)?;
    Ok(Outcome {
        name: host.name.to_string(),
        after_enroll,
        after_heartbeat,
        after_silence,
        reused_token_refused,
    })
}

#[cfg_attr(test, allow(dead_code))]
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = run().await?;
    println!("{} enrolled:        {}", out.name, out.after_enroll);
    println!(
        "token used again:        refused = {}",
        out.reused_token_refused
    );
    println!("after its heartbeat:     {}", out.after_heartbeat);
    println!("after 91 s of silence:   {}", out.after_silence);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_worker_enrolls_heartbeats_and_goes_unreachable() {
        let out = run().await.expect("the recipe runs");
        assert_eq!(out.name, "worker-1");
        assert_eq!(out.after_enroll, HostStatus::Enrolled);
        assert!(out.reused_token_refused);
        assert_eq!(out.after_heartbeat, HostStatus::Active);
        assert_eq!(out.after_silence, HostStatus::Unreachable);
    }
}

//! Fixtures shared by the master's integration tests.

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use decnet_core::model::{ApiToken, DeckyName, DeckyRuntime, DecnetConfig, Role, RuntimeMap};
use decnet_core::traits::{DeckyOutcome, DeployReport, Deployer, DeployerError, Repository};
use decnet_master_bin::master::layout::{new_api_token, token_hash, DataDir};
use decnet_tls::pki::{write_private, Ca, LeafSpec};

/// Writes a fresh CA and master certificate into a master's data dir, as `decnet init` would.
pub fn write_pki(layout: &DataDir) -> Ca {
    let ca = Ca::generate("DECNET test CA").unwrap();
    std::fs::write(layout.ca_cert(), ca.cert_pem()).unwrap();
    write_private(&layout.ca_key(), ca.key_pem().as_bytes()).unwrap();
    let m = ca.issue_keypair(&LeafSpec::master(vec![])).unwrap();
    std::fs::write(layout.master_cert(), &m.cert_pem).unwrap();
    write_private(&layout.master_key(), m.key_pem.as_bytes()).unwrap();
    ca
}

/// Stores a new API token of `role` and returns its text.
pub async fn api_token(repo: &Arc<dyn Repository>, role: Role) -> String {
    let token = new_api_token();
    repo.insert_api_token(&ApiToken {
        id: uuid::Uuid::new_v4(),
        hash: token_hash(&token),
        role,
        created_at: Utc::now(),
    })
    .await
    .unwrap();
    token
}

/// Host network facts of a machine on `eth0` in `10.<net>.0.0/24` (gateway `.1`, this host
/// `.250`), for a master's planning.
pub fn lan_facts(net: u8) -> decnet_core::traits::MockHostNetwork {
    let mut hn = decnet_core::traits::MockHostNetwork::new();
    hn.expect_facts().returning(move |_| {
        Ok(decnet_core::traits::LocalNetFacts {
            interface: "eth0".into(),
            subnet: format!("10.{net}.0.0/24").parse().unwrap(),
            host_ip: std::net::Ipv4Addr::new(10, net, 0, 250),
            gateway: Some(std::net::Ipv4Addr::new(10, net, 0, 1)),
        })
    });
    hn.expect_interfaces().returning(|| Ok(vec![]));
    hn
}

// ---------------------------------------------------------------------------------------------
// A fake deployer (for the master's local deckies and for in-process agents)

/// A deployer that records what it was asked, fails the deckies named in `fail`, can be slowed
/// down or held behind a gate, keeps a runtime map (and, given a path, a worker state file) of
/// what it runs.
#[derive(Default)]
pub struct FakeDeployer {
    pub calls: Mutex<Vec<String>>,
    pub fail: Mutex<BTreeMap<String, String>>,
    pub delay: Mutex<Duration>,
    /// Deploys that have begun (before the delay), so a test knows the agent holds the work.
    pub started: std::sync::atomic::AtomicUsize,
    /// What it runs: decky → services, as its `runtime` reports them.
    pub running: Mutex<BTreeMap<String, Vec<String>>>,
    /// The worker state file it keeps, as the Docker deployer does (`None`: keeps none).
    pub state_path: Mutex<Option<PathBuf>>,
    /// When set, a deploy holds (after `started`) until the gate has a permit.
    pub gate: Mutex<Option<Arc<tokio::sync::Semaphore>>>,
}

#[async_trait::async_trait]
impl Deployer for FakeDeployer {
    async fn deploy(&self, desired: &DecnetConfig) -> Result<DeployReport, DeployerError> {
        self.started
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let gate = self.gate.lock().unwrap().clone();
        if let Some(gate) = gate {
            let _pass = gate.acquire().await;
        }
        let delay = *self.delay.lock().unwrap();
        tokio::time::sleep(delay).await;
        let names: Vec<String> = desired
            .deckies
            .iter()
            .map(|d| format!("{}:{}", d.name, d.services.join("+")))
            .collect();
        self.calls
            .lock()
            .unwrap()
            .push(format!("deploy {}", names.join(",")));
        let fail = self.fail.lock().unwrap().clone();
        let outcomes = desired
            .deckies
            .iter()
            .map(|d| {
                let o = match fail.get(d.name.as_str()) {
                    Some(r) => DeckyOutcome::Failed { reason: r.clone() },
                    None => DeckyOutcome::Succeeded,
                };
                (d.name.clone(), o)
            })
            .collect();
        if let Some(path) = self.state_path.lock().unwrap().as_ref() {
            let state = decnet_core::model::WorkerState {
                config: desired.clone(),
                compose_path: String::new(),
                rejected: vec![],
            };
            decnet_core::adapters::state_file::save(path, &state).unwrap();
        }
        let mut running = self.running.lock().unwrap();
        running.clear();
        for d in &desired.deckies {
            if !fail.contains_key(d.name.as_str()) {
                running.insert(d.name.to_string(), d.services.clone());
            }
        }
        Ok(DeployReport { outcomes })
    }
    async fn mutate(
        &self,
        decky: &DeckyName,
        services: &[String],
    ) -> Result<DeployReport, DeployerError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("mutate {decky}:{}", services.join("+")));
        self.running
            .lock()
            .unwrap()
            .insert(decky.to_string(), services.to_vec());
        Ok(DeployReport {
            outcomes: BTreeMap::from([(decky.clone(), DeckyOutcome::Succeeded)]),
        })
    }
    async fn teardown<'a>(
        &self,
        decky: Option<&'a DeckyName>,
    ) -> Result<DeployReport, DeployerError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("teardown {decky:?}"));
        match decky {
            Some(d) => self.running.lock().unwrap().remove(d.as_str()),
            None => {
                self.running.lock().unwrap().clear();
                None
            }
        };
        Ok(DeployReport {
            outcomes: decky
                .map(|d| (d.clone(), DeckyOutcome::Succeeded))
                .into_iter()
                .collect(),
        })
    }
    async fn runtime(&self) -> Result<RuntimeMap, DeployerError> {
        let running = self.running.lock().unwrap();
        Ok(running
            .iter()
            .map(|(name, services)| {
                let states = services
                    .iter()
                    .map(|s| (s.clone(), "running".to_string()))
                    .collect();
                (name.clone(), DeckyRuntime::from_services(states))
            })
            .collect())
    }
}

/// The path of another binary of this workspace's build (`decnet-agent`, `decnet-decky`),
/// next to the `decnet` binary under test.
pub fn target_bin(name: &str) -> PathBuf {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_decnet"));
    exe.parent().unwrap().join(name)
}

/// A loopback port free at the time of asking.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed (and reaped) when dropped.
#[derive(Debug)]
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the real `decnet` with `args`, logging at `log`, with no ambient data dir or store.
pub fn decnet_cmd(log: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_decnet"))
        .args(args)
        .env("DECNET_LOG", log)
        .env_remove("DECNET_DATA_DIR")
        .env_remove("DECNET_DB")
        .output()
        .expect("run decnet")
}

/// [`decnet_cmd`], which must succeed; its stdout.
pub fn decnet_ok(log: &str, args: &[&str]) -> String {
    let out = decnet_cmd(log, args);
    assert!(
        out.status.success(),
        "decnet {args:?}: {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

//! The master certificate's rollover, on the agent (issue 9, item 14): the agent asks the
//! master which certificate it presents and which successor it will present
//! (`POST /swarm/master-pins`, saying what it has pinned), pins the successor beside the
//! current one in `identity.json` and in the shared pin set every TLS client and the agent
//! API's verifier read, and once the master presents the successor, lets the old one go.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use decnet_core::model::wire::{MasterPinsAnswer, MasterPinsRequest};
use decnet_tls::pki::{normalize_fingerprint, Bundle};
use decnet_tls::verify::SharedPins;
use tokio::time::Instant;

use crate::paths::Identity;
use crate::transport::{pinned_master_client, REQUEST_TIMEOUT};

/// Default interval between checks (and one at start-up).
pub const DEFAULT_MASTER_PIN_CHECK: Duration = Duration::from_secs(3600);

/// What a check came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinChange {
    /// Nothing new.
    Unchanged,
    /// The master's successor is pinned beside its current certificate.
    SuccessorPinned { fingerprint: String },
    /// The master presents the successor: it is the only pin now.
    Promoted { fingerprint: String },
}

/// Keeps the agent's master pins in step with the master's rollover.
#[derive(Debug)]
pub struct MasterPinSync {
    agent_dir: PathBuf,
    url: String,
    pins: SharedPins,
    identity: Mutex<Identity>,
    every: Duration,
    last: Mutex<Option<Instant>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl MasterPinSync {
    /// Checks at most every `every` for the agent in `agent_dir`, updating `pins`.
    pub fn new(agent_dir: PathBuf, identity: Identity, pins: SharedPins, every: Duration) -> Self {
        Self {
            url: format!(
                "{}/swarm/master-pins",
                identity.master_url.trim_end_matches('/')
            ),
            agent_dir,
            pins,
            identity: Mutex::new(identity),
            every,
            last: Mutex::new(None),
        }
    }

    /// The identity as it stands.
    pub fn identity(&self) -> Identity {
        lock(&self.identity).clone()
    }

    async fn ask(&self, bundle: &Bundle, id: &Identity) -> Result<MasterPinsAnswer, String> {
        let client = pinned_master_client(bundle, &self.pins).map_err(|e| e.to_string())?;
        let resp = client
            .post(&self.url)
            .timeout(REQUEST_TIMEOUT)
            .json(&MasterPinsRequest {
                host_uuid: id.host_uuid,
                next_fingerprint: id.master_next_fingerprint.clone(),
            })
            .send()
            .await
            .map_err(|e| format!("{}: {e:#}", self.url))?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            return Err(format!("{}: {status} {body}", self.url));
        }
        resp.json().await.map_err(|e| format!("answer: {e:#}"))
    }

    fn save(&self, id: Identity) -> Result<(), String> {
        id.save(&self.agent_dir).map_err(|e| e.to_string())?;
        self.pins
            .set(&id.master_pins())
            .map_err(|e| e.to_string())?;
        *lock(&self.identity) = id;
        Ok(())
    }

    /// One check now: asks the master and applies what it says. A newly pinned successor is
    /// reported back at once, so the master learns it in the same check.
    pub async fn check(&self) -> Result<PinChange, String> {
        *lock(&self.last) = Some(Instant::now());
        let bundle = Bundle::load_worker_dir(&self.agent_dir).map_err(|e| e.to_string())?;
        let id = self.identity();
        let answer = self.ask(&bundle, &id).await?;
        let current =
            normalize_fingerprint(&answer.master_fingerprint).map_err(|e| e.to_string())?;
        let next = answer
            .next_fingerprint
            .as_deref()
            .map(normalize_fingerprint)
            .transpose()
            .map_err(|e| e.to_string())?;
        if current != id.master_fingerprint {
            if id.master_next_fingerprint.as_deref() != Some(current.as_str()) {
                // The TLS pins let only a pinned certificate through, so this is a master
                // answering for another: keep what is pinned.
                return Err(format!(
                    "the master says it presents {current}, which this agent never pinned"
                ));
            }
            let mut promoted = id;
            promoted.master_fingerprint = current.clone();
            promoted.master_next_fingerprint = next.filter(|n| *n != current);
            self.save(promoted)?;
            tracing::info!(fingerprint = %current, "the master presents its new certificate; the old one is no longer accepted");
            return Ok(PinChange::Promoted {
                fingerprint: current,
            });
        }
        if next == id.master_next_fingerprint {
            return Ok(PinChange::Unchanged);
        }
        let mut pinned = id;
        pinned.master_next_fingerprint = next.clone();
        self.save(pinned.clone())?;
        let Some(fingerprint) = next else {
            return Ok(PinChange::Unchanged);
        };
        tracing::info!(%fingerprint, "pinned the master certificate's successor");
        // Tell the master at once.
        self.ask(&bundle, &pinned).await?;
        Ok(PinChange::SuccessorPinned { fingerprint })
    }

    /// [`MasterPinSync::check`] when the interval has passed since the last one (or none was
    /// made), logging a failure.
    pub async fn check_when_due(&self) {
        let due = lock(&self.last).is_none_or(|t| t.elapsed() >= self.every);
        if due {
            if let Err(e) = self.check().await {
                tracing::warn!(error = %e, "master certificate pin check failed");
            }
        }
    }
}

#[async_trait::async_trait]
impl decnet_core::orchestrate::heartbeat::BeforeBeat for MasterPinSync {
    /// Checks when the interval has passed.
    async fn before_beat(&self) {
        self.check_when_due().await;
    }
}

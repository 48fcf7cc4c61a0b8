//! Worker certificate renewal (issue 9, item 14): before `worker.crt` expires, the agent makes
//! a new P-256 key and CSR, asks the master over the authenticated swarm channel
//! (`POST /swarm/renew`, presenting the current certificate), and replaces `worker.crt` and
//! `worker.key`. The new identity is used at once: the heartbeat transport and the agent API's
//! server certificate are reloaded through the hooks given to [`Renewer`].
//!
//! Files: the new key is written to `worker.key.next` (0600) before the request, the new
//! certificate to `worker.crt.next`; then `worker.crt.next` is renamed over `worker.crt` and
//! `worker.key.next` over `worker.key`. A crash between the two renames leaves a certificate
//! whose key is in `worker.key.next`: [`recover_pending`] (run before the bundle is loaded)
//! finishes the rename.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use decnet_core::model::wire::{RenewAnswer, RenewRequest};
use decnet_core::model::HostUuid;
use decnet_tls::pki::{
    cert_info, generate_key_and_csr, parse_cert_pem, write_file_atomic, write_private, Bundle,
    WORKER_CERT_FILE, WORKER_KEY_FILE,
};

use crate::paths::Identity;
use crate::transport::{pinned_master_client, REQUEST_TIMEOUT};
use decnet_tls::verify::SharedPins;

/// The new key, written before the request so that it is never lost with the answer.
pub const NEXT_KEY_FILE: &str = "worker.key.next";
/// The new certificate, renamed over `worker.crt` once written.
pub const NEXT_CERT_FILE: &str = "worker.crt.next";

/// Why a renewal check failed (the current certificate stays in use).
#[derive(Debug, thiserror::Error)]
pub enum RenewError {
    #[error("agent dir: {0}")]
    Files(#[from] decnet_tls::Error),
    #[error("renewal request to {url}: {reason}")]
    Request { url: String, reason: String },
    #[error("renewal refused by the master: {status} {body}")]
    Refused { status: u16, body: String },
    #[error("renewal answer: {0}")]
    Answer(String),
}

/// What a renewal check came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenewOutcome {
    /// More validity left than the threshold: nothing done.
    NotDue { not_after: SystemTime },
    /// A new certificate is in place (and in use).
    Renewed {
        not_after: SystemTime,
        fingerprint: String,
    },
}

/// Called with the new bundle once it is on disk (reload a client, a server certificate).
pub type RenewHook = Arc<dyn Fn(&Bundle) -> Result<(), String> + Send + Sync>;

/// Renews `worker.crt` when its remaining validity drops below a threshold.
pub struct Renewer {
    pub agent_dir: PathBuf,
    pub host_uuid: HostUuid,
    pub master_url: String,
    /// The master's pinned fingerprints (shared with the heartbeat client).
    pub pins: SharedPins,
    /// Renew when less than this is left; `None`: a third of the certificate's lifetime.
    pub renew_before: Option<Duration>,
    hooks: Vec<RenewHook>,
}

impl std::fmt::Debug for Renewer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renewer")
            .field("agent_dir", &self.agent_dir)
            .field("host_uuid", &self.host_uuid)
            .field("renew_before", &self.renew_before)
            .finish_non_exhaustive()
    }
}

impl Renewer {
    pub fn new(agent_dir: &Path, identity: &Identity, renew_before: Option<Duration>) -> Self {
        Self {
            agent_dir: agent_dir.to_path_buf(),
            host_uuid: identity.host_uuid,
            master_url: identity.master_url.trim_end_matches('/').to_string(),
            pins: SharedPins::new(&identity.master_pins()).unwrap_or_default(),
            renew_before,
            hooks: Vec::new(),
        }
    }

    /// Accepts the master by `pins` (the set the rest of the agent shares).
    pub fn with_pins(mut self, pins: SharedPins) -> Self {
        self.pins = pins;
        self
    }

    /// Runs `hook` with the new bundle after each renewal.
    pub fn on_renewed(mut self, hook: RenewHook) -> Self {
        self.hooks.push(hook);
        self
    }

    /// The threshold for a certificate valid from `not_before` to `not_after`.
    pub fn threshold(&self, not_before: SystemTime, not_after: SystemTime) -> Duration {
        self.renew_before.unwrap_or_else(|| {
            not_after
                .duration_since(not_before)
                .unwrap_or_default()
                .checked_div(3)
                .unwrap_or_default()
        })
    }

    /// Renews when `worker.crt` has less than the threshold left at `now`.
    pub async fn check(&self, now: SystemTime) -> Result<RenewOutcome, RenewError> {
        recover_pending(&self.agent_dir)?;
        let bundle = Bundle::load_worker_dir(&self.agent_dir)?;
        let info = cert_info(&parse_cert_pem(&bundle.cert_pem)?)?;
        let left = info.not_after.duration_since(now).unwrap_or_default();
        if left >= self.threshold(info.not_before, info.not_after) {
            return Ok(RenewOutcome::NotDue {
                not_after: info.not_after,
            });
        }
        tracing::info!(
            left_s = left.as_secs(),
            fingerprint = %info.fingerprint,
            "worker certificate due for renewal"
        );
        let (key_pem, csr_pem) = generate_key_and_csr("")?;
        write_private(&self.agent_dir.join(NEXT_KEY_FILE), key_pem.as_bytes())?;
        let url = format!("{}/swarm/renew", self.master_url);
        let request = |reason: String| RenewError::Request {
            url: url.clone(),
            reason,
        };
        let client =
            pinned_master_client(&bundle, &self.pins).map_err(|e| request(e.to_string()))?;
        let resp = client
            .post(&url)
            .timeout(REQUEST_TIMEOUT)
            .json(&RenewRequest {
                host_uuid: self.host_uuid,
                csr_pem,
            })
            .send()
            .await
            .map_err(|e| request(format!("{e:#}")))?;
        let status = resp.status().as_u16();
        let body = resp.text().await.map_err(|e| request(format!("{e:#}")))?;
        if status != 200 {
            return Err(RenewError::Refused { status, body });
        }
        let answer: RenewAnswer =
            serde_json::from_str(&body).map_err(|e| RenewError::Answer(e.to_string()))?;
        if parse_cert_pem(&answer.ca_pem)? != parse_cert_pem(&bundle.ca_pem)? {
            return Err(RenewError::Answer(
                "the master answered with another CA certificate than ca.crt".to_string(),
            ));
        }
        let next = Bundle {
            ca_pem: bundle.ca_pem.clone(),
            cert_pem: answer.cert_pem,
            key_pem,
        };
        // The certificate must be for the new key (and parse) before anything is replaced.
        decnet_tls::verify::ReloadableCert::new(&next)
            .map_err(|e| RenewError::Answer(format!("cert_pem: {e}")))?;
        let new_info = cert_info(&parse_cert_pem(&next.cert_pem)?)?;
        write_file_atomic(
            &self.agent_dir.join(NEXT_CERT_FILE),
            next.cert_pem.as_bytes(),
            0o644,
        )?;
        rename(
            &self.agent_dir.join(NEXT_CERT_FILE),
            &self.agent_dir.join(WORKER_CERT_FILE),
        )?;
        rename(
            &self.agent_dir.join(NEXT_KEY_FILE),
            &self.agent_dir.join(WORKER_KEY_FILE),
        )?;
        tracing::info!(fingerprint = %new_info.fingerprint, "worker certificate renewed");
        for hook in &self.hooks {
            if let Err(e) = hook(&next) {
                tracing::warn!(error = %e, "renewed certificate not taken up at once");
            }
        }
        Ok(RenewOutcome::Renewed {
            not_after: new_info.not_after,
            fingerprint: new_info.fingerprint,
        })
    }

    /// [`Renewer::check`], logging a failure (the heartbeat goes on with the current
    /// certificate; the next tick tries again).
    pub async fn check_logged(&self) {
        if let Err(e) = self.check(SystemTime::now()).await {
            tracing::warn!(error = %e, "worker certificate renewal failed");
        }
    }
}

#[async_trait::async_trait]
impl decnet_core::orchestrate::heartbeat::BeforeBeat for Renewer {
    /// Renews when due; the heartbeat then goes out with the new certificate.
    async fn before_beat(&self) {
        self.check_logged().await;
    }
}

fn rename(from: &Path, to: &Path) -> Result<(), decnet_tls::Error> {
    std::fs::rename(from, to).map_err(|source| decnet_tls::Error::Io {
        op: "rename",
        path: from.to_path_buf(),
        source,
    })
}

/// Finishes a renewal interrupted between its two renames: when `worker.key.next` is the key
/// of `worker.crt`, it becomes `worker.key`. A `worker.key.next` that is not (a request whose
/// answer never came) is left for the next renewal to overwrite.
pub fn recover_pending(agent_dir: &Path) -> Result<(), decnet_tls::Error> {
    let next_key = agent_dir.join(NEXT_KEY_FILE);
    let Ok(key_pem) = std::fs::read_to_string(&next_key) else {
        return Ok(());
    };
    let Ok(cert_pem) = std::fs::read_to_string(agent_dir.join(WORKER_CERT_FILE)) else {
        return Ok(());
    };
    let Ok(ca_pem) = std::fs::read_to_string(agent_dir.join(decnet_tls::pki::CA_FILE)) else {
        return Ok(());
    };
    let candidate = Bundle {
        ca_pem,
        cert_pem,
        key_pem,
    };
    if decnet_tls::verify::ReloadableCert::new(&candidate).is_ok() {
        tracing::warn!(
            "finishing an interrupted certificate renewal: worker.key.next becomes worker.key"
        );
        rename(&next_key, &agent_dir.join(WORKER_KEY_FILE))?;
    }
    Ok(())
}

//! `decnet-agent enroll`: the worker makes its own P-256 key and CSR (the key never leaves it),
//! presents the one-time token, and trusts the master only through the CA fingerprint the token
//! carries. Afterwards the agent dir holds `ca.crt`, `worker.crt`, `worker.key` (0600) and
//! `identity.json`, so a plain `serve` just works.

use std::path::Path;
use std::time::Duration;

use decnet_core::model::wire::{EnrollAnswer, EnrollRequest, ErrorBody};
use decnet_core::model::EnrollTokenText;
use decnet_tls::pki::{self, Bundle, WORKER_CERT_FILE, WORKER_KEY_FILE};
use decnet_tls::verify::enroll_client_config;

use crate::paths::Identity;

/// Why enrollment failed; every message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error("{0}")]
    Token(String),
    #[error("--master: {0}")]
    MasterUrl(String),
    #[error("cannot reach the master at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the master refused the enrollment ({status}): {detail}")]
    Refused { status: u16, detail: String },
    #[error("the master's answer is not trustworthy: {0}")]
    Untrusted(String),
    #[error("write the bundle: {0}")]
    Write(String),
}

impl EnrollError {
    /// Exit code: 2 for bad input, 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            EnrollError::Token(_) | EnrollError::MasterUrl(_) => 2,
            _ => 1,
        }
    }
}

/// Enrolls this worker with the master at `master_url` (`https://host:8770`) and writes the
/// bundle and identity into `agent_dir`.
pub async fn enroll(
    master_url: &str,
    token: &str,
    agent_dir: &Path,
) -> Result<Identity, EnrollError> {
    let token_text =
        EnrollTokenText::parse(token).map_err(|e| EnrollError::Token(e.to_string()))?;
    let base = master_url.trim().trim_end_matches('/').to_string();
    if !base.starts_with("https://") {
        return Err(EnrollError::MasterUrl(format!(
            "{base:?} must be an https:// URL (the swarm endpoint, e.g. https://master:8770)"
        )));
    }
    let hostname = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let (key_pem, csr_pem) = pki::generate_key_and_csr(hostname.trim())
        .map_err(|e| EnrollError::Write(e.to_string()))?;
    let tls = enroll_client_config(&token_text.ca_fingerprint)
        .map_err(|e| EnrollError::Token(e.to_string()))?;
    let client = reqwest::Client::builder()
        .use_preconfigured_tls((*tls).clone())
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| EnrollError::Unreachable {
            url: base.clone(),
            reason: e.to_string(),
        })?;
    let url = format!("{base}/swarm/enroll");
    let resp = client
        .post(&url)
        .json(&EnrollRequest {
            token: token_text.render(),
            csr_pem,
        })
        .send()
        .await
        .map_err(|e| EnrollError::Unreachable {
            url: url.clone(),
            reason: format!("{e:#}"),
        })?;
    let status = resp.status().as_u16();
    if status != 200 && status != 201 {
        let detail = resp
            .json::<ErrorBody>()
            .await
            .map(|b| b.detail)
            .unwrap_or_else(|_| "no detail".into());
        return Err(EnrollError::Refused { status, detail });
    }
    let answer: EnrollAnswer = resp
        .json()
        .await
        .map_err(|e| EnrollError::Untrusted(format!("malformed answer: {e}")))?;
    // The handshake proved the master holds a certificate of the token's CA; check the CA it
    // hands over is that same CA before trusting it for everything else.
    pki::check_fingerprint_pem(&answer.ca_pem, &token_text.ca_fingerprint)
        .map_err(|e| EnrollError::Untrusted(format!("ca_pem: {e}")))?;
    let bundle = Bundle {
        ca_pem: answer.ca_pem,
        cert_pem: answer.cert_pem,
        key_pem,
    };
    bundle
        .check()
        .map_err(|e| EnrollError::Untrusted(format!("cert_pem: {e}")))?;
    let master_fingerprint = pki::normalize_fingerprint(&answer.master_fingerprint)
        .map_err(|e| EnrollError::Untrusted(format!("master_fingerprint: {e}")))?;
    bundle
        .write_dir(agent_dir, WORKER_CERT_FILE, WORKER_KEY_FILE)
        .map_err(|e| EnrollError::Write(e.to_string()))?;
    let identity = Identity {
        host_uuid: answer.host_uuid,
        master_url: base,
        master_fingerprint,
        master_next_fingerprint: None,
    };
    identity
        .save(agent_dir)
        .map_err(|e| EnrollError::Write(e.to_string()))?;
    Ok(identity)
}

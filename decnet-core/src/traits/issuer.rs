//! `CertIssuer`: the certificate authority behind enrollment and renewal (PRODUCT §6). The
//! binaries use the rcgen CA of `decnet-swarm`; an embedder may bring its own PKI.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::agent::BoxError;

/// What a worker certificate is issued for: only the CSR's public key is used; every other
/// field is the master's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerCertRequest<'a> {
    /// The worker's CSR (PEM). Its subject and extensions are ignored.
    pub csr_pem: &'a str,
    /// The certificate's CN: the enrolled host's name.
    pub name: &'a str,
    /// The enrolled `host:port` address of its agent API; its host part is the SAN.
    pub address: &'a str,
    /// How long the certificate is valid (cut to the CA's own expiry).
    pub validity: Duration,
}

/// A worker certificate just issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedWorkerCert {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// Lowercase hex SHA-256 of its DER: the fingerprint the master pins.
    pub fingerprint: String,
    /// When it expires.
    pub not_after: DateTime<Utc>,
}

/// Why a certificate was not issued, by kind.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssueError {
    /// The CSR does not parse, is not self-signed by its key, or has an unusable key: the
    /// caller's fault (a 422 naming `csr_pem`).
    #[error("{message}")]
    BadCsr {
        /// What is wrong with it.
        message: String,
        /// The parser's error.
        #[source]
        source: Option<BoxError>,
    },
    /// The CA could not sign (its key, its own certificate): the master's fault.
    #[error("certificate issuance failed: {message}")]
    Failed {
        /// Why.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },
}

/// The CA that enrolls and renews workers, and the master identity agents pin.
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
pub trait CertIssuer: Send + Sync {
    /// Lowercase hex SHA-256 of the CA certificate's DER (enrollment tokens carry it).
    fn ca_fingerprint(&self) -> String;
    /// The CA certificate, PEM, handed to enrolled workers.
    fn ca_pem(&self) -> String;
    /// The fingerprint of the certificate the master presents now.
    fn master_fingerprint(&self) -> String;
    /// The fingerprint of its successor while a rollover is under way.
    fn next_master_fingerprint(&self) -> Option<String>;
    /// Signs a worker certificate for `req`.
    fn issue_worker<'a>(&self, req: &WorkerCertRequest<'a>)
        -> Result<IssuedWorkerCert, IssueError>;
}

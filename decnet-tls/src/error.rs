//! The crate's error type.

use std::path::PathBuf;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while building, loading or using DECNET's PKI.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Text that should hold a PEM item does not.
    #[error("invalid PEM ({what}): {reason}")]
    Pem {
        /// What was expected (`certificate`, `private key`, `certificate request`).
        what: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// A certificate that does not parse or does not fit its role.
    #[error("invalid certificate: {0}")]
    Certificate(String),
    /// A private key that does not parse or that the ring provider cannot use.
    #[error("invalid private key: {0}")]
    PrivateKey(String),
    /// A certificate signing request that does not parse.
    #[error("invalid certificate signing request: {0}")]
    Csr(String),
    /// The CSR's self-signature (proof of possession of the key) does not verify.
    #[error("certificate signing request signature does not verify")]
    CsrSignature,
    /// A public key that DECNET does not certify.
    #[error("unsupported public key: {0} (accepted: ECDSA P-256, RSA 2048..=8192 bits)")]
    UnsupportedKey(String),
    /// The CA's private key is not the key of the CA certificate.
    #[error("the CA private key does not match the CA certificate")]
    KeyMismatch,
    /// The certificate given as CA is not a CA certificate.
    #[error("not a CA certificate: {0}")]
    NotCa(String),
    /// A [`crate::pki::LeafSpec`] field that cannot be issued.
    #[error("invalid leaf spec: {field} = {value:?}: {rule}")]
    Spec {
        /// The field.
        field: &'static str,
        /// Its value.
        value: String,
        /// The rule it breaks.
        rule: &'static str,
    },
    /// A fingerprint that is not 64 hex digits.
    #[error(
        "invalid fingerprint {value:?}: expected 64 hex digits (SHA-256 of the certificate DER)"
    )]
    Fingerprint {
        /// The offending text.
        value: String,
    },
    /// A certificate whose fingerprint is not the expected one.
    #[error("fingerprint mismatch: expected {expected}, got {actual}")]
    FingerprintMismatch {
        /// The pinned fingerprint.
        expected: String,
        /// The certificate's fingerprint.
        actual: String,
    },
    /// A bundle directory without all of its files.
    #[error("no cert bundle in {}: missing {}", dir.display(), missing.join(", "))]
    MissingBundle {
        /// The directory searched.
        dir: PathBuf,
        /// The file names that are not there.
        missing: Vec<String>,
    },
    /// A file-system operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done (`read`, `write`, `create dir`, `rename`, …).
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// rcgen refused to build a certificate or CSR.
    #[error("certificate generation: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// rustls refused a configuration (e.g. a key that does not match its certificate).
    #[error("tls configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// A rustls verifier could not be built.
    #[error("tls verifier: {0}")]
    Verifier(String),
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

//! A certificate bundle: CA certificate, own certificate (chain), own private key.

use std::path::Path;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::{fingerprint, load_private_key, parse_cert_pem, parse_certs_pem, write_file_atomic};
use crate::error::{Error, Result};

/// The CA certificate's file name in a bundle directory.
pub const CA_FILE: &str = "ca.crt";
/// The agent's certificate file name.
pub const WORKER_CERT_FILE: &str = "worker.crt";
/// The agent's private key file name.
pub const WORKER_KEY_FILE: &str = "worker.key";

/// A CA certificate plus one identity (certificate and key), all PEM. The original's layout
/// (`ca.crt`, `worker.crt`, `worker.key`; RSA or ECDSA keys in PKCS#8, PKCS#1 or SEC1) loads as
/// is.
#[derive(Clone, PartialEq, Eq)]
pub struct Bundle {
    /// The CA certificate.
    pub ca_pem: String,
    /// The identity's certificate (leaf first; intermediates may follow).
    pub cert_pem: String,
    /// The identity's private key.
    pub key_pem: String,
}

impl std::fmt::Debug for Bundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bundle")
            .field("fingerprint", &self.fingerprint().ok())
            .field("ca_fingerprint", &self.ca_fingerprint().ok())
            .field("key_pem", &"[elided]")
            .finish()
    }
}

impl Bundle {
    /// Reads `dir/ca.crt`, `dir/<cert_name>` and `dir/<key_name>` and checks that each parses.
    /// When files are missing the error is [`Error::MissingBundle`] naming all of them (its
    /// message starts with `no cert bundle`).
    pub fn load_dir(dir: &Path, cert_name: &str, key_name: &str) -> Result<Bundle> {
        let names = [CA_FILE, cert_name, key_name];
        let mut missing = Vec::new();
        for name in names {
            let path = dir.join(name);
            match std::fs::metadata(&path) {
                Ok(m) if m.is_file() => {}
                Ok(_) => missing.push(name.to_owned()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => missing.push(name.to_owned()),
                Err(e) => return Err(Error::io("stat", path, e)),
            }
        }
        if !missing.is_empty() {
            return Err(Error::MissingBundle {
                dir: dir.to_path_buf(),
                missing,
            });
        }
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(|e| Error::io("read", path, e))
        };
        let bundle = Bundle {
            ca_pem: read(CA_FILE)?,
            cert_pem: read(cert_name)?,
            key_pem: read(key_name)?,
        };
        bundle.check()?;
        Ok(bundle)
    }

    /// [`Bundle::load_dir`] with the agent's names: `ca.crt`, `worker.crt`, `worker.key`.
    pub fn load_worker_dir(dir: &Path) -> Result<Bundle> {
        Self::load_dir(dir, WORKER_CERT_FILE, WORKER_KEY_FILE)
    }

    /// Writes the bundle into `dir` (created 0700 when missing): `ca.crt` and `<cert_name>`
    /// 0644, `<key_name>` 0600, each atomically. The key is written last.
    pub fn write_dir(&self, dir: &Path, cert_name: &str, key_name: &str) -> Result<()> {
        write_file_atomic(&dir.join(CA_FILE), self.ca_pem.as_bytes(), 0o644)?;
        write_file_atomic(&dir.join(cert_name), self.cert_pem.as_bytes(), 0o644)?;
        write_file_atomic(&dir.join(key_name), self.key_pem.as_bytes(), 0o600)
    }

    /// Checks that the CA certificate, the certificate chain and the key all parse. (Whether
    /// the key matches the certificate is checked by rustls when a config is built.)
    pub fn check(&self) -> Result<()> {
        self.ca_der()?;
        self.cert_chain()?;
        self.private_key()?;
        Ok(())
    }

    /// The CA certificate, DER.
    pub fn ca_der(&self) -> Result<CertificateDer<'static>> {
        parse_cert_pem(&self.ca_pem)
    }

    /// The identity's certificates, leaf first.
    pub fn cert_chain(&self) -> Result<Vec<CertificateDer<'static>>> {
        parse_certs_pem(&self.cert_pem)
    }

    /// The identity's private key.
    pub fn private_key(&self) -> Result<PrivateKeyDer<'static>> {
        load_private_key(&self.key_pem)
    }

    /// The identity certificate's fingerprint.
    pub fn fingerprint(&self) -> Result<String> {
        Ok(fingerprint(&parse_cert_pem(&self.cert_pem)?))
    }

    /// The CA certificate's fingerprint.
    pub fn ca_fingerprint(&self) -> Result<String> {
        Ok(fingerprint(&self.ca_der()?))
    }
}

//! DECNET's PKI: the CA, leaf issuance from CSRs, fingerprints, key loading and bundles.
//!
//! Formats: certificates, CSRs and keys travel as PEM. Private keys are read in PKCS#8
//! (`PRIVATE KEY`), PKCS#1 (`RSA PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`), the forms found in the
//! original DECNET's bundles; keys made here are P-256, written as PKCS#8.

mod bundle;
mod ca;
mod files;

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use x509_parser::extensions::GeneralName;

use crate::error::{Error, Result};

pub use bundle::{Bundle, CA_FILE, WORKER_CERT_FILE, WORKER_KEY_FILE};
pub use ca::{generate_key_and_csr, Ca, IssuedCert, IssuedKeyPair};
pub use files::{write_file_atomic, write_private};

/// The CN of the master's certificate; agents accept commands only from it.
pub const MASTER_CN: &str = "decnet-master";
/// Validity of a CA made by [`Ca::generate`] (10 years).
pub const CA_VALIDITY: Duration = Duration::from_secs(3650 * 86_400);
/// Validity of a worker certificate (1 year, PRODUCT §6).
pub const WORKER_CERT_VALIDITY: Duration = Duration::from_secs(365 * 86_400);
/// Validity of the master's certificate (5 years). Agents pin its fingerprint at enrollment, so
/// re-issuing it means re-pinning every agent: it is long-lived, but ends before the CA.
pub const MASTER_CERT_VALIDITY: Duration = Duration::from_secs(5 * 365 * 86_400);
/// How far `notBefore` is set in the past by default, for clock skew between hosts.
pub const BACKDATE: Duration = Duration::from_secs(5 * 60);

/// A subjectAltName entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum San {
    /// A DNS name.
    Dns(String),
    /// An IP address.
    Ip(IpAddr),
}

impl San {
    /// An IP entry when `s` parses as an IP address, else a DNS entry (the original's rule).
    pub fn parse(s: &str) -> San {
        match s.parse::<IpAddr>() {
            Ok(ip) => San::Ip(ip),
            Err(_) => San::Dns(s.to_owned()),
        }
    }
}

impl From<IpAddr> for San {
    fn from(ip: IpAddr) -> Self {
        San::Ip(ip)
    }
}

impl std::fmt::Display for San {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            San::Dns(d) => write!(f, "DNS:{d}"),
            San::Ip(ip) => write!(f, "IP:{ip}"),
        }
    }
}

/// What the signer puts in a leaf certificate. Nothing else reaches the certificate: a CSR only
/// contributes its public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeafSpec {
    /// The subject's CN (and the subject's only attribute).
    pub cn: String,
    /// The subjectAltName entries (may be empty).
    pub sans: Vec<San>,
    /// Adds the clientAuth EKU.
    pub client_auth: bool,
    /// Adds the serverAuth EKU.
    pub server_auth: bool,
    /// `notAfter - notBefore` (clamped so the leaf never outlives its CA).
    pub validity: Duration,
    /// `notBefore`; `None` means now − [`BACKDATE`]. Tests set it in the past to make expired
    /// certificates.
    pub not_before: Option<SystemTime>,
}

impl LeafSpec {
    /// A worker certificate: CN = host name, the given SANs, client + server auth, 1 year.
    pub fn worker(name: &str, sans: Vec<San>) -> Self {
        Self {
            cn: name.to_owned(),
            sans,
            client_auth: true,
            server_auth: true,
            validity: WORKER_CERT_VALIDITY,
            not_before: None,
        }
    }

    /// The master's certificate: CN [`MASTER_CN`], SAN `DNS:decnet-master` plus `extra_sans`,
    /// client auth (to agents) + server auth (swarm endpoint), [`MASTER_CERT_VALIDITY`].
    pub fn master(extra_sans: Vec<San>) -> Self {
        let mut sans = vec![San::Dns(MASTER_CN.to_owned())];
        for san in extra_sans {
            if !sans.contains(&san) {
                sans.push(san);
            }
        }
        Self {
            cn: MASTER_CN.to_owned(),
            sans,
            client_auth: true,
            server_auth: true,
            validity: MASTER_CERT_VALIDITY,
            not_before: None,
        }
    }
}

/// Lowercase hex SHA-256 of a certificate's DER (64 characters): DECNET's certificate
/// fingerprint, wire-compatible with the original.
pub fn fingerprint(cert_der: &[u8]) -> String {
    hex(&Sha256::digest(cert_der))
}

/// [`fingerprint`] of the first certificate in `pem`.
pub fn fingerprint_pem(pem: &str) -> Result<String> {
    Ok(fingerprint(&parse_cert_pem(pem)?))
}

/// Checks and normalises a fingerprint: 64 hex digits, any case, optional `:` separators
/// (as OpenSSL prints them). Returns lowercase hex without separators.
pub fn normalize_fingerprint(s: &str) -> Result<String> {
    let out: String = s
        .trim()
        .chars()
        .filter(|c| *c != ':')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if out.len() == 64 && out.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(out)
    } else {
        Err(Error::Fingerprint {
            value: s.to_owned(),
        })
    }
}

/// Errors unless the first certificate in `cert_pem` has fingerprint `expected` (any form
/// [`normalize_fingerprint`] accepts). The worker uses it on the `ca_pem` the master returns at
/// enrollment, against the CA fingerprint carried by the token.
pub fn check_fingerprint_pem(cert_pem: &str, expected: &str) -> Result<()> {
    let expected = normalize_fingerprint(expected)?;
    let actual = fingerprint_pem(cert_pem)?;
    if actual == expected {
        Ok(())
    } else {
        Err(Error::FingerprintMismatch { expected, actual })
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// The first certificate of a PEM text.
pub fn parse_cert_pem(pem: &str) -> Result<CertificateDer<'static>> {
    CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| Error::Pem {
        what: "certificate",
        reason: e.to_string(),
    })
}

/// Every certificate of a PEM text, in order (at least one).
pub fn parse_certs_pem(pem: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Pem {
            what: "certificate",
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(Error::Pem {
            what: "certificate",
            reason: "no CERTIFICATE section".to_owned(),
        });
    }
    Ok(certs)
}

/// Loads the first private key of a PEM text: PKCS#8 (`PRIVATE KEY`), PKCS#1
/// (`RSA PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`). The key must be usable by the ring provider
/// (RSA 2048..=8192, ECDSA P-256/P-384, Ed25519); encrypted keys are not supported.
pub fn load_private_key(pem: &str) -> Result<PrivateKeyDer<'static>> {
    let key = PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| Error::Pem {
        what: "private key",
        reason: format!(
            "{e} (expected an unencrypted PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)"
        ),
    })?;
    rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| Error::PrivateKey(e.to_string()))?;
    Ok(key)
}

/// What DECNET reads from a certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertInfo {
    /// The subject's CN when it has exactly one (see [`cert_cn`]).
    pub cn: Option<String>,
    /// [`fingerprint`] of the DER.
    pub fingerprint: String,
    /// `notBefore`.
    pub not_before: SystemTime,
    /// `notAfter`.
    pub not_after: SystemTime,
    /// basicConstraints CA:true.
    pub is_ca: bool,
    /// DNS and IP subjectAltName entries (others are skipped).
    pub sans: Vec<San>,
}

/// Parses a certificate's DER into [`CertInfo`].
pub fn cert_info(der: &[u8]) -> Result<CertInfo> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| Error::Certificate(e.to_string()))?;
    let validity = cert.validity();
    let is_ca = cert
        .basic_constraints()
        .map_err(|e| Error::Certificate(e.to_string()))?
        .is_some_and(|bc| bc.value.ca);
    let mut sans = Vec::new();
    if let Some(ext) = cert
        .subject_alternative_name()
        .map_err(|e| Error::Certificate(e.to_string()))?
    {
        for name in &ext.value.general_names {
            match name {
                GeneralName::DNSName(d) => sans.push(San::Dns((*d).to_owned())),
                GeneralName::IPAddress(b) => {
                    if let Some(ip) = ip_from_bytes(b) {
                        sans.push(San::Ip(ip));
                    }
                }
                _ => {}
            }
        }
    }
    Ok(CertInfo {
        cn: cn_of(&cert),
        fingerprint: fingerprint(der),
        not_before: SystemTime::from(validity.not_before.to_datetime()),
        not_after: SystemTime::from(validity.not_after.to_datetime()),
        is_ca,
        sans,
    })
}

fn ip_from_bytes(b: &[u8]) -> Option<IpAddr> {
    if let Ok(v4) = <[u8; 4]>::try_from(b) {
        Some(IpAddr::from(v4))
    } else if let Ok(v6) = <[u8; 16]>::try_from(b) {
        Some(IpAddr::from(v6))
    } else {
        None
    }
}

/// The subject CN of a certificate (DER). `None` when the certificate does not parse or its
/// subject has no CN or more than one: an identity check must not pick one of several.
pub fn cert_cn(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    cn_of(&cert)
}

fn cn_of(cert: &x509_parser::certificate::X509Certificate<'_>) -> Option<String> {
    let mut cns = cert.subject().iter_common_name();
    let first = cns.next()?;
    if cns.next().is_some() {
        return None;
    }
    first.as_str().ok().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_normalise() {
        let fp = fingerprint(b"x");
        assert_eq!(fp.len(), 64);
        assert!(fp
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        let colons = fp
            .to_uppercase()
            .as_bytes()
            .chunks(2)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join(":");
        assert_eq!(normalize_fingerprint(&colons).unwrap(), fp);
        assert!(normalize_fingerprint("abc").is_err());
        assert!(normalize_fingerprint(&"g".repeat(64)).is_err());
    }

    #[test]
    fn san_parse_follows_the_original() {
        assert_eq!(San::parse("10.0.0.5"), San::Ip("10.0.0.5".parse().unwrap()));
        assert_eq!(San::parse("::1"), San::Ip("::1".parse().unwrap()));
        assert_eq!(San::parse("worker-1"), San::Dns("worker-1".to_owned()));
    }

    #[test]
    fn master_spec_has_its_name_once() {
        let spec = LeafSpec::master(vec![San::parse("decnet-master"), San::parse("127.0.0.1")]);
        assert_eq!(spec.cn, MASTER_CN);
        assert_eq!(
            spec.sans,
            vec![San::parse("decnet-master"), San::parse("127.0.0.1")]
        );
    }
}

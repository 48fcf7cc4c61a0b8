//! The `decnet-tls` CA as a [`CertIssuer`].

use decnet_core::traits::{CertIssuer, IssueError, IssuedWorkerCert, WorkerCertRequest};
use decnet_tls::pki::{cert_info, parse_cert_pem, Ca, LeafSpec, San};

/// The SAN of a worker's certificate: the host part of its enrolled `host:port` address (an
/// IP entry for an address, else a DNS name; brackets of an IPv6 literal dropped).
///
/// ```
/// use decnet_swarm::address_san;
/// use decnet_tls::pki::San;
/// assert_eq!(address_san("10.0.0.5:8765"), San::Ip("10.0.0.5".parse().unwrap()));
/// assert_eq!(address_san("[fd00::5]:8765"), San::Ip("fd00::5".parse().unwrap()));
/// assert_eq!(address_san("worker-1.lan:8765"), San::Dns("worker-1.lan".into()));
/// ```
pub fn address_san(address: &str) -> San {
    let host_part = address
        .rsplit_once(':')
        .map_or(address, |(h, _)| h)
        .trim_matches(|c| c == '[' || c == ']');
    San::parse(host_part)
}

/// Signs the CSR's public key, and nothing else from it, with `ca`: CN `req.name`, SAN from
/// `req.address`, client and server auth, `req.validity` (cut to the CA's expiry).
pub fn issue_worker(ca: &Ca, req: &WorkerCertRequest<'_>) -> Result<IssuedWorkerCert, IssueError> {
    let spec = LeafSpec {
        validity: req.validity,
        ..LeafSpec::worker(req.name, vec![address_san(req.address)])
    };
    let issued = ca
        .issue_from_csr(req.csr_pem, &spec)
        .map_err(|e| IssueError::BadCsr {
            message: e.to_string(),
            source: Some(Box::new(e)),
        })?;
    let info = parse_cert_pem(&issued.cert_pem)
        .and_then(|der| cert_info(&der))
        .map_err(|e| IssueError::Failed {
            message: format!("the issued certificate does not parse: {e}"),
            source: Some(Box::new(e)),
        })?;
    Ok(IssuedWorkerCert {
        cert_pem: issued.cert_pem,
        fingerprint: issued.fingerprint,
        not_after: info.not_after.into(),
    })
}

/// A [`CertIssuer`] over one CA and a fixed master identity: what an embedded master uses
/// when it does not roll its certificate over.
pub struct CaIssuer {
    ca: Ca,
    master_fingerprint: String,
}

impl std::fmt::Debug for CaIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaIssuer")
            .field("ca_fingerprint", &self.ca.fingerprint())
            .field("master_fingerprint", &self.master_fingerprint)
            .finish_non_exhaustive()
    }
}

impl CaIssuer {
    /// Issues with `ca`; agents pin `master_fingerprint` (the certificate the master presents).
    pub fn new(ca: Ca, master_fingerprint: impl Into<String>) -> Self {
        Self {
            ca,
            master_fingerprint: master_fingerprint.into(),
        }
    }

    /// The CA it signs with.
    pub fn ca(&self) -> &Ca {
        &self.ca
    }
}

impl CertIssuer for CaIssuer {
    fn ca_fingerprint(&self) -> String {
        self.ca.fingerprint().to_string()
    }

    fn ca_pem(&self) -> String {
        self.ca.cert_pem().to_string()
    }

    fn master_fingerprint(&self) -> String {
        self.master_fingerprint.clone()
    }

    fn next_master_fingerprint(&self) -> Option<String> {
        None
    }

    fn issue_worker(&self, req: &WorkerCertRequest<'_>) -> Result<IssuedWorkerCert, IssueError> {
        issue_worker(&self.ca, req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn issues_from_the_csr_key_with_the_masters_fields() {
        let ca = Ca::generate("DECNET test CA").unwrap();
        let issuer = CaIssuer::new(ca, "ab".repeat(32));
        let (_key, csr) = decnet_tls::pki::generate_key_and_csr("evil-cn").unwrap();
        let issued = issuer
            .issue_worker(&WorkerCertRequest {
                csr_pem: &csr,
                name: "worker-1",
                address: "10.0.0.5:8765",
                validity: Duration::from_secs(3600),
            })
            .unwrap();
        let info = cert_info(&parse_cert_pem(&issued.cert_pem).unwrap()).unwrap();
        assert_eq!(info.fingerprint, issued.fingerprint);
        let left = issued.not_after - chrono::Utc::now();
        assert!(left <= chrono::Duration::hours(1) && left > chrono::Duration::minutes(50));
        let bad = issuer
            .issue_worker(&WorkerCertRequest {
                csr_pem: "not a csr",
                name: "worker-1",
                address: "10.0.0.5:8765",
                validity: Duration::from_secs(3600),
            })
            .unwrap_err();
        assert!(matches!(bad, IssueError::BadCsr { .. }), "{bad:?}");
        assert_eq!(issuer.next_master_fingerprint(), None);
    }
}

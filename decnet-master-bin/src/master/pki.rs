//! The master's certificates: the CA that signs workers, and the master's own certificate
//! (CN `decnet-master`) used as the swarm endpoint's server identity, the operator API's HTTPS
//! identity, and the client identity towards agents.

use std::path::Path;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, SystemTime};

use decnet_core::traits::{CertIssuer, IssueError, IssuedWorkerCert, WorkerCertRequest};
use decnet_swarm::PinnedAgents;
use decnet_tls::pki::{
    cert_info, parse_cert_pem, write_file_atomic, write_private, Bundle, Ca, LeafSpec, San,
};
use decnet_tls::rustls::ServerConfig;
use decnet_tls::verify::{
    reloadable_server_config, server_config, ClientAuth, PeerPolicy, ReloadableCert,
};

use super::layout::DataDir;

/// The operator API certificate's SANs: those of the master certificate (host name,
/// loopback) and the address the API is bound to, unless it is the unspecified address.
pub fn api_sans(bind: std::net::IpAddr) -> Vec<San> {
    let mut sans = crate::commands::init::master_sans(crate::commands::init::hostname_san());
    if !bind.is_unspecified() && !sans.contains(&San::Ip(bind)) {
        sans.push(San::Ip(bind));
    }
    sans
}

/// One master certificate with what is derived from it.
#[derive(Debug, Clone)]
struct MasterCert {
    bundle: Bundle,
    fingerprint: String,
    not_before: SystemTime,
    not_after: SystemTime,
}

impl MasterCert {
    fn of(bundle: Bundle) -> Result<Self, String> {
        bundle.check().map_err(|e| e.to_string())?;
        // The key must be the certificate's (a torn promotion can leave them apart).
        ReloadableCert::new(&bundle).map_err(|e| e.to_string())?;
        let info = cert_info(&parse_cert_pem(&bundle.cert_pem).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
        Ok(Self {
            fingerprint: info.fingerprint,
            not_before: info.not_before,
            not_after: info.not_after,
            bundle,
        })
    }

    fn load(ca_pem: &str, cert: &Path, key: &Path) -> Result<Self, String> {
        Self::of(Bundle {
            ca_pem: ca_pem.to_string(),
            cert_pem: read(cert)?,
            key_pem: read(key)?,
        })
    }
}

/// What [`MasterPki::roll`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Roll {
    /// A successor certificate was issued (`master.next.crt`); workers are told to pin it.
    Issued { fingerprint: String },
    /// The successor is now the master certificate: served, presented to agents, on disk.
    Promoted { fingerprint: String },
}

/// The master's PKI: the CA, the master certificate and, during a rollover, its successor.
/// The swarm endpoint serves the current certificate through a [`ReloadableCert`], so a
/// promotion takes effect without a restart.
pub struct MasterPki {
    pub ca: Ca,
    pub ca_fingerprint: String,
    ca_pem: String,
    layout: DataDir,
    current: RwLock<MasterCert>,
    next: RwLock<Option<MasterCert>>,
    served: Arc<ReloadableCert>,
    /// The clients towards agents, presenting the current master certificate.
    agents: Arc<PinnedAgents>,
}

impl std::fmt::Debug for MasterPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterPki")
            .field("fingerprint", &self.fingerprint())
            .field("next", &self.next_fingerprint())
            .field("ca_fingerprint", &self.ca_fingerprint)
            .finish_non_exhaustive()
    }
}

fn read(path: &std::path::Path) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map_err(|e| format!("{}: {e} (run `decnet init` first)", path.display()))
}

fn rename(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::rename(from, to).map_err(|e| format!("rename {}: {e}", from.display()))
}

impl MasterPki {
    /// Loads the CA and the master certificate (and a successor a rollover left, which is
    /// promoted at once when the current certificate has expired).
    pub fn load(layout: &DataDir) -> Result<Self, String> {
        let ca_pem = read(&layout.ca_cert())?;
        let ca_key = read(&layout.ca_key())?;
        let ca = Ca::load(&ca_pem, &ca_key).map_err(|e| format!("ca: {e}"))?;
        let current = match MasterCert::load(&ca_pem, &layout.master_cert(), &layout.master_key()) {
            Ok(c) => c,
            // A promotion interrupted between its two renames left the successor's key as
            // master.key and its certificate as master.next.crt: finish it.
            Err(e) => {
                match MasterCert::load(&ca_pem, &layout.master_next_cert(), &layout.master_key()) {
                    Ok(c) => {
                        tracing::warn!("finishing an interrupted master certificate promotion");
                        rename(&layout.master_next_cert(), &layout.master_cert())?;
                        c
                    }
                    Err(_) => return Err(format!("master certificate: {e}")),
                }
            }
        };
        let next = if layout.master_next_cert().exists() {
            match MasterCert::load(
                &ca_pem,
                &layout.master_next_cert(),
                &layout.master_next_key(),
            ) {
                Ok(n) => Some(n),
                Err(e) => {
                    tracing::warn!(error = %e, "the successor master certificate is unusable; a new one will be issued");
                    None
                }
            }
        } else {
            None
        };
        let served = ReloadableCert::new(&current.bundle).map_err(|e| e.to_string())?;
        let agents =
            Arc::new(PinnedAgents::new(current.bundle.clone()).map_err(|e| e.to_string())?);
        let pki = Self {
            ca_fingerprint: ca.fingerprint().to_string(),
            ca,
            ca_pem,
            layout: layout.clone(),
            current: RwLock::new(current),
            next: RwLock::new(next),
            served,
            agents,
        };
        let expired = read_lock(&pki.current).not_after <= SystemTime::now();
        if expired && read_lock(&pki.next).is_some() {
            pki.promote()?;
        }
        Ok(pki)
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The master certificate's fingerprint (the one agents pinned at enrollment, or the
    /// successor they were told to pin once it was promoted).
    pub fn fingerprint(&self) -> String {
        read_lock(&self.current).fingerprint.clone()
    }

    /// The successor's fingerprint while a rollover is under way.
    pub fn next_fingerprint(&self) -> Option<String> {
        read_lock(&self.next)
            .as_ref()
            .map(|n| n.fingerprint.clone())
    }

    /// When the CA expires (no leaf outlives it; replacing it means a new PKI).
    pub fn ca_not_after(&self) -> SystemTime {
        cert_info(self.ca.cert_der())
            .map(|i| i.not_after)
            .unwrap_or(SystemTime::UNIX_EPOCH)
    }

    /// When the master certificate expires.
    pub fn not_after(&self) -> SystemTime {
        read_lock(&self.current).not_after
    }

    /// One rollover step at `now` (run at start-up and periodically):
    ///
    /// - with less than `renew_before` left (default a third of the certificate's lifetime)
    ///   and no successor, a successor is issued by the CA with the same names and lifetime
    ///   and written to `master.next.crt`/`master.next.key` (0600);
    /// - a successor is promoted once `all_pinned(successor)` says every worker pinned it,
    ///   or when less than half of `renew_before` is left (workers that never pinned it must
    ///   then be enrolled again).
    pub fn roll(
        &self,
        now: SystemTime,
        renew_before: Option<Duration>,
        all_pinned: impl FnOnce(&str) -> bool,
    ) -> Result<Option<Roll>, String> {
        let (left, lifetime, sans) = {
            let c = read_lock(&self.current);
            let info = cert_info(&parse_cert_pem(&c.bundle.cert_pem).map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
            (
                c.not_after.duration_since(now).unwrap_or_default(),
                c.not_after.duration_since(c.not_before).unwrap_or_default(),
                info.sans,
            )
        };
        let threshold = renew_before.unwrap_or(lifetime / 3);
        let next = self.next_fingerprint();
        match next {
            None if left < threshold => {
                let mut spec = LeafSpec::master(sans);
                spec.validity = lifetime;
                let issued = self
                    .ca
                    .issue_keypair(&spec)
                    .map_err(|e| format!("successor master certificate: {e}"))?;
                let bundle = Bundle {
                    ca_pem: self.ca_pem.clone(),
                    cert_pem: issued.cert_pem,
                    key_pem: issued.key_pem,
                };
                let cert = MasterCert::of(bundle)?;
                write_private(
                    &self.layout.master_next_key(),
                    cert.bundle.key_pem.as_bytes(),
                )
                .map_err(|e| e.to_string())?;
                write_file_atomic(
                    &self.layout.master_next_cert(),
                    cert.bundle.cert_pem.as_bytes(),
                    0o644,
                )
                .map_err(|e| e.to_string())?;
                let fingerprint = cert.fingerprint.clone();
                *write_lock(&self.next) = Some(cert);
                Ok(Some(Roll::Issued { fingerprint }))
            }
            Some(fp) if all_pinned(&fp) || left < threshold / 2 => {
                self.promote()?;
                Ok(Some(Roll::Promoted { fingerprint: fp }))
            }
            _ => Ok(None),
        }
    }

    /// The successor becomes the master certificate: on disk (key first), in the swarm
    /// endpoint's TLS and in every client towards agents.
    fn promote(&self) -> Result<(), String> {
        let Some(next) = write_lock(&self.next).take() else {
            return Ok(());
        };
        rename(&self.layout.master_next_key(), &self.layout.master_key())?;
        rename(&self.layout.master_next_cert(), &self.layout.master_cert())?;
        self.served
            .replace(&next.bundle)
            .map_err(|e| e.to_string())?;
        self.agents.set_identity(next.bundle.clone());
        *write_lock(&self.current) = next;
        Ok(())
    }

    fn policy(&self) -> Result<PeerPolicy, String> {
        PeerPolicy::from_ca_pem(&self.ca_pem).map_err(|e| e.to_string())
    }

    /// The swarm endpoint: a client certificate is asked for but optional at the TLS layer
    /// (only `/swarm/enroll` may go without one); any presented one must chain to the CA.
    /// It serves the current master certificate, whichever that is after a rollover.
    pub fn swarm_tls(&self) -> Result<Arc<ServerConfig>, String> {
        reloadable_server_config(self.served.clone(), &self.policy()?, ClientAuth::Optional)
            .map_err(|e| e.to_string())
    }

    /// The operator API over HTTPS (when not on loopback): bearer tokens authenticate. Its
    /// certificate is issued by the CA at start-up for the address the API is bound to (the
    /// master certificate, made by `decnet init` before any `--api-bind` was known, names only
    /// the host name and loopback; clients check the name they dial). Its key lives in memory
    /// only; the pinned master certificate stays the swarm identity.
    pub fn api_tls(&self, bind: std::net::SocketAddr) -> Result<Arc<ServerConfig>, String> {
        let issued = self
            .ca
            .issue_keypair(&LeafSpec::master(api_sans(bind.ip())))
            .map_err(|e| format!("operator API certificate: {e}"))?;
        let bundle = Bundle {
            ca_pem: self.ca_pem.clone(),
            cert_pem: issued.cert_pem,
            key_pem: issued.key_pem,
        };
        server_config(&bundle, &self.policy()?, ClientAuth::Optional).map_err(|e| e.to_string())
    }

    /// The mTLS clients towards agents (an [`decnet_core::traits::AgentConnector`]): the
    /// master's current certificate as identity, each agent verified by CA, its name as CN and
    /// its pinned fingerprint — never by hostname.
    pub fn agents(&self) -> Arc<PinnedAgents> {
        self.agents.clone()
    }
}

/// Enrollment and renewal sign with the CA; agents pin the current master certificate and,
/// during a rollover, its successor.
impl CertIssuer for MasterPki {
    fn ca_fingerprint(&self) -> String {
        self.ca_fingerprint.clone()
    }

    fn ca_pem(&self) -> String {
        self.ca_pem.clone()
    }

    fn master_fingerprint(&self) -> String {
        self.fingerprint()
    }

    fn next_master_fingerprint(&self) -> Option<String> {
        self.next_fingerprint()
    }

    fn issue_worker(&self, req: &WorkerCertRequest<'_>) -> Result<IssuedWorkerCert, IssueError> {
        decnet_swarm::issue_worker(&self.ca, req)
    }
}

fn read_lock<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn write_lock<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

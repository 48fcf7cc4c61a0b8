//! The master's certificates: the CA that signs workers, and the master's own certificate
//! (CN `decnet-master`) used as the swarm endpoint's server identity, the operator API's HTTPS
//! identity, and the client identity towards agents.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use decnet_core::model::{Host, HostUuid};
use decnet_tls::pki::{Bundle, Ca, LeafSpec, San};
use decnet_tls::rustls::ServerConfig;
use decnet_tls::verify::{client_config, server_config, ClientAuth, PeerPolicy};

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

/// Loaded once at start-up.
pub struct MasterPki {
    pub ca: Ca,
    /// CA + master certificate + master key.
    pub bundle: Bundle,
    pub fingerprint: String,
    pub ca_fingerprint: String,
    /// Per host: the pins the client was built with, and the client.
    clients: Mutex<HashMap<HostUuid, (Vec<String>, reqwest::Client)>>,
}

impl std::fmt::Debug for MasterPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterPki")
            .field("fingerprint", &self.fingerprint)
            .field("ca_fingerprint", &self.ca_fingerprint)
            .finish_non_exhaustive()
    }
}

fn read(path: &std::path::Path) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map_err(|e| format!("{}: {e} (run `decnet init` first)", path.display()))
}

impl MasterPki {
    pub fn load(layout: &DataDir) -> Result<Self, String> {
        let ca_pem = read(&layout.ca_cert())?;
        let ca_key = read(&layout.ca_key())?;
        let ca = Ca::load(&ca_pem, &ca_key).map_err(|e| format!("ca: {e}"))?;
        let bundle = Bundle {
            ca_pem,
            cert_pem: read(&layout.master_cert())?,
            key_pem: read(&layout.master_key())?,
        };
        bundle
            .check()
            .map_err(|e| format!("master certificate: {e}"))?;
        let fingerprint = bundle.fingerprint().map_err(|e| e.to_string())?;
        Ok(Self {
            ca_fingerprint: ca.fingerprint().to_string(),
            ca,
            bundle,
            fingerprint,
            clients: Mutex::new(HashMap::new()),
        })
    }

    fn policy(&self) -> Result<PeerPolicy, String> {
        PeerPolicy::from_ca_pem(&self.bundle.ca_pem).map_err(|e| e.to_string())
    }

    /// The swarm endpoint: a client certificate is asked for but optional at the TLS layer
    /// (only `/swarm/enroll` may go without one); any presented one must chain to the CA.
    pub fn swarm_tls(&self) -> Result<Arc<ServerConfig>, String> {
        server_config(&self.bundle, &self.policy()?, ClientAuth::Optional)
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
            ca_pem: self.bundle.ca_pem.clone(),
            cert_pem: issued.cert_pem,
            key_pem: issued.key_pem,
        };
        server_config(&bundle, &self.policy()?, ClientAuth::Optional).map_err(|e| e.to_string())
    }

    /// An mTLS client towards one agent: the master's certificate as identity, the agent
    /// verified by CA, its name as CN and its pinned fingerprint — never by hostname. Cached
    /// per host (persistent connections) and rebuilt if the pins change. During a renewal's
    /// overlap the previous certificate is accepted too (the agent serves the new one as soon
    /// as it has written it).
    pub fn agent_client(&self, host: &Host, timeout: Duration) -> Result<reqwest::Client, String> {
        let mut pins = vec![host.fingerprint.clone()];
        if let (Some(prev), Some(until)) = (&host.previous_fingerprint, host.previous_valid_until) {
            if chrono::Utc::now() < until {
                pins.push(prev.clone());
            }
        }
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((fps, c)) = clients.get(&host.uuid) {
            if *fps == pins {
                return Ok(c.clone());
            }
        }
        let mut policy = self
            .policy()?
            .with_expected_cn(host.name.as_str())
            .with_pinned_fingerprint(host.fingerprint.clone());
        for prev in &pins[1..] {
            policy = policy.with_also_pinned_fingerprint(prev.clone());
        }
        let tls = client_config(&self.bundle, &policy).map_err(|e| e.to_string())?;
        let client = reqwest::Client::builder()
            .use_preconfigured_tls((*tls).clone())
            .timeout(timeout)
            .build()
            .map_err(|e| e.to_string())?;
        clients.insert(host.uuid, (pins, client.clone()));
        Ok(client)
    }

    pub fn forget_agent(&self, host: HostUuid) {
        self.clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&host);
    }
}

//! The master's mutual-TLS client towards each worker's agent API.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use decnet_core::model::wire::{
    DeployAnswer, DeployRequest, ErrorBody, MutateAnswer, MutateRequest, SelfDestructAnswer,
    SelfDestructRequest, TeardownAnswer, TeardownRequest,
};
use decnet_core::model::{AgentStatus, Host, HostUuid};
use decnet_core::traits::{AgentClient, AgentConnector, AgentError};
use decnet_tls::pki::Bundle;
use decnet_tls::verify::{client_config, PeerPolicy};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::errors::{cause_chain, error_chain};

/// One agent's API at `https://<address>`, over a client whose TLS set-up pins that agent.
#[derive(Debug, Clone)]
pub struct HttpsAgentClient {
    client: reqwest::Client,
    base: String,
}

impl HttpsAgentClient {
    /// A client of the agent at `address` (`host:port`) over `client`'s TLS set-up.
    pub fn new(client: reqwest::Client, address: &str) -> Self {
        Self {
            client,
            base: format!("https://{address}"),
        }
    }

    async fn answer<A: DeserializeOwned>(
        resp: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<A, AgentError> {
        let resp = resp.map_err(|e| AgentError::Unreachable {
            message: cause_chain(&e),
            source: Some(Box::new(e)),
        })?;
        let status = resp.status();
        if !status.is_success() {
            let detail = resp
                .json::<ErrorBody>()
                .await
                .map(|b| b.detail)
                .unwrap_or_default();
            return Err(AgentError::Rejected {
                status: status.as_u16(),
                detail,
            });
        }
        resp.json::<A>().await.map_err(|e| AgentError::Decode {
            message: cause_chain(&e),
            source: Some(Box::new(e)),
        })
    }

    async fn post<B: Serialize + Sync, A: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<A, AgentError> {
        let resp = self
            .client
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await;
        Self::answer(resp).await
    }
}

#[async_trait::async_trait]
impl AgentClient for HttpsAgentClient {
    async fn deploy(&self, req: &DeployRequest) -> Result<DeployAnswer, AgentError> {
        self.post("/deploy", req).await
    }

    async fn mutate(&self, req: &MutateRequest) -> Result<MutateAnswer, AgentError> {
        self.post("/mutate", req).await
    }

    async fn teardown(&self, req: &TeardownRequest) -> Result<TeardownAnswer, AgentError> {
        self.post("/teardown", req).await
    }

    async fn status(&self) -> Result<AgentStatus, AgentError> {
        let resp = self
            .client
            .get(format!("{}/status", self.base))
            .send()
            .await;
        Self::answer(resp).await
    }

    async fn self_destruct(
        &self,
        req: &SelfDestructRequest,
    ) -> Result<SelfDestructAnswer, AgentError> {
        self.post("/self-destruct", req).await
    }
}

/// The [`AgentConnector`] of a master: one [`HttpsAgentClient`] per host, presenting the
/// master's certificate and accepting the agent only by the DECNET CA, CN = the host's name
/// and its pinned fingerprint (and, during a renewal's overlap, its previous one) — never by
/// hostname. Clients are cached per host (persistent connections) and rebuilt when the pins
/// change or the master's identity is replaced ([`PinnedAgents::set_identity`]).
pub struct PinnedAgents {
    ca: PeerPolicy,
    identity: RwLock<Bundle>,
    clients: Mutex<HashMap<HostUuid, (Vec<String>, reqwest::Client)>>,
}

impl std::fmt::Debug for PinnedAgents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PinnedAgents").finish_non_exhaustive()
    }
}

impl PinnedAgents {
    /// Clients presenting `identity` (the master's certificate, key and the CA).
    pub fn new(identity: Bundle) -> Result<Self, decnet_tls::Error> {
        Ok(Self {
            ca: PeerPolicy::from_ca_pem(&identity.ca_pem)?,
            identity: RwLock::new(identity),
            clients: Mutex::new(HashMap::new()),
        })
    }

    /// Presents `identity` from the next connection on (the master certificate was rolled
    /// over); every cached client is dropped.
    pub fn set_identity(&self, identity: Bundle) {
        *self.identity.write().unwrap_or_else(|p| p.into_inner()) = identity;
        self.clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// The pinned mTLS client towards `host`'s agent, each request bounded by `timeout`.
    pub fn client(&self, host: &Host, timeout: Duration) -> Result<reqwest::Client, AgentError> {
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
            .ca
            .clone()
            .with_expected_cn(host.name.as_str())
            .with_pinned_fingerprint(host.fingerprint.clone());
        for prev in &pins[1..] {
            policy = policy.with_also_pinned_fingerprint(prev.clone());
        }
        let bundle = self
            .identity
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let tls = client_config(&bundle, &policy).map_err(|e| AgentError::Client {
            message: e.to_string(),
            source: Some(Box::new(e)),
        })?;
        let client = reqwest::Client::builder()
            .use_preconfigured_tls((*tls).clone())
            .timeout(timeout)
            .build()
            .map_err(|e| AgentError::Client {
                message: error_chain(&e),
                source: Some(Box::new(e)),
            })?;
        clients.insert(host.uuid, (pins, client.clone()));
        Ok(client)
    }
}

impl AgentConnector for PinnedAgents {
    fn connect(&self, host: &Host, timeout: Duration) -> Result<Arc<dyn AgentClient>, AgentError> {
        let client = self.client(host, timeout)?;
        Ok(Arc::new(HttpsAgentClient::new(client, &host.address)))
    }

    fn forget(&self, host: HostUuid) {
        self.clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&host);
    }
}

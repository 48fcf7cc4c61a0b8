//! The HTTPS adapter of [`AgentClient`]: mutual TLS with the master's certificate, the agent
//! pinned by its enrolled fingerprint and CN (see [`MasterPki::agent_client`]).

use std::sync::Arc;
use std::time::Duration;

use decnet_core::model::wire::{
    DeployAnswer, DeployRequest, ErrorBody, MutateAnswer, MutateRequest, SelfDestructAnswer,
    SelfDestructRequest, TeardownAnswer, TeardownRequest,
};
use decnet_core::model::{AgentStatus, Host, HostUuid};
use decnet_core::traits::{AgentClient, AgentConnector, AgentError};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::pki::MasterPki;

/// One agent's API at `https://<address>`.
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
            message: crate::client::error_chain(&e),
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
            message: crate::client::error_chain(&e),
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

impl AgentConnector for MasterPki {
    fn connect(&self, host: &Host, timeout: Duration) -> Result<Arc<dyn AgentClient>, AgentError> {
        let client = self
            .agent_client(host, timeout)
            .map_err(|message| AgentError::Client {
                message,
                source: None,
            })?;
        Ok(Arc::new(HttpsAgentClient::new(client, &host.address)))
    }

    fn forget(&self, host: HostUuid) {
        self.forget_agent(host);
    }
}

//! Attacker events on a worker (PRODUCT §10): every interval the service containers' new
//! output is collected into the spool in the state dir (`<state-dir>/events/`, bounded on
//! disk), and the spool is shipped to the master's `POST /swarm/events`, retried with a backoff
//! while the master is away. The deployer calls [`EventPipeline`] as its output collector before
//! removing containers, so a mutate or teardown loses nothing. The rules are core's
//! (`orchestrate::collect`, `orchestrate::ship`); this is the loop and the locking around them.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use decnet_core::adapters::spool::{Spool, SpoolError, SpoolStats};
use decnet_core::model::wire::{EventBatch, EventBatchAnswer};
use decnet_core::model::HostUuid;
use decnet_core::orchestrate::collect::collect_into;
use decnet_core::orchestrate::ship::ship_spool;
use decnet_core::traits::{EventAck, EventTransport, OutputCollector, ServiceLogs, TransportError};
use decnet_tls::pki::Bundle;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::paths::Identity;
use crate::transport::master_client;

/// Default time between collection passes.
pub const DEFAULT_EVENTS_INTERVAL: Duration = Duration::from_secs(2);
/// Default batch size towards the master.
pub const DEFAULT_BATCH: usize = 500;
/// The longest wait between shipping attempts while the master is away.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The worker's spool and its collection and shipping.
#[derive(Debug)]
pub struct EventPipeline {
    spool: Mutex<Spool>,
    host: HostUuid,
}

impl EventPipeline {
    /// Opens the spool in `<state_dir>/events`, bounded to `max_bytes`.
    pub fn open(state_dir: &Path, host: HostUuid, max_bytes: u64) -> Result<Self, SpoolError> {
        Ok(Self {
            spool: Mutex::new(Spool::open(&state_dir.join("events"), max_bytes)?),
            host,
        })
    }

    /// One collection pass; returns how many events were spooled.
    pub async fn collect(&self, logs: &dyn ServiceLogs) -> usize {
        let mut spool = self.spool.lock().await;
        match collect_into(logs, &self.host.to_string(), &mut spool).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "attacker events: collection pass failed");
                0
            }
        }
    }

    /// Ships what the spool holds; `Err` when the master could not take it now.
    pub async fn ship(&self, transport: &dyn EventTransport, batch: usize) -> Result<u64, String> {
        let mut spool = self.spool.lock().await;
        match ship_spool(&mut spool, transport, self.host, batch).await {
            Ok(s) => {
                if let Some(why) = &s.last_refusal {
                    tracing::warn!(events = s.refused, %why, "the master refused attacker events for good; counted as dropped");
                }
                Ok(s.delivered)
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// Bytes and drops of the spool.
    pub async fn stats(&self) -> Option<SpoolStats> {
        self.spool.lock().await.stats().ok()
    }

    /// Collects and ships every `interval` until `shutdown`; ships after the last pass.
    pub async fn run(
        self: Arc<Self>,
        logs: Arc<dyn ServiceLogs>,
        transport: Arc<dyn EventTransport>,
        interval: Duration,
        shutdown: CancellationToken,
    ) {
        let mut backoff = interval;
        let mut wait = Duration::ZERO;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(wait) => {}
            }
            self.collect(logs.as_ref()).await;
            match self.ship(transport.as_ref(), DEFAULT_BATCH).await {
                Ok(_) => {
                    backoff = interval;
                    wait = interval;
                }
                Err(why) => {
                    tracing::debug!(%why, "attacker events: master not reachable, retrying");
                    wait = backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        self.collect(logs.as_ref()).await;
        let _ = self.ship(transport.as_ref(), DEFAULT_BATCH).await;
    }
}

#[async_trait::async_trait]
impl OutputCollector for EventPipeline {
    async fn collect(&self, logs: &dyn ServiceLogs) {
        EventPipeline::collect(self, logs).await;
    }
}

/// `EventTransport` over the worker's pinned mTLS client: `<master_url>/swarm/events`.
#[derive(Debug)]
pub struct HttpsEventTransport {
    client: std::sync::RwLock<reqwest::Client>,
    master_fingerprint: String,
    url: String,
}

impl HttpsEventTransport {
    pub fn new(bundle: &Bundle, identity: &Identity) -> Result<Self, String> {
        Ok(Self {
            client: std::sync::RwLock::new(master_client(bundle, &identity.master_fingerprint)?),
            master_fingerprint: identity.master_fingerprint.clone(),
            url: format!("{}/swarm/events", identity.master_url.trim_end_matches('/')),
        })
    }

    /// Presents `bundle` (a renewed certificate) from the next batch on.
    pub fn reload(&self, bundle: &Bundle) -> Result<(), String> {
        let client = master_client(bundle, &self.master_fingerprint)?;
        *self.client.write().unwrap_or_else(|p| p.into_inner()) = client;
        Ok(())
    }
}

#[async_trait::async_trait]
impl EventTransport for HttpsEventTransport {
    async fn send(&self, batch: &EventBatch) -> Result<EventAck, TransportError> {
        let client = self
            .client
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let resp = client
            .post(&self.url)
            .json(batch)
            .send()
            .await
            .map_err(|e| TransportError::Unreachable(format!("{e:#}")))?;
        let status = resp.status().as_u16();
        if status == 200 {
            let answer: EventBatchAnswer = resp
                .json()
                .await
                .map_err(|e| TransportError::Unreachable(format!("answer: {e:#}")))?;
            return Ok(EventAck::Stored(answer));
        }
        let detail = resp.text().await.unwrap_or_default();
        Ok(EventAck::Rejected { status, detail })
    }
}

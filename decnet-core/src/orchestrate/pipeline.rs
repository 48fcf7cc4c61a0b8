//! The attacker-event pipeline of a host that runs deckies (PRODUCT §10): every interval the
//! service containers' new output is collected into a spool (bounded on disk), and the spool is
//! shipped through an [`EventTransport`] — a worker's to the master's `POST /swarm/events`, a
//! master's own into its store — retried with a backoff while the other end is away. The
//! deployer calls [`EventPipeline`] as its output collector before removing containers, so a
//! mutate or teardown loses nothing. Needs the `runtime` feature (tokio).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use std::future::Future;

use tokio::sync::Mutex;

use crate::adapters::spool::{Spool, SpoolError, SpoolStats};
use crate::model::HostUuid;
use crate::orchestrate::collect::collect_into;
use crate::orchestrate::ship::ship_spool;
use crate::traits::{EventTransport, OutputCollector, ServiceLogs};

/// Default time between collection passes.
pub const DEFAULT_EVENTS_INTERVAL: Duration = Duration::from_secs(2);
/// Default batch size towards the master.
pub const DEFAULT_BATCH: usize = 500;
/// The longest wait between shipping attempts while the master is away.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A host's spool, and its collection and shipping.
#[derive(Debug)]
pub struct EventPipeline {
    spool: Mutex<Spool>,
    /// Stamped on every event (a worker's uuid, or `local`).
    host: String,
    /// Who the batches speak for (a master's own pipeline uses the nil uuid).
    host_uuid: HostUuid,
}

impl EventPipeline {
    /// Opens the spool in `dir`, bounded to `max_bytes`; events are stamped with `host` and
    /// batches carry `host_uuid`.
    pub fn open(
        dir: &Path,
        host: &str,
        host_uuid: HostUuid,
        max_bytes: u64,
    ) -> Result<Self, SpoolError> {
        Ok(Self {
            spool: Mutex::new(Spool::open(dir, max_bytes)?),
            host: host.to_owned(),
            host_uuid,
        })
    }

    /// One collection pass; returns how many events were spooled.
    pub async fn collect(&self, logs: &dyn ServiceLogs) -> usize {
        let mut spool = self.spool.lock().await;
        // A failed pass keeps the cursors; the next one reads the same output again.
        collect_into(logs, &self.host, &mut spool)
            .await
            .unwrap_or(0)
    }

    /// Ships what the spool holds; `Err` when the other end could not take it now.
    pub async fn ship(
        &self,
        transport: &dyn EventTransport,
        batch: usize,
    ) -> Result<crate::orchestrate::ship::Shipped, crate::orchestrate::ship::ShipError> {
        let mut spool = self.spool.lock().await;
        ship_spool(&mut spool, transport, self.host_uuid, batch).await
    }

    /// Bytes and drops of the spool.
    pub async fn stats(&self) -> Option<SpoolStats> {
        self.spool.lock().await.stats().ok()
    }

    /// Collects and ships every `interval` until `shutdown` completes; collects and ships once
    /// more at the end. `on_refused` hears of batches refused for good (to log them).
    pub async fn run(
        self: Arc<Self>,
        logs: Arc<dyn ServiceLogs>,
        transport: Arc<dyn EventTransport>,
        interval: Duration,
        shutdown: impl Future<Output = ()> + Send,
        on_refused: impl Fn(u64, &str) + Send,
    ) {
        let mut backoff = interval;
        let mut wait = Duration::ZERO;
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tokio::time::sleep(wait) => {}
            }
            self.collect(logs.as_ref()).await;
            match self.ship(transport.as_ref(), DEFAULT_BATCH).await {
                Ok(s) => {
                    if let Some(why) = &s.last_refusal {
                        on_refused(s.refused, why);
                    }
                    backoff = interval;
                    wait = interval;
                }
                Err(_) => {
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

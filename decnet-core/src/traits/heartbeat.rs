//! `HeartbeatTransport`: how an agent's heartbeat (with pending deltas) reaches the master.

use crate::model::HeartbeatBody;

/// What the master said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeartbeatAck {
    /// 204: the heartbeat and every delta in it are acknowledged.
    Accepted,
    /// Any other status (403 after decommission, …): nothing is acknowledged.
    Rejected { status: u16 },
}

/// Errors reaching the master at all.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("master unreachable: {0}")]
    Unreachable(String),
    #[error("master identity check failed: {0}")]
    Identity(String),
}

/// Sends one heartbeat.
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
#[async_trait::async_trait]
pub trait HeartbeatTransport: Send + Sync {
    async fn send(&self, body: &HeartbeatBody) -> Result<HeartbeatAck, TransportError>;
}

/// What the master said to a batch of attacker events (`POST /swarm/events`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventAck {
    /// 200: every event of the batch is stored (some perhaps already were).
    Stored(crate::model::wire::EventBatchAnswer),
    /// Any other status, with the master's detail.
    Rejected { status: u16, detail: String },
}

/// Sends one batch of attacker events to the master.
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
#[async_trait::async_trait]
pub trait EventTransport: Send + Sync {
    async fn send(
        &self,
        batch: &crate::model::wire::EventBatch,
    ) -> Result<EventAck, TransportError>;
}

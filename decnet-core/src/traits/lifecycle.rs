//! `LifecycleSink`: where lifecycle transitions and deltas go — the database and the bus on
//! the master, a durable outbox on the agent.

use crate::model::LifecycleDelta;

/// Errors from a sink. A sink that cannot record a delta must say so: losing one would leave a
/// master row open.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The sink's backing store (database, outbox file) failed; the text says how.
    #[error("lifecycle sink: {0}")]
    Io(String),
}

/// Receives the result of every finished operation, one delta per decky.
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
#[async_trait::async_trait]
pub trait LifecycleSink: Send + Sync {
    /// Records the deltas durably before returning.
    async fn record(&self, deltas: Vec<LifecycleDelta>) -> Result<(), SinkError>;
}

//! `LifecycleSink`: where lifecycle transitions and deltas go — the database and the bus on
//! the master, a durable outbox on the agent.

use super::agent::BoxError;
use crate::model::LifecycleDelta;

/// Errors from a sink. A sink that cannot record a delta must say so: losing one would leave a
/// master row open.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// The sink's backing store (database, outbox file) failed.
    #[error("lifecycle sink: {message}")]
    Io {
        /// What failed.
        message: String,
        /// The underlying error, when there is one.
        #[source]
        source: Option<BoxError>,
    },
}

impl SinkError {
    /// [`SinkError::Io`] caused by `e`, described by `what: e`.
    pub fn io(what: &str, e: impl std::error::Error + Send + Sync + 'static) -> Self {
        SinkError::Io {
            message: format!("{what}: {e}"),
            source: Some(Box::new(e)),
        }
    }
}

/// Receives the result of every finished operation, one delta per decky.
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
#[async_trait::async_trait]
pub trait LifecycleSink: Send + Sync {
    /// Records the deltas durably before returning.
    async fn record(&self, deltas: Vec<LifecycleDelta>) -> Result<(), SinkError>;
}

//! `HeartbeatTransport`: how an agent's heartbeat (with pending deltas) reaches the master.

use super::agent::BoxError;
use crate::model::HeartbeatBody;

/// What the master said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeartbeatAck {
    /// 204: the heartbeat and every delta in it are acknowledged.
    Accepted,
    /// Any other status (403 after decommission, …): nothing is acknowledged.
    Rejected {
        /// The HTTP status the master answered.
        status: u16,
    },
}

/// Errors reaching the master at all, by kind.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// No answer: connection refused, timed out or cut.
    #[error("master unreachable: {message}")]
    Unreachable {
        /// The client's error chain, as one line.
        message: String,
        /// The underlying error, when there is one.
        #[source]
        source: Option<BoxError>,
    },
    /// The TLS handshake failed the master's pin (CA, CN or fingerprint), or this side's own
    /// identity (bundle) is unusable.
    #[error("master identity check failed: {message}")]
    Identity {
        /// The client's error chain, as one line.
        message: String,
        /// The underlying error, when there is one.
        #[source]
        source: Option<BoxError>,
    },
}

impl TransportError {
    /// [`TransportError::Unreachable`] described by `message`.
    pub fn unreachable(message: impl Into<String>) -> Self {
        TransportError::Unreachable {
            message: message.into(),
            source: None,
        }
    }

    /// [`TransportError::Identity`] described by `message`.
    pub fn identity(message: impl Into<String>) -> Self {
        TransportError::Identity {
            message: message.into(),
            source: None,
        }
    }

    /// The same error with `e` as its source.
    pub fn with_source(mut self, e: impl std::error::Error + Send + Sync + 'static) -> Self {
        match &mut self {
            TransportError::Unreachable { source, .. }
            | TransportError::Identity { source, .. } => *source = Some(Box::new(e)),
        }
        self
    }
}

/// Sends one heartbeat.
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
#[async_trait::async_trait]
pub trait HeartbeatTransport: Send + Sync {
    /// Posts `body` to `POST /swarm/heartbeat` and says whether the master took it; the
    /// caller drops the deltas it carried only on [`HeartbeatAck::Accepted`].
    async fn send(&self, body: &HeartbeatBody) -> Result<HeartbeatAck, TransportError>;
}

/// What the master said to a batch of attacker events (`POST /swarm/events`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventAck {
    /// 200: every event of the batch is stored (some perhaps already were).
    Stored(crate::model::wire::EventBatchAnswer),
    /// Any other status, with the master's detail.
    Rejected {
        /// The HTTP status the master answered.
        status: u16,
        /// The master's detail text, for the log.
        detail: String,
    },
}

/// Sends one batch of attacker events to the master.
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
#[async_trait::async_trait]
pub trait EventTransport: Send + Sync {
    /// Posts `batch` to `POST /swarm/events` and returns the master's answer (what each
    /// answer means for the spool: [`crate::orchestrate::ship::ship_spool`]).
    async fn send(
        &self,
        batch: &crate::model::wire::EventBatch,
    ) -> Result<EventAck, TransportError>;
}

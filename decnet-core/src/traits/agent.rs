//! `AgentClient`: how the master reaches one worker's agent API (PRODUCT §5). The binaries
//! use a mutual-TLS HTTPS adapter; tests and embedders use a mock or their own transport.

use crate::model::wire::{
    DeployAnswer, DeployRequest, MutateAnswer, MutateRequest, SelfDestructAnswer,
    SelfDestructRequest, TeardownAnswer, TeardownRequest,
};
use crate::model::{AgentStatus, Host};

/// A boxed error an adapter keeps as the source of an [`AgentError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong talking to an agent, by kind: an embedder matches the variant, never the
/// message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// No answer: connection refused or reset, TLS handshake refused, timeout.
    #[error("{message}")]
    Unreachable {
        /// The transport's error chain, as one line.
        message: String,
        /// The transport's error.
        #[source]
        source: Option<BoxError>,
    },
    /// The agent answered with a non-success status.
    #[error("agent answered {status}{}: {detail}", reason_phrase(*.status))]
    Rejected {
        /// The HTTP status code.
        status: u16,
        /// The `detail` of its error body (empty when it had none).
        detail: String,
    },
    /// The agent answered success with a body that is not the documented shape.
    #[error("agent's answer is unreadable: {message}")]
    Decode {
        /// What did not parse.
        message: String,
        /// The parser's error.
        #[source]
        source: Option<BoxError>,
    },
    /// No client could be built for this host (its pins, the master's own bundle).
    #[error("agent client: {message}")]
    Client {
        /// Why.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },
}

/// " Conflict" for 409 and the other codes an agent answers with, so messages read like the
/// HTTP status line.
fn reason_phrase(status: u16) -> &'static str {
    match status {
        400 => " Bad Request",
        401 => " Unauthorized",
        403 => " Forbidden",
        404 => " Not Found",
        405 => " Method Not Allowed",
        408 => " Request Timeout",
        409 => " Conflict",
        413 => " Payload Too Large",
        422 => " Unprocessable Entity",
        429 => " Too Many Requests",
        500 => " Internal Server Error",
        502 => " Bad Gateway",
        503 => " Service Unavailable",
        504 => " Gateway Timeout",
        _ => "",
    }
}

/// One worker's agent API.
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
#[async_trait::async_trait]
pub trait AgentClient: Send + Sync {
    /// `POST /deploy`: queues the host's complete shard.
    async fn deploy(&self, req: &DeployRequest) -> Result<DeployAnswer, AgentError>;
    /// `POST /mutate`: queues new services for one decky.
    async fn mutate(&self, req: &MutateRequest) -> Result<MutateAnswer, AgentError>;
    /// `POST /teardown`: queues the removal of one decky or all.
    async fn teardown(&self, req: &TeardownRequest) -> Result<TeardownAnswer, AgentError>;
    /// `GET /status`: the agent's snapshot, runtime included (the probe after a failed
    /// dispatch).
    async fn status(&self) -> Result<AgentStatus, AgentError>;
    /// `POST /self-destruct`.
    async fn self_destruct(
        &self,
        req: &SelfDestructRequest,
    ) -> Result<SelfDestructAnswer, AgentError>;
}

/// Builds the [`AgentClient`] of an enrolled host (its address, its pinned certificate).
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
pub trait AgentConnector: Send + Sync {
    /// A client for `host`, whose requests give up after `timeout`.
    fn connect(
        &self,
        host: &Host,
        timeout: std::time::Duration,
    ) -> Result<std::sync::Arc<dyn AgentClient>, AgentError>;
    /// Drops what is cached for `host` (its pins changed, it was decommissioned).
    fn forget(&self, host: crate::model::HostUuid);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejections_read_like_the_status_line() {
        let e = AgentError::Rejected {
            status: 409,
            detail: "state unreadable".into(),
        };
        assert_eq!(
            e.to_string(),
            "agent answered 409 Conflict: state unreadable"
        );
        let e = AgentError::Rejected {
            status: 599,
            detail: String::new(),
        };
        assert_eq!(e.to_string(), "agent answered 599: ");
    }
}

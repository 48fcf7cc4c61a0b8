//! Reading what decky service containers write (their attacker events, PRODUCT §10).

use crate::orchestrate::collect::{LogLine, ServiceContainer};
use crate::traits::DeployerError;

/// The output of this host's service containers, in order, as the container runtime keeps it.
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
#[async_trait::async_trait]
pub trait ServiceLogs: Send + Sync {
    /// Every service container of this host's deckies, running or not (a stopped container's
    /// output can still be read until it is removed).
    async fn service_containers(&self) -> Result<Vec<ServiceContainer>, DeployerError>;

    /// The lines `container` wrote from the start of second `since_secs` (0: from its first),
    /// oldest first. A container that is gone reads as no lines.
    async fn read_since(
        &self,
        container: &ServiceContainer,
        since_secs: i64,
    ) -> Result<Vec<LogLine>, DeployerError>;
}

/// Reads the remaining output of service containers about to be removed: the deployer calls it
/// once per redeploy, mutate or teardown, after stopping them and before removing them.
#[async_trait::async_trait]
pub trait OutputCollector: Send + Sync {
    /// Collects what `logs` still holds (errors are the collector's to report).
    async fn collect(&self, logs: &dyn ServiceLogs);
}

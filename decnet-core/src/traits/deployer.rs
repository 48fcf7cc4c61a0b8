//! `Deployer`: brings a host's deckies to the desired set, mutates, tears down, reports.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::agent::BoxError;
use crate::model::{DeckyName, DecnetConfig, RuntimeMap};

/// How one decky came out of an operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum DeckyOutcome {
    /// The decky is in the state the operation asked for.
    Succeeded,
    /// The decky is not; the others' outcomes stand.
    Failed {
        /// Why, as the runtime said it (it ends up in the lifecycle row's `error`).
        reason: String,
    },
}

impl DeckyOutcome {
    /// True for [`DeckyOutcome::Succeeded`].
    pub fn is_success(&self) -> bool {
        matches!(self, DeckyOutcome::Succeeded)
    }
}

/// Per-decky outcomes of one operation. Partial success is normal: one decky failing never
/// rolls back the others.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DeployReport {
    /// Decky name → how that decky came out; deckies the operation did not touch are absent.
    pub outcomes: BTreeMap<DeckyName, DeckyOutcome>,
}

impl DeployReport {
    /// True when no decky failed (also for an empty report).
    pub fn all_succeeded(&self) -> bool {
        self.outcomes.values().all(DeckyOutcome::is_success)
    }

    /// The failed deckies with their reasons, in name order.
    pub fn failed(&self) -> impl Iterator<Item = (&DeckyName, &str)> {
        self.outcomes.iter().filter_map(|(n, o)| match o {
            DeckyOutcome::Failed { reason } => Some((n, reason.as_str())),
            DeckyOutcome::Succeeded => None,
        })
    }
}

/// Errors that stop an operation as a whole (per-decky failures go in the report), by kind;
/// each keeps the runtime's error as its source where there is one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeployerError {
    /// The container runtime cannot be reached (Docker daemon down, socket missing).
    #[error("container runtime unavailable: {message}")]
    Unavailable {
        /// What failed.
        message: String,
        /// The underlying error, when there is one.
        #[source]
        source: Option<BoxError>,
    },
    /// The runtime refused for lack of rights (socket permissions, `CAP_NET_ADMIN`).
    #[error("permission denied: {message}")]
    Permission {
        /// What failed.
        message: String,
        /// The underlying error, when there is one.
        #[source]
        source: Option<BoxError>,
    },
    /// Setting up the decky network failed (address in use, parent interface missing, …).
    #[error("network: {message}")]
    Network {
        /// What failed.
        message: String,
        /// The underlying error, when there is one.
        #[source]
        source: Option<BoxError>,
    },
    /// The operation names a decky this host does not run.
    #[error("decky {0:?} is not deployed on this host")]
    UnknownDecky(String),
    /// The request cannot be carried out as given (e.g. a custom service's image is not local).
    #[error("invalid request: {message}")]
    Invalid {
        /// What failed.
        message: String,
        /// The underlying error, when there is one.
        #[source]
        source: Option<BoxError>,
    },
    /// Anything else the runtime reported.
    #[error("{message}")]
    Other {
        /// What failed.
        message: String,
        /// The underlying error, when there is one.
        #[source]
        source: Option<BoxError>,
    },
}

impl DeployerError {
    /// [`DeployerError::Unavailable`] described by `message`.
    pub fn unavailable(message: impl Into<String>) -> Self {
        DeployerError::Unavailable {
            message: message.into(),
            source: None,
        }
    }

    /// [`DeployerError::Permission`] described by `message`.
    pub fn permission(message: impl Into<String>) -> Self {
        DeployerError::Permission {
            message: message.into(),
            source: None,
        }
    }

    /// [`DeployerError::Network`] described by `message`.
    pub fn network(message: impl Into<String>) -> Self {
        DeployerError::Network {
            message: message.into(),
            source: None,
        }
    }

    /// [`DeployerError::Invalid`] described by `message`.
    pub fn invalid(message: impl Into<String>) -> Self {
        DeployerError::Invalid {
            message: message.into(),
            source: None,
        }
    }

    /// [`DeployerError::Other`] described by `message`.
    pub fn other(message: impl Into<String>) -> Self {
        DeployerError::Other {
            message: message.into(),
            source: None,
        }
    }

    /// The same error with `e` as its source (kinds without a source are returned as is).
    pub fn with_source(mut self, e: impl std::error::Error + Send + Sync + 'static) -> Self {
        match &mut self {
            DeployerError::Unavailable { source, .. }
            | DeployerError::Permission { source, .. }
            | DeployerError::Network { source, .. }
            | DeployerError::Invalid { source, .. }
            | DeployerError::Other { source, .. } => *source = Some(Box::new(e)),
            DeployerError::UnknownDecky(_) => {}
        }
        self
    }
}

/// Brings deckies up and down on one host.
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
#[async_trait::async_trait]
pub trait Deployer: Send + Sync {
    /// Converges the host to `desired`, its complete set: creates what is missing, recreates
    /// what changed, leaves unchanged deckies running untouched, removes this host's deckies
    /// that are no longer desired. The report has one outcome per desired or removed decky.
    async fn deploy(&self, desired: &DecnetConfig) -> Result<DeployReport, DeployerError>;

    /// Replaces one decky's services (recreating only that decky's containers).
    async fn mutate(
        &self,
        decky: &DeckyName,
        services: &[String],
    ) -> Result<DeployReport, DeployerError>;

    /// Tears down one decky, or every decky of this host (and its network) when `None`.
    async fn teardown<'a>(
        &self,
        decky: Option<&'a DeckyName>,
    ) -> Result<DeployReport, DeployerError>;

    /// The runtime state of every decky of this host, found by labels.
    async fn runtime(&self) -> Result<RuntimeMap, DeployerError>;
}

//! The `Deployer` over the Docker Engine API (bollard): the decky image, the deckies' network,
//! base and service containers, converge, teardown and runtime state. No `docker` CLI, no
//! compose, nothing ever pulled.

pub mod deployer;
pub mod hostkey;
pub mod image;
pub mod labels;
pub mod logs;
pub mod network;
pub mod retry;
pub mod shapes;

pub use bollard::Docker;
pub use deployer::{DockerDeployer, DockerDeployerConfig, READY_MARKER};

use decnet_core::adapters::state_file::StateFileError;
use decnet_core::traits::DeployerError;

/// Errors of the Docker adapter; each names what it was doing.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("docker: {what}: {source}")]
    Api {
        what: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("network {name:?} has containers not managed by DECNET attached ({}); refusing to touch it", containers.join(", "))]
    NetworkInUse {
        name: String,
        containers: Vec<String>,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("decky {0:?} is not deployed on this host")]
    UnknownDecky(String),
    #[error("permission denied: {0}")]
    Permission(String),
    #[error(transparent)]
    Image(#[from] image::ImageError),
    #[error(transparent)]
    HostLink(#[from] decnet_net::HostLinkError),
    #[error(transparent)]
    State(#[from] StateFileError),
}

impl From<DockerError> for DeployerError {
    fn from(e: DockerError) -> Self {
        match e {
            DockerError::Invalid(m) => DeployerError::invalid(m),
            DockerError::UnknownDecky(d) => DeployerError::UnknownDecky(d),
            DockerError::Permission(m) => DeployerError::permission(m),
            DockerError::Api { ref source, .. }
                if matches!(
                    source,
                    bollard::errors::Error::IOError { .. }
                        | bollard::errors::Error::HyperResponseError { .. }
                ) =>
            {
                DeployerError::unavailable(e.to_string()).with_source(e)
            }
            DockerError::NetworkInUse { .. } | DockerError::HostLink(_) => {
                DeployerError::network(e.to_string()).with_source(e)
            }
            other => DeployerError::other(other.to_string()).with_source(other),
        }
    }
}

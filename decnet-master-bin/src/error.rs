//! CLI errors and their exit codes: 1 = the operation failed (also: what was named does not
//! exist, as docker and kubectl say it), 2 = usage or configuration.

use decnet_core::fleet::FleetError;
use decnet_core::model::FieldError;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad flags, bad INI, bad configuration: exit 2.
    #[error("{0}")]
    Usage(String),
    /// The operation itself failed: exit 1.
    #[error("{0:#}")]
    Failed(#[from] anyhow::Error),
    /// What the command names (a decky, a host, a token, a lifecycle row) does not exist:
    /// exit 1, as `docker` and `kubectl` exit on "not found".
    #[error("{0}")]
    NotFound(String),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Failed(_) | CliError::NotFound(_) => 1,
        }
    }

    pub fn not_found(msg: impl Into<String>) -> Self {
        CliError::NotFound(msg.into())
    }

    /// Whether the command failed only because its stdout was closed (`decnet services |
    /// head -1`): then it ends quietly with exit 0, as a Unix filter does.
    pub fn is_broken_pipe(&self) -> bool {
        match self {
            CliError::Failed(e) => e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }),
            _ => false,
        }
    }

    pub fn usage(msg: impl Into<String>) -> Self {
        CliError::Usage(msg.into())
    }
}

impl From<FleetError> for CliError {
    fn from(e: FleetError) -> Self {
        CliError::Usage(e.to_string())
    }
}

impl From<FieldError> for CliError {
    fn from(e: FieldError) -> Self {
        CliError::Usage(e.to_string())
    }
}

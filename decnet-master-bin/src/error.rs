//! CLI errors and their exit codes: 1 = the operation failed, 2 = usage or configuration.

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
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Failed(_) => 1,
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

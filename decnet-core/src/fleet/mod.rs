//! Turning an operator's request (flags, the original's INI, the API's JSON) into a validated
//! `DecnetConfig`. Pure: network facts and randomness are passed in.

pub mod build;
pub mod ini;
pub mod ini_fleet;
pub mod net;
pub mod spec;

pub use build::{
    build_from_flags, build_from_specs, pick_services, requested_deckies, BuildContext, FleetFlags,
};
pub use ini::{parse_ini, IniSyntaxError};
pub use ini_fleet::parse_fleet_ini;
pub use net::{resolve_net, NetInputs, NetPlan};
pub use spec::{DeckySpec, FleetSpec, GeneralSpec, MAX_AMOUNT};

use crate::model::{FieldError, ValidationErrors};
use crate::plan::AllocError;

/// Why a fleet could not be built. Every variant names the field and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FleetError {
    /// The request itself is malformed or breaks a rule (422 / exit 2).
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// Several rules broken at once.
    #[error(transparent)]
    Validation(#[from] ValidationErrors),
    /// The request collides with what is deployed: a taken name or address (409).
    #[error("{0}")]
    Conflict(FieldError),
    /// Not enough addresses (409).
    #[error(transparent)]
    Alloc(#[from] AllocError),
    /// The INI text is not INI.
    #[error(transparent)]
    Ini(#[from] IniSyntaxError),
}

#[cfg(test)]
mod tests;

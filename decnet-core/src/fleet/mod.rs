//! Turning an operator's request (flags, the original's INI, the API's JSON) into a validated
//! `DecnetConfig`. Pure: network facts and randomness are passed in.

pub mod build;
pub mod change;
pub mod ini;
pub mod ini_fleet;
pub mod net;
pub mod spec;

pub use build::{
    build_from_flags, build_from_specs, pick_services, requested_deckies, BuildContext, FleetFlags,
};
pub use change::{
    diff_fleets, net_inputs, plan_fleet_change, ChangeSummary, DeckyChange, FleetChange,
    FleetChangeRequest, FleetFacts, ModeChoice, NetRequest, Requested,
};
pub use ini::{parse_ini, IniSyntaxError};
pub use ini_fleet::parse_fleet_ini;
pub use net::{resolve_net, NetInputs, NetPlan};
pub use spec::{DeckySpec, FleetSpec, GeneralSpec, MAX_AMOUNT};

use crate::model::{FieldError, ValidationErrors};
use crate::plan::AllocError;

/// Why a fleet could not be built. Every variant names the field and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
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
    /// The network cannot be resolved from the request, the fleet and the host (422 / exit 2;
    /// the field is the `general` one).
    #[error("{0}")]
    Net(FieldError),
    /// The fleet would hold more deckies than allowed (409).
    #[error(
        "deckies: the fleet would hold {count} deckies, over the limit of {limit} (--fleet-limit)"
    )]
    OverLimit {
        /// Deckies it would hold.
        count: u64,
        /// The limit.
        limit: usize,
    },
    /// Unihost was chosen, and this machine runs no deckies (409).
    #[error("no live worker host, and this master runs no deckies itself: enroll a worker first")]
    NoLocalDeployer,
    /// The fleet runs on workers, and none is live (409).
    #[error("the fleet runs on workers, and none is live")]
    NoLiveWorker,
}

#[cfg(test)]
mod tests;

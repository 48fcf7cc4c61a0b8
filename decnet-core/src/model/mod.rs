//! The domain model, wire-compatible with DECNET 1.2's JSON.

pub mod attack;
pub mod auth;
pub mod config;
pub mod error;
#[cfg(any(test, feature = "test-util"))]
pub mod fixtures;
pub mod host;
pub mod lifecycle;
pub mod names;
pub mod state;
pub mod status;
pub mod validate;
pub mod wire;

pub use auth::{ApiToken, EnrollToken, EnrollTokenText, Role, ENROLL_TOKEN_PREFIX};
pub use config::{
    CustomService, DeckyConfig, DecnetConfig, Mode, NetworkDriver, ServiceConfig,
    DEFAULT_BUILD_BASE, DEFAULT_MUTATE_INTERVAL,
};
pub use error::FieldError;
pub use host::{Host, HostStatus, Shard, ShardState};
pub use lifecycle::{
    check_transition, DeltaStatus, LifecycleDelta, LifecycleRow, LifecycleStatus, Operation,
    TransitionError, TransitionOutcome,
};
pub use names::{parse_ipv4, DeckyName, HostName, HostUuid, Subnet, NAME_RULE};
pub use state::{parse_state, render_state, RejectedDecky, StateParseError, WorkerState};
pub use status::{AgentStatus, DeckyRuntime, HeartbeatBody, RuntimeMap, ABSENT, WIRE_VERSION};
pub use validate::{validate_config, ValidationErrors};

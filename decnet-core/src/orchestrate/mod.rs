//! The orchestration as library code, generic over the [`crate::traits`]: what the master and
//! the agent binaries run, reusable by any embedder. It reaches the world only through those
//! traits, so every component here is tested with mocks and in-memory fakes.

#[cfg(feature = "runtime")]
pub mod bus;
pub mod collect;
pub mod dispatch;
#[cfg(feature = "runtime")]
pub mod heartbeat;
pub mod ingest;
#[cfg(feature = "runtime")]
pub mod lifecycle;
#[cfg(feature = "runtime")]
pub mod pipeline;
#[cfg(feature = "runtime")]
pub mod queue;
#[cfg(feature = "runtime")]
pub mod runner;
pub mod ship;
#[cfg(feature = "runtime")]
pub mod swarm;

pub use dispatch::{dispatch_local, dispatch_swarm, RowOutcome, SwarmDispatch};
#[cfg(feature = "runtime")]
pub use lifecycle::{Lifecycle, LifecycleHooks, MutateError, MutationPass, NoHooks};
#[cfg(feature = "runtime")]
pub use runner::{Runner, RunnerSettings};
#[cfg(feature = "runtime")]
pub use swarm::{check_wire_version, Presented, Swarm, SwarmError, SwarmHooks, SwarmSettings};

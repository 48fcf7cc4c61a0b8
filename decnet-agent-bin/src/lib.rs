//! # decnet-agent
//!
//! The worker agent's library: everything `decnet-agent` does beyond parsing flags and wiring
//! adapters, so tests can drive it in-process.
//!
//! - [`outbox`]: the durable lifecycle outbox (deltas survive restarts until the master acks).
//! - [`heartbeat`]: the heartbeat loop that carries status and pending deltas to the master.
//! - [`queue`]: the per-host work queue that runs deploy/mutate/teardown one at a time.
//! - [`snapshot`]: the live `/status` snapshot (also the heartbeat's `status`).
//! - [`reaper`]: self-destruct — the allow-listed wipe and its detached launcher.
//! - [`renew`]: worker certificate renewal before expiry, over the swarm channel.
//! - [`master_pins`]: the master certificate's rollover: its successor pinned, then the only
//!   pin.
//! - [`metrics`]: the agent's own `/metrics` (queue, outbox and spool depth) on a loopback
//!   listener of its own.
//! - [`paths`]: the agent directory and the enrolled identity file.
//! - [`state`]: the worker state file as the agent reads it; an unreadable one is reported
//!   and refused, never rewritten.

pub mod app;
/// The durable lifecycle outbox, from `decnet-core`.
pub use decnet_core::adapters::outbox;
/// The worker state file as the agent reads it, from `decnet-core`.
pub use decnet_core::adapters::worker_state as state;
/// The heartbeat loop, from `decnet-core` (re-exported where the agent always had it).
pub use decnet_core::orchestrate::heartbeat;
/// The per-host work queue, from `decnet-core`.
pub use decnet_core::orchestrate::queue;
pub mod enroll;
pub mod master_pins;
pub mod metrics;
pub mod paths;
pub mod reaper;
pub mod renew;
pub mod server;
pub mod snapshot;
pub mod transport;

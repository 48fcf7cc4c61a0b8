//! Adapters that do I/O with nothing but std: the state file and the attacker-event spool.
#[cfg(feature = "runtime")]
pub mod outbox;
pub mod spool;
pub mod state_file;
#[cfg(feature = "runtime")]
pub mod worker_state;

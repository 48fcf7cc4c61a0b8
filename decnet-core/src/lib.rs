//! # decnet-core
//!
//! The orchestration core of DECNET-rs, a honeypot deception network: the wire-compatible
//! domain model, the registries (services, archetypes, distros, OS fingerprints), the pure
//! planners (`allocate_ips`, `relocalize`, fleet builders, lifecycle rules) and the traits
//! that adapters implement (`Deployer`, `Repository`, `LifecycleSink`, `HeartbeatTransport`).
//!
//! Architecture invariant: everything outside [`adapters`] and the trait *implementations* in
//! other crates is pure — it takes facts as arguments and returns decisions as data.
//!
//! # Entry points
//!
//! - Planning (pure): [`fleet::parse_fleet_ini`] reads an operator's INI,
//!   [`fleet::plan_fleet_change`] turns a request and the facts of the moment into the new
//!   desired fleet and its per-decky changes, [`plan::allocate_ips`] hands out addresses,
//!   [`plan::relocalize()`] fits a swarm shard to a worker's LAN, [`plan::plan_shards`] places
//!   deckies on hosts and [`plan::plan_converge`] says what a deployer must change.
//! - Orchestration: [`orchestrate::Lifecycle::commit`] records a planned change as pending
//!   lifecycle rows; the `orchestrate::Runner` (feature `runtime`) carries them out through a
//!   [`traits::Deployer`] or an [`traits::AgentClient`], probing after a partial failure, and
//!   its sweep fails rows that stall.
//! - Adapters implement [`traits`]; `testkit` (feature `test-util`) has an in-memory
//!   [`traits::Repository`] and a manual clock for tests and examples.
//!
//! # Features
//!
//! - `runtime`: the long-running loops that need tokio (the runner, the attacker-event
//!   pipeline). Off by default so the static decky binary links no runtime.
//! - `test-util`: `testkit` and mockall mocks of every trait (`traits::MockDeployer`, …).

#![warn(missing_docs)]

pub mod adapters;
pub mod fleet;
pub mod model;
pub mod orchestrate;
pub mod plan;
pub mod registry;
#[cfg(any(test, feature = "test-util"))]
pub mod testkit;
pub mod traits;

//! # decnet-core
//!
//! The orchestration core of DECNET-rs, a honeypot deception network: the wire-compatible
//! domain model, the registries (services, archetypes, distros, OS fingerprints), the pure
//! planners (`allocate_ips`, `relocalize`, fleet builders, lifecycle rules) and the traits
//! that adapters implement (`Deployer`, `Repository`, `LifecycleSink`, `HeartbeatTransport`).
//!
//! Architecture invariant: everything outside [`adapters`] and the trait *implementations* in
//! other crates is pure — it takes facts as arguments and returns decisions as data.

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

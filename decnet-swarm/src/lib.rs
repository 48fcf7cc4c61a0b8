//! The network adapters of the DECNET-rs swarm (PRODUCT §5–§6), for the binaries and for
//! embedders of `decnet-core`:
//!
//! - [`HttpsAgentClient`] and [`PinnedAgents`]: the master's mutual-TLS client towards each
//!   worker's agent API, as [`decnet_core::traits::AgentClient`] and
//!   [`decnet_core::traits::AgentConnector`];
//! - [`HttpsTransport`] and [`HttpsEventTransport`]: a worker's heartbeats and attacker-event
//!   batches towards the master, as [`decnet_core::traits::HeartbeatTransport`] and
//!   [`decnet_core::traits::EventTransport`];
//! - [`CaIssuer`] and [`issue_worker`]: the `decnet-tls` CA as a
//!   [`decnet_core::traits::CertIssuer`].
//!
//! Every peer is verified by the DECNET CA, its CN and its pinned fingerprint — never by
//! hostname, so addresses may change. TLS is rustls with the ring provider only.

#![warn(missing_docs)]

mod agent;
mod errors;
mod issuer;
mod master;

pub use agent::{HttpsAgentClient, PinnedAgents};
pub use errors::{cause_chain, error_chain, is_certificate_error};
pub use issuer::{address_san, issue_worker, CaIssuer};
pub use master::{
    master_client, pinned_master_client, HttpsEventTransport, HttpsTransport, REQUEST_TIMEOUT,
};

//! HTTP plumbing shared by the agent API, the swarm endpoint and the operator API.
//!
//! - [`serve()`]: an accept loop over plain TCP or rustls that hands each request the peer's
//!   certificate ([`PeerCertificate`]) as an extension — axum's own `serve` has no TLS, and the
//!   swarm endpoint needs "client certificate optional at the TLS layer, enforced per route".
//!   Shutdown is a parameter: cancel the token and in-flight connections drain.
//! - [`JsonBody`]: a JSON extractor whose errors name the field (`config.deckies[2].ip: …`)
//!   and answer 422 (400 for malformed JSON), never 500.
//! - [`ApiError`]: `{"detail": "..."}` with a status code.
//! - [`body_limit`]: 413 decided from `Content-Length` before the body is read.
//! - `cli::LimitArgs` (feature `cli`): the [`ServeLimits`] as command-line flags.
//! - `manual` (feature `cli`): shell completions and man pages generated from a clap command
//!   tree, and the checks that every flag has help text (and, for daemons, an env var).
//! - `metrics` (feature `metrics`): Prometheus text through `prometheus-client`, and this
//!   process's CPU, memory and file descriptors from `/proc/self`.

mod caps;
#[cfg(feature = "cli")]
pub mod cli;
mod conn;
pub mod error;
pub mod json;
pub mod limits;
#[cfg(feature = "cli")]
pub mod manual;
#[cfg(feature = "metrics")]
pub mod metrics;
pub mod serve;

pub use error::ApiError;
pub use json::JsonBody;
pub use limits::{LimitError, ServeLimits};
pub use serve::{body_limit, serve, PeerCertificate, RemoteAddr};

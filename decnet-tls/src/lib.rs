//! DECNET-rs PKI and mutual TLS.
//!
//! # Trust model
//!
//! * **One CA per master.** `decnet init` makes it ([`pki::Ca::generate`]: P-256, 10 years)
//!   or loads the original's ([`pki::Ca::load`]: e.g. RSA 4096 PKCS#8). Its key never leaves
//!   the master's data dir. Its fingerprint (lowercase hex SHA-256 of the DER, [`pki::fingerprint`])
//!   is what enrollment tokens carry.
//! * **Identity is the CN plus the pinned fingerprint, never the host name.** The master's
//!   certificate has CN `decnet-master` ([`pki::MASTER_CN`]); a worker's has the enrolled host
//!   name. Peers check the chain to the CA *and* the CN and/or the certificate fingerprint
//!   pinned at enrollment ([`verify::PeerPolicy`]), so addresses may change and a worker's
//!   certificate can never pass for the master's (the original's agents obeyed any CA-signed
//!   client, and its workers took any CA-signed server for the master).
//! * **Worker keys never leave the worker.** `decnet-agent enroll` makes a P-256 key and a CSR
//!   ([`pki::generate_key_and_csr`]); the master signs only the CSR's public key
//!   ([`pki::Ca::issue_from_csr`]): the CN, SANs, EKUs, key usage, CA:false and validity are
//!   the signer's, whatever the CSR asked for.
//! * **Enrollment bootstraps trust from the token.** Before it has the CA, the worker accepts
//!   the master only if the server's chain contains a certificate with the token's CA
//!   fingerprint, the leaf chains to that certificate and has CN `decnet-master`
//!   ([`verify::EnrollServerVerifier`]).
//! * **Real checks first, always.** Every verifier runs rustls-webpki's chain, signature,
//!   validity and EKU checks before DECNET's CN/pin checks, and TLS signatures are checked
//!   by the provider. The agent requires a client certificate; the master's swarm endpoint
//!   asks for one but lets certificate-less clients through to `/swarm/enroll` only
//!   ([`verify::ClientAuth::Optional`]; routes read the verified peer with
//!   [`verify::peer_identity`]). Sessions are not resumed: each connection is verified in full.
//! * **One crypto provider: ring.** Every configuration is built with
//!   [`verify::provider`]; nothing here installs a process default.
//!
//! No revocation is checked at the TLS layer: the master refuses decommissioned hosts by
//! fingerprint per route.

pub mod error;
pub mod pki;
pub mod verify;

pub use error::{Error, Result};
/// The rustls this crate is built with (use it to name rustls types at the same version).
pub use rustls;
pub use verify::install_default_provider;

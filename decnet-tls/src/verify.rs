//! rustls verifiers and configurations for DECNET's mutual TLS.
//!
//! Every verifier here first runs the real checks (chain to the CA, signatures, validity
//! period, key usage, through rustls-webpki and the ring provider) and only then applies
//! DECNET's identity checks (CN, pinned SHA-256). None of them looks at host names: peers are
//! identified by CA + pin/CN, so addresses may change (PRODUCT §6).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, Resumption};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{NoServerSessionStorage, ParsedCertificate, WebPkiClientVerifier};
use rustls::{
    CertificateError, ClientConfig, CommonState, DigitallySignedStruct, DistinguishedName,
    OtherError, RootCertStore, ServerConfig, SignatureScheme,
};

use crate::error::{Error, Result};
pub use crate::pki::cert_cn;
use crate::pki::{fingerprint, normalize_fingerprint, parse_cert_pem, Bundle, MASTER_CN};

/// The one crypto provider of DECNET: rustls' ring provider.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Installs ring as the process-wide default provider, for clients built without an explicit
/// config (plain-HTTP reqwest clients still look one up). Idempotent; binaries call it first
/// thing.
pub fn install_default_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Who a peer must be: a certificate chained to `ca`, and when set, CN `expected_cn` and
/// SHA-256 `pinned_fingerprint` (lowercase hex of the leaf DER; `:` separators and upper case
/// are accepted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerPolicy {
    /// The DECNET CA certificate the peer's chain must end at.
    pub ca: CertificateDer<'static>,
    /// The CN the peer's leaf must have (e.g. `decnet-master` on the agent).
    pub expected_cn: Option<String>,
    /// The fingerprint the peer's leaf must have (pinned at enrollment).
    pub pinned_fingerprint: Option<String>,
    /// Further fingerprints accepted besides `pinned_fingerprint` (a certificate renewal's
    /// overlap: the previous one stays valid for a while). Ignored without a pin.
    pub also_pinned: Vec<String>,
    /// Fingerprints read at every handshake, replaceable while the verifier is in use (an
    /// agent pins its master's successor certificate beside the current one, then lets the
    /// old one go). With shared pins the peer must match one of them or a fixed pin.
    pub shared_pins: Option<SharedPins>,
}

/// A pin set that can change under verifiers already built ([`PeerPolicy::with_shared_pins`]):
/// clones share one set.
#[derive(Clone, Debug, Default)]
pub struct SharedPins(Arc<std::sync::RwLock<Vec<String>>>);

impl SharedPins {
    /// A set holding `pins` (checked and normalized like every pin).
    pub fn new(pins: &[String]) -> Result<Self> {
        let s = Self::default();
        s.set(pins)?;
        Ok(s)
    }

    /// Replaces the set; every verifier sharing it checks the next handshake against `pins`.
    pub fn set(&self, pins: &[String]) -> Result<()> {
        let pins = pins
            .iter()
            .map(|p| normalize_fingerprint(p))
            .collect::<Result<Vec<_>>>()?;
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = pins;
        Ok(())
    }

    /// The pins now.
    pub fn get(&self) -> Vec<String> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn contains(&self, fingerprint: &str) -> bool {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|p| p == fingerprint)
    }
}

/// Two handles are equal when they share one set.
impl PartialEq for SharedPins {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for SharedPins {}

impl PeerPolicy {
    /// CA-only policy; add checks with [`PeerPolicy::with_expected_cn`] and
    /// [`PeerPolicy::with_pinned_fingerprint`].
    pub fn new(ca: CertificateDer<'static>) -> Self {
        Self {
            ca,
            expected_cn: None,
            pinned_fingerprint: None,
            also_pinned: Vec::new(),
            shared_pins: None,
        }
    }

    /// [`PeerPolicy::new`] from the CA's PEM.
    pub fn from_ca_pem(ca_pem: &str) -> Result<Self> {
        Ok(Self::new(parse_cert_pem(ca_pem)?))
    }

    /// Requires the peer's CN.
    pub fn with_expected_cn(mut self, cn: impl Into<String>) -> Self {
        self.expected_cn = Some(cn.into());
        self
    }

    /// Requires the peer's fingerprint.
    pub fn with_pinned_fingerprint(mut self, fingerprint: impl Into<String>) -> Self {
        self.pinned_fingerprint = Some(fingerprint.into());
        self
    }

    /// Requires the peer's fingerprint to be in `pins` as they are at each handshake.
    pub fn with_shared_pins(mut self, pins: SharedPins) -> Self {
        self.shared_pins = Some(pins);
        self
    }

    /// Also accepts `fingerprint` besides the pinned one (a renewal's overlap).
    pub fn with_also_pinned_fingerprint(mut self, fingerprint: impl Into<String>) -> Self {
        self.also_pinned.push(fingerprint.into());
        self
    }

    /// Applies the CN and pin checks (not the chain) to a leaf certificate. Useful for a route
    /// that checks a peer certificate again after the handshake.
    pub fn check_leaf(&self, leaf_der: &[u8]) -> Result<(), PolicyViolation> {
        let checks = LeafChecks::new(self).map_err(|e| PolicyViolation::Policy(e.to_string()))?;
        checks.check(leaf_der)
    }

    fn roots(&self) -> Result<RootCertStore> {
        let mut roots = RootCertStore::empty();
        roots
            .add(self.ca.clone())
            .map_err(|e| Error::Certificate(format!("CA certificate: {e}")))?;
        Ok(roots)
    }
}

/// Why a certificate that chains to the CA was still refused.
///
/// Its `Debug` is its message, because rustls shows `CertificateError::Other` with `{:?}`.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyViolation {
    /// The leaf's CN is not the expected one (or it has none, or several).
    #[error("peer certificate CN {actual:?} is not {expected:?}")]
    Cn {
        /// The required CN.
        expected: String,
        /// The leaf's CN.
        actual: Option<String>,
    },
    /// The leaf's fingerprint is not the pinned one.
    #[error("peer certificate fingerprint {actual} is not the pinned {expected}")]
    Fingerprint {
        /// The pinned fingerprint.
        expected: String,
        /// The leaf's.
        actual: String,
    },
    /// Enrollment: no certificate of the server's chain has the token's CA fingerprint.
    #[error("the server's chain has no certificate with the enrollment CA fingerprint {0}")]
    CaNotPresented(String),
    /// The policy itself is malformed (bad pinned fingerprint).
    #[error("invalid policy: {0}")]
    Policy(String),
}

impl std::fmt::Debug for PolicyViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl From<PolicyViolation> for rustls::Error {
    fn from(v: PolicyViolation) -> Self {
        rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(v))))
    }
}

/// The CN/pin part of a [`PeerPolicy`], with the pin normalised.
#[derive(Clone, Debug)]
struct LeafChecks {
    expected_cn: Option<String>,
    pin: Option<String>,
    also: Vec<String>,
    shared: Option<SharedPins>,
}

impl LeafChecks {
    fn new(policy: &PeerPolicy) -> Result<Self> {
        Ok(Self {
            expected_cn: policy.expected_cn.clone(),
            pin: policy
                .pinned_fingerprint
                .as_deref()
                .map(normalize_fingerprint)
                .transpose()?,
            also: policy
                .also_pinned
                .iter()
                .map(|f| normalize_fingerprint(f))
                .collect::<Result<_>>()?,
            shared: policy.shared_pins.clone(),
        })
    }

    fn check(&self, leaf_der: &[u8]) -> Result<(), PolicyViolation> {
        if self.pin.is_some() || self.shared.is_some() {
            let actual = fingerprint(leaf_der);
            let fixed = self
                .pin
                .as_ref()
                .is_some_and(|p| *p == actual || self.also.contains(&actual));
            let shared = self.shared.as_ref().is_some_and(|s| s.contains(&actual));
            if !fixed && !shared {
                let expected = match (&self.pin, &self.shared) {
                    (Some(p), _) => p.clone(),
                    (None, Some(s)) => s.get().join(" or "),
                    (None, None) => String::new(),
                };
                return Err(PolicyViolation::Fingerprint { expected, actual });
            }
        }
        if let Some(expected) = &self.expected_cn {
            let actual = cert_cn(leaf_der);
            if actual.as_deref() != Some(expected.as_str()) {
                return Err(PolicyViolation::Cn {
                    expected: expected.clone(),
                    actual,
                });
            }
        }
        Ok(())
    }
}

/// Whether a server demands a client certificate during the handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// No certificate, no connection (the agent).
    Required,
    /// A certificate is asked for, and verified when presented, but a client may present none
    /// (the master's swarm endpoint: `/swarm/enroll` needs none, every other route checks
    /// [`peer_identity`] itself).
    Optional,
}

/// Server-side verifier of client certificates: rustls' [`WebPkiClientVerifier`] built on the
/// CA (chain, signatures, validity, clientAuth EKU), then the [`PeerPolicy`] CN/pin checks.
#[derive(Debug)]
pub struct PolicyClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    checks: LeafChecks,
}

impl PolicyClientVerifier {
    /// Builds the verifier. [`ClientAuth::Optional`] lets certificate-less clients through;
    /// a certificate that is presented is verified all the same.
    pub fn new(policy: &PeerPolicy, auth: ClientAuth) -> Result<Arc<Self>> {
        let builder =
            WebPkiClientVerifier::builder_with_provider(Arc::new(policy.roots()?), provider());
        let builder = match auth {
            ClientAuth::Required => builder,
            ClientAuth::Optional => builder.allow_unauthenticated(),
        };
        let inner = builder
            .build()
            .map_err(|e| Error::Verifier(e.to_string()))?;
        Ok(Arc::new(Self {
            inner,
            checks: LeafChecks::new(policy)?,
        }))
    }
}

impl ClientCertVerifier for PolicyClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        self.checks.check(end_entity)?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Client-side verifier of server certificates: chain to the CA with signatures, validity and
/// the serverAuth EKU (rustls' `verify_server_cert_signed_by_trust_anchor`), then the
/// [`PeerPolicy`] CN/pin checks. The name dialled is **not** compared with the certificate.
#[derive(Debug)]
pub struct PolicyServerVerifier {
    roots: RootCertStore,
    checks: LeafChecks,
    provider: Arc<CryptoProvider>,
}

impl PolicyServerVerifier {
    /// Builds the verifier.
    pub fn new(policy: &PeerPolicy) -> Result<Arc<Self>> {
        Ok(Arc::new(Self {
            roots: policy.roots()?,
            checks: LeafChecks::new(policy)?,
            provider: provider(),
        }))
    }
}

impl ServerCertVerifier for PolicyServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        self.checks.check(end_entity)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Client-side verifier for enrollment, when the worker holds only the token's CA fingerprint.
///
/// The master's server sends its leaf **and** the CA certificate ([`server_config`] always
/// appends it). The handshake is accepted only if
/// 1. some certificate of the presented chain other than the leaf has exactly the token's CA
///    fingerprint (SHA-256 of its DER: the pinned hash is the trust, nothing else is);
/// 2. the leaf chains to *that* certificate, used as the only trust anchor, with signatures,
///    validity and the serverAuth EKU checked (rustls-webpki); a server cannot pass by merely
///    including the real, public CA certificate next to a leaf signed by another key;
/// 3. the leaf's CN is `decnet-master` (or the CN given to [`EnrollServerVerifier::with_cn`]).
///
/// The name dialled is not checked. After enrollment the worker must still check that the
/// `ca_pem` the master returns has the token's fingerprint
/// ([`crate::pki::check_fingerprint_pem`]); it can also compare `master_fingerprint` with the
/// leaf seen here ([`peer_fingerprint`]).
#[derive(Debug)]
pub struct EnrollServerVerifier {
    ca_fingerprint: String,
    expected_cn: String,
    provider: Arc<CryptoProvider>,
}

impl EnrollServerVerifier {
    /// Trusts the CA with this fingerprint and a leaf with CN `decnet-master`.
    pub fn new(ca_fingerprint: &str) -> Result<Arc<Self>> {
        Self::with_cn(ca_fingerprint, MASTER_CN)
    }

    /// Same with another expected CN.
    pub fn with_cn(ca_fingerprint: &str, expected_cn: &str) -> Result<Arc<Self>> {
        Ok(Arc::new(Self {
            ca_fingerprint: normalize_fingerprint(ca_fingerprint)?,
            expected_cn: expected_cn.to_owned(),
            provider: provider(),
        }))
    }
}

impl ServerCertVerifier for EnrollServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let anchor = intermediates
            .iter()
            .find(|c| fingerprint(c) == self.ca_fingerprint)
            .ok_or_else(|| PolicyViolation::CaNotPresented(self.ca_fingerprint.clone()))?;
        let mut roots = RootCertStore::empty();
        roots.add(anchor.clone().into_owned())?;
        let cert = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &cert,
            &roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        let checks = LeafChecks {
            expected_cn: Some(self.expected_cn.clone()),
            pin: None,
            also: Vec::new(),
            shared: None,
        };
        checks.check(end_entity)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The chain a server sends: the bundle's certificates, then the CA certificate unless already
/// there (the enrolling worker needs it, see [`EnrollServerVerifier`]).
fn server_chain(bundle: &Bundle) -> Result<Vec<CertificateDer<'static>>> {
    let mut chain = bundle.cert_chain()?;
    let ca = bundle.ca_der()?;
    if !chain.contains(&ca) {
        chain.push(ca);
    }
    Ok(chain)
}

/// A server configuration: the bundle's certificate (+ the CA certificate in the chain) and
/// key, client certificates verified by [`PolicyClientVerifier`], TLS 1.2 and 1.3 with the ring
/// provider, and no session resumption (every connection runs the full verification).
///
/// Set `alpn_protocols` on a clone if the application needs ALPN.
pub fn server_config(
    bundle: &Bundle,
    policy: &PeerPolicy,
    client_auth: ClientAuth,
) -> Result<Arc<ServerConfig>> {
    let verifier = PolicyClientVerifier::new(policy, client_auth)?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(server_chain(bundle)?, bundle.private_key()?)?;
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

/// A server certificate that can be replaced while the server runs (a renewed worker
/// certificate): every new handshake gets the current one.
#[derive(Debug)]
pub struct ReloadableCert {
    current: std::sync::RwLock<Arc<rustls::sign::CertifiedKey>>,
}

impl ReloadableCert {
    /// The bundle's certificate chain (+ CA) and key.
    pub fn new(bundle: &Bundle) -> Result<Arc<Self>> {
        Ok(Arc::new(Self {
            current: std::sync::RwLock::new(Self::certified(bundle)?),
        }))
    }

    fn certified(bundle: &Bundle) -> Result<Arc<rustls::sign::CertifiedKey>> {
        let key = provider()
            .key_provider
            .load_private_key(bundle.private_key()?)?;
        let certified = rustls::sign::CertifiedKey::new(server_chain(bundle)?, key);
        certified.keys_match()?;
        Ok(Arc::new(certified))
    }

    /// Serves `bundle` from the next handshake on; refused (and the current one kept) when
    /// its key does not match its certificate.
    pub fn replace(&self, bundle: &Bundle) -> Result<()> {
        let next = Self::certified(bundle)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = next;
        Ok(())
    }

    /// The fingerprint of the certificate served now.
    pub fn fingerprint(&self) -> Option<String> {
        let current = self.current.read().unwrap_or_else(|p| p.into_inner());
        current.cert.first().map(|c| fingerprint(c))
    }
}

impl rustls::server::ResolvesServerCert for ReloadableCert {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }
}

/// [`server_config`] serving whatever `cert` holds at each handshake.
pub fn reloadable_server_config(
    cert: Arc<ReloadableCert>,
    policy: &PeerPolicy,
    client_auth: ClientAuth,
) -> Result<Arc<ServerConfig>> {
    let verifier = PolicyClientVerifier::new(policy, client_auth)?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(cert);
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

/// A client configuration presenting the bundle's certificate and key, verifying the server
/// with [`PolicyServerVerifier`] (CA + CN/pin, no host name), without session resumption.
pub fn client_config(bundle: &Bundle, policy: &PeerPolicy) -> Result<Arc<ClientConfig>> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(PolicyServerVerifier::new(policy)?)
        .with_client_auth_cert(bundle.cert_chain()?, bundle.private_key()?)?;
    config.resumption = Resumption::disabled();
    Ok(Arc::new(config))
}

/// A client configuration without a client certificate, verifying the server with
/// [`PolicyServerVerifier`] (e.g. an operator command trusting the data dir's CA).
pub fn anonymous_client_config(policy: &PeerPolicy) -> Result<Arc<ClientConfig>> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(PolicyServerVerifier::new(policy)?)
        .with_no_client_auth();
    config.resumption = Resumption::disabled();
    Ok(Arc::new(config))
}

/// The enrolling worker's client configuration: no client certificate, the server verified by
/// [`EnrollServerVerifier`] against the token's CA fingerprint.
pub fn enroll_client_config(ca_fingerprint: &str) -> Result<Arc<ClientConfig>> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(EnrollServerVerifier::new(ca_fingerprint)?)
        .with_no_client_auth();
    config.resumption = Resumption::disabled();
    Ok(Arc::new(config))
}

/// A [`ServerName`] for dialling `host` (an IP address or a DNS name; brackets around IPv6 are
/// stripped). The verifiers here ignore it; it only decides SNI (none for an IP address). A
/// string that is neither gives the unspecified address, i.e. no SNI.
pub fn server_name(host: &str) -> ServerName<'static> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_owned()).unwrap_or_else(|_| {
        ServerName::IpAddress(std::net::IpAddr::from(std::net::Ipv4Addr::UNSPECIFIED).into())
    })
}

/// The verified peer of a finished handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The peer's leaf certificate.
    pub cert: CertificateDer<'static>,
    /// Its [`fingerprint`].
    pub fingerprint: String,
    /// Its CN ([`cert_cn`]).
    pub cn: Option<String>,
}

/// The peer's leaf certificate after the handshake; `None` when the peer presented none (only
/// possible with [`ClientAuth::Optional`]). Pass a `ServerConnection`/`ClientConnection` (e.g.
/// `tls_stream.get_ref().1` with tokio-rustls); it derefs to [`CommonState`].
pub fn peer_certificate(conn: &CommonState) -> Option<CertificateDer<'static>> {
    conn.peer_certificates()?.first().cloned()
}

/// [`fingerprint`] of [`peer_certificate`].
pub fn peer_fingerprint(conn: &CommonState) -> Option<String> {
    peer_certificate(conn).map(|c| fingerprint(&c))
}

/// [`PeerIdentity`] of [`peer_certificate`].
pub fn peer_identity(conn: &CommonState) -> Option<PeerIdentity> {
    let cert = peer_certificate(conn)?;
    Some(PeerIdentity {
        fingerprint: fingerprint(&cert),
        cn: cert_cn(&cert),
        cert,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_name_accepts_ips_and_names() {
        assert!(matches!(server_name("10.0.0.5"), ServerName::IpAddress(_)));
        assert!(matches!(server_name("[::1]"), ServerName::IpAddress(_)));
        assert!(matches!(server_name("worker-1"), ServerName::DnsName(_)));
        assert!(matches!(server_name("bad name!"), ServerName::IpAddress(_)));
    }

    #[test]
    fn shared_pins_change_under_a_built_verifier() {
        let ca = crate::pki::Ca::generate("t").unwrap();
        let a = ca
            .issue_keypair(&crate::pki::LeafSpec::master(vec![]))
            .unwrap();
        let b = ca
            .issue_keypair(&crate::pki::LeafSpec::master(vec![]))
            .unwrap();
        let der = |pem: &str| crate::pki::parse_cert_pem(pem).unwrap();
        let (a_der, b_der) = (der(&a.cert_pem), der(&b.cert_pem));
        let (fa, fb) = (
            crate::pki::fingerprint(&a_der),
            crate::pki::fingerprint(&b_der),
        );
        let pins = SharedPins::new(std::slice::from_ref(&fa)).unwrap();
        let policy = PeerPolicy::new(ca.cert_der().clone()).with_shared_pins(pins.clone());
        let checks = LeafChecks::new(&policy).unwrap();
        assert!(checks.check(&a_der).is_ok());
        assert!(matches!(
            checks.check(&b_der),
            Err(PolicyViolation::Fingerprint { .. })
        ));
        // The successor pinned beside the current one: both pass.
        pins.set(&[fa.clone(), fb.to_uppercase()]).unwrap();
        assert!(checks.check(&a_der).is_ok() && checks.check(&b_der).is_ok());
        // The old one let go.
        pins.set(std::slice::from_ref(&fb)).unwrap();
        assert!(checks.check(&a_der).is_err() && checks.check(&b_der).is_ok());
        assert!(
            pins.set(&["nope".into()]).is_err(),
            "a malformed pin is refused"
        );
        assert_eq!(pins.get(), [fb], "and the set is left as it was");
    }

    #[test]
    fn malformed_pin_is_an_error() {
        let ca = crate::pki::Ca::generate("t").unwrap();
        let policy = PeerPolicy::new(ca.cert_der().clone()).with_pinned_fingerprint("nope");
        assert!(matches!(
            PolicyServerVerifier::new(&policy),
            Err(Error::Fingerprint { .. })
        ));
        assert!(matches!(
            policy.check_leaf(ca.cert_der()),
            Err(PolicyViolation::Policy(_))
        ));
    }
}

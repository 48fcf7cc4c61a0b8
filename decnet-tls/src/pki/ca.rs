//! The CA and what it signs.

use std::sync::Arc;
use std::time::SystemTime;

use rcgen::string::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType, SerialNumber,
    SigningKey as RcgenSigningKey, SubjectPublicKeyInfo,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateSigningRequestDer, DnsName};
use rustls::sign::Signer;
use rustls::SignatureScheme;
use time::OffsetDateTime;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::oid_registry::{
    Oid, OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION,
    OID_PKCS1_RSASSAPSS, OID_PKCS1_SHA256WITHRSA, OID_PKCS1_SHA384WITHRSA, OID_PKCS1_SHA512WITHRSA,
    OID_SIG_ECDSA_WITH_SHA256, OID_SIG_ECDSA_WITH_SHA384, OID_SIG_ED25519,
};
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo as X509Spki;

use super::{fingerprint, load_private_key, LeafSpec, San, BACKDATE, CA_VALIDITY};
use crate::error::{Error, Result};

/// A certificate issued from a CSR: the key stayed with the requester.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedCert {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// Its [`fingerprint`].
    pub fingerprint: String,
}

/// A certificate issued together with a fresh P-256 key (the master's own identity, tests).
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedKeyPair {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// Its private key, PKCS#8 PEM. Store it with [`super::write_private`].
    pub key_pem: String,
    /// The certificate's [`fingerprint`].
    pub fingerprint: String,
}

impl std::fmt::Debug for IssuedKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedKeyPair")
            .field("fingerprint", &self.fingerprint)
            .field("key_pem", &"[elided]")
            .finish_non_exhaustive()
    }
}

/// The DECNET certificate authority: its certificate and a signer for its key.
///
/// The key may be ECDSA P-256/P-384 or RSA in PKCS#8, PKCS#1 or SEC1 (signing goes through
/// the rustls ring provider), so the original's RSA 4096 CA loads as is.
pub struct Ca {
    cert_der: CertificateDer<'static>,
    cert_pem: String,
    key_pem: String,
    fingerprint: String,
    not_after: OffsetDateTime,
    /// Whether the CA has a subjectKeyIdentifier to reference from leaves' AKI.
    has_ski: bool,
    issuer: Issuer<'static, CaKey>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("fingerprint", &self.fingerprint)
            .field("not_after", &self.not_after)
            .field("key_pem", &"[elided]")
            .finish_non_exhaustive()
    }
}

impl Ca {
    /// A new self-signed CA: P-256 key, subject `CN=<cn>, O=DECNET`, CA:true pathlen 0
    /// (critical), key usage keyCertSign + cRLSign + digitalSignature, random serial,
    /// valid from now − [`BACKDATE`] for [`CA_VALIDITY`] (10 years).
    pub fn generate(cn: &str) -> Result<Ca> {
        check_cn(cn)?;
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let now = now_secs();
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        dn.push(DnType::OrganizationName, "DECNET");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = sub(now, BACKDATE)?;
        params.not_after = add(now, CA_VALIDITY)?;
        params.serial_number = Some(random_serial()?);
        let cert = params.self_signed(&key)?;
        Self::load(&cert.pem(), &key.serialize_pem())
    }

    /// Loads a CA from its certificate and private key (PEM). Refuses a certificate that is not
    /// a CA and a key that is not the certificate's.
    pub fn load(cert_pem: &str, key_pem: &str) -> Result<Ca> {
        let cert_der = super::parse_cert_pem(cert_pem)?;
        let (_, x509) = x509_parser::parse_x509_certificate(&cert_der)
            .map_err(|e| Error::Certificate(e.to_string()))?;
        let is_ca = x509
            .basic_constraints()
            .map_err(|e| Error::Certificate(e.to_string()))?
            .is_some_and(|bc| bc.value.ca);
        if !is_ca {
            return Err(Error::NotCa(format!(
                "{} has no basicConstraints CA:true",
                x509.subject()
            )));
        }
        let has_ski = x509.iter_extensions().any(|e| {
            matches!(
                e.parsed_extension(),
                x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(_)
            )
        });
        let not_after = x509.validity().not_after.to_datetime();
        let key = CaKey::from_pem(key_pem)?;
        if !same_public_key(&x509.tbs_certificate.subject_pki, &key.spki_der)? {
            return Err(Error::KeyMismatch);
        }
        let issuer = Issuer::from_ca_cert_der(&cert_der, key)?;
        Ok(Ca {
            fingerprint: fingerprint(&cert_der),
            cert_pem: pem_encode("CERTIFICATE", &cert_der),
            key_pem: key_pem.to_owned(),
            not_after,
            has_ski,
            issuer,
            cert_der,
        })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The CA private key, PEM, as loaded (PKCS#8 for a generated CA). Store it with
    /// [`super::write_private`].
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The CA certificate's [`fingerprint`] (what enrollment tokens carry).
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Signs a leaf for the public key of `csr_pem`, and nothing else from it.
    ///
    /// The CSR's self-signature must verify (SHA-256/384/512 with RSA, ECDSA with
    /// SHA-256/384; SHA-1 is refused) and its key must be ECDSA P-256 or RSA of 2048 to 8192
    /// bits; P-384, Ed25519 and every other key are refused with
    /// [`Error::UnsupportedKey`]. Subject, SANs, extensions and key usages requested in the CSR
    /// are discarded: the certificate carries `CN=<spec.cn>` only, `spec.sans`, the EKUs of
    /// `spec`, key usage digitalSignature (+ keyEncipherment for RSA), basicConstraints
    /// CA:false, a random serial and the validity of `spec`.
    pub fn issue_from_csr(&self, csr_pem: &str, spec: &LeafSpec) -> Result<IssuedCert> {
        let der =
            CertificateSigningRequestDer::from_pem_slice(csr_pem.as_bytes()).map_err(|e| {
                Error::Pem {
                    what: "certificate request",
                    reason: e.to_string(),
                }
            })?;
        self.issue_from_csr_der(&der, spec)
    }

    /// [`Ca::issue_from_csr`] for a DER CSR.
    pub fn issue_from_csr_der(&self, csr_der: &[u8], spec: &LeafSpec) -> Result<IssuedCert> {
        let (rest, csr) =
            X509CertificationRequest::from_der(csr_der).map_err(|e| Error::Csr(e.to_string()))?;
        if !rest.is_empty() {
            return Err(Error::Csr("trailing bytes after the request".to_owned()));
        }
        let spki = &csr.certification_request_info.subject_pki;
        // Key first: a too-small RSA key must say so, not "bad signature".
        let is_rsa = check_leaf_key(spki)?;
        check_csr_signature_alg(&csr.signature_algorithm.algorithm)?;
        csr.verify_signature().map_err(|_| Error::CsrSignature)?;
        let public_key = SubjectPublicKeyInfo::from_der(spki.raw)
            .map_err(|e| Error::UnsupportedKey(e.to_string()))?;
        let params = self.leaf_params(spec, is_rsa)?;
        let cert = params.signed_by(&public_key, &self.issuer)?;
        Ok(IssuedCert {
            fingerprint: fingerprint(cert.der()),
            cert_pem: cert.pem(),
        })
    }

    /// Issues a leaf for a fresh P-256 key made here (the master's own certificate, tests).
    pub fn issue_keypair(&self, spec: &LeafSpec) -> Result<IssuedKeyPair> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let params = self.leaf_params(spec, false)?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(IssuedKeyPair {
            fingerprint: fingerprint(cert.der()),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    fn leaf_params(&self, spec: &LeafSpec, is_rsa: bool) -> Result<CertificateParams> {
        check_cn(&spec.cn)?;
        if !spec.client_auth && !spec.server_auth {
            return Err(Error::Spec {
                field: "client_auth/server_auth",
                value: "false/false".to_owned(),
                rule: "a leaf needs at least one of clientAuth and serverAuth",
            });
        }
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, spec.cn.as_str());
        params.distinguished_name = dn;
        params.subject_alt_names = spec.sans.iter().map(san_type).collect::<Result<_>>()?;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        if is_rsa {
            params.key_usages.push(KeyUsagePurpose::KeyEncipherment);
        }
        params.extended_key_usages = Vec::new();
        if spec.server_auth {
            params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ServerAuth);
        }
        if spec.client_auth {
            params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ClientAuth);
        }
        let not_before = match spec.not_before {
            Some(t) => truncate(OffsetDateTime::from(t)),
            None => sub(now_secs(), BACKDATE)?,
        };
        let not_after = add(not_before, spec.validity)?.min(self.not_after);
        if not_after <= not_before {
            return Err(Error::Spec {
                field: "validity",
                value: format!("{:?}", spec.validity),
                rule: "must be positive and end before the CA expires",
            });
        }
        params.not_before = not_before;
        params.not_after = not_after;
        params.serial_number = Some(random_serial()?);
        params.use_authority_key_identifier_extension = self.has_ski;
        Ok(params)
    }
}

/// Makes a P-256 key and a CSR for it (the worker's `enroll`; the key never leaves the worker).
/// Returns `(key_pem /* PKCS#8 */, csr_pem)`. `cn_hint` goes into the CSR's subject, but the
/// master decides the certificate's CN; an empty hint leaves the subject empty.
pub fn generate_key_and_csr(cn_hint: &str) -> Result<(String, String)> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    if !cn_hint.is_empty() {
        dn.push(DnType::CommonName, cn_hint);
    }
    params.distinguished_name = dn;
    let csr = params.serialize_request(&key)?;
    Ok((key.serialize_pem(), csr.pem()?))
}

/// The CA's signing key, used through the rustls ring provider so that PKCS#1 and SEC1 keys
/// work too (rcgen's own ring backend reads PKCS#8 only).
struct CaKey {
    signer: Box<dyn Signer>,
    spki: SubjectPublicKeyInfo,
    spki_der: Vec<u8>,
}

impl CaKey {
    fn from_pem(key_pem: &str) -> Result<Self> {
        let der = load_private_key(key_pem)?;
        let key: Arc<dyn rustls::sign::SigningKey> =
            rustls::crypto::ring::sign::any_supported_type(&der)
                .map_err(|e| Error::PrivateKey(e.to_string()))?;
        let spki_der = key
            .public_key()
            .ok_or_else(|| Error::PrivateKey("the key does not expose its public key".to_owned()))?
            .as_ref()
            .to_vec();
        let spki = SubjectPublicKeyInfo::from_der(&spki_der)
            .map_err(|e| Error::PrivateKey(format!("unsupported CA key: {e}")))?;
        let alg = spki.algorithm();
        let scheme = if alg == &rcgen::PKCS_RSA_SHA256 {
            SignatureScheme::RSA_PKCS1_SHA256
        } else if alg == &rcgen::PKCS_ECDSA_P256_SHA256 {
            SignatureScheme::ECDSA_NISTP256_SHA256
        } else if alg == &rcgen::PKCS_ECDSA_P384_SHA384 {
            SignatureScheme::ECDSA_NISTP384_SHA384
        } else {
            return Err(Error::PrivateKey(
                "unsupported CA key type (expected RSA, ECDSA P-256 or P-384)".to_owned(),
            ));
        };
        let signer = key
            .choose_scheme(&[scheme])
            .ok_or_else(|| Error::PrivateKey(format!("the key cannot sign with {scheme:?}")))?;
        Ok(Self {
            signer,
            spki,
            spki_der,
        })
    }
}

impl PublicKeyData for CaKey {
    fn der_bytes(&self) -> &[u8] {
        self.spki.der_bytes()
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.spki.algorithm()
    }
}

impl RcgenSigningKey for CaKey {
    fn sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, rcgen::Error> {
        self.signer
            .sign(msg)
            .map_err(|_| rcgen::Error::RemoteKeyError)
    }
}

/// Compares the certificate's public key with the key's (algorithm OID + key bits).
fn same_public_key(cert_spki: &X509Spki<'_>, key_spki_der: &[u8]) -> Result<bool> {
    let (_, key_spki) =
        X509Spki::from_der(key_spki_der).map_err(|e| Error::PrivateKey(e.to_string()))?;
    Ok(
        cert_spki.algorithm.algorithm == key_spki.algorithm.algorithm
            && cert_spki.subject_public_key.data == key_spki.subject_public_key.data,
    )
}

/// Accepts ECDSA P-256 (uncompressed point) and RSA 2048..=8192; returns whether it is RSA.
fn check_leaf_key(spki: &X509Spki<'_>) -> Result<bool> {
    let alg = &spki.algorithm.algorithm;
    if *alg == OID_PKCS1_RSAENCRYPTION {
        let bits = match spki.parsed() {
            Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => bit_len(rsa.modulus),
            _ => return Err(Error::UnsupportedKey("malformed RSA public key".to_owned())),
        };
        if bits < 2048 {
            return Err(Error::UnsupportedKey(format!(
                "RSA {bits} bits is too small"
            )));
        }
        if bits > 8192 {
            return Err(Error::UnsupportedKey(format!(
                "RSA {bits} bits is too large"
            )));
        }
        Ok(true)
    } else if *alg == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok());
        match curve {
            Some(c) if c == OID_EC_P256 => {
                let point = &spki.subject_public_key.data;
                if point.len() == 65 && point.first() == Some(&4) {
                    Ok(false)
                } else {
                    Err(Error::UnsupportedKey(
                        "P-256 point is not uncompressed".to_owned(),
                    ))
                }
            }
            Some(c) if c == OID_NIST_EC_P384 => {
                Err(Error::UnsupportedKey("ECDSA P-384".to_owned()))
            }
            Some(c) => Err(Error::UnsupportedKey(format!("ECDSA curve {c}"))),
            None => Err(Error::UnsupportedKey(
                "ECDSA without a named curve".to_owned(),
            )),
        }
    } else if *alg == OID_SIG_ED25519 {
        Err(Error::UnsupportedKey("Ed25519".to_owned()))
    } else if *alg == OID_PKCS1_RSASSAPSS {
        Err(Error::UnsupportedKey("RSASSA-PSS key".to_owned()))
    } else {
        Err(Error::UnsupportedKey(format!("key algorithm {alg}")))
    }
}

fn check_csr_signature_alg(alg: &Oid<'_>) -> Result<()> {
    let ok = [
        OID_PKCS1_SHA256WITHRSA,
        OID_PKCS1_SHA384WITHRSA,
        OID_PKCS1_SHA512WITHRSA,
        OID_SIG_ECDSA_WITH_SHA256,
        OID_SIG_ECDSA_WITH_SHA384,
    ];
    if ok.iter().any(|o| o == alg) {
        Ok(())
    } else {
        Err(Error::Csr(format!(
            "unsupported CSR signature algorithm {alg} (SHA-256/384/512 with RSA or ECDSA)"
        )))
    }
}

/// Bit length of a big-endian unsigned integer (leading zero bytes allowed).
fn bit_len(be: &[u8]) -> usize {
    let mut bytes = be.iter().skip_while(|b| **b == 0);
    match bytes.next() {
        None => 0,
        Some(first) => {
            let rest = bytes.count();
            rest * 8 + (8 - first.leading_zeros() as usize)
        }
    }
}

fn check_cn(cn: &str) -> Result<()> {
    let rule = if cn.is_empty() {
        Some("must not be empty")
    } else if cn.chars().count() > 64 {
        Some("at most 64 characters (X.520 ub-common-name)")
    } else if cn.chars().any(char::is_control) {
        Some("no control characters")
    } else {
        None
    };
    match rule {
        Some(rule) => Err(Error::Spec {
            field: "cn",
            value: cn.to_owned(),
            rule,
        }),
        None => Ok(()),
    }
}

fn san_type(san: &San) -> Result<SanType> {
    match san {
        San::Ip(ip) => Ok(SanType::IpAddress(*ip)),
        San::Dns(name) => {
            let bad = || Error::Spec {
                field: "sans",
                value: name.clone(),
                rule: "a DNS subjectAltName must be a valid DNS name",
            };
            DnsName::try_from(name.as_str()).map_err(|_| bad())?;
            Ok(SanType::DnsName(
                Ia5String::try_from(name.as_str()).map_err(|_| bad())?,
            ))
        }
    }
}

fn random_serial() -> Result<SerialNumber> {
    let mut bytes = [0u8; 16];
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut bytes)
        .map_err(|_| Error::Rcgen(rcgen::Error::RingUnspecified))?;
    // Positive, and never a short encoding.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

fn now_secs() -> OffsetDateTime {
    truncate(OffsetDateTime::from(SystemTime::now()))
}

fn truncate(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(0).unwrap_or(t)
}

fn add(t: OffsetDateTime, d: std::time::Duration) -> Result<OffsetDateTime> {
    time::Duration::try_from(d)
        .ok()
        .and_then(|d| t.checked_add(d))
        .ok_or_else(|| Error::Spec {
            field: "validity",
            value: format!("{d:?}"),
            rule: "out of range",
        })
}

fn sub(t: OffsetDateTime, d: std::time::Duration) -> Result<OffsetDateTime> {
    time::Duration::try_from(d)
        .ok()
        .and_then(|d| t.checked_sub(d))
        .ok_or_else(|| Error::Spec {
            field: "not_before",
            value: format!("{d:?}"),
            rule: "out of range",
        })
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    // Standard base64 with 64-column lines, as OpenSSL writes.
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::with_capacity(der.len().div_ceil(3) * 4);
    for chunk in der.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                let idx = (n >> (18 - 6 * i)) & 0x3f;
                b64.push(char::from(ALPHABET[idx as usize]));
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_len_counts_significant_bits() {
        assert_eq!(bit_len(&[]), 0);
        assert_eq!(bit_len(&[0, 0]), 0);
        assert_eq!(bit_len(&[0x01]), 1);
        assert_eq!(bit_len(&[0x00, 0x80, 0x00]), 16);
        let mut m = vec![0x00, 0xc1];
        m.extend([0u8; 255]);
        assert_eq!(bit_len(&m), 2048);
    }

    #[test]
    fn pem_base64_matches_known_vectors() {
        let body = |der: &[u8]| {
            pem_encode("X", der)
                .lines()
                .nth(1)
                .unwrap_or_default()
                .to_owned()
        };
        assert_eq!(body(b"Man"), "TWFu");
        assert_eq!(body(b"Ma"), "TWE=");
        assert_eq!(body(b"M"), "TQ==");
    }

    #[test]
    fn pem_round_trips() {
        for len in 0..10usize {
            let der: Vec<u8> = (0..len as u8).collect();
            let pem = pem_encode("CERTIFICATE", &der);
            let back = CertificateDer::from_pem_slice(pem.as_bytes());
            if len == 0 {
                continue;
            }
            assert_eq!(back.unwrap().as_ref(), der.as_slice(), "len {len}");
        }
    }

    #[test]
    fn cn_rules() {
        assert!(check_cn("worker-1").is_ok());
        assert!(check_cn("").is_err());
        assert!(check_cn(&"a".repeat(65)).is_err());
        assert!(check_cn("a\nb").is_err());
    }
}

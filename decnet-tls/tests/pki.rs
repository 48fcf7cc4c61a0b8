//! CA, CSR issuance, key loading, fingerprints, private files and bundles.
#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime};

use common::fixture;
use decnet_tls::pki::{
    cert_cn, cert_info, check_fingerprint_pem, fingerprint, fingerprint_pem, generate_key_and_csr,
    load_private_key, parse_cert_pem, write_file_atomic, write_private, Bundle, Ca, LeafSpec, San,
    CA_VALIDITY, MASTER_CN,
};
use decnet_tls::rustls::pki_types::PrivateKeyDer;
use decnet_tls::Error;
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, PublicKeyData, SanType,
};
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};

const DAY: Duration = Duration::from_secs(86_400);

fn parse(pem: &str) -> Vec<u8> {
    parse_cert_pem(pem).unwrap().to_vec()
}

fn x509(der: &[u8]) -> X509Certificate<'_> {
    let (rest, cert) = X509Certificate::from_der(der).unwrap();
    assert!(rest.is_empty());
    cert
}

fn unix(t: SystemTime) -> i64 {
    i64::try_from(t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs()).unwrap()
}

/// Everything a leaf may carry, in one view.
#[derive(Debug, PartialEq, Eq)]
struct LeafView {
    subject_attrs: Vec<String>,
    sans: Vec<String>,
    server_auth: bool,
    client_auth: bool,
    other_ekus: bool,
    basic_ca: Option<bool>,
    key_usage: Vec<&'static str>,
    unknown_extensions: Vec<String>,
}

fn view(der: &[u8]) -> LeafView {
    let cert = x509(der);
    let subject_attrs = cert
        .subject()
        .iter_attributes()
        .map(|a| format!("{}={}", a.attr_type(), a.as_str().unwrap()))
        .collect();
    let mut v = LeafView {
        subject_attrs,
        sans: Vec::new(),
        server_auth: false,
        client_auth: false,
        other_ekus: false,
        basic_ca: None,
        key_usage: Vec::new(),
        unknown_extensions: Vec::new(),
    };
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(san) => {
                for n in &san.general_names {
                    v.sans.push(match n {
                        GeneralName::DNSName(d) => format!("DNS:{d}"),
                        GeneralName::IPAddress(b) => format!("IP:{b:?}"),
                        other => format!("other:{other:?}"),
                    });
                }
            }
            ParsedExtension::ExtendedKeyUsage(eku) => {
                v.server_auth = eku.server_auth;
                v.client_auth = eku.client_auth;
                v.other_ekus = eku.any
                    || eku.code_signing
                    || eku.email_protection
                    || eku.time_stamping
                    || eku.ocsp_signing
                    || !eku.other.is_empty();
            }
            ParsedExtension::BasicConstraints(bc) => v.basic_ca = Some(bc.ca),
            ParsedExtension::KeyUsage(ku) => {
                for (on, name) in [
                    (ku.digital_signature(), "digitalSignature"),
                    (ku.non_repudiation(), "nonRepudiation"),
                    (ku.key_encipherment(), "keyEncipherment"),
                    (ku.data_encipherment(), "dataEncipherment"),
                    (ku.key_agreement(), "keyAgreement"),
                    (ku.key_cert_sign(), "keyCertSign"),
                    (ku.crl_sign(), "cRLSign"),
                ] {
                    if on {
                        v.key_usage.push(name);
                    }
                }
            }
            ParsedExtension::AuthorityKeyIdentifier(_)
            | ParsedExtension::SubjectKeyIdentifier(_) => {}
            _ => v.unknown_extensions.push(ext.oid.to_id_string()),
        }
    }
    v
}

/// A CSR that asks for everything it should not get.
fn greedy_csr() -> (KeyPair, String) {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::new(vec!["evil.example".to_owned()]).unwrap();
    params
        .subject_alt_names
        .push(SanType::IpAddress("6.6.6.6".parse().unwrap()));
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, MASTER_CN);
    dn.push(DnType::OrganizationName, "Evil Corp");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::CodeSigning,
        ExtendedKeyUsagePurpose::Any,
        ExtendedKeyUsagePurpose::ServerAuth,
    ];
    params
        .custom_extensions
        .push(CustomExtension::from_oid_content(
            &[1, 2, 3, 4, 5],
            vec![0x05, 0x00],
        ));
    let csr = params.serialize_request(&key).unwrap().pem().unwrap();
    (key, csr)
}

/// What a CSR asks for: (subject attributes, CA:true, codeSigning or anyEKU, SAN count,
/// number of extensions).
fn csr_asks(csr_pem: &str) -> (usize, bool, bool, usize, usize) {
    let der = decnet_tls::rustls::pki_types::CertificateSigningRequestDer::from_pem_slice(
        csr_pem.as_bytes(),
    )
    .unwrap();
    let (_, csr) =
        x509_parser::certification_request::X509CertificationRequest::from_der(der.as_ref())
            .unwrap();
    let (mut ca, mut eku, mut sans, mut n) = (false, false, 0, 0);
    for ext in csr.requested_extensions().unwrap() {
        n += 1;
        match ext {
            ParsedExtension::BasicConstraints(bc) => ca = bc.ca,
            ParsedExtension::ExtendedKeyUsage(e) => eku = e.code_signing || e.any,
            ParsedExtension::SubjectAlternativeName(s) => sans = s.general_names.len(),
            _ => {}
        }
    }
    let attrs = csr
        .certification_request_info
        .subject
        .iter_attributes()
        .count();
    (attrs, ca, eku, sans, n)
}

#[test]
fn the_test_csrs_really_ask_for_more() {
    let (_, greedy) = greedy_csr();
    assert_eq!(csr_asks(&greedy), (2, true, true, 2, 5));
    assert_eq!(csr_asks(&fixture("rsa2048.csr")), (1, true, true, 2, 3));
}

// ---- CA ------------------------------------------------------------------------------------

#[test]
fn generated_ca_is_a_p256_root_with_explicit_ten_year_validity() {
    let before = SystemTime::now();
    let ca = Ca::generate("DECNET test CA").unwrap();
    let der = parse(ca.cert_pem());
    let cert = x509(&der);
    assert_eq!(cert.subject(), cert.issuer());
    assert!(cert.verify_signature(None).is_ok(), "self-signed");
    let bc = cert.basic_constraints().unwrap().unwrap().value;
    assert!(bc.ca);
    assert_eq!(bc.path_len_constraint, Some(0));
    let ku = cert.key_usage().unwrap().unwrap().value;
    assert!(ku.key_cert_sign() && ku.crl_sign());
    assert_eq!(
        cert.public_key().algorithm.algorithm,
        x509_parser::oid_registry::OID_KEY_TYPE_EC_PUBLIC_KEY
    );
    let info = cert_info(&der).unwrap();
    assert!(info.is_ca);
    assert_eq!(info.cn.as_deref(), Some("DECNET test CA"));
    let span = unix(info.not_after) - unix(info.not_before);
    assert_eq!(
        span,
        i64::try_from((CA_VALIDITY + Duration::from_secs(300)).as_secs()).unwrap()
    );
    assert!(unix(info.not_before) <= unix(before) - 299);
    assert_eq!(ca.fingerprint(), fingerprint(&der));
    assert_eq!(ca.fingerprint(), fingerprint_pem(ca.cert_pem()).unwrap());
    assert!(ca.key_pem().contains("BEGIN PRIVATE KEY"), "PKCS#8");
}

#[test]
fn ca_round_trips_through_pem() {
    let ca = Ca::generate("DECNET test CA").unwrap();
    let again = Ca::load(ca.cert_pem(), ca.key_pem()).unwrap();
    assert_eq!(again.fingerprint(), ca.fingerprint());
    let leaf = again
        .issue_keypair(&LeafSpec::worker("worker-1", vec![]))
        .unwrap();
    let ca_der = parse(ca.cert_pem());
    let leaf_der = parse(&leaf.cert_pem);
    assert!(x509(&leaf_der)
        .verify_signature(Some(x509(&ca_der).public_key()))
        .is_ok());
}

#[test]
fn ca_load_refuses_a_foreign_key_and_a_leaf() {
    let ca = Ca::generate("DECNET test CA").unwrap();
    let other = Ca::generate("DECNET test CA").unwrap();
    assert!(matches!(
        Ca::load(ca.cert_pem(), other.key_pem()),
        Err(Error::KeyMismatch)
    ));
    let leaf = ca.issue_keypair(&LeafSpec::master(vec![])).unwrap();
    assert!(matches!(
        Ca::load(&leaf.cert_pem, &leaf.key_pem),
        Err(Error::NotCa(_))
    ));
    assert!(matches!(
        Ca::load("not pem", ca.key_pem()),
        Err(Error::Pem { .. })
    ));
}

#[test]
fn legacy_rsa_ca_loads_and_signs_with_rsa() {
    let ca = Ca::load(&fixture("legacy_ca.crt"), &fixture("legacy_ca.key")).unwrap();
    assert_eq!(
        ca.fingerprint(),
        fingerprint_pem(&fixture("legacy_ca.crt")).unwrap()
    );
    let leaf = ca.issue_keypair(&LeafSpec::master(vec![])).unwrap();
    let leaf_der = parse(&leaf.cert_pem);
    let ca_der = parse(&fixture("legacy_ca.crt"));
    let cert = x509(&leaf_der);
    assert_eq!(
        cert.signature_algorithm.algorithm,
        x509_parser::oid_registry::OID_PKCS1_SHA256WITHRSA
    );
    assert!(cert
        .verify_signature(Some(x509(&ca_der).public_key()))
        .is_ok());
    assert_eq!(cert.issuer().as_raw(), x509(&ca_der).subject().as_raw());
}

#[test]
fn ca_is_shareable_across_threads() {
    fn check<T: Send + Sync>() {}
    check::<Ca>();
    check::<Bundle>();
}

// ---- issuance from a CSR -------------------------------------------------------------------

#[test]
fn csr_contributes_only_its_public_key() {
    let ca = Ca::generate("DECNET test CA").unwrap();
    let (key, csr_pem) = greedy_csr();
    let spec = LeafSpec::worker(
        "worker-1",
        vec![San::parse("10.0.0.5"), San::parse("worker-1")],
    );
    let before = SystemTime::now();
    let issued = ca.issue_from_csr(&csr_pem, &spec).unwrap();
    let der = parse(&issued.cert_pem);
    assert_eq!(issued.fingerprint, fingerprint(&der));

    assert_eq!(
        view(&der),
        LeafView {
            subject_attrs: vec!["2.5.4.3=worker-1".to_owned()],
            sans: vec!["IP:[10, 0, 0, 5]".to_owned(), "DNS:worker-1".to_owned()],
            server_auth: true,
            client_auth: true,
            other_ekus: false,
            basic_ca: Some(false),
            key_usage: vec!["digitalSignature"],
            unknown_extensions: vec![],
        }
    );

    let cert = x509(&der);
    // The CSR's key, signed by the CA.
    assert_eq!(
        cert.public_key().raw,
        key.subject_public_key_info().as_slice()
    );
    let ca_der = parse(ca.cert_pem());
    assert!(cert
        .verify_signature(Some(x509(&ca_der).public_key()))
        .is_ok());
    assert_eq!(cert.issuer().as_raw(), x509(&ca_der).subject().as_raw());
    // Validity: the signer's, from now - 5 min, one year long.
    let info = cert_info(&der).unwrap();
    assert!(unix(info.not_before) <= unix(before) - 299);
    assert!(unix(info.not_before) >= unix(before) - 302);
    assert_eq!(unix(info.not_after) - unix(info.not_before), 365 * 86_400);
    assert_eq!(info.cn.as_deref(), Some("worker-1"));
}

#[test]
fn serials_are_random() {
    let ca = Ca::generate("DECNET test CA").unwrap();
    let (_, csr) = greedy_csr();
    let spec = LeafSpec::worker("worker-1", vec![]);
    let a = parse(&ca.issue_from_csr(&csr, &spec).unwrap().cert_pem);
    let b = parse(&ca.issue_from_csr(&csr, &spec).unwrap().cert_pem);
    assert_ne!(x509(&a).raw_serial(), x509(&b).raw_serial());
}

#[test]
fn openssl_rsa2048_csr_is_accepted_and_stripped() {
    let ca = Ca::generate("DECNET test CA").unwrap();
    let spec = LeafSpec {
        client_auth: true,
        server_auth: false,
        ..LeafSpec::worker("worker-rsa", vec![San::parse("192.0.2.7")])
    };
    let issued = ca.issue_from_csr(&fixture("rsa2048.csr"), &spec).unwrap();
    let der = parse(&issued.cert_pem);
    assert_eq!(
        view(&der),
        LeafView {
            subject_attrs: vec!["2.5.4.3=worker-rsa".to_owned()],
            sans: vec!["IP:[192, 0, 2, 7]".to_owned()],
            server_auth: false,
            client_auth: true,
            other_ekus: false,
            basic_ca: Some(false),
            key_usage: vec!["digitalSignature", "keyEncipherment"],
            unknown_extensions: vec![],
        }
    );
    // The CSR is rsa_pkcs1.key's: that key and this certificate make a working bundle.
    let bundle = Bundle {
        ca_pem: ca.cert_pem().to_owned(),
        cert_pem: issued.cert_pem,
        key_pem: fixture("rsa_pkcs1.key"),
    };
    let policy = decnet_tls::verify::PeerPolicy::new(ca.cert_der().clone());
    decnet_tls::verify::client_config(&bundle, &policy).unwrap();
}

#[test]
fn weak_and_unsupported_keys_are_refused() {
    let ca = Ca::generate("DECNET test CA").unwrap();
    let spec = LeafSpec::worker("w", vec![]);
    for (csr, needle) in [
        ("rsa1024.csr", "RSA 1024 bits is too small"),
        ("p384.csr", "P-384"),
        ("ed25519.csr", "Ed25519"),
    ] {
        match ca.issue_from_csr(&fixture(csr), &spec) {
            Err(e @ Error::UnsupportedKey(_)) => {
                assert!(e.to_string().contains(needle), "{csr}: {e}")
            }
            other => panic!("{csr}: {other:?}"),
        }
    }
}

#[test]
fn tampered_csr_is_refused() {
    let ca = Ca::generate("DECNET test CA").unwrap();
    let (_, csr_pem) = generate_key_and_csr("worker-abc").unwrap();
    let mut der = decnet_tls::rustls::pki_types::CertificateSigningRequestDer::from_pem_slice(
        csr_pem.as_bytes(),
    )
    .unwrap()
    .as_ref()
    .to_vec();
    let at = der.windows(10).position(|w| w == b"worker-abc").unwrap();
    der[at] = b'W';
    let spec = LeafSpec::worker("w", vec![]);
    assert!(matches!(
        ca.issue_from_csr_der(&der, &spec),
        Err(Error::CsrSignature)
    ));
    // Untouched, it is fine.
    ca.issue_from_csr(&csr_pem, &spec).unwrap();
    assert!(matches!(
        ca.issue_from_csr("garbage", &spec),
        Err(Error::Pem { .. })
    ));
    assert!(matches!(
        ca.issue_from_csr_der(b"\x30\x03\x02\x01\x00", &spec),
        Err(Error::Csr(_))
    ));
}

#[test]
fn leaf_specs_are_checked() {
    let ca = Ca::generate("DECNET test CA").unwrap();
    let (_, csr) = generate_key_and_csr("x").unwrap();
    let bad = [
        LeafSpec::worker("", vec![]),
        LeafSpec {
            client_auth: false,
            server_auth: false,
            ..LeafSpec::worker("w", vec![])
        },
        LeafSpec::worker("w", vec![San::Dns("not a name".to_owned())]),
        LeafSpec {
            validity: Duration::ZERO,
            ..LeafSpec::worker("w", vec![])
        },
    ];
    for spec in bad {
        assert!(
            matches!(ca.issue_from_csr(&csr, &spec), Err(Error::Spec { .. })),
            "{spec:?}"
        );
    }
}

#[test]
fn a_leaf_never_outlives_its_ca() {
    let ca = Ca::generate("DECNET test CA").unwrap();
    let long = LeafSpec {
        validity: 100 * 365 * DAY,
        ..LeafSpec::master(vec![])
    };
    let leaf = ca.issue_keypair(&long).unwrap();
    let ca_info = cert_info(ca.cert_der()).unwrap();
    let leaf_info = cert_info(&parse(&leaf.cert_pem)).unwrap();
    assert_eq!(leaf_info.not_after, ca_info.not_after);
}

#[test]
fn explicit_not_before_makes_expired_certificates() {
    let ca = Ca::generate("DECNET test CA").unwrap();
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let leaf = ca
        .issue_keypair(&LeafSpec {
            not_before: Some(start),
            validity: DAY,
            ..LeafSpec::master(vec![])
        })
        .unwrap();
    let info = cert_info(&parse(&leaf.cert_pem)).unwrap();
    assert_eq!(unix(info.not_before), 1_700_000_000);
    assert_eq!(unix(info.not_after), 1_700_086_400);
}

#[test]
fn master_keypair_has_the_master_identity() {
    let ca = Ca::generate("DECNET test CA").unwrap();
    let master = ca
        .issue_keypair(&LeafSpec::master(vec![San::parse("127.0.0.1")]))
        .unwrap();
    let der = parse(&master.cert_pem);
    let v = view(&der);
    assert_eq!(v.subject_attrs, vec!["2.5.4.3=decnet-master".to_owned()]);
    assert_eq!(
        v.sans,
        vec![
            "DNS:decnet-master".to_owned(),
            "IP:[127, 0, 0, 1]".to_owned()
        ]
    );
    assert!(v.server_auth && v.client_auth && v.basic_ca == Some(false));
    assert_eq!(cert_cn(&der).as_deref(), Some(MASTER_CN));
    assert!(matches!(
        load_private_key(&master.key_pem).unwrap(),
        PrivateKeyDer::Pkcs8(_)
    ));
    assert!(
        !format!("{master:?}").contains("PRIVATE"),
        "Debug hides the key"
    );
}

#[test]
fn worker_key_and_csr() {
    let (key_pem, csr_pem) = generate_key_and_csr("worker-7").unwrap();
    assert!(matches!(
        load_private_key(&key_pem).unwrap(),
        PrivateKeyDer::Pkcs8(_)
    ));
    let der = decnet_tls::rustls::pki_types::CertificateSigningRequestDer::from_pem_slice(
        csr_pem.as_bytes(),
    )
    .unwrap();
    let (_, csr) =
        x509_parser::certification_request::X509CertificationRequest::from_der(der.as_ref())
            .unwrap();
    assert!(csr.verify_signature().is_ok());
    let cn: Vec<_> = csr
        .certification_request_info
        .subject
        .iter_common_name()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(cn, vec!["worker-7".to_owned()]);
    assert_eq!(
        csr.certification_request_info
            .subject_pki
            .algorithm
            .parameters
            .as_ref()
            .unwrap()
            .as_oid()
            .unwrap(),
        x509_parser::oid_registry::OID_EC_P256
    );
}

use decnet_tls::rustls::pki_types::pem::PemObject;

// ---- keys, fingerprints --------------------------------------------------------------------

#[test]
fn private_keys_load_in_every_format() {
    let cases = [
        ("rsa_pkcs1.key", "pkcs1"),
        ("rsa_pkcs8.key", "pkcs8"),
        ("ec_sec1.key", "sec1"),
        ("ec_pkcs8.key", "pkcs8"),
        ("legacy_ca.key", "pkcs8"),
    ];
    for (file, kind) in cases {
        let key = load_private_key(&fixture(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let got = match key {
            PrivateKeyDer::Pkcs1(_) => "pkcs1",
            PrivateKeyDer::Sec1(_) => "sec1",
            PrivateKeyDer::Pkcs8(_) => "pkcs8",
            _ => "other",
        };
        assert_eq!(got, kind, "{file}");
    }
    assert!(matches!(
        load_private_key("nothing"),
        Err(Error::Pem { .. })
    ));
    let encrypted =
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMAA=\n-----END ENCRYPTED PRIVATE KEY-----\n";
    let err = load_private_key(encrypted).unwrap_err();
    assert!(err.to_string().contains("unencrypted"), "{err}");
    // A PEM label over bytes that are not a key.
    let junk = "-----BEGIN PRIVATE KEY-----\nMAMCAQA=\n-----END PRIVATE KEY-----\n";
    assert!(matches!(load_private_key(junk), Err(Error::PrivateKey(_))));
}

#[test]
fn fingerprint_is_openssls_sha256_in_lowercase_hex() {
    for cert in ["rsa.crt", "ec.crt"] {
        let fp = fingerprint_pem(&fixture(cert)).unwrap();
        assert_eq!(fp, fixture(&format!("{cert}.sha256")).trim(), "{cert}");
        assert_eq!(fp.len(), 64);
        assert!(fp
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        check_fingerprint_pem(&fixture(cert), &fp.to_uppercase()).unwrap();
    }
    assert!(matches!(
        check_fingerprint_pem(&fixture("rsa.crt"), &fingerprint(b"other")),
        Err(Error::FingerprintMismatch { .. })
    ));
}

#[test]
fn cn_is_read_from_the_original_shape() {
    // CN=decnet-master, O=DECNET, OU=swarm-worker
    let der = parse(&fixture("rsa.crt"));
    assert_eq!(cert_cn(&der).as_deref(), Some("decnet-master"));
    assert_eq!(cert_cn(b"not a certificate"), None);
    let info = cert_info(&der).unwrap();
    assert_eq!(
        info.sans,
        vec![San::parse("decnet-master"), San::parse("127.0.0.1")]
    );
    assert!(!info.is_ca);
}

// ---- files and bundles ---------------------------------------------------------------------

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn write_private_is_0600_in_a_0700_dir_and_atomic() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("agent");
    let key = dir.join("worker.key");
    write_private(&key, b"first").unwrap();
    assert_eq!(mode(&key), 0o600);
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(std::fs::read(&key).unwrap(), b"first");
    // Replacing keeps 0600 even over a wider file, and leaves no temporary behind.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    write_private(&key, b"second").unwrap();
    assert_eq!(mode(&key), 0o600);
    assert_eq!(std::fs::read(&key).unwrap(), b"second");
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, vec!["worker.key".to_owned()]);

    let public = dir.join("ca.crt");
    write_file_atomic(&public, b"cert", 0o644).unwrap();
    assert_eq!(mode(&public), 0o644);
}

#[test]
fn bundle_dir_reports_every_missing_file() {
    let tmp = tempfile::tempdir().unwrap();
    let err = Bundle::load_worker_dir(tmp.path()).unwrap_err();
    match &err {
        Error::MissingBundle { missing, .. } => {
            assert_eq!(missing, &["ca.crt", "worker.crt", "worker.key"])
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().starts_with("no cert bundle in "), "{err}");

    std::fs::write(tmp.path().join("ca.crt"), fixture("legacy_ca.crt")).unwrap();
    std::fs::write(tmp.path().join("worker.crt"), fixture("rsa.crt")).unwrap();
    let err = Bundle::load_worker_dir(tmp.path()).unwrap_err();
    assert!(err.to_string().ends_with("missing worker.key"), "{err}");

    // The original's bundle (PKCS#1 RSA key) loads as is.
    std::fs::write(tmp.path().join("worker.key"), fixture("rsa_pkcs1.key")).unwrap();
    let bundle = Bundle::load_worker_dir(tmp.path()).unwrap();
    assert_eq!(
        bundle.fingerprint().unwrap(),
        fixture("rsa.crt.sha256").trim()
    );
    assert!(
        !format!("{bundle:?}").contains("PRIVATE"),
        "Debug hides the key"
    );

    // A file that is not PEM is an error that names the problem.
    std::fs::write(tmp.path().join("worker.key"), "oops").unwrap();
    assert!(matches!(
        Bundle::load_worker_dir(tmp.path()),
        Err(Error::Pem { .. })
    ));
}

#[test]
fn bundle_round_trips_through_a_dir() {
    let ca = Ca::generate("DECNET test CA").unwrap();
    let leaf = ca.issue_keypair(&LeafSpec::worker("w", vec![])).unwrap();
    let bundle = Bundle {
        ca_pem: ca.cert_pem().to_owned(),
        cert_pem: leaf.cert_pem.clone(),
        key_pem: leaf.key_pem.clone(),
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("new");
    bundle.write_dir(&dir, "worker.crt", "worker.key").unwrap();
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("worker.key")), 0o600);
    assert_eq!(mode(&dir.join("worker.crt")), 0o644);
    let back = Bundle::load_worker_dir(&dir).unwrap();
    assert_eq!(back, bundle);
    assert_eq!(back.fingerprint().unwrap(), leaf.fingerprint);
    assert_eq!(back.ca_fingerprint().unwrap(), ca.fingerprint());
}

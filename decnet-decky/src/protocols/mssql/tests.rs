//! MSSQL responder tests: PRELOGIN, LOGIN7, SSPI, hostile input.

use super::*;
use crate::protocols::testing::{ctx, peer, reporter, Mock};
use proptest::prelude::*;
use serde_json::json;

fn obfuscate(b: &[u8]) -> Vec<u8> {
    b.iter().map(|&b| b.rotate_left(4) ^ 0xa5).collect()
}

/// A LOGIN7 payload with the given user, password and database.
fn login7(user: &str, pass: &str, db: &str, sspi: &[u8]) -> Vec<u8> {
    let vars: [Vec<u8>; 9] = [
        utf16("kali"),
        utf16(user),
        obfuscate(&utf16(pass)),
        utf16("sqlcmd"),
        utf16("10.0.0.5"),
        Vec::new(),
        utf16("ODBC"),
        Vec::new(),
        utf16(db),
    ];
    let mut fixed = vec![0u8; 94];
    fixed[4..8].copy_from_slice(&0x7400_0004u32.to_le_bytes());
    let mut data = Vec::new();
    let mut at = 36;
    for v in &vars {
        let off = 94 + data.len();
        fixed[at..at + 2].copy_from_slice(&(off as u16).to_le_bytes());
        let n = if at == 56 { v.len() } else { v.len() / 2 };
        fixed[at + 2..at + 4].copy_from_slice(&(n as u16).to_le_bytes());
        data.extend_from_slice(v);
        at += 4;
    }
    let off = 94 + data.len();
    fixed[78..80].copy_from_slice(&(off as u16).to_le_bytes());
    fixed[80..82].copy_from_slice(&(sspi.len() as u16).to_le_bytes());
    data.extend_from_slice(sspi);
    let total = (fixed.len() + data.len()) as u32;
    fixed[0..4].copy_from_slice(&total.to_le_bytes());
    [fixed, data].concat()
}

#[test]
fn password_deobfuscation_known_vector() {
    // 'J' 0x4a: nibbles swapped 0xa4, XOR 0xa5 = 0x01; 'a' 0x61 → 0x16 → 0xb3; the zero
    // high bytes of UTF-16 become 0xa5.
    let wire = [0x01, 0xa5, 0xb3, 0xa5];
    assert_eq!(from_utf16(&deobfuscate(&wire)), "Ja");
    assert_eq!(deobfuscate(&obfuscate(b"\x00\xff\x5a")), b"\x00\xff\x5a");
}

#[test]
fn versions() {
    assert_eq!(
        version_bytes("15.0.2000.5"),
        Some([15, 0, 0x07, 0xd0, 0, 5])
    );
    assert_eq!(version_bytes("13.0.1601"), Some([13, 0, 0x06, 0x41, 0, 0]));
    assert_eq!(version_bytes("x"), None);
}

fn run(input: &[u8], cfg: serde_json::Value) -> (Vec<u8>, Fields, Vec<crate::log::AttackEvent>) {
    let c = ctx("mssql", cfg);
    let (report, sink) = reporter("mssql", 1433);
    let mut m = Mock::new(input);
    let mut f = Fields::new();
    crate::protocols::handle(&c, &peer(1433), &report, &mut m, &mut f).expect("ok");
    (m.output, f, sink.events())
}

#[test]
fn prelogin_and_login_get_error_18456() {
    let pre = [
        0x00, 0, 6, 0, 6, 0x01, 0, 12, 0, 1, 0xff, 9, 0, 0, 0, 0, 0, 0,
    ];
    let mut pre = pre.to_vec();
    pre[1..3].copy_from_slice(&11u16.to_be_bytes());
    pre[6..8].copy_from_slice(&17u16.to_be_bytes());
    pre.push(0);
    let input = [
        packet(PRELOGIN, &pre),
        packet(LOGIN7, &login7("sa", "P@ssw0rd!", "master", &[])),
    ]
    .concat();
    let (out, f, events) = run(&input, json!({"version": "14.0.1000.169"}));
    assert_eq!(out[0], REPLY);
    let plen = usize::from(u16::from_be_bytes([out[2], out[3]]));
    let opts = parse_prelogin(&out[8..plen]);
    assert_eq!(opts[0], (0x00, &[14, 0, 0x03, 0xe8, 0, 169][..]));
    assert_eq!(opts[1], (0x01, &[ENCRYPT_NOT_SUP][..]));
    let err = &out[plen..];
    assert_eq!(err[0], REPLY);
    assert_eq!(err[8], 0xaa);
    assert_eq!(
        u32::from_le_bytes(err[11..15].try_into().expect("4")),
        18456
    );
    let n = usize::from(u16::from_le_bytes([err[17], err[18]]));
    assert_eq!(
        from_utf16(&err[19..19 + 2 * n]),
        "Login failed for user 'sa'."
    );
    let auth: Vec<_> = events
        .iter()
        .filter(|e| e.kind == AttackKind::Auth)
        .collect();
    assert_eq!(auth.len(), 1);
    assert_eq!(auth[0].details.username.as_deref(), Some("sa"));
    assert_eq!(auth[0].details.password.as_deref(), Some("P@ssw0rd!"));
    assert_eq!(auth[0].details.extra["database"], "master");
    assert_eq!(auth[0].details.extra["app_name"], "sqlcmd");
    assert_eq!(f["client_version"], "9.0.0");
    assert_eq!(f["username"], "sa");
}

#[test]
fn integrated_security_gets_an_ntlm_challenge() {
    let mut neg = ntlm::SIGNATURE.to_vec();
    neg.extend_from_slice(&1u32.to_le_bytes());
    neg.extend_from_slice(&0xe208_8297u32.to_le_bytes());
    neg.extend_from_slice(&[0; 16]);
    let auth =
        crate::protocols::ntlm::tests::authenticate("alice", "ACME", "WS", &[0; 24], &[3; 40]);
    let input = [
        packet(LOGIN7, &login7("", "", "", &neg)),
        packet(SSPI, &auth),
    ]
    .concat();
    let (out, f, events) = run(&input, json!({}));
    assert_eq!(out[8], 0xed, "SSPI token");
    let ch = ntlm::find(&out).expect("challenge");
    assert_eq!(ntlm::message_type(ch), Some(2));
    assert_eq!(f["integrated_security"], true);
    let a: Vec<_> = events
        .iter()
        .filter(|e| e.kind == AttackKind::Auth)
        .collect();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].details.extra["hash_mode"], 5600);
    assert_eq!(a[0].details.extra["carrier"], "mssql");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    /// Random messages and mutated valid ones never panic the parsers or the responder.
    #[test]
    fn hostile_messages_never_panic(
        data in proptest::collection::vec(any::<u8>(), 0..1024),
        at in any::<usize>(),
        byte in any::<u8>(),
        cut in any::<usize>(),
    ) {
        let _ = parse_prelogin(&data);
        let _ = parse_login7(&data);
        let mut m = login7("sa", "pw", "db", &data);
        let i = at % m.len();
        m[i] = byte;
        m.truncate(cut % (m.len() + 1));
        let _ = parse_login7(&m);
        for kind in [PRELOGIN, LOGIN7, SSPI] {
            let c = ctx("mssql", json!({}));
            let (report, _) = reporter("mssql", 1433);
            let mut mock = Mock::new(&[packet(kind, &m), packet(kind, &data)].concat());
            let mut f = Fields::new();
            let _ = crate::protocols::handle(&c, &peer(1433), &report, &mut mock, &mut f);
        }
        // A client that asks for encryption, then sends garbage as its TLS handshake (wrapped,
        // bare records, or anything), ends the session without a panic.
        let mut c = ctx("mssql", json!({}));
        c.tls = Some(tls_config());
        for kind in [PRELOGIN, 0x16, byte] {
            let (report, _) = reporter("mssql", 1433);
            let mut follow = vec![kind];
            follow.extend_from_slice(&data);
            let input = [packet(PRELOGIN, &encrypting_prelogin()), follow].concat();
            let mut mock = Mock::new(&input);
            let mut f = Fields::new();
            let _ = crate::protocols::handle(&c, &peer(1433), &report, &mut mock, &mut f);
        }
    }
}

/// A PRELOGIN with ENCRYPT_ON.
fn encrypting_prelogin() -> Vec<u8> {
    vec![0x01, 0, 6, 0, 1, 0xff, ENCRYPT_ON]
}

fn tls_config() -> std::sync::Arc<rustls::ServerConfig> {
    crate::protocols::tls::server_config("sql01", &[]).expect("tls config")
}

#[test]
fn encryption_is_offered_only_with_a_certificate() {
    let input = packet(PRELOGIN, &encrypting_prelogin());
    let (out, f, _) = run(&input, json!({}));
    let opts = parse_prelogin(&out[8..]);
    assert_eq!(opts[1], (0x01, &[ENCRYPT_NOT_SUP][..]));
    assert_eq!(f["client_encryption"], 1);
    let mut c = ctx("mssql", json!({}));
    c.tls = Some(tls_config());
    let (report, _) = reporter("mssql", 1433);
    let mut m = Mock::new(&input);
    let mut f = Fields::new();
    let r = crate::protocols::handle(&c, &peer(1433), &report, &mut m, &mut f);
    assert!(r.is_err(), "the client left before its handshake");
    let opts = parse_prelogin(&m.output[8..]);
    assert_eq!(opts[1], (0x01, &[ENCRYPT_ON][..]));
}

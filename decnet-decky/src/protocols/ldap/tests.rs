//! LDAP responder tests: rootDSE, binds (simple, SASL, Sicily), hostile input.

use super::*;
use crate::protocols::testing::{ctx, peer, reporter, Mock};
use proptest::prelude::*;
use serde_json::json;

fn simple_bind(id: u64, dn: &str, pw: &str) -> Vec<u8> {
    message(
        id,
        tlv(
            BIND_REQUEST,
            &[
                int(0x02, 3),
                tlv(0x04, dn.as_bytes()),
                tlv(0x80, pw.as_bytes()),
            ]
            .concat(),
        ),
    )
}

fn search(id: u64, base: &str, attrs: &[&str]) -> Vec<u8> {
    let list: Vec<u8> = attrs.iter().flat_map(|a| tlv(0x04, a.as_bytes())).collect();
    message(
        id,
        tlv(
            SEARCH_REQUEST,
            &[
                tlv(0x04, base.as_bytes()),
                int(0x0a, 0),
                int(0x0a, 0),
                int(0x02, 0),
                int(0x02, 0),
                tlv(0x01, &[0]),
                tlv(0x87, b"objectClass"),
                tlv(0x30, &list),
            ]
            .concat(),
        ),
    )
}

fn run(input: &[u8]) -> (Vec<u8>, Fields, Vec<crate::log::AttackEvent>) {
    let c = ctx("ldap", json!({"domain": "acme.corp"}));
    let (report, sink) = reporter("ldap", 389);
    let mut m = Mock::new(input);
    let mut f = Fields::new();
    crate::protocols::handle(&c, &peer(389), &report, &mut m, &mut f).expect("ok");
    (m.output, f, sink.events())
}

/// The server's messages: (id, op tag, op contents).
fn replies(mut out: &[u8]) -> Vec<(u64, u8, Vec<u8>)> {
    let mut v = Vec::new();
    while let Ok((t, rest)) = ber::read(out) {
        let whole = &out[..out.len() - rest.len()];
        let (id, tag, op) = parse_message(whole).expect("message");
        assert_eq!(t.tag, 0x30);
        v.push((id, tag, op.to_vec()));
        out = rest;
    }
    v
}

fn code(op: &[u8]) -> (u64, String) {
    let (c, rest) = ber::expect(op, 0x0a).expect("code");
    let (_, rest) = ber::expect(rest, 0x04).expect("dn");
    let (diag, _) = ber::expect(rest, 0x04).expect("diag");
    (
        ber::uint(c).expect("n"),
        String::from_utf8_lossy(diag).into_owned(),
    )
}

#[test]
fn root_dse_names_the_domain() {
    let (out, _, events) = run(&search(1, "", &["defaultNamingContext", "dnsHostName"]));
    let r = replies(&out);
    assert_eq!(r.len(), 2);
    assert_eq!((r[0].0, r[0].1), (1, SEARCH_ENTRY));
    let text = String::from_utf8_lossy(&r[0].2);
    assert!(text.contains("DC=acme,DC=corp"), "{text}");
    assert!(text.contains("web-01.acme.corp"), "{text}");
    assert!(
        !text.contains("namingContexts"),
        "only what was asked: {text}"
    );
    assert_eq!(r[1].1, SEARCH_DONE);
    assert_eq!(code(&r[1].2).0, SUCCESS);
    assert!(events.iter().any(|e| e.kind == AttackKind::Command));
    let all = root_dse_entry(&Identity::from_ctx(&ctx("ldap", json!({}))), "t", &[]);
    assert!(String::from_utf8_lossy(&all).contains("CN=NTDS Settings,CN=WEB-01,CN=Servers"));
}

#[test]
fn simple_bind_is_recorded_and_refused() {
    let input = [
        simple_bind(1, "", ""),
        simple_bind(2, "CN=admin,DC=acme,DC=corp", "Passw0rd"),
        search(3, "DC=acme,DC=corp", &[]),
    ]
    .concat();
    let (out, f, events) = run(&input);
    let r = replies(&out);
    assert_eq!(code(&r[0].2).0, SUCCESS, "anonymous bind");
    assert_eq!(
        code(&r[1].2),
        (INVALID_CREDENTIALS, BAD_CREDENTIALS_DIAG.to_owned())
    );
    assert_eq!(code(&r[2].2).0, OPERATIONS_ERROR);
    let auth: Vec<_> = events
        .iter()
        .filter(|e| e.kind == AttackKind::Auth)
        .collect();
    assert_eq!(auth.len(), 1);
    assert_eq!(
        auth[0].details.username.as_deref(),
        Some("CN=admin,DC=acme,DC=corp")
    );
    assert_eq!(auth[0].details.password.as_deref(), Some("Passw0rd"));
    assert_eq!(f["anonymous_bind"], true);
}

#[test]
fn sasl_ntlm_bind_gets_a_challenge_and_records_the_hash() {
    let mut neg = ntlm::SIGNATURE.to_vec();
    neg.extend_from_slice(&1u32.to_le_bytes());
    neg.extend_from_slice(&0xe208_8297u32.to_le_bytes());
    neg.extend_from_slice(&[0; 16]);
    let auth = ntlm::tests::authenticate("bob", "ACME", "WS", &[0; 24], &[9; 40]);
    let sasl = |id, token: &[u8]| {
        message(
            id,
            tlv(
                BIND_REQUEST,
                &[
                    int(0x02, 3),
                    tlv(0x04, b""),
                    tlv(0xa3, &[tlv(0x04, b"GSS-SPNEGO"), tlv(0x04, token)].concat()),
                ]
                .concat(),
            ),
        )
    };
    let (out, f, events) = run(&[sasl(1, &neg), sasl(2, &auth)].concat());
    let r = replies(&out);
    assert_eq!(code(&r[0].2).0, SASL_BIND_IN_PROGRESS);
    assert!(ntlm::find(&r[0].2).is_some_and(|c| ntlm::message_type(c) == Some(2)));
    assert_eq!(code(&r[1].2).0, INVALID_CREDENTIALS);
    let a: Vec<_> = events
        .iter()
        .filter(|e| e.kind == AttackKind::Auth)
        .collect();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].details.extra["carrier"], "ldap");
    assert_eq!(a[0].details.extra["hash_mode"], 5600);
    assert_eq!(f["sasl_mechanisms"], json!(["GSS-SPNEGO", "GSS-SPNEGO"]));
}

#[test]
fn sicily_ntlm_bind_carries_the_challenge_in_matched_dn() {
    let mut neg = ntlm::SIGNATURE.to_vec();
    neg.extend_from_slice(&1u32.to_le_bytes());
    neg.extend_from_slice(&0xe208_8297u32.to_le_bytes());
    neg.extend_from_slice(&[0; 16]);
    let auth = ntlm::tests::authenticate("ivan", "ACME", "WS", &[0; 24], &[5; 40]);
    let bind = |id, tag, token: &[u8]| {
        message(
            id,
            tlv(
                BIND_REQUEST,
                &[int(0x02, 3), tlv(0x04, b"ivan"), tlv(tag, token)].concat(),
            ),
        )
    };
    let input = [
        bind(1, SICILY_DISCOVERY, b""),
        bind(2, SICILY_NEGOTIATE, &neg),
        bind(3, SICILY_RESPONSE, &auth),
    ]
    .concat();
    let (out, f, events) = run(&input);
    let r = replies(&out);
    let dn = |op: &[u8]| {
        let (_, rest) = ber::expect(op, 0x0a).expect("code");
        ber::expect(rest, 0x04).expect("dn").0.to_vec()
    };
    assert_eq!(dn(&r[0].2), b"NTLM");
    assert_eq!(ntlm::message_type(&dn(&r[1].2)), Some(2));
    assert_eq!(code(&r[1].2).0, SUCCESS);
    assert_eq!(code(&r[2].2).0, INVALID_CREDENTIALS);
    let a: Vec<_> = events
        .iter()
        .filter(|e| e.kind == AttackKind::Auth)
        .collect();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].details.username.as_deref(), Some("ivan"));
    assert_eq!(f["sicily"], true);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    /// Random and mutated messages never panic the parsers or the responder.
    #[test]
    fn hostile_messages_never_panic(
        data in proptest::collection::vec(any::<u8>(), 0..512),
        at in any::<usize>(),
        byte in any::<u8>(),
        cut in any::<usize>(),
    ) {
        let _ = parse_message(&data);
        let _ = parse_bind(&data);
        let _ = parse_search(&data);
        for mut m in [simple_bind(1, "cn=x", "y"), search(2, "", &["a", "b"])] {
            let i = at % m.len();
            m[i] = byte;
            m.truncate(cut % (m.len() + 1));
            let c = ctx("ldap", json!({}));
            let (report, _) = reporter("ldap", 389);
            let mut mock = Mock::new(&[m, data.clone()].concat());
            let mut f = Fields::new();
            let _ = crate::protocols::handle(&c, &peer(389), &report, &mut mock, &mut f);
        }
    }
}

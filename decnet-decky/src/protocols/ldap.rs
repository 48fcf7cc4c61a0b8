//! LDAP as an Active Directory domain controller answers a stranger (RFC 4511, MS-ADTS): the
//! rootDSE to an anonymous base search (the persona's naming contexts, DNS host name, versions,
//! SASL mechanisms), simple binds recorded (DN and password) and refused with
//! invalidCredentials and AD's `data 52e` diagnostic, SASL binds recorded (GSS-SPNEGO / NTLM
//! through [`super::ntlm`], the AUTHENTICATE recorded like SMB's), and every other search
//! refused for want of a bind, as AD does. Messages are read through the bounded [`super::ber`].

use std::io::{self, Read, Write};

use chrono::Utc;
use serde_json::Value;

use super::ber::{self, int, tlv};
use super::ntlm::{self, Exchange, Identity};
use super::{Conn, ServiceCtx, MAX_LOGGED};
use crate::log::{AttackDetails, AttackKind, Fields, Reporter};
use crate::util::{bump, clip, preview, push_bounded, set_once, Rng};

/// Largest LDAP message read.
pub const MAX_MESSAGE: usize = 64 * 1024;
/// Most operations answered on one connection.
const MAX_OPS: usize = 64;
/// Most attributes read from a search request.
const MAX_ATTRS: usize = 64;

const BIND_REQUEST: u8 = 0x60;
const BIND_RESPONSE: u8 = 0x61;
const UNBIND_REQUEST: u8 = 0x42;
const SEARCH_REQUEST: u8 = 0x63;
const SEARCH_ENTRY: u8 = 0x64;
const SEARCH_DONE: u8 = 0x65;
const EXTENDED_REQUEST: u8 = 0x77;
const EXTENDED_RESPONSE: u8 = 0x78;

const SUCCESS: u64 = 0;
const OPERATIONS_ERROR: u64 = 1;
const PROTOCOL_ERROR: u64 = 2;
const AUTH_METHOD_NOT_SUPPORTED: u64 = 7;
const SASL_BIND_IN_PROGRESS: u64 = 14;
const INVALID_CREDENTIALS: u64 = 49;

/// AD's answer to a wrong password (`data 52e`: unknown user or bad password).
pub const BAD_CREDENTIALS_DIAG: &str =
    "80090308: LdapErr: DSID-0C090439, comment: AcceptSecurityContext error, data 52e, v4563";
/// AD's answer to an operation that needs a bind.
pub const NEEDS_BIND_DIAG: &str = "000004DC: LdapErr: DSID-0C090A5C, comment: In order to perform this operation a successful bind must be completed on the connection., data 0, v4563";

/// `acme.corp` → `DC=acme,DC=corp`.
pub fn domain_dn(domain: &str) -> String {
    domain
        .split('.')
        .filter(|l| !l.is_empty())
        .map(|l| format!("DC={l}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The rootDSE attributes of the persona's domain controller.
pub fn root_dse(id: &Identity, now: &str) -> Vec<(&'static str, Vec<String>)> {
    let base = domain_dn(&id.dns_domain);
    let config = format!("CN=Configuration,{base}");
    let host = &id.nb_computer;
    let server = format!("CN={host},CN=Servers,CN=Default-First-Site-Name,CN=Sites,{config}");
    let one = |s: String| vec![s];
    vec![
        ("currentTime", one(now.to_owned())),
        (
            "subschemaSubentry",
            one(format!("CN=Aggregate,CN=Schema,{config}")),
        ),
        ("dsServiceName", one(format!("CN=NTDS Settings,{server}"))),
        (
            "namingContexts",
            vec![
                base.clone(),
                config.clone(),
                format!("CN=Schema,{config}"),
                format!("DC=DomainDnsZones,{base}"),
                format!("DC=ForestDnsZones,{base}"),
            ],
        ),
        ("defaultNamingContext", one(base.clone())),
        ("schemaNamingContext", one(format!("CN=Schema,{config}"))),
        ("configurationNamingContext", one(config.clone())),
        ("rootDomainNamingContext", one(base.clone())),
        (
            "supportedControl",
            [
                "1.2.840.113556.1.4.319",
                "1.2.840.113556.1.4.801",
                "1.2.840.113556.1.4.473",
                "1.2.840.113556.1.4.528",
                "1.2.840.113556.1.4.417",
                "1.2.840.113556.1.4.619",
                "1.2.840.113556.1.4.841",
                "1.2.840.113556.1.4.529",
                "1.2.840.113556.1.4.805",
                "1.2.840.113556.1.4.521",
                "1.2.840.113556.1.4.970",
                "1.2.840.113556.1.4.1338",
                "1.2.840.113556.1.4.474",
                "1.2.840.113556.1.4.1339",
                "1.2.840.113556.1.4.1340",
                "1.2.840.113556.1.4.1413",
                "2.16.840.1.113730.3.4.9",
                "2.16.840.1.113730.3.4.10",
                "1.2.840.113556.1.4.1504",
                "1.2.840.113556.1.4.1852",
                "1.2.840.113556.1.4.802",
            ]
            .map(String::from)
            .to_vec(),
        ),
        ("supportedLDAPVersion", vec!["3".into(), "2".into()]),
        (
            "supportedLDAPPolicies",
            [
                "MaxPoolThreads",
                "MaxPercentDirSyncRequests",
                "MaxDatagramRecv",
                "MaxReceiveBuffer",
                "InitRecvTimeout",
                "MaxConnections",
                "MaxConnIdleTime",
                "MaxPageSize",
                "MaxQueryDuration",
                "MaxResultSetSize",
                "MaxValRange",
            ]
            .map(String::from)
            .to_vec(),
        ),
        ("highestCommittedUSN", one("94210".into())),
        (
            "supportedSASLMechanisms",
            ["GSSAPI", "GSS-SPNEGO", "EXTERNAL", "DIGEST-MD5"]
                .map(String::from)
                .to_vec(),
        ),
        ("dnsHostName", one(id.dns_computer.clone())),
        (
            "ldapServiceName",
            one(format!(
                "{}:{}$@{}",
                id.dns_domain,
                host.to_ascii_lowercase(),
                id.dns_domain.to_ascii_uppercase()
            )),
        ),
        ("serverName", one(server)),
        (
            "supportedCapabilities",
            [
                "1.2.840.113556.1.4.800",
                "1.2.840.113556.1.4.1670",
                "1.2.840.113556.1.4.1791",
                "1.2.840.113556.1.4.1935",
                "1.2.840.113556.1.4.2080",
                "1.2.840.113556.1.4.2237",
            ]
            .map(String::from)
            .to_vec(),
        ),
        ("isSynchronized", one("TRUE".into())),
        ("isGlobalCatalogReady", one("TRUE".into())),
        ("domainFunctionality", one("7".into())),
        ("forestFunctionality", one("7".into())),
        ("domainControllerFunctionality", one("7".into())),
    ]
}

/// One LDAPMessage: (messageID, operation tag, operation contents).
pub fn parse_message(m: &[u8]) -> Option<(u64, u8, &[u8])> {
    let (body, _) = ber::expect(m, 0x30)?;
    let (id, rest) = ber::expect(body, 0x02)?;
    let (op, _) = ber::read(rest).ok()?;
    Some((ber::uint(id)?, op.tag, op.value))
}

/// A bind request: version, DN, and the credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential<'a> {
    Simple(&'a [u8]),
    Sasl {
        mechanism: &'a [u8],
        credentials: &'a [u8],
    },
    /// Sicily package discovery, negotiate or response (tags `[9]`, `[10]`, `[11]`).
    Sicily(u8, &'a [u8]),
    Other(u8),
}

const SICILY_DISCOVERY: u8 = 0x89;
const SICILY_NEGOTIATE: u8 = 0x8a;
const SICILY_RESPONSE: u8 = 0x8b;

pub fn parse_bind(op: &[u8]) -> Option<(u64, &[u8], Credential<'_>)> {
    let (version, rest) = ber::expect(op, 0x02)?;
    let (name, rest) = ber::expect(rest, 0x04)?;
    let (auth, _) = ber::read(rest).ok()?;
    let cred = match auth.tag {
        0x80 => Credential::Simple(auth.value),
        0xa3 => {
            let (mechanism, rest) = ber::expect(auth.value, 0x04)?;
            let credentials = ber::expect(rest, 0x04).map_or(&[][..], |(c, _)| c);
            Credential::Sasl {
                mechanism,
                credentials,
            }
        }
        t @ (SICILY_DISCOVERY | SICILY_NEGOTIATE | SICILY_RESPONSE) => {
            Credential::Sicily(t, auth.value)
        }
        t => Credential::Other(t),
    };
    Some((ber::uint(version)?, name, cred))
}

/// What a search request asks: base, scope, and the attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Search<'a> {
    pub base: &'a [u8],
    pub scope: u64,
    pub attrs: Vec<&'a [u8]>,
}

pub fn parse_search(op: &[u8]) -> Option<Search<'_>> {
    let (base, rest) = ber::expect(op, 0x04)?;
    let (scope, rest) = ber::expect(rest, 0x0a)?;
    // deref, size limit, time limit, types only, filter
    let mut rest = rest;
    for _ in 0..5 {
        rest = ber::read(rest).ok()?.1;
    }
    let attrs = ber::expect(rest, 0x30)
        .map(|(v, _)| {
            ber::children(v, MAX_ATTRS)
                .into_iter()
                .filter(|t| t.tag == 0x04)
                .map(|t| t.value)
                .collect()
        })
        .unwrap_or_default();
    Some(Search {
        base,
        scope: ber::uint(scope)?,
        attrs,
    })
}

fn message(id: u64, op: Vec<u8>) -> Vec<u8> {
    tlv(0x30, &[int(0x02, id), op].concat())
}

fn result(tag: u8, code: u64, diag: &str, extra: &[u8]) -> Vec<u8> {
    result_dn(tag, code, b"", diag, extra)
}

/// An LDAPResult whose matchedDN is `dn` (Sicily binds carry their token there).
fn result_dn(tag: u8, code: u64, dn: &[u8], diag: &str, extra: &[u8]) -> Vec<u8> {
    tlv(
        tag,
        &[
            int(0x0a, code),
            tlv(0x04, dn),
            tlv(0x04, diag.as_bytes()),
            extra.to_vec(),
        ]
        .concat(),
    )
}

/// The rootDSE entry limited to `attrs` (all when none, `*` or only `+` are asked).
pub fn root_dse_entry(id: &Identity, now: &str, attrs: &[&[u8]]) -> Vec<u8> {
    let wanted: Vec<String> = attrs
        .iter()
        .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
        .collect();
    let all = wanted.is_empty() || wanted.iter().any(|a| a == "*" || a == "+");
    let mut list = Vec::new();
    for (name, values) in root_dse(id, now) {
        if !all && !wanted.iter().any(|w| w == &name.to_ascii_lowercase()) {
            continue;
        }
        let vals: Vec<u8> = values
            .iter()
            .flat_map(|v| tlv(0x04, v.as_bytes()))
            .collect();
        list.extend(tlv(
            0x30,
            &[tlv(0x04, name.as_bytes()), tlv(0x31, &vals)].concat(),
        ));
    }
    tlv(SEARCH_ENTRY, &[tlv(0x04, b""), tlv(0x30, &list)].concat())
}

fn ldap_time() -> String {
    Utc::now().format("%Y%m%d%H%M%S.0Z").to_string()
}

pub fn handle<S: Read + Write>(
    mut conn: Conn<S>,
    ctx: &ServiceCtx,
    report: &Reporter,
    fields: &mut Fields,
) -> io::Result<()> {
    let id = Identity::from_ctx(ctx);
    let ntlm = Exchange::new(id.clone(), &mut Rng::new());
    for _ in 0..MAX_OPS {
        let Some(m) = ber::read_sequence(&mut conn, MAX_MESSAGE)? else {
            return Ok(());
        };
        let Some((msg_id, tag, op)) = parse_message(&m) else {
            set_once(fields, "reason", Value::from("bad ldap message"));
            return Ok(());
        };
        bump(fields, "ldap_operations");
        let reply = match tag {
            BIND_REQUEST => match parse_bind(op) {
                Some((version, dn, cred)) => bind(&ntlm, version, dn, cred, report, fields),
                None => result(BIND_RESPONSE, PROTOCOL_ERROR, "", &[]),
            },
            SEARCH_REQUEST => {
                let Some(Search { base, scope, attrs }) = parse_search(op) else {
                    conn.send(&message(
                        msg_id,
                        result(SEARCH_DONE, PROTOCOL_ERROR, "", &[]),
                    ))?;
                    continue;
                };
                let rendered = format!(
                    "search base={:?} scope={scope} attrs={}",
                    clip(base, 256),
                    attrs
                        .iter()
                        .take(16)
                        .map(|a| preview(a, 64))
                        .collect::<Vec<_>>()
                        .join(",")
                );
                push_bounded(
                    fields,
                    "commands",
                    Value::from(rendered.clone()),
                    MAX_LOGGED,
                );
                report.emit(
                    AttackKind::Command,
                    AttackDetails {
                        command: Some(rendered),
                        ..AttackDetails::default()
                    },
                );
                if base.is_empty() && scope == 0 {
                    conn.send(&message(msg_id, root_dse_entry(&id, &ldap_time(), &attrs)))?;
                    result(SEARCH_DONE, SUCCESS, "", &[])
                } else {
                    result(SEARCH_DONE, OPERATIONS_ERROR, NEEDS_BIND_DIAG, &[])
                }
            }
            UNBIND_REQUEST => return Ok(()),
            EXTENDED_REQUEST => {
                let oid = ber::expect(op, 0x80).map(|(o, _)| clip(o, 128));
                set_once(
                    fields,
                    "extended_request",
                    Value::from(oid.unwrap_or_default()),
                );
                result(EXTENDED_RESPONSE, PROTOCOL_ERROR, "", &[])
            }
            other => {
                set_once(
                    fields,
                    "reason",
                    Value::from(format!("ldap op 0x{other:02x}")),
                );
                return Ok(());
            }
        };
        conn.send(&message(msg_id, reply))?;
    }
    Ok(())
}

/// Answers one bind, recording the credential.
fn bind(
    ntlm: &Exchange,
    version: u64,
    dn: &[u8],
    cred: Credential<'_>,
    report: &Reporter,
    fields: &mut Fields,
) -> Vec<u8> {
    let dn = clip(dn, 512);
    set_once(fields, "ldap_version", Value::from(version));
    match cred {
        Credential::Simple(pw) => {
            if dn.is_empty() && pw.is_empty() {
                set_once(fields, "anonymous_bind", Value::from(true));
                return result(BIND_RESPONSE, SUCCESS, "", &[]);
            }
            let password = clip(pw, 256);
            set_once(fields, "username", Value::from(dn.clone()));
            push_bounded(
                fields,
                "credentials",
                serde_json::json!({"username": dn, "password": password}),
                MAX_LOGGED,
            );
            report.emit(
                AttackKind::Auth,
                AttackDetails {
                    username: Some(dn),
                    password: Some(password),
                    method: Some("simple".into()),
                    accepted: Some(false),
                    ..AttackDetails::default()
                },
            );
            result(
                BIND_RESPONSE,
                INVALID_CREDENTIALS,
                BAD_CREDENTIALS_DIAG,
                &[],
            )
        }
        Credential::Sasl {
            mechanism,
            credentials,
        } => {
            let mech = clip(mechanism, 64);
            push_bounded(
                fields,
                "sasl_mechanisms",
                Value::from(mech.clone()),
                MAX_LOGGED,
            );
            let token = ntlm::find(credentials);
            match token.and_then(|t| ntlm::message_type(t).map(|k| (k, t))) {
                Some((1, t)) => {
                    let challenge = ntlm.on_negotiate(t, fields);
                    let creds = if mech.eq_ignore_ascii_case("GSS-SPNEGO") {
                        ntlm::spnego_challenge(&challenge)
                    } else {
                        challenge
                    };
                    result(BIND_RESPONSE, SASL_BIND_IN_PROGRESS, "", &tlv(0x87, &creds))
                }
                Some((3, t)) => {
                    ntlm.on_authenticate(t, "ldap", report, fields);
                    result(
                        BIND_RESPONSE,
                        INVALID_CREDENTIALS,
                        BAD_CREDENTIALS_DIAG,
                        &[],
                    )
                }
                _ => {
                    let mut extra = Fields::new();
                    extra.insert("mechanism".into(), Value::from(mech.clone()));
                    if !credentials.is_empty() {
                        extra.insert("credentials".into(), Value::from(preview(credentials, 256)));
                    }
                    report.emit(
                        AttackKind::Auth,
                        AttackDetails {
                            username: (!dn.is_empty()).then_some(dn),
                            method: Some(format!("sasl:{mech}")),
                            accepted: Some(false),
                            extra,
                            ..AttackDetails::default()
                        },
                    );
                    if matches!(
                        mech.to_ascii_uppercase().as_str(),
                        "GSSAPI" | "GSS-SPNEGO" | "EXTERNAL" | "DIGEST-MD5"
                    ) {
                        result(
                            BIND_RESPONSE,
                            INVALID_CREDENTIALS,
                            BAD_CREDENTIALS_DIAG,
                            &[],
                        )
                    } else {
                        result(BIND_RESPONSE, AUTH_METHOD_NOT_SUPPORTED, "", &[])
                    }
                }
            }
        }
        // MS-ADTS Sicily (what impacket and ldap3 use for NTLM): the tokens travel as the
        // bind's credential and the answer's matchedDN.
        Credential::Sicily(kind, token) => {
            set_once(fields, "sicily", Value::from(true));
            match (kind, ntlm::find(token)) {
                (SICILY_DISCOVERY, _) => result_dn(BIND_RESPONSE, SUCCESS, b"NTLM", "", &[]),
                (SICILY_NEGOTIATE, Some(t)) if ntlm::message_type(t) == Some(1) => {
                    let challenge = ntlm.on_negotiate(t, fields);
                    result_dn(BIND_RESPONSE, SUCCESS, &challenge, "", &[])
                }
                (SICILY_RESPONSE, Some(t)) if ntlm::message_type(t) == Some(3) => {
                    ntlm.on_authenticate(t, "ldap", report, fields);
                    result(
                        BIND_RESPONSE,
                        INVALID_CREDENTIALS,
                        BAD_CREDENTIALS_DIAG,
                        &[],
                    )
                }
                _ => result(BIND_RESPONSE, PROTOCOL_ERROR, "", &[]),
            }
        }
        Credential::Other(_) => result(BIND_RESPONSE, AUTH_METHOD_NOT_SUPPORTED, "", &[]),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{ctx, peer, reporter, Mock};
    use super::*;
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
        super::super::handle(&c, &peer(389), &report, &mut m, &mut f).expect("ok");
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
                let _ = super::super::handle(&c, &peer(389), &report, &mut mock, &mut f);
            }
        }
    }
}

//! LDAP as an Active Directory domain controller answers a stranger (RFC 4511, MS-ADTS): the
//! rootDSE to an anonymous base search (the persona's naming contexts, DNS host name, versions,
//! SASL mechanisms), simple binds recorded (DN and password) and refused with
//! invalidCredentials and AD's `data 52e` diagnostic, SASL binds recorded (GSS-SPNEGO / NTLM
//! through [`super::ntlm`], the AUTHENTICATE recorded like SMB's), and every other search
//! refused for want of a bind, as AD does. Messages are read through the bounded [`super::ber`].

use std::io::{self, Read, Write};

use chrono::Utc;
use serde_json::Value;

mod root_dse;

pub use root_dse::{domain_dn, root_dse};

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
mod tests;

//! PostgreSQL: SSLRequest refused ('N'), the startup message read, the persona's
//! authentication request (md5 by default, cleartext or SCRAM-SHA-256 per config), then the
//! real `FATAL 28P01 password authentication failed` error.
//!
//! A startup packet of a protocol the server does not speak (nmap's SMBProgNeg probe reads
//! as version 65363.19778) gets PostgreSQL's own `0A000` error, with the `postmaster.c` line of
//! the persona's version, which is how nmap tells versions apart.

use std::io::{self, Read, Write};

use serde_json::{json, Map, Value};

use super::ssh::b64;
use super::{tls, Conn, ServiceCtx, MAX_LOGGED};
use crate::log::{AttackDetails, AttackKind, Fields, Reporter};
use crate::util::{b64_decode, clip, hex, push_bounded, set_once, Rng};

pub const DEFAULT_VERSION: &str = "15.5";

/// PostgreSQL's own bound on a startup packet.
const MAX_STARTUP: usize = 10_000;
/// Largest password / SASL message read (PostgreSQL allows 1000 for passwords, more for SASL).
const MAX_AUTH_MSG: usize = 8192;
/// Startup parameters kept besides user, database and application_name.
const MAX_PARAMS: usize = 16;

const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;
const CANCEL_REQUEST: u32 = 80_877_102;

/// The authentication the persona asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    Cleartext,
    Md5,
    Scram,
}

impl AuthMethod {
    pub fn from_config(s: Option<&str>) -> Self {
        match s {
            Some("password") => AuthMethod::Cleartext,
            Some("scram-sha-256") => AuthMethod::Scram,
            _ => AuthMethod::Md5,
        }
    }

    fn name(self) -> &'static str {
        match self {
            AuthMethod::Cleartext => "password",
            AuthMethod::Md5 => "md5",
            AuthMethod::Scram => "scram-sha-256",
        }
    }
}

/// The `postmaster.c` line of the "unsupported frontend protocol" error in the persona's
/// major version (what nmap's version matches read).
pub fn postmaster_line(version: &str) -> u32 {
    let major = version.split(['.', ' ']).next().unwrap_or_default();
    match major {
        "16" | "15" => 2194,
        "14" => 2138,
        "13" => 2133,
        "12" => 2119,
        "11" => 2037,
        "10" => 2099,
        "9" => 2050,
        _ => 2194,
    }
}

/// One backend message: type byte, length (itself included), body.
pub fn message(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![kind];
    out.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// An ErrorResponse of severity FATAL: `(field code, value)` pairs after S and V.
pub fn fatal(fields: &[(u8, &str)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (code, value) in [(b'S', "FATAL"), (b'V', "FATAL")].iter().chain(fields) {
        body.push(*code);
        // Attacker text ends up here (the user name): a NUL would cut the field short.
        body.extend(value.bytes().filter(|&b| b != 0));
        body.push(0);
    }
    body.push(0);
    message(b'E', &body)
}

pub fn auth_failed(user: &str) -> Vec<u8> {
    let msg = format!("password authentication failed for user \"{user}\"");
    fatal(&[
        (b'C', "28P01"),
        (b'M', &msg),
        (b'F', "auth.c"),
        (b'L', "326"),
        (b'R', "auth_failed"),
    ])
}

pub fn unsupported_protocol(code: u32, version: &str) -> Vec<u8> {
    let msg = format!(
        "unsupported frontend protocol {}.{}: server supports 3.0 to 3.0",
        code >> 16,
        code & 0xffff
    );
    let line = postmaster_line(version).to_string();
    fatal(&[
        (b'C', "0A000"),
        (b'M', &msg),
        (b'F', "postmaster.c"),
        (b'L', &line),
        (b'R', "ProcessStartupPacket"),
    ])
}

/// The md5 password message a client sends: `md5` + md5(md5(password + user) + salt).
pub fn md5_password(user: &str, password: &str, salt: [u8; 4]) -> String {
    use md5::{Digest, Md5};
    let inner = hex(&Md5::digest(
        [password.as_bytes(), user.as_bytes()].concat(),
    ));
    let outer = Md5::digest([inner.as_bytes(), &salt[..]].concat());
    format!("md5{}", hex(&outer))
}

/// `key\0value\0…\0` pairs of a startup packet (bounded by the packet).
pub fn parse_params(body: &[u8]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut parts = body.split(|&b| b == 0);
    while let (Some(k), Some(v)) = (parts.next(), parts.next()) {
        if k.is_empty() {
            break;
        }
        out.push((clip(k, 64), clip(v, 256)));
    }
    out
}

/// The attributes of a SCRAM message (`n,,n=user,r=nonce` or `c=…,r=…,p=…`).
pub fn scram_attr(msg: &str, key: char) -> Option<&str> {
    msg.split(',').find_map(|a| {
        let mut c = a.chars();
        (c.next() == Some(key) && c.next() == Some('=')).then(|| &a[2..])
    })
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_owned())
}

fn read_u32<S: Read + Write>(conn: &mut Conn<S>) -> io::Result<u32> {
    let b = conn.read_exact_vec(4)?;
    Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// One frontend message after the startup: (type, body). `None` at end of stream.
fn read_message<S: Read + Write>(conn: &mut Conn<S>) -> io::Result<Option<(u8, Vec<u8>)>> {
    let Some(kind) = conn.peek()? else {
        return Ok(None);
    };
    conn.read_exact_vec(1)?;
    let len = read_u32(conn)? as usize;
    if !(4..=MAX_AUTH_MSG).contains(&len) {
        return Err(bad("invalid message length"));
    }
    Ok(Some((kind, conn.read_exact_vec(len - 4)?)))
}

/// The startup packet, after any SSL / GSS encryption requests: (protocol code, body).
/// What the client opened with.
enum Startup {
    /// A startup (or unknown protocol) packet: code, body.
    Packet(u32, Vec<u8>),
    /// An SSLRequest the server will accept ('S' not yet sent).
    Tls,
    /// Nothing to answer (end of stream, cancel request, bad length).
    Done,
}

/// Reads packets up to the startup message; SSL / GSS requests are refused with 'N', or, with
/// `tls`, an SSLRequest is handed back to be accepted.
fn read_startup<S: Read + Write>(
    conn: &mut Conn<S>,
    fields: &mut Fields,
    tls: bool,
) -> io::Result<Startup> {
    for _ in 0..3 {
        if conn.peek()?.is_none() {
            return Ok(Startup::Done);
        }
        let len = read_u32(conn)? as usize;
        if !(8..=MAX_STARTUP).contains(&len) {
            // PostgreSQL logs "invalid length of startup packet" and closes without a word.
            fields.insert("reason".into(), Value::from("invalid startup length"));
            return Ok(Startup::Done);
        }
        let code = read_u32(conn)?;
        let body = conn.read_exact_vec(len - 8)?;
        match code {
            SSL_REQUEST => {
                fields.insert("ssl_request".into(), Value::from(true));
                if tls {
                    return Ok(Startup::Tls);
                }
                conn.send(b"N")?;
            }
            GSSENC_REQUEST => {
                fields.insert("gssenc_request".into(), Value::from(true));
                conn.send(b"N")?;
            }
            CANCEL_REQUEST => {
                fields.insert("cancel_request".into(), Value::from(true));
                return Ok(Startup::Done);
            }
            _ => return Ok(Startup::Packet(code, body)),
        }
    }
    Ok(Startup::Done)
}

/// Whether the persona accepts SSLRequest (`ssl`, with the certificate made at start-up).
pub fn ssl_enabled(ctx: &ServiceCtx) -> bool {
    ctx.config.get("ssl").and_then(Value::as_bool) == Some(true)
}

pub fn handle<S: Read + Write>(
    mut conn: Conn<S>,
    ctx: &ServiceCtx,
    report: &Reporter,
    fields: &mut Fields,
) -> io::Result<()> {
    let tls = ctx.tls.clone().filter(|_| ssl_enabled(ctx));
    match (read_startup(&mut conn, fields, tls.is_some())?, tls) {
        (Startup::Packet(code, body), _) => login(conn, ctx, report, fields, code, body),
        (Startup::Tls, Some(config)) => {
            conn.send(b"S")?;
            let mut t = tls::accept_reported(&config, conn.into_prefixed(), fields, report)?;
            fields.insert("tls".into(), Value::from(true));
            let mut inner = Conn::new(&mut t);
            let res = match read_startup(&mut inner, fields, false)? {
                Startup::Packet(code, body) => login(inner, ctx, report, fields, code, body),
                _ => Ok(()),
            };
            tls::close(&mut t);
            res
        }
        _ => Ok(()),
    }
}

/// From the startup message to the authentication failure.
fn login<S: Read + Write>(
    mut conn: Conn<S>,
    ctx: &ServiceCtx,
    report: &Reporter,
    fields: &mut Fields,
    code: u32,
    body: Vec<u8>,
) -> io::Result<()> {
    let version = ctx
        .config
        .line("version")
        .unwrap_or_else(|| DEFAULT_VERSION.to_owned());
    let method = AuthMethod::from_config(ctx.config.string("auth_method").as_deref());
    fields.insert(
        "protocol_version".into(),
        Value::from(format!("{}.{}", code >> 16, code & 0xffff)),
    );
    if code >> 16 != 3 {
        return conn.send(&unsupported_protocol(code, &version));
    }
    let params = parse_params(&body);
    let get = |k: &str| params.iter().find(|(p, _)| p == k).map(|(_, v)| v.clone());
    let user = get("user").unwrap_or_default();
    // PostgreSQL's default database is the user's name.
    let database = get("database").unwrap_or_else(|| user.clone());
    let app = get("application_name");
    let mut extra = Map::new();
    extra.insert("database".into(), Value::from(database.clone()));
    if let Some(a) = &app {
        extra.insert("application_name".into(), Value::from(a.clone()));
        fields.insert("application_name".into(), Value::from(a.clone()));
    }
    let others: Map<String, Value> = params
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "user" | "database" | "application_name"))
        .take(MAX_PARAMS)
        .map(|(k, v)| (k.clone(), Value::from(v.clone())))
        .collect();
    if !others.is_empty() {
        extra.insert("params".into(), Value::Object(others));
    }
    report.emit(
        AttackKind::Client,
        AttackDetails {
            username: Some(user.clone()),
            client_version: app.clone(),
            extra: extra.clone(),
            ..Default::default()
        },
    );
    if user.is_empty() {
        return conn.send(&fatal(&[
            (b'C', "28000"),
            (b'M', "no PostgreSQL user name specified in startup packet"),
            (b'F', "postmaster.c"),
            (b'L', "2257"),
            (b'R', "ProcessStartupPacket"),
        ]));
    }
    set_once(fields, "username", Value::from(user.clone()));
    fields.insert("database".into(), Value::from(database.clone()));

    let mut rng = Rng::new();
    let mut details = AttackDetails {
        username: Some(user.clone()),
        method: Some(method.name().into()),
        accepted: Some(false),
        extra,
        ..Default::default()
    };
    match method {
        AuthMethod::Cleartext => {
            conn.send(&message(b'R', &3u32.to_be_bytes()))?;
            let Some((b'p', body)) = read_message(&mut conn)? else {
                return Ok(());
            };
            let (pass, _) = body.split_at(body.iter().position(|&b| b == 0).unwrap_or(body.len()));
            details.password = Some(clip(pass, 256));
        }
        AuthMethod::Md5 => {
            let mut salt = [0u8; 4];
            rng.fill(&mut salt);
            let mut req = 5u32.to_be_bytes().to_vec();
            req.extend_from_slice(&salt);
            conn.send(&message(b'R', &req))?;
            let Some((b'p', body)) = read_message(&mut conn)? else {
                return Ok(());
            };
            let (hash, _) = body.split_at(body.iter().position(|&b| b == 0).unwrap_or(body.len()));
            details.hash = Some(clip(hash, 256));
            details.extra.insert("salt".into(), Value::from(hex(&salt)));
        }
        AuthMethod::Scram => {
            if !scram(&mut conn, &mut rng, &mut details)? {
                return Ok(());
            }
        }
    }
    let mut cred = Map::new();
    cred.insert("username".into(), Value::from(user.clone()));
    cred.insert("method".into(), Value::from(method.name()));
    if let Some(p) = &details.password {
        cred.insert("password".into(), Value::from(p.clone()));
    }
    if let Some(h) = &details.hash {
        cred.insert("hash".into(), Value::from(h.clone()));
    }
    push_bounded(fields, "credentials", Value::Object(cred), MAX_LOGGED);
    report.emit(AttackKind::Auth, details);
    conn.send(&auth_failed(&user))
}

/// The SCRAM-SHA-256 exchange up to the client's proof; `false` if the client left first.
fn scram<S: Read + Write>(
    conn: &mut Conn<S>,
    rng: &mut Rng,
    details: &mut AttackDetails,
) -> io::Result<bool> {
    conn.send(&message(b'R', b"\0\0\0\x0aSCRAM-SHA-256\0\0"))?;
    let Some((b'p', body)) = read_message(conn)? else {
        return Ok(false);
    };
    // SASLInitialResponse: mechanism\0, int32 length, client-first-message.
    let nul = body.iter().position(|&b| b == 0).unwrap_or(body.len());
    let mechanism = clip(&body[..nul], 64);
    let first = body.get(nul + 5..).unwrap_or_default();
    let first = clip(first, 1024);
    details
        .extra
        .insert("sasl_mechanism".into(), Value::from(mechanism));
    // The GS2 header (`n,,`) comes before client-first-message-bare.
    let bare = first.splitn(3, ',').nth(2).unwrap_or_default().to_owned();
    let Some(client_nonce) = scram_attr(&bare, 'r').map(str::to_owned) else {
        return Ok(false);
    };
    let mut salt = [0u8; 16];
    rng.fill(&mut salt);
    let mut nonce = [0u8; 18];
    rng.fill(&mut nonce);
    let server_first = format!(
        "r={client_nonce}{},s={},i=4096",
        b64(&nonce, true),
        b64(&salt, true)
    );
    let mut cont = 11u32.to_be_bytes().to_vec();
    cont.extend_from_slice(server_first.as_bytes());
    conn.send(&message(b'R', &cont))?;
    let Some((b'p', body)) = read_message(conn)? else {
        return Ok(false);
    };
    let last = clip(&body, 1024);
    let proof = scram_attr(&last, 'p').unwrap_or_default();
    details.hash = Some(proof.to_owned());
    // What an offline guess needs: AuthMessage = client-first-bare "," server-first ","
    // client-final-without-proof, with the salt and iteration count.
    let without_proof = last.rsplit_once(",p=").map_or(last.as_str(), |(w, _)| w);
    let valid_proof = b64_decode(proof).is_some_and(|p| p.len() == 32);
    details.extra.insert(
        "scram".into(),
        json!({
            "auth_message": format!("{bare},{server_first},{without_proof}"),
            "salt": b64(&salt, true),
            "iterations": 4096,
            "proof_valid_length": valid_proof,
        }),
    );
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{ctx, peer, reporter, Mock};
    use super::*;
    use crate::log::AttackEvent;
    use proptest::prelude::*;

    fn startup(params: &[(&str, &str)]) -> Vec<u8> {
        let mut body = 196_608u32.to_be_bytes().to_vec();
        for (k, v) in params {
            body.extend_from_slice(k.as_bytes());
            body.push(0);
            body.extend_from_slice(v.as_bytes());
            body.push(0);
        }
        body.push(0);
        let mut out = (body.len() as u32 + 4).to_be_bytes().to_vec();
        out.extend_from_slice(&body);
        out
    }

    /// Runs the responder; (raw output, summary fields, step events).
    fn run_events(slug: &str, config: Value, input: &[u8]) -> (Vec<u8>, Fields, Vec<AttackEvent>) {
        let c = ctx(slug, config);
        let (report, sink) = reporter(slug, 5432);
        let mut m = Mock::new(input);
        let mut f = Fields::new();
        super::super::handle(&c, &peer(5432), &report, &mut m, &mut f).expect("ok");
        (m.output, f, sink.events())
    }

    fn ssl_request() -> Vec<u8> {
        [8u32.to_be_bytes(), SSL_REQUEST.to_be_bytes()].concat()
    }

    fn password(p: &str) -> Vec<u8> {
        message(b'p', &[p.as_bytes(), b"\0"].concat())
    }

    /// Splits backend output into (type, body) messages; the lone 'N' of an SSL answer first.
    fn messages(mut out: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut v = Vec::new();
        if out.first() == Some(&b'N') {
            v.push((b'N', Vec::new()));
            out = &out[1..];
        }
        while out.len() >= 5 {
            let len = u32::from_be_bytes([out[1], out[2], out[3], out[4]]) as usize;
            v.push((out[0], out[5..1 + len].to_vec()));
            out = &out[1 + len..];
        }
        v
    }

    #[test]
    fn md5_matches_libpq() {
        // Python: "md5" + md5(md5(b"secretalice").hexdigest().encode() + bytes([1, 2, 3, 4])).
        assert_eq!(
            md5_password("alice", "secret", [1, 2, 3, 4]),
            "md598a0412b9c31436fc53776e863350083"
        );
    }

    #[test]
    fn error_layout() {
        let e = auth_failed("bob");
        assert_eq!(e[0], b'E');
        let len = u32::from_be_bytes([e[1], e[2], e[3], e[4]]) as usize;
        assert_eq!(len, e.len() - 1);
        assert_eq!(
            &e[5..],
            &b"SFATAL\0VFATAL\0C28P01\0Mpassword authentication failed for user \"bob\"\0Fauth.c\0L326\0Rauth_failed\0\0"[..]
        );
        let u = unsupported_protocol(0xff53_4d42, "14.5");
        let text = String::from_utf8_lossy(&u);
        assert!(text.contains(
            "C0A000\0Munsupported frontend protocol 65363.19778: server supports 3.0 to 3.0\0Fpostmaster.c\0L2138\0RProcessStartupPacket\0\0"
        ));
    }

    #[test]
    fn md5_login_is_recorded_and_fails() {
        let mut input = ssl_request();
        input.extend(startup(&[
            ("user", "admin"),
            ("database", "prod"),
            ("application_name", "psql"),
            ("client_encoding", "UTF8"),
        ]));
        input.extend(password("md5deadbeef"));
        let (out, f, ev) = run_events("postgres", json!({}), &input);
        let msgs = messages(&out);
        assert_eq!(msgs[0].0, b'N');
        assert_eq!(msgs[1].0, b'R');
        assert_eq!(&msgs[1].1[..4], &5u32.to_be_bytes());
        assert_eq!(msgs[1].1.len(), 8);
        assert_eq!(msgs[2].0, b'E');
        assert!(String::from_utf8_lossy(&msgs[2].1)
            .contains("password authentication failed for user \"admin\""));
        assert_eq!(f["username"], "admin");
        assert_eq!(f["database"], "prod");
        assert_eq!(f["ssl_request"], true);
        let client = &ev[0];
        assert_eq!(client.kind, AttackKind::Client);
        assert_eq!(client.details.client_version.as_deref(), Some("psql"));
        assert_eq!(client.details.extra["database"], "prod");
        assert_eq!(client.details.extra["params"]["client_encoding"], "UTF8");
        let auth = &ev[1];
        assert_eq!(auth.kind, AttackKind::Auth);
        assert_eq!(auth.details.username.as_deref(), Some("admin"));
        assert_eq!(auth.details.hash.as_deref(), Some("md5deadbeef"));
        assert_eq!(auth.details.method.as_deref(), Some("md5"));
        assert_eq!(auth.details.accepted, Some(false));
        assert_eq!(auth.details.extra["salt"].as_str().map(str::len), Some(8));
    }

    #[test]
    fn cleartext_password_is_recorded() {
        let mut input = startup(&[("user", "postgres")]);
        input.extend(password("hunter2"));
        let (out, f, ev) = run_events("postgres", json!({"auth_method": "password"}), &input);
        let msgs = messages(&out);
        assert_eq!(msgs[0], (b'R', 3u32.to_be_bytes().to_vec()));
        assert_eq!(msgs[1].0, b'E');
        assert_eq!(f["database"], "postgres", "defaults to the user name");
        assert_eq!(ev[1].details.password.as_deref(), Some("hunter2"));
        assert_eq!(ev[1].details.method.as_deref(), Some("password"));
    }

    #[test]
    fn scram_records_user_and_proof() {
        let mut input = startup(&[("user", "svc")]);
        let first = b"n,,n=,r=abcdefNONCE";
        let mut init = b"SCRAM-SHA-256\0".to_vec();
        init.extend_from_slice(&(first.len() as u32).to_be_bytes());
        init.extend_from_slice(first);
        input.extend(message(b'p', &init));
        // The client's final message echoes the combined nonce; any nonce does for the decoy.
        let proof = b64(&[7u8; 32], true);
        input.extend(message(
            b'p',
            format!("c=biws,r=abcdefNONCEserver,p={proof}").as_bytes(),
        ));
        let c = ctx("postgres", json!({"auth_method": "scram-sha-256"}));
        let (report, sink) = reporter("postgres", 5432);
        let mut m = Mock::new(&input);
        let mut f = Fields::new();
        super::super::handle(&c, &peer(5432), &report, &mut m, &mut f).expect("ok");
        let msgs = messages(&m.output);
        assert_eq!(msgs[0].1, b"\0\0\0\x0aSCRAM-SHA-256\0\0");
        assert_eq!(&msgs[1].1[..4], &11u32.to_be_bytes());
        let server_first = String::from_utf8_lossy(&msgs[1].1[4..]).into_owned();
        assert!(server_first.starts_with("r=abcdefNONCE"), "{server_first}");
        assert!(server_first.ends_with(",i=4096"));
        assert_eq!(msgs[2].0, b'E');
        let ev = sink.events();
        let auth = &ev[1];
        assert_eq!(auth.details.username.as_deref(), Some("svc"));
        assert_eq!(auth.details.hash.as_deref(), Some(proof.as_str()));
        assert_eq!(auth.details.method.as_deref(), Some("scram-sha-256"));
        let am = auth.details.extra["scram"]["auth_message"]
            .as_str()
            .expect("auth message");
        assert!(am.starts_with("n=,r=abcdefNONCE,r=abcdefNONCE"));
        assert!(am.ends_with(",c=biws,r=abcdefNONCEserver"));
        assert_eq!(auth.details.extra["scram"]["proof_valid_length"], true);
    }

    #[test]
    fn nmap_probe_gets_the_version_error() {
        let mut probe = vec![0, 0, 0, 0xa4, 0xff, b'S', b'M', b'B'];
        probe.resize(168, 0x41);
        let (out, f, _) = run_events("postgres", json!({"version": "14.5"}), &probe);
        let out = String::from_utf8_lossy(&out);
        assert!(out.starts_with('E'));
        assert!(out.contains("Munsupported frontend protocol 65363.19778"));
        assert!(out.contains("L2138\0"));
        assert_eq!(f["protocol_version"], "65363.19778");
    }

    #[test]
    fn missing_user_and_bad_lengths() {
        let (out, _, ev) = run_events("postgres", json!({}), &startup(&[("database", "x")]));
        assert!(String::from_utf8_lossy(&out).contains("C28000"));
        assert_eq!(ev.len(), 1);
        let (out, f, _) = run_events("postgres", json!({}), &[0, 0, 0, 3, 1, 2, 3]);
        assert!(out.is_empty());
        assert_eq!(f["reason"], "invalid startup length");
        let (out, _, _) = run_events("postgres", json!({}), b"");
        assert!(out.is_empty());
    }

    #[test]
    fn params_and_scram_attrs() {
        assert_eq!(
            parse_params(b"user\0a\0database\0b\0\0"),
            vec![("user".into(), "a".into()), ("database".into(), "b".into())]
        );
        assert_eq!(parse_params(b"user"), vec![]);
        assert_eq!(scram_attr("c=biws,r=x,p=AAA=", 'p'), Some("AAA="));
        assert_eq!(scram_attr("n=,r=", 'n'), Some(""));
        assert_eq!(scram_attr("rr=1", 'r'), None);
    }

    fn valid_session() -> Vec<u8> {
        let mut input = ssl_request();
        input.extend(startup(&[("user", "u"), ("database", "d")]));
        input.extend(password("md5abc"));
        input
    }

    proptest! {
        #[test]
        fn hostile_input_never_panics(
            data in proptest::collection::vec(any::<u8>(), 0..600),
            method in "(md5|password|scram-sha-256)",
        ) {
            let c = ctx("postgres", json!({"auth_method": method}));
            let (report, _) = reporter("postgres", 5432);
            let mut f = Fields::new();
            let _ = super::super::handle(&c, &peer(5432), &report, &mut Mock::new(&data), &mut f);
        }

        #[test]
        fn mutated_sessions_never_panic(
            cut in 0usize..80,
            flips in proptest::collection::vec((0usize..80, any::<u8>()), 0..4),
            method in "(md5|password|scram-sha-256)",
        ) {
            let mut data = valid_session();
            for (i, b) in flips {
                if let Some(x) = data.get_mut(i) {
                    *x = b;
                }
            }
            data.truncate(cut.min(data.len()));
            let c = ctx("postgres", json!({"auth_method": method}));
            let (report, _) = reporter("postgres", 5432);
            let mut f = Fields::new();
            let _ = super::super::handle(&c, &peer(5432), &report, &mut Mock::new(&data), &mut f);
        }
    }
}

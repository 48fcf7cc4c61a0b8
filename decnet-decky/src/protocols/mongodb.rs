//! MongoDB with authentication enabled: `hello`/`isMaster`, `buildInfo`, `serverStatus` and
//! `ping` are answered with the persona's version (OP_MSG and legacy OP_QUERY), SCRAM
//! (`saslStart`/`saslContinue`) runs to the client's proof and then fails with code 18, every
//! other command gets code 13 (requires authentication). Every command is recorded.

use std::io::{self, Read, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use super::bson::{self, doc_json, get, Bson, Doc};
use super::ssh::b64;
use super::{Conn, ServiceCtx, MAX_COMMANDS, MAX_LOGGED};
use crate::log::{AttackDetails, AttackKind, Fields, Reporter};
use crate::util::{bump, clip, push_bounded, set_once, Rng};

pub const DEFAULT_VERSION: &str = "6.0.12";

const OP_REPLY: i32 = 1;
const OP_QUERY: i32 = 2004;
const OP_MSG: i32 = 2013;
/// Largest message read (the server's own limit is 48 MB; a decoy needs far less).
const MAX_MESSAGE: usize = 1024 * 1024;

/// The wire version a server of `version` reports as `maxWireVersion`.
pub fn max_wire_version(version: &str) -> i32 {
    let mut it = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    match (it.next().unwrap_or(0), it.next().unwrap_or(0)) {
        (8.., _) => 25,
        (7, _) => 21,
        (6, _) => 17,
        (5, _) => 13,
        (4, 4..) => 9,
        (4, 2..) => 8,
        (4, _) => 7,
        (3, 6..) => 6,
        (3, 4..) => 5,
        _ => 4,
    }
}

fn s(v: &str) -> Bson {
    Bson::Str(v.to_owned())
}

fn now_ms() -> i64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_millis()).unwrap_or(0)
}

fn ok() -> (String, Bson) {
    ("ok".into(), Bson::Double(1.0))
}

/// `{ok: 0, errmsg, code, codeName}`.
pub fn error(code: i32, code_name: &str, msg: &str) -> Doc {
    vec![
        ("ok".into(), Bson::Double(0.0)),
        ("errmsg".into(), s(msg)),
        ("code".into(), Bson::Int32(code)),
        ("codeName".into(), s(code_name)),
    ]
}

/// The per-process identity shown in `hello` and `serverStatus`.
#[derive(Debug, Clone)]
pub struct Persona {
    pub version: String,
    pub host: String,
    pub process_id: [u8; 12],
    pub pid: i64,
    pub connection_id: i32,
}

pub fn hello(p: &Persona, legacy_name: bool) -> Doc {
    let mut d: Doc = Vec::new();
    if legacy_name {
        d.push(("ismaster".into(), Bson::Bool(true)));
    } else {
        d.push(("isWritablePrimary".into(), Bson::Bool(true)));
    }
    d.extend([
        ("helloOk".into(), Bson::Bool(true)),
        (
            "topologyVersion".into(),
            Bson::Doc(vec![
                ("processId".into(), Bson::ObjectId(p.process_id)),
                ("counter".into(), Bson::Int64(0)),
            ]),
        ),
        ("maxBsonObjectSize".into(), Bson::Int32(16_777_216)),
        ("maxMessageSizeBytes".into(), Bson::Int32(48_000_000)),
        ("maxWriteBatchSize".into(), Bson::Int32(100_000)),
        ("localTime".into(), Bson::DateTime(now_ms())),
        ("logicalSessionTimeoutMinutes".into(), Bson::Int32(30)),
        ("connectionId".into(), Bson::Int32(p.connection_id)),
        ("minWireVersion".into(), Bson::Int32(0)),
        (
            "maxWireVersion".into(),
            Bson::Int32(max_wire_version(&p.version)),
        ),
        ("readOnly".into(), Bson::Bool(false)),
        ok(),
    ]);
    d
}

pub fn build_info(p: &Persona) -> Doc {
    let parts: Vec<Bson> = p
        .version
        .split('.')
        .chain(std::iter::repeat("0"))
        .take(4)
        .map(|n| Bson::Int32(n.parse().unwrap_or(0)))
        .collect();
    vec![
        ("version".into(), s(&p.version)),
        (
            "gitVersion".into(),
            s("a7cf3bf4ac5baaf4aa8d2d62d5e6e7ea3a71fcb2"),
        ),
        ("modules".into(), Bson::Array(Vec::new())),
        ("allocator".into(), s("tcmalloc")),
        ("javascriptEngine".into(), s("mozjs")),
        ("sysInfo".into(), s("deprecated")),
        ("versionArray".into(), Bson::Array(parts)),
        (
            "openssl".into(),
            Bson::Doc(vec![
                ("running".into(), s("OpenSSL 3.0.2 15 Mar 2022")),
                ("compiled".into(), s("OpenSSL 3.0.2 15 Mar 2022")),
            ]),
        ),
        (
            "buildEnvironment".into(),
            Bson::Doc(vec![
                ("distmod".into(), s("ubuntu2204")),
                ("distarch".into(), s("x86_64")),
                ("target_arch".into(), s("x86_64")),
                ("target_os".into(), s("linux")),
            ]),
        ),
        ("bits".into(), Bson::Int32(64)),
        ("debug".into(), Bson::Bool(false)),
        ("maxBsonObjectSize".into(), Bson::Int32(16_777_216)),
        (
            "storageEngines".into(),
            Bson::Array(vec![s("devnull"), s("ephemeralForTest"), s("wiredTiger")]),
        ),
        ok(),
    ]
}

fn server_status(p: &Persona, uptime: i64) -> Doc {
    vec![
        ("host".into(), s(&p.host)),
        ("version".into(), s(&p.version)),
        ("process".into(), s("mongod")),
        ("pid".into(), Bson::Int64(p.pid)),
        ("uptime".into(), Bson::Double(uptime as f64)),
        ("uptimeMillis".into(), Bson::Int64(uptime * 1000)),
        ("uptimeEstimate".into(), Bson::Int64(uptime)),
        ("localTime".into(), Bson::DateTime(now_ms())),
        ok(),
    ]
}

/// One request: its wire form and the command document (OP_MSG document sequences are put
/// into the document under their identifier).
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub request_id: i32,
    pub op: i32,
    /// The database (`$db`, or the namespace's first part for OP_QUERY).
    pub db: String,
    /// OP_QUERY's collection, when it is not `$cmd`.
    pub collection: Option<String>,
    pub doc: Doc,
}

fn le_i32(b: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Parses one message body (after the 16-byte header). `None` if malformed.
pub fn parse(request_id: i32, op: i32, body: &[u8]) -> Option<Request> {
    match op {
        OP_QUERY => {
            let ns_end = body.get(4..)?.iter().position(|&b| b == 0)? + 4;
            let ns = clip(&body[4..ns_end], 256);
            let (doc, _) = bson::decode(body.get(ns_end + 9..)?).ok()?;
            let (db, coll) = ns.split_once('.').unwrap_or((&ns, ""));
            Some(Request {
                request_id,
                op,
                db: db.to_owned(),
                collection: (coll != "$cmd").then(|| coll.to_owned()),
                doc,
            })
        }
        OP_MSG => {
            let flags = le_i32(body, 0)? as u32;
            let end = if flags & 1 != 0 {
                body.len().checked_sub(4)?
            } else {
                body.len()
            };
            let mut pos = 4;
            let mut doc: Option<Doc> = None;
            let mut seqs: Vec<(String, Bson)> = Vec::new();
            while pos < end {
                match body[pos] {
                    0 => {
                        let (d, used) = bson::decode(body.get(pos + 1..end)?).ok()?;
                        doc = Some(d);
                        pos += 1 + used;
                    }
                    1 => {
                        let size = usize::try_from(le_i32(body, pos + 1)?).ok()?;
                        let sec = body.get(pos + 5..(pos + 1).checked_add(size)?)?;
                        let id_end = sec.iter().position(|&b| b == 0)?;
                        let mut rest = &sec[id_end + 1..];
                        let mut docs = Vec::new();
                        while !rest.is_empty() && docs.len() < 1000 {
                            let (d, used) = bson::decode(rest).ok()?;
                            docs.push(Bson::Doc(d));
                            rest = &rest[used..];
                        }
                        seqs.push((clip(&sec[..id_end], 64), Bson::Array(docs)));
                        pos += 1 + size;
                    }
                    _ => return None,
                }
            }
            let mut doc = doc?;
            doc.extend(seqs);
            let db = get(&doc, "$db")
                .and_then(Bson::as_str)
                .unwrap_or("admin")
                .to_owned();
            Some(Request {
                request_id,
                op,
                db,
                collection: None,
                doc,
            })
        }
        _ => None,
    }
}

/// The reply to `req` carrying `doc`, in the request's wire form.
pub fn reply(req: &Request, response_id: i32, doc: &Doc) -> Vec<u8> {
    let body = encode_reply_body(req.op, doc);
    let mut out = Vec::with_capacity(16 + body.len());
    out.extend_from_slice(&(16 + body.len() as i32).to_le_bytes());
    out.extend_from_slice(&response_id.to_le_bytes());
    out.extend_from_slice(&req.request_id.to_le_bytes());
    let op = if req.op == OP_MSG { OP_MSG } else { OP_REPLY };
    out.extend_from_slice(&op.to_le_bytes());
    out.extend(body);
    out
}

fn encode_reply_body(op: i32, doc: &Doc) -> Vec<u8> {
    let mut body = Vec::new();
    if op == OP_MSG {
        body.extend_from_slice(&0u32.to_le_bytes());
        body.push(0);
    } else {
        body.extend_from_slice(&8i32.to_le_bytes()); // AwaitCapable
        body.extend_from_slice(&0i64.to_le_bytes()); // cursor id
        body.extend_from_slice(&0i32.to_le_bytes()); // starting from
        body.extend_from_slice(&1i32.to_le_bytes()); // number returned
    }
    body.extend(bson::encode(doc));
    body
}

/// An attribute of a SCRAM message (`n=user`, `r=nonce`, `p=proof`).
fn scram_attr(msg: &str, key: char) -> Option<String> {
    msg.split(',').find_map(|a| {
        let mut c = a.chars();
        (c.next() == Some(key) && c.next() == Some('=')).then(|| a[2..].to_owned())
    })
}

/// A SASL conversation in progress.
#[derive(Debug, Default)]
struct Sasl {
    mechanism: String,
    username: String,
    client_first_bare: String,
    server_first: String,
    db: String,
}

struct Session<'a> {
    report: &'a Reporter,
    persona: Persona,
    uptime: i64,
    rng: Rng,
    sasl: Option<Sasl>,
}

impl Session<'_> {
    fn auth_event(&self, details: AttackDetails, fields: &mut Fields) {
        let mut cred = Map::new();
        for (k, v) in [
            ("username", &details.username),
            ("password", &details.password),
            ("hash", &details.hash),
            ("method", &details.method),
        ] {
            if let Some(v) = v {
                cred.insert(k.into(), Value::from(v.clone()));
            }
        }
        if let Some(u) = &details.username {
            set_once(fields, "username", Value::from(u.clone()));
        }
        push_bounded(fields, "credentials", Value::Object(cred), MAX_LOGGED);
        self.report.emit(AttackKind::Auth, details);
    }

    fn sasl_start(&mut self, req: &Request, doc: &Doc, fields: &mut Fields) -> Doc {
        let mechanism = get(doc, "mechanism")
            .and_then(Bson::as_str)
            .map(|m| clip(m.as_bytes(), 32))
            .unwrap_or_default();
        let payload = get(doc, "payload")
            .and_then(Bson::as_bytes)
            .unwrap_or_default();
        let payload = clip(payload, 2048);
        if mechanism == "PLAIN" {
            // authzid \0 authcid \0 password (LDAP proxy auth).
            let mut parts = payload.split('\0').skip(1);
            let user = parts.next().unwrap_or_default().to_owned();
            let pass = parts.next().unwrap_or_default().to_owned();
            self.auth_event(
                AttackDetails {
                    username: Some(user),
                    password: Some(pass),
                    method: Some("PLAIN".into()),
                    accepted: Some(false),
                    extra: Map::from_iter([("database".to_owned(), Value::from(req.db.clone()))]),
                    ..Default::default()
                },
                fields,
            );
            return auth_failed();
        }
        if !mechanism.starts_with("SCRAM-SHA-") {
            return error(
                2,
                "BadValue",
                &format!("Received authentication for mechanism {mechanism} which is unknown or not enabled"),
            );
        }
        let bare = payload.splitn(3, ',').nth(2).unwrap_or_default().to_owned();
        let username = scram_attr(&bare, 'n').unwrap_or_default();
        let client_nonce = scram_attr(&bare, 'r').unwrap_or_default();
        set_once(fields, "username", Value::from(username.clone()));
        let mut salt = [0u8; 16];
        self.rng.fill(&mut salt);
        let mut nonce = [0u8; 24];
        self.rng.fill(&mut nonce);
        let iterations = if mechanism == "SCRAM-SHA-1" {
            10_000
        } else {
            15_000
        };
        let server_first = format!(
            "r={client_nonce}{},s={},i={iterations}",
            b64(&nonce, true),
            b64(&salt, true)
        );
        self.sasl = Some(Sasl {
            mechanism,
            username,
            client_first_bare: bare,
            server_first: server_first.clone(),
            db: req.db.clone(),
        });
        vec![
            ("conversationId".into(), Bson::Int32(1)),
            ("done".into(), Bson::Bool(false)),
            ("payload".into(), Bson::Binary(0, server_first.into_bytes())),
            ok(),
        ]
    }

    fn sasl_continue(&mut self, doc: &Doc, fields: &mut Fields) -> Doc {
        let Some(sasl) = self.sasl.take() else {
            return error(17, "ProtocolError", "No SASL session state found");
        };
        let payload = get(doc, "payload")
            .and_then(Bson::as_bytes)
            .unwrap_or_default();
        let last = clip(payload, 2048);
        let proof = scram_attr(&last, 'p').unwrap_or_default();
        let without_proof = last.rsplit_once(",p=").map_or(last.as_str(), |(w, _)| w);
        let mut extra = Map::new();
        extra.insert("database".into(), Value::from(sasl.db.clone()));
        extra.insert(
            "scram".into(),
            json!({
                "auth_message": format!("{},{},{}", sasl.client_first_bare, sasl.server_first, without_proof),
            }),
        );
        self.auth_event(
            AttackDetails {
                username: Some(sasl.username.clone()),
                hash: Some(proof),
                method: Some(sasl.mechanism.clone()),
                accepted: Some(false),
                extra,
                ..Default::default()
            },
            fields,
        );
        auth_failed()
    }

    /// The answer to one command (`name` as sent).
    fn answer(&mut self, req: &Request, name: &str, fields: &mut Fields) -> Doc {
        let doc = &req.doc;
        if let Some(coll) = &req.collection {
            return error(
                13,
                "Unauthorized",
                &format!("command find requires authentication on {}.{coll}", req.db),
            );
        }
        match name.to_ascii_lowercase().as_str() {
            "hello" | "ismaster" => {
                if let Some(client) = get(doc, "client").and_then(Bson::as_doc) {
                    self.client_metadata(client, fields);
                }
                if let Some(spec) = get(doc, "speculativeAuthenticate").and_then(Bson::as_doc) {
                    // The speculative saslStart is not answered, so the driver starts over
                    // explicitly; its user name is kept.
                    if let Some(p) = get(spec, "payload").and_then(Bson::as_bytes) {
                        if let Some(u) = scram_attr(&clip(p, 1024), 'n') {
                            set_once(fields, "username", Value::from(u));
                        }
                    }
                }
                let mut h = hello(&self.persona, name != "hello");
                if let Some(mechs) = get(doc, "saslSupportedMechs").and_then(Bson::as_str) {
                    set_once(
                        fields,
                        "sasl_supported_mechs",
                        Value::from(clip(mechs.as_bytes(), 256)),
                    );
                    h.insert(
                        h.len() - 1,
                        (
                            "saslSupportedMechs".into(),
                            Bson::Array(vec![s("SCRAM-SHA-1"), s("SCRAM-SHA-256")]),
                        ),
                    );
                }
                h
            }
            "buildinfo" => build_info(&self.persona),
            "serverstatus" => server_status(&self.persona, self.uptime),
            "ping" | "endsessions" => vec![ok()],
            "getnonce" => vec![("nonce".into(), s(&self.rng.hex(16))), ok()],
            "saslstart" => self.sasl_start(req, doc, fields),
            "saslcontinue" => self.sasl_continue(doc, fields),
            "authenticate" => {
                let user = get(doc, "user").and_then(Bson::as_str).unwrap_or_default();
                let key = get(doc, "key").and_then(Bson::as_str).map(str::to_owned);
                let mechanism = get(doc, "mechanism")
                    .and_then(Bson::as_str)
                    .unwrap_or("MONGODB-CR");
                self.auth_event(
                    AttackDetails {
                        username: Some(clip(user.as_bytes(), 128)),
                        hash: key,
                        method: Some(clip(mechanism.as_bytes(), 32)),
                        accepted: Some(false),
                        ..Default::default()
                    },
                    fields,
                );
                auth_failed()
            }
            _ => error(
                13,
                "Unauthorized",
                &format!(
                    "Command {} requires authentication",
                    clip(name.as_bytes(), 64)
                ),
            ),
        }
    }

    fn client_metadata(&self, client: &Doc, fields: &mut Fields) {
        let driver = get(client, "driver").and_then(Bson::as_doc);
        let part = |k: &str| {
            driver
                .and_then(|d| get(d, k))
                .and_then(Bson::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let version = format!("{} {}", part("name"), part("version"))
            .trim()
            .to_owned();
        fields.insert("client".into(), doc_json(client));
        self.report.emit(
            AttackKind::Client,
            AttackDetails {
                client_version: (!version.is_empty()).then(|| clip(version.as_bytes(), 128)),
                extra: Map::from_iter([("client".to_owned(), doc_json(client))]),
                ..Default::default()
            },
        );
    }
}

fn auth_failed() -> Doc {
    error(18, "AuthenticationFailed", "Authentication failed.")
}

pub fn handle<S: Read + Write>(
    mut conn: Conn<S>,
    ctx: &ServiceCtx,
    report: &Reporter,
    fields: &mut Fields,
) -> io::Result<()> {
    let mut rng = Rng::new();
    let mut process_id = [0u8; 12];
    rng.fill(&mut process_id);
    let persona = Persona {
        version: ctx
            .config
            .line("version")
            .unwrap_or_else(|| DEFAULT_VERSION.to_owned()),
        host: format!("{}:27017", ctx.hostname),
        process_id,
        pid: (rng.next_u64() % 3000) as i64 + 700,
        connection_id: (rng.next_u64() % 5000) as i32 + 10,
    };
    let uptime = (rng.next_u64() % (30 * 86_400)) as i64 + 86_400;
    let mut session = Session {
        report,
        persona,
        uptime,
        rng,
        sasl: None,
    };
    let mut response_id = (session.rng.next_u64() % 100_000) as i32;
    for _ in 0..MAX_COMMANDS {
        if conn.peek()?.is_none() {
            return Ok(());
        }
        let head = conn.read_exact_vec(16)?;
        let len = le_i32(&head, 0).and_then(|l| usize::try_from(l).ok());
        let request_id = le_i32(&head, 4).unwrap_or(0);
        let op = le_i32(&head, 12).unwrap_or(0);
        let Some(len) = len.filter(|l| (16..=MAX_MESSAGE).contains(l)) else {
            fields.insert("reason".into(), Value::from("bad message length"));
            return Ok(());
        };
        let body = conn.read_exact_vec(len - 16)?;
        let Some(req) = parse(request_id, op, &body) else {
            fields.insert(
                "reason".into(),
                Value::from(format!("unparsed opcode {op}")),
            );
            return Ok(());
        };
        let name = req.doc.first().map(|(k, _)| k.clone()).unwrap_or_default();
        let name = clip(name.as_bytes(), 64);
        bump(fields, "command_count");
        set_once(fields, "first_command", Value::from(name.clone()));
        push_bounded(fields, "commands", Value::from(name.clone()), MAX_LOGGED);
        let mut extra = Map::new();
        extra.insert("database".into(), Value::from(req.db.clone()));
        extra.insert("args".into(), doc_json(&req.doc));
        extra.insert(
            "opcode".into(),
            Value::from(if op == OP_MSG { "OP_MSG" } else { "OP_QUERY" }),
        );
        if let Some(c) = &req.collection {
            extra.insert("collection".into(), Value::from(c.clone()));
        }
        report.emit(
            AttackKind::Command,
            AttackDetails {
                command: Some(name.clone()),
                extra,
                ..Default::default()
            },
        );
        let answer = session.answer(&req, &name, fields);
        response_id = response_id.wrapping_add(1);
        conn.send(&reply(&req, response_id, &answer))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::bson::get_ci;
    use super::super::testing::{ctx, peer, reporter, Mock};
    use super::*;
    use crate::log::AttackEvent;
    use proptest::prelude::*;

    fn header(len: usize, id: i32, op: i32) -> Vec<u8> {
        let mut h = (len as i32).to_le_bytes().to_vec();
        h.extend_from_slice(&id.to_le_bytes());
        h.extend_from_slice(&0i32.to_le_bytes());
        h.extend_from_slice(&op.to_le_bytes());
        h
    }

    fn op_msg(id: i32, doc: &Doc) -> Vec<u8> {
        let mut body = 0u32.to_le_bytes().to_vec();
        body.push(0);
        body.extend(bson::encode(doc));
        let mut m = header(16 + body.len(), id, OP_MSG);
        m.extend(body);
        m
    }

    fn op_query(id: i32, ns: &str, doc: &Doc) -> Vec<u8> {
        let mut body = 0i32.to_le_bytes().to_vec();
        body.extend_from_slice(ns.as_bytes());
        body.push(0);
        body.extend_from_slice(&0i32.to_le_bytes());
        body.extend_from_slice(&(-1i32).to_le_bytes());
        body.extend(bson::encode(doc));
        let mut m = header(16 + body.len(), id, OP_QUERY);
        m.extend(body);
        m
    }

    /// Replies as (responseTo, opcode, document).
    fn replies(mut out: &[u8]) -> Vec<(i32, i32, Doc)> {
        let mut v = Vec::new();
        while out.len() >= 16 {
            let len = le_i32(out, 0).expect("len") as usize;
            let to = le_i32(out, 8).expect("to");
            let op = le_i32(out, 12).expect("op");
            let skip = if op == OP_MSG { 16 + 5 } else { 16 + 20 };
            let (d, _) = bson::decode(&out[skip..len]).expect("bson");
            v.push((to, op, d));
            out = &out[len..];
        }
        v
    }

    fn run(input: &[u8]) -> (Vec<u8>, Fields, Vec<AttackEvent>) {
        let c = ctx("mongodb", json!({"version": "4.4.25"}));
        let (report, sink) = reporter("mongodb", 27017);
        let mut m = Mock::new(input);
        let mut f = Fields::new();
        super::super::handle(&c, &peer(27017), &report, &mut m, &mut f).expect("ok");
        (m.output, f, sink.events())
    }

    fn d(pairs: &[(&str, Bson)]) -> Doc {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    #[test]
    fn wire_versions() {
        assert_eq!(max_wire_version("7.0.4"), 21);
        assert_eq!(max_wire_version("6.0.12"), 17);
        assert_eq!(max_wire_version("4.4.25"), 9);
        assert_eq!(max_wire_version("3.6.8"), 6);
        assert_eq!(max_wire_version("junk"), 4);
    }

    #[test]
    fn legacy_is_master_and_build_info() {
        let client = Bson::Doc(d(&[(
            "driver",
            Bson::Doc(d(&[("name", s("PyMongo")), ("version", s("3.11.0"))])),
        )]));
        let mut input = op_query(
            7,
            "admin.$cmd",
            &d(&[("isMaster", Bson::Int32(1)), ("client", client)]),
        );
        input.extend(op_msg(
            8,
            &d(&[("buildinfo", Bson::Int32(1)), ("$db", s("admin"))]),
        ));
        let (out, f, ev) = run(&input);
        let r = replies(&out);
        assert_eq!(r[0].0, 7);
        assert_eq!(r[0].1, OP_REPLY);
        assert_eq!(get(&r[0].2, "ismaster"), Some(&Bson::Bool(true)));
        assert_eq!(get(&r[0].2, "maxWireVersion"), Some(&Bson::Int32(9)));
        assert_eq!(r[1].1, OP_MSG);
        assert_eq!(
            get(&r[1].2, "version").and_then(Bson::as_str),
            Some("4.4.25")
        );
        assert_eq!(
            get(&r[1].2, "versionArray"),
            Some(&Bson::Array(vec![
                Bson::Int32(4),
                Bson::Int32(4),
                Bson::Int32(25),
                Bson::Int32(0)
            ]))
        );
        assert_eq!(f["commands"], json!(["isMaster", "buildinfo"]));
        let client = ev
            .iter()
            .find(|e| e.kind == AttackKind::Client)
            .expect("client");
        assert_eq!(
            client.details.client_version.as_deref(),
            Some("PyMongo 3.11.0")
        );
    }

    #[test]
    fn scram_conversation_records_user_and_proof() {
        let first = b"n,,n=admin,r=cNonce".to_vec();
        let mut input = op_msg(
            1,
            &d(&[
                ("saslStart", Bson::Int32(1)),
                ("mechanism", s("SCRAM-SHA-256")),
                ("payload", Bson::Binary(0, first)),
                ("$db", s("admin")),
            ]),
        );
        input.extend(op_msg(
            2,
            &d(&[
                ("saslContinue", Bson::Int32(1)),
                ("conversationId", Bson::Int32(1)),
                (
                    "payload",
                    Bson::Binary(0, b"c=biws,r=cNonceS,p=UFJPT0Y=".to_vec()),
                ),
                ("$db", s("admin")),
            ]),
        ));
        input.extend(op_msg(
            3,
            &d(&[("listDatabases", Bson::Int32(1)), ("$db", s("admin"))]),
        ));
        let (out, f, ev) = run(&input);
        let r = replies(&out);
        let server_first = get(&r[0].2, "payload")
            .and_then(Bson::as_bytes)
            .expect("payload");
        let server_first = String::from_utf8_lossy(server_first);
        assert!(server_first.starts_with("r=cNonce") && server_first.ends_with(",i=15000"));
        assert_eq!(get(&r[1].2, "code"), Some(&Bson::Int32(18)));
        assert_eq!(
            get(&r[1].2, "errmsg").and_then(Bson::as_str),
            Some("Authentication failed.")
        );
        assert_eq!(get(&r[2].2, "code"), Some(&Bson::Int32(13)));
        let auth = ev
            .iter()
            .find(|e| e.kind == AttackKind::Auth)
            .expect("auth");
        assert_eq!(auth.details.username.as_deref(), Some("admin"));
        assert_eq!(auth.details.hash.as_deref(), Some("UFJPT0Y="));
        assert_eq!(auth.details.method.as_deref(), Some("SCRAM-SHA-256"));
        assert_eq!(auth.details.accepted, Some(false));
        assert_eq!(f["username"], "admin");
        let cmds: Vec<_> = ev
            .iter()
            .filter(|e| e.kind == AttackKind::Command)
            .collect();
        assert_eq!(cmds.len(), 3);
        assert_eq!(cmds[2].details.command.as_deref(), Some("listDatabases"));
        assert_eq!(cmds[2].details.extra["database"], "admin");
    }

    #[test]
    fn nmap_server_status_probe_carries_the_version() {
        let probe = b"\x41\0\0\0\x3a\x30\0\0\xff\xff\xff\xff\xd4\x07\0\0\0\0\0\0test.$cmd\0\0\0\0\0\xff\xff\xff\xff\x1b\0\0\0\x01serverStatus\0\0\0\0\0\0\0\xf0\x3f\0";
        let (out, _, _) = run(probe);
        // nmap: ^.*version.....([\.\d]+)
        let at = out
            .windows(7)
            .position(|w| w == b"version")
            .expect("version key");
        assert_eq!(&out[at + 12..at + 18], b"4.4.25");
    }

    #[test]
    fn op_msg_document_sequences_and_checksums() {
        let mut body = 1u32.to_le_bytes().to_vec();
        body.push(0);
        body.extend(bson::encode(&d(&[
            ("insert", s("users")),
            ("$db", s("app")),
        ])));
        let doc = bson::encode(&d(&[("name", s("x"))]));
        body.push(1);
        body.extend_from_slice(&((4 + 10 + doc.len()) as i32).to_le_bytes());
        body.extend_from_slice(b"documents\0");
        body.extend(doc);
        body.extend_from_slice(&[0, 0, 0, 0]); // CRC-32C, not checked
        let req = parse(5, OP_MSG, &body).expect("parse");
        assert_eq!(req.db, "app");
        assert_eq!(
            get(&req.doc, "documents"),
            Some(&Bson::Array(vec![Bson::Doc(d(&[("name", s("x"))]))]))
        );
        assert_eq!(
            get_ci(&req.doc, "INSERT").and_then(Bson::as_str),
            Some("users")
        );
    }

    #[test]
    fn garbage_closes_quietly() {
        let (out, f, _) = run(b"GET / HTTP/1.0\r\n\r\n");
        assert!(out.is_empty());
        assert_eq!(f["reason"], "bad message length");
        let mut m = header(20, 1, 9999);
        m.extend_from_slice(&[0; 4]);
        let (out, f, _) = run(&m);
        assert!(out.is_empty());
        assert_eq!(f["reason"], "unparsed opcode 9999");
    }

    proptest! {
        #[test]
        fn hostile_input_never_panics(data in proptest::collection::vec(any::<u8>(), 0..600)) {
            let c = ctx("mongodb", json!({}));
            let (report, _) = reporter("mongodb", 27017);
            let mut f = Fields::new();
            let _ = super::super::handle(&c, &peer(27017), &report, &mut Mock::new(&data), &mut f);
        }

        #[test]
        fn mutated_messages_never_panic(
            flips in proptest::collection::vec((0usize..120, any::<u8>()), 1..5),
            cut in 0usize..120,
        ) {
            let mut input = op_msg(1, &d(&[
                ("saslStart", Bson::Int32(1)),
                ("mechanism", s("SCRAM-SHA-1")),
                ("payload", Bson::Binary(0, b"n,,n=u,r=x".to_vec())),
                ("$db", s("admin")),
            ]));
            input.extend(op_query(2, "admin.$cmd", &d(&[("isMaster", Bson::Int32(1))])));
            for (i, b) in flips {
                let n = input.len();
                input[i % n] = b;
            }
            input.truncate(cut.min(input.len()));
            let _ = parse(1, OP_MSG, &input);
            let _ = parse(1, OP_QUERY, &input);
            let c = ctx("mongodb", json!({}));
            let (report, _) = reporter("mongodb", 27017);
            let mut f = Fields::new();
            let _ = super::super::handle(&c, &peer(27017), &report, &mut Mock::new(&input), &mut f);
        }
    }
}

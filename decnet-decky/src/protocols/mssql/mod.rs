//! Microsoft SQL Server (TDS 7.x, MS-TDS): PRELOGIN answered with the persona's version and
//! no encryption, LOGIN7 read (the password de-obfuscated) and refused with the real error
//! 18456 `Login failed for user '…'.`. A LOGIN7 asking for integrated security (SSPI) gets an
//! NTLM CHALLENGE through [`super::ntlm`], and its AUTHENTICATE is recorded like SMB's.

use std::io::{self, Read, Write};
use std::sync::Arc;

use serde_json::Value;

use super::ntlm::{self, Exchange, Identity};
use super::{Conn, ServiceCtx};
use crate::log::{AttackDetails, AttackKind, Fields, Reporter};
use crate::util::{clip, set_once, Rng};

/// SQL Server 2019 RTM.
pub const DEFAULT_VERSION: &str = "15.0.2000.5";
/// Largest TDS message (over all its packets) read.
pub const MAX_MESSAGE: usize = 64 * 1024;
/// Most packets in one message.
const MAX_PACKETS: usize = 32;
/// Most messages answered on one connection.
const MAX_MESSAGES: usize = 8;

const PRELOGIN: u8 = 0x12;
const LOGIN7: u8 = 0x10;
const SSPI: u8 = 0x11;
const REPLY: u8 = 0x04;

const ENCRYPT_ON: u8 = 0x01;
const ENCRYPT_NOT_SUP: u8 = 0x02;
const ENCRYPT_REQ: u8 = 0x03;

/// `"15.0.2000.5"` → the PRELOGIN VERSION bytes (major, minor, build BE, sub-build BE).
pub fn version_bytes(v: &str) -> Option<[u8; 6]> {
    let mut it = v.trim().split('.');
    let major: u8 = it.next()?.parse().ok()?;
    let minor: u8 = it.next()?.parse().ok()?;
    let build: u16 = it.next()?.parse().ok()?;
    let sub: u16 = it.next().map_or(Some(0), |s| s.parse().ok())?;
    if it.next().is_some() {
        return None;
    }
    let [b0, b1] = build.to_be_bytes();
    let [s0, s1] = sub.to_be_bytes();
    Some([major, minor, b0, b1, s0, s1])
}

/// One TDS message: its type and the payload of all its packets.
fn read_message<S: Read + Write>(conn: &mut Conn<S>) -> io::Result<Option<(u8, Vec<u8>)>> {
    let mut payload = Vec::new();
    for i in 0..MAX_PACKETS {
        let head = match conn.read_exact_vec(8) {
            Ok(h) => h,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && i == 0 => return Ok(None),
            Err(e) => return Err(e),
        };
        // Anything but a client message type is not TDS: close at once, like SQL Server.
        if !matches!(head[0], PRELOGIN | LOGIN7 | SSPI) {
            return Ok(Some((head[0], Vec::new())));
        }
        let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
        if len < 8 || payload.len() + len > MAX_MESSAGE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "bad tds packet length",
            ));
        }
        payload.extend_from_slice(&conn.read_exact_vec(len - 8)?);
        if head[1] & 0x01 != 0 {
            return Ok(Some((head[0], payload)));
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "too many tds packets",
    ))
}

fn packet(kind: u8, payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(payload.len() + 8).unwrap_or(u16::MAX);
    let mut p = vec![kind, 0x01];
    p.extend_from_slice(&len.to_be_bytes());
    p.extend_from_slice(&[0, 0, 1, 0]);
    p.extend_from_slice(payload);
    p
}

/// The options of a PRELOGIN message: (token, data).
pub fn parse_prelogin(p: &[u8]) -> Vec<(u8, &[u8])> {
    let mut out = Vec::new();
    for entry in p.chunks(5).take(16) {
        if entry[0] == 0xff || entry.len() < 5 {
            break;
        }
        let off = usize::from(u16::from_be_bytes([entry[1], entry[2]]));
        let len = usize::from(u16::from_be_bytes([entry[3], entry[4]]));
        if let Some(d) = p.get(off..off + len) {
            out.push((entry[0], d));
        }
    }
    out
}

/// The PRELOGIN answer: of VERSION, ENCRYPTION (`encryption`), INSTOPT, THREADID (empty) and
/// MARS, those the client sent, as SQL Server answers (VERSION and ENCRYPTION at least).
pub fn prelogin_response(version: [u8; 6], asked: &[u8], encryption: u8) -> Vec<u8> {
    let all: [(u8, &[u8]); 5] = [
        (0x00, &version),
        (0x01, &[encryption]),
        (0x02, &[0]),
        (0x03, &[]),
        (0x04, &[0]),
    ];
    let opts: Vec<_> = all
        .into_iter()
        .filter(|(t, _)| *t <= 0x01 || asked.contains(t))
        .collect();
    let mut head = Vec::new();
    let mut data = Vec::new();
    let base = opts.len() * 5 + 1;
    for (token, d) in opts {
        head.push(token);
        head.extend_from_slice(&u16::try_from(base + data.len()).unwrap_or(0).to_be_bytes());
        head.extend_from_slice(&u16::try_from(d.len()).unwrap_or(0).to_be_bytes());
        data.extend_from_slice(d);
    }
    head.push(0xff);
    head.extend_from_slice(&data);
    packet(REPLY, &head)
}

/// Undoes LOGIN7's password obfuscation: XOR 0xA5, then swap the nibbles.
pub fn deobfuscate(b: &[u8]) -> Vec<u8> {
    b.iter()
        .map(|&b| {
            let x = b ^ 0xa5;
            x.rotate_left(4)
        })
        .collect()
}

fn from_utf16(b: &[u8]) -> String {
    let units: Vec<u16> = b
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16_lossy(&units)
}

fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

/// What a LOGIN7 carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Login {
    pub tds_version: u32,
    pub host: String,
    pub user: String,
    pub password: String,
    pub app: String,
    pub server: String,
    pub library: String,
    pub database: String,
    /// The SSPI token of an integrated-security login.
    pub sspi: Vec<u8>,
}

/// Longest string kept from a LOGIN7 field, in bytes.
const MAX_TEXT: usize = 256;

pub fn parse_login7(p: &[u8]) -> Option<Login> {
    let le16 = |at: usize| -> Option<usize> {
        Some(usize::from(u16::from_le_bytes(
            p.get(at..at + 2)?.try_into().ok()?,
        )))
    };
    // (offset, length in characters) of a variable field whose descriptor is at `at`.
    let raw = |at: usize, chars: bool| -> Option<&[u8]> {
        let off = le16(at)?;
        let len = le16(at + 2)? * if chars { 2 } else { 1 };
        Some(p.get(off..off + len).unwrap_or_default())
    };
    let text = |at: usize| -> Option<String> {
        Some(clip(from_utf16(raw(at, true)?).as_bytes(), MAX_TEXT))
    };
    let password = raw(44, true)?;
    Some(Login {
        tds_version: u32::from_le_bytes(p.get(4..8)?.try_into().ok()?),
        host: text(36)?,
        user: text(40)?,
        password: clip(from_utf16(&deobfuscate(password)).as_bytes(), MAX_TEXT),
        app: text(48)?,
        server: text(52)?,
        library: text(60)?,
        database: text(68)?,
        sspi: raw(78, false)?.to_vec(),
    })
}

/// A reply carrying the ERROR token `number` with `msg`, then DONE (error).
pub fn login_failed(number: u32, msg: &str, server: &str) -> Vec<u8> {
    let text = utf16(msg);
    let server16 = utf16(server);
    let mut body = Vec::new();
    body.extend_from_slice(&number.to_le_bytes());
    body.push(1); // state
    body.push(14); // class
    body.extend_from_slice(
        &u16::try_from(msg.encode_utf16().count())
            .unwrap_or(0)
            .to_le_bytes(),
    );
    body.extend_from_slice(&text);
    body.push(u8::try_from(server.encode_utf16().count()).unwrap_or(0));
    body.extend_from_slice(&server16);
    body.push(0); // procedure name
    body.extend_from_slice(&1u32.to_le_bytes()); // line number
    let mut p = vec![0xaa];
    p.extend_from_slice(&u16::try_from(body.len()).unwrap_or(0).to_le_bytes());
    p.extend_from_slice(&body);
    p.push(0xfd);
    p.extend_from_slice(&0x0002u16.to_le_bytes()); // DONE_ERROR
    p.extend_from_slice(&0u16.to_le_bytes());
    p.extend_from_slice(&0u64.to_le_bytes());
    packet(REPLY, &p)
}

fn sspi_reply(token: &[u8]) -> Vec<u8> {
    let mut p = vec![0xed];
    p.extend_from_slice(&u16::try_from(token.len()).unwrap_or(0).to_le_bytes());
    p.extend_from_slice(token);
    packet(REPLY, &p)
}

/// What every message of one connection needs.
struct Session<'a> {
    version: [u8; 6],
    server: String,
    ntlm: Exchange,
    report: &'a Reporter,
}

/// Records a PRELOGIN's options; returns the option tokens sent and the encryption byte.
fn note_prelogin(msg: &[u8], fields: &mut Fields) -> (Vec<u8>, Option<u8>) {
    let opts = parse_prelogin(msg);
    let asked: Vec<u8> = opts.iter().map(|(t, _)| *t).collect();
    let mut encryption = None;
    for (token, d) in opts {
        match token {
            0x00 if d.len() >= 4 => {
                let v = format!("{}.{}.{}", d[0], d[1], u16::from_be_bytes([d[2], d[3]]));
                set_once(fields, "client_version", Value::from(v));
            }
            0x01 if !d.is_empty() => {
                encryption = Some(d[0]);
                set_once(fields, "client_encryption", Value::from(d[0]));
            }
            0x02 => {
                let inst = clip(d.split(|&b| b == 0).next().unwrap_or_default(), 64);
                if !inst.is_empty() {
                    set_once(fields, "instance", Value::from(inst));
                }
            }
            _ => {}
        }
    }
    (asked, encryption)
}

pub fn handle<S: Read + Write>(
    mut conn: Conn<S>,
    ctx: &ServiceCtx,
    report: &Reporter,
    fields: &mut Fields,
) -> io::Result<()> {
    let version = ctx
        .config
        .line("version")
        .and_then(|v| version_bytes(&v))
        .or_else(|| version_bytes(DEFAULT_VERSION))
        .unwrap_or_default();
    let id = Identity::from_ctx(ctx);
    let s = Session {
        version,
        server: id.nb_computer.clone(),
        ntlm: Exchange::new(id, &mut Rng::new()),
        report,
    };
    let Some((kind, msg)) = read_message(&mut conn)? else {
        return Ok(());
    };
    if kind != PRELOGIN {
        return serve(conn, &s, Some((kind, msg)), fields);
    }
    let (asked, wanted) = note_prelogin(&msg, fields);
    // A client that wants encryption gets it: TLS inside PRELOGIN packets, then TLS records.
    match (wanted, ctx.tls.as_ref()) {
        (Some(ENCRYPT_ON | ENCRYPT_REQ), Some(config)) => {
            conn.send(&prelogin_response(version, &asked, ENCRYPT_ON))?;
            let tls = tds_tls_handshake(&mut conn, config, fields)?;
            fields.insert("tls".into(), Value::from(true));
            let mut stream = rustls::StreamOwned::new(tls, conn.into_prefixed());
            let res = serve(Conn::new(&mut stream), &s, None, fields);
            super::tls::close(&mut stream);
            res
        }
        _ => {
            conn.send(&prelogin_response(version, &asked, ENCRYPT_NOT_SUP))?;
            serve(conn, &s, None, fields)
        }
    }
}

/// The TLS handshake of TDS 7.x: its records travel as PRELOGIN packet payloads.
fn tds_tls_handshake<S: Read + Write>(
    conn: &mut Conn<S>,
    config: &Arc<rustls::ServerConfig>,
    fields: &mut Fields,
) -> io::Result<rustls::ServerConnection> {
    let mut tls = rustls::ServerConnection::new(config.clone()).map_err(io::Error::other)?;
    for _ in 0..MAX_PACKETS {
        // The server's last flight (TLS 1.2: ChangeCipherSpec, Finished) is queued when the
        // handshake already counts as done: it still goes out wrapped.
        if !tls.is_handshaking() && !tls.wants_write() {
            return Ok(tls);
        }
        if tls.wants_write() {
            let mut out = Vec::new();
            while tls.wants_write() {
                tls.write_tls(&mut out)?;
            }
            let chunks: Vec<&[u8]> = out.chunks(4096 - 8).collect();
            for (i, c) in chunks.iter().enumerate() {
                let mut p = packet(PRELOGIN, c);
                if i + 1 < chunks.len() {
                    p[1] = 0; // not the end of the message
                }
                conn.send(&p)?;
            }
            continue;
        }
        // Clients wrap their handshake in PRELOGIN packets; some (FreeTDS with TLS 1.3) send
        // their last flight as bare records.
        let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_owned());
        let payload = match conn.peek()? {
            Some(PRELOGIN) => match read_message(conn)? {
                Some((PRELOGIN, p)) => p,
                _ => return Err(bad("bad tls handshake")),
            },
            Some(0x14..=0x17) => {
                let head = conn.read_exact_vec(5)?;
                let len = usize::from(u16::from_be_bytes([head[3], head[4]]));
                if len > 18 * 1024 {
                    return Err(bad("tls record too large"));
                }
                [head, conn.read_exact_vec(len)?].concat()
            }
            Some(_) => return Err(bad("tls handshake outside prelogin")),
            None => return Err(io::ErrorKind::UnexpectedEof.into()),
        };
        let mut rd = &payload[..];
        while !rd.is_empty() {
            if tls.read_tls(&mut rd)? == 0 {
                break;
            }
            if let Err(e) = tls.process_new_packets() {
                fields.insert("tls_error".into(), Value::from(e.to_string()));
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "tls handshake too long",
    ))
}

/// LOGIN7 (and SSPI) messages, after the PRELOGIN.
fn serve<S: Read + Write>(
    mut conn: Conn<S>,
    s: &Session<'_>,
    mut first: Option<(u8, Vec<u8>)>,
    fields: &mut Fields,
) -> io::Result<()> {
    let report = s.report;
    for _ in 0..MAX_MESSAGES {
        let next = match first.take() {
            Some(m) => Some(m),
            None => read_message(&mut conn)?,
        };
        let Some((kind, msg)) = next else {
            return Ok(());
        };
        match kind {
            PRELOGIN => {
                let (asked, _) = note_prelogin(&msg, fields);
                conn.send(&prelogin_response(s.version, &asked, ENCRYPT_NOT_SUP))?;
            }
            LOGIN7 => {
                let Some(login) = parse_login7(&msg) else {
                    set_once(fields, "reason", Value::from("bad login7"));
                    return Ok(());
                };
                let mut extra = Fields::new();
                for (k, v) in [
                    ("client_host", &login.host),
                    ("app_name", &login.app),
                    ("server_name", &login.server),
                    ("library", &login.library),
                    ("database", &login.database),
                ] {
                    if !v.is_empty() {
                        extra.insert(k.into(), Value::from(v.clone()));
                        set_once(fields, k, Value::from(v.clone()));
                    }
                }
                extra.insert(
                    "tds_version".into(),
                    Value::from(format!("0x{:08x}", login.tds_version)),
                );
                if let Some(neg) = ntlm::find(&login.sspi) {
                    if ntlm::message_type(neg) == Some(1) {
                        set_once(fields, "integrated_security", Value::from(true));
                        conn.send(&sspi_reply(&s.ntlm.on_negotiate(neg, fields)))?;
                        continue;
                    }
                }
                set_once(fields, "username", Value::from(login.user.clone()));
                report.emit(
                    AttackKind::Auth,
                    AttackDetails {
                        username: Some(login.user.clone()),
                        password: Some(login.password.clone()),
                        method: Some("password".into()),
                        accepted: Some(false),
                        extra,
                        ..AttackDetails::default()
                    },
                );
                let msg = format!("Login failed for user '{}'.", login.user);
                conn.send(&login_failed(18456, &msg, &s.server))?;
                return Ok(());
            }
            SSPI => {
                let user = ntlm::find(&msg)
                    .and_then(|m| s.ntlm.on_authenticate(m, "mssql", report, fields))
                    .map(|a| format!("{}\\{}", a.domain, a.user))
                    .unwrap_or_default();
                let msg = format!("Login failed for user '{user}'.");
                conn.send(&login_failed(18456, &msg, &s.server))?;
                return Ok(());
            }
            _ => {
                set_once(
                    fields,
                    "reason",
                    Value::from(format!("tds type 0x{kind:02x}")),
                );
                return Ok(());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;

//! SMB as a Windows file server answers before anyone has logged on (MS-SMB2): the SMB1
//! NEGOTIATE scanners still send is upgraded to SMB2 (dialect `0x02FF`, as Windows does), the
//! SMB2/3 NEGOTIATE picks the best common dialect up to 3.1.1, and SESSION_SETUP runs
//! SPNEGO/NTLMSSP through [`super::ntlm`]: the CHALLENGE names the persona, the AUTHENTICATE is
//! recorded (hashcat line included) and refused with `STATUS_LOGON_FAILURE`.
//!
//! Framing is the direct-TCP / NetBIOS session service header (4 bytes); on port 139 a NetBIOS
//! SESSION REQUEST is answered positively first. An SMB1-only client (no SMB2 dialect offered)
//! is answered by `v1` (smb/v1.rs) where the persona still has SMB1 (builds before 16299, or
//! setting `smb1`), and dropped otherwise, as by a Windows host with SMB1 disabled.

use std::io::{self, Read, Write};

use md5::{Digest, Md5};
use serde_json::Value;

pub(crate) mod v1;

use super::ntlm::{self, Exchange, Identity};
use super::{Conn, ServiceCtx, MAX_LOGGED};
use crate::log::{AttackDetails, AttackKind, Fields, Reporter};
use crate::util::{bump, clip, push_bounded, set_once, Rng};
use v1::{Native, Smb1};

/// Largest SMB message read (negotiate and session setup are a few KiB at most).
pub const MAX_MESSAGE: usize = 64 * 1024;
/// Most SMB messages answered on one connection.
const MAX_MESSAGES: usize = 64;

pub const STATUS_SUCCESS: u32 = 0;
pub const STATUS_MORE_PROCESSING_REQUIRED: u32 = 0xc000_0016;
pub const STATUS_LOGON_FAILURE: u32 = 0xc000_006d;
pub const STATUS_NOT_SUPPORTED: u32 = 0xc000_00bb;
pub const STATUS_INVALID_PARAMETER: u32 = 0xc000_000d;
pub const STATUS_USER_SESSION_DELETED: u32 = 0xc000_0203;
pub const STATUS_ACCESS_DENIED: u32 = 0xc000_0022;

const NEGOTIATE: u16 = 0;
const SESSION_SETUP: u16 = 1;
const LOGOFF: u16 = 2;
const TREE_CONNECT: u16 = 3;
const ECHO: u16 = 0x0d;

const HEADER: usize = 64;
/// The dialects this server speaks, oldest first (Windows Server 2016's set).
const DIALECTS: [u16; 5] = [0x0202, 0x0210, 0x0300, 0x0302, 0x0311];

fn le16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn le64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The fields of an SMB2 request header this server answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub command: u16,
    pub credits: u16,
    pub message_id: u64,
    pub tree_id: u32,
    pub session_id: u64,
}

pub fn parse_header(m: &[u8]) -> Option<Header> {
    if !m.starts_with(b"\xfeSMB") || m.len() < HEADER {
        return None;
    }
    Some(Header {
        command: le16(m, 12)?,
        credits: le16(m, 14)?,
        message_id: le64(m, 24)?,
        tree_id: le32(m, 36)?,
        session_id: le64(m, 40)?,
    })
}

/// A response header for `req` with `status`.
fn response_header(req: &Header, status: u32, session_id: u64) -> Vec<u8> {
    let mut h = Vec::with_capacity(HEADER);
    h.extend_from_slice(b"\xfeSMB");
    h.extend_from_slice(&64u16.to_le_bytes());
    h.extend_from_slice(&0u16.to_le_bytes()); // credit charge
    h.extend_from_slice(&status.to_le_bytes());
    h.extend_from_slice(&req.command.to_le_bytes());
    h.extend_from_slice(&req.credits.clamp(1, 32).to_le_bytes());
    h.extend_from_slice(&1u32.to_le_bytes()); // SMB2_FLAGS_SERVER_TO_REDIR
    h.extend_from_slice(&0u32.to_le_bytes()); // next command
    h.extend_from_slice(&req.message_id.to_le_bytes());
    h.extend_from_slice(&0x0000_feffu32.to_le_bytes()); // reserved (process id), as Windows
    h.extend_from_slice(&req.tree_id.to_le_bytes());
    h.extend_from_slice(&session_id.to_le_bytes());
    h.extend_from_slice(&[0; 16]);
    h
}

/// An error response (MS-SMB2 2.2.2).
pub fn error_response(req: &Header, status: u32, session_id: u64) -> Vec<u8> {
    let mut m = response_header(req, status, session_id);
    m.extend_from_slice(&9u16.to_le_bytes());
    m.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0]);
    m
}

/// What a client's NEGOTIATE offers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Offer {
    pub dialects: Vec<u16>,
    /// Encryption ciphers of a 3.1.1 ENCRYPTION_CAPABILITIES context.
    pub ciphers: Vec<u16>,
}

/// Most dialects and ciphers read from one NEGOTIATE.
const MAX_LIST: usize = 64;

pub fn parse_negotiate(m: &[u8]) -> Option<Offer> {
    let body = m.get(HEADER..)?;
    let count = usize::from(le16(body, 2)?).min(MAX_LIST);
    let dialects = (0..count)
        .map(|i| le16(body, 36 + 2 * i))
        .collect::<Option<Vec<_>>>()?;
    let mut ciphers = Vec::new();
    if dialects.contains(&0x0311) {
        let mut at = usize::try_from(le32(body, 28)?).ok()?;
        let n = le16(body, 32)?;
        for _ in 0..n.min(16) {
            let (Some(kind), Some(len)) = (le16(m, at), le16(m, at + 2)) else {
                break;
            };
            let len = usize::from(len);
            if kind == 2 {
                let data = m.get(at + 8..at + 8 + len).unwrap_or_default();
                let c = usize::from(le16(data, 0).unwrap_or(0)).min(MAX_LIST);
                ciphers = (0..c).filter_map(|i| le16(data, 2 + 2 * i)).collect();
            }
            at = (at + 8 + len).next_multiple_of(8);
        }
    }
    Some(Offer { dialects, ciphers })
}

/// The persona's fixed SMB facts.
#[derive(Debug, Clone)]
pub struct Server {
    pub guid: [u8; 16],
    /// SecurityMode: 1 signing enabled, 3 signing required (domain controllers).
    pub security_mode: u16,
    /// Whether SMB1-only clients are answered (setting `smb1`; default by OS build).
    pub smb1: bool,
}

impl Server {
    pub fn from_ctx(ctx: &ServiceCtx, id: &Identity) -> Server {
        let digest = Md5::digest(format!("smb-guid:{}:{}", ctx.decky, id.dns_computer));
        let mut guid = [0u8; 16];
        guid.copy_from_slice(&digest);
        let required = match ctx.config.get("signing_required") {
            Some(Value::Bool(b)) => *b,
            _ => ctx.windows_identity().is_some_and(|w| w.signing_required),
        };
        let smb1 = match ctx.config.get("smb1") {
            Some(Value::Bool(b)) => *b,
            _ => v1::enabled_by_default(id.version),
        };
        Server {
            guid,
            security_mode: if required { 3 } else { 1 },
            smb1,
        }
    }
}

/// The NEGOTIATE response for `dialect` (`0x02FF` answers an SMB1 negotiate).
pub fn negotiate_response(
    srv: &Server,
    req: &Header,
    dialect: u16,
    cipher: Option<u16>,
    rng: &mut Rng,
) -> Vec<u8> {
    let caps: u32 = match dialect {
        0x0202 => 0x01,
        0x0210 | 0x02ff => 0x07,
        _ => 0x2f,
    };
    let token = ntlm::spnego_init();
    let mut contexts = Vec::new();
    let mut n_contexts = 0u16;
    if dialect == 0x0311 {
        let mut salt = [0u8; 32];
        rng.fill(&mut salt);
        let mut preauth = vec![1, 0, 32, 0, 1, 0]; // one hash (SHA-512), 32-byte salt
        preauth.extend_from_slice(&salt);
        push_context(&mut contexts, 1, &preauth);
        n_contexts += 1;
        if let Some(c) = cipher {
            let mut enc = 1u16.to_le_bytes().to_vec();
            enc.extend_from_slice(&c.to_le_bytes());
            push_context(&mut contexts, 2, &enc);
            n_contexts += 1;
        }
    }
    let buffer_off = HEADER + 64;
    let context_off = if n_contexts > 0 {
        (buffer_off + token.len()).next_multiple_of(8)
    } else {
        0
    };
    let now = ntlm::filetime_now();
    let mut m = response_header(req, STATUS_SUCCESS, 0);
    m.extend_from_slice(&65u16.to_le_bytes());
    m.extend_from_slice(&srv.security_mode.to_le_bytes());
    m.extend_from_slice(&dialect.to_le_bytes());
    m.extend_from_slice(&n_contexts.to_le_bytes());
    m.extend_from_slice(&srv.guid);
    m.extend_from_slice(&caps.to_le_bytes());
    for _ in 0..3 {
        m.extend_from_slice(&8_388_608u32.to_le_bytes()); // max transact, read, write
    }
    m.extend_from_slice(&now.to_le_bytes());
    m.extend_from_slice(&0u64.to_le_bytes()); // server start time
    m.extend_from_slice(&(buffer_off as u16).to_le_bytes());
    m.extend_from_slice(&u16::try_from(token.len()).unwrap_or(0).to_le_bytes());
    m.extend_from_slice(&u32::try_from(context_off).unwrap_or(0).to_le_bytes());
    m.extend_from_slice(&token);
    if n_contexts > 0 {
        m.resize(context_off, 0);
        m.extend_from_slice(&contexts);
    }
    m
}

fn push_context(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
    out.resize(out.len().next_multiple_of(8), 0);
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(&u16::try_from(data.len()).unwrap_or(0).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(data);
}

/// A SESSION_SETUP response carrying `token`.
pub fn session_setup_response(req: &Header, status: u32, session_id: u64, token: &[u8]) -> Vec<u8> {
    let mut m = response_header(req, status, session_id);
    m.extend_from_slice(&9u16.to_le_bytes());
    m.extend_from_slice(&0u16.to_le_bytes()); // session flags
    m.extend_from_slice(&((HEADER + 8) as u16).to_le_bytes());
    m.extend_from_slice(&u16::try_from(token.len()).unwrap_or(0).to_le_bytes());
    m.extend_from_slice(token);
    m
}

/// The security buffer of a SESSION_SETUP request.
pub fn session_setup_token(m: &[u8]) -> Option<&[u8]> {
    let body = m.get(HEADER..)?;
    let off = usize::from(le16(body, 12)?);
    let len = usize::from(le16(body, 14)?);
    m.get(off..off.checked_add(len)?)
}

/// The share path (`\\server\share`) of a TREE_CONNECT request.
pub fn tree_connect_path(m: &[u8]) -> Option<String> {
    let body = m.get(HEADER..)?;
    let off = usize::from(le16(body, 4)?);
    let len = usize::from(le16(body, 6)?).min(512);
    let raw = m.get(off..off.checked_add(len)?)?;
    let units: Vec<u16> = raw
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    Some(clip(String::from_utf16_lossy(&units).as_bytes(), 256))
}

/// The dialect strings of an SMB1 NEGOTIATE (`None` if it is not one).
pub fn parse_smb1_negotiate(m: &[u8]) -> Option<Vec<String>> {
    if !m.starts_with(b"\xffSMB") || *m.get(4)? != 0x72 {
        return None;
    }
    let words = usize::from(*m.get(32)?);
    let at = 33 + 2 * words;
    let count = usize::from(le16(m, at)?);
    let bytes = m.get(at + 2..)?;
    let bytes = &bytes[..count.min(bytes.len())];
    Some(
        bytes
            .split(|&b| b == 0)
            .filter_map(|d| d.strip_prefix(&[0x02]))
            .take(MAX_LIST)
            .map(|d| clip(d, 32))
            .collect(),
    )
}

/// One NetBIOS session service frame: (type, payload); `None` at a clean end of stream.
fn read_frame<S: Read + Write>(conn: &mut Conn<S>) -> io::Result<Option<(u8, Vec<u8>)>> {
    let head = match conn.read_exact_vec(4) {
        Ok(h) => h,
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    };
    // Not a NetBIOS session message, request or keep-alive: not SMB, close at once.
    if !matches!(head[0], 0x00 | 0x81 | 0x85) {
        return Ok(Some((head[0], Vec::new())));
    }
    let len = usize::from(head[1]) << 16 | usize::from(head[2]) << 8 | usize::from(head[3]);
    if len > MAX_MESSAGE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "smb message too large",
        ));
    }
    Ok(Some((head[0], conn.read_exact_vec(len)?)))
}

fn frame(msg: &[u8]) -> Vec<u8> {
    let len = u32::try_from(msg.len()).unwrap_or(0).to_be_bytes();
    let mut out = vec![0, len[1], len[2], len[3]];
    out.extend_from_slice(msg);
    out
}

fn dialect_name(d: u16) -> String {
    if d == 0x02ff {
        return "2.???".into();
    }
    format!("{}.{}.{}", d >> 8, (d >> 4) & 0xf, d & 0xf)
}

pub fn handle<S: Read + Write>(
    mut conn: Conn<S>,
    ctx: &ServiceCtx,
    report: &Reporter,
    fields: &mut Fields,
) -> io::Result<()> {
    let id = Identity::from_ctx(ctx);
    let srv = Server::from_ctx(ctx, &id);
    let mut rng = Rng::new();
    let ntlm = Exchange::new(id, &mut rng);
    let session_id = rng.next_u64() | 1;
    let mut v1: Option<Smb1<'_>> = None;
    let mut null_session = false;
    for _ in 0..MAX_MESSAGES {
        let Some((kind, msg)) = read_frame(&mut conn)? else {
            return Ok(());
        };
        match kind {
            0x00 => {}
            // NetBIOS SESSION REQUEST (port 139): positive response.
            0x81 => {
                set_once(fields, "netbios_session", Value::from(true));
                conn.send(&[0x82, 0, 0, 0])?;
                continue;
            }
            0x85 => continue, // keep-alive
            _ => return Ok(()),
        }
        if let Some(state) = v1.as_mut() {
            if !msg.starts_with(b"\xffSMB") || msg.len() < 33 {
                return Ok(());
            }
            bump(fields, "smb_messages");
            match state.request(&msg, report, fields) {
                Some(reply) => conn.send(&frame(&reply))?,
                None => return Ok(()),
            }
            continue;
        }
        if let Some(dialects) = parse_smb1_negotiate(&msg) {
            set_once(fields, "smb1_dialects", Value::from(dialects.clone()));
            let dialect = if dialects.iter().any(|d| d == "SMB 2.???") {
                0x02ff
            } else if dialects.iter().any(|d| d == "SMB 2.002") {
                0x0202
            } else if let (true, Some(index)) =
                (srv.smb1, dialects.iter().position(|d| d == "NT LM 0.12"))
            {
                let mut state = Smb1 {
                    srv: &srv,
                    id: &ntlm.id,
                    native: Native::new(ctx.config.line("native_os"), ntlm.id.version),
                    ntlm: &ntlm,
                    ext: false,
                    unicode: false,
                };
                conn.send(&frame(&state.negotiate(&msg, index, fields)))?;
                v1 = Some(state);
                continue;
            } else {
                set_once(fields, "reason", Value::from("smb1 only"));
                return Ok(());
            };
            let req = Header {
                command: NEGOTIATE,
                credits: 1,
                message_id: 0,
                tree_id: 0,
                session_id: 0,
            };
            set_once(fields, "dialect", Value::from(dialect_name(dialect)));
            conn.send(&frame(&negotiate_response(
                &srv, &req, dialect, None, &mut rng,
            )))?;
            continue;
        }
        let Some(req) = parse_header(&msg) else {
            set_once(fields, "reason", Value::from("not smb"));
            return Ok(());
        };
        bump(fields, "smb_messages");
        let reply = match req.command {
            NEGOTIATE => match parse_negotiate(&msg) {
                Some(offer) => {
                    let offered: Vec<_> = offer
                        .dialects
                        .iter()
                        .take(MAX_LOGGED)
                        .map(|&d| dialect_name(d))
                        .collect();
                    set_once(fields, "smb2_dialects", Value::from(offered));
                    let best = DIALECTS
                        .iter()
                        .rev()
                        .find(|d| offer.dialects.contains(d))
                        .copied();
                    match best {
                        Some(d) => {
                            fields.insert("dialect".into(), Value::from(dialect_name(d)));
                            let cipher = offer.ciphers.iter().find(|c| matches!(c, 1 | 2)).copied();
                            negotiate_response(&srv, &req, d, cipher, &mut rng)
                        }
                        None => error_response(&req, STATUS_NOT_SUPPORTED, 0),
                    }
                }
                None => error_response(&req, STATUS_INVALID_PARAMETER, 0),
            },
            SESSION_SETUP => {
                let token = session_setup_token(&msg).and_then(ntlm::find);
                match token.and_then(|t| ntlm::message_type(t).map(|k| (k, t))) {
                    Some((1, t)) => {
                        let challenge = ntlm.on_negotiate(t, fields);
                        session_setup_response(
                            &req,
                            STATUS_MORE_PROCESSING_REQUIRED,
                            session_id,
                            &ntlm::spnego_challenge(&challenge),
                        )
                    }
                    Some((3, t)) => match ntlm.on_authenticate(t, "smb", report, fields) {
                        // A null session is let in, as Windows does (its shares stay shut).
                        Some(a) if a.is_anonymous() => {
                            set_once(fields, "null_session", Value::from(true));
                            null_session = true;
                            let mut m = session_setup_response(
                                &req,
                                STATUS_SUCCESS,
                                session_id,
                                &ntlm::spnego_accept(),
                            );
                            m[HEADER + 2] = 0x02; // SMB2_SESSION_FLAG_IS_NULL
                            m
                        }
                        _ => error_response(&req, STATUS_LOGON_FAILURE, req.session_id),
                    },
                    _ => {
                        set_once(fields, "auth_mechanism", Value::from("not ntlm"));
                        error_response(&req, STATUS_LOGON_FAILURE, req.session_id)
                    }
                }
            }
            LOGOFF | ECHO => {
                let mut m = response_header(&req, STATUS_SUCCESS, req.session_id);
                m.extend_from_slice(&4u16.to_le_bytes());
                m.extend_from_slice(&0u16.to_le_bytes());
                m
            }
            TREE_CONNECT => {
                let path = tree_connect_path(&msg).unwrap_or_default();
                push_bounded(
                    fields,
                    "tree_connects",
                    Value::from(path.clone()),
                    MAX_LOGGED,
                );
                report.emit(
                    AttackKind::Command,
                    AttackDetails {
                        command: Some(format!("tree connect {path}")),
                        path: Some(path),
                        ..AttackDetails::default()
                    },
                );
                let status = if null_session && req.session_id == session_id {
                    STATUS_ACCESS_DENIED
                } else {
                    STATUS_USER_SESSION_DELETED
                };
                error_response(&req, status, req.session_id)
            }
            _ => error_response(&req, STATUS_USER_SESSION_DELETED, req.session_id),
        };
        conn.send(&frame(&reply))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;

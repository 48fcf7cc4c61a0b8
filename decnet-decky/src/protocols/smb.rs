//! SMB as a Windows file server answers before anyone has logged on (MS-SMB2): the SMB1
//! NEGOTIATE scanners still send is upgraded to SMB2 (dialect `0x02FF`, as Windows does), the
//! SMB2/3 NEGOTIATE picks the best common dialect up to 3.1.1, and SESSION_SETUP runs
//! SPNEGO/NTLMSSP through [`super::ntlm`]: the CHALLENGE names the persona, the AUTHENTICATE is
//! recorded (hashcat line included) and refused with `STATUS_LOGON_FAILURE`.
//!
//! Framing is the direct-TCP / NetBIOS session service header (4 bytes); on port 139 a NetBIOS
//! SESSION REQUEST is answered positively first. An SMB1-only client (no SMB2 dialect offered)
//! is answered by [`super::smb1`] where the persona still has SMB1 (builds before 16299, or
//! setting `smb1`), and dropped otherwise, as by a Windows host with SMB1 disabled.

use std::io::{self, Read, Write};

use md5::{Digest, Md5};
use serde_json::Value;

use super::ntlm::{self, Exchange, Identity};
use super::smb1::{self, Native, Smb1};
use super::{Conn, ServiceCtx, MAX_LOGGED};
use crate::log::{AttackDetails, AttackKind, Fields, Reporter};
use crate::util::{bump, clip, push_bounded, set_once, Rng};

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
        let required = matches!(ctx.config.get("signing_required"), Some(Value::Bool(true)));
        let smb1 = match ctx.config.get("smb1") {
            Some(Value::Bool(b)) => *b,
            _ => smb1::enabled_by_default(id.version),
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
mod tests {
    use super::super::ntlm::tests::authenticate;
    use super::*;
    use crate::log::AttackKind;
    use proptest::prelude::*;
    use serde_json::json;

    fn request(command: u16, message_id: u64, body: &[u8]) -> Vec<u8> {
        let mut m = b"\xfeSMB".to_vec();
        m.extend_from_slice(&64u16.to_le_bytes());
        m.extend_from_slice(&[0; 6]);
        m.extend_from_slice(&command.to_le_bytes());
        m.extend_from_slice(&1u16.to_le_bytes());
        m.extend_from_slice(&[0; 8]);
        m.extend_from_slice(&message_id.to_le_bytes());
        m.extend_from_slice(&[0; 32]);
        m.extend_from_slice(body);
        m
    }

    fn negotiate(dialects: &[u16]) -> Vec<u8> {
        let mut b = 36u16.to_le_bytes().to_vec();
        b.extend_from_slice(&(dialects.len() as u16).to_le_bytes());
        b.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
        b.extend_from_slice(&[7; 16]);
        b.extend_from_slice(&[0; 8]);
        for d in dialects {
            b.extend_from_slice(&d.to_le_bytes());
        }
        request(NEGOTIATE, 0, &b)
    }

    fn session_setup(message_id: u64, token: &[u8]) -> Vec<u8> {
        let mut b = 25u16.to_le_bytes().to_vec();
        b.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
        b.extend_from_slice(&88u16.to_le_bytes());
        b.extend_from_slice(&(token.len() as u16).to_le_bytes());
        b.extend_from_slice(&[0; 8]);
        b.extend_from_slice(token);
        request(SESSION_SETUP, message_id, &b)
    }

    fn smb1_negotiate(dialects: &[&str]) -> Vec<u8> {
        let mut m = b"\xffSMB\x72".to_vec();
        m.extend_from_slice(&[0; 27]);
        m.push(0); // word count
        let mut bytes = Vec::new();
        for d in dialects {
            bytes.push(2);
            bytes.extend_from_slice(d.as_bytes());
            bytes.push(0);
        }
        m.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
        m.extend_from_slice(&bytes);
        m
    }

    /// Splits the server's output into SMB2 messages.
    fn replies(out: &[u8]) -> Vec<Vec<u8>> {
        let mut v = Vec::new();
        let mut at = 0;
        while at + 4 <= out.len() {
            let len = usize::from(out[at + 2]) << 8 | usize::from(out[at + 3]);
            v.push(out[at + 4..at + 4 + len].to_vec());
            at += 4 + len;
        }
        v
    }

    fn status(m: &[u8]) -> u32 {
        le32(m, 8).expect("status")
    }

    #[test]
    fn smb1_negotiate_is_upgraded_to_smb2_wildcard() {
        let input = [
            frame(&smb1_negotiate(&["NT LM 0.12", "SMB 2.002", "SMB 2.???"])),
            frame(&negotiate(&[0x0202, 0x0210, 0x0300])),
        ]
        .concat();
        let (out, f, _) = run_raw(&input);
        let r = replies(&out);
        assert_eq!(r.len(), 2);
        assert_eq!(le16(&r[0], 64 + 4), Some(0x02ff));
        assert_eq!(le16(&r[1], 64 + 4), Some(0x0300));
        assert_eq!(
            le16(&r[1], 64 + 2),
            Some(1),
            "signing enabled, not required"
        );
        assert_eq!(
            f["smb1_dialects"],
            json!(["NT LM 0.12", "SMB 2.002", "SMB 2.???"])
        );
        assert_eq!(f["dialect"], "3.0.0");
        // Windows Server 2019 (17763) ships without SMB1: an SMB1-only client is dropped.
        let (out, f, _) = run_cfg(
            json!({"os_version": "10.0.17763"}),
            &frame(&smb1_negotiate(&["NT LM 0.12"])),
        );
        assert!(out.is_empty());
        assert_eq!(f["reason"], "smb1 only");
    }

    fn smb1_request(command: u8, flags2: u16, words: &[u8], bytes: &[u8]) -> Vec<u8> {
        let mut m = b"\xffSMB".to_vec();
        m.push(command);
        m.extend_from_slice(&[0; 5]);
        m.extend_from_slice(&flags2.to_le_bytes());
        m.extend_from_slice(&[0; 20]);
        m.push((words.len() / 2) as u8);
        m.extend_from_slice(words);
        m.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
        m.extend_from_slice(bytes);
        m
    }

    /// A pre-NTLMSSP (OEM strings) session setup, as nmap sends it.
    fn smb1_plain_setup(user: &str, lm: &[u8], nt: &[u8]) -> Vec<u8> {
        let mut w = vec![0xff, 0, 0, 0, 0xff, 0xff, 1, 0, 1, 0, 0, 0, 0, 0];
        w.extend_from_slice(&(lm.len() as u16).to_le_bytes());
        w.extend_from_slice(&(nt.len() as u16).to_le_bytes());
        w.extend_from_slice(&[0, 0, 0, 0, 0x50, 0, 0, 0]);
        let b = [
            lm,
            nt,
            user.as_bytes(),
            b"\0WORKGROUP\0Nmap\0Native Lanman\0",
        ]
        .concat();
        smb1_request(0x73, 0x6041, &w, &b)
    }

    /// The NativeOS string of an SMB1 session setup answer with OEM strings.
    fn native_os(m: &[u8]) -> String {
        let words = usize::from(m[32]);
        let at = 33 + 2 * words + 2;
        let end = m[at..].iter().position(|&b| b == 0).expect("nul");
        String::from_utf8_lossy(&m[at..at + end]).into_owned()
    }

    #[test]
    fn smb1_only_clients_get_nt_lm_and_the_native_os() {
        let input = [
            frame(&smb1_negotiate(&["PC NETWORK PROGRAM 1.0", "NT LM 0.12"])),
            frame(&smb1_plain_setup("guest", &[1; 24], &[2; 24])),
            frame(&smb1_plain_setup("", &[0], &[])),
            frame(&smb1_request(
                0x75,
                0x6041,
                &[0xff, 0, 0, 0, 0, 0, 1, 0],
                b"\0",
            )),
        ]
        .concat();
        let (out, f, events) = run_raw(&input);
        let r = replies(&out);
        assert_eq!(r.len(), 4);
        assert_eq!(&r[0][..5], b"\xffSMB\x72");
        assert_eq!(le16(&r[0], 33), Some(1), "dialect index of NT LM 0.12");
        assert_eq!(r[0][66], 8, "challenge length (no extended security)");
        assert_eq!(le32(&r[1], 5), Some(STATUS_LOGON_FAILURE));
        assert_eq!(le32(&r[2], 5), Some(STATUS_SUCCESS), "null session");
        assert_eq!(native_os(&r[2]), "Windows Server 2016 Standard 14393");
        assert_eq!(le32(&r[3], 5), Some(0xc000_0022), "tree connect refused");
        let auth: Vec<_> = events
            .iter()
            .filter(|e| e.kind == AttackKind::Auth)
            .collect();
        assert_eq!(auth.len(), 2);
        assert_eq!(auth[0].details.username.as_deref(), Some("guest"));
        assert_eq!(auth[0].details.extra["hash_mode"], 5500);
        assert_eq!(auth[1].details.extra["anonymous"], true);
        assert_eq!(f["null_session"], true);
        assert_eq!(f["dialect"], "NT LM 0.12");
    }

    fn run_raw(input: &[u8]) -> (Vec<u8>, Fields, Vec<crate::log::AttackEvent>) {
        run_cfg(json!({"domain": "acme.corp"}), input)
    }

    fn run_cfg(
        cfg: serde_json::Value,
        input: &[u8],
    ) -> (Vec<u8>, Fields, Vec<crate::log::AttackEvent>) {
        let c = super::super::testing::ctx("smb", cfg);
        let (report, sink) = super::super::testing::reporter("smb", 445);
        let mut m = super::super::testing::Mock::new(input);
        let mut f = Fields::new();
        super::super::handle(
            &c,
            &super::super::testing::peer(445),
            &report,
            &mut m,
            &mut f,
        )
        .expect("ok");
        (m.output, f, sink.events())
    }

    #[test]
    fn ntlm_session_setup_is_recorded_and_refused() {
        let mut neg = ntlm::SIGNATURE.to_vec();
        neg.extend_from_slice(&1u32.to_le_bytes());
        neg.extend_from_slice(&0xe208_8297u32.to_le_bytes());
        neg.extend_from_slice(&[0; 16]);
        let nt: Vec<u8> = (0u8..48).collect();
        let auth = authenticate("alice", "ACME", "KALI", &[0; 24], &nt);
        let input = [
            frame(&negotiate(&[0x0202, 0x0311])),
            frame(&session_setup(1, &ntlm::tlv(0x60, &neg))),
            frame(&session_setup(2, &ntlm::tlv(0xa1, &auth))),
        ]
        .concat();
        let (out, f, events) = run_raw(&input);
        let r = replies(&out);
        assert_eq!(r.len(), 3);
        assert_eq!(le16(&r[0], 64 + 4), Some(0x0311));
        assert_eq!(le16(&r[0], 64 + 6), Some(1), "preauth context");
        assert_eq!(status(&r[1]), STATUS_MORE_PROCESSING_REQUIRED);
        let challenge = ntlm::find(&r[1]).expect("challenge in the response");
        assert_eq!(ntlm::message_type(challenge), Some(2));
        let server_challenge = &challenge[24..32];
        assert_eq!(status(&r[2]), STATUS_LOGON_FAILURE);
        let auth_ev: Vec<_> = events
            .iter()
            .filter(|e| e.kind == AttackKind::Auth)
            .collect();
        assert_eq!(auth_ev.len(), 1);
        let d = &auth_ev[0].details;
        assert_eq!(d.username.as_deref(), Some("alice"));
        assert_eq!(d.method.as_deref(), Some("ntlm"));
        assert_eq!(d.accepted, Some(false));
        assert_eq!(d.extra["domain"], "ACME");
        assert_eq!(d.extra["workstation"], "KALI");
        assert_eq!(d.extra["hash_mode"], 5600);
        let want = format!(
            "alice::ACME:{}:{}:{}",
            crate::util::hex(server_challenge),
            crate::util::hex(&nt[..16]),
            crate::util::hex(&nt[16..])
        );
        assert_eq!(d.hash.as_deref(), Some(want.as_str()));
        assert_eq!(f["username"], "alice");
        assert_eq!(f["credentials"][0]["hash"], want.as_str());
    }

    #[test]
    fn netbios_session_request_and_other_commands() {
        let input = [
            vec![0x81, 0, 0, 4, 1, 2, 3, 4],
            frame(&request(ECHO, 5, &[4, 0, 0, 0])),
            frame(&request(3, 6, &[9, 0])),
        ]
        .concat();
        let (out, f, _) = run_raw(&input);
        assert_eq!(&out[..4], &[0x82, 0, 0, 0]);
        let r = replies(&out[4..]);
        assert_eq!(status(&r[0]), STATUS_SUCCESS);
        assert_eq!(le64(&r[0], 24), Some(5), "message id echoed");
        assert_eq!(status(&r[1]), STATUS_USER_SESSION_DELETED);
        assert_eq!(f["netbios_session"], true);
    }

    #[test]
    fn oversized_frames_are_refused() {
        let c = super::super::testing::ctx("smb", json!({}));
        let (report, _) = super::super::testing::reporter("smb", 445);
        let mut m = super::super::testing::Mock::new(&[0, 0xff, 0xff, 0xff]);
        let mut f = Fields::new();
        let r = super::super::handle(
            &c,
            &super::super::testing::peer(445),
            &report,
            &mut m,
            &mut f,
        );
        assert!(r.is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        /// Random frames, and valid requests with a byte changed or cut short, never panic.
        #[test]
        fn hostile_messages_never_panic(
            data in proptest::collection::vec(any::<u8>(), 0..1024),
            at in any::<usize>(),
            byte in any::<u8>(),
            cut in any::<usize>(),
        ) {
            let _ = parse_negotiate(&data);
            let _ = parse_smb1_negotiate(&data);
            let _ = session_setup_token(&data);
            let nt_lm = frame(&smb1_negotiate(&["NT LM 0.12"]));
            let mut plain = smb1_plain_setup("user", &[1; 24], &data);
            let i = at % plain.len();
            plain[i] = byte;
            plain.truncate(cut % (plain.len() + 1));
            for flags2 in [0x6041u16, 0xc843] {
                let mut ext = smb1_request(0x73, flags2, &[0xff; 24], &data);
                ext[5 + at % 20] = byte;
                let c = super::super::testing::ctx("smb", json!({}));
                let (report, _) = super::super::testing::reporter("smb", 445);
                let mut neg = smb1_negotiate(&["NT LM 0.12"]);
                neg[10..12].copy_from_slice(&flags2.to_le_bytes());
                let input = [frame(&neg), frame(&plain), frame(&ext), frame(&data)].concat();
                let mut mock = super::super::testing::Mock::new(&input);
                let mut f = Fields::new();
                let _ = super::super::handle(&c, &super::super::testing::peer(445), &report, &mut mock, &mut f);
            }
            let _ = nt_lm;
            for mut m in [negotiate(&[0x0311, 0x0202]), session_setup(1, &data), smb1_negotiate(&["SMB 2.???"])] {
                let i = at % m.len();
                m[i] = byte;
                m.truncate(cut % (m.len() + 1));
                let _ = parse_negotiate(&m);
                let _ = parse_smb1_negotiate(&m);
                let c = super::super::testing::ctx("smb", json!({}));
                let (report, _) = super::super::testing::reporter("smb", 445);
                let mut mock = super::super::testing::Mock::new(&[frame(&m), frame(&data)].concat());
                let mut f = Fields::new();
                let _ = super::super::handle(&c, &super::super::testing::peer(445), &report, &mut mock, &mut f);
            }
        }
    }
}

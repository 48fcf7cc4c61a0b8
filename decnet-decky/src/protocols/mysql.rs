//! MySQL: protocol-10 handshake, read the login, answer ERR 1045.

use std::io::{self, Read, Write};

use serde_json::Value;

use super::{Conn, Peer, ServiceCtx};
use crate::log::Fields;
use crate::util::{clip, hex, Rng};

pub const DEFAULT_VERSION: &str = "8.0.36-0ubuntu0.22.04.1";
pub const AUTH_PLUGIN: &str = "mysql_native_password";

/// Capabilities: everything a MySQL 8 server offers except SSL and
/// compression (which this decoy cannot speak).
const CAPS_LOWER: u16 = 0xf7ff & !0x0020;
const CAPS_UPPER: u16 = 0xdfff;
const CLIENT_CONNECT_WITH_DB: u32 = 0x0008;
const CLIENT_PROTOCOL_41: u32 = 0x0200;
const CLIENT_SSL: u32 = 0x0800;
const CLIENT_PLUGIN_AUTH_LENENC: u32 = 0x0020_0000;
const CLIENT_SECURE_CONNECTION: u32 = 0x8000;

/// Largest client packet read.
const MAX_PACKET: usize = 16 * 1024;

/// The server's initial handshake packet (header included).
pub fn handshake(version: &str, conn_id: u32, rng: &mut Rng) -> Vec<u8> {
    // Scramble bytes are printable and never NUL, like the real server's.
    let mut scramble = [0u8; 20];
    rng.fill(&mut scramble);
    for b in &mut scramble {
        *b = 0x21 + (*b % 0x5e);
    }
    let mut p = vec![0x0a];
    p.extend_from_slice(version.as_bytes());
    p.push(0);
    p.extend_from_slice(&conn_id.to_le_bytes());
    p.extend_from_slice(&scramble[..8]);
    p.push(0); // filler
    p.extend_from_slice(&CAPS_LOWER.to_le_bytes());
    p.push(0xff); // utf8mb4_0900_ai_ci
    p.extend_from_slice(&0x0002u16.to_le_bytes()); // SERVER_STATUS_AUTOCOMMIT
    p.extend_from_slice(&CAPS_UPPER.to_le_bytes());
    p.push(21); // auth plugin data length
    p.extend_from_slice(&[0; 10]); // reserved
    p.extend_from_slice(&scramble[8..]);
    p.push(0);
    p.extend_from_slice(AUTH_PLUGIN.as_bytes());
    p.push(0);
    packet(0, &p)
}

fn packet(seq: u8, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = len.to_le_bytes()[..3].to_vec();
    out.push(seq);
    out.extend_from_slice(payload);
    out
}

/// ERR packet: 0xff, code, `#`, SQL state, message.
pub fn err_packet(seq: u8, code: u16, state: &str, msg: &str) -> Vec<u8> {
    let mut p = vec![0xff];
    p.extend_from_slice(&code.to_le_bytes());
    p.push(b'#');
    p.extend_from_slice(state.as_bytes());
    p.extend_from_slice(msg.as_bytes());
    packet(seq, &p)
}

fn cstr(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

/// Fields of a HandshakeResponse41: user, auth response, database.
fn parse_login(p: &[u8], fields: &mut Fields) -> Option<Vec<u8>> {
    let caps = u32::from_le_bytes(p.get(..4)?.try_into().ok()?);
    fields.insert("client_flags".into(), Value::from(format!("0x{caps:08x}")));
    if caps & CLIENT_PROTOCOL_41 == 0 {
        return None;
    }
    if caps & CLIENT_SSL != 0 && p.len() == 32 {
        fields.insert("ssl_request".into(), Value::from(true));
        return None;
    }
    let (user, rest) = cstr(p.get(32..)?);
    fields.insert("username".into(), Value::from(clip(user, 128)));
    // Length-prefixed auth data (a one-byte length covers every real
    // client's scramble), else NUL-terminated (pre-4.1 secure connection).
    let (auth, rest) = if caps & (CLIENT_PLUGIN_AUTH_LENENC | CLIENT_SECURE_CONNECTION) != 0 {
        let n = usize::from(*rest.first()?);
        (rest.get(1..1 + n)?, rest.get(1 + n..)?)
    } else {
        cstr(rest)
    };
    fields.insert("auth_response".into(), Value::from(hex(auth)));
    if caps & CLIENT_CONNECT_WITH_DB != 0 {
        let (db, _) = cstr(rest);
        if !db.is_empty() {
            fields.insert("database".into(), Value::from(clip(db, 128)));
        }
    }
    Some(user.to_vec())
}

pub fn handle<S: Read + Write>(
    mut conn: Conn<S>,
    ctx: &ServiceCtx,
    peer: &Peer,
    fields: &mut Fields,
) -> io::Result<()> {
    let version = ctx
        .config
        .line("version")
        .unwrap_or_else(|| DEFAULT_VERSION.to_owned());
    let mut rng = Rng::new();
    let conn_id = (rng.next_u64() % 90_000) as u32 + 10;
    conn.send(&handshake(&version, conn_id, &mut rng))?;
    let head = match conn.read_exact_vec(4) {
        Ok(h) => h,
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
        Err(e) => return Err(e),
    };
    let len = usize::from(head[0]) | usize::from(head[1]) << 8 | usize::from(head[2]) << 16;
    let seq = head[3];
    if len > MAX_PACKET {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "packet too large",
        ));
    }
    let payload = conn.read_exact_vec(len)?;
    let user = parse_login(&payload, fields).unwrap_or_default();
    let msg = format!(
        "Access denied for user '{}'@'{}' (using password: {})",
        clip(&user, 64),
        peer.addr.ip(),
        if fields
            .get("auth_response")
            .and_then(Value::as_str)
            .is_some_and(|a| !a.is_empty())
        {
            "YES"
        } else {
            "NO"
        }
    );
    conn.send(&err_packet(seq.wrapping_add(1), 1045, "28000", &msg))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{ctx, peer, Mock};
    use super::super::{handle as dispatch, Conn};
    use super::*;
    use serde_json::json;

    fn login(user: &str, auth: &[u8], db: Option<&str>) -> Vec<u8> {
        let mut caps = CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION;
        if db.is_some() {
            caps |= CLIENT_CONNECT_WITH_DB;
        }
        let mut p = caps.to_le_bytes().to_vec();
        p.extend_from_slice(&16_777_216u32.to_le_bytes());
        p.push(0x21);
        p.extend_from_slice(&[0; 23]);
        p.extend_from_slice(user.as_bytes());
        p.push(0);
        p.push(auth.len() as u8);
        p.extend_from_slice(auth);
        if let Some(db) = db {
            p.extend_from_slice(db.as_bytes());
            p.push(0);
        }
        packet(1, &p)
    }

    #[test]
    fn handshake_layout() {
        let h = handshake(DEFAULT_VERSION, 42, &mut Rng::new());
        let len = usize::from(h[0]) | usize::from(h[1]) << 8 | usize::from(h[2]) << 16;
        assert_eq!(len, h.len() - 4);
        assert_eq!(h[3], 0, "sequence id");
        assert_eq!(h[4], 0x0a, "protocol 10");
        let v = &h[5..5 + DEFAULT_VERSION.len()];
        assert_eq!(v, DEFAULT_VERSION.as_bytes());
        let at = 5 + DEFAULT_VERSION.len() + 1;
        assert_eq!(&h[at..at + 4], &42u32.to_le_bytes());
        assert!(h[at + 4..at + 12].iter().all(|&b| b != 0));
        assert_eq!(h[at + 12], 0, "filler");
        assert!(h.ends_with(b"mysql_native_password\0"));
    }

    #[test]
    fn login_gets_access_denied() {
        let c = ctx("mysql", json!({"version": "5.7.44-log"}));
        let mut m = Mock::new(&login("root", &[1; 20], Some("prod")));
        let mut f = Fields::new();
        let (report, _) = super::super::testing::reporter("mysql", 3306);
        dispatch(&c, &peer(3306), &report, &mut m, &mut f).expect("ok");
        assert_eq!(&m.output[5..15], b"5.7.44-log");
        let hs_len = usize::from(m.output[0]) + 4;
        let err = &m.output[hs_len..];
        assert_eq!(err[3], 2, "reply sequence");
        assert_eq!(err[4], 0xff);
        assert_eq!(u16::from_le_bytes([err[5], err[6]]), 1045);
        assert_eq!(&err[7..13], b"#28000");
        assert_eq!(
            std::str::from_utf8(&err[13..]).expect("utf8"),
            "Access denied for user 'root'@'192.0.2.7' (using password: YES)"
        );
        assert_eq!(f["username"], "root");
        assert_eq!(f["database"], "prod");
        assert_eq!(f["auth_response"], "01".repeat(20));
    }

    #[test]
    fn scanner_that_only_reads_banner() {
        let c = ctx("mysql", json!({}));
        let mut f = Fields::new();
        handle(Conn::new(Mock::new(b"")), &c, &peer(3306), &mut f).expect("ok");
        assert!(f.is_empty());
    }
}

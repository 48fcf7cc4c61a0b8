//! Remote Desktop as a Windows host with Network Level Authentication answers (MS-RDPBCGR,
//! MS-CSSP): the X.224 Connection Request is read (its `Cookie: mstshash=USER` is the user
//! name the client will log on as, recorded as a `client` step), RDP_NEG_RSP selects CredSSP
//! (`HYBRID`), TLS is completed with the decky's certificate, and CredSSP's NTLM exchange runs
//! through [`super::ntlm`]: the CHALLENGE names the persona (what `rdp-ntlm-info` reads), the
//! AUTHENTICATE is recorded with its hashcat line and refused with STATUS_LOGON_FAILURE.
//!
//! Persona setting `nla` (default true): require CredSSP. A client offering only TLS is then
//! refused with HYBRID_REQUIRED_BY_SERVER, as Windows does; with `nla` false TLS is selected
//! and the session ends after the client's MCS Connect-Initial, whose machine name and build
//! are recorded (standard RDP security is not offered).

use std::io::{self, Read, Write};

use serde_json::Value;

use super::ntlm::{self, tlv, Exchange, Identity};
use super::{ber, tls, Conn, ServiceCtx};
use crate::log::{AttackDetails, AttackKind, Fields, Reporter};
use crate::util::{clip, set_once, Rng};

/// Largest TPKT (the connection request is a few dozen bytes).
const MAX_TPKT: usize = 4096;
/// Largest CredSSP TSRequest read.
const MAX_TSREQUEST: usize = 16 * 1024;
/// Most TSRequests answered.
const MAX_ROUNDS: usize = 4;

pub const PROTOCOL_RDP: u32 = 0;
pub const PROTOCOL_SSL: u32 = 1;
pub const PROTOCOL_HYBRID: u32 = 2;
pub const PROTOCOL_HYBRID_EX: u32 = 8;

const SSL_REQUIRED_BY_SERVER: u32 = 1;
const HYBRID_REQUIRED_BY_SERVER: u32 = 5;

/// STATUS_LOGON_FAILURE as the signed INTEGER of a TSRequest's errorCode.
const LOGON_FAILURE: [u8; 4] = [0xc0, 0x00, 0x00, 0x6d];

/// What an X.224 Connection Request carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionRequest {
    /// The text of a `Cookie:` line (`mstshash=USER`, or a load balancer's `msts=` token).
    pub cookie: Option<String>,
    /// RDP_NEG_REQ's requestedProtocols; `None` for a legacy client without one.
    pub requested: Option<u32>,
}

/// Parses a TPKT holding an X.224 Connection Request.
pub fn parse_connection_request(tpkt: &[u8]) -> Option<ConnectionRequest> {
    if tpkt.len() < 11 || tpkt[0] != 3 || tpkt[5] & 0xf0 != 0xe0 {
        return None;
    }
    let li = usize::from(tpkt[4]);
    let end = (5 + li).min(tpkt.len());
    let mut rest = tpkt.get(11..end)?;
    let mut req = ConnectionRequest::default();
    if let Some(after) = rest.strip_prefix(b"Cookie: ") {
        let eol = after.windows(2).position(|w| w == b"\r\n");
        let line = &after[..eol.unwrap_or(after.len())];
        req.cookie = Some(clip(line, 256));
        rest = eol.map_or(&[][..], |i| &after[i + 2..]);
    }
    if rest.len() >= 8 && rest[0] == 0x01 {
        req.requested = Some(u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]));
    }
    Some(req)
}

/// The user name of an `mstshash=USER` cookie.
pub fn mstshash_user(cookie: &str) -> Option<&str> {
    cookie.strip_prefix("mstshash=").filter(|u| !u.is_empty())
}

fn x224_confirm(neg: Option<(u8, u32)>) -> Vec<u8> {
    let mut cc = vec![0xd0, 0, 0, 0x12, 0x34, 0];
    if let Some((kind, value)) = neg {
        // RDP_NEG_RSP (flags as Windows Server sets them) or RDP_NEG_FAILURE.
        let flags = if kind == 2 { 0x1f } else { 0 };
        cc.extend_from_slice(&[kind, flags, 8, 0]);
        cc.extend_from_slice(&value.to_le_bytes());
    }
    let mut out = vec![3, 0];
    out.extend_from_slice(&u16::try_from(cc.len() + 5).unwrap_or(0).to_be_bytes());
    out.push(u8::try_from(cc.len()).unwrap_or(0));
    out.extend_from_slice(&cc);
    out
}

/// The Connection Confirm for `req` and the protocol it selects (`None`: refused or legacy).
pub fn confirm(req: &ConnectionRequest, nla: bool) -> (Vec<u8>, Option<u32>) {
    let Some(asked) = req.requested else {
        return (x224_confirm(None), None);
    };
    if asked & (PROTOCOL_HYBRID | PROTOCOL_HYBRID_EX) != 0 {
        (
            x224_confirm(Some((2, PROTOCOL_HYBRID))),
            Some(PROTOCOL_HYBRID),
        )
    } else if nla {
        (x224_confirm(Some((3, HYBRID_REQUIRED_BY_SERVER))), None)
    } else if asked & PROTOCOL_SSL != 0 {
        (x224_confirm(Some((2, PROTOCOL_SSL))), Some(PROTOCOL_SSL))
    } else {
        (x224_confirm(Some((3, SSL_REQUIRED_BY_SERVER))), None)
    }
}

/// A TSRequest's version (MS-CSSP 2.2.1).
pub fn ts_version(m: &[u8]) -> Option<u64> {
    let (body, _) = ber::expect(m, 0x30)?;
    let (v, _) = ber::expect(body, 0xa0)?;
    let (n, _) = ber::expect(v, 0x02)?;
    ber::uint(n)
}

/// A TSRequest carrying one NTLM token.
pub fn ts_request(version: u64, token: &[u8]) -> Vec<u8> {
    let nego = tlv(0x30, &tlv(0x30, &tlv(0xa0, &tlv(0x04, token))));
    tlv(
        0x30,
        &[tlv(0xa0, &ber::int(0x02, version)), tlv(0xa1, &nego)].concat(),
    )
}

/// A TSRequest with errorCode STATUS_LOGON_FAILURE (version 3 and later).
pub fn ts_error(version: u64) -> Vec<u8> {
    tlv(
        0x30,
        &[
            tlv(0xa0, &ber::int(0x02, version)),
            tlv(0xa4, &tlv(0x02, &LOGON_FAILURE)),
        ]
        .concat(),
    )
}

pub fn handle<S: Read + Write>(
    mut conn: Conn<S>,
    ctx: &ServiceCtx,
    report: &Reporter,
    fields: &mut Fields,
) -> io::Result<()> {
    let head = match conn.read_exact_vec(4) {
        Ok(h) => h,
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
        Err(e) => return Err(e),
    };
    let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
    if head[0] != 3 || !(11..=MAX_TPKT).contains(&len) {
        set_once(fields, "reason", Value::from("not rdp"));
        return Ok(());
    }
    let tpkt = [head, conn.read_exact_vec(len - 4)?].concat();
    let Some(req) = parse_connection_request(&tpkt) else {
        set_once(
            fields,
            "reason",
            Value::from("not an x.224 connection request"),
        );
        return Ok(());
    };
    let mut extra = Fields::new();
    if let Some(p) = req.requested {
        extra.insert("requested_protocols".into(), Value::from(p));
        fields.insert("requested_protocols".into(), Value::from(p));
    }
    if let Some(c) = &req.cookie {
        extra.insert("cookie".into(), Value::from(c.clone()));
        fields.insert("cookie".into(), Value::from(c.clone()));
    }
    let user = req
        .cookie
        .as_deref()
        .and_then(mstshash_user)
        .map(str::to_owned);
    if let Some(u) = &user {
        set_once(fields, "username", Value::from(u.clone()));
    }
    report.emit(
        AttackKind::Client,
        AttackDetails {
            username: user,
            extra,
            ..AttackDetails::default()
        },
    );
    let nla = !matches!(ctx.config.get("nla"), Some(Value::Bool(false)));
    let (reply, selected) = confirm(&req, nla);
    conn.send(&reply)?;
    let Some(selected) = selected else {
        return Ok(());
    };
    fields.insert("selected_protocol".into(), Value::from(selected));
    let config = ctx
        .tls
        .as_ref()
        .ok_or_else(|| io::Error::other("no TLS certificate"))?;
    let mut tls = tls::accept_reported(config, conn.into_prefixed(), fields, report)?;
    let res = if selected == PROTOCOL_HYBRID {
        credssp(Conn::new(&mut tls), ctx, report, fields)
    } else {
        connect_initial(Conn::new(&mut tls), report, fields)
    };
    tls::close(&mut tls);
    res
}

/// What the Client Core Data of an MCS Connect-Initial says (MS-RDPBCGR 2.2.1.3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCore {
    pub build: u32,
    pub name: String,
    pub width: u16,
    pub height: u16,
    pub keyboard_layout: u32,
}

/// Finds the Client Core Data block (type 0xC001) in a Connect-Initial TPKT.
pub fn client_core(tpkt: &[u8]) -> Option<ClientCore> {
    // The block header (type 0xC001, length) then the RDP version 0x0008xxxx.
    let at = tpkt
        .windows(8)
        .position(|w| w[..2] == [0x01, 0xc0] && w[5] == 0 && w[6..8] == [0x08, 0x00])?;
    let b = tpkt.get(at..)?;
    let le16 = |i: usize| b.get(i..i + 2).map(|v| u16::from_le_bytes([v[0], v[1]]));
    let le32 = |i: usize| {
        b.get(i..i + 4)
            .map(|v| u32::from_le_bytes([v[0], v[1], v[2], v[3]]))
    };
    let name: Vec<u16> = b
        .get(24..56)?
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|&u| u != 0)
        .collect();
    Some(ClientCore {
        width: le16(8)?,
        height: le16(10)?,
        keyboard_layout: le32(16)?,
        build: le32(20)?,
        name: clip(String::from_utf16_lossy(&name).as_bytes(), 64),
    })
}

/// TLS without NLA: the client's MCS Connect-Initial names its machine; recorded, then the
/// session ends (standard RDP security is not carried further).
fn connect_initial<S: Read + Write>(
    mut conn: Conn<S>,
    report: &Reporter,
    fields: &mut Fields,
) -> io::Result<()> {
    let head = match conn.read_exact_vec(4) {
        Ok(h) => h,
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
        Err(e) => return Err(e),
    };
    let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
    if head[0] != 3 || !(8..=MAX_TPKT).contains(&len) {
        return Ok(());
    }
    let tpkt = [head, conn.read_exact_vec(len - 4)?].concat();
    let Some(core) = client_core(&tpkt) else {
        return Ok(());
    };
    let mut extra = Fields::new();
    extra.insert("client_name".into(), Value::from(core.name.clone()));
    extra.insert("client_build".into(), Value::from(core.build));
    extra.insert(
        "desktop".into(),
        Value::from(format!("{}x{}", core.width, core.height)),
    );
    extra.insert(
        "keyboard_layout".into(),
        Value::from(format!("0x{:08x}", core.keyboard_layout)),
    );
    for (k, v) in &extra {
        fields.insert(k.clone(), v.clone());
    }
    report.emit(
        AttackKind::Client,
        AttackDetails {
            client_version: Some(format!("RDP client build {}", core.build)),
            extra,
            ..AttackDetails::default()
        },
    );
    Ok(())
}

/// CredSSP over the TLS session: NEGOTIATE → CHALLENGE, AUTHENTICATE → recorded, refused.
fn credssp<S: Read + Write>(
    mut conn: Conn<S>,
    ctx: &ServiceCtx,
    report: &Reporter,
    fields: &mut Fields,
) -> io::Result<()> {
    let exchange = Exchange::new(Identity::from_ctx(ctx), &mut Rng::new());
    for _ in 0..MAX_ROUNDS {
        let Some(m) = ber::read_sequence(&mut conn, MAX_TSREQUEST)? else {
            return Ok(());
        };
        let version = ts_version(&m).unwrap_or(2).clamp(2, 6);
        set_once(fields, "credssp_version", Value::from(version));
        let token = ntlm::find(&m);
        match token.and_then(|t| ntlm::message_type(t).map(|k| (k, t))) {
            Some((1, t)) => {
                let challenge = exchange.on_negotiate(t, fields);
                conn.send(&ts_request(version, &challenge))?;
            }
            Some((3, t)) => {
                exchange.on_authenticate(t, "rdp", report, fields);
                if version >= 3 {
                    conn.send(&ts_error(version))?;
                }
                return Ok(());
            }
            _ => {
                set_once(fields, "reason", Value::from("credssp without ntlm"));
                return Ok(());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cr(cookie: Option<&str>, requested: Option<u32>) -> Vec<u8> {
        let mut body = vec![0xe0, 0, 0, 0, 0, 0];
        if let Some(c) = cookie {
            body.extend_from_slice(format!("Cookie: {c}\r\n").as_bytes());
        }
        if let Some(p) = requested {
            body.extend_from_slice(&[1, 0, 8, 0]);
            body.extend_from_slice(&p.to_le_bytes());
        }
        let mut out = vec![3, 0];
        out.extend_from_slice(&((body.len() + 5) as u16).to_be_bytes());
        out.push(body.len() as u8);
        out.extend_from_slice(&body);
        out
    }

    #[test]
    fn connection_request_cookie_and_protocols() {
        let r = parse_connection_request(&cr(Some("mstshash=administrator"), Some(3))).expect("cr");
        assert_eq!(r.cookie.as_deref(), Some("mstshash=administrator"));
        assert_eq!(r.requested, Some(3));
        assert_eq!(
            mstshash_user("mstshash=administrator"),
            Some("administrator")
        );
        assert_eq!(mstshash_user("msts=3640205228.15629.0000"), None);
        let r = parse_connection_request(&cr(None, None)).expect("legacy");
        assert_eq!(r, ConnectionRequest::default());
        assert_eq!(parse_connection_request(b"GET / HTTP/1.1\r\n"), None);
    }

    #[test]
    fn confirm_matches_windows_with_nla() {
        // nmap's "Microsoft Terminal Services" signature.
        let (cc, sel) = confirm(
            &parse_connection_request(&cr(Some("mstshash=nmap"), Some(3))).expect("cr"),
            true,
        );
        assert_eq!(
            cc,
            b"\x03\x00\x00\x13\x0e\xd0\x00\x00\x12\x34\x00\x02\x1f\x08\x00\x02\x00\x00\x00"
        );
        assert_eq!(sel, Some(PROTOCOL_HYBRID));
        let tls_only = ConnectionRequest {
            cookie: None,
            requested: Some(1),
        };
        let (cc, sel) = confirm(&tls_only, true);
        assert_eq!(
            &cc[11..],
            &[3, 0, 8, 0, 5, 0, 0, 0],
            "HYBRID_REQUIRED_BY_SERVER"
        );
        assert_eq!(sel, None);
        assert_eq!(confirm(&tls_only, false).1, Some(PROTOCOL_SSL));
        let (cc, sel) = confirm(&ConnectionRequest::default(), true);
        assert_eq!(cc.len(), 11);
        assert_eq!(sel, None);
    }

    #[test]
    fn ts_requests_round_trip() {
        let m = ts_request(6, b"NTLMSSP\0\x02\0\0\0");
        assert_eq!(ts_version(&m), Some(6));
        assert_eq!(ntlm::find(&m), Some(&b"NTLMSSP\0\x02\0\0\0"[..]));
        let e = ts_error(6);
        assert!(e.windows(4).any(|w| w == LOGON_FAILURE));
        // nmap's rdp-ntlm-info NEGOTIATE (version 0x60).
        let nmap = [0x30, 0x05, 0xa0, 0x03, 0x02, 0x01, 0x60];
        assert_eq!(ts_version(&nmap), Some(0x60));
    }

    #[test]
    fn without_tls_config_the_cookie_is_still_recorded() {
        let c = super::super::testing::ctx("rdp", serde_json::json!({}));
        let (report, sink) = super::super::testing::reporter("rdp", 3389);
        let mut m = super::super::testing::Mock::new(&cr(Some("mstshash=bob"), Some(11)));
        let mut f = Fields::new();
        let r = super::super::handle(
            &c,
            &super::super::testing::peer(3389),
            &report,
            &mut m,
            &mut f,
        );
        assert!(r.is_err(), "no certificate in a bare test context");
        assert_eq!(f["username"], "bob");
        let ev = sink.events();
        assert_eq!(ev[0].kind, AttackKind::Client);
        assert_eq!(ev[0].details.username.as_deref(), Some("bob"));
        assert_eq!(&m.output[..4], &[3, 0, 0, 0x13]);
    }

    #[test]
    fn client_core_data_names_the_machine() {
        let mut core = vec![0x01, 0xc0, 0xd8, 0x00, 0x04, 0x00, 0x08, 0x00];
        core.extend_from_slice(&1280u16.to_le_bytes());
        core.extend_from_slice(&800u16.to_le_bytes());
        core.extend_from_slice(&[0x01, 0xca, 0x03, 0xaa]);
        core.extend_from_slice(&0x0409u32.to_le_bytes());
        core.extend_from_slice(&2600u32.to_le_bytes());
        let mut name: Vec<u8> = "KALI".encode_utf16().flat_map(u16::to_le_bytes).collect();
        name.resize(32, 0);
        core.extend_from_slice(&name);
        let mut tpkt = vec![3, 0, 0, 0, 2, 0xf0, 0x80, 0x7f, 0x65];
        tpkt.extend_from_slice(&core);
        let c = client_core(&tpkt).expect("core data");
        assert_eq!(c.name, "KALI");
        assert_eq!(c.build, 2600);
        assert_eq!((c.width, c.height), (1280, 800));
        assert_eq!(c.keyboard_layout, 0x0409);
        assert_eq!(client_core(&tpkt[..40]), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn hostile_requests_never_panic(
            data in proptest::collection::vec(any::<u8>(), 0..256),
            at in any::<usize>(),
            byte in any::<u8>(),
            cut in any::<usize>(),
        ) {
            let _ = parse_connection_request(&data);
            let _ = client_core(&data);
            let _ = ts_version(&data);
            let mut m = cr(Some("mstshash=x"), Some(3));
            let i = at % m.len();
            m[i] = byte;
            m.truncate(cut % (m.len() + 1));
            let _ = parse_connection_request(&m);
            // With a certificate, so what follows a valid request reaches TLS and CredSSP.
            let mut c = super::super::testing::ctx("rdp", serde_json::json!({"nla": true}));
            c.tls = Some(tls::server_config("ts01", &[]).expect("tls config"));
            let (report, _) = super::super::testing::reporter("rdp", 3389);
            let mut mock = super::super::testing::Mock::new(&[m, data].concat());
            let mut f = Fields::new();
            let _ = super::super::handle(&c, &super::super::testing::peer(3389), &report, &mut mock, &mut f);
        }
    }
}

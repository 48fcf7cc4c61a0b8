//! NTLMSSP as a Windows host's server side speaks it (MS-NLMP), shared by every responder that
//! carries NTLM (SMB session setup, and later RDP CredSSP, LDAP SASL, MSSQL SSPI).
//!
//! The server answers a NEGOTIATE with a CHALLENGE whose target info names the persona (NetBIOS
//! and DNS computer and domain names, the OS version), and reads the AUTHENTICATE that follows:
//! user, domain, workstation and the NTLMv2 response, rendered as a hashcat mode-5600 line.
//! No credential is ever accepted, so no session key is derived.
//!
//! [`spnego_init`] and [`spnego_challenge`] wrap the tokens in the SPNEGO (RFC 4178) DER that
//! SMB and LDAP carry; [`find`] takes an NTLMSSP message out of whatever wraps it.

use serde_json::{json, Value};

use super::{ServiceCtx, MAX_LOGGED};
use crate::log::{AttackDetails, AttackKind, Fields, Reporter};
use crate::util::{clip, hex, push_bounded, set_once, Rng};

pub const SIGNATURE: &[u8; 8] = b"NTLMSSP\0";
/// The NTLMSSP mechanism, 1.3.6.1.4.1.311.2.2.10, DER-encoded without tag and length.
pub const OID_NTLMSSP: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x02, 0x0a];
/// SPNEGO, 1.3.6.1.5.5.2.
pub const OID_SPNEGO: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x02];

/// Longest NTLMSSP message read (real AUTHENTICATE messages are well under 2 KiB).
pub const MAX_MESSAGE: usize = 16 * 1024;

const NEGOTIATE_UNICODE: u32 = 0x0000_0001;
const REQUEST_TARGET: u32 = 0x0000_0004;
const NEGOTIATE_SIGN: u32 = 0x0000_0010;
const NEGOTIATE_SEAL: u32 = 0x0000_0020;
const NEGOTIATE_NTLM: u32 = 0x0000_0200;
const NEGOTIATE_ALWAYS_SIGN: u32 = 0x0000_8000;
const TARGET_TYPE_DOMAIN: u32 = 0x0001_0000;
const EXTENDED_SESSIONSECURITY: u32 = 0x0008_0000;
const NEGOTIATE_TARGET_INFO: u32 = 0x0080_0000;
const NEGOTIATE_VERSION: u32 = 0x0200_0000;
const NEGOTIATE_128: u32 = 0x2000_0000;
const NEGOTIATE_KEY_EXCH: u32 = 0x4000_0000;
const NEGOTIATE_56: u32 = 0x8000_0000;

/// What a Windows server offers in its CHALLENGE; the client's own flags are echoed where it
/// asked for them (like Windows, which answers with the intersection).
const SERVER_FLAGS: u32 = NEGOTIATE_56
    | NEGOTIATE_KEY_EXCH
    | NEGOTIATE_128
    | NEGOTIATE_VERSION
    | NEGOTIATE_TARGET_INFO
    | EXTENDED_SESSIONSECURITY
    | TARGET_TYPE_DOMAIN
    | NEGOTIATE_ALWAYS_SIGN
    | NEGOTIATE_NTLM
    | NEGOTIATE_SEAL
    | NEGOTIATE_SIGN
    | REQUEST_TARGET
    | NEGOTIATE_UNICODE;
/// Always set in the answer, whatever the client asked.
const REQUIRED_FLAGS: u32 = NEGOTIATE_VERSION
    | NEGOTIATE_TARGET_INFO
    | TARGET_TYPE_DOMAIN
    | NEGOTIATE_NTLM
    | REQUEST_TARGET
    | NEGOTIATE_UNICODE;

/// Default DNS domain of a Windows persona without a `domain` setting.
pub const DEFAULT_DOMAIN: &str = "corp.local";
/// Windows Server 2016: the NTLM version when neither `os_version` nor the decky's persona
/// (archetype, OS family) says which Windows it is.
pub const DEFAULT_VERSION: (u8, u8, u16) = (10, 0, 14393);

/// The names and version a Windows persona tells an NTLM client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub nb_computer: String,
    pub nb_domain: String,
    pub dns_computer: String,
    pub dns_domain: String,
    pub version: (u8, u8, u16),
}

/// The first label of `name`, upper-cased and cut to NetBIOS's 15 characters.
fn netbios(name: &str) -> String {
    name.split('.')
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(15)
        .collect::<String>()
        .to_ascii_uppercase()
}

/// `"10.0.14393"` → `(10, 0, 14393)`.
pub fn parse_version(s: &str) -> Option<(u8, u8, u16)> {
    let mut it = s.trim().split('.');
    let v = (
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
    );
    it.next().is_none().then_some(v)
}

impl Identity {
    /// From the persona settings `domain` (DNS domain), `netbios_domain` and `os_version`
    /// (`major.minor.build`, else the build of the decky's persona,
    /// [`ServiceCtx::windows_identity`]), and the decky's hostname.
    pub fn from_ctx(ctx: &ServiceCtx) -> Identity {
        let cfg = &ctx.config;
        let dns_domain = cfg
            .line("domain")
            .map(|d| d.to_ascii_lowercase())
            .filter(|d| !netbios(d).is_empty())
            .unwrap_or_else(|| DEFAULT_DOMAIN.to_owned());
        let nb_domain = cfg
            .line("netbios_domain")
            .map(|d| netbios(&d))
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| netbios(&dns_domain));
        let host = ctx.hostname.split('.').next().unwrap_or_default();
        let nb_computer = Some(netbios(host))
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "WIN-SRV01".to_owned());
        let version = cfg
            .line("os_version")
            .and_then(|v| parse_version(&v))
            .or_else(|| ctx.windows_identity().map(|w| w.os_version))
            .unwrap_or(DEFAULT_VERSION);
        Identity {
            dns_computer: format!("{}.{dns_domain}", host.to_ascii_lowercase()),
            nb_computer,
            nb_domain,
            dns_domain,
            version,
        }
    }
}

fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

fn from_utf16(b: &[u8]) -> String {
    let units: Vec<u16> = b
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16_lossy(&units)
}

/// Windows FILETIME (100 ns since 1601) of now.
pub fn filetime_now() -> u64 {
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let ticks = u64::try_from(unix.as_nanos() / 100).unwrap_or(u64::MAX / 2);
    ticks.saturating_add(116_444_736_000_000_000)
}

fn av_pair(out: &mut Vec<u8>, id: u16, value: &[u8]) {
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&u16::try_from(value.len()).unwrap_or(0).to_le_bytes());
    out.extend_from_slice(value);
}

/// The AV pairs of a CHALLENGE (MS-NLMP 2.2.2.1).
pub fn target_info(id: &Identity, filetime: u64) -> Vec<u8> {
    let mut out = Vec::new();
    av_pair(&mut out, 2, &utf16(&id.nb_domain));
    av_pair(&mut out, 1, &utf16(&id.nb_computer));
    av_pair(&mut out, 4, &utf16(&id.dns_domain));
    av_pair(&mut out, 3, &utf16(&id.dns_computer));
    av_pair(&mut out, 5, &utf16(&id.dns_domain));
    av_pair(&mut out, 7, &filetime.to_le_bytes());
    av_pair(&mut out, 0, &[]);
    out
}

/// A NEGOTIATE (type 1) message's flags and, when it sends one, the client's OS version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiate {
    pub flags: u32,
    pub version: Option<(u8, u8, u16)>,
}

/// The message type of an NTLMSSP message (1, 2 or 3).
pub fn message_type(msg: &[u8]) -> Option<u32> {
    if !msg.starts_with(SIGNATURE) {
        return None;
    }
    Some(u32::from_le_bytes(msg.get(8..12)?.try_into().ok()?))
}

pub fn parse_negotiate(msg: &[u8]) -> Option<Negotiate> {
    if message_type(msg)? != 1 {
        return None;
    }
    let flags = u32::from_le_bytes(msg.get(12..16)?.try_into().ok()?);
    let version = if flags & NEGOTIATE_VERSION != 0 {
        msg.get(32..36)
            .map(|v| (v[0], v[1], u16::from_le_bytes([v[2], v[3]])))
    } else {
        None
    };
    Some(Negotiate { flags, version })
}

/// The CHALLENGE (type 2) message answering a NEGOTIATE with `client_flags`.
pub fn challenge(id: &Identity, server_challenge: &[u8; 8], client_flags: u32) -> Vec<u8> {
    challenge_at(id, server_challenge, client_flags, filetime_now())
}

fn challenge_at(id: &Identity, server_challenge: &[u8; 8], client_flags: u32, ft: u64) -> Vec<u8> {
    let mut flags = (SERVER_FLAGS & client_flags) | REQUIRED_FLAGS;
    // Extended session security wins over LM_KEY, as on Windows.
    if client_flags & EXTENDED_SESSIONSECURITY != 0 || client_flags == 0 {
        flags |= EXTENDED_SESSIONSECURITY;
    }
    let name = utf16(&id.nb_domain);
    let info = target_info(id, ft);
    const HEADER: usize = 56;
    let name_off = HEADER;
    let info_off = HEADER + name.len();
    let mut m = Vec::with_capacity(HEADER + name.len() + info.len());
    m.extend_from_slice(SIGNATURE);
    m.extend_from_slice(&2u32.to_le_bytes());
    push_field(&mut m, name.len(), name_off);
    m.extend_from_slice(&flags.to_le_bytes());
    m.extend_from_slice(server_challenge);
    m.extend_from_slice(&[0; 8]);
    push_field(&mut m, info.len(), info_off);
    let (major, minor, build) = id.version;
    m.push(major);
    m.push(minor);
    m.extend_from_slice(&build.to_le_bytes());
    m.extend_from_slice(&[0, 0, 0, 0x0f]); // NTLMSSP_REVISION_W2K3
    m.extend_from_slice(&name);
    m.extend_from_slice(&info);
    m
}

fn push_field(m: &mut Vec<u8>, len: usize, off: usize) {
    let len = u16::try_from(len).unwrap_or(0);
    m.extend_from_slice(&len.to_le_bytes());
    m.extend_from_slice(&len.to_le_bytes());
    m.extend_from_slice(&u32::try_from(off).unwrap_or(0).to_le_bytes());
}

/// An AUTHENTICATE (type 3) message, as far as a decoy needs it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Authenticate {
    pub user: String,
    pub domain: String,
    pub workstation: String,
    pub lm_response: Vec<u8>,
    pub nt_response: Vec<u8>,
    pub flags: u32,
}

/// Longest user/domain/workstation kept, in characters.
const MAX_NAME: usize = 256;

fn field(msg: &[u8], at: usize) -> Option<&[u8]> {
    let f = msg.get(at..at + 8)?;
    let len = usize::from(u16::from_le_bytes([f[0], f[1]]));
    let off = usize::try_from(u32::from_le_bytes([f[4], f[5], f[6], f[7]])).ok()?;
    if len == 0 {
        return Some(&[]);
    }
    msg.get(off..off.checked_add(len)?)
}

pub fn parse_authenticate(msg: &[u8]) -> Option<Authenticate> {
    if message_type(msg)? != 3 || msg.len() > MAX_MESSAGE {
        return None;
    }
    let flags = u32::from_le_bytes(msg.get(60..64)?.try_into().ok()?);
    let text = |at| -> Option<String> {
        let raw = field(msg, at)?;
        let s = if flags & NEGOTIATE_UNICODE != 0 {
            from_utf16(raw)
        } else {
            String::from_utf8_lossy(raw).into_owned()
        };
        Some(clip(s.as_bytes(), MAX_NAME))
    };
    Some(Authenticate {
        lm_response: field(msg, 12)?.to_vec(),
        nt_response: field(msg, 20)?.to_vec(),
        domain: text(28)?,
        user: text(36)?,
        workstation: text(44)?,
        flags,
    })
}

impl Authenticate {
    /// An anonymous (null session) logon: no user and no NT response.
    pub fn is_anonymous(&self) -> bool {
        self.user.is_empty() && self.nt_response.is_empty()
    }

    /// The response as a hashcat line: mode 5600 (NetNTLMv2,
    /// `user::domain:challenge:NTProofStr:blob`) or 5500 (NetNTLMv1,
    /// `user::domain:lm:nt:challenge`); `None` for anonymous logons.
    pub fn hashcat(&self, server_challenge: &[u8; 8]) -> Option<(u32, String)> {
        let (user, domain) = (&self.user, &self.domain);
        let ch = hex(server_challenge);
        match self.nt_response.len() {
            n if n > 24 => {
                let (proof, blob) = self.nt_response.split_at(16);
                Some((
                    5600,
                    format!("{user}::{domain}:{ch}:{}:{}", hex(proof), hex(blob)),
                ))
            }
            24 => Some((
                5500,
                format!(
                    "{user}::{domain}:{}:{}:{ch}",
                    hex(&self.lm_response),
                    hex(&self.nt_response)
                ),
            )),
            _ => None,
        }
    }
}

/// One NTLM exchange on a connection: answers NEGOTIATE, records AUTHENTICATE.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub id: Identity,
    pub server_challenge: [u8; 8],
}

impl Exchange {
    pub fn new(id: Identity, rng: &mut Rng) -> Exchange {
        let mut server_challenge = [0u8; 8];
        rng.fill(&mut server_challenge);
        Exchange {
            id,
            server_challenge,
        }
    }

    /// The CHALLENGE for a NEGOTIATE message (recording the client's OS version).
    pub fn on_negotiate(&self, msg: &[u8], fields: &mut Fields) -> Vec<u8> {
        let neg = parse_negotiate(msg);
        if let Some((major, minor, build)) = neg.and_then(|n| n.version) {
            set_once(
                fields,
                "ntlm_client_version",
                Value::from(format!("{major}.{minor}.{build}")),
            );
        }
        challenge(
            &self.id,
            &self.server_challenge,
            neg.map_or(0xe208_8297, |n| n.flags),
        )
    }

    /// Records an AUTHENTICATE message: one `auth` event (`method` `ntlm`, `hash` the hashcat
    /// line, extra `domain`, `workstation`, `hash_mode`, `anonymous`) and the session summary.
    /// `protocol` says what carried it (`smb`, `rdp` …).
    pub fn on_authenticate(
        &self,
        msg: &[u8],
        protocol: &str,
        report: &Reporter,
        fields: &mut Fields,
    ) -> Option<Authenticate> {
        let auth = parse_authenticate(msg)?;
        self.record(&auth, protocol, report, fields);
        Some(auth)
    }

    /// Records NTLM responses however they arrived (an AUTHENTICATE, or the LM/NT response
    /// fields of a pre-NTLMSSP SMB1 session setup) as [`Exchange::on_authenticate`] does.
    pub fn record(
        &self,
        auth: &Authenticate,
        protocol: &str,
        report: &Reporter,
        fields: &mut Fields,
    ) {
        let hash = auth.hashcat(&self.server_challenge);
        let mut extra = Fields::new();
        extra.insert("domain".into(), Value::from(auth.domain.clone()));
        extra.insert("workstation".into(), Value::from(auth.workstation.clone()));
        extra.insert("carrier".into(), Value::from(protocol));
        if let Some((mode, _)) = &hash {
            extra.insert("hash_mode".into(), Value::from(*mode));
        }
        if auth.is_anonymous() {
            extra.insert("anonymous".into(), Value::from(true));
        }
        report.emit(
            AttackKind::Auth,
            AttackDetails {
                username: Some(auth.user.clone()),
                hash: hash.as_ref().map(|(_, h)| h.clone()),
                method: Some("ntlm".into()),
                accepted: Some(false),
                extra,
                ..AttackDetails::default()
            },
        );
        set_once(fields, "username", Value::from(auth.user.clone()));
        push_bounded(
            fields,
            "credentials",
            json!({
                "username": auth.user.clone(),
                "domain": auth.domain.clone(),
                "workstation": auth.workstation.clone(),
                "hash": hash.map(|(_, h)| h),
            }),
            MAX_LOGGED,
        );
    }
}

/// Where an NTLMSSP message starts in `token` (raw, or inside SPNEGO/GSS-API DER). The rest of
/// the token from there is returned: NTLMSSP fields are offsets from the signature, so trailing
/// DER (a mechListMIC) does no harm.
pub fn find(token: &[u8]) -> Option<&[u8]> {
    let at = token
        .windows(SIGNATURE.len())
        .position(|w| w == SIGNATURE)?;
    token.get(at..)
}

// ---- SPNEGO (DER) --------------------------------------------------------------------------

/// DER tag-length-value.
pub fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = value.len();
    if n < 0x80 {
        out.push(n as u8);
    } else if n <= 0xff {
        out.extend_from_slice(&[0x81, n as u8]);
    } else {
        let n = u16::try_from(n).unwrap_or(u16::MAX);
        out.push(0x82);
        out.extend_from_slice(&n.to_be_bytes());
    }
    out.extend_from_slice(value);
    out
}

/// The server's first SPNEGO token (a NegTokenInit offering NTLMSSP), as Windows puts it in
/// the SMB2 NEGOTIATE response.
pub fn spnego_init() -> Vec<u8> {
    let mech_types = tlv(0x30, &tlv(0x06, OID_NTLMSSP));
    let hints = tlv(
        0x30,
        &tlv(0xa0, &tlv(0x1b, b"not_defined_in_RFC4178@please_ignore")),
    );
    let init = tlv(0x30, &[tlv(0xa0, &mech_types), tlv(0xa3, &hints)].concat());
    tlv(0x60, &[tlv(0x06, OID_SPNEGO), tlv(0xa0, &init)].concat())
}

/// A NegTokenResp carrying the CHALLENGE (negState accept-incomplete, supportedMech NTLMSSP).
pub fn spnego_challenge(challenge: &[u8]) -> Vec<u8> {
    let body = [
        tlv(0xa0, &tlv(0x0a, &[0x01])),
        tlv(0xa1, &tlv(0x06, OID_NTLMSSP)),
        tlv(0xa2, &tlv(0x04, challenge)),
    ]
    .concat();
    tlv(0xa1, &tlv(0x30, &body))
}

/// A NegTokenResp with negState accept-completed (0): a null session let in.
pub fn spnego_accept() -> Vec<u8> {
    tlv(0xa1, &tlv(0x30, &tlv(0xa0, &tlv(0x0a, &[0x00]))))
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use proptest::prelude::*;

    pub fn identity() -> Identity {
        Identity {
            nb_computer: "FS01".into(),
            nb_domain: "ACME".into(),
            dns_computer: "fs01.acme.corp".into(),
            dns_domain: "acme.corp".into(),
            version: (10, 0, 17763),
        }
    }

    fn av_pairs(info: &[u8]) -> Vec<(u16, Vec<u8>)> {
        let mut out = Vec::new();
        let mut at = 0;
        while at + 4 <= info.len() {
            let id = u16::from_le_bytes([info[at], info[at + 1]]);
            let len = usize::from(u16::from_le_bytes([info[at + 2], info[at + 3]]));
            out.push((id, info[at + 4..at + 4 + len].to_vec()));
            at += 4 + len;
            if id == 0 {
                break;
            }
        }
        out
    }

    #[test]
    fn challenge_layout_names_the_persona() {
        let m = challenge_at(
            &identity(),
            b"\x01\x02\x03\x04\x05\x06\x07\x08",
            0xe208_8297,
            7,
        );
        assert_eq!(message_type(&m), Some(2));
        let name = field(&m, 12).expect("target name");
        assert_eq!(from_utf16(name), "ACME");
        let flags = u32::from_le_bytes(m[20..24].try_into().expect("4"));
        assert_ne!(flags & NEGOTIATE_TARGET_INFO, 0);
        assert_ne!(flags & NEGOTIATE_VERSION, 0);
        assert_ne!(flags & EXTENDED_SESSIONSECURITY, 0);
        assert_eq!(&m[24..32], b"\x01\x02\x03\x04\x05\x06\x07\x08");
        assert_eq!(
            &m[48..56],
            &[10, 0, 0x63, 0x45, 0, 0, 0, 0x0f],
            "10.0.17763"
        );
        let pairs = av_pairs(field(&m, 40).expect("target info"));
        let text = |id: u16| {
            pairs
                .iter()
                .find(|(i, _)| *i == id)
                .map(|(_, v)| from_utf16(v))
        };
        assert_eq!(text(2).as_deref(), Some("ACME"));
        assert_eq!(text(1).as_deref(), Some("FS01"));
        assert_eq!(text(4).as_deref(), Some("acme.corp"));
        assert_eq!(text(3).as_deref(), Some("fs01.acme.corp"));
        assert_eq!(text(5).as_deref(), Some("acme.corp"));
        let ts = pairs.iter().find(|(i, _)| *i == 7).expect("timestamp");
        assert_eq!(ts.1, 7u64.to_le_bytes());
        assert_eq!(pairs.last().map(|p| p.0), Some(0), "MsvAvEOL last");
    }

    #[test]
    fn version_and_signing_follow_the_decky_persona() {
        use crate::protocols::smb::Server;
        use decnet_core::registry::OsFamily::{self, *};
        // (archetype, family, settings) → (NTLM version, SMB1 native OS, SecurityMode)
        let check = |archetype: Option<&str>,
                     os: Option<OsFamily>,
                     cfg: serde_json::Value,
                     expect: ((u8, u8, u16), &str, u16)| {
            let c = crate::protocols::testing::ctx("smb", cfg).with_persona(archetype, os);
            let id = Identity::from_ctx(&c);
            let native =
                crate::protocols::smb::v1::Native::new(c.config.line("native_os"), id.version);
            let srv = Server::from_ctx(&c, &id);
            assert_eq!(
                (id.version, native.os.as_str(), srv.security_mode),
                expect,
                "{archetype:?} {os:?}"
            );
        };
        let none = serde_json::json!({});
        let win10 = ((10, 0, 19045), "Windows 10 Pro 19045", 1);
        let s2019 = ((10, 0, 17763), "Windows Server 2019 Standard 17763", 1);
        check(
            Some("windows-workstation"),
            Some(Windows),
            none.clone(),
            win10,
        );
        check(None, Some(Windows), none.clone(), win10);
        check(
            Some("windows-server"),
            Some(WindowsServer),
            none.clone(),
            s2019,
        );
        check(
            Some("domain-controller"),
            Some(WindowsServer),
            none.clone(),
            ((10, 0, 17763), "Windows Server 2019 Standard 17763", 3),
        );
        check(
            Some("file-server"),
            Some(Linux),
            none.clone(),
            ((10, 0, 20348), "Windows Server 2022 Standard 20348", 1),
        );
        // Nothing known: the fixed default (Server 2016).
        check(
            None,
            None,
            none.clone(),
            (DEFAULT_VERSION, "Windows Server 2016 Standard 14393", 1),
        );
        // Explicit settings win over the persona.
        check(
            Some("windows-workstation"),
            Some(Windows),
            serde_json::json!({"os_version": "10.0.14393", "native_os": "Custom OS"}),
            ((10, 0, 14393), "Custom OS", 1),
        );
        check(
            Some("domain-controller"),
            Some(WindowsServer),
            serde_json::json!({"signing_required": false}),
            ((10, 0, 17763), "Windows Server 2019 Standard 17763", 1),
        );
        check(
            Some("windows-workstation"),
            Some(Windows),
            serde_json::json!({"signing_required": true}),
            ((10, 0, 19045), "Windows 10 Pro 19045", 3),
        );
    }

    #[test]
    fn identity_from_persona_settings() {
        let c = crate::protocols::testing::ctx(
            "smb",
            serde_json::json!({"domain": "Acme.Corp", "os_version": "6.1.7601"}),
        );
        let id = Identity::from_ctx(&c);
        assert_eq!(id.nb_computer, "WEB-01");
        assert_eq!(id.nb_domain, "ACME");
        assert_eq!(id.dns_domain, "acme.corp");
        assert_eq!(id.dns_computer, "web-01.acme.corp");
        assert_eq!(id.version, (6, 1, 7601));
        let c = crate::protocols::testing::ctx(
            "smb",
            serde_json::json!({"os_version": "x", "netbios_domain": "averyveryverylongname"}),
        );
        let id = Identity::from_ctx(&c);
        assert_eq!(id.dns_domain, DEFAULT_DOMAIN);
        assert_eq!(id.nb_domain, "AVERYVERYVERYLO");
        assert_eq!(id.version, DEFAULT_VERSION);
    }

    /// An AUTHENTICATE message with the given fields (Unicode).
    pub fn authenticate(user: &str, domain: &str, ws: &str, lm: &[u8], nt: &[u8]) -> Vec<u8> {
        let parts = [
            lm.to_vec(),
            nt.to_vec(),
            utf16(domain),
            utf16(user),
            utf16(ws),
        ];
        let mut m = SIGNATURE.to_vec();
        m.extend_from_slice(&3u32.to_le_bytes());
        let mut off = 72;
        for p in &parts {
            push_field(&mut m, p.len(), off);
            off += p.len();
        }
        push_field(&mut m, 0, off); // session key
        m.extend_from_slice(&(NEGOTIATE_UNICODE | EXTENDED_SESSIONSECURITY).to_le_bytes());
        m.extend_from_slice(&[0; 8]); // version
        for p in &parts {
            m.extend_from_slice(p);
        }
        m
    }

    #[test]
    fn authenticate_to_hashcat_lines() {
        let nt: Vec<u8> = (0u8..40).collect();
        let m = authenticate("alice", "ACME", "KALI", &[0; 24], &nt);
        let a = parse_authenticate(&m).expect("parse");
        assert_eq!(
            (a.user.as_str(), a.domain.as_str(), a.workstation.as_str()),
            ("alice", "ACME", "KALI")
        );
        let (mode, line) = a.hashcat(&[0x11; 8]).expect("v2");
        assert_eq!(mode, 5600);
        assert_eq!(
            line,
            format!(
                "alice::ACME:1111111111111111:{}:{}",
                hex(&nt[..16]),
                hex(&nt[16..])
            )
        );
        let m = authenticate("bob", "", "", &[0xaa; 24], &[0xbb; 24]);
        let (mode, line) = parse_authenticate(&m)
            .expect("parse")
            .hashcat(&[0; 8])
            .expect("v1");
        assert_eq!(mode, 5500);
        assert_eq!(
            line,
            format!(
                "bob:::{}:{}:0000000000000000",
                "aa".repeat(24),
                "bb".repeat(24)
            )
        );
        let anon = parse_authenticate(&authenticate("", "", "", &[0], &[])).expect("parse");
        assert!(anon.is_anonymous());
        assert_eq!(anon.hashcat(&[0; 8]), None);
    }

    #[test]
    fn ntlmssp_is_found_inside_spnego() {
        let m = authenticate("u", "d", "w", &[], &[1; 30]);
        let wrapped = tlv(0xa1, &tlv(0x30, &tlv(0xa2, &tlv(0x04, &m))));
        assert_eq!(find(&wrapped), Some(&m[..]));
        assert_eq!(find(b"no token"), None);
        let init = spnego_init();
        assert_eq!(init[0], 0x60);
        assert_eq!(usize::from(init[1]), init.len() - 2);
        let ch = spnego_challenge(&[7; 300]);
        assert_eq!(&ch[..2], &[0xa1, 0x82]);
        assert_eq!(
            usize::from(u16::from_be_bytes([ch[2], ch[3]])),
            ch.len() - 4
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// Random bytes after the signature, and mutated valid messages, never panic the parsers.
        #[test]
        fn hostile_messages_never_panic(
            data in proptest::collection::vec(any::<u8>(), 0..512),
            at in any::<usize>(),
            byte in any::<u8>(),
            cut in any::<usize>(),
        ) {
            let mut raw = SIGNATURE.to_vec();
            raw.extend_from_slice(&data);
            let _ = parse_negotiate(&raw);
            let _ = parse_authenticate(&raw).map(|a| a.hashcat(&[0; 8]));
            let mut m = authenticate("user", "DOM", "WS", &[1; 24], &data);
            let i = at % m.len();
            m[i] = byte;
            m.truncate(cut % (m.len() + 1));
            let _ = parse_authenticate(&m).map(|a| a.hashcat(&[0; 8]));
            let _ = find(&m);
        }
    }
}

//! SMB1 (MS-CIFS, MS-SMB) for clients that offer no SMB2 dialect, as a Windows host with SMB1
//! still enabled answers them (Server 2016 and older; builds from 16299 on ship without it):
//! `NT LM 0.12` NEGOTIATE with or without extended security, and SESSION_SETUP_ANDX whose
//! answer carries the persona's native OS and LAN manager strings (what `smb-os-discovery`
//! reads). A null session is let in, as Windows does; every credential is recorded — as an
//! NTLMSSP AUTHENTICATE through [`crate::protocols::ntlm`], or as the LM/NT responses of a pre-NTLMSSP
//! logon — and refused with STATUS_LOGON_FAILURE. Everything after a logon is refused.

use serde_json::Value;

use super::{
    Server, STATUS_LOGON_FAILURE, STATUS_MORE_PROCESSING_REQUIRED, STATUS_NOT_SUPPORTED,
    STATUS_SUCCESS,
};
use crate::log::{Fields, Reporter};
use crate::protocols::ntlm::{self, Authenticate, Exchange, Identity};
use crate::util::{clip, set_once};

const NEGOTIATE: u8 = 0x72;
const SESSION_SETUP_ANDX: u8 = 0x73;
const STATUS_ACCESS_DENIED: u32 = 0xc000_0022;

const FLAGS2_UNICODE: u16 = 0x8000;
const FLAGS2_NT_STATUS: u16 = 0x4000;
const FLAGS2_EXTENDED_SECURITY: u16 = 0x0800;
const FLAGS2_LONG_NAMES: u16 = 0x0001;
const FLAGS2_EAS: u16 = 0x0002;

/// The user id handed out by the one session of a connection.
const UID: u16 = 0x0800;

fn le16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

/// The persona's SMB1 strings: NativeOS and NativeLanMan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Native {
    pub os: String,
    pub lanman: String,
}

impl Native {
    /// The product a Windows version names, unless `native_os` is set.
    pub fn new(native_os: Option<String>, version: (u8, u8, u16)) -> Native {
        let (major, minor, build) = version;
        let product = match (major, minor, build) {
            (10, 0, b) if b >= 20348 => "Windows Server 2022 Standard",
            (10, 0, 17763) => "Windows Server 2019 Standard",
            (10, 0, 14393) => "Windows Server 2016 Standard",
            (10, 0, _) => "Windows 10 Pro",
            (6, 3, _) => "Windows Server 2012 R2 Standard",
            (6, 2, _) => "Windows Server 2012 Standard",
            (6, 1, _) => "Windows Server 2008 R2 Standard",
            _ => "Windows Server 2016 Standard",
        };
        let os = native_os.unwrap_or_else(|| match (major, minor) {
            (6, 1) => format!("{product} {build} Service Pack 1"),
            _ => format!("{product} {build}"),
        });
        // The LAN manager string keeps the product and names the NT version (10.0 says 6.3).
        let base = os.split(" Service Pack").next().unwrap_or(&os);
        let base = base
            .rsplit_once(' ')
            .filter(|(_, last)| last.chars().all(|c| c.is_ascii_digit()))
            .map_or(base, |(head, _)| head);
        let nt = if major >= 10 {
            "6.3".to_owned()
        } else {
            format!("{major}.{minor}")
        };
        Native {
            lanman: format!("{base} {nt}"),
            os,
        }
    }
}

/// Whether SMB1 answers by default: Windows builds before 16299 (1709) still ship it.
pub fn enabled_by_default(version: (u8, u8, u16)) -> bool {
    version.0 < 10 || version.2 < 16299
}

fn utf16z(s: &str) -> Vec<u8> {
    let mut v: Vec<u8> = s.encode_utf16().flat_map(u16::to_le_bytes).collect();
    v.extend_from_slice(&[0, 0]);
    v
}

/// Reads a NUL-terminated UTF-16 string at `at`; (text, offset after it).
fn read_utf16z(b: &[u8], mut at: usize) -> (String, usize) {
    let mut units = Vec::new();
    while let Some(u) = le16(b, at) {
        at += 2;
        if u == 0 || units.len() >= 256 {
            break;
        }
        units.push(u);
    }
    (String::from_utf16_lossy(&units), at)
}

/// The response header for request `req` (its first 32 bytes) with `status`.
fn header(req: &[u8], status: u32, uid: u16, ext: bool, unicode: bool) -> Vec<u8> {
    let mut h = req
        .get(..32)
        .map(<[u8]>::to_vec)
        .unwrap_or_else(|| vec![0; 32]);
    h[5..9].copy_from_slice(&status.to_le_bytes());
    h[9] = 0x98; // reply, case-insensitive, canonicalized paths
    let mut flags2 = FLAGS2_NT_STATUS | FLAGS2_LONG_NAMES | FLAGS2_EAS;
    if unicode {
        flags2 |= FLAGS2_UNICODE;
    }
    if ext {
        flags2 |= FLAGS2_EXTENDED_SECURITY;
    }
    h[10..12].copy_from_slice(&flags2.to_le_bytes());
    h[28..30].copy_from_slice(&uid.to_le_bytes());
    h
}

fn error(req: &[u8], status: u32, ext: bool) -> Vec<u8> {
    let unicode = le16(req, 10).unwrap_or(0) & FLAGS2_UNICODE != 0;
    let mut m = header(req, status, le16(req, 28).unwrap_or(0), ext, unicode);
    m.extend_from_slice(&[0, 0, 0]); // no words, no bytes
    m
}

/// One SMB1 connection's state.
#[derive(Debug)]
pub struct Smb1<'a> {
    pub srv: &'a Server,
    pub id: &'a Identity,
    pub native: Native,
    pub ntlm: &'a Exchange,
    /// Extended security (NTLMSSP in SPNEGO) was negotiated.
    pub ext: bool,
    /// The client speaks Unicode (FLAGS2_UNICODE); else strings are OEM (ASCII), as nmap's.
    pub unicode: bool,
}

impl Smb1<'_> {
    /// The NEGOTIATE answer selecting `NT LM 0.12` at `index` of the client's list.
    pub fn negotiate(&mut self, req: &[u8], index: usize, fields: &mut Fields) -> Vec<u8> {
        let flags2 = le16(req, 10).unwrap_or(0);
        self.ext = flags2 & FLAGS2_EXTENDED_SECURITY != 0;
        self.unicode = flags2 & FLAGS2_UNICODE != 0;
        set_once(fields, "dialect", Value::from("NT LM 0.12"));
        set_once(fields, "smb1_extended_security", Value::from(self.ext));
        let mut caps: u32 = 0x0001_f3fd;
        if self.ext {
            caps |= 0x8000_0000;
        }
        let mut m = header(req, STATUS_SUCCESS, 0, self.ext, self.unicode);
        m.push(17);
        m.extend_from_slice(&u16::try_from(index).unwrap_or(0).to_le_bytes());
        // Security mode: user level, challenge/response; signing required on DCs only.
        m.push(if self.srv.security_mode == 3 {
            0x0f
        } else {
            0x03
        });
        m.extend_from_slice(&50u16.to_le_bytes());
        m.extend_from_slice(&1u16.to_le_bytes());
        m.extend_from_slice(&16_644u32.to_le_bytes());
        m.extend_from_slice(&65_536u32.to_le_bytes());
        m.extend_from_slice(&0u32.to_le_bytes());
        m.extend_from_slice(&caps.to_le_bytes());
        m.extend_from_slice(&ntlm::filetime_now().to_le_bytes());
        m.extend_from_slice(&0i16.to_le_bytes());
        let bytes = if self.ext {
            m.push(0);
            [self.srv.guid.to_vec(), ntlm::spnego_init()].concat()
        } else {
            m.push(8);
            [
                // Always UTF-16 here, whatever the client's flags say (as Windows, and as
                // nmap reads them).
                self.ntlm.server_challenge.to_vec(),
                utf16z(&self.id.nb_domain),
                utf16z(&self.id.nb_computer),
            ]
            .concat()
        };
        m.extend_from_slice(&u16::try_from(bytes.len()).unwrap_or(0).to_le_bytes());
        m.extend_from_slice(&bytes);
        m
    }

    /// A NUL-terminated string in the client's encoding.
    fn z(&self, s: &str) -> Vec<u8> {
        if self.unicode {
            utf16z(s)
        } else {
            let mut v: Vec<u8> = s.bytes().filter(|&b| b != 0).collect();
            v.push(0);
            v
        }
    }

    /// Reads a NUL-terminated string in the client's encoding; (text, offset after it).
    fn read_z(&self, b: &[u8], at: usize) -> (String, usize) {
        if self.unicode {
            return read_utf16z(b, at);
        }
        let rest = b.get(at..).unwrap_or_default();
        let end = rest.iter().position(|&c| c == 0).unwrap_or(rest.len());
        (clip(&rest[..end.min(256)], 256), at + end + 1)
    }

    /// A pad byte where Unicode text starting after `len` bytes would be odd.
    fn pad(&self, len: usize) -> Vec<u8> {
        if self.unicode && len % 2 == 1 {
            vec![0]
        } else {
            Vec::new()
        }
    }

    /// NativeOS, NativeLanMan (and the primary domain) after `m`, 2-aligned.
    fn strings(&self, m: &mut Vec<u8>, domain: bool) {
        let mut s = self.pad(m.len() + 2);
        s.extend_from_slice(&self.z(&self.native.os));
        s.extend_from_slice(&self.z(&self.native.lanman));
        if domain {
            s.extend_from_slice(&self.z(&self.id.nb_domain));
        }
        m.extend_from_slice(&u16::try_from(s.len()).unwrap_or(0).to_le_bytes());
        m.extend_from_slice(&s);
    }

    /// Answers a SESSION_SETUP_ANDX, recording what it carries.
    pub fn session_setup(&self, req: &[u8], report: &Reporter, fields: &mut Fields) -> Vec<u8> {
        match req.get(32) {
            Some(12) => self.session_setup_ext(req, report, fields),
            Some(13) => self.session_setup_plain(req, report, fields),
            _ => error(req, STATUS_NOT_SUPPORTED, self.ext),
        }
    }

    fn session_setup_ext(&self, req: &[u8], report: &Reporter, fields: &mut Fields) -> Vec<u8> {
        let len = usize::from(le16(req, 33 + 14).unwrap_or(0));
        let blob = req.get(59..59 + len).unwrap_or_default();
        if let Some(at) = 59usize.checked_add(len) {
            let at = at + self.pad(at).len();
            let (os, _) = self.read_z(req, at);
            if !os.is_empty() {
                set_once(
                    fields,
                    "client_native_os",
                    Value::from(clip(os.as_bytes(), 128)),
                );
            }
        }
        let token = ntlm::find(blob);
        match token.and_then(|t| ntlm::message_type(t).map(|k| (k, t))) {
            Some((1, t)) => {
                let challenge = ntlm::spnego_challenge(&self.ntlm.on_negotiate(t, fields));
                let mut m = header(
                    req,
                    STATUS_MORE_PROCESSING_REQUIRED,
                    UID,
                    true,
                    self.unicode,
                );
                m.push(4);
                m.extend_from_slice(&[0xff, 0, 0, 0, 0, 0]);
                m.extend_from_slice(&u16::try_from(challenge.len()).unwrap_or(0).to_le_bytes());
                let mut bytes = challenge;
                let mut tail = self.pad(m.len() + 2 + bytes.len());
                tail.extend_from_slice(&self.z(&self.native.os));
                tail.extend_from_slice(&self.z(&self.native.lanman));
                bytes.extend_from_slice(&tail);
                m.extend_from_slice(&u16::try_from(bytes.len()).unwrap_or(0).to_le_bytes());
                m.extend_from_slice(&bytes);
                m
            }
            Some((3, t)) => {
                let auth = self.ntlm.on_authenticate(t, "smb", report, fields);
                if auth.is_some_and(|a| a.is_anonymous()) {
                    self.null_session(req, true, fields)
                } else {
                    error(req, STATUS_LOGON_FAILURE, true)
                }
            }
            _ => error(req, STATUS_LOGON_FAILURE, true),
        }
    }

    fn session_setup_plain(&self, req: &[u8], report: &Reporter, fields: &mut Fields) -> Vec<u8> {
        let lm_len = usize::from(le16(req, 33 + 14).unwrap_or(0));
        let nt_len = usize::from(le16(req, 33 + 16).unwrap_or(0));
        let data = 61usize;
        let lm = req.get(data..data + lm_len).unwrap_or_default();
        let nt = req
            .get(data + lm_len..data + lm_len + nt_len)
            .unwrap_or_default();
        // Unicode strings are 2-aligned after a pad byte.
        let mut at = data + lm_len + nt_len;
        if self.unicode && at % 2 == 1 && req.get(at) == Some(&0) {
            at += 1;
        }
        let (user, at) = self.read_z(req, at);
        let (domain, at) = self.read_z(req, at);
        let (os, _) = self.read_z(req, at);
        if !os.is_empty() {
            set_once(
                fields,
                "client_native_os",
                Value::from(clip(os.as_bytes(), 128)),
            );
        }
        let auth = Authenticate {
            user: clip(user.as_bytes(), 256),
            domain: clip(domain.as_bytes(), 256),
            workstation: String::new(),
            lm_response: lm.to_vec(),
            nt_response: nt.to_vec(),
            flags: 0,
        };
        let anonymous = auth.user.is_empty() && nt.len() <= 1 && lm.len() <= 1;
        let auth = Authenticate {
            nt_response: if anonymous {
                Vec::new()
            } else {
                auth.nt_response
            },
            ..auth
        };
        self.ntlm.record(&auth, "smb", report, fields);
        if anonymous {
            self.null_session(req, false, fields)
        } else {
            error(req, STATUS_LOGON_FAILURE, false)
        }
    }

    /// A null session is let in (Windows does), with the persona's strings.
    fn null_session(&self, req: &[u8], ext: bool, fields: &mut Fields) -> Vec<u8> {
        set_once(fields, "null_session", Value::from(true));
        let mut m = header(req, STATUS_SUCCESS, UID, ext, self.unicode);
        if ext {
            m.push(4);
            m.extend_from_slice(&[0xff, 0, 0, 0, 0, 0, 0, 0]);
        } else {
            m.push(3);
            m.extend_from_slice(&[0xff, 0, 0, 0, 0, 0]);
        }
        self.strings(&mut m, !ext);
        m
    }

    /// Answers one SMB1 request after negotiation; `None` ends the connection.
    pub fn request(
        &mut self,
        req: &[u8],
        report: &Reporter,
        fields: &mut Fields,
    ) -> Option<Vec<u8>> {
        match req.get(4).copied()? {
            SESSION_SETUP_ANDX => Some(self.session_setup(req, report, fields)),
            NEGOTIATE => None,
            0x74 | 0x71 => {
                // LOGOFF_ANDX / TREE_DISCONNECT
                let uid = le16(req, 28).unwrap_or(0);
                let mut m = header(req, STATUS_SUCCESS, uid, self.ext, self.unicode);
                if req[4] == 0x74 {
                    m.push(2);
                    m.extend_from_slice(&[0xff, 0, 0, 0]);
                } else {
                    m.push(0);
                }
                m.extend_from_slice(&[0, 0]);
                Some(m)
            }
            cmd => {
                set_once(fields, "smb1_command", Value::from(cmd));
                Some(error(req, STATUS_ACCESS_DENIED, self.ext))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_strings_follow_the_version() {
        let n = Native::new(None, (10, 0, 14393));
        assert_eq!(n.os, "Windows Server 2016 Standard 14393");
        assert_eq!(n.lanman, "Windows Server 2016 Standard 6.3");
        let n = Native::new(None, (6, 1, 7601));
        assert_eq!(n.os, "Windows Server 2008 R2 Standard 7601 Service Pack 1");
        assert_eq!(n.lanman, "Windows Server 2008 R2 Standard 6.1");
        let n = Native::new(Some("Windows 10 Pro 19045".into()), (10, 0, 19045));
        assert_eq!(n.lanman, "Windows 10 Pro 6.3");
        assert!(enabled_by_default((10, 0, 14393)));
        assert!(!enabled_by_default((10, 0, 17763)));
        assert!(enabled_by_default((6, 1, 7601)));
    }

    #[test]
    fn utf16_strings_are_bounded() {
        let (s, at) = read_utf16z(&[b'a', 0, b'b', 0, 0, 0, b'c', 0], 0);
        assert_eq!((s.as_str(), at), ("ab", 6));
        let (s, _) = read_utf16z(&[b'a'; 9], 0);
        assert_eq!(s.chars().count(), 4);
    }
}

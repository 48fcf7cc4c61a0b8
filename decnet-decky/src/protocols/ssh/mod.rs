//! SSH-2: a real server on `ring` (see [`transport`]) that lets a client get as
//! far as a password prompt and, under the accept policy ([`super::login`]),
//! into the fake shell ([`super::shell`]).
//!
//! Reported: one `client` event (version string and HASSH), every `auth`
//! attempt (password, keyboard-interactive, public key type and `SHA256:`
//! fingerprint), every `command`, `exec`, `url`, `file_transfer` (scp, sftp)
//! and `forward` (direct-tcpip, tcpip-forward) request. Forwards and sftp are
//! refused; public keys are never accepted.
//!
//! The host key: the file named by `DECNET_SSH_HOST_KEY`, else
//! [`HOST_KEY_PATH`]; either an unencrypted OpenSSH private key
//! (`ssh-keygen -t ed25519`) or the raw 32-byte ed25519 seed. Without one a key
//! is generated in memory (a new fingerprint per start; said on stderr).

use std::io::{self, Read, Write};

use md5::{Digest, Md5};
use serde_json::Value;

use super::{Conn, Peer, ServiceCtx};
use crate::log::{AttackDetails, AttackKind, Fields, Reporter};
use crate::util::{clip, hex, set_once};

mod cipher;
pub mod dh;
pub mod hostkey;
mod session;
pub mod transport;
pub mod wire;

pub use hostkey::{b64, fingerprint, host_key, HostKey};
use session::Session;
use transport::{KexInit, Transport};

pub const DEFAULT_BANNER: &str = "OpenSSH_8.9p1 Ubuntu-3ubuntu0.6";
/// Where the deployer mounts the decky's host key.
pub const HOST_KEY_PATH: &str = "/run/decnet/ssh_host_ed25519_key";
/// Failed authentications before the connection is dropped (OpenSSH's MaxAuthTries).
pub const MAX_AUTH_TRIES: u32 = 6;

/// Message numbers (RFC 4250 §4.1).
pub mod msg {
    pub const DISCONNECT: u8 = 1;
    pub const IGNORE: u8 = 2;
    pub const UNIMPLEMENTED: u8 = 3;
    pub const DEBUG: u8 = 4;
    pub const SERVICE_REQUEST: u8 = 5;
    pub const SERVICE_ACCEPT: u8 = 6;
    pub const KEXINIT: u8 = 20;
    pub const NEWKEYS: u8 = 21;
    pub const KEX_ECDH_INIT: u8 = 30;
    pub const KEX_ECDH_REPLY: u8 = 31;
    pub const USERAUTH_REQUEST: u8 = 50;
    pub const USERAUTH_FAILURE: u8 = 51;
    pub const USERAUTH_SUCCESS: u8 = 52;
    pub const USERAUTH_INFO_REQUEST: u8 = 60;
    pub const USERAUTH_INFO_RESPONSE: u8 = 61;
    pub const GLOBAL_REQUEST: u8 = 80;
    pub const REQUEST_FAILURE: u8 = 82;
    pub const CHANNEL_OPEN: u8 = 90;
    pub const CHANNEL_OPEN_CONFIRMATION: u8 = 91;
    pub const CHANNEL_OPEN_FAILURE: u8 = 92;
    pub const CHANNEL_WINDOW_ADJUST: u8 = 93;
    pub const CHANNEL_DATA: u8 = 94;
    pub const CHANNEL_EXTENDED_DATA: u8 = 95;
    pub const CHANNEL_EOF: u8 = 96;
    pub const CHANNEL_CLOSE: u8 = 97;
    pub const CHANNEL_REQUEST: u8 = 98;
    pub const CHANNEL_SUCCESS: u8 = 99;
    pub const CHANNEL_FAILURE: u8 = 100;
}

/// HASSH: MD5 of the client's `kex;enc;mac;cmp` lists.
pub fn hassh(offer: &KexInit) -> String {
    hex(&Md5::digest(offer.hassh_input().as_bytes()))
}

pub fn handle<S: Read + Write>(
    mut conn: Conn<S>,
    ctx: &ServiceCtx,
    peer: &Peer,
    report: &Reporter,
    fields: &mut Fields,
) -> io::Result<()> {
    let banner = ctx
        .config
        .line("banner")
        .unwrap_or_else(|| DEFAULT_BANNER.to_owned());
    let banner = banner.strip_prefix("SSH-2.0-").unwrap_or(&banner);
    let v_s = format!("SSH-2.0-{banner}");
    conn.send(format!("{v_s}\r\n").as_bytes())?;
    // RFC 4253 §4.2: the client may send other lines before its version
    // string; the identification line is at most 255 bytes.
    let mut v_c = None;
    for _ in 0..8 {
        let Some(line) = conn.read_line(512)? else {
            return Ok(());
        };
        if line.starts_with(b"SSH-") {
            fields.insert("client_version".into(), Value::from(clip(&line, 255)));
            v_c = Some(line);
            break;
        }
        if !line.is_empty() {
            fields.insert("preamble".into(), Value::from(clip(&line, 255)));
        }
    }
    let Some(v_c) = v_c else {
        return Ok(());
    };
    if !v_c.starts_with(b"SSH-2.0-") && !v_c.starts_with(b"SSH-1.99-") {
        conn.send(b"Protocol major versions differ.\r\n")?;
        return Ok(());
    }
    let client_version = clip(&v_c, 255);
    let mut t = Transport::new(conn, v_c, v_s.into_bytes());
    let host = host_key();
    let offer = match t.kex(host, None) {
        Ok(o) => o,
        Err(e) => {
            if let Some(o) = t.client_offer.take() {
                client_event(report, fields, &client_version, &o);
            }
            return ended(Err(e));
        }
    };
    client_event(report, fields, &client_version, &offer);
    let mut s = Session::new(t, ctx, peer, report);
    ended(s.run(host, fields))
}

/// A peer that went away is the normal end of a session.
fn ended(res: io::Result<()>) -> io::Result<()> {
    match res {
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(()),
        other => other,
    }
}

fn client_event(report: &Reporter, fields: &mut Fields, version: &str, offer: &KexInit) {
    let h = hassh(offer);
    set_once(fields, "hassh", Value::from(h.clone()));
    let mut extra = serde_json::Map::new();
    extra.insert(
        "hassh_algorithms".into(),
        Value::from(offer.hassh_input().chars().take(2048).collect::<String>()),
    );
    report.emit(
        AttackKind::Client,
        AttackDetails {
            client_version: Some(version.to_owned()),
            fingerprint: Some(format!("hassh:{h}")),
            extra,
            ..Default::default()
        },
    );
}

#[cfg(test)]
mod tests {
    use super::super::testing::{ctx, peer, reporter, run, Mock};
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Whatever follows a valid identification line, the server ends without a panic.
        #[test]
        fn arbitrary_input_after_the_banner_never_panics(
            data in proptest::collection::vec(any::<u8>(), 0..4096),
        ) {
            let mut input = b"SSH-2.0-fuzz\r\n".to_vec();
            input.extend_from_slice(&data);
            fuzz(&input);
            // The same bytes as the payload of a well-framed KEXINIT and of what follows it.
            let mut input = b"SSH-2.0-fuzz\r\n".to_vec();
            let mut kexinit = vec![msg::KEXINIT];
            kexinit.extend_from_slice(&data[..data.len() / 2]);
            input.extend_from_slice(&frame(&kexinit));
            input.extend_from_slice(&frame(&data[data.len() / 2..]));
            fuzz(&input);
        }
    }

    /// A clear packet (RFC 4253 §6) around `payload`.
    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut pad = 8 - (payload.len() + 5) % 8;
        if pad < 4 {
            pad += 8;
        }
        let len = u32::try_from(payload.len() + 1 + pad).unwrap_or(0);
        let mut out = len.to_be_bytes().to_vec();
        out.push(u8::try_from(pad).unwrap_or(4));
        out.extend_from_slice(payload);
        out.extend(std::iter::repeat_n(0, pad));
        out
    }

    fn fuzz(input: &[u8]) {
        {
            let c = ctx("ssh", json!({"accept": "any"}));
            let (report, _) = reporter("ssh", 22);
            let mut m = Mock::new(input);
            let mut fields = Fields::new();
            let _ = super::super::handle(&c, &peer(22), &report, &mut m, &mut fields);
        }
    }

    #[test]
    fn banner_and_client_version() {
        let (out, f) = run("ssh", json!({}), b"SSH-2.0-libssh_0.9.6\r\n\x00\x00\x01");
        assert!(out.starts_with("SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.6\r\n"));
        assert_eq!(f["client_version"], "SSH-2.0-libssh_0.9.6");
    }

    #[test]
    fn configured_banner_and_silent_client() {
        let (out, f) = run("ssh", json!({"banner": "OpenSSH_7.4"}), b"");
        assert_eq!(out, "SSH-2.0-OpenSSH_7.4\r\n");
        assert!(f.get("client_version").is_none());
        let (out, _) = run("ssh", json!({"banner": "SSH-2.0-dropbear\r\nX"}), b"");
        assert_eq!(out, "SSH-2.0-dropbearX\r\n");
    }

    #[test]
    fn base64_and_fingerprints() {
        assert_eq!(b64(b"foobar", true), "Zm9vYmFy");
        assert_eq!(b64(b"fooba", true), "Zm9vYmE=");
        assert_eq!(b64(b"foob", false), "Zm9vYg");
        let k = HostKey::from_seed(&[1; 32]).expect("key");
        assert!(k.fingerprint().starts_with("SHA256:"));
        assert_eq!(k.fingerprint().len(), 7 + 43);
        assert!(HostKey::parse(&[1; 32]).is_some());
        assert!(HostKey::parse(b"nonsense").is_none());
    }
}

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
use std::sync::OnceLock;

use md5::{Digest, Md5};
use ring::rand::SystemRandom;
use ring::signature::Ed25519KeyPair;
use serde_json::{json, Value};

use super::login::Policy;
use super::shell::{crlf, Key, LineEditor, Shell};
use super::{Conn, Peer, ServiceCtx, MAX_LOGGED};
use crate::log::{AttackDetails, AttackKind, Fields, Reporter};
use crate::util::{clip, hex, push_bounded, set_once};

pub mod dh;
pub mod transport;
pub mod wire;

use transport::{KexInit, Transport};
use wire::{Reader, Writer};

pub const DEFAULT_BANNER: &str = "OpenSSH_8.9p1 Ubuntu-3ubuntu0.6";
/// Where the deployer mounts the decky's host key.
pub const HOST_KEY_PATH: &str = "/run/decnet/ssh_host_ed25519_key";
/// Failed authentications before the connection is dropped (OpenSSH's MaxAuthTries).
pub const MAX_AUTH_TRIES: u32 = 6;
/// Methods offered after a `none` request (Ubuntu's sshd_config defaults).
const AUTH_METHODS: &[u8] = b"publickey,password";
const WINDOW: u32 = 2 * 1024 * 1024;
const MAX_OUT_PACKET: u32 = 32 * 1024;

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

/// Disconnect reasons (RFC 4250 §4.2.2).
const PROTOCOL_ERROR: u32 = 2;
const SERVICE_NOT_AVAILABLE: u32 = 7;

/// The decky's ed25519 host key.
pub struct HostKey {
    pub pair: Ed25519KeyPair,
}

impl std::fmt::Debug for HostKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HostKey({})", self.fingerprint())
    }
}

/// Standard base64 with or without padding.
pub fn b64(data: &[u8], pad: bool) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(A[((n >> (18 - 6 * i)) & 63) as usize]));
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

/// OpenSSH's `SHA256:` fingerprint of a public key blob.
pub fn fingerprint(blob: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, blob);
    format!("SHA256:{}", b64(d.as_ref(), false))
}

impl HostKey {
    pub fn from_seed(seed: &[u8]) -> Option<HostKey> {
        let pair = Ed25519KeyPair::from_seed_unchecked(seed).ok()?;
        Some(HostKey { pair })
    }

    pub fn generate() -> io::Result<HostKey> {
        let mut seed = [0u8; 32];
        ring::rand::SecureRandom::fill(&SystemRandom::new(), &mut seed)
            .map_err(|_| io::Error::other("rng"))?;
        HostKey::from_seed(&seed).ok_or_else(|| io::Error::other("ed25519 key"))
    }

    /// A key file: the raw 32-byte seed, or an unencrypted OpenSSH private key.
    pub fn parse(file: &[u8]) -> Option<HostKey> {
        if file.len() == 32 {
            return HostKey::from_seed(file);
        }
        let text = std::str::from_utf8(file).ok()?;
        let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
        let raw = crate::util::b64_decode(&body)?;
        let mut r = Reader::new(raw.strip_prefix(b"openssh-key-v1\0")?);
        if r.string()? != b"none" || r.string()? != b"none" {
            return None;
        }
        r.string()?;
        if r.u32()? != 1 {
            return None;
        }
        r.string()?;
        let mut p = Reader::new(r.string()?);
        if p.u32()? != p.u32()? || p.string()? != b"ssh-ed25519" {
            return None;
        }
        p.string()?;
        let secret = p.string()?;
        HostKey::from_seed(secret.get(..32)?)
    }

    pub fn blob(&self) -> Vec<u8> {
        transport::ed25519_blob(&self.pair)
    }

    pub fn fingerprint(&self) -> String {
        fingerprint(&self.blob())
    }
}

/// The process's host key, loaded (or generated) on first use.
pub fn host_key() -> &'static HostKey {
    static KEY: OnceLock<HostKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let path = std::env::var("DECNET_SSH_HOST_KEY").unwrap_or_else(|_| HOST_KEY_PATH.into());
        match std::fs::read(&path).map(|f| HostKey::parse(&f)) {
            Ok(Some(k)) => {
                eprintln!("decnet-decky: ssh host key {} from {path}", k.fingerprint());
                return k;
            }
            Ok(None) => eprintln!("decnet-decky: {path} is not an ed25519 key"),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => eprintln!("decnet-decky: {path}: {e}"),
        }
        let k = HostKey::generate()
            .ok()
            .or_else(|| HostKey::from_seed(&[7; 32]))
            .unwrap_or_else(|| unreachable!("a fixed seed is a valid ed25519 seed"));
        eprintln!(
            "decnet-decky: no ssh host key at {path}; generated {} in memory",
            k.fingerprint()
        );
        k
    })
}

/// HASSH: MD5 of the client's `kex;enc;mac;cmp` lists.
pub fn hassh(offer: &KexInit) -> String {
    hex(&Md5::digest(offer.hassh_input().as_bytes()))
}

struct Channel {
    remote: u32,
    window: u64,
    max_packet: u32,
    received: u32,
    closed: bool,
}

struct Session<'a, S> {
    t: Transport<S>,
    ctx: &'a ServiceCtx,
    peer: &'a Peer,
    report: &'a Reporter,
    policy: Policy,
    user: Option<String>,
    failures: u32,
    kbd_user: Option<String>,
    channel: Option<Channel>,
    shell: Option<Shell<'a>>,
    editor: LineEditor,
    pty: bool,
}

fn truncated(reason: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, reason.to_owned())
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
    let mut s = Session {
        t,
        ctx,
        peer,
        report,
        policy: Policy::from_config(&ctx.config),
        user: None,
        failures: 0,
        kbd_user: None,
        channel: None,
        shell: None,
        editor: LineEditor::default(),
        pty: false,
    };
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

impl<'a, S: Read + Write> Session<'a, S> {
    fn run(&mut self, host: &HostKey, fields: &mut Fields) -> io::Result<()> {
        loop {
            let p = self.t.read_packet()?;
            let Some(&kind) = p.first() else {
                continue;
            };
            let mut r = Reader::new(&p[1..]);
            match kind {
                msg::DISCONNECT => return Ok(()),
                msg::IGNORE | msg::DEBUG | msg::UNIMPLEMENTED => {}
                msg::KEXINIT => {
                    self.t.kex(host, Some(p))?;
                }
                msg::SERVICE_REQUEST => {
                    let name = r.string().unwrap_or_default().to_vec();
                    if name != b"ssh-userauth" {
                        self.t
                            .disconnect(SERVICE_NOT_AVAILABLE, "bad service request")?;
                        return Ok(());
                    }
                    let mut w = Writer::msg(msg::SERVICE_ACCEPT);
                    w.string(&name);
                    self.t.send(&w.0)?;
                }
                msg::USERAUTH_REQUEST if self.user.is_none() => {
                    if !self.userauth(r, fields)? {
                        return Ok(());
                    }
                }
                msg::USERAUTH_INFO_RESPONSE if self.kbd_user.is_some() => {
                    let user = self.kbd_user.take().unwrap_or_default();
                    let answer = match r.u32() {
                        Some(n) if n > 0 => r.string().map(|s| clip(s, 256)),
                        _ => None,
                    };
                    match answer {
                        Some(pass) => {
                            if !self.password(&user, &pass, "keyboard-interactive", fields)? {
                                return Ok(());
                            }
                        }
                        None => self.fail()?,
                    }
                }
                msg::USERAUTH_REQUEST => {}
                msg::GLOBAL_REQUEST if self.user.is_some() => {
                    let name = r.text().unwrap_or_default();
                    let want = r.bool().unwrap_or(false);
                    if name == "tcpip-forward" {
                        let addr = r.text().unwrap_or_default();
                        let port = r.u32().unwrap_or(0);
                        self.forward("remote", &addr, port);
                    }
                    if want {
                        self.t.send(&[msg::REQUEST_FAILURE])?;
                    }
                }
                msg::CHANNEL_OPEN if self.user.is_some() => self.open(r)?,
                msg::CHANNEL_REQUEST if self.user.is_some() => {
                    if !self.request(r, fields)? {
                        return Ok(());
                    }
                }
                msg::CHANNEL_DATA if self.user.is_some() => {
                    r.u32();
                    let data = r.string().unwrap_or_default().to_vec();
                    if !self.data(&data)? {
                        return Ok(());
                    }
                }
                msg::CHANNEL_WINDOW_ADJUST if self.user.is_some() => {
                    r.u32();
                    let n = r.u32().unwrap_or(0);
                    if let Some(c) = self.channel.as_mut() {
                        c.window = (c.window + u64::from(n)).min(u64::from(u32::MAX));
                    }
                }
                msg::CHANNEL_EXTENDED_DATA if self.user.is_some() => {}
                msg::CHANNEL_EOF if self.user.is_some() => {
                    if self.shell.is_some() {
                        self.close(0)?;
                    }
                }
                msg::CHANNEL_CLOSE if self.user.is_some() => {
                    if self.channel.as_ref().is_some_and(|c| !c.closed) {
                        self.close_only()?;
                    }
                    return Ok(());
                }
                msg::CHANNEL_OPEN_CONFIRMATION..=msg::CHANNEL_FAILURE if self.user.is_none() => {
                    self.t
                        .disconnect(PROTOCOL_ERROR, "channel message before authentication")?;
                    return Ok(());
                }
                msg::CHANNEL_SUCCESS | msg::CHANNEL_FAILURE | msg::REQUEST_FAILURE => {}
                _ => {
                    let mut w = Writer::msg(msg::UNIMPLEMENTED);
                    w.u32(self.t.last_seq_in());
                    self.t.send(&w.0)?;
                }
            }
        }
    }

    /// Counts a failure and answers it; `false` once the attempts are used up.
    fn fail(&mut self) -> io::Result<()> {
        self.failures += 1;
        let mut w = Writer::msg(msg::USERAUTH_FAILURE);
        w.string(AUTH_METHODS).bool(false);
        self.t.send(&w.0)
    }

    fn record(&self, details: AttackDetails, fields: &mut Fields) {
        if let Some(u) = &details.username {
            set_once(fields, "username", Value::from(u.clone()));
        }
        let cred = json!({
            "username": details.username,
            "password": details.password,
            "method": details.method,
            "key_fingerprint": details.key_fingerprint,
        });
        let cred: serde_json::Map<_, _> = cred
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        push_bounded(fields, "credentials", Value::Object(cred), MAX_LOGGED);
        self.report.emit(AttackKind::Auth, details);
    }

    /// A password (or keyboard-interactive answer); `false` ends the connection.
    fn password(
        &mut self,
        user: &str,
        pass: &str,
        method: &str,
        fields: &mut Fields,
    ) -> io::Result<bool> {
        let accepted = self
            .policy
            .attempt(&self.ctx.slug, self.peer.addr.ip(), user, pass);
        self.record(
            AttackDetails {
                username: Some(user.to_owned()),
                password: Some(pass.to_owned()),
                method: Some(method.to_owned()),
                accepted: Some(accepted),
                ..Default::default()
            },
            fields,
        );
        if accepted {
            self.user = Some(user.to_owned());
            fields.insert("logged_in_as".into(), Value::from(user.to_owned()));
            self.t.send(&[msg::USERAUTH_SUCCESS])?;
        } else {
            self.fail()?;
        }
        Ok(true)
    }

    /// One USERAUTH_REQUEST; `false` ends the connection.
    fn userauth(&mut self, mut r: Reader<'_>, fields: &mut Fields) -> io::Result<bool> {
        if self.failures >= MAX_AUTH_TRIES {
            self.t
                .disconnect(PROTOCOL_ERROR, "Too many authentication failures")?;
            return Ok(false);
        }
        let user = r
            .string()
            .map(|s| clip(s, 128))
            .ok_or_else(|| truncated("userauth"))?;
        r.string();
        let method = r.text().unwrap_or_default();
        match method.as_str() {
            "none" => {
                let mut w = Writer::msg(msg::USERAUTH_FAILURE);
                w.string(AUTH_METHODS).bool(false);
                self.t.send(&w.0)?;
            }
            "password" => {
                r.bool();
                let pass = r.string().map(|s| clip(s, 256)).unwrap_or_default();
                return self.password(&user, &pass, "password", fields);
            }
            "keyboard-interactive" => {
                self.kbd_user = Some(user);
                let mut w = Writer::msg(msg::USERAUTH_INFO_REQUEST);
                w.string(b"")
                    .string(b"")
                    .string(b"")
                    .u32(1)
                    .string(b"Password: ")
                    .bool(false);
                self.t.send(&w.0)?;
            }
            "publickey" => {
                r.bool();
                let alg = r.text().unwrap_or_default();
                let blob = r.string().unwrap_or_default();
                self.record(
                    AttackDetails {
                        username: Some(user),
                        method: Some("publickey".into()),
                        accepted: Some(false),
                        key_type: Some(alg.chars().take(64).collect()),
                        key_fingerprint: Some(fingerprint(blob)),
                        ..Default::default()
                    },
                    fields,
                );
                self.fail()?;
            }
            _ => self.fail()?,
        }
        Ok(true)
    }

    fn forward(&self, direction: &str, host: &str, port: u32) {
        let mut extra = serde_json::Map::new();
        extra.insert("direction".into(), Value::from(direction));
        extra.insert(
            "host".into(),
            Value::from(host.chars().take(255).collect::<String>()),
        );
        extra.insert("port".into(), Value::from(port));
        self.report.emit(
            AttackKind::Forward,
            AttackDetails {
                extra,
                ..Default::default()
            },
        );
    }

    fn open(&mut self, mut r: Reader<'_>) -> io::Result<()> {
        let kind = r.text().unwrap_or_default();
        let sender = r.u32().unwrap_or(0);
        let window = r.u32().unwrap_or(0);
        let max_packet = r.u32().unwrap_or(0);
        let refuse = |t: &mut Transport<S>, code: u32, text: &str| {
            let mut w = Writer::msg(msg::CHANNEL_OPEN_FAILURE);
            w.u32(sender).u32(code).string(text.as_bytes()).string(b"");
            t.send(&w.0)
        };
        match kind.as_str() {
            "session" if self.channel.is_none() => {
                self.channel = Some(Channel {
                    remote: sender,
                    window: u64::from(window),
                    max_packet: max_packet.clamp(1024, MAX_OUT_PACKET),
                    received: 0,
                    closed: false,
                });
                let mut w = Writer::msg(msg::CHANNEL_OPEN_CONFIRMATION);
                w.u32(sender).u32(0).u32(WINDOW).u32(MAX_OUT_PACKET);
                self.t.send(&w.0)
            }
            "session" => refuse(&mut self.t, 4, "open failed"),
            "direct-tcpip" => {
                let host = r.text().unwrap_or_default();
                let port = r.u32().unwrap_or(0);
                self.forward("local", &host, port);
                refuse(&mut self.t, 1, "administratively prohibited: open failed")
            }
            _ => refuse(&mut self.t, 3, "unknown channel type"),
        }
    }

    fn send_data(&mut self, data: &[u8]) -> io::Result<()> {
        let Some(c) = self.channel.as_mut() else {
            return Ok(());
        };
        if c.closed {
            return Ok(());
        }
        let (remote, max) = (c.remote, c.max_packet as usize);
        let allowed = data
            .len()
            .min(usize::try_from(c.window).unwrap_or(usize::MAX));
        c.window -= allowed as u64;
        for chunk in data[..allowed].chunks(max) {
            let mut w = Writer::msg(msg::CHANNEL_DATA);
            w.u32(remote).string(chunk);
            self.t.send(&w.0)?;
        }
        Ok(())
    }

    fn reply(&mut self, want: bool, ok: bool) -> io::Result<()> {
        let Some(c) = self.channel.as_ref() else {
            return Ok(());
        };
        if want {
            let mut w = Writer::msg(if ok {
                msg::CHANNEL_SUCCESS
            } else {
                msg::CHANNEL_FAILURE
            });
            w.u32(c.remote);
            self.t.send(&w.0)?;
        }
        Ok(())
    }

    fn close_only(&mut self) -> io::Result<()> {
        let Some(c) = self.channel.as_mut() else {
            return Ok(());
        };
        if c.closed {
            return Ok(());
        }
        c.closed = true;
        let remote = c.remote;
        let mut w = Writer::msg(msg::CHANNEL_CLOSE);
        w.u32(remote);
        self.t.send(&w.0)
    }

    /// exit-status, EOF, CLOSE.
    fn close(&mut self, status: u32) -> io::Result<()> {
        let Some(c) = self.channel.as_ref() else {
            return Ok(());
        };
        if c.closed {
            return Ok(());
        }
        let remote = c.remote;
        let mut w = Writer::msg(msg::CHANNEL_REQUEST);
        w.u32(remote).string(b"exit-status").bool(false).u32(status);
        self.t.send(&w.0)?;
        let mut w = Writer::msg(msg::CHANNEL_EOF);
        w.u32(remote);
        self.t.send(&w.0)?;
        self.shell = None;
        self.close_only()
    }

    fn term(&self, text: &str) -> Vec<u8> {
        if self.pty {
            crlf(text).into_bytes()
        } else {
            text.as_bytes().to_vec()
        }
    }

    fn new_shell(&self) -> Shell<'a> {
        Shell::new(
            self.user.as_deref().unwrap_or("root"),
            self.ctx,
            self.peer,
            self.report,
        )
    }

    /// One CHANNEL_REQUEST; `false` ends the connection.
    fn request(&mut self, mut r: Reader<'_>, fields: &mut Fields) -> io::Result<bool> {
        r.u32();
        let kind = r.text().unwrap_or_default();
        let want = r.bool().unwrap_or(false);
        match kind.as_str() {
            "pty-req" => {
                self.pty = true;
                set_once(fields, "term", Value::from(r.text().unwrap_or_default()));
                self.reply(want, true)?;
            }
            "env" => {
                let name = r.text().unwrap_or_default();
                let value = r.text().unwrap_or_default();
                push_bounded(
                    fields,
                    "env",
                    Value::from(
                        format!("{name}={value}")
                            .chars()
                            .take(256)
                            .collect::<String>(),
                    ),
                    MAX_LOGGED,
                );
                self.reply(want, true)?;
            }
            "window-change" => {}
            "shell" if self.shell.is_none() => {
                self.reply(want, true)?;
                let sh = self.new_shell();
                let text = if self.pty {
                    format!("{}{}", sh.motd(), sh.prompt())
                } else {
                    String::new()
                };
                self.shell = Some(sh);
                let out = self.term(&text);
                self.send_data(&out)?;
            }
            "exec" => {
                let cmd = r.string().map(|s| clip(s, 4096)).unwrap_or_default();
                self.report.emit(
                    AttackKind::Exec,
                    AttackDetails {
                        command: Some(cmd.clone()),
                        ..Default::default()
                    },
                );
                self.reply(want, true)?;
                let first = cmd.split_whitespace().next().unwrap_or_default();
                if first == "scp" {
                    self.report.emit(
                        AttackKind::FileTransfer,
                        AttackDetails {
                            method: Some("scp".into()),
                            command: Some(cmd.clone()),
                            ..Default::default()
                        },
                    );
                    self.send_data(b"\x01scp: Permission denied\n")?;
                    self.close(1)?;
                    return Ok(true);
                }
                let mut sh = self.new_shell();
                let out = sh.run(&cmd);
                let text = self.term(&out.text);
                self.send_data(&text)?;
                self.close(out.status)?;
            }
            "subsystem" => {
                let name = r.text().unwrap_or_default();
                self.report.emit(
                    AttackKind::FileTransfer,
                    AttackDetails {
                        method: Some(name.chars().take(64).collect()),
                        ..Default::default()
                    },
                );
                self.reply(want, false)?;
            }
            _ => self.reply(want, false)?,
        }
        Ok(true)
    }

    /// Input on the session channel; `false` ends the connection.
    fn data(&mut self, data: &[u8]) -> io::Result<bool> {
        let adjust = match self.channel.as_mut() {
            Some(c) => {
                c.received = c
                    .received
                    .saturating_add(u32::try_from(data.len()).unwrap_or(0));
                (c.received > WINDOW / 2).then(|| (c.remote, std::mem::take(&mut c.received)))
            }
            None => None,
        };
        if let Some((remote, n)) = adjust {
            let mut w = Writer::msg(msg::CHANNEL_WINDOW_ADJUST);
            w.u32(remote).u32(n);
            self.t.send(&w.0)?;
        }
        if self.shell.is_none() {
            return Ok(true);
        }
        let mut keys = Vec::new();
        self.editor.feed(data, &mut keys);
        for key in keys {
            let Some(sh) = self.shell.as_mut() else {
                break;
            };
            match key {
                Key::Echo(b) => {
                    if self.pty {
                        self.send_data(&b)?;
                    }
                }
                Key::Line(line) => {
                    let out = sh.run(&line);
                    if out.exit {
                        let text = format!("{}logout\n", out.text);
                        let text = self.term(&text);
                        self.send_data(&text)?;
                        self.close(0)?;
                        break;
                    }
                    let mut text = out.text;
                    if self.pty {
                        text.push_str(&sh.prompt());
                    }
                    let text = self.term(&text);
                    self.send_data(&text)?;
                }
                Key::Interrupt => {
                    let p = sh.prompt();
                    self.send_data(p.as_bytes())?;
                }
                Key::Eof => {
                    let text = self.term("logout\n");
                    self.send_data(&text)?;
                    self.close(0)?;
                    break;
                }
            }
        }
        Ok(true)
    }
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

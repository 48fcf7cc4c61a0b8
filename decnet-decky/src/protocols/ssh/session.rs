//! One SSH connection after the key exchange: the userauth service under the
//! accept policy, then the session channel (pty, shell, exec, env, subsystems)
//! and refused forwards. Every step is reported as it happens.

use std::io::{self, Read, Write};

use serde_json::{json, Value};

use super::transport::Transport;
use super::wire::{Reader, Writer};
use super::{fingerprint, msg, HostKey, MAX_AUTH_TRIES};
use crate::log::{AttackDetails, AttackKind, Fields, Reporter};
use crate::protocols::login::Policy;
use crate::protocols::shell::{crlf, Key, LineEditor, Shell};
use crate::protocols::{Peer, ServiceCtx, MAX_LOGGED};
use crate::util::{clip, push_bounded, set_once};

/// Methods offered after a `none` request (Ubuntu's sshd_config defaults).
const AUTH_METHODS: &[u8] = b"publickey,password";
const WINDOW: u32 = 2 * 1024 * 1024;
const MAX_OUT_PACKET: u32 = 32 * 1024;
/// Disconnect reasons (RFC 4250 §4.2.2).
const PROTOCOL_ERROR: u32 = 2;
const SERVICE_NOT_AVAILABLE: u32 = 7;

struct Channel {
    remote: u32,
    window: u64,
    max_packet: u32,
    received: u32,
    closed: bool,
}

pub(super) struct Session<'a, S> {
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

impl<'a, S: Read + Write> Session<'a, S> {
    pub(super) fn new(
        t: Transport<S>,
        ctx: &'a ServiceCtx,
        peer: &'a Peer,
        report: &'a Reporter,
    ) -> Self {
        Session {
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
        }
    }
}

impl<'a, S: Read + Write> Session<'a, S> {
    pub(super) fn run(&mut self, host: &HostKey, fields: &mut Fields) -> io::Result<()> {
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

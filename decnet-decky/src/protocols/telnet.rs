//! Telnet: option negotiation like Ubuntu's telnetd (DO TTYPE, TSPEED,
//! XDISPLOC, NEW-ENVIRON; WILL SGA; DO NAWS; WILL ECHO) or, for an embedded
//! persona, BusyBox's (DO ECHO, DO NAWS, WILL ECHO, WILL SGA; [`Telnetd`]), then `login:` /
//! `Password:` under the accept policy ([`super::login`]) and, once let in, the
//! fake shell ([`super::shell`]). Every attempt is an `auth` event.

use std::collections::VecDeque;
use std::io::{self, Read, Write};

use serde_json::{json, Value};

use decnet_core::registry::{self, Telnetd};

use super::login::Policy;
use super::shell::{crlf, Key, LineEditor, Shell};
use super::{Conn, Peer, ServiceCtx, MAX_LOGGED};
use crate::log::{AttackDetails, AttackKind, Fields, Reporter};
use crate::util::{clip, push_bounded, set_once};

/// Attempts before the connection is closed, like login(1).
pub const MAX_ATTEMPTS: usize = 3;
pub const DEFAULT_BANNER: &str = "Ubuntu 22.04.3 LTS";

const IAC: u8 = 255;
const SB: u8 = 250;
const SE: u8 = 240;
const WILL: u8 = 251;
const DO: u8 = 253;
const ECHO: u8 = 1;
const SGA: u8 = 3;
const TTYPE: u8 = 24;
const NAWS: u8 = 31;
const TSPEED: u8 = 32;
const XDISPLOC: u8 = 35;
const NEW_ENVIRON: u8 = 39;

/// What Ubuntu's telnetd sends first.
pub const NEGOTIATION: &[u8] = &[
    IAC,
    DO,
    TTYPE,
    IAC,
    DO,
    TSPEED,
    IAC,
    DO,
    XDISPLOC,
    IAC,
    DO,
    NEW_ENVIRON,
    IAC,
    WILL,
    SGA,
    IAC,
    DO,
    NAWS,
    IAC,
    WILL,
    ECHO,
];

/// What BusyBox telnetd sends first (`iacs_to_send` in busybox's telnetd.c).
pub const BUSYBOX_NEGOTIATION: &[u8] = &[
    IAC, DO, ECHO, IAC, DO, NAWS, IAC, WILL, ECHO, IAC, WILL, SGA,
];

/// What BusyBox's ash prints on login.
pub const BUSYBOX_MOTD: &str =
    "\n\nBusyBox v1.31.1 () built-in shell (ash)\nEnter 'help' for a list of built-in commands.\n\n";

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum IacState {
    #[default]
    Data,
    Iac,
    Option,
    Sub,
    SubIac,
}

/// Removes telnet commands (IAC sequences) from a stream, across reads.
#[derive(Debug, Default)]
pub struct IacFilter(IacState);

impl IacFilter {
    pub fn feed(&mut self, data: &[u8], out: &mut Vec<u8>) {
        for &b in data {
            self.0 = match (self.0, b) {
                (IacState::Data, IAC) => IacState::Iac,
                (IacState::Data, b) => {
                    out.push(b);
                    IacState::Data
                }
                (IacState::Iac, IAC) => {
                    out.push(IAC);
                    IacState::Data
                }
                (IacState::Iac, 251..=254) => IacState::Option,
                (IacState::Iac, SB) => IacState::Sub,
                (IacState::Iac | IacState::Option, _) => IacState::Data,
                (IacState::Sub, IAC) => IacState::SubIac,
                (IacState::Sub, _) => IacState::Sub,
                (IacState::SubIac, SE) => IacState::Data,
                (IacState::SubIac, _) => IacState::Sub,
            }
        }
    }
}

/// Removes telnet option negotiation (IAC sequences) from one buffer.
pub fn strip_iac(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    IacFilter::default().feed(data, &mut out);
    out.retain(|&b| b != 0);
    out
}

/// The client's terminal: IAC filtering, line editing and echo.
struct Term<S> {
    conn: Conn<S>,
    iac: IacFilter,
    editor: LineEditor,
    keys: VecDeque<Key>,
}

impl<S: Read + Write> Term<S> {
    /// The next line (echoed when `echo`); `None` at end of stream or Ctrl-D.
    fn line(&mut self, echo: bool) -> io::Result<Option<String>> {
        loop {
            while let Some(k) = self.keys.pop_front() {
                match k {
                    Key::Echo(b) => {
                        if echo {
                            self.conn.send(&b)?;
                        }
                    }
                    Key::Line(l) => return Ok(Some(l)),
                    Key::Interrupt => return Ok(Some(String::new())),
                    Key::Eof => return Ok(None),
                }
            }
            let data = self.conn.read_some()?;
            if data.is_empty() {
                return Ok(None);
            }
            let mut clean = Vec::new();
            self.iac.feed(&data, &mut clean);
            let mut keys = Vec::new();
            self.editor.feed(&clean, &mut keys);
            self.keys.extend(keys);
        }
    }
}

/// Negotiation and pre-login text of that daemon; a `banner` setting replaces the text.
pub fn greeting(daemon: Telnetd, banner: Option<String>) -> Vec<u8> {
    let (negotiation, text) = match daemon {
        Telnetd::Netkit => (
            NEGOTIATION,
            banner.unwrap_or_else(|| DEFAULT_BANNER.to_owned()),
        ),
        // BusyBox's login prints a blank /etc/issue: "\r" + "\r\n" once the tty maps NL.
        Telnetd::BusyBox => (
            BUSYBOX_NEGOTIATION,
            banner.unwrap_or_else(|| "\r".to_owned()),
        ),
    };
    let mut out = negotiation.to_vec();
    if !text.is_empty() {
        out.extend_from_slice(format!("{text}\r\n").as_bytes());
    }
    out
}

pub fn handle<S: Read + Write>(
    mut conn: Conn<S>,
    ctx: &ServiceCtx,
    peer: &Peer,
    report: &Reporter,
    fields: &mut Fields,
) -> io::Result<()> {
    conn.send(&greeting(
        registry::telnetd(ctx.os),
        ctx.config.line("banner"),
    ))?;
    let policy = Policy::from_config(&ctx.config);
    let mut term = Term {
        conn,
        iac: IacFilter::default(),
        editor: LineEditor::default(),
        keys: VecDeque::new(),
    };
    let prompt = format!("{} login: ", super::shell::hostname(ctx));
    for attempt in 0..MAX_ATTEMPTS {
        if attempt > 0 {
            term.conn.send(b"\r\n")?;
        }
        let user = loop {
            term.conn.send(prompt.as_bytes())?;
            match term.line(true)? {
                None => return Ok(()),
                Some(u) if u.trim().is_empty() => {}
                Some(u) => break clip(u.trim().as_bytes(), 128),
            }
        };
        term.conn.send(b"Password: ")?;
        let pass = term.line(false)?;
        let pass_text = clip(pass.as_deref().unwrap_or_default().as_bytes(), 256);
        let accepted =
            pass.is_some() && policy.attempt(&ctx.slug, peer.addr.ip(), &user, &pass_text);
        let cred = json!({"username": user, "password": pass_text});
        push_bounded(fields, "credentials", cred, MAX_LOGGED);
        set_once(fields, "username", Value::from(user.clone()));
        report.emit(
            AttackKind::Auth,
            AttackDetails {
                username: Some(user.clone()),
                password: Some(pass_text),
                method: Some("password".into()),
                accepted: Some(accepted),
                ..Default::default()
            },
        );
        if pass.is_none() {
            return Ok(());
        }
        if accepted {
            fields.insert("logged_in_as".into(), Value::from(user.clone()));
            return shell(&mut term, ctx, peer, report, &user);
        }
        term.conn.send(b"\r\nLogin incorrect\r\n")?;
    }
    Ok(())
}

fn shell<S: Read + Write>(
    term: &mut Term<S>,
    ctx: &ServiceCtx,
    peer: &Peer,
    report: &Reporter,
    user: &str,
) -> io::Result<()> {
    let mut sh = Shell::new(user, ctx, peer, report);
    let motd = match registry::telnetd(ctx.os) {
        Telnetd::Netkit => sh.motd(),
        Telnetd::BusyBox => BUSYBOX_MOTD.to_owned(),
    };
    term.conn
        .send(format!("\r\n{}{}", crlf(&motd), sh.prompt()).as_bytes())?;
    loop {
        let Some(line) = term.line(true)? else {
            term.conn.send(b"logout\r\n")?;
            return Ok(());
        };
        let out = sh.run(&line);
        if out.exit {
            term.conn
                .send(crlf(&format!("{}logout\n", out.text)).as_bytes())?;
            return Ok(());
        }
        term.conn
            .send(format!("{}{}", crlf(&out.text), sh.prompt()).as_bytes())?;
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{run, run_events};
    use super::*;
    use proptest::prelude::*;

    fn after_negotiation(out: &str) -> &str {
        let neg = String::from_utf8_lossy(NEGOTIATION).into_owned();
        out.strip_prefix(neg.as_str()).unwrap_or(out)
    }

    #[test]
    fn greeting_per_telnetd() {
        let check = |daemon, banner: Option<&str>, expect: &[u8]| {
            assert_eq!(
                greeting(daemon, banner.map(str::to_owned)),
                expect,
                "{daemon:?} {banner:?}"
            );
        };
        check(
            Telnetd::Netkit,
            None,
            &[NEGOTIATION, b"Ubuntu 22.04.3 LTS\r\n"].concat(),
        );
        check(
            Telnetd::Netkit,
            Some("Hi"),
            &[NEGOTIATION, b"Hi\r\n"].concat(),
        );
        check(
            Telnetd::BusyBox,
            None,
            b"\xff\xfd\x01\xff\xfd\x1f\xff\xfb\x01\xff\xfb\x03\r\r\n",
        );
        check(
            Telnetd::BusyBox,
            Some("Hi"),
            &[BUSYBOX_NEGOTIATION, b"Hi\r\n"].concat(),
        );
    }

    #[test]
    fn an_embedded_persona_greets_as_busybox() {
        use decnet_core::registry::OsFamily;
        let ctx = crate::protocols::testing::ctx("telnet", json!({}))
            .with_persona(Some("iot-device"), Some(OsFamily::Embedded));
        let (report, _sink) = crate::protocols::testing::reporter("telnet", 23);
        let mut m = crate::protocols::testing::Mock::new(b"root\r\nvizxv\r\n");
        let mut f = Fields::new();
        crate::protocols::handle(
            &ctx,
            &crate::protocols::testing::peer(23),
            &report,
            &mut m,
            &mut f,
        )
        .expect("ok");
        let neg = String::from_utf8_lossy(BUSYBOX_NEGOTIATION).into_owned();
        assert_eq!(
            m.out().strip_prefix(neg.as_str()),
            Some("\r\r\nweb-01 login: root\r\nPassword: \r\nLogin incorrect\r\n\r\nweb-01 login: ")
        );
        assert_eq!(f["username"], "root");
    }

    #[test]
    fn login_prompt_and_incorrect() {
        let input = b"\xff\xfd\x03\xff\xfb\x18\xff\xfa\x18\x00xterm\xff\xf0root\r\n123456\r\0admin\nadmin\r\n";
        let (out, f, ev) = run_events("telnet", json!({}), input);
        assert_eq!(
            after_negotiation(&out),
            "Ubuntu 22.04.3 LTS\r\nweb-01 login: root\r\nPassword: \r\nLogin incorrect\r\n\r\nweb-01 login: admin\r\nPassword: \r\nLogin incorrect\r\n\r\nweb-01 login: "
        );
        assert_eq!(
            f["credentials"],
            json!([{"username": "root", "password": "123456"}, {"username": "admin", "password": "admin"}])
        );
        assert_eq!(f["username"], "root");
        let auth: Vec<_> = ev.iter().filter(|e| e.kind == AttackKind::Auth).collect();
        assert_eq!(auth.len(), 2);
        assert_eq!(auth[0].details.accepted, Some(false));
    }

    #[test]
    fn banner_and_three_attempts() {
        let (out, f) = run("telnet", json!({}), b"a\nb\nc\nd\ne\nf\ng\nh\n");
        assert!(after_negotiation(&out).starts_with("Ubuntu 22.04.3 LTS\r\nweb-01 login: "));
        assert_eq!(out.matches("Login incorrect").count(), 3);
        assert_eq!(f["credentials"].as_array().map(Vec::len), Some(3));
    }

    #[test]
    fn accepted_login_reaches_the_shell() {
        let (out, _, ev) = run_events(
            "telnet",
            json!({"users": "admin:admin"}),
            b"admin\r\nadmin\r\nid\r\nbusybox\r\nexit\r\n",
        );
        assert!(out.contains("Welcome to Ubuntu 22.04.3 LTS"));
        assert!(out.contains("admin@web-01:~$ "));
        assert!(out.contains("uid=1000(admin)"));
        assert!(out.contains("-bash: busybox: command not found\r\n"));
        assert!(out.ends_with("logout\r\n"));
        let cmds: Vec<_> = ev
            .iter()
            .filter(|e| e.kind == AttackKind::Command)
            .filter_map(|e| e.details.command.clone())
            .collect();
        assert_eq!(cmds, ["id", "busybox", "exit"]);
    }

    #[test]
    fn iac_stripping() {
        assert_eq!(strip_iac(b"a\xff\xffb\xff\xf1c"), b"a\xffbc");
        assert_eq!(strip_iac(b"\xff\xfa\x1f\x00\x50\xff\xf0x"), b"x");
        let mut f = IacFilter::default();
        let mut out = Vec::new();
        f.feed(b"a\xff", &mut out);
        f.feed(b"\xfd\x01b", &mut out);
        assert_eq!(out, b"ab");
    }

    proptest! {
        #[test]
        fn arbitrary_input_never_panics(data in proptest::collection::vec(any::<u8>(), 0..1024)) {
            let _ = strip_iac(&data);
            let _ = run("telnet", json!({"accept": "any"}), &data);
        }
    }
}

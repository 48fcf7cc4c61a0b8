//! Mail: SMTP (Postfix persona, optional open relay), POP3 and IMAP
//! (Dovecot persona). Every login fails; credentials are logged.

use std::io::{self, Read, Write};

use serde_json::{json, Value};

use super::{verb, Conn, ServiceCtx, MAX_COMMANDS, MAX_LINE, MAX_LOGGED};
use crate::log::Fields;
use crate::util::{b64_decode, bump, clip, push_bounded, set_once, Rng};

pub const SMTP_DEFAULT_BANNER: &str = "Postfix (Ubuntu)";
pub const DOVECOT_READY: &str = "Dovecot (Ubuntu) ready.";
pub const IMAP_CAPABILITIES: &str =
    "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ AUTH=PLAIN AUTH=LOGIN";

/// Largest message body kept track of (bytes); the connection's input bound
/// applies on top.
const MAX_DATA_LINES: usize = 20_000;

fn credential(fields: &mut Fields, user: &[u8], pass: &[u8]) {
    let cred = json!({"username": clip(user, 128), "password": clip(pass, 128)});
    push_bounded(fields, "credentials", cred, MAX_LOGGED);
}

/// `[authzid] \0 user \0 pass` → (user, pass).
fn sasl_plain(b64: &str) -> Option<(Vec<u8>, Vec<u8>)> {
    let raw = b64_decode(b64)?;
    let mut parts = raw.split(|&b| b == 0);
    let _authz = parts.next()?;
    Some((parts.next()?.to_vec(), parts.next()?.to_vec()))
}

fn command(fields: &mut Fields, cmd: &str) {
    bump(fields, "commands");
    push_bounded(
        fields,
        "verbs",
        Value::from(clip(cmd.as_bytes(), 32)),
        MAX_LOGGED,
    );
}

/// Angle-bracketed address from `FROM:<a@b>` / `TO:<a@b>`.
fn address(arg: &str) -> String {
    let after = arg.split_once(':').map_or(arg, |(_, a)| a).trim();
    let inner = after
        .strip_prefix('<')
        .and_then(|a| a.split_once('>'))
        .map_or(after, |(a, _)| a);
    clip(inner.as_bytes(), 256)
}

pub fn smtp<S: Read + Write>(
    mut conn: Conn<S>,
    ctx: &ServiceCtx,
    relay: bool,
    fields: &mut Fields,
) -> io::Result<()> {
    let host = &ctx.hostname;
    let banner = ctx
        .config
        .line("banner")
        .unwrap_or_else(|| SMTP_DEFAULT_BANNER.to_owned());
    conn.send(format!("220 {host} ESMTP {banner}\r\n").as_bytes())?;
    let (mut mail_from, mut rcpts) = (false, 0usize);
    for _ in 0..MAX_COMMANDS {
        let Some(line) = conn.read_line(MAX_LINE)? else {
            return Ok(());
        };
        let (cmd, arg) = verb(&line);
        if cmd.is_empty() {
            continue;
        }
        command(fields, &cmd);
        let reply = match cmd.as_str() {
            "EHLO" => {
                set_once(fields, "helo", Value::from(clip(arg.as_bytes(), 256)));
                format!(
                    "250-{host}\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-VRFY\r\n250-ETRN\r\n\
                     250-AUTH PLAIN LOGIN\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n\
                     250-DSN\r\n250 SMTPUTF8\r\n"
                )
            }
            "HELO" => {
                set_once(fields, "helo", Value::from(clip(arg.as_bytes(), 256)));
                format!("250 {host}\r\n")
            }
            "MAIL" => {
                mail_from = true;
                rcpts = 0;
                push_bounded(fields, "mail_from", Value::from(address(&arg)), MAX_LOGGED);
                "250 2.1.0 Ok\r\n".into()
            }
            "RCPT" if !mail_from => "503 5.5.1 Error: need MAIL command\r\n".into(),
            "RCPT" => {
                let to = address(&arg);
                push_bounded(fields, "rcpt_to", Value::from(to.clone()), MAX_LOGGED);
                if relay {
                    rcpts += 1;
                    "250 2.1.5 Ok\r\n".into()
                } else {
                    format!("454 4.7.1 <{to}>: Relay access denied\r\n")
                }
            }
            "DATA" if !mail_from => "503 5.5.1 Error: need RCPT command\r\n".into(),
            "DATA" if rcpts == 0 => "554 5.5.1 Error: no valid recipients\r\n".into(),
            "DATA" => {
                conn.send(b"354 End data with <CR><LF>.<CR><LF>\r\n")?;
                read_data(&mut conn, fields)?;
                mail_from = false;
                rcpts = 0;
                bump(fields, "messages");
                format!(
                    "250 2.0.0 Ok: queued as {}\r\n",
                    Rng::new().hex(10).to_uppercase()
                )
            }
            "AUTH" => smtp_auth(&mut conn, &arg, fields)?,
            "RSET" => {
                mail_from = false;
                rcpts = 0;
                "250 2.0.0 Ok\r\n".into()
            }
            "NOOP" => "250 2.0.0 Ok\r\n".into(),
            "VRFY" => format!("252 2.0.0 {}\r\n", clip(arg.as_bytes(), 64)),
            "STARTTLS" => "454 4.7.0 TLS not available due to local problem\r\n".into(),
            "QUIT" => {
                conn.send(b"221 2.0.0 Bye\r\n")?;
                return Ok(());
            }
            _ => "502 5.5.2 Error: command not recognized\r\n".into(),
        };
        conn.send(reply.as_bytes())?;
    }
    conn.send(b"421 4.7.0 Error: too many errors\r\n")
}

fn read_data<S: Read + Write>(conn: &mut Conn<S>, fields: &mut Fields) -> io::Result<()> {
    let (mut size, mut in_headers) = (0usize, true);
    for _ in 0..MAX_DATA_LINES {
        let Some(line) = conn.read_line(MAX_LINE)? else {
            return Err(io::ErrorKind::UnexpectedEof.into());
        };
        if line == b"." {
            break;
        }
        size += line.len() + 2;
        if line.is_empty() {
            in_headers = false;
        } else if in_headers && line.len() > 8 && line[..8].eq_ignore_ascii_case(b"subject:") {
            set_once(
                fields,
                "subject",
                Value::from(clip(line[8..].trim_ascii(), 256)),
            );
        }
    }
    let total = fields
        .get("data_bytes")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    fields.insert("data_bytes".into(), Value::from(total + size as u64));
    Ok(())
}

fn smtp_auth<S: Read + Write>(
    conn: &mut Conn<S>,
    arg: &str,
    fields: &mut Fields,
) -> io::Result<String> {
    const FAILED: &str = "535 5.7.8 Error: authentication failed: authentication failure\r\n";
    let (mech, initial) = match arg.split_once(' ') {
        Some((m, i)) => (m.to_ascii_uppercase(), Some(i.trim().to_owned())),
        None => (arg.to_ascii_uppercase(), None),
    };
    let ask = |conn: &mut Conn<S>, prompt: &[u8]| -> io::Result<Option<String>> {
        conn.send(prompt)?;
        Ok(conn
            .read_line(MAX_LINE)?
            .map(|l| String::from_utf8_lossy(&l).trim().to_owned()))
    };
    match mech.as_str() {
        "PLAIN" => {
            let resp = match initial {
                Some(i) => Some(i),
                None => ask(conn, b"334 \r\n")?,
            };
            match resp.as_deref().and_then(sasl_plain) {
                Some((u, p)) => {
                    credential(fields, &u, &p);
                    Ok(FAILED.into())
                }
                None => Ok("501 5.5.2 Cannot decode response\r\n".into()),
            }
        }
        "LOGIN" => {
            let user = match initial {
                Some(i) => Some(i),
                None => ask(conn, b"334 VXNlcm5hbWU6\r\n")?,
            };
            let pass = ask(conn, b"334 UGFzc3dvcmQ6\r\n")?;
            match (
                user.as_deref().and_then(b64_decode),
                pass.as_deref().and_then(b64_decode),
            ) {
                (Some(u), Some(p)) => {
                    credential(fields, &u, &p);
                    Ok(FAILED.into())
                }
                _ => Ok("501 5.5.2 Cannot decode response\r\n".into()),
            }
        }
        _ => Ok(
            "535 5.7.8 Error: authentication failed: Invalid authentication mechanism\r\n".into(),
        ),
    }
}

pub fn pop3<S: Read + Write>(
    mut conn: Conn<S>,
    ctx: &ServiceCtx,
    fields: &mut Fields,
) -> io::Result<()> {
    let banner = ctx
        .config
        .line("banner")
        .unwrap_or_else(|| DOVECOT_READY.to_owned());
    conn.send(format!("+OK {banner}\r\n").as_bytes())?;
    let mut user: Option<String> = None;
    for _ in 0..MAX_COMMANDS {
        let Some(line) = conn.read_line(MAX_LINE)? else {
            return Ok(());
        };
        let (cmd, arg) = verb(&line);
        if cmd.is_empty() {
            continue;
        }
        command(fields, &cmd);
        let reply: &[u8] = match cmd.as_str() {
            "CAPA" => b"+OK\r\nCAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nAUTH-RESP-CODE\r\nUSER\r\nSASL PLAIN\r\n.\r\n",
            "USER" => {
                set_once(fields, "username", Value::from(clip(arg.as_bytes(), 128)));
                user = Some(arg);
                b"+OK\r\n"
            }
            "PASS" => match user.take() {
                Some(u) => {
                    credential(fields, u.as_bytes(), arg.as_bytes());
                    b"-ERR [AUTH] Authentication failed.\r\n"
                }
                None => b"-ERR No username given.\r\n",
            },
            "AUTH" => {
                let (mech, initial) = arg.split_once(' ').unwrap_or((arg.as_str(), ""));
                if !mech.eq_ignore_ascii_case("PLAIN") {
                    b"-ERR [AUTH] Unsupported authentication mechanism.\r\n"
                } else {
                    let resp = if initial.is_empty() {
                        conn.send(b"+ \r\n")?;
                        conn.read_line(MAX_LINE)?
                            .map(|l| String::from_utf8_lossy(&l).into_owned())
                    } else {
                        Some(initial.to_owned())
                    };
                    if let Some((u, p)) = resp.as_deref().and_then(sasl_plain) {
                        credential(fields, &u, &p);
                    }
                    b"-ERR [AUTH] Authentication failed.\r\n"
                }
            }
            "STLS" => b"-ERR TLS support isn't enabled.\r\n",
            "QUIT" => {
                conn.send(b"+OK Logging out.\r\n")?;
                return Ok(());
            }
            _ => b"-ERR Unknown command.\r\n",
        };
        conn.send(reply)?;
    }
    conn.send(b"-ERR Disconnected for inactivity.\r\n")
}

/// Reads one IMAP command as tokens, following `{n}` / `{n+}` literals.
fn imap_command<S: Read + Write>(conn: &mut Conn<S>) -> io::Result<Option<Vec<Vec<u8>>>> {
    let mut tokens: Vec<Vec<u8>> = Vec::new();
    for _ in 0..8 {
        let Some(line) = conn.read_line(MAX_LINE)? else {
            return Ok(if tokens.is_empty() {
                None
            } else {
                Some(tokens)
            });
        };
        let (body, literal) = split_literal(&line);
        tokenize(body, &mut tokens);
        let Some((n, plus)) = literal else {
            return Ok(Some(tokens));
        };
        if !plus {
            conn.send(b"+ OK\r\n")?;
        }
        tokens.push(conn.read_exact_vec(n)?);
    }
    Ok(Some(tokens))
}

/// `... {12}` → (`...`, Some((12, false))); `{12+}` is a non-synchronising literal.
fn split_literal(line: &[u8]) -> (&[u8], Option<(usize, bool)>) {
    if line.last() != Some(&b'}') {
        return (line, None);
    }
    let Some(open) = line.iter().rposition(|&b| b == b'{') else {
        return (line, None);
    };
    let inner = &line[open + 1..line.len() - 1];
    let (digits, plus) = match inner.strip_suffix(b"+") {
        Some(d) => (d, true),
        None => (inner, false),
    };
    match std::str::from_utf8(digits)
        .ok()
        .and_then(|d| d.parse::<usize>().ok())
    {
        Some(n) if n <= MAX_LINE => (&line[..open], Some((n, plus))),
        _ => (line, None),
    }
}

fn tokenize(mut s: &[u8], out: &mut Vec<Vec<u8>>) {
    while out.len() < 32 {
        s = s.trim_ascii_start();
        let Some(&first) = s.first() else { return };
        if first == b'"' {
            let mut tok = Vec::new();
            let mut i = 1;
            while i < s.len() && s[i] != b'"' {
                if s[i] == b'\\' && i + 1 < s.len() {
                    i += 1;
                }
                tok.push(s[i]);
                i += 1;
            }
            out.push(tok);
            s = &s[(i + 1).min(s.len())..];
        } else {
            let end = s
                .iter()
                .position(|b| b.is_ascii_whitespace())
                .unwrap_or(s.len());
            out.push(s[..end].to_vec());
            s = &s[end..];
        }
    }
}

pub fn imap<S: Read + Write>(
    mut conn: Conn<S>,
    ctx: &ServiceCtx,
    fields: &mut Fields,
) -> io::Result<()> {
    let banner = ctx
        .config
        .line("banner")
        .unwrap_or_else(|| DOVECOT_READY.to_owned());
    conn.send(format!("* OK [CAPABILITY {IMAP_CAPABILITIES}] {banner}\r\n").as_bytes())?;
    for _ in 0..MAX_COMMANDS {
        let Some(tokens) = imap_command(&mut conn)? else {
            return Ok(());
        };
        let mut it = tokens.into_iter();
        let Some(tag) = it.next() else { continue };
        let tag = String::from_utf8_lossy(&tag)
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(32)
            .collect::<String>();
        let cmd = it
            .next()
            .map(|c| String::from_utf8_lossy(&c).to_ascii_uppercase())
            .unwrap_or_default();
        let args: Vec<Vec<u8>> = it.collect();
        if cmd.is_empty() {
            conn.send(
                format!("{tag} BAD Error in IMAP command received by server.\r\n").as_bytes(),
            )?;
            continue;
        }
        command(fields, &cmd);
        let reply = match cmd.as_str() {
            "CAPABILITY" => format!(
                "* CAPABILITY {IMAP_CAPABILITIES}\r\n{tag} OK Pre-login capabilities listed, post-login capabilities have more.\r\n"
            ),
            "LOGIN" if args.len() >= 2 => {
                set_once(fields, "username", Value::from(clip(&args[0], 128)));
                credential(fields, &args[0], &args[1]);
                format!("{tag} NO [AUTHENTICATIONFAILED] Authentication failed.\r\n")
            }
            "AUTHENTICATE" if args.first().is_some_and(|m| m.eq_ignore_ascii_case(b"PLAIN")) => {
                let resp = match args.get(1) {
                    Some(i) => Some(String::from_utf8_lossy(i).into_owned()),
                    None => {
                        conn.send(b"+ \r\n")?;
                        conn.read_line(MAX_LINE)?
                            .map(|l| String::from_utf8_lossy(&l).into_owned())
                    }
                };
                if let Some((u, p)) = resp.as_deref().and_then(sasl_plain) {
                    credential(fields, &u, &p);
                }
                format!("{tag} NO [AUTHENTICATIONFAILED] Authentication failed.\r\n")
            }
            "ID" => format!("* ID (\"name\" \"Dovecot\")\r\n{tag} OK ID completed.\r\n"),
            "NOOP" => format!("{tag} OK NOOP completed.\r\n"),
            "STARTTLS" => format!("{tag} BAD TLS support isn't enabled.\r\n"),
            "LOGOUT" => {
                conn.send(format!("* BYE Logging out\r\n{tag} OK Logout completed.\r\n").as_bytes())?;
                return Ok(());
            }
            _ => format!("{tag} BAD Error in IMAP command received by server.\r\n"),
        };
        conn.send(reply.as_bytes())?;
    }
    conn.send(b"* BYE Too many invalid IMAP commands.\r\n")
}

#[cfg(test)]
mod tests {
    use super::super::testing::run;
    use super::*;

    #[test]
    fn smtp_plain_server_denies_relay() {
        let (out, f) = run(
            "smtp",
            json!({}),
            b"EHLO scanner\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<x@y.z>\r\nDATA\r\nQUIT\r\n",
        );
        assert!(out.starts_with("220 web-01 ESMTP Postfix (Ubuntu)\r\n250-web-01\r\n"));
        assert!(out.contains(
            "\r\n250 SMTPUTF8\r\n250 2.1.0 Ok\r\n454 4.7.1 <x@y.z>: Relay access denied\r\n"
        ));
        assert!(out.contains("554 5.5.1 Error: no valid recipients\r\n"));
        assert!(out.ends_with("221 2.0.0 Bye\r\n"));
        assert_eq!(f["helo"], "scanner");
        assert_eq!(f["mail_from"], json!(["a@b.c"]));
        assert_eq!(f["rcpt_to"], json!(["x@y.z"]));
        assert_eq!(f["commands"], 5);
    }

    #[test]
    fn smtp_relay_queues_and_auth_is_captured() {
        let (out, f) = run(
            "smtp_relay",
            json!({"banner": "Sendmail 8.15"}),
            b"HELO h\r\nAUTH PLAIN AHVzZXIAcGFzcw==\r\nAUTH LOGIN\r\ndTI=\r\ncDI=\r\n\
              MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nSubject: hi there\r\n\r\nbody\r\n.\r\nQUIT\r\n",
        );
        assert!(out.starts_with("220 web-01 ESMTP Sendmail 8.15\r\n250 web-01\r\n535 5.7.8"));
        assert!(out.contains("334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n535 5.7.8"));
        assert!(out.contains("250 2.1.5 Ok\r\n354 End data"));
        assert!(out.contains("250 2.0.0 Ok: queued as "));
        assert_eq!(
            f["credentials"],
            json!([{"username": "user", "password": "pass"}, {"username": "u2", "password": "p2"}])
        );
        assert_eq!(f["subject"], "hi there");
        assert_eq!(f["messages"], 1);
        assert_eq!(f["data_bytes"], 27);
    }

    #[test]
    fn pop3_login_fails() {
        let (out, f) = run(
            "pop3",
            json!({}),
            b"CAPA\r\nUSER bob\r\nPASS hunter2\r\nSTAT\r\nQUIT\r\n",
        );
        assert!(out.starts_with("+OK Dovecot (Ubuntu) ready.\r\n+OK\r\nCAPA\r\n"));
        assert!(out.contains(".\r\n+OK\r\n-ERR [AUTH] Authentication failed.\r\n-ERR Unknown command.\r\n+OK Logging out.\r\n"));
        assert_eq!(
            f["credentials"],
            json!([{"username": "bob", "password": "hunter2"}])
        );
        assert_eq!(f["username"], "bob");
    }

    #[test]
    fn imap_login_variants() {
        let (out, f) = run(
            "imap",
            json!({}),
            b"a1 CAPABILITY\r\na2 LOGIN \"bob smith\" \"p\\\"w\"\r\na3 LOGIN {5}\r\nalice {3+}\r\npw3\r\n\
              a4 AUTHENTICATE PLAIN\r\nAHUAcA==\r\na5 SELECT INBOX\r\na6 LOGOUT\r\n",
        );
        assert!(out.starts_with(
            "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ AUTH=PLAIN AUTH=LOGIN] Dovecot (Ubuntu) ready.\r\n"
        ));
        assert!(out.contains("a1 OK Pre-login capabilities listed"));
        assert!(
            out.contains("a2 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n+ OK\r\na3 NO")
        );
        assert!(out.contains("+ \r\na4 NO [AUTHENTICATIONFAILED]"));
        assert!(out.contains("a5 BAD Error in IMAP command received by server.\r\n"));
        assert!(out.ends_with("* BYE Logging out\r\na6 OK Logout completed.\r\n"));
        assert_eq!(
            f["credentials"],
            json!([
                {"username": "bob smith", "password": "p\"w"},
                {"username": "alice", "password": "pw3"},
                {"username": "u", "password": "p"}
            ])
        );
    }

    #[test]
    fn addresses() {
        assert_eq!(address("FROM:<a@b.c> SIZE=10"), "a@b.c");
        assert_eq!(address("TO: bare@x"), "bare@x");
        assert_eq!(address("FROM:<>"), "");
    }
}

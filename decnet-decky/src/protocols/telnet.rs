//! Telnet: `login:` / `Password:` prompts; every attempt is incorrect.

use std::io::{self, Read, Write};

use serde_json::{json, Value};

use super::{Conn, Peer, ServiceCtx, MAX_LINE, MAX_LOGGED};
use crate::log::{Fields, Reporter};
use crate::util::{clip, push_bounded};

/// Attempts before the connection is closed, like login(1).
pub const MAX_ATTEMPTS: usize = 3;

const IAC: u8 = 255;
const SB: u8 = 250;
const SE: u8 = 240;

/// Removes telnet option negotiation (IAC sequences) and NULs.
pub fn strip_iac(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        match data[i] {
            IAC => match data.get(i + 1) {
                Some(&IAC) => {
                    out.push(IAC);
                    i += 2;
                }
                Some(251..=254) => i += 3,
                Some(&SB) => {
                    // Skip to IAC SE.
                    i += 2;
                    while i < data.len() && !(data[i] == IAC && data.get(i + 1) == Some(&SE)) {
                        i += 1;
                    }
                    i += 2;
                }
                _ => i += 2,
            },
            0 => i += 1,
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// Next non-empty line typed by the client (`\r\n`, `\r\0` or `\n` ends it).
fn read_input<S: Read + Write>(conn: &mut Conn<S>) -> io::Result<Option<Vec<u8>>> {
    for _ in 0..16 {
        conn.skip_buffered(b"\n\0");
        let Some(raw) = conn.read_until(b"\r\n", MAX_LINE)? else {
            return Ok(None);
        };
        let line = strip_iac(&raw);
        let line = line.trim_ascii();
        if !line.is_empty() {
            return Ok(Some(line.to_vec()));
        }
    }
    Ok(None)
}

pub fn handle<S: Read + Write>(
    mut conn: Conn<S>,
    ctx: &ServiceCtx,
    _peer: &Peer,
    _report: &Reporter,
    fields: &mut Fields,
) -> io::Result<()> {
    if let Some(banner) = ctx.config.line("banner") {
        conn.send(format!("{banner}\r\n").as_bytes())?;
    }
    let prompt = format!("{} login: ", ctx.hostname);
    for attempt in 0..MAX_ATTEMPTS {
        if attempt > 0 {
            conn.send(b"\r\n")?;
        }
        conn.send(prompt.as_bytes())?;
        let Some(user) = read_input(&mut conn)? else {
            return Ok(());
        };
        conn.send(b"Password: ")?;
        let pass = read_input(&mut conn)?;
        let cred = json!({"username": clip(&user, 128), "password": clip(pass.as_deref().unwrap_or_default(), 128)});
        push_bounded(fields, "credentials", cred, MAX_LOGGED);
        fields
            .entry("username")
            .or_insert_with(|| Value::from(clip(&user, 128)));
        if pass.is_none() {
            return Ok(());
        }
        conn.send(b"\r\nLogin incorrect\r\n")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::run;
    use super::*;

    #[test]
    fn login_prompt_and_incorrect() {
        let input = b"\xff\xfd\x03\xff\xfb\x18\xff\xfa\x18\x00xterm\xff\xf0root\r\n123456\r\0admin\nadmin\r\n";
        let (out, f) = run("telnet", json!({}), input);
        assert_eq!(
            out,
            "web-01 login: Password: \r\nLogin incorrect\r\n\r\nweb-01 login: Password: \r\nLogin incorrect\r\n\r\nweb-01 login: "
        );
        assert_eq!(
            f["credentials"],
            json!([{"username": "root", "password": "123456"}, {"username": "admin", "password": "admin"}])
        );
        assert_eq!(f["username"], "root");
    }

    #[test]
    fn banner_and_three_attempts() {
        let (out, f) = run(
            "telnet",
            json!({"banner": "Ubuntu 22.04.3 LTS"}),
            b"a\nb\nc\nd\ne\nf\ng\nh\n",
        );
        assert!(out.starts_with("Ubuntu 22.04.3 LTS\r\nweb-01 login: "));
        assert_eq!(out.matches("Login incorrect").count(), 3);
        assert_eq!(f["credentials"].as_array().map(Vec::len), Some(3));
    }

    #[test]
    fn iac_stripping() {
        assert_eq!(strip_iac(b"a\xff\xffb\xff\xf1c"), b"a\xffbc");
        assert_eq!(strip_iac(b"\xff\xfa\x1f\x00\x50\xff\xf0x"), b"x");
    }
}

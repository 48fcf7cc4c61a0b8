//! Redis with `requirepass`: every command is refused for lack of AUTH.
//!
//! Like a real server, `AUTH` itself is answered with WRONGPASS and `QUIT`
//! with `+OK`; every other command gets `-NOAUTH Authentication required.`.

use std::io::{self, Read, Write};

use serde_json::{json, Value};

use super::{Conn, MAX_COMMANDS, MAX_LINE, MAX_LOGGED};
use crate::log::Fields;
use crate::util::{bump, clip, preview, push_bounded, set_once};

pub const NOAUTH: &[u8] = b"-NOAUTH Authentication required.\r\n";
pub const WRONGPASS: &[u8] = b"-WRONGPASS invalid username-password pair or user is disabled.\r\n";

/// Largest bulk string accepted in a command.
const MAX_BULK: usize = 64 * 1024;
/// Most arguments accepted in one command.
const MAX_ARGS: usize = 1024;

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_owned())
}

/// One command as its arguments: a RESP array of bulk strings, or an inline
/// command line.
fn read_command<S: Read + Write>(conn: &mut Conn<S>) -> io::Result<Option<Vec<Vec<u8>>>> {
    let Some(line) = conn.read_line(MAX_LINE)? else {
        return Ok(None);
    };
    if let Some(n) = line.strip_prefix(b"*") {
        let n: i64 = std::str::from_utf8(n)
            .ok()
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| bad("invalid multibulk length"))?;
        let n = usize::try_from(n).unwrap_or(0);
        if n > MAX_ARGS {
            return Err(bad("invalid multibulk length"));
        }
        let mut args = Vec::with_capacity(n);
        for _ in 0..n {
            let Some(head) = conn.read_line(MAX_LINE)? else {
                return Err(io::ErrorKind::UnexpectedEof.into());
            };
            let len = head
                .strip_prefix(b"$")
                .and_then(|l| std::str::from_utf8(l).ok())
                .and_then(|l| l.parse::<usize>().ok())
                .filter(|&l| l <= MAX_BULK)
                .ok_or_else(|| bad("invalid bulk length"))?;
            let mut arg = conn.read_exact_vec(len + 2)?;
            arg.truncate(len);
            args.push(arg);
        }
        return Ok(Some(args));
    }
    Ok(Some(
        line.split(|b| b.is_ascii_whitespace())
            .filter(|a| !a.is_empty())
            .map(<[u8]>::to_vec)
            .collect(),
    ))
}

pub fn handle<S: Read + Write>(mut conn: Conn<S>, fields: &mut Fields) -> io::Result<()> {
    for _ in 0..MAX_COMMANDS {
        let Some(args) = read_command(&mut conn)? else {
            return Ok(());
        };
        let Some(name) = args.first() else { continue };
        let name = String::from_utf8_lossy(name).to_ascii_uppercase();
        let rendered = args
            .iter()
            .take(8)
            .map(|a| preview(a, 64))
            .collect::<Vec<_>>()
            .join(" ");
        set_once(fields, "first_command", Value::from(rendered.clone()));
        push_bounded(fields, "commands", Value::from(rendered), MAX_LOGGED);
        bump(fields, "command_count");
        match name.as_str() {
            "AUTH" => {
                let (user, pass) = match &args[1..] {
                    [pass] => ("default".as_bytes(), pass.as_slice()),
                    [user, pass, ..] => (user.as_slice(), pass.as_slice()),
                    [] => (&b""[..], &b""[..]),
                };
                push_bounded(
                    fields,
                    "credentials",
                    json!({"username": clip(user, 128), "password": clip(pass, 128)}),
                    MAX_LOGGED,
                );
                conn.send(WRONGPASS)?;
            }
            "QUIT" => {
                conn.send(b"+OK\r\n")?;
                return Ok(());
            }
            _ => conn.send(NOAUTH)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::run;
    use super::*;

    #[test]
    fn resp_and_inline_get_noauth() {
        let (out, f) = run(
            "redis",
            json!({}),
            b"*1\r\n$4\r\nPING\r\nINFO server\r\n*2\r\n$6\r\nCONFIG\r\n$0\r\n\r\n",
        );
        assert_eq!(out.as_bytes(), [NOAUTH, NOAUTH, NOAUTH].concat());
        assert_eq!(f["first_command"], "PING");
        assert_eq!(f["commands"], json!(["PING", "INFO server", "CONFIG "]));
        assert_eq!(f["command_count"], 3);
    }

    #[test]
    fn auth_is_captured_and_quit_closes() {
        let (out, f) = run(
            "redis",
            json!({}),
            b"AUTH s3cret\r\n*3\r\n$4\r\nAUTH\r\n$5\r\nadmin\r\n$2\r\npw\r\nQUIT\r\nPING\r\n",
        );
        assert_eq!(out.as_bytes(), [WRONGPASS, WRONGPASS, b"+OK\r\n"].concat());
        assert_eq!(
            f["credentials"],
            json!([{"username": "default", "password": "s3cret"}, {"username": "admin", "password": "pw"}])
        );
    }

    #[test]
    fn garbage_framing_is_an_error() {
        let c = super::super::testing::ctx("redis", json!({}));
        let mut m = super::super::testing::Mock::new(b"*x\r\n");
        let mut f = Fields::new();
        let (report, _) = super::super::testing::reporter("redis", 6379);
        let r = super::super::handle(
            &c,
            &super::super::testing::peer(6379),
            &report,
            &mut m,
            &mut f,
        );
        assert!(r.is_err());
    }
}

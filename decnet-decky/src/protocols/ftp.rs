//! FTP (vsftpd persona): every login fails.

use std::io::{self, Read, Write};

use serde_json::{json, Value};

use super::{verb, Conn, ServiceCtx, MAX_COMMANDS, MAX_LINE, MAX_LOGGED};
use crate::log::Fields;
use crate::util::{bump, clip, push_bounded, set_once};

pub const DEFAULT_BANNER: &str = "(vsFTPd 3.0.5)";

pub fn handle<S: Read + Write>(
    mut conn: Conn<S>,
    ctx: &ServiceCtx,
    fields: &mut Fields,
) -> io::Result<()> {
    let banner = ctx
        .config
        .line("banner")
        .unwrap_or_else(|| DEFAULT_BANNER.to_owned());
    conn.send(format!("220 {banner}\r\n").as_bytes())?;
    let mut user: Option<String> = None;
    for _ in 0..MAX_COMMANDS {
        let Some(line) = conn.read_line(MAX_LINE)? else {
            return Ok(());
        };
        let (cmd, arg) = verb(&line);
        if cmd.is_empty() {
            continue;
        }
        bump(fields, "commands");
        let reply: &[u8] = match cmd.as_str() {
            "USER" => {
                let name = clip(arg.as_bytes(), 128);
                set_once(fields, "username", Value::from(name.clone()));
                user = Some(name);
                b"331 Please specify the password.\r\n"
            }
            "PASS" => match user.take() {
                Some(u) => {
                    let cred = json!({"username": u, "password": clip(arg.as_bytes(), 128)});
                    push_bounded(fields, "credentials", cred, MAX_LOGGED);
                    b"530 Login incorrect.\r\n"
                }
                None => b"503 Login with USER first.\r\n",
            },
            "QUIT" => {
                conn.send(b"221 Goodbye.\r\n")?;
                return Ok(());
            }
            _ => {
                push_bounded(
                    fields,
                    "other_commands",
                    Value::from(clip(cmd.as_bytes(), 32)),
                    MAX_LOGGED,
                );
                b"530 Please login with USER and PASS.\r\n"
            }
        };
        conn.send(reply)?;
    }
    conn.send(b"421 Service not available, remote server has closed connection.\r\n")
}

#[cfg(test)]
mod tests {
    use super::super::testing::run;
    use serde_json::json;

    #[test]
    fn login_fails_and_credentials_are_kept() {
        let (out, f) = run(
            "ftp",
            json!({}),
            b"USER anonymous\r\nPASS me@x.org\r\nSYST\r\nPASS again\r\nQUIT\r\nUSER ignored\r\n",
        );
        assert_eq!(
            out,
            "220 (vsFTPd 3.0.5)\r\n331 Please specify the password.\r\n530 Login incorrect.\r\n\
             530 Please login with USER and PASS.\r\n503 Login with USER first.\r\n221 Goodbye.\r\n"
        );
        assert_eq!(f["username"], "anonymous");
        assert_eq!(
            f["credentials"],
            json!([{"username": "anonymous", "password": "me@x.org"}])
        );
        assert_eq!(f["commands"], 5);
        assert_eq!(f["other_commands"], json!(["SYST"]));
    }

    #[test]
    fn custom_banner() {
        let (out, _) = run("ftp", json!({"banner": "ProFTPD 1.3.5 Server"}), b"");
        assert_eq!(out, "220 ProFTPD 1.3.5 Server\r\n");
    }
}

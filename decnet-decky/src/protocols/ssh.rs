//! SSH: send the identification string, read the client's, close.

use std::io::{self, Read, Write};

use serde_json::Value;

use super::{Conn, Peer, ServiceCtx};
use crate::log::{Fields, Reporter};
use crate::util::clip;

pub const DEFAULT_BANNER: &str = "OpenSSH_8.9p1 Ubuntu-3ubuntu0.6";

pub fn handle<S: Read + Write>(
    mut conn: Conn<S>,
    ctx: &ServiceCtx,
    _peer: &Peer,
    _report: &Reporter,
    fields: &mut Fields,
) -> io::Result<()> {
    let banner = ctx
        .config
        .line("banner")
        .unwrap_or_else(|| DEFAULT_BANNER.to_owned());
    let banner = banner.strip_prefix("SSH-2.0-").unwrap_or(&banner);
    conn.send(format!("SSH-2.0-{banner}\r\n").as_bytes())?;
    // RFC 4253 §4.2: the client may send other lines before its version
    // string; the identification line is at most 255 bytes.
    for _ in 0..8 {
        let Some(line) = conn.read_line(512)? else {
            return Ok(());
        };
        if line.starts_with(b"SSH-") {
            fields.insert("client_version".into(), Value::from(clip(&line, 255)));
            return Ok(());
        }
        if !line.is_empty() {
            fields.insert("preamble".into(), Value::from(clip(&line, 255)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::run;
    use serde_json::json;

    #[test]
    fn banner_and_client_version() {
        let (out, f) = run("ssh", json!({}), b"SSH-2.0-libssh_0.9.6\r\n\x00\x00\x01");
        assert_eq!(out, "SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.6\r\n");
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
}

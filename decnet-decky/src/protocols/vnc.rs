//! VNC (RFB): version handshake, offer VNC authentication, capture the
//! challenge response, fail.

use std::io::{self, Read, Write};

use serde_json::Value;

use super::Conn;
use crate::log::Fields;
use crate::util::{hex, preview, Rng};

pub const SERVER_VERSION: &[u8] = b"RFB 003.008\n";

pub fn handle<S: Read + Write>(mut conn: Conn<S>, fields: &mut Fields) -> io::Result<()> {
    conn.send(SERVER_VERSION)?;
    let client = match conn.read_exact_vec(12) {
        Ok(v) => v,
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
        Err(e) => return Err(e),
    };
    fields.insert("client_version".into(), Value::from(preview(&client, 12)));
    let minor = match &client[..] {
        b"RFB 003.003\n" => 3,
        b"RFB 003.007\n" => 7,
        c if c.starts_with(b"RFB 003.") => 8,
        _ => return Ok(()),
    };
    let mut challenge = [0u8; 16];
    Rng::new().fill(&mut challenge);
    if minor == 3 {
        // 3.3: the server picks the security type (2 = VNC authentication).
        conn.send(&2u32.to_be_bytes())?;
    } else {
        conn.send(&[1, 2])?;
        let chosen = conn.read_exact_vec(1)?;
        fields.insert("security_type".into(), Value::from(chosen[0]));
        if chosen[0] != 2 {
            let reason = b"Security type not supported";
            let mut msg = 1u32.to_be_bytes().to_vec();
            msg.extend_from_slice(&(reason.len() as u32).to_be_bytes());
            msg.extend_from_slice(reason);
            return conn.send(&msg);
        }
    }
    conn.send(&challenge)?;
    let response = conn.read_exact_vec(16)?;
    fields.insert("challenge".into(), Value::from(hex(&challenge)));
    fields.insert("response".into(), Value::from(hex(&response)));
    let mut result = 1u32.to_be_bytes().to_vec(); // failed
    if minor == 8 {
        let reason = b"Authentication failure";
        result.extend_from_slice(&(reason.len() as u32).to_be_bytes());
        result.extend_from_slice(reason);
    }
    conn.send(&result)
}

#[cfg(test)]
mod tests {
    use super::super::testing::run_bytes as run;
    use serde_json::json;

    #[test]
    fn rfb_38_vnc_auth_fails() {
        let mut input = b"RFB 003.008\n\x02".to_vec();
        input.extend_from_slice(&[0xAB; 16]);
        let (out, f) = run("vnc", json!({}), &input);
        assert_eq!(&out[..12], b"RFB 003.008\n");
        assert_eq!(&out[12..14], &[1, 2]);
        // 16-byte challenge, then SecurityResult failed + reason.
        assert_eq!(&out[30..34], &[0, 0, 0, 1]);
        assert!(out.ends_with(b"Authentication failure"));
        assert_eq!(f["client_version"], "RFB 003.008\\n");
        assert_eq!(f["response"], "ab".repeat(16));
    }

    #[test]
    fn rfb_33_and_scanner() {
        let mut input = b"RFB 003.003\n".to_vec();
        input.extend_from_slice(&[0x01; 16]);
        let (out, _) = run("vnc", json!({}), &input);
        assert_eq!(&out[12..16], &[0, 0, 0, 2]);
        assert_eq!(&out[32..], &[0, 0, 0, 1]);
        let (out, f) = run("vnc", json!({}), b"");
        assert_eq!(out, b"RFB 003.008\n");
        assert!(f.is_empty());
    }
}

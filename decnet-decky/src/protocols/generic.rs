//! Every other slug (TCP): read what arrives, bounded, log it, close.

use std::io::{self, Read, Write};

use serde_json::Value;

use super::Conn;
use crate::log::Fields;
use crate::util::{hex, preview};

/// Bytes read before closing.
pub const MAX_READ: usize = 4096;
/// Bytes rendered into the log.
pub const MAX_PREVIEW: usize = 256;

pub fn handle<S: Read + Write>(mut conn: Conn<S>, fields: &mut Fields) -> io::Result<()> {
    let mut seen = Vec::new();
    let res = loop {
        match conn.read_some() {
            Ok(chunk) if chunk.is_empty() => break Ok(()),
            Ok(chunk) => {
                seen.extend_from_slice(&chunk);
                if seen.len() >= MAX_READ {
                    break Ok(());
                }
            }
            Err(e) => break Err(e),
        }
    };
    record(&seen, fields);
    res
}

/// What a payload looked like (shared with the UDP listener).
pub fn record(data: &[u8], fields: &mut Fields) {
    if data.is_empty() {
        return;
    }
    fields.insert("preview".into(), Value::from(preview(data, MAX_PREVIEW)));
    fields.insert(
        "head_hex".into(),
        Value::from(hex(&data[..data.len().min(32)])),
    );
}

#[cfg(test)]
mod tests {
    use super::super::testing::run;
    use serde_json::json;

    #[test]
    fn reads_and_never_answers() {
        let (out, f) = run("llmnr", json!({}), b"\x3a\x00\x00\x00hello");
        assert!(out.is_empty());
        assert_eq!(f["preview"], ":\\x00\\x00\\x00hello");
        assert_eq!(f["head_hex"], "3a00000068656c6c6f");
        let (_, f) = run("snmp", json!({}), b"");
        assert!(f.is_empty());
    }
}

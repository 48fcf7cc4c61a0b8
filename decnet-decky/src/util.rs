//! Small helpers shared by the responders: a non-cryptographic RNG for
//! plausible salts and ids, and safe renderings of attacker bytes.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::log::Fields;

/// splitmix64 seeded from the std hasher's OS-random keys, the clock and a
/// counter. Good enough for salts, connection ids and serial numbers of a
/// decoy; never for secrets.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new() -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let mut h = RandomState::new().build_hasher();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        h.write_u128(now.as_nanos());
        h.write_u32(std::process::id());
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        Rng(h.finish())
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }

    /// `n` lowercase hex digits.
    pub fn hex(&mut self, n: usize) -> String {
        let mut b = vec![0u8; n.div_ceil(2)];
        self.fill(&mut b);
        let mut s = hex(&b);
        s.truncate(n);
        s
    }

    /// A random UUID-v4-looking string.
    pub fn uuid(&mut self) -> String {
        let h = self.hex(32);
        format!(
            "{}-{}-4{}-a{}-{}",
            &h[..8],
            &h[8..12],
            &h[13..16],
            &h[17..20],
            &h[20..]
        )
    }
}

impl Default for Rng {
    fn default() -> Self {
        Self::new()
    }
}

pub fn hex(data: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(data.len() * 2);
    for b in data {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Standard base64 (padding optional, whitespace ignored); `None` if malformed.
pub fn b64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes().filter(|c| !c.is_ascii_whitespace()) {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Printable ASCII kept; everything else escaped (`\r`, `\n`, `\t`, `\\`,
/// `\xNN`). At most `max` input bytes are rendered.
pub fn preview(data: &[u8], max: usize) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    for &b in data.iter().take(max) {
        match b {
            b'\\' => s.push_str("\\\\"),
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            b'\t' => s.push_str("\\t"),
            0x20..=0x7e => s.push(b as char),
            _ => {
                let _ = write!(s, "\\x{b:02x}");
            }
        }
    }
    s
}

/// Attacker text for a log field: lossy UTF-8, at most `max` characters.
pub fn clip(data: &[u8], max: usize) -> String {
    String::from_utf8_lossy(data).chars().take(max).collect()
}

/// Appends to the array `fields[key]`, keeping at most `max` entries.
pub fn push_bounded(fields: &mut Fields, key: &str, value: Value, max: usize) {
    let entry = fields
        .entry(key.to_owned())
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(a) = entry {
        if a.len() < max {
            a.push(value);
        }
    }
}

/// Sets `fields[key]` only the first time.
pub fn set_once(fields: &mut Fields, key: &str, value: Value) {
    fields.entry(key.to_owned()).or_insert(value);
}

/// Increments the integer `fields[key]`.
pub fn bump(fields: &mut Fields, key: &str) {
    let n = fields.get(key).and_then(Value::as_u64).unwrap_or(0);
    fields.insert(key.to_owned(), Value::from(n + 1));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_differs_between_instances_and_fills_odd_lengths() {
        let (mut a, mut b) = (Rng::new(), Rng::new());
        assert_ne!(a.next_u64(), b.next_u64());
        let mut buf = [0u8; 13];
        a.fill(&mut buf);
        assert!(buf.iter().any(|&x| x != 0));
        assert_eq!(a.hex(7).len(), 7);
        let u = a.uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
    }

    #[test]
    fn preview_escapes_binary() {
        assert_eq!(
            preview(b"GET /\r\n\x00\xff\\", 100),
            "GET /\\r\\n\\x00\\xff\\\\"
        );
        assert_eq!(preview(b"abcdef", 3), "abc");
    }

    #[test]
    fn base64() {
        assert_eq!(
            b64_decode("AHVzZXIAcGFzcw==").as_deref(),
            Some(&b"\0user\0pass"[..])
        );
        assert_eq!(
            b64_decode("VXNlcm5hbWU6").as_deref(),
            Some(&b"Username:"[..])
        );
        assert_eq!(b64_decode("YQ").as_deref(), Some(&b"a"[..]));
        assert_eq!(b64_decode("a*b"), None);
    }

    #[test]
    fn bounded_lists() {
        let mut f = Fields::new();
        for i in 0..5 {
            push_bounded(&mut f, "k", Value::from(i), 3);
        }
        assert_eq!(f["k"], serde_json::json!([0, 1, 2]));
        set_once(&mut f, "u", Value::from("a"));
        set_once(&mut f, "u", Value::from("b"));
        assert_eq!(f["u"], "a");
        bump(&mut f, "n");
        bump(&mut f, "n");
        assert_eq!(f["n"], 2);
    }
}

//! The master's data dir and its secrets: one place that knows every file name, and how
//! tokens are made and hashed.

use std::path::{Path, PathBuf};

use rand::RngCore;

/// Prefix of operator API tokens.
pub const API_TOKEN_PREFIX: &str = "dnt_";

/// Files of a master's data dir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDir(pub PathBuf);

impl DataDir {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self(path.into())
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
    pub fn ca_cert(&self) -> PathBuf {
        self.0.join("ca.crt")
    }
    pub fn ca_key(&self) -> PathBuf {
        self.0.join("ca.key")
    }
    pub fn master_cert(&self) -> PathBuf {
        self.0.join("master.crt")
    }
    pub fn master_key(&self) -> PathBuf {
        self.0.join("master.key")
    }
    /// The master certificate's successor during a rollover (promoted over `master.crt`).
    pub fn master_next_cert(&self) -> PathBuf {
        self.0.join("master.next.crt")
    }
    /// Its key, 0600.
    pub fn master_next_key(&self) -> PathBuf {
        self.0.join("master.next.key")
    }
    /// The first admin API token, 0600, written once by `decnet init`.
    pub fn admin_token(&self) -> PathBuf {
        self.0.join("admin.token")
    }
    /// Written by `decnet serve` while it runs: where clients find the master.
    pub fn master_json(&self) -> PathBuf {
        self.0.join("master.json")
    }
    pub fn sqlite_path(&self) -> PathBuf {
        self.0.join("decnet.db")
    }
    /// The default store: SQLite in the data dir.
    pub fn default_db_url(&self) -> String {
        format!("sqlite://{}", self.sqlite_path().display())
    }
    /// The unihost state file (deckies this host runs itself).
    pub fn state_file(&self) -> PathBuf {
        decnet_core::adapters::state_file::state_path(&self.0)
    }
}

/// 256 random bits as 43 characters of unpadded base64url.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64url(&bytes)
}

/// A new operator API token: `dnt_<secret>`.
pub fn new_api_token() -> String {
    format!("{API_TOKEN_PREFIX}{}", new_secret())
}

/// What the store keeps of a token (lowercase hex SHA-256 of its full text), and how digests
/// are compared.
pub use decnet_core::model::auth::{digest_eq, token_hash};

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = match chunk.len() {
            3 => (u32::from(chunk[0]) << 16) | (u32::from(chunk[1]) << 8) | u32::from(chunk[2]),
            2 => (u32::from(chunk[0]) << 16) | (u32::from(chunk[1]) << 8),
            _ => u32::from(chunk[0]) << 16,
        };
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_and_hashes() {
        let s = new_secret();
        assert_eq!(s.len(), 43);
        assert!(s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_ne!(s, new_secret());
        assert!(new_api_token().starts_with("dnt_"));
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(token_hash(" abc\n"), token_hash("abc"));
        assert!(digest_eq("ab", "ab") && !digest_eq("ab", "ac") && !digest_eq("ab", "abc"));
        assert_eq!(base64url(b"\xfb\xff"), "-_8");
        assert_eq!(base64url(b"foob"), "Zm9vYg");
    }
}

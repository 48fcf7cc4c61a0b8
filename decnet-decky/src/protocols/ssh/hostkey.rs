//! The decky's ed25519 host key: loaded from a file (OpenSSH private key or
//! raw seed) or generated in memory; its blob and `SHA256:` fingerprint.

use std::io;
use std::sync::OnceLock;

use ring::rand::SystemRandom;
use ring::signature::Ed25519KeyPair;

use super::wire::Reader;
use super::{transport, HOST_KEY_PATH};

/// The decky's ed25519 host key.
pub struct HostKey {
    pub pair: Ed25519KeyPair,
}

impl std::fmt::Debug for HostKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HostKey({})", self.fingerprint())
    }
}

/// Standard base64 with or without padding.
pub fn b64(data: &[u8], pad: bool) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(A[((n >> (18 - 6 * i)) & 63) as usize]));
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

/// OpenSSH's `SHA256:` fingerprint of a public key blob.
pub fn fingerprint(blob: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, blob);
    format!("SHA256:{}", b64(d.as_ref(), false))
}

impl HostKey {
    pub fn from_seed(seed: &[u8]) -> Option<HostKey> {
        let pair = Ed25519KeyPair::from_seed_unchecked(seed).ok()?;
        Some(HostKey { pair })
    }

    pub fn generate() -> io::Result<HostKey> {
        let mut seed = [0u8; 32];
        ring::rand::SecureRandom::fill(&SystemRandom::new(), &mut seed)
            .map_err(|_| io::Error::other("rng"))?;
        HostKey::from_seed(&seed).ok_or_else(|| io::Error::other("ed25519 key"))
    }

    /// A key file: the raw 32-byte seed, or an unencrypted OpenSSH private key.
    pub fn parse(file: &[u8]) -> Option<HostKey> {
        if file.len() == 32 {
            return HostKey::from_seed(file);
        }
        let text = std::str::from_utf8(file).ok()?;
        let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
        let raw = crate::util::b64_decode(&body)?;
        let mut r = Reader::new(raw.strip_prefix(b"openssh-key-v1\0")?);
        if r.string()? != b"none" || r.string()? != b"none" {
            return None;
        }
        r.string()?;
        if r.u32()? != 1 {
            return None;
        }
        r.string()?;
        let mut p = Reader::new(r.string()?);
        if p.u32()? != p.u32()? || p.string()? != b"ssh-ed25519" {
            return None;
        }
        p.string()?;
        let secret = p.string()?;
        HostKey::from_seed(secret.get(..32)?)
    }

    pub fn blob(&self) -> Vec<u8> {
        transport::ed25519_blob(&self.pair)
    }

    pub fn fingerprint(&self) -> String {
        fingerprint(&self.blob())
    }
}

/// The process's host key, loaded (or generated) on first use.
pub fn host_key() -> &'static HostKey {
    static KEY: OnceLock<HostKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let path = std::env::var("DECNET_SSH_HOST_KEY").unwrap_or_else(|_| HOST_KEY_PATH.into());
        match std::fs::read(&path).map(|f| HostKey::parse(&f)) {
            Ok(Some(k)) => {
                eprintln!("decnet-decky: ssh host key {} from {path}", k.fingerprint());
                return k;
            }
            Ok(None) => eprintln!("decnet-decky: {path} is not an ed25519 key"),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => eprintln!("decnet-decky: {path}: {e}"),
        }
        let k = HostKey::generate()
            .ok()
            .or_else(|| HostKey::from_seed(&[7; 32]))
            .unwrap_or_else(|| unreachable!("a fixed seed is a valid ed25519 seed"));
        eprintln!(
            "decnet-decky: no ssh host key at {path}; generated {} in memory",
            k.fingerprint()
        );
        k
    })
}

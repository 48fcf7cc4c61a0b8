//! The packet ciphers: chacha20-poly1305@openssh.com and aes-gcm (ring's AEADs),
//! aes-ctr (the `aes` crate) with an HMAC (ring), plain or encrypt-then-MAC.

use std::io;

use ring::aead::{self, chacha20_poly1305_openssh as chacha};
use ring::hmac;

use super::transport::bad;

pub(super) enum Aes {
    A128(aes::Aes128),
    A192(aes::Aes192),
    A256(aes::Aes256),
}

/// AES in counter mode (RFC 4344) with its MAC (RFC 4253 §6.4, or encrypt-then-MAC).
pub(super) struct Ctr {
    aes: Aes,
    counter: u128,
    mac: hmac::Key,
    pub(super) mac_len: usize,
    pub(super) etm: bool,
}

impl Ctr {
    pub(super) fn new(
        cipher: &str,
        iv: &[u8],
        key: &[u8],
        mac: &str,
        mac_key: &[u8],
    ) -> io::Result<Ctr> {
        use aes::cipher::KeyInit;
        let err = |_| io::Error::other("aes key");
        let aes = match cipher {
            "aes128-ctr" => Aes::A128(aes::Aes128::new_from_slice(&key[..16]).map_err(err)?),
            "aes192-ctr" => Aes::A192(aes::Aes192::new_from_slice(&key[..24]).map_err(err)?),
            _ => Aes::A256(aes::Aes256::new_from_slice(&key[..32]).map_err(err)?),
        };
        let mut c = [0u8; 16];
        c.copy_from_slice(&iv[..16]);
        let (alg, n) = match mac.trim_end_matches("-etm@openssh.com") {
            "hmac-sha2-512" => (hmac::HMAC_SHA512, 64),
            "hmac-sha1" => (hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, 20),
            _ => (hmac::HMAC_SHA256, 32),
        };
        Ok(Ctr {
            aes,
            counter: u128::from_be_bytes(c),
            mac: hmac::Key::new(alg, &mac_key[..n]),
            mac_len: n,
            etm: mac.ends_with("-etm@openssh.com"),
        })
    }

    /// XORs the key stream into `data` (SSH packets are whole blocks).
    pub(super) fn apply(&mut self, data: &mut [u8]) {
        use aes::cipher::BlockEncrypt;
        for chunk in data.chunks_mut(16) {
            let mut block = aes::Block::from(self.counter.to_be_bytes());
            match &self.aes {
                Aes::A128(c) => c.encrypt_block(&mut block),
                Aes::A192(c) => c.encrypt_block(&mut block),
                Aes::A256(c) => c.encrypt_block(&mut block),
            }
            self.counter = self.counter.wrapping_add(1);
            for (d, k) in chunk.iter_mut().zip(block.iter()) {
                *d ^= k;
            }
        }
    }

    pub(super) fn tag(&self, seq: u32, data: &[u8]) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.mac);
        ctx.update(&seq.to_be_bytes());
        ctx.update(data);
        ctx.sign()
    }

    pub(super) fn verify(&self, seq: u32, data: &[u8], tag: &[u8]) -> io::Result<()> {
        let mut msg = Vec::with_capacity(data.len() + 4);
        msg.extend_from_slice(&seq.to_be_bytes());
        msg.extend_from_slice(data);
        hmac::verify(&self.mac, &msg, tag).map_err(|_| bad("bad packet MAC"))
    }
}

/// A decryption state for the client-to-server direction.
pub(super) enum Opening {
    None,
    Ctr(Box<Ctr>),
    ChaCha(Box<chacha::OpeningKey>),
    Gcm(Box<(aead::LessSafeKey, [u8; 12])>),
}

/// An encryption state for the server-to-client direction.
pub(super) enum Sealing {
    None,
    Ctr(Box<Ctr>),
    ChaCha(Box<chacha::SealingKey>),
    Gcm(Box<(aead::LessSafeKey, [u8; 12])>),
}

pub(super) fn next_iv(iv: &mut [u8; 12]) {
    let mut c = [0u8; 8];
    c.copy_from_slice(&iv[4..]);
    let n = u64::from_be_bytes(c).wrapping_add(1);
    iv[4..].copy_from_slice(&n.to_be_bytes());
}

fn key_len(cipher: &str) -> usize {
    match cipher {
        "aes128-gcm@openssh.com" => 16,
        "aes256-gcm@openssh.com" => 32,
        _ => 64,
    }
}

fn gcm(cipher: &str, iv: &[u8], key: &[u8]) -> io::Result<(aead::LessSafeKey, [u8; 12])> {
    let alg = if cipher == "aes128-gcm@openssh.com" {
        &aead::AES_128_GCM
    } else {
        &aead::AES_256_GCM
    };
    let key = aead::UnboundKey::new(alg, &key[..key_len(cipher)])
        .map_err(|_| io::Error::other("aead key"))?;
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(&iv[..12]);
    Ok((aead::LessSafeKey::new(key), nonce))
}

pub(super) fn sealing(
    cipher: &str,
    iv: &[u8],
    key: &[u8],
    mac: &str,
    mac_key: &[u8],
) -> io::Result<Sealing> {
    if cipher.ends_with("-ctr") {
        return Ok(Sealing::Ctr(Box::new(Ctr::new(
            cipher, iv, key, mac, mac_key,
        )?)));
    }
    if cipher == "chacha20-poly1305@openssh.com" {
        let mut k = [0u8; 64];
        k.copy_from_slice(&key[..64]);
        return Ok(Sealing::ChaCha(Box::new(chacha::SealingKey::new(&k))));
    }
    let (k, iv) = gcm(cipher, iv, key)?;
    Ok(Sealing::Gcm(Box::new((k, iv))))
}

pub(super) fn opening(
    cipher: &str,
    iv: &[u8],
    key: &[u8],
    mac: &str,
    mac_key: &[u8],
) -> io::Result<Opening> {
    if cipher.ends_with("-ctr") {
        return Ok(Opening::Ctr(Box::new(Ctr::new(
            cipher, iv, key, mac, mac_key,
        )?)));
    }
    if cipher == "chacha20-poly1305@openssh.com" {
        let mut k = [0u8; 64];
        k.copy_from_slice(&key[..64]);
        return Ok(Opening::ChaCha(Box::new(chacha::OpeningKey::new(&k))));
    }
    let (k, iv) = gcm(cipher, iv, key)?;
    Ok(Opening::Gcm(Box::new((k, iv))))
}

//! The SSH transport layer (RFC 4253): binary packets, key exchange, keys.
//!
//! Implemented on `ring`: kex curve25519-sha256 (and its libssh.org name),
//! ecdh-sha2-nistp256/384, diffie-hellman-group14-sha256 and group16/18-sha512
//! (num-bigint), strict kex (`kex-strict-s-v00@openssh.com`, the
//! Terrapin counter-measure Ubuntu's 8.9p1-3ubuntu0.6 ships), host key
//! ssh-ed25519, ciphers chacha20-poly1305@openssh.com, aes128/192/256-ctr (the
//! `aes` crate, with hmac-sha2-256/512 and hmac-sha1, plain or -etm, from ring)
//! and aes128/256-gcm@openssh.com, in OpenSSH 8.9's order without what is not
//! implemented (umac, sntrup761, ecdh-sha2-nistp521, group-exchange).

use std::io::{self, Read, Write};

use ring::aead;
use ring::agreement;
use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{Ed25519KeyPair, KeyPair};

use super::cipher::{next_iv, opening, sealing, Opening, Sealing};
use super::dh;
use super::wire::{Reader, Writer};
use super::{msg, HostKey};
use crate::protocols::Conn;

/// Longest packet accepted (RFC 4253 §6.1 asks for at least 35000).
pub const MAX_PACKET: usize = 35_000;

pub const KEX_ALGS: &[&str] = &[
    "curve25519-sha256",
    "curve25519-sha256@libssh.org",
    "ecdh-sha2-nistp256",
    "ecdh-sha2-nistp384",
    "diffie-hellman-group16-sha512",
    "diffie-hellman-group18-sha512",
    "diffie-hellman-group14-sha256",
    "kex-strict-s-v00@openssh.com",
];
pub const HOST_KEY_ALGS: &[&str] = &["ssh-ed25519"];
pub const CIPHERS: &[&str] = &[
    "chacha20-poly1305@openssh.com",
    "aes128-ctr",
    "aes192-ctr",
    "aes256-ctr",
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
];
pub const MACS: &[&str] = &[
    "hmac-sha2-256-etm@openssh.com",
    "hmac-sha2-512-etm@openssh.com",
    "hmac-sha1-etm@openssh.com",
    "hmac-sha2-256",
    "hmac-sha2-512",
    "hmac-sha1",
];
pub const COMPRESSION: &[&str] = &["none"];

pub(super) fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

/// The payload of a packet body (padding length, payload, padding).
fn unpad(body: &[u8]) -> io::Result<Vec<u8>> {
    let pad = usize::from(*body.first().ok_or_else(|| bad("empty packet"))?);
    if pad < 4 || pad + 1 > body.len() {
        return Err(bad("bad padding"));
    }
    Ok(body[1..body.len() - pad].to_vec())
}

/// What the client's KEXINIT offered, for negotiation and HASSH.
#[derive(Debug, Clone, Default)]
pub struct KexInit {
    pub kex: Vec<String>,
    pub host_key: Vec<String>,
    pub enc_cs: Vec<String>,
    pub enc_sc: Vec<String>,
    pub mac_cs: Vec<String>,
    pub mac_sc: Vec<String>,
    pub cmp_cs: Vec<String>,
    pub cmp_sc: Vec<String>,
    pub follows: bool,
}

impl KexInit {
    pub fn parse(payload: &[u8]) -> Option<KexInit> {
        let mut r = Reader::new(payload);
        if r.byte()? != msg::KEXINIT {
            return None;
        }
        r.take(16)?;
        let k = KexInit {
            kex: r.name_list()?,
            host_key: r.name_list()?,
            enc_cs: r.name_list()?,
            enc_sc: r.name_list()?,
            mac_cs: r.name_list()?,
            mac_sc: r.name_list()?,
            cmp_cs: r.name_list()?,
            cmp_sc: r.name_list()?,
            follows: {
                r.name_list()?;
                r.name_list()?;
                r.bool()?
            },
        };
        Some(k)
    }

    /// The HASSH input: `kex;enc;mac;cmp` (client to server).
    pub fn hassh_input(&self) -> String {
        format!(
            "{};{};{};{}",
            self.kex.join(","),
            self.enc_cs.join(","),
            self.mac_cs.join(","),
            self.cmp_cs.join(",")
        )
    }
}

/// The first client algorithm the server also supports (RFC 4253 §7.1).
fn choose<'a>(client: &[String], server: &[&'a str]) -> Option<&'a str> {
    client
        .iter()
        .find_map(|c| server.iter().find(|s| **s == c).copied())
}

/// The packet layer over a buffered connection.
pub struct Transport<S> {
    pub conn: Conn<S>,
    rng: SystemRandom,
    seq_in: u32,
    seq_out: u32,
    opening: Opening,
    sealing: Sealing,
    pub session_id: Option<Vec<u8>>,
    pub v_c: Vec<u8>,
    pub v_s: Vec<u8>,
    strict: bool,
    /// The client's first KEXINIT, kept when negotiation fails (scanners).
    pub client_offer: Option<KexInit>,
    last_seq: u32,
}

impl<S> std::fmt::Debug for Transport<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("seq_in", &self.seq_in)
            .field("seq_out", &self.seq_out)
            .field("strict", &self.strict)
            .finish_non_exhaustive()
    }
}

impl<S: Read + Write> Transport<S> {
    pub fn new(conn: Conn<S>, v_c: Vec<u8>, v_s: Vec<u8>) -> Self {
        Transport {
            conn,
            rng: SystemRandom::new(),
            seq_in: 0,
            seq_out: 0,
            opening: Opening::None,
            sealing: Sealing::None,
            session_id: None,
            v_c,
            v_s,
            strict: false,
            client_offer: None,
            last_seq: 0,
        }
    }

    pub fn random(&self, buf: &mut [u8]) -> io::Result<()> {
        self.rng.fill(buf).map_err(|_| io::Error::other("rng"))
    }

    fn read_len(&mut self) -> io::Result<(usize, [u8; 4])> {
        let raw = self.conn.read_exact_vec(4)?;
        let enc = [raw[0], raw[1], raw[2], raw[3]];
        let clear = match &self.opening {
            Opening::ChaCha(k) => k.decrypt_packet_length(self.seq_in, enc),
            _ => enc,
        };
        let len = u32::from_be_bytes(clear) as usize;
        if !(5..=MAX_PACKET).contains(&len) {
            return Err(bad("bad packet length"));
        }
        Ok((len, enc))
    }

    /// The sequence number of the last packet read.
    pub fn last_seq_in(&self) -> u32 {
        self.last_seq
    }

    /// The next packet of a CTR + MAC direction: its body (padding length onwards).
    fn read_ctr(&mut self, seq: u32) -> io::Result<Vec<u8>> {
        let Opening::Ctr(c) = &mut self.opening else {
            return Err(bad("not a CTR cipher"));
        };
        let check = |len: usize| {
            if !(5..=MAX_PACKET).contains(&len) {
                return Err(bad("bad packet length"));
            }
            Ok(len)
        };
        if c.etm {
            let head = self.conn.read_exact_vec(4)?;
            let len = check(u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize)?;
            if len % 16 != 0 {
                return Err(bad("packet not a multiple of the block size"));
            }
            let rest = self.conn.read_exact_vec(len + c.mac_len)?;
            let mut signed = head;
            signed.extend_from_slice(&rest[..len]);
            c.verify(seq, &signed, &rest[len..])?;
            let mut body = rest[..len].to_vec();
            c.apply(&mut body);
            return Ok(body);
        }
        let mut plain = self.conn.read_exact_vec(16)?;
        c.apply(&mut plain);
        let len = check(u32::from_be_bytes([plain[0], plain[1], plain[2], plain[3]]) as usize)?;
        if (len + 4) % 16 != 0 {
            return Err(bad("packet not a multiple of the block size"));
        }
        let rest = self.conn.read_exact_vec(len + 4 - 16 + c.mac_len)?;
        let (tail, tag) = rest.split_at(len + 4 - 16);
        let mut tail = tail.to_vec();
        c.apply(&mut tail);
        plain.extend_from_slice(&tail);
        c.verify(seq, &plain, tag)?;
        plain.drain(..4);
        Ok(plain)
    }

    /// The next packet's payload.
    pub fn read_packet(&mut self) -> io::Result<Vec<u8>> {
        if matches!(self.opening, Opening::Ctr(_)) {
            let seq = self.seq_in;
            self.last_seq = seq;
            self.seq_in = self.seq_in.wrapping_add(1);
            let body = self.read_ctr(seq)?;
            return unpad(&body);
        }
        let (len, enc) = self.read_len()?;
        let seq = self.seq_in;
        self.last_seq = seq;
        self.seq_in = self.seq_in.wrapping_add(1);
        let body: Vec<u8> = match &mut self.opening {
            Opening::Ctr(_) => return Err(bad("not an AEAD")),
            Opening::None => {
                if (len + 4) % 8 != 0 {
                    return Err(bad("packet not a multiple of the block size"));
                }
                self.conn.read_exact_vec(len)?
            }
            Opening::ChaCha(k) => {
                let rest = self.conn.read_exact_vec(len + 16)?;
                let mut buf = Vec::with_capacity(len + 4);
                buf.extend_from_slice(&enc);
                buf.extend_from_slice(&rest[..len]);
                let mut tag = [0u8; 16];
                tag.copy_from_slice(&rest[len..]);
                k.open_in_place(seq, &mut buf, &tag)
                    .map_err(|_| bad("bad packet tag"))?
                    .to_vec()
            }
            Opening::Gcm(g) => {
                let (key, iv) = &mut **g;
                if len % 16 != 0 {
                    return Err(bad("packet not a multiple of the block size"));
                }
                let mut buf = self.conn.read_exact_vec(len + 16)?;
                let nonce = aead::Nonce::assume_unique_for_key(*iv);
                next_iv(iv);
                let n = key
                    .open_in_place(nonce, aead::Aad::from(enc), &mut buf)
                    .map_err(|_| bad("bad packet tag"))?
                    .len();
                buf.truncate(n);
                buf
            }
        };
        unpad(&body)
    }

    /// Sends one packet.
    pub fn send(&mut self, payload: &[u8]) -> io::Result<()> {
        // With an AEAD the length field is outside the padded block.
        let (block, len_in_block) = match &self.sealing {
            Sealing::None => (8, true),
            Sealing::Ctr(c) => (16, !c.etm),
            Sealing::ChaCha(_) => (8, false),
            Sealing::Gcm(_) => (16, false),
        };
        let base = payload.len() + 1 + if len_in_block { 4 } else { 0 };
        let mut pad = block - base % block;
        if pad < 4 {
            pad += block;
        }
        let len = payload.len() + 1 + pad;
        let mut buf = Vec::with_capacity(len + 4 + 16);
        buf.extend_from_slice(&u32::try_from(len).unwrap_or(0).to_be_bytes());
        buf.push(u8::try_from(pad).unwrap_or(4));
        buf.extend_from_slice(payload);
        let mut padding = vec![0u8; pad];
        self.random(&mut padding)?;
        buf.extend_from_slice(&padding);
        let seq = self.seq_out;
        self.seq_out = self.seq_out.wrapping_add(1);
        match &mut self.sealing {
            Sealing::None => {}
            Sealing::Ctr(c) => {
                if c.etm {
                    c.apply(&mut buf[4..]);
                    let tag = c.tag(seq, &buf);
                    buf.extend_from_slice(tag.as_ref());
                } else {
                    let tag = c.tag(seq, &buf);
                    c.apply(&mut buf);
                    buf.extend_from_slice(tag.as_ref());
                }
            }
            Sealing::ChaCha(k) => {
                let mut tag = [0u8; 16];
                k.seal_in_place(seq, &mut buf, &mut tag);
                buf.extend_from_slice(&tag);
            }
            Sealing::Gcm(g) => {
                let (key, iv) = &mut **g;
                let nonce = aead::Nonce::assume_unique_for_key(*iv);
                next_iv(iv);
                let (head, body) = buf.split_at_mut(4);
                let aad = aead::Aad::from([head[0], head[1], head[2], head[3]]);
                let tag = key
                    .seal_in_place_separate_tag(nonce, aad, body)
                    .map_err(|_| io::Error::other("seal"))?;
                buf.extend_from_slice(tag.as_ref());
            }
        }
        self.conn.send(&buf)
    }

    pub fn disconnect(&mut self, reason: u32, text: &str) -> io::Result<()> {
        let mut w = Writer::msg(msg::DISCONNECT);
        w.u32(reason).string(text.as_bytes()).string(b"");
        self.send(&w.0)
    }

    /// Our KEXINIT payload.
    fn kexinit(&self) -> io::Result<Vec<u8>> {
        let mut cookie = [0u8; 16];
        self.random(&mut cookie)?;
        let mut w = Writer::msg(msg::KEXINIT);
        w.raw(&cookie)
            .name_list(KEX_ALGS)
            .name_list(HOST_KEY_ALGS)
            .name_list(CIPHERS)
            .name_list(CIPHERS)
            .name_list(MACS)
            .name_list(MACS)
            .name_list(COMPRESSION)
            .name_list(COMPRESSION)
            .name_list(&[])
            .name_list(&[])
            .bool(false)
            .u32(0);
        Ok(w.into_vec())
    }

    /// Runs one key exchange. `client_init` is the client's KEXINIT when it
    /// already arrived (a re-key); otherwise both are exchanged here. Returns
    /// the client's offer.
    pub fn kex(&mut self, host: &HostKey, client_init: Option<Vec<u8>>) -> io::Result<KexInit> {
        let first = self.session_id.is_none();
        let i_s = self.kexinit()?;
        self.send(&i_s)?;
        let i_c = match client_init {
            Some(p) => p,
            None => loop {
                let p = self.read_packet()?;
                match p.first() {
                    Some(&msg::KEXINIT) => break p,
                    // Strict kex: nothing else may precede the first KEXINIT.
                    Some(&(msg::IGNORE | msg::DEBUG)) if !first => {}
                    _ => return Err(bad("expected KEXINIT")),
                }
            },
        };
        let offer = KexInit::parse(&i_c).ok_or_else(|| bad("bad KEXINIT"))?;
        if first {
            self.client_offer = Some(offer.clone());
        }
        if first
            && offer
                .kex
                .iter()
                .any(|k| k == "kex-strict-c-v00@openssh.com")
        {
            self.strict = true;
        }
        let no = |what: &str| bad(&format!("no matching {what}"));
        let kex_alg = choose(&offer.kex, &KEX_ALGS[..KEX_ALGS.len() - 1])
            .ok_or_else(|| no("key exchange"))?;
        choose(&offer.host_key, HOST_KEY_ALGS).ok_or_else(|| no("host key type"))?;
        let enc_cs = choose(&offer.enc_cs, CIPHERS).ok_or_else(|| no("cipher"))?;
        let enc_sc = choose(&offer.enc_sc, CIPHERS).ok_or_else(|| no("cipher"))?;
        // With an AEAD cipher no MAC is negotiated.
        let mac = |cipher: &str, offered: &[String]| -> io::Result<&'static str> {
            if !cipher.ends_with("-ctr") {
                return Ok("");
            }
            choose(offered, MACS).ok_or_else(|| no("MAC"))
        };
        let mac_cs = mac(enc_cs, &offer.mac_cs)?;
        let mac_sc = mac(enc_sc, &offer.mac_sc)?;
        choose(&offer.cmp_cs, COMPRESSION).ok_or_else(|| no("compression"))?;
        choose(&offer.cmp_sc, COMPRESSION).ok_or_else(|| no("compression"))?;
        // A wrongly guessed first kex packet is ignored (RFC 4253 §7).
        let guessed_right = offer.kex.first().map(String::as_str) == Some(kex_alg)
            && offer.host_key.first().map(String::as_str) == Some("ssh-ed25519");
        let mut init = self.read_packet()?;
        if offer.follows && !guessed_right {
            init = self.read_packet()?;
        }
        let mut r = Reader::new(&init);
        if r.byte() != Some(msg::KEX_ECDH_INIT) {
            return Err(bad("expected KEX_ECDH_INIT"));
        }
        let q_c = r.string().ok_or_else(|| bad("bad KEX_ECDH_INIT"))?.to_vec();
        // The two public values as they go into the exchange hash and the reply: strings for
        // ECDH (RFC 5656), mpints for finite-field DH (RFC 4253 §8).
        let (c_enc, s_enc, secret, hash) = if let Some((p, hash)) = dh::group(kex_alg) {
            let mut y = [0u8; 64];
            self.random(&mut y)?;
            let (f, k) = dh::server(&p, &q_c, &y).ok_or_else(|| bad("bad client DH value"))?;
            let mut c = Writer::new();
            c.mpint(&q_c);
            let mut s = Writer::new();
            s.mpint(&f);
            (c.into_vec(), s.into_vec(), k, hash)
        } else {
            let (alg, hash): (&'static agreement::Algorithm, &'static digest::Algorithm) =
                match kex_alg {
                    "ecdh-sha2-nistp256" => (&agreement::ECDH_P256, &digest::SHA256),
                    "ecdh-sha2-nistp384" => (&agreement::ECDH_P384, &digest::SHA384),
                    _ => (&agreement::X25519, &digest::SHA256),
                };
            let eph = agreement::EphemeralPrivateKey::generate(alg, &self.rng)
                .map_err(|_| io::Error::other("kex key"))?;
            let q_s = eph
                .compute_public_key()
                .map_err(|_| io::Error::other("kex key"))?
                .as_ref()
                .to_vec();
            let peer = agreement::UnparsedPublicKey::new(alg, &q_c);
            let secret = agreement::agree_ephemeral(eph, &peer, |k| k.to_vec())
                .map_err(|_| bad("bad client kex key"))?;
            let mut c = Writer::new();
            c.string(&q_c);
            let mut s = Writer::new();
            s.string(&q_s);
            (c.into_vec(), s.into_vec(), secret, hash)
        };
        let mut k = Writer::new();
        k.mpint(&secret);
        let k = k.into_vec();
        let k_s = host.blob();
        let mut h = Writer::new();
        h.string(&self.v_c)
            .string(&self.v_s)
            .string(&i_c)
            .string(&i_s)
            .string(&k_s)
            .raw(&c_enc)
            .raw(&s_enc)
            .raw(&k);
        let h = digest::digest(hash, &h.0).as_ref().to_vec();
        let session_id = self.session_id.get_or_insert_with(|| h.clone()).clone();
        let mut sig = Writer::new();
        sig.string(b"ssh-ed25519")
            .string(host.pair.sign(&h).as_ref());
        let mut reply = Writer::msg(msg::KEX_ECDH_REPLY);
        reply.string(&k_s).raw(&s_enc).string(&sig.0);
        self.send(&reply.0)?;
        self.send(&[msg::NEWKEYS])?;
        if self.strict {
            self.seq_out = 0;
        }
        let derive = |letter: u8, n: usize| -> Vec<u8> {
            let mut out = {
                let mut d = digest::Context::new(hash);
                d.update(&k);
                d.update(&h);
                d.update(&[letter]);
                d.update(&session_id);
                d.finish().as_ref().to_vec()
            };
            while out.len() < n {
                let mut d = digest::Context::new(hash);
                d.update(&k);
                d.update(&h);
                d.update(&out);
                out.extend_from_slice(d.finish().as_ref());
            }
            out.truncate(n);
            out
        };
        self.sealing = sealing(
            enc_sc,
            &derive(b'B', 16),
            &derive(b'D', 64),
            mac_sc,
            &derive(b'F', 64),
        )?;
        let opening = opening(
            enc_cs,
            &derive(b'A', 16),
            &derive(b'C', 64),
            mac_cs,
            &derive(b'E', 64),
        )?;
        loop {
            let p = self.read_packet()?;
            match p.first() {
                Some(&msg::NEWKEYS) => break,
                Some(&(msg::IGNORE | msg::DEBUG)) if !self.strict => {}
                _ => return Err(bad("expected NEWKEYS")),
            }
        }
        self.opening = opening;
        if self.strict {
            self.seq_in = 0;
        }
        Ok(offer)
    }
}

/// The ed25519 public key blob of `pair` (type string and 32 bytes).
pub fn ed25519_blob(pair: &Ed25519KeyPair) -> Vec<u8> {
    let mut w = Writer::new();
    w.string(b"ssh-ed25519").string(pair.public_key().as_ref());
    w.into_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocols::testing::Mock;
    use proptest::prelude::*;

    #[test]
    fn choose_follows_the_client_order() {
        let c = vec!["b".to_owned(), "a".to_owned()];
        assert_eq!(choose(&c, &["a", "b"]), Some("b"));
        assert_eq!(choose(&c, &["x"]), None);
    }

    #[test]
    fn oversize_packets_are_refused() {
        let mut m = Mock::new(&[0, 1, 0, 0, 4, 0, 0, 0]);
        let mut t = Transport::new(Conn::new(&mut m), vec![], vec![]);
        assert!(t.read_packet().is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_packets_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let mut t = Transport::new(Conn::new(Mock::new(&data)), vec![], vec![]);
            for _ in 0..8 {
                if t.read_packet().is_err() {
                    break;
                }
            }
            let _ = KexInit::parse(&data);
            let mut with_kind = vec![msg::KEXINIT];
            with_kind.extend_from_slice(&data);
            let _ = KexInit::parse(&with_kind);
        }
    }
}

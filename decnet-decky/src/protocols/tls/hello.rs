//! A TLS ClientHello parser and its JA3 and JA4 fingerprints. Pure: bytes of the first TLS
//! record in, a [`ClientHello`] out; malformed input is `None`, never a panic.

use md5::{Digest as _, Md5};
use sha2::Sha256;

/// What a fingerprint needs from a ClientHello.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientHello {
    /// `legacy_version` of the hello (0x0303 for TLS 1.2 and 1.3 clients).
    pub version: u16,
    pub ciphers: Vec<u16>,
    /// Extension types in the order sent.
    pub extensions: Vec<u16>,
    /// supported_groups (10).
    pub groups: Vec<u16>,
    /// ec_point_formats (11).
    pub point_formats: Vec<u8>,
    /// signature_algorithms (13), in the order sent.
    pub sig_algs: Vec<u16>,
    /// supported_versions (43).
    pub versions: Vec<u16>,
    pub alpn: Vec<String>,
    pub sni: Option<String>,
}

/// GREASE values (RFC 8701) are left out of every fingerprint.
pub fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && v >> 8 == v & 0xff
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8]) -> Self {
        Reader { data, pos: 0 }
    }
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.data.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    fn u24(&mut self) -> Option<usize> {
        self.take(3)
            .map(|b| (usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2]))
    }
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(usize::from(n))
    }
    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
    fn rest(&mut self) -> &'a [u8] {
        let s = &self.data[self.pos.min(self.data.len())..];
        self.pos = self.data.len();
        s
    }
}

fn u16s(b: &[u8]) -> Vec<u16> {
    b.chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect()
}

/// Most bytes of a first record worth reading (a record is at most 2^14 + 5 bytes).
pub const MAX_RECORD: usize = 16384 + 5;

/// The length of the TLS record that starts `head` (5 header bytes), if it is a handshake
/// record.
pub fn record_len(head: &[u8]) -> Option<usize> {
    if head.len() < 5 || head[0] != 0x16 || head[1] != 3 {
        return None;
    }
    Some(usize::from(u16::from_be_bytes([head[3], head[4]])))
}

/// Parses the ClientHello in the first TLS record `record` (header included). A hello cut off
/// by the record's end is parsed as far as its fields are complete.
pub fn parse(record: &[u8]) -> Option<ClientHello> {
    let len = record_len(record)?;
    let body = record.get(5..)?;
    let body = &body[..len.min(body.len())];
    let mut r = Reader::new(body);
    if r.u8()? != 1 {
        return None;
    }
    let hs_len = r.u24()?;
    let mut r = Reader::new(&body[4..(4 + hs_len).min(body.len())]);
    let mut hello = ClientHello {
        version: r.u16()?,
        ..ClientHello::default()
    };
    r.take(32)?; // random
    r.vec8()?; // session id
    hello.ciphers = u16s(r.vec16()?);
    r.vec8()?; // compression methods
    let exts = match r.vec16() {
        Some(e) => e,
        None => r.rest(),
    };
    let mut e = Reader::new(exts);
    while let (Some(ty), Some(data)) = (e.u16(), e.vec16()) {
        hello.extensions.push(ty);
        let mut d = Reader::new(data);
        match ty {
            0 => {
                // server_name list: type 0 = host_name
                if let Some(list) = d.vec16() {
                    let mut l = Reader::new(list);
                    if let (Some(0), Some(name)) = (l.u8(), l.vec16()) {
                        hello.sni = Some(String::from_utf8_lossy(name).chars().take(255).collect());
                    }
                }
            }
            10 => hello.groups = d.vec16().map(u16s).unwrap_or_default(),
            11 => hello.point_formats = d.vec8().map(<[u8]>::to_vec).unwrap_or_default(),
            13 => hello.sig_algs = d.vec16().map(u16s).unwrap_or_default(),
            16 => {
                if let Some(list) = d.vec16() {
                    let mut l = Reader::new(list);
                    while let Some(p) = l.vec8() {
                        if hello.alpn.len() < 16 {
                            hello.alpn.push(String::from_utf8_lossy(p).into_owned());
                        }
                    }
                }
            }
            43 => hello.versions = d.vec8().map(u16s).unwrap_or_default(),
            _ => {}
        }
        if hello.extensions.len() >= 128 {
            break;
        }
    }
    Some(hello)
}

fn join<T: ToString>(v: impl Iterator<Item = T>, sep: &str) -> String {
    v.map(|x| x.to_string()).collect::<Vec<_>>().join(sep)
}

fn hex(bytes: &[u8]) -> String {
    crate::util::hex(bytes)
}

impl ClientHello {
    /// The JA3 string: version,ciphers,extensions,groups,point formats (GREASE left out).
    pub fn ja3_string(&self) -> String {
        let ng = |v: &[u16]| join(v.iter().filter(|x| !is_grease(**x)), "-");
        format!(
            "{},{},{},{},{}",
            self.version,
            ng(&self.ciphers),
            ng(&self.extensions),
            ng(&self.groups),
            join(self.point_formats.iter(), "-")
        )
    }

    /// The JA3 fingerprint: MD5 of [`Self::ja3_string`], in hex.
    pub fn ja3(&self) -> String {
        hex(&Md5::digest(self.ja3_string().as_bytes()))
    }

    /// The JA4 fingerprint (FoxIO's JA4 TLS client fingerprint, over TCP).
    pub fn ja4(&self) -> String {
        let max_version = self
            .versions
            .iter()
            .copied()
            .filter(|v| !is_grease(*v))
            .max()
            .unwrap_or(self.version);
        let version = match max_version {
            0x0304 => "13",
            0x0303 => "12",
            0x0302 => "11",
            0x0301 => "10",
            0x0300 => "s3",
            0xfeff => "d1",
            0xfefd => "d2",
            0xfefc => "d3",
            _ => "00",
        };
        let sni = if self.extensions.contains(&0) {
            'd'
        } else {
            'i'
        };
        let ciphers: Vec<u16> = self
            .ciphers
            .iter()
            .copied()
            .filter(|c| !is_grease(*c))
            .collect();
        let exts: Vec<u16> = self
            .extensions
            .iter()
            .copied()
            .filter(|e| !is_grease(*e))
            .collect();
        let alpn = match self.alpn.first().map(String::as_bytes) {
            Some(a) if !a.is_empty() => {
                let (f, l) = (a[0], a[a.len() - 1]);
                if f.is_ascii_alphanumeric() && l.is_ascii_alphanumeric() {
                    format!("{}{}", f as char, l as char)
                } else {
                    let h = hex(&[f, l]);
                    format!("{}{}", &h[..1], &h[3..])
                }
            }
            _ => "00".to_owned(),
        };
        let a = format!(
            "t{version}{sni}{:02}{:02}{alpn}",
            ciphers.len().min(99),
            exts.len().min(99)
        );
        let hash12 = |s: &str| {
            if s.is_empty() {
                "000000000000".to_owned()
            } else {
                hex(&Sha256::digest(s.as_bytes()))[..12].to_owned()
            }
        };
        let mut sorted_c = ciphers.clone();
        sorted_c.sort_unstable();
        let b = hash12(&join(sorted_c.iter().map(|c| format!("{c:04x}")), ","));
        let mut sorted_e: Vec<u16> = exts.into_iter().filter(|e| *e != 0 && *e != 16).collect();
        sorted_e.sort_unstable();
        let mut c_src = join(sorted_e.iter().map(|e| format!("{e:04x}")), ",");
        let sigs: Vec<String> = self
            .sig_algs
            .iter()
            .filter(|s| !is_grease(**s))
            .map(|s| format!("{s:04x}"))
            .collect();
        if !sigs.is_empty() && !c_src.is_empty() {
            c_src.push('_');
            c_src.push_str(&sigs.join(","));
        }
        let c = hash12(&c_src);
        format!("{a}_{b}_{c}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A ClientHello built field by field.
    fn hello_bytes() -> Vec<u8> {
        let mut exts = Vec::new();
        let mut ext = |ty: u16, data: &[u8]| {
            exts.extend_from_slice(&ty.to_be_bytes());
            exts.extend_from_slice(&(data.len() as u16).to_be_bytes());
            exts.extend_from_slice(data);
        };
        ext(0x0a0a, &[]); // GREASE
        ext(0, b"\x00\x0c\x00\x00\x09localhost");
        ext(10, b"\x00\x06\x0a\x0a\x00\x1d\x00\x17");
        ext(11, b"\x01\x00");
        ext(13, b"\x00\x04\x04\x03\x08\x04");
        ext(16, b"\x00\x0c\x02h2\x08http/1.1");
        ext(43, b"\x04\x03\x04\x03\x03");
        let mut body = vec![0x03, 0x03];
        body.extend_from_slice(&[7; 32]);
        body.push(0);
        body.extend_from_slice(b"\x00\x06\x1a\x1a\x13\x01\xc0\x2f");
        body.extend_from_slice(b"\x01\x00");
        body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
        body.extend_from_slice(&exts);
        let mut hs = vec![1, 0, 0, 0];
        hs[1..4].copy_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        hs.extend_from_slice(&body);
        let mut rec = vec![0x16, 3, 1];
        rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
        rec.extend_from_slice(&hs);
        rec
    }

    #[test]
    fn parses_and_fingerprints() {
        let h = parse(&hello_bytes()).expect("hello");
        assert_eq!(h.version, 0x0303);
        assert_eq!(h.ciphers, [0x1a1a, 0x1301, 0xc02f]);
        assert_eq!(h.extensions, [0x0a0a, 0, 10, 11, 13, 16, 43]);
        assert_eq!(h.sni.as_deref(), Some("localhost"));
        assert_eq!(h.alpn, ["h2", "http/1.1"]);
        assert_eq!(h.ja3_string(), "771,4865-49199,0-10-11-13-16-43,29-23,0");
        assert_eq!(
            h.ja3(),
            hex(&Md5::digest(b"771,4865-49199,0-10-11-13-16-43,29-23,0"))
        );
        let ja4 = h.ja4();
        assert!(ja4.starts_with("t13d0206h2_"), "{ja4}");
        let b = &hex(&Sha256::digest(b"1301,c02f"))[..12];
        let c = &hex(&Sha256::digest(b"000a,000b,000d,002b_0403,0804"))[..12];
        assert_eq!(ja4, format!("t13d0206h2_{b}_{c}"));
    }

    #[test]
    fn ja3_of_a_known_hello_matches_the_reference() {
        // The JA3 README's worked example: this string hashes to this digest.
        let s = "769,47-53-5-10-49161-49162-49171-49172-50-56-19-4,0-10-11,23-24-25,0";
        assert_eq!(
            hex(&Md5::digest(s.as_bytes())),
            "ada70206e40642a3e4461f35503241d5"
        );
    }

    #[test]
    fn grease_and_bad_input() {
        assert!(is_grease(0x0a0a) && is_grease(0xfafa) && !is_grease(0x0a1a));
        assert!(parse(b"").is_none());
        assert!(parse(b"GET / HTTP/1.1\r\n").is_none());
        let mut cut = hello_bytes();
        cut.truncate(40);
        assert!(parse(&cut).is_none());
        // Cut inside the extensions: the complete ones are kept.
        let full = hello_bytes();
        let h = parse(&full[..full.len() - 10]).expect("partial");
        assert!(h.extensions.starts_with(&[0x0a0a, 0]));
    }

    proptest! {
        #[test]
        fn arbitrary_records_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..600)) {
            let mut rec = vec![0x16, 3, 1, (tail.len() >> 8) as u8, tail.len() as u8];
            rec.extend_from_slice(&tail);
            if let Some(h) = parse(&rec) {
                let _ = (h.ja3(), h.ja4());
            }
        }

        #[test]
        fn mutated_hellos_never_panic(i in 0usize..200, b in any::<u8>()) {
            let mut rec = hello_bytes();
            let n = rec.len();
            rec[i % n] = b;
            if let Some(h) = parse(&rec) {
                let _ = (h.ja3(), h.ja4());
            }
        }
    }
}

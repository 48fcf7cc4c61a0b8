//! A bounded BER reader and the DER-ish writer LDAP needs (X.690): single-byte tags, definite
//! lengths of at most 4 bytes, never more than the bytes at hand. Nothing recurses, so depth
//! is the caller's loop and hostile nesting cannot exhaust the stack.

use std::io::{self, Read, Write};

use super::Conn;

/// One element: its tag byte and contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    pub tag: u8,
    pub value: &'a [u8],
}

/// Why bytes are not a BER element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BerError {
    /// More bytes are needed (the header or the contents are cut short).
    Short,
    /// Indefinite length, a multi-byte tag or a length field over 4 bytes.
    Unsupported,
}

/// The header of the element at the start of `buf`: (tag, header length, contents length).
pub fn header(buf: &[u8]) -> Result<(u8, usize, usize), BerError> {
    let tag = *buf.first().ok_or(BerError::Short)?;
    if tag & 0x1f == 0x1f {
        return Err(BerError::Unsupported);
    }
    let first = *buf.get(1).ok_or(BerError::Short)?;
    if first < 0x80 {
        return Ok((tag, 2, usize::from(first)));
    }
    let n = usize::from(first & 0x7f);
    if n == 0 || n > 4 {
        return Err(BerError::Unsupported);
    }
    let bytes = buf.get(2..2 + n).ok_or(BerError::Short)?;
    let len = bytes
        .iter()
        .fold(0usize, |acc, &b| acc << 8 | usize::from(b));
    Ok((tag, 2 + n, len))
}

/// The element at the start of `buf` and what follows it.
pub fn read(buf: &[u8]) -> Result<(Tlv<'_>, &[u8]), BerError> {
    let (tag, head, len) = header(buf)?;
    let end = head.checked_add(len).ok_or(BerError::Unsupported)?;
    let value = buf.get(head..end).ok_or(BerError::Short)?;
    Ok((Tlv { tag, value }, &buf[end..]))
}

/// The element at the start of `buf` if it has `tag`.
pub fn expect(buf: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (t, rest) = read(buf).ok()?;
    (t.tag == tag).then_some((t.value, rest))
}

/// A non-negative INTEGER or ENUMERATED of up to 8 bytes.
pub fn uint(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 8 {
        return None;
    }
    Some(value.iter().fold(0u64, |acc, &b| acc << 8 | u64::from(b)))
}

/// Every element of a constructed value, at most `max` of them.
pub fn children(mut value: &[u8], max: usize) -> Vec<Tlv<'_>> {
    let mut out = Vec::new();
    while !value.is_empty() && out.len() < max {
        match read(value) {
            Ok((t, rest)) => {
                out.push(t);
                value = rest;
            }
            Err(_) => break,
        }
    }
    out
}

/// Encodes an element. Constructed elements get the 4-byte long-form length Active Directory
/// writes (`0x84`), primitive ones the shortest form.
pub fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = value.len();
    if tag & 0x20 != 0 {
        out.push(0x84);
        out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes());
    } else if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes = u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (4 - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(value);
    out
}

/// An INTEGER (or, with tag 0x0a, ENUMERATED) in its shortest two's-complement form.
pub fn int(tag: u8, v: u64) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let mut skip = bytes.iter().take_while(|&&b| b == 0).count().min(7);
    if bytes[skip] & 0x80 != 0 {
        skip -= 1;
    }
    tlv(tag, &bytes[skip..])
}

/// Reads one whole SEQUENCE element (an LDAPMessage, a CredSSP TSRequest) from `conn`, its
/// contents at most `max` bytes; `None` at a clean end of stream.
pub fn read_sequence<S: Read + Write>(
    conn: &mut Conn<S>,
    max: usize,
) -> io::Result<Option<Vec<u8>>> {
    let mut head = match conn.read_exact_vec(2) {
        Ok(h) => h,
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    };
    let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_owned());
    if head[0] != 0x30 {
        return Err(bad("not a ber sequence"));
    }
    if head[1] & 0x80 != 0 {
        let n = usize::from(head[1] & 0x7f);
        if n == 0 || n > 4 {
            return Err(bad("unsupported ber length"));
        }
        head.extend_from_slice(&conn.read_exact_vec(n)?);
    }
    let (_, _, len) = header(&head).map_err(|_| bad("bad ber header"))?;
    if len > max {
        return Err(bad("ber message too large"));
    }
    head.extend_from_slice(&conn.read_exact_vec(len)?);
    Ok(Some(head))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn lengths_short_long_and_refused() {
        assert_eq!(header(&[0x30, 0x05]), Ok((0x30, 2, 5)));
        assert_eq!(header(&[0x30, 0x82, 0x01, 0x00]), Ok((0x30, 4, 256)));
        assert_eq!(header(&[0x30, 0x84, 0, 0, 0, 9]), Ok((0x30, 6, 9)));
        assert_eq!(header(&[0x30, 0x80]), Err(BerError::Unsupported));
        assert_eq!(
            header(&[0x30, 0x85, 1, 1, 1, 1, 1]),
            Err(BerError::Unsupported)
        );
        assert_eq!(header(&[0x1f, 0x01]), Err(BerError::Unsupported));
        assert_eq!(header(&[0x30]), Err(BerError::Short));
        assert_eq!(read(&[0x04, 0x03, b'a']), Err(BerError::Short));
        let (t, rest) = read(&[0x04, 0x01, b'a', 0xff]).expect("read");
        assert_eq!((t.tag, t.value, rest), (0x04, &b"a"[..], &[0xff][..]));
    }

    #[test]
    fn writer_round_trips() {
        for n in [0usize, 1, 127, 128, 255, 256, 70_000] {
            let v = vec![7u8; n];
            for tag in [0x04, 0x30] {
                let enc = tlv(tag, &v);
                let (t, rest) = read(&enc).expect("read back");
                assert_eq!((t.tag, t.value.len(), rest.len()), (tag, n, 0));
            }
        }
        assert_eq!(tlv(0x30, &[])[..6], [0x30, 0x84, 0, 0, 0, 0]);
        assert_eq!(int(0x02, 0), [0x02, 0x01, 0x00]);
        assert_eq!(int(0x02, 127), [0x02, 0x01, 0x7f]);
        assert_eq!(int(0x02, 128), [0x02, 0x02, 0x00, 0x80]);
        assert_eq!(int(0x0a, 49), [0x0a, 0x01, 49]);
        assert_eq!(uint(&[0x01, 0x00]), Some(256));
        assert_eq!(uint(&[]), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = read(&data);
            let kids = children(&data, 16);
            prop_assert!(kids.len() <= 16);
            for k in kids {
                let _ = children(k.value, 16);
                let _ = uint(k.value);
            }
        }
    }
}

//! A bounded BSON encoder/decoder: the element types MongoDB's handshake, auth and common
//! commands carry. Decoding never panics; depth, element count and lengths are checked against
//! the input before anything is allocated.

use std::fmt;

use serde_json::{Map, Value};

use crate::util::hex;

/// Nesting beyond this is refused.
const MAX_DEPTH: usize = 32;
/// Elements per document beyond this are refused.
const MAX_ELEMENTS: usize = 4096;

/// One BSON value.
#[derive(Debug, Clone, PartialEq)]
pub enum Bson {
    Double(f64),
    Str(String),
    Doc(Doc),
    Array(Vec<Bson>),
    Binary(u8, Vec<u8>),
    ObjectId([u8; 12]),
    Bool(bool),
    DateTime(i64),
    Null,
    Int32(i32),
    Timestamp(u64),
    Int64(i64),
    Decimal128([u8; 16]),
    MinKey,
    MaxKey,
}

/// A document: keys in order.
pub type Doc = Vec<(String, Bson)>;

/// Malformed BSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BsonError(pub &'static str);

impl fmt::Display for BsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bson: {}", self.0)
    }
}

impl std::error::Error for BsonError {}

impl Bson {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Bson::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_doc(&self) -> Option<&Doc> {
        match self {
            Bson::Doc(d) => Some(d),
            _ => None,
        }
    }

    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Bson::Binary(_, b) => Some(b),
            Bson::Str(s) => Some(s.as_bytes()),
            _ => None,
        }
    }

    /// A number of any BSON numeric type, as i64.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Bson::Int32(v) => Some(i64::from(*v)),
            Bson::Int64(v) => Some(*v),
            Bson::Double(v) if v.is_finite() => Some(*v as i64),
            _ => None,
        }
    }

    /// A bounded JSON rendering for event details (strings ≤ 256 characters, 32 elements per
    /// level, 4 levels; binaries as hex of at most 64 bytes).
    pub fn to_json(&self) -> Value {
        self.json_at(0)
    }

    fn json_at(&self, depth: usize) -> Value {
        if depth >= 4 {
            return Value::from("…");
        }
        match self {
            Bson::Double(v) => serde_json::Number::from_f64(*v).map_or(Value::Null, Value::Number),
            Bson::Str(s) => Value::from(s.chars().take(256).collect::<String>()),
            Bson::Doc(d) => doc_json_at(d, depth + 1),
            Bson::Array(a) => {
                Value::Array(a.iter().take(32).map(|v| v.json_at(depth + 1)).collect())
            }
            Bson::Binary(_, b) => Value::from(hex(&b[..b.len().min(64)])),
            Bson::ObjectId(o) => Value::from(hex(o)),
            Bson::Bool(b) => Value::from(*b),
            Bson::DateTime(v) | Bson::Int64(v) => Value::from(*v),
            Bson::Int32(v) => Value::from(*v),
            Bson::Timestamp(v) => Value::from(*v),
            Bson::Null => Value::Null,
            Bson::Decimal128(d) => Value::from(hex(d)),
            Bson::MinKey => Value::from("$minKey"),
            Bson::MaxKey => Value::from("$maxKey"),
        }
    }
}

/// [`Bson::to_json`] of a document.
pub fn doc_json(d: &Doc) -> Value {
    doc_json_at(d, 0)
}

fn doc_json_at(d: &Doc, depth: usize) -> Value {
    let m: Map<String, Value> = d
        .iter()
        .take(32)
        .map(|(k, v)| (k.chars().take(64).collect(), v.json_at(depth)))
        .collect();
    Value::Object(m)
}

/// The value of `key` in `doc`.
pub fn get<'a>(doc: &'a Doc, key: &str) -> Option<&'a Bson> {
    doc.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// The value of `key`, ASCII case ignored (`isMaster` / `ismaster`).
pub fn get_ci<'a>(doc: &'a Doc, key: &str) -> Option<&'a Bson> {
    doc.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

pub fn encode(doc: &Doc) -> Vec<u8> {
    let mut out = vec![0; 4];
    for (k, v) in doc {
        encode_element(&mut out, k, v);
    }
    out.push(0);
    let len = out.len() as i32;
    out[..4].copy_from_slice(&len.to_le_bytes());
    out
}

fn cstring(out: &mut Vec<u8>, s: &str) {
    out.extend(s.bytes().filter(|&b| b != 0));
    out.push(0);
}

fn encode_element(out: &mut Vec<u8>, key: &str, v: &Bson) {
    let tag = match v {
        Bson::Double(_) => 0x01,
        Bson::Str(_) => 0x02,
        Bson::Doc(_) => 0x03,
        Bson::Array(_) => 0x04,
        Bson::Binary(..) => 0x05,
        Bson::ObjectId(_) => 0x07,
        Bson::Bool(_) => 0x08,
        Bson::DateTime(_) => 0x09,
        Bson::Null => 0x0a,
        Bson::Int32(_) => 0x10,
        Bson::Timestamp(_) => 0x11,
        Bson::Int64(_) => 0x12,
        Bson::Decimal128(_) => 0x13,
        Bson::MinKey => 0xff,
        Bson::MaxKey => 0x7f,
    };
    out.push(tag);
    cstring(out, key);
    match v {
        Bson::Double(d) => out.extend_from_slice(&d.to_le_bytes()),
        Bson::Str(s) => {
            out.extend_from_slice(&(s.len() as i32 + 1).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
            out.push(0);
        }
        Bson::Doc(d) => out.extend(encode(d)),
        Bson::Array(a) => {
            let d: Doc = a
                .iter()
                .enumerate()
                .map(|(i, v)| (i.to_string(), v.clone()))
                .collect();
            out.extend(encode(&d));
        }
        Bson::Binary(sub, b) => {
            out.extend_from_slice(&(b.len() as i32).to_le_bytes());
            out.push(*sub);
            out.extend_from_slice(b);
        }
        Bson::ObjectId(o) => out.extend_from_slice(o),
        Bson::Bool(b) => out.push(u8::from(*b)),
        Bson::DateTime(v) | Bson::Int64(v) => out.extend_from_slice(&v.to_le_bytes()),
        Bson::Null | Bson::MinKey | Bson::MaxKey => {}
        Bson::Int32(v) => out.extend_from_slice(&v.to_le_bytes()),
        Bson::Timestamp(v) => out.extend_from_slice(&v.to_le_bytes()),
        Bson::Decimal128(d) => out.extend_from_slice(d),
    }
}

/// Decodes the document at the start of `data`; returns it and the bytes it took.
pub fn decode(data: &[u8]) -> Result<(Doc, usize), BsonError> {
    decode_at(data, 0)
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], BsonError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or(BsonError("truncated"))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], BsonError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn i32(&mut self) -> Result<i32, BsonError> {
        Ok(i32::from_le_bytes(self.array()?))
    }

    fn len(&mut self) -> Result<usize, BsonError> {
        usize::try_from(self.i32()?).map_err(|_| BsonError("negative length"))
    }

    fn cstring(&mut self) -> Result<String, BsonError> {
        let rest = &self.data[self.pos..];
        let n = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(BsonError("unterminated key"))?;
        let s = String::from_utf8_lossy(&rest[..n]).into_owned();
        self.pos += n + 1;
        Ok(s)
    }
}

fn decode_at(data: &[u8], depth: usize) -> Result<(Doc, usize), BsonError> {
    if depth > MAX_DEPTH {
        return Err(BsonError("nested too deep"));
    }
    let mut r = Reader { data, pos: 0 };
    let len = r.len()?;
    if len < 5 || len > data.len() {
        return Err(BsonError("bad document length"));
    }
    let body = &data[..len];
    let mut r = Reader { data: body, pos: 4 };
    let mut doc = Vec::new();
    loop {
        let tag = r.take(1)?[0];
        if tag == 0 {
            break;
        }
        if doc.len() >= MAX_ELEMENTS {
            return Err(BsonError("too many elements"));
        }
        let key = r.cstring()?;
        let v = match tag {
            0x01 => Bson::Double(f64::from_le_bytes(r.array()?)),
            0x02 | 0x0d | 0x0e => {
                let n = r.len()?;
                if n == 0 {
                    return Err(BsonError("bad string length"));
                }
                let s = r.take(n)?;
                Bson::Str(String::from_utf8_lossy(&s[..n - 1]).into_owned())
            }
            0x03 | 0x04 => {
                let (d, used) = decode_at(&body[r.pos..], depth + 1)?;
                r.take(used)?;
                if tag == 0x03 {
                    Bson::Doc(d)
                } else {
                    Bson::Array(d.into_iter().map(|(_, v)| v).collect())
                }
            }
            0x05 => {
                let n = r.len()?;
                let sub = r.take(1)?[0];
                Bson::Binary(sub, r.take(n)?.to_vec())
            }
            0x06 | 0x0a => Bson::Null,
            0x07 => Bson::ObjectId(r.array()?),
            0x08 => Bson::Bool(r.take(1)?[0] != 0),
            0x09 => Bson::DateTime(i64::from_le_bytes(r.array()?)),
            0x0b => {
                let pattern = r.cstring()?;
                let _options = r.cstring()?;
                Bson::Str(pattern)
            }
            0x10 => Bson::Int32(r.i32()?),
            0x11 => Bson::Timestamp(u64::from_le_bytes(r.array()?)),
            0x12 => Bson::Int64(i64::from_le_bytes(r.array()?)),
            0x13 => Bson::Decimal128(r.array()?),
            0xff => Bson::MinKey,
            0x7f => Bson::MaxKey,
            _ => return Err(BsonError("unsupported element type")),
        };
        doc.push((key, v));
    }
    if r.pos != len {
        return Err(BsonError("trailing bytes in document"));
    }
    Ok((doc, len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Doc {
        vec![
            ("hello".into(), Bson::Int32(1)),
            ("d".into(), Bson::Double(1.5)),
            ("s".into(), Bson::Str("héllo".into())),
            (
                "sub".into(),
                Bson::Doc(vec![(
                    "a".into(),
                    Bson::Array(vec![Bson::Null, Bson::Bool(true)]),
                )]),
            ),
            ("bin".into(), Bson::Binary(0, b"n,,n=u,r=x".to_vec())),
            ("oid".into(), Bson::ObjectId([7; 12])),
            ("t".into(), Bson::DateTime(1_700_000_000_000)),
            ("i".into(), Bson::Int64(-5)),
            ("ts".into(), Bson::Timestamp(9)),
        ]
    }

    #[test]
    fn known_encoding() {
        // {"hello": 1} from the BSON spec's style: 0x13 bytes, int32 element.
        let d = vec![("hello".into(), Bson::Int32(1))];
        assert_eq!(encode(&d), b"\x10\0\0\0\x10hello\0\x01\0\0\0\0".to_vec());
        let s = vec![("a".into(), Bson::Str("b".into()))];
        assert_eq!(encode(&s), b"\x0e\0\0\0\x02a\0\x02\0\0\0b\0\0".to_vec());
    }

    #[test]
    fn round_trip() {
        let d = sample();
        let bytes = encode(&d);
        let (back, used) = decode(&bytes).expect("decode");
        assert_eq!(used, bytes.len());
        assert_eq!(back, d);
        assert_eq!(get(&back, "s").and_then(Bson::as_str), Some("héllo"));
        assert_eq!(get_ci(&back, "HELLO").and_then(Bson::as_i64), Some(1));
        assert_eq!(doc_json(&back)["sub"]["a"][1], true);
    }

    #[test]
    fn malformed_is_an_error() {
        assert!(decode(b"").is_err());
        assert!(decode(b"\x05\0\0\0").is_err());
        assert!(decode(b"\xff\xff\xff\x7f\0").is_err());
        assert!(decode(b"\x0c\0\0\0\x02a\0\xff\xff\xff\xff\0").is_err());
        assert!(decode(b"\x08\0\0\0\x42a\0\0").is_err());
        let mut deep = vec![("x".into(), Bson::Null)];
        for _ in 0..40 {
            deep = vec![("x".into(), Bson::Doc(deep))];
        }
        assert_eq!(decode(&encode(&deep)), Err(BsonError("nested too deep")));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&data);
        }

        #[test]
        fn mutated_documents_never_panic(
            flips in proptest::collection::vec((0usize..200, any::<u8>()), 1..6),
            cut in 0usize..200,
        ) {
            let mut bytes = encode(&sample());
            for (i, b) in flips {
                let n = bytes.len();
                bytes[i % n] = b;
            }
            bytes.truncate(cut.max(1).min(bytes.len()));
            if let Ok((d, _)) = decode(&bytes) {
                let _ = doc_json(&d);
            }
        }
    }
}

//! SSH wire encodings (RFC 4251 §5): a bounds-checked reader and a writer.
//! Every read returns `None` on short or malformed input; nothing panics.

/// Reads SSH data types from a payload.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data, pos: 0 }
    }

    pub fn rest(&self) -> &'a [u8] {
        self.data.get(self.pos..).unwrap_or_default()
    }

    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let out = self.data.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }

    pub fn byte(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    pub fn bool(&mut self) -> Option<bool> {
        self.byte().map(|b| b != 0)
    }

    pub fn u32(&mut self) -> Option<u32> {
        let b = self.take(4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn string(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    /// A string as (lossy) UTF-8 text.
    pub fn text(&mut self) -> Option<String> {
        self.string()
            .map(|s| String::from_utf8_lossy(s).into_owned())
    }

    /// A comma-separated name-list; an empty string is an empty list.
    pub fn name_list(&mut self) -> Option<Vec<String>> {
        let s = self.string()?;
        if s.is_empty() {
            return Some(Vec::new());
        }
        Some(
            s.split(|&b| b == b',')
                .map(|n| String::from_utf8_lossy(n).into_owned())
                .collect(),
        )
    }
}

/// Builds an SSH payload.
#[derive(Debug, Clone, Default)]
pub struct Writer(pub Vec<u8>);

impl Writer {
    pub fn new() -> Self {
        Writer(Vec::new())
    }

    pub fn msg(kind: u8) -> Self {
        Writer(vec![kind])
    }

    pub fn byte(&mut self, b: u8) -> &mut Self {
        self.0.push(b);
        self
    }

    pub fn bool(&mut self, b: bool) -> &mut Self {
        self.byte(u8::from(b))
    }

    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn raw(&mut self, data: &[u8]) -> &mut Self {
        self.0.extend_from_slice(data);
        self
    }

    pub fn string(&mut self, data: &[u8]) -> &mut Self {
        let n = u32::try_from(data.len()).unwrap_or(u32::MAX);
        self.u32(n);
        self.0.extend_from_slice(&data[..n as usize]);
        self
    }

    pub fn name_list(&mut self, names: &[&str]) -> &mut Self {
        self.string(names.join(",").as_bytes())
    }

    /// An unsigned big-endian integer as an mpint (leading zeros dropped, a
    /// zero byte added when the top bit is set).
    pub fn mpint(&mut self, be: &[u8]) -> &mut Self {
        let start = be.iter().position(|&b| b != 0).unwrap_or(be.len());
        let digits = &be[start..];
        if digits.first().is_some_and(|&b| b & 0x80 != 0) {
            let n = u32::try_from(digits.len() + 1).unwrap_or(u32::MAX);
            self.u32(n).byte(0).raw(digits)
        } else {
            self.string(digits)
        }
    }

    pub fn into_vec(self) -> Vec<u8> {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trips() {
        let mut w = Writer::msg(20);
        w.u32(7)
            .string(b"abc")
            .name_list(&["a", "b"])
            .bool(true)
            .name_list(&[]);
        let v = w.into_vec();
        let mut r = Reader::new(&v);
        assert_eq!(r.byte(), Some(20));
        assert_eq!(r.u32(), Some(7));
        assert_eq!(r.string(), Some(&b"abc"[..]));
        assert_eq!(r.name_list(), Some(vec!["a".into(), "b".into()]));
        assert_eq!(r.bool(), Some(true));
        assert_eq!(r.name_list(), Some(vec![]));
        assert_eq!(r.byte(), None);
    }

    #[test]
    fn mpints_follow_rfc4251() {
        let enc = |b: &[u8]| Writer::new().mpint(b).clone().into_vec();
        assert_eq!(enc(&[0, 0]), vec![0, 0, 0, 0]);
        assert_eq!(enc(&[0x09, 0xa3]), vec![0, 0, 0, 2, 0x09, 0xa3]);
        assert_eq!(enc(&[0, 0x80]), vec![0, 0, 0, 2, 0, 0x80]);
    }

    #[test]
    fn short_input_is_none() {
        let mut r = Reader::new(&[0, 0, 0, 9, 1]);
        assert_eq!(r.string(), None);
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff]);
        assert_eq!(r.string(), None);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut r = Reader::new(&data);
            while r.name_list().is_some() || r.string().is_some() || r.u32().is_some() {}
            let _ = r.rest();
        }
    }
}

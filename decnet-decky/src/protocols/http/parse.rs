//! A bounded HTTP/1.1 request reader: request line, headers, `Content-Length` and chunked
//! bodies, keep-alive. The line and header parsers are pure; [`read_request`] drives them over
//! a [`Conn`] and never holds more than the bounds below (plus one read buffer).

use std::io::{self, Read, Write};

use super::super::Conn;

/// Longest request line or header line.
pub const MAX_LINE: usize = 8192;
/// Most header bytes of one request (all lines together).
pub const MAX_HEAD: usize = 32 * 1024;
/// Most header lines of one request.
pub const MAX_HEADERS: usize = 100;
/// Body bytes kept for parsing and logging; the rest is read and dropped.
pub const MAX_BODY_KEPT: usize = 64 * 1024;
/// Largest body accepted at all; a bigger one ends the connection with a 413.
pub const MAX_BODY: usize = 1024 * 1024;
/// Most requests answered on one keep-alive connection.
pub const MAX_REQUESTS: usize = 100;

/// Why a request could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Not an HTTP request (bad request line or header syntax).
    Malformed(&'static str),
    /// A line, the head or the body is over its bound.
    TooLarge(&'static str),
}

/// A parsed request head and its (bounded) body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The request target as sent (path and query).
    pub target: String,
    pub version: String,
    pub headers: Vec<(String, String)>,
    /// The first [`MAX_BODY_KEPT`] body bytes.
    pub body: Vec<u8>,
    /// The whole body's size.
    pub body_len: usize,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The path without query string.
    pub fn path(&self) -> &str {
        let t = self.target.split(['?', '#']).next().unwrap_or("/");
        // Absolute-form targets (proxy probes): keep only the path.
        match t
            .strip_prefix("http://")
            .or_else(|| t.strip_prefix("https://"))
        {
            Some(rest) => rest.find('/').map_or("/", |i| &rest[i..]),
            None => t,
        }
    }

    /// The query string without `?`, if any.
    pub fn query(&self) -> Option<&str> {
        let t = self.target.split('#').next().unwrap_or_default();
        t.split_once('?').map(|(_, q)| q)
    }

    /// Whether the connection stays open after this request's response.
    pub fn keep_alive(&self) -> bool {
        let conn = self.header("connection").unwrap_or_default();
        let has = |tok: &str| conn.split(',').any(|t| t.trim().eq_ignore_ascii_case(tok));
        // HTTP/1.0 keep-alive is not offered: the response would need `Connection: keep-alive`
        // and the 1.0 clients that still exist are scanners.
        self.version == "HTTP/1.1" && !has("close")
    }
}

/// How the body of a request is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    None,
    Length(usize),
    Chunked,
}

fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `METHOD target HTTP/x.y` → (method, target, version).
pub fn parse_request_line(line: &[u8]) -> Result<(String, String, String), ParseError> {
    let bad = ParseError::Malformed("request line");
    let text = std::str::from_utf8(line).map_err(|_| bad)?;
    let mut parts = text.split(' ').filter(|p| !p.is_empty());
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad);
    };
    if method.len() > 32 || !method.bytes().all(|b| b.is_ascii_uppercase() || b == b'-') {
        return Err(bad);
    }
    let v = version.strip_prefix("HTTP/").ok_or(bad)?.as_bytes();
    if !(v.len() == 3 && v[0].is_ascii_digit() && v[1] == b'.' && v[2].is_ascii_digit()) {
        return Err(bad);
    }
    if target.bytes().any(|b| b.is_ascii_control()) {
        return Err(bad);
    }
    Ok((method.to_owned(), target.to_owned(), version.to_owned()))
}

/// `Name: value` → (name, trimmed value). Values are kept as lossy UTF-8.
pub fn parse_header_line(line: &[u8]) -> Result<(String, String), ParseError> {
    let bad = ParseError::Malformed("header line");
    let colon = line.iter().position(|&b| b == b':').ok_or(bad)?;
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    if name.is_empty() || !name.iter().all(|&b| is_token(b)) {
        return Err(bad);
    }
    let value = String::from_utf8_lossy(value);
    Ok((
        String::from_utf8_lossy(name).into_owned(),
        value.trim_matches([' ', '\t']).to_owned(),
    ))
}

/// The body framing the headers announce (RFC 9112 §6.3: chunked wins over a length;
/// conflicting lengths are an error).
pub fn framing(headers: &[(String, String)]) -> Result<Framing, ParseError> {
    let te = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"))
        .any(|(_, v)| v.to_ascii_lowercase().contains("chunked"));
    if te {
        return Ok(Framing::Chunked);
    }
    let mut len = None;
    for (_, v) in headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
    {
        for part in v.split(',') {
            let part = part.trim();
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) || part.len() > 18 {
                return Err(ParseError::Malformed("content-length"));
            }
            let n: usize = part
                .parse()
                .map_err(|_| ParseError::Malformed("content-length"))?;
            if len.is_some_and(|l| l != n) {
                return Err(ParseError::Malformed("content-length"));
            }
            len = Some(n);
        }
    }
    Ok(match len {
        Some(0) | None => Framing::None,
        Some(n) => Framing::Length(n),
    })
}

/// A chunk-size line (`1a;ext=1`) → its size.
pub fn parse_chunk_size(line: &[u8]) -> Result<usize, ParseError> {
    let bad = ParseError::Malformed("chunk size");
    let hex = line.split(|&b| b == b';').next().unwrap_or_default();
    let hex = std::str::from_utf8(hex).map_err(|_| bad)?.trim();
    if hex.is_empty() || hex.len() > 8 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad);
    }
    usize::from_str_radix(hex, 16).map_err(|_| bad)
}

/// What [`read_request`] met instead of a request.
#[derive(Debug)]
pub enum ReadError {
    Parse(ParseError),
    Io(io::Error),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::InvalidData {
            // Conn's "line too long".
            return ReadError::Parse(ParseError::TooLarge("line"));
        }
        ReadError::Io(e)
    }
}

impl From<ParseError> for ReadError {
    fn from(e: ParseError) -> Self {
        ReadError::Parse(e)
    }
}

fn too_long(e: io::Error, what: &'static str) -> ReadError {
    if e.kind() == io::ErrorKind::InvalidData {
        return ReadError::Parse(ParseError::TooLarge(what));
    }
    ReadError::Io(e)
}

/// Reads one request: `Ok(None)` at a clean end of stream. On a [`ReadError::Parse`] the
/// first line read so far (if any) is in `first_line` for the log.
pub fn read_request<S: Read + Write>(
    conn: &mut Conn<S>,
    first_line: &mut Vec<u8>,
) -> Result<Option<Request>, ReadError> {
    // Empty lines before a request are ignored (RFC 9112 §2.2), a few of them.
    let mut line = None;
    for _ in 0..8 {
        match conn.read_line(MAX_LINE).map_err(|e| too_long(e, "uri"))? {
            None => return Ok(None),
            Some(l) if l.is_empty() => continue,
            Some(l) => {
                line = Some(l);
                break;
            }
        }
    }
    let Some(line) = line else {
        return Err(ParseError::Malformed("empty lines").into());
    };
    first_line.clear();
    first_line.extend_from_slice(&line[..line.len().min(512)]);
    let (method, target, version) = parse_request_line(&line)?;
    let mut req = Request {
        method,
        target,
        version,
        ..Request::default()
    };
    let mut head = line.len();
    loop {
        let Some(line) = conn
            .read_line(MAX_LINE)
            .map_err(|e| too_long(e, "header"))?
        else {
            return Err(ReadError::Io(io::ErrorKind::UnexpectedEof.into()));
        };
        if line.is_empty() {
            break;
        }
        head += line.len() + 2;
        if head > MAX_HEAD {
            return Err(ParseError::TooLarge("head").into());
        }
        if req.headers.len() >= MAX_HEADERS {
            return Err(ParseError::TooLarge("headers").into());
        }
        req.headers.push(parse_header_line(&line)?);
    }
    match framing(&req.headers)? {
        Framing::None => {}
        Framing::Length(n) => {
            if n > MAX_BODY {
                return Err(ParseError::TooLarge("body").into());
            }
            read_body_part(conn, &mut req, n)?;
        }
        Framing::Chunked => loop {
            let Some(size) = conn.read_line(64)? else {
                return Err(ReadError::Io(io::ErrorKind::UnexpectedEof.into()));
            };
            let n = parse_chunk_size(&size)?;
            if n == 0 {
                // Trailers, then the empty line.
                for _ in 0..MAX_HEADERS {
                    match conn.read_line(MAX_LINE)? {
                        Some(l) if !l.is_empty() => continue,
                        _ => break,
                    }
                }
                break;
            }
            if req.body_len + n > MAX_BODY {
                return Err(ParseError::TooLarge("body").into());
            }
            read_body_part(conn, &mut req, n)?;
            if conn.read_line(2)?.is_some_and(|l| !l.is_empty()) {
                return Err(ParseError::Malformed("chunk end").into());
            }
        },
    }
    Ok(Some(req))
}

/// Reads `n` body bytes in pieces, keeping at most [`MAX_BODY_KEPT`] in `req.body`.
fn read_body_part<S: Read + Write>(
    conn: &mut Conn<S>,
    req: &mut Request,
    mut n: usize,
) -> io::Result<()> {
    while n > 0 {
        let piece = conn.read_exact_vec(n.min(16 * 1024))?;
        n -= piece.len();
        req.body_len += piece.len();
        let room = MAX_BODY_KEPT.saturating_sub(req.body.len());
        req.body.extend_from_slice(&piece[..piece.len().min(room)]);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::super::testing::Mock;
    use super::*;
    use proptest::prelude::*;

    fn read_all(input: &[u8]) -> (Vec<Result<Request, String>>, usize) {
        let mut conn = Conn::new(Mock::new(input));
        let mut out = Vec::new();
        let mut first = Vec::new();
        for _ in 0..MAX_REQUESTS {
            match read_request(&mut conn, &mut first) {
                Ok(Some(r)) => out.push(Ok(r)),
                Ok(None) => break,
                Err(e) => {
                    out.push(Err(format!("{e:?}")));
                    break;
                }
            }
        }
        let n = out.len();
        (out, n)
    }

    #[test]
    fn request_lines() {
        let ok = |l: &str, m: &str, t: &str, v: &str| {
            assert_eq!(
                parse_request_line(l.as_bytes()),
                Ok((m.into(), t.into(), v.into())),
                "{l}"
            );
        };
        ok("GET / HTTP/1.1", "GET", "/", "HTTP/1.1");
        ok("POST /a?b=c HTTP/1.0", "POST", "/a?b=c", "HTTP/1.0");
        ok("M-SEARCH * HTTP/1.1", "M-SEARCH", "*", "HTTP/1.1");
        ok("GET  http://x/y  HTTP/1.1", "GET", "http://x/y", "HTTP/1.1");
        for bad in [
            "",
            "GET",
            "GET /",
            "get / HTTP/1.1",
            "GET / HTTP/1.1 x",
            "GET / HTTP/11",
            "GET / SIP/2.0",
            "\u{16}\u{3}\u{1} / HTTP/1.1",
            "GET /\u{7f} HTTP/1.1",
        ] {
            assert!(parse_request_line(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn header_lines_and_framing() {
        assert_eq!(
            parse_header_line(b"User-Agent:  curl/8.0 \t"),
            Ok(("User-Agent".into(), "curl/8.0".into()))
        );
        assert_eq!(parse_header_line(b"X:"), Ok(("X".into(), String::new())));
        assert!(parse_header_line(b"No colon").is_err());
        assert!(parse_header_line(b"Bad Name: x").is_err());
        assert!(parse_header_line(b": x").is_err());
        let h = |pairs: &[(&str, &str)]| {
            framing(
                &pairs
                    .iter()
                    .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
                    .collect::<Vec<_>>(),
            )
        };
        assert_eq!(h(&[]), Ok(Framing::None));
        assert_eq!(h(&[("Content-Length", "0")]), Ok(Framing::None));
        assert_eq!(h(&[("content-length", "12")]), Ok(Framing::Length(12)));
        assert_eq!(h(&[("Content-Length", "5, 5")]), Ok(Framing::Length(5)));
        assert!(h(&[("Content-Length", "5"), ("Content-Length", "6")]).is_err());
        assert!(h(&[("Content-Length", "-1")]).is_err());
        assert!(h(&[("Content-Length", "99999999999999999999")]).is_err());
        assert_eq!(
            h(&[
                ("Content-Length", "5"),
                ("Transfer-Encoding", "gzip, chunked")
            ]),
            Ok(Framing::Chunked)
        );
        assert_eq!(parse_chunk_size(b"1a;name=v"), Ok(26));
        assert_eq!(parse_chunk_size(b"0"), Ok(0));
        assert!(parse_chunk_size(b"").is_err());
        assert!(parse_chunk_size(b"zz").is_err());
        assert!(parse_chunk_size(b"fffffffff").is_err());
    }

    #[test]
    fn bodies_and_keep_alive() {
        let (reqs, n) = read_all(
            b"POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc\
              \r\nPOST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;x\r\nhel\r\n2\r\nlo\r\n0\r\nT: 1\r\n\r\n\
              GET /c?q=1 HTTP/1.1\r\nConnection: keep-alive\r\n\r\n\
              GET /d HTTP/1.1\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(n, 4, "{reqs:?}");
        let r: Vec<Request> = reqs.into_iter().map(|r| r.expect("ok")).collect();
        assert_eq!(r[0].body, b"abc");
        assert_eq!(r[1].path(), "/b");
        assert_eq!(r[1].body, b"hello");
        assert_eq!(r[1].body_len, 5);
        assert_eq!(r[2].query(), Some("q=1"));
        assert!(r[0].keep_alive() && !r[3].keep_alive());
        for one_o in [
            &b"GET / HTTP/1.0\r\n\r\n"[..],
            b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        ] {
            let (reqs, _) = read_all(one_o);
            assert!(!reqs[0].as_ref().expect("ok").keep_alive());
        }
    }

    #[test]
    fn bounds() {
        let mut big = b"POST / HTTP/1.1\r\nContent-Length: ".to_vec();
        big.extend_from_slice(format!("{}\r\n\r\n", MAX_BODY + 1).as_bytes());
        let (reqs, _) = read_all(&big);
        assert!(reqs[0].as_ref().is_err_and(|e| e.contains("TooLarge")));
        let mut body = format!(
            "POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY_KEPT + 10
        )
        .into_bytes();
        body.extend(std::iter::repeat_n(b'x', MAX_BODY_KEPT + 10));
        let (reqs, _) = read_all(&body);
        let r = reqs[0].as_ref().expect("ok");
        assert_eq!(r.body.len(), MAX_BODY_KEPT);
        assert_eq!(r.body_len, MAX_BODY_KEPT + 10);
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        let (reqs, _) = read_all(&many);
        assert!(reqs[0].as_ref().is_err_and(|e| e.contains("headers")));
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_LINE + 10));
        let (reqs, _) = read_all(long.as_bytes());
        assert!(reqs[0].as_ref().is_err_and(|e| e.contains("TooLarge")));
        let (reqs, _) = read_all(b"GET / HTTP/1.1\r\nHost: x\r\n");
        assert!(reqs[0].as_ref().is_err_and(|e| e.contains("UnexpectedEof")));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let (reqs, n) = read_all(&input);
            prop_assert!(n <= MAX_REQUESTS);
            for r in reqs.iter().flatten() {
                prop_assert!(r.body.len() <= MAX_BODY_KEPT);
                prop_assert!(r.headers.len() <= MAX_HEADERS);
            }
        }

        #[test]
        fn http_shaped_input_never_panics(
            method in "[A-Z]{1,8}",
            target in "/[ -~]{0,40}",
            headers in proptest::collection::vec(("[A-Za-z-]{1,12}", "[ -~]{0,30}"), 0..8),
            body in proptest::collection::vec(any::<u8>(), 0..300),
            chunked in any::<bool>(),
        ) {
            let mut input = format!("{method} {target} HTTP/1.1\r\n").into_bytes();
            for (n, v) in &headers {
                input.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
            }
            if chunked {
                input.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
                for c in body.chunks(37) {
                    input.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                    input.extend_from_slice(c);
                    input.extend_from_slice(b"\r\n");
                }
                input.extend_from_slice(b"0\r\n\r\n");
            } else {
                input.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
                input.extend_from_slice(&body);
            }
            let _ = read_all(&input);
        }
    }
}

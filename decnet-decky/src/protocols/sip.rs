//! SIP (UDP and TCP 5060) as an Asterisk PBX: OPTIONS answered 200 with the persona's `Server`,
//! REGISTER and INVITE challenged with a digest (401), digest responses recorded and refused
//! (403), dialled numbers recorded; BYE/CANCEL 481, ACK silence, anything else 501.

use std::io::{self, Read, Write};

use serde_json::{Map, Value};

use super::{Conn, ServiceCtx, MAX_COMMANDS, MAX_LINE, MAX_LOGGED};
use crate::log::{AttackDetails, AttackKind, Fields, Reporter};
use crate::util::{bump, clip, push_bounded, set_once, Rng};

pub const DEFAULT_SERVER: &str = "Asterisk PBX 18.12.1";
pub const ALLOW: &str =
    "INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, SUBSCRIBE, NOTIFY, INFO, PUBLISH";
/// Headers kept from one request.
const MAX_HEADERS: usize = 64;
/// Largest body read (SDP).
const MAX_BODY: usize = 16 * 1024;

/// A parsed request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Request {
    pub method: String,
    pub uri: String,
    /// (lower-cased name, value), compact forms expanded.
    pub headers: Vec<(String, String)>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn expand(name: &str) -> String {
    let n = name.trim().to_ascii_lowercase();
    match n.as_str() {
        "v" => "via",
        "f" => "from",
        "t" => "to",
        "i" => "call-id",
        "m" => "contact",
        "l" => "content-length",
        "c" => "content-type",
        _ => return n,
    }
    .to_owned()
}

/// Parses the head of a request (request line and headers, no body). `None` if it is not one.
pub fn parse_head(head: &str) -> Option<Request> {
    let mut lines = head.split("\r\n").flat_map(|l| l.split('\n'));
    let first = lines.next()?;
    let mut parts = first.split_whitespace();
    let method = parts.next()?;
    let uri = parts.next()?;
    if parts.next() != Some("SIP/2.0") || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return None;
    }
    let mut headers = Vec::new();
    for line in lines.take(MAX_HEADERS) {
        if let Some((k, v)) = line.split_once(':') {
            headers.push((expand(k), v.trim().chars().take(512).collect()));
        }
    }
    Some(Request {
        method: method.chars().take(32).collect(),
        uri: uri.chars().take(256).collect(),
        headers,
    })
}

/// `key="value"` parameters of a Digest header.
pub fn digest_params(value: &str) -> Vec<(String, String)> {
    let v = value.trim();
    let Some(rest) = v
        .get(..6)
        .filter(|p| p.eq_ignore_ascii_case("digest"))
        .map(|_| &v[6..])
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut s = rest.trim_start();
    while !s.is_empty() && out.len() < 16 {
        let Some(eq) = s.find('=') else { break };
        let key = s[..eq]
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        s = s[eq + 1..].trim_start();
        let val;
        if let Some(q) = s.strip_prefix('"') {
            let end = q.find('"').unwrap_or(q.len());
            val = q[..end].to_owned();
            s = q.get(end + 1..).unwrap_or_default();
        } else {
            let end = s.find(',').unwrap_or(s.len());
            val = s[..end].trim().to_owned();
            s = &s[end..];
        }
        s = s.trim_start().trim_start_matches(',').trim_start();
        out.push((key, val.chars().take(256).collect()));
    }
    out
}

/// The user part of a SIP URI (`sip:1001@pbx` → `1001`).
pub fn uri_user(uri: &str) -> Option<String> {
    let u = uri.trim().trim_start_matches('<');
    let u = u
        .strip_prefix("sips:")
        .or_else(|| u.strip_prefix("sip:"))
        .or_else(|| u.strip_prefix("tel:"))?;
    let user = u.split(['@', ';', '>']).next()?;
    (!user.is_empty() && (u.contains('@') || uri.contains("tel:")))
        .then(|| user.chars().take(64).collect())
}

/// What the PBX shows.
#[derive(Debug, Clone)]
pub struct Pbx {
    pub server: String,
    pub realm: String,
}

impl Pbx {
    pub fn from_ctx(ctx: &ServiceCtx) -> Pbx {
        Pbx {
            server: ctx
                .config
                .line("server")
                .unwrap_or_else(|| DEFAULT_SERVER.to_owned()),
            realm: ctx
                .config
                .line("realm")
                .unwrap_or_else(|| "asterisk".to_owned()),
        }
    }

    fn response(&self, req: &Request, status: &str, extra: &[String], tag: &str) -> Vec<u8> {
        let mut out = format!("SIP/2.0 {status}\r\n");
        for via in req.all("via").take(8) {
            out.push_str(&format!("Via: {via}\r\n"));
        }
        if let Some(f) = req.header("from") {
            out.push_str(&format!("From: {f}\r\n"));
        }
        if let Some(t) = req.header("to") {
            if t.contains(";tag=") {
                out.push_str(&format!("To: {t}\r\n"));
            } else {
                out.push_str(&format!("To: {t};tag=as{tag}\r\n"));
            }
        }
        for h in ["call-id", "cseq"] {
            if let Some(v) = req.header(h) {
                let name = if h == "call-id" { "Call-ID" } else { "CSeq" };
                out.push_str(&format!("{name}: {v}\r\n"));
            }
        }
        out.push_str(&format!("Server: {}\r\n", self.server));
        out.push_str(&format!("Allow: {ALLOW}\r\n"));
        out.push_str("Supported: replaces, timer\r\n");
        for e in extra {
            out.push_str(e);
            out.push_str("\r\n");
        }
        out.push_str("Content-Length: 0\r\n\r\n");
        out.retain(|c| c != '\0');
        out.into_bytes()
    }

    /// Records `req` and returns the PBX's answer (`None` for ACK).
    pub fn answer(
        &self,
        req: &Request,
        rng: &mut Rng,
        report: &Reporter,
        fields: &mut Fields,
    ) -> Option<Vec<u8>> {
        let ua = req.header("user-agent").map(str::to_owned);
        bump(fields, "requests");
        set_once(fields, "method", Value::from(req.method.clone()));
        if let Some(u) = &ua {
            set_once(fields, "user_agent", Value::from(u.clone()));
        }
        let mut extra = Map::new();
        for h in ["from", "to", "call-id", "contact"] {
            if let Some(v) = req.header(h) {
                extra.insert(h.replace('-', "_"), Value::from(v));
            }
        }
        let dialled = (req.method == "INVITE")
            .then(|| uri_user(&req.uri))
            .flatten();
        if let Some(n) = &dialled {
            extra.insert("dialled".into(), Value::from(n.clone()));
            push_bounded(fields, "dialled", Value::from(n.clone()), MAX_LOGGED);
        }
        report.emit(
            AttackKind::Request,
            AttackDetails {
                http_method: Some(req.method.clone()),
                path: Some(req.uri.clone()),
                user_agent: ua,
                extra,
                ..Default::default()
            },
        );
        let tag = rng.hex(8);
        let auth = req
            .header("authorization")
            .or_else(|| req.header("proxy-authorization"))
            .map(digest_params)
            .filter(|p| !p.is_empty());
        match req.method.as_str() {
            "OPTIONS" => {
                Some(self.response(req, "200 OK", &["Accept: application/sdp".into()], &tag))
            }
            "REGISTER" | "INVITE" | "SUBSCRIBE" | "MESSAGE" | "PUBLISH" | "REFER" | "NOTIFY" => {
                match auth {
                    Some(p) => {
                        let get = |k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
                        let user = get("username").unwrap_or_default();
                        set_once(fields, "username", Value::from(user.clone()));
                        let mut cred = Map::new();
                        cred.insert("username".into(), Value::from(user.clone()));
                        if let Some(r) = get("response") {
                            cred.insert("hash".into(), Value::from(r));
                        }
                        push_bounded(fields, "credentials", Value::Object(cred), MAX_LOGGED);
                        let mut extra = Map::new();
                        for k in ["realm", "nonce", "uri", "algorithm", "qop", "nc", "cnonce"] {
                            if let Some(v) = get(k) {
                                extra.insert(k.into(), Value::from(v));
                            }
                        }
                        extra.insert("sip_method".into(), Value::from(req.method.clone()));
                        report.emit(
                            AttackKind::Auth,
                            AttackDetails {
                                username: Some(user),
                                hash: get("response"),
                                method: Some("sip-digest".into()),
                                accepted: Some(false),
                                extra,
                                ..Default::default()
                            },
                        );
                        Some(self.response(req, "403 Forbidden", &[], &tag))
                    }
                    None => {
                        let nonce = rng.hex(8);
                        let challenge = format!(
                        "WWW-Authenticate: Digest algorithm=MD5, realm=\"{}\", nonce=\"{nonce}\"",
                        self.realm
                    );
                        Some(self.response(req, "401 Unauthorized", &[challenge], &tag))
                    }
                }
            }
            "ACK" => None,
            "BYE" | "CANCEL" | "INFO" | "UPDATE" | "PRACK" => {
                Some(self.response(req, "481 Call/Transaction Does Not Exist", &[], &tag))
            }
            _ => Some(self.response(req, "501 Not Implemented", &[], &tag)),
        }
    }
}

/// One SIP datagram: its head (before the blank line) parsed, recorded and answered.
pub fn datagram(pbx: &Pbx, data: &[u8], report: &Reporter, fields: &mut Fields) -> Option<Vec<u8>> {
    let text = String::from_utf8_lossy(&data[..data.len().min(8192)]);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    let Some(req) = parse_head(head) else {
        fields.insert("sip".into(), Value::from("not a request"));
        fields.insert(
            "preview".into(),
            Value::from(clip(&data[..data.len().min(64)], 64)),
        );
        return None;
    };
    pbx.answer(&req, &mut Rng::new(), report, fields)
}

/// SIP over TCP: requests one after another on the connection.
pub fn handle<S: Read + Write>(
    mut conn: Conn<S>,
    ctx: &ServiceCtx,
    report: &Reporter,
    fields: &mut Fields,
) -> io::Result<()> {
    let pbx = Pbx::from_ctx(ctx);
    let mut rng = Rng::new();
    for _ in 0..MAX_COMMANDS {
        let mut head = String::new();
        loop {
            let Some(line) = conn.read_line(MAX_LINE)? else {
                return Ok(());
            };
            if line.is_empty() {
                if head.is_empty() {
                    continue; // keep-alive CRLFs
                }
                break;
            }
            if head.len() > 16 * 1024 {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "head too long"));
            }
            head.push_str(&String::from_utf8_lossy(&line));
            head.push_str("\r\n");
        }
        let Some(req) = parse_head(&head) else {
            fields.insert("sip".into(), Value::from("not a request"));
            return Ok(());
        };
        let body_len = req
            .header("content-length")
            .and_then(|l| l.parse::<usize>().ok())
            .unwrap_or(0);
        if body_len > MAX_BODY {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "body too large"));
        }
        conn.read_exact_vec(body_len)?;
        if let Some(reply) = pbx.answer(&req, &mut rng, report, fields) {
            conn.send(&reply)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{ctx, peer, reporter, Mock};
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const NMAP_OPTIONS: &str = "OPTIONS sip:nm SIP/2.0\r\nVia: SIP/2.0/UDP nm;branch=foo;rport\r\nFrom: <sip:nm@nm>;tag=root\r\nTo: <sip:nm2@nm2>\r\nCall-ID: 50000\r\nCSeq: 42 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\nContact: <sip:nm@nm>\r\nAccept: application/sdp\r\n\r\n";

    fn pbx() -> Pbx {
        Pbx::from_ctx(&ctx("sip", json!({})))
    }

    #[test]
    fn options_matches_nmaps_asterisk_line() {
        let (report, _) = reporter("sip", 5060);
        let out =
            datagram(&pbx(), NMAP_OPTIONS.as_bytes(), &report, &mut Fields::new()).expect("reply");
        let out = String::from_utf8(out).expect("utf8");
        assert!(out.starts_with("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP nm;branch=foo;rport\r\n"));
        assert!(out.contains(&format!(
            "\r\nServer: Asterisk PBX 18.12.1\r\nAllow: {ALLOW}\r\n"
        )));
        assert!(out.contains("\r\nCSeq: 42 OPTIONS\r\n"));
        assert!(out.contains("\r\nTo: <sip:nm2@nm2>;tag=as"));
        assert!(out.ends_with("Content-Length: 0\r\n\r\n"));
    }

    #[test]
    fn register_is_challenged_and_the_digest_recorded() {
        let reg = "REGISTER sip:pbx SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.9:5060\r\nFrom: <sip:1001@pbx>;tag=a\r\nTo: <sip:1001@pbx>\r\nCall-ID: x1\r\nCSeq: 1 REGISTER\r\nUser-Agent: friendly-scanner\r\n\r\n";
        let (report, sink) = reporter("sip", 5060);
        let mut f = Fields::new();
        let out =
            String::from_utf8(datagram(&pbx(), reg.as_bytes(), &report, &mut f).expect("reply"))
                .expect("utf8");
        assert!(out.starts_with("SIP/2.0 401 Unauthorized\r\n"));
        assert!(
            out.contains("WWW-Authenticate: Digest algorithm=MD5, realm=\"asterisk\", nonce=\"")
        );
        let with_auth = reg.replace(
            "User-Agent",
            "Authorization: Digest username=\"1001\", realm=\"asterisk\", nonce=\"abc\", uri=\"sip:pbx\", response=\"0123456789abcdef0123456789abcdef\", algorithm=MD5\r\nUser-Agent",
        );
        let out = String::from_utf8(
            datagram(&pbx(), with_auth.as_bytes(), &report, &mut f).expect("reply"),
        )
        .expect("utf8");
        assert!(out.starts_with("SIP/2.0 403 Forbidden\r\n"));
        let ev = sink.events();
        let auth = ev
            .iter()
            .find(|e| e.kind == AttackKind::Auth)
            .expect("auth");
        assert_eq!(auth.details.username.as_deref(), Some("1001"));
        assert_eq!(
            auth.details.hash.as_deref(),
            Some("0123456789abcdef0123456789abcdef")
        );
        assert_eq!(auth.details.extra["nonce"], "abc");
        assert_eq!(auth.details.extra["realm"], "asterisk");
        assert_eq!(
            ev[0].details.user_agent.as_deref(),
            Some("friendly-scanner")
        );
        assert_eq!(ev[0].details.http_method.as_deref(), Some("REGISTER"));
    }

    #[test]
    fn invites_record_the_dialled_number_over_tcp() {
        let inv = "INVITE sip:0044123456789@10.0.0.20 SIP/2.0\r\nv: SIP/2.0/TCP 10.0.0.9\r\nf: <sip:100@x>;tag=1\r\nt: <sip:0044123456789@10.0.0.20>\r\ni: c1\r\nCSeq: 1 INVITE\r\nl: 4\r\n\r\nv=0\nBYE sip:x@y SIP/2.0\r\nCSeq: 2 BYE\r\n\r\n";
        let c = ctx("sip", json!({"server": "FPBX-16.0.40(18.12.1)"}));
        let (report, sink) = reporter("sip", 5060);
        let mut m = Mock::new(inv.as_bytes());
        let mut f = Fields::new();
        super::super::handle(&c, &peer(5060), &report, &mut m, &mut f).expect("ok");
        let out = m.out();
        assert!(
            out.starts_with("SIP/2.0 401 Unauthorized\r\nVia: SIP/2.0/TCP 10.0.0.9\r\n"),
            "{out}"
        );
        assert!(out.contains("Server: FPBX-16.0.40(18.12.1)\r\n"));
        assert!(out.contains("SIP/2.0 481 Call/Transaction Does Not Exist\r\n"));
        assert_eq!(f["dialled"], json!(["0044123456789"]));
        assert_eq!(f["requests"], 2);
        assert_eq!(sink.events()[0].details.extra["dialled"], "0044123456789");
    }

    #[test]
    fn parsers() {
        assert_eq!(
            uri_user("sip:1001@pbx.local;transport=udp").as_deref(),
            Some("1001")
        );
        assert_eq!(uri_user("<sips:alice@x>").as_deref(), Some("alice"));
        assert_eq!(uri_user("sip:pbx.local"), None);
        let p = digest_params("Digest username=\"a,b\", nc=00000001, qop=auth");
        assert_eq!(
            p,
            vec![
                ("username".into(), "a,b".into()),
                ("nc".into(), "00000001".into()),
                ("qop".into(), "auth".into())
            ]
        );
        assert!(digest_params("Basic abc").is_empty());
        assert!(parse_head("GET / HTTP/1.1\r\n").is_none());
    }

    proptest! {
        #[test]
        fn random_datagrams_never_panic(data in proptest::collection::vec(any::<u8>(), 0..400)) {
            let (report, _) = reporter("sip", 5060);
            let _ = datagram(&pbx(), &data, &report, &mut Fields::new());
        }

        #[test]
        fn mutated_requests_never_panic(cut in 0usize..300, junk in "[ -~\\r\\n\"=,]{0,80}") {
            let mut text = NMAP_OPTIONS.replace("Accept", &format!("Authorization: Digest {junk}\r\nAccept"));
            text.truncate(cut.min(text.len()));
            let (report, _) = reporter("sip", 5060);
            let _ = datagram(&pbx(), text.as_bytes(), &report, &mut Fields::new());
            let _ = digest_params(&format!("Digest {junk}"));
            let c = ctx("sip", json!({}));
            let mut f = Fields::new();
            let _ = super::super::handle(&c, &peer(5060), &report, &mut Mock::new(text.as_bytes()), &mut f);
        }
    }
}

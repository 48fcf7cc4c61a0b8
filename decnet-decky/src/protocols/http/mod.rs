//! HTTP personas: a web server (http/https), the Docker Engine API,
//! the Kubernetes API server and Elasticsearch. Keep-alive HTTP/1.1 with a bounded parser
//! ([`parse`]); every request is reported as a `request` step.
//!
//! Each product's real ports keep their real scheme ([`scheme`]): docker 2375, k8s 8080 and
//! Elasticsearch 9200 and the web personas' 80 and 8080 are plain HTTP (a ClientHello there is a
//! malformed request), docker 2376,
//! kube-apiserver 6443 and 443 are TLS. On any other port a ClientHello (0x16) gets a TLS
//! handshake first.

use std::io::{self, Read, Write};

use serde_json::Value;

use super::{tls, Conn, Peer, ServiceCtx, MAX_LOGGED};

pub mod bait;
pub mod creds;
pub mod hijack;
pub mod parse;
pub mod personas;
mod products;
pub mod web;
use crate::config::one_line;
use crate::log::{AttackDetails, AttackKind, Fields, Reporter};
use crate::util::{bump, clip, preview, push_bounded};
pub use parse::Request;
use parse::{ParseError, ReadError, MAX_REQUESTS};

pub const DEFAULT_SERVER: &str = "Apache/2.4.52 (Ubuntu)";
pub const DOCKER_VERSION: &str = "20.10.24";
pub const ES_VERSION: &str = "7.10.2";
pub const K8S_VERSION: &str = "v1.28.4";

/// Which product the HTTP responder pretends to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Web,
    DockerApi,
    K8s,
    Elasticsearch,
}

/// A response to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub(crate) fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Response {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.into(),
        }
    }

    pub(crate) fn json(status: u16, body: &Value, pretty: bool) -> Self {
        let mut text = if pretty {
            serde_json::to_string_pretty(body).unwrap_or_default()
        } else {
            body.to_string()
        };
        text.push('\n');
        Response::new(status, "application/json", text)
    }

    pub(crate) fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Serialises the response; `head_only` omits the body (HEAD); `keep_alive` leaves the
    /// connection open (no `Connection: close`).
    pub fn to_bytes(&self, head_only: bool, keep_alive: bool) -> Vec<u8> {
        let mut out = format!("HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        for (n, v) in &self.headers {
            out.push_str(&format!("{n}: {v}\r\n"));
        }
        out.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        if !keep_alive {
            out.push_str("Connection: close\r\n");
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        if !head_only {
            bytes.extend_from_slice(&self.body);
        }
        bytes
    }
}

pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        414 => "URI Too Long",
        418 => "I'm a teapot",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

/// How a port of a product is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP only: a ClientHello is a malformed request (docker 2375, k8s 8080, ES 9200).
    Plain,
    /// TLS only (docker 2376, kube-apiserver 6443, https 443).
    Tls,
    /// Any other port (a test's, an operator's): TLS if the client starts with a ClientHello.
    Sniff,
}

/// The scheme the real product uses on `port`.
pub fn scheme(flavor: Flavor, port: u16) -> Scheme {
    match (flavor, port) {
        (Flavor::DockerApi, 2375)
        | (Flavor::K8s, 8080)
        | (Flavor::Elasticsearch, 9200)
        | (Flavor::Web, 80 | 8080) => Scheme::Plain,
        (Flavor::DockerApi, 2376) | (Flavor::K8s, 6443) | (Flavor::Web, 443) => Scheme::Tls,
        _ => Scheme::Sniff,
    }
}

/// Entry point for `http`, `docker_api`, `k8s`, `elasticsearch`: the port's scheme
/// ([`scheme`]), then keep-alive HTTP/1.1.
pub fn handle<S: Read + Write>(
    mut conn: Conn<S>,
    ctx: &ServiceCtx,
    peer: &Peer,
    report: &Reporter,
    flavor: Flavor,
    fields: &mut Fields,
) -> io::Result<()> {
    let first = conn.peek()?;
    let scheme = scheme(flavor, peer.dst_port);
    match (first, &ctx.tls, scheme) {
        (None, _, _) => Ok(()),
        (Some(0x16), Some(config), Scheme::Tls | Scheme::Sniff) => {
            let mut tls = tls::accept_reported(config, conn.into_prefixed(), fields, report)?;
            let res = serve_plain(Conn::new(&mut tls), ctx, peer, report, flavor, fields);
            tls::close(&mut tls);
            res
        }
        (Some(_), _, Scheme::Tls) => {
            // Plain HTTP on a TLS-only port: what the real server answers.
            let mut first_line = Vec::new();
            let _ = parse::read_request(&mut conn, &mut first_line);
            fields.insert("plain_on_tls".into(), Value::from(true));
            conn.send(plain_on_tls_answer(flavor))
        }
        _ => serve_plain(conn, ctx, peer, report, flavor, fields),
    }
}

/// The answer to plain HTTP on a TLS-only port: Go's `net/http` for Docker and Kubernetes,
/// Apache's `mod_ssl` for the web server.
fn plain_on_tls_answer(flavor: Flavor) -> &'static [u8] {
    match flavor {
        Flavor::Web => b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/html; charset=iso-8859-1\r\nConnection: close\r\n\r\n\
            <!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\n<html><head>\n<title>400 Bad Request</title>\n</head><body>\n\
            <h1>Bad Request</h1>\n<p>Your browser sent a request that this server could not understand.<br />\n\
            Reason: You're speaking plain HTTP to an SSL-enabled server port.<br />\n</p>\n</body></html>\n",
        _ => b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n",
    }
}

/// Headers kept per request in its event (names lower-cased, values clipped).
const MAX_LOGGED_HEADERS: usize = 32;
/// Body bytes shown in a request event.
const BODY_SAMPLE: usize = 1024;

/// Notes a request in the session summary and reports it as a `request` step.
fn record_request(req: &Request, status: u16, report: &Reporter, fields: &mut Fields) {
    fields.insert("method".into(), Value::from(req.method.clone()));
    fields.insert(
        "path".into(),
        Value::from(clip(req.target.as_bytes(), 2048)),
    );
    fields.insert("version".into(), Value::from(req.version.clone()));
    for (key, header) in [
        ("user_agent", "user-agent"),
        ("host", "host"),
        ("authorization", "authorization"),
        ("content_type", "content-type"),
    ] {
        if let Some(v) = req.header(header) {
            fields.insert(key.into(), Value::from(clip(v.as_bytes(), 512)));
        }
    }
    if req.body_len > 0 {
        fields.insert("body".into(), Value::from(preview(&req.body, BODY_SAMPLE)));
    }
    fields.insert("status".into(), Value::from(status));
    bump(fields, "requests");

    let mut headers = Fields::new();
    for (n, v) in req.headers.iter().take(MAX_LOGGED_HEADERS) {
        headers
            .entry(n.to_ascii_lowercase())
            .or_insert_with(|| Value::from(clip(v.as_bytes(), 512)));
    }
    let mut extra = Fields::new();
    if let Some(q) = req.query() {
        extra.insert("query".into(), Value::from(clip(q.as_bytes(), 2048)));
    }
    extra.insert("version".into(), Value::from(req.version.clone()));
    extra.insert("headers".into(), Value::Object(headers));
    if req.body_len > 0 {
        extra.insert("body".into(), Value::from(preview(&req.body, BODY_SAMPLE)));
    }
    extra.insert("status".into(), Value::from(status));
    report.emit(
        AttackKind::Request,
        AttackDetails {
            http_method: Some(req.method.clone()),
            path: Some(clip(req.path().as_bytes(), 2048)),
            user_agent: req.header("user-agent").map(|v| clip(v.as_bytes(), 512)),
            bytes_in: Some(req.body_len as u64),
            extra,
            ..AttackDetails::default()
        },
    );
}

/// Serialises `resp` the way the product's server does: Go's `net/http` for Docker and
/// Kubernetes (status line in the request's version, headers sorted, then `Date` and
/// `Content-Length`), Netty for Elasticsearch (lower-case `content-type`/`content-length`, no
/// `Date`), Apache-like HTTP/1.1 for the web personas.
fn wire(
    resp: &Response,
    req: &Request,
    ctx: &ServiceCtx,
    flavor: Flavor,
    keep: bool,
    left: usize,
) -> Vec<u8> {
    let head_only = req.method == "HEAD";
    if flavor == Flavor::Web && web::persona(ctx).coyote {
        return coyote_wire(resp, req, keep);
    }
    if flavor == Flavor::Web {
        let apache = resp
            .headers
            .iter()
            .any(|(n, v)| n == "Server" && v.starts_with("Apache"));
        let mut bytes = if keep && apache {
            // Apache announces its keep-alive terms on every kept connection.
            let mut r = resp.clone();
            r.headers
                .push(("Keep-Alive".into(), format!("timeout=5, max={left}")));
            r.headers.push(("Connection".into(), "Keep-Alive".into()));
            r.to_bytes(head_only, keep)
        } else {
            resp.to_bytes(head_only, keep)
        };
        if !web::persona(ctx).reason_phrase {
            // Tomcat 8.5+ sends no reason phrase: `HTTP/1.1 404 `.
            let phrase = format!(" {}\r\n", reason(resp.status));
            if let Some(i) = bytes
                .windows(phrase.len())
                .position(|w| w == phrase.as_bytes())
            {
                bytes.splice(i + 1..i + phrase.len() - 2, std::iter::empty());
            }
        }
        return bytes;
    }
    let version = if req.version == "HTTP/1.0" {
        "HTTP/1.0"
    } else {
        "HTTP/1.1"
    };
    let mut out = format!("{version} {} {}\r\n", resp.status, reason(resp.status));
    let mut date = None;
    let mut headers: Vec<&(String, String)> = Vec::new();
    for h in &resp.headers {
        if h.0 == "Date" {
            date = Some(&h.1);
        } else {
            headers.push(h);
        }
    }
    let go = matches!(flavor, Flavor::DockerApi | Flavor::K8s);
    if go {
        headers.sort_by(|a, b| a.0.cmp(&b.0));
    }
    for (n, v) in headers {
        let n = match (go, n.as_str()) {
            (false, "Content-Type") => "content-type",
            _ => n.as_str(),
        };
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    if !keep && version == "HTTP/1.1" {
        out.push_str("Connection: close\r\n");
    }
    if go {
        if let Some(d) = date {
            out.push_str(&format!("Date: {d}\r\n"));
        }
    }
    if resp.status != 204 {
        let name = if go {
            "Content-Length"
        } else {
            "content-length"
        };
        out.push_str(&format!("{name}: {}\r\n", resp.body.len()));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    if !head_only {
        bytes.extend_from_slice(&resp.body);
    }
    bytes
}

/// Whether Tomcat streams `resp` (a JSP page: 200 HTML) rather than sending its length.
fn coyote_streams(resp: &Response) -> bool {
    resp.status == 200
        && resp
            .headers
            .iter()
            .any(|(n, v)| n == "Content-Type" && v.starts_with("text/html"))
}

/// Tomcat's Coyote HTTP/1.1 connector: no reason phrase, the headers in the order the
/// application set them, then the length (or `Transfer-Encoding: chunked` for a streamed JSP
/// page, or nothing and a close to an HTTP/1.0 client), then `Date`, then `Connection: close`.
fn coyote_wire(resp: &Response, req: &Request, keep: bool) -> Vec<u8> {
    let head_only = req.method == "HEAD";
    let streamed = coyote_streams(resp);
    let http10 = req.version == "HTTP/1.0";
    let mut out = format!("HTTP/1.1 {} \r\n", resp.status);
    let mut date = None;
    for (n, v) in &resp.headers {
        if n == "Date" {
            date = Some(v);
        } else {
            out.push_str(&format!("{n}: {v}\r\n"));
        }
    }
    let chunked = streamed && !http10;
    if chunked {
        out.push_str("Transfer-Encoding: chunked\r\n");
    } else if !streamed {
        out.push_str(&format!("Content-Length: {}\r\n", resp.body.len()));
    }
    if let Some(d) = date {
        out.push_str(&format!("Date: {d}\r\n"));
    }
    if !keep || (streamed && http10) {
        out.push_str("Connection: close\r\n");
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    if head_only {
        return bytes;
    }
    if chunked {
        if !resp.body.is_empty() {
            bytes.extend_from_slice(format!("{:x}\r\n", resp.body.len()).as_bytes());
            bytes.extend_from_slice(&resp.body);
            bytes.extend_from_slice(b"\r\n");
        }
        bytes.extend_from_slice(b"0\r\n\r\n");
    } else {
        bytes.extend_from_slice(&resp.body);
    }
    bytes
}

/// Reports each credential as an `auth` step and keeps the first few in the summary.
fn record_credentials(
    req: &Request,
    found: &[creds::Credential],
    report: &Reporter,
    fields: &mut Fields,
) {
    for c in found {
        let mut extra = Fields::new();
        extra.insert("path".into(), Value::from(clip(req.path().as_bytes(), 512)));
        report.emit(
            AttackKind::Auth,
            AttackDetails {
                username: c.username.clone(),
                password: Some(c.password.clone()),
                method: Some(c.method.to_owned()),
                accepted: Some(false),
                extra,
                ..AttackDetails::default()
            },
        );
        let mut entry = Fields::new();
        if let Some(u) = &c.username {
            entry.insert("username".into(), Value::from(u.clone()));
        }
        entry.insert("password".into(), Value::from(c.password.clone()));
        entry.insert("method".into(), Value::from(c.method));
        push_bounded(fields, "credentials", Value::Object(entry), MAX_LOGGED);
    }
}

/// Serves keep-alive requests on an already-decrypted stream, at most [`MAX_REQUESTS`].
pub fn serve_plain<S: Read + Write>(
    mut conn: Conn<S>,
    ctx: &ServiceCtx,
    peer: &Peer,
    report: &Reporter,
    flavor: Flavor,
    fields: &mut Fields,
) -> io::Result<()> {
    let mut first_line = Vec::new();
    for n in 1..=MAX_REQUESTS {
        let req = match parse::read_request(&mut conn, &mut first_line) {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(()),
            Err(ReadError::Parse(e)) => {
                let status = match e {
                    ParseError::TooLarge("body") => 413,
                    ParseError::TooLarge("uri") => 414,
                    ParseError::TooLarge(_) => 431,
                    ParseError::Malformed(_) => 400,
                };
                fields.insert("bad_request".into(), Value::from(preview(&first_line, 256)));
                fields.insert("parse_error".into(), Value::from(format!("{e:?}")));
                fields.insert("status".into(), Value::from(status));
                if matches!(flavor, Flavor::DockerApi | Flavor::K8s) {
                    // Go's net/http, byte for byte.
                    let r = reason(status);
                    return conn.send(
                        format!(
                            "HTTP/1.1 {status} {r}\r\nContent-Type: text/plain; charset=utf-8\r\n\
                             Connection: close\r\n\r\n{status} {r}"
                        )
                        .as_bytes(),
                    );
                }
                let resp = bad_request(ctx, flavor, peer.dst_port, status);
                return conn.send(&wire(&resp, &Request::default(), ctx, flavor, false, 0));
            }
            Err(ReadError::Io(e)) => return Err(e),
        };
        let found = creds::credentials(&req);
        let tls = fields.get("tls").is_some_and(|v| v == true);
        let hijacked = match flavor {
            Flavor::DockerApi => products::docker_hijack(&req, ctx),
            _ => None,
        };
        let resp = match &hijacked {
            Some(_) => Response {
                status: if req.header("upgrade").is_some() {
                    101
                } else {
                    200
                },
                headers: Vec::new(),
                body: Vec::new(),
            },
            None => route(&req, ctx, peer, flavor, &found, tls),
        };
        record_request(&req, resp.status, report, fields);
        record_credentials(&req, &found, report, fields);
        if let Some((kind, details)) = products::observe(&req, ctx, resp.status, flavor) {
            if let Some(a) = details.extra.get("action") {
                push_bounded(fields, "actions", a.clone(), MAX_LOGGED);
            }
            report.emit(kind, details);
        }
        if let Some((id, spec, attach)) = hijacked {
            // The connection is the container's stdin and stdout from here on.
            let version = ctx
                .config
                .line("version")
                .unwrap_or_else(|| DOCKER_VERSION.to_owned());
            conn.send(&hijack::head(&req, &format!("Docker/{version} (linux)")))?;
            fields.insert("hijacked".into(), Value::from(true));
            return hijack::serve(&mut conn, ctx, peer, report, &id, &spec, attach);
        }
        // A page Tomcat streams to an HTTP/1.0 client ends with the connection.
        let close_delimited = flavor == Flavor::Web
            && web::persona(ctx).coyote
            && req.version == "HTTP/1.0"
            && coyote_streams(&resp);
        let keep = req.keep_alive() && n < MAX_REQUESTS && !close_delimited;
        conn.send(&wire(&resp, &req, ctx, flavor, keep, MAX_REQUESTS + 1 - n))?;
        if !keep {
            break;
        }
    }
    Ok(())
}

fn bad_request(ctx: &ServiceCtx, flavor: Flavor, port: u16, status: u16) -> Response {
    match flavor {
        Flavor::Web => web::error_response(ctx, status, port),
        _ => Response::new(
            status,
            "text/plain; charset=utf-8",
            format!("{status} {}", reason(status)),
        ),
    }
}

/// The response for a request (pure: no I/O).
pub fn route(
    req: &Request,
    ctx: &ServiceCtx,
    peer: &Peer,
    flavor: Flavor,
    creds: &[creds::Credential],
    tls: bool,
) -> Response {
    match flavor {
        Flavor::Web => web::respond(req, ctx, peer, creds),
        Flavor::DockerApi => products::docker(req, ctx),
        Flavor::K8s => products::k8s(req, ctx, !tls),
        Flavor::Elasticsearch => products::elasticsearch(req, ctx),
    }
}

/// `extra_headers`: a JSON object, or a string holding one.
pub(crate) fn extra_headers(ctx: &ServiceCtx) -> Vec<(String, String)> {
    let parsed;
    let map = match ctx.config.get("extra_headers") {
        Some(Value::Object(m)) => m,
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(m)) => {
                parsed = m;
                &parsed
            }
            _ => return Vec::new(),
        },
        _ => return Vec::new(),
    };
    map.iter()
        .filter(|(n, _)| {
            !n.is_empty()
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !matches!(
                    n.to_ascii_lowercase().as_str(),
                    "content-length" | "connection" | "transfer-encoding"
                )
        })
        .map(|(n, v)| {
            let v = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (n.clone(), one_line(&v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::testing::run;
    use super::*;
    use serde_json::json;

    #[test]
    fn web_default() {
        let (out, f) = run(
            "http",
            json!({}),
            b"GET /?x=1 HTTP/1.1\r\nHost: 10.0.0.5\r\nUser-Agent: curl/8.0\r\nConnection: close\r\n\r\n",
        );
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(out.contains("\r\nServer: Apache/2.4.52 (Ubuntu)\r\n"));
        assert!(out.contains("\r\nConnection: close\r\n"));
        assert!(out.contains("It works!"));
        let body_len = out
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.len())
            .unwrap_or(0);
        assert!(out.contains(&format!("Content-Length: {body_len}\r\n")));
        assert_eq!(f["method"], "GET");
        assert_eq!(f["path"], "/?x=1");
        assert_eq!(f["user_agent"], "curl/8.0");
        assert_eq!(f["host"], "10.0.0.5");
        assert_eq!(f["status"], 200);
    }

    #[test]
    fn web_configured_and_head() {
        let cfg = json!({
            "server_header": "nginx/1.18.0",
            "response_code": "404",
            "custom_body": "<h1>nope</h1>",
            "extra_headers": "{\"X-Powered-By\": \"PHP/7.4.3\", \"Connection\": \"keep-alive\", \"Bad\\nName\": \"x\"}"
        });
        let (out, _) = run("http", cfg.clone(), b"GET / HTTP/1.0\r\n\r\n");
        assert!(out.starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(out.contains("Server: nginx/1.18.0\r\n"));
        assert!(out.contains("X-Powered-By: PHP/7.4.3\r\n"));
        assert!(!out.contains("keep-alive") && !out.contains("Bad"));
        assert!(out.ends_with("\r\n\r\n<h1>nope</h1>"));
        let (out, f) = run(
            "http",
            cfg,
            b"HEAD / HTTP/1.1\r\nConnection: close\r\nContent-Length: 3\r\n\r\nabc",
        );
        assert!(out.ends_with("Content-Length: 13\r\nConnection: close\r\n\r\n"));
        assert_eq!(f["body"], "abc");
    }

    #[test]
    fn garbage_gets_400() {
        let (out, f) = run("http", json!({}), b"\x16\x03\x01garbage\r\n");
        assert!(out.starts_with("HTTP/1.1 400 Bad Request\r\n"));
        assert_eq!(f["bad_request"], "\\x16\\x03\\x01garbage");
        let (out, _) = run("http", json!({}), b"");
        assert!(out.is_empty());
    }

    #[test]
    fn plain_http_on_go_tls_port() {
        use super::super::testing::{ctx, peer, Mock};
        let c = ctx("k8s", json!({}));
        let mut m = Mock::new(b"GET / HTTP/1.1\r\n\r\n");
        let mut f = Fields::new();
        super::super::handle(
            &c,
            &peer(6443),
            &super::super::testing::reporter("k8s", 6443).0,
            &mut m,
            &mut f,
        )
        .expect("ok");
        assert!(m
            .out()
            .ends_with("Client sent an HTTP request to an HTTPS server.\n"));
    }

    #[test]
    fn keep_alive_requests_are_each_recorded() {
        use super::super::testing::run_events;
        let (out, f, ev) = run_events(
            "http",
            json!({}),
            b"GET /a?x=1 HTTP/1.1\r\nUser-Agent: ua\r\nCookie: s=1\r\n\r\n\
              POST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n\
              GET /c HTTP/1.1\r\nConnection: close\r\n\r\nGET /never HTTP/1.1\r\n\r\n",
        );
        assert_eq!(out.matches("HTTP/1.1 404 Not Found").count(), 3, "{out}");
        assert_eq!(out.matches("Connection: close").count(), 1, "{out}");
        assert!(out.contains("Keep-Alive: timeout=5, max=99\r\nConnection: Keep-Alive\r\n"));
        assert!(out.contains("Keep-Alive: timeout=5, max=100\r\nConnection: Keep-Alive\r\n"));
        assert_eq!(f["requests"], 3);
        assert_eq!(ev.len(), 3);
        let d = &ev[0].details;
        assert_eq!(ev[0].kind, AttackKind::Request);
        assert_eq!(d.http_method.as_deref(), Some("GET"));
        assert_eq!(d.path.as_deref(), Some("/a"));
        assert_eq!(d.user_agent.as_deref(), Some("ua"));
        assert_eq!(d.extra["query"], "x=1");
        assert_eq!(d.extra["headers"]["cookie"], "s=1");
        assert_eq!(d.extra["status"], 404);
        assert_eq!(ev[1].details.bytes_in, Some(2));
        assert_eq!(ev[1].details.extra["body"], "hi");
        assert_eq!(ev[2].details.path.as_deref(), Some("/c"));
    }

    #[test]
    fn oversized_and_malformed_requests() {
        use super::super::testing::run_events;
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(40_000));
        let (out, f, ev) = run_events("docker_api", json!({}), big.as_bytes());
        assert!(out.starts_with("HTTP/1.1 431 "), "{out}");
        assert!(ev.is_empty());
        assert_eq!(f["status"], 431);
        let (out, _, _) = run_events(
            "elasticsearch",
            json!({}),
            b"POST / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n",
        );
        assert!(out.starts_with("HTTP/1.1 413 "), "{out}");
    }

    #[test]
    fn schemes_per_port() {
        use super::super::testing::{ctx, peer, reporter, Mock};
        assert_eq!(scheme(Flavor::DockerApi, 2375), Scheme::Plain);
        assert_eq!(scheme(Flavor::DockerApi, 2376), Scheme::Tls);
        assert_eq!(scheme(Flavor::K8s, 8080), Scheme::Plain);
        assert_eq!(scheme(Flavor::K8s, 6443), Scheme::Tls);
        assert_eq!(scheme(Flavor::Elasticsearch, 9200), Scheme::Plain);
        assert_eq!(scheme(Flavor::Elasticsearch, 19200), Scheme::Sniff);
        // A ClientHello on docker's plain port gets Go's plain 400, even with a certificate.
        let mut c = ctx("docker_api", json!({}));
        c.tls = Some(tls::server_config("web-01", &[]).expect("tls"));
        let mut m = Mock::new(b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03");
        let mut f = Fields::new();
        super::super::handle(
            &c,
            &peer(2375),
            &reporter("docker_api", 2375).0,
            &mut m,
            &mut f,
        )
        .expect("ok");
        assert!(
            m.out().starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{}",
            m.out()
        );
        assert!(m.out().ends_with("400 Bad Request"), "{}", m.out());
    }

    fn auths(
        ev: &[crate::log::AttackEvent],
    ) -> Vec<(Option<String>, Option<String>, Option<String>)> {
        ev.iter()
            .filter(|e| e.kind == AttackKind::Auth)
            .map(|e| {
                (
                    e.details.username.clone(),
                    e.details.password.clone(),
                    e.details.method.clone(),
                )
            })
            .collect()
    }

    fn cred(u: &str, p: &str, m: &str) -> (Option<String>, Option<String>, Option<String>) {
        (Some(u.into()), Some(p.into()), Some(m.into()))
    }

    #[test]
    fn wordpress_login_xmlrpc_and_404() {
        use super::super::testing::run_events;
        let cfg = json!({"fake_app": "wordpress"});
        let body = "log=admin&pwd=Summer2024%21&wp-submit=Log+In&testcookie=1";
        let input = format!(
            "POST /wp-login.php HTTP/1.1\r\nHost: blog.corp:8080\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\n\r\n{body}GET /nope HTTP/1.1\r\nHost: blog.corp\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let (out, f, ev) = run_events("http", cfg.clone(), input.as_bytes());
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(out.contains("Server: Apache/2.4.41 (Ubuntu)\r\n"));
        assert!(out.contains("X-Powered-By: PHP/7.4.3\r\n"));
        assert!(out.contains("Set-Cookie: wordpress_test_cookie=WP%20Cookie%20check"));
        assert!(out.contains(
            "The password you entered for the username <strong>admin</strong> is incorrect."
        ));
        assert!(out.contains("action=\"http://blog.corp:8080/wp-login.php\""));
        assert!(out.contains("HTTP/1.1 404 Not Found\r\n"));
        assert!(out.contains("<title>Page not found &#8211; web-01</title>"));
        assert_eq!(auths(&ev), [cred("admin", "Summer2024!", "form")]);
        assert_eq!(f["credentials"][0]["username"], "admin");
        let xml = "<?xml version=\"1.0\"?><methodCall><methodName>wp.getUsersBlogs</methodName><params>\
                   <param><value><string>editor</string></value></param><param><value><string>123456</string></value></param>\
                   </params></methodCall>";
        let input = format!(
            "POST /xmlrpc.php HTTP/1.0\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{xml}",
            xml.len()
        );
        let (out, _, ev) = run_events("http", cfg, input.as_bytes());
        assert!(out.contains("Incorrect username or password."));
        assert_eq!(auths(&ev), [cred("editor", "123456", "xmlrpc")]);
    }

    #[test]
    fn conpot_hmi_names_the_plc_and_records_its_login() {
        use super::super::testing::run_events;
        let (out, _, _) = run_events("conpot", json!({}), b"GET / HTTP/1.0\r\n\r\n");
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(
            out.contains("Server: Siemens, SIMATIC, S7-200\r\n"),
            "{out}"
        );
        assert!(
            out.contains("<title>Siemens, SIMATIC, S7-200 - WEB-01</title>"),
            "{out}"
        );
        assert!(out.contains("6ES7 216-2AD23-0XB0"), "{out}");
        let body = "Login=admin&Password=100&Redirection=";
        let req = format!(
            "POST /FormLogin HTTP/1.1\r\nHost: plc\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let (out, _, ev) = run_events("conpot", json!({}), req.as_bytes());
        assert!(
            out.contains("Login failed. User admin or password incorrect."),
            "{out}"
        );
        assert_eq!(auths(&ev), [cred("admin", "100", "form")]);
        let (out, _, _) = run_events("conpot", json!({}), b"GET /cgi-bin/x HTTP/1.0\r\n\r\n");
        assert!(out.starts_with("HTTP/1.1 404 Not Found\r\n"), "{out}");
        // An http decky can wear the HMI too; a conpot one another web persona.
        let (out, _, _) = run_events(
            "http",
            json!({"fake_app": "s7-hmi"}),
            b"GET / HTTP/1.0\r\n\r\n",
        );
        assert!(
            out.contains("Server: Siemens, SIMATIC, S7-200\r\n"),
            "{out}"
        );
        let (out, _, _) = run_events(
            "conpot",
            json!({"fake_app": "nginx"}),
            b"GET / HTTP/1.0\r\n\r\n",
        );
        assert!(!out.contains("Siemens"), "{out}");
        // A Modbus frame on the same (custom) port still reaches the PLC.
        let (out, _) = super::super::testing::run_bytes(
            "conpot",
            json!({}),
            b"\x00\x01\x00\x00\x00\x06\x01\x03\x00\x00\x00\x01",
        );
        assert_eq!(&out[..8], b"\x00\x01\x00\x00\x00\x05\x01\x03");
    }

    #[test]
    fn basic_auth_personas() {
        use super::super::testing::run_events;
        let (out, _, ev) = run_events(
            "http",
            json!({"fake_app": "tomcat"}),
            b"GET /manager/html HTTP/1.1\r\nAuthorization: Basic dG9tY2F0OnRvbWNhdA==\r\nConnection: close\r\n\r\n",
        );
        assert!(out.starts_with("HTTP/1.1 401 \r\n"), "{out}");
        assert!(out.contains("WWW-Authenticate: Basic realm=\"Tomcat Manager Application\"\r\n"));
        assert!(!out.contains("Server:"));
        assert_eq!(auths(&ev), [cred("tomcat", "tomcat", "basic")]);
        let (out, _, ev) = run_events(
            "http",
            json!({"fake_app": "router"}),
            b"GET / HTTP/1.0\r\nAuthorization: Basic YWRtaW46cGFzc3dvcmQ=\r\n\r\n",
        );
        assert!(
            out.contains("Server: mini_httpd/1.19 19dec2003\r\n"),
            "{out}"
        );
        assert!(out.contains("Basic realm=\"NETGEAR R7000\""));
        assert_eq!(auths(&ev), [cred("admin", "password", "basic")]);
    }

    #[test]
    fn owa_phpmyadmin_jenkins_nas() {
        use super::super::testing::run_events;
        let body = "destination=https%3A%2F%2Fmail%2Fowa%2F&flags=4&forcedownlevel=0&username=CORP%5Cjdoe&password=Winter1&passwordText=&isUtf8=1";
        let input = format!(
            "POST /owa/auth.owa HTTP/1.1\r\nHost: mail.corp\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let (out, _, ev) = run_events("http", json!({"fake_app": "owa"}), input.as_bytes());
        assert!(out.starts_with("HTTP/1.1 302 Found\r\n"), "{out}");
        assert!(out
            .contains("Location: https://mail.corp/owa/auth/logon.aspx?replaceCurrent=1&reason=2"));
        assert!(out.contains("X-OWA-Version: 15.1.2507.6\r\n"));
        assert!(out.contains("X-FEServer: WEB-01\r\n"));
        assert_eq!(auths(&ev), [cred("CORP\\jdoe", "Winter1", "form")]);
        let (out, _, _) = run_events(
            "http",
            json!({"fake_app": "owa"}),
            b"GET /owa/auth/logon.aspx HTTP/1.0\r\n\r\n",
        );
        assert!(out.contains("<title>Outlook</title>"));

        let body = "pma_username=root&pma_password=toor&server=1&token=abc";
        let input = format!(
            "POST /index.php?route=/ HTTP/1.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let (out, _, ev) = run_events("http", json!({"fake_app": "phpmyadmin"}), input.as_bytes());
        assert!(
            out.contains("Access denied for user 'root'@'localhost' (using password: YES)"),
            "{out}"
        );
        assert!(out.contains("Set-Cookie: phpMyAdmin="));
        assert_eq!(auths(&ev), [cred("root", "toor", "form")]);

        let (out, _, _) = run_events(
            "http",
            json!({"fake_app": "jenkins"}),
            b"GET / HTTP/1.0\r\n\r\n",
        );
        assert!(out.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{out}");
        assert!(
            out.contains("X-Jenkins: 2.387.3\r\n") && out.contains("Server: Jetty(10.0.13)\r\n")
        );
        let body = "j_username=admin&j_password=admin&from=%2F&Submit=Sign+in";
        let input = format!(
            "POST /j_spring_security_check HTTP/1.0\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let (out, _, ev) = run_events("http", json!({"fake_app": "jenkins"}), input.as_bytes());
        assert!(out.contains("Location: http://web-01/loginError"), "{out}");
        assert_eq!(auths(&ev), [cred("admin", "admin", "form")]);

        let (out, _, ev) = run_events(
            "http",
            json!({"fake_app": "nas"}),
            b"GET /webapi/auth.cgi?api=SYNO.API.Auth&version=3&method=login&account=admin&passwd=synology HTTP/1.0\r\n\r\n",
        );
        assert!(
            out.ends_with("{\"error\":{\"code\":400},\"success\":false}"),
            "{out}"
        );
        assert_eq!(auths(&ev), [cred("admin", "synology", "form")]);
    }

    #[test]
    fn product_404s_and_hostile_host() {
        use super::super::testing::run_events;
        let (out, _, _) = run_events(
            "http",
            json!({}),
            b"GET /x HTTP/1.0\r\nHost: a.b:81\r\n\r\n",
        );
        assert!(
            out.contains("<address>Apache/2.4.52 (Ubuntu) Server at a.b Port 1</address>"),
            "{out}"
        );
        let (out, _, _) = run_events(
            "http",
            json!({"server_header": "nginx/1.24.0"}),
            b"GET /x HTTP/1.0\r\n\r\n",
        );
        assert!(out.contains("<hr><center>nginx/1.24.0</center>"), "{out}");
        let (out, _, _) = run_events(
            "http",
            json!({"fake_app": "iis"}),
            b"GET /X.aspx HTTP/1.0\r\n\r\n",
        );
        assert!(out.contains("404 - File or directory not found."), "{out}");
        let (out, _, _) = run_events(
            "http",
            json!({"fake_app": "tomcat"}),
            b"GET /<script> HTTP/1.0\r\n\r\n",
        );
        assert!(
            out.contains("The requested resource [/&lt;script&gt;] is not available"),
            "{out}"
        );
        let (out, _, _) = run_events(
            "http",
            json!({"fake_app": "wordpress"}),
            b"GET /wp-admin/ HTTP/1.0\r\nHost: x\"><b>\r\n\r\n",
        );
        assert!(
            out.contains("Location: http://web-01/wp-login.php"),
            "{out}"
        );
    }

    #[test]
    fn tomcat_streams_its_index_like_coyote() {
        let cfg = json!({"fake_app": "tomcat"});
        // To HTTP/1.0: no length, Date after the headers, then the close (nmap's signature of
        // Tomcat's default page is this reply).
        let (out, _) = run("http", cfg.clone(), b"GET / HTTP/1.0\r\n\r\n");
        let (head, body) = out.split_once("\r\n\r\n").expect("head");
        assert!(
            head.starts_with("HTTP/1.1 200 \r\nContent-Type: text/html;charset=UTF-8\r\nDate: "),
            "{head}"
        );
        assert!(head.ends_with(" GMT\r\nConnection: close"), "{head}");
        assert!(!head.contains("Content-Length"), "{head}");
        assert!(body.starts_with("\n\n\n<!DOCTYPE html>"), "{body}");
        // To HTTP/1.1: chunked, kept alive; a 404 has its length before Date.
        let (out, _) = run(
            "http",
            cfg,
            b"GET / HTTP/1.1\r\nHost: t\r\n\r\nGET /x HTTP/1.1\r\nConnection: close\r\n\r\n",
        );
        assert!(
            out.contains("Transfer-Encoding: chunked\r\nDate: "),
            "{out}"
        );
        assert!(
            out.contains("</html>\n\r\n0\r\n\r\nHTTP/1.1 404 \r\n"),
            "{out}"
        );
        let nf = &out[out.find("HTTP/1.1 404").unwrap_or(0)..];
        let at = |s: &str| nf.find(s).unwrap_or(usize::MAX);
        assert!(at("Content-Length: ") < at("Date: "), "{nf}");
        assert!(at("Date: ") < at("Connection: close"), "{nf}");
    }

    #[test]
    fn unreadable_requests_get_the_personas_own_400() {
        let (out, _) = run(
            "http",
            json!({"fake_app": "tomcat"}),
            b"\x16\x03\x01junk\r\n\r\n",
        );
        assert!(out.starts_with("HTTP/1.1 400 \r\n"), "{out}");
        assert!(
            out.contains("HTTP Status 400 – Bad Request") && !out.contains("Server:"),
            "{out}"
        );
        let (out, _) = run("http", json!({"fake_app": "router"}), b"junk\r\n\r\n");
        assert!(
            out.contains("Server: mini_httpd/1.19 19dec2003\r\n"),
            "{out}"
        );
        assert!(out.contains("<TITLE>400 Bad Request</TITLE>"), "{out}");
        let (out, _) = run("http", json!({}), b"junk\r\n\r\n");
        assert!(
            out.contains("Your browser sent a request that this server could not understand."),
            "{out}"
        );
    }

    #[test]
    fn paths() {
        let r = |t: &str| Request {
            target: t.into(),
            ..Request::default()
        };
        assert_eq!(r("/a?b").path(), "/a");
        assert_eq!(r("http://x.y/z?q").path(), "/z");
        assert_eq!(r("http://x.y").path(), "/");
    }
}

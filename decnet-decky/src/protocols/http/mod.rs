//! HTTP personas: a web server (http/https), the Docker Engine API,
//! the Kubernetes API server and Elasticsearch. One request per connection,
//! answered with `Connection: close`.
//!
//! HTTP-family services sniff the first byte: a TLS ClientHello (0x16) gets
//! a TLS handshake with the self-signed certificate first, so the same
//! responder covers 80/443, 2375/2376 and 8080/6443.

use std::io::{self, Read, Write};
use std::time::SystemTime;

use serde_json::Value;

use super::{tls, Conn, Peer, ServiceCtx};

mod products;
use crate::config::one_line;
use crate::log::{http_date, AttackKind, Fields, Reporter};
use crate::util::{clip, preview};

pub const DEFAULT_SERVER: &str = "Apache/2.4.52 (Ubuntu)";
pub const DOCKER_VERSION: &str = "20.10.24";
pub const ES_VERSION: &str = "7.17.9";
pub const K8S_VERSION: &str = "v1.28.4";

const MAX_HEAD_LINE: usize = 8192;
const MAX_HEADERS: usize = 100;
/// Request bodies up to this size are read and previewed in the log.
const MAX_BODY: usize = 16 * 1024;

/// Which product the HTTP responder pretends to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Web,
    DockerApi,
    K8s,
    Elasticsearch,
}

/// A parsed request head.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub target: String,
    pub version: String,
    pub headers: Vec<(String, String)>,
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

    /// Serialises the response; `head_only` omits the body (HEAD).
    pub fn to_bytes(&self, head_only: bool) -> Vec<u8> {
        let mut out = format!("HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        for (n, v) in &self.headers {
            out.push_str(&format!("{n}: {v}\r\n"));
        }
        out.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            self.body.len()
        ));
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
        418 => "I'm a teapot",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

/// Entry point for `http`, `docker_api`, `k8s`, `elasticsearch`: TLS if
/// the client starts with a ClientHello, else plain HTTP.
pub fn handle<S: Read + Write>(
    mut conn: Conn<S>,
    ctx: &ServiceCtx,
    peer: &Peer,
    report: &Reporter,
    flavor: Flavor,
    fields: &mut Fields,
) -> io::Result<()> {
    match (conn.peek()?, &ctx.tls) {
        (None, _) => Ok(()),
        (Some(0x16), Some(config)) => {
            let mut tls = tls::accept(config, conn.into_prefixed(), fields)?;
            let res = serve_plain(Conn::new(&mut tls), ctx, peer, report, flavor, fields);
            tls::close(&mut tls);
            res
        }
        _ => {
            if go_tls_port(flavor, peer.dst_port) {
                // What Go's TLS server says to plain HTTP on its TLS port.
                let _ = read_head(&mut conn, fields);
                return conn.send(
                    b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n",
                );
            }
            serve_plain(conn, ctx, peer, report, flavor, fields)
        }
    }
}

/// Ports where the real (Go) product only speaks TLS.
fn go_tls_port(flavor: Flavor, port: u16) -> bool {
    matches!(
        (flavor, port),
        (Flavor::K8s, 6443) | (Flavor::DockerApi, 2376)
    )
}

/// Reads the request head; `Ok(None)` at end of stream, `Err` with
/// `InvalidData` when it is not HTTP.
fn read_head<S: Read + Write>(
    conn: &mut Conn<S>,
    fields: &mut Fields,
) -> io::Result<Option<Request>> {
    let Some(first) = conn.read_line(MAX_HEAD_LINE)? else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&first);
    let mut parts = text.split_ascii_whitespace();
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        fields.insert("bad_request".into(), Value::from(preview(&first, 256)));
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not an HTTP request",
        ));
    };
    if !version.starts_with("HTTP/") || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        fields.insert("bad_request".into(), Value::from(preview(&first, 256)));
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not an HTTP request",
        ));
    }
    let mut req = Request {
        method: clip(method.as_bytes(), 16),
        target: clip(target.as_bytes(), 2048),
        version: clip(version.as_bytes(), 16),
        headers: Vec::new(),
    };
    fields.insert("method".into(), Value::from(req.method.clone()));
    fields.insert("path".into(), Value::from(req.target.clone()));
    fields.insert("version".into(), Value::from(req.version.clone()));
    for _ in 0..MAX_HEADERS {
        let Some(line) = conn.read_line(MAX_HEAD_LINE)? else {
            break;
        };
        if line.is_empty() {
            break;
        }
        let line = String::from_utf8_lossy(&line);
        if let Some((n, v)) = line.split_once(':') {
            req.headers.push((n.trim().to_owned(), v.trim().to_owned()));
        }
    }
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
    Ok(Some(req))
}

/// Serves one request on an already-decrypted stream.
pub fn serve_plain<S: Read + Write>(
    mut conn: Conn<S>,
    ctx: &ServiceCtx,
    peer: &Peer,
    report: &Reporter,
    flavor: Flavor,
    fields: &mut Fields,
) -> io::Result<()> {
    let req = match read_head(&mut conn, fields) {
        Ok(Some(r)) => r,
        Ok(None) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            let resp = bad_request(ctx, flavor, peer.dst_port);
            fields.insert("status".into(), Value::from(resp.status));
            return conn.send(&resp.to_bytes(false));
        }
        Err(e) => return Err(e),
    };
    if let Some(len) = req
        .header("content-length")
        .and_then(|l| l.trim().parse::<usize>().ok())
        .filter(|&l| l > 0)
    {
        let body = conn.read_exact_vec(len.min(MAX_BODY))?;
        fields.insert("body".into(), Value::from(preview(&body, 1024)));
    }
    let resp = route(&req, ctx, peer, flavor);
    fields.insert("status".into(), Value::from(resp.status));
    let mut step = Fields::new();
    for key in ["method", "path", "user_agent", "body", "status"] {
        if let Some(v) = fields.get(key) {
            let key = if key == "method" { "http_method" } else { key };
            step.insert(key.into(), v.clone());
        }
    }
    report.emit_fields(AttackKind::Request, step);
    conn.send(&resp.to_bytes(req.method == "HEAD"))
}

fn bad_request(ctx: &ServiceCtx, flavor: Flavor, port: u16) -> Response {
    match flavor {
        Flavor::Web => web_response(ctx, 400, port),
        _ => Response::new(400, "text/plain; charset=utf-8", "400 Bad Request"),
    }
}

/// The response for a request (pure: no I/O).
pub fn route(req: &Request, ctx: &ServiceCtx, peer: &Peer, flavor: Flavor) -> Response {
    match flavor {
        Flavor::Web => {
            let status = ctx
                .config
                .u16("response_code")
                .filter(|s| (200..=599).contains(s))
                .unwrap_or(200);
            web_response(ctx, status, peer.dst_port)
        }
        Flavor::DockerApi => products::docker(req, ctx),
        Flavor::K8s => products::k8s(req),
        Flavor::Elasticsearch => products::elasticsearch(req, ctx),
    }
}

fn web_response(ctx: &ServiceCtx, status: u16, port: u16) -> Response {
    let server = ctx
        .config
        .line("server_header")
        .unwrap_or_else(|| DEFAULT_SERVER.to_owned());
    let body = match ctx.config.string("custom_body") {
        Some(b) => b,
        None if status == 200 => welcome_page(&server),
        None => error_page(status, &server, &ctx.hostname, port),
    };
    let mut resp = Response {
        status,
        headers: vec![
            ("Date".into(), http_date(SystemTime::now())),
            ("Server".into(), server),
        ],
        body: body.into_bytes(),
    };
    let extra = extra_headers(ctx);
    if !extra
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
    {
        resp.headers
            .push(("Content-Type".into(), "text/html; charset=UTF-8".into()));
    }
    resp.headers.extend(extra);
    resp
}

/// `extra_headers`: a JSON object, or a string holding one.
fn extra_headers(ctx: &ServiceCtx) -> Vec<(String, String)> {
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

fn welcome_page(server: &str) -> String {
    if server.to_ascii_lowercase().contains("nginx") {
        return "<!DOCTYPE html>\n<html>\n<head>\n<title>Welcome to nginx!</title>\n</head>\n<body>\n\
                <h1>Welcome to nginx!</h1>\n<p>If you see this page, the nginx web server is successfully \
                installed and working. Further configuration is required.</p>\n</body>\n</html>\n"
            .into();
    }
    "<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Transitional//EN\" \
     \"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd\">\n\
     <html xmlns=\"http://www.w3.org/1999/xhtml\">\n<head>\n\
     <meta http-equiv=\"Content-Type\" content=\"text/html; charset=UTF-8\" />\n\
     <title>Apache2 Ubuntu Default Page: It works</title>\n</head>\n<body>\n\
     <div class=\"main_page\"><h1>It works!</h1>\n<p>This is the default welcome page used to test \
     the correct operation of the Apache2 server after installation on Ubuntu systems.</p></div>\n\
     </body>\n</html>\n"
        .into()
}

fn error_page(status: u16, server: &str, host: &str, port: u16) -> String {
    let r = reason(status);
    format!(
        "<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\n<html><head>\n<title>{status} {r}</title>\n\
         </head><body>\n<h1>{r}</h1>\n<p>The server could not complete your request.</p>\n<hr>\n\
         <address>{server} Server at {host} Port {port}</address>\n</body></html>\n"
    )
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
            b"GET /admin?x=1 HTTP/1.1\r\nHost: 10.0.0.5\r\nUser-Agent: curl/8.0\r\n\r\n",
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
        assert_eq!(f["path"], "/admin?x=1");
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
            b"HEAD / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
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

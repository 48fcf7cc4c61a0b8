//! How client commands reach the master (PRODUCT §4): which URL, which API token, and an HTTP
//! client that verifies the master's certificate against the data dir's CA.
//!
//! * URL: `--master` (clap also fills it from `DECNET_MASTER_URL`) > `<data-dir>/master.json`
//!   (written by `decnet serve` while it runs) > no master.
//! * Token: `--token` (or `DECNET_TOKEN`) > `<data-dir>/admin.token`.
//! * `https://` masters are verified by CA (the data dir's `ca.crt` or `--ca FILE`) and CN
//!   `decnet-master`, never by host name and never skipped; `http://` is allowed only to a
//!   loopback address (the master itself serves plain HTTP only there).
//!
//! The token goes only into the `Authorization` header: no message here ever contains it.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use decnet_tls::pki::MASTER_CN;
use decnet_tls::rustls;
use decnet_tls::verify::{anonymous_client_config, PeerPolicy};
use reqwest::{Method, StatusCode, Url};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::CliError;
use crate::master::layout::DataDir;

/// The message when no master can be found.
pub const NO_MASTER: &str = "no master: pass --master URL or start `decnet serve`";

/// How long to wait for a TCP/TLS connection to the master.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one request may take (decommissioning waits for a best-effort self-destruct).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a followed event stream may last (a year: within what tokio's timers take).
const STREAM_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 3600);

/// `<data-dir>/master.json`, as `decnet serve` writes it while it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MasterJson {
    /// The operator API, e.g. `http://127.0.0.1:8000`.
    pub api_url: String,
    /// The swarm endpoint, e.g. `https://host:8770`.
    #[serde(default)]
    pub swarm_url: Option<String>,
    /// The process serving them.
    #[serde(default)]
    pub pid: Option<u32>,
}

/// Parses the text of a `master.json`; `path` only names the file in errors.
pub fn parse_master_json(text: &str, path: &Path) -> Result<MasterJson, CliError> {
    serde_json::from_str(text).map_err(|e| {
        CliError::usage(format!(
            "{}: not a master.json written by `decnet serve` ({e}); remove it or pass --master URL",
            path.display()
        ))
    })
}

/// Reads `master.json`; `None` when it does not exist.
pub fn read_master_json(path: &Path) -> Result<Option<MasterJson>, CliError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_master_json(&text, path).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CliError::usage(format!("{}: {e}", path.display()))),
    }
}

/// Where the master's URL came from (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlSource {
    /// `--master` / `DECNET_MASTER_URL`.
    Flag,
    /// The data dir's `master.json`.
    MasterJson(PathBuf),
}

impl fmt::Display for UrlSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UrlSource::Flag => f.write_str("--master"),
            UrlSource::MasterJson(p) => write!(f, "{}", p.display()),
        }
    }
}

/// A checked master URL and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasterUrl {
    pub url: Url,
    pub source: UrlSource,
}

/// Where the API token came from (for messages; the token itself is never shown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// `--token` / `DECNET_TOKEN`.
    Flag,
    /// A token file (the data dir's `admin.token`).
    File(PathBuf),
}

impl fmt::Display for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenSource::Flag => f.write_str("--token/DECNET_TOKEN"),
            TokenSource::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// An empty flag value (e.g. `DECNET_TOKEN=`) counts as absent.
fn present(flag: Option<String>) -> Option<String> {
    flag.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// Whether `url` names this machine: a loopback IP or `localhost`.
pub fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Parses and checks a master URL: `https://…`, or `http://` to a loopback address.
pub fn parse_master_url(text: &str, source: &UrlSource) -> Result<Url, CliError> {
    let bad = |rule: &str| CliError::usage(format!("{source}: {text:?} {rule}"));
    let url = Url::parse(text.trim()).map_err(|e| {
        bad(&format!(
            "is not a URL ({e}); expected e.g. http://127.0.0.1:8000"
        ))
    })?;
    if url.host().is_none() {
        return Err(bad("has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not carry credentials (use --token)"));
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        "http" => Err(bad(
            "is plain http to a non-loopback address: use https:// (the master serves HTTPS \
             on any other address)",
        )),
        _ => Err(bad("must be an http:// or https:// URL")),
    }
}

/// The master's URL: `--master` (or `DECNET_MASTER_URL`, which clap puts in the same flag),
/// else the data dir's `master.json`, else `None`.
pub fn find_master(layout: &DataDir, flag: Option<String>) -> Result<Option<MasterUrl>, CliError> {
    if let Some(text) = present(flag) {
        let source = UrlSource::Flag;
        let url = parse_master_url(&text, &source)?;
        return Ok(Some(MasterUrl { url, source }));
    }
    let path = layout.master_json();
    match read_master_json(&path)? {
        Some(mj) => {
            let source = UrlSource::MasterJson(path);
            let url = parse_master_url(&mj.api_url, &source)?;
            Ok(Some(MasterUrl { url, source }))
        }
        None => Ok(None),
    }
}

/// The API token: `--token` (or `DECNET_TOKEN`), else the data dir's `admin.token`.
pub fn find_token(
    layout: &DataDir,
    flag: Option<String>,
) -> Result<(String, TokenSource), CliError> {
    let (token, source) = match present(flag) {
        Some(t) => (t, TokenSource::Flag),
        None => {
            let path = layout.admin_token();
            match std::fs::read_to_string(&path) {
                Ok(text) => (text.trim().to_string(), TokenSource::File(path)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(CliError::usage(format!(
                        "no API token: pass --token (or set DECNET_TOKEN); {} does not exist",
                        path.display()
                    )))
                }
                Err(e) => {
                    return Err(CliError::usage(format!(
                        "no API token: cannot read {}: {e}; pass --token (or set DECNET_TOKEN)",
                        path.display()
                    )))
                }
            }
        }
    };
    if token.is_empty() {
        return Err(CliError::usage(format!("{source}: the API token is empty")));
    }
    // A header value must be visible ASCII; say so without echoing the secret.
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(CliError::usage(format!(
            "{source}: the API token has characters a token cannot have"
        )));
    }
    Ok((token, source))
}

/// An authenticated connection to the master's operator API.
pub struct MasterClient {
    http: reqwest::Client,
    base: MasterUrl,
    token: String,
    token_source: TokenSource,
}

impl fmt::Debug for MasterClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterClient")
            .field("base", &self.base)
            .field("token", &"<redacted>")
            .field("token_source", &self.token_source)
            .finish_non_exhaustive()
    }
}

impl MasterClient {
    /// Finds the master and the token (see the module docs) and builds the client.
    pub fn discover(
        data_dir: &Path,
        master_flag: Option<String>,
        token_flag: Option<String>,
        ca_flag: Option<PathBuf>,
    ) -> Result<Self, CliError> {
        let layout = DataDir::new(data_dir);
        let base = find_master(&layout, master_flag)?.ok_or_else(|| CliError::usage(NO_MASTER))?;
        let (token, token_source) = find_token(&layout, token_flag)?;
        let ca_pem = if base.url.scheme() == "https" {
            Some(read_ca(&layout, ca_flag.as_deref(), &base.url)?)
        } else {
            None
        };
        Self::new(base, token, token_source, ca_pem.as_deref())
    }

    /// Builds the client; `ca_pem` is required for an `https://` URL.
    pub fn new(
        base: MasterUrl,
        token: String,
        token_source: TokenSource,
        ca_pem: Option<&str>,
    ) -> Result<Self, CliError> {
        let tls = match (base.url.scheme(), ca_pem) {
            ("https", Some(pem)) => {
                let policy = PeerPolicy::from_ca_pem(pem)
                    .map_err(|e| CliError::usage(format!("CA certificate: {e}")))?
                    .with_expected_cn(MASTER_CN);
                anonymous_client_config(&policy)
                    .map_err(|e| CliError::usage(format!("CA certificate: {e}")))?
            }
            ("https", None) => {
                return Err(CliError::usage(format!(
                    "{}: no CA certificate to verify the master with (pass --ca FILE)",
                    base.url
                )))
            }
            // Plain http (loopback only): a TLS configuration that trusts nothing, so the
            // client can never talk TLS to anyone without verification.
            _ => std::sync::Arc::new(
                rustls::ClientConfig::builder_with_provider(decnet_tls::verify::provider())
                    .with_safe_default_protocol_versions()
                    .context("tls configuration")?
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth(),
            ),
        };
        let mut builder = reqwest::Client::builder()
            .use_preconfigured_tls((*tls).clone())
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("decnet/", env!("CARGO_PKG_VERSION")));
        if is_loopback(&base.url) {
            // Never hand a loopback request (and its token) to a proxy.
            builder = builder.no_proxy();
        }
        let http = builder.build().context("build the http client")?;
        Ok(Self {
            http,
            base,
            token,
            token_source,
        })
    }

    /// The master's base URL.
    pub fn url(&self) -> &Url {
        &self.base.url
    }

    /// GET `path` (e.g. `/api/v1/tokens`): the JSON body.
    pub async fn get(&self, path: &str) -> Result<Value, CliError> {
        self.send(Method::GET, path, None).await
    }

    /// POST `body` to `path`: the JSON body of the answer.
    pub async fn post<B: serde::Serialize + ?Sized>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<Value, CliError> {
        let body = serde_json::to_value(body).map_err(|e| {
            CliError::Failed(anyhow::anyhow!("serialise the request to {path}: {e}"))
        })?;
        self.send(Method::POST, path, Some(&body)).await
    }

    /// DELETE `path`: the JSON body of the answer (`Value::Null` for 204).
    pub async fn delete(&self, path: &str) -> Result<Value, CliError> {
        self.send(Method::DELETE, path, None).await
    }

    /// GET `path` as a stream (server-sent events): the response once its status is 2xx, with
    /// no overall time limit (only connecting is bounded).
    pub async fn stream(&self, path: &str) -> Result<reqwest::Response, CliError> {
        let url = self.endpoint(path);
        let resp = self
            .http
            .get(&url)
            .bearer_auth(&self.token)
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .timeout(STREAM_TIMEOUT)
            .send()
            .await
            .map_err(|e| self.unreachable(&url, &e))?;
        let status = resp.status();
        if !status.is_success() {
            let bytes = resp.bytes().await.unwrap_or_default();
            return Err(self.status_error(status, &bytes, &Method::GET, &url));
        }
        Ok(resp)
    }

    /// Reads the next chunk of a [`Self::stream`] answer (`None` at its end).
    pub async fn next_chunk(
        &self,
        resp: &mut reqwest::Response,
    ) -> Result<Option<axum::body::Bytes>, CliError> {
        let url = resp.url().to_string();
        resp.chunk().await.map_err(|e| self.unreachable(&url, &e))
    }

    fn endpoint(&self, path: &str) -> String {
        format!(
            "{}/{}",
            self.base.url.as_str().trim_end_matches('/'),
            path.trim_start_matches('/')
        )
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, CliError> {
        let url = self.endpoint(path);
        let mut req = self
            .http
            .request(method.clone(), &url)
            .bearer_auth(&self.token)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(b) = body {
            req = req.json(b);
        }
        tracing::debug!(%method, %url, "operator api request");
        let resp = req.send().await.map_err(|e| self.unreachable(&url, &e))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| self.unreachable(&url, &e))?;
        if !status.is_success() {
            return Err(self.status_error(status, &bytes, &method, &url));
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            CliError::Failed(anyhow::anyhow!(
                "{method} {url}: the master answered {status} with a body that is not JSON ({e})"
            ))
        })
    }

    fn unreachable(&self, url: &str, e: &reqwest::Error) -> CliError {
        let hint = match &self.base.source {
            UrlSource::MasterJson(p) => format!(
                " (URL from {}: is `decnet serve` still running?)",
                p.display()
            ),
            UrlSource::Flag => String::new(),
        };
        CliError::Failed(anyhow::anyhow!(
            "cannot reach the master at {url}: {}{hint}",
            error_chain(e)
        ))
    }

    fn status_error(
        &self,
        status: StatusCode,
        body: &[u8],
        method: &Method,
        url: &str,
    ) -> CliError {
        status_error(
            status.as_u16(),
            body,
            &format!("{method} {url}"),
            &self.token_source,
        )
    }
}

/// The error for a non-2xx answer. `what` names the request (`GET http://…`).
///
/// 401 → exit 2 (token rejected), 403 → exit 2 (role), 400/422 → exit 2 with the master's
/// `detail`, 404 → exit 1 (not found, as docker and kubectl exit) with the detail, 409 → exit 1 with the detail, anything else (5xx, 429, …) → exit 1 naming the
/// request.
pub fn status_error(status: u16, body: &[u8], what: &str, token: &TokenSource) -> CliError {
    let detail = detail(body);
    match status {
        401 => CliError::usage(format!(
            "token rejected by the master ({token}; {what} answered 401)"
        )),
        403 => CliError::usage(format!(
            "this token's role may not do that ({what} answered 403; an admin token is needed)"
        )),
        400 | 422 => CliError::usage(detail.unwrap_or_else(|| format!("{what}: HTTP {status}"))),
        404 => CliError::not_found(detail.unwrap_or_else(|| format!("{what}: HTTP 404"))),
        409 => CliError::Failed(anyhow::anyhow!(
            "{}",
            detail.unwrap_or_else(|| format!("{what}: HTTP 409 conflict"))
        )),
        _ => CliError::Failed(anyhow::anyhow!(
            "{what} failed with HTTP {status}{}",
            detail.map(|d| format!(": {d}")).unwrap_or_default()
        )),
    }
}

/// The `detail` of an error body: a string as is, anything else as compact JSON; a non-JSON
/// body as (at most 300 characters of) text.
pub fn detail(body: &[u8]) -> Option<String> {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => match v.get("detail") {
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => Some(other.to_string()),
            None if v.is_null() => None,
            None => Some(v.to_string()),
        },
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            (!text.is_empty()).then(|| text.chars().take(300).collect())
        }
    }
}

/// The error and its sources, without repeats. reqwest's own top line ("error sending request
/// for url (…)") is left out when it has sources: the caller names the URL already.
pub fn error_chain(e: &reqwest::Error) -> String {
    decnet_swarm::cause_chain(e)
}

/// Reads the CA to trust for an `https://` master: `--ca FILE`, else the data dir's `ca.crt`.
fn read_ca(layout: &DataDir, flag: Option<&Path>, url: &Url) -> Result<String, CliError> {
    match flag {
        Some(p) => std::fs::read_to_string(p)
            .map_err(|e| CliError::usage(format!("--ca {}: {e}", p.display()))),
        None => {
            let p = layout.ca_cert();
            std::fs::read_to_string(&p).map_err(|e| {
                CliError::usage(format!(
                    "cannot verify {url}: no CA certificate at {} ({e}); pass --ca FILE \
                     (the master's ca.crt)",
                    p.display()
                ))
            })
        }
    }
}

// --- output helpers shared by the client commands --------------------------------------------

/// Prints a JSON value, pretty, as the command's whole output.
pub fn print_json(value: &Value, out: &mut dyn Write) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value).context("serialise")?;
    writeln!(out, "{text}").context("write")?;
    Ok(())
}

/// A left-aligned text table: columns as wide as their widest cell, the last one unpadded.
pub fn render_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut s = String::new();
        for (i, cell) in cells.enumerate() {
            if i + 1 < widths.len() {
                let pad = widths[i] - cell.chars().count();
                s.push_str(cell);
                s.push_str(&" ".repeat(pad + 2));
            } else {
                s.push_str(cell);
            }
        }
        s.trim_end().to_string()
    };
    let mut out = line(&mut headers.iter().copied());
    out.push('\n');
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
        out.push('\n');
    }
    out
}

/// A timestamp for a table: RFC 3339 shown as `YYYY-MM-DD HH:MM:SS UTC`; `-` for none; any
/// other text as is.
pub fn format_time(value: Option<&str>) -> String {
    match value {
        None => "-".to_string(),
        Some(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| {
                t.with_timezone(&chrono::Utc)
                    .format("%Y-%m-%d %H:%M:%S UTC")
                    .to_string()
            })
            .unwrap_or_else(|_| s.to_string()),
    }
}

/// [`format_time`] of a typed instant.
pub fn format_at(value: Option<chrono::DateTime<chrono::Utc>>) -> String {
    format_time(value.map(|t| t.to_rfc3339()).as_deref())
}

/// Deserialises an answer of the master into the shape a command expects.
pub fn answer<T: serde::de::DeserializeOwned>(value: Value, what: &str) -> Result<T, CliError> {
    serde_json::from_value(value).map_err(|e| {
        CliError::Failed(anyhow::anyhow!(
            "unexpected answer from the master to {what}: {e}"
        ))
    })
}

#[cfg(test)]
mod tests {

    /// A TLS failure names its reason, not only reqwest's "error sending request".
    #[tokio::test]
    async fn error_chain_names_the_tls_reason() {
        decnet_tls::install_default_provider();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            use std::io::{Read, Write};
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 512];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
        });
        let e = reqwest::Client::new()
            .get(format!("https://127.0.0.1:{port}/"))
            .send()
            .await
            .unwrap_err();
        let text = error_chain(&e);
        server.join().unwrap();
        assert!(!text.contains("error sending request"), "{text}");
        assert!(!text.is_empty());
        assert_ne!(text, e.to_string(), "{text}");
    }
    use super::*;

    fn layout() -> (tempfile::TempDir, DataDir) {
        let dir = tempfile::tempdir().unwrap();
        let layout = DataDir::new(dir.path());
        (dir, layout)
    }

    fn write_master_json(layout: &DataDir, api_url: &str) {
        let body = serde_json::json!({
            "api_url": api_url, "swarm_url": "https://host:8770", "pid": 123
        });
        std::fs::write(layout.master_json(), body.to_string()).unwrap();
    }

    #[test]
    fn master_json_parses_the_shape_serve_writes() {
        let p = Path::new("/d/master.json");
        let mj = parse_master_json(
            r#"{"api_url": "http://127.0.0.1:8000", "swarm_url": "https://host:8770", "pid": 123}"#,
            p,
        )
        .unwrap();
        assert_eq!(
            mj,
            MasterJson {
                api_url: "http://127.0.0.1:8000".into(),
                swarm_url: Some("https://host:8770".into()),
                pid: Some(123),
            }
        );
        // Only api_url is needed.
        assert_eq!(
            parse_master_json(r#"{"api_url":"https://m:8000"}"#, p)
                .unwrap()
                .pid,
            None
        );
        for bad in ["", "{", r#"{"swarm_url":"x"}"#, r#"{"api_url": 5}"#] {
            let e = parse_master_json(bad, p).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad}");
            assert!(e.to_string().contains("/d/master.json"), "{e}");
        }
    }

    #[test]
    fn master_url_precedence_flag_then_master_json_then_none() {
        let (_d, layout) = layout();
        // Nothing at all: no master.
        assert_eq!(find_master(&layout, None).unwrap(), None);
        assert_eq!(find_master(&layout, Some("  ".into())).unwrap(), None);
        let e = MasterClient::discover(layout.path(), None, Some("t".into()), None).unwrap_err();
        assert_eq!((e.exit_code(), e.to_string()), (2, NO_MASTER.to_string()));

        write_master_json(&layout, "http://127.0.0.1:8000");
        let m = find_master(&layout, None).unwrap().unwrap();
        assert_eq!(m.url.as_str(), "http://127.0.0.1:8000/");
        assert_eq!(m.source, UrlSource::MasterJson(layout.master_json()));

        let m = find_master(&layout, Some("http://localhost:9000".into()))
            .unwrap()
            .unwrap();
        assert_eq!(m.url.as_str(), "http://localhost:9000/");
        assert_eq!(m.source, UrlSource::Flag);
    }

    #[test]
    fn broken_master_json_is_a_configuration_error() {
        let (_d, layout) = layout();
        std::fs::write(layout.master_json(), "not json").unwrap();
        assert_eq!(find_master(&layout, None).unwrap_err().exit_code(), 2);
        // A flag does not even look at it.
        assert!(find_master(&layout, Some("https://m:8000".into())).is_ok());
        write_master_json(&layout, "http://10.0.0.1:8000");
        let e = find_master(&layout, None).unwrap_err();
        assert!(e.to_string().contains("master.json"), "{e}");
    }

    #[test]
    fn urls_are_https_or_loopback_http() {
        let check = |text: &str, ok: bool| {
            let r = parse_master_url(text, &UrlSource::Flag);
            assert_eq!(r.is_ok(), ok, "{text}: {r:?}");
            if let Err(e) = r {
                assert_eq!(e.exit_code(), 2);
                assert!(e.to_string().starts_with("--master: "), "{e}");
            }
        };
        check("http://127.0.0.1:8000", true);
        check("http://127.9.9.9:8000", true);
        check("http://[::1]:8000", true);
        check("http://localhost:8000", true);
        check("https://10.0.0.1:8000", true);
        check("https://master.example:8000/", true);
        check("http://10.0.0.1:8000", false);
        check("http://master.example", false);
        check("ftp://127.0.0.1", false);
        check("127.0.0.1:8000", false);
        check("not a url", false);
        check("https://user:pw@m:8000", false);
    }

    #[test]
    fn token_precedence_flag_then_admin_token_file() {
        let (_d, layout) = layout();
        let e = find_token(&layout, None).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("admin.token"), "{e}");

        std::fs::write(layout.admin_token(), "dnt_fromfile\n").unwrap();
        assert_eq!(
            find_token(&layout, None).unwrap(),
            (
                "dnt_fromfile".to_string(),
                TokenSource::File(layout.admin_token())
            )
        );
        assert_eq!(
            find_token(&layout, Some("dnt_flag".into())).unwrap(),
            ("dnt_flag".to_string(), TokenSource::Flag)
        );
        // An empty DECNET_TOKEN falls back to the file.
        assert_eq!(
            find_token(&layout, Some(String::new())).unwrap().0,
            "dnt_fromfile"
        );

        std::fs::write(layout.admin_token(), "\n").unwrap();
        assert_eq!(find_token(&layout, None).unwrap_err().exit_code(), 2);
        let e = find_token(&layout, Some("dnt_a b".into())).unwrap_err();
        assert!(
            !e.to_string().contains("dnt_a"),
            "never echoes the token: {e}"
        );
    }

    #[test]
    fn https_needs_a_ca_and_never_skips_verification() {
        let (_d, layout) = layout();
        std::fs::write(layout.admin_token(), "dnt_x").unwrap();
        let e = MasterClient::discover(layout.path(), Some("https://m:8000".into()), None, None)
            .unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("ca.crt"), "{e}");

        let ca = decnet_tls::pki::Ca::generate("DECNET CA").unwrap();
        std::fs::write(layout.ca_cert(), ca.cert_pem()).unwrap();
        let c = MasterClient::discover(layout.path(), Some("https://m:8000".into()), None, None)
            .unwrap();
        assert_eq!(c.url().as_str(), "https://m:8000/");
        assert!(!format!("{c:?}").contains("dnt_x"));

        let e = MasterClient::discover(
            layout.path(),
            Some("https://m:8000".into()),
            None,
            Some(layout.path().join("nope.pem")),
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("--ca "), "{e}");
        let bad = layout.path().join("bad.pem");
        std::fs::write(&bad, "garbage").unwrap();
        let e = MasterClient::discover(
            layout.path(),
            Some("https://m:8000".into()),
            None,
            Some(bad),
        )
        .unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn endpoints_join_paths() {
        let (_d, layout) = layout();
        let c = MasterClient::discover(
            layout.path(),
            Some("http://127.0.0.1:8000/".into()),
            Some("t".into()),
            None,
        )
        .unwrap();
        assert_eq!(
            c.endpoint("/api/v1/tokens"),
            "http://127.0.0.1:8000/api/v1/tokens"
        );
    }

    #[test]
    fn status_codes_map_to_exit_codes() {
        let src = TokenSource::File(PathBuf::from("/d/admin.token"));
        let check = |status: u16, body: &str, code: u8, text: &str| {
            let e = status_error(status, body.as_bytes(), "GET http://m/x", &src);
            assert_eq!(e.exit_code(), code, "{status}");
            assert!(e.to_string().contains(text), "{status}: {e}");
        };
        check(
            401,
            r#"{"detail":"bad token"}"#,
            2,
            "token rejected by the master",
        );
        check(401, "", 2, "/d/admin.token");
        check(
            403,
            r#"{"detail":"admin only"}"#,
            2,
            "this token's role may not do that",
        );
        check(400, r#"{"detail":"name: bad"}"#, 2, "name: bad");
        check(404, r#"{"detail":"host not found"}"#, 1, "host not found");
        check(422, r#"{"detail":[{"loc":["body","role"]}]}"#, 2, "role");
        check(422, "", 2, "HTTP 422");
        check(409, r#"{"detail":"name taken"}"#, 1, "name taken");
        check(500, "boom", 1, "GET http://m/x failed with HTTP 500: boom");
        check(502, "", 1, "HTTP 502");
        check(429, r#"{"detail":"slow down"}"#, 1, "slow down");
    }

    #[test]
    fn tables_align_and_times_read_well() {
        let t = render_table(
            &["NAME", "STATUS", "AGENT"],
            &[
                vec!["w1".into(), "active".into(), "0.1.0".into()],
                vec!["worker-22".into(), "-".into(), "-".into()],
            ],
        );
        assert_eq!(
            t,
            "NAME       STATUS  AGENT\n\
             w1         active  0.1.0\n\
             worker-22  -       -\n"
        );
        assert_eq!(
            format_time(Some("2024-05-01T12:00:03.123+02:00")),
            "2024-05-01 10:00:03 UTC"
        );
        assert_eq!(format_time(Some("yesterday")), "yesterday");
        assert_eq!(format_time(None), "-");
    }
}

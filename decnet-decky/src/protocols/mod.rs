//! Protocol responders. Each takes any `Read + Write` stream, so they run the
//! same over a TCP socket, a TLS session or an in-memory test stream.
//!
//! A responder writes what it learned into `fields` as it goes, so a session
//! that ends in a timeout or reset still logs everything seen so far.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use decnet_core::registry::{self, OsFamily, WindowsIdentity};

use crate::config::ServiceConfig;
use crate::log::{Fields, Reporter};

pub mod ber;
pub mod bson;
pub mod dns;
pub mod ftp;
pub mod generic;
pub mod http;
pub mod ldap;
pub mod llmnr;
pub mod login;
pub mod mail;
pub mod modbus;
pub mod mongodb;
pub mod mqtt;
pub mod mssql;
pub mod mysql;
pub mod ntlm;
pub mod postgres;
pub mod rdp;
pub mod redis;
pub mod shell;
pub mod sip;
pub mod smb;
pub mod snmp;
pub mod ssh;
pub mod telnet;
pub mod tftp;
pub mod tls;
pub mod udp;
pub mod vnc;

/// The responder family chosen from the service slug.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Ssh,
    Ftp,
    Smtp {
        relay: bool,
    },
    Pop3,
    Imap,
    Telnet,
    Http(http::Flavor),
    Https,
    Redis,
    Mysql,
    Dns,
    Mongodb,
    Mqtt,
    Sip,
    /// The ICS persona: Modbus TCP, its HMI over HTTP on 80/8080 (SNMP is its UDP port).
    Conpot,
    Postgres,
    Vnc,
    /// SMB2/3 with NTLM capture (`smb`).
    Smb,
    /// Microsoft SQL Server (TDS) capturing logins (`mssql`).
    Mssql,
    /// An Active Directory domain controller's LDAP (`ldap`).
    Ldap,
    /// Remote Desktop with CredSSP/NTLM capture (`rdp`).
    Rdp,
    /// LLMNR/mDNS name responder (`llmnr`, UDP).
    Llmnr,
    /// Every other slug: read what arrives, log, close.
    Generic,
}

impl Service {
    pub fn from_slug(slug: &str) -> Self {
        match slug {
            "ssh" => Service::Ssh,
            "ftp" => Service::Ftp,
            "smtp" => Service::Smtp { relay: false },
            "smtp_relay" => Service::Smtp { relay: true },
            "pop3" => Service::Pop3,
            "imap" => Service::Imap,
            "telnet" => Service::Telnet,
            "http" => Service::Http(http::Flavor::Web),
            "https" => Service::Https,
            "docker_api" => Service::Http(http::Flavor::DockerApi),
            "k8s" => Service::Http(http::Flavor::K8s),
            "elasticsearch" => Service::Http(http::Flavor::Elasticsearch),
            "redis" => Service::Redis,
            "mysql" => Service::Mysql,
            "postgres" => Service::Postgres,
            "mongodb" => Service::Mongodb,
            "dns" => Service::Dns,
            "mqtt" => Service::Mqtt,
            "sip" => Service::Sip,
            "conpot" => Service::Conpot,
            "vnc" => Service::Vnc,
            "smb" => Service::Smb,
            "mssql" => Service::Mssql,
            "ldap" => Service::Ldap,
            "rdp" => Service::Rdp,
            "llmnr" => Service::Llmnr,
            _ => Service::Generic,
        }
    }

    /// Whether a connection to `port` starts with a TLS handshake before the
    /// server speaks (pop3s, imaps, smtps).
    pub fn implicit_tls(self, port: u16) -> bool {
        matches!(
            (self, port),
            (Service::Https, _)
                | (Service::Pop3, 995)
                | (Service::Imap, 993)
                | (Service::Smtp { .. }, 465)
                | (Service::Ldap, 636)
        )
    }

    /// Whether a TLS certificate is needed for any of `ports`. HTTP-family
    /// services detect a ClientHello on any port (443, 2376, 6443 …); RDP starts TLS after
    /// its X.224 negotiation, MSSQL inside PRELOGIN when the client asks for encryption.
    pub fn needs_tls(self, ports: &[u16]) -> bool {
        matches!(self, Service::Http(_) | Service::Rdp | Service::Mssql)
            || ports.iter().any(|&p| self.implicit_tls(p))
    }
}

/// Everything a responder knows about the decky it pretends to be.
#[derive(Debug, Clone)]
pub struct ServiceCtx {
    pub slug: String,
    pub service: Service,
    pub decky: String,
    pub hostname: String,
    pub config: ServiceConfig,
    /// The decky's archetype slug (`DECNET_ARCHETYPE`), where known.
    pub archetype: Option<String>,
    /// The decky's OS family (`DECNET_OS`), where known.
    pub os: Option<OsFamily>,
    /// Present when [`Service::needs_tls`]; a self-signed certificate.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The Docker persona's containers and execs created on earlier connections (an exec's
    /// start and inspect come on other connections than its create).
    pub docker: Arc<http::hijack::Objects>,
}

impl ServiceCtx {
    /// A context without TLS (tests, and services that never need it).
    pub fn new(slug: &str, decky: &str, hostname: &str, config: ServiceConfig) -> Self {
        ServiceCtx {
            slug: slug.to_owned(),
            service: Service::from_slug(slug),
            decky: decky.to_owned(),
            hostname: hostname.to_owned(),
            config,
            archetype: None,
            os: None,
            tls: None,
            docker: Arc::default(),
        }
    }

    /// The same context for a decky of that archetype and OS family.
    pub fn with_persona(mut self, archetype: Option<&str>, os: Option<OsFamily>) -> Self {
        self.archetype = archetype.map(str::to_owned);
        self.os = os;
        self
    }

    /// The Windows identity the persona implies (registry), before `service_config`.
    pub fn windows_identity(&self) -> Option<&'static WindowsIdentity> {
        registry::windows_identity(self.archetype.as_deref(), self.os)
    }
}

/// Whether a conpot connection is its HMI's: ports 80 and 8080 are, 502 is Modbus, and on
/// any other (custom) port a request starting with an HTTP method's capital letter is (a
/// Modbus frame there opens with its transaction id, which rarely is one).
fn conpot_speaks_http<S: Read + Write>(conn: &mut Conn<S>, port: u16) -> io::Result<bool> {
    Ok(match port {
        80 | 8080 => true,
        502 => false,
        _ => conn.peek()?.is_some_and(|b| b.is_ascii_uppercase()),
    })
}

/// The other end of one connection.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub addr: SocketAddr,
    /// The decky's address the peer reached, where known.
    pub dst_ip: Option<IpAddr>,
    pub dst_port: u16,
}

/// Runs the responder for `ctx.service` on one accepted connection.
///
/// `fields` is the session's summary (it ends up in the `disconnect` event); responders that
/// report steps while the session runs (a credential, a command, a request) do so on `report`.
pub fn handle<S: Read + Write>(
    ctx: &ServiceCtx,
    peer: &Peer,
    report: &Reporter,
    stream: S,
    fields: &mut Fields,
) -> io::Result<()> {
    if ctx.service.implicit_tls(peer.dst_port) {
        let config = ctx
            .tls
            .as_ref()
            .ok_or_else(|| io::Error::other("no TLS certificate"))?;
        let mut tls = tls::accept_reported(config, stream, fields, report)?;
        let res = respond(ctx, peer, report, &mut tls, fields);
        tls::close(&mut tls);
        return res;
    }
    respond(ctx, peer, report, stream, fields)
}

fn respond<S: Read + Write>(
    ctx: &ServiceCtx,
    peer: &Peer,
    report: &Reporter,
    stream: S,
    fields: &mut Fields,
) -> io::Result<()> {
    let mut conn = Conn::new(stream);
    match ctx.service {
        Service::Ssh => ssh::handle(conn, ctx, peer, report, fields),
        Service::Ftp => ftp::handle(conn, ctx, fields),
        Service::Smtp { relay } => mail::smtp(conn, ctx, relay, fields),
        Service::Pop3 => mail::pop3(conn, ctx, fields),
        Service::Imap => mail::imap(conn, ctx, fields),
        Service::Telnet => telnet::handle(conn, ctx, peer, report, fields),
        Service::Http(flavor) => http::handle(conn, ctx, peer, report, flavor, fields),
        // The TLS layer is already in place (implicit_tls).
        Service::Https => http::serve_plain(conn, ctx, peer, report, http::Flavor::Web, fields),
        Service::Redis => redis::handle(conn, ctx, peer, report, fields),
        Service::Mysql => mysql::handle(conn, ctx, peer, fields),
        Service::Postgres => postgres::handle(conn, ctx, report, fields),
        Service::Mongodb => mongodb::handle(conn, ctx, report, fields),
        Service::Dns => dns::handle(conn, ctx, peer, report, fields),
        Service::Mqtt => mqtt::handle(conn, ctx, report, fields),
        Service::Sip => sip::handle(conn, ctx, report, fields),
        Service::Conpot if conpot_speaks_http(&mut conn, peer.dst_port)? => {
            http::handle(conn, ctx, peer, report, http::Flavor::Web, fields)
        }
        Service::Conpot => modbus::handle(conn, ctx, report, fields),
        Service::Vnc => vnc::handle(conn, fields),
        Service::Smb => smb::handle(conn, ctx, report, fields),
        Service::Mssql => mssql::handle(conn, ctx, report, fields),
        Service::Ldap => ldap::handle(conn, ctx, report, fields),
        Service::Rdp => rdp::handle(conn, ctx, report, fields),
        Service::Llmnr | Service::Generic => generic::handle(conn, fields),
    }
}

/// Longest line a line-based responder accepts.
pub const MAX_LINE: usize = 4096;
/// Most commands a line-based responder answers before closing.
pub const MAX_COMMANDS: usize = 100;
/// Most entries kept in a logged list (commands, credentials …).
pub const MAX_LOGGED: usize = 20;

/// A buffered connection: line and exact-length reads, unbuffered writes.
#[derive(Debug)]
pub struct Conn<S> {
    inner: S,
    buf: Vec<u8>,
    pos: usize,
}

impl<S: Read + Write> Conn<S> {
    pub fn new(inner: S) -> Self {
        Conn {
            inner,
            buf: Vec::new(),
            pos: 0,
        }
    }

    fn pending(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Reads more bytes into the buffer; 0 means end of stream.
    fn fill(&mut self) -> io::Result<usize> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let old = self.buf.len();
        self.buf.resize(old + 4096, 0);
        let res = loop {
            match self.inner.read(&mut self.buf[old..]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        let n = *res.as_ref().unwrap_or(&0);
        self.buf.truncate(old + n);
        res
    }

    /// Next line without its terminator (`\n`, with a `\r` before it
    /// dropped). `None` at end of stream; a last unterminated line is
    /// returned as is. Lines longer than `max` are an error.
    pub fn read_line(&mut self, max: usize) -> io::Result<Option<Vec<u8>>> {
        self.read_until(b"\n", max).map(|l| {
            l.map(|mut l| {
                if l.last() == Some(&b'\r') {
                    l.pop();
                }
                l
            })
        })
    }

    /// Next run of bytes ending in any of `terms` (terminator dropped).
    pub fn read_until(&mut self, terms: &[u8], max: usize) -> io::Result<Option<Vec<u8>>> {
        let mut scanned = 0;
        loop {
            if let Some(i) = self.pending()[scanned..]
                .iter()
                .position(|b| terms.contains(b))
            {
                let end = self.pos + scanned + i;
                let line = self.buf[self.pos..end].to_vec();
                self.pos = end + 1;
                return Ok(Some(line));
            }
            scanned = self.pending().len();
            if scanned > max {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
            }
            if self.fill()? == 0 {
                if self.pending().is_empty() {
                    return Ok(None);
                }
                let line = self.pending().to_vec();
                self.pos = self.buf.len();
                return Ok(Some(line));
            }
        }
    }

    /// Exactly `n` bytes, or `UnexpectedEof`.
    pub fn read_exact_vec(&mut self, n: usize) -> io::Result<Vec<u8>> {
        while self.pending().len() < n {
            if self.fill()? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        let out = self.buf[self.pos..self.pos + n].to_vec();
        self.pos += n;
        Ok(out)
    }

    /// Whatever is buffered, or the next chunk; empty at end of stream.
    pub fn read_some(&mut self) -> io::Result<Vec<u8>> {
        if self.pending().is_empty() && self.fill()? == 0 {
            return Ok(Vec::new());
        }
        let out = self.pending().to_vec();
        self.pos = self.buf.len();
        Ok(out)
    }

    /// The next byte without consuming it; `None` at end of stream.
    pub fn peek(&mut self) -> io::Result<Option<u8>> {
        if self.pending().is_empty() && self.fill()? == 0 {
            return Ok(None);
        }
        Ok(self.pending().first().copied())
    }

    /// Drops a leading byte if it is one of `bytes` and already buffered.
    pub fn skip_buffered(&mut self, bytes: &[u8]) {
        while self.pending().first().is_some_and(|b| bytes.contains(b)) {
            self.pos += 1;
        }
    }

    pub fn send(&mut self, data: &[u8]) -> io::Result<()> {
        self.inner.write_all(data)?;
        self.inner.flush()
    }

    /// The stream with the unread buffered bytes put back in front.
    pub fn into_prefixed(self) -> Prefixed<S> {
        Prefixed {
            prefix: self.buf[self.pos..].to_vec(),
            pos: 0,
            inner: self.inner,
        }
    }
}

/// A stream whose first reads return `prefix`.
#[derive(Debug)]
pub struct Prefixed<S> {
    prefix: Vec<u8>,
    pos: usize,
    inner: S,
}

impl<S: Read> Read for Prefixed<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos < self.prefix.len() {
            let n = buf.len().min(self.prefix.len() - self.pos);
            buf[..n].copy_from_slice(&self.prefix[self.pos..self.pos + n]);
            self.pos += n;
            return Ok(n);
        }
        self.inner.read(buf)
    }
}

impl<S: Write> Write for Prefixed<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Splits `VERB rest` (verb upper-cased).
pub fn verb(line: &[u8]) -> (String, String) {
    let text = String::from_utf8_lossy(line);
    let text = text.trim();
    match text.split_once(char::is_whitespace) {
        Some((v, rest)) => (v.to_ascii_uppercase(), rest.trim().to_owned()),
        None => (text.to_ascii_uppercase(), String::new()),
    }
}

#[cfg(test)]
pub mod testing {
    //! In-memory duplex stream and helpers for responder unit tests.

    use super::*;

    use crate::config::ServiceConfig;
    use crate::log::{AttackEvent, Emitter, MemorySink, Origin, Transport};

    /// Reads come from `input` (then EOF); writes go to `output`.
    #[derive(Debug, Default)]
    pub struct Mock {
        pub input: io::Cursor<Vec<u8>>,
        pub output: Vec<u8>,
    }

    impl Mock {
        pub fn new(input: &[u8]) -> Self {
            Mock {
                input: io::Cursor::new(input.to_vec()),
                output: Vec::new(),
            }
        }

        pub fn out(&self) -> String {
            String::from_utf8_lossy(&self.output).into_owned()
        }
    }

    impl Read for Mock {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            // Small reads exercise the line buffer's refills.
            let n = buf.len().min(7);
            self.input.read(&mut buf[..n])
        }
    }

    impl Write for Mock {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.output.extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    pub fn ctx(slug: &str, config: serde_json::Value) -> ServiceCtx {
        let map = match config {
            serde_json::Value::Object(m) => m,
            _ => serde_json::Map::new(),
        };
        ServiceCtx::new(slug, "decky-01", "web-01", ServiceConfig::from_map(map))
    }

    pub fn peer(dst_port: u16) -> Peer {
        Peer {
            addr: SocketAddr::from(([192, 0, 2, 7], 40_000)),
            dst_ip: Some(IpAddr::from([192, 0, 2, 20])),
            dst_port,
        }
    }

    /// A reporter for a session from [`peer`]`(dst_port)`, with the sink its events go to.
    pub fn reporter(slug: &str, dst_port: u16) -> (Reporter, Arc<MemorySink>) {
        let sink = Arc::new(MemorySink::default());
        let emitter = Arc::new(Emitter::new(sink.clone(), "decky-01", slug));
        let p = peer(dst_port);
        let report = emitter.session(Origin {
            protocol: Transport::Tcp,
            src: p.addr,
            dst_ip: p.dst_ip,
            dst_port,
        });
        (report, sink)
    }

    /// Runs the responder for `slug` over `input`; returns (output, summary fields, the step
    /// events it reported).
    pub fn run_events(
        slug: &str,
        config: serde_json::Value,
        input: &[u8],
    ) -> (String, Fields, Vec<AttackEvent>) {
        let c = ctx(slug, config);
        let (report, sink) = reporter(slug, 1);
        let mut m = Mock::new(input);
        let mut fields = Fields::new();
        let res = handle(&c, &peer(1), &report, &mut m, &mut fields);
        assert!(res.is_ok(), "responder {slug} failed: {res:?}");
        (m.out(), fields, sink.events())
    }

    /// Runs the responder for `slug` over `input`; returns (output, fields).
    pub fn run(slug: &str, config: serde_json::Value, input: &[u8]) -> (String, Fields) {
        let (out, fields) = run_bytes(slug, config, input);
        (String::from_utf8_lossy(&out).into_owned(), fields)
    }

    /// Like [`run`], with the raw output bytes.
    pub fn run_bytes(slug: &str, config: serde_json::Value, input: &[u8]) -> (Vec<u8>, Fields) {
        let c = ctx(slug, config);
        let (report, _) = reporter(slug, 1);
        let mut m = Mock::new(input);
        let mut fields = Fields::new();
        let res = handle(&c, &peer(1), &report, &mut m, &mut fields);
        assert!(res.is_ok(), "responder {slug} failed: {res:?}");
        (m.output, fields)
    }
}

#[cfg(test)]
mod tests {
    use super::testing::Mock;
    use super::*;

    #[test]
    fn lines_across_refills_and_at_eof() {
        let mut c = Conn::new(Mock::new(b"first line\r\nsecond\nlast-no-newline"));
        assert_eq!(
            c.read_line(100).expect("io").as_deref(),
            Some(&b"first line"[..])
        );
        assert_eq!(
            c.read_line(100).expect("io").as_deref(),
            Some(&b"second"[..])
        );
        assert_eq!(
            c.read_line(100).expect("io").as_deref(),
            Some(&b"last-no-newline"[..])
        );
        assert_eq!(c.read_line(100).expect("io"), None);
    }

    #[test]
    fn overlong_lines_are_refused() {
        let mut c = Conn::new(Mock::new(&[b'a'; 200]));
        let e = c.read_line(50).expect_err("too long");
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn exact_and_prefixed() {
        let mut c = Conn::new(Mock::new(b"abcdefghij"));
        assert_eq!(c.peek().expect("io"), Some(b'a'));
        assert_eq!(c.read_exact_vec(3).expect("io"), b"abc");
        let mut p = c.into_prefixed();
        let mut rest = Vec::new();
        p.read_to_end(&mut rest).expect("io");
        assert_eq!(rest, b"defghij");
        let mut c = Conn::new(Mock::new(b"ab"));
        assert_eq!(
            c.read_exact_vec(3).expect_err("short").kind(),
            io::ErrorKind::UnexpectedEof
        );
    }

    #[test]
    fn slugs_map_to_responders() {
        assert_eq!(
            Service::from_slug("smtp_relay"),
            Service::Smtp { relay: true }
        );
        assert_eq!(
            Service::from_slug("docker_api"),
            Service::Http(http::Flavor::DockerApi)
        );
        assert_eq!(Service::from_slug("snmp"), Service::Generic);
        assert!(Service::Https.implicit_tls(8443));
        assert!(Service::Pop3.implicit_tls(995) && !Service::Pop3.implicit_tls(110));
        assert!(Service::Imap.needs_tls(&[143, 993]) && !Service::Imap.needs_tls(&[143]));
        assert!(Service::Http(http::Flavor::Web).needs_tls(&[80]));
        assert!(!Service::Ssh.needs_tls(&[22]));
    }

    #[test]
    fn verbs() {
        assert_eq!(verb(b"user  root "), ("USER".into(), "root".into()));
        assert_eq!(verb(b"QUIT"), ("QUIT".into(), String::new()));
    }
}

//! `decnet-decky serve`: the real binary on loopback, one test per persona.

mod common;

use std::io::Write;
use std::net::{Shutdown, TcpListener, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{ring, verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};
use serde_json::Value;

/// Finishes a test: SIGTERM must make the decky exit 0.
fn stop(d: Decky) {
    let status = d.terminate();
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after SIGTERM: {status:?}"
    );
}

#[test]
fn ssh_banner_and_client_version() {
    let d = Decky::serve("ssh", None);
    let mut s = d.connect();
    let banner = read_until(&mut s, "\r\n");
    assert_eq!(banner, "SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.6\r\n");
    s.write_all(b"SSH-2.0-it_client_1.0\r\n").expect("write");
    // The server now waits for the KEXINIT; hang up instead of sending it.
    s.shutdown(Shutdown::Write).expect("shutdown");
    read_to_end(&mut s);
    let ev = d.event();
    assert_connection_event(&ev, "ssh", d.port);
    assert_eq!(ev["details"]["client_version"], "SSH-2.0-it_client_1.0");
    assert_eq!(ev["details"]["bytes_in"], 23);
    stop(d);
}

#[test]
fn one_event_per_connection() {
    let d = Decky::serve("ssh", Some(r#"{"banner":"OpenSSH_7.4"}"#));
    for _ in 0..3 {
        let mut s = d.connect();
        assert_eq!(read_until(&mut s, "\r\n"), "SSH-2.0-OpenSSH_7.4\r\n");
        s.write_all(b"SSH-2.0-x\r\n").expect("write");
        read_to_end(&mut s);
    }
    let ports: Vec<u64> = (0..3)
        .map(|_| {
            let ev = d.event();
            assert_connection_event(&ev, "ssh", d.port);
            ev["src_port"].as_u64().expect("src_port")
        })
        .collect();
    assert!(ports[0] != ports[1] && ports[1] != ports[2]);
    d.assert_no_event(Duration::from_millis(300));
    stop(d);
}

#[test]
fn ftp_dialogue() {
    let d = Decky::serve("ftp", None);
    let mut s = d.connect();
    assert_eq!(read_until(&mut s, "\r\n"), "220 (vsFTPd 3.0.5)\r\n");
    s.write_all(b"USER admin\r\n").expect("write");
    assert_eq!(
        read_until(&mut s, "\r\n"),
        "331 Please specify the password.\r\n"
    );
    s.write_all(b"PASS letmein\r\n").expect("write");
    assert_eq!(read_until(&mut s, "\r\n"), "530 Login incorrect.\r\n");
    s.write_all(b"LIST\r\n").expect("write");
    assert_eq!(
        read_until(&mut s, "\r\n"),
        "530 Please login with USER and PASS.\r\n"
    );
    s.write_all(b"QUIT\r\n").expect("write");
    assert_eq!(read_until(&mut s, "\r\n"), "221 Goodbye.\r\n");
    let ev = d.event();
    assert_connection_event(&ev, "ftp", d.port);
    assert_eq!(ev["details"]["username"], "admin");
    assert_eq!(ev["details"]["credentials"][0]["password"], "letmein");
    stop(d);
}

#[test]
fn smtp_greeting_ehlo_quit() {
    let d = Decky::serve("smtp", None);
    let mut s = d.connect();
    assert_eq!(
        read_until(&mut s, "\r\n"),
        format!("220 {HOST} ESMTP Postfix (Ubuntu)\r\n")
    );
    s.write_all(b"EHLO probe.example\r\n").expect("write");
    let ehlo = read_until(&mut s, "250 SMTPUTF8\r\n");
    assert!(ehlo.starts_with(&format!("250-{HOST}\r\n")), "{ehlo}");
    s.write_all(b"QUIT\r\n").expect("write");
    assert_eq!(read_until(&mut s, "\r\n"), "221 2.0.0 Bye\r\n");
    let ev = d.event();
    assert_connection_event(&ev, "smtp", d.port);
    assert_eq!(ev["details"]["helo"], "probe.example");
    stop(d);
}

#[test]
fn smtp_relay_greeting() {
    let d = Decky::serve("smtp_relay", Some(r#"{"banner":"Exim 4.95"}"#));
    let mut s = d.connect();
    assert_eq!(
        read_until(&mut s, "\r\n"),
        format!("220 {HOST} ESMTP Exim 4.95\r\n")
    );
    s.write_all(b"HELO x\r\nQUIT\r\n").expect("write");
    let rest = read_until(&mut s, "221");
    assert!(rest.starts_with(&format!("250 {HOST}\r\n")), "{rest}");
    assert_connection_event(&d.event(), "smtp_relay", d.port);
    stop(d);
}

#[test]
fn pop3_greeting() {
    let d = Decky::serve("pop3", None);
    let mut s = d.connect();
    assert_eq!(
        read_until(&mut s, "\r\n"),
        "+OK Dovecot (Ubuntu) ready.\r\n"
    );
    s.write_all(b"USER u\r\nPASS p\r\nQUIT\r\n").expect("write");
    let rest = read_until(&mut s, "Logging out.\r\n");
    assert_eq!(
        rest,
        "+OK\r\n-ERR [AUTH] Authentication failed.\r\n+OK Logging out.\r\n"
    );
    assert_connection_event(&d.event(), "pop3", d.port);
    stop(d);
}

#[test]
fn imap_greeting() {
    let d = Decky::serve("imap", None);
    let mut s = d.connect();
    let greeting = read_until(&mut s, "\r\n");
    assert!(
        greeting.starts_with("* OK [CAPABILITY IMAP4rev1 "),
        "{greeting}"
    );
    assert!(
        greeting.ends_with("] Dovecot (Ubuntu) ready.\r\n"),
        "{greeting}"
    );
    s.write_all(b"a1 LOGIN bob secret\r\na2 LOGOUT\r\n")
        .expect("write");
    let rest = read_until(&mut s, "a2 OK");
    assert!(rest.starts_with("a1 NO [AUTHENTICATIONFAILED]"), "{rest}");
    let ev = d.event();
    assert_connection_event(&ev, "imap", d.port);
    assert_eq!(ev["details"]["credentials"][0]["username"], "bob");
    stop(d);
}

#[test]
fn telnet_login_prompt() {
    let d = Decky::serve("telnet", None);
    let mut s = d.connect();
    let greeting = read_until(&mut s, "login: ");
    assert!(
        greeting.ends_with(&format!("Ubuntu 22.04.3 LTS\r\n{HOST} login: ")),
        "{greeting:?}"
    );
    s.write_all(b"root\r\n").expect("write");
    // The name is echoed (the server said WILL ECHO), the password is not.
    assert_eq!(read_until(&mut s, "Password: "), "root\r\nPassword: ");
    s.write_all(b"toor\r\n").expect("write");
    assert!(read_until(&mut s, "Login incorrect").contains("Login incorrect"));
    s.shutdown(Shutdown::Write).expect("shutdown");
    read_to_end(&mut s);
    let ev = d.event();
    assert_connection_event(&ev, "telnet", d.port);
    assert_eq!(ev["details"]["credentials"][0]["username"], "root");
    assert_eq!(ev["details"]["credentials"][0]["password"], "toor");
    stop(d);
}

fn http_get(d: &Decky, path: &str) -> String {
    let mut s = d.connect();
    s.write_all(
        format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: it-test/1.0\r\nConnection: close\r\n\r\n"
        )
            .as_bytes(),
    )
    .expect("write");
    String::from_utf8_lossy(&read_to_end(&mut s)).into_owned()
}

#[test]
fn http_default_and_configured() {
    let d = Decky::serve("http", None);
    let resp = http_get(&d, "/index.html");
    assert!(resp.starts_with("HTTP/1.1 200 OK\r\n"), "{resp}");
    assert!(
        resp.contains("\r\nServer: Apache/2.4.52 (Ubuntu)\r\n"),
        "{resp}"
    );
    assert!(resp.contains("\r\nConnection: close\r\n"), "{resp}");
    let steps = d.session_events();
    let kinds: Vec<&str> = steps.iter().filter_map(|e| e["kind"].as_str()).collect();
    assert_eq!(kinds, ["connect", "request", "disconnect"], "{steps:?}");
    assert!(
        steps.iter().all(|e| e["session"] == steps[0]["session"]),
        "one session: {steps:?}"
    );
    let req = &steps[1];
    assert_eq!(req["details"]["http_method"], "GET");
    assert_eq!(req["details"]["path"], "/index.html");
    assert_eq!(req["details"]["user_agent"], "it-test/1.0");
    assert_eq!(req["details"]["status"], 200);
    let ev = &steps[2];
    assert_connection_event(ev, "http", d.port);
    assert_eq!(ev["details"]["method"], "GET");
    assert_eq!(ev["details"]["path"], "/index.html");
    stop(d);

    let cfg =
        r#"{"server_header":"nginx/1.18.0 (Ubuntu)","response_code":403,"custom_body":"denied"}"#;
    let d = Decky::serve("http", Some(cfg));
    let resp = http_get(&d, "/");
    assert!(resp.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{resp}");
    assert!(
        resp.contains("\r\nServer: nginx/1.18.0 (Ubuntu)\r\n"),
        "{resp}"
    );
    assert!(resp.ends_with("\r\n\r\ndenied"), "{resp}");
    assert_eq!(d.event()["details"]["status"], 403);
    stop(d);
}

/// Test only: accepts any certificate (the decoy's is self-signed) but
/// still checks the handshake signatures; remembers the certificate.
#[derive(Debug)]
struct AcceptAnyCert {
    provider: Arc<CryptoProvider>,
    seen: Mutex<Option<Vec<u8>>>,
}

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Ok(mut s) = self.seen.lock() {
            *s = Some(end_entity.to_vec());
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// GET / over TLS with SNI `sni`; returns (response, server certificate DER).
fn https_get(port: u16, sni: &str) -> (String, Vec<u8>) {
    let provider = Arc::new(ring::default_provider());
    let verifier = Arc::new(AcceptAnyCert {
        provider: provider.clone(),
        seen: Mutex::new(None),
    });
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    let name = ServerName::try_from(sni.to_owned()).expect("server name");
    let conn = ClientConnection::new(Arc::new(config), name).expect("client");
    let sock = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    sock.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut tls = StreamOwned::new(conn, sock);
    tls.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: tls-it\r\nConnection: close\r\n\r\n")
        .expect("tls write");
    let resp = String::from_utf8_lossy(&read_to_end(&mut tls)).into_owned();
    let cert = verifier
        .seen
        .lock()
        .ok()
        .and_then(|s| s.clone())
        .unwrap_or_default();
    (resp, cert)
}

#[test]
fn https_self_signed() {
    let d = Decky::serve("https", Some(r#"{"tls_cn":"intranet.corp"}"#));
    let (resp, cert) = https_get(d.port, "intranet.corp");
    assert!(resp.starts_with("HTTP/1.1 200 OK\r\n"), "{resp}");
    assert!(
        resp.contains("\r\nServer: Apache/2.4.52 (Ubuntu)\r\n"),
        "{resp}"
    );
    assert!(
        cert.windows(13).any(|w| w == b"intranet.corp"),
        "CN from tls_cn"
    );
    let ev = d.event();
    assert_connection_event(&ev, "https", d.port);
    assert_eq!(ev["details"]["tls"], true);
    assert_eq!(ev["details"]["sni"], "intranet.corp");
    assert_eq!(ev["details"]["user_agent"], "tls-it");
    stop(d);

    // Default CN is the hostname.
    let d = Decky::serve("https", None);
    let (_, cert) = https_get(d.port, "anything.example");
    assert!(cert.windows(HOST.len()).any(|w| w == HOST.as_bytes()));
    stop(d);
}

#[test]
fn http_family_sniffs_tls() {
    let d = Decky::serve("elasticsearch", None);
    let (resp, _) = https_get(d.port, "es.local");
    assert!(resp.contains("You Know, for Search"), "{resp}");
    let steps = d.session_events();
    let client = steps
        .iter()
        .find(|e| e["kind"] == "client")
        .unwrap_or_else(|| panic!("a client step: {steps:?}"));
    let fp = client["details"]["fingerprint"]
        .as_str()
        .unwrap_or_default();
    assert!(fp.starts_with("ja3:") && fp.len() == 36, "{client}");
    let ja4 = client["details"]["ja4"].as_str().unwrap_or_default();
    assert!(ja4.starts_with("t13d") && ja4.len() == 36, "{client}");
    assert_eq!(client["details"]["sni"], "es.local");
    let ev = steps.last().expect("disconnect");
    assert_eq!(ev["details"]["tls"], true);
    assert_eq!(ev["details"]["ja4"], ja4);
    let body = http_get(&d, "/");
    assert!(body.contains("You Know, for Search"));
    stop(d);
}

#[test]
fn redis_noauth() {
    let d = Decky::serve("redis", Some(r#"{"requirepass":true}"#));
    let mut s = d.connect();
    s.write_all(b"PING\r\n").expect("write");
    assert_eq!(
        read_until(&mut s, "\r\n"),
        "-NOAUTH Authentication required.\r\n"
    );
    s.write_all(b"*2\r\n$4\r\nKEYS\r\n$1\r\n*\r\n")
        .expect("write");
    assert_eq!(
        read_until(&mut s, "\r\n"),
        "-NOAUTH Authentication required.\r\n"
    );
    drop(s);
    let ev = d.event();
    assert_connection_event(&ev, "redis", d.port);
    assert_eq!(ev["details"]["first_command"], "PING");
    stop(d);
}

#[test]
fn mysql_handshake() {
    let d = Decky::serve("mysql", None);
    let mut s = d.connect();
    let mut hs = Vec::new();
    let mut buf = [0u8; 512];
    while hs.len() < 4 || hs.len() < 4 + usize::from(hs[0]) {
        let n = std::io::Read::read(&mut s, &mut buf).expect("read");
        assert!(n > 0, "eof before handshake");
        hs.extend_from_slice(&buf[..n]);
    }
    assert_eq!(hs[3], 0, "sequence id");
    assert_eq!(hs[4], 0x0a, "protocol version 10");
    assert!(hs[5..].starts_with(b"8.0.36-0ubuntu0.22.04.1\0"));
    assert!(hs.ends_with(b"mysql_native_password\0"));
    // A minimal HandshakeResponse41 for user "root".
    let mut p = (0x0200u32 | 0x8000).to_le_bytes().to_vec();
    p.extend_from_slice(&[0, 0, 0, 1, 0x21]);
    p.extend_from_slice(&[0; 23]);
    p.extend_from_slice(b"root\0\x00");
    let mut pkt = vec![p.len() as u8, 0, 0, 1];
    pkt.extend_from_slice(&p);
    s.write_all(&pkt).expect("write");
    let err = read_to_end(&mut s);
    assert_eq!(err[4], 0xff, "ERR packet");
    assert_eq!(u16::from_le_bytes([err[5], err[6]]), 1045);
    assert!(String::from_utf8_lossy(&err).contains("Access denied for user 'root'@'127.0.0.1'"));
    let ev = d.event();
    assert_connection_event(&ev, "mysql", d.port);
    assert_eq!(ev["details"]["username"], "root");
    stop(d);
}

#[test]
fn vnc_version() {
    let d = Decky::serve("vnc", None);
    let mut s = d.connect();
    assert_eq!(read_until(&mut s, "\n"), "RFB 003.008\n");
    drop(s);
    assert_connection_event(&d.event(), "vnc", d.port);
    stop(d);
}

#[test]
fn elasticsearch_and_docker_json() {
    let d = Decky::serve("elasticsearch", None);
    let resp = http_get(&d, "/");
    let (head, body) = resp.split_once("\r\n\r\n").expect("head/body");
    assert!(head.starts_with("HTTP/1.1 200 OK"));
    let v: Value = serde_json::from_str(body).expect("json body");
    assert_eq!(v["name"], HOST);
    assert_eq!(v["version"]["number"], "7.10.2");
    assert_eq!(v["tagline"], "You Know, for Search");
    assert!(v["cluster_name"].is_string());
    assert_connection_event(&d.event(), "elasticsearch", d.port);
    stop(d);

    let d = Decky::serve("docker_api", None);
    let resp = http_get(&d, "/version");
    let (head, body) = resp.split_once("\r\n\r\n").expect("head/body");
    assert!(head.contains("Server: Docker/20.10.24 (linux)"), "{head}");
    let v: Value = serde_json::from_str(body).expect("json body");
    assert_eq!(v["Version"], "20.10.24");
    stop(d);
}

#[test]
fn other_slugs_log_tcp_and_udp_without_replying() {
    let udp_port = free_udp_port();
    let spec = format!("{udp_port}/udp");
    let d = Decky::serve_with("snmp", None, &["--port", &spec]);
    let mut s = d.connect();
    s.write_all(b"\x30\x26probe").expect("write");
    s.shutdown(Shutdown::Write).expect("shutdown");
    assert!(read_to_end(&mut s).is_empty(), "never replies on tcp");
    let ev = d.event();
    assert_connection_event(&ev, "snmp", d.port);
    assert_eq!(ev["details"]["bytes_in"], 7);
    assert_eq!(ev["details"]["preview"], "0&probe");

    let c = UdpSocket::bind("127.0.0.1:0").expect("udp");
    c.set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    c.send_to(b"one", ("127.0.0.1", udp_port)).expect("send");
    c.send_to(b"two!", ("127.0.0.1", udp_port)).expect("send");
    for (n, text) in [(3, "one"), (4, "two!")] {
        let ev = d.event();
        assert_eq!(ev["protocol"], "udp");
        assert_eq!(ev["kind"], "datagram");
        assert_eq!(ev["dst_port"], u64::from(udp_port));
        assert_eq!(ev["details"]["bytes_in"], n);
        assert_eq!(ev["details"]["preview"], text);
    }
    let mut buf = [0u8; 16];
    assert!(c.recv_from(&mut buf).is_err(), "never replies on udp");
    stop(d);
}

#[test]
fn sigterm_with_open_connection_exits_zero() {
    let d = Decky::serve("ssh", None);
    let mut s = d.connect();
    read_until(&mut s, "\r\n");
    // The client stays silent; SIGTERM must still end the process, 0.
    stop(d);
}

#[test]
fn taken_port_exits_one() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let spec = format!("{port}/tcp");
    let out = command(
        &["serve", "ssh", "--bind", "127.0.0.1", "--port", &spec],
        None,
    )
    .output()
    .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot bind 127.0.0.1:{port}/tcp")),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn bad_input_exits_two() {
    let run = |args: &[&str], config: Option<&str>| command(args, config).output().expect("run");
    let out = run(&["serve", "ssh"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least one --port"));
    let out = run(
        &["serve", "ssh", "--port", "22", "--bind", "localhost"],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    let port = format!("{}/tcp", free_tcp_port());
    let out = run(
        &["serve", "ssh", "--bind", "127.0.0.1", "--port", &port],
        Some("[1,2]"),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("DECNET_SERVICE_CONFIG"));
}

#[test]
fn version_flag() {
    let out = command(&["--version"], None).output().expect("run");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("decnet-decky {}", env!("CARGO_PKG_VERSION"))
    );
}

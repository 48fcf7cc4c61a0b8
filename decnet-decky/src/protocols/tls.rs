//! TLS for the decoys: a self-signed certificate made at start-up (rcgen,
//! P-256) and a rustls server config built on the ring provider only.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rcgen::{date_time_ymd, CertificateParams, DistinguishedName, DnType, KeyPair, SerialNumber};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use serde_json::Value;

use super::Prefixed;
use crate::log::{civil_from_days, AttackDetails, AttackKind, Fields, Reporter};
use crate::util::Rng;

pub mod hello;

/// The certificate could not be made or the config not built.
#[derive(Debug)]
pub struct TlsSetupError(pub String);

impl std::fmt::Display for TlsSetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "tls setup: {}", self.0)
    }
}

impl std::error::Error for TlsSetupError {}

/// A self-signed certificate for `cn` (also its only SAN), valid from a
/// month ago for ten years, like a distribution's snake-oil certificate.
pub fn self_signed(cn: &str) -> Result<(Vec<u8>, Vec<u8>), TlsSetupError> {
    let err = |e: rcgen::Error| TlsSetupError(format!("certificate for {cn:?}: {e}"));
    let mut params = CertificateParams::new(vec![cn.to_owned()]).map_err(err)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    let today = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64
        / 86_400;
    let date = |days: i64| {
        let (y, m, d) = civil_from_days(days);
        date_time_ymd(y as i32, m as u8, d as u8)
    };
    params.not_before = date(today - 31);
    params.not_after = date(today - 31 + 3650);
    let mut serial = [0u8; 16];
    Rng::new().fill(&mut serial);
    serial[0] &= 0x7f;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    let key = KeyPair::generate().map_err(err)?;
    let cert = params.self_signed(&key).map_err(err)?;
    Ok((cert.der().to_vec(), key.serialize_der()))
}

/// A rustls server config (ring provider, TLS 1.2 and 1.3) for a new
/// self-signed certificate. `alpn` lists the protocols to offer.
pub fn server_config(cn: &str, alpn: &[&[u8]]) -> Result<Arc<ServerConfig>, TlsSetupError> {
    let (cert, key) = match self_signed(cn) {
        Ok(pair) => pair,
        // A hostname rcgen will not take (non-ASCII …) must not stop the decoy.
        Err(_) => self_signed("localhost")?,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsSetupError(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.into()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
        )
        .map_err(|e| TlsSetupError(e.to_string()))?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// Completes a server handshake on `stream`, noting SNI, version and ALPN
/// (or the failure) in `fields`.
pub fn accept<S: Read + Write>(
    config: &Arc<ServerConfig>,
    mut stream: S,
    fields: &mut Fields,
) -> io::Result<StreamOwned<ServerConnection, S>> {
    fields.insert("tls".into(), Value::from(true));
    let mut conn = ServerConnection::new(config.clone()).map_err(io::Error::other)?;
    while conn.is_handshaking() {
        if let Err(e) = conn.complete_io(&mut stream) {
            fields.insert("tls_error".into(), Value::from(e.to_string()));
            note_client_hello(&conn, fields);
            return Err(e);
        }
    }
    note_client_hello(&conn, fields);
    if let Some(v) = conn.protocol_version() {
        fields.insert("tls_version".into(), Value::from(format!("{v:?}")));
    }
    if let Some(p) = conn.alpn_protocol() {
        fields.insert("alpn".into(), Value::from(String::from_utf8_lossy(p)));
    }
    Ok(StreamOwned::new(conn, stream))
}

fn note_client_hello(conn: &ServerConnection, fields: &mut Fields) {
    if let Some(sni) = conn.server_name() {
        fields.insert("sni".into(), Value::from(sni.to_owned()));
    }
}

/// Reads the first TLS record (at most [`hello::MAX_RECORD`] bytes) without losing it: the
/// bytes read come back first from the returned stream.
pub fn read_first_record<S: Read>(mut stream: S) -> io::Result<(Vec<u8>, Prefixed<S>)> {
    let mut rec = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let want = match hello::record_len(&rec) {
            Some(len) => 5 + len,
            None if rec.len() >= 5 => break,
            None => 5,
        };
        let want = want.min(hello::MAX_RECORD);
        if rec.len() >= want {
            break;
        }
        let room = (want - rec.len()).min(buf.len());
        let n = match stream.read(&mut buf[..room]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            break;
        }
        rec.extend_from_slice(&buf[..n]);
    }
    let stream = Prefixed {
        prefix: rec.clone(),
        pos: 0,
        inner: stream,
    };
    Ok((rec, stream))
}

/// Fingerprints the ClientHello (JA3, JA4, SNI, ALPN offered) as a `client` step and into
/// `fields`, then completes the handshake like [`accept`]. A client that only probes is
/// still recorded.
pub fn accept_reported<S: Read + Write>(
    config: &Arc<ServerConfig>,
    stream: S,
    fields: &mut Fields,
    report: &Reporter,
) -> io::Result<StreamOwned<ServerConnection, Prefixed<S>>> {
    let (record, stream) = read_first_record(stream)?;
    if let Some(h) = hello::parse(&record) {
        let (ja3, ja4) = (h.ja3(), h.ja4());
        fields.insert("ja3".into(), Value::from(ja3.clone()));
        fields.insert("ja4".into(), Value::from(ja4.clone()));
        let mut extra = Fields::new();
        extra.insert("ja3".into(), Value::from(ja3.clone()));
        extra.insert("ja3_string".into(), Value::from(h.ja3_string()));
        extra.insert("ja4".into(), Value::from(ja4));
        if let Some(sni) = &h.sni {
            extra.insert("sni".into(), Value::from(sni.clone()));
        }
        if !h.alpn.is_empty() {
            extra.insert("alpn_offered".into(), Value::from(h.alpn.clone()));
        }
        report.emit(
            AttackKind::Client,
            AttackDetails {
                fingerprint: Some(format!("ja3:{ja3}")),
                extra,
                ..AttackDetails::default()
            },
        );
    }
    accept(config, stream, fields)
}

/// Sends close_notify and flushes; errors are irrelevant at this point.
pub fn close<S: Read + Write>(tls: &mut StreamOwned<ServerConnection, S>) {
    tls.conn.send_close_notify();
    while tls.conn.wants_write() {
        if tls.conn.write_tls(&mut tls.sock).is_err() {
            break;
        }
    }
    let _ = tls.sock.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_is_made_for_hostnames_and_ips() {
        let (cert, key) = self_signed("web-01").expect("cert");
        assert!(!cert.is_empty() && !key.is_empty());
        // The CN appears in the DER as a UTF8String/PrintableString.
        assert!(cert.windows(6).any(|w| w == b"web-01"));
        assert!(!cert.windows(9).any(|w| w == b"rcgen sel"));
        self_signed("10.0.0.5").expect("ip cert");
        server_config("web-01", &[b"http/1.1"]).expect("config");
        // Fallback for names rcgen refuses.
        server_config("bad name\u{e9}", &[]).expect("fallback config");
    }

    #[test]
    fn first_record_is_read_and_given_back() {
        use crate::protocols::testing::Mock;
        let mut input = vec![0x16, 3, 1, 0, 3, 1, 0, 0];
        input.extend_from_slice(b"after");
        let (rec, mut rest) = read_first_record(Mock::new(&input)).expect("read");
        assert_eq!(rec, &input[..8]);
        let mut all = Vec::new();
        rest.read_to_end(&mut all).expect("rest");
        assert_eq!(all, input);
        // Not TLS: five bytes are read and given back.
        let (rec, _) = read_first_record(Mock::new(b"GET / HTTP/1.1")).expect("read");
        assert_eq!(rec, b"GET /");
    }
}

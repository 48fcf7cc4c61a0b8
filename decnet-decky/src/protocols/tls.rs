//! TLS for the decoys: a self-signed certificate made at start-up (rcgen,
//! P-256) and a rustls server config built on the ring provider only.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rcgen::{date_time_ymd, CertificateParams, DistinguishedName, DnType, KeyPair, SerialNumber};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use serde_json::Value;

use crate::log::{civil_from_days, Fields};
use crate::util::Rng;

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
}

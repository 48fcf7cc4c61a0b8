//! Shared test helpers: fixtures and a real TLS handshake over 127.0.0.1.
#![allow(clippy::unwrap_used, dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use decnet_tls::pki::{Bundle, Ca, IssuedKeyPair};
use decnet_tls::rustls::{ClientConfig, ServerConfig};
use decnet_tls::verify::{peer_identity, server_name, PeerIdentity};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

pub fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn bundle(ca: &Ca, leaf: &IssuedKeyPair) -> Bundle {
    Bundle {
        ca_pem: ca.cert_pem().to_owned(),
        cert_pem: leaf.cert_pem.clone(),
        key_pem: leaf.key_pem.clone(),
    }
}

/// What each side saw.
#[derive(Debug)]
pub struct Outcome {
    /// The server's accept: the verified peer (None: no client certificate), or the error.
    pub server: Result<Option<PeerIdentity>, String>,
    /// The client's connect + read of the server's "ok", with the server's leaf fingerprint.
    pub client: Result<Option<String>, String>,
}

impl Outcome {
    pub fn accepted(&self) -> bool {
        self.server.is_ok() && self.client.is_ok()
    }

    #[track_caller]
    pub fn assert_accepted(&self) -> (Option<PeerIdentity>, Option<String>) {
        assert!(self.accepted(), "expected acceptance, got {self:#?}");
        (self.server.clone().unwrap(), self.client.clone().unwrap())
    }

    /// Refused by the server: its accept failed (the client then fails too).
    #[track_caller]
    pub fn assert_server_refused(&self, needle: &str) {
        let err = self
            .server
            .as_ref()
            .expect_err("server should have refused");
        assert!(
            self.client.is_err(),
            "client should see the refusal: {self:#?}"
        );
        assert!(
            err.contains(needle),
            "server error {err:?} lacks {needle:?}"
        );
    }

    /// Refused by the client: its verifier rejected the server.
    #[track_caller]
    pub fn assert_client_refused(&self, needle: &str) {
        let err = self
            .client
            .as_ref()
            .expect_err("client should have refused");
        assert!(
            self.server.is_err(),
            "server should see the refusal: {self:#?}"
        );
        assert!(
            err.contains(needle),
            "client error {err:?} lacks {needle:?}"
        );
    }
}

/// One real handshake over 127.0.0.1: the server accepts, writes "ok" and closes; the client
/// dials `name` (which the verifiers ignore), and reads "ok". In TLS 1.3 a client finishes
/// its handshake before the server has judged its certificate, hence the read.
pub async fn handshake(
    server_cfg: Arc<ServerConfig>,
    client_cfg: Arc<ClientConfig>,
    name: &str,
) -> Outcome {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let mut tls = TlsAcceptor::from(server_cfg)
            .accept(tcp)
            .await
            .map_err(|e| e.to_string())?;
        let peer = peer_identity(tls.get_ref().1);
        tls.write_all(b"ok").await.map_err(|e| e.to_string())?;
        let _ = tls.shutdown().await;
        Ok::<_, String>(peer)
    });
    let name = server_name(name);
    let client = async move {
        let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let mut tls = TlsConnector::from(client_cfg)
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        let seen = decnet_tls::verify::peer_fingerprint(tls.get_ref().1);
        let mut buf = [0u8; 2];
        tls.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        if &buf != b"ok" {
            return Err(format!("unexpected bytes {buf:?}"));
        }
        Ok::<_, String>(seen)
    };
    let limit = Duration::from_secs(20);
    let client = tokio::time::timeout(limit, client)
        .await
        .unwrap_or_else(|_| Err("client timed out".to_owned()));
    let server = tokio::time::timeout(limit, server)
        .await
        .map(|joined| joined.unwrap())
        .unwrap_or_else(|_| Err("server timed out".to_owned()));
    Outcome { server, client }
}

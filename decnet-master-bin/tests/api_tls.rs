#![allow(clippy::unwrap_used)] // test helpers abort on a broken fixture
//! The operator API's HTTPS certificate names the address the API is bound to: a client that
//! dials the master by that address (and trusts the CA) completes a real TLS handshake. The
//! handshake runs in memory, so no packet goes anywhere; the bound address is a TEST-NET one.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use decnet_master_bin::master::layout::DataDir;
use decnet_master_bin::master::pki::MasterPki;
use decnet_tls::rustls;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

/// Runs a TLS handshake between `client` (dialling `name`) and `server`, in memory.
fn handshake(
    client: Arc<rustls::ClientConfig>,
    server: Arc<rustls::ServerConfig>,
    name: IpAddr,
) -> Result<(), rustls::Error> {
    let mut c = rustls::ClientConnection::new(client, ServerName::IpAddress(name.into()))?;
    let mut s = rustls::ServerConnection::new(server)?;
    for _ in 0..16 {
        let mut buf = Vec::new();
        while c.wants_write() {
            c.write_tls(&mut buf).unwrap();
        }
        if !buf.is_empty() {
            s.read_tls(&mut &buf[..]).unwrap();
            s.process_new_packets()?;
        }
        let mut back = Vec::new();
        while s.wants_write() {
            s.write_tls(&mut back).unwrap();
        }
        if !back.is_empty() {
            c.read_tls(&mut &back[..]).unwrap();
            c.process_new_packets()?;
        }
        if !c.is_handshaking() && !s.is_handshaking() {
            return Ok(());
        }
    }
    panic!("handshake did not finish");
}

#[test]
fn the_api_certificate_names_the_bound_address() {
    decnet_tls::install_default_provider();
    let dir = tempfile::tempdir().unwrap();
    let layout = DataDir::new(dir.path());
    let ca = common::write_pki(&layout);
    let pki = MasterPki::load(&layout).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.cert_pem().as_bytes()).unwrap())
        .unwrap();
    let client = Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let bound = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10));
    let server = pki.api_tls(SocketAddr::new(bound, 8000)).unwrap();
    handshake(client.clone(), server.clone(), bound).expect("dialled by its bound address");
    handshake(client.clone(), server, IpAddr::V4(Ipv4Addr::LOCALHOST)).expect("and by loopback");
    // Another address is refused: the check is real.
    let other = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 11));
    let server = pki.api_tls(SocketAddr::new(bound, 8000)).unwrap();
    let err = handshake(client.clone(), server, other).unwrap_err();
    assert!(err.to_string().contains("certificate"), "{err}");
    // Bound to every address, it names the host and loopback only.
    let server = pki
        .api_tls(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 8000))
        .unwrap();
    assert!(handshake(client, server, bound).is_err());
}

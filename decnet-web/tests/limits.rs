#![allow(clippy::unwrap_used)] // test helpers abort on a broken fixture
//! Slow-loris defences of the accept loop, over real sockets on 127.0.0.1 (and real rustls
//! handshakes where TLS is involved), with the limits set to about a second: a silent client,
//! half-sent headers and an idle keep-alive connection are closed; a slowly streaming response
//! is not; connections over the total and per-source caps are closed at once.
//!
//! No timing asserts: a test waits for the event it expects (EOF) and gives up only after
//! [`HANG`], which guards against hanging, not against slowness.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::routing::get;

use axum::Router;
use decnet_tls::pki::{Bundle, Ca, LeafSpec, San};
use decnet_tls::verify::{
    anonymous_client_config, server_config, server_name, ClientAuth, PeerPolicy,
};
use decnet_web::{serve, ServeLimits};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// Upper bound of any wait: only a hung test reaches it.
const HANG: Duration = Duration::from_secs(30);
/// A request with keep-alive (HTTP/1.1's default).
const GET_HELLO: &[u8] = b"GET /hello HTTP/1.1\r\nhost: x\r\n\r\n";

fn short() -> ServeLimits {
    ServeLimits {
        handshake_timeout: Duration::from_secs(1),
        header_timeout: Duration::from_secs(1),
        body_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(1),
        ..ServeLimits::default()
    }
}

/// `/hello` answers at once; `/echo` (POST) answers the length of the body it read; `/slow`
/// streams four chunks 1.5 s apart (longer than the idle
/// timeout, both between chunks and in total).
fn app() -> Router {
    Router::new()
        .route("/hello", get(|| async { "hello" }))
        .route(
            "/echo",
            axum::routing::post(|body: String| async move { format!("read {}", body.len()) }),
        )
        .route(
            "/slow",
            get(|| async {
                let chunks = futures_util::stream::unfold(0u32, |i| async move {
                    if i == 4 {
                        return None;
                    }
                    if i > 0 {
                        tokio::time::sleep(Duration::from_millis(1500)).await;
                    }
                    Some((Ok::<_, std::io::Error>(format!("chunk-{i};")), i + 1))
                });
                Body::from_stream(chunks)
            }),
        )
}

struct Server {
    addr: SocketAddr,
    token: CancellationToken,
    handle: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(
        tls: Option<Arc<decnet_tls::rustls::ServerConfig>>,
        limits: ServeLimits,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let token = CancellationToken::new();
        let t = token.clone();
        let handle =
            tokio::spawn(async move { serve(listener, tls, app(), limits, t).await.unwrap() });
        Server {
            addr,
            token,
            handle,
        }
    }

    async fn stop(self) {
        self.token.cancel();
        tokio::time::timeout(HANG, self.handle)
            .await
            .unwrap()
            .unwrap();
    }
}

/// A CA, a server certificate for 127.0.0.1 and the swarm endpoint's TLS shape (client
/// certificate asked for, not required), plus an anonymous client that trusts the CA.
struct Tls {
    server: Arc<decnet_tls::rustls::ServerConfig>,
    client: tokio_rustls::TlsConnector,
}

fn tls() -> Tls {
    let ca = Ca::generate("DECNET test CA").unwrap();
    let leaf = ca
        .issue_keypair(&LeafSpec::master(vec![San::parse("127.0.0.1")]))
        .unwrap();
    let bundle = Bundle {
        ca_pem: ca.cert_pem().to_owned(),
        cert_pem: leaf.cert_pem.clone(),
        key_pem: leaf.key_pem.clone(),
    };
    let policy = PeerPolicy::new(ca.cert_der().clone());
    Tls {
        server: server_config(&bundle, &policy, ClientAuth::Optional).unwrap(),
        client: tokio_rustls::TlsConnector::from(anonymous_client_config(&policy).unwrap()),
    }
}

/// Reads until the server closes the connection (EOF or reset) and returns what arrived
/// before; panics after [`HANG`].
async fn until_closed(s: &mut (impl AsyncRead + Unpin)) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(HANG, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the server kept the connection open; received so far: {}",
        String::from_utf8_lossy(&got)
    );
    got
}

/// Reads one complete `/hello` response (it ends with its body).
async fn read_hello(s: &mut (impl AsyncRead + Unpin)) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(HANG, async {
        while !got.ends_with(b"hello") {
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .unwrap();
    let text = String::from_utf8(got).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    text
}

/// (a) A plain TCP client that connects and sends nothing is disconnected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_plain_connection_is_closed() {
    let server = Server::start(None, short()).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let got = until_closed(&mut s).await;
    assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
    server.stop().await;
}

/// (a') A TLS client that handshakes and then sends nothing is disconnected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_tls_connection_is_closed() {
    let tls = tls();
    let server = Server::start(Some(tls.server), short()).await;
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let mut s = tls
        .client
        .connect(server_name("127.0.0.1"), tcp)
        .await
        .unwrap();
    until_closed(&mut s).await;
    server.stop().await;
}

/// A TCP client that never starts the TLS handshake is disconnected by the handshake timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_tls_handshake_is_closed() {
    let tls = tls();
    let server = Server::start(Some(tls.server), short()).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    until_closed(&mut s).await;
    server.stop().await;
}

/// (b) TLS handshake done, part of the request headers, then silence: disconnected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_headers_over_tls_are_closed() {
    let tls = tls();
    let server = Server::start(Some(tls.server), short()).await;
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let mut s = tls
        .client
        .connect(server_name("127.0.0.1"), tcp)
        .await
        .unwrap();
    s.write_all(b"GET /hello HTTP/1.1\r\nhost: x\r\nx-slow")
        .await
        .unwrap();
    s.flush().await.unwrap();
    until_closed(&mut s).await;
    server.stop().await;
}

/// Sends `start`, then `byte` every 200 ms (each well within every timeout) until a write
/// fails because the server closed the connection; panics after [`HANG`].
async fn trickle(addr: SocketAddr, start: &[u8], byte: &[u8]) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(start).await.unwrap();
    let until_refused = async {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if s.write_all(byte).await.is_err() {
                return;
            }
        }
    };
    tokio::time::timeout(HANG, until_refused)
        .await
        .expect("the server kept a trickling client");
}

/// (b') A client that keeps trickling header bytes (each well within the timeout) is still
/// disconnected: the header timeout runs from the request's first byte, not the last one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickled_headers_are_closed() {
    let server = Server::start(None, short()).await;
    trickle(server.addr, b"GET /hello HTTP/1.1\r\n", b"x").await;
    server.stop().await;
}

/// (c) A keep-alive connection left idle after one complete request is disconnected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connection_is_closed() {
    let tls = tls();
    let server = Server::start(Some(tls.server), short()).await;
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let mut s = tls
        .client
        .connect(server_name("127.0.0.1"), tcp)
        .await
        .unwrap();
    s.write_all(GET_HELLO).await.unwrap();
    read_hello(&mut s).await;
    let rest = until_closed(&mut s).await;
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    server.stop().await;
}

/// (d) A response that streams for longer than the idle timeout (with gaps longer than it) is
/// not cut; once it has been sent the connection is idle and gets closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_response_is_not_cut() {
    let server = Server::start(None, short()).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let got = String::from_utf8(until_closed(&mut s).await).unwrap();
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    for i in 0..4 {
        assert!(
            got.contains(&format!("chunk-{i};")),
            "chunk {i} missing: {got}"
        );
    }
    // The chunked body's last chunk: the response was complete before the close.
    assert!(got.ends_with("\r\n0\r\n\r\n"), "{got:?}");
    server.stop().await;
}

/// Opens a connection and completes one request on it (so the server has surely accepted
/// and counted it); the connection stays open (keep-alive).
async fn served(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(GET_HELLO).await.unwrap();
    read_hello(&mut s).await;
    s
}

/// A connection the server closes without answering: connect, send a request, see EOF (or
/// a reset) and no response byte.
async fn refused(addr: SocketAddr) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    // The server may have closed already: a failed write is a refusal too.
    let _ = s.write_all(GET_HELLO).await;
    let got = until_closed(&mut s).await;
    assert!(
        got.is_empty(),
        "over the cap yet answered: {}",
        String::from_utf8_lossy(&got)
    );
}

/// Once a slot is free again (the server noticed a close), a new connection is served.
/// Retries only while the server still counts the closed connection.
async fn served_eventually(addr: SocketAddr) -> TcpStream {
    tokio::time::timeout(HANG, async {
        loop {
            let mut s = TcpStream::connect(addr).await.unwrap();
            if s.write_all(GET_HELLO).await.is_ok() {
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                    if got.ends_with(b"hello") {
                        return s;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("a freed slot was never reused")
}

/// Long timeouts: the held connections must not be closed as idle during a cap test.
fn caps(total: usize, per_source: usize) -> ServeLimits {
    ServeLimits {
        max_connections: total,
        max_connections_per_source: per_source,
        ..ServeLimits::default()
    }
}

/// (e) Total cap N: N connections held, the (N+1)th is closed at once; after one of the N
/// closes, a new one is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn total_cap_closes_the_extra_connection() {
    let server = Server::start(None, caps(3, 3)).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(served(server.addr).await);
    }
    refused(server.addr).await;
    refused(server.addr).await;
    drop(held.pop());
    held.push(served_eventually(server.addr).await);
    refused(server.addr).await;
    server.stop().await;
}

/// (e') The total cap also holds over TLS, before any handshake work: the extra client's
/// handshake fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn total_cap_applies_before_tls() {
    let tls = tls();
    let server = Server::start(Some(tls.server), caps(1, 1)).await;
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let mut held = tls
        .client
        .connect(server_name("127.0.0.1"), tcp)
        .await
        .unwrap();
    held.write_all(GET_HELLO).await.unwrap();
    read_hello(&mut held).await;
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let second = tokio::time::timeout(HANG, tls.client.connect(server_name("127.0.0.1"), tcp))
        .await
        .expect("the handshake over the cap neither failed nor finished");
    assert!(second.is_err(), "a handshake over the cap succeeded");
    drop(held);
    server.stop().await;
}

/// (f) Per-source cap below the total: every test client is 127.0.0.1, so the per-source cap
/// is the one that closes the extra connection (the total would still have room).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_source_cap_applies_below_the_total() {
    let server = Server::start(None, caps(10, 2)).await;
    let mut held = vec![served(server.addr).await, served(server.addr).await];
    refused(server.addr).await;
    drop(held.remove(0));
    held.push(served_eventually(server.addr).await);
    refused(server.addr).await;
    server.stop().await;
}

/// Keep-alive connections within the limits keep working: two requests on one connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_within_the_limits_is_served() {
    let server = Server::start(None, ServeLimits::default()).await;
    let mut s = served(server.addr).await;
    s.write_all(GET_HELLO).await.unwrap();
    read_hello(&mut s).await;
    server.stop().await;
}

/// The idle timeout is its own limit: with a long header timeout, an idle keep-alive
/// connection is still closed after the (short) idle timeout. (hyper's own
/// `header_read_timeout` counts the idle time between requests as header time, so it cannot
/// tell the two apart.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_timeout_applies_with_a_long_header_timeout() {
    let limits = ServeLimits {
        header_timeout: Duration::from_secs(600),
        idle_timeout: Duration::from_secs(1),
        ..ServeLimits::default()
    };
    let server = Server::start(None, limits).await;
    let mut s = served(server.addr).await;
    until_closed(&mut s).await;
    server.stop().await;
}

/// A new connection owes its first request's headers within the header timeout, however
/// long the idle timeout is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_timeout_applies_with_a_long_idle_timeout() {
    let limits = ServeLimits {
        header_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(600),
        ..ServeLimits::default()
    };
    let server = Server::start(None, limits).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    until_closed(&mut s).await;
    // And after a request, the next one's headers too: its first byte starts the clock.
    let mut s = served(server.addr).await;
    s.write_all(b"GET /hello HTTP/1.1\r\n").await.unwrap();
    until_closed(&mut s).await;
    server.stop().await;
}

/// A request whose headers promise a body that then trickles in (a byte every 200 ms, each
/// well within every other timeout) is closed by the body timeout, unanswered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickled_body_is_closed() {
    let server = Server::start(None, short()).await;
    let head = b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n{";
    trickle(server.addr, head, b" ").await;
    server.stop().await;
}

/// Over TLS (the swarm endpoint's shape), headers and then a withheld body: closed, with no
/// response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withheld_body_over_tls_is_closed() {
    let tls = tls();
    let limits = ServeLimits {
        idle_timeout: Duration::from_secs(600),
        ..short()
    };
    let server = Server::start(Some(tls.server), limits).await;
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let mut s = tls
        .client
        .connect(server_name("127.0.0.1"), tcp)
        .await
        .unwrap();
    s.write_all(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\n12")
        .await
        .unwrap();
    s.flush().await.unwrap();
    let got = until_closed(&mut s).await;
    assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
    server.stop().await;
}

/// A body that arrives in full is served, and the connection goes on: a second request on it
/// is answered too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_bodies_are_served_on_a_kept_alive_connection() {
    let server = Server::start(None, short()).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    for _ in 0..2 {
        s.write_all(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nabcde")
            .await
            .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        tokio::time::timeout(HANG, async {
            while !got.ends_with(b"read 5") {
                let n = s.read(&mut buf).await.unwrap();
                assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
                got.extend_from_slice(&buf[..n]);
            }
        })
        .await
        .unwrap();
        assert!(got.starts_with(b"HTTP/1.1 200"));
    }
    server.stop().await;
}

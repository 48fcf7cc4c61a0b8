#![allow(clippy::unwrap_used)] // test helpers abort on a broken fixture
//! The accept loop over plain TCP: the body limit answers 413 from Content-Length before the
//! body is sent, bodies within the limit arrive, shutdown ends the loop.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use axum::routing::post;
use axum::{Extension, Router};
use decnet_web::{body_limit, serve, JsonBody, PeerCertificate};
use tokio_util::sync::CancellationToken;

async fn start(
    limit: usize,
) -> (
    std::net::SocketAddr,
    CancellationToken,
    tokio::task::JoinHandle<()>,
) {
    let app = Router::new().route(
        "/echo",
        post(
            |Extension(peer): Extension<PeerCertificate>,
             JsonBody(v): JsonBody<serde_json::Value>| async move {
                format!("peer={} len={}", peer.0.is_some(), v.to_string().len())
            },
        ),
    );
    let app = body_limit(app, limit);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let token = CancellationToken::new();
    let t = token.clone();
    let h = tokio::spawn(async move {
        serve(listener, None, app, decnet_web::ServeLimits::default(), t)
            .await
            .unwrap()
    });
    (addr, token, h)
}

fn raw(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request).unwrap();
    let mut buf = vec![0; 4096];
    let n = s.read(&mut buf).unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_answers_413_before_the_body() {
    let (addr, token, h) = start(1024).await;
    let resp = tokio::task::spawn_blocking(move || {
        // Only the headers: a server that waited for the body would time out the read.
        raw(addr, b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 16777217\r\n\r\n")
    })
    .await
    .unwrap();
    assert!(resp.starts_with("HTTP/1.1 413"), "{resp}");

    let ok = tokio::task::spawn_blocking(move || {
        raw(
            addr,
            b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 7\r\n\r\n[1,2,3]",
        )
    })
    .await
    .unwrap();
    assert!(
        ok.starts_with("HTTP/1.1 200") && ok.ends_with("peer=false len=7"),
        "{ok}"
    );

    let bad = tokio::task::spawn_blocking(move || {
        raw(
            addr,
            b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\n[1,",
        )
    })
    .await
    .unwrap();
    assert!(
        bad.starts_with("HTTP/1.1 400") && bad.contains("not valid JSON"),
        "{bad}"
    );

    token.cancel();
    tokio::time::timeout(Duration::from_secs(15), h)
        .await
        .unwrap()
        .unwrap();
}

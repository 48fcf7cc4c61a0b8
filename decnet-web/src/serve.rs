//! The accept loop: plain TCP or rustls, HTTP/1.1 with keep-alive, the peer certificate handed
//! to every request, graceful drain on shutdown.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use rustls_pki_types::CertificateDer;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tower_http::limit::RequestBodyLimitLayer;

/// How long a client has to finish the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long in-flight requests may run after shutdown.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The certificate the client presented, if any (always `None` on plain TCP). Handlers that
/// need an identity read it from the request extensions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerCertificate(pub Option<CertificateDer<'static>>);

/// The client's socket address (for rate limits and logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteAddr(pub std::net::SocketAddr);

/// Bodies larger than `limit` get 413 — decided from `Content-Length` before anything is
/// read, and enforced while reading when there is no length.
pub fn body_limit(router: Router, limit: usize) -> Router {
    router
        .layer(DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(limit))
}

/// Serves `app` on `listener` until `shutdown` is cancelled, then drains in-flight requests
/// (bounded by [`DRAIN_TIMEOUT`]). With `tls`, connections whose handshake fails (the
/// verifiers refuse the client) never reach `app`.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    app: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let acceptor = tls.map(TlsAcceptor::from);
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let acceptor = acceptor.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let builder = hyper::server::conn::http1::Builder::new();
            match acceptor {
                None => {
                    let svc = with_peer(app, None, peer);
                    let conn = builder.serve_connection(TokioIo::new(stream), svc);
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(%peer, error = %e, "connection ended");
                    }
                }
                Some(acceptor) => {
                    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::info!(%peer, error = %e, "TLS handshake refused");
                            return;
                        }
                        Err(_) => {
                            tracing::info!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let cert = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .map(|c| c.clone().into_owned());
                    let svc = with_peer(app, cert, peer);
                    let conn = builder.serve_connection(TokioIo::new(tls), svc);
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(%peer, error = %e, "connection ended");
                    }
                }
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not drain in time");
    }
    Ok(())
}

/// `app` as a hyper service that stamps every request with the connection's peer certificate.
fn with_peer(
    app: Router,
    cert: Option<CertificateDer<'static>>,
    remote: std::net::SocketAddr,
) -> impl hyper::service::Service<
    axum::extract::Request<hyper::body::Incoming>,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future = impl Send,
> + Clone {
    let peer = PeerCertificate(cert);
    hyper::service::service_fn(
        move |mut req: axum::extract::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(peer.clone());
            req.extensions_mut().insert(RemoteAddr(remote));
            app.clone().oneshot(req)
        },
    )
}

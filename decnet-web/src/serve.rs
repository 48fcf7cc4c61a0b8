//! The accept loop: plain TCP or rustls, HTTP/1.1 with keep-alive, the peer certificate handed
//! to every request, connection caps and header/body/idle timeouts ([`ServeLimits`]), graceful
//! drain on shutdown.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tower_http::limit::RequestBodyLimitLayer;

use crate::caps::{Caps, RefusalLog};
use crate::conn::{Activity, Guarded, TimedBody, Tracked};
use crate::limits::ServeLimits;

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
///
/// `limits` (see [`ServeLimits`]) bound what a client can hold: connections over the total or
/// per-source cap are closed at accept, before any TLS work; a handshake, a request's headers
/// a request's body and a keep-alive connection's idle time each have a timeout. A request in
/// progress with its body in (until its response body has been sent) has none, so long
/// server-sent-event streams are not cut.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    app: Router,
    limits: ServeLimits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let acceptor = tls.map(TlsAcceptor::from);
    let graceful = GracefulShutdown::new();
    let caps = Caps::new(limits.max_connections, limits.max_connections_per_source);
    let local = listener.local_addr().ok();
    let mut refusals = RefusalLog::default();
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
        let admission = match caps.admit(peer.ip()) {
            Ok(a) => a,
            Err(refusal) => {
                // Closed at once: dropping the stream sends the FIN.
                drop(stream);
                refusals.record(refusal, peer.ip(), local);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let acceptor = acceptor.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            // The connection's place under the caps, freed when this task ends.
            let _admission = admission;
            match acceptor {
                None => serve_connection(stream, None, app, peer, limits, watcher).await,
                Some(acceptor) => {
                    let tls = match tokio::time::timeout(
                        limits.handshake_timeout,
                        acceptor.accept(stream),
                    )
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
                    serve_connection(tls, cert, app, peer, limits, watcher).await;
                }
            }
        });
    }
    refusals.flush(local);
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not drain in time");
    }
    Ok(())
}

/// HTTP/1.1 on one connection until the client closes it, shutdown drains it, or it passes
/// its header or idle deadline (then it is dropped, which closes the socket).
async fn serve_connection<IO>(
    io: IO,
    cert: Option<CertificateDer<'static>>,
    app: Router,
    peer: std::net::SocketAddr,
    limits: ServeLimits,
    watcher: Watcher,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Activity::new();
    let io = TokioIo::new(Tracked::new(io, activity.clone()));
    let svc = with_peer(app, cert, peer, activity.clone());
    let conn = watcher.watch(hyper::server::conn::http1::Builder::new().serve_connection(io, svc));
    tokio::select! {
        ended = conn => {
            if let Err(e) = ended {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
        }
        () = activity.expired(limits.header_timeout, limits.body_timeout, limits.idle_timeout) => {
            tracing::debug!(%peer, "closed a connection idle or without a complete request");
        }
    }
}

/// `app` as a hyper service that stamps every request with the connection's peer certificate
/// and keeps the request marked in progress until its response body has been sent.
fn with_peer(
    app: Router,
    cert: Option<CertificateDer<'static>>,
    remote: std::net::SocketAddr,
    activity: Arc<Activity>,
) -> impl hyper::service::Service<
    axum::extract::Request<hyper::body::Incoming>,
    Response = axum::http::Response<Guarded<axum::body::Body>>,
    Error = std::convert::Infallible,
    Future = impl Send,
> + Clone {
    let peer = PeerCertificate(cert);
    hyper::service::service_fn(move |req: axum::extract::Request<hyper::body::Incoming>| {
        use hyper::body::Body as _;
        let in_flight = activity.start_request(!req.body().is_end_stream());
        let mut req = req.map(|b| axum::body::Body::new(TimedBody::new(b, activity.clone())));
        req.extensions_mut().insert(peer.clone());
        req.extensions_mut().insert(RemoteAddr(remote));
        let app = app.clone();
        async move {
            let resp = app.oneshot(req).await?;
            Ok(resp.map(|body| Guarded::new(body, in_flight)))
        }
    })
}

//! Per-connection deadlines: the header-read, request-body and keep-alive idle timeouts.
//!
//! hyper's own `header_read_timeout` starts when hyper begins waiting for a request head, which
//! after a response is also the keep-alive idle time: it cannot give idle connections a
//! different limit from half-sent headers. So the connection's [`Activity`] is tracked here:
//! the IO wrapper ([`Tracked`]) notes bytes arriving while no request is in progress, the
//! service marks a request in progress from its headers until its response body has been
//! sent ([`InFlight`], carried by the body), and [`Activity::expired`] resolves when the
//! connection's current deadline passes:
//!
//! - no request in progress and none served yet: accept (or handshake end) + header timeout;
//! - idle after a response: end of that response + idle timeout;
//! - the next request's first byte arrived: that byte + header timeout (or the idle deadline,
//!   if sooner);
//! - a request in progress whose body has not fully arrived: its headers + body timeout (the
//!   body wrapper, [`TimedBody`], notes the body's end);
//! - a request in progress with its body in (a long SSE stream included): no deadline.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

#[derive(Debug)]
struct State {
    in_flight: usize,
    /// Since when no request has been in progress.
    idle_since: Instant,
    /// Whether a response has been sent (the idle timeout applies from then on).
    served: bool,
    /// When the first byte arrived while no request was in progress (a next request's head).
    head_started: Option<Instant>,
    /// When the headers of a request whose body is still arriving were complete.
    body_started: Option<Instant>,
}

/// What a connection is doing, as far as its deadlines care.
#[derive(Debug)]
pub(crate) struct Activity {
    state: Mutex<State>,
    /// One waiter ([`Activity::expired`]); `notify_one` keeps a permit, so no wake-up is lost.
    changed: Notify,
}

impl Activity {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                in_flight: 0,
                idle_since: Instant::now(),
                served: false,
                head_started: None,
                body_started: None,
            }),
            changed: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn on_read(&self) {
        let mut s = self.lock();
        if s.in_flight == 0 && s.head_started.is_none() {
            s.head_started = Some(Instant::now());
            drop(s);
            self.changed.notify_one();
        }
    }

    /// A request's headers are complete: it is in progress until the guard is dropped (with
    /// the response body, once sent). With `body_pending` its body owes the body timeout
    /// until [`Activity::body_done`].
    pub(crate) fn start_request(self: &Arc<Self>, body_pending: bool) -> InFlight {
        {
            let mut s = self.lock();
            s.in_flight += 1;
            s.head_started = None;
            s.body_started = body_pending.then(Instant::now);
        }
        self.changed.notify_one();
        InFlight(self.clone())
    }

    /// The request's body has arrived in full.
    pub(crate) fn body_done(&self) {
        let was = self.lock().body_started.take();
        if was.is_some() {
            self.changed.notify_one();
        }
    }

    /// The current deadline; `None` while a request is in progress with its body in.
    fn deadline(&self, header: Duration, body: Duration, idle: Duration) -> Option<Instant> {
        let s = self.lock();
        if s.in_flight > 0 {
            return s.body_started.and_then(|t| t.checked_add(body));
        }
        let idle_deadline = s
            .idle_since
            .checked_add(if s.served { idle } else { header });
        let head_deadline = s.head_started.and_then(|t| t.checked_add(header));
        match (idle_deadline, head_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Resolves once the connection has passed its deadline (see the module docs).
    pub(crate) async fn expired(&self, header: Duration, body: Duration, idle: Duration) {
        loop {
            match self.deadline(header, body, idle) {
                None => self.changed.notified().await,
                Some(d) if d <= Instant::now() => return,
                Some(d) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(d) => {}
                        _ = self.changed.notified() => {}
                    }
                }
            }
        }
    }
}

/// A request in progress; dropping it (with the response body) makes the connection idle.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        {
            let mut s = self.0.lock();
            s.in_flight = s.in_flight.saturating_sub(1);
            if s.in_flight == 0 {
                s.idle_since = Instant::now();
                s.served = true;
                s.head_started = None;
                s.body_started = None;
            }
        }
        self.0.changed.notify_one();
    }
}

/// A response body that keeps its request in progress until hyper has sent it (hyper drops
/// the body once its last frame is out, or with the connection).
pub(crate) struct Guarded<B> {
    inner: B,
    _in_flight: InFlight,
}

impl<B> Guarded<B> {
    pub(crate) fn new(inner: B, in_flight: InFlight) -> Self {
        Self {
            inner,
            _in_flight: in_flight,
        }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for Guarded<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A request body that tells its connection's [`Activity`] when it has arrived in full, which
/// ends the body timeout.
pub(crate) struct TimedBody<B> {
    inner: B,
    activity: Option<Arc<Activity>>,
}

impl<B: Body> TimedBody<B> {
    /// `inner`, whose end is reported to `activity` (at once when it has none).
    pub(crate) fn new(inner: B, activity: Arc<Activity>) -> Self {
        let mut b = Self {
            inner,
            activity: Some(activity),
        };
        if b.inner.is_end_stream() {
            b.done();
        }
        b
    }

    fn done(&mut self) {
        if let Some(a) = self.activity.take() {
            a.body_done();
        }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for TimedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(r, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.done();
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The connection's IO (TCP or TLS), noting incoming bytes in its [`Activity`].
pub(crate) struct Tracked<T> {
    io: T,
    activity: Arc<Activity>,
}

impl<T> Tracked<T> {
    pub(crate) fn new(io: T, activity: Arc<Activity>) -> Self {
        Self { io, activity }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.on_read();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: Duration = Duration::from_secs(10);
    const B: Duration = Duration::from_secs(30);
    const I: Duration = Duration::from_secs(60);

    // In-memory only: paused time is safe here.
    #[tokio::test(start_paused = true)]
    async fn deadlines_follow_the_connection() {
        let a = Activity::new();
        let t0 = Instant::now();
        // A new connection owes its headers.
        assert_eq!(a.deadline(H, B, I), Some(t0 + H));
        tokio::time::advance(Duration::from_secs(3)).await;
        a.on_read();
        assert_eq!(
            a.deadline(H, B, I),
            Some(t0 + H),
            "the first request counts from accept"
        );
        let req = a.start_request(false);
        assert_eq!(a.deadline(H, B, I), None, "in progress: no deadline");
        tokio::time::advance(Duration::from_secs(1000)).await;
        a.on_read(); // a body being read
        assert_eq!(a.deadline(H, B, I), None);
        drop(req);
        let t1 = Instant::now();
        assert_eq!(a.deadline(H, B, I), Some(t1 + I), "idle after a response");
        tokio::time::advance(Duration::from_secs(55)).await;
        a.on_read();
        assert_eq!(
            a.deadline(H, B, I),
            Some(t1 + I),
            "the idle deadline is sooner"
        );
        drop(a.start_request(false));
        let t2 = Instant::now();
        tokio::time::advance(Duration::from_secs(5)).await;
        a.on_read();
        assert_eq!(
            a.deadline(H, B, I),
            Some(t2 + Duration::from_secs(5) + H),
            "the next request's headers count from their first byte"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_pending_body_owes_the_body_timeout_until_it_is_in() {
        let a = Activity::new();
        let req = a.start_request(true);
        let t0 = Instant::now();
        assert_eq!(a.deadline(H, B, I), Some(t0 + B), "the body is owed");
        tokio::time::advance(Duration::from_secs(5)).await;
        a.on_read(); // body bytes do not move the deadline
        assert_eq!(a.deadline(H, B, I), Some(t0 + B));
        a.body_done();
        assert_eq!(
            a.deadline(H, B, I),
            None,
            "body in: no deadline while in progress"
        );
        drop(req);
        let t1 = Instant::now();
        assert_eq!(a.deadline(H, B, I), Some(t1 + I), "idle after the response");
        // A response sent before the body came in: the idle rules take over.
        let req = a.start_request(true);
        drop(req);
        assert_eq!(a.deadline(H, B, I), Some(Instant::now() + I));
    }

    #[tokio::test(start_paused = true)]
    async fn expired_fires_when_the_body_does_not_come() {
        let a = Activity::new();
        let _req = a.start_request(true);
        let waiter = {
            let a = a.clone();
            tokio::spawn(async move { a.expired(H, B, I).await })
        };
        tokio::time::advance(B + Duration::from_millis(1)).await;
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("expired after the body timeout")
            .expect("no panic");
    }

    #[tokio::test(start_paused = true)]
    async fn expired_waits_while_in_flight() {
        let a = Activity::new();
        let req = a.start_request(false);
        let waiter = {
            let a = a.clone();
            tokio::spawn(async move { a.expired(H, B, I).await })
        };
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert!(!waiter.is_finished());
        drop(req);
        tokio::time::advance(I).await;
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("expired after the idle timeout")
            .expect("no panic");
    }

    #[test]
    fn huge_timeouts_do_not_overflow() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let a = Activity::new();
            let _ = a.deadline(Duration::MAX, Duration::MAX, Duration::MAX);
        });
    }
}

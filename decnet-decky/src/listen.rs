//! Sockets: bind every port up front, accept with bounded concurrency, one
//! thread per TCP connection, one JSON event per connection or datagram.
//!
//! Shutdown is a parameter: the loops poll a [`Shutdown`] token and never
//! install signal handlers (that is `main`'s job).

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{
    Ipv4Addr, Shutdown as SockShutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket,
};
use std::os::fd::AsFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use serde_json::Value;

use crate::args::{PortSpec, DEFAULT_MAX_CONNS, DEFAULT_TIMEOUT};
use crate::log::{AttackDetails, AttackKind, Emitter, EventSink, Fields, Origin, Proto, Reporter};
use crate::protocols::{self, udp, Peer, ServiceCtx};

/// How often idle listeners look at the shutdown token.
const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// Stack for connection threads (responders and the TLS handshake need far less).
const CONN_STACK: usize = 256 * 1024;

/// A cancellation token shared by the listeners.
#[derive(Debug, Clone, Default)]
pub struct Shutdown(Arc<AtomicBool>);

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn trigger(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_triggered(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Bounds that keep one attacker from exhausting the decky.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Per read and per write.
    pub io_timeout: Duration,
    /// Whole connection, however slowly bytes trickle in.
    pub session: Duration,
    /// Bytes read from one connection.
    pub max_bytes_in: u64,
    /// Concurrent TCP connections over all ports.
    pub max_conns: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            io_timeout: DEFAULT_TIMEOUT,
            session: Duration::from_secs(120),
            max_bytes_in: 256 * 1024,
            max_conns: DEFAULT_MAX_CONNS,
        }
    }
}

/// Interactive logins (ssh, telnet): a person reads and types, so idle reads may last as long as
/// OpenSSH's LoginGraceTime, a session up to half an hour, and a shell session sends more input.
pub const INTERACTIVE_TIMEOUT: Duration = Duration::from_secs(120);
pub const INTERACTIVE_SESSION: Duration = Duration::from_secs(30 * 60);
pub const INTERACTIVE_MAX_BYTES_IN: u64 = 1024 * 1024;

impl Limits {
    /// The defaults for `service`: [`Limits::default`], longer for interactive logins.
    pub fn for_service(service: protocols::Service) -> Limits {
        match service {
            protocols::Service::Ssh | protocols::Service::Telnet => Limits {
                io_timeout: INTERACTIVE_TIMEOUT,
                session: INTERACTIVE_SESSION,
                max_bytes_in: INTERACTIVE_MAX_BYTES_IN,
                ..Limits::default()
            },
            _ => Limits::default(),
        }
    }
}

/// A bound, not yet serving socket.
#[derive(Debug)]
pub enum Bound {
    Tcp(TcpListener),
    Udp(UdpSocket),
}

/// A port that could not be bound.
#[derive(Debug)]
pub struct BindError {
    pub addr: SocketAddrV4,
    pub proto: Proto,
    pub source: io::Error,
}

impl fmt::Display for BindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot bind {}/{}: {}",
            self.addr, self.proto, self.source
        )
    }
}

impl std::error::Error for BindError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Binds every port (all or nothing). Port 0 picks a free port (tests).
pub fn bind(ip: Ipv4Addr, ports: &[PortSpec]) -> Result<Vec<Bound>, BindError> {
    ports
        .iter()
        .map(|spec| {
            let addr = SocketAddrV4::new(ip, spec.port);
            let err = |source| BindError {
                addr,
                proto: spec.proto,
                source,
            };
            match spec.proto {
                Proto::Tcp => TcpListener::bind(addr).map(Bound::Tcp).map_err(err),
                Proto::Udp => UdpSocket::bind(addr).map(Bound::Udp).map_err(err),
            }
        })
        .collect()
}

/// Counts live connections and refuses past the cap.
#[derive(Debug)]
struct ConnLimiter {
    active: AtomicUsize,
    max: usize,
}

impl ConnLimiter {
    fn try_acquire(self: &Arc<Self>) -> Option<ConnGuard> {
        self.active
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()
            .map(|_| ConnGuard(self.clone()))
    }
}

#[derive(Debug)]
struct ConnGuard(Arc<ConnLimiter>);

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What every listener thread shares.
struct Shared {
    ctx: Arc<ServiceCtx>,
    emitter: Arc<Emitter>,
    limits: Limits,
    limiter: Arc<ConnLimiter>,
    shutdown: Shutdown,
}

/// Running listeners.
pub struct Server {
    listeners: Vec<JoinHandle<()>>,
    limiter: Arc<ConnLimiter>,
    shutdown: Shutdown,
    addrs: Vec<(SocketAddr, Proto)>,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("addrs", &self.addrs)
            .field("active", &self.active())
            .finish()
    }
}

impl Server {
    /// Starts one thread per bound socket.
    pub fn start(
        sockets: Vec<Bound>,
        ctx: Arc<ServiceCtx>,
        sink: Arc<dyn EventSink>,
        limits: Limits,
        shutdown: Shutdown,
    ) -> io::Result<Server> {
        let limiter = Arc::new(ConnLimiter {
            active: AtomicUsize::new(0),
            max: limits.max_conns,
        });
        let emitter = Arc::new(Emitter::new(sink, &ctx.decky, &ctx.slug));
        let shared = Arc::new(Shared {
            ctx,
            emitter,
            limits,
            limiter: limiter.clone(),
            shutdown: shutdown.clone(),
        });
        let mut server = Server {
            listeners: Vec::new(),
            limiter,
            shutdown,
            addrs: Vec::new(),
        };
        for sock in sockets {
            let shared = shared.clone();
            let handle = match sock {
                Bound::Tcp(l) => {
                    server.addrs.push((l.local_addr()?, Proto::Tcp));
                    l.set_nonblocking(true)?;
                    thread::Builder::new()
                        .name("tcp-accept".into())
                        .spawn(move || tcp_loop(l, shared))?
                }
                Bound::Udp(u) => {
                    server.addrs.push((u.local_addr()?, Proto::Udp));
                    u.set_read_timeout(Some(POLL_INTERVAL))?;
                    thread::Builder::new()
                        .name("udp-recv".into())
                        .spawn(move || udp_loop(u, shared))?
                }
            };
            server.listeners.push(handle);
        }
        Ok(server)
    }

    pub fn local_addrs(&self) -> &[(SocketAddr, Proto)] {
        &self.addrs
    }

    /// Connections being served right now.
    pub fn active(&self) -> usize {
        self.limiter.active.load(Ordering::SeqCst)
    }

    /// Stops accepting, then waits up to `grace` for open connections to
    /// finish. Returns how many were still open.
    pub fn drain(self, grace: Duration) -> usize {
        self.shutdown.trigger();
        for l in self.listeners {
            let _ = l.join();
        }
        let deadline = Instant::now() + grace;
        while self.limiter.active.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        self.limiter.active.load(Ordering::SeqCst)
    }
}

fn tcp_loop(listener: TcpListener, shared: Arc<Shared>) {
    let dst_port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let timeout = PollTimeout::try_from(POLL_INTERVAL).unwrap_or(PollTimeout::NONE);
    while !shared.shutdown.is_triggered() {
        let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => {
                thread::sleep(POLL_INTERVAL);
                continue;
            }
        }
        match listener.accept() {
            Ok((stream, peer)) => dispatch(stream, peer, dst_port, &shared),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            // EMFILE and friends: back off instead of spinning.
            Err(_) => thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn dispatch(stream: TcpStream, peer: SocketAddr, dst_port: u16, shared: &Arc<Shared>) {
    let origin = Origin {
        protocol: Proto::Tcp,
        src: peer,
        dst_ip: stream.local_addr().ok().map(|a| a.ip()),
        dst_port,
    };
    let reject = |reason: &str| {
        let details = AttackDetails {
            reason: Some(reason.to_owned()),
            ..AttackDetails::default()
        };
        shared
            .emitter
            .session(origin)
            .emit(AttackKind::Rejected, details);
    };
    let Some(guard) = shared.limiter.try_acquire() else {
        drop(stream);
        return reject("too many connections");
    };
    let s = shared.clone();
    let spawned = thread::Builder::new()
        .name("conn".into())
        .stack_size(CONN_STACK)
        .spawn(move || {
            let _guard = guard;
            serve_conn(stream, s.emitter.session(origin), &s);
        });
    if spawned.is_err() {
        reject("cannot start a thread");
    }
}

fn serve_conn(stream: TcpStream, report: Reporter, shared: &Shared) {
    let limits = shared.limits;
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_write_timeout(Some(limits.io_timeout));
    let _ = stream.set_nodelay(true);
    report.emit(AttackKind::Connect, AttackDetails::default());
    let mut metered = Metered::new(stream, limits);
    let mut fields = Fields::new();
    let origin = *report.origin();
    let peer = Peer {
        addr: origin.src,
        dst_ip: origin.dst_ip,
        dst_port: origin.dst_port,
    };
    let res = catch_unwind(AssertUnwindSafe(|| {
        protocols::handle(&shared.ctx, &peer, &report, &mut metered, &mut fields)
    }));
    match res {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            fields.insert("reason".into(), Value::from(describe(&e)));
        }
        Err(_) => {
            fields.insert("reason".into(), Value::from("internal error"));
        }
    }
    let _ = metered.stream.shutdown(SockShutdown::Both);
    let mut details = AttackDetails::from_map(fields);
    details.bytes_in = Some(metered.bytes_in);
    details.duration_ms = Some(report.elapsed_ms());
    report.emit(AttackKind::Disconnect, details);
}

/// A short, stable description of how a session ended early.
fn describe(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => "timeout".into(),
        io::ErrorKind::UnexpectedEof => "eof".into(),
        io::ErrorKind::ConnectionReset => "reset".into(),
        io::ErrorKind::BrokenPipe => "closed".into(),
        _ => e.to_string(),
    }
}

fn udp_loop(sock: UdpSocket, shared: Arc<Shared>) {
    let dst_port = sock.local_addr().map(|a| a.port()).unwrap_or(0);
    // A wildcard bind has no one address; deckies bind their own.
    let local_ip = sock
        .local_addr()
        .ok()
        .map(|a| a.ip())
        .filter(|ip| !ip.is_unspecified());
    let mut buf = vec![0u8; 65_536];
    let mut responder = udp::Responder::new(&shared.ctx, local_ip);
    while !shared.shutdown.is_triggered() {
        match sock.recv_from(&mut buf) {
            Ok((n, src)) => {
                let origin = Origin {
                    protocol: Proto::Udp,
                    src,
                    dst_ip: local_ip,
                    dst_port,
                };
                let report = shared.emitter.session(origin);
                let mut fields = Fields::new();
                let reply =
                    responder.datagram(src, &buf[..n], &report, &mut fields, Instant::now());
                if let Some(reply) = reply {
                    let _ = sock.send_to(&reply, src);
                }
                let mut details = AttackDetails::from_map(fields);
                details.bytes_in = Some(n as u64);
                report.emit(AttackKind::Datagram, details);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// A TCP stream that counts bytes in and enforces the input and session
/// bounds on top of the per-read timeout.
#[derive(Debug)]
struct Metered {
    stream: TcpStream,
    bytes_in: u64,
    limits: Limits,
    deadline: Instant,
}

impl Metered {
    fn new(stream: TcpStream, limits: Limits) -> Self {
        Metered {
            stream,
            bytes_in: 0,
            limits,
            deadline: Instant::now() + limits.session,
        }
    }
}

fn timed_out(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::WouldBlock {
        io::Error::new(io::ErrorKind::TimedOut, "timed out")
    } else {
        e
    }
}

impl Read for Metered {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.limits.max_bytes_in.saturating_sub(self.bytes_in);
        if left == 0 {
            return Err(io::Error::other("input limit reached"));
        }
        let now = Instant::now();
        if now >= self.deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "session time limit",
            ));
        }
        let wait = self.limits.io_timeout.min(self.deadline - now);
        self.stream
            .set_read_timeout(Some(wait.max(Duration::from_millis(1))))?;
        let cap = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.stream.read(&mut buf[..cap]).map_err(timed_out)?;
        self.bytes_in += n as u64;
        Ok(n)
    }
}

impl Write for Metered {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.write(buf).map_err(timed_out)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ServiceConfig;
    use crate::log::{AttackEvent, MemorySink};
    use std::io::BufRead;

    fn start(slug: &str, limits: Limits) -> (Server, Arc<MemorySink>) {
        let socks = bind(
            Ipv4Addr::LOCALHOST,
            &[
                PortSpec {
                    port: 0,
                    proto: Proto::Tcp,
                },
                PortSpec {
                    port: 0,
                    proto: Proto::Udp,
                },
            ],
        )
        .expect("bind");
        let sink = Arc::new(MemorySink::default());
        let ctx = Arc::new(ServiceCtx::new(
            slug,
            "decky-t",
            "host-t",
            ServiceConfig::default(),
        ));
        let server =
            Server::start(socks, ctx, sink.clone(), limits, Shutdown::new()).expect("start");
        (server, sink)
    }

    /// The first `n` events that are not `connect` (waits up to 5 s for them).
    fn wait_events(sink: &MemorySink, n: usize) -> Vec<AttackEvent> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let ev: Vec<AttackEvent> = sink
                .events()
                .into_iter()
                .filter(|e| e.kind != AttackKind::Connect)
                .collect();
            if ev.len() >= n || Instant::now() > deadline {
                return ev;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn serves_tcp_and_udp_and_logs_one_event_each() {
        let (server, sink) = start("ftp", Limits::default());
        let tcp = server.local_addrs()[0].0;
        let udp = server.local_addrs()[1].0;
        let mut s = TcpStream::connect(tcp).expect("connect");
        let mut r = io::BufReader::new(s.try_clone().expect("clone"));
        let mut line = String::new();
        r.read_line(&mut line).expect("banner");
        assert_eq!(line, "220 (vsFTPd 3.0.5)\r\n");
        s.write_all(b"USER root\r\nQUIT\r\n").expect("write");
        let mut rest = String::new();
        r.read_to_string(&mut rest).expect("read");
        assert!(rest.ends_with("221 Goodbye.\r\n"));

        let c = UdpSocket::bind("127.0.0.1:0").expect("udp");
        c.send_to(b"\x00\x01ping", udp).expect("send");

        let ev = wait_events(&sink, 2);
        assert_eq!(ev.len(), 2, "{ev:?}");
        let tcp_ev = ev
            .iter()
            .find(|e| e.protocol == Proto::Tcp)
            .expect("tcp event");
        assert_eq!(tcp_ev.kind, AttackKind::Disconnect);
        assert_eq!(tcp_ev.dst_port, tcp.port());
        assert_eq!(tcp_ev.dst_ip, Some(tcp.ip()));
        assert_eq!(tcp_ev.details.bytes_in, Some(17));
        assert!(tcp_ev.details.duration_ms.is_some());
        assert_eq!(tcp_ev.details.username.as_deref(), Some("root"));
        assert_eq!(tcp_ev.decky, "decky-t");
        let connect = sink
            .events()
            .into_iter()
            .find(|e| e.kind == AttackKind::Connect)
            .expect("a connect event");
        assert_eq!(connect.session, tcp_ev.session);
        assert!(connect.seq < tcp_ev.seq);
        let udp_ev = ev
            .iter()
            .find(|e| e.protocol == Proto::Udp)
            .expect("udp event");
        assert_eq!(udp_ev.kind, AttackKind::Datagram);
        assert_eq!(udp_ev.details.bytes_in, Some(6));
        assert_eq!(udp_ev.details.extra["preview"], "\\x00\\x01ping");
        assert_eq!(server.drain(Duration::from_secs(1)), 0);
    }

    #[test]
    fn connection_cap_rejects_and_logs() {
        let limits = Limits {
            max_conns: 1,
            ..Limits::default()
        };
        let (server, sink) = start("generic_thing", limits);
        let addr = server.local_addrs()[0].0;
        let held = TcpStream::connect(addr).expect("first");
        // Wait until the first connection is being served.
        let deadline = Instant::now() + Duration::from_secs(5);
        while server.active() == 0 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        let mut second = TcpStream::connect(addr).expect("second");
        let mut buf = [0u8; 1];
        second
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        assert_eq!(
            second.read(&mut buf).unwrap_or(0),
            0,
            "rejected connection is closed"
        );
        let ev = wait_events(&sink, 1);
        assert_eq!(ev[0].kind, AttackKind::Rejected);
        assert_eq!(
            ev[0].details.reason.as_deref(),
            Some("too many connections")
        );
        drop(held);
        let ev = wait_events(&sink, 2);
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[1].kind, AttackKind::Disconnect);
        server.drain(Duration::from_secs(1));
    }

    #[test]
    fn input_and_time_bounds() {
        let limits = Limits {
            io_timeout: Duration::from_millis(200),
            session: Duration::from_secs(5),
            max_bytes_in: 8,
            max_conns: 4,
        };
        let (server, sink) = start("redis", limits);
        let addr = server.local_addrs()[0].0;
        let mut s = TcpStream::connect(addr).expect("connect");
        s.write_all(b"PING-PING-PING-PING-PING").expect("write");
        let ev = wait_events(&sink, 1);
        assert_eq!(ev[0].details.bytes_in, Some(8));
        assert_eq!(ev[0].details.reason.as_deref(), Some("input limit reached"));

        let _idle = TcpStream::connect(addr).expect("connect");
        let ev = wait_events(&sink, 2);
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[1].details.reason.as_deref(), Some("timeout"));
        server.drain(Duration::from_secs(1));
    }

    #[test]
    fn bind_conflict_is_reported() {
        let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = taken.local_addr().expect("addr").port();
        let err = bind(
            Ipv4Addr::LOCALHOST,
            &[PortSpec {
                port,
                proto: Proto::Tcp,
            }],
        )
        .expect_err("conflict");
        assert_eq!(err.source.kind(), io::ErrorKind::AddrInUse);
        assert!(err
            .to_string()
            .starts_with(&format!("cannot bind 127.0.0.1:{port}/tcp: ")));
    }

    #[test]
    fn interactive_logins_get_longer_bounds() {
        let ssh = Limits::for_service(protocols::Service::Ssh);
        assert_eq!(ssh.io_timeout, INTERACTIVE_TIMEOUT);
        assert_eq!(ssh.session, INTERACTIVE_SESSION);
        assert_eq!(ssh.max_conns, DEFAULT_MAX_CONNS);
        assert_eq!(Limits::for_service(protocols::Service::Telnet), ssh);
        assert_eq!(
            Limits::for_service(protocols::Service::Redis),
            Limits::default()
        );
    }
}

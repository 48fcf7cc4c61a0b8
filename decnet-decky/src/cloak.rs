//! `cloak` mode: the OS-fingerprint mangler of a decky (issue 16), run by the base container
//! in the decky's network namespace. It installs its NFQUEUE rules over netlink (an nf_tables
//! batch from `decnet_osfp::nft`, always with bypass: if this process dies, packets pass
//! unmangled instead of being dropped), binds the queue, and answers each queued packet with
//! the verdict of [`decnet_osfp::Mangler`]; replies to T2/T3 leave through a raw socket.
//! Needs CAP_NET_ADMIN (rules, queue) and CAP_NET_RAW (the raw socket).

use std::fmt;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

use decnet_osfp::nfq::{self, Message, HOOK_LOCAL_IN, NF_ACCEPT, NF_DROP};
use decnet_osfp::packet::Ipv4;
use decnet_osfp::{nft, Mangler, StackProfile, Verdict};
use nix::sys::socket::{
    recv, send, sendto, setsockopt, socket, sockopt, AddressFamily, MsgFlags, SockFlag,
    SockProtocol, SockType, SockaddrIn,
};
use nix::sys::time::{TimeVal, TimeValLike};

/// The nf_tables table the rules live in.
pub const TABLE: &str = "decnet_osfp";

/// Why the cloak stopped.
#[derive(Debug)]
pub enum CloakError {
    /// A socket call failed (what, errno).
    Sys(&'static str, nix::Error),
    /// The kernel refused a rule or the queue binding (netlink sequence number, errno).
    Refused(&'static str, u32, i32),
}

impl fmt::Display for CloakError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloakError::Sys(what, e) => write!(f, "{what}: {e}"),
            CloakError::Refused(what, seq, errno) => {
                write!(
                    f,
                    "{what}: the kernel refused message {seq} (errno {})",
                    -errno
                )
            }
        }
    }
}

impl std::error::Error for CloakError {}

fn netfilter_socket() -> Result<OwnedFd, CloakError> {
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkNetFilter,
    )
    .map_err(|e| CloakError::Sys("netlink socket", e))?;
    setsockopt(&fd, sockopt::ReceiveTimeout, &TimeVal::milliseconds(200))
        .map_err(|e| CloakError::Sys("socket timeout", e))?;
    Ok(fd)
}

/// Sends `msg` and reads acks until `want` arrived; any non-zero errno is an error.
fn request(fd: &OwnedFd, what: &'static str, msg: &[u8], want: usize) -> Result<(), CloakError> {
    send(fd.as_raw_fd(), msg, MsgFlags::empty()).map_err(|e| CloakError::Sys(what, e))?;
    let mut buf = vec![0u8; 0x4000];
    let mut acks = 0;
    let mut waits = 0;
    while acks < want {
        let n = match recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
            Ok(n) => n,
            Err(nix::Error::EAGAIN) if waits < 10 => {
                waits += 1;
                continue;
            }
            Err(e) => return Err(CloakError::Sys(what, e)),
        };
        for m in nfq::parse(&buf[..n]) {
            if let Message::Ack { seq, errno } = m {
                if errno != 0 {
                    return Err(CloakError::Refused(what, seq, errno));
                }
                acks += 1;
            }
        }
    }
    Ok(())
}

/// Installs the rules (replacing an older table of ours).
pub fn install_rules(queue: u16) -> Result<(), CloakError> {
    let fd = netfilter_socket()?;
    // A table from an earlier run would double every rule: delete it first (absent is fine).
    let _ = request(&fd, "delete old rules", &nft::delete_batch(TABLE), 1);
    request(
        &fd,
        "install rules",
        &nft::install_batch(TABLE, queue),
        nft::batch_messages_acked(),
    )
}

/// Removes the rules (on a clean stop; a crash leaves them, harmlessly, thanks to bypass).
pub fn remove_rules() -> Result<(), CloakError> {
    let fd = netfilter_socket()?;
    request(&fd, "remove rules", &nft::delete_batch(TABLE), 1)
}

/// Runs until `stop` is set: rules, queue, verdicts. `ports` are the decky's open TCP ports.
pub fn run(
    profile: StackProfile,
    ports: &[u16],
    queue: u16,
    seed: u64,
    stop: &AtomicBool,
) -> Result<(), CloakError> {
    install_rules(queue)?;
    let q = netfilter_socket()?;
    for msg in nfq::bind_messages(queue, 0xffff) {
        request(&q, "bind queue", &msg, 1)?;
    }
    let raw = socket(
        AddressFamily::Inet,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::Raw,
    )
    .map_err(|e| CloakError::Sys("raw socket", e))?;
    let mut m = Mangler::new(profile, ports, seed);
    let mut buf = vec![0u8; 0x1_0000];
    while !stop.load(Ordering::Relaxed) {
        let n = match recv(q.as_raw_fd(), &mut buf, MsgFlags::empty()) {
            Ok(n) => n,
            Err(nix::Error::EAGAIN | nix::Error::EINTR) => continue,
            // The queue overflowed (the kernel accepted the excess: fail-open); carry on.
            Err(nix::Error::ENOBUFS) => continue,
            Err(e) => return Err(CloakError::Sys("read queue", e)),
        };
        let packets: Vec<(u32, u8, Vec<u8>)> = nfq::parse(&buf[..n])
            .into_iter()
            .filter_map(|msg| match msg {
                Message::Packet {
                    id, hook, payload, ..
                } => Some((id, hook, payload.to_vec())),
                _ => None,
            })
            .collect();
        for (id, hook, pkt) in packets {
            let verdict = if hook == HOOK_LOCAL_IN {
                if let Some(reply) = m.ingress(&pkt) {
                    if let Some(ip) = Ipv4::parse(&reply) {
                        let [a, b, c, d] = ip.dst();
                        let to = SockaddrIn::new(a, b, c, d, 0);
                        // A lost reply is a missed fingerprint detail, not an error.
                        let _ = sendto(raw.as_raw_fd(), &reply, &to, MsgFlags::empty());
                    }
                }
                nfq::verdict_message(queue, id, NF_ACCEPT, None)
            } else {
                match m.egress(&pkt) {
                    Verdict::Accept => nfq::verdict_message(queue, id, NF_ACCEPT, None),
                    Verdict::Replace(b) => nfq::verdict_message(queue, id, NF_ACCEPT, Some(&b)),
                    Verdict::Drop => nfq::verdict_message(queue, id, NF_DROP, None),
                }
            };
            send(q.as_raw_fd(), &verdict, MsgFlags::empty())
                .map_err(|e| CloakError::Sys("send verdict", e))?;
        }
    }
    remove_rules()
}

/// The base container's handle on its cloak child: started when `DECNET_OS_PROFILE` is set,
/// restarted when it exits (at most [`MAX_RESTARTS`] times in [`RESTART_WINDOW`]; after that
/// the decky runs unmangled — the rules' bypass keeps traffic flowing — and says so on
/// stderr as `cloak degraded`).
#[derive(Debug)]
pub struct Supervisor {
    ports: Vec<u16>,
    child: Option<std::process::Child>,
    starts: Vec<std::time::Instant>,
    degraded: bool,
}

/// Restarts allowed per [`RESTART_WINDOW`].
pub const MAX_RESTARTS: usize = 5;
/// See [`MAX_RESTARTS`].
pub const RESTART_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

impl Supervisor {
    /// `None` unless `DECNET_OS_PROFILE` is set; ports from `DECNET_OPEN_PORTS` (comma list,
    /// TCP ports; anything unparsable is skipped).
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Option<Supervisor> {
        get("DECNET_OS_PROFILE").filter(|v| !v.is_empty())?;
        let ports = get("DECNET_OPEN_PORTS")
            .unwrap_or_default()
            .split(',')
            .filter_map(|p| p.trim().parse().ok())
            .collect();
        Some(Supervisor {
            ports,
            child: None,
            starts: Vec::new(),
            degraded: false,
        })
    }

    /// The open ports the cloak answers T2/T3 on.
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// Whether the cloak gave up restarting.
    pub fn degraded(&self) -> bool {
        self.degraded
    }

    /// Starts the cloak (`/proc/self/exe cloak --port …`, same environment).
    pub fn start(&mut self) {
        let now = std::time::Instant::now();
        self.starts
            .retain(|t| now.duration_since(*t) < RESTART_WINDOW);
        if self.starts.len() > MAX_RESTARTS {
            if !self.degraded {
                eprintln!("decnet-decky: cloak degraded: restarted too often, running unmangled");
            }
            self.degraded = true;
            return;
        }
        self.starts.push(now);
        let mut cmd = std::process::Command::new("/proc/self/exe");
        cmd.arg("cloak");
        for p in &self.ports {
            cmd.arg("--port").arg(p.to_string());
        }
        match cmd.spawn() {
            Ok(c) => self.child = Some(c),
            Err(e) => eprintln!("decnet-decky: cloak degraded: cannot start: {e}"),
        }
    }

    /// On SIGCHLD: restarts the cloak if it exited.
    pub fn check(&mut self) {
        let exited = match &mut self.child {
            Some(c) => !matches!(c.try_wait(), Ok(None)),
            None => false,
        };
        if exited && !self.degraded {
            self.child = None;
            eprintln!("decnet-decky: cloak exited, restarting");
            self.start();
        }
    }

    /// SIGTERM to the cloak (it removes its rules), waiting up to a second.
    pub fn stop(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        let pid = nix::unistd::Pid::from_raw(c.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
        while std::time::Instant::now() < deadline {
            if !matches!(c.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supervisor_only_with_a_profile() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert!(Supervisor::from_env(env(&[])).is_none());
        assert!(Supervisor::from_env(env(&[("DECNET_OS_PROFILE", "")])).is_none());
        let s = Supervisor::from_env(env(&[
            ("DECNET_OS_PROFILE", "x"),
            ("DECNET_OPEN_PORTS", "445, 3389,x,139"),
        ]))
        .expect("supervisor");
        assert_eq!(s.ports(), &[445, 3389, 139]);
        assert!(!s.degraded());
    }
}

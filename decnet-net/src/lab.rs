//! An isolated "lab LAN" for demos and end-to-end tests, and probes that look at it like an
//! intruder would.
//!
//! # Shape
//!
//! ```text
//!  host network namespace                 |  attacker namespace "decnet-lab-<tag>"
//!                                         |
//!  dl-<tag>  (veth, UP, no IPv4 address) <==> dla-<tag>  (veth peer, UP, <first host>/<prefix>)
//!     ^                                   |  lo (UP)
//!     | macvlan parent
//!  deckies (Docker macvlan network on dl-<tag>, created by the deployer, not here)
//! ```
//!
//! [`LabLan::create`] builds that with rtnetlink and nix only (nothing shells out to `ip`):
//!
//! 1. a named, persistent network namespace, the way `ip netns add` makes one ([`add_netns`]):
//!    `/run/netns` is made a shared mount point, `/run/netns/<name>` is created, and a dedicated
//!    thread `unshare(CLONE_NEWNET)`s and bind-mounts `/proc/thread-self/ns/net` onto it;
//! 2. a veth pair whose peer is created directly inside that namespace (like
//!    `ip link add dl-<tag> type veth peer name dla-<tag> netns decnet-lab-<tag>`), so the peer
//!    name never exists in the host namespace;
//! 3. on the host end: IPv6 disabled and `arp_ignore = 8` (best effort), so the host neither
//!    takes part in nor answers ARP on the lab LAN, then UP, with no address: it is only a
//!    macvlan parent;
//! 4. inside the namespace: the peer gets the subnet's first host address (which doubles as the
//!    LAN's gateway for the deckies) and goes UP, and so does `lo`.
//!
//! Names come from a short tag (1..=11 characters of `[A-Za-z0-9_-]`, so that `dla-<tag>` fits
//! the kernel's 15-character interface-name limit): see [`host_link_name`],
//! [`attacker_link_name`] and [`lab_netns_name`]. Creating over leftovers fails with
//! [`LabError::Exists`] and changes nothing; [`destroy_by_tag`] removes leftovers.
//!
//! There is no `Drop` cleanup: call [`LabLan::destroy`] (or [`destroy_by_tag`]). Both are
//! idempotent and only delete a `dl-<tag>` link that is a veth and a `decnet-lab-<tag>`
//! namespace file. Remove the Docker network on the parent first: deleting the parent also
//! deletes every macvlan child on it.
//!
//! # Running code in a namespace, and probes
//!
//! [`in_netns`] runs a closure on a fresh thread that `setns`es into `/run/netns/<name>`; sockets
//! created there stay in that namespace whichever thread later uses them. [`in_netns_async`]
//! does the same with a current-thread tokio runtime (for rtnetlink inside the namespace).
//!
//! The probes run inside the attacker namespace and are bounded in time and size:
//! [`probe_tcp`] (connect, optionally send, read up to 4 KiB), [`probe_ttl`] (raw ICMP echo,
//! TTL of the reply's IP header), [`neighbour_mac`] (the attacker's ARP entry) and
//! [`flush_neighbours`] (forget ARP entries, since reused IPs and stale ARP caches give false
//! results).
//!
//! Everything here needs root (`CAP_SYS_ADMIN` for namespaces and mounts, `CAP_NET_ADMIN` for
//! links, `CAP_NET_RAW` for the TTL probe). The async functions must run inside a tokio runtime.

use std::fs::File;
use std::future::Future;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use ipnet::Ipv4Net;
use netlink_packet_route::{
    link::{InfoData, InfoKind, InfoVeth, LinkAttribute, LinkInfo, LinkMessage},
    neighbour::{NeighbourMessage, NeighbourState},
    AddressFamily,
};
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use rtnetlink::{Handle, LinkUnspec, LinkVeth};
use socket2::{Domain, Protocol, Socket, Type};

use crate::netlink::{self, connect, errno, EEXIST, ENODEV, ENOENT};

/// Where named network namespaces live (the `ip netns` convention).
pub const NETNS_DIR: &str = "/run/netns";

/// Longest tag: `dla-` + 11 characters is the kernel's 15-character interface-name limit.
pub const MAX_TAG_LEN: usize = 11;

/// At most this many bytes of a TCP greeting are kept by [`probe_tcp`].
pub const GREETING_LIMIT: usize = 4096;

/// ICMP echo requests [`probe_ttl`] sends before giving up.
pub const PING_ATTEMPTS: u32 = 3;

const THREAD_NS_NET: &str = "/proc/thread-self/ns/net";
const THREAD_ARP: &str = "/proc/thread-self/net/arp";

// Kernel errno values as netlink reports them (negated in the message).

/// Serialises the `/run/netns` mount-point set-up between threads of this process.
static NETNS_SETUP: Mutex<()> = Mutex::new(());

/// Errors from building, using or removing a lab LAN.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("invalid lab tag {tag:?}: {reason}")]
    BadTag { tag: String, reason: &'static str },
    #[error("invalid lab subnet {subnet}: {reason}")]
    BadSubnet {
        subnet: Ipv4Net,
        reason: &'static str,
    },
    #[error("invalid network namespace name {0:?}")]
    BadNetnsName(String),
    #[error("{0} already exists (remove leftovers with destroy_by_tag)")]
    Exists(String),
    #[error("{0} exists but was not made by the lab (not a veth); left alone")]
    Foreign(String),
    #[error("network namespace {0:?} does not exist")]
    NoSuchNetns(String),
    #[error("{op}: {source}")]
    Io {
        op: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{op}: {source}")]
    Netlink {
        op: String,
        #[source]
        source: rtnetlink::Error,
    },
}

fn io_err(op: impl Into<String>) -> impl FnOnce(std::io::Error) -> LabError {
    move |source| LabError::Io {
        op: op.into(),
        source,
    }
}

fn nix_err(op: impl Into<String>) -> impl FnOnce(nix::Error) -> LabError {
    move |errno| LabError::Io {
        op: op.into(),
        source: std::io::Error::from(errno),
    }
}

fn nl_err(op: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> LabError {
    move |source| LabError::Netlink {
        op: op.into(),
        source,
    }
}

/// Name of the host-side veth end (the deckies' macvlan parent) for `tag`.
pub fn host_link_name(tag: &str) -> String {
    format!("dl-{tag}")
}

/// Name of the attacker-side veth end (inside the attacker namespace) for `tag`.
pub fn attacker_link_name(tag: &str) -> String {
    format!("dla-{tag}")
}

/// Name of the attacker network namespace for `tag`.
pub fn lab_netns_name(tag: &str) -> String {
    format!("decnet-lab-{tag}")
}

/// Check a lab tag: 1..=[`MAX_TAG_LEN`] characters of `[A-Za-z0-9_-]`.
pub fn check_tag(tag: &str) -> Result<(), LabError> {
    let bad = |reason| {
        Err(LabError::BadTag {
            tag: tag.to_owned(),
            reason,
        })
    };
    if tag.is_empty() {
        return bad("empty");
    }
    if tag.len() > MAX_TAG_LEN {
        return bad("longer than 11 characters (interface names are at most 15)");
    }
    if !tag
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return bad("only ASCII letters, digits, '-' and '_' are allowed");
    }
    Ok(())
}

/// A network namespace name is one path component under [`NETNS_DIR`].
fn check_netns_name(name: &str) -> Result<(), LabError> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.contains('\0');
    if ok {
        Ok(())
    } else {
        Err(LabError::BadNetnsName(name.to_owned()))
    }
}

fn netns_path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

/// Open `/run/netns/<name>` (a handle on the namespace).
fn open_netns(name: &str) -> Result<File, LabError> {
    check_netns_name(name)?;
    File::open(netns_path(name)).map_err(|e| {
        if e.kind() == ErrorKind::NotFound {
            LabError::NoSuchNetns(name.to_owned())
        } else {
            LabError::Io {
                op: format!("open network namespace {name}"),
                source: e,
            }
        }
    })
}

/// Make [`NETNS_DIR`] exist and be a shared mount point, as `ip netns add` does, so namespace
/// mounts under it propagate to mount namespaces created later (e.g. by `ip netns exec`).
fn prepare_netns_dir() -> Result<(), LabError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(NETNS_DIR)
        .map_err(io_err(format!("create {NETNS_DIR}")))?;
    let shared = || {
        nix::mount::mount::<str, str, str, str>(
            None,
            NETNS_DIR,
            None,
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None,
        )
    };
    match shared() {
        Ok(()) => Ok(()),
        // Not a mount point yet: bind-mount it onto itself, then make that shared.
        Err(nix::Error::EINVAL) => {
            nix::mount::mount::<str, str, str, str>(
                Some(NETNS_DIR),
                NETNS_DIR,
                None,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None,
            )
            .map_err(nix_err(format!("bind-mount {NETNS_DIR} onto itself")))?;
            shared().map_err(nix_err(format!("make {NETNS_DIR} a shared mount")))
        }
        Err(e) => Err(nix_err(format!("make {NETNS_DIR} a shared mount"))(e)),
    }
}

/// Create the named, persistent network namespace `name` (like `ip netns add name`).
///
/// Fails with [`LabError::Exists`] if `/run/netns/<name>` already exists. Blocking (it spawns
/// and joins a short-lived thread); from async code prefer calling it through
/// `tokio::task::spawn_blocking`.
pub fn add_netns(name: &str) -> Result<(), LabError> {
    check_netns_name(name)?;
    let path = netns_path(name);
    {
        let _lock = NETNS_SETUP.lock().unwrap_or_else(|p| p.into_inner());
        prepare_netns_dir()?;
    }
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o000)
        .open(&path)
        .map_err(|e| {
            if e.kind() == ErrorKind::AlreadyExists {
                LabError::Exists(format!("network namespace {name}"))
            } else {
                LabError::Io {
                    op: format!("create {}", path.display()),
                    source: e,
                }
            }
        })?;

    // A dedicated thread moves itself into a new network namespace and pins that namespace
    // with a bind mount; the thread then ends and the namespace lives on.
    let target = path.clone();
    let pinned = std::thread::Builder::new()
        .name("decnet-netns-add".into())
        .spawn(move || -> Result<(), LabError> {
            nix::sched::unshare(CloneFlags::CLONE_NEWNET)
                .map_err(nix_err("unshare(CLONE_NEWNET) (needs CAP_SYS_ADMIN)"))?;
            nix::mount::mount::<str, Path, str, str>(
                Some(THREAD_NS_NET),
                &target,
                None,
                MsFlags::MS_BIND,
                None,
            )
            .map_err(nix_err(format!(
                "bind-mount {THREAD_NS_NET} onto {}",
                target.display()
            )))
        })
        .map_err(io_err("spawn namespace thread"))?
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    if let Err(e) = pinned {
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    tracing::debug!(netns = name, "network namespace created");
    Ok(())
}

/// Remove the named network namespace `name` (like `ip netns del name`): lazily unmount
/// `/run/netns/<name>` and delete the file. A namespace that does not exist is not an error.
/// The kernel frees the namespace once no thread, socket or mount holds it any more.
pub fn del_netns(name: &str) -> Result<(), LabError> {
    check_netns_name(name)?;
    let path = netns_path(name);
    match nix::mount::umount2(&path, MntFlags::MNT_DETACH) {
        // EINVAL: the file is not a mount point (a half-made leftover); ENOENT: no file.
        Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => {}
        Err(e) => return Err(nix_err(format!("unmount {}", path.display()))(e)),
    }
    match std::fs::remove_file(&path) {
        Ok(()) => {
            tracing::debug!(netns = name, "network namespace removed");
            Ok(())
        }
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(format!("remove {}", path.display()))(e)),
    }
}

/// Run `f` inside the network namespace `/run/netns/<netns>`: on a new thread that `setns`es
/// into it first, joined before returning. Sockets `f` creates belong to that namespace, also
/// when they are used from other threads afterwards; `/proc/thread-self/net/*` and
/// `/proc/sys/net/*` opened by `f` show that namespace.
///
/// Blocking. A panic in `f` is propagated to the caller.
pub fn in_netns<T, F>(netns: &str, f: F) -> Result<T, LabError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let ns = open_netns(netns)?;
    let name = netns.to_owned();
    std::thread::Builder::new()
        .name("decnet-in-netns".into())
        .spawn(move || -> Result<T, LabError> {
            nix::sched::setns(&ns, CloneFlags::CLONE_NEWNET)
                .map_err(nix_err(format!("setns into network namespace {name}")))?;
            drop(ns);
            Ok(f())
        })
        .map_err(io_err("spawn namespace thread"))?
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// [`in_netns`] for async code: `f()` runs to completion on a current-thread tokio runtime
/// inside the namespace (e.g. to talk rtnetlink there). Blocking.
pub fn in_netns_async<T, F, Fut>(netns: &str, f: F) -> Result<T, LabError>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T>,
{
    in_netns(netns, move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(io_err("build tokio runtime"))?;
        Ok(rt.block_on(f()))
    })?
}

/// Run blocking `f` off the async executor.
async fn blocking<T, F>(f: F) -> Result<T, LabError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, LabError> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(LabError::Io {
            op: "blocking task".into(),
            source: std::io::Error::other(e),
        }),
    }
}

/// The link called `name` in the namespace of `handle`, or `None`.
async fn find_link(handle: &Handle, name: &str) -> Result<Option<LinkMessage>, LabError> {
    netlink::find_link(handle, name)
        .await
        .map_err(nl_err(format!("get link {name}")))
}

fn link_kind(link: &LinkMessage) -> Option<&InfoKind> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
            LinkInfo::Kind(k) => Some(k),
            _ => None,
        }),
        _ => None,
    })
}

async fn set_up(handle: &Handle, index: u32, name: &str) -> Result<(), LabError> {
    handle
        .link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(nl_err(format!("set {name} up")))
}

/// Write a sysctl of the calling thread's network namespace, best effort (logged on failure).
fn write_sysctl_best_effort(path: &str, value: &str) {
    if let Err(e) = std::fs::write(path, value) {
        tracing::warn!(path, value, error = %e, "could not set sysctl");
    }
}

/// An isolated lab LAN: a veth pair whose host end is the deckies' macvlan parent and whose
/// other end is the attacker, alone in its own network namespace. See the [module docs](self).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabLan {
    /// The tag every name was derived from.
    pub tag: String,
    /// Host-side veth end: UP, no IPv4 address; the macvlan parent for deckies.
    pub parent: String,
    /// Attacker network namespace (a file under [`NETNS_DIR`]).
    pub netns: String,
    /// Attacker-side veth end, inside [`LabLan::netns`].
    pub attacker_link: String,
    /// The attacker's address: the subnet's first host.
    pub attacker_ip: Ipv4Addr,
    /// The lab LAN (host bits cleared).
    pub subnet: Ipv4Net,
    /// The LAN's gateway for deckies: the attacker's address.
    pub gateway: Ipv4Addr,
}

impl LabLan {
    /// Build the lab LAN for `tag` on `subnet` (host bits are ignored; the prefix must leave at
    /// least two host addresses, i.e. be /30 or shorter). Fails with [`LabError::Exists`] when
    /// the host link or the namespace already exists, touching neither; on any later failure
    /// what was made so far is removed again.
    pub async fn create(tag: &str, subnet: Ipv4Net) -> Result<LabLan, LabError> {
        check_tag(tag)?;
        let subnet = subnet.trunc();
        if subnet.prefix_len() > 30 {
            return Err(LabError::BadSubnet {
                subnet,
                reason: "needs at least two host addresses (prefix /30 or shorter)",
            });
        }
        let attacker_ip = subnet.hosts().next().ok_or(LabError::BadSubnet {
            subnet,
            reason: "has no host address",
        })?;
        let lab = LabLan {
            tag: tag.to_owned(),
            parent: host_link_name(tag),
            netns: lab_netns_name(tag),
            attacker_link: attacker_link_name(tag),
            attacker_ip,
            subnet,
            gateway: attacker_ip,
        };

        let (handle, _guard) = connect().map_err(io_err("open rtnetlink socket"))?;
        if find_link(&handle, &lab.parent).await?.is_some() {
            return Err(LabError::Exists(format!("link {}", lab.parent)));
        }
        let netns = lab.netns.clone();
        blocking(move || add_netns(&netns)).await?;

        if let Err(e) = lab.build(&handle).await {
            tracing::warn!(tag, error = %e, "lab LAN creation failed; rolling back");
            // `Exists` here means someone else's link took the name since the check above: only
            // the namespace is ours to remove.
            let undo = if matches!(e, LabError::Exists(_)) {
                let netns = lab.netns.clone();
                blocking(move || del_netns(&netns)).await
            } else {
                remove(&lab.parent, &lab.netns).await
            };
            if let Err(undo) = undo {
                tracing::warn!(tag, error = %undo, "lab LAN rollback incomplete");
            }
            return Err(e);
        }
        tracing::info!(
            tag,
            parent = %lab.parent,
            netns = %lab.netns,
            attacker = %lab.attacker_ip,
            subnet = %lab.subnet,
            "lab LAN ready"
        );
        Ok(lab)
    }

    /// Gives the host end `ip` (with the lab's prefix), as a host that sits on the LAN itself
    /// would have: then the host's facts for [`LabLan::parent`] describe the lab subnet.
    pub async fn add_host_address(&self, ip: Ipv4Addr) -> Result<(), LabError> {
        let (handle, _guard) = connect().map_err(io_err("open rtnetlink socket"))?;
        let index = find_link(&handle, &self.parent)
            .await?
            .ok_or_else(|| LabError::Io {
                op: format!("find link {}", self.parent),
                source: std::io::Error::from(ErrorKind::NotFound),
            })?
            .header
            .index;
        match handle
            .address()
            .add(index, std::net::IpAddr::V4(ip), self.subnet.prefix_len())
            .execute()
            .await
        {
            Err(e) if errno(&e) == Some(EEXIST) => Ok(()),
            other => other.map_err(nl_err(format!("add {ip} to {}", self.parent))),
        }
    }

    /// Everything after the namespace exists: the veth pair and both ends' configuration.
    async fn build(&self, handle: &Handle) -> Result<(), LabError> {
        let ns = open_netns(&self.netns)?;
        let mut msg = LinkVeth::new(&self.parent, &self.attacker_link).build();
        put_veth_peer_in_netns(&mut msg, ns.as_raw_fd());
        match handle.link().add(msg).execute().await {
            Err(e) if errno(&e) == Some(EEXIST) => {
                return Err(LabError::Exists(format!("link {}", self.parent)))
            }
            other => other.map_err(nl_err(format!(
                "add veth {} <-> {} (in {})",
                self.parent, self.attacker_link, self.netns
            )))?,
        }
        drop(ns);

        let index = find_link(handle, &self.parent)
            .await?
            .ok_or_else(|| LabError::Io {
                op: format!("find new link {}", self.parent),
                source: std::io::Error::from(ErrorKind::NotFound),
            })?
            .header
            .index;
        write_sysctl_best_effort(
            &format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", self.parent),
            "1",
        );
        write_sysctl_best_effort(
            &format!("/proc/sys/net/ipv4/conf/{}/arp_ignore", self.parent),
            "8",
        );
        set_up(handle, index, &self.parent).await?;

        let (netns, peer, ip, prefix) = (
            self.netns.clone(),
            self.attacker_link.clone(),
            self.attacker_ip,
            self.subnet.prefix_len(),
        );
        blocking(move || {
            in_netns_async(&netns, move || async move {
                configure_attacker(&peer, ip, prefix).await
            })?
        })
        .await
    }

    /// Remove the lab LAN: the host veth (which takes the attacker end with it) and the
    /// attacker namespace. Idempotent; see [`destroy_by_tag`].
    pub async fn destroy(self) -> Result<(), LabError> {
        remove(&self.parent, &self.netns).await?;
        tracing::info!(tag = %self.tag, "lab LAN removed");
        Ok(())
    }
}

/// Add `IFLA_NET_NS_FD` to the peer of a veth creation message, so the kernel creates the peer
/// directly inside that namespace.
fn put_veth_peer_in_netns(msg: &mut LinkMessage, fd: std::os::fd::RawFd) {
    for attr in &mut msg.attributes {
        if let LinkAttribute::LinkInfo(infos) = attr {
            for info in infos {
                if let LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))) = info {
                    peer.attributes.push(LinkAttribute::NetNsFd(fd));
                }
            }
        }
    }
}

/// Inside the attacker namespace: address and bring up the veth peer, and bring up `lo`.
async fn configure_attacker(peer: &str, ip: Ipv4Addr, prefix: u8) -> Result<(), LabError> {
    let (handle, _guard) = connect().map_err(io_err("open rtnetlink socket in netns"))?;
    let index = find_link(&handle, peer)
        .await?
        .ok_or_else(|| LabError::Io {
            op: format!("find {peer} in the attacker namespace"),
            source: std::io::Error::from(ErrorKind::NotFound),
        })?
        .header
        .index;
    handle
        .address()
        .add(index, IpAddr::V4(ip), prefix)
        .execute()
        .await
        .map_err(nl_err(format!("add {ip}/{prefix} to {peer}")))?;
    set_up(&handle, index, peer).await?;
    let lo = find_link(&handle, "lo")
        .await?
        .ok_or_else(|| LabError::Io {
            op: "find lo in the attacker namespace".into(),
            source: std::io::Error::from(ErrorKind::NotFound),
        })?
        .header
        .index;
    set_up(&handle, lo, "lo").await
}

/// Remove whatever is left of the lab LAN `tag`: the host link `dl-<tag>` if it is a veth, and
/// the namespace `decnet-lab-<tag>`. Nothing left is not an error. A `dl-<tag>` link of another
/// kind is left alone and reported as [`LabError::Foreign`] (before anything is removed).
pub async fn destroy_by_tag(tag: &str) -> Result<(), LabError> {
    check_tag(tag)?;
    remove(&host_link_name(tag), &lab_netns_name(tag)).await
}

async fn remove(parent: &str, netns: &str) -> Result<(), LabError> {
    let (handle, _guard) = connect().map_err(io_err("open rtnetlink socket"))?;
    if let Some(link) = find_link(&handle, parent).await? {
        if link_kind(&link) != Some(&InfoKind::Veth) {
            return Err(LabError::Foreign(format!("link {parent}")));
        }
        match handle.link().del(link.header.index).execute().await {
            Err(e) if errno(&e) == Some(ENODEV) => {}
            other => other.map_err(nl_err(format!("delete link {parent}")))?,
        }
    }
    let netns = netns.to_owned();
    blocking(move || del_netns(&netns)).await
}

/// What [`probe_tcp`] saw.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProbeResult {
    /// The TCP handshake completed.
    pub open: bool,
    /// Bytes received before the peer closed, the timeout, or [`GREETING_LIMIT`] bytes.
    pub greeting: Vec<u8>,
}

/// From the attacker namespace `netns`: connect to `ip:port`, send `send` if given, and
/// collect what arrives until the peer closes, `timeout` has passed since the start, or
/// [`GREETING_LIMIT`] bytes came. Refused, timed-out and host-unreachable connections give
/// `open: false`; other errors are errors. The whole probe takes at most about `timeout`
/// (which must not be zero).
pub fn probe_tcp(
    netns: &str,
    ip: Ipv4Addr,
    port: u16,
    send: Option<Vec<u8>>,
    timeout: Duration,
) -> Result<ProbeResult, LabError> {
    in_netns(netns, move || tcp_probe_here(ip, port, send, timeout))?
}

fn tcp_probe_here(
    ip: Ipv4Addr,
    port: u16,
    send: Option<Vec<u8>>,
    timeout: Duration,
) -> Result<ProbeResult, LabError> {
    let deadline = Instant::now() + timeout;
    let addr = SocketAddr::from((ip, port));
    let mut stream = match TcpStream::connect_timeout(&addr, timeout) {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::ConnectionRefused
                    | ErrorKind::TimedOut
                    | ErrorKind::WouldBlock
                    | ErrorKind::HostUnreachable
            ) =>
        {
            return Ok(ProbeResult::default())
        }
        Err(e) => return Err(io_err(format!("connect to {addr}"))(e)),
    };
    let mut result = ProbeResult {
        open: true,
        greeting: Vec::new(),
    };

    if let Some(bytes) = send {
        let left = deadline.saturating_duration_since(Instant::now());
        if !left.is_zero() {
            stream
                .set_write_timeout(Some(left))
                .map_err(io_err("set write timeout"))?;
            // A peer that closes early is an answer, not an error: read what it said.
            if let Err(e) = stream.write_all(&bytes) {
                tracing::debug!(%addr, error = %e, "probe send failed");
            }
        }
    }

    let mut buf = [0u8; 1024];
    while result.greeting.len() < GREETING_LIMIT {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        stream
            .set_read_timeout(Some(left))
            .map_err(io_err("set read timeout"))?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let take = n.min(GREETING_LIMIT - result.greeting.len());
                result.greeting.extend_from_slice(&buf[..take]);
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock
                        | ErrorKind::TimedOut
                        | ErrorKind::ConnectionReset
                        | ErrorKind::ConnectionAborted
                ) =>
            {
                break
            }
            Err(e) => return Err(io_err(format!("read from {addr}"))(e)),
        }
    }
    Ok(result)
}

/// From the attacker namespace `netns`: send ICMP echo requests to `ip` over a raw socket and
/// return the TTL of the first matching echo reply's IP header, or `None` if none came.
///
/// Up to [`PING_ATTEMPTS`] requests are sent (the first may be lost to ARP resolution), one
/// every `timeout / PING_ATTEMPTS`; the whole probe takes at most about `timeout`. Needs
/// `CAP_NET_RAW`.
pub fn probe_ttl(netns: &str, ip: Ipv4Addr, timeout: Duration) -> Result<Option<u8>, LabError> {
    in_netns(netns, move || ping_ttl_here(ip, timeout))?
}

/// Identifier for our echo requests: distinct per probe within the process.
fn next_ident() -> u16 {
    static COUNTER: AtomicU16 = AtomicU16::new(0);
    // Truncation intended: the low 16 bits of the pid vary between processes.
    (std::process::id() as u16) ^ COUNTER.fetch_add(0x9e37, Ordering::Relaxed)
}

fn ping_ttl_here(ip: Ipv4Addr, timeout: Duration) -> Result<Option<u8>, LabError> {
    let sock = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))
        .map_err(io_err("open raw ICMP socket (needs CAP_NET_RAW)"))?;
    // Connected: the kernel only queues ICMP packets whose source is `ip`.
    sock.connect(&SocketAddr::from((ip, 0)).into())
        .map_err(io_err(format!("connect raw socket to {ip}")))?;
    let ident = next_ident();
    let start = Instant::now();
    let deadline = start + timeout;
    let step = timeout / PING_ATTEMPTS;
    let mut buf = [0u8; 1500];

    for attempt in 1..=PING_ATTEMPTS {
        let attempt_end = if attempt == PING_ATTEMPTS {
            deadline
        } else {
            start + step * attempt
        };
        // Truncation impossible: PING_ATTEMPTS is small.
        let packet = echo_request(ident, attempt as u16, b"decnet-lab-probe");
        if let Err(e) = (&sock).write(&packet) {
            // EHOSTUNREACH after a failed ARP: no answer this round; keep waiting it out.
            if e.kind() != ErrorKind::HostUnreachable {
                return Err(io_err(format!("send ICMP echo to {ip}"))(e));
            }
        }
        loop {
            let left = attempt_end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            sock.set_read_timeout(Some(left))
                .map_err(io_err("set read timeout"))?;
            match (&sock).read(&mut buf) {
                Ok(n) => {
                    if let Some(ttl) = echo_reply_ttl(&buf[..n], ip, ident) {
                        return Ok(Some(ttl));
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
                // An ICMP error for an earlier request surfaces as a socket error.
                Err(e) if e.kind() == ErrorKind::HostUnreachable => {}
                Err(e) => return Err(io_err(format!("receive ICMP from {ip}"))(e)),
            }
        }
    }
    Ok(None)
}

/// The internet checksum (RFC 1071) of `data`.
fn inet_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    // Truncation intended: the loop folded the sum into 16 bits.
    !(sum as u16)
}

/// An ICMP echo request (type 8) with `ident`, `seq` and `payload`, checksummed.
fn echo_request(ident: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(8 + payload.len());
    p.extend_from_slice(&[8, 0, 0, 0]);
    p.extend_from_slice(&ident.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(payload);
    let sum = inet_checksum(&p);
    p[2..4].copy_from_slice(&sum.to_be_bytes());
    p
}

/// If `packet` (an IPv4 datagram as a raw socket delivers it) is an ICMP echo reply from `from`
/// with identifier `ident`, the TTL of its IP header.
fn echo_reply_ttl(packet: &[u8], from: Ipv4Addr, ident: u16) -> Option<u8> {
    let first = *packet.first()?;
    if first >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(first & 0x0f) * 4;
    if ihl < 20 || packet.len() < ihl + 8 || packet[9] != 1 {
        return None;
    }
    let src = Ipv4Addr::new(packet[12], packet[13], packet[14], packet[15]);
    let icmp = &packet[ihl..];
    let is_reply = icmp[0] == 0 && icmp[1] == 0;
    let id = u16::from_be_bytes([icmp[4], icmp[5]]);
    (src == from && is_reply && id == ident).then_some(packet[8])
}

/// From the attacker namespace `netns`: the MAC address its ARP table holds for `ip` (complete
/// entries only), read from `/proc/thread-self/net/arp`. `None` if there is no resolved entry.
pub fn neighbour_mac(netns: &str, ip: Ipv4Addr) -> Result<Option<[u8; 6]>, LabError> {
    in_netns(netns, move || {
        let table =
            std::fs::read_to_string(THREAD_ARP).map_err(io_err(format!("read {THREAD_ARP}")))?;
        Ok(arp_table_mac(&table, ip))
    })?
}

/// The hardware address of the first complete (`ATF_COM`) entry for `ip` in a
/// `/proc/net/arp` text.
fn arp_table_mac(table: &str, ip: Ipv4Addr) -> Option<[u8; 6]> {
    const ATF_COM: u32 = 0x02;
    table.lines().skip(1).find_map(|line| {
        let mut cols = line.split_whitespace();
        let addr: Ipv4Addr = cols.next()?.parse().ok()?;
        let _hw_type = cols.next()?;
        let flags = u32::from_str_radix(cols.next()?.trim_start_matches("0x"), 16).ok()?;
        let mac = parse_mac(cols.next()?)?;
        (addr == ip && flags & ATF_COM != 0).then_some(mac)
    })
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for byte in &mut mac {
        *byte = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// In the attacker namespace `netns`: delete every dynamic IPv4 neighbour (ARP) entry, like
/// `ip -4 neigh flush all`; permanent and no-ARP entries stay. Returns how many were deleted.
/// Use it before probing an address that may have belonged to another host a moment ago.
pub fn flush_neighbours(netns: &str) -> Result<usize, LabError> {
    in_netns_async(netns, || async {
        let (handle, _guard) = connect().map_err(io_err("open rtnetlink socket in netns"))?;
        let entries: Vec<NeighbourMessage> = handle
            .neighbours()
            .get()
            .set_address_family(AddressFamily::Inet)
            .execute()
            .try_collect()
            .await
            .map_err(nl_err("list neighbours"))?;
        let mut deleted = 0;
        for entry in entries {
            if matches!(
                entry.header.state,
                NeighbourState::Permanent | NeighbourState::Noarp
            ) {
                continue;
            }
            match handle.neighbours().del(entry).execute().await {
                Ok(()) => deleted += 1,
                Err(e) if errno(&e) == Some(ENOENT) => {}
                Err(e) => return Err(nl_err("delete neighbour")(e)),
            }
        }
        Ok(deleted)
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_and_names() {
        assert!(check_tag("demo").is_ok());
        assert!(check_tag("a_b-9").is_ok());
        assert!(check_tag("abcdefghijk").is_ok());
        for bad in ["", "abcdefghijkl", "a/b", "a b", "a:b", "é"] {
            assert!(
                matches!(check_tag(bad), Err(LabError::BadTag { .. })),
                "{bad:?}"
            );
        }
        let longest = "abcdefghijk";
        assert_eq!(attacker_link_name(longest).len(), 15);
        assert_eq!(host_link_name("x"), "dl-x");
        assert_eq!(lab_netns_name("x"), "decnet-lab-x");
        for bad in ["", ".", "..", "a/b"] {
            assert!(check_netns_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn checksum_and_echo_request() {
        // RFC 1071 example: the one's-complement sum of these words is 0xddf2.
        assert_eq!(
            inet_checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            !0xddf2
        );
        let p = echo_request(0x1234, 7, b"abc");
        assert_eq!(&p[..2], &[8, 0]);
        assert_eq!(&p[4..8], &[0x12, 0x34, 0, 7]);
        assert_eq!(&p[8..], b"abc");
        // A correct checksum makes the whole message sum to zero (odd length included).
        assert_eq!(inet_checksum(&p), 0);
    }

    fn reply(ttl: u8, src: [u8; 4], icmp_type: u8, ident: u16) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 28, 0, 0, 0x40, 0, ttl, 1, 0, 0];
        p.extend_from_slice(&src);
        p.extend_from_slice(&[10, 0, 0, 1]);
        p.extend_from_slice(&[icmp_type, 0, 0, 0]);
        p.extend_from_slice(&ident.to_be_bytes());
        p.extend_from_slice(&[0, 1]);
        p
    }

    #[test]
    fn echo_reply_matching() {
        let from = Ipv4Addr::new(10, 0, 0, 9);
        assert_eq!(
            echo_reply_ttl(&reply(128, [10, 0, 0, 9], 0, 42), from, 42),
            Some(128)
        );
        // Our own request looped back, someone else's reply, another identifier, truncated.
        assert_eq!(
            echo_reply_ttl(&reply(64, [10, 0, 0, 9], 8, 42), from, 42),
            None
        );
        assert_eq!(
            echo_reply_ttl(&reply(64, [10, 0, 0, 8], 0, 42), from, 42),
            None
        );
        assert_eq!(
            echo_reply_ttl(&reply(64, [10, 0, 0, 9], 0, 43), from, 42),
            None
        );
        assert_eq!(
            echo_reply_ttl(&reply(64, [10, 0, 0, 9], 0, 42)[..25], from, 42),
            None
        );
        assert_eq!(echo_reply_ttl(&[], from, 42), None);
    }

    #[test]
    fn arp_table_parsing() {
        let table = "\
IP address       HW type     Flags       HW address            Mask     Device
10.9.0.10        0x1         0x2         02:42:0a:09:00:0a     *        dla-x
10.9.0.11        0x1         0x0         00:00:00:00:00:00     *        dla-x
10.9.0.12        0x1         0x6         aa:bb:cc:dd:ee:ff     *        dla-x
";
        let ip = |s: &str| s.parse::<Ipv4Addr>().expect("ip");
        assert_eq!(
            arp_table_mac(table, ip("10.9.0.10")),
            Some([0x02, 0x42, 0x0a, 0x09, 0x00, 0x0a])
        );
        assert_eq!(arp_table_mac(table, ip("10.9.0.11")), None, "incomplete");
        assert_eq!(
            arp_table_mac(table, ip("10.9.0.12")),
            Some([0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff])
        );
        assert_eq!(arp_table_mac(table, ip("10.9.0.13")), None);
        assert_eq!(parse_mac("02:42:0a:09:00"), None);
        assert_eq!(parse_mac("02:42:0a:09:00:0a:0b"), None);
    }
}

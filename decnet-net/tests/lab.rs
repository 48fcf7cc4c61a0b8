//! The lab LAN against the real kernel: a veth pair with the attacker in its own named network
//! namespace, a simulated decky (a macvlan child of the lab parent, alone in another namespace,
//! running a tiny TCP service), and the probes looking at it from the attacker.
//!
//! Needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_NET_RAW); without it the tests fail loudly
//! rather than skip. Every test uses its own tag (test prefix + pid), so tests may run in
//! parallel, also in separate processes. The only things made in the host namespace are
//! `dl-<tag>` links; traffic only flows between namespaces the tests create.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use decnet_net::lab::{
    self, add_netns, attacker_link_name, del_netns, destroy_by_tag, flush_neighbours,
    host_link_name, in_netns, in_netns_async, lab_netns_name, neighbour_mac, probe_tcp, probe_ttl,
    LabError, LabLan, ProbeResult,
};
use decnet_net::select::NetSnapshot;
use decnet_net::{has_net_admin, NetlinkHostNetwork};
use futures_util::TryStreamExt;
use ipnet::Ipv4Net;
use netlink_packet_route::link::{LinkAttribute, MacVlanMode};
use rtnetlink::{Handle, LinkBridge, LinkMacVlan, LinkUnspec};

const GREETING: &[u8] = b"SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.6\r\n";

fn net(s: &str) -> Ipv4Net {
    s.parse().expect("test net")
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().expect("test ip")
}

fn require_root() {
    assert!(
        has_net_admin(),
        "these tests build network namespaces and links: run them as root"
    );
}

/// A tag unique to this test (prefix) and this process (pid): at most 11 characters.
fn tag(prefix: &str) -> String {
    assert!(prefix.len() <= 6);
    format!("{prefix}{:x}", std::process::id() & 0xf_ffff)
}

fn netns_file(name: &str) -> bool {
    Path::new(lab::NETNS_DIR).join(name).exists()
}

fn connection() -> (Handle, tokio::task::JoinHandle<()>) {
    let (conn, handle, _) = rtnetlink::new_connection().expect("netlink socket");
    (handle, tokio::spawn(conn))
}

async fn link_index(handle: &Handle, name: &str) -> Option<u32> {
    handle
        .link()
        .get()
        .match_name(name.to_owned())
        .execute()
        .try_next()
        .await
        .ok()
        .flatten()
        .map(|l| l.header.index)
}

async fn host_snapshot() -> NetSnapshot {
    NetlinkHostNetwork::new()
        .snapshot()
        .await
        .expect("host snapshot")
}

async fn snapshot_in(netns: &str) -> NetSnapshot {
    let netns = netns.to_owned();
    tokio::task::spawn_blocking(move || {
        in_netns_async(&netns, || async {
            NetlinkHostNetwork::new().snapshot().await
        })
    })
    .await
    .expect("join")
    .expect("enter netns")
    .expect("snapshot in netns")
}

/// Best-effort removal of everything a test may have made, also when it fails half-way: the
/// `dl-<tag>` link whatever its kind, the lab namespace and the extra namespaces.
struct Cleanup {
    tags: Vec<String>,
    extra_netns: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let tags = std::mem::take(&mut self.tags);
        let extra = std::mem::take(&mut self.extra_netns);
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                let (handle, _conn) = connection();
                for tag in &tags {
                    if let Some(index) = link_index(&handle, &host_link_name(tag)).await {
                        let _ = handle.link().del(index).execute().await;
                    }
                    let _ = destroy_by_tag(tag).await;
                }
            });
            for ns in &extra {
                let _ = del_netns(ns);
            }
        })
        .join();
    }
}

/// A simulated decky: a bridge-mode macvlan child `name` of the lab parent, created directly in
/// the (existing) namespace `netns`, given `addr` and brought up there with `lo`. Returns its MAC.
async fn add_decky(lab: &LabLan, netns: &str, name: &str, addr: Ipv4Net) -> [u8; 6] {
    let (handle, _conn) = connection();
    let parent = link_index(&handle, &lab.parent)
        .await
        .expect("lab parent in the host namespace");
    let ns = File::open(Path::new(lab::NETNS_DIR).join(netns)).expect("open decky netns");
    let msg = LinkMacVlan::new(name, parent, MacVlanMode::Bridge)
        .setns_by_fd(ns.as_raw_fd())
        .build();
    handle
        .link()
        .add(msg)
        .execute()
        .await
        .expect("add macvlan decky");
    drop(ns);
    assert_eq!(
        link_index(&handle, name).await,
        None,
        "the decky link lives in its namespace, not the host's"
    );

    let (netns, name) = (netns.to_owned(), name.to_owned());
    tokio::task::spawn_blocking(move || {
        in_netns_async(&netns, move || async move {
            let (handle, _conn) = connection();
            let link = handle
                .link()
                .get()
                .match_name(name.clone())
                .execute()
                .try_next()
                .await
                .expect("get decky link")
                .expect("decky link in its namespace");
            let mac = link
                .attributes
                .iter()
                .find_map(|a| match a {
                    LinkAttribute::Address(m) if m.len() == 6 => {
                        Some([m[0], m[1], m[2], m[3], m[4], m[5]])
                    }
                    _ => None,
                })
                .expect("decky MAC");
            let index = link.header.index;
            handle
                .address()
                .add(index, IpAddr::V4(addr.addr()), addr.prefix_len())
                .execute()
                .await
                .expect("decky address");
            for idx in [index, link_index(&handle, "lo").await.expect("lo")] {
                handle
                    .link()
                    .set(LinkUnspec::new_with_index(idx).up().build())
                    .execute()
                    .await
                    .expect("link up");
            }
            mac
        })
    })
    .await
    .expect("join")
    .expect("enter decky netns")
}

/// Serve `connections` connections: greet, then echo once what the client sends within 300 ms
/// as `echo:<bytes>`, then close.
fn serve(listener: TcpListener, connections: usize) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for _ in 0..connections {
            let (mut s, _) = listener.accept().expect("accept");
            s.write_all(GREETING).expect("greet");
            s.set_read_timeout(Some(Duration::from_millis(300)))
                .expect("read timeout");
            let mut buf = [0u8; 64];
            if let Ok(n @ 1..) = s.read(&mut buf) {
                let mut answer = b"echo:".to_vec();
                answer.extend_from_slice(&buf[..n]);
                s.write_all(&answer).expect("echo");
            }
        }
    })
}

fn ns_inode_here() -> std::path::PathBuf {
    std::fs::read_link("/proc/thread-self/ns/net").expect("readlink ns/net")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_lan_probes_a_macvlan_decky_like_an_intruder() {
    require_root();
    let tag = tag("e2e");
    let decky_ns = format!("decnet-test-dky-{tag}");
    let decky_if = format!("dd-{tag}");
    let _cleanup = Cleanup {
        tags: vec![tag.clone()],
        extra_netns: vec![decky_ns.clone()],
    };

    let lab = LabLan::create(&tag, net("10.213.0.77/24"))
        .await
        .expect("create lab LAN");
    assert_eq!(lab.parent, format!("dl-{tag}"));
    assert_eq!(lab.netns, format!("decnet-lab-{tag}"));
    assert_eq!(lab.attacker_link, format!("dla-{tag}"));
    assert_eq!(lab.subnet, net("10.213.0.0/24"), "host bits cleared");
    assert_eq!(lab.attacker_ip, ip("10.213.0.1"));
    assert_eq!(lab.gateway, lab.attacker_ip);
    assert!(netns_file(&lab.netns), "/run/netns/{} missing", lab.netns);

    // Host side: the parent is up with no IPv4 address; the attacker end is not here.
    let host = host_snapshot().await;
    let parent = host.link_by_name(&lab.parent).expect("parent link on host");
    assert!(parent.up, "{parent:?}");
    assert!(
        host.addrs.iter().all(|a| a.index != parent.index),
        "the macvlan parent must carry no IPv4 address"
    );
    assert!(host.link_by_name(&lab.attacker_link).is_none());
    let v6 = format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", lab.parent);
    if let Ok(v) = std::fs::read_to_string(&v6) {
        assert_eq!(v.trim(), "1", "IPv6 off on the host end");
    }

    // Attacker side: its own namespace, its address, lo up.
    let host_ns = ns_inode_here();
    let attacker_ns = in_netns(&lab.netns, ns_inode_here).expect("in attacker netns");
    assert_ne!(attacker_ns, host_ns, "in_netns really switched namespace");
    let attacker = snapshot_in(&lab.netns).await;
    let peer = attacker
        .link_by_name(&lab.attacker_link)
        .expect("attacker link in its namespace");
    assert!(peer.up, "{peer:?}");
    let peer_addrs: Vec<_> = attacker
        .addrs
        .iter()
        .filter(|a| a.index == peer.index)
        .map(|a| a.addr)
        .collect();
    assert_eq!(peer_addrs, vec![net("10.213.0.1/24")]);
    assert!(attacker.link_by_name("lo").expect("lo").up);
    assert!(attacker.link_by_name(&lab.parent).is_none());

    // A decky: macvlan child of the lab parent, in its own namespace.
    {
        let ns = decky_ns.clone();
        tokio::task::spawn_blocking(move || add_netns(&ns))
            .await
            .expect("join")
            .expect("decky netns");
    }
    let decky_ip = ip("10.213.0.10");
    let decky_mac = add_decky(&lab, &decky_ns, &decky_if, net("10.213.0.10/24")).await;

    tokio::task::spawn_blocking({
        let lab = lab.clone();
        let decky_ns = decky_ns.clone();
        move || {
            // A service bound inside the decky's namespace, served from an ordinary thread.
            let listener = in_netns(&decky_ns, move || TcpListener::bind((decky_ip, 2222)))
                .expect("enter decky netns")
                .expect("bind in decky netns");
            let server = serve(listener, 2);

            let quiet = probe_tcp(&lab.netns, decky_ip, 2222, None, Duration::from_secs(3))
                .expect("probe without sending");
            assert_eq!(
                quiet,
                ProbeResult {
                    open: true,
                    greeting: GREETING.to_vec()
                }
            );
            let chatty = probe_tcp(
                &lab.netns,
                decky_ip,
                2222,
                Some(b"hello".to_vec()),
                Duration::from_secs(3),
            )
            .expect("probe with a payload");
            assert!(chatty.open);
            assert_eq!(chatty.greeting, [GREETING, b"echo:hello"].concat());
            server.join().expect("server thread");

            // A closed port answers with a reset: not open, and fast.
            let t = Instant::now();
            let closed = probe_tcp(&lab.netns, decky_ip, 2223, None, Duration::from_secs(3))
                .expect("probe closed port");
            assert_eq!(closed, ProbeResult::default());
            assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());

            // Nobody at .99: not open, and bounded by the timeout.
            let t = Instant::now();
            let nobody = probe_tcp(
                &lab.netns,
                ip("10.213.0.99"),
                22,
                None,
                Duration::from_millis(600),
            )
            .expect("probe absent host");
            assert!(!nobody.open);
            assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());

            // TTL of the decky's echo replies follows its namespace's ip_default_ttl.
            assert_eq!(
                probe_ttl(&lab.netns, decky_ip, Duration::from_secs(3)).expect("ping"),
                Some(64)
            );
            let host_ttl = std::fs::read_to_string("/proc/sys/net/ipv4/ip_default_ttl")
                .expect("host ip_default_ttl");
            in_netns(&decky_ns, || {
                std::fs::write("/proc/sys/net/ipv4/ip_default_ttl", "128")
            })
            .expect("enter decky netns")
            .expect("set ip_default_ttl in the decky namespace");
            assert_eq!(
                probe_ttl(&lab.netns, decky_ip, Duration::from_secs(3)).expect("ping"),
                Some(128)
            );
            assert_eq!(
                std::fs::read_to_string("/proc/sys/net/ipv4/ip_default_ttl")
                    .expect("host ip_default_ttl"),
                host_ttl,
                "the host's TTL is untouched"
            );
            let t = Instant::now();
            assert_eq!(
                probe_ttl(&lab.netns, ip("10.213.0.99"), Duration::from_millis(900))
                    .expect("ping absent host"),
                None
            );
            assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());

            // The attacker's ARP cache holds the decky's MAC; flushing forgets it.
            assert_eq!(
                neighbour_mac(&lab.netns, decky_ip).expect("arp"),
                Some(decky_mac)
            );
            assert_eq!(
                neighbour_mac(&lab.netns, ip("10.213.0.99")).expect("arp"),
                None,
                "unresolved entries are not reported"
            );
            let flushed = flush_neighbours(&lab.netns).expect("flush");
            assert!(flushed >= 1, "flushed {flushed}");
            assert_eq!(neighbour_mac(&lab.netns, decky_ip).expect("arp"), None);
        }
    })
    .await
    .expect("probes");

    let (parent, netns) = (lab.parent.clone(), lab.netns.clone());
    lab.destroy().await.expect("destroy");
    let host = host_snapshot().await;
    assert!(host.link_by_name(&parent).is_none(), "parent link left");
    assert!(!netns_file(&netns), "netns file left");
    // The decky child went with its parent.
    let decky_left = snapshot_in(&decky_ns).await;
    assert!(decky_left.link_by_name(&decky_if).is_none());
    del_netns(&decky_ns).expect("remove decky netns");
    assert!(!netns_file(&decky_ns));
    // Idempotent.
    destroy_by_tag(&tag).await.expect("destroy again");
}

#[tokio::test]
async fn leftovers_are_refused_then_removed_by_tag() {
    require_root();
    let (a, b, c) = (tag("dup"), tag("left"), tag("frgn"));
    let _cleanup = Cleanup {
        tags: vec![a.clone(), b.clone(), c.clone()],
        extra_netns: vec![],
    };

    // Creating the same lab twice: the second attempt fails and leaves the first intact.
    let lab = LabLan::create(&a, net("10.214.0.0/24"))
        .await
        .expect("create");
    let again = LabLan::create(&a, net("10.214.0.0/24")).await;
    assert!(matches!(again, Err(LabError::Exists(_))), "{again:?}");
    assert!(netns_file(&lab.netns));
    assert!(host_snapshot().await.link_by_name(&lab.parent).is_some());
    let attacker = snapshot_in(&lab.netns).await;
    assert!(attacker.link_by_name(&lab.attacker_link).is_some());
    lab.destroy().await.expect("destroy");
    destroy_by_tag(&a)
        .await
        .expect("destroy by tag after destroy");

    // A leftover namespace only: refused untouched, removed by tag, then create works.
    let b_ns = lab_netns_name(&b);
    {
        let ns = b_ns.clone();
        tokio::task::spawn_blocking(move || add_netns(&ns))
            .await
            .expect("join")
            .expect("leftover netns");
    }
    let over = LabLan::create(&b, net("10.215.0.0/24")).await;
    assert!(matches!(over, Err(LabError::Exists(_))), "{over:?}");
    assert!(netns_file(&b_ns), "the leftover stays until asked to go");
    assert!(
        host_snapshot()
            .await
            .link_by_name(&host_link_name(&b))
            .is_none(),
        "a refused create makes no link"
    );
    destroy_by_tag(&b).await.expect("remove leftover");
    assert!(!netns_file(&b_ns));
    let lab = LabLan::create(&b, net("10.215.0.0/24"))
        .await
        .expect("create after cleanup");
    destroy_by_tag(&b).await.expect("destroy by tag");
    assert!(!netns_file(&lab.netns));
    assert!(host_snapshot().await.link_by_name(&lab.parent).is_none());

    // Never created: nothing to do.
    destroy_by_tag(&tag("none")).await.expect("nothing to do");

    // Something else (a bridge) holds the parent's name: not ours, left alone.
    let (handle, _conn) = connection();
    let foreign = host_link_name(&c);
    handle
        .link()
        .add(LinkBridge::new(&foreign).build())
        .execute()
        .await
        .expect("add a foreign bridge");
    let refused = destroy_by_tag(&c).await;
    assert!(matches!(refused, Err(LabError::Foreign(_))), "{refused:?}");
    let create = LabLan::create(&c, net("10.216.0.0/24")).await;
    assert!(matches!(create, Err(LabError::Exists(_))), "{create:?}");
    assert!(
        !netns_file(&lab_netns_name(&c)),
        "refused create made a netns"
    );
    let index = link_index(&handle, &foreign)
        .await
        .expect("the foreign bridge is still there");
    handle
        .link()
        .del(index)
        .execute()
        .await
        .expect("del bridge");
}

#[tokio::test]
async fn bad_input_is_rejected_before_anything_is_made() {
    require_root();
    for bad in ["", "much-too-long", "a/b", "a b"] {
        let res = LabLan::create(bad, net("10.217.0.0/24")).await;
        assert!(
            matches!(res, Err(LabError::BadTag { .. })),
            "{bad:?}: {res:?}"
        );
    }
    let t = tag("small");
    for small in ["10.217.0.0/31", "10.217.0.0/32"] {
        let res = LabLan::create(&t, net(small)).await;
        assert!(matches!(res, Err(LabError::BadSubnet { .. })), "{res:?}");
    }
    assert!(!netns_file(&lab_netns_name(&t)));
    assert!(host_snapshot()
        .await
        .link_by_name(&host_link_name(&t))
        .is_none());
    // The smallest usable lab: /30, the attacker takes the first host.
    let t30 = tag("p30");
    let _cleanup = Cleanup {
        tags: vec![t30.clone()],
        extra_netns: vec![],
    };
    let lab = LabLan::create(&t30, net("10.217.1.0/30"))
        .await
        .expect("create /30");
    assert_eq!(lab.attacker_ip, ip("10.217.1.1"));
    assert_eq!(attacker_link_name(&t30), lab.attacker_link);
    lab.destroy().await.expect("destroy");

    let missing = format!("decnet-lab-missing{:x}", std::process::id());
    assert!(matches!(
        in_netns(&missing, || ()),
        Err(LabError::NoSuchNetns(n)) if n == missing
    ));
    assert!(matches!(
        probe_tcp(
            &missing,
            ip("10.217.0.2"),
            22,
            None,
            Duration::from_millis(100)
        ),
        Err(LabError::NoSuchNetns(_))
    ));
    assert!(matches!(
        in_netns("../../proc/self/ns/net", || ()),
        Err(LabError::BadNetnsName(_))
    ));
    // Removing a namespace that does not exist is fine.
    del_netns(&missing).expect("del missing netns");
}

//! Real netlink reads and writes inside a throwaway network namespace.
//!
//! Each test runs on its own thread that `unshare(CLONE_NEWNET)`s first, so the links, addresses
//! and routes it makes exist only there and vanish with the thread; the machine's real
//! interfaces are never touched. Needs root (CAP_SYS_ADMIN + CAP_NET_ADMIN): without it the test
//! fails loudly rather than skipping.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};

use decnet_core::traits::{HostNetError, HostNetwork, LocalNetFacts};
use decnet_net::select::NetSnapshot;
use decnet_net::{ensure_host_macvlan, remove_host_link, HostLinkError, NetlinkHostNetwork};
use futures_util::TryStreamExt;
use ipnet::Ipv4Net;
use netlink_packet_route::link::{InfoKind, LinkAttribute, LinkInfo};
use rtnetlink::{Handle, LinkUnspec, LinkVeth, RouteMessageBuilder};

const MACVLAN: &str = "decnet_macvlan0";

fn net(s: &str) -> Ipv4Net {
    s.parse().expect("test net")
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().expect("test ip")
}

/// Run `test` on a current-thread runtime in a new network namespace.
fn in_new_netns<F, Fut>(test: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let joined = std::thread::spawn(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
            .expect("unshare(CLONE_NEWNET): run the tests as root (CAP_SYS_ADMIN)");
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
            .block_on(test());
    })
    .join();
    if let Err(panic) = joined {
        std::panic::resume_unwind(panic);
    }
}

struct Ns {
    handle: Handle,
    _conn: tokio::task::JoinHandle<()>,
}

impl Ns {
    fn open() -> Self {
        let (conn, handle, _) = rtnetlink::new_connection().expect("netlink socket");
        Self {
            handle,
            _conn: tokio::spawn(conn),
        }
    }

    async fn index(&self, name: &str) -> Option<u32> {
        match self
            .handle
            .link()
            .get()
            .match_name(name.to_owned())
            .execute()
            .try_next()
            .await
        {
            Ok(link) => link.map(|l| l.header.index),
            Err(_) => None,
        }
    }

    /// A veth pair `a` <-> `b`, both up.
    async fn veth(&self, a: &str, b: &str) -> u32 {
        self.handle
            .link()
            .add(LinkVeth::new(a, b).build())
            .execute()
            .await
            .expect("add veth");
        for name in [b, a] {
            let idx = self.index(name).await.expect("veth end");
            self.handle
                .link()
                .set(LinkUnspec::new_with_index(idx).up().build())
                .execute()
                .await
                .expect("veth up");
        }
        self.index(a).await.expect("veth index")
    }

    async fn addr(&self, index: u32, a: &str) {
        let a = net(a);
        self.handle
            .address()
            .add(index, IpAddr::V4(a.addr()), a.prefix_len())
            .execute()
            .await
            .expect("add address");
    }

    async fn default_via(&self, gw: &str, index: u32, metric: u32) {
        let msg = RouteMessageBuilder::<Ipv4Addr>::new()
            .gateway(ip(gw))
            .output_interface(index)
            .priority(metric)
            .build();
        self.handle
            .route()
            .add(msg)
            .execute()
            .await
            .expect("add default route");
    }

    async fn kind(&self, name: &str) -> Option<InfoKind> {
        let link = self
            .handle
            .link()
            .get()
            .match_name(name.to_owned())
            .execute()
            .try_next()
            .await
            .ok()??;
        link.attributes.iter().find_map(|a| match a {
            LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
                LinkInfo::Kind(k) => Some(k.clone()),
                _ => None,
            }),
            _ => None,
        })
    }
}

async fn snapshot() -> NetSnapshot {
    NetlinkHostNetwork::new()
        .snapshot()
        .await
        .expect("snapshot")
}

#[test]
fn facts_from_real_kernel_state() {
    in_new_netns(|| async {
        let host = NetlinkHostNetwork::new();
        let ns = Ns::open();

        // A fresh namespace has only lo (down, no address) and no route.
        assert!(matches!(
            host.facts(None).await,
            Err(HostNetError::NoDefaultRoute)
        ));

        let dn0 = ns.veth("dn0", "dn0p").await;
        ns.addr(dn0, "10.77.0.10/24").await;
        ns.addr(dn0, "10.77.0.20/24").await; // same subnet: the kernel marks it secondary
        let dn1 = ns.veth("dn1", "dn1p").await;
        ns.addr(dn1, "10.78.0.10/24").await;
        let dn2 = ns.veth("dn2", "dn2p").await;
        ns.addr(dn2, "10.79.0.10/24").await;

        assert!(matches!(
            host.facts(None).await,
            Err(HostNetError::NoDefaultRoute)
        ));

        ns.default_via("10.77.0.1", dn0, 200).await;
        ns.default_via("10.78.0.1", dn1, 100).await;

        let snap = snapshot().await;
        let secondary: Vec<_> = snap
            .addrs
            .iter()
            .filter(|a| a.index == dn0)
            .map(|a| (a.addr, a.secondary))
            .collect();
        assert_eq!(
            secondary,
            vec![(net("10.77.0.10/24"), false), (net("10.77.0.20/24"), true)]
        );

        let ifaces = host.interfaces().await.expect("interfaces");
        let dn0_info = ifaces.iter().find(|i| i.name == "dn0").expect("dn0 listed");
        assert!(dn0_info.up && !dn0_info.loopback && dn0_info.mac.is_some());
        assert_eq!(
            dn0_info.ipv4,
            vec![net("10.77.0.10/24"), net("10.77.0.20/24")]
        );

        // Lowest metric wins for auto-detection.
        assert_eq!(
            host.facts(None).await.expect("facts(None)"),
            LocalNetFacts {
                interface: "dn1".into(),
                subnet: net("10.78.0.0/24"),
                host_ip: ip("10.78.0.10"),
                gateway: Some(ip("10.78.0.1")),
            }
        );
        // A named interface gets its own default route's gateway and its primary address.
        assert_eq!(
            host.facts(Some("dn0")).await.expect("facts(dn0)"),
            LocalNetFacts {
                interface: "dn0".into(),
                subnet: net("10.77.0.0/24"),
                host_ip: ip("10.77.0.10"),
                gateway: Some(ip("10.77.0.1")),
            }
        );
        // No default route through dn2: no gateway.
        assert_eq!(
            host.facts(Some("dn2")).await.expect("facts(dn2)").gateway,
            None
        );
        assert!(matches!(
            host.facts(Some("dn0p")).await,
            Err(HostNetError::NoIpv4(n)) if n == "dn0p"
        ));
    });
}

#[test]
fn host_macvlan_lifecycle() {
    in_new_netns(|| async {
        let ns = Ns::open();
        let parent = ns.veth("dn0", "dn0p").await;
        ns.addr(parent, "10.77.0.2/24").await;
        let host_ip = ip("10.77.0.2");
        let range = net("10.77.0.64/26");

        let missing = ensure_host_macvlan("nope0", MACVLAN, host_ip, &[range]).await;
        assert!(
            matches!(&missing, Err(HostLinkError::NoSuchInterface(n)) if n == "nope0"),
            "{missing:?}"
        );

        // Twice: the second run finds everything in place.
        for _ in 0..2 {
            ensure_host_macvlan("dn0", MACVLAN, host_ip, &[range])
                .await
                .expect("ensure host macvlan");
        }
        assert_eq!(ns.kind(MACVLAN).await, Some(InfoKind::MacVlan));
        let snap = snapshot().await;
        let link = snap.link_by_name(MACVLAN).expect("helper link").clone();
        assert!(link.up);
        let addrs: Vec<_> = snap
            .addrs
            .iter()
            .filter(|a| a.index == link.index)
            .map(|a| a.addr)
            .collect();
        assert_eq!(addrs, vec![net("10.77.0.2/32")]);
        let routes: Vec<_> = snap
            .routes
            .iter()
            .filter(|r| r.dst == range)
            .map(|r| r.oif)
            .collect();
        assert_eq!(
            routes,
            vec![Some(link.index)],
            "one route to the range via the helper"
        );

        // The host IP changed since the last run: the helper converges on the new one only.
        ensure_host_macvlan("dn0", MACVLAN, ip("10.77.0.3"), &[range])
            .await
            .expect("ensure with a new host ip");
        let snap = snapshot().await;
        let addrs: Vec<_> = snap
            .addrs
            .iter()
            .filter(|a| a.index == link.index)
            .map(|a| a.addr)
            .collect();
        assert_eq!(addrs, vec![net("10.77.0.3/32")]);

        remove_host_link(MACVLAN, &[range]).await.expect("remove");
        let snap = snapshot().await;
        assert!(snap.link_by_name(MACVLAN).is_none());
        assert!(snap.routes.iter().all(|r| r.dst != range));
        assert!(snap.link_by_name("dn0").is_some(), "parent untouched");
        // Already gone: still fine.
        remove_host_link(MACVLAN, &[range])
            .await
            .expect("remove again");
    });
}

#[test]
fn mismatched_link_with_the_helper_name_is_replaced() {
    in_new_netns(|| async {
        let ns = Ns::open();
        let parent = ns.veth("dn0", "dn0p").await;
        ns.addr(parent, "10.77.0.2/24").await;
        // Something else already holds the name: a veth.
        ns.veth(MACVLAN, "dnx").await;
        assert_eq!(ns.kind(MACVLAN).await, Some(InfoKind::Veth));

        // Host bits in the range are cleared, not rejected.
        ensure_host_macvlan("dn0", MACVLAN, ip("10.77.0.2"), &[net("10.77.0.70/26")])
            .await
            .expect("ensure over a mismatched link");
        assert_eq!(ns.kind(MACVLAN).await, Some(InfoKind::MacVlan));
        let snap = snapshot().await;
        let idx = snap.link_by_name(MACVLAN).expect("helper").index;
        assert!(snap
            .routes
            .iter()
            .any(|r| r.dst == net("10.77.0.64/26") && r.oif == Some(idx)));
    });
}

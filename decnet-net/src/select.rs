//! Pure selection of host network facts from a kernel snapshot.
//!
//! Nothing here talks to the kernel: [`NetSnapshot`] holds the raw lists (links, IPv4 addresses
//! with their secondary flag, IPv4 routes) exactly as a dump returned them, and the functions
//! below decide. This is where the upstream bugs are fixed (reference §8 item 7):
//!
//! * the host address is the first **primary** IPv4 address of the interface, never a secondary
//!   one, whatever order the kernel listed them in;
//! * the gateway is taken from a default route whose **output interface** is the chosen
//!   interface, not from the first default route on the host;
//! * among several default routes the lowest metric wins.

use std::net::Ipv4Addr;

use decnet_core::traits::{HostNetError, InterfaceInfo, LocalNetFacts};
use ipnet::Ipv4Net;

/// The kernel's main routing table (`RT_TABLE_MAIN`), the one `ip route show` lists.
pub const MAIN_TABLE: u32 = 254;

/// One link (network interface) as dumped by `RTM_GETLINK`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkRecord {
    pub index: u32,
    pub name: String,
    /// `IFF_UP` is set.
    pub up: bool,
    /// `IFF_LOOPBACK` is set.
    pub loopback: bool,
    /// Hardware address, when the link has a non-zero 6-byte one.
    pub mac: Option<[u8; 6]>,
}

/// One IPv4 address as dumped by `RTM_GETADDR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddrRecord {
    /// Index of the link the address sits on.
    pub index: u32,
    /// The local address with its prefix length (host bits kept).
    pub addr: Ipv4Net,
    /// `IFA_F_SECONDARY` is set (in the header flags or in `IFA_FLAGS`).
    pub secondary: bool,
}

/// One IPv4 route (or one next hop of a multipath route) as dumped by `RTM_GETROUTE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteRecord {
    /// Destination prefix; a default route has prefix length 0.
    pub dst: Ipv4Net,
    /// `RTA_GATEWAY`, if the route goes via a gateway.
    pub gateway: Option<Ipv4Addr>,
    /// `RTA_OIF`, the output interface index.
    pub oif: Option<u32>,
    /// `RTA_PRIORITY` (the metric); 0 when absent, as the kernel treats it.
    pub metric: u32,
    /// Routing table id (`RTA_TABLE`, else the header's table).
    pub table: u32,
    /// `RTN_UNICAST`: a route that forwards (not blackhole/unreachable/local/broadcast...).
    pub unicast: bool,
}

impl RouteRecord {
    /// A forwarding default route of the main table.
    fn is_usable_default(&self) -> bool {
        self.dst.prefix_len() == 0 && self.table == MAIN_TABLE && self.unicast
    }
}

/// Everything the selection needs, as read from the kernel at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetSnapshot {
    pub links: Vec<LinkRecord>,
    pub addrs: Vec<AddrRecord>,
    pub routes: Vec<RouteRecord>,
}

impl NetSnapshot {
    /// The link called `name`.
    pub fn link_by_name(&self, name: &str) -> Option<&LinkRecord> {
        self.links.iter().find(|l| l.name == name)
    }

    fn link_by_index(&self, index: u32) -> Option<&LinkRecord> {
        self.links.iter().find(|l| l.index == index)
    }

    /// IPv4 addresses of link `index`: primaries first, each group in kernel order.
    fn ipv4_of(&self, index: u32) -> Vec<Ipv4Net> {
        let on_link = || self.addrs.iter().filter(move |a| a.index == index);
        on_link()
            .filter(|a| !a.secondary)
            .chain(on_link().filter(|a| a.secondary))
            .map(|a| a.addr)
            .collect()
    }

    /// The first non-secondary IPv4 address of link `index`.
    fn primary_ipv4(&self, index: u32) -> Option<Ipv4Net> {
        self.addrs
            .iter()
            .find(|a| a.index == index && !a.secondary)
            .map(|a| a.addr)
    }
}

/// Every link with its IPv4 addresses (primary first), in kernel order.
pub fn interfaces(snap: &NetSnapshot) -> Vec<InterfaceInfo> {
    snap.links
        .iter()
        .map(|l| InterfaceInfo {
            index: l.index,
            name: l.name.clone(),
            up: l.up,
            loopback: l.loopback,
            mac: l.mac,
            ipv4: snap.ipv4_of(l.index),
        })
        .collect()
}

/// Facts for the link named `interface`, or for the output interface of the host's default route
/// when `None`.
///
/// * Unknown name: [`HostNetError::NoSuchInterface`].
/// * `None` and no usable default route (main table, unicast, through a known non-loopback
///   link): [`HostNetError::NoDefaultRoute`]. With several, the lowest metric wins; on a tie, the
///   first listed.
/// * No primary IPv4 address on the chosen link: [`HostNetError::NoIpv4`].
pub fn facts(snap: &NetSnapshot, interface: Option<&str>) -> Result<LocalNetFacts, HostNetError> {
    let link = match interface {
        Some(name) => snap
            .link_by_name(name)
            .ok_or_else(|| HostNetError::NoSuchInterface(name.to_owned()))?,
        None => default_route_link(snap).ok_or(HostNetError::NoDefaultRoute)?,
    };
    let addr = snap
        .primary_ipv4(link.index)
        .ok_or_else(|| HostNetError::NoIpv4(link.name.clone()))?;
    Ok(LocalNetFacts {
        interface: link.name.clone(),
        subnet: addr.trunc(),
        host_ip: addr.addr(),
        gateway: gateway_through(snap, link.index),
    })
}

/// The link of the lowest-metric default route, skipping loopback and unknown links.
fn default_route_link(snap: &NetSnapshot) -> Option<&LinkRecord> {
    snap.routes
        .iter()
        .filter(|r| r.is_usable_default())
        .filter_map(|r| {
            let link = snap.link_by_index(r.oif?)?;
            (!link.loopback).then_some((r.metric, link))
        })
        .min_by_key(|(metric, _)| *metric)
        .map(|(_, link)| link)
}

/// The gateway of a default route leaving through link `index`.
///
/// Routes with a gateway are preferred over on-link default routes (`default dev X`), then the
/// lowest metric wins.
fn gateway_through(snap: &NetSnapshot, index: u32) -> Option<Ipv4Addr> {
    snap.routes
        .iter()
        .filter(|r| r.is_usable_default() && r.oif == Some(index))
        .min_by_key(|r| (r.gateway.is_none(), r.metric))
        .and_then(|r| r.gateway)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().expect("test net")
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().expect("test ip")
    }

    fn link(index: u32, name: &str) -> LinkRecord {
        LinkRecord {
            index,
            name: name.to_owned(),
            up: true,
            loopback: name == "lo",
            mac: None,
        }
    }

    fn addr(index: u32, a: &str, secondary: bool) -> AddrRecord {
        AddrRecord {
            index,
            addr: net(a),
            secondary,
        }
    }

    fn default_via(gw: Option<&str>, oif: u32, metric: u32) -> RouteRecord {
        RouteRecord {
            dst: net("0.0.0.0/0"),
            gateway: gw.map(ip),
            oif: Some(oif),
            metric,
            table: MAIN_TABLE,
            unicast: true,
        }
    }

    /// lo(1) 127.0.0.1/8, eth0(2), eth1(3); addresses and routes given per case.
    fn snap(addrs: Vec<AddrRecord>, routes: Vec<RouteRecord>) -> NetSnapshot {
        let mut all = vec![addr(1, "127.0.0.1/8", false)];
        all.extend(addrs);
        NetSnapshot {
            links: vec![link(1, "lo"), link(2, "eth0"), link(3, "eth1")],
            addrs: all,
            routes,
        }
    }

    type Expect = Result<
        (
            &'static str,
            &'static str,
            &'static str,
            Option<&'static str>,
        ),
        String,
    >;

    fn check(s: &NetSnapshot, interface: Option<&str>, expect: Expect) {
        let got = facts(s, interface).map_err(|e| e.to_string());
        let expect = expect.map(|(iface, subnet, host, gw)| LocalNetFacts {
            interface: iface.to_owned(),
            subnet: net(subnet),
            host_ip: ip(host),
            gateway: gw.map(ip),
        });
        assert_eq!(got, expect, "interface {interface:?}");
    }

    fn err(e: HostNetError) -> Expect {
        Err(e.to_string())
    }

    #[test]
    fn secondary_listed_first_is_not_the_host_ip() {
        let s = snap(
            vec![
                addr(2, "192.168.1.77/24", true),
                addr(2, "192.168.1.5/24", false),
            ],
            vec![default_via(Some("192.168.1.1"), 2, 100)],
        );
        let expect = Ok(("eth0", "192.168.1.0/24", "192.168.1.5", Some("192.168.1.1")));
        check(&s, Some("eth0"), expect.clone());
        check(&s, None, expect);
        assert_eq!(
            interfaces(&s)[1].ipv4,
            vec![net("192.168.1.5/24"), net("192.168.1.77/24")],
            "primary first in InterfaceInfo"
        );
    }

    #[test]
    fn two_default_routes_on_different_interfaces() {
        let s = snap(
            vec![
                addr(2, "10.0.0.5/16", false),
                addr(3, "172.16.4.9/24", false),
            ],
            vec![
                default_via(Some("10.0.0.1"), 2, 600),
                default_via(Some("172.16.4.1"), 3, 100),
            ],
        );
        // Auto-detection takes the lowest metric, not the first listed.
        check(
            &s,
            None,
            Ok(("eth1", "172.16.4.0/24", "172.16.4.9", Some("172.16.4.1"))),
        );
        // A named interface gets the gateway of *its* default route (upstream took the first).
        check(
            &s,
            Some("eth0"),
            Ok(("eth0", "10.0.0.0/16", "10.0.0.5", Some("10.0.0.1"))),
        );
        check(
            &s,
            Some("eth1"),
            Ok(("eth1", "172.16.4.0/24", "172.16.4.9", Some("172.16.4.1"))),
        );
    }

    #[test]
    fn equal_metrics_first_listed_wins() {
        let s = snap(
            vec![addr(2, "10.0.0.5/24", false), addr(3, "10.1.0.5/24", false)],
            vec![
                default_via(Some("10.1.0.1"), 3, 0),
                default_via(Some("10.0.0.1"), 2, 0),
            ],
        );
        check(
            &s,
            None,
            Ok(("eth1", "10.1.0.0/24", "10.1.0.5", Some("10.1.0.1"))),
        );
    }

    #[test]
    fn default_route_on_another_interface_gives_no_gateway() {
        let s = snap(
            vec![
                addr(2, "192.168.1.5/24", false),
                addr(3, "10.9.0.2/24", false),
            ],
            vec![default_via(Some("192.168.1.1"), 2, 0)],
        );
        check(
            &s,
            Some("eth1"),
            Ok(("eth1", "10.9.0.0/24", "10.9.0.2", None)),
        );
    }

    #[test]
    fn several_defaults_on_one_interface_prefer_gateway_then_metric() {
        let s = snap(
            vec![addr(2, "192.168.1.5/24", false)],
            vec![
                default_via(None, 2, 0),
                default_via(Some("192.168.1.254"), 2, 300),
                default_via(Some("192.168.1.1"), 2, 200),
            ],
        );
        check(
            &s,
            Some("eth0"),
            Ok(("eth0", "192.168.1.0/24", "192.168.1.5", Some("192.168.1.1"))),
        );
    }

    #[test]
    fn slash_32_address() {
        let s = snap(
            vec![addr(2, "203.0.113.7/32", false)],
            vec![default_via(Some("203.0.113.1"), 2, 0)],
        );
        check(
            &s,
            None,
            Ok(("eth0", "203.0.113.7/32", "203.0.113.7", Some("203.0.113.1"))),
        );
    }

    #[test]
    fn loopback_is_skipped_for_default_selection() {
        let s = snap(
            vec![addr(2, "192.168.1.5/24", false)],
            vec![
                default_via(None, 1, 0),
                default_via(Some("192.168.1.1"), 2, 1024),
            ],
        );
        check(
            &s,
            None,
            Ok(("eth0", "192.168.1.0/24", "192.168.1.5", Some("192.168.1.1"))),
        );
        // Only a loopback default: there is no usable default route.
        let s = snap(vec![], vec![default_via(None, 1, 0)]);
        check(&s, None, err(HostNetError::NoDefaultRoute));
    }

    #[test]
    fn lo_by_name() {
        let s = snap(vec![], vec![]);
        check(&s, Some("lo"), Ok(("lo", "127.0.0.0/8", "127.0.0.1", None)));
    }

    #[test]
    fn routes_that_are_not_main_table_unicast_defaults_are_ignored() {
        let mut other_table = default_via(Some("10.0.0.1"), 2, 0);
        other_table.table = 100;
        let mut blackhole = default_via(None, 2, 0);
        blackhole.unicast = false;
        let mut not_default = default_via(Some("10.0.0.1"), 2, 0);
        not_default.dst = net("10.8.0.0/16");
        let no_oif = RouteRecord {
            oif: None,
            ..default_via(Some("10.0.0.1"), 2, 0)
        };
        let unknown_link = default_via(Some("10.0.0.1"), 42, 0);
        let s = snap(
            vec![addr(2, "10.0.0.5/24", false)],
            vec![other_table, blackhole, not_default, no_oif, unknown_link],
        );
        check(&s, None, err(HostNetError::NoDefaultRoute));
        check(
            &s,
            Some("eth0"),
            Ok(("eth0", "10.0.0.0/24", "10.0.0.5", None)),
        );
    }

    #[test]
    fn errors() {
        let s = snap(vec![], vec![default_via(Some("10.0.0.1"), 2, 0)]);
        check(
            &s,
            Some("eth9"),
            err(HostNetError::NoSuchInterface("eth9".into())),
        );
        check(&s, Some("eth0"), err(HostNetError::NoIpv4("eth0".into())));
        // The default route's interface has no IPv4: say so rather than pick another.
        check(&s, None, err(HostNetError::NoIpv4("eth0".into())));
        // Only secondaries (the kernel never leaves this state, but be strict).
        let s = snap(vec![addr(2, "10.0.0.5/24", true)], vec![]);
        check(&s, Some("eth0"), err(HostNetError::NoIpv4("eth0".into())));
        check(&s, None, err(HostNetError::NoDefaultRoute));
    }

    #[test]
    fn interfaces_lists_every_link_in_order() {
        let s = snap(
            vec![addr(3, "10.1.0.5/24", false), addr(3, "10.1.0.6/24", true)],
            vec![],
        );
        let got = interfaces(&s);
        let names: Vec<_> = got.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["lo", "eth0", "eth1"]);
        assert!(got[0].loopback);
        assert_eq!(got[0].ipv4, vec![net("127.0.0.1/8")]);
        assert!(got[1].ipv4.is_empty());
        assert_eq!(got[2].ipv4, vec![net("10.1.0.5/24"), net("10.1.0.6/24")]);
    }
}

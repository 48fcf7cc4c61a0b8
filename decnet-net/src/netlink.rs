//! Reading the kernel's links, IPv4 addresses and IPv4 routes over rtnetlink, and turning the
//! messages into the plain records of [`crate::select`].

use std::net::{IpAddr, Ipv4Addr};

use decnet_core::traits::{HostNetError, HostNetwork, InterfaceInfo, LocalNetFacts};
use futures_util::TryStreamExt;
use ipnet::Ipv4Net;
use netlink_packet_route::{
    address::{AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage},
    link::{LinkAttribute, LinkFlags, LinkMessage},
    route::{RouteAddress, RouteAttribute, RouteMessage, RouteType},
    AddressFamily,
};
use rtnetlink::{Handle, RouteMessageBuilder};

use crate::select::{self, AddrRecord, LinkRecord, NetSnapshot, RouteRecord};

/// [`HostNetwork`] backed by the kernel: every call opens a fresh rtnetlink socket in the calling
/// task's network namespace, dumps links, IPv4 addresses and IPv4 routes, and closes it.
///
/// Must be called from within a tokio runtime with I/O enabled.
#[derive(Debug, Clone, Copy, Default)]
pub struct NetlinkHostNetwork;

impl NetlinkHostNetwork {
    pub fn new() -> Self {
        Self
    }

    /// One consistent-enough read of links, IPv4 addresses and IPv4 routes.
    pub async fn snapshot(&self) -> Result<NetSnapshot, HostNetError> {
        read_snapshot().await
    }
}

#[async_trait::async_trait]
impl HostNetwork for NetlinkHostNetwork {
    async fn interfaces(&self) -> Result<Vec<InterfaceInfo>, HostNetError> {
        Ok(select::interfaces(&read_snapshot().await?))
    }

    async fn facts<'a>(&self, interface: Option<&'a str>) -> Result<LocalNetFacts, HostNetError> {
        let snap = read_snapshot().await?;
        let facts = select::facts(&snap, interface)?;
        tracing::debug!(
            interface = %facts.interface,
            subnet = %facts.subnet,
            host_ip = %facts.host_ip,
            gateway = ?facts.gateway,
            "host network facts"
        );
        Ok(facts)
    }
}

/// Open an rtnetlink connection and drive it on the current tokio runtime.
///
/// The returned guard aborts the connection task when dropped.
pub(crate) fn connect() -> std::io::Result<(Handle, ConnectionGuard)> {
    let (connection, handle, _messages) = rtnetlink::new_connection()?;
    Ok((handle, ConnectionGuard(tokio::spawn(connection))))
}

/// Aborts the rtnetlink connection task on drop.
#[derive(Debug)]
pub(crate) struct ConnectionGuard(tokio::task::JoinHandle<()>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn nl_err(what: &str) -> impl Fn(rtnetlink::Error) -> HostNetError + '_ {
    move |e| HostNetError::netlink(what, e)
}

async fn read_snapshot() -> Result<NetSnapshot, HostNetError> {
    let (handle, _guard) =
        connect().map_err(|e| HostNetError::netlink("open rtnetlink socket", e))?;

    let links: Vec<LinkMessage> = handle
        .link()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(nl_err("dump links"))?;

    let mut addr_req = handle.address().get();
    addr_req.message_mut().header.family = AddressFamily::Inet;
    let addrs: Vec<AddressMessage> = addr_req
        .execute()
        .try_collect()
        .await
        .map_err(nl_err("dump IPv4 addresses"))?;

    let routes: Vec<RouteMessage> = handle
        .route()
        .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
        .execute()
        .try_collect()
        .await
        .map_err(nl_err("dump IPv4 routes"))?;

    Ok(NetSnapshot {
        links: links.iter().map(link_record).collect(),
        addrs: addrs.iter().filter_map(addr_record).collect(),
        routes: routes.iter().flat_map(route_records).collect(),
    })
}

/// A link message as a [`LinkRecord`]. A link without `IFLA_IFNAME` gets an empty name.
pub(crate) fn link_record(msg: &LinkMessage) -> LinkRecord {
    let mut name = String::new();
    let mut mac = None;
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(n) => name.clone_from(n),
            LinkAttribute::Address(bytes) => {
                mac = <[u8; 6]>::try_from(bytes.as_slice())
                    .ok()
                    .filter(|m| m.iter().any(|b| *b != 0));
            }
            _ => {}
        }
    }
    LinkRecord {
        index: msg.header.index,
        name,
        up: msg.header.flags.contains(LinkFlags::Up),
        loopback: msg.header.flags.contains(LinkFlags::Loopback),
        mac,
    }
}

/// An IPv4 address message as an [`AddrRecord`]; `None` for other families or malformed ones.
///
/// The local address is `IFA_LOCAL` (on point-to-point links `IFA_ADDRESS` is the peer), else
/// `IFA_ADDRESS`. Secondary is `IFA_F_SECONDARY` in the header's 8-bit flags or in the 32-bit
/// `IFA_FLAGS` attribute.
pub(crate) fn addr_record(msg: &AddressMessage) -> Option<AddrRecord> {
    if msg.header.family != AddressFamily::Inet {
        return None;
    }
    let mut local = None;
    let mut address = None;
    let mut secondary = msg.header.flags.contains(AddressHeaderFlags::Secondary);
    for attr in &msg.attributes {
        match attr {
            AddressAttribute::Local(IpAddr::V4(a)) => local = Some(*a),
            AddressAttribute::Address(IpAddr::V4(a)) => address = Some(*a),
            AddressAttribute::Flags(f) => secondary |= f.contains(AddressFlags::Secondary),
            _ => {}
        }
    }
    let addr = Ipv4Net::new(local.or(address)?, msg.header.prefix_len).ok()?;
    Some(AddrRecord {
        index: msg.header.index,
        addr,
        secondary,
    })
}

/// An IPv4 route message as [`RouteRecord`]s: one per next hop (a multipath route gives one
/// record per `RTA_MULTIPATH` entry, each with its own interface and gateway).
pub(crate) fn route_records(msg: &RouteMessage) -> Vec<RouteRecord> {
    if msg.header.address_family != AddressFamily::Inet {
        return Vec::new();
    }
    let mut dst_addr = Ipv4Addr::UNSPECIFIED;
    let mut gateway = None;
    let mut oif = None;
    let mut metric = 0;
    let mut table = u32::from(msg.header.table);
    let mut multipath = None;
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::Destination(RouteAddress::Inet(a)) => dst_addr = *a,
            RouteAttribute::Gateway(RouteAddress::Inet(a)) => gateway = Some(*a),
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::Priority(p) => metric = *p,
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::MultiPath(hops) => multipath = Some(hops),
            _ => {}
        }
    }
    let Ok(dst) = Ipv4Net::new(dst_addr, msg.header.destination_prefix_length) else {
        return Vec::new();
    };
    let base = RouteRecord {
        dst,
        gateway,
        oif,
        metric,
        table,
        unicast: msg.header.kind == RouteType::Unicast,
    };
    match multipath {
        None => vec![base],
        Some(hops) => hops
            .iter()
            .map(|hop| RouteRecord {
                oif: Some(hop.interface_index),
                gateway: hop.attributes.iter().find_map(|a| match a {
                    RouteAttribute::Gateway(RouteAddress::Inet(g)) => Some(*g),
                    _ => None,
                }),
                ..base
            })
            .collect(),
    }
}

// Kernel errno values as netlink reports them (negated in the message).
pub(crate) const EPERM: i32 = 1;
pub(crate) const ENOENT: i32 = 2;
pub(crate) const ESRCH: i32 = 3;
pub(crate) const EEXIST: i32 = 17;
pub(crate) const ENODEV: i32 = 19;
pub(crate) const EADDRNOTAVAIL: i32 = 99;

/// The errno of a kernel error reply, positive.
pub(crate) fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(msg) => msg.code.map(|c| -c.get()),
        _ => None,
    }
}

/// The link named `name`, or `None` when there is none.
pub(crate) async fn find_link(
    handle: &rtnetlink::Handle,
    name: &str,
) -> Result<Option<netlink_packet_route::link::LinkMessage>, rtnetlink::Error> {
    use futures_util::TryStreamExt;
    let res = handle
        .link()
        .get()
        .match_name(name.to_owned())
        .execute()
        .try_next()
        .await;
    match res {
        Ok(link) => Ok(link),
        Err(e) if errno(&e) == Some(ENODEV) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use netlink_packet_route::route::RouteNextHop;

    use super::*;
    use crate::select::MAIN_TABLE;

    fn v4_addr_msg(index: u32, local: [u8; 4], prefix: u8) -> AddressMessage {
        let mut msg = AddressMessage::default();
        msg.header.family = AddressFamily::Inet;
        msg.header.index = index;
        msg.header.prefix_len = prefix;
        msg.attributes
            .push(AddressAttribute::Local(IpAddr::from(local)));
        msg.attributes
            .push(AddressAttribute::Address(IpAddr::from(local)));
        msg
    }

    #[test]
    fn secondary_from_header_or_attribute() {
        let plain = v4_addr_msg(2, [10, 0, 0, 5], 24);
        let rec = addr_record(&plain).expect("ipv4 record");
        assert_eq!(rec.addr, "10.0.0.5/24".parse::<Ipv4Net>().expect("net"));
        assert!(!rec.secondary);

        let mut header = plain.clone();
        header.header.flags = AddressHeaderFlags::Secondary;
        assert!(addr_record(&header).expect("record").secondary);

        let mut attr = plain.clone();
        attr.attributes.push(AddressAttribute::Flags(
            AddressFlags::Secondary | AddressFlags::Permanent,
        ));
        assert!(addr_record(&attr).expect("record").secondary);
    }

    #[test]
    fn point_to_point_uses_local_not_peer() {
        let mut msg = AddressMessage::default();
        msg.header.family = AddressFamily::Inet;
        msg.header.prefix_len = 32;
        msg.attributes
            .push(AddressAttribute::Address(IpAddr::from([10, 8, 0, 1])));
        msg.attributes
            .push(AddressAttribute::Local(IpAddr::from([10, 8, 0, 2])));
        let rec = addr_record(&msg).expect("record");
        assert_eq!(rec.addr.addr(), Ipv4Addr::new(10, 8, 0, 2));
    }

    #[test]
    fn ipv6_and_bad_prefix_are_dropped() {
        let mut v6 = AddressMessage::default();
        v6.header.family = AddressFamily::Inet6;
        assert_eq!(addr_record(&v6), None);
        assert_eq!(addr_record(&v4_addr_msg(2, [10, 0, 0, 1], 33)), None);
    }

    #[test]
    fn default_route_and_multipath() {
        let single = RouteMessageBuilder::<Ipv4Addr>::new()
            .gateway(Ipv4Addr::new(192, 168, 1, 1))
            .output_interface(2)
            .priority(100)
            .build();
        let recs = route_records(&single);
        assert_eq!(
            recs,
            vec![RouteRecord {
                dst: "0.0.0.0/0".parse().expect("net"),
                gateway: Some(Ipv4Addr::new(192, 168, 1, 1)),
                oif: Some(2),
                metric: 100,
                table: MAIN_TABLE,
                unicast: true,
            }]
        );

        let hop = |oif: u32, gw: [u8; 4]| {
            let mut h = RouteNextHop::default();
            h.interface_index = oif;
            h.attributes
                .push(RouteAttribute::Gateway(RouteAddress::Inet(gw.into())));
            h
        };
        let multi = RouteMessageBuilder::<Ipv4Addr>::new()
            .multipath(vec![hop(2, [10, 0, 0, 1]), hop(3, [10, 1, 0, 1])])
            .build();
        let recs = route_records(&multi);
        assert_eq!(recs.len(), 2);
        assert_eq!(
            (recs[1].oif, recs[1].gateway),
            (Some(3), Some(Ipv4Addr::new(10, 1, 0, 1)))
        );
    }

    #[test]
    fn link_flags_and_mac() {
        let mut msg = LinkMessage::default();
        msg.header.index = 1;
        msg.header.flags = LinkFlags::Up | LinkFlags::Loopback;
        msg.attributes.push(LinkAttribute::IfName("lo".into()));
        msg.attributes.push(LinkAttribute::Address(vec![0; 6]));
        let rec = link_record(&msg);
        assert_eq!(
            rec,
            LinkRecord {
                index: 1,
                name: "lo".into(),
                up: true,
                loopback: true,
                mac: None
            }
        );
        msg.attributes
            .push(LinkAttribute::Address(vec![2, 0x42, 0xac, 0x11, 0, 2]));
        assert_eq!(link_record(&msg).mac, Some([2, 0x42, 0xac, 0x11, 0, 2]));
    }
}

//! The host-side helper link ("hairpin fix", reference §2.7): a macvlan child of the deckies'
//! parent interface through which the host reaches its own macvlan deckies.
//!
//! Everything goes over rtnetlink; nothing shells out to `ip`. The operations are idempotent:
//! running [`ensure_host_macvlan`] twice, or [`remove_host_link`] on a link that is already gone,
//! succeeds.

use std::net::{IpAddr, Ipv4Addr};

use futures_util::TryStreamExt;
use ipnet::Ipv4Net;
use netlink_packet_route::{
    address::AddressMessage,
    link::{InfoData, InfoKind, InfoMacVlan, LinkAttribute, LinkInfo, LinkMessage, MacVlanMode},
    route::{RouteProtocol, RouteScope},
    AddressFamily,
};
use rtnetlink::{Handle, LinkMacVlan, LinkUnspec, RouteMessageBuilder};

use crate::netlink::{
    self, addr_record, connect, errno, EADDRNOTAVAIL, EEXIST, ENODEV, EPERM, ESRCH,
};

/// Name of the host-side macvlan helper link (upstream `HOST_MACVLAN_IFACE`).
pub const HOST_MACVLAN_IFACE: &str = "decnet_macvlan0";

/// `CAP_NET_ADMIN`'s bit in the capability sets.
const CAP_NET_ADMIN: u32 = 12;

/// Errors from creating or removing host-side links.
#[derive(Debug, thiserror::Error)]
pub enum HostLinkError {
    #[error("interface {0:?} does not exist")]
    NoSuchInterface(String),
    #[error("{op}: operation not permitted (needs CAP_NET_ADMIN)")]
    PermissionDenied { op: String },
    #[error("open rtnetlink socket: {0}")]
    Socket(#[source] std::io::Error),
    #[error("{op}: {source}")]
    Netlink {
        op: String,
        #[source]
        source: rtnetlink::Error,
    },
}

/// Whether this process may change the network configuration: `CapEff` in `/proc/self/status`
/// has bit 12 (`CAP_NET_ADMIN`). Being root is not enough when capabilities were dropped, and
/// is not needed when the capability was granted, so the effective set is the truth.
pub fn has_net_admin() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| cap_eff_has(&status, CAP_NET_ADMIN))
        .unwrap_or(false)
}

/// Whether the `CapEff:` line of a `/proc/<pid>/status` text has capability `bit`; `None` when
/// the line is missing or not hexadecimal.
pub fn cap_eff_has(status: &str, bit: u32) -> Option<bool> {
    let hex = status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))?
        .trim();
    let mask = u64::from_str_radix(hex, 16).ok()?;
    Some(bit < 64 && mask & (1u64 << bit) != 0)
}

/// The netlink errno of `e`, positive (`EPERM` is 1), if it is a kernel error reply.
fn op_err(op: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> HostLinkError {
    move |source| {
        let op = op.into();
        if errno(&source) == Some(EPERM) {
            HostLinkError::PermissionDenied { op }
        } else {
            HostLinkError::Netlink { op, source }
        }
    }
}

/// Ignore the kernel errors in `benign` (e.g. "exists" on add, "not found" on delete).
fn tolerate(res: Result<(), rtnetlink::Error>, benign: &[i32]) -> Result<(), rtnetlink::Error> {
    match res {
        Err(e) if errno(&e).is_some_and(|n| benign.contains(&n)) => Ok(()),
        other => other,
    }
}

/// The link called `name`, or `None` if there is none.
async fn find_link(handle: &Handle, name: &str) -> Result<Option<LinkMessage>, HostLinkError> {
    netlink::find_link(handle, name)
        .await
        .map_err(op_err(format!("get link {name}")))
}

/// Whether `link` is a bridge-mode macvlan whose parent is `parent_index`.
fn is_bridge_macvlan_of(link: &LinkMessage, parent_index: u32) -> bool {
    let mut parent_ok = false;
    let mut kind_ok = false;
    let mut mode_ok = false;
    for attr in &link.attributes {
        match attr {
            LinkAttribute::Link(p) => parent_ok = *p == parent_index,
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    match info {
                        LinkInfo::Kind(InfoKind::MacVlan) => kind_ok = true,
                        LinkInfo::Data(InfoData::MacVlan(data)) => {
                            mode_ok = data
                                .iter()
                                .any(|d| matches!(d, InfoMacVlan::Mode(MacVlanMode::Bridge)));
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    parent_ok && kind_ok && mode_ok
}

/// Make sure the host-side helper link exists and routes `route` to the deckies:
///
/// 1. a macvlan link `name` in bridge mode on `parent` (an existing `name` that is not exactly
///    that is deleted and recreated);
/// 2. `host_ip/32` on it, and no other IPv4 address (stale ones from an earlier host IP go);
/// 3. the link up;
/// 4. a link-scope route to each of `routes` (host bits cleared) through it, replacing any
///    existing route to the same prefix. Deployers pass one /32 per decky, so the host's own
///    routes to the rest of the LAN (gateway included) are never taken over.
///
/// Needs `CAP_NET_ADMIN`; without it the first change fails with
/// [`HostLinkError::PermissionDenied`]. Check [`has_net_admin`] before starting a deploy so
/// nothing is half-done.
pub async fn ensure_host_macvlan(
    parent: &str,
    name: &str,
    host_ip: Ipv4Addr,
    routes: &[Ipv4Net],
) -> Result<(), HostLinkError> {
    let (handle, _guard) = connect().map_err(HostLinkError::Socket)?;

    let parent_index = find_link(&handle, parent)
        .await?
        .ok_or_else(|| HostLinkError::NoSuchInterface(parent.to_owned()))?
        .header
        .index;

    let existing = find_link(&handle, name).await?;
    let reuse = existing
        .as_ref()
        .is_some_and(|l| is_bridge_macvlan_of(l, parent_index));
    if let (Some(link), false) = (&existing, reuse) {
        tracing::info!(link = name, parent, "replacing mismatched host-side link");
        tolerate(
            handle.link().del(link.header.index).execute().await,
            &[ENODEV],
        )
        .map_err(op_err(format!("delete link {name}")))?;
    }
    if !reuse {
        let msg = LinkMacVlan::new(name, parent_index, MacVlanMode::Bridge).build();
        tolerate(handle.link().add(msg).execute().await, &[EEXIST])
            .map_err(op_err(format!("add macvlan {name} on {parent}")))?;
    }
    let index = find_link(&handle, name)
        .await?
        .ok_or_else(|| HostLinkError::NoSuchInterface(name.to_owned()))?
        .header
        .index;

    tolerate(
        handle
            .address()
            .add(index, IpAddr::V4(host_ip), 32)
            .execute()
            .await,
        &[EEXIST],
    )
    .map_err(op_err(format!("add address {host_ip}/32 to {name}")))?;
    remove_stale_ipv4(&handle, name, index, host_ip).await?;

    handle
        .link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(op_err(format!("set {name} up")))?;

    for route in routes {
        let route = route.trunc();
        let msg = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(route.network(), route.prefix_len())
            .output_interface(index)
            .scope(RouteScope::Link)
            .protocol(RouteProtocol::Boot)
            .build();
        handle
            .route()
            .add(msg)
            .replace()
            .execute()
            .await
            .map_err(op_err(format!("add route {route} dev {name}")))?;
    }

    tracing::info!(link = name, parent, %host_ip, routes = routes.len(), "host-side macvlan ready");
    Ok(())
}

/// Delete every IPv4 address on link `index` other than `keep/32` (left over from a run with
/// another host IP), so the helper converges on exactly one address.
async fn remove_stale_ipv4(
    handle: &Handle,
    name: &str,
    index: u32,
    keep: Ipv4Addr,
) -> Result<(), HostLinkError> {
    let mut req = handle.address().get().set_link_index_filter(index);
    req.message_mut().header.family = AddressFamily::Inet;
    let addrs: Vec<AddressMessage> = req
        .execute()
        .try_collect()
        .await
        .map_err(op_err(format!("list addresses of {name}")))?;
    for msg in addrs {
        let Some(rec) = addr_record(&msg) else {
            continue;
        };
        if rec.addr.addr() == keep && rec.addr.prefix_len() == 32 {
            continue;
        }
        tracing::info!(link = name, addr = %rec.addr, "removing stale address");
        tolerate(handle.address().del(msg).execute().await, &[EADDRNOTAVAIL])
            .map_err(op_err(format!("delete address {} from {name}", rec.addr)))?;
    }
    Ok(())
}

/// Remove the routes to `routes` through link `name`, then the link itself (which takes any
/// other route through it along). A link or route that is already gone is not an error.
pub async fn remove_host_link(name: &str, routes: &[Ipv4Net]) -> Result<(), HostLinkError> {
    let (handle, _guard) = connect().map_err(HostLinkError::Socket)?;
    let Some(link) = find_link(&handle, name).await? else {
        return Ok(());
    };
    let index = link.header.index;

    for route in routes {
        let route = route.trunc();
        let msg = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(route.network(), route.prefix_len())
            .output_interface(index)
            .scope(RouteScope::NoWhere)
            .protocol(RouteProtocol::Unspec)
            .build();
        tolerate(
            handle.route().del(msg).execute().await,
            &[ESRCH, EADDRNOTAVAIL],
        )
        .map_err(op_err(format!("delete route {route} dev {name}")))?;
    }

    tolerate(handle.link().del(index).execute().await, &[ENODEV])
        .map_err(op_err(format!("delete link {name}")))?;
    tracing::info!(link = name, "host-side link removed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_eff_parsing() {
        let status = |cap: &str| format!("Name:\tx\nCapPrm:\t{cap}\nCapEff:\t{cap}\nCapBnd:\t0\n");
        assert_eq!(cap_eff_has(&status("000001ffffffffff"), 12), Some(true));
        assert_eq!(cap_eff_has(&status("0000000000001000"), 12), Some(true));
        assert_eq!(cap_eff_has(&status("0000000000000fff"), 12), Some(false));
        // Root with every capability dropped.
        assert_eq!(cap_eff_has(&status("0000000000000000"), 12), Some(false));
        assert_eq!(cap_eff_has("Name:\tx\n", 12), None);
        assert_eq!(cap_eff_has("CapEff:\tzz\n", 12), None);
    }
}

//! Host network facts from the kernel, and the host-side helper link.
//!
//! # What is read, and from where
//!
//! Everything comes from the Linux kernel over an rtnetlink (`NETLINK_ROUTE`) socket opened in
//! the caller's network namespace, through the `rtnetlink` crate (pinned, see `Cargo.toml`).
//! Nothing shells out to `ip` or parses its output.
//!
//! * **Links** (`RTM_GETLINK` dump): index, name, `IFF_UP`, `IFF_LOOPBACK`, hardware address.
//! * **IPv4 addresses** (`RTM_GETADDR` dump, `AF_INET`): interface index, local address
//!   (`IFA_LOCAL`, else `IFA_ADDRESS`), prefix length, and whether `IFA_F_SECONDARY` is set —
//!   the primary/secondary distinction that interface-listing crates such as `pnet_datalink`
//!   cannot make.
//! * **IPv4 routes** (`RTM_GETROUTE` dump, `AF_INET`): destination prefix, gateway, output
//!   interface, metric (`RTA_PRIORITY`), table and type; multipath routes are split per next hop.
//!
//! [`select`] then decides, without I/O, from a [`select::NetSnapshot`]: the host IP is the
//! first *primary* IPv4 address of the interface, the subnet is its network, and the gateway is
//! the default route leaving *through that interface* (lowest metric). The upstream tool took the
//! first `inet` line (maybe a secondary) and the first default route of any interface.
//!
//! [`NetlinkHostNetwork`] implements [`decnet_core::traits::HostNetwork`] on top of that.
//!
//! # What is changed
//!
//! [`ensure_host_macvlan`] / [`remove_host_link`] create and delete the host-side macvlan helper
//! (`decnet_macvlan0`: macvlan in bridge mode on the parent, the host's address as /32, up, and a
//! route to the deckies' range), also over rtnetlink. They need `CAP_NET_ADMIN`, which
//! [`has_net_admin`] reads from `CapEff` in `/proc/self/status`.
//!
//! # The lab LAN
//!
//! [`lab`] builds an isolated LAN for demos and end-to-end tests (a veth pair whose host end is
//! the deckies' macvlan parent and whose other end is an "attacker" in its own named network
//! namespace), and probes the deckies from that attacker (TCP greeting, ICMP TTL, ARP entry).

pub mod hostlink;
pub mod lab;
mod netlink;
pub mod select;

pub use hostlink::{
    cap_eff_has, ensure_host_macvlan, has_net_admin, remove_host_link, HostLinkError,
    HOST_MACVLAN_IFACE,
};
pub use netlink::NetlinkHostNetwork;

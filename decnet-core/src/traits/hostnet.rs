//! Where host network facts come from. `decnet-net` implements this over netlink; tests pass
//! fixed facts. Pure planners (`relocalize`, the fleet builders) take [`LocalNetFacts`] as an
//! argument and never ask the kernel themselves.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::agent::BoxError;

/// What a host knows about the interface its deckies use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalNetFacts {
    /// Interface name, e.g. `eth0`: the macvlan/ipvlan parent.
    pub interface: String,
    /// The interface's primary IPv4 network (host bits cleared).
    pub subnet: Ipv4Net,
    /// The interface's primary IPv4 address.
    pub host_ip: Ipv4Addr,
    /// The default route's gateway *through this interface*, if there is one.
    pub gateway: Option<Ipv4Addr>,
}

/// One interface as the kernel lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceInfo {
    /// The kernel's interface index (`ifindex`).
    pub index: u32,
    /// The interface name (`eth0`, `wlan0`).
    pub name: String,
    /// Whether the interface is administratively up (`IFF_UP`).
    pub up: bool,
    /// Whether it is a loopback interface (`IFF_LOOPBACK`).
    pub loopback: bool,
    /// Its hardware address, when it has an Ethernet one.
    pub mac: Option<[u8; 6]>,
    /// IPv4 addresses with prefix, primary first.
    pub ipv4: Vec<Ipv4Net>,
}

/// Errors from reading host network facts, by kind.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostNetError {
    /// The interface asked for does not exist; the text is its name.
    #[error("interface {0:?} does not exist")]
    NoSuchInterface(String),
    /// The interface has no IPv4 address to put deckies next to; the text is its name.
    #[error("interface {0:?} has no IPv4 address")]
    NoIpv4(String),
    /// No interface was named and the host has no IPv4 default route to pick one by.
    #[error("no default route: pass --interface (and --subnet/--gateway/--host-ip)")]
    NoDefaultRoute,
    /// Talking to the kernel failed.
    #[error("netlink: {message}")]
    Netlink {
        /// What failed, with the netlink error.
        message: String,
        /// The underlying error, when there is one.
        #[source]
        source: Option<BoxError>,
    },
}

impl HostNetError {
    /// [`HostNetError::Netlink`] while doing `what`, caused by `e`.
    pub fn netlink(what: &str, e: impl std::error::Error + Send + Sync + 'static) -> Self {
        HostNetError::Netlink {
            message: format!("{what}: {e}"),
            source: Some(Box::new(e)),
        }
    }
}

/// Source of host network facts.
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
#[async_trait::async_trait]
pub trait HostNetwork: Send + Sync {
    /// Every interface with its IPv4 addresses (primary first).
    async fn interfaces(&self) -> Result<Vec<InterfaceInfo>, HostNetError>;

    /// Facts for `interface`, or for the interface of the default route when `None`.
    async fn facts<'a>(&self, interface: Option<&'a str>) -> Result<LocalNetFacts, HostNetError>;
}

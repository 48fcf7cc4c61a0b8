//! IP allocation for deckies: the original's `allocate_ips` semantics with its bugs fixed.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::model::Subnet;

/// What to allocate from.
#[derive(Debug, Clone)]
pub struct AllocRequest<'a> {
    /// The LAN the deckies' addresses come from.
    pub subnet: Subnet,
    /// Never handed out.
    pub gateway: Option<Ipv4Addr>,
    /// The host's own address: never handed out.
    pub host_ip: Option<Ipv4Addr>,
    /// Start here (inclusive) instead of at the subnet's first host.
    pub ip_start: Option<Ipv4Addr>,
    /// Further addresses in use (existing deckies, explicit IPs).
    pub reserved: &'a BTreeSet<Ipv4Addr>,
}

/// Why addresses could not be allocated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    /// `ip_start` lies outside the subnet.
    #[error("ip_start: {ip_start} is not inside subnet {subnet}")]
    StartOutsideSubnet {
        /// The start address asked for.
        ip_start: Ipv4Addr,
        /// The subnet it should have been in.
        subnet: Subnet,
    },
    /// Fewer free addresses than asked for; nothing is allocated.
    #[error("not enough free IPs in {subnet}: {count} wanted, {found} free")]
    Exhausted {
        /// The subnet allocated from.
        subnet: Subnet,
        /// How many addresses were asked for.
        count: usize,
        /// How many free ones there were (from `ip_start` on, when given).
        found: usize,
    },
}

/// The subnet's host addresses in ascending order: all but the network and broadcast
/// addresses, except /31 and /32 where every address is a host (RFC 3021; the original could
/// never allocate from them).
pub fn host_range(subnet: &Subnet) -> std::ops::RangeInclusive<u32> {
    let net = u32::from(subnet.network());
    let bcast = u32::from(subnet.broadcast());
    if subnet.prefix_len() >= 31 {
        net..=bcast
    } else {
        net + 1..=bcast - 1
    }
}

/// Allocates `count` free addresses in ascending order, skipping the gateway, the host's own
/// address and `reserved`, starting at `ip_start` when given. `count == 0` gives none (the
/// original returned the whole pool).
///
/// ```
/// use std::collections::BTreeSet;
///
/// use decnet_core::model::Subnet;
/// use decnet_core::plan::{allocate_ips, AllocError, AllocRequest};
///
/// let reserved = BTreeSet::from(["192.168.1.3".parse().unwrap()]);
/// let req = AllocRequest {
///     subnet: Subnet::parse("subnet", "192.168.1.0/29").unwrap(),
///     gateway: Some("192.168.1.1".parse().unwrap()),
///     host_ip: Some("192.168.1.2".parse().unwrap()),
///     ip_start: None,
///     reserved: &reserved,
/// };
/// // .1 is the gateway, .2 the host, .3 taken: the first free addresses are .4 and .5.
/// let ips: Vec<String> = allocate_ips(&req, 2).unwrap().iter().map(|ip| ip.to_string()).collect();
/// assert_eq!(ips, ["192.168.1.4", "192.168.1.5"]);
/// // A /29 has six host addresses: three are taken, so four deckies do not fit.
/// assert!(matches!(allocate_ips(&req, 4), Err(AllocError::Exhausted { found: 3, .. })));
/// ```
pub fn allocate_ips(req: &AllocRequest<'_>, count: usize) -> Result<Vec<Ipv4Addr>, AllocError> {
    if let Some(start) = req.ip_start {
        if !req.subnet.contains(start) {
            return Err(AllocError::StartOutsideSubnet {
                ip_start: start,
                subnet: req.subnet,
            });
        }
    }
    if count == 0 {
        return Ok(vec![]);
    }
    let range = host_range(&req.subnet);
    let first = req
        .ip_start
        .map(u32::from)
        .map_or(*range.start(), |s| s.max(*range.start()));
    let mut out = Vec::with_capacity(count.min(1 << 16));
    for n in first..=*range.end() {
        let ip = Ipv4Addr::from(n);
        if Some(ip) == req.gateway || Some(ip) == req.host_ip || req.reserved.contains(&ip) {
            continue;
        }
        out.push(ip);
        if out.len() == count {
            return Ok(out);
        }
    }
    Err(AllocError::Exhausted {
        subnet: req.subnet,
        count,
        found: out.len(),
    })
}

/// The tightest aligned CIDR covering every address in `ips` (min to max); `None` when empty.
/// Used as Docker's `ip_range` so the daemon's own allocator stays inside the deckies' span.
pub fn ips_to_range(ips: &[Ipv4Addr]) -> Option<Ipv4Net> {
    let min = u32::from(*ips.iter().min()?);
    let max = u32::from(*ips.iter().max()?);
    let diff = min ^ max;
    let prefix = (diff.leading_zeros()) as u8;
    let net = Ipv4Net::new(Ipv4Addr::from(min), prefix).ok()?;
    Some(net.trunc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn subnet(s: &str) -> Subnet {
        Subnet::parse("subnet", s).unwrap()
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn alloc(
        sub: &str,
        gw: Option<&str>,
        host: Option<&str>,
        start: Option<&str>,
        reserved: &[&str],
        count: usize,
    ) -> Result<Vec<String>, AllocError> {
        let reserved: BTreeSet<Ipv4Addr> = reserved.iter().map(|s| ip(s)).collect();
        let req = AllocRequest {
            subnet: subnet(sub),
            gateway: gw.map(ip),
            host_ip: host.map(ip),
            ip_start: start.map(ip),
            reserved: &reserved,
        };
        allocate_ips(&req, count).map(|v| v.iter().map(|i| i.to_string()).collect())
    }

    #[test]
    fn table() {
        let gw = Some("192.168.1.1");
        let host = Some("192.168.1.2");
        assert_eq!(
            alloc("192.168.1.0/24", gw, host, None, &[], 3).unwrap(),
            ["192.168.1.3", "192.168.1.4", "192.168.1.5"]
        );
        assert_eq!(
            alloc(
                "10.0.0.0/30",
                Some("10.0.0.1"),
                Some("10.0.0.3"),
                None,
                &[],
                1
            )
            .unwrap(),
            ["10.0.0.2"]
        );
        assert_eq!(
            alloc("192.168.1.0/24", gw, host, Some("192.168.1.100"), &[], 2).unwrap(),
            ["192.168.1.100", "192.168.1.101"]
        );
        assert_eq!(
            alloc("192.168.1.0/24", gw, host, Some("192.168.1.0"), &[], 1).unwrap(),
            ["192.168.1.3"]
        );
        assert_eq!(
            alloc(
                "192.168.1.0/24",
                gw,
                host,
                None,
                &["192.168.1.3", "192.168.1.5"],
                2
            )
            .unwrap(),
            ["192.168.1.4", "192.168.1.6"]
        );
        assert_eq!(
            alloc("192.168.1.0/24", gw, host, None, &[], 0).unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(
            alloc("10.0.0.4/31", None, None, None, &[], 2).unwrap(),
            ["10.0.0.4", "10.0.0.5"]
        );
        assert_eq!(
            alloc("10.0.0.9/32", None, None, None, &[], 1).unwrap(),
            ["10.0.0.9"]
        );
    }

    #[test]
    fn errors_name_the_problem() {
        let e = alloc("10.0.0.0/30", Some("10.0.0.1"), None, None, &[], 3).unwrap_err();
        assert_eq!(
            e.to_string(),
            "not enough free IPs in 10.0.0.0/30: 3 wanted, 1 free"
        );
        let e = alloc("10.0.0.0/24", None, None, Some("10.0.1.1"), &[], 0).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ip_start: 10.0.1.1 is not inside subnet 10.0.0.0/24"
        );
    }

    #[test]
    fn ranges() {
        let r = |ips: &[&str]| {
            ips_to_range(&ips.iter().map(|s| ip(s)).collect::<Vec<_>>()).map(|n| n.to_string())
        };
        assert_eq!(r(&["192.168.1.100"]).unwrap(), "192.168.1.100/32");
        assert_eq!(
            r(&["192.168.1.119", "192.168.1.110"]).unwrap(),
            "192.168.1.96/27"
        );
        assert_eq!(
            r(&["192.168.1.10", "192.168.1.200"]).unwrap(),
            "192.168.1.0/24"
        );
        assert_eq!(r(&["10.0.0.2", "10.0.0.3"]).unwrap(), "10.0.0.2/31");
        assert_eq!(r(&[]), None);
        let all: Vec<Ipv4Addr> = (110..=119).map(|n| Ipv4Addr::new(192, 168, 1, n)).collect();
        let net = ips_to_range(&all).unwrap();
        assert!(all.iter().all(|i| net.contains(i)));
    }

    proptest! {
        #[test]
        fn allocation_properties(
            prefix in 20u8..=30,
            count in 0usize..300,
            reserved in proptest::collection::btree_set(0u32..4096, 0..50),
            start_off in proptest::option::of(0u32..4096),
        ) {
            let sub = Subnet::new(Ipv4Net::new(Ipv4Addr::new(10, 20, 0, 0), prefix).unwrap());
            let base = u32::from(sub.network());
            let size = 1u32 << (32 - prefix);
            let reserved: BTreeSet<Ipv4Addr> =
                reserved.into_iter().map(|o| Ipv4Addr::from(base + o % size)).collect();
            let req = AllocRequest {
                subnet: sub,
                gateway: Some(sub.first_host()),
                host_ip: Some(Ipv4Addr::from(base + 2)),
                ip_start: start_off.map(|o| Ipv4Addr::from(base + o % size)),
                reserved: &reserved,
            };
            let first = allocate_ips(&req, count);
            // Deterministic.
            prop_assert_eq!(&first, &allocate_ips(&req, count));
            match first {
                Ok(ips) => {
                    prop_assert_eq!(ips.len(), count);
                    prop_assert!(ips.windows(2).all(|w| w[0] < w[1]), "ascending, no duplicates");
                    for i in &ips {
                        prop_assert!(sub.contains(*i));
                        prop_assert!(*i != sub.network() && *i != sub.broadcast());
                        prop_assert!(Some(*i) != req.gateway && Some(*i) != req.host_ip);
                        prop_assert!(!reserved.contains(i));
                        if let Some(s) = req.ip_start { prop_assert!(*i >= s); }
                    }
                }
                Err(AllocError::Exhausted { found, count: c, .. }) => {
                    prop_assert_eq!(c, count);
                    prop_assert!(found < count);
                }
                Err(e) => prop_assert!(false, "unexpected {e}"),
            }
        }
    }
}

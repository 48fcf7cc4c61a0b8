//! `relocalize`: fit a swarm shard planned on the master's LAN to a worker's own LAN.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use super::alloc::{allocate_ips, AllocError, AllocRequest};
use crate::model::{DecnetConfig, Mode, Subnet};
use crate::traits::LocalNetFacts;

/// The gateway a worker's deckies use: the interface's default route, else the config's
/// gateway when it lies in the local subnet, else the subnet's first host.
pub fn local_gateway(facts: &LocalNetFacts, config_gateway: Ipv4Addr) -> Ipv4Addr {
    let subnet = Subnet::new(facts.subnet);
    match facts.gateway {
        Some(gw) if subnet.contains(gw) => gw,
        _ if subnet.contains(config_gateway) => config_gateway,
        _ => subnet.first_host(),
    }
}

/// Fits `config` to this worker. Unihost configs pass through untouched.
///
/// Interface, subnet and gateway become the local ones. When the master planned on the same
/// subnet the IPs are kept. Otherwise deckies already on this worker (`current`) keep their
/// addresses, and new ones get free local addresses, ascending, avoiding every address in use
/// (current deckies, the host, the gateway). Pure: the input is not changed, and applying it
/// twice gives the same result.
///
/// ```
/// use decnet_core::model::DecnetConfig;
/// use decnet_core::plan::relocalize;
/// use decnet_core::traits::LocalNetFacts;
///
/// // The shard as the master planned it, on the master's LAN (10.0.0.0/24).
/// let shard: DecnetConfig = serde_json::from_str(
///     r#"{"mode": "swarm", "interface": "eth0", "subnet": "10.0.0.0/24",
///         "gateway": "10.0.0.1", "deckies": [
///           {"name": "web", "ip": "10.0.0.10", "services": ["http"], "distro": "debian",
///            "base_image": "debian:bookworm-slim", "hostname": "SRV-WEB-42"}]}"#,
/// )
/// .unwrap();
/// // This worker sits on another LAN, with 192.168.5.1 as its default gateway.
/// let facts = LocalNetFacts {
///     interface: "enp1s0".into(),
///     subnet: "192.168.5.0/24".parse().unwrap(),
///     host_ip: "192.168.5.2".parse().unwrap(),
///     gateway: Some("192.168.5.1".parse().unwrap()),
/// };
/// let local = relocalize(&shard, &facts, None).unwrap();
/// assert_eq!(local.interface, "enp1s0");
/// assert_eq!(local.gateway.to_string(), "192.168.5.1");
/// // The new decky takes the first free local address: not the gateway, not the host.
/// assert_eq!(local.deckies[0].ip.to_string(), "192.168.5.3");
/// // Pure and idempotent: relocalizing the result again changes nothing.
/// assert_eq!(relocalize(&local, &facts, Some(&local)).unwrap(), local);
/// ```
pub fn relocalize(
    config: &DecnetConfig,
    facts: &LocalNetFacts,
    current: Option<&DecnetConfig>,
) -> Result<DecnetConfig, AllocError> {
    let mut out = config.clone();
    if config.mode != Mode::Swarm {
        return Ok(out);
    }
    let subnet = Subnet::new(facts.subnet);
    let gateway = local_gateway(facts, config.gateway);
    out.interface = facts.interface.clone();
    out.subnet = subnet;
    out.gateway = gateway;
    // Every current decky's address stays taken, including deckies this shard drops (their
    // containers may still hold the address); the allocator skips the host and gateway itself.
    let current_ips = current.iter().flat_map(|c| c.deckies.iter().map(|d| d.ip));
    if config.subnet == subnet {
        // The master's addresses stand, except one that is this worker's own or its gateway
        // (a master that did not know them): that decky moves to a free address.
        let clashing: Vec<usize> = out
            .deckies
            .iter()
            .enumerate()
            .filter(|(_, d)| d.ip == facts.host_ip || d.ip == gateway)
            .map(|(i, _)| i)
            .collect();
        let in_use = out
            .deckies
            .iter()
            .map(|d| d.ip)
            .chain(current_ips)
            .collect();
        assign_free(&mut out, &clashing, &in_use, facts.host_ip)?;
        return Ok(out);
    }

    let existing: BTreeMap<&str, Ipv4Addr> = current
        .map(|c| {
            c.deckies
                .iter()
                .filter(|d| subnet.contains(d.ip))
                .map(|d| (d.name.as_str(), d.ip))
                .collect()
        })
        .unwrap_or_default();
    let mut fresh = Vec::new();
    for (i, d) in out.deckies.iter_mut().enumerate() {
        match existing.get(d.name.as_str()) {
            Some(ip) => d.ip = *ip,
            None => fresh.push(i),
        }
    }
    let in_use = existing.values().copied().chain(current_ips).collect();
    assign_free(&mut out, &fresh, &in_use, facts.host_ip)?;
    Ok(out)
}

/// Gives the deckies at `indices` free addresses of `out`'s subnet, ascending, avoiding
/// `in_use`, the gateway and the host.
fn assign_free(
    out: &mut DecnetConfig,
    indices: &[usize],
    in_use: &BTreeSet<Ipv4Addr>,
    host_ip: Ipv4Addr,
) -> Result<(), AllocError> {
    if indices.is_empty() {
        return Ok(());
    }
    let req = AllocRequest {
        subnet: out.subnet,
        gateway: Some(out.gateway),
        host_ip: Some(host_ip),
        ip_start: None,
        reserved: in_use,
    };
    let ips = allocate_ips(&req, indices.len())?;
    for (&i, ip) in indices.iter().zip(ips) {
        out.deckies[i].ip = ip;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::fixtures;
    use ipnet::Ipv4Net;
    use proptest::prelude::*;

    fn config(mode: Mode, subnet: &str, gw: &str, deckies: &[(&str, &str)]) -> DecnetConfig {
        let deckies = deckies
            .iter()
            .map(|(n, ip)| fixtures::decky(n, ip.parse().unwrap(), &["ssh"]))
            .collect();
        fixtures::config(mode, subnet, gw, deckies)
    }

    fn facts(subnet: &str, host: &str, gw: Option<&str>) -> LocalNetFacts {
        LocalNetFacts {
            interface: "ens3".into(),
            subnet: subnet.parse().unwrap(),
            host_ip: host.parse().unwrap(),
            gateway: gw.map(|g| g.parse().unwrap()),
        }
    }

    fn ips(c: &DecnetConfig) -> Vec<String> {
        c.deckies.iter().map(|d| d.ip.to_string()).collect()
    }

    #[test]
    fn unihost_passes_through() {
        let c = config(
            Mode::Unihost,
            "192.168.1.0/24",
            "192.168.1.1",
            &[("a", "192.168.1.10")],
        );
        let f = facts("10.0.0.0/24", "10.0.0.5", Some("10.0.0.1"));
        assert_eq!(relocalize(&c, &f, None).unwrap(), c);
    }

    #[test]
    fn same_subnet_keeps_ips_and_swaps_interface() {
        let c = config(
            Mode::Swarm,
            "192.168.1.0/24",
            "192.168.1.1",
            &[("a", "192.168.1.10")],
        );
        let f = facts("192.168.1.0/24", "192.168.1.7", Some("192.168.1.254"));
        let r = relocalize(&c, &f, None).unwrap();
        assert_eq!(r.interface, "ens3");
        assert_eq!(r.gateway.to_string(), "192.168.1.254");
        assert_eq!(ips(&r), ["192.168.1.10"]);
    }

    #[test]
    fn same_subnet_never_gives_a_decky_the_workers_own_address_or_gateway() {
        let c = config(
            Mode::Swarm,
            "192.168.1.0/24",
            "192.168.1.254",
            &[
                ("a", "192.168.1.7"),
                ("b", "192.168.1.2"),
                ("c", "192.168.1.254"),
                ("d", "192.168.1.3"),
            ],
        );
        let current = config(
            Mode::Swarm,
            "192.168.1.0/24",
            "192.168.1.1",
            &[("old", "192.168.1.4")],
        );
        let f = facts("192.168.1.0/24", "192.168.1.7", Some("192.168.1.254"));
        let r = relocalize(&c, &f, Some(&current)).unwrap();
        // a had the host's address and c the gateway: both move to free addresses, past the
        // other deckies' and the current ones'.
        assert_eq!(
            ips(&r),
            ["192.168.1.1", "192.168.1.2", "192.168.1.5", "192.168.1.3"]
        );
        assert_eq!(relocalize(&r, &f, Some(&current)).unwrap(), r, "idempotent");
    }

    #[test]
    fn other_subnet_reallocates_avoiding_everything_in_use() {
        let c = config(
            Mode::Swarm,
            "192.168.1.0/24",
            "192.168.1.1",
            &[
                ("a", "192.168.1.10"),
                ("b", "192.168.1.11"),
                ("c", "192.168.1.12"),
            ],
        );
        // "b" already runs here on .3; "z" (not in the new shard) still holds .2.
        let current = config(
            Mode::Swarm,
            "10.0.0.0/24",
            "10.0.0.1",
            &[("b", "10.0.0.3"), ("z", "10.0.0.2")],
        );
        let f = facts("10.0.0.0/24", "10.0.0.4", Some("10.0.0.1"));
        let r = relocalize(&c, &f, Some(&current)).unwrap();
        assert_eq!(ips(&r), ["10.0.0.5", "10.0.0.3", "10.0.0.6"]);
        assert_eq!(r.subnet.to_string(), "10.0.0.0/24");
        // Names, services and the rest are kept; the input is untouched.
        assert_eq!(r.deckies[1].name.as_str(), "b");
        assert_eq!(ips(&c), ["192.168.1.10", "192.168.1.11", "192.168.1.12"]);
    }

    #[test]
    fn gateway_fallbacks() {
        let c = config(
            Mode::Swarm,
            "192.168.1.0/24",
            "10.0.0.254",
            &[("a", "192.168.1.10")],
        );
        // No default route on the pinned interface: the config's gateway if local…
        let r = relocalize(&c, &facts("10.0.0.0/24", "10.0.0.4", None), None).unwrap();
        assert_eq!(r.gateway.to_string(), "10.0.0.254");
        // …else the subnet's first host.
        let r = relocalize(&c, &facts("172.16.5.0/24", "172.16.5.9", None), None).unwrap();
        assert_eq!(r.gateway.to_string(), "172.16.5.1");
        assert_eq!(ips(&r), ["172.16.5.2"]);
    }

    #[test]
    fn exhaustion_is_an_error() {
        let c = config(
            Mode::Swarm,
            "192.168.1.0/24",
            "192.168.1.1",
            &[("a", "192.168.1.10"), ("b", "192.168.1.11")],
        );
        let e = relocalize(
            &c,
            &facts("10.0.0.0/30", "10.0.0.2", Some("10.0.0.1")),
            None,
        );
        assert!(matches!(
            e,
            Err(AllocError::Exhausted {
                count: 2,
                found: 0,
                ..
            })
        ));
    }

    proptest! {
        #[test]
        fn relocalize_properties(
            n in 1usize..40,
            existing in proptest::collection::btree_set(0usize..60, 0..20),
            local_third in 0u8..4,
        ) {
            let names: Vec<String> = (0..n).map(|i| format!("d-{i}")).collect();
            let master: Vec<(&str, String)> = names
                .iter()
                .enumerate()
                .map(|(i, nm)| (nm.as_str(), format!("192.168.1.{}", i + 10)))
                .collect();
            let pairs: Vec<(&str, &str)> = master.iter().map(|(a, b)| (*a, b.as_str())).collect();
            let c = config(Mode::Swarm, "192.168.1.0/24", "192.168.1.1", &pairs);
            let cur_names: Vec<String> = existing.iter().map(|i| format!("d-{i}")).collect();
            let cur_ips: Vec<String> = existing.iter().map(|i| format!("10.0.{local_third}.{}", 200 - i)).collect();
            let cur_pairs: Vec<(&str, &str)> = cur_names.iter().map(String::as_str).zip(cur_ips.iter().map(String::as_str)).collect();
            let current = config(Mode::Swarm, "10.0.0.0/16", "10.0.0.1", &cur_pairs);
            let f = LocalNetFacts {
                interface: "ens3".into(),
                subnet: Ipv4Net::new(Ipv4Addr::new(10, 0, local_third, 0), 24).unwrap(),
                host_ip: Ipv4Addr::new(10, 0, local_third, 4),
                gateway: Some(Ipv4Addr::new(10, 0, local_third, 1)),
            };
            let once = relocalize(&c, &f, Some(&current)).unwrap();
            // Idempotent.
            prop_assert_eq!(&relocalize(&once, &f, Some(&current)).unwrap(), &once);
            let subnet = Subnet::new(f.subnet);
            let mut seen = BTreeSet::new();
            for d in &once.deckies {
                prop_assert!(subnet.contains(d.ip));
                prop_assert!(d.ip != f.host_ip && Some(d.ip) != f.gateway);
                prop_assert!(seen.insert(d.ip), "duplicate {}", d.ip);
                // Deckies already here keep their address; new ones avoid all in use.
                match current.decky(d.name.as_str()) {
                    Some(cur) => prop_assert_eq!(cur.ip, d.ip),
                    None => prop_assert!(current.deckies.iter().all(|c| c.ip != d.ip)),
                }
            }
            prop_assert_eq!(once.deckies.len(), c.deckies.len());
        }
    }
}

//! Reads this machine's real interfaces over netlink (read-only: nothing is changed).

use std::net::Ipv4Addr;

use decnet_core::traits::{HostNetError, HostNetwork};
use decnet_net::NetlinkHostNetwork;
use ipnet::Ipv4Net;

fn net(s: &str) -> Ipv4Net {
    s.parse().expect("test net")
}

#[tokio::test]
async fn lo_is_listed_as_loopback_with_127_0_0_1() {
    let ifaces = NetlinkHostNetwork::new()
        .interfaces()
        .await
        .expect("list interfaces over netlink");
    let lo = ifaces
        .iter()
        .find(|i| i.name == "lo")
        .unwrap_or_else(|| panic!("no lo in {ifaces:?}"));
    assert!(lo.loopback, "lo not flagged loopback: {lo:?}");
    assert_eq!(lo.ipv4.first(), Some(&net("127.0.0.1/8")), "{lo:?}");
    assert!(ifaces.iter().all(|i| i.index > 0 && !i.name.is_empty()));
}

#[tokio::test]
async fn default_route_facts_are_consistent_or_absent() {
    match NetlinkHostNetwork::new().facts(None).await {
        Ok(facts) => {
            assert!(
                facts.subnet.contains(&facts.host_ip),
                "host ip outside its subnet: {facts:?}"
            );
            assert_eq!(
                facts.subnet,
                facts.subnet.trunc(),
                "host bits set: {facts:?}"
            );
            assert_ne!(facts.interface, "lo");
        }
        Err(HostNetError::NoDefaultRoute) => {}
        Err(e) => panic!("facts(None): {e}"),
    }
}

#[tokio::test]
async fn lo_facts() {
    let facts = NetlinkHostNetwork::new()
        .facts(Some("lo"))
        .await
        .expect("facts for lo");
    assert_eq!(facts.interface, "lo");
    assert_eq!(facts.host_ip, Ipv4Addr::LOCALHOST);
    assert_eq!(facts.subnet, net("127.0.0.0/8"));
    assert_eq!(facts.gateway, None);
}

#[tokio::test]
async fn unknown_interface_is_reported() {
    let err = NetlinkHostNetwork::new()
        .facts(Some("decnet-nope0"))
        .await
        .expect_err("no such interface");
    assert!(
        matches!(&err, HostNetError::NoSuchInterface(n) if n == "decnet-nope0"),
        "{err:?}"
    );
}

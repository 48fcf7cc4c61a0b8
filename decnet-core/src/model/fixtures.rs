//! Small builders of valid model values for tests (here and in crates that embed the core,
//! behind the `test-util` feature).

use std::net::Ipv4Addr;

use super::{DeckyConfig, DeckyName, DecnetConfig, Mode, Subnet};

/// A valid decky: debian persona, linux profile, no persona config.
pub fn decky(name: &str, ip: Ipv4Addr, services: &[&str]) -> DeckyConfig {
    DeckyConfig {
        name: DeckyName::new(name).expect("fixture decky name"),
        ip,
        services: services.iter().map(|s| s.to_string()).collect(),
        distro: "debian".into(),
        base_image: "debian:bookworm-slim".into(),
        build_base: "debian:bookworm-slim".into(),
        hostname: "SRV-WEB-42".into(),
        archetype: None,
        service_config: Default::default(),
        nmap_os: Default::default(),
        mutate_interval: None,
        last_mutated: 0.0,
        last_login_attempt: 0.0,
        host_uuid: None,
    }
}

/// A fleet on `eth0` with these deckies.
pub fn config(mode: Mode, subnet: &str, gateway: &str, deckies: Vec<DeckyConfig>) -> DecnetConfig {
    DecnetConfig {
        mode,
        interface: "eth0".into(),
        subnet: Subnet::parse("subnet", subnet).expect("fixture subnet"),
        gateway: gateway.parse().expect("fixture gateway"),
        deckies,
        log_file: None,
        ipvlan: false,
        mutate_interval: Some(30),
        network_driver: None,
        custom_services: vec![],
    }
}

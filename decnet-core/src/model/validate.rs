//! The rules new input must follow (PRODUCT §3), as pure functions over the model.
//!
//! Every rule reports a [`FieldError`] naming the field, the value and the rule. The same rules
//! mark the deckies of a loaded state file that can no longer be acted upon.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;

use super::config::{CustomService, DeckyConfig, DecnetConfig};
use super::error::FieldError;
use super::names::Subnet;
use crate::registry::{self, PortSpec, Protocol};

/// Several rule violations at once, in input order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl From<FieldError> for ValidationErrors {
    fn from(e: FieldError) -> Self {
        Self(vec![e])
    }
}

/// Linux interface names: 1..=15 bytes, no `/`, whitespace or `:`.
pub fn validate_interface(field: &str, s: &str) -> Result<(), FieldError> {
    let ok = !s.is_empty()
        && s.len() <= 15
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':');
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            s,
            "is not a valid interface name (1-15 characters, no '/', ':' or spaces)",
        ))
    }
}

/// RFC 1123 host names: labels of 1..=63 letters, digits and '-', not starting or ending
/// with '-', at most 253 characters.
pub fn validate_hostname(field: &str, s: &str) -> Result<(), FieldError> {
    if registry::is_valid_hostname(s) {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            s,
            "is not a valid host name (RFC 1123 labels of letters, digits and '-')",
        ))
    }
}

/// The ports a service listens on: the registry's, or a custom service's (TCP).
pub fn service_ports(slug: &str, custom: &[CustomService]) -> Option<Vec<PortSpec>> {
    if let Some(c) = custom.iter().find(|c| c.name == slug) {
        return Some(
            c.ports
                .iter()
                .map(|&port| PortSpec {
                    port,
                    protocol: Protocol::Tcp,
                })
                .collect(),
        );
    }
    registry::service(slug).map(|s| s.ports.to_vec())
}

/// Checks a decky's services: at least one, all known and deployable per decky, no repeats,
/// and no two on the same port and protocol. `field` is the path of the services list.
pub fn validate_services(
    field: &str,
    services: &[String],
    custom: &[CustomService],
) -> Result<(), FieldError> {
    if services.is_empty() {
        return Err(FieldError::new(field, "", "must list at least one service"));
    }
    let mut seen = BTreeSet::new();
    let mut taken: BTreeMap<PortSpec, &str> = BTreeMap::new();
    for svc in services {
        if !seen.insert(svc.as_str()) {
            return Err(FieldError::new(field, svc, "is listed twice"));
        }
        let known_custom = custom.iter().any(|c| &c.name == svc);
        match registry::service(svc) {
            Some(spec) if spec.fleet_singleton && !known_custom => {
                return Err(FieldError::new(
                    field,
                    svc,
                    "is a fleet-wide singleton that runs on the host, not per decky",
                ));
            }
            None if !known_custom => {
                return Err(FieldError::new(
                    field,
                    svc,
                    format!(
                        "is not a known service (known: {})",
                        registry::deployable_service_slugs().join(", ")
                    ),
                ));
            }
            _ => {}
        }
        for port in service_ports(svc, custom).unwrap_or_default() {
            if let Some(other) = taken.insert(port, svc) {
                return Err(FieldError::new(
                    field,
                    &services.join(","),
                    format!(
                        "has a port clash: services {other:?} and {svc:?} both listen on {}/{}",
                        port.port,
                        match port.protocol {
                            Protocol::Tcp => "tcp",
                            Protocol::Udp => "udp",
                        }
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Checks an address a decky may take in `subnet`: inside it, not its network or broadcast
/// address (for prefixes up to /30) and not the gateway.
pub fn validate_decky_ip(
    field: &str,
    ip: Ipv4Addr,
    subnet: &Subnet,
    gateway: Ipv4Addr,
) -> Result<(), FieldError> {
    let s = ip.to_string();
    if !subnet.contains(ip) {
        return Err(FieldError::new(
            field,
            &s,
            format!("is not inside subnet {subnet}"),
        ));
    }
    if subnet.prefix_len() <= 30 && (ip == subnet.network() || ip == subnet.broadcast()) {
        return Err(FieldError::new(
            field,
            &s,
            format!("is the network or broadcast address of {subnet}"),
        ));
    }
    if ip == gateway {
        return Err(FieldError::new(field, &s, "is the gateway's address"));
    }
    Ok(())
}

/// Every rule one decky must follow inside its fleet. Paths are `deckies[<name>].<field>`.
pub fn validate_decky(
    d: &DeckyConfig,
    subnet: &Subnet,
    gateway: Ipv4Addr,
    custom: &[CustomService],
) -> Vec<FieldError> {
    let at = |f: &str| format!("deckies[{}].{f}", d.name);
    let mut errors = Vec::new();
    if let Err(e) = validate_decky_ip(&at("ip"), d.ip, subnet, gateway) {
        errors.push(e);
    }
    if let Err(e) = validate_services(&at("services"), &d.services, custom) {
        errors.push(e);
    }
    if let Err(e) = validate_hostname(&at("hostname"), &d.hostname) {
        errors.push(e);
    }
    errors
}

/// Every rule a whole fleet must follow: valid network facts, at least one decky, each decky
/// valid, and no two deckies with the same name or IP.
pub fn validate_config(cfg: &DecnetConfig) -> Result<(), ValidationErrors> {
    let mut errors = Vec::new();
    if let Err(e) = validate_interface("interface", &cfg.interface) {
        errors.push(e);
    }
    if !cfg.subnet.contains(cfg.gateway) {
        errors.push(FieldError::new(
            "gateway",
            &cfg.gateway.to_string(),
            format!("is not inside subnet {}", cfg.subnet),
        ));
    }
    if cfg.deckies.is_empty() {
        errors.push(FieldError::new(
            "deckies",
            "",
            "must hold at least one decky",
        ));
    }
    let mut names = BTreeSet::new();
    let mut ips: BTreeMap<Ipv4Addr, &str> = BTreeMap::new();
    for d in &cfg.deckies {
        if !names.insert(d.name.as_str()) {
            errors.push(FieldError::new(
                "deckies[].name",
                d.name.as_str(),
                "is used by two deckies (names are unique fleet-wide)",
            ));
        }
        if let Some(other) = ips.insert(d.ip, d.name.as_str()) {
            errors.push(FieldError::new(
                format!("deckies[{}].ip", d.name),
                &d.ip.to_string(),
                format!("is already taken by decky {other:?}"),
            ));
        }
        errors.extend(validate_decky(
            d,
            &cfg.subnet,
            cfg.gateway,
            &cfg.custom_services,
        ));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ValidationErrors(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{fixtures, Mode};

    fn decky(name: &str, ip: &str, services: &[&str]) -> DeckyConfig {
        fixtures::decky(name, ip.parse().unwrap(), services)
    }

    fn config(deckies: Vec<DeckyConfig>) -> DecnetConfig {
        fixtures::config(Mode::Unihost, "10.0.0.0/24", "10.0.0.1", deckies)
    }

    fn check(deckies: Vec<DeckyConfig>, expect: &[&str]) {
        let got = match validate_config(&config(deckies)) {
            Ok(()) => vec![],
            Err(e) => e.0.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
        };
        assert_eq!(got.len(), expect.len(), "got {got:?}");
        for (g, e) in got.iter().zip(expect) {
            assert!(g.contains(e), "{g:?} should contain {e:?}");
        }
    }

    #[test]
    fn rules() {
        check(vec![decky("a", "10.0.0.10", &["ssh", "http"])], &[]);
        check(
            vec![decky("a", "10.0.1.10", &["ssh"])],
            &["deckies[a].ip: \"10.0.1.10\" is not inside subnet 10.0.0.0/24"],
        );
        check(vec![decky("a", "10.0.0.1", &["ssh"])], &["is the gateway"]);
        check(vec![decky("a", "10.0.0.255", &["ssh"])], &["broadcast"]);
        check(vec![decky("a", "10.0.0.0", &["ssh"])], &["network"]);
        check(vec![decky("a", "10.0.0.9", &[])], &["at least one service"]);
        check(
            vec![decky("a", "10.0.0.9", &["gopher"])],
            &["not a known service"],
        );
        check(vec![decky("a", "10.0.0.9", &["sniffer"])], &["singleton"]);
        check(
            vec![decky("a", "10.0.0.9", &["ssh", "ssh"])],
            &["listed twice"],
        );
        check(
            vec![decky("a", "10.0.0.9", &["http", "https"])],
            &["port clash: services \"http\" and \"https\" both listen on 443/tcp"],
        );
        check(
            vec![decky("a", "10.0.0.9", &["smtp", "smtp_relay"])],
            &["port clash"],
        );
        check(
            vec![
                decky("a", "10.0.0.9", &["ssh"]),
                decky("a", "10.0.0.10", &["ssh"]),
            ],
            &["used by two deckies"],
        );
        check(
            vec![
                decky("a", "10.0.0.9", &["ssh"]),
                decky("b", "10.0.0.9", &["ssh"]),
            ],
            &["deckies[b].ip: \"10.0.0.9\" is already taken by decky \"a\""],
        );
        check(vec![], &["at least one decky"]);
    }

    #[test]
    fn hostnames_and_interfaces() {
        for ok in ["SRV-WEB-42", "web12.localdomain", "db-7", "a"] {
            assert!(validate_hostname("h", ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "a-", "a..b", "a_b", &"a".repeat(64)] {
            assert!(validate_hostname("h", bad).is_err(), "{bad}");
        }
        for ok in ["eth0", "veth-dn0", "enp0s31f6", "br-1234567890ab"] {
            assert!(validate_interface("i", ok).is_ok(), "{ok}");
        }
        for bad in ["", "a/b", "eth0:1", "a b", "sixteen-chars-xx"] {
            assert!(validate_interface("i", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn custom_services_count_as_known_with_tcp_ports() {
        let mut c = config(vec![decky("a", "10.0.0.9", &["myapp", "http"])]);
        assert!(validate_config(&c).is_err());
        c.custom_services.push(CustomService {
            name: "myapp".into(),
            image: "myorg/app:1".into(),
            exec_cmd: String::new(),
            ports: vec![9000],
        });
        assert!(validate_config(&c).is_ok());
        c.custom_services[0].ports.push(80);
        let e = validate_config(&c).unwrap_err().to_string();
        assert!(e.contains("port clash"), "{e}");
    }
}

//! Which interface, subnet, gateway and host address a fleet uses: flags beat the INI, the INI
//! beats what the kernel says. Pure: the kernel's facts are passed in.

use std::net::Ipv4Addr;

use crate::model::validate::validate_interface;
use crate::model::{FieldError, NetworkDriver, Subnet};
use crate::traits::LocalNetFacts;

/// What the operator said (flags merged over the INI's `[general]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetInputs {
    /// `--interface` / `[general] interface`: the parent interface.
    pub interface: Option<String>,
    /// `--subnet` / `[general] subnet`: the decky LAN.
    pub subnet: Option<Subnet>,
    /// `--gateway` / `[general] gateway`: the LAN's default gateway.
    pub gateway: Option<Ipv4Addr>,
    /// `--host-ip`: the host's own address on that LAN.
    pub host_ip: Option<Ipv4Addr>,
    /// `--driver` / `[general] driver`: macvlan, ipvlan or bridge.
    pub driver: Option<NetworkDriver>,
}

impl NetInputs {
    /// `self` where set, else `other` (flags over INI).
    pub fn or(self, other: NetInputs) -> NetInputs {
        NetInputs {
            interface: self.interface.or(other.interface),
            subnet: self.subnet.or(other.subnet),
            gateway: self.gateway.or(other.gateway),
            host_ip: self.host_ip.or(other.host_ip),
            driver: self.driver.or(other.driver),
        }
    }

    /// True when the kernel must be asked: something is missing. With interface, subnet,
    /// gateway and host IP all given, the interface need not even exist (dry runs, planning
    /// for another machine).
    pub fn needs_facts(&self) -> bool {
        self.interface.is_none()
            || self.subnet.is_none()
            || self.gateway.is_none()
            || self.host_ip.is_none()
    }
}

/// The resolved network a fleet is planned on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetPlan {
    /// The parent interface the decky network sits on.
    pub interface: String,
    /// The LAN the deckies take addresses from.
    pub subnet: Subnet,
    /// The gateway the deckies are configured with.
    pub gateway: Ipv4Addr,
    /// The host's own address; never given to a decky.
    pub host_ip: Option<Ipv4Addr>,
    /// The network driver the deckies sit on.
    pub driver: NetworkDriver,
}

/// Resolves the plan. `facts` is what the kernel said about the interface (or why it could not
/// say), asked only when [`NetInputs::needs_facts`].
///
/// Without a gateway, the interface's default route is used when it lies in the subnet, else
/// the subnet's first host.
pub fn resolve_net(
    inputs: &NetInputs,
    facts: Option<&Result<LocalNetFacts, String>>,
) -> Result<NetPlan, FieldError> {
    let facts_ok = facts.and_then(|f| f.as_ref().ok());
    let why = || match facts {
        Some(Err(e)) => format!(" and could not be read from the host: {e}"),
        _ => String::new(),
    };
    let interface = match (&inputs.interface, facts_ok) {
        (Some(i), _) => i.clone(),
        (None, Some(f)) => f.interface.clone(),
        (None, None) => {
            return Err(FieldError::new(
                "interface",
                "",
                format!("was not given (--interface){}", why()),
            ))
        }
    };
    validate_interface("interface", &interface)?;
    let subnet = match (inputs.subnet, facts_ok) {
        (Some(s), _) => s,
        (None, Some(f)) => Subnet::new(f.subnet),
        (None, None) => {
            return Err(FieldError::new(
                "subnet",
                "",
                format!("was not given (--subnet){}", why()),
            ))
        }
    };
    let gateway = match (inputs.gateway, facts_ok.and_then(|f| f.gateway)) {
        (Some(g), _) => g,
        (None, Some(g)) if subnet.contains(g) => g,
        _ => subnet.first_host(),
    };
    if !subnet.contains(gateway) {
        return Err(FieldError::new(
            "gateway",
            &gateway.to_string(),
            format!("is not inside subnet {subnet}"),
        ));
    }
    let host_ip = match (inputs.host_ip, facts_ok) {
        (Some(h), _) => Some(h),
        (None, Some(f)) => Some(f.host_ip),
        (None, None) => {
            return Err(FieldError::new(
                "host_ip",
                "",
                format!(
                    "was not given (--host-ip); it is needed to keep deckies off the host's own address{}",
                    why()
                ),
            ))
        }
    };
    Ok(NetPlan {
        interface,
        subnet,
        gateway,
        host_ip,
        driver: inputs.driver.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Result<LocalNetFacts, String> {
        Ok(LocalNetFacts {
            interface: "eth0".into(),
            subnet: "192.168.1.0/24".parse().unwrap(),
            host_ip: "192.168.1.5".parse().unwrap(),
            gateway: Some("192.168.1.254".parse().unwrap()),
        })
    }

    fn sub(s: &str) -> Option<Subnet> {
        Some(Subnet::parse("subnet", s).unwrap())
    }

    #[test]
    fn everything_given_needs_no_host() {
        let inputs = NetInputs {
            interface: Some("veth-lab".into()),
            subnet: sub("10.9.0.0/24"),
            gateway: Some("10.9.0.1".parse().unwrap()),
            host_ip: Some("10.9.0.2".parse().unwrap()),
            driver: None,
        };
        assert!(!inputs.needs_facts());
        let plan = resolve_net(&inputs, None).unwrap();
        assert_eq!(plan.interface, "veth-lab");
        assert_eq!(plan.driver, NetworkDriver::Macvlan);
    }

    #[test]
    fn facts_fill_the_gaps() {
        let plan = resolve_net(&NetInputs::default(), Some(&facts())).unwrap();
        assert_eq!(plan.subnet.to_string(), "192.168.1.0/24");
        assert_eq!(plan.gateway.to_string(), "192.168.1.254");
        assert_eq!(plan.host_ip.unwrap().to_string(), "192.168.1.5");
    }

    #[test]
    fn gateway_falls_back_to_first_host() {
        // A subnet other than the interface's: its default route does not apply.
        let inputs = NetInputs {
            subnet: sub("10.1.0.0/24"),
            ..Default::default()
        };
        let plan = resolve_net(&inputs, Some(&facts())).unwrap();
        assert_eq!(plan.gateway.to_string(), "10.1.0.1");
    }

    #[test]
    fn missing_pieces_name_the_flag_and_the_cause() {
        let e = resolve_net(&NetInputs::default(), Some(&Err("no default route".into())))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("interface: was not given (--interface)"),
            "{e}"
        );
        assert!(e.contains("no default route"), "{e}");
        let inputs = NetInputs {
            interface: Some("eth9".into()),
            subnet: sub("10.0.0.0/24"),
            gateway: Some("10.0.0.1".parse().unwrap()),
            ..Default::default()
        };
        let e = resolve_net(
            &inputs,
            Some(&Err("interface \"eth9\" does not exist".into())),
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("host_ip: was not given (--host-ip)"), "{e}");
        let bad_gw = NetInputs {
            gateway: Some("10.0.0.1".parse().unwrap()),
            ..Default::default()
        };
        let e = resolve_net(&bad_gw, Some(&facts()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not inside subnet 192.168.1.0/24"), "{e}");
    }
}

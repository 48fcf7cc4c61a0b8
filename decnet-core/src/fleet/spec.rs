//! Fleet specs: what an operator asks for (INI sections, the API's JSON), before IPs, distros,
//! hostnames and random services are decided.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::model::{CustomService, NetworkDriver, ServiceConfig, Subnet};
use crate::registry::OsFamily;

/// Largest `amount` one spec may expand to (the original's limit).
pub const MAX_AMOUNT: u32 = 100;

/// One requested decky or group of deckies (`amount > 1` expands to `<name>-01 …`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeckySpec {
    /// The decky's name, or with `amount > 1` the group's prefix (`web` → `web-01`, …).
    pub name: String,
    /// A fixed address; unset takes the next free address of the subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<Ipv4Addr>,
    /// Service slugs to run; unset takes the archetype's, or a random clash-free draw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<Vec<String>>,
    /// The archetype (`web-server`, `database-server`, …) the persona comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archetype: Option<String>,
    /// Per-service persona settings, `service_config[svc][key] = value`.
    #[serde(default, skip_serializing_if = "ServiceConfig::is_empty")]
    pub service_config: ServiceConfig,
    /// The OS family to imitate; unset takes the archetype's (else Linux).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nmap_os: Option<OsFamily>,
    /// Minutes between mutations for these deckies; `0` never; unset inherits the fleet's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mutate_interval: Option<u32>,
    /// How many deckies the spec expands to (1 when unset, at most [`MAX_AMOUNT`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<u32>,
    /// Where the spec came from, for error messages (`[web] (line 12)`); `deckies[i]` if unset.
    #[serde(skip)]
    pub origin: Option<String>,
}

/// Network settings a fleet spec may carry (INI `[general]`, the API's `general`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneralSpec {
    /// New input: host bits must be clear (state files are read leniently elsewhere).
    #[serde(
        default,
        deserialize_with = "strict_subnet",
        skip_serializing_if = "Option::is_none"
    )]
    pub subnet: Option<Subnet>,
    /// The LAN's default gateway; unset takes the interface's default route when it lies in
    /// the subnet, else the subnet's first host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<Ipv4Addr>,
    /// The parent interface; unset takes the host's default-route interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// The network driver; unset means macvlan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<NetworkDriver>,
    /// The fleet-wide mutation interval in minutes; `0` never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mutate_interval: Option<u32>,
}

/// A whole requested fleet.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FleetSpec {
    /// The network settings (INI `[general]`).
    pub general: GeneralSpec,
    /// The requested deckies, in input order.
    pub deckies: Vec<DeckySpec>,
    /// The INI's `[custom-x]` services.
    pub custom_services: Vec<CustomService>,
}

fn strict_subnet<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Subnet>, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    s.map(|s| Subnet::parse("subnet", &s).map_err(serde::de::Error::custom))
        .transpose()
}

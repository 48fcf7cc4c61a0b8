//! `DecnetConfig` and `DeckyConfig`: the fleet as the original DECNET 1.2 wrote it to JSON.
//!
//! Field names, order and defaults match the original, so its state files load and ours load in
//! it. Two optional extensions (`network_driver`, `custom_services`) are omitted from the JSON
//! when unset; the original ignores unknown top-level keys.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::error::FieldError;
use super::names::{DeckyName, HostUuid, Subnet};
use crate::registry::OsFamily;

/// The original's pinned `build_base` default (persona metadata; never pulled).
pub const DEFAULT_BUILD_BASE: &str = "debian:bookworm-slim";
/// Fleet-wide mutation interval in minutes when the config does not say.
pub const DEFAULT_MUTATE_INTERVAL: u32 = 30;

/// Per-service persona configuration: `service_config[svc][key] = value`.
pub type ServiceConfig = BTreeMap<String, serde_json::Map<String, serde_json::Value>>;

/// Where the master runs the deckies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// One machine runs the master and its deckies.
    #[default]
    Unihost,
    /// Worker agents run the deckies.
    Swarm,
}

impl Mode {
    /// The wire name (`"unihost"`, `"swarm"`), as in the state file and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Unihost => "unihost",
            Mode::Swarm => "swarm",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for Mode {
    type Err = FieldError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "unihost" => Ok(Mode::Unihost),
            "swarm" => Ok(Mode::Swarm),
            _ => Err(FieldError::new(
                "mode",
                s,
                "must be \"unihost\" or \"swarm\"",
            )),
        }
    }
}

/// The Docker network driver the deckies sit on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum NetworkDriver {
    /// Each decky gets its own MAC on the parent interface (the default).
    #[default]
    Macvlan,
    /// IPvlan L2: deckies share the parent's MAC (Wi-Fi parents that refuse extra MACs).
    Ipvlan,
    /// A plain Docker bridge, for labs and clouds that block macvlan.
    Bridge,
}

impl NetworkDriver {
    /// The wire name (`"macvlan"`, `"ipvlan"`, `"bridge"`), as Docker and the API spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkDriver::Macvlan => "macvlan",
            NetworkDriver::Ipvlan => "ipvlan",
            NetworkDriver::Bridge => "bridge",
        }
    }
}

impl fmt::Display for NetworkDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for NetworkDriver {
    type Err = FieldError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "macvlan" => Ok(Self::Macvlan),
            "ipvlan" => Ok(Self::Ipvlan),
            "bridge" => Ok(Self::Bridge),
            _ => Err(FieldError::new(
                "driver",
                s,
                "must be one of macvlan, ipvlan, bridge",
            )),
        }
    }
}

/// One decoy host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeckyConfig {
    /// Fleet-wide unique name (`^[a-z0-9][a-z0-9-]{0,62}$`); it also names the decky's containers.
    pub name: DeckyName,
    /// The decky's own IPv4 address on the fleet's subnet.
    pub ip: Ipv4Addr,
    /// The service slugs the decky runs (registry names such as `ssh`, or a `custom-x` one).
    pub services: Vec<String>,
    /// Persona metadata: the distro slug the decky claims to be (`debian`, `ubuntu22`, …).
    pub distro: String,
    /// Persona metadata: the image the claimed distro would run on; never pulled.
    pub base_image: String,
    #[serde(default = "default_build_base")]
    /// Persona metadata: the persona's build base (default `debian:bookworm-slim`); never pulled.
    pub build_base: String,
    /// The host name the decky's services announce (e.g. `SRV-WEB-42`).
    pub hostname: String,
    #[serde(default)]
    /// The archetype the decky was drawn from (`web-server`, …), if any; it seeds the MAC.
    pub archetype: Option<String>,
    #[serde(default)]
    /// Per-service persona settings, `service_config[svc][key] = value`.
    pub service_config: ServiceConfig,
    #[serde(default)]
    /// The OS family whose TCP/IP fingerprint the decky's stack imitates (`linux`, …).
    pub nmap_os: OsFamily,
    /// Minutes. `None` inherits the fleet's interval; `0` never mutates.
    #[serde(default)]
    pub mutate_interval: Option<u32>,
    #[serde(default)]
    /// When the decky's services were last mutated, in Unix epoch seconds (`0.0`: never).
    pub last_mutated: f64,
    #[serde(default)]
    /// When a login attempt against the decky was last seen, in Unix epoch seconds (`0.0`: never).
    pub last_login_attempt: f64,
    #[serde(default)]
    /// The swarm host that runs the decky; `None` in unihost mode and in legacy state files.
    pub host_uuid: Option<HostUuid>,
}

fn default_build_base() -> String {
    DEFAULT_BUILD_BASE.to_string()
}

fn default_mutate_interval() -> Option<u32> {
    Some(DEFAULT_MUTATE_INTERVAL)
}

impl DeckyConfig {
    /// True when `other` differs in a field that shapes the decky's containers
    /// (ip, hostname, services, service_config, nmap_os; the MAC derives from the name and
    /// archetype). Bookkeeping fields never recreate anything.
    pub fn shape_differs(&self, other: &DeckyConfig) -> bool {
        self.name != other.name
            || self.ip != other.ip
            || self.hostname != other.hostname
            || self.services != other.services
            || self.service_config != other.service_config
            || self.nmap_os != other.nmap_os
            || self.archetype != other.archetype
    }

    /// The decky's own interval, or the fleet's. `0` means never.
    pub fn effective_mutate_interval(&self, fleet: Option<u32>) -> Option<u32> {
        self.mutate_interval.or(fleet)
    }
}

/// A service from the operator's own image (`[custom-x]` in the INI). Accepted only when the
/// image exists locally; nothing is ever pulled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomService {
    /// The service slug, `custom-` followed by the INI section's suffix.
    pub name: String,
    /// The operator's local image that runs the service.
    pub image: String,
    #[serde(default)]
    /// The command the container runs instead of the image's default; empty keeps the default.
    pub exec_cmd: String,
    #[serde(default)]
    /// The TCP ports the service listens on, checked for clashes with the decky's other services.
    pub ports: Vec<u16>,
}

/// The whole fleet of one deployment (unihost), or one worker's shard (swarm).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecnetConfig {
    /// Where the deckies run: on this machine or on worker agents.
    pub mode: Mode,
    /// The parent interface the decky network sits on (e.g. `eth0`).
    pub interface: String,
    /// The LAN the deckies take their addresses from.
    pub subnet: Subnet,
    /// The LAN's default gateway, as the deckies' containers are configured with it.
    pub gateway: Ipv4Addr,
    /// The deckies, in the order they were planned.
    pub deckies: Vec<DeckyConfig>,
    #[serde(default)]
    /// The log file the operator gave with `--log-file`, if any.
    pub log_file: Option<String>,
    #[serde(default)]
    /// The original's driver flag: `true` means IPvlan L2, `false` macvlan (see [`Self::driver`]).
    pub ipvlan: bool,
    /// Minutes; `None` = never mutate unless a decky says so.
    #[serde(default = "default_mutate_interval")]
    pub mutate_interval: Option<u32>,
    /// Extension: `bridge` cannot be said with the original's `ipvlan` flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_driver: Option<NetworkDriver>,
    /// Extension: the INI's `[custom-x]` services, persisted so every process knows them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub custom_services: Vec<CustomService>,
}

impl DecnetConfig {
    /// The driver to use: the explicit one, else the original's `ipvlan` flag.
    pub fn driver(&self) -> NetworkDriver {
        match self.network_driver {
            Some(d) => d,
            None if self.ipvlan => NetworkDriver::Ipvlan,
            None => NetworkDriver::Macvlan,
        }
    }

    /// Sets the driver, keeping the original's `ipvlan` flag in step.
    pub fn set_driver(&mut self, driver: NetworkDriver) {
        self.ipvlan = driver == NetworkDriver::Ipvlan;
        self.network_driver = match driver {
            NetworkDriver::Macvlan | NetworkDriver::Ipvlan => None,
            NetworkDriver::Bridge => Some(NetworkDriver::Bridge),
        };
    }

    /// The decky named `name`, if the fleet has one.
    pub fn decky(&self, name: &str) -> Option<&DeckyConfig> {
        self.deckies.iter().find(|d| d.name.as_str() == name)
    }

    /// The custom service named `name` (e.g. `custom-x`), if the INI declared it.
    pub fn custom_service(&self, name: &str) -> Option<&CustomService> {
        self.custom_services.iter().find(|c| c.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEGACY_DECKY: &str = r#"{"name":"decky-01","ip":"192.168.1.10","services":["ssh"],
        "distro":"debian","base_image":"debian:bookworm-slim","hostname":"SRV-WEB-42"}"#;

    #[test]
    fn legacy_decky_takes_defaults() {
        let d: DeckyConfig = serde_json::from_str(LEGACY_DECKY).unwrap();
        assert_eq!(d.build_base, DEFAULT_BUILD_BASE);
        assert_eq!(d.host_uuid, None);
        assert_eq!(d.nmap_os, OsFamily::Linux);
        assert_eq!(d.mutate_interval, None);
        assert_eq!(d.last_mutated, 0.0);
    }

    #[test]
    fn field_order_and_names_match_the_original() {
        let d: DeckyConfig = serde_json::from_str(LEGACY_DECKY).unwrap();
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(
            json,
            r#"{"name":"decky-01","ip":"192.168.1.10","services":["ssh"],"distro":"debian","base_image":"debian:bookworm-slim","build_base":"debian:bookworm-slim","hostname":"SRV-WEB-42","archetype":null,"service_config":{},"nmap_os":"linux","mutate_interval":null,"last_mutated":0.0,"last_login_attempt":0.0,"host_uuid":null}"#
        );
    }

    #[test]
    fn config_defaults_and_extensions() {
        let json = format!(
            r#"{{"mode":"unihost","interface":"eth0","subnet":"192.168.1.0/24","gateway":"192.168.1.1","deckies":[{LEGACY_DECKY}],"future_key":1}}"#
        );
        let mut c: DecnetConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(c.mutate_interval, Some(30));
        assert_eq!(c.log_file, None);
        assert!(!c.ipvlan);
        assert_eq!(c.driver(), NetworkDriver::Macvlan);
        let out = serde_json::to_string(&c).unwrap();
        assert!(!out.contains("network_driver") && !out.contains("custom_services"));
        assert!(out.ends_with(r#""log_file":null,"ipvlan":false,"mutate_interval":30}"#));

        c.set_driver(NetworkDriver::Ipvlan);
        assert!(c.ipvlan);
        assert_eq!(c.driver(), NetworkDriver::Ipvlan);
        c.set_driver(NetworkDriver::Bridge);
        assert!(!c.ipvlan);
        assert!(serde_json::to_string(&c)
            .unwrap()
            .contains(r#""network_driver":"bridge""#));
    }

    #[test]
    fn null_mutate_interval_is_kept() {
        let json = format!(
            r#"{{"mode":"swarm","interface":"eth0","subnet":"10.0.0.0/24","gateway":"10.0.0.1","deckies":[{LEGACY_DECKY}],"mutate_interval":null}}"#
        );
        let c: DecnetConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(c.mutate_interval, None);
        assert_eq!(c.mode, Mode::Swarm);
    }

    #[test]
    fn bookkeeping_fields_do_not_change_shape() {
        let a: DeckyConfig = serde_json::from_str(LEGACY_DECKY).unwrap();
        let mut b = a.clone();
        b.last_mutated = 123.0;
        b.last_login_attempt = 5.0;
        b.mutate_interval = Some(5);
        b.host_uuid = Some(HostUuid::new_v4());
        assert!(!a.shape_differs(&b));
        b.services.push("http".into());
        assert!(a.shape_differs(&b));
    }
}

//! What each decky's containers look like, as pure functions: the create bodies sent to the
//! daemon and the shape hashes the converge planner compares. Hardening follows PRODUCT §11.

use std::collections::{BTreeMap, HashMap};

use bollard::models::{
    ContainerCreateBody, EndpointIpamConfig, EndpointSettings, HostConfig, HostConfigLogConfig,
    NetworkingConfig, RestartPolicy, RestartPolicyNameEnum,
};
use decnet_core::model::{CustomService, DeckyConfig, DecnetConfig, NetworkDriver};
use decnet_core::plan::{shape_hash, Desired, Role};
use decnet_core::registry::{self, format_mac, oui_for, PortSpec};
use serde::Serialize;

use crate::labels::container_labels;

/// Memory and process limits of service containers (they run one small binary each).
pub const SERVICE_MEMORY: i64 = 64 * 1024 * 1024;
pub const SERVICE_PIDS: i64 = 300;
/// Limits of the base container (PID 1 that sleeps).
pub const BASE_MEMORY: i64 = 16 * 1024 * 1024;
pub const BASE_PIDS: i64 = 16;

/// Everything that shapes a fleet's containers on one host besides the deckies.
#[derive(Debug, Clone)]
pub struct Shaper<'a> {
    /// The `decnet.host` label value.
    pub host: &'a str,
    pub network: &'a str,
    pub driver: NetworkDriver,
    /// The decky image tag.
    pub image: &'a str,
    pub custom: &'a [CustomService],
}

/// One decky's decided shape.
#[derive(Debug, Clone)]
pub struct DeckyShape {
    pub decky: DeckyConfig,
    /// `None` on ipvlan (deckies share the parent's MAC).
    pub mac: Option<[u8; 6]>,
    pub base_hash: String,
    /// Service slug → hash.
    pub services: BTreeMap<String, String>,
}

impl DeckyShape {
    pub fn desired(&self) -> Desired {
        Desired {
            decky: self.decky.name.clone(),
            base_hash: self.base_hash.clone(),
            services: self.services.clone(),
        }
    }
}

#[derive(Serialize)]
struct BaseHashInput<'a> {
    ip: String,
    mac: Option<String>,
    hostname: &'a str,
    sysctls: &'a [(&'a str, &'a str)],
    image: &'a str,
    network: &'a str,
    driver: NetworkDriver,
    /// The OS-fingerprint cloak's environment, if the family runs one (issue 16). Left out
    /// when empty, so Linux bases keep the hash they had before.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    cloak: Vec<String>,
}

#[derive(Serialize)]
struct ServiceHashInput<'a> {
    base: &'a str,
    slug: &'a str,
    cmd: Vec<String>,
    env: Vec<String>,
    image: &'a str,
    caps: Vec<String>,
}

/// The ports a service listens on (registry or custom).
pub fn ports_of(slug: &str, custom: &[CustomService]) -> Vec<PortSpec> {
    decnet_core::model::validate::service_ports(slug, custom).unwrap_or_default()
}

impl Shaper<'_> {
    /// Decides MACs (distinct within the fleet, vendor fitting the persona) and hashes.
    pub fn shapes(&self, config: &DecnetConfig) -> Vec<DeckyShape> {
        let ouis: Vec<_> = config
            .deckies
            .iter()
            .map(|d| (d.name.as_str(), oui_for(d.nmap_os, d.archetype.as_deref())))
            .collect();
        let macs = registry::assign_macs(&ouis);
        config
            .deckies
            .iter()
            .zip(macs)
            .map(|(d, mac)| {
                let mac = (self.driver != NetworkDriver::Ipvlan).then_some(mac);
                let base_hash = shape_hash(&BaseHashInput {
                    ip: d.ip.to_string(),
                    mac: mac.as_ref().map(format_mac),
                    hostname: &d.hostname,
                    sysctls: d.nmap_os.sysctls(),
                    image: self.image,
                    network: self.network,
                    driver: self.driver,
                    cloak: self.cloak_env(d),
                });
                let services = d
                    .services
                    .iter()
                    .filter(|s| registry::service(s).is_none_or(|spec| !spec.fleet_singleton))
                    .map(|s| {
                        let (image, cmd) = self.service_image_cmd(s);
                        let hash = shape_hash(&ServiceHashInput {
                            base: &base_hash,
                            slug: s,
                            cmd,
                            env: self.service_env(d, s),
                            image,
                            caps: self.service_caps(s),
                        });
                        (s.clone(), hash)
                    })
                    .collect();
                DeckyShape {
                    decky: d.clone(),
                    mac,
                    base_hash,
                    services,
                }
            })
            .collect()
    }

    fn service_image_cmd<'s>(&'s self, slug: &str) -> (&'s str, Vec<String>) {
        if let Some(c) = self.custom.iter().find(|c| c.name == slug) {
            let cmd = c.exec_cmd.split_whitespace().map(str::to_string).collect();
            return (&c.image, cmd);
        }
        let mut cmd = vec!["serve".to_string(), slug.to_string()];
        for p in ports_of(slug, self.custom) {
            cmd.push("--port".into());
            cmd.push(format!("{}/{}", p.port, p.protocol));
        }
        (self.image, cmd)
    }

    fn service_env(&self, d: &DeckyConfig, slug: &str) -> Vec<String> {
        let config = d.service_config.get(slug).cloned().unwrap_or_default();
        // The persona (archetype, OS family) picks defaults the settings leave open, e.g. the
        // Windows build SMB and RDP announce (decnet-decky reads DECNET_ARCHETYPE/DECNET_OS).
        let mut env = vec![
            format!("HOSTNAME={}", d.hostname),
            format!("NODE_NAME={}", d.name),
            format!("DECNET_DECKY={}", d.name),
            format!("DECNET_OS={}", d.nmap_os.as_str()),
            format!(
                "DECNET_SERVICE_CONFIG={}",
                serde_json::Value::Object(config)
            ),
        ];
        if let Some(a) = &d.archetype {
            env.push(format!("DECNET_ARCHETYPE={a}"));
        }
        env
    }

    fn service_caps(&self, slug: &str) -> Vec<String> {
        let low_port = ports_of(slug, self.custom).iter().any(|p| p.port < 1024);
        if low_port {
            vec!["NET_BIND_SERVICE".into()]
        } else {
            vec![]
        }
    }

    /// The environment of the OS-fingerprint cloak the base runs (issue 16): the registry's
    /// stack profile as one line and the decky's open TCP ports; empty for Linux, whose
    /// profile changes nothing (no cloak, no extra capability).
    pub fn cloak_env(&self, d: &DeckyConfig) -> Vec<String> {
        if d.nmap_os == registry::OsFamily::Linux {
            return Vec::new();
        }
        let mut ports: Vec<u16> = d
            .services
            .iter()
            .flat_map(|s| ports_of(s, self.custom))
            .filter(|p| p.protocol == registry::Protocol::Tcp)
            .map(|p| p.port)
            .collect();
        ports.sort_unstable();
        ports.dedup();
        let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
        vec![
            format!(
                "DECNET_OS_PROFILE={}",
                decnet_osfp::encode::encode(&d.nmap_os.stack_profile())
            ),
            format!("DECNET_OPEN_PORTS={}", ports.join(",")),
        ]
    }

    /// The base container: owns the IP, MAC and network namespace; OS-profile sysctls; no
    /// capabilities but, for a non-Linux persona, NET_ADMIN and NET_RAW for the cloak it runs
    /// (docs/os-fingerprints.md).
    pub fn base_body(&self, s: &DeckyShape) -> ContainerCreateBody {
        let d = &s.decky;
        let mac = s.mac.as_ref().map(format_mac);
        let endpoint = EndpointSettings {
            ipam_config: Some(EndpointIpamConfig {
                ipv4_address: Some(d.ip.to_string()),
                ..Default::default()
            }),
            // Engine API ≥ 1.44 reads the MAC here…
            mac_address: mac.clone(),
            ..Default::default()
        };
        let sysctls: HashMap<String, String> = d
            .nmap_os
            .sysctls()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let cloak = self.cloak_env(d);
        let caps = (!cloak.is_empty()).then(|| vec!["NET_ADMIN".into(), "NET_RAW".into()]);
        ContainerCreateBody {
            image: Some(self.image.to_string()),
            cmd: Some(vec!["base".into()]),
            env: (!cloak.is_empty()).then_some(cloak),
            hostname: Some(d.hostname.clone()),
            // …older ones only here (TRAPS.md): set both.
            mac_address: mac,
            labels: Some(container_labels(
                self.host,
                &d.name,
                &Role::Base,
                &s.base_hash,
            )),
            host_config: Some(HostConfig {
                network_mode: Some(self.network.to_string()),
                sysctls: Some(sysctls),
                restart_policy: Some(RestartPolicy {
                    name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                    maximum_retry_count: None,
                }),
                cap_drop: Some(vec!["ALL".into()]),
                cap_add: caps,
                security_opt: Some(vec!["no-new-privileges".into()]),
                readonly_rootfs: Some(true),
                memory: Some(BASE_MEMORY),
                pids_limit: Some(BASE_PIDS),
                log_config: Some(log_config()),
                ..Default::default()
            }),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(self.network.to_string(), endpoint)])),
            }),
            ..Default::default()
        }
    }

    /// A service container in the base's network namespace: every capability dropped but
    /// `NET_BIND_SERVICE` when it listens below 1024, no new privileges, read-only root, pids and
    /// memory limits, rotated json-file logs.
    pub fn service_body(&self, s: &DeckyShape, slug: &str, base_id: &str) -> ContainerCreateBody {
        let d = &s.decky;
        let (image, cmd) = self.service_image_cmd(slug);
        let custom = self.custom.iter().any(|c| c.name == slug);
        let caps = self.service_caps(slug);
        ContainerCreateBody {
            image: Some(image.to_string()),
            cmd: (!cmd.is_empty()).then_some(cmd),
            env: Some(self.service_env(d, slug)),
            labels: Some(container_labels(
                self.host,
                &d.name,
                &Role::Service(slug.to_string()),
                s.services.get(slug).map_or("", String::as_str),
            )),
            host_config: Some(HostConfig {
                network_mode: Some(format!("container:{base_id}")),
                restart_policy: Some(RestartPolicy {
                    name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                    maximum_retry_count: None,
                }),
                cap_drop: Some(vec!["ALL".into()]),
                cap_add: (!caps.is_empty()).then_some(caps),
                security_opt: Some(vec!["no-new-privileges".into()]),
                // An operator's own image may need to write; ours never does.
                readonly_rootfs: Some(!custom),
                memory: Some(SERVICE_MEMORY),
                pids_limit: Some(SERVICE_PIDS),
                log_config: Some(log_config()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

fn log_config() -> HostConfigLogConfig {
    HostConfigLogConfig {
        typ: Some("json-file".into()),
        config: Some(HashMap::from([
            ("max-size".to_string(), "10m".to_string()),
            ("max-file".to_string(), "5".to_string()),
        ])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use decnet_core::model::{fixtures, Mode};
    use decnet_core::registry::OsFamily;

    fn config() -> DecnetConfig {
        let mut web = fixtures::decky("a", "10.0.0.10".parse().unwrap(), &["ssh", "http"]);
        web.nmap_os = OsFamily::Linux;
        let mut win = fixtures::decky("b", "10.0.0.11".parse().unwrap(), &["rdp"]);
        win.nmap_os = OsFamily::Windows;
        fixtures::config(Mode::Unihost, "10.0.0.0/24", "10.0.0.1", vec![web, win])
    }

    fn shaper() -> Shaper<'static> {
        Shaper {
            host: "local",
            network: "decnet_lan",
            driver: NetworkDriver::Macvlan,
            image: "decnet-decky:abc",
            custom: &[],
        }
    }

    #[test]
    fn only_a_non_linux_base_runs_the_cloak_with_its_capabilities() {
        let shapes = shaper().shapes(&config());
        let linux = shaper().base_body(&shapes[0]);
        assert_eq!(linux.env, None);
        assert_eq!(linux.host_config.as_ref().unwrap().cap_add, None);
        let win = shaper().base_body(&shapes[1]);
        let caps = win.host_config.as_ref().unwrap().cap_add.clone();
        assert_eq!(
            caps,
            Some(vec!["NET_ADMIN".to_string(), "NET_RAW".to_string()])
        );
        let env = win.env.expect("cloak env");
        let profile = env[0].strip_prefix("DECNET_OS_PROFILE=").expect("profile");
        assert_eq!(
            decnet_osfp::encode::decode(profile),
            Ok(OsFamily::Windows.stack_profile())
        );
        assert_eq!(env[1], "DECNET_OPEN_PORTS=3389");
        // The services keep their hardening.
        let svc = shaper().service_body(&shapes[1], "rdp", "cid");
        let hc = svc.host_config.as_ref().unwrap();
        assert!(!hc
            .cap_add
            .iter()
            .flatten()
            .any(|c| c == "NET_RAW" || c == "NET_ADMIN"));
        // A profile change recreates the base (it is in the hash).
        let mut other = config();
        other.deckies[1].nmap_os = OsFamily::WindowsServer;
        assert_ne!(shaper().shapes(&other)[1].base_hash, shapes[1].base_hash);
    }

    #[test]
    fn bodies_are_hardened_and_labelled() {
        let shapes = shaper().shapes(&config());
        let base = shaper().base_body(&shapes[1]);
        let hc = base.host_config.as_ref().unwrap();
        assert_eq!(
            hc.sysctls.as_ref().unwrap()["net.ipv4.ip_default_ttl"],
            "128"
        );
        assert_eq!(hc.cap_drop.as_deref(), Some(&["ALL".to_string()][..]));
        assert!(base.mac_address.is_some());
        let ep = &base
            .networking_config
            .as_ref()
            .unwrap()
            .endpoints_config
            .as_ref()
            .unwrap()["decnet_lan"];
        assert_eq!(ep.mac_address, base.mac_address);
        assert_eq!(base.labels.as_ref().unwrap()["decnet.role"], "base");

        let svc = shaper().service_body(&shapes[0], "ssh", "cid");
        let hc = svc.host_config.as_ref().unwrap();
        assert_eq!(hc.network_mode.as_deref(), Some("container:cid"));
        assert_eq!(
            hc.cap_add.as_deref(),
            Some(&["NET_BIND_SERVICE".to_string()][..])
        );
        assert_eq!(hc.readonly_rootfs, Some(true));
        assert_eq!(
            hc.security_opt.as_deref(),
            Some(&["no-new-privileges".to_string()][..])
        );
        assert_eq!(
            svc.cmd.as_deref().unwrap(),
            ["serve", "ssh", "--port", "22/tcp"]
        );
        assert_eq!(svc.labels.as_ref().unwrap()["decnet.service"], "ssh");
    }

    #[test]
    fn hashes_follow_what_shapes_containers() {
        let c = config();
        let a = shaper().shapes(&c);
        let mut c2 = c.clone();
        c2.deckies[0].last_mutated = 99.0;
        assert_eq!(a[0].base_hash, shaper().shapes(&c2)[0].base_hash);
        c2.deckies[0].service_config.insert(
            "ssh".into(),
            serde_json::Map::from_iter([("banner".to_string(), serde_json::json!("x"))]),
        );
        let b = shaper().shapes(&c2);
        assert_eq!(a[0].base_hash, b[0].base_hash);
        assert_ne!(a[0].services["ssh"], b[0].services["ssh"]);
        assert_eq!(a[0].services["http"], b[0].services["http"]);
        c2.deckies[0].ip = "10.0.0.50".parse().unwrap();
        let b = shaper().shapes(&c2);
        assert_ne!(a[0].base_hash, b[0].base_hash);
        assert_ne!(
            a[0].services["http"], b[0].services["http"],
            "services follow their base"
        );
        // The other decky is untouched by changes to this one.
        assert_eq!(a[1].base_hash, b[1].base_hash);
        let new_image = Shaper {
            image: "decnet-decky:def",
            ..shaper()
        }
        .shapes(&c);
        assert_ne!(a[0].base_hash, new_image[0].base_hash);
    }

    #[test]
    fn ipvlan_has_no_mac() {
        let s = Shaper {
            driver: NetworkDriver::Ipvlan,
            ..shaper()
        }
        .shapes(&config());
        assert!(s.iter().all(|d| d.mac.is_none()));
    }
}

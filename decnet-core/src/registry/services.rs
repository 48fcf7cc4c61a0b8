//! The built-in services (DECNET 1.2 `decnet/services/*.py`): what each listens on, and the
//! persona settings it takes.
//!
//! The original listed bare port numbers; here every port carries its real-world protocol,
//! so that two services of one decky that would bind the same socket are caught
//! ([`port_clash`]) while e.g. `dns` (53/udp+tcp) and a TCP-only service on 53 would not be.

use std::fmt;

use super::service_config::{self as cfg, ConfigField};

/// A transport protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// `"tcp"` or `"udp"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A port a service listens on. Displays as `443/tcp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct PortSpec {
    /// The port number.
    pub port: u16,
    /// Its protocol.
    pub protocol: Protocol,
}

impl PortSpec {
    /// A TCP port.
    pub const fn tcp(port: u16) -> Self {
        PortSpec {
            port,
            protocol: Protocol::Tcp,
        }
    }

    /// A UDP port.
    pub const fn udp(port: u16) -> Self {
        PortSpec {
            port,
            protocol: Protocol::Udp,
        }
    }
}

impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.port, self.protocol)
    }
}

/// A built-in service.
#[derive(Debug, serde::Serialize)]
pub struct ServiceSpec {
    /// The slug used in configs (`ssh`, `smtp_relay`, …).
    pub slug: &'static str,
    /// Every port it listens on, in the original's order.
    pub ports: &'static [PortSpec],
    /// One line for operators.
    pub description: &'static str,
    /// Runs once per host, never per decky (only `sniffer`).
    pub fleet_singleton: bool,
    /// The persona settings it accepts under `service_config.<slug>`.
    pub config: &'static [ConfigField],
}

impl ServiceSpec {
    /// Whether it binds a privileged port (< 1024), and so needs `NET_BIND_SERVICE`.
    pub fn needs_net_bind_service(&self) -> bool {
        self.ports.iter().any(|p| p.port < 1024)
    }
}

use PortSpec as P;

const fn svc(
    slug: &'static str,
    ports: &'static [PortSpec],
    description: &'static str,
    config: &'static [ConfigField],
) -> ServiceSpec {
    ServiceSpec {
        slug,
        ports,
        description,
        fleet_singleton: false,
        config,
    }
}

/// Sorted by slug (checked by a test; [`service`] relies on it).
static SERVICES: [ServiceSpec; 29] = [
    svc(
        "conpot",
        &[P::tcp(502), P::udp(161), P::tcp(80)],
        "ICS/SCADA controller (Conpot): Modbus, SNMP and a web HMI",
        cfg::CONPOT,
    ),
    svc(
        "dns",
        &[P::udp(53), P::tcp(53)],
        "DNS server: authoritative, recursive or open-resolver bait",
        cfg::DNS,
    ),
    svc(
        "docker_api",
        &[P::tcp(2375), P::tcp(2376)],
        "exposed Docker Engine API (plain and TLS ports)",
        cfg::DOCKER_API,
    ),
    svc(
        "elasticsearch",
        &[P::tcp(9200)],
        "unauthenticated Elasticsearch REST API",
        cfg::ELASTICSEARCH,
    ),
    svc(
        "ftp",
        &[P::tcp(21)],
        "FTP server accepting logins and uploads",
        cfg::FTP,
    ),
    svc(
        "http",
        &[P::tcp(80), P::tcp(443)],
        "web server persona with optional application skins",
        cfg::HTTP,
    ),
    svc(
        "https",
        &[P::tcp(443)],
        "TLS web server persona, optionally HTTP/2 and HTTP/3",
        cfg::HTTPS,
    ),
    svc(
        "imap",
        &[P::tcp(143), P::tcp(993)],
        "IMAP mail server with a bait mailbox",
        cfg::IMAP,
    ),
    svc(
        "k8s",
        &[P::tcp(6443), P::tcp(8080)],
        "Kubernetes API server (secure and insecure ports)",
        cfg::K8S,
    ),
    svc(
        "ldap",
        &[P::tcp(389), P::tcp(636)],
        "LDAP directory capturing bind credentials",
        cfg::LDAP,
    ),
    svc(
        "llmnr",
        &[P::udp(5355), P::udp(5353)],
        "LLMNR/mDNS responder that detects name-poisoning tools",
        cfg::NONE,
    ),
    svc(
        "mongodb",
        &[P::tcp(27017)],
        "unauthenticated MongoDB server",
        cfg::MONGODB,
    ),
    svc(
        "mqtt",
        &[P::tcp(1883)],
        "MQTT broker of an IoT deployment",
        cfg::MQTT,
    ),
    svc(
        "mssql",
        &[P::tcp(1433)],
        "Microsoft SQL Server (TDS) capturing logins",
        cfg::MSSQL,
    ),
    svc(
        "mysql",
        &[P::tcp(3306)],
        "MySQL server handshake capturing logins",
        cfg::MYSQL,
    ),
    svc(
        "pop3",
        &[P::tcp(110), P::tcp(995)],
        "POP3 mail server with a bait mailbox",
        cfg::POP3,
    ),
    svc(
        "postgres",
        &[P::tcp(5432)],
        "PostgreSQL server capturing logins",
        cfg::POSTGRES,
    ),
    svc(
        "rdp",
        &[P::tcp(3389)],
        "Windows Remote Desktop: X.224 cookies, optional NLA credential capture",
        cfg::RDP,
    ),
    svc(
        "redis",
        &[P::tcp(6379)],
        "unauthenticated Redis server",
        cfg::REDIS,
    ),
    svc(
        "sip",
        &[P::udp(5060), P::tcp(5060)],
        "SIP endpoint of a VoIP PBX capturing registrations",
        cfg::SIP,
    ),
    svc(
        "smb",
        &[P::tcp(445), P::tcp(139)],
        "Windows file sharing (SMB) capturing NTLM hashes",
        cfg::SMB,
    ),
    svc(
        "smtp",
        &[P::tcp(25), P::tcp(587)],
        "mail server (MTA persona) quarantining what it receives",
        cfg::SMTP,
    ),
    svc(
        "smtp_relay",
        &[P::tcp(25), P::tcp(587)],
        "open mail relay bait for spammers",
        cfg::SMTP_RELAY,
    ),
    ServiceSpec {
        slug: "sniffer",
        ports: &[],
        description: "passive TLS fingerprinting (JA3) of the decoy LAN; one per host",
        fleet_singleton: true,
        config: cfg::NONE,
    },
    svc(
        "snmp",
        &[P::udp(161)],
        "SNMP agent answering community-string probes",
        cfg::SNMP,
    ),
    svc(
        "ssh",
        &[P::tcp(22)],
        "OpenSSH login capturing credentials and recording sessions",
        cfg::SSH,
    ),
    svc(
        "telnet",
        &[P::tcp(23)],
        "telnet login capturing credentials and recording sessions",
        cfg::TELNET,
    ),
    svc(
        "tftp",
        &[P::udp(69)],
        "TFTP server of network-device configs",
        cfg::NONE,
    ),
    svc(
        "vnc",
        &[P::tcp(5900)],
        "VNC remote desktop capturing authentication attempts",
        cfg::NONE,
    ),
];

/// Every built-in service, sorted by slug (including the fleet singleton `sniffer`).
pub fn services() -> &'static [ServiceSpec] {
    &SERVICES
}

/// The service of that slug.
pub fn service(slug: &str) -> Option<&'static ServiceSpec> {
    SERVICES
        .binary_search_by(|s| s.slug.cmp(slug))
        .ok()
        .map(|i| &SERVICES[i])
}

/// The services a decky may run (all but the fleet singletons), sorted by slug.
pub fn deployable_services() -> impl Iterator<Item = &'static ServiceSpec> {
    SERVICES.iter().filter(|s| !s.fleet_singleton)
}

/// The slugs of [`deployable_services`], sorted.
pub fn deployable_service_slugs() -> Vec<&'static str> {
    deployable_services().map(|s| s.slug).collect()
}

/// Two services of one decky that would bind the same port and protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("services {a:?} and {b:?} both listen on {port}")]
pub struct PortClash {
    /// The service listed first.
    pub a: &'static str,
    /// The service listed later.
    pub b: &'static str,
    /// The contested port.
    pub port: PortSpec,
}

/// The first clash among one decky's services, in list order, if any. Unknown slugs are
/// ignored (they are reported elsewhere); a service listed twice clashes with itself.
pub fn port_clash(slugs: &[&str]) -> Option<PortClash> {
    let specs: Vec<&'static ServiceSpec> = slugs.iter().filter_map(|s| service(s)).collect();
    for (i, later) in specs.iter().enumerate() {
        for earlier in &specs[..i] {
            if let Some(port) = later.ports.iter().find(|p| earlier.ports.contains(p)) {
                return Some(PortClash {
                    a: earlier.slug,
                    b: later.slug,
                    port: *port,
                });
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_unique_and_29() {
        assert_eq!(services().len(), 29);
        for pair in services().windows(2) {
            assert!(
                pair[0].slug < pair[1].slug,
                "{} {}",
                pair[0].slug,
                pair[1].slug
            );
        }
        for s in services() {
            assert_eq!(service(s.slug).map(|f| f.slug), Some(s.slug));
            assert!(!s.description.is_empty(), "{}", s.slug);
        }
        assert!(service("gopher").is_none());
        assert!(service("").is_none());
    }

    #[test]
    fn ports_of_the_reference() {
        use Protocol::{Tcp as T, Udp as U};
        let cases: &[(&str, &[(u16, Protocol)])] = &[
            ("conpot", &[(502, T), (161, U), (80, T)]),
            ("dns", &[(53, U), (53, T)]),
            ("docker_api", &[(2375, T), (2376, T)]),
            ("elasticsearch", &[(9200, T)]),
            ("ftp", &[(21, T)]),
            ("http", &[(80, T), (443, T)]),
            ("https", &[(443, T)]),
            ("imap", &[(143, T), (993, T)]),
            ("k8s", &[(6443, T), (8080, T)]),
            ("ldap", &[(389, T), (636, T)]),
            ("llmnr", &[(5355, U), (5353, U)]),
            ("mongodb", &[(27017, T)]),
            ("mqtt", &[(1883, T)]),
            ("mssql", &[(1433, T)]),
            ("mysql", &[(3306, T)]),
            ("pop3", &[(110, T), (995, T)]),
            ("postgres", &[(5432, T)]),
            ("rdp", &[(3389, T)]),
            ("redis", &[(6379, T)]),
            ("sip", &[(5060, U), (5060, T)]),
            ("smb", &[(445, T), (139, T)]),
            ("smtp", &[(25, T), (587, T)]),
            ("smtp_relay", &[(25, T), (587, T)]),
            ("sniffer", &[]),
            ("snmp", &[(161, U)]),
            ("ssh", &[(22, T)]),
            ("telnet", &[(23, T)]),
            ("tftp", &[(69, U)]),
            ("vnc", &[(5900, T)]),
        ];
        assert_eq!(cases.len(), services().len());
        for (slug, ports) in cases {
            let got: Vec<(u16, Protocol)> = service(slug)
                .unwrap_or_else(|| panic!("{slug} missing"))
                .ports
                .iter()
                .map(|p| (p.port, p.protocol))
                .collect();
            assert_eq!(got, *ports, "{slug}");
        }
    }

    #[test]
    fn sniffer_is_the_only_singleton() {
        let singletons: Vec<_> = services()
            .iter()
            .filter(|s| s.fleet_singleton)
            .map(|s| s.slug)
            .collect();
        assert_eq!(singletons, ["sniffer"]);
        let slugs = deployable_service_slugs();
        assert_eq!(slugs.len(), 28);
        assert!(!slugs.contains(&"sniffer"));
        assert!(slugs.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(deployable_services().count(), 28);
    }

    #[test]
    fn net_bind_service() {
        let check = |slug: &str, expect: bool| {
            assert_eq!(
                service(slug).map(ServiceSpec::needs_net_bind_service),
                Some(expect),
                "{slug}"
            );
        };
        check("ssh", true);
        check("smb", true);
        check("conpot", true);
        check("tftp", true);
        check("redis", false);
        check("llmnr", false);
        check("sniffer", false);
    }

    #[test]
    fn clashes() {
        let check = |slugs: &[&str], expect: Option<(&str, &str, &str)>| {
            let got = port_clash(slugs);
            assert_eq!(
                got.map(|c| (c.a, c.b, c.port.to_string())),
                expect.map(|(a, b, p)| (a, b, p.to_owned())),
                "{slugs:?}"
            );
        };
        check(&["http", "https"], Some(("http", "https", "443/tcp")));
        check(&["https", "http"], Some(("https", "http", "443/tcp")));
        check(
            &["smtp", "smtp_relay"],
            Some(("smtp", "smtp_relay", "25/tcp")),
        );
        check(&["conpot", "http"], Some(("conpot", "http", "80/tcp")));
        check(&["snmp", "conpot"], Some(("snmp", "conpot", "161/udp")));
        check(&["ssh", "ssh"], Some(("ssh", "ssh", "22/tcp")));
        check(&["ssh", "http", "ftp", "dns", "tftp", "sip"], None);
        check(&["ssh", "gopher", "gopher"], None);
        check(&["sniffer", "sniffer"], None);
        check(&[], None);
        assert_eq!(
            port_clash(&["http", "https"]).map(|c| c.to_string()),
            Some(r#"services "http" and "https" both listen on 443/tcp"#.to_owned())
        );
    }

    #[test]
    fn serializes_ports_with_protocols() {
        assert_eq!(
            serde_json::to_value(PortSpec::udp(53)).expect("serialize"),
            serde_json::json!({ "port": 53, "protocol": "udp" })
        );
    }
}

//! Machine archetypes (DECNET 1.2 `decnet/archetypes.py`): ready-made identities combining a
//! service set, distros and an OS fingerprint.

use super::distros::SortedSlugs;
use super::os_profiles::OsFamily;

/// A pre-packaged machine identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Archetype {
    /// The slug used in configs (`windows-workstation`, …).
    pub slug: &'static str,
    /// Human-readable name.
    pub display_name: &'static str,
    /// One line for operators.
    pub description: &'static str,
    /// The services a decky of this type runs (clash-free, all deployable).
    pub services: &'static [&'static str],
    /// The distros fleet builders rotate through.
    pub preferred_distros: &'static [&'static str],
    /// The OS family its TCP/IP stack impersonates.
    pub nmap_os: OsFamily,
}

/// Sorted by slug (checked by a test; [`archetype`] relies on it).
static ARCHETYPES: [Archetype; 15] = [
    Archetype {
        slug: "database-server",
        display_name: "Database Server",
        description: "data tier host: MySQL, PostgreSQL and Redis",
        services: &["mysql", "postgres", "redis"],
        preferred_distros: &["debian", "ubuntu22"],
        nmap_os: OsFamily::Linux,
    },
    Archetype {
        slug: "deaddeck",
        display_name: "Deaddeck (Entry Point)",
        description: "internet-facing entry point with a real interactive SSH login",
        services: &["ssh"],
        preferred_distros: &["debian", "ubuntu22"],
        nmap_os: OsFamily::Linux,
    },
    Archetype {
        slug: "devops-host",
        display_name: "DevOps Host",
        description: "CI/CD or container host: Docker API, SSH and Kubernetes API",
        services: &["docker_api", "ssh", "k8s"],
        preferred_distros: &["ubuntu22", "debian"],
        nmap_os: OsFamily::Linux,
    },
    Archetype {
        slug: "domain-controller",
        display_name: "Domain Controller",
        description: "Active Directory domain controller: LDAP, SMB, RDP and LLMNR",
        services: &["ldap", "smb", "rdp", "llmnr"],
        preferred_distros: &["debian", "ubuntu22"],
        nmap_os: OsFamily::WindowsServer,
    },
    Archetype {
        slug: "file-server",
        display_name: "File Server",
        description: "file storage node: SMB, FTP and SSH/SFTP",
        services: &["smb", "ftp", "ssh"],
        preferred_distros: &["debian", "ubuntu22", "rocky9"],
        nmap_os: OsFamily::Linux,
    },
    Archetype {
        slug: "industrial-control",
        display_name: "Industrial Control System",
        description: "ICS/SCADA controller: Modbus, SNMP and a web HMI (Conpot)",
        // DECNET 1.2 listed ["conpot", "snmp"], but conpot already answers SNMP on 161/udp, so
        // the two could not share the decky's network namespace.
        services: &["conpot"],
        preferred_distros: &["debian"],
        nmap_os: OsFamily::Embedded,
    },
    Archetype {
        slug: "iot-device",
        display_name: "IoT Device",
        description: "embedded IoT device: MQTT, SNMP and Telnet",
        services: &["mqtt", "snmp", "telnet"],
        preferred_distros: &["alpine"],
        nmap_os: OsFamily::Embedded,
    },
    Archetype {
        slug: "linux-server",
        display_name: "Linux Server",
        description: "general-purpose Linux host: SSH and HTTP",
        services: &["ssh", "http"],
        preferred_distros: &["debian", "ubuntu22", "rocky9", "fedora"],
        nmap_os: OsFamily::Linux,
    },
    Archetype {
        slug: "mail-server",
        display_name: "Mail Server",
        description: "mail server: SMTP, POP3 and IMAP",
        services: &["smtp", "pop3", "imap"],
        preferred_distros: &["debian", "ubuntu22"],
        nmap_os: OsFamily::Linux,
    },
    Archetype {
        slug: "monitoring-node",
        display_name: "Monitoring Node",
        description: "infrastructure monitoring host: SNMP and SSH",
        services: &["snmp", "ssh"],
        preferred_distros: &["debian", "rocky9"],
        nmap_os: OsFamily::Linux,
    },
    Archetype {
        slug: "printer",
        display_name: "Network Printer",
        description: "network-attached printer: SNMP and FTP",
        services: &["snmp", "ftp"],
        preferred_distros: &["alpine", "debian"],
        nmap_os: OsFamily::Embedded,
    },
    Archetype {
        slug: "voip-server",
        display_name: "VoIP Server",
        description: "SIP PBX / VoIP gateway",
        services: &["sip"],
        preferred_distros: &["debian", "ubuntu22"],
        nmap_os: OsFamily::Linux,
    },
    Archetype {
        slug: "web-server",
        display_name: "Web Server",
        description: "public-facing web host: HTTP and FTP",
        services: &["http", "ftp"],
        preferred_distros: &["debian", "ubuntu22", "ubuntu20"],
        nmap_os: OsFamily::Linux,
    },
    Archetype {
        slug: "windows-server",
        display_name: "Windows Server",
        description: "Windows domain member server: SMB, RDP and LDAP",
        services: &["smb", "rdp", "ldap"],
        preferred_distros: &["debian", "ubuntu22"],
        nmap_os: OsFamily::WindowsServer,
    },
    Archetype {
        slug: "windows-workstation",
        display_name: "Windows Workstation",
        description: "corporate Windows desktop: SMB shares and RDP",
        services: &["smb", "rdp"],
        preferred_distros: &["debian", "ubuntu22"],
        nmap_os: OsFamily::Windows,
    },
];

/// Every archetype, sorted by slug.
pub fn archetypes() -> &'static [Archetype] {
    &ARCHETYPES
}

/// The archetype of that slug.
pub fn archetype(slug: &str) -> Option<&'static Archetype> {
    ARCHETYPES
        .binary_search_by(|a| a.slug.cmp(slug))
        .ok()
        .map(|i| &ARCHETYPES[i])
}

/// An archetype slug that is not in the registry.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown archetype {0:?} (known: {known})", known = SortedSlugs(archetypes().iter().map(|a| a.slug)))]
pub struct UnknownArchetype(pub String);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{distro, port_clash, service};

    #[test]
    fn table_of_the_reference() {
        use OsFamily::*;
        let cases: [(&str, &[&str], &[&str], OsFamily); 15] = [
            (
                "database-server",
                &["mysql", "postgres", "redis"],
                &["debian", "ubuntu22"],
                Linux,
            ),
            ("deaddeck", &["ssh"], &["debian", "ubuntu22"], Linux),
            (
                "devops-host",
                &["docker_api", "ssh", "k8s"],
                &["ubuntu22", "debian"],
                Linux,
            ),
            (
                "domain-controller",
                &["ldap", "smb", "rdp", "llmnr"],
                &["debian", "ubuntu22"],
                WindowsServer,
            ),
            (
                "file-server",
                &["smb", "ftp", "ssh"],
                &["debian", "ubuntu22", "rocky9"],
                Linux,
            ),
            ("industrial-control", &["conpot"], &["debian"], Embedded),
            (
                "iot-device",
                &["mqtt", "snmp", "telnet"],
                &["alpine"],
                Embedded,
            ),
            (
                "linux-server",
                &["ssh", "http"],
                &["debian", "ubuntu22", "rocky9", "fedora"],
                Linux,
            ),
            (
                "mail-server",
                &["smtp", "pop3", "imap"],
                &["debian", "ubuntu22"],
                Linux,
            ),
            (
                "monitoring-node",
                &["snmp", "ssh"],
                &["debian", "rocky9"],
                Linux,
            ),
            ("printer", &["snmp", "ftp"], &["alpine", "debian"], Embedded),
            ("voip-server", &["sip"], &["debian", "ubuntu22"], Linux),
            (
                "web-server",
                &["http", "ftp"],
                &["debian", "ubuntu22", "ubuntu20"],
                Linux,
            ),
            (
                "windows-server",
                &["smb", "rdp", "ldap"],
                &["debian", "ubuntu22"],
                WindowsServer,
            ),
            (
                "windows-workstation",
                &["smb", "rdp"],
                &["debian", "ubuntu22"],
                Windows,
            ),
        ];
        assert_eq!(archetypes().len(), cases.len());
        for (a, (slug, services, distros, os)) in archetypes().iter().zip(cases) {
            assert_eq!(
                (a.slug, a.services, a.preferred_distros, a.nmap_os),
                (slug, services, distros, os)
            );
            assert_eq!(archetype(slug), Some(a));
            assert!(!a.display_name.is_empty() && !a.description.is_empty());
        }
        assert!(archetype("mainframe").is_none());
    }

    #[test]
    fn sorted() {
        for pair in archetypes().windows(2) {
            assert!(pair[0].slug < pair[1].slug);
        }
    }

    #[test]
    fn services_exist_are_deployable_and_do_not_clash() {
        for a in archetypes() {
            assert!(!a.services.is_empty(), "{}", a.slug);
            for s in a.services {
                let spec = service(s).unwrap_or_else(|| panic!("{}: no service {s}", a.slug));
                assert!(!spec.fleet_singleton, "{}: {s} is a singleton", a.slug);
            }
            assert_eq!(port_clash(a.services), None, "{}", a.slug);
        }
    }

    #[test]
    fn distros_exist() {
        for a in archetypes() {
            assert!(!a.preferred_distros.is_empty(), "{}", a.slug);
            for d in a.preferred_distros {
                assert!(distro(d).is_some(), "{}: no distro {d}", a.slug);
            }
        }
    }

    #[test]
    fn unknown_archetype_message() {
        let msg = UnknownArchetype("mainframe".into()).to_string();
        assert!(
            msg.starts_with(r#"unknown archetype "mainframe" (known: database-server, deaddeck, "#),
            "{msg}"
        );
        assert!(
            msg.ends_with("windows-server, windows-workstation)"),
            "{msg}"
        );
    }
}

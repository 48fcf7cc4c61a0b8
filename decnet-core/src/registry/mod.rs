//! The registries: built-in services, their persona settings, archetypes, distros, OS
//! fingerprint profiles and persona MAC vendors — plain data tables and pure functions, no
//! I/O.
//!
//! The tables are taken from DECNET 1.2 (`decnet/services/*.py`, `archetypes.py`,
//! `distros.py`, `os_fingerprint.py`; see the upstream reference §5). What changed:
//!
//! - Service ports carry their protocol (`dns` 53/udp+tcp, `snmp` 161/udp, …), so two
//!   services of one decky that would bind the same socket are caught by [`port_clash`].
//! - The `industrial-control` archetype runs only `conpot`: its `snmp` companion clashed with
//!   conpot's own SNMP on 161/udp.
//! - Persona settings are typed and validated ([`validate_service_config`]): INI text such as
//!   `nla=false` becomes a real `false` (the original treated it as truthy) and unknown keys
//!   are refused rather than ignored. `banner` was added to ssh, ftp, telnet, pop3 and imap, and
//!   `server_header` to docker_api, k8s and elasticsearch.
//! - Distro images are persona metadata only (no digests: nothing is pulled).
//! - Persona MACs under real vendor OUIs ([`oui`]) are new.
//! - Bait for the API honeypots ([`bait`]: Kubernetes secrets, Elasticsearch documents) is
//!   new; the original's k8s and elasticsearch answered empty lists.
//! - Unknown slugs are errors for the caller to report, never a silent fallback (the original
//!   fell back to linux for an unknown `nmap_os`).

pub mod archetypes;
pub mod bait;
pub mod distros;
pub mod fingerprints;
pub mod os_profiles;
pub mod oui;
pub mod persona;
pub mod service_config;
pub mod services;

pub use archetypes::{archetype, archetypes, Archetype, UnknownArchetype};
pub use distros::{
    distro, distros, is_valid_hostname, random_hostname, Distro, HostnameStyle, UnknownDistro,
};
pub use os_profiles::{OsFamily, UnknownOsFamily};
pub use oui::{
    assign_macs, assign_macs_avoiding, decky_mac, format_mac, oui_candidates, oui_for, Oui,
};
pub use persona::{telnetd, windows_identity, Telnetd, WindowsIdentity};
pub use service_config::{
    service_config_schema, validate_service_config, ConfigField, FieldKind, ServiceConfigError,
};
pub use services::{
    deployable_service_slugs, deployable_services, port_clash, service, services, PortClash,
    PortSpec, Protocol, ServiceSpec,
};

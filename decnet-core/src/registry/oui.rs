//! Persona MAC addresses: real vendor OUIs fitting each kind of machine, and a stable
//! per-decky MAC under them (new in DECNET-rs; the original left MACs to Docker, whose
//! `02:42:…` prefix gives every decky away as a container).
//!
//! Source of the prefixes: the IEEE MA-L registry as shipped in the Debian package
//! `ieee-data` (version 20220827.1), file `/usr/share/ieee-data/oui.txt`, read on 2026-11-26.
//! Every vendor string below is copied verbatim from that file; the `#[ignore]`d test
//! `ouis_exist_in_the_ieee_registry` re-checks them where the package is installed.

use std::collections::HashSet;

use super::os_profiles::OsFamily;

/// A vendor's Organizationally Unique Identifier (the first three octets of its MACs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Oui {
    /// The three octets.
    pub prefix: [u8; 3],
    /// The organisation, as the IEEE registry spells it.
    pub vendor: &'static str,
}

const fn oui(prefix: [u8; 3], vendor: &'static str) -> Oui {
    Oui { prefix, vendor }
}

// Desktops and laptops.
static DELL_CLIENT: Oui = oui([0xF8, 0xBC, 0x12], "Dell Inc.");
static HP_INC: Oui = oui([0xF8, 0x0D, 0xAC], "HP Inc.");
/// LCFC is the Lenovo-owned plant that builds ThinkPads; its OUIs are what ThinkPads carry.
static LENOVO_LCFC: Oui = oui(
    [0x28, 0xD2, 0x44],
    "LCFC(HeFei) Electronics Technology co., ltd",
);
// Servers.
static DELL_SERVER: Oui = oui([0x18, 0x66, 0xDA], "Dell Inc.");
static HPE: Oui = oui([0x94, 0x18, 0x82], "Hewlett Packard Enterprise");
static SUPERMICRO: Oui = oui([0x0C, 0xC4, 0x7A], "Super Micro Computer, Inc.");
static SUPERMICRO_2: Oui = oui([0xAC, 0x1F, 0x6B], "Super Micro Computer, Inc.");
// Network gear and appliances.
static CISCO: Oui = oui([0x00, 0x1B, 0x54], "Cisco Systems, Inc");
static CISCO_2: Oui = oui([0xF4, 0xBD, 0x9E], "Cisco Systems, Inc");
/// PC Engines APU boards, the usual pfSense/OPNsense (BSD) appliance.
static PC_ENGINES: Oui = oui([0x00, 0x0D, 0xB9], "PC Engines GmbH");
// Printers.
static HP_PRINTER: Oui = oui([0xA0, 0xD3, 0xC1], "Hewlett Packard");
// Embedded and IoT.
static ESPRESSIF: Oui = oui([0x24, 0x6F, 0x28], "Espressif Inc.");
static RASPBERRY_PI: Oui = oui([0xDC, 0xA6, 0x32], "Raspberry Pi Trading Ltd");
static RASPBERRY_PI_FOUNDATION: Oui = oui([0xB8, 0x27, 0xEB], "Raspberry Pi Foundation");
static SIEMENS: Oui = oui([0x00, 0x0E, 0x8C], "Siemens AG");
// VoIP.
static POLYCOM: Oui = oui([0x00, 0x04, 0xF2], "Polycom");
static YEALINK: Oui = oui(
    [0x80, 0x5E, 0xC0],
    "YEALINK(XIAMEN) NETWORK TECHNOLOGY CO.,LTD.",
);

static ALL: [&Oui; 17] = [
    &DELL_CLIENT,
    &HP_INC,
    &LENOVO_LCFC,
    &DELL_SERVER,
    &HPE,
    &SUPERMICRO,
    &SUPERMICRO_2,
    &CISCO,
    &CISCO_2,
    &PC_ENGINES,
    &HP_PRINTER,
    &ESPRESSIF,
    &RASPBERRY_PI,
    &RASPBERRY_PI_FOUNDATION,
    &SIEMENS,
    &POLYCOM,
    &YEALINK,
];

/// Every OUI of the table.
pub fn ouis() -> &'static [&'static Oui] {
    &ALL
}

static WORKSTATIONS: [&Oui; 3] = [&DELL_CLIENT, &LENOVO_LCFC, &HP_INC];
static WINDOWS_SERVERS: [&Oui; 2] = [&DELL_SERVER, &HPE];
static DOMAIN_CONTROLLERS: [&Oui; 2] = [&HPE, &DELL_SERVER];
static LINUX_SERVERS: [&Oui; 4] = [&SUPERMICRO, &DELL_SERVER, &HPE, &SUPERMICRO_2];
static WEB_SERVERS: [&Oui; 3] = [&DELL_SERVER, &SUPERMICRO, &HPE];
static DATABASE_SERVERS: [&Oui; 3] = [&HPE, &DELL_SERVER, &SUPERMICRO];
static FILE_SERVERS: [&Oui; 3] = [&SUPERMICRO_2, &DELL_SERVER, &HPE];
static DEVOPS_HOSTS: [&Oui; 2] = [&SUPERMICRO_2, &SUPERMICRO];
static MONITORING_NODES: [&Oui; 3] = [&RASPBERRY_PI, &SUPERMICRO, &DELL_SERVER];
static PRINTERS: [&Oui; 2] = [&HP_PRINTER, &HP_INC];
static IOT_DEVICES: [&Oui; 3] = [&ESPRESSIF, &RASPBERRY_PI, &RASPBERRY_PI_FOUNDATION];
static ICS: [&Oui; 1] = [&SIEMENS];
static VOIP: [&Oui; 2] = [&POLYCOM, &YEALINK];
static BSD: [&Oui; 2] = [&PC_ENGINES, &SUPERMICRO];
static EMBEDDED: [&Oui; 2] = [&RASPBERRY_PI, &ESPRESSIF];
static CISCO_GEAR: [&Oui; 2] = [&CISCO, &CISCO_2];

/// The vendors fitting a decky, best first.
///
/// A built-in archetype decides when its own `nmap_os` is `os`; otherwise (no archetype, an
/// unknown one, or an `nmap_os` overridden away from the archetype's) the OS family decides,
/// so that the MAC's vendor never contradicts the TCP/IP fingerprint.
pub fn oui_candidates(os: OsFamily, archetype: Option<&str>) -> &'static [&'static Oui] {
    let by_archetype = archetype
        .and_then(super::archetypes::archetype)
        .filter(|a| a.nmap_os == os)
        .and_then(|a| match a.slug {
            "windows-workstation" => Some(&WORKSTATIONS[..]),
            "windows-server" => Some(&WINDOWS_SERVERS[..]),
            "domain-controller" => Some(&DOMAIN_CONTROLLERS[..]),
            "linux-server" | "mail-server" | "deaddeck" => Some(&LINUX_SERVERS[..]),
            "web-server" => Some(&WEB_SERVERS[..]),
            "database-server" => Some(&DATABASE_SERVERS[..]),
            "file-server" => Some(&FILE_SERVERS[..]),
            "devops-host" => Some(&DEVOPS_HOSTS[..]),
            "monitoring-node" => Some(&MONITORING_NODES[..]),
            "printer" => Some(&PRINTERS[..]),
            "iot-device" => Some(&IOT_DEVICES[..]),
            "industrial-control" => Some(&ICS[..]),
            "voip-server" => Some(&VOIP[..]),
            _ => None,
        });
    by_archetype.unwrap_or(match os {
        OsFamily::Linux => &LINUX_SERVERS,
        OsFamily::Windows => &WORKSTATIONS,
        OsFamily::WindowsServer => &WINDOWS_SERVERS,
        OsFamily::Bsd => &BSD,
        OsFamily::Embedded => &EMBEDDED,
        OsFamily::Cisco => &CISCO_GEAR,
    })
}

/// The vendor a decky's MAC should carry: the first of [`oui_candidates`].
pub fn oui_for(os: OsFamily, archetype: Option<&str>) -> &'static Oui {
    oui_candidates(os, archetype)
        .first()
        .copied()
        .unwrap_or(&SUPERMICRO)
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a, 64 bits, continuing from `hash`. Fixed by its specification, so MACs derived from
/// it never change across runs, platforms or Rust versions.
fn fnv1a64_from(mut hash: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    hash
}

/// FNV-1a, 64 bits.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    fnv1a64_from(FNV_OFFSET, bytes)
}

/// The MAC for hash `h` under `oui`: the prefix (with the multicast bit cleared) and 24 bits
/// of the hash (both halves folded in).
fn mac_from_hash(oui: &Oui, h: u64) -> [u8; 6] {
    let folded = (h ^ (h >> 32)).to_be_bytes();
    [
        oui.prefix[0] & !0x01,
        oui.prefix[1],
        oui.prefix[2],
        folded[5],
        folded[6],
        folded[7],
    ]
}

/// The hash of the `attempt`-th candidate MAC of a decky: attempt 0 hashes the name alone,
/// later attempts append a zero byte and the attempt number (little-endian).
fn candidate_hash(decky_name: &str, attempt: u32) -> u64 {
    let h = fnv1a64(decky_name.as_bytes());
    if attempt == 0 {
        h
    } else {
        let h = fnv1a64_from(h, &[0]);
        fnv1a64_from(h, &attempt.to_le_bytes())
    }
}

/// A decky's MAC: the vendor prefix followed by 24 bits of the FNV-1a hash of its name.
/// Stable across runs and Rust versions, always unicast. Two names can collide (24 bits);
/// use [`assign_macs`] to give a whole fleet distinct MACs.
pub fn decky_mac(oui: &Oui, decky_name: &str) -> [u8; 6] {
    mac_from_hash(oui, candidate_hash(decky_name, 0))
}

/// One MAC per `(decky name, vendor)`, all distinct, deterministic for a given list.
///
/// Each entry gets its [`decky_mac`] unless an earlier entry already took it; then the name is
/// re-hashed with a counter (1, 2, …) until a free MAC comes up. Only collisions depend on
/// the order, so pass deckies in a stable order (config order).
pub fn assign_macs(wanted: &[(&str, &Oui)]) -> Vec<[u8; 6]> {
    assign_macs_avoiding(wanted, &[])
}

/// Like [`assign_macs`], and also avoids `reserved` (e.g. the MACs of deckies that already
/// run and keep theirs).
pub fn assign_macs_avoiding(wanted: &[(&str, &Oui)], reserved: &[[u8; 6]]) -> Vec<[u8; 6]> {
    let mut taken: HashSet<[u8; 6]> = reserved.iter().copied().collect();
    wanted
        .iter()
        .map(|(name, oui)| {
            // 2^24 suffixes per prefix: a free one is found long before the counter wraps
            // unless a single vendor already holds ~16.7 million MACs.
            let mut attempt = 0u32;
            loop {
                let mac = mac_from_hash(oui, candidate_hash(name, attempt));
                if taken.insert(mac) || attempt == u32::MAX {
                    break mac;
                }
                attempt += 1;
            }
        })
        .collect()
}

/// Lowercase colon form: `0c:c4:7a:12:ab:ef`.
pub fn format_mac(mac: &[u8; 6]) -> String {
    let [a, b, c, d, e, f] = mac;
    format!("{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::archetypes;

    #[test]
    fn fnv_test_vectors() {
        // From the FNV reference test suite (Fowler/Noll/Vo).
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn stable_known_values() {
        let check = |oui: &Oui, name: &str, expect: &str| {
            assert_eq!(format_mac(&decky_mac(oui, name)), expect, "{name}");
        };
        check(&SUPERMICRO, "decky-01", KNOWN_DECKY_01);
        check(&DELL_CLIENT, "decky-01", KNOWN_DECKY_01_DELL);
        check(&CISCO, "", KNOWN_EMPTY);
    }

    // Pinned outputs, cross-checked with an independent Python FNV-1a; they must never
    // change, or every decky's MAC would change on upgrade.
    const KNOWN_DECKY_01: &str = "0c:c4:7a:9f:51:9e";
    const KNOWN_DECKY_01_DELL: &str = "f8:bc:12:9f:51:9e";
    const KNOWN_EMPTY: &str = "00:1b:54:d0:bf:c1";

    #[test]
    fn prefix_is_carried_and_unicast() {
        for oui in ouis() {
            let mac = decky_mac(oui, "web-01");
            assert_eq!(mac[..3], oui.prefix, "{}", oui.vendor);
            assert_eq!(mac[0] & 1, 0, "{}", oui.vendor);
            assert_eq!(
                oui.prefix[0] & 0b11,
                0,
                "{} is not a universal unicast OUI",
                oui.vendor
            );
        }
        let multicast = Oui {
            prefix: [0x01, 0x00, 0x5e],
            vendor: "multicast",
        };
        assert_eq!(decky_mac(&multicast, "x")[0], 0x00);
    }

    #[test]
    fn distinct_for_5000_names() {
        let names: Vec<String> = (0..5000).map(|i| format!("decky-{i:04}")).collect();
        let wanted: Vec<(&str, &Oui)> = names.iter().map(|n| (n.as_str(), &SUPERMICRO)).collect();
        let macs = assign_macs(&wanted);
        assert_eq!(macs.len(), 5000);
        let unique: HashSet<_> = macs.iter().collect();
        assert_eq!(unique.len(), 5000);
        assert!(macs.iter().all(|m| m[..3] == SUPERMICRO.prefix));
        // Deterministic, and the first entry (which can never collide) is its decky_mac.
        assert_eq!(assign_macs(&wanted), macs);
        assert_eq!(macs[0], decky_mac(&SUPERMICRO, "decky-0000"));
        // Almost all entries keep their plain decky_mac.
        let plain = names
            .iter()
            .zip(&macs)
            .filter(|(n, m)| decky_mac(&SUPERMICRO, n) == **m)
            .count();
        assert!(plain >= 4990, "{plain}");
    }

    #[test]
    fn collisions_are_perturbed() {
        let macs = assign_macs(&[("a", &CISCO), ("a", &CISCO), ("a", &CISCO_2)]);
        assert_eq!(macs[0], decky_mac(&CISCO, "a"));
        assert_ne!(macs[1], macs[0]);
        assert_eq!(macs[1][..3], CISCO.prefix);
        // A different prefix does not collide.
        assert_eq!(macs[2], decky_mac(&CISCO_2, "a"));

        let reserved = [decky_mac(&CISCO, "a")];
        let avoided = assign_macs_avoiding(&[("a", &CISCO)], &reserved);
        assert_eq!(avoided[0], macs[1]);
        assert!(assign_macs(&[]).is_empty());
    }

    #[test]
    fn formatting() {
        assert_eq!(
            format_mac(&[0x0c, 0xc4, 0x7a, 0x01, 0xab, 0xff]),
            "0c:c4:7a:01:ab:ff"
        );
    }

    #[test]
    fn vendors_fit_the_persona() {
        use OsFamily::*;
        let check = |os: OsFamily, archetype: Option<&str>, vendor: &str| {
            assert_eq!(oui_for(os, archetype).vendor, vendor, "{os} {archetype:?}");
        };
        check(Windows, Some("windows-workstation"), "Dell Inc.");
        check(WindowsServer, Some("windows-server"), "Dell Inc.");
        check(
            WindowsServer,
            Some("domain-controller"),
            "Hewlett Packard Enterprise",
        );
        check(Linux, Some("linux-server"), "Super Micro Computer, Inc.");
        check(Embedded, Some("printer"), "Hewlett Packard");
        check(Embedded, Some("iot-device"), "Espressif Inc.");
        check(Embedded, Some("industrial-control"), "Siemens AG");
        check(Linux, Some("voip-server"), "Polycom");
        check(Cisco, None, "Cisco Systems, Inc");
        check(Bsd, None, "PC Engines GmbH");
        check(Linux, None, "Super Micro Computer, Inc.");
        check(Windows, None, "Dell Inc.");
        check(Embedded, None, "Raspberry Pi Trading Ltd");
        check(Linux, Some("mainframe"), "Super Micro Computer, Inc.");
        // nmap_os overridden away from the archetype's: the OS decides.
        check(Cisco, Some("printer"), "Cisco Systems, Inc");
    }

    #[test]
    fn every_archetype_has_its_own_vendors() {
        for a in archetypes::archetypes() {
            let got = oui_candidates(a.nmap_os, Some(a.slug));
            assert!(!got.is_empty(), "{}", a.slug);
            assert!(got.iter().all(|o| ouis().contains(o)), "{}", a.slug);
        }
        for os in OsFamily::ALL {
            assert!(!oui_candidates(os, None).is_empty(), "{os}");
        }
    }

    #[test]
    fn table_prefixes_are_unique() {
        let unique: HashSet<_> = ouis().iter().map(|o| o.prefix).collect();
        assert_eq!(unique.len(), ouis().len());
    }

    #[test]
    #[ignore = "reads /usr/share/ieee-data/oui.txt from the Debian package ieee-data"]
    fn ouis_exist_in_the_ieee_registry() {
        let text = std::fs::read_to_string("/usr/share/ieee-data/oui.txt")
            .expect("install the Debian package ieee-data");
        for oui in ouis() {
            let [a, b, c] = oui.prefix;
            let head = format!("{a:02X}-{b:02X}-{c:02X}   (hex)");
            let line = text
                .lines()
                .find(|l| l.starts_with(&head))
                .unwrap_or_else(|| panic!("{head} not in oui.txt"));
            let vendor = line[head.len()..].trim().trim_end_matches(',');
            assert_eq!(vendor, oui.vendor, "{head}");
        }
    }
}

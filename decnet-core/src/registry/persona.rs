//! The OS strings an attacker cross-checks against the TCP/IP fingerprint: SSH
//! identification, HTTP `Server`, SMB native OS and NTLM version, RDP product, FTP/telnet
//! banners and SNMP `sysDescr`. One set per [`OsFamily`], telling the same story as the
//! family's TTL and nmap profile ([`OsFamily::stack_profile`]) — the table test below checks
//! that no string contradicts the family, and that every archetype's services that show an OS
//! string have one.
//!
//! These are defaults for the persona settings (`banner`, `server_header`, …); an operator's
//! `service_config` still wins.

use super::OsFamily;

/// Persona strings of one OS family; `None` where that OS would not run the service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PersonaStrings {
    /// SSH identification string.
    pub ssh_banner: Option<&'static str>,
    /// HTTP `Server` header.
    pub http_server: Option<&'static str>,
    /// SMB native OS (SMB1 session setup) / the product an NTLM challenge's version names.
    pub smb_native_os: Option<&'static str>,
    /// NTLMSSP version (major, minor, build) in the challenge; `None` for Samba (none sent).
    pub ntlm_version: Option<(u8, u8, u16)>,
    /// The product an RDP client shows (`None`: the OS has no RDP server).
    pub rdp_product: Option<&'static str>,
    /// FTP greeting.
    pub ftp_banner: Option<&'static str>,
    /// Telnet pre-login text.
    pub telnet_banner: Option<&'static str>,
    /// SNMP `sysDescr.0`.
    pub snmp_sys_descr: Option<&'static str>,
}

static LINUX: PersonaStrings = PersonaStrings {
    ssh_banner: Some("SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.6"),
    http_server: Some("Apache/2.4.52 (Ubuntu)"),
    smb_native_os: Some("Samba 4.15.13-Ubuntu"),
    ntlm_version: None,
    rdp_product: None,
    ftp_banner: Some("220 (vsFTPd 3.0.5) Ubuntu"),
    telnet_banner: Some("Ubuntu 22.04.3 LTS"),
    snmp_sys_descr: Some("Linux 5.15.0-91-generic #101-Ubuntu SMP x86_64"),
};

static WINDOWS: PersonaStrings = PersonaStrings {
    ssh_banner: Some("SSH-2.0-OpenSSH_for_Windows_8.1"),
    http_server: Some("Microsoft-IIS/10.0"),
    smb_native_os: Some("Windows 10 Pro 19045"),
    ntlm_version: Some((10, 0, 19045)),
    rdp_product: Some("Windows 10 Pro"),
    ftp_banner: Some("220 Microsoft FTP Service"),
    telnet_banner: Some("Welcome to Microsoft Telnet Service"),
    snmp_sys_descr: Some(
        "Hardware: Intel64 Family 6 Model 158 - Software: Windows Version 6.3 (Build 19045 Multiprocessor Free)",
    ),
};

static WINDOWS_SERVER: PersonaStrings = PersonaStrings {
    ssh_banner: Some("SSH-2.0-OpenSSH_for_Windows_8.1"),
    http_server: Some("Microsoft-IIS/10.0"),
    smb_native_os: Some("Windows Server 2019 Standard 17763"),
    ntlm_version: Some((10, 0, 17763)),
    rdp_product: Some("Windows Server 2019 Standard"),
    ftp_banner: Some("220 Microsoft FTP Service"),
    telnet_banner: Some("Welcome to Microsoft Telnet Service"),
    snmp_sys_descr: Some(
        "Hardware: Intel64 Family 6 Model 85 - Software: Windows Version 6.3 (Build 17763 Multiprocessor Free)",
    ),
};

static BSD: PersonaStrings = PersonaStrings {
    ssh_banner: Some("SSH-2.0-OpenSSH_7.3 FreeBSD-20161230"),
    http_server: Some("Apache/2.4.25 (FreeBSD)"),
    smb_native_os: Some("Samba 4.3.13 FreeBSD"),
    ntlm_version: None,
    rdp_product: None,
    ftp_banner: Some("220 FreeBSD FTP server (Version 6.00LS) ready."),
    telnet_banner: Some("FreeBSD/amd64"),
    snmp_sys_descr: Some("FreeBSD 11.0-RELEASE FreeBSD 11.0-RELEASE #0 r306420 amd64"),
};

// One embedded identity for printers, IoT and ICS gear: the nmap profile is a Canon printer's.
static EMBEDDED: PersonaStrings = PersonaStrings {
    ssh_banner: Some("SSH-2.0-dropbear_2019.78 Canon"),
    http_server: Some("Canon HTTP Server"),
    smb_native_os: None,
    ntlm_version: None,
    rdp_product: None,
    ftp_banner: Some("220 Canon MF210 Series FTP server ready"),
    telnet_banner: Some("Canon MF210 Series login"),
    snmp_sys_descr: Some("Canon MF210 Series /P"),
};

static CISCO: PersonaStrings = PersonaStrings {
    ssh_banner: Some("SSH-2.0-Cisco-1.25"),
    http_server: Some("cisco-IOS"),
    smb_native_os: None,
    ntlm_version: None,
    rdp_product: None,
    ftp_banner: None,
    telnet_banner: Some("User Access Verification (Cisco IOS)"),
    snmp_sys_descr: Some(
        "Cisco IOS Software, 3700 Software (C3725-ADVENTERPRISEK9-M), Version 12.4(15)T14, RELEASE SOFTWARE (fc2)",
    ),
};

impl OsFamily {
    /// The family's persona strings.
    pub fn persona_strings(self) -> &'static PersonaStrings {
        match self {
            OsFamily::Linux => &LINUX,
            OsFamily::Windows => &WINDOWS,
            OsFamily::WindowsServer => &WINDOWS_SERVER,
            OsFamily::Bsd => &BSD,
            OsFamily::Embedded => &EMBEDDED,
            OsFamily::Cisco => &CISCO,
        }
    }
}

/// What a Windows persona tells SMB, RDP, LDAP and MSSQL clients about itself: the defaults
/// of the `os_version` and `signing_required` settings (the SMB1 native OS and the NTLM
/// product follow from the build). One row per Windows archetype, so a workstation announces
/// a client build and a domain controller requires SMB signing, as the real ones do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct WindowsIdentity {
    /// NTLMSSP version (major, minor, build) and the OS build scanners print.
    pub os_version: (u8, u8, u16),
    /// The SMB1 native OS string of that build.
    pub native_os: &'static str,
    /// The product an RDP client or `smb-os-discovery` names.
    pub product: &'static str,
    /// SMB SecurityMode "signing required" (domain controllers enforce it by policy).
    pub signing_required: bool,
}

const WIN10_22H2: WindowsIdentity = WindowsIdentity {
    os_version: (10, 0, 19045),
    native_os: "Windows 10 Pro 19045",
    product: "Windows 10 Pro",
    signing_required: false,
};

const SERVER_2019: WindowsIdentity = WindowsIdentity {
    os_version: (10, 0, 17763),
    native_os: "Windows Server 2019 Standard 17763",
    product: "Windows Server 2019 Standard",
    signing_required: false,
};

const SERVER_2022: WindowsIdentity = WindowsIdentity {
    os_version: (10, 0, 20348),
    native_os: "Windows Server 2022 Standard 20348",
    product: "Windows Server 2022 Standard",
    signing_required: false,
};

/// Sorted by archetype slug (checked by a test; [`windows_identity`] relies on it).
///
/// `file-server` is listed although its stack profile is DECNET 1.2's Linux one: its SMB
/// responder speaks as Windows (there is no Samba persona), and issue 14 counts it among the
/// Windows personas.
static WINDOWS_IDENTITIES: [(&str, WindowsIdentity); 4] = [
    (
        "domain-controller",
        WindowsIdentity {
            signing_required: true,
            ..SERVER_2019
        },
    ),
    ("file-server", SERVER_2022),
    ("windows-server", SERVER_2019),
    ("windows-workstation", WIN10_22H2),
];

/// The Windows identity of a decky with that archetype and OS family: the archetype's row,
/// else the family's (a workstation for [`OsFamily::Windows`], a member server for
/// [`OsFamily::WindowsServer`]); `None` when neither says Windows.
pub fn windows_identity(
    archetype: Option<&str>,
    family: Option<OsFamily>,
) -> Option<&'static WindowsIdentity> {
    let by_archetype = archetype.and_then(|a| {
        WINDOWS_IDENTITIES
            .binary_search_by(|(slug, _)| (*slug).cmp(a))
            .ok()
            .map(|i| &WINDOWS_IDENTITIES[i].1)
    });
    by_archetype.or(match family? {
        OsFamily::Windows => Some(&WIN10_22H2),
        OsFamily::WindowsServer => Some(&SERVER_2019),
        _ => None,
    })
}

/// The telnet daemon a persona runs: what it negotiates and prints before `login:`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Telnetd {
    /// netkit telnetd of a Linux server (Ubuntu's): the distro's banner, then `host login:`.
    Netkit,
    /// BusyBox telnetd of embedded gear (IoT, printers, PLCs): `host login:` after a blank
    /// `/etc/issue`, as nmap's BusyBox match expects.
    BusyBox,
}

/// The telnetd of a decky of that OS family (embedded devices run BusyBox).
pub fn telnetd(family: Option<OsFamily>) -> Telnetd {
    match family {
        Some(OsFamily::Embedded) => Telnetd::BusyBox,
        _ => Telnetd::Netkit,
    }
}

impl PersonaStrings {
    /// Every string with the service it belongs to.
    pub fn strings(&self) -> Vec<(&'static str, &'static str)> {
        [
            ("ssh", self.ssh_banner),
            ("http", self.http_server),
            ("smb", self.smb_native_os),
            ("rdp", self.rdp_product),
            ("ftp", self.ftp_banner),
            ("telnet", self.telnet_banner),
            ("snmp", self.snmp_sys_descr),
        ]
        .into_iter()
        .filter_map(|(svc, s)| s.map(|s| (svc, s)))
        .collect()
    }

    /// The string a service shows, if the service shows one of these.
    pub fn for_service(&self, slug: &str) -> Option<Option<&'static str>> {
        Some(match slug {
            "ssh" => self.ssh_banner,
            "http" | "https" => self.http_server,
            "smb" => self.smb_native_os,
            "rdp" => self.rdp_product,
            "ftp" => self.ftp_banner,
            "telnet" => self.telnet_banner,
            "snmp" => self.snmp_sys_descr,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::archetypes;
    use decnet_osfp::nmap;

    /// Per family: the TTL and the words that say which OS it is. Every string of the family
    /// names one of its words and none of another family's.
    const STORY: [(OsFamily, u8, &[&str]); 6] = [
        (OsFamily::Linux, 64, &["Ubuntu", "Linux"]),
        (OsFamily::Windows, 128, &["Windows", "Microsoft"]),
        (OsFamily::WindowsServer, 128, &["Windows", "Microsoft"]),
        (OsFamily::Bsd, 64, &["FreeBSD"]),
        (OsFamily::Embedded, 255, &["Canon"]),
        (OsFamily::Cisco, 255, &["Cisco", "cisco"]),
    ];

    fn words(f: OsFamily) -> &'static [&'static str] {
        STORY
            .iter()
            .find(|(g, _, _)| *g == f)
            .map(|(_, _, w)| *w)
            .unwrap_or(&[])
    }

    #[test]
    fn each_family_tells_one_story() {
        for (family, ttl, own) in STORY {
            assert_eq!(family.ttl(), ttl, "{family}: sysctl ttl");
            assert_eq!(family.stack_profile().ttl, ttl, "{family}: mangler ttl");
            let fp = nmap::parse_fingerprint(family.nmap_reference());
            assert_eq!(
                nmap::expected(&fp, "T1", "TG"),
                Some(format!("{ttl:X}").as_str()),
                "{family}: reference fingerprint's initial ttl"
            );
            let strings = family.persona_strings().strings();
            assert!(!strings.is_empty(), "{family}");
            for (svc, s) in strings {
                assert!(
                    own.iter().any(|w| s.contains(w)),
                    "{family} {svc} {s:?} names no {own:?}"
                );
                for (other, _, theirs) in STORY {
                    if words(other) == own {
                        continue;
                    }
                    for w in theirs.iter().filter(|w| !own.contains(w)) {
                        assert!(!s.contains(w), "{family} {svc} {s:?} names {other}'s {w:?}");
                    }
                }
            }
            let p = family.persona_strings();
            let windows = matches!(family, OsFamily::Windows | OsFamily::WindowsServer);
            assert_eq!(
                p.rdp_product.is_some(),
                windows,
                "{family}: rdp only on windows"
            );
            assert_eq!(p.ntlm_version.is_some(), windows, "{family}: ntlm version");
            if let (Some((_, _, build)), Some(os)) = (p.ntlm_version, p.smb_native_os) {
                assert!(
                    os.contains(&build.to_string()),
                    "{family}: smb os and ntlm build agree"
                );
            }
        }
    }

    #[test]
    fn every_archetype_has_a_string_for_each_os_revealing_service() {
        for a in archetypes::archetypes() {
            let p = a.nmap_os.persona_strings();
            for svc in a.services {
                if let Some(s) = p.for_service(svc) {
                    assert!(
                        s.is_some(),
                        "{} runs {svc} but {} has no string for it",
                        a.slug,
                        a.nmap_os
                    );
                }
            }
        }
    }

    #[test]
    fn windows_identity_per_persona() {
        use OsFamily::*;
        // (archetype, family, build, native os, signing required)
        let check = |archetype: Option<&str>,
                     family: Option<OsFamily>,
                     expect: Option<(u16, &str, bool)>| {
            let got = windows_identity(archetype, family)
                .map(|w| (w.os_version.2, w.native_os, w.signing_required));
            assert_eq!(got, expect, "{archetype:?} {family:?}");
        };
        check(
            Some("windows-workstation"),
            Some(Windows),
            Some((19045, "Windows 10 Pro 19045", false)),
        );
        check(
            Some("windows-server"),
            Some(WindowsServer),
            Some((17763, "Windows Server 2019 Standard 17763", false)),
        );
        check(
            Some("domain-controller"),
            Some(WindowsServer),
            Some((17763, "Windows Server 2019 Standard 17763", true)),
        );
        check(
            Some("file-server"),
            Some(Linux),
            Some((20348, "Windows Server 2022 Standard 20348", false)),
        );
        check(
            None,
            Some(Windows),
            Some((19045, "Windows 10 Pro 19045", false)),
        );
        check(
            Some("custom"),
            Some(WindowsServer),
            Some((17763, "Windows Server 2019 Standard 17763", false)),
        );
        check(None, Some(Linux), None);
        check(Some("linux-server"), Some(Linux), None);
        check(None, None, None);
    }

    #[test]
    fn windows_identities_are_sorted_archetypes_and_agree_with_themselves() {
        for pair in WINDOWS_IDENTITIES.windows(2) {
            assert!(pair[0].0 < pair[1].0);
        }
        for (slug, w) in &WINDOWS_IDENTITIES {
            let a = archetypes::archetype(slug).unwrap_or_else(|| panic!("no archetype {slug}"));
            assert!(a.services.contains(&"smb"), "{slug} runs no smb");
            let (major, minor, build) = w.os_version;
            assert_eq!((major, minor), (10, 0), "{slug}");
            assert_eq!(w.native_os, format!("{} {build}", w.product), "{slug}");
            let server = w.product.contains("Server");
            assert_eq!(
                server,
                build != 19045,
                "{slug}: client build only on a workstation"
            );
            if matches!(a.nmap_os, OsFamily::Windows | OsFamily::WindowsServer) {
                assert_eq!(
                    a.nmap_os == OsFamily::WindowsServer,
                    server,
                    "{slug}: family"
                );
            }
        }
        // Each Windows family's own strings agree with its fallback row.
        for f in [OsFamily::Windows, OsFamily::WindowsServer] {
            let w = windows_identity(None, Some(f)).expect("windows");
            let p = f.persona_strings();
            assert_eq!(p.ntlm_version, Some(w.os_version), "{f}");
            assert_eq!(p.smb_native_os, Some(w.native_os), "{f}");
            assert_eq!(p.rdp_product, Some(w.product), "{f}");
        }
    }

    #[test]
    fn embedded_personas_run_busybox_telnetd() {
        for a in archetypes::archetypes() {
            let expect = if a.nmap_os == OsFamily::Embedded {
                Telnetd::BusyBox
            } else {
                Telnetd::Netkit
            };
            assert_eq!(telnetd(Some(a.nmap_os)), expect, "{}", a.slug);
        }
        assert_eq!(
            telnetd(archetypes::archetype("iot-device").map(|a| a.nmap_os)),
            Telnetd::BusyBox
        );
        assert_eq!(telnetd(None), Telnetd::Netkit);
    }
}

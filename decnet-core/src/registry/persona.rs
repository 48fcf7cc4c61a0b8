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
    smb_native_os: Some("Windows Server 2016 Standard 14393"),
    ntlm_version: Some((10, 0, 14393)),
    rdp_product: Some("Windows Server 2016 Standard"),
    ftp_banner: Some("220 Microsoft FTP Service"),
    telnet_banner: Some("Welcome to Microsoft Telnet Service"),
    snmp_sys_descr: Some(
        "Hardware: Intel64 Family 6 Model 85 - Software: Windows Version 6.3 (Build 14393 Multiprocessor Free)",
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
}

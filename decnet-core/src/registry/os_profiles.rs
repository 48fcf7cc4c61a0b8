//! OS fingerprint profiles: the kernel knobs that make a decky's TCP/IP stack look like the
//! OS family it claims to be (DECNET 1.2 `decnet/os_fingerprint.py`).
//!
//! Every family carries the same ten namespaced sysctls, in the same order, as strings (the
//! form Docker's `sysctls` option takes). They are applied to a decky's *base* container only.

use std::fmt;
use std::str::FromStr;

/// The OS family a decky impersonates (the `nmap_os` field of a decky).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum OsFamily {
    /// A Linux server or desktop (the default).
    #[default]
    Linux,
    /// A Windows desktop (10/11).
    Windows,
    /// A Windows Server.
    WindowsServer,
    /// FreeBSD / OpenBSD / pfSense.
    Bsd,
    /// Printers, IoT and industrial gear.
    Embedded,
    /// Cisco IOS network equipment.
    Cisco,
}

/// The sysctl names, in the order of every profile (reference §5.6).
pub const SYSCTL_KEYS: [&str; 10] = [
    "net.ipv4.ip_default_ttl",
    "net.ipv4.tcp_syn_retries",
    "net.ipv4.tcp_timestamps",
    "net.ipv4.tcp_window_scaling",
    "net.ipv4.tcp_sack",
    "net.ipv4.tcp_ecn",
    "net.ipv4.ip_no_pmtu_disc",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.icmp_ratelimit",
    "net.ipv4.icmp_ratemask",
];

/// Builds a profile from its ten values, in [`SYSCTL_KEYS`] order.
macro_rules! profile {
    ($($v:literal),* $(,)?) => {{
        const VALUES: [&str; 10] = [$($v),*];
        let mut out = [("", ""); 10];
        let mut i = 0;
        while i < 10 {
            out[i] = (SYSCTL_KEYS[i], VALUES[i]);
            i += 1;
        }
        out
    }};
}

// Values in SYSCTL_KEYS order: ttl, syn_retries, timestamps, window_scaling, sack, ecn,
// no_pmtu_disc, fin_timeout, icmp_ratelimit, icmp_ratemask.
static LINUX: [(&str, &str); 10] =
    profile!("64", "6", "1", "1", "1", "2", "0", "60", "1000", "6168");
static WINDOWS: [(&str, &str); 10] = profile!("128", "2", "1", "1", "1", "0", "0", "30", "0", "0");
static WINDOWS_SERVER: [(&str, &str); 10] =
    profile!("128", "2", "1", "1", "1", "1", "0", "30", "0", "0");
static BSD: [(&str, &str); 10] = profile!("64", "6", "1", "1", "1", "0", "0", "60", "250", "6168");
static EMBEDDED: [(&str, &str); 10] = profile!("255", "3", "0", "0", "0", "0", "1", "15", "0", "0");
static CISCO: [(&str, &str); 10] = profile!("255", "2", "0", "0", "0", "0", "1", "15", "0", "0");

impl OsFamily {
    /// Every family, in the reference's order.
    pub const ALL: [OsFamily; 6] = [
        OsFamily::Linux,
        OsFamily::Windows,
        OsFamily::WindowsServer,
        OsFamily::Bsd,
        OsFamily::Embedded,
        OsFamily::Cisco,
    ];

    /// The wire name (`"linux"`, `"windows_server"`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            OsFamily::Linux => "linux",
            OsFamily::Windows => "windows",
            OsFamily::WindowsServer => "windows_server",
            OsFamily::Bsd => "bsd",
            OsFamily::Embedded => "embedded",
            OsFamily::Cisco => "cisco",
        }
    }

    /// The family's ten sysctls, in [`SYSCTL_KEYS`] order, values as strings.
    pub fn sysctls(self) -> &'static [(&'static str, &'static str)] {
        match self {
            OsFamily::Linux => &LINUX,
            OsFamily::Windows => &WINDOWS,
            OsFamily::WindowsServer => &WINDOWS_SERVER,
            OsFamily::Bsd => &BSD,
            OsFamily::Embedded => &EMBEDDED,
            OsFamily::Cisco => &CISCO,
        }
    }

    /// The IP TTL the family's packets leave with (`net.ipv4.ip_default_ttl`).
    pub fn ttl(self) -> u8 {
        match self {
            OsFamily::Linux | OsFamily::Bsd => 64,
            OsFamily::Windows | OsFamily::WindowsServer => 128,
            OsFamily::Embedded | OsFamily::Cisco => 255,
        }
    }
}

impl fmt::Display for OsFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// An `nmap_os` value that names no [`OsFamily`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown nmap_os {0:?} (known: linux, windows, windows_server, bsd, embedded, cisco)")]
pub struct UnknownOsFamily(pub String);

impl FromStr for OsFamily {
    type Err = UnknownOsFamily;

    /// Parses a wire name. ASCII case is ignored (`Windows` is `windows`); nothing else is
    /// guessed, so a typo is an error rather than a silent fallback to linux as in the original.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OsFamily::ALL
            .into_iter()
            .find(|f| f.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownOsFamily(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole §5.6 table: one row per sysctl, columns linux, windows, windows_server, bsd,
    /// embedded, cisco.
    const TABLE: [(&str, [&str; 6]); 10] = [
        (
            "net.ipv4.ip_default_ttl",
            ["64", "128", "128", "64", "255", "255"],
        ),
        ("net.ipv4.tcp_syn_retries", ["6", "2", "2", "6", "3", "2"]),
        ("net.ipv4.tcp_timestamps", ["1", "1", "1", "1", "0", "0"]),
        (
            "net.ipv4.tcp_window_scaling",
            ["1", "1", "1", "1", "0", "0"],
        ),
        ("net.ipv4.tcp_sack", ["1", "1", "1", "1", "0", "0"]),
        ("net.ipv4.tcp_ecn", ["2", "0", "1", "0", "0", "0"]),
        ("net.ipv4.ip_no_pmtu_disc", ["0", "0", "0", "0", "1", "1"]),
        (
            "net.ipv4.tcp_fin_timeout",
            ["60", "30", "30", "60", "15", "15"],
        ),
        (
            "net.ipv4.icmp_ratelimit",
            ["1000", "0", "0", "250", "0", "0"],
        ),
        (
            "net.ipv4.icmp_ratemask",
            ["6168", "0", "0", "6168", "0", "0"],
        ),
    ];

    #[test]
    fn every_value_of_the_reference_table() {
        for (col, family) in OsFamily::ALL.into_iter().enumerate() {
            let got = family.sysctls();
            assert_eq!(got.len(), 10, "{family}");
            for (row, (key, values)) in TABLE.iter().enumerate() {
                assert_eq!(got[row], (*key, values[col]), "{family} {key}");
            }
        }
    }

    #[test]
    fn ttl_matches_the_sysctl() {
        let check = |family: OsFamily, ttl: u8| {
            assert_eq!(family.ttl(), ttl, "{family}");
            assert_eq!(
                family.sysctls()[0],
                ("net.ipv4.ip_default_ttl", &*ttl.to_string())
            );
        };
        check(OsFamily::Linux, 64);
        check(OsFamily::Windows, 128);
        check(OsFamily::WindowsServer, 128);
        check(OsFamily::Bsd, 64);
        check(OsFamily::Embedded, 255);
        check(OsFamily::Cisco, 255);
    }

    #[test]
    fn names_round_trip() {
        let check = |s: &str, family: OsFamily| {
            assert_eq!(family.as_str(), s);
            assert_eq!(family.to_string(), s);
            assert_eq!(s.parse::<OsFamily>(), Ok(family));
            assert_eq!(
                serde_json::to_string(&family).expect("serialize"),
                format!("\"{s}\"")
            );
            assert_eq!(
                serde_json::from_str::<OsFamily>(&format!("\"{s}\"")).expect("deserialize"),
                family
            );
        };
        check("linux", OsFamily::Linux);
        check("windows", OsFamily::Windows);
        check("windows_server", OsFamily::WindowsServer);
        check("bsd", OsFamily::Bsd);
        check("embedded", OsFamily::Embedded);
        check("cisco", OsFamily::Cisco);
        assert_eq!(OsFamily::default(), OsFamily::Linux);
        assert_eq!("Windows".parse::<OsFamily>(), Ok(OsFamily::Windows));
    }

    #[test]
    fn unknown_family_is_an_error() {
        let err = "solaris".parse::<OsFamily>().expect_err("solaris");
        assert_eq!(
            err.to_string(),
            r#"unknown nmap_os "solaris" (known: linux, windows, windows_server, bsd, embedded, cisco)"#
        );
        assert!("windows-server".parse::<OsFamily>().is_err());
        assert!("".parse::<OsFamily>().is_err());
        assert!(serde_json::from_str::<OsFamily>("\"solaris\"").is_err());
    }
}

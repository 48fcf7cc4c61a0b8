//! OS fingerprint profiles as data: per [`OsFamily`], how its TCP/IP stack answers nmap's
//! OS-detection probes, read off one reference fingerprint of `nmap-os-db` (nmap 7.93, Debian
//! 12) per family. The decky's mangler ([`decnet_osfp::Mangler`]) applies them on top of the
//! family's sysctls ([`OsFamily::sysctls`]), which do what the kernel can do itself (TTL,
//! timestamps, SACK, window scaling, ECN).
//!
//! To tune or add a profile: copy the `Fingerprint` entry of the OS from
//! `/usr/share/nmap/nmap-os-db` into a `*_NMAP` constant, fill a [`StackProfile`] from its test
//! lines (the field docs name the nmap field each one sets), and add the family's row to the
//! table test below; it fails on every field the mangled replies get wrong that is not listed
//! as a known gap with its reason. `docs/os-fingerprints.md` walks through it.

use std::borrow::Cow;

use decnet_osfp::{
    AckRule, DfRule, EchoRules, IpIdMode, IpIdRules, OptionLayouts, ProbeReply, RstRules, SeqRule,
    StackProfile,
};

use super::OsFamily;

/// nmap-os-db (nmap 7.93): `Fingerprint Linux 5.3 - 5.4`.
pub const LINUX_NMAP: &str = "\
Fingerprint Linux 5.3 - 5.4\n\
SEQ(SP=FE-108%GCD=1-6%ISR=104-10E%CI=Z%II=I%TS=A)\n\
OPS(O1=M5B4ST11NWA%O2=M5B4ST11NWA%O3=M5B4NNT11NWA%O4=M5B4ST11NWA%O5=M5B4ST11NWA%O6=M5B4ST11)\n\
WIN(W1=FE88%W2=FE88%W3=FE88%W4=FE88%W5=FE88%W6=FE88)\n\
ECN(R=Y%DF=Y|N%T=3B-45%TG=40%W=FAF0%O=M5B4NNSNWA%CC=Y%Q=)\n\
T1(R=Y%DF=Y|N%T=3B-45%TG=40%S=O%A=S+%F=AS%RD=0%Q=)\n\
T2(R=N)\n\
T3(R=N)\n\
T4(R=Y%DF=Y%T=3B-45%TG=40%W=0%S=A%A=Z%F=R%O=%RD=0%Q=)\n\
T5(R=Y%DF=Y%T=3B-45%TG=40%W=0%S=Z%A=S+%F=AR%O=%RD=0%Q=)\n\
T6(R=Y%DF=Y%T=3B-45%TG=40%W=0%S=A%A=Z%F=R%O=%RD=0%Q=)\n\
T7(R=Y%DF=Y%T=3B-45%TG=40%W=0%S=Z%A=S+%F=AR%O=%RD=0%Q=)\n\
U1(DF=N%T=3B-45%TG=40%IPL=164%UN=0%RIPL=G%RID=G%RIPCK=G%RUCK=G%RUD=G)\n\
IE(DFI=N%T=3B-45%TG=40%CD=S)\n\
";

/// nmap-os-db (nmap 7.93): `Fingerprint Microsoft Windows 10`.
pub const WINDOWS_NMAP: &str = "\
Fingerprint Microsoft Windows 10\n\
SEQ(SP=FD-107%GCD=1-6%ISR=101-10B%TI=I%CI=I%II=I%SS=S%TS=A)\n\
OPS(O1=M5B4NW8ST11%O2=M5B4NW8ST11%O3=M5B4NW8NNT11%O4=M5B4NW8ST11%O5=M5B4NW8ST11%O6=M5B4ST11)\n\
WIN(W1=2000%W2=2000%W3=2000%W4=2000%W5=2000%W6=2000)\n\
ECN(R=Y%DF=Y%T=7B-85%TG=80%W=2000%O=M5B4NW8NNS%CC=N%Q=)\n\
T1(R=Y%DF=Y%T=7B-85%TG=80%S=O%A=S+%F=AS%RD=0%Q=)\n\
T2(R=Y%DF=Y%T=7B-85%TG=80%W=0%S=Z%A=S%F=AR%O=%RD=0%Q=)\n\
T3(R=N)\n\
T4(R=Y%DF=Y%T=7B-85%TG=80%W=0%S=A%A=O%F=R%O=%RD=0%Q=)\n\
T5(R=Y%DF=Y%T=7B-85%TG=80%W=0%S=Z%A=S+%F=AR%O=%RD=0%Q=)\n\
T6(R=Y%DF=Y%T=7B-85%TG=80%W=0%S=A%A=O%F=R%O=%RD=0%Q=)\n\
T7(R=Y%DF=Y%T=7B-85%TG=80%W=0%S=Z%A=S+%F=AR%O=%RD=0%Q=)\n\
U1(DF=N%T=7B-85%TG=80%IPL=164%UN=0%RIPL=G%RID=G%RIPCK=G%RUCK=G%RUD=G)\n\
IE(DFI=N%T=7B-85%TG=80%CD=Z)\n\
";

/// nmap-os-db (nmap 7.93): `Fingerprint Microsoft Windows Server 2016`.
pub const WINDOWS_SERVER_NMAP: &str = "\
Fingerprint Microsoft Windows Server 2016\n\
SEQ(SP=FB-105%GCD=1-6%ISR=FC-106%TI=RD%CI=I%II=I%TS=A|U)\n\
OPS(O1=M5B4NW8ST11%O2=M5B4NW8ST11%O3=M5B4NW8NNT11%O4=M5B4NW8ST11%O5=M5B4NW8ST11%O6=M5B4ST11)\n\
WIN(W1=2000%W2=2000%W3=2000%W4=2000%W5=2000%W6=2000)\n\
ECN(R=Y%DF=Y%T=7B-85%TG=80%W=2000%O=M5B4NW8NNS%CC=Y%Q=)\n\
T1(R=Y%DF=Y%T=7B-85%TG=80%S=O%A=S+%F=AS%RD=0%Q=)\n\
T2(R=Y%DF=Y%T=7B-85%TG=80%W=0%S=Z%A=S%F=AR%O=%RD=0%Q=)\n\
T3(R=Y%DF=Y%T=7B-85%TG=80%W=0%S=Z%A=O%F=AR%O=%RD=0%Q=)\n\
T4(R=Y%DF=Y%T=7B-85%TG=80%W=0%S=A%A=O%F=R%O=%RD=0%Q=)\n\
T5(R=Y%DF=Y%T=7B-85%TG=80%W=0%S=Z%A=S+%F=AR%O=%RD=0%Q=)\n\
T6(R=Y%DF=Y%T=7B-85%TG=80%W=0%S=A%A=O%F=R%O=%RD=0%Q=)\n\
T7(R=Y%DF=Y%T=7B-85%TG=80%W=0%S=Z%A=S+%F=AR%O=%RD=0%Q=)\n\
U1(DF=N%T=7B-85%TG=80%IPL=164%UN=0%RIPL=G%RID=G%RIPCK=G%RUCK=G%RUD=G)\n\
IE(DFI=N%T=7B-85%TG=80%CD=Z)\n\
";

/// nmap-os-db (nmap 7.93): `Fingerprint FreeBSD 11.0-RELEASE`.
pub const BSD_NMAP: &str = "\
Fingerprint FreeBSD 11.0-RELEASE\n\
SEQ(SP=FD-10B%GCD=1-6%ISR=107-111%TI=Z%CI=Z%TS=21|22)\n\
OPS(O1=M5B4NW6ST11%O2=M578NW6ST11%O3=M280NW6NNT11%O4=M3FD8NW6ST11%O5=M218NW6ST11%O6=M109ST11)\n\
WIN(W1=FFFF%W2=FFFF%W3=FFFF%W4=FFFF%W5=FFFF%W6=FFFF)\n\
ECN(R=Y%DF=Y%T=3B-45%TG=40%W=FFFF%O=M5B4NW6SLL%CC=Y%Q=)\n\
T1(R=Y%DF=Y%T=3B-45%TG=40%S=O%A=S+%F=AS%RD=0%Q=)\n\
T2(R=N)\n\
T3(R=Y%DF=Y%T=3B-45%TG=40%W=FFFF%S=O%A=S+%F=AS%O=M109NW6ST11%RD=0%Q=)\n\
T4(R=Y%DF=Y%T=3B-45%TG=40%W=0%S=A%A=Z%F=R%O=%RD=0%Q=)\n\
T5(R=Y%DF=Y%T=3B-45%TG=40%W=0%S=Z%A=S+%F=AR%O=%RD=0%Q=)\n\
T6(R=Y%DF=Y%T=3B-45%TG=40%W=0%S=A%A=Z%F=R%O=%RD=0%Q=)\n\
T7(R=Y%DF=Y%T=3B-45%TG=40%W=0%S=Z%A=S%F=AR%O=%RD=0%Q=)\n\
U1(DF=N%T=3B-45%TG=40%IPL=38%UN=0%RIPL=G%RID=G%RIPCK=Z%RUCK=G%RUD=G)\n\
IE(DFI=S%T=3B-45%TG=40%CD=S)\n\
";

/// nmap-os-db (nmap 7.93): `Fingerprint Cisco 1812, 3640, or 3700 router (IOS 12.4)`.
pub const CISCO_NMAP: &str = "\
Fingerprint Cisco 1812, 3640, or 3700 router (IOS 12.4)\n\
SEQ(SP=FA-10A%GCD=1-6%ISR=103-10D%TI=RD%II=RI%TS=U)\n\
OPS(O1=M5B4%O2=M578%O3=M280%O4=M218%O5=M218%O6=M109)\n\
WIN(W1=1020%W2=1020%W3=1020%W4=1020%W5=1020%W6=1020)\n\
ECN(R=Y%DF=N%T=FA-104%TG=FF%W=1020%O=M5B4%CC=N%Q=)\n\
T1(R=Y%DF=N%T=FA-104%TG=FF%S=O%A=S+%F=AS%RD=0%Q=)\n\
T2(R=Y%DF=N%T=FA-104%TG=FF%W=0%S=A%A=S%F=AR%O=%RD=0%Q=)\n\
T3(R=N)\n\
T4(R=Y%DF=N%T=FA-104%TG=FF%W=0%S=A%A=Z%F=R%O=%RD=0%Q=)\n\
T5(R=Y%DF=N%T=FA-104%TG=FF%W=0%S=A%A=S+%F=AR%O=%RD=0%Q=)\n\
T6(R=Y%DF=N%T=FA-104%TG=FF%W=0%S=A%A=Z%F=R%O=%RD=0%Q=)\n\
T7(R=Y%DF=N%T=FA-104%TG=FF%W=0%S=A%A=S%F=AR%O=%RD=0%Q=)\n\
U1(R=N)\n\
IE(DFI=S%T=FA-104%TG=FF%CD=S)\n\
";

/// nmap-os-db (nmap 7.93): `Fingerprint Canon imageCLASS MF212w printer`.
pub const EMBEDDED_NMAP: &str = "\
Fingerprint Canon imageCLASS MF212w printer\n\
SEQ(SP=D4-DE%GCD=1-6%ISR=DA-E4%TI=I%CI=I%II=I%SS=S%TS=U)\n\
OPS(O1=M5B4W0L%O2=M5B4W0L%O3=M5B4W0L%O4=M5B4W0L%O5=M5B4W0L%O6=M5B4)\n\
WIN(W1=7918%W2=7918%W3=7918%W4=7918%W5=7918%W6=7918)\n\
ECN(R=Y%DF=N%T=130-13A%TG=FF%W=7918%O=M5B4W0L%CC=N%Q=)\n\
T1(R=Y%DF=N%T=130-13A%TG=FF%S=O%A=S+%F=AS%RD=0%Q=)\n\
T2(R=N)\n\
T3(R=N)\n\
T4(R=Y%DF=N%T=130-13A%TG=FF%W=0%S=A%A=Z%F=R%O=%RD=0%Q=)\n\
T5(R=Y%DF=N%T=130-13A%TG=FF%W=0%S=Z%A=S+%F=AR%O=%RD=0%Q=)\n\
T6(R=Y%DF=N%T=130-13A%TG=FF%W=0%S=A%A=Z%F=R%O=%RD=0%Q=)\n\
T7(R=Y%DF=N%T=130-13A%TG=FF%W=0%S=Z%A=S+%F=AR%O=%RD=0%Q=)\n\
U1(DF=N%T=130-13A%TG=FF%IPL=240%UN=0%RIPL=G%RID=G%RIPCK=G%RUCK=849B%RUD=I)\n\
IE(DFI=N%T=130-13A%TG=FF%CD=Z)\n\
";

const RST_ACK: u8 = 0x14;

const fn layouts(
    full: &'static str,
    no_sack: &'static str,
    no_wscale: &'static str,
    no_timestamps: &'static str,
) -> Option<OptionLayouts> {
    Some(OptionLayouts {
        full: Cow::Borrowed(full),
        no_sack: Cow::Borrowed(no_sack),
        no_wscale: Cow::Borrowed(no_wscale),
        no_timestamps: Cow::Borrowed(no_timestamps),
    })
}

/// Linux 5.x: the kernel's own answers (the decky's kernel is Linux).
fn linux() -> StackProfile {
    StackProfile::kernel("Linux 5.3 - 5.4", 64)
}

/// Windows 10.
fn windows() -> StackProfile {
    StackProfile {
        reference: Cow::Borrowed("Microsoft Windows 10"),
        ttl: 128,
        tcp_df: DfRule::Set,
        syn_ack_window: Some(0x2000),
        mss: Some(1460),
        mss_echo_peer: false,
        wscale: Some(8),
        sack: true,
        layouts: layouts("MNWST", "MNWNNT", "MST", "MNWNNS"),
        ecn_echo: false,
        ip_id: IpIdRules {
            syn_ack: IpIdMode::Incremental,
            rst: IpIdMode::Incremental,
            icmp: IpIdMode::Incremental,
        },
        rst: RstRules {
            window: Some(0),
            ack_without_ack_flag: AckRule::Other,
        },
        t2: Some(ProbeReply {
            flags: RST_ACK,
            seq: SeqRule::Zero,
            ack: AckRule::ProbeSeq,
            window: 0,
        }),
        t3: None,
        port_unreachable: true,
        unreachable_quote: None,
        unreachable_df: DfRule::Clear,
        echo: EchoRules {
            code_zero: true,
            df: DfRule::Clear,
        },
    }
}

/// Windows Server 2016: Windows 10 with random SYN-ACK IP IDs, ECN and an answer to T3.
fn windows_server() -> StackProfile {
    StackProfile {
        reference: Cow::Borrowed("Microsoft Windows Server 2016"),
        ecn_echo: true,
        ip_id: IpIdRules {
            syn_ack: IpIdMode::Random,
            rst: IpIdMode::Incremental,
            icmp: IpIdMode::Incremental,
        },
        t3: Some(ProbeReply {
            flags: RST_ACK,
            seq: SeqRule::Zero,
            ack: AckRule::Other,
            window: 0,
        }),
        ..windows()
    }
}

/// FreeBSD 11.
fn bsd() -> StackProfile {
    StackProfile {
        reference: Cow::Borrowed("FreeBSD 11.0-RELEASE"),
        ttl: 64,
        tcp_df: DfRule::Set,
        syn_ack_window: Some(0xffff),
        mss: Some(1460),
        mss_echo_peer: true,
        wscale: Some(6),
        sack: true,
        layouts: layouts("MNWST", "MNWNNT", "MST", "MNWSLL"),
        ecn_echo: true,
        ip_id: IpIdRules {
            syn_ack: IpIdMode::Zero,
            rst: IpIdMode::Zero,
            icmp: IpIdMode::RandomIncrements,
        },
        rst: RstRules {
            window: Some(0),
            ack_without_ack_flag: AckRule::Zero,
        },
        t2: None,
        t3: None,
        port_unreachable: true,
        unreachable_quote: Some(28),
        unreachable_df: DfRule::Clear,
        echo: EchoRules {
            code_zero: false,
            df: DfRule::SameAsRequest,
        },
    }
}

/// Cisco IOS 12.4.
fn cisco() -> StackProfile {
    StackProfile {
        reference: Cow::Borrowed("Cisco 1812, 3640, or 3700 router (IOS 12.4)"),
        ttl: 255,
        tcp_df: DfRule::Clear,
        syn_ack_window: Some(0x1020),
        mss: Some(1460),
        mss_echo_peer: true,
        wscale: None,
        sack: false,
        layouts: layouts("M", "M", "M", "M"),
        ecn_echo: false,
        ip_id: IpIdRules {
            syn_ack: IpIdMode::Random,
            rst: IpIdMode::Random,
            icmp: IpIdMode::RandomIncrements,
        },
        rst: RstRules {
            window: Some(0),
            ack_without_ack_flag: AckRule::Zero,
        },
        t2: Some(ProbeReply {
            flags: RST_ACK,
            seq: SeqRule::ProbeAck,
            ack: AckRule::ProbeSeq,
            window: 0,
        }),
        t3: None,
        port_unreachable: false,
        unreachable_quote: None,
        unreachable_df: DfRule::Clear,
        echo: EchoRules {
            code_zero: false,
            df: DfRule::SameAsRequest,
        },
    }
}

/// An embedded printer (Canon imageCLASS MF212w).
fn embedded() -> StackProfile {
    StackProfile {
        reference: Cow::Borrowed("Canon imageCLASS MF212w printer"),
        ttl: 255,
        tcp_df: DfRule::Clear,
        syn_ack_window: Some(0x7918),
        mss: Some(1460),
        mss_echo_peer: false,
        wscale: Some(0),
        sack: false,
        layouts: layouts("MWL", "MWL", "M", "MWL"),
        ecn_echo: false,
        ip_id: IpIdRules {
            syn_ack: IpIdMode::Incremental,
            rst: IpIdMode::Incremental,
            icmp: IpIdMode::Incremental,
        },
        rst: RstRules {
            window: Some(0),
            ack_without_ack_flag: AckRule::Zero,
        },
        t2: None,
        t3: None,
        port_unreachable: true,
        unreachable_quote: None,
        unreachable_df: DfRule::Clear,
        echo: EchoRules {
            code_zero: true,
            df: DfRule::Clear,
        },
    }
}

impl OsFamily {
    /// The family's stack profile for the mangler.
    pub fn stack_profile(self) -> StackProfile {
        match self {
            OsFamily::Linux => linux(),
            OsFamily::Windows => windows(),
            OsFamily::WindowsServer => windows_server(),
            OsFamily::Bsd => bsd(),
            OsFamily::Embedded => embedded(),
            OsFamily::Cisco => cisco(),
        }
    }

    /// The `nmap-os-db` entry the family's profile was read from.
    pub fn nmap_reference(self) -> &'static str {
        match self {
            OsFamily::Linux => LINUX_NMAP,
            OsFamily::Windows => WINDOWS_NMAP,
            OsFamily::WindowsServer => WINDOWS_SERVER_NMAP,
            OsFamily::Bsd => BSD_NMAP,
            OsFamily::Embedded => EMBEDDED_NMAP,
            OsFamily::Cisco => CISCO_NMAP,
        }
    }
}

#[cfg(test)]
mod tests;

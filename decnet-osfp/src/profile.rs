//! The data a profile is made of. Every field is a value read off nmap's fingerprint lines for
//! one reference OS (the registry keeps which one); `None`/[`IpIdMode::Kernel`] means "leave the
//! Linux kernel's value", so an all-default profile is the identity.

use std::borrow::Cow;
use std::fmt;

/// One TCP option slot of a SYN-ACK, in nmap's `O` notation (`M`, `N`, `W`, `S`, `T`, `L`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpOpt {
    /// `M`: maximum segment size (kind 2).
    Mss,
    /// `N`: no-operation padding (kind 1).
    Nop,
    /// `W`: window scale (kind 3).
    WScale,
    /// `S`: SACK permitted (kind 4).
    SackOk,
    /// `T`: timestamps (kind 8).
    Timestamps,
    /// `L`: end of option list (kind 0).
    Eol,
}

impl TcpOpt {
    /// The option's length on the wire.
    pub fn wire_len(self) -> usize {
        match self {
            TcpOpt::Mss => 4,
            TcpOpt::Nop | TcpOpt::Eol => 1,
            TcpOpt::WScale => 3,
            TcpOpt::SackOk => 2,
            TcpOpt::Timestamps => 10,
        }
    }

    /// The option's letter in nmap's `O` notation.
    pub fn letter(self) -> char {
        match self {
            TcpOpt::Mss => 'M',
            TcpOpt::Nop => 'N',
            TcpOpt::WScale => 'W',
            TcpOpt::SackOk => 'S',
            TcpOpt::Timestamps => 'T',
            TcpOpt::Eol => 'L',
        }
    }
}

/// A layout string that is not nmap option notation, or that does not fit a TCP header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayoutError(pub String);

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid tcp option layout {:?}", self.0)
    }
}

impl std::error::Error for LayoutError {}

/// Parses a layout in nmap's option letters, values left out: `"MNWST"` is nmap's
/// `M5B4NW8ST11`. Each of `M`, `W`, `S`, `T` at most once; at most 40 bytes on the wire.
pub fn parse_layout(s: &str) -> Result<Vec<TcpOpt>, LayoutError> {
    let err = || LayoutError(s.to_owned());
    let mut out = Vec::with_capacity(s.len());
    for c in s.chars() {
        let opt = match c {
            'M' => TcpOpt::Mss,
            'N' => TcpOpt::Nop,
            'W' => TcpOpt::WScale,
            'S' => TcpOpt::SackOk,
            'T' => TcpOpt::Timestamps,
            'L' => TcpOpt::Eol,
            _ => return Err(err()),
        };
        if opt != TcpOpt::Nop && opt != TcpOpt::Eol && out.contains(&opt) {
            return Err(err());
        }
        out.push(opt);
    }
    if out.iter().map(|o| o.wire_len()).sum::<usize>() > 40 {
        return Err(err());
    }
    Ok(out)
}

/// Renders a layout back to its letters.
pub fn layout_string(layout: &[TcpOpt]) -> String {
    layout.iter().map(|o| o.letter()).collect()
}

/// The SYN-ACK option order of the OS, one layout per set of options the kernel's SYN-ACK
/// carries (which depends on what the peer's SYN offered). Read off nmap's `O1`…`O6` and
/// `ECN`'s `O`: `full` is O1, `no_sack` O3, `no_wscale` O6, `no_timestamps` ECN. A set with
/// no layout here (two options missing, say) gets the kernel's options in `full`'s order,
/// padded with NOPs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OptionLayouts {
    /// MSS, window scale, SACK and timestamps all present.
    pub full: Cow<'static, str>,
    /// No SACK permitted.
    pub no_sack: Cow<'static, str>,
    /// No window scale.
    pub no_wscale: Cow<'static, str>,
    /// No timestamps.
    pub no_timestamps: Cow<'static, str>,
}

/// The IP ID a class of outgoing packets gets (nmap's `TI`, `CI`, `II`, `SS`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IpIdMode {
    /// Leave the kernel's value.
    #[default]
    Kernel,
    /// Always 0 (`Z`).
    Zero,
    /// One counter shared by every class set to `Incremental`, +1 per packet (`I`, and
    /// `SS=S` when TCP and ICMP both use it).
    Incremental,
    /// Positive random increments of 1,000 to 5,999 (`RI`).
    RandomIncrements,
    /// Random increments of more than 20,000 (`RD`).
    Random,
}

/// IP ID per class of packet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IpIdRules {
    /// SYN-ACKs from open ports (`TI`).
    pub syn_ack: IpIdMode,
    /// RSTs, from closed ports and odd flags (`CI`).
    pub rst: IpIdMode,
    /// ICMP echo replies and errors (`II`).
    pub icmp: IpIdMode,
}

/// The DF bit of a class of packets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DfRule {
    /// Leave the kernel's bit.
    #[default]
    Kernel,
    /// Always set (`DF=Y`).
    Set,
    /// Always clear (`DF=N`).
    Clear,
    /// As the request had it (ICMP echo, `DFI=S`); the kernel's bit when the request was not seen.
    SameAsRequest,
}

/// How an RST's acknowledgement field is filled when its ACK flag is clear (T4, T6).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AckRule {
    /// Leave the kernel's value (0 on Linux: `A=Z`).
    #[default]
    Kernel,
    /// The probe's sequence number (`A=S`).
    ProbeSeq,
    /// The probe's sequence number plus what it occupies (`A=S+`).
    ProbeSeqPlus,
    /// Something else (`A=O`): the probe's sequence number plus 2.
    Other,
    /// Zero (`A=Z`).
    Zero,
}

/// How a reply's sequence number is chosen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SeqRule {
    /// Zero (`S=Z`).
    #[default]
    Zero,
    /// The probe's acknowledgement number (`S=A`).
    ProbeAck,
}

/// The reply to a probe the Linux kernel silently drops (T2: no flags, T3: SYN+FIN+PSH+URG,
/// both to an open port).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeReply {
    /// TCP flags of the reply (`F`), e.g. RST|ACK = 0x14.
    pub flags: u8,
    /// `S`.
    pub seq: SeqRule,
    /// `A`.
    pub ack: AckRule,
    /// `W`.
    pub window: u16,
}

/// What RSTs look like.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RstRules {
    /// The RST's window (`W` of T4–T7), `None` to keep the kernel's (0).
    pub window: Option<u16>,
    /// The acknowledgement field of RSTs without the ACK flag (T4, T6).
    pub ack_without_ack_flag: AckRule,
}

/// ICMP echo replies (`IE`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EchoRules {
    /// The reply's code is 0 whatever the request's (`CD=Z`); else the kernel's (`CD=S`).
    pub code_zero: bool,
    /// The reply's DF bit (`DFI`).
    pub df: DfRule,
}

/// How one OS's TCP/IP stack answers nmap's OS-detection probes, as far as the mangler can
/// make a Linux kernel's answers look like it. Built by the core registry, one per OS family.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StackProfile {
    /// The nmap-os-db fingerprint the values were read from (`Fingerprint …` line).
    pub reference: Cow<'static, str>,
    /// Initial TTL of every packet (`TG`). The sysctl sets it for the kernel's own packets.
    pub ttl: u8,
    /// DF of SYN-ACKs and RSTs (`DF` of T1–T7).
    pub tcp_df: DfRule,
    /// SYN-ACK window (`W1`…`W6`, ECN's `W`); `None` keeps the kernel's.
    pub syn_ack_window: Option<u16>,
    /// SYN-ACK MSS (`M` value); never raised above the kernel's own.
    pub mss: Option<u16>,
    /// The SYN-ACK's MSS is the smaller of [`mss`](Self::mss) and the peer's (FreeBSD,
    /// Cisco: nmap's `O2`=`M578` for a SYN that offered 1400), when the mangler saw the SYN.
    pub mss_echo_peer: bool,
    /// SYN-ACK window scale (`W` option value); never raised above the kernel's own, and a
    /// kernel SYN-ACK without one only ever gets `W0`.
    pub wscale: Option<u8>,
    /// Whether SACK permitted is offered (when the kernel offers it).
    pub sack: bool,
    /// SYN-ACK option order; `None` keeps the kernel's.
    pub layouts: Option<OptionLayouts>,
    /// Whether the SYN-ACK to an ECN-setup SYN keeps the kernel's ECE (`CC=Y`) or loses it
    /// (`CC=N`).
    pub ecn_echo: bool,
    /// IP ID per class of packets.
    pub ip_id: IpIdRules,
    /// RSTs.
    pub rst: RstRules,
    /// Reply to T2 (no flags to an open port); `None` is silence (`R=N`, Linux's way).
    pub t2: Option<ProbeReply>,
    /// Reply to T3 (SYN+FIN+PSH+URG to an open port); `None` is silence.
    pub t3: Option<ProbeReply>,
    /// Whether ICMP port unreachables leave at all (`U1`'s `R=N` when false).
    pub port_unreachable: bool,
    /// How many bytes of the offending datagram, its IP header included, a port unreachable
    /// quotes at most (`U1`'s `IPL`: BSD quotes 28, the header and 8 bytes); `None` keeps the
    /// kernel's (all of it, up to 576 bytes in all).
    pub unreachable_quote: Option<u16>,
    /// DF of ICMP port unreachables (`U1`'s `DF`).
    pub unreachable_df: DfRule,
    /// ICMP echo replies.
    pub echo: EchoRules,
}

impl StackProfile {
    /// A profile that changes nothing: the Linux kernel's own answers.
    pub const fn kernel(reference: &'static str, ttl: u8) -> StackProfile {
        StackProfile {
            reference: Cow::Borrowed(reference),
            ttl,
            tcp_df: DfRule::Kernel,
            syn_ack_window: None,
            mss: None,
            mss_echo_peer: false,
            wscale: None,
            sack: true,
            layouts: None,
            ecn_echo: true,
            ip_id: IpIdRules {
                syn_ack: IpIdMode::Kernel,
                rst: IpIdMode::Kernel,
                icmp: IpIdMode::Kernel,
            },
            rst: RstRules {
                window: None,
                ack_without_ack_flag: AckRule::Kernel,
            },
            t2: None,
            t3: None,
            port_unreachable: true,
            unreachable_quote: None,
            unreachable_df: DfRule::Kernel,
            echo: EchoRules {
                code_zero: false,
                df: DfRule::Kernel,
            },
        }
    }

    /// Checks every layout string; the registry's test calls this for each profile.
    pub fn validate(&self) -> Result<(), LayoutError> {
        if let Some(l) = &self.layouts {
            for s in [&l.full, &l.no_sack, &l.no_wscale, &l.no_timestamps] {
                parse_layout(s)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_parse_and_render() {
        let check = |s: &str, ok: bool| {
            let got = parse_layout(s);
            assert_eq!(got.is_ok(), ok, "{s}");
            if let Ok(l) = got {
                assert_eq!(layout_string(&l), s);
            }
        };
        check("MNWST", true);
        check("MNWNNT", true);
        check("MWL", true);
        check("", true);
        check("MM", false);
        check("MX", false);
        check("TTNN", false);
        check("MNWSTNNNNNNNNNNNNNNNNNNNNNNNNN", false);
    }
}

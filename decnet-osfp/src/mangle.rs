//! The mangler: a decky's outgoing packets rewritten per profile, and the replies to the
//! probes its kernel drops.

use crate::packet::{
    fix_checksums, parse_syn_options, put16, put32, Ipv4, SynOptions, Tcp, ACK, DF_BIT, ECE, FIN,
    PROTO_ICMP, PROTO_TCP, PSH, RST, SYN, URG,
};
use crate::profile::{
    parse_layout, AckRule, DfRule, IpIdMode, ProbeReply, SeqRule, StackProfile, TcpOpt,
};

/// What to do with an outgoing packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send it as it is.
    Accept,
    /// Send these bytes instead (checksums fixed).
    Replace(Vec<u8>),
    /// Do not send it (an OS that stays silent there, e.g. Cisco's port unreachables).
    Drop,
}

/// How many ICMP echo requests are remembered for [`DfRule::SameAsRequest`].
const ECHO_MEMORY: usize = 64;

/// A SYN the decky received: what the peer offered, for the SYN-ACK that answers it.
#[derive(Clone, Copy, Debug)]
struct SynSeen {
    peer: [u8; 4],
    sport: u16,
    dport: u16,
    mss: Option<u16>,
    wscale: bool,
}

#[derive(Clone, Copy, Debug)]
struct EchoSeen {
    peer: [u8; 4],
    ident: u16,
    seq: u16,
    df: bool,
}

/// The mangler of one decky: its profile, its open TCP ports (T2/T3 are answered there only)
/// and the little state the profile needs (the IP ID counter, recent echo requests).
/// Deterministic: the same seed and packets give the same output.
#[derive(Clone, Debug)]
pub struct Mangler {
    profile: StackProfile,
    full: Option<Vec<TcpOpt>>,
    no_sack: Option<Vec<TcpOpt>>,
    no_wscale: Option<Vec<TcpOpt>>,
    no_timestamps: Option<Vec<TcpOpt>>,
    open_ports: Vec<u16>,
    ip_id: u16,
    rng: u64,
    echoes: Vec<EchoSeen>,
    next_echo: usize,
    syns: Vec<SynSeen>,
    next_syn: usize,
}

impl Mangler {
    /// A mangler for `profile`; `seed` starts the IP ID counter and the random increments.
    /// Layouts that do not parse are treated as absent (the kernel's order stays); the
    /// registry's tests make sure none of its profiles has one.
    pub fn new(profile: StackProfile, open_ports: &[u16], seed: u64) -> Mangler {
        let layout = |pick: fn(&crate::OptionLayouts) -> &str| {
            profile
                .layouts
                .as_ref()
                .and_then(|l| parse_layout(pick(l)).ok())
        };
        let (full, no_sack, no_wscale, no_timestamps) = (
            layout(|l| &l.full),
            layout(|l| &l.no_sack),
            layout(|l| &l.no_wscale),
            layout(|l| &l.no_timestamps),
        );
        let mut ports = open_ports.to_vec();
        ports.sort_unstable();
        ports.dedup();
        Mangler {
            profile,
            full,
            no_sack,
            no_wscale,
            no_timestamps,
            open_ports: ports,
            ip_id: (seed as u16) | 1,
            rng: seed | 1,
            echoes: Vec::with_capacity(ECHO_MEMORY),
            next_echo: 0,
            syns: Vec::with_capacity(ECHO_MEMORY),
            next_syn: 0,
        }
    }

    /// The profile this mangler applies.
    pub fn profile(&self) -> &StackProfile {
        &self.profile
    }

    /// Rewrites one outgoing packet. Only SYN-ACKs, RSTs, ICMP echo replies and ICMP port
    /// unreachables are touched; data segments, everything not IPv4 and anything malformed
    /// pass unchanged. What is changed keeps connections correct: MSS and window scale are
    /// never raised above the kernel's (the kernel keeps its own idea of both), SACK is only
    /// removed, timestamps stay, and a window scale is only added as `W0` (the kernel, which
    /// did not negotiate scaling, then reads the peer's windows smaller than they are — safe).
    pub fn egress(&mut self, pkt: &[u8]) -> Verdict {
        let Some(ip) = Ipv4::parse(pkt) else {
            return Verdict::Accept;
        };
        let out = match ip.proto() {
            PROTO_TCP => self.egress_tcp(ip),
            PROTO_ICMP => match self.egress_icmp(ip) {
                Err(()) => return Verdict::Drop,
                Ok(out) => out,
            },
            _ => None,
        };
        match out {
            Some(bytes) if bytes != ip.bytes => Verdict::Replace(bytes),
            _ => Verdict::Accept,
        }
    }

    /// Looks at one incoming packet and returns the reply to send, if the profile answers a
    /// probe the kernel drops (T2, T3 to an open port). Also remembers ICMP echo requests for
    /// [`DfRule::SameAsRequest`]. The packet itself always goes on to the kernel.
    pub fn ingress(&mut self, pkt: &[u8]) -> Option<Vec<u8>> {
        let ip = Ipv4::parse(pkt)?;
        match ip.proto() {
            PROTO_ICMP => {
                let icmp = ip.payload();
                if icmp.len() >= 8 && icmp[0] == 8 {
                    self.remember_echo(EchoSeen {
                        peer: ip.src(),
                        ident: u16::from_be_bytes([icmp[4], icmp[5]]),
                        seq: u16::from_be_bytes([icmp[6], icmp[7]]),
                        df: ip.df(),
                    });
                }
                None
            }
            PROTO_TCP => {
                let tcp = Tcp::parse(ip.payload())?;
                let flags = tcp.flags();
                if flags & (SYN | ACK | RST | FIN) == SYN {
                    if let Some(o) = parse_syn_options(tcp.options()) {
                        let seen = SynSeen {
                            peer: ip.src(),
                            sport: tcp.sport(),
                            dport: tcp.dport(),
                            mss: o.mss,
                            wscale: o.wscale.is_some(),
                        };
                        remember(&mut self.syns, &mut self.next_syn, seen);
                    }
                }
                if self.open_ports.binary_search(&tcp.dport()).is_err() {
                    return None;
                }
                let rule = if flags & (SYN | FIN | RST | ACK | PSH | URG) == 0 {
                    self.profile.t2
                } else if flags & (SYN | FIN) == SYN | FIN && flags & (RST | ACK) == 0 {
                    self.profile.t3
                } else {
                    None
                }?;
                Some(self.probe_reply(ip, tcp, rule))
            }
            _ => None,
        }
    }

    fn egress_tcp(&mut self, ip: Ipv4<'_>) -> Option<Vec<u8>> {
        let tcp = Tcp::parse(ip.payload())?;
        let flags = tcp.flags();
        if flags & (SYN | ACK | RST) == SYN | ACK {
            self.syn_ack(ip, tcp)
        } else if flags & RST != 0 {
            self.rst(ip, tcp)
        } else {
            None
        }
    }

    fn syn_ack(&mut self, ip: Ipv4<'_>, tcp: Tcp<'_>) -> Option<Vec<u8>> {
        // A SYN-ACK with data (TCP Fast Open) is left alone.
        if !tcp.payload().is_empty() {
            return None;
        }
        let opts = parse_syn_options(tcp.options())?;
        let syn = self
            .syns
            .iter()
            .find(|s| s.peer == ip.dst() && s.sport == tcp.dport() && s.dport == tcp.sport())
            .copied();
        let new_opts = self.relay_options(tcp.options(), opts, syn);
        let ihl = ip.ihl;
        let mut out = Vec::with_capacity(ihl + 20 + new_opts.len());
        out.extend_from_slice(&ip.bytes[..ihl]);
        out.extend_from_slice(&tcp.bytes[..20]);
        out.extend_from_slice(&new_opts);
        let total = out.len() as u16;
        put16(&mut out, 2, total);
        out[ihl + 12] = ((20 + new_opts.len()) as u8 / 4) << 4;
        let p = &self.profile;
        if let Some(w) = p.syn_ack_window {
            put16(&mut out, ihl + 14, w);
        }
        if !p.ecn_echo {
            out[ihl + 13] &= !ECE;
        }
        let (df, mode) = (p.tcp_df, p.ip_id.syn_ack);
        self.finish_ip(&mut out, df, mode, None);
        Some(out)
    }

    /// The kernel's SYN-ACK options in the profile's order and values.
    fn relay_options(&self, kernel_opts: &[u8], k: SynOptions, syn: Option<SynSeen>) -> Vec<u8> {
        let p = &self.profile;
        let Some(full) = &self.full else {
            return encode_kernel_order(kernel_opts, p);
        };
        let peer_mss = syn.and_then(|s| s.mss).filter(|_| p.mss_echo_peer);
        let mss = k.mss.map(|m| {
            let m = p.mss.map_or(m, |want| want.min(m));
            peer_mss.map_or(m, |peer| peer.min(m))
        });
        let wscale = match (k.wscale, p.wscale) {
            (Some(kw), Some(want)) => Some(want.min(kw)),
            (Some(kw), None) => Some(kw),
            // No kernel window scale: only W0 is safe to add.
            (None, _) => None,
        };
        // Only when the peer offered scaling (or its SYN was not seen).
        let add_w0 = k.wscale.is_none() && p.wscale == Some(0) && syn.is_none_or(|s| s.wscale);
        let sack = k.sack_ok && p.sack;
        let has_w = wscale.is_some() || add_w0;
        let layout = match (sack, has_w, k.timestamps.is_some()) {
            (true, true, true) => Some(full),
            (false, true, true) => self.no_sack.as_ref(),
            (true, false, true) => self.no_wscale.as_ref(),
            (true, true, false) => self.no_timestamps.as_ref(),
            _ => None,
        };
        let want_present = |o: TcpOpt| match o {
            TcpOpt::Mss => mss.is_some(),
            TcpOpt::WScale => has_w,
            TcpOpt::SackOk => sack,
            TcpOpt::Timestamps => k.timestamps.is_some(),
            TcpOpt::Nop | TcpOpt::Eol => true,
        };
        // A layout that lacks an option the kernel sent (or names one it did not) is not
        // used as such: the full layout's order with the missing slots dropped is.
        let fits = |l: &Vec<TcpOpt>| {
            [
                TcpOpt::Mss,
                TcpOpt::WScale,
                TcpOpt::SackOk,
                TcpOpt::Timestamps,
            ]
            .into_iter()
            .all(|o| l.contains(&o) == want_present(o))
        };
        let others = [
            Some(full),
            self.no_sack.as_ref(),
            self.no_wscale.as_ref(),
            self.no_timestamps.as_ref(),
        ];
        let fitting = std::iter::once(layout)
            .chain(others)
            .flatten()
            .find(|l| fits(l));
        let chosen: Vec<TcpOpt> = match fitting {
            Some(l) => l.clone(),
            None => {
                let mut l: Vec<TcpOpt> = full
                    .iter()
                    .copied()
                    .filter(|&o| o != TcpOpt::Nop && o != TcpOpt::Eol && want_present(o))
                    .collect();
                for o in [
                    TcpOpt::Mss,
                    TcpOpt::WScale,
                    TcpOpt::SackOk,
                    TcpOpt::Timestamps,
                ] {
                    if want_present(o) && !l.contains(&o) {
                        l.push(o);
                    }
                }
                l
            }
        };
        let mut out = Vec::with_capacity(40);
        for o in chosen {
            match o {
                TcpOpt::Mss => {
                    if let Some(m) = mss {
                        out.extend_from_slice(&[2, 4]);
                        out.extend_from_slice(&m.to_be_bytes());
                    }
                }
                TcpOpt::Nop => out.push(1),
                TcpOpt::Eol => out.push(0),
                TcpOpt::WScale => out.extend_from_slice(&[3, 3, wscale.unwrap_or(0)]),
                TcpOpt::SackOk => out.extend_from_slice(&[4, 2]),
                TcpOpt::Timestamps => {
                    if let Some((val, ecr)) = k.timestamps {
                        out.extend_from_slice(&[8, 10]);
                        out.extend_from_slice(&val.to_be_bytes());
                        out.extend_from_slice(&ecr.to_be_bytes());
                    }
                }
            }
        }
        pad(&mut out);
        out
    }

    fn rst(&mut self, ip: Ipv4<'_>, tcp: Tcp<'_>) -> Option<Vec<u8>> {
        let mut out = ip.bytes.to_vec();
        let ihl = ip.ihl;
        let p = &self.profile;
        if let Some(w) = p.rst.window {
            put16(&mut out, ihl + 14, w);
        }
        if tcp.flags() & ACK == 0 {
            // The probe's sequence number is not in a bare RST: its own sequence number (the
            // probe's ack) stands in for "other", which is neither 0 nor the probe's seq.
            match p.rst.ack_without_ack_flag {
                AckRule::Kernel => {}
                AckRule::Zero => put32(&mut out, ihl + 8, 0),
                AckRule::Other | AckRule::ProbeSeq | AckRule::ProbeSeqPlus => {
                    put32(&mut out, ihl + 8, tcp.seq().wrapping_add(2))
                }
            }
        }
        let (df, mode) = (p.tcp_df, p.ip_id.rst);
        self.finish_ip(&mut out, df, mode, None);
        Some(out)
    }

    /// `Err(())` means drop.
    fn egress_icmp(&mut self, ip: Ipv4<'_>) -> Result<Option<Vec<u8>>, ()> {
        let icmp = ip.payload();
        if icmp.len() < 8 {
            return Ok(None);
        }
        let mut out = ip.bytes.to_vec();
        let ihl = ip.ihl;
        let mode = self.profile.ip_id.icmp;
        match (icmp[0], icmp[1]) {
            (0, _) => {
                let rules = self.profile.echo;
                if rules.code_zero {
                    out[ihl + 1] = 0;
                }
                let ident = u16::from_be_bytes([icmp[4], icmp[5]]);
                let seq = u16::from_be_bytes([icmp[6], icmp[7]]);
                let seen = self
                    .echoes
                    .iter()
                    .find(|e| e.peer == ip.dst() && e.ident == ident && e.seq == seq)
                    .map(|e| e.df);
                self.finish_ip(&mut out, rules.df, mode, seen);
            }
            (3, 3) => {
                if !self.profile.port_unreachable {
                    return Err(());
                }
                if let Some(quote) = self.profile.unreachable_quote {
                    let keep = ihl + 8 + usize::from(quote);
                    if out.len() > keep {
                        out.truncate(keep);
                        put16(&mut out, 2, keep as u16);
                    }
                }
                let df = self.profile.unreachable_df;
                self.finish_ip(&mut out, df, mode, None);
            }
            _ => return Ok(None),
        }
        Ok(Some(out))
    }

    fn probe_reply(&mut self, ip: Ipv4<'_>, probe: Tcp<'_>, rule: ProbeReply) -> Vec<u8> {
        let mut out = vec![0u8; 40];
        out[0] = 0x45;
        put16(&mut out, 2, 40);
        out[9] = PROTO_TCP;
        out[12..16].copy_from_slice(&ip.dst());
        out[16..20].copy_from_slice(&ip.src());
        put16(&mut out, 20, probe.dport());
        put16(&mut out, 22, probe.sport());
        let seq = match rule.seq {
            SeqRule::Zero => 0,
            SeqRule::ProbeAck => probe.ack(),
        };
        let occupied = probe.payload().len() as u32
            + u32::from(probe.flags() & SYN != 0)
            + u32::from(probe.flags() & FIN != 0);
        let ack = match rule.ack {
            AckRule::Kernel | AckRule::Zero => 0,
            AckRule::ProbeSeq => probe.seq(),
            AckRule::ProbeSeqPlus => probe.seq().wrapping_add(occupied.max(1)),
            AckRule::Other => probe.seq().wrapping_add(occupied + 2),
        };
        put32(&mut out, 24, seq);
        put32(&mut out, 28, ack);
        out[32] = 5 << 4;
        out[33] = rule.flags;
        put16(&mut out, 34, rule.window);
        let (df, mode) = (self.profile.tcp_df, self.profile.ip_id.rst);
        self.finish_ip(&mut out, df, mode, Some(false));
        out
    }

    /// TTL, DF and IP ID per profile, then the checksums.
    fn finish_ip(&mut self, out: &mut [u8], df: DfRule, mode: IpIdMode, request_df: Option<bool>) {
        out[8] = self.profile.ttl;
        let word = u16::from_be_bytes([out[6], out[7]]);
        let set = match df {
            DfRule::Kernel => word & DF_BIT != 0,
            DfRule::Set => true,
            DfRule::Clear => false,
            DfRule::SameAsRequest => request_df.unwrap_or(word & DF_BIT != 0),
        };
        put16(out, 6, if set { word | DF_BIT } else { word & !DF_BIT });
        if let Some(id) = self.next_id(mode) {
            put16(out, 4, id);
        }
        fix_checksums(out);
    }

    fn next_id(&mut self, mode: IpIdMode) -> Option<u16> {
        let step = match mode {
            IpIdMode::Kernel => return None,
            IpIdMode::Zero => return Some(0),
            IpIdMode::Incremental => 1,
            IpIdMode::RandomIncrements => 1000 + (self.random() % 5000) as u16,
            IpIdMode::Random => 20_001 + (self.random() % 20_000) as u16,
        };
        self.ip_id = self.ip_id.wrapping_add(step);
        Some(self.ip_id)
    }

    /// xorshift64*: cheap, deterministic, good enough for IP IDs.
    fn random(&mut self) -> u32 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32
    }

    fn remember_echo(&mut self, e: EchoSeen) {
        remember(&mut self.echoes, &mut self.next_echo, e);
    }
}

/// A bounded memory: the oldest entry goes when full.
fn remember<T>(ring: &mut Vec<T>, next: &mut usize, item: T) {
    if ring.len() < ECHO_MEMORY {
        ring.push(item);
    } else {
        ring[*next] = item;
        *next = (*next + 1) % ECHO_MEMORY;
    }
}

/// The kernel's own option bytes, in its order, with the profile's MSS and window scale
/// (never raised) and SACK blanked with NOPs if the profile has none (no layout in the profile).
fn encode_kernel_order(opts: &[u8], p: &StackProfile) -> Vec<u8> {
    let mut out = opts.to_vec();
    let mut i = 0;
    while i < out.len() {
        match out[i] {
            0 => break,
            1 => i += 1,
            kind => {
                let len = usize::from(out.get(i + 1).copied().unwrap_or(0)).max(2);
                match kind {
                    2 if len == 4 && i + 4 <= out.len() => {
                        let m = u16::from_be_bytes([out[i + 2], out[i + 3]]);
                        let m = p.mss.map_or(m, |w| w.min(m));
                        out[i + 2..i + 4].copy_from_slice(&m.to_be_bytes());
                    }
                    3 if len == 3 && i + 3 <= out.len() => {
                        out[i + 2] = p.wscale.map_or(out[i + 2], |w| w.min(out[i + 2]));
                    }
                    4 if len == 2 && !p.sack && i + 2 <= out.len() => {
                        out[i] = 1;
                        out[i + 1] = 1;
                    }
                    _ => {}
                }
                i += len;
            }
        }
    }
    out
}

/// Pads options to a multiple of 4 with NOPs.
fn pad(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(1);
    }
    out.truncate(40);
}

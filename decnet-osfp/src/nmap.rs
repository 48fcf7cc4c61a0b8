//! nmap's OS-detection probes (nmap 7.x, "TCP/IP Fingerprinting Methods Supported by Nmap")
//! built as raw packets, and the fields nmap reads off the replies, in its fingerprint
//! notation — so a reply can be checked against an `nmap-os-db` line without a network.
//! Used by the registry's table tests, the benchmark and the end-to-end report.

use crate::packet::{
    fix_checksums, put16, put32, Ipv4, Tcp, ACK, CWR, DF_BIT, ECE, FIN, PROTO_ICMP, PROTO_TCP,
    PROTO_UDP, PSH, RST, SYN, URG,
};

/// One of nmap's probes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// SEQ/OPS/WIN probe 1–6 (a SYN to the open port; probe 1's reply is also T1).
    Seq(u8),
    /// The ECN-setup SYN to the open port.
    Ecn,
    /// No flags, open port.
    T2,
    /// SYN+FIN+URG+PSH, open port.
    T3,
    /// ACK, open port.
    T4,
    /// SYN, closed port.
    T5,
    /// ACK, closed port.
    T6,
    /// FIN+PSH+URG, closed port.
    T7,
    /// 300 bytes of UDP to a closed port.
    U1,
    /// ICMP echo 1 (DF, code 9) or 2 (TOS 4, code 0).
    Ie(u8),
}

/// Every probe, in the order nmap's fingerprint lists their tests.
pub const ALL: [Probe; 16] = [
    Probe::Seq(1),
    Probe::Seq(2),
    Probe::Seq(3),
    Probe::Seq(4),
    Probe::Seq(5),
    Probe::Seq(6),
    Probe::Ecn,
    Probe::T2,
    Probe::T3,
    Probe::T4,
    Probe::T5,
    Probe::T6,
    Probe::T7,
    Probe::U1,
    Probe::Ie(1),
    Probe::Ie(2),
];

/// Addresses and ports of a scan.
#[derive(Clone, Copy, Debug)]
pub struct Target {
    /// The scanner.
    pub attacker: [u8; 4],
    /// The decky.
    pub decky: [u8; 4],
    /// An open TCP port.
    pub open: u16,
    /// A closed TCP port (and UDP port for U1).
    pub closed: u16,
}

const TCP_OPTS_T2_T7: &[u8] = &[
    3, 3, 10, 1, 2, 4, 1, 9, 8, 10, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 4, 2,
];

impl Probe {
    /// Whether the probe goes to the open port.
    pub fn to_open_port(self) -> bool {
        matches!(
            self,
            Probe::Seq(_) | Probe::Ecn | Probe::T2 | Probe::T3 | Probe::T4
        )
    }

    /// The probe's bytes. Sequence numbers are fixed per probe so tests are deterministic.
    pub fn build(self, t: Target) -> Vec<u8> {
        match self {
            Probe::U1 => udp_probe(t),
            Probe::Ie(n) => echo_probe(t, n),
            _ => self.tcp_probe(t),
        }
    }

    fn tcp_probe(self, t: Target) -> Vec<u8> {
        const TS: [u8; 10] = [8, 10, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0];
        let (window, flags, df, opts): (u16, u8, bool, Vec<u8>) = match self {
            Probe::Seq(1) => (
                1,
                SYN,
                false,
                [&[3, 3, 10, 1, 2, 4, 5, 0xb4][..], &TS, &[4, 2]].concat(),
            ),
            Probe::Seq(2) => (
                63,
                SYN,
                false,
                [&[2, 4, 5, 0x78, 3, 3, 0, 4, 2][..], &TS, &[0]].concat(),
            ),
            Probe::Seq(3) => (
                4,
                SYN,
                false,
                [&TS[..], &[1, 1, 3, 3, 5, 1, 2, 4, 2, 0x80]].concat(),
            ),
            Probe::Seq(4) => (4, SYN, false, [&[4, 2][..], &TS, &[3, 3, 10, 0]].concat()),
            Probe::Seq(5) => (
                16,
                SYN,
                false,
                [&[2, 4, 2, 0x18, 4, 2][..], &TS, &[3, 3, 10, 0]].concat(),
            ),
            Probe::Seq(_) => (512, SYN, false, [&[2, 4, 1, 9, 4, 2][..], &TS].concat()),
            Probe::Ecn => (
                3,
                SYN | ECE | CWR,
                false,
                vec![3, 3, 10, 1, 2, 4, 5, 0xb4, 4, 2, 1, 1],
            ),
            Probe::T2 => (128, 0, true, TCP_OPTS_T2_T7.to_vec()),
            Probe::T3 => (256, SYN | FIN | URG | PSH, false, TCP_OPTS_T2_T7.to_vec()),
            Probe::T4 => (1024, ACK, true, TCP_OPTS_T2_T7.to_vec()),
            Probe::T5 => (31337, SYN, false, TCP_OPTS_T2_T7.to_vec()),
            Probe::T6 => (32768, ACK, true, TCP_OPTS_T2_T7.to_vec()),
            Probe::T7 => (65535, FIN | PSH | URG, false, TCP_OPTS_T2_T7.to_vec()),
            Probe::U1 | Probe::Ie(_) => unreachable!("not a tcp probe"),
        };
        let mut opts = opts;
        while opts.len() % 4 != 0 {
            opts.push(0);
        }
        let hlen = 20 + opts.len();
        let mut p = ip_header(
            t.attacker,
            t.decky,
            PROTO_TCP,
            20 + hlen,
            df,
            0x2000 + self.index(),
        );
        let dport = if self.to_open_port() {
            t.open
        } else {
            t.closed
        };
        let mut tcp = vec![0u8; 20];
        put16(&mut tcp, 0, 40_000 + self.index());
        put16(&mut tcp, 2, dport);
        put32(&mut tcp, 4, self.probe_seq());
        put32(&mut tcp, 8, self.probe_ack());
        tcp[12] = ((hlen / 4) as u8) << 4;
        if self == Probe::Ecn {
            tcp[12] |= 0x08; // the reserved bit nmap sets
            put16(&mut tcp, 18, 0xf7f5);
        }
        tcp[13] = flags;
        put16(&mut tcp, 14, window);
        p.extend_from_slice(&tcp);
        p.extend_from_slice(&opts);
        fix_checksums(&mut p);
        p
    }

    fn index(self) -> u16 {
        ALL.iter().position(|&p| p == self).unwrap_or(0) as u16
    }

    /// The probe's sequence number.
    pub fn probe_seq(self) -> u32 {
        0x1000_0000 + u32::from(self.index()) * 0x0101_0101
    }

    /// The probe's acknowledgement number (nmap sends a random one; fixed here).
    pub fn probe_ack(self) -> u32 {
        0x7000_0000 + u32::from(self.index()) * 0x0011_2233
    }

    /// The test name the probe's reply feeds: `T1` (for Seq(1)), `ECN`, `T2`…`T7`, `U1`, `IE`.
    pub fn test(self) -> &'static str {
        match self {
            Probe::Seq(1) => "T1",
            Probe::Seq(_) => "OPS",
            Probe::Ecn => "ECN",
            Probe::T2 => "T2",
            Probe::T3 => "T3",
            Probe::T4 => "T4",
            Probe::T5 => "T5",
            Probe::T6 => "T6",
            Probe::T7 => "T7",
            Probe::U1 => "U1",
            Probe::Ie(_) => "IE",
        }
    }
}

fn ip_header(src: [u8; 4], dst: [u8; 4], proto: u8, total: usize, df: bool, id: u16) -> Vec<u8> {
    let mut p = vec![0u8; 20];
    p[0] = 0x45;
    put16(&mut p, 2, total as u16);
    put16(&mut p, 4, id);
    if df {
        put16(&mut p, 6, DF_BIT);
    }
    p[8] = 64;
    p[9] = proto;
    p[12..16].copy_from_slice(&src);
    p[16..20].copy_from_slice(&dst);
    p
}

fn udp_probe(t: Target) -> Vec<u8> {
    let mut p = ip_header(t.attacker, t.decky, PROTO_UDP, 20 + 8 + 300, false, 0x1042);
    let mut udp = vec![0u8; 8];
    put16(&mut udp, 0, 40_100);
    put16(&mut udp, 2, t.closed);
    put16(&mut udp, 4, 308);
    p.extend_from_slice(&udp);
    p.extend_from_slice(&[b'C'; 300]);
    fix_checksums(&mut p);
    p
}

fn echo_probe(t: Target, n: u8) -> Vec<u8> {
    let (df, tos, code, seq, len) = if n == 1 {
        (true, 0, 9, 295, 120)
    } else {
        (false, 4, 0, 296, 150)
    };
    let mut p = ip_header(
        t.attacker,
        t.decky,
        PROTO_ICMP,
        20 + 8 + len,
        df,
        0x3000 + u16::from(n),
    );
    p[1] = tos;
    let mut icmp = vec![0u8; 8 + len];
    icmp[0] = 8;
    icmp[1] = code;
    put16(&mut icmp, 4, 0xabc0 + u16::from(n));
    put16(&mut icmp, 6, seq);
    p.extend_from_slice(&icmp);
    fix_checksums(&mut p);
    p
}

/// nmap's `O` string of a SYN-ACK's options, e.g. `M5B4NW8ST11`.
pub fn options_string(opts: &[u8]) -> String {
    let mut s = String::new();
    let mut i = 0;
    while i < opts.len() {
        match opts[i] {
            0 => {
                s.push('L');
                i += 1;
                continue;
            }
            1 => {
                s.push('N');
                i += 1;
                continue;
            }
            kind => {
                let Some(&len) = opts.get(i + 1) else { break };
                let body = opts.get(i + 2..i + usize::from(len)).unwrap_or(&[]);
                match (kind, body) {
                    (2, [a, b]) => s.push_str(&format!("M{:X}", u16::from_be_bytes([*a, *b]))),
                    (3, [w]) => s.push_str(&format!("W{w:X}")),
                    (4, _) => s.push('S'),
                    (8, [v @ .., _, _, _, _]) if v.len() == 4 => {
                        let val = u32::from_be_bytes([v[0], v[1], v[2], v[3]]);
                        let ecr = &body[4..8];
                        s.push('T');
                        s.push(if val == 0 { '0' } else { '1' });
                        s.push(if ecr.iter().all(|&b| b == 0) {
                            '0'
                        } else {
                            '1'
                        });
                    }
                    _ => s.push('?'),
                }
                i += usize::from(len.max(1));
            }
        }
    }
    s
}

/// nmap's `F` string of TCP flags (order `EUAPRSF`).
pub fn flags_string(flags: u8) -> String {
    [
        (ECE, 'E'),
        (URG, 'U'),
        (ACK, 'A'),
        (PSH, 'P'),
        (RST, 'R'),
        (SYN, 'S'),
        (FIN, 'F'),
    ]
    .into_iter()
    .filter(|(bit, _)| flags & bit != 0)
    .map(|(_, c)| c)
    .collect()
}

/// The fields nmap reads off the reply to one probe (`None`: no reply, `R=N`), in its
/// notation. TCP: R, DF, TG, W, S, A, F, O (and CC for ECN, RD for closed ports); U1: R, DF,
/// TG, IPL, UN, RIPL, RID, RUCK, RUD; IE (per probe; [`ie_fields`] combines the two): TG, CD.
pub fn reply_fields(
    probe: Probe,
    probe_pkt: &[u8],
    reply: Option<&[u8]>,
) -> Vec<(&'static str, String)> {
    let Some(reply) = reply else {
        return vec![("R", "N".into())];
    };
    let Some(ip) = Ipv4::parse(reply) else {
        return vec![("R", "malformed".into())];
    };
    let yn = |b: bool| if b { "Y".to_owned() } else { "N".to_owned() };
    let mut f = vec![
        ("R", "Y".to_owned()),
        ("DF", yn(ip.df())),
        ("TG", format!("{:X}", ip.ttl())),
    ];
    match probe {
        Probe::U1 => {
            let icmp = ip.payload();
            f.push(("IPL", format!("{:X}", ip.bytes.len())));
            let unused = icmp
                .get(4..8)
                .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            f.push(("UN", format!("{unused:X}")));
            let quoted = icmp.get(8..).unwrap_or(&[]);
            let g = |ok: bool| if ok { "G".to_owned() } else { "bad".to_owned() };
            f.push(("RIPL", g(quoted.get(2..4) == Some(&[0x01, 0x48]))));
            f.push(("RID", g(quoted.get(4..6) == Some(&[0x10, 0x42]))));
            f.push(("RUCK", g(quoted.get(26..28) == probe_pkt.get(26..28))));
            f.push((
                "RUD",
                g(quoted
                    .get(28..)
                    .is_some_and(|d| d.iter().all(|&b| b == b'C'))),
            ));
        }
        Probe::Ie(_) => {
            let code = ip.payload().get(1).copied().unwrap_or(0xff);
            f.push(("code", code.to_string()));
        }
        _ => {
            let (Some(pip), Some(tcp)) = (Ipv4::parse(probe_pkt), Tcp::parse(ip.payload())) else {
                return vec![("R", "malformed".into())];
            };
            let Some(ptcp) = Tcp::parse(pip.payload()) else {
                return vec![("R", "malformed".into())];
            };
            f.push(("W", format!("{:X}", tcp.window())));
            let s = tcp.seq();
            f.push((
                "S",
                if s == 0 {
                    "Z"
                } else if s == ptcp.ack() {
                    "A"
                } else if s == ptcp.ack().wrapping_add(1) {
                    "A+"
                } else {
                    "O"
                }
                .into(),
            ));
            let a = tcp.ack();
            f.push((
                "A",
                if a == 0 {
                    "Z"
                } else if a == ptcp.seq() {
                    "S"
                } else if a == ptcp.seq().wrapping_add(1) {
                    "S+"
                } else {
                    "O"
                }
                .into(),
            ));
            f.push(("F", flags_string(tcp.flags())));
            f.push(("O", options_string(tcp.options())));
            if probe == Probe::Ecn {
                let cc = match (tcp.flags() & ECE != 0, tcp.flags() & CWR != 0) {
                    (true, false) => "Y",
                    (false, false) => "N",
                    (true, true) => "S",
                    (false, true) => "O",
                };
                f.push(("CC", cc.into()));
            }
        }
    }
    f
}

/// nmap's IE test from the two echo replies: DFI, CD and TG.
pub fn ie_fields(replies: [Option<&[u8]>; 2]) -> Vec<(&'static str, String)> {
    let [Some(r1), Some(r2)] = replies else {
        return vec![("R", "N".into())];
    };
    let (Some(a), Some(b)) = (Ipv4::parse(r1), Ipv4::parse(r2)) else {
        return vec![("R", "malformed".into())];
    };
    let dfi = match (a.df(), b.df()) {
        (false, false) => "N",
        (true, false) => "S",
        (true, true) => "Y",
        (false, true) => "O",
    };
    let code = |ip: &Ipv4<'_>| ip.payload().get(1).copied().unwrap_or(0xff);
    let cd = match (code(&a), code(&b)) {
        (0, 0) => "Z".to_owned(),
        (9, 0) => "S".to_owned(),
        (x, y) if x == y => format!("{x:X}"),
        _ => "O".to_owned(),
    };
    vec![
        ("DFI", dfi.into()),
        ("TG", format!("{:X}", a.ttl())),
        ("CD", cd),
    ]
}

/// nmap's class of an IP ID sequence (`TI`/`CI`/`II`): `Z`, `RD`, `RI`, `BI`, `I`, or `O`.
pub fn ip_id_class(ids: &[u16], allow_rd: bool) -> String {
    if ids.len() < 2 {
        return "?".into();
    }
    if ids.iter().all(|&i| i == 0) {
        return "Z".into();
    }
    let diffs: Vec<u16> = ids.windows(2).map(|w| w[1].wrapping_sub(w[0])).collect();
    if allow_rd && diffs.iter().any(|&d| d >= 20_000) {
        return "RD".into();
    }
    if diffs.iter().all(|&d| d == 0) {
        return format!("{:X}", ids[0]);
    }
    if diffs.iter().any(|&d| d > 1000 && d % 256 != 0) {
        return "RI".into();
    }
    if diffs.iter().all(|&d| d % 256 == 0 && d <= 5120) {
        return "BI".into();
    }
    if diffs.iter().all(|&d| d < 10) {
        return "I".into();
    }
    "O".into()
}

/// One `nmap-os-db` fingerprint: the tests (`SEQ`, `OPS`, `T1`, …) and their fields.
pub type Fingerprint = Vec<(String, Vec<(String, String)>)>;

/// Parses the test lines of an `nmap-os-db` entry (`T1(R=Y%DF=Y%…)`); other lines are skipped.
pub fn parse_fingerprint(text: &str) -> Fingerprint {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            let (name, rest) = l.split_once('(')?;
            let body = rest.strip_suffix(')')?;
            let fields = body
                .split('%')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            Some((name.to_owned(), fields))
        })
        .collect()
}

/// The expected value of `field` in `test`, if the fingerprint has it.
pub fn expected<'a>(fp: &'a Fingerprint, test: &str, field: &str) -> Option<&'a str> {
    let (_, fields) = fp.iter().find(|(t, _)| t == test)?;
    fields
        .iter()
        .find(|(k, _)| k == field)
        .map(|(_, v)| v.as_str())
}

/// Whether `got` satisfies a fingerprint value: `|`-separated alternatives, each an exact
/// string or a hex range `lo-hi`.
pub fn value_matches(expected: &str, got: &str) -> bool {
    expected.split('|').any(|alt| {
        if alt == got {
            return true;
        }
        match (alt.split_once('-'), u64::from_str_radix(got, 16)) {
            (Some((lo, hi)), Ok(g)) => {
                match (u64::from_str_radix(lo, 16), u64::from_str_radix(hi, 16)) {
                    (Ok(lo), Ok(hi)) => lo <= g && g <= hi,
                    _ => false,
                }
            }
            _ => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notation() {
        assert_eq!(
            options_string(&[2, 4, 5, 0xb4, 1, 3, 3, 8, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]),
            "M5B4NW8ST11"
        );
        assert_eq!(options_string(&[2, 4, 5, 0xb4, 3, 3, 0, 0]), "M5B4W0L");
        assert_eq!(flags_string(SYN | ACK), "AS");
        assert_eq!(flags_string(RST | ACK), "AR");
        assert!(value_matches("7B-85", "80"));
        assert!(!value_matches("7B-85", "40"));
        assert!(value_matches("Y|N", "N"));
        assert!(value_matches("", ""));
        assert_eq!(ip_id_class(&[0, 0, 0], true), "Z");
        assert_eq!(ip_id_class(&[5, 6, 8], true), "I");
        assert_eq!(ip_id_class(&[5, 30_000, 60_000], true), "RD");
        assert_eq!(ip_id_class(&[5, 2000, 4500], false), "RI");
    }

    #[test]
    fn probes_are_well_formed() {
        let t = Target {
            attacker: [10, 0, 0, 1],
            decky: [10, 0, 0, 2],
            open: 445,
            closed: 1,
        };
        for p in ALL {
            let pkt = p.build(t);
            let ip = Ipv4::parse(&pkt).expect("ipv4");
            assert_eq!(crate::packet::checksum(&pkt[..20]), 0, "{p:?}");
            if ip.proto() == PROTO_TCP {
                let tcp = Tcp::parse(ip.payload()).expect("tcp");
                assert_eq!(tcp.hlen % 4, 0);
            }
        }
    }
}

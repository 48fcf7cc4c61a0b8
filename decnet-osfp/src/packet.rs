//! Just enough IPv4/TCP/ICMP to read and rewrite a packet: bounds-checked views and the
//! Internet checksum. Anything malformed reads as `None`, never a panic.

/// IP protocol numbers.
pub const PROTO_ICMP: u8 = 1;
/// TCP.
pub const PROTO_TCP: u8 = 6;
/// UDP.
pub const PROTO_UDP: u8 = 17;

/// TCP flag bits.
pub const FIN: u8 = 0x01;
/// SYN.
pub const SYN: u8 = 0x02;
/// RST.
pub const RST: u8 = 0x04;
/// PSH.
pub const PSH: u8 = 0x08;
/// ACK.
pub const ACK: u8 = 0x10;
/// URG.
pub const URG: u8 = 0x20;
/// ECE.
pub const ECE: u8 = 0x40;
/// CWR.
pub const CWR: u8 = 0x80;

/// The IPv4 header's DF bit, in the flags/fragment word.
pub const DF_BIT: u16 = 0x4000;

/// A well-formed IPv4 packet: the header checks out and the total length fits the buffer.
#[derive(Clone, Copy, Debug)]
pub struct Ipv4<'a> {
    /// The whole packet, cut to the header's total length.
    pub bytes: &'a [u8],
    /// Header length in bytes.
    pub ihl: usize,
}

impl<'a> Ipv4<'a> {
    /// Parses an IPv4 packet; `None` for anything else (IPv6, truncated, fragments).
    pub fn parse(buf: &'a [u8]) -> Option<Ipv4<'a>> {
        let first = *buf.first()?;
        if first >> 4 != 4 {
            return None;
        }
        let ihl = usize::from(first & 0x0f) * 4;
        let total = usize::from(be16(buf, 2)?);
        if ihl < 20 || total < ihl || total > buf.len() {
            return None;
        }
        let frag = be16(buf, 6)?;
        // Only whole datagrams: a fragment's payload is not a header.
        if frag & 0x3fff != 0 {
            return None;
        }
        Some(Ipv4 {
            bytes: &buf[..total],
            ihl,
        })
    }

    /// Protocol number.
    pub fn proto(&self) -> u8 {
        self.bytes[9]
    }
    /// TTL.
    pub fn ttl(&self) -> u8 {
        self.bytes[8]
    }
    /// Identification.
    pub fn id(&self) -> u16 {
        u16::from_be_bytes([self.bytes[4], self.bytes[5]])
    }
    /// Whether DF is set.
    pub fn df(&self) -> bool {
        u16::from_be_bytes([self.bytes[6], self.bytes[7]]) & DF_BIT != 0
    }
    /// Source address.
    pub fn src(&self) -> [u8; 4] {
        [
            self.bytes[12],
            self.bytes[13],
            self.bytes[14],
            self.bytes[15],
        ]
    }
    /// Destination address.
    pub fn dst(&self) -> [u8; 4] {
        [
            self.bytes[16],
            self.bytes[17],
            self.bytes[18],
            self.bytes[19],
        ]
    }
    /// The payload after the header.
    pub fn payload(&self) -> &'a [u8] {
        &self.bytes[self.ihl..]
    }
}

/// A TCP header inside an IPv4 payload.
#[derive(Clone, Copy, Debug)]
pub struct Tcp<'a> {
    /// The whole segment.
    pub bytes: &'a [u8],
    /// Header length (data offset) in bytes.
    pub hlen: usize,
}

impl<'a> Tcp<'a> {
    /// Parses a TCP segment; `None` when truncated or the data offset is impossible.
    pub fn parse(seg: &'a [u8]) -> Option<Tcp<'a>> {
        let hlen = usize::from(*seg.get(12)? >> 4) * 4;
        if hlen < 20 || hlen > seg.len() {
            return None;
        }
        Some(Tcp { bytes: seg, hlen })
    }
    /// Source port.
    pub fn sport(&self) -> u16 {
        u16::from_be_bytes([self.bytes[0], self.bytes[1]])
    }
    /// Destination port.
    pub fn dport(&self) -> u16 {
        u16::from_be_bytes([self.bytes[2], self.bytes[3]])
    }
    /// Sequence number.
    pub fn seq(&self) -> u32 {
        u32::from_be_bytes([self.bytes[4], self.bytes[5], self.bytes[6], self.bytes[7]])
    }
    /// Acknowledgement number.
    pub fn ack(&self) -> u32 {
        u32::from_be_bytes([self.bytes[8], self.bytes[9], self.bytes[10], self.bytes[11]])
    }
    /// The flags byte (FIN … CWR).
    pub fn flags(&self) -> u8 {
        self.bytes[13]
    }
    /// Window.
    pub fn window(&self) -> u16 {
        u16::from_be_bytes([self.bytes[14], self.bytes[15]])
    }
    /// The option bytes.
    pub fn options(&self) -> &'a [u8] {
        &self.bytes[20..self.hlen]
    }
    /// The payload.
    pub fn payload(&self) -> &'a [u8] {
        &self.bytes[self.hlen..]
    }
}

/// The options of a SYN-ACK the mangler knows how to re-lay.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SynOptions {
    /// MSS value.
    pub mss: Option<u16>,
    /// Window scale shift.
    pub wscale: Option<u8>,
    /// SACK permitted.
    pub sack_ok: bool,
    /// Timestamps (value, echo reply).
    pub timestamps: Option<(u32, u32)>,
}

/// Reads TCP options. `None` when malformed or when an option other than MSS, NOP, WScale,
/// SACK permitted, timestamps and EOL is present (the mangler then leaves the packet alone).
pub fn parse_syn_options(opts: &[u8]) -> Option<SynOptions> {
    let mut out = SynOptions::default();
    let mut i = 0;
    while i < opts.len() {
        match opts[i] {
            0 => break,
            1 => i += 1,
            kind => {
                let len = usize::from(*opts.get(i + 1)?);
                let body = opts.get(i + 2..i.checked_add(len)?)?;
                match (kind, len) {
                    (2, 4) => out.mss = Some(u16::from_be_bytes([body[0], body[1]])),
                    (3, 3) => out.wscale = Some(body[0]),
                    (4, 2) => out.sack_ok = true,
                    (8, 10) => {
                        out.timestamps = Some((
                            u32::from_be_bytes([body[0], body[1], body[2], body[3]]),
                            u32::from_be_bytes([body[4], body[5], body[6], body[7]]),
                        ))
                    }
                    _ => return None,
                }
                i += len;
            }
        }
    }
    Some(out)
}

/// Reads a big-endian u16 at `at`.
pub fn be16(buf: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*buf.get(at)?, *buf.get(at + 1)?]))
}

/// Writes a big-endian u16 at `at` (the caller checked the bounds).
pub fn put16(buf: &mut [u8], at: usize, v: u16) {
    buf[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// Writes a big-endian u32 at `at` (the caller checked the bounds).
pub fn put32(buf: &mut [u8], at: usize, v: u32) {
    buf[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

/// The ones'-complement sum of `data`, folded, not yet inverted, added to `start`.
fn sum(start: u32, data: &[u8]) -> u32 {
    let mut acc = start;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(*last) << 8;
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// The Internet checksum of `data` (RFC 1071).
pub fn checksum(data: &[u8]) -> u16 {
    fold(sum(0, data))
}

/// The TCP/UDP checksum of `segment` between `src` and `dst` (its checksum field zeroed).
pub fn l4_checksum(src: [u8; 4], dst: [u8; 4], proto: u8, segment: &[u8]) -> u16 {
    let mut acc = sum(0, &src);
    acc = sum(acc, &dst);
    acc += u32::from(proto);
    acc += segment.len() as u32;
    fold(sum(acc, segment))
}

/// Recomputes the IPv4 header checksum and the TCP, UDP or ICMP checksum of a whole packet in
/// place. The caller passes a packet [`Ipv4::parse`] accepted.
pub fn fix_checksums(pkt: &mut [u8]) {
    let ihl = usize::from(pkt[0] & 0x0f) * 4;
    put16(pkt, 10, 0);
    let c = checksum(&pkt[..ihl]);
    put16(pkt, 10, c);
    let (src, dst, proto) = (
        [pkt[12], pkt[13], pkt[14], pkt[15]],
        [pkt[16], pkt[17], pkt[18], pkt[19]],
        pkt[9],
    );
    let l4 = &mut pkt[ihl..];
    match proto {
        PROTO_TCP if l4.len() >= 20 => {
            put16(l4, 16, 0);
            let c = l4_checksum(src, dst, PROTO_TCP, l4);
            put16(l4, 16, c);
        }
        PROTO_ICMP if l4.len() >= 4 => {
            put16(l4, 2, 0);
            let c = checksum(l4);
            put16(l4, 2, c);
        }
        PROTO_UDP if l4.len() >= 8 => {
            put16(l4, 6, 0);
            let c = match l4_checksum(src, dst, PROTO_UDP, l4) {
                0 => 0xffff,
                c => c,
            };
            put16(l4, 6, c);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2, checksum 220d.
        assert_eq!(
            checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0x220d
        );
        // Odd length pads with a zero byte.
        assert_eq!(checksum(&[0xff]), !0xff00);
    }

    #[test]
    fn options_parse() {
        let linux = [
            2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 1, 3, 3, 7,
        ];
        assert_eq!(
            parse_syn_options(&linux),
            Some(SynOptions {
                mss: Some(1460),
                wscale: Some(7),
                sack_ok: true,
                timestamps: Some((1, 0xffff_ffff)),
            })
        );
        assert_eq!(parse_syn_options(&[2, 4, 5]), None, "truncated");
        assert_eq!(parse_syn_options(&[2, 0]), None, "zero length");
        assert_eq!(parse_syn_options(&[30, 3, 0]), None, "unknown kind");
        assert_eq!(parse_syn_options(&[0, 99]), Some(SynOptions::default()));
    }

    #[test]
    fn rejects_what_is_not_a_whole_ipv4_packet() {
        let mut p = [0u8; 20];
        p[0] = 0x45;
        p[3] = 20;
        assert!(Ipv4::parse(&p).is_some());
        p[3] = 21;
        assert!(Ipv4::parse(&p).is_none(), "total length past the buffer");
        p[3] = 20;
        p[6] = 0x20; // MF
        assert!(Ipv4::parse(&p).is_none(), "fragment");
        p[6] = 0;
        p[0] = 0x60;
        assert!(Ipv4::parse(&p).is_none(), "ipv6");
        assert!(Ipv4::parse(&[]).is_none());
    }
}

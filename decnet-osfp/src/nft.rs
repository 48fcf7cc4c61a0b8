//! The nf_tables netlink batch that sends the mangler's packets to its NFQUEUE, encoded
//! without I/O, so a decky can install its rules with no iptables binary. This kernel has no
//! native nft `queue` expression (`CONFIG_NFT_QUEUE` unset) but has nft_compat and the xtables
//! NFQUEUE target, so each rule matches with native expressions (meta l4proto, payload,
//! bitwise, cmp) and ends in the compat `target` NFQUEUE, revision 3, with the bypass flag:
//! when nothing listens on the queue, packets pass unmangled instead of being dropped.

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_DELTABLE: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_APPEND: u16 = 0x800;
const NLA_F_NESTED: u16 = 0x8000;
const NFPROTO_IPV4: u8 = 2;
const NFPROTO_UNSPEC: u8 = 0;
/// `NF_INET_LOCAL_IN`.
const HOOK_IN: u32 = 1;
/// `NF_INET_LOCAL_OUT`.
const HOOK_OUT: u32 = 3;
const NFQ_FLAG_BYPASS: u16 = 1;

/// One queued class of packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// TCP whose flags under `mask` equal `value`.
    TcpFlags {
        /// Flag bits looked at.
        mask: u8,
        /// Their required value.
        value: u8,
    },
    /// ICMP whose first bytes (type, then code) are these.
    Icmp(&'static [u8]),
}

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const RST: u8 = 0x04;
const FIN: u8 = 0x01;

/// What the decky sends that the mangler rewrites: SYN-ACKs, RSTs, echo replies, port
/// unreachables.
pub const EGRESS: [Class; 4] = [
    Class::TcpFlags {
        mask: SYN | ACK,
        value: SYN | ACK,
    },
    Class::TcpFlags {
        mask: RST,
        value: RST,
    },
    Class::Icmp(&[0]),
    Class::Icmp(&[3, 3]),
];

/// What the decky receives that the mangler must see: SYNs (for MSS echo and W0), T2 (no
/// flags), T3 (SYN+FIN), echo requests (for DF echo).
pub const INGRESS: [Class; 4] = [
    Class::TcpFlags {
        mask: SYN | ACK | RST | FIN,
        value: SYN,
    },
    Class::TcpFlags {
        mask: 0x3f,
        value: 0,
    },
    Class::TcpFlags {
        mask: SYN | FIN,
        value: SYN | FIN,
    },
    Class::Icmp(&[8]),
];

struct Msg {
    buf: Vec<u8>,
    nests: Vec<usize>,
}

impl Msg {
    fn new(kind: u16, flags: u16, seq: u32, family: u8, res_id: u16) -> Msg {
        let mut buf = vec![0u8; 16];
        buf[4..6].copy_from_slice(&kind.to_ne_bytes());
        buf[6..8].copy_from_slice(&(NLM_F_REQUEST | flags).to_ne_bytes());
        buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&[family, 0]);
        buf.extend_from_slice(&res_id.to_be_bytes());
        Msg {
            buf,
            nests: Vec::new(),
        }
    }
    fn attr(&mut self, kind: u16, body: &[u8]) -> &mut Msg {
        self.buf
            .extend_from_slice(&((4 + body.len()) as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(body);
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
        self
    }
    fn str(&mut self, kind: u16, s: &str) -> &mut Msg {
        let mut b = s.as_bytes().to_vec();
        b.push(0);
        self.attr(kind, &b)
    }
    fn u32(&mut self, kind: u16, v: u32) -> &mut Msg {
        self.attr(kind, &v.to_be_bytes())
    }
    fn open(&mut self, kind: u16) -> &mut Msg {
        self.nests.push(self.buf.len());
        self.buf.extend_from_slice(&[0, 0]);
        self.buf
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        self
    }
    fn close(&mut self) -> &mut Msg {
        if let Some(at) = self.nests.pop() {
            let len = (self.buf.len() - at) as u16;
            self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
        }
        self
    }
    fn finish(mut self) -> Vec<u8> {
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf
    }
}

fn nft(kind: u16) -> u16 {
    (NFNL_SUBSYS_NFTABLES << 8) | kind
}

/// One expression: name and its data attributes (already encoded by `data`).
fn expr(m: &mut Msg, name: &str, data: impl FnOnce(&mut Msg)) {
    m.open(1); // NFTA_LIST_ELEM
    m.str(1, name); // NFTA_EXPR_NAME
    m.open(2); // NFTA_EXPR_DATA
    data(m);
    m.close();
    m.close();
}

fn value(m: &mut Msg, kind: u16, bytes: &[u8]) {
    m.open(kind);
    m.attr(1, bytes); // NFTA_DATA_VALUE
    m.close();
}

fn cmp_eq(m: &mut Msg, bytes: &[u8]) {
    expr(m, "cmp", |m| {
        m.u32(1, 1).u32(2, 0); // SREG 1, OP EQ
        value(m, 3, bytes);
    });
}

fn rule(seq: u32, table: &str, chain: &str, class: Class, queue: u16) -> Vec<u8> {
    let mut m = Msg::new(
        nft(NFT_MSG_NEWRULE),
        NLM_F_CREATE | NLM_F_APPEND | NLM_F_ACK,
        seq,
        NFPROTO_IPV4,
        0,
    );
    m.str(1, table).str(2, chain);
    m.open(4); // NFTA_RULE_EXPRESSIONS
    let (proto, offset, mask, want): (u8, u32, Option<u8>, Vec<u8>) = match class {
        Class::TcpFlags { mask, value } => (6, 13, Some(mask), vec![value]),
        Class::Icmp(bytes) => (1, 0, None, bytes.to_vec()),
    };
    // meta l4proto → reg 1; cmp == proto.
    expr(&mut m, "meta", |m| {
        m.u32(1, 1).u32(2, 16); // DREG 1, KEY NFT_META_L4PROTO
    });
    cmp_eq(&mut m, &[proto]);
    // payload transport header [offset, len] → reg 1.
    expr(&mut m, "payload", |m| {
        m.u32(1, 1)
            .u32(2, 2)
            .u32(3, offset)
            .u32(4, want.len() as u32);
    });
    if let Some(mask) = mask {
        expr(&mut m, "bitwise", |m| {
            m.u32(1, 1).u32(2, 1).u32(3, 1); // SREG, DREG, LEN
            value(m, 4, &[mask]);
            value(m, 5, &[0]);
        });
    }
    cmp_eq(&mut m, &want);
    expr(&mut m, "target", |m| {
        m.str(1, "NFQUEUE").u32(2, 3);
        // xt_NFQ_info_v3 in host order: queue number, queues in total, flags; padded to 8.
        let mut info = Vec::with_capacity(8);
        info.extend_from_slice(&queue.to_ne_bytes());
        info.extend_from_slice(&1u16.to_ne_bytes());
        info.extend_from_slice(&NFQ_FLAG_BYPASS.to_ne_bytes());
        info.extend_from_slice(&[0, 0]);
        m.attr(3, &info);
    });
    m.close();
    m.finish()
}

fn chain(seq: u32, table: &str, name: &str, hook: u32) -> Vec<u8> {
    let mut m = Msg::new(
        nft(NFT_MSG_NEWCHAIN),
        NLM_F_CREATE | NLM_F_ACK,
        seq,
        NFPROTO_IPV4,
        0,
    );
    m.str(1, table).str(3, name);
    m.open(4).u32(1, hook).u32(2, 0).close(); // NFTA_CHAIN_HOOK: hooknum, priority 0
    m.u32(5, 1); // policy accept
    m.str(7, "filter");
    m.finish()
}

fn batch(seq: u32, kind: u16) -> Vec<u8> {
    Msg::new(kind, 0, seq, NFPROTO_UNSPEC, NFNL_SUBSYS_NFTABLES).finish()
}

/// The whole batch: table `table` (replaced if present), chains `in` and `out` on the local
/// in/out hooks, and one rule per [`INGRESS`]/[`EGRESS`] class to `queue` with bypass. Send it
/// as one datagram on a NETLINK_NETFILTER socket; each message but the batch markers asks for
/// an ack (sequence numbers 2…), read them until as many arrived as
/// [`batch_messages_acked`] says.
pub fn install_batch(table: &str, queue: u16) -> Vec<u8> {
    let mut out = batch(1, NFNL_MSG_BATCH_BEGIN);
    let mut seq = 2;
    let push = |out: &mut Vec<u8>, msg: Vec<u8>| {
        out.extend_from_slice(&msg);
    };
    let mut t = Msg::new(
        nft(NFT_MSG_NEWTABLE),
        NLM_F_CREATE | NLM_F_ACK,
        seq,
        NFPROTO_IPV4,
        0,
    );
    t.str(1, table);
    push(&mut out, t.finish());
    seq += 1;
    push(&mut out, chain(seq, table, "in", HOOK_IN));
    seq += 1;
    push(&mut out, chain(seq, table, "out", HOOK_OUT));
    for class in INGRESS {
        seq += 1;
        push(&mut out, rule(seq, table, "in", class, queue));
    }
    for class in EGRESS {
        seq += 1;
        push(&mut out, rule(seq, table, "out", class, queue));
    }
    out.extend_from_slice(&batch(seq + 1, NFNL_MSG_BATCH_END));
    out
}

/// How many acks [`install_batch`] asks for.
pub fn batch_messages_acked() -> usize {
    3 + INGRESS.len() + EGRESS.len()
}

/// A batch that deletes `table` (to take the rules down).
pub fn delete_batch(table: &str) -> Vec<u8> {
    let mut out = batch(1, NFNL_MSG_BATCH_BEGIN);
    let mut t = Msg::new(nft(NFT_MSG_DELTABLE), NLM_F_ACK, 2, NFPROTO_IPV4, 0);
    t.str(1, table);
    out.extend_from_slice(&t.finish());
    out.extend_from_slice(&batch(3, NFNL_MSG_BATCH_END));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Walks the netlink messages of a batch: (type, flags, seq) each, lengths consistent.
    fn walk(b: &[u8]) -> Vec<(u16, u16, u32)> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < b.len() {
            let len = u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize;
            assert!(
                len >= 20 && at + len <= b.len() && len.is_multiple_of(4),
                "length at {at}"
            );
            let kind = u16::from_ne_bytes([b[at + 4], b[at + 5]]);
            let flags = u16::from_ne_bytes([b[at + 6], b[at + 7]]);
            let seq = u32::from_ne_bytes([b[at + 8], b[at + 9], b[at + 10], b[at + 11]]);
            out.push((kind, flags, seq));
            at += len;
        }
        out
    }

    #[test]
    fn batch_shape() {
        let msgs = walk(&install_batch("decnet_osfp", 16));
        assert_eq!(msgs.first().map(|m| m.0), Some(NFNL_MSG_BATCH_BEGIN));
        assert_eq!(msgs.last().map(|m| m.0), Some(NFNL_MSG_BATCH_END));
        let acked = msgs.iter().filter(|m| m.1 & NLM_F_ACK != 0).count();
        assert_eq!(acked, batch_messages_acked());
        let rules = msgs.iter().filter(|m| m.0 == nft(NFT_MSG_NEWRULE)).count();
        assert_eq!(rules, 8);
        let seqs: Vec<u32> = msgs.iter().map(|m| m.2).collect();
        assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
        assert_eq!(walk(&delete_batch("x")).len(), 3);
    }
}

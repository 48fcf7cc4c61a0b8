//! The nfnetlink_queue wire format (linux/netfilter/nfnetlink_queue.h), encoded and decoded
//! without I/O: the messages that bind a queue (with fail-open), read a queued packet, and
//! return its verdict (optionally with rewritten bytes). The socket is the adapter's
//! (`AF_NETLINK`, `NETLINK_NETFILTER`). Netlink headers are in host byte order, the
//! nfnetlink_queue structs in network byte order.

/// `AF_INET`, the protocol family a queue binds.
pub const AF_INET: u16 = 2;
const NFNL_SUBSYS_QUEUE: u16 = 3;
const NFQNL_MSG_PACKET: u16 = 0;
const NFQNL_MSG_VERDICT: u16 = 1;
const NFQNL_MSG_CONFIG: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLMSG_ERROR: u16 = 2;
const NFQA_CFG_CMD: u16 = 1;
const NFQA_CFG_PARAMS: u16 = 2;
const NFQA_CFG_MASK: u16 = 4;
const NFQA_CFG_FLAGS: u16 = 5;
const NFQNL_CFG_CMD_BIND: u8 = 1;
const NFQNL_COPY_PACKET: u8 = 2;
/// Accept the packet when the queue is full instead of dropping it.
const NFQA_CFG_F_FAIL_OPEN: u32 = 1;
const NFQA_PACKET_HDR: u16 = 1;
const NFQA_VERDICT_HDR: u16 = 2;
const NFQA_PAYLOAD: u16 = 10;
/// `NF_INET_LOCAL_IN`: a packet for this host.
pub const HOOK_LOCAL_IN: u8 = 1;
/// `NF_INET_LOCAL_OUT`: a packet this host sends.
pub const HOOK_LOCAL_OUT: u8 = 3;
/// `NF_DROP`.
pub const NF_DROP: u32 = 0;
/// `NF_ACCEPT`.
pub const NF_ACCEPT: u32 = 1;

fn nlmsg(
    kind: u16,
    flags: u16,
    seq: u32,
    queue: u16,
    family: u8,
    attrs: &[(u16, &[u8])],
) -> Vec<u8> {
    let mut m = vec![0u8; 16];
    m[4..6].copy_from_slice(&((NFNL_SUBSYS_QUEUE << 8) | kind).to_ne_bytes());
    m[6..8].copy_from_slice(&(NLM_F_REQUEST | flags).to_ne_bytes());
    m[8..12].copy_from_slice(&seq.to_ne_bytes());
    // nfgenmsg: family, version 0, resource id (the queue number, big-endian).
    m.extend_from_slice(&[family, 0]);
    m.extend_from_slice(&queue.to_be_bytes());
    for (kind, body) in attrs {
        let len = 4 + body.len();
        m.extend_from_slice(&(len as u16).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(body);
        while !m.len().is_multiple_of(4) {
            m.push(0);
        }
    }
    let total = m.len() as u32;
    m[0..4].copy_from_slice(&total.to_ne_bytes());
    m
}

/// The messages that bind `queue` for IPv4, copy whole packets (up to `copy_range` bytes) and
/// set fail-open. Each asks for an ack; send them in order and check each [`Message::Ack`] that [`parse`] returns.
pub fn bind_messages(queue: u16, copy_range: u32) -> Vec<Vec<u8>> {
    let bind = [NFQNL_CFG_CMD_BIND, 0, 0, 0];
    let mut bind_cmd = bind;
    bind_cmd[2..4].copy_from_slice(&AF_INET.to_be_bytes());
    let mut params = copy_range.to_be_bytes().to_vec();
    params.push(NFQNL_COPY_PACKET);
    let flags = NFQA_CFG_F_FAIL_OPEN.to_be_bytes();
    vec![
        nlmsg(
            NFQNL_MSG_CONFIG,
            NLM_F_ACK,
            1,
            queue,
            0,
            &[(NFQA_CFG_CMD, &bind_cmd)],
        ),
        nlmsg(
            NFQNL_MSG_CONFIG,
            NLM_F_ACK,
            2,
            queue,
            0,
            &[(NFQA_CFG_PARAMS, &params)],
        ),
        nlmsg(
            NFQNL_MSG_CONFIG,
            NLM_F_ACK,
            3,
            queue,
            0,
            &[(NFQA_CFG_FLAGS, &flags), (NFQA_CFG_MASK, &flags)],
        ),
    ]
}

/// A verdict for packet `id`; with `payload`, the packet is replaced by those bytes.
pub fn verdict_message(queue: u16, id: u32, verdict: u32, payload: Option<&[u8]>) -> Vec<u8> {
    let mut hdr = verdict.to_be_bytes().to_vec();
    hdr.extend_from_slice(&id.to_be_bytes());
    let mut attrs: Vec<(u16, &[u8])> = vec![(NFQA_VERDICT_HDR, &hdr)];
    if let Some(p) = payload {
        attrs.push((NFQA_PAYLOAD, p));
    }
    nlmsg(NFQNL_MSG_VERDICT, 0, 0, queue, AF_INET as u8, &attrs)
}

/// One message read off the queue socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message<'a> {
    /// A queued packet: its id (for the verdict) and its bytes (from the IP header on).
    Packet {
        /// The queue it came from.
        queue: u16,
        /// Packet id.
        id: u32,
        /// The netfilter hook: [`HOOK_LOCAL_IN`] (incoming) or [`HOOK_LOCAL_OUT`] (outgoing).
        hook: u8,
        /// The packet.
        payload: &'a [u8],
    },
    /// An ack (`errno` 0) or error (negative errno) for request `seq`.
    Ack {
        /// The request's sequence number.
        seq: u32,
        /// 0 or a negative errno.
        errno: i32,
    },
    /// Anything else.
    Other,
}

/// Splits a datagram read off the socket into its netlink messages (malformed tails are
/// dropped).
pub fn parse(buf: &[u8]) -> Vec<Message<'_>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 16 <= buf.len() {
        let len = u32::from_ne_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]) as usize;
        if len < 16 || at + len > buf.len() {
            break;
        }
        let msg = &buf[at..at + len];
        let kind = u16::from_ne_bytes([msg[4], msg[5]]);
        out.push(parse_one(kind, msg));
        at += (len + 3) & !3;
    }
    out
}

fn parse_one(kind: u16, msg: &[u8]) -> Message<'_> {
    if kind == NLMSG_ERROR && msg.len() >= 36 {
        let errno = i32::from_ne_bytes([msg[16], msg[17], msg[18], msg[19]]);
        let seq = u32::from_ne_bytes([msg[28], msg[29], msg[30], msg[31]]);
        return Message::Ack { seq, errno };
    }
    if kind != (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET || msg.len() < 20 {
        return Message::Other;
    }
    let queue = u16::from_be_bytes([msg[18], msg[19]]);
    let (mut id, mut hook, mut payload) = (None, 0, None);
    let mut at = 20;
    while at + 4 <= msg.len() {
        let len = usize::from(u16::from_ne_bytes([msg[at], msg[at + 1]]));
        let kind = u16::from_ne_bytes([msg[at + 2], msg[at + 3]]) & 0x3fff;
        if len < 4 || at + len > msg.len() {
            break;
        }
        let body = &msg[at + 4..at + len];
        match kind {
            NFQA_PACKET_HDR if body.len() >= 7 => {
                id = Some(u32::from_be_bytes([body[0], body[1], body[2], body[3]]));
                hook = body[6];
            }
            NFQA_PAYLOAD => payload = Some(body),
            _ => {}
        }
        at += (len + 3) & !3;
    }
    match (id, payload) {
        (Some(id), Some(payload)) => Message::Packet {
            queue,
            id,
            hook,
            payload,
        },
        _ => Message::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_layout() {
        let m = verdict_message(3, 0x01020304, NF_ACCEPT, Some(&[0x45, 0, 0]));
        assert_eq!(
            u32::from_ne_bytes([m[0], m[1], m[2], m[3]]) as usize,
            m.len()
        );
        assert_eq!(u16::from_ne_bytes([m[4], m[5]]), 0x0301);
        assert_eq!(&m[16..20], &[2, 0, 0, 3]);
        // verdict header attribute: len 12, type 2, verdict 1, id.
        assert_eq!(u16::from_ne_bytes([m[20], m[21]]), 12);
        assert_eq!(u16::from_ne_bytes([m[22], m[23]]), 2);
        assert_eq!(&m[24..32], &[0, 0, 0, 1, 1, 2, 3, 4]);
        assert_eq!(m.len() % 4, 0);
    }

    #[test]
    fn packet_round_trip_and_garbage() {
        // Build a packet message the way the kernel does, then parse it.
        let mut hdr = 7u32.to_be_bytes().to_vec();
        hdr.extend_from_slice(&[0x08, 0x00, 3]);
        let mut m = nlmsg(
            NFQNL_MSG_PACKET,
            0,
            0,
            5,
            2,
            &[(NFQA_PACKET_HDR, &hdr), (NFQA_PAYLOAD, b"ip!")],
        );
        m[6] = 0; // the kernel sets no request flag
        let got = parse(&m);
        assert_eq!(
            got,
            vec![Message::Packet {
                queue: 5,
                id: 7,
                hook: 3,
                payload: b"ip!"
            }]
        );
        assert!(parse(&m[..10]).is_empty());
        assert_eq!(bind_messages(1, 0xffff).len(), 3);
    }
}

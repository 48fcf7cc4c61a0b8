//! LLMNR (RFC 4795) and mDNS name queries: the decky answers for its own name with its own
//! IPv4 address and records who asks for what. A *response* arriving at the decky is recorded
//! too: on a LAN where nobody should answer for names the decky never asked about, it is the
//! mark of a name-poisoning tool (Responder, Inveigh).
//!
//! Messages use the DNS wire format; names are read without compression pointers (a query has
//! no use for them), at most 255 bytes and 63 per label.

use std::net::Ipv4Addr;

use serde_json::Value;

use crate::log::Fields;

/// TTL of an answer (Windows answers LLMNR with 30 s).
const TTL: u32 = 30;
const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;
const TYPE_ANY: u16 = 255;

/// The first question of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    pub id: u16,
    pub response: bool,
    pub name: String,
    pub qtype: u16,
    /// Where the question ends in the message.
    pub end: usize,
}

/// Reads a name of plain labels at `at`; (name, the offset after it).
fn read_name(m: &[u8], mut at: usize) -> Option<(String, usize)> {
    let mut labels: Vec<String> = Vec::new();
    let mut total = 0;
    loop {
        let len = usize::from(*m.get(at)?);
        at += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None; // a compression pointer or a reserved label type
        }
        total += len + 1;
        if total > 255 {
            return None;
        }
        let label = m.get(at..at + len)?;
        labels.push(label.iter().map(|&b| char::from(b)).collect());
        at += len;
    }
    Some((labels.join("."), at))
}

pub fn parse(m: &[u8]) -> Option<Question> {
    if m.len() < 12 {
        return None;
    }
    let id = u16::from_be_bytes([m[0], m[1]]);
    let flags = u16::from_be_bytes([m[2], m[3]]);
    let qdcount = u16::from_be_bytes([m[4], m[5]]);
    if qdcount == 0 || flags & 0x7800 != 0 {
        return None; // no question, or an opcode other than a standard query
    }
    let (name, at) = read_name(m, 12)?;
    let qtype = u16::from_be_bytes([*m.get(at)?, *m.get(at + 1)?]);
    m.get(at + 3)?;
    Some(Question {
        id,
        response: flags & 0x8000 != 0,
        name,
        qtype,
        end: at + 4,
    })
}

/// Whether `name` is the decky's: its host name's first label, alone or under `.local`.
pub fn is_ours(name: &str, hostname: &str) -> bool {
    let host = hostname.split('.').next().unwrap_or_default();
    if host.is_empty() {
        return false;
    }
    let name = name.trim_end_matches('.');
    let (first, rest) = name.split_once('.').unwrap_or((name, ""));
    first.eq_ignore_ascii_case(host) && (rest.is_empty() || rest.eq_ignore_ascii_case("local"))
}

/// The answer to `q` (asked as `query`) with `ip`: the question, then an A record for A and
/// ANY queries; no answer record for other types (as RFC 4795 §2.1.1 asks of a responder
/// that has the name but not the type).
pub fn answer(query: &[u8], q: &Question, ip: Ipv4Addr) -> Vec<u8> {
    let with_a = matches!(q.qtype, TYPE_A | TYPE_ANY);
    let mut out = Vec::with_capacity(q.end + 16);
    out.extend_from_slice(&q.id.to_be_bytes());
    out.extend_from_slice(&0x8000u16.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&u16::from(with_a).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&query[12..q.end]);
    if with_a {
        out.extend_from_slice(&[0xc0, 0x0c]);
        out.extend_from_slice(&TYPE_A.to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes());
        out.extend_from_slice(&TTL.to_be_bytes());
        out.extend_from_slice(&4u16.to_be_bytes());
        out.extend_from_slice(&ip.octets());
    }
    out
}

fn type_name(t: u16) -> String {
    match t {
        TYPE_A => "A".into(),
        TYPE_AAAA => "AAAA".into(),
        TYPE_ANY => "ANY".into(),
        12 => "PTR".into(),
        16 => "TXT".into(),
        33 => "SRV".into(),
        n => n.to_string(),
    }
}

/// Records one datagram in `fields` and returns the reply to send, if any.
pub fn datagram(
    m: &[u8],
    hostname: &str,
    ip: Option<Ipv4Addr>,
    fields: &mut Fields,
) -> Option<Vec<u8>> {
    let Some(q) = parse(m) else {
        fields.insert("reason".into(), Value::from("not a name query"));
        return None;
    };
    fields.insert(
        "query_name".into(),
        Value::from(crate::util::preview(q.name.as_bytes(), 255)),
    );
    fields.insert("query_type".into(), Value::from(type_name(q.qtype)));
    if q.response {
        // Someone answered a name query at the decky: poisoning.
        fields.insert("response".into(), Value::from(true));
        return None;
    }
    let ours = is_ours(&q.name, hostname);
    fields.insert("ours".into(), Value::from(ours));
    let reply = match (ours, ip) {
        (true, Some(ip)) => Some(answer(m, &q, ip)),
        _ => None,
    };
    fields.insert("answered".into(), Value::from(reply.is_some()));
    reply
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    pub fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
        let mut m = id.to_be_bytes().to_vec();
        m.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        for l in name.split('.') {
            m.push(l.len() as u8);
            m.extend_from_slice(l.as_bytes());
        }
        m.push(0);
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&1u16.to_be_bytes());
        m
    }

    #[test]
    fn own_name_is_answered_with_the_address() {
        let q = query(0x1234, "FS01", TYPE_A);
        let mut f = Fields::new();
        let r = datagram(&q, "fs01", Some(Ipv4Addr::new(10, 0, 0, 5)), &mut f).expect("answer");
        assert_eq!(&r[..2], &[0x12, 0x34]);
        assert_eq!(&r[2..4], &[0x80, 0]);
        assert_eq!(&r[6..8], &[0, 1], "one answer");
        assert_eq!(&r[r.len() - 4..], &[10, 0, 0, 5]);
        assert_eq!(f["query_name"], "FS01");
        assert_eq!(f["query_type"], "A");
        assert_eq!(f["answered"], true);
        let mut f = Fields::new();
        let r = datagram(
            &query(1, "fs01", TYPE_AAAA),
            "fs01",
            Some(Ipv4Addr::LOCALHOST),
            &mut f,
        )
        .expect("empty answer");
        assert_eq!(&r[6..8], &[0, 0]);
    }

    #[test]
    fn other_names_and_responses_are_only_recorded() {
        let mut f = Fields::new();
        assert_eq!(
            datagram(
                &query(1, "wpad", TYPE_A),
                "fs01",
                Some(Ipv4Addr::LOCALHOST),
                &mut f
            ),
            None
        );
        assert_eq!(f["query_name"], "wpad");
        assert_eq!(f["ours"], false);
        let mut resp = query(2, "fileserv", TYPE_A);
        resp[2] = 0x80;
        let mut f = Fields::new();
        assert_eq!(
            datagram(&resp, "fs01", Some(Ipv4Addr::LOCALHOST), &mut f),
            None
        );
        assert_eq!(f["response"], true);
        assert!(is_ours("fs01.local", "FS01.acme.corp"));
        assert!(!is_ours("fs01.evil", "fs01"));
        let mut f = Fields::new();
        assert_eq!(datagram(b"junk", "fs01", None, &mut f), None);
        assert_eq!(f["reason"], "not a name query");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn hostile_datagrams_never_panic(
            data in proptest::collection::vec(any::<u8>(), 0..300),
            at in any::<usize>(),
            byte in any::<u8>(),
            cut in any::<usize>(),
        ) {
            let mut f = Fields::new();
            let _ = datagram(&data, "fs01", Some(Ipv4Addr::LOCALHOST), &mut f);
            let mut m = query(7, "fs01", TYPE_A);
            let i = at % m.len();
            m[i] = byte;
            m.truncate(cut % (m.len() + 1));
            let mut f = Fields::new();
            let _ = datagram(&m, "fs01", Some(Ipv4Addr::LOCALHOST), &mut f);
        }
    }
}

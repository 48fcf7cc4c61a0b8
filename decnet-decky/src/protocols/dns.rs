//! DNS (UDP and TCP 53) as an authoritative BIND for the persona's zone: SOA, NS, A (the decky
//! and `extra_records`), TXT/MX/CNAME from `extra_records`, PTR for the decky's own address,
//! `version.bind` / `hostname.bind` / `id.server` in class CH. Recursion (any name outside the
//! zone) and zone transfers (AXFR/IXFR) are REFUSED; nothing is ever forwarded. Every query is
//! recorded.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr};

use serde_json::{Map, Value};

use super::{Conn, Peer, ServiceCtx, MAX_COMMANDS};
use crate::log::{AttackDetails, AttackKind, Fields, Reporter};
use crate::util::{bump, preview, push_bounded};

pub const DEFAULT_BIND_VERSION: &str = "9.18.28-0ubuntu0.22.04.1-Ubuntu";
const TTL: u32 = 3600;

pub const NOERROR: u8 = 0;
pub const FORMERR: u8 = 1;
pub const NXDOMAIN: u8 = 3;
pub const NOTIMP: u8 = 4;
pub const REFUSED: u8 = 5;

/// One record the zone serves: (owner, type, rdata).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub name: String,
    pub rtype: u16,
    pub rdata: Vec<u8>,
}

/// The persona's zone.
#[derive(Debug, Clone)]
pub struct Zone {
    /// Lower-case, without the final dot.
    pub domain: String,
    pub hostname: String,
    pub bind_version: String,
    pub records: Vec<Record>,
    /// The `x.x.x.x.in-addr.arpa` names answered with PTR, with their targets.
    pub ptrs: Vec<(String, String)>,
    /// `zone_mode` recursive or open: the RA flag is set and names outside the zone get
    /// NXDOMAIN (still never forwarded); auth (the default) REFUSES them.
    pub recursion_available: bool,
}

/// A name in wire form (no compression). Labels over 63 bytes are cut.
pub fn encode_name(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        let l = &label.as_bytes()[..label.len().min(63)];
        out.push(l.len() as u8);
        out.extend_from_slice(l);
    }
    out.push(0);
    out
}

fn type_code(t: &str) -> Option<u16> {
    Some(match t.to_ascii_uppercase().as_str() {
        "A" => 1,
        "NS" => 2,
        "CNAME" => 5,
        "SOA" => 6,
        "PTR" => 12,
        "MX" => 15,
        "TXT" => 16,
        "AAAA" => 28,
        _ => return None,
    })
}

pub fn type_name(t: u16) -> String {
    match t {
        1 => "A".into(),
        2 => "NS".into(),
        5 => "CNAME".into(),
        6 => "SOA".into(),
        12 => "PTR".into(),
        15 => "MX".into(),
        16 => "TXT".into(),
        28 => "AAAA".into(),
        33 => "SRV".into(),
        48 => "DNSKEY".into(),
        251 => "IXFR".into(),
        252 => "AXFR".into(),
        255 => "ANY".into(),
        n => format!("TYPE{n}"),
    }
}

fn txt(s: &str) -> Vec<u8> {
    let b = &s.as_bytes()[..s.len().min(255)];
    let mut out = vec![b.len() as u8];
    out.extend_from_slice(b);
    out
}

impl Zone {
    pub fn from_ctx(ctx: &ServiceCtx, ip: Ipv4Addr) -> Zone {
        let domain = ctx
            .config
            .line("domain")
            .map(|d| d.trim_end_matches('.').to_ascii_lowercase())
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| {
                let d: String = ctx
                    .decky
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                    .collect();
                format!("{}.local", if d.is_empty() { "corp" } else { &d }).to_ascii_lowercase()
            });
        let host = ctx
            .hostname
            .split('.')
            .next()
            .unwrap_or("ns1")
            .to_ascii_lowercase();
        let fq = |n: &str| format!("{n}.{domain}");
        let mut soa = encode_name(&fq("ns1"));
        soa.extend(encode_name(&fq("hostmaster")));
        for v in [2_024_112_501u32, 10_800, 3600, 604_800, 3600] {
            soa.extend_from_slice(&v.to_be_bytes());
        }
        let a = ip.octets().to_vec();
        let mut records = vec![
            Record {
                name: domain.clone(),
                rtype: 6,
                rdata: soa,
            },
            Record {
                name: domain.clone(),
                rtype: 2,
                rdata: encode_name(&fq("ns1")),
            },
            Record {
                name: domain.clone(),
                rtype: 1,
                rdata: a.clone(),
            },
            Record {
                name: fq("ns1"),
                rtype: 1,
                rdata: a.clone(),
            },
            Record {
                name: fq(&host),
                rtype: 1,
                rdata: a.clone(),
            },
        ];
        let mut ptrs = vec![(reverse_name(ip), fq(&host))];
        for line in ctx
            .config
            .string("extra_records")
            .unwrap_or_default()
            .lines()
            .take(256)
        {
            let mut parts = line.split_whitespace();
            let (Some(name), Some(t), rest) = (
                parts.next(),
                parts.next(),
                parts.collect::<Vec<_>>().join(" "),
            ) else {
                continue;
            };
            let owner = if name == "@" {
                domain.clone()
            } else if name.ends_with('.') {
                name.trim_end_matches('.').to_ascii_lowercase()
            } else {
                fq(&name.to_ascii_lowercase())
            };
            let Some(rtype) = type_code(t) else { continue };
            let rdata = match rtype {
                1 => match rest.parse::<Ipv4Addr>() {
                    Ok(v4) => {
                        ptrs.push((reverse_name(v4), owner.clone()));
                        v4.octets().to_vec()
                    }
                    Err(_) => continue,
                },
                28 => match rest.parse::<std::net::Ipv6Addr>() {
                    Ok(v6) => v6.octets().to_vec(),
                    Err(_) => continue,
                },
                16 => txt(&rest),
                15 => {
                    let mut it = rest.split_whitespace();
                    let (pref, target) = match (it.next(), it.next()) {
                        (Some(p), Some(t)) => (p.parse().unwrap_or(10u16), t.to_owned()),
                        (Some(t), None) => (10, t.to_owned()),
                        _ => continue,
                    };
                    let mut r = pref.to_be_bytes().to_vec();
                    r.extend(encode_name(&qualify(&target, &domain)));
                    r
                }
                _ => encode_name(&qualify(&rest, &domain)),
            };
            records.push(Record {
                name: owner,
                rtype,
                rdata,
            });
        }
        Zone {
            domain,
            hostname: ctx.hostname.clone(),
            bind_version: ctx
                .config
                .line("bind_version")
                .unwrap_or_else(|| DEFAULT_BIND_VERSION.to_owned()),
            records,
            ptrs,
            recursion_available: matches!(
                ctx.config.string("zone_mode").as_deref(),
                Some("recursive" | "open")
            ),
        }
    }

    fn in_zone(&self, name: &str) -> bool {
        name == self.domain || name.ends_with(&format!(".{}", self.domain))
    }
}

fn qualify(target: &str, domain: &str) -> String {
    if target.ends_with('.') {
        target.trim_end_matches('.').to_owned()
    } else {
        format!("{target}.{domain}")
    }
}

fn reverse_name(ip: Ipv4Addr) -> String {
    let o = ip.octets();
    format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
}

/// A parsed query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub id: u16,
    pub flags: u16,
    /// Lower-cased, dotted, without the final dot.
    pub name: String,
    pub qtype: u16,
    pub qclass: u16,
    /// The question as sent (echoed in the answer).
    pub question: Vec<u8>,
    pub edns: bool,
}

/// Parses a query; `Err(Some(id))` for a malformed one whose id could be read.
pub fn parse(data: &[u8]) -> Result<Query, Option<u16>> {
    let id = u16::from_be_bytes([*data.first().ok_or(None)?, *data.get(1).ok_or(None)?]);
    let head = data.get(..12).ok_or(Some(id))?;
    let flags = u16::from_be_bytes([head[2], head[3]]);
    let qd = u16::from_be_bytes([head[4], head[5]]);
    let ar = u16::from_be_bytes([head[10], head[11]]);
    if flags & 0x8000 != 0 || qd != 1 {
        return Err(Some(id));
    }
    let mut pos = 12;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*data.get(pos).ok_or(Some(id))?);
        if len == 0 {
            pos += 1;
            break;
        }
        // Compression pointers do not belong in a question; long names are malformed.
        if len > 63 || pos > 12 + 255 {
            return Err(Some(id));
        }
        let l = data.get(pos + 1..pos + 1 + len).ok_or(Some(id))?;
        labels.push(String::from_utf8_lossy(l).to_ascii_lowercase());
        pos += 1 + len;
    }
    let qt = data.get(pos..pos + 4).ok_or(Some(id))?;
    let question = data[12..pos + 4].to_vec();
    // An OPT record in the additional section: the client speaks EDNS.
    let rest = &data[pos + 4..];
    let edns = ar > 0 && rest.len() >= 11 && rest[0] == 0 && rest[1..3] == [0, 41];
    Ok(Query {
        id,
        flags,
        name: labels.join("."),
        qtype: u16::from_be_bytes([qt[0], qt[1]]),
        qclass: u16::from_be_bytes([qt[2], qt[3]]),
        question,
        edns,
    })
}

const AA: u16 = 0x0400;
const TC: u16 = 0x0200;
const RD: u16 = 0x0100;
const RA: u16 = 0x0080;

/// A response header: `flags` (AA, TC, RD) and the rcode; `counts` = [qd, an, ns, ar].
fn header(id: u16, flags: u16, rcode: u8, counts: [u16; 4]) -> Vec<u8> {
    let mut h = id.to_be_bytes().to_vec();
    h.extend_from_slice(&(0x8000 | flags | u16::from(rcode)).to_be_bytes());
    for n in counts {
        h.extend_from_slice(&n.to_be_bytes());
    }
    h
}

/// A resource record whose owner is the question's name (a pointer to offset 12).
fn rr_at_question(rtype: u16, class: u16, rdata: &[u8]) -> Vec<u8> {
    let mut r = vec![0xc0, 0x0c];
    rr_tail(&mut r, rtype, class, rdata);
    r
}

fn rr_named(name: &str, rtype: u16, rdata: &[u8]) -> Vec<u8> {
    let mut r = encode_name(name);
    rr_tail(&mut r, rtype, 1, rdata);
    r
}

fn rr_tail(r: &mut Vec<u8>, rtype: u16, class: u16, rdata: &[u8]) {
    r.extend_from_slice(&rtype.to_be_bytes());
    r.extend_from_slice(&class.to_be_bytes());
    r.extend_from_slice(&TTL.to_be_bytes());
    r.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    r.extend_from_slice(rdata);
}

const OPT: &[u8] = &[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0];

/// The answer to `q` (what a BIND with `recursion no;` would send), and its rcode.
pub fn answer(zone: &Zone, q: &Query, max_len: usize) -> (Vec<u8>, u8) {
    let rd = q.flags & 0x0100 != 0;
    let opcode = (q.flags >> 11) & 0xf;
    let mut answers: Vec<Vec<u8>> = Vec::new();
    let mut authority: Vec<Vec<u8>> = Vec::new();
    let (aa, rcode) = if opcode != 0 {
        (false, NOTIMP)
    } else if q.qclass == 3 {
        let value = match (q.qtype, q.name.as_str()) {
            (16 | 255, "version.bind" | "version.server") => Some(zone.bind_version.clone()),
            (16 | 255, "hostname.bind" | "id.server") => Some(zone.hostname.clone()),
            _ => None,
        };
        match value {
            Some(v) => {
                answers.push(rr_at_question(16, 3, &txt(&v)));
                (true, NOERROR)
            }
            None => (false, REFUSED),
        }
    } else if matches!(q.qtype, 251 | 252) {
        (false, REFUSED)
    } else if let Some((_, target)) = zone.ptrs.iter().find(|(n, _)| *n == q.name) {
        if matches!(q.qtype, 12 | 255) {
            answers.push(rr_at_question(12, 1, &encode_name(target)));
        }
        (true, NOERROR)
    } else if zone.in_zone(&q.name) {
        let owned: Vec<&Record> = zone.records.iter().filter(|r| r.name == q.name).collect();
        let hits: Vec<&&Record> = owned
            .iter()
            .filter(|r| r.rtype == q.qtype || q.qtype == 255 || r.rtype == 5)
            .collect();
        for r in &hits {
            answers.push(rr_at_question(r.rtype, 1, &r.rdata));
        }
        if hits.is_empty() {
            if let Some(soa) = zone.records.iter().find(|r| r.rtype == 6) {
                authority.push(rr_named(&zone.domain, 6, &soa.rdata));
            }
        }
        (true, if owned.is_empty() { NXDOMAIN } else { NOERROR })
    } else if zone.recursion_available {
        // A resolver persona, but nothing is ever looked up: the name "does not exist".
        (false, NXDOMAIN)
    } else {
        // Recursion is not offered: BIND's `recursion no;` answers REFUSED.
        (false, REFUSED)
    };
    let ra = if zone.recursion_available { RA } else { 0 };
    let flags = if aa { AA } else { 0 } | if rd { RD } else { 0 } | ra;
    let counts = [
        1,
        answers.len() as u16,
        authority.len() as u16,
        u16::from(q.edns),
    ];
    let mut out = header(q.id, flags, rcode, counts);
    out.extend_from_slice(&q.question);
    out.extend(answers.concat());
    out.extend(authority.concat());
    if q.edns {
        out.extend_from_slice(OPT);
    }
    if out.len() > max_len {
        // Too large for the reply bound: header and question with TC, as over-size UDP answers.
        let mut t = header(q.id, flags | TC, rcode, [1, 0, 0, 0]);
        t.extend_from_slice(&q.question);
        return (t, rcode);
    }
    (out, rcode)
}

fn rcode_name(r: u8) -> &'static str {
    match r {
        NOERROR => "NOERROR",
        FORMERR => "FORMERR",
        NXDOMAIN => "NXDOMAIN",
        NOTIMP => "NOTIMP",
        REFUSED => "REFUSED",
        _ => "SERVFAIL",
    }
}

/// Records one query into `fields` (and a `request` step) and returns the reply bytes.
pub fn query(
    zone: &Zone,
    data: &[u8],
    max_len: usize,
    report: &Reporter,
    fields: &mut Fields,
) -> Option<Vec<u8>> {
    let q = match parse(data) {
        Ok(q) => q,
        Err(id) => {
            fields.insert("dns".into(), Value::from("malformed"));
            fields.insert("preview".into(), Value::from(preview(data, 64)));
            // A FORMERR carries only the header (when there is an id to answer).
            return id.map(|id| header(id, 0, FORMERR, [0; 4]));
        }
    };
    let (reply, rcode) = answer(zone, &q, max_len);
    let qname = q.name.chars().take(255).collect::<String>();
    let qtype = type_name(q.qtype);
    let class = match q.qclass {
        1 => "IN".to_owned(),
        3 => "CH".to_owned(),
        255 => "ANY".to_owned(),
        n => format!("CLASS{n}"),
    };
    fields.insert("qname".into(), Value::from(qname.clone()));
    fields.insert("qtype".into(), Value::from(qtype.clone()));
    fields.insert("qclass".into(), Value::from(class.clone()));
    fields.insert("rcode".into(), Value::from(rcode_name(rcode)));
    fields.insert(
        "recursion_desired".into(),
        Value::from(q.flags & 0x0100 != 0),
    );
    let mut extra = Map::new();
    for k in ["qname", "qtype", "qclass", "rcode", "recursion_desired"] {
        if let Some(v) = fields.get(k) {
            extra.insert(k.into(), v.clone());
        }
    }
    report.emit(
        AttackKind::Request,
        AttackDetails {
            command: Some(format!("{qname} {class} {qtype}")),
            extra,
            ..Default::default()
        },
    );
    Some(reply)
}

/// The decky's IPv4 address for A records (the address the peer reached), else loopback.
pub fn own_v4(ip: Option<IpAddr>) -> Ipv4Addr {
    match ip {
        Some(IpAddr::V4(v4)) if !v4.is_unspecified() => v4,
        _ => Ipv4Addr::LOCALHOST,
    }
}

/// DNS over TCP: length-prefixed queries on one connection.
pub fn handle<S: Read + Write>(
    mut conn: Conn<S>,
    ctx: &ServiceCtx,
    peer: &Peer,
    report: &Reporter,
    fields: &mut Fields,
) -> io::Result<()> {
    let zone = Zone::from_ctx(ctx, own_v4(peer.dst_ip));
    for _ in 0..MAX_COMMANDS {
        if conn.peek()?.is_none() {
            return Ok(());
        }
        let len = conn.read_exact_vec(2)?;
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        let msg = conn.read_exact_vec(len)?;
        let mut f = Fields::new();
        let reply = query(&zone, &msg, 65_535, report, &mut f);
        bump(fields, "queries");
        if let Some(q) = f.get("qname") {
            let t = f.get("qtype").and_then(Value::as_str).unwrap_or_default();
            push_bounded(
                fields,
                "questions",
                Value::from(format!("{} {t}", q.as_str().unwrap_or_default())),
                super::MAX_LOGGED,
            );
        }
        match reply {
            Some(r) => {
                let mut out = (r.len() as u16).to_be_bytes().to_vec();
                out.extend(r);
                conn.send(&out)?;
            }
            None => return Ok(()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{ctx, peer, reporter, Mock};
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn zone() -> Zone {
        let c = ctx(
            "dns",
            json!({"domain": "corp.local", "extra_records": "www A 10.0.0.5\nmail TXT v=spf1 ~all\n@ MX 10 mail\nbad line"}),
        );
        Zone::from_ctx(&c, Ipv4Addr::new(10, 0, 0, 20))
    }

    fn q(name: &str, qtype: u16, qclass: u16, rd: bool) -> Vec<u8> {
        let mut m = vec![
            0xbe,
            0xef,
            if rd { 1 } else { 0 },
            0,
            0,
            1,
            0,
            0,
            0,
            0,
            0,
            0,
        ];
        m.extend(encode_name(name));
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&qclass.to_be_bytes());
        m
    }

    fn rcode(r: &[u8]) -> u8 {
        r[3] & 0xf
    }

    fn ancount(r: &[u8]) -> u16 {
        u16::from_be_bytes([r[6], r[7]])
    }

    #[test]
    fn zone_answers() {
        let z = zone();
        let check = |name: &str, t: u16, rc: u8, an: u16| {
            let query = parse(&q(name, t, 1, true)).expect("parse");
            let (r, code) = answer(&z, &query, 4096);
            assert_eq!((code, rcode(&r), ancount(&r)), (rc, rc, an), "{name} {t}");
            r
        };
        let r = check("www.corp.local", 1, NOERROR, 1);
        assert!(r.ends_with(&[0, 4, 10, 0, 0, 5]));
        assert_eq!(r[2] & 0x04, 0x04, "authoritative");
        assert_eq!(r[3] & 0x80, 0, "no recursion available");
        check("corp.local", 6, NOERROR, 1);
        check("CORP.local", 2, NOERROR, 1);
        check("mail.corp.local", 16, NOERROR, 1);
        check("corp.local", 15, NOERROR, 1);
        check("web-01.corp.local", 1, NOERROR, 1);
        check("nope.corp.local", 1, NXDOMAIN, 0);
        check("www.corp.local", 28, NOERROR, 0);
        check("20.0.0.10.in-addr.arpa", 12, NOERROR, 1);
        check("5.0.0.10.in-addr.arpa", 12, NOERROR, 1);
        check("example.com", 1, REFUSED, 0);
        check("8.8.8.8.in-addr.arpa", 12, REFUSED, 0);
        check("corp.local", 252, REFUSED, 0);
    }

    #[test]
    fn recursive_mode_sets_ra_and_never_forwards() {
        let c = ctx(
            "dns",
            json!({"domain": "corp.local", "zone_mode": "recursive"}),
        );
        let z = Zone::from_ctx(&c, Ipv4Addr::new(10, 0, 0, 20));
        let query = parse(&q("example.com", 1, 1, true)).expect("parse");
        let (r, code) = answer(&z, &query, 512);
        assert_eq!(code, NXDOMAIN);
        assert_eq!(r[3] & 0x80, 0x80, "RA");
        assert_eq!(ancount(&r), 0);
        let query = parse(&q("corp.local", 252, 1, false)).expect("parse");
        assert_eq!(answer(&z, &query, 512).1, REFUSED, "AXFR still refused");
    }

    #[test]
    fn version_bind_and_nmaps_probe() {
        let probe = b"\0\x06\x01\0\0\x01\0\0\0\0\0\0\x07version\x04bind\0\0\x10\0\x03";
        let (report, _) = reporter("dns", 53);
        let mut f = Fields::new();
        let r = query(&zone(), probe, 4096, &report, &mut f).expect("reply");
        // nmap: \x07version\x04bind\0\0\x10\0\x03\xc0\x0c\0\x10\0\x03.{7}(\d[-\w.+]*?)-[Uu]buntu
        let at = r
            .windows(4)
            .position(|w| w == b"\xc0\x0c\x00\x10")
            .expect("answer");
        assert_eq!(&r[at + 4..at + 6], b"\0\x03");
        assert!(r[at + 13..].starts_with(b"9.18.28-0ubuntu0.22.04.1-Ubuntu"));
        assert_eq!(f["qname"], "version.bind");
        assert_eq!(f["qclass"], "CH");
        assert_eq!(f["rcode"], "NOERROR");
    }

    #[test]
    fn big_answers_are_truncated_to_the_bound() {
        let z = zone();
        let query = parse(&q("corp.local", 255, 1, false)).expect("parse");
        let (full, _) = answer(&z, &query, 4096);
        let (t, _) = answer(&z, &query, 60);
        assert!(full.len() > 60);
        assert!(t.len() <= 60);
        assert_eq!(t[2] & 0x02, 0x02, "TC");
    }

    #[test]
    fn malformed_queries() {
        assert_eq!(parse(b""), Err(None));
        assert_eq!(parse(b"\x12\x34\x01"), Err(Some(0x1234)));
        let mut two = q("a.b", 1, 1, false);
        two[5] = 2;
        assert!(parse(&two).is_err());
        let mut ptr = vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 1, 0, 1];
        assert!(parse(&ptr).is_err());
        ptr.clear();
        let (report, _) = reporter("dns", 53);
        let mut f = Fields::new();
        let r = query(&zone(), b"\x12\x34\x01", 512, &report, &mut f).expect("formerr");
        assert_eq!(rcode(&r), FORMERR);
        assert_eq!(&r[..2], b"\x12\x34");
    }

    #[test]
    fn tcp_carries_several_queries() {
        let mut input = Vec::new();
        for m in [
            q("www.corp.local", 1, 1, false),
            q("corp.local", 252, 1, false),
        ] {
            input.extend((m.len() as u16).to_be_bytes());
            input.extend(m);
        }
        let c = ctx(
            "dns",
            json!({"domain": "corp.local", "extra_records": "www A 10.0.0.5"}),
        );
        let (report, sink) = reporter("dns", 53);
        let mut m = Mock::new(&input);
        let mut f = Fields::new();
        super::super::handle(&c, &peer(53), &report, &mut m, &mut f).expect("ok");
        let n = usize::from(u16::from_be_bytes([m.output[0], m.output[1]]));
        assert_eq!(rcode(&m.output[2..2 + n]), NOERROR);
        assert_eq!(rcode(&m.output[4 + n..]), REFUSED);
        assert_eq!(f["queries"], 2);
        assert_eq!(
            f["questions"],
            json!(["www.corp.local A", "corp.local AXFR"])
        );
        assert_eq!(sink.events().len(), 2);
    }

    proptest! {
        #[test]
        fn random_queries_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let (report, _) = reporter("dns", 53);
            let _ = query(&zone(), &data, 512, &report, &mut Fields::new());
        }

        #[test]
        fn mutated_queries_never_panic(
            flips in proptest::collection::vec((0usize..40, any::<u8>()), 1..4),
            cut in 0usize..40,
        ) {
            let mut data = q("www.corp.local", 1, 1, true);
            for (i, b) in flips {
                let n = data.len();
                data[i % n] = b;
            }
            data.truncate(cut.min(data.len()));
            let (report, _) = reporter("dns", 53);
            let _ = query(&zone(), &data, 512, &report, &mut Fields::new());
            let c = ctx("dns", json!({}));
            let mut input = (data.len() as u16).to_be_bytes().to_vec();
            input.extend(&data);
            let mut f = Fields::new();
            let _ = super::super::handle(&c, &peer(53), &report, &mut Mock::new(&input), &mut f);
        }
    }
}

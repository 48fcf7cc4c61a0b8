//! SNMP agent (UDP 161), v1 and v2c: every request's community, version, PDU and OIDs are
//! recorded; a request with the configured community (default `public`) gets the system group
//! (`sysDescr`, `sysObjectID`, `sysUpTime`, `sysContact`, `sysName`, `sysLocation`,
//! `sysServices`) and a two-interface `ifTable` as the device would; a wrong community (and v3,
//! which this agent does not speak) gets silence, as net-snmp gives. Sets are refused
//! (`noAccess` / `readOnly`), and recorded.

use std::time::Instant;

use serde_json::{Map, Value};

use super::ServiceCtx;
use crate::log::{AttackDetails, AttackKind, Fields, Reporter};
use crate::util::{clip, preview};

pub const DEFAULT_COMMUNITY: &str = "public";
pub const DEFAULT_SYS_DESCR: &str = "Linux 5.15.0-91-generic #101-Ubuntu SMP x86_64";
/// net-snmp's `linux` agent OID.
pub const DEFAULT_SYS_OBJECT_ID: &str = "1.3.6.1.4.1.8072.3.2.10";
/// Varbinds answered per request (GetBulk included).
const MAX_VARBINDS: usize = 32;
/// OIDs recorded per request.
const MAX_LOGGED_OIDS: usize = 8;

// ---- BER ------------------------------------------------------------------------------------

/// One BER element: tag and contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    pub tag: u8,
    pub body: &'a [u8],
}

/// Reads the element at the start of `data`: (element, rest). Long lengths up to 4 bytes.
pub fn read_tlv(data: &[u8]) -> Option<(Tlv<'_>, &[u8])> {
    let tag = *data.first()?;
    let first = *data.get(1)?;
    let (len, head) = if first & 0x80 == 0 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for &b in data.get(2..2 + n)? {
            len = (len << 8) | usize::from(b);
        }
        (len, 2 + n)
    };
    let end = head.checked_add(len)?;
    Some((
        Tlv {
            tag,
            body: data.get(head..end)?,
        },
        &data[end..],
    ))
}

/// The elements of a constructed value's body.
pub fn children(mut body: &[u8]) -> Option<Vec<Tlv<'_>>> {
    let mut out = Vec::new();
    while !body.is_empty() {
        let (t, rest) = read_tlv(body)?;
        out.push(t);
        body = rest;
        if out.len() > 256 {
            return None;
        }
    }
    Some(out)
}

pub fn int_value(body: &[u8]) -> Option<i64> {
    if body.is_empty() || body.len() > 8 {
        return None;
    }
    let mut v: i64 = if body[0] & 0x80 != 0 { -1 } else { 0 };
    for &b in body {
        v = (v << 8) | i64::from(b);
    }
    Some(v)
}

pub fn oid_value(body: &[u8]) -> Option<Vec<u32>> {
    let (&first, rest) = body.split_first()?;
    let mut out = vec![u32::from(first / 40).min(2), 0];
    out[1] = u32::from(first) - out[0] * 40;
    let mut acc: u32 = 0;
    for &b in rest {
        acc = acc.checked_mul(128)?.checked_add(u32::from(b & 0x7f))?;
        if b & 0x80 == 0 {
            out.push(acc);
            acc = 0;
            if out.len() > 128 {
                return None;
            }
        }
    }
    Some(out)
}

pub fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = body.len();
    if n < 0x80 {
        out.push(n as u8);
    } else if n <= 0xff {
        out.extend([0x81, n as u8]);
    } else {
        out.extend([0x82, (n >> 8) as u8, n as u8]);
    }
    out.extend_from_slice(body);
    out
}

pub fn int(tag: u8, v: i64) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let mut start = 0;
    while start < 7
        && ((bytes[start] == 0 && bytes[start + 1] & 0x80 == 0)
            || (bytes[start] == 0xff && bytes[start + 1] & 0x80 != 0))
    {
        start += 1;
    }
    tlv(tag, &bytes[start..])
}

/// An unsigned 32-bit application type (Counter32, Gauge32, TimeTicks).
pub fn unsigned(tag: u8, v: u32) -> Vec<u8> {
    int(tag, i64::from(v))
}

pub fn oid(arcs: &[u32]) -> Vec<u8> {
    let mut body = Vec::new();
    let a = arcs.first().copied().unwrap_or(0);
    let b = arcs.get(1).copied().unwrap_or(0);
    body.push((a * 40 + b).min(255) as u8);
    for &arc in arcs.iter().skip(2) {
        let mut chunk = vec![(arc & 0x7f) as u8];
        let mut v = arc >> 7;
        while v > 0 {
            chunk.push(0x80 | (v & 0x7f) as u8);
            v >>= 7;
        }
        chunk.reverse();
        body.extend(chunk);
    }
    tlv(0x06, &body)
}

pub fn parse_oid(text: &str) -> Vec<u32> {
    text.trim_start_matches('.')
        .split('.')
        .filter_map(|a| a.parse().ok())
        .collect()
}

fn oid_text(arcs: &[u32]) -> String {
    arcs.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

// ---- the agent ------------------------------------------------------------------------------

/// A request as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// 0 = v1, 1 = v2c, 3 = v3.
    pub version: i64,
    pub community: String,
    pub pdu: u8,
    pub request_id: i64,
    /// GetBulk's non-repeaters and max-repetitions (error-status/index otherwise).
    pub non_repeaters: i64,
    pub max_repetitions: i64,
    pub oids: Vec<Vec<u32>>,
}

pub fn pdu_name(tag: u8) -> &'static str {
    match tag {
        0xa0 => "get",
        0xa1 => "getnext",
        0xa2 => "response",
        0xa3 => "set",
        0xa4 => "trap",
        0xa5 => "getbulk",
        0xa6 => "inform",
        0xa7 => "trapv2",
        0xa8 => "report",
        _ => "unknown",
    }
}

/// Parses a v1/v2c message (v3 yields the version only, with an empty community).
pub fn parse(data: &[u8]) -> Option<Request> {
    let (msg, _) = read_tlv(data)?;
    if msg.tag != 0x30 {
        return None;
    }
    let parts = children(msg.body)?;
    let version = int_value(parts.first().filter(|t| t.tag == 0x02)?.body)?;
    if version == 3 {
        return Some(Request {
            version,
            community: String::new(),
            pdu: 0,
            request_id: 0,
            non_repeaters: 0,
            max_repetitions: 0,
            oids: Vec::new(),
        });
    }
    let community = parts.get(1).filter(|t| t.tag == 0x04)?.body;
    let pdu = parts.get(2)?;
    let fields = children(pdu.body)?;
    let num = |i: usize| {
        fields
            .get(i)
            .filter(|t| t.tag == 0x02)
            .and_then(|t| int_value(t.body))
    };
    let mut oids = Vec::new();
    if let Some(list) = fields.get(3).filter(|t| t.tag == 0x30) {
        for vb in children(list.body)? {
            let pair = children(vb.body)?;
            if let Some(o) = pair.first().filter(|t| t.tag == 0x06) {
                oids.push(oid_value(o.body)?);
            }
        }
    }
    Some(Request {
        version,
        community: clip(community, 128),
        pdu: pdu.tag,
        request_id: num(0)?,
        non_repeaters: num(1).unwrap_or(0),
        max_repetitions: num(2).unwrap_or(0),
        oids,
    })
}

/// What the agent shows.
#[derive(Debug, Clone)]
pub struct Agent {
    pub community: String,
    pub sys_descr: String,
    pub sys_object_id: Vec<u32>,
    pub sys_contact: String,
    pub sys_name: String,
    pub sys_location: String,
    /// The agent's boot; sysUpTime counts from a configured offset before it.
    pub started: Instant,
    pub uptime_offset_ticks: u32,
}

impl Agent {
    pub fn from_ctx(ctx: &ServiceCtx) -> Agent {
        let conpot = ctx.slug == "conpot";
        let cfg = |k: &str, d: &str| ctx.config.line(k).unwrap_or_else(|| d.to_owned());
        Agent {
            community: cfg("community", DEFAULT_COMMUNITY),
            sys_descr: cfg(
                "sys_descr",
                if conpot {
                    "Siemens, SIMATIC, S7-200"
                } else {
                    DEFAULT_SYS_DESCR
                },
            ),
            sys_object_id: parse_oid(&cfg(
                "sys_object_id",
                if conpot {
                    "1.3.6.1.4.1.20408"
                } else {
                    DEFAULT_SYS_OBJECT_ID
                },
            )),
            sys_contact: cfg(
                "sys_contact",
                if conpot {
                    "Siemens AG"
                } else {
                    "Me <me@example.org>"
                },
            ),
            sys_name: ctx.hostname.clone(),
            sys_location: cfg("sys_location", if conpot { "Venus" } else { "Server Room" }),
            started: Instant::now(),
            uptime_offset_ticks: 8_640_000 + (ctx.hostname.len() as u32 * 1_234_567) % 50_000_000,
        }
    }

    fn uptime(&self) -> u32 {
        let t = self.started.elapsed().as_millis() / 10;
        self.uptime_offset_ticks
            .wrapping_add(u32::try_from(t).unwrap_or(u32::MAX))
    }

    /// The MIB this agent serves, sorted by OID: (oid, encoded value).
    pub fn mib(&self) -> Vec<(Vec<u32>, Vec<u8>)> {
        let sys = |n: u32| vec![1, 3, 6, 1, 2, 1, 1, n, 0];
        let s = |v: &str| tlv(0x04, v.as_bytes());
        let mut m = vec![
            (sys(1), s(&self.sys_descr)),
            (sys(2), oid(&self.sys_object_id)),
            (sys(3), unsigned(0x43, self.uptime())),
            (sys(4), s(&self.sys_contact)),
            (sys(5), s(&self.sys_name)),
            (sys(6), s(&self.sys_location)),
            (sys(7), int(0x02, 72)),
            (vec![1, 3, 6, 1, 2, 1, 2, 1, 0], int(0x02, 2)),
        ];
        let ifaces: [(&str, i64, u32, &[u8]); 2] = [
            ("lo", 24, 10_000_000, &[]),
            (
                "eth0",
                6,
                1_000_000_000,
                &[0x52, 0x54, 0x00, 0x3a, 0x1c, 0x7e],
            ),
        ];
        let col = |c: u32, i: u32| vec![1, 3, 6, 1, 2, 1, 2, 2, 1, c, i];
        for (i, (name, kind, speed, mac)) in ifaces.iter().enumerate() {
            let i = i as u32 + 1;
            m.push((col(1, i), int(0x02, i64::from(i))));
            m.push((col(2, i), s(name)));
            m.push((col(3, i), int(0x02, *kind)));
            m.push((col(4, i), int(0x02, if i == 1 { 65_536 } else { 1500 })));
            m.push((col(5, i), unsigned(0x42, *speed)));
            m.push((col(6, i), tlv(0x04, mac)));
            m.push((col(7, i), int(0x02, 1)));
            m.push((col(8, i), int(0x02, 1)));
        }
        m.sort_by(|a, b| a.0.cmp(&b.0));
        m
    }

    /// The response to `req`, or `None` (silence). GetBulk repetitions stop once the varbinds
    /// reach `budget` bytes (an agent may return fewer; this keeps replies small).
    pub fn respond(&self, req: &Request, budget: usize) -> Option<Vec<u8>> {
        if req.version > 1 || req.community != self.community {
            return None;
        }
        if !matches!(req.pdu, 0xa0 | 0xa1 | 0xa3 | 0xa5) {
            return None;
        }
        let mib = self.mib();
        let v1 = req.version == 0;
        let mut binds: Vec<Vec<u8>> = Vec::new();
        let (mut status, mut index) = (0i64, 0i64);
        let exact = |o: &[u32]| mib.iter().find(|(k, _)| k == o).map(|(_, v)| v.clone());
        let next = |o: &[u32]| mib.iter().find(|(k, _)| k.as_slice() > o).cloned();
        let oids: Vec<&Vec<u32>> = req.oids.iter().take(MAX_VARBINDS).collect();
        match req.pdu {
            0xa0 => {
                for (i, o) in oids.iter().enumerate() {
                    let v = exact(o).unwrap_or_else(|| {
                        if v1 && status == 0 {
                            status = 2; // noSuchName
                            index = i as i64 + 1;
                        }
                        // noSuchObject, or noSuchInstance under a known object.
                        let under = mib
                            .iter()
                            .any(|(k, _)| k.starts_with(&o[..o.len().saturating_sub(1)]));
                        tlv(if under { 0x81 } else { 0x80 }, &[])
                    });
                    binds.push(varbind(o, &v));
                }
            }
            0xa1 => {
                for (i, o) in oids.iter().enumerate() {
                    match next(o) {
                        Some((k, v)) => binds.push(varbind(&k, &v)),
                        None => {
                            if v1 && status == 0 {
                                status = 2;
                                index = i as i64 + 1;
                            }
                            binds.push(varbind(o, &tlv(0x82, &[]))); // endOfMibView
                        }
                    }
                }
            }
            0xa5 => {
                let nr = usize::try_from(req.non_repeaters.max(0))
                    .unwrap_or(0)
                    .min(oids.len());
                let reps = usize::try_from(req.max_repetitions.max(0)).unwrap_or(0);
                for o in &oids[..nr] {
                    match next(o) {
                        Some((k, v)) => binds.push(varbind(&k, &v)),
                        None => binds.push(varbind(o, &tlv(0x82, &[]))),
                    }
                }
                let mut used: usize = binds.iter().map(Vec::len).sum();
                'rep: for o in &oids[nr..] {
                    let mut cur: Vec<u32> = o.to_vec();
                    for _ in 0..reps {
                        let (vb, end) = match next(&cur) {
                            Some((k, v)) => {
                                cur = k;
                                (varbind(&cur, &v), false)
                            }
                            None => (varbind(&cur, &tlv(0x82, &[])), true),
                        };
                        if binds.len() >= MAX_VARBINDS
                            || (used + vb.len() > budget && !binds.is_empty())
                        {
                            break 'rep;
                        }
                        used += vb.len();
                        binds.push(vb);
                        if end {
                            break;
                        }
                    }
                }
            }
            _ => {
                // set: v1 readOnly(4)… net-snmp answers noAccess (6) in v2c, noSuchName in v1.
                status = if v1 { 2 } else { 6 };
                index = 1;
                for o in &oids {
                    binds.push(varbind(o, &tlv(0x05, &[])));
                }
            }
        }
        let mut pdu = int(0x02, req.request_id);
        pdu.extend(int(0x02, status));
        pdu.extend(int(0x02, index));
        pdu.extend(tlv(0x30, &binds.concat()));
        let mut msg = int(0x02, req.version);
        msg.extend(tlv(0x04, req.community.as_bytes()));
        msg.extend(tlv(0xa2, &pdu));
        Some(tlv(0x30, &msg))
    }
}

fn varbind(o: &[u32], value: &[u8]) -> Vec<u8> {
    let mut b = oid(o);
    b.extend_from_slice(value);
    tlv(0x30, &b)
}

/// Records one datagram and returns the reply, if any.
pub fn datagram(
    agent: &Agent,
    data: &[u8],
    report: &Reporter,
    fields: &mut Fields,
) -> Option<Vec<u8>> {
    let Some(req) = parse(data) else {
        fields.insert("snmp".into(), Value::from("malformed"));
        fields.insert("preview".into(), Value::from(preview(data, 64)));
        return None;
    };
    let version = match req.version {
        0 => "1",
        1 => "2c",
        3 => "3",
        _ => "unknown",
    };
    fields.insert("snmp_version".into(), Value::from(version));
    if req.version == 3 {
        return None;
    }
    fields.insert("community".into(), Value::from(req.community.clone()));
    fields.insert("pdu".into(), Value::from(pdu_name(req.pdu)));
    let oids: Vec<Value> = req
        .oids
        .iter()
        .take(MAX_LOGGED_OIDS)
        .map(|o| Value::from(oid_text(o)))
        .collect();
    fields.insert("oids".into(), Value::Array(oids.clone()));
    let accepted = req.community == agent.community;
    let mut extra = Map::new();
    extra.insert("snmp_version".into(), Value::from(version));
    extra.insert("pdu".into(), Value::from(pdu_name(req.pdu)));
    extra.insert("oids".into(), Value::Array(oids));
    report.emit(
        AttackKind::Auth,
        AttackDetails {
            password: Some(req.community.clone()),
            method: Some("community".into()),
            accepted: Some(accepted),
            extra,
            ..Default::default()
        },
    );
    // GetBulk answers stay within the reply bound of the UDP layer.
    let overhead = 32 + req.community.len();
    agent.respond(
        &req,
        (data.len() * super::udp::MAX_AMPLIFICATION).saturating_sub(overhead),
    )
}

#[cfg(test)]
mod tests {
    use super::super::testing::{ctx, reporter};
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn request(version: i64, community: &str, pdu: u8, oids: &[&str]) -> Vec<u8> {
        let binds: Vec<u8> = oids
            .iter()
            .flat_map(|o| varbind(&parse_oid(o), &tlv(0x05, &[])))
            .collect();
        let mut p = int(0x02, 0x1234);
        p.extend(int(0x02, 0));
        p.extend(int(0x02, if pdu == 0xa5 { 10 } else { 0 }));
        p.extend(tlv(0x30, &binds));
        let mut m = int(0x02, version);
        m.extend(tlv(0x04, community.as_bytes()));
        m.extend(tlv(pdu, &p));
        tlv(0x30, &m)
    }

    fn agent() -> Agent {
        Agent::from_ctx(&ctx(
            "snmp",
            json!({"sys_descr": "Cisco IOS Software, C2960"}),
        ))
    }

    /// The response's (error status, [(oid, value)]).
    fn decode_response(data: &[u8]) -> (i64, Vec<(String, Tlv<'_>)>) {
        let (msg, _) = read_tlv(data).expect("msg");
        let parts = children(msg.body).expect("parts");
        assert_eq!(parts[2].tag, 0xa2);
        let f = children(parts[2].body).expect("pdu");
        let status = int_value(f[1].body).expect("status");
        let binds = children(f[3].body)
            .expect("binds")
            .into_iter()
            .map(|vb| {
                let p = children(vb.body).expect("vb");
                (oid_text(&oid_value(p[0].body).expect("oid")), p[1])
            })
            .collect();
        (status, binds)
    }

    #[test]
    fn ber_round_trips() {
        for v in [0i64, 1, 127, 128, 255, 256, -1, -129, 0x1234_5678, i64::MAX] {
            let e = int(0x02, v);
            let (t, rest) = read_tlv(&e).expect("tlv");
            assert!(rest.is_empty());
            assert_eq!(int_value(t.body), Some(v), "{v}");
        }
        assert_eq!(int(0x02, 128), [0x02, 0x02, 0x00, 0x80]);
        let o = parse_oid("1.3.6.1.4.1.8072.3.2.10");
        let e = oid(&o);
        assert_eq!(e, [0x06, 0x0a, 0x2b, 6, 1, 4, 1, 0xbf, 0x08, 3, 2, 10]);
        assert_eq!(oid_value(&e[2..]), Some(o));
        let long = tlv(0x04, &[b'x'; 300]);
        assert_eq!(&long[..4], &[0x04, 0x82, 0x01, 0x2c]);
        assert_eq!(read_tlv(&long).map(|(t, _)| t.body.len()), Some(300));
    }

    #[test]
    fn get_with_the_right_community_answers_the_system_group() {
        let a = agent();
        let req = parse(&request(
            1,
            "public",
            0xa0,
            &[
                "1.3.6.1.2.1.1.1.0",
                "1.3.6.1.2.1.1.5.0",
                "1.3.6.1.2.1.1.9.0",
            ],
        ))
        .expect("parse");
        assert_eq!(req.community, "public");
        let out = a.respond(&req, usize::MAX).expect("reply");
        let (status, binds) = decode_response(&out);
        assert_eq!(status, 0);
        assert_eq!(binds[0].0, "1.3.6.1.2.1.1.1.0");
        assert_eq!(binds[0].1.body, b"Cisco IOS Software, C2960");
        assert_eq!(binds[1].1.body, b"web-01");
        assert_eq!(binds[2].1.tag, 0x80, "noSuchObject");
        // v1: noSuchName for the unknown one.
        let req = parse(&request(0, "public", 0xa0, &["1.3.6.1.2.1.1.9.0"])).expect("parse");
        assert_eq!(
            decode_response(&a.respond(&req, usize::MAX).expect("reply")).0,
            2
        );
    }

    #[test]
    fn walk_and_bulk_follow_the_mib_order() {
        let a = agent();
        let mut cur = "1.3.6.1.2.1.1".to_owned();
        let mut seen = Vec::new();
        loop {
            let req = parse(&request(1, "public", 0xa1, &[&cur])).expect("parse");
            let out = a.respond(&req, usize::MAX).expect("reply");
            let (_, binds) = decode_response(&out);
            if binds[0].1.tag == 0x82 {
                break;
            }
            cur = binds[0].0.clone();
            seen.push(cur.clone());
        }
        assert_eq!(seen.len(), a.mib().len());
        assert_eq!(seen[2], "1.3.6.1.2.1.1.3.0");
        assert!(seen.contains(&"1.3.6.1.2.1.2.2.1.2.2".to_owned()));
        let req = parse(&request(1, "public", 0xa5, &["1.3.6.1.2.1.2.2.1.2"])).expect("parse");
        let out = a.respond(&req, usize::MAX).expect("reply");
        let (_, binds) = decode_response(&out);
        assert_eq!(binds.len(), 10);
        assert_eq!(binds[0].1.body, b"lo");
        assert_eq!(binds[1].1.body, b"eth0");
    }

    #[test]
    fn wrong_community_v3_and_garbage_get_silence_but_are_recorded() {
        let a = agent();
        let (report, sink) = reporter("snmp", 161);
        let mut f = Fields::new();
        assert!(datagram(
            &a,
            &request(1, "private", 0xa0, &["1.3.6.1.2.1.1.1.0"]),
            &report,
            &mut f
        )
        .is_none());
        assert_eq!(f["community"], "private");
        assert_eq!(f["oids"], json!(["1.3.6.1.2.1.1.1.0"]));
        let ev = sink.events();
        assert_eq!(ev[0].kind, AttackKind::Auth);
        assert_eq!(ev[0].details.password.as_deref(), Some("private"));
        assert_eq!(ev[0].details.accepted, Some(false));
        let mut f = Fields::new();
        let v3 = b"\x30\x3a\x02\x01\x03\x30\x0f\x02\x02\x4a\x69\x02\x03\0\xff\xe3\x04\x01\x04\x02\x01\x03\x04\x10\x30\x0e\x04\0\x02\x01\0\x02\x01\0\x04\0\x04\0\x04\0\x30\x12\x04\0\x04\0\xa0\x0c\x02\x02\x37\xf0\x02\x01\0\x02\x01\0\x30\0";
        assert!(datagram(&a, v3, &report, &mut f).is_none());
        assert_eq!(f["snmp_version"], "3");
        let mut f = Fields::new();
        assert!(datagram(&a, b"hello", &report, &mut f).is_none());
        assert_eq!(f["snmp"], "malformed");
    }

    #[test]
    fn nmaps_public_probe_is_answered_with_the_name() {
        let probe = b"0\x82\0/\x02\x01\0\x04\x06public\xa0\x82\0\x20\x02\x04\x4c\x33\xa7\x56\x02\x01\0\x02\x01\0\x30\x82\0\x10\x30\x82\0\x0c\x06\x08\x2b\x06\x01\x02\x01\x01\x05\0\x05\0";
        let (report, _) = reporter("snmp", 161);
        let out = datagram(&agent(), probe, &report, &mut Fields::new()).expect("reply");
        // nmap: ^0.*\x02\x01\0\x04\x06public\xa2.*\x06\x08\+\x06\x01\x02\x01\x01\x05\0\x04[^\0]([^\0]+)
        assert!(out
            .windows(12)
            .any(|w| w == b"\x02\x01\x00\x04\x06public\xa2"));
        assert!(out
            .windows(12)
            .any(|w| w == b"\x06\x08\x2b\x06\x01\x02\x01\x01\x05\x00\x04\x06"));
        assert!(out.ends_with(b"web-01"));
    }

    proptest! {
        #[test]
        fn random_datagrams_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let a = agent();
            if let Some(req) = parse(&data) {
                let _ = a.respond(&req, usize::MAX);
            }
        }

        #[test]
        fn mutated_requests_never_panic(
            flips in proptest::collection::vec((0usize..60, any::<u8>()), 1..4),
            cut in 1usize..80,
            pdu in prop::sample::select(vec![0xa0u8, 0xa1, 0xa3, 0xa5]),
        ) {
            let mut data = request(1, "public", pdu, &["1.3.6.1.2.1.1.1.0", "1.3.6.1.2.1.2.2"]);
            for (i, b) in flips {
                let n = data.len();
                data[i % n] = b;
            }
            data.truncate(cut.min(data.len()));
            let a = agent();
            if let Some(req) = parse(&data) {
                let _ = a.respond(&req, usize::MAX);
            }
        }
    }
}

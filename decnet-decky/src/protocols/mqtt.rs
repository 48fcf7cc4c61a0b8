//! MQTT broker (3.1, 3.1.1 and 5.0): CONNECT read (client id, username, password recorded),
//! CONNACK per the persona's `accept` policy (default: refused, bad username or password).
//! A session let in may SUBSCRIBE, PUBLISH (topics and payload sizes recorded, payloads never
//! kept beyond a sample), PING and DISCONNECT; nothing is ever delivered to anyone.

use std::io::{self, Read, Write};

use serde_json::{Map, Value};

use super::{Conn, ServiceCtx, MAX_COMMANDS, MAX_LOGGED};
use crate::log::{AttackDetails, AttackKind, Fields, Reporter};
use crate::util::{bump, clip, preview, push_bounded, set_once};

/// Largest packet read (remaining length).
const MAX_PACKET: usize = 256 * 1024;
/// Topic filters recorded per SUBSCRIBE.
const MAX_TOPICS: usize = 32;

/// Who a broker lets in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    /// Every CONNECT is refused (bad username or password / not authorized).
    Never,
    /// Connections without a username are let in.
    Anonymous,
    /// Every CONNECT is let in.
    Any,
}

impl Accept {
    pub fn from_config(s: Option<&str>) -> Self {
        match s {
            Some("anonymous") => Accept::Anonymous,
            Some("any") => Accept::Any,
            _ => Accept::Never,
        }
    }
}

/// A parsed CONNECT.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Connect {
    pub protocol: String,
    pub level: u8,
    pub clean_session: bool,
    pub keepalive: u16,
    pub client_id: String,
    pub will_topic: Option<String>,
    pub will_bytes: Option<usize>,
    pub username: Option<String>,
    pub password: Option<Vec<u8>>,
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(data: &'a [u8]) -> Self {
        Cursor { data, pos: 0 }
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len())?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Some(s)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    /// A length-prefixed binary field.
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = usize::from(self.u16()?);
        self.take(n)
    }

    fn string(&mut self, max: usize) -> Option<String> {
        self.bytes().map(|b| clip(b, max))
    }

    fn varint(&mut self) -> Option<usize> {
        let mut v = 0usize;
        for i in 0..4 {
            let b = self.u8()?;
            v |= usize::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    /// Skips an MQTT 5 property block.
    fn properties(&mut self) -> Option<()> {
        let n = self.varint()?;
        self.take(n).map(|_| ())
    }

    fn rest(&self) -> &'a [u8] {
        &self.data[self.pos..]
    }
}

/// Parses a CONNECT's variable header and payload. `None` if malformed.
pub fn parse_connect(body: &[u8]) -> Option<Connect> {
    let mut c = Cursor::new(body);
    let protocol = c.string(16)?;
    let level = c.u8()?;
    let flags = c.u8()?;
    let keepalive = c.u16()?;
    if level >= 5 {
        c.properties()?;
    }
    let mut out = Connect {
        protocol,
        level,
        clean_session: flags & 0x02 != 0,
        keepalive,
        client_id: c.string(256)?,
        ..Default::default()
    };
    if flags & 0x04 != 0 {
        if level >= 5 {
            c.properties()?;
        }
        out.will_topic = Some(c.string(256)?);
        out.will_bytes = Some(c.bytes()?.len());
    }
    if flags & 0x80 != 0 {
        out.username = Some(c.string(256)?);
    }
    if flags & 0x40 != 0 {
        out.password = Some(c.bytes()?.to_vec());
    }
    Some(out)
}

/// A packet: (first byte, body).
fn packet(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![kind];
    let mut n = body.len();
    loop {
        let mut b = (n & 0x7f) as u8;
        n >>= 7;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(body);
    out
}

/// CONNACK: `accepted`, else the refusal for a client with or without a username.
pub fn connack(level: u8, accepted: bool, had_username: bool) -> Vec<u8> {
    if level >= 5 {
        let code = match (accepted, had_username) {
            (true, _) => 0x00,
            (false, true) => 0x86,  // Bad User Name or Password
            (false, false) => 0x87, // Not authorized
        };
        packet(0x20, &[0, code, 0])
    } else {
        let code = match (accepted, had_username) {
            (true, _) => 0,
            (false, true) => 4,  // bad user name or password
            (false, false) => 5, // not authorized
        };
        packet(0x20, &[0, code])
    }
}

fn read_packet<S: Read + Write>(conn: &mut Conn<S>) -> io::Result<Option<(u8, Vec<u8>)>> {
    let Some(first) = conn.peek()? else {
        return Ok(None);
    };
    conn.read_exact_vec(1)?;
    let mut len = 0usize;
    for i in 0..4 {
        let b = conn.read_exact_vec(1)?[0];
        len |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            break;
        }
        if i == 3 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "bad remaining length",
            ));
        }
    }
    if len > MAX_PACKET {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "packet too large",
        ));
    }
    Ok(Some((first, conn.read_exact_vec(len)?)))
}

pub fn handle<S: Read + Write>(
    mut conn: Conn<S>,
    ctx: &ServiceCtx,
    report: &Reporter,
    fields: &mut Fields,
) -> io::Result<()> {
    let policy = Accept::from_config(ctx.config.string("accept").as_deref());
    match conn.peek()? {
        None => return Ok(()),
        Some(first) if first >> 4 != 1 => {
            // A broker closes on anything but CONNECT first.
            fields.insert("reason".into(), Value::from("not a CONNECT"));
            return Ok(());
        }
        Some(_) => {}
    }
    let Some((_, body)) = read_packet(&mut conn)? else {
        return Ok(());
    };
    let Some(c) = parse_connect(&body) else {
        fields.insert("reason".into(), Value::from("malformed CONNECT"));
        return Ok(());
    };
    let version = match c.level {
        3 => "3.1",
        4 => "3.1.1",
        5 => "5.0",
        _ => "unknown",
    };
    let mut extra = Map::new();
    extra.insert("client_id".into(), Value::from(c.client_id.clone()));
    extra.insert("protocol".into(), Value::from(c.protocol.clone()));
    extra.insert("keepalive".into(), Value::from(c.keepalive));
    extra.insert("clean_session".into(), Value::from(c.clean_session));
    if let Some(t) = &c.will_topic {
        extra.insert("will_topic".into(), Value::from(t.clone()));
        extra.insert("will_bytes".into(), Value::from(c.will_bytes.unwrap_or(0)));
    }
    fields.insert("client_id".into(), Value::from(c.client_id.clone()));
    report.emit(
        AttackKind::Client,
        AttackDetails {
            client_version: Some(format!("MQTT {version}")),
            username: c.username.clone(),
            extra,
            ..Default::default()
        },
    );
    if !(3..=5).contains(&c.level) {
        // Unacceptable protocol version (3.1.1's code 1), then close.
        return conn.send(&packet(0x20, &[0, 1]));
    }
    let accepted = match policy {
        Accept::Never => false,
        Accept::Anonymous => c.username.is_none(),
        Accept::Any => true,
    };
    if let Some(user) = &c.username {
        let password = c.password.as_deref().map(|p| clip(p, 256));
        set_once(fields, "username", Value::from(user.clone()));
        let mut cred = Map::new();
        cred.insert("username".into(), Value::from(user.clone()));
        if let Some(p) = &password {
            cred.insert("password".into(), Value::from(p.clone()));
        }
        push_bounded(fields, "credentials", Value::Object(cred), MAX_LOGGED);
        report.emit(
            AttackKind::Auth,
            AttackDetails {
                username: Some(user.clone()),
                password,
                method: Some("password".into()),
                accepted: Some(accepted),
                extra: Map::from_iter([("client_id".to_owned(), Value::from(c.client_id.clone()))]),
                ..Default::default()
            },
        );
    }
    conn.send(&connack(c.level, accepted, c.username.is_some()))?;
    if !accepted {
        return Ok(());
    }
    fields.insert("accepted".into(), Value::from(true));
    session(&mut conn, c.level, report, fields)
}

/// Packets after an accepted CONNECT.
fn session<S: Read + Write>(
    conn: &mut Conn<S>,
    level: u8,
    report: &Reporter,
    fields: &mut Fields,
) -> io::Result<()> {
    let v5 = level >= 5;
    for _ in 0..MAX_COMMANDS {
        let Some((first, body)) = read_packet(conn)? else {
            return Ok(());
        };
        bump(fields, "packets");
        let mut c = Cursor::new(&body);
        match first >> 4 {
            3 => {
                let qos = (first >> 1) & 3;
                let retain = first & 1 != 0;
                let Some(topic) = c.string(256) else {
                    return Ok(());
                };
                let id = if qos > 0 { c.u16() } else { None };
                if v5 && c.properties().is_none() {
                    return Ok(());
                }
                let payload = c.rest();
                push_bounded(fields, "published", Value::from(topic.clone()), MAX_LOGGED);
                let mut extra = Map::new();
                extra.insert("topic".into(), Value::from(topic.clone()));
                extra.insert("qos".into(), Value::from(qos));
                extra.insert("retain".into(), Value::from(retain));
                extra.insert("payload".into(), Value::from(preview(payload, 256)));
                report.emit(
                    AttackKind::Command,
                    AttackDetails {
                        command: Some(format!("PUBLISH {topic}")),
                        bytes_in: Some(payload.len() as u64),
                        extra,
                        ..Default::default()
                    },
                );
                match (qos, id) {
                    (1, Some(id)) => conn.send(&packet(0x40, &id.to_be_bytes()))?,
                    (2, Some(id)) => conn.send(&packet(0x50, &id.to_be_bytes()))?,
                    _ => {}
                }
            }
            6 => {
                // PUBREL → PUBCOMP
                if let Some(id) = c.u16() {
                    conn.send(&packet(0x70, &id.to_be_bytes()))?;
                }
            }
            8 | 10 => {
                let subscribe = first >> 4 == 8;
                let Some(id) = c.u16() else { return Ok(()) };
                if v5 && c.properties().is_none() {
                    return Ok(());
                }
                let mut topics = Vec::new();
                let mut codes = Vec::new();
                while !c.rest().is_empty() {
                    let Some(t) = c.string(256) else {
                        return Ok(());
                    };
                    let qos = if subscribe {
                        c.u8().unwrap_or(0) & 3
                    } else {
                        0
                    };
                    if topics.len() < MAX_TOPICS {
                        topics.push(Value::from(t));
                    }
                    codes.push(qos.min(2));
                }
                let verb = if subscribe {
                    "SUBSCRIBE"
                } else {
                    "UNSUBSCRIBE"
                };
                let list: Vec<String> = topics
                    .iter()
                    .filter_map(|t| t.as_str().map(str::to_owned))
                    .collect();
                for t in &topics {
                    if subscribe {
                        push_bounded(fields, "subscribed", t.clone(), MAX_LOGGED);
                    }
                }
                report.emit(
                    AttackKind::Command,
                    AttackDetails {
                        command: Some(format!("{verb} {}", list.join(" "))),
                        extra: Map::from_iter([("topics".to_owned(), Value::Array(topics))]),
                        ..Default::default()
                    },
                );
                let mut ack = id.to_be_bytes().to_vec();
                if v5 {
                    ack.push(0);
                }
                if subscribe {
                    ack.extend(codes);
                    conn.send(&packet(0x90, &ack))?;
                } else {
                    if v5 {
                        ack.extend(std::iter::repeat_n(0, codes.len()));
                    }
                    conn.send(&packet(0xb0, &ack))?;
                }
            }
            12 => conn.send(&[0xd0, 0])?,
            14 => return Ok(()),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{ctx, peer, reporter, Mock};
    use super::*;
    use crate::log::AttackEvent;
    use proptest::prelude::*;
    use serde_json::json;

    fn s(v: &str) -> Vec<u8> {
        let mut out = (v.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(v.as_bytes());
        out
    }

    fn connect(level: u8, client: &str, user: Option<&str>, pass: Option<&str>) -> Vec<u8> {
        let mut flags = 0x02;
        if user.is_some() {
            flags |= 0x80;
        }
        if pass.is_some() {
            flags |= 0x40;
        }
        let mut body = s(if level == 3 { "MQIsdp" } else { "MQTT" });
        body.extend([level, flags, 0, 60]);
        if level >= 5 {
            body.push(0);
        }
        body.extend(s(client));
        if let Some(u) = user {
            body.extend(s(u));
        }
        if let Some(p) = pass {
            body.extend(s(p));
        }
        packet(0x10, &body)
    }

    fn run(config: serde_json::Value, input: &[u8]) -> (Vec<u8>, Fields, Vec<AttackEvent>) {
        let c = ctx("mqtt", config);
        let (report, sink) = reporter("mqtt", 1883);
        let mut m = Mock::new(input);
        let mut f = Fields::new();
        super::super::handle(&c, &peer(1883), &report, &mut m, &mut f).expect("ok");
        (m.output, f, sink.events())
    }

    #[test]
    fn nmap_probe_gets_a_connack() {
        // nmap's probe: an anonymous 3.1.1 CONNECT; match ^\x20\x02\x00.$
        let (out, _, _) = run(
            json!({}),
            b"\x10\x10\x00\x04MQTT\x04\x02\x00\x1e\x00\x04nmap",
        );
        assert_eq!(out, b"\x20\x02\x00\x05");
    }

    #[test]
    fn credentials_are_recorded_and_refused() {
        let (out, f, ev) = run(
            json!({}),
            &connect(4, "sensor-7", Some("admin"), Some("public")),
        );
        assert_eq!(out, b"\x20\x02\x00\x04");
        assert_eq!(f["client_id"], "sensor-7");
        let auth = ev
            .iter()
            .find(|e| e.kind == AttackKind::Auth)
            .expect("auth");
        assert_eq!(auth.details.username.as_deref(), Some("admin"));
        assert_eq!(auth.details.password.as_deref(), Some("public"));
        assert_eq!(auth.details.accepted, Some(false));
        let client = ev
            .iter()
            .find(|e| e.kind == AttackKind::Client)
            .expect("client");
        assert_eq!(client.details.client_version.as_deref(), Some("MQTT 3.1.1"));
        assert_eq!(client.details.extra["client_id"], "sensor-7");
        let (out, _, _) = run(json!({}), &connect(5, "x", Some("u"), Some("p")));
        assert_eq!(out, b"\x20\x03\x00\x86\x00");
        let (out, _, _) = run(json!({}), &connect(3, "x", None, None));
        assert_eq!(out, b"\x20\x02\x00\x05");
    }

    #[test]
    fn an_accepted_session_records_topics_and_sizes() {
        let mut input = connect(4, "c", Some("u"), Some("p"));
        let mut sub = 1u16.to_be_bytes().to_vec();
        sub.extend(s("#"));
        sub.push(0);
        sub.extend(s("$SYS/#"));
        sub.push(1);
        input.extend(packet(0x82, &sub));
        let mut publish = s("plant/valve/1");
        publish.extend(7u16.to_be_bytes());
        publish.extend(b"OPEN!!");
        input.extend(packet(0x32, &publish));
        input.extend([0xc0, 0]);
        input.extend([0xe0, 0]);
        let (out, f, ev) = run(json!({"accept": "any"}), &input);
        assert_eq!(
            out,
            [
                &b"\x20\x02\x00\x00"[..],
                b"\x90\x04\x00\x01\x00\x01",
                b"\x40\x02\x00\x07",
                b"\xd0\x00"
            ]
            .concat()
        );
        assert_eq!(f["subscribed"], json!(["#", "$SYS/#"]));
        assert_eq!(f["published"], json!(["plant/valve/1"]));
        let publish = ev
            .iter()
            .find(|e| e.details.command.as_deref() == Some("PUBLISH plant/valve/1"))
            .expect("publish");
        assert_eq!(publish.details.bytes_in, Some(6));
        assert_eq!(publish.details.extra["qos"], 1);
        assert_eq!(publish.details.extra["payload"], "OPEN!!");
    }

    #[test]
    fn anonymous_policy_and_garbage() {
        let (out, _, _) = run(json!({"accept": "anonymous"}), &connect(4, "c", None, None));
        assert_eq!(out, b"\x20\x02\x00\x00");
        let (out, _, _) = run(
            json!({"accept": "anonymous"}),
            &connect(4, "c", Some("u"), None),
        );
        assert_eq!(out, b"\x20\x02\x00\x04");
        let (out, f, _) = run(json!({}), b"GET / HTTP/1.0\r\n\r\n");
        assert!(out.is_empty());
        assert_eq!(f["reason"], "not a CONNECT");
        let (out, f, _) = run(json!({}), &packet(0x10, b"\x00\x04MQ"));
        assert!(out.is_empty());
        assert_eq!(f["reason"], "malformed CONNECT");
    }

    proptest! {
        #[test]
        fn connect_parser_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_connect(&data);
        }

        #[test]
        fn hostile_sessions_never_panic(
            tail in proptest::collection::vec(any::<u8>(), 0..300),
            level in 3u8..6,
        ) {
            let mut input = connect(level, "c", Some("u"), Some("p"));
            input.extend(tail);
            let c = ctx("mqtt", json!({"accept": "any"}));
            let (report, _) = reporter("mqtt", 1883);
            let mut f = Fields::new();
            let _ = super::super::handle(&c, &peer(1883), &report, &mut Mock::new(&input), &mut f);
        }

        #[test]
        fn mutated_connects_never_panic(
            flips in proptest::collection::vec((0usize..40, any::<u8>()), 1..4),
        ) {
            let mut input = connect(5, "client", Some("user"), Some("pass"));
            for (i, b) in flips {
                let n = input.len();
                input[i % n] = b;
            }
            let c = ctx("mqtt", json!({"accept": "any"}));
            let (report, _) = reporter("mqtt", 1883);
            let mut f = Fields::new();
            let _ = super::super::handle(&c, &peer(1883), &report, &mut Mock::new(&input), &mut f);
        }
    }
}

//! Attacker events (PRODUCT §10): one schema from the decky service that sees a touch to the
//! operator who reads it.
//!
//! A decky service emits one [`AttackEvent`] per step of an interaction — the connection, each
//! credential tried, each command or request, each datagram, the disconnect — so a long session
//! is visible while it runs. The event id is assigned where the event is born (a UUIDv7, so ids
//! sort by birth time), and every event of one connection carries the same `session` id.
//!
//! `stream` and `seq` number the events of one emitting process: `seq` counts from 1 within a
//! `stream` (a fresh id every time a service process starts), so a collector that sees a gap in
//! `seq` knows how many events it lost (to log rotation, say) and counts them as dropped.
//!
//! Attacker-chosen strings (usernames, passwords, commands, paths, user agents) are data. JSON
//! output escapes them by construction; [`escape_terminal`] makes them safe to print on a
//! terminal.
//!
//! The schema is versioned by [`ATTACK_SCHEMA_VERSION`] (the `v` key). Adding an optional detail
//! or a kind is compatible (readers ignore what they do not know; an unknown kind reads as
//! [`AttackKind::Other`]); renaming or retyping a key is a new version.
//!
//! ```
//! use decnet_core::model::attack::{AttackDetails, AttackEvent, AttackKind, Transport};
//!
//! let line = r#"{"v":1,"id":"0190f5a4-7b3c-7cc3-9d3e-4a1b2c3d4e5f","ts":"2026-12-03T06:00:00Z",
//!   "decky":"decky-01","service":"ssh","protocol":"tcp","src_ip":"10.0.0.9","src_port":40000,
//!   "dst_ip":"10.0.0.20","dst_port":22,"session":"0190f5a4-7b3c-7cc3-9d3e-4a1b2c3d4e50",
//!   "stream":"0190f5a4-7b3c-7cc3-9d3e-4a1b2c3d4e51","seq":2,"kind":"auth",
//!   "details":{"username":"root","password":"toor","method":"password","accepted":false}}"#;
//! let ev: AttackEvent = serde_json::from_str(line).unwrap();
//! assert_eq!(ev.kind, AttackKind::Auth);
//! assert_eq!(ev.protocol, Transport::Tcp);
//! assert_eq!(ev.details.username.as_deref(), Some("root"));
//! assert_eq!(ev.details.accepted, Some(false));
//! ```

use std::fmt;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

/// The `v` of every event this version writes.
pub const ATTACK_SCHEMA_VERSION: u32 = 1;

/// The transport an event arrived on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// A TCP connection.
    Tcp,
    /// A UDP datagram.
    Udp,
}

impl Transport {
    /// `tcp` or `udp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// What step of an interaction an event records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AttackKind {
    /// A connection was accepted.
    Connect,
    /// The client said who it is: a version string, a client fingerprint (HASSH, JA3/JA4).
    Client,
    /// A credential was tried (password, key, hash, token, form login).
    Auth,
    /// A command was typed in a shell or sent on a command protocol.
    Command,
    /// A command was run without a shell (SSH `exec`).
    Exec,
    /// A request of a request/response protocol (HTTP, an API, a database query).
    Request,
    /// A URL the attacker tried to fetch (recorded, never fetched).
    Url,
    /// A file upload or download attempt (scp, sftp, FTP, TFTP).
    FileTransfer,
    /// A port-forwarding or tunnel request.
    Forward,
    /// A UDP datagram.
    Datagram,
    /// The decky refused the connection (a concurrency cap, say).
    Rejected,
    /// The connection ended; `details` holds the totals (bytes, duration) and how it ended.
    Disconnect,
    /// Events were lost before they reached the store (`details.dropped` counts them).
    Drop,
    /// A kind this version does not know (written by a newer producer).
    #[serde(other)]
    Other,
}

impl AttackKind {
    /// The kind's wire name (`connect`, `auth` …).
    pub fn as_str(self) -> &'static str {
        match self {
            AttackKind::Connect => "connect",
            AttackKind::Client => "client",
            AttackKind::Auth => "auth",
            AttackKind::Command => "command",
            AttackKind::Exec => "exec",
            AttackKind::Request => "request",
            AttackKind::Url => "url",
            AttackKind::FileTransfer => "file_transfer",
            AttackKind::Forward => "forward",
            AttackKind::Datagram => "datagram",
            AttackKind::Rejected => "rejected",
            AttackKind::Disconnect => "disconnect",
            AttackKind::Drop => "drop",
            AttackKind::Other => "other",
        }
    }
}

impl fmt::Display for AttackKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// The typed details of an event. Every key is optional; what a protocol learns that has no
/// key here goes to `extra` (flattened into the same JSON object).
///
/// Build one with struct-update syntax (`AttackDetails { username: …, ..Default::default() }`);
/// new optional keys may be added in a minor version.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AttackDetails {
    /// The username of a credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// A password as sent (clear text where the protocol carries it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// A captured hash or challenge response (e.g. a hashcat line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    /// How the credential was offered: `password`, `keyboard-interactive`, `publickey`,
    /// `basic`, `bearer`, `form`, `ntlm` …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Whether the decky let the credential in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted: Option<bool>,
    /// A public key's type (`ssh-ed25519` …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_type: Option<String>,
    /// A public key's fingerprint (`SHA256:…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_fingerprint: Option<String>,
    /// A command line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// A URL (to fetch, or requested).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// A request method (`GET`, `POST` …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_method: Option<String>,
    /// A request path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// A user agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// A client's version string (an SSH banner, say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_version: Option<String>,
    /// A client fingerprint (HASSH, JA3, JA4) as `<scheme>:<value>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// Bytes received from the peer (for the event, or in total on `disconnect`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_in: Option<u64>,
    /// Bytes sent to the peer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_out: Option<u64>,
    /// How long the session lasted, in milliseconds (`disconnect`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Why a session ended early or was refused (`timeout`, `reset`, `too many connections` …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How many events were lost (`drop`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropped: Option<u64>,
    /// Everything else the protocol learned.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl AttackDetails {
    /// Details from a loose JSON object: the keys this schema types are moved into their fields
    /// when their value has the right type; everything else stays in `extra`.
    pub fn from_map(mut map: Map<String, Value>) -> AttackDetails {
        fn text(map: &mut Map<String, Value>, key: &str) -> Option<String> {
            match map.get(key) {
                Some(Value::String(_)) => match map.remove(key) {
                    Some(Value::String(s)) => Some(s),
                    _ => None,
                },
                _ => None,
            }
        }
        fn number(map: &mut Map<String, Value>, key: &str) -> Option<u64> {
            let n = map.get(key).and_then(Value::as_u64)?;
            map.remove(key);
            Some(n)
        }
        let accepted = match map.get("accepted") {
            Some(Value::Bool(b)) => {
                let b = *b;
                map.remove("accepted");
                Some(b)
            }
            _ => None,
        };
        AttackDetails {
            username: text(&mut map, "username"),
            password: text(&mut map, "password"),
            hash: text(&mut map, "hash"),
            method: text(&mut map, "method"),
            accepted,
            key_type: text(&mut map, "key_type"),
            key_fingerprint: text(&mut map, "key_fingerprint"),
            command: text(&mut map, "command"),
            url: text(&mut map, "url"),
            http_method: text(&mut map, "http_method"),
            path: text(&mut map, "path"),
            user_agent: text(&mut map, "user_agent"),
            client_version: text(&mut map, "client_version"),
            fingerprint: text(&mut map, "fingerprint"),
            bytes_in: number(&mut map, "bytes_in"),
            bytes_out: number(&mut map, "bytes_out"),
            duration_ms: number(&mut map, "duration_ms"),
            reason: text(&mut map, "reason"),
            dropped: number(&mut map, "dropped"),
            extra: map,
        }
    }

    /// Whether the event carries a credential (a username, password, hash or key).
    pub fn has_credential(&self) -> bool {
        self.username.is_some()
            || self.password.is_some()
            || self.hash.is_some()
            || self.key_fingerprint.is_some()
    }
}

/// One attacker event (PRODUCT §10).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttackEvent {
    /// The schema version ([`ATTACK_SCHEMA_VERSION`]).
    pub v: u32,
    /// Assigned where the event is born; a UUIDv7, so ids sort by time of birth.
    pub id: Uuid,
    /// When the event happened (UTC).
    pub ts: DateTime<Utc>,
    /// The host whose decky saw it (`local` for unihost deckies); empty until the collector on
    /// that host stamps it — a decky does not know its host.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host: String,
    /// The decky.
    pub decky: String,
    /// The service slug (`ssh`, `http` …).
    pub service: String,
    /// The transport.
    pub protocol: Transport,
    /// The attacker's address.
    pub src_ip: IpAddr,
    /// The attacker's port.
    pub src_port: u16,
    /// The decky's address the attacker reached, where the listener knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst_ip: Option<IpAddr>,
    /// The decky's port the attacker reached.
    pub dst_port: u16,
    /// Ties the events of one connection (or one datagram) together.
    pub session: Uuid,
    /// The emitting process instance: a fresh id every time a service process starts.
    pub stream: Uuid,
    /// The event's number within `stream`, from 1 with no gaps.
    pub seq: u64,
    /// What step this is.
    pub kind: AttackKind,
    /// What the service learned at this step.
    #[serde(default)]
    pub details: AttackDetails,
}

impl AttackEvent {
    /// The bus topic of the event: `attack.<decky>.<service>` (PRODUCT §9).
    pub fn topic(&self) -> String {
        format!("attack.{}.{}", self.decky, self.service)
    }

    /// The event as one line of JSON (no trailing newline).
    pub fn to_json_line(&self) -> String {
        // Serialising a struct of strings, numbers and a JSON map cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses one line a decky service wrote; `None` when the line is not an attacker event
    /// (other output of the container, a truncated line).
    pub fn parse_line(line: &str) -> Option<AttackEvent> {
        let line = line.trim();
        if !line.starts_with('{') {
            return None;
        }
        serde_json::from_str(line).ok()
    }
}

/// Which stored events to list (`GET /api/v1/attacks`, `decnet attacks`). Events come in id
/// order — birth order — and `after` is the cursor: the last id of the previous page.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AttackQuery {
    /// At or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Before this time.
    pub until: Option<DateTime<Utc>>,
    /// Only events against this decky (by name).
    pub decky: Option<String>,
    /// Only events from this source address.
    pub src_ip: Option<IpAddr>,
    /// Only events of this service slug (`ssh`, `http`, …).
    pub service: Option<String>,
    /// Only events of this kind.
    pub kind: Option<AttackKind>,
    /// Only events whose id is greater (the previous page's last id).
    pub after: Option<Uuid>,
    /// At most this many (a store may cap it further at [`MAX_ATTACK_PAGE`]).
    pub limit: u32,
}

/// The largest page a store returns.
pub const MAX_ATTACK_PAGE: u32 = 1000;

impl AttackQuery {
    /// Whether `e` passes the filters (not the cursor or the limit).
    pub fn matches(&self, e: &AttackEvent) -> bool {
        self.since.is_none_or(|t| e.ts >= t)
            && self.until.is_none_or(|t| e.ts < t)
            && self.decky.as_deref().is_none_or(|d| e.decky == d)
            && self.src_ip.is_none_or(|ip| e.src_ip == ip)
            && self.service.as_deref().is_none_or(|s| e.service == s)
            && self.kind.is_none_or(|k| e.kind == k)
    }

    /// The page size to use: `limit`, at least 1, at most [`MAX_ATTACK_PAGE`].
    pub fn page(&self) -> u32 {
        self.limit.clamp(1, MAX_ATTACK_PAGE)
    }
}

/// What the store knows of one source address (`GET /api/v1/attackers`). `drop` events are not
/// an attacker's and count nowhere.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttackerProfile {
    /// The source address the profile is about.
    pub src_ip: IpAddr,
    /// Its earliest event's time.
    pub first_seen: DateTime<Utc>,
    /// Its latest event's time.
    pub last_seen: DateTime<Utc>,
    /// Events from this address.
    pub events: u64,
    /// `auth` events from it (credentials tried).
    pub attempts: u64,
    /// Deckies it touched, sorted.
    pub deckies: Vec<String>,
    /// Services it touched, sorted.
    pub services: Vec<String>,
    /// Distinct usernames it tried, sorted (at most [`MAX_PROFILE_USERNAMES`]).
    pub usernames: Vec<String>,
    /// The credentials of its latest `auth` event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The password of its latest `auth` event, if it carried one.
    pub last_password: Option<String>,
}

/// Most usernames a profile lists.
pub const MAX_PROFILE_USERNAMES: usize = 100;

impl AttackerProfile {
    /// Profiles from events (any order), most recently seen first — the reference the stores'
    /// aggregate queries are tested against.
    pub fn from_events<'a>(
        events: impl IntoIterator<Item = &'a AttackEvent>,
    ) -> Vec<AttackerProfile> {
        use std::collections::{BTreeMap, BTreeSet};
        #[derive(Default)]
        struct Acc {
            first: Option<DateTime<Utc>>,
            last: Option<DateTime<Utc>>,
            events: u64,
            attempts: u64,
            deckies: BTreeSet<String>,
            services: BTreeSet<String>,
            usernames: BTreeSet<String>,
            last_auth: Option<(Uuid, Option<String>, Option<String>)>,
        }
        let mut by_ip: BTreeMap<IpAddr, Acc> = BTreeMap::new();
        for e in events {
            if e.kind == AttackKind::Drop {
                continue;
            }
            let a = by_ip.entry(e.src_ip).or_default();
            a.first = Some(a.first.map_or(e.ts, |t| t.min(e.ts)));
            a.last = Some(a.last.map_or(e.ts, |t| t.max(e.ts)));
            a.events += 1;
            a.deckies.insert(e.decky.clone());
            a.services.insert(e.service.clone());
            if let Some(u) = &e.details.username {
                a.usernames.insert(u.clone());
            }
            if e.kind == AttackKind::Auth {
                a.attempts += 1;
                if a.last_auth.as_ref().is_none_or(|(id, _, _)| e.id > *id) {
                    a.last_auth =
                        Some((e.id, e.details.username.clone(), e.details.password.clone()));
                }
            }
        }
        let mut out: Vec<AttackerProfile> = by_ip
            .into_iter()
            .filter_map(|(ip, a)| {
                let (last_username, last_password) =
                    a.last_auth.map(|(_, u, p)| (u, p)).unwrap_or_default();
                Some(AttackerProfile {
                    src_ip: ip,
                    first_seen: a.first?,
                    last_seen: a.last?,
                    events: a.events,
                    attempts: a.attempts,
                    deckies: a.deckies.into_iter().collect(),
                    services: a.services.into_iter().collect(),
                    usernames: a
                        .usernames
                        .into_iter()
                        .take(MAX_PROFILE_USERNAMES)
                        .collect(),
                    last_username,
                    last_password,
                })
            })
            .collect();
        out.sort_by(|a, b| b.last_seen.cmp(&a.last_seen).then(a.src_ip.cmp(&b.src_ip)));
        out
    }
}

/// A new event id: a UUIDv7 (time-ordered).
pub fn new_event_id() -> Uuid {
    Uuid::now_v7()
}

/// `s` made safe to print on a terminal: control characters (C0, DEL, C1 — escape sequences
/// among them) become `\xNN` / `\u{NNNN}`, and a backslash becomes `\\`, so what an attacker
/// typed can neither move the cursor nor pass for something else.
pub fn escape_terminal(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if (0x80..0xa0).contains(&(c as u32))
                || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') =>
            {
                out.push_str(&format!("\\u{{{:04x}}}", c as u32));
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn sample() -> AttackEvent {
        AttackEvent {
            v: ATTACK_SCHEMA_VERSION,
            id: new_event_id(),
            ts: DateTime::parse_from_rfc3339("2026-12-03T06:00:00.123Z")
                .expect("ts")
                .with_timezone(&Utc),
            host: String::new(),
            decky: "decky-01".into(),
            service: "ssh".into(),
            protocol: Transport::Tcp,
            src_ip: "10.0.0.9".parse().expect("ip"),
            src_port: 40000,
            dst_ip: Some("10.0.0.20".parse().expect("ip")),
            dst_port: 22,
            session: new_event_id(),
            stream: new_event_id(),
            seq: 1,
            kind: AttackKind::Auth,
            details: AttackDetails {
                username: Some("ro\"ot\n".into()),
                password: Some("\u{1b}[2J".into()),
                ..AttackDetails::default()
            },
        }
    }

    #[test]
    fn round_trips_through_one_json_line() {
        let ev = sample();
        let line = ev.to_json_line();
        assert!(!line.contains('\n'), "{line}");
        assert!(line.starts_with("{\"v\":1,\"id\":"), "{line}");
        assert_eq!(AttackEvent::parse_line(&line), Some(ev));
    }

    #[test]
    fn wire_keys_are_the_documented_ones() {
        let v: Value = serde_json::from_str(&sample().to_json_line()).expect("json");
        let keys: Vec<&str> = v
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        for k in [
            "v", "id", "ts", "decky", "service", "protocol", "src_ip", "src_port", "dst_ip",
            "dst_port", "session", "stream", "seq", "kind", "details",
        ] {
            assert!(keys.contains(&k), "{k} missing from {keys:?}");
        }
        assert!(!keys.contains(&"host"), "an unstamped host is left out");
        assert_eq!(v["kind"], "auth");
        assert_eq!(v["protocol"], "tcp");
        assert_eq!(v["details"]["username"], "ro\"ot\n");
        assert!(
            v["details"].get("command").is_none(),
            "absent details are left out"
        );
    }

    #[test]
    fn unknown_kinds_and_extra_details_are_kept_readable() {
        let mut v: Value = serde_json::from_str(&sample().to_json_line()).expect("json");
        v["kind"] = json!("teleport");
        v["details"]["shoe_size"] = json!(44);
        let ev: AttackEvent = serde_json::from_value(v).expect("readable");
        assert_eq!(ev.kind, AttackKind::Other);
        assert_eq!(ev.details.extra["shoe_size"], 44);
    }

    #[test]
    fn lines_that_are_not_events_are_skipped() {
        for line in ["", "starting", "{", "{\"ts\":1}", "[1,2]", "{\"v\":1}"] {
            assert_eq!(AttackEvent::parse_line(line), None, "{line}");
        }
    }

    #[test]
    fn from_map_types_known_keys_and_keeps_the_rest() {
        let map = json!({
            "username": "admin", "password": 7, "accepted": true, "bytes_in": 12,
            "commands": ["ls"], "reason": "timeout"
        });
        let Value::Object(map) = map else {
            unreachable!()
        };
        let d = AttackDetails::from_map(map);
        assert_eq!(d.username.as_deref(), Some("admin"));
        assert_eq!(d.password, None, "a number is not a password string");
        assert_eq!(d.extra["password"], 7);
        assert_eq!(d.accepted, Some(true));
        assert_eq!(d.bytes_in, Some(12));
        assert_eq!(d.reason.as_deref(), Some("timeout"));
        assert_eq!(d.extra["commands"], json!(["ls"]));
        assert!(d.has_credential());
    }

    #[test]
    fn ids_sort_by_birth() {
        let a = new_event_id();
        let b = new_event_id();
        assert!(a < b);
        assert_eq!(a.get_version_num(), 7);
    }

    #[test]
    fn topic_names_decky_and_service() {
        assert_eq!(sample().topic(), "attack.decky-01.ssh");
    }

    #[test]
    fn terminal_escaping_table() {
        let cases = [
            ("root", "root"),
            ("a\u{1b}[2Jb", "a\\x1b[2Jb"),
            ("tab\there", "tab\\there"),
            ("line\r\nnext", "line\\r\\nnext"),
            ("back\\slash", "back\\\\slash"),
            ("del\u{7f}", "del\\x7f"),
            ("csi\u{9b}31m", "csi\\u{009b}31m"),
            ("rtl\u{202e}txt", "rtl\\u{202e}txt"),
            ("üñí", "üñí"),
        ];
        for (input, want) in cases {
            assert_eq!(escape_terminal(input), want, "{input:?}");
        }
    }

    proptest! {
        #[test]
        fn escaped_text_has_no_control_characters(s in ".*") {
            let out = escape_terminal(&s);
            prop_assert!(!out.chars().any(|c| c.is_control()), "{out:?}");
        }

        #[test]
        fn any_strings_round_trip(user in ".*", cmd in ".*") {
            let mut ev = sample();
            ev.details.username = Some(user);
            ev.details.command = Some(cmd);
            let line = ev.to_json_line();
            prop_assert!(!line.contains('\n'));
            prop_assert_eq!(AttackEvent::parse_line(&line), Some(ev));
        }
    }
}

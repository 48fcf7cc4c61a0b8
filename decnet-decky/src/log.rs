//! Attacker events (PRODUCT §10): one JSON object per line on stdout, one per step of an
//! interaction, in the schema of [`decnet_core::model::attack`].
//!
//! An [`Emitter`] is the service process's one writer: it numbers the events of this process
//! (`stream`, `seq`) and writes each under one lock, so lines never interleave and stdout order
//! is `seq` order. A [`Reporter`] is one connection's (or datagram's) view of it: it carries the
//! peer, the session id and the start time, and responders call [`Reporter::emit`] at each step
//! (a credential tried, a command, a request), so a long session is visible while it runs.

use std::fmt;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, SubsecRound, Utc};
use decnet_core::model::attack::{new_event_id, ATTACK_SCHEMA_VERSION};
pub use decnet_core::model::attack::{AttackDetails, AttackEvent, AttackKind, Transport};
use serde_json::{Map, Value};
use uuid::Uuid;

/// What a responder learned about one connection, summed up in its `disconnect` event.
pub type Fields = Map<String, Value>;

/// Transport of a listener.
pub type Proto = Transport;

/// Where events go. The binary uses [`StdoutSink`]; tests use [`MemorySink`].
pub trait EventSink: Send + Sync {
    fn emit(&self, event: &AttackEvent);
}

/// Writes each event as one line to stdout, in a single `write_all` so concurrent connections
/// never interleave.
#[derive(Debug, Default)]
pub struct StdoutSink;

impl EventSink for StdoutSink {
    fn emit(&self, event: &AttackEvent) {
        let mut line = event.to_json_line();
        line.push('\n');
        let out = std::io::stdout();
        let mut lock = out.lock();
        // A closed stdout must not take the honeypot down.
        let _ = lock.write_all(line.as_bytes());
        let _ = lock.flush();
    }
}

/// Collects events in memory (tests).
#[derive(Debug, Default)]
pub struct MemorySink {
    events: Mutex<Vec<AttackEvent>>,
}

impl MemorySink {
    pub fn events(&self) -> Vec<AttackEvent> {
        self.events.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

impl EventSink for MemorySink {
    fn emit(&self, event: &AttackEvent) {
        if let Ok(mut v) = self.events.lock() {
            v.push(event.clone());
        }
    }
}

/// The service process's event writer: stamps id, time, `stream` and `seq`.
pub struct Emitter {
    sink: Arc<dyn EventSink>,
    decky: String,
    service: String,
    stream: Uuid,
    /// The last `seq` written; held while writing so stdout order is `seq` order.
    seq: Mutex<u64>,
}

impl fmt::Debug for Emitter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Emitter")
            .field("decky", &self.decky)
            .field("service", &self.service)
            .field("stream", &self.stream)
            .finish()
    }
}

/// Who an event is about: the peer and the decky's end of the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    pub protocol: Transport,
    pub src: SocketAddr,
    pub dst_ip: Option<IpAddr>,
    pub dst_port: u16,
}

impl Emitter {
    pub fn new(sink: Arc<dyn EventSink>, decky: &str, service: &str) -> Emitter {
        Emitter {
            sink,
            decky: decky.to_owned(),
            service: service.to_owned(),
            stream: new_event_id(),
            seq: Mutex::new(0),
        }
    }

    /// This process's stream id.
    pub fn stream(&self) -> Uuid {
        self.stream
    }

    /// Writes one event and returns it.
    pub fn emit(
        &self,
        origin: &Origin,
        session: Uuid,
        kind: AttackKind,
        details: AttackDetails,
    ) -> AttackEvent {
        let mut seq = self.seq.lock().unwrap_or_else(|p| p.into_inner());
        *seq += 1;
        let event = AttackEvent {
            v: ATTACK_SCHEMA_VERSION,
            id: new_event_id(),
            ts: now_ms(),
            host: String::new(),
            decky: self.decky.clone(),
            service: self.service.clone(),
            protocol: origin.protocol,
            src_ip: origin.src.ip(),
            src_port: origin.src.port(),
            dst_ip: origin.dst_ip,
            dst_port: origin.dst_port,
            session,
            stream: self.stream,
            seq: *seq,
            kind,
            details,
        };
        self.sink.emit(&event);
        event
    }

    /// A reporter for a new session (one connection or one datagram).
    pub fn session(self: &Arc<Self>, origin: Origin) -> Reporter {
        Reporter {
            emitter: self.clone(),
            origin,
            session: new_event_id(),
            started: Instant::now(),
        }
    }
}

/// The current time, to the millisecond.
fn now_ms() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(3)
}

/// One session's events: every step a responder reports shares its session id.
#[derive(Debug, Clone)]
pub struct Reporter {
    emitter: Arc<Emitter>,
    origin: Origin,
    session: Uuid,
    started: Instant,
}

impl Reporter {
    /// Reports one step of the session.
    pub fn emit(&self, kind: AttackKind, details: AttackDetails) -> AttackEvent {
        self.emitter.emit(&self.origin, self.session, kind, details)
    }

    /// Reports one step from loose fields (known keys become typed details).
    pub fn emit_fields(&self, kind: AttackKind, fields: Fields) -> AttackEvent {
        self.emit(kind, AttackDetails::from_map(fields))
    }

    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    pub fn session(&self) -> Uuid {
        self.session
    }

    /// Milliseconds since the session started.
    pub fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian
/// calendar (Howard Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn split(t: SystemTime) -> (i64, u64, u32) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    ((secs / 86_400) as i64, secs % 86_400, d.subsec_millis())
}

/// `2024-05-01T12:34:56.789Z`
pub fn rfc3339(t: SystemTime) -> String {
    let (days, sod, ms) = split(t);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

/// IMF-fixdate for HTTP `Date:` headers: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn http_date(t: SystemTime) -> String {
    const WD: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MON: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (days, sod, _) = split(t);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{}, {d:02} {} {y:04} {:02}:{:02}:{:02} GMT",
        WD[days.rem_euclid(7) as usize],
        MON[(m - 1) as usize],
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64, ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(ms)
    }

    #[test]
    fn rfc3339_known_instants() {
        let check = |secs, ms, expect: &str| assert_eq!(rfc3339(at(secs, ms)), expect);
        check(0, 0, "1970-01-01T00:00:00.000Z");
        check(951_782_400, 5, "2000-02-29T00:00:00.005Z");
        check(1_709_251_199, 999, "2024-02-29T23:59:59.999Z");
        check(4_102_444_800, 0, "2100-01-01T00:00:00.000Z");
    }

    #[test]
    fn http_date_matches_rfc_example() {
        assert_eq!(
            http_date(at(784_111_777, 0)),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(http_date(at(0, 0)), "Thu, 01 Jan 1970 00:00:00 GMT");
    }

    #[test]
    fn a_session_numbers_its_steps_and_shares_its_id() {
        let sink = Arc::new(MemorySink::default());
        let emitter = Arc::new(Emitter::new(sink.clone(), "decky-01", "ftp"));
        let origin = Origin {
            protocol: Transport::Tcp,
            src: "10.0.0.9:40000".parse().expect("addr"),
            dst_ip: Some("10.0.0.20".parse().expect("ip")),
            dst_port: 21,
        };
        let a = emitter.session(origin);
        let b = emitter.session(origin);
        a.emit(AttackKind::Connect, AttackDetails::default());
        let mut f = Fields::new();
        f.insert("username".into(), Value::from("ro\"ot\n"));
        f.insert("tries".into(), Value::from(3));
        a.emit_fields(AttackKind::Auth, f);
        b.emit(AttackKind::Connect, AttackDetails::default());
        let ev = sink.events();
        assert_eq!(ev.len(), 3);
        assert_eq!(ev.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
        assert!(ev.iter().all(|e| e.stream == emitter.stream()));
        assert_eq!(ev[0].session, ev[1].session);
        assert_ne!(ev[0].session, ev[2].session);
        assert_eq!(ev[1].kind, AttackKind::Auth);
        assert_eq!(ev[1].details.username.as_deref(), Some("ro\"ot\n"));
        assert_eq!(ev[1].details.extra["tries"], 3);
        assert_eq!(ev[1].decky, "decky-01");
        assert_eq!(ev[1].service, "ftp");
        assert_eq!(ev[1].src_port, 40000);
        assert_eq!(ev[1].dst_port, 21);
        let line = ev[1].to_json_line();
        assert!(!line.contains('\n'));
        assert_eq!(AttackEvent::parse_line(&line).as_ref(), Some(&ev[1]));
    }
}

//! Attacker events: one JSON object per line on stdout.
//!
//! The top-level keys are written in a fixed order (`ts` first) so the lines
//! read well in `docker logs`; `fields` holds whatever the protocol responder
//! learned about the peer.

use std::fmt;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

/// What a responder learned about one connection or datagram.
pub type Fields = Map<String, Value>;

/// Transport of a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One attacker event.
#[derive(Debug, Clone)]
pub struct Event {
    pub ts: SystemTime,
    pub decky: String,
    pub service: String,
    pub proto: Proto,
    pub src: SocketAddr,
    pub dst_port: u16,
    pub bytes_in: u64,
    pub event: &'static str,
    pub fields: Fields,
}

impl Event {
    /// The event as one JSON object (no trailing newline).
    pub fn to_json_line(&self) -> String {
        fn s(v: &str) -> String {
            Value::String(v.to_owned()).to_string()
        }
        format!(
            "{{\"ts\":{},\"decky\":{},\"service\":{},\"proto\":{},\"src_ip\":{},\"src_port\":{},\"dst_port\":{},\"bytes_in\":{},\"event\":{},\"fields\":{}}}",
            s(&rfc3339(self.ts)),
            s(&self.decky),
            s(&self.service),
            s(self.proto.as_str()),
            s(&self.src.ip().to_string()),
            self.src.port(),
            self.dst_port,
            self.bytes_in,
            s(self.event),
            Value::Object(self.fields.clone()),
        )
    }
}

/// Where events go. The binary uses [`StdoutSink`]; tests use [`MemorySink`].
pub trait EventSink: Send + Sync {
    fn emit(&self, event: &Event);
}

/// Writes each event as one line to stdout, in a single `write_all` under the
/// stdout lock so concurrent connections never interleave.
#[derive(Debug, Default)]
pub struct StdoutSink;

impl EventSink for StdoutSink {
    fn emit(&self, event: &Event) {
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
    events: Mutex<Vec<Event>>,
}

impl MemorySink {
    pub fn events(&self) -> Vec<Event> {
        self.events.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

impl EventSink for MemorySink {
    fn emit(&self, event: &Event) {
        if let Ok(mut v) = self.events.lock() {
            v.push(event.clone());
        }
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
    fn event_line_has_fixed_keys_and_escapes() {
        let mut fields = Fields::new();
        fields.insert("user".into(), Value::from("ro\"ot\n"));
        let e = Event {
            ts: at(0, 0),
            decky: "decky-01".into(),
            service: "ftp".into(),
            proto: Proto::Tcp,
            src: "10.0.0.9:40000".parse().expect("addr"),
            dst_port: 21,
            bytes_in: 12,
            event: "connection",
            fields,
        };
        let line = e.to_json_line();
        assert!(line.starts_with("{\"ts\":\"1970-01-01T00:00:00.000Z\",\"decky\":\"decky-01\""));
        assert!(!line.contains('\n'));
        let v: Value = serde_json::from_str(&line).expect("valid json");
        assert_eq!(v["src_ip"], "10.0.0.9");
        assert_eq!(v["src_port"], 40000);
        assert_eq!(v["dst_port"], 21);
        assert_eq!(v["proto"], "tcp");
        assert_eq!(v["bytes_in"], 12);
        assert_eq!(v["fields"]["user"], "ro\"ot\n");
    }
}

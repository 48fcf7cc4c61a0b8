//! Collecting attacker events from the output of decky service containers (PRODUCT §10).
//!
//! Each service container's output is read in order, from a per-container [`LogCursor`]. The
//! collector is pure: given the lines read since the cursor, it returns the attacker events in
//! them — stamped with the collecting host and with the decky and service the container really
//! belongs to (the labels the host put on it, not what a line claims) — and the cursor after
//! them.
//!
//! Readers may hand the same line over twice (Docker's `since` has whole-second resolution, so a
//! reader re-reads the cursor's second): a line whose `(stream, seq)` the cursor has already
//! passed is skipped, so collection is exactly-once per container. A gap in `seq` within a
//! stream — output lost to log rotation, say — becomes one [`AttackKind::Drop`] event counting
//! the missing events, so a loss is reported, never silent.

use std::net::{IpAddr, Ipv4Addr};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::model::attack::{
    new_event_id, AttackDetails, AttackEvent, AttackKind, Transport, ATTACK_SCHEMA_VERSION,
};

/// How many recent streams (service process instances) a cursor remembers. A container's output
/// holds one stream per start of its process; only the last few can still be re-read.
pub const CURSOR_STREAMS: usize = 8;

/// One service container whose output is collected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceContainer {
    /// The container id.
    pub id: String,
    /// The decky it belongs to (its label).
    pub decky: String,
    /// The service it runs (its label).
    pub service: String,
}

/// One line of a container's output with the time the daemon recorded it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    /// When the daemon read the line from the container.
    pub ts: DateTime<Utc>,
    /// The line, without its newline.
    pub text: String,
}

/// Where one container's output has been read up to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogCursor {
    /// The daemon time of the last line read (re-reading starts at its second).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_ts: Option<DateTime<Utc>>,
    /// The last `seq` collected of each recent stream, the most recent last.
    #[serde(default)]
    pub streams: Vec<(Uuid, u64)>,
}

impl LogCursor {
    /// The whole seconds since the epoch to re-read from (Docker's `since`), or 0 for all.
    pub fn since_secs(&self) -> i64 {
        self.last_ts.map_or(0, |t| t.timestamp())
    }

    fn last_seq(&self, stream: Uuid) -> Option<u64> {
        self.streams
            .iter()
            .find(|(s, _)| *s == stream)
            .map(|(_, q)| *q)
    }

    fn advance(&mut self, stream: Uuid, seq: u64) {
        self.streams.retain(|(s, _)| *s != stream);
        self.streams.push((stream, seq));
        if self.streams.len() > CURSOR_STREAMS {
            let extra = self.streams.len() - CURSOR_STREAMS;
            self.streams.drain(..extra);
        }
    }
}

/// What one collection pass found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Collected {
    /// The new events, in output order (drop reports where the gaps were).
    pub events: Vec<AttackEvent>,
    /// The cursor after them.
    pub cursor: LogCursor,
    /// Lines that were not attacker events (other output of the container).
    pub other_lines: u64,
    /// Events lost in gaps of `seq`, reported by drop events.
    pub dropped: u64,
}

/// The attacker events among `lines` of `container`'s output, read from `cursor`.
///
/// `host` is stamped on every event (`local` for unihost deckies, else the host's uuid).
pub fn collect(
    host: &str,
    container: &ServiceContainer,
    cursor: &LogCursor,
    lines: &[LogLine],
) -> Collected {
    let mut out = Collected {
        cursor: cursor.clone(),
        ..Collected::default()
    };
    for line in lines {
        out.cursor.last_ts = Some(out.cursor.last_ts.map_or(line.ts, |t| t.max(line.ts)));
        let Some(mut ev) = AttackEvent::parse_line(&line.text) else {
            out.other_lines += 1;
            continue;
        };
        if ev.seq == 0 {
            // Not something a decky service writes (its seq starts at 1).
            out.other_lines += 1;
            continue;
        }
        let known = out.cursor.last_seq(ev.stream);
        if known.is_some_and(|q| ev.seq <= q) {
            continue;
        }
        // The first event of a stream we never saw should be seq 1; later ones follow on.
        let missing = ev.seq - known.unwrap_or(0) - 1;
        if missing > 0 {
            out.dropped += missing;
            out.events
                .push(drop_event(host, container, ev.stream, missing, line.ts));
        }
        out.cursor.advance(ev.stream, ev.seq);
        ev.host = host.to_owned();
        ev.decky.clone_from(&container.decky);
        ev.service.clone_from(&container.service);
        out.events.push(ev);
    }
    out
}

/// An event reporting `count` events lost from `stream` before `ts`.
///
/// Its `seq` is 0 (no service wrote it) and its addresses are unspecified.
pub fn drop_event(
    host: &str,
    container: &ServiceContainer,
    stream: Uuid,
    count: u64,
    ts: DateTime<Utc>,
) -> AttackEvent {
    AttackEvent {
        v: ATTACK_SCHEMA_VERSION,
        id: new_event_id(),
        ts,
        host: host.to_owned(),
        decky: container.decky.clone(),
        service: container.service.clone(),
        protocol: Transport::Tcp,
        src_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        src_port: 0,
        dst_ip: None,
        dst_port: 0,
        session: new_event_id(),
        stream,
        seq: 0,
        kind: AttackKind::Drop,
        details: AttackDetails {
            dropped: Some(count),
            reason: Some("output lost before collection".into()),
            ..AttackDetails::default()
        },
    }
}

/// Cursors of every container collected on one host, by container id.
pub type Cursors = std::collections::BTreeMap<String, LogCursor>;

/// One pass over every service container of the host: the new events of each, oldest first per
/// container, and the cursors after them. Cursors of containers that are gone are dropped from
/// the result (a container id is never reused). A container whose output cannot be read keeps
/// its cursor and is read again next pass.
pub async fn collect_all(
    logs: &dyn crate::traits::ServiceLogs,
    host: &str,
    cursors: &Cursors,
) -> Result<(Vec<AttackEvent>, Cursors), crate::traits::DeployerError> {
    let containers = logs.service_containers().await?;
    let mut events = Vec::new();
    let mut next = Cursors::new();
    for c in &containers {
        let cursor = cursors.get(&c.id).cloned().unwrap_or_default();
        match logs.read_since(c, cursor.since_secs()).await {
            Ok(lines) => {
                let got = collect(host, c, &cursor, &lines);
                events.extend(got.events);
                next.insert(c.id.clone(), got.cursor);
            }
            Err(_) => {
                next.insert(c.id.clone(), cursor);
            }
        }
    }
    Ok((events, next))
}

/// Why a collection pass stopped.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// The deployer could not read the deckies' service output.
    #[error("read service output: {0}")]
    Logs(#[from] crate::traits::DeployerError),
    /// Appending the parsed events to the spool failed.
    #[error(transparent)]
    Spool(#[from] crate::adapters::spool::SpoolError),
}

/// One collection pass into `spool`: the new events of every service container are appended
/// durably, then the cursors kept with the spool move on (a crash in between repeats events,
/// never loses them; the store is idempotent by id). Events the spool dropped since the last
/// pass are reported by one host-level `drop` event (no decky, service `spool`). Returns how
/// many events were appended.
pub async fn collect_into(
    logs: &dyn crate::traits::ServiceLogs,
    host: &str,
    spool: &mut crate::adapters::spool::Spool,
) -> Result<usize, CollectError> {
    let cursors = spool.cursors();
    let (mut events, next) = collect_all(logs, host, &cursors).await?;
    spool.append(&events)?;
    let lost = spool.take_dropped()?;
    if lost > 0 {
        let spool_itself = ServiceContainer {
            id: String::new(),
            decky: String::new(),
            service: "spool".into(),
        };
        let report = drop_event(host, &spool_itself, Uuid::nil(), lost, Utc::now());
        spool.append(std::slice::from_ref(&report))?;
        events.push(report);
    }
    spool.set_cursors(&next)?;
    Ok(events.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn container() -> ServiceContainer {
        ServiceContainer {
            id: "c1".into(),
            decky: "decky-01".into(),
            service: "ssh".into(),
        }
    }

    fn event(stream: Uuid, seq: u64) -> AttackEvent {
        AttackEvent {
            v: 1,
            id: new_event_id(),
            ts: Utc::now(),
            host: String::new(),
            decky: "forged".into(),
            service: "forged".into(),
            protocol: Transport::Tcp,
            src_ip: "10.0.0.9".parse().expect("ip"),
            src_port: 40000,
            dst_ip: None,
            dst_port: 22,
            session: new_event_id(),
            stream,
            seq,
            kind: AttackKind::Connect,
            details: AttackDetails::default(),
        }
    }

    fn line(secs: i64, ev: &AttackEvent) -> LogLine {
        LogLine {
            ts: DateTime::from_timestamp(secs, 0).expect("ts"),
            text: ev.to_json_line(),
        }
    }

    fn text(secs: i64, s: &str) -> LogLine {
        LogLine {
            ts: DateTime::from_timestamp(secs, 0).expect("ts"),
            text: s.into(),
        }
    }

    #[test]
    fn stamps_host_and_the_containers_own_labels() {
        let s = new_event_id();
        let got = collect(
            "local",
            &container(),
            &LogCursor::default(),
            &[
                line(10, &event(s, 1)),
                text(10, "starting"),
                line(11, &event(s, 2)),
            ],
        );
        assert_eq!(got.events.len(), 2);
        assert!(got.events.iter().all(|e| e.host == "local"));
        assert!(got
            .events
            .iter()
            .all(|e| e.decky == "decky-01" && e.service == "ssh"));
        assert_eq!(got.other_lines, 1);
        assert_eq!(got.dropped, 0);
        assert_eq!(got.cursor.streams, vec![(s, 2)]);
        assert_eq!(got.cursor.since_secs(), 11);
    }

    #[test]
    fn re_reading_from_the_cursor_collects_nothing_twice() {
        let s = new_event_id();
        let lines = [line(10, &event(s, 1)), line(10, &event(s, 2))];
        let first = collect("h", &container(), &LogCursor::default(), &lines);
        let more = [lines[0].clone(), lines[1].clone(), line(10, &event(s, 3))];
        let second = collect("h", &container(), &first.cursor, &more);
        assert_eq!(second.events.len(), 1);
        assert_eq!(second.events[0].seq, 3);
        assert_eq!(second.dropped, 0);
    }

    #[test]
    fn a_gap_in_seq_is_one_counted_drop_event() {
        let s = new_event_id();
        let got = collect(
            "h",
            &container(),
            &LogCursor::default(),
            &[line(1, &event(s, 1)), line(2, &event(s, 5))],
        );
        let kinds: Vec<_> = got.events.iter().map(|e| (e.kind, e.seq)).collect();
        assert_eq!(
            kinds,
            [
                (AttackKind::Connect, 1),
                (AttackKind::Drop, 0),
                (AttackKind::Connect, 5)
            ]
        );
        assert_eq!(got.events[1].details.dropped, Some(3));
        assert_eq!(got.events[1].stream, s);
        assert_eq!(got.dropped, 3);
    }

    #[test]
    fn a_stream_first_seen_past_its_start_reports_what_was_lost() {
        // A container's output rotated away before the first read.
        let s = new_event_id();
        let got = collect(
            "h",
            &container(),
            &LogCursor::default(),
            &[line(1, &event(s, 4))],
        );
        assert_eq!(got.dropped, 3);
        assert_eq!(got.events.len(), 2);
    }

    #[test]
    fn a_restarted_process_is_a_new_stream_and_old_lines_stay_collected() {
        let a = new_event_id();
        let b = new_event_id();
        let first = collect(
            "h",
            &container(),
            &LogCursor::default(),
            &[line(5, &event(a, 1)), line(5, &event(b, 1))],
        );
        assert_eq!(first.events.len(), 2);
        // The same second again, with b's next event: a's line is not collected twice.
        let again = collect(
            "h",
            &container(),
            &first.cursor,
            &[
                line(5, &event(a, 1)),
                line(5, &event(b, 1)),
                line(6, &event(b, 2)),
            ],
        );
        assert_eq!(again.events.len(), 1);
        assert_eq!((again.events[0].stream, again.events[0].seq), (b, 2));
    }

    #[test]
    fn the_cursor_remembers_a_bounded_number_of_streams() {
        let mut cursor = LogCursor::default();
        for _ in 0..(CURSOR_STREAMS + 5) {
            let s = new_event_id();
            cursor = collect("h", &container(), &cursor, &[line(1, &event(s, 1))]).cursor;
        }
        assert_eq!(cursor.streams.len(), CURSOR_STREAMS);
    }

    #[test]
    fn cursors_round_trip_as_json() {
        let s = new_event_id();
        let c = collect(
            "h",
            &container(),
            &LogCursor::default(),
            &[line(7, &event(s, 1))],
        )
        .cursor;
        let back: LogCursor =
            serde_json::from_str(&serde_json::to_string(&c).expect("json")).expect("parse");
        assert_eq!(back, c);
    }

    proptest! {
        /// However the output is cut into reads (overlapping at the cursor's second), every
        /// event is collected exactly once and nothing is reported dropped.
        #[test]
        fn overlapping_reads_collect_each_event_once(
            n in 1usize..40,
            cuts in proptest::collection::vec(0usize..40, 0..6),
        ) {
            let s = new_event_id();
            let lines: Vec<LogLine> = (1..=n as u64)
                .map(|q| line(q as i64 / 3, &event(s, q)))
                .collect();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(n)).collect();
            cuts.push(n);
            cuts.sort_unstable();
            let mut cursor = LogCursor::default();
            let mut seen = Vec::new();
            for end in cuts {
                // Re-read from the first line of the cursor's second, as Docker's `since` does.
                let since = cursor.since_secs();
                let start = lines.iter().position(|l| l.ts.timestamp() >= since).unwrap_or(0);
                let got = collect("h", &container(), &cursor, &lines[start.min(end)..end]);
                prop_assert_eq!(got.dropped, 0);
                seen.extend(got.events.iter().map(|e| e.seq));
                cursor = got.cursor;
            }
            prop_assert_eq!(seen, (1..=n as u64).collect::<Vec<_>>());
        }
    }

    #[tokio::test]
    async fn collect_all_reads_each_container_from_its_cursor_and_forgets_gone_ones() {
        use crate::traits::{DeployerError, MockServiceLogs};
        let s = new_event_id();
        let e1 = line(100, &event(s, 1));
        let e2 = line(100, &event(s, 2));
        let mut logs = MockServiceLogs::new();
        logs.expect_service_containers().returning(|| {
            Ok(vec![
                container(),
                ServiceContainer {
                    id: "broken".into(),
                    decky: "decky-02".into(),
                    service: "http".into(),
                },
            ])
        });
        let lines = vec![e1.clone(), e2.clone()];
        logs.expect_read_since().returning(move |c, since| {
            if c.id == "broken" {
                return Err(DeployerError::unavailable("daemon restarting"));
            }
            assert_eq!(since, 100, "re-read from the cursor's second");
            Ok(lines.clone())
        });
        let mut cursors = Cursors::new();
        cursors.insert(
            "c1".into(),
            LogCursor {
                last_ts: Some(e1.ts),
                streams: vec![(s, 1)],
            },
        );
        let broken = LogCursor {
            last_ts: Some(e1.ts),
            streams: vec![],
        };
        cursors.insert("broken".into(), broken.clone());
        cursors.insert("gone".into(), LogCursor::default());
        let (events, next) = collect_all(&logs, "local", &cursors).await.expect("pass");
        assert_eq!(events.len(), 1, "only seq 2 is new");
        assert_eq!(events[0].seq, 2);
        assert_eq!(next["c1"].streams, vec![(s, 2)]);
        assert_eq!(next["broken"], broken, "kept for the next pass");
        assert!(!next.contains_key("gone"));
    }
}

//! A durable, bounded spool of attacker events on disk (PRODUCT §10): where a host keeps the
//! events it collected until they are delivered (an agent) or read (the unihost CLI).
//!
//! The spool is a directory of segment files, each one JSON event per line, named by a number
//! that grows (`00000000000000000001.jsonl` …), plus `spool.json` with the read cursor and the
//! drop count. Appends go to the last segment and are flushed to disk before `append` returns.
//! When the total size passes the bound, the **oldest** segments are deleted — an attacker's
//! flood can fill neither the disk nor memory — and the events in them that had not been
//! acknowledged are counted as dropped; [`Spool::take_dropped`] hands that count over once so
//! it can be reported as an event and a metric. Every file is 0600 in a 0700 directory
//! (events hold captured credentials).

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::attack::AttackEvent;

/// Default bound of a spool on disk: 256 MiB.
pub const DEFAULT_SPOOL_BYTES: u64 = 256 * 1024 * 1024;
/// How many segments a full spool is cut into (the granularity of dropping the oldest).
const SEGMENTS: u64 = 16;
const META: &str = "spool.json";
const CURSORS: &str = "cursors.json";

/// A position in the spool: a segment and a byte offset in it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SpoolCursor {
    /// The segment's number.
    pub segment: u64,
    /// The byte offset of the next unread line.
    pub offset: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Meta {
    /// Everything before this position is acknowledged.
    acked: SpoolCursor,
    /// Events dropped (unacknowledged when their segment was deleted) not yet reported.
    dropped: u64,
    /// Events dropped since the spool was created.
    dropped_total: u64,
}

/// Errors of the spool: I/O on its directory, naming the path.
#[derive(Debug, thiserror::Error)]
#[error("event spool {path}: {source}")]
pub struct SpoolError {
    path: PathBuf,
    #[source]
    source: io::Error,
}

fn err(path: &Path) -> impl FnOnce(io::Error) -> SpoolError + '_ {
    move |source| SpoolError {
        path: path.to_owned(),
        source,
    }
}

/// Depth of a spool.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpoolStats {
    /// Bytes on disk (segments).
    pub bytes: u64,
    /// Segments on disk.
    pub segments: usize,
    /// Events dropped since the spool was created.
    pub dropped_total: u64,
}

/// The spool in one directory. Opening it takes an exclusive lock on the directory (`lock`),
/// held until the value is dropped: one writer at a time, across processes.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    meta: Meta,
    _lock: File,
}

impl Spool {
    /// Opens (creating if needed) the spool in `dir`, bounded to `max_bytes` on disk. Waits
    /// while another process has it open.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Spool, SpoolError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(err(dir))?;
        let lock_path = dir.join("lock");
        let lock = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(err(&lock_path))?;
        lock.lock().map_err(err(&lock_path))?;
        let meta_path = dir.join(META);
        let meta = match fs::read(&meta_path) {
            // A damaged meta file loses the cursor, not the events: they are re-read.
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_default(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Meta::default(),
            Err(e) => return Err(err(&meta_path)(e)),
        };
        let spool = Spool {
            dir: dir.to_owned(),
            max_bytes: max_bytes.max(4096),
            meta,
            _lock: lock,
        };
        spool.repair_tail()?;
        Ok(spool)
    }

    /// Cuts a torn last line (a crash in the middle of a write) off the newest segment, so the
    /// next append starts on a line of its own.
    fn repair_tail(&self) -> Result<(), SpoolError> {
        let Some(&last) = self.segments()?.last() else {
            return Ok(());
        };
        let p = self.segment_path(last);
        let bytes = fs::read(&p).map_err(err(&p))?;
        if bytes.last().is_none_or(|&b| b == b'\n') {
            return Ok(());
        }
        let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let f = OpenOptions::new().write(true).open(&p).map_err(err(&p))?;
        f.set_len(keep as u64).map_err(err(&p))?;
        f.sync_data().map_err(err(&p))
    }

    fn segment_path(&self, n: u64) -> PathBuf {
        self.dir.join(format!("{n:020}.jsonl"))
    }

    /// The segment numbers on disk, oldest first.
    fn segments(&self) -> Result<Vec<u64>, SpoolError> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(err(&self.dir))? {
            let entry = entry.map_err(err(&self.dir))?;
            let name = entry.file_name();
            let Some(n) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".jsonl"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            out.push(n);
        }
        out.sort_unstable();
        Ok(out)
    }

    fn save_meta(&self) -> Result<(), SpoolError> {
        let path = self.dir.join(META);
        let tmp = self.dir.join(format!("{META}.tmp"));
        let body = serde_json::to_vec(&self.meta).unwrap_or_default();
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(err(&tmp))?;
        f.write_all(&body).map_err(err(&tmp))?;
        f.sync_data().map_err(err(&tmp))?;
        fs::rename(&tmp, &path).map_err(err(&path))
    }

    /// Appends `events` durably, then enforces the bound (dropping the oldest segments).
    pub fn append(&mut self, events: &[AttackEvent]) -> Result<(), SpoolError> {
        if events.is_empty() {
            return Ok(());
        }
        let seg_max = (self.max_bytes / SEGMENTS).max(1024);
        let mut segs = self.segments()?;
        let mut current = segs.last().copied().unwrap_or(1);
        let mut path = self.segment_path(current);
        let mut size = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let mut file = open_append(&path)?;
        for ev in events {
            let mut line = ev.to_json_line();
            line.push('\n');
            if size > 0 && size + line.len() as u64 > seg_max {
                file.sync_data().map_err(err(&path))?;
                current += 1;
                path = self.segment_path(current);
                file = open_append(&path)?;
                size = 0;
            }
            file.write_all(line.as_bytes()).map_err(err(&path))?;
            size += line.len() as u64;
        }
        file.sync_data().map_err(err(&path))?;
        segs = self.segments()?;
        self.enforce_bound(&segs)
    }

    fn enforce_bound(&mut self, segs: &[u64]) -> Result<(), SpoolError> {
        let mut sizes = Vec::with_capacity(segs.len());
        for &n in segs {
            let p = self.segment_path(n);
            sizes.push(fs::metadata(&p).map_err(err(&p))?.len());
        }
        let mut total: u64 = sizes.iter().sum();
        let mut changed = false;
        let mut i = 0;
        // The newest segment always stays: it holds the events just written.
        while total > self.max_bytes && i + 1 < segs.len() {
            let n = segs[i];
            let p = self.segment_path(n);
            let lost = if n > self.meta.acked.segment {
                count_lines(&p, 0)?
            } else if n == self.meta.acked.segment {
                count_lines(&p, self.meta.acked.offset)?
            } else {
                0
            };
            fs::remove_file(&p).map_err(err(&p))?;
            total -= sizes[i];
            self.meta.dropped += lost;
            self.meta.dropped_total += lost;
            if self.meta.acked.segment <= n {
                self.meta.acked = SpoolCursor {
                    segment: segs[i + 1],
                    offset: 0,
                };
            }
            changed = true;
            i += 1;
        }
        if changed {
            self.save_meta()?;
        }
        Ok(())
    }

    /// The acknowledged position (where an unacknowledged reader starts).
    pub fn acked(&self) -> SpoolCursor {
        self.meta.acked
    }

    /// Up to `max` events from `from` (or from the oldest event still on disk when `from` is
    /// older), and the position after them. A line that does not parse (a torn last write) is
    /// skipped.
    pub fn read(
        &self,
        from: SpoolCursor,
        max: usize,
    ) -> Result<(Vec<AttackEvent>, SpoolCursor), SpoolError> {
        let mut out = Vec::new();
        let mut cursor = from;
        for n in self.segments()? {
            if n < cursor.segment {
                continue;
            }
            let offset = if n == cursor.segment {
                cursor.offset
            } else {
                0
            };
            let p = self.segment_path(n);
            let mut f = File::open(&p).map_err(err(&p))?;
            f.seek(SeekFrom::Start(offset)).map_err(err(&p))?;
            let mut r = BufReader::new(f);
            let mut pos = offset;
            let mut line = String::new();
            loop {
                if out.len() >= max {
                    return Ok((
                        out,
                        SpoolCursor {
                            segment: n,
                            offset: pos,
                        },
                    ));
                }
                line.clear();
                let got = r.read_line(&mut line).map_err(err(&p))?;
                if got == 0 || !line.ends_with('\n') {
                    // End of the segment (or a line still being written: read it next time).
                    break;
                }
                pos += got as u64;
                if let Some(ev) = AttackEvent::parse_line(&line) {
                    out.push(ev);
                }
            }
            cursor = SpoolCursor {
                segment: n,
                offset: pos,
            };
        }
        Ok((out, cursor))
    }

    /// Marks everything before `upto` delivered: fully delivered segments are deleted.
    pub fn ack(&mut self, upto: SpoolCursor) -> Result<(), SpoolError> {
        if upto <= self.meta.acked {
            return Ok(());
        }
        self.meta.acked = upto;
        for n in self.segments()? {
            if n < upto.segment {
                let p = self.segment_path(n);
                fs::remove_file(&p).map_err(err(&p))?;
            }
        }
        self.save_meta()
    }

    /// The events dropped since the last call (to report once), and resets that count.
    pub fn take_dropped(&mut self) -> Result<u64, SpoolError> {
        let n = self.meta.dropped;
        if n > 0 {
            self.meta.dropped = 0;
            self.save_meta()?;
        }
        Ok(n)
    }

    /// Counts `n` events lost outside the spool (a batch the master refused for good), to be
    /// reported like the spool's own drops.
    pub fn record_dropped(&mut self, n: u64) -> Result<(), SpoolError> {
        if n == 0 {
            return Ok(());
        }
        self.meta.dropped += n;
        self.meta.dropped_total += n;
        self.save_meta()
    }

    /// The collector's cursors kept with this spool (empty when none were saved).
    pub fn cursors(&self) -> crate::orchestrate::collect::Cursors {
        fs::read(self.dir.join(CURSORS))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Saves the collector's cursors (after the events they cover were appended).
    pub fn set_cursors(
        &mut self,
        cursors: &crate::orchestrate::collect::Cursors,
    ) -> Result<(), SpoolError> {
        let path = self.dir.join(CURSORS);
        let tmp = self.dir.join(format!("{CURSORS}.tmp"));
        let body = serde_json::to_vec(cursors).unwrap_or_default();
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(err(&tmp))?;
        f.write_all(&body).map_err(err(&tmp))?;
        f.sync_data().map_err(err(&tmp))?;
        fs::rename(&tmp, &path).map_err(err(&path))
    }

    /// Bytes, segments and drops.
    pub fn stats(&self) -> Result<SpoolStats, SpoolError> {
        let segs = self.segments()?;
        let mut bytes = 0;
        for &n in &segs {
            let p = self.segment_path(n);
            bytes += fs::metadata(&p).map_err(err(&p))?.len();
        }
        Ok(SpoolStats {
            bytes,
            segments: segs.len(),
            dropped_total: self.meta.dropped_total,
        })
    }
}

fn open_append(path: &Path) -> Result<File, SpoolError> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(err(path))
}

fn count_lines(path: &Path, from: u64) -> Result<u64, SpoolError> {
    let mut f = File::open(path).map_err(err(path))?;
    f.seek(SeekFrom::Start(from)).map_err(err(path))?;
    let mut n = 0;
    for line in BufReader::new(f).split(b'\n') {
        if !line.map_err(err(path))?.is_empty() {
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::attack::{new_event_id, AttackDetails, AttackKind, Transport};
    use std::os::unix::fs::PermissionsExt;

    fn event(seq: u64) -> AttackEvent {
        AttackEvent {
            v: 1,
            id: new_event_id(),
            ts: chrono::Utc::now(),
            host: "local".into(),
            decky: "decky-01".into(),
            service: "ssh".into(),
            protocol: Transport::Tcp,
            src_ip: "10.0.0.9".parse().expect("ip"),
            src_port: 40000,
            dst_ip: None,
            dst_port: 22,
            session: new_event_id(),
            stream: new_event_id(),
            seq,
            kind: AttackKind::Auth,
            details: AttackDetails {
                username: Some("root".into()),
                password: Some("x".repeat(100)),
                ..AttackDetails::default()
            },
        }
    }

    fn seqs(events: &[AttackEvent]) -> Vec<u64> {
        events.iter().map(|e| e.seq).collect()
    }

    #[test]
    fn appended_events_survive_a_reopen_and_read_in_order() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut s = Spool::open(dir.path(), DEFAULT_SPOOL_BYTES).expect("open");
        s.append(&[event(1), event(2)]).expect("append");
        s.append(&[event(3)]).expect("append");
        drop(s);
        let s = Spool::open(dir.path(), DEFAULT_SPOOL_BYTES).expect("reopen");
        let (got, end) = s.read(s.acked(), 100).expect("read");
        assert_eq!(seqs(&got), [1, 2, 3]);
        let (more, end2) = s.read(end, 100).expect("read");
        assert!(more.is_empty());
        assert_eq!(end, end2);
    }

    #[test]
    fn reads_page_and_acks_delete_delivered_segments() {
        let dir = tempfile::tempdir().expect("tmp");
        // Small segments: a few events each.
        let mut s = Spool::open(dir.path(), 64 * 1024).expect("open");
        let all: Vec<AttackEvent> = (1..=40).map(event).collect();
        s.append(&all).expect("append");
        let segments_before = s.stats().expect("stats").segments;
        assert!(segments_before > 2, "{segments_before}");
        let (page, next) = s.read(s.acked(), 15).expect("read");
        assert_eq!(seqs(&page), (1..=15).collect::<Vec<_>>());
        s.ack(next).expect("ack");
        drop(s);
        let s = Spool::open(dir.path(), 64 * 1024).expect("reopen");
        assert_eq!(s.acked(), next, "the cursor is durable");
        assert!(s.stats().expect("stats").segments < segments_before);
        let (rest, _) = s.read(s.acked(), 100).expect("read");
        assert_eq!(seqs(&rest), (16..=40).collect::<Vec<_>>());
    }

    #[test]
    fn past_its_bound_the_oldest_are_dropped_and_counted_once() {
        let dir = tempfile::tempdir().expect("tmp");
        let bound = 8 * 1024;
        let mut s = Spool::open(dir.path(), bound).expect("open");
        for q in 1..=200 {
            s.append(&[event(q)]).expect("append");
        }
        let stats = s.stats().expect("stats");
        assert!(stats.bytes <= bound + 1024, "{stats:?}");
        let (kept, _) = s.read(s.acked(), 1000).expect("read");
        let dropped = s.take_dropped().expect("dropped");
        assert!(dropped > 0);
        assert_eq!(
            kept.len() as u64 + dropped,
            200,
            "every event kept or counted"
        );
        assert_eq!(kept.last().map(|e| e.seq), Some(200), "the newest are kept");
        assert_eq!(s.take_dropped().expect("again"), 0, "reported once");
        assert_eq!(s.stats().expect("stats").dropped_total, dropped);
    }

    #[test]
    fn acknowledged_events_are_not_counted_as_dropped() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut s = Spool::open(dir.path(), 8 * 1024).expect("open");
        s.append(&(1..=10).map(event).collect::<Vec<_>>())
            .expect("append");
        let (_, end) = s.read(s.acked(), 100).expect("read");
        s.ack(end).expect("ack");
        for q in 11..=100 {
            s.append(&[event(q)]).expect("append");
        }
        let (kept, _) = s.read(s.acked(), 1000).expect("read");
        let dropped = s.take_dropped().expect("dropped");
        assert_eq!(kept.len() as u64 + dropped, 90);
    }

    #[test]
    fn a_torn_last_line_is_cut_off_on_open() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut s = Spool::open(dir.path(), DEFAULT_SPOOL_BYTES).expect("open");
        s.append(&[event(1)]).expect("append");
        let seg = s.segment_path(1);
        let mut f = OpenOptions::new().append(true).open(&seg).expect("open");
        f.write_all(b"{\"v\":1,\"id\":").expect("torn");
        let (got, _) = s.read(s.acked(), 100).expect("read");
        assert_eq!(seqs(&got), [1], "a torn line is not an event");
        drop(s);
        let mut s = Spool::open(dir.path(), DEFAULT_SPOOL_BYTES).expect("reopen");
        s.append(&[event(2)]).expect("append");
        let (got, _) = s.read(s.acked(), 100).expect("read");
        assert_eq!(seqs(&got), [1, 2], "the next event is whole");
    }

    #[test]
    fn a_second_opener_waits_for_the_first() {
        let dir = tempfile::tempdir().expect("tmp");
        let first = Spool::open(dir.path(), DEFAULT_SPOOL_BYTES).expect("open");
        let (tx, rx) = std::sync::mpsc::channel();
        let path = dir.path().to_owned();
        let waiter = std::thread::spawn(move || {
            let s = Spool::open(&path, DEFAULT_SPOOL_BYTES).expect("open");
            tx.send(()).expect("send");
            drop(s);
        });
        // While the first is open the second cannot have opened it.
        assert!(rx.try_recv().is_err());
        assert!(
            File::open(dir.path().join("lock"))
                .expect("lock file")
                .try_lock()
                .is_err(),
            "the lock is held"
        );
        drop(first);
        rx.recv().expect("the second opens once the first is gone");
        waiter.join().expect("join");
    }

    #[test]
    fn files_are_private() {
        let dir = tempfile::tempdir().expect("tmp");
        let spool_dir = dir.path().join("spool");
        let mut s = Spool::open(&spool_dir, DEFAULT_SPOOL_BYTES).expect("open");
        s.append(&[event(1)]).expect("append");
        s.ack(SpoolCursor {
            segment: 1,
            offset: 1,
        })
        .expect("ack");
        let mode = |p: &Path| fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&spool_dir), 0o700);
        for entry in fs::read_dir(&spool_dir).expect("dir") {
            let p = entry.expect("entry").path();
            assert_eq!(mode(&p), 0o600, "{}", p.display());
        }
    }
}

//! The durable lifecycle outbox (PRODUCT §5).
//!
//! Every finished operation leaves one [`LifecycleDelta`] per decky. The original pushed them
//! once and forgot them, so a hiccup left the master's row open until a sweep failed it. Here a
//! delta is written to disk *before* the operation counts as done, re-sent with every heartbeat
//! and removed only when the master acknowledges the heartbeat that carried it (204).
//!
//! Layout: one file per delta, `<dir>/<delta id>.json`, written atomically (temp file + fsync +
//! rename + directory fsync). Opening the outbox loads every pending file; leftover temp files
//! (a crash mid-write, before `record` returned) are removed; a file that does not parse is
//! renamed `*.corrupt`, logged and skipped — never fatal.
//!
//! Methods take `&self` and do blocking file I/O under one lock (writes are small: one file per
//! delta). Async callers run `record`/`ack` on the blocking pool ([`OutboxSink`] does).

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::model::LifecycleDelta;
use crate::traits::{LifecycleSink, SinkError};
use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use uuid::Uuid;

/// Suffix of a pending delta's file.
const SUFFIX: &str = ".json";
/// Suffix a file that could not be read gets.
const CORRUPT_SUFFIX: &str = ".corrupt";
/// Prefix of temp files (hidden, never loaded).
const TMP_PREFIX: &str = ".tmp-";

/// Errors of the outbox; each names the path.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// Reading or writing the outbox directory or one of its files failed.
    #[error("outbox {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A delta could not be encoded as JSON (it is not recorded).
    #[error("outbox: encode delta {id}: {source}")]
    Encode {
        /// The delta's id.
        id: Uuid,
        /// The encoder's error.
        #[source]
        source: serde_json::Error,
    },
}

impl OutboxError {
    fn io(path: &Path) -> impl FnOnce(io::Error) -> OutboxError + '_ {
        move |source| OutboxError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Sort key: oldest first, ties broken by id, so the order is stable across restarts.
type Key = (DateTime<Utc>, Uuid);

#[derive(Debug, Default)]
struct Inner {
    by_age: BTreeMap<Key, LifecycleDelta>,
    keys: HashMap<Uuid, Key>,
}

impl Inner {
    fn insert(&mut self, delta: LifecycleDelta) {
        let key = (delta.completed_at, delta.id);
        if let Some(old) = self.keys.insert(delta.id, key) {
            self.by_age.remove(&old);
        }
        self.by_age.insert(key, delta);
    }

    fn remove(&mut self, id: &Uuid) -> bool {
        match self.keys.remove(id) {
            Some(key) => self.by_age.remove(&key).is_some(),
            None => false,
        }
    }
}

/// The durable outbox of lifecycle deltas. See the module docs.
#[derive(Debug)]
pub struct Outbox {
    dir: PathBuf,
    inner: Mutex<Inner>,
}

impl Outbox {
    /// Opens (creating, mode 0700) the outbox directory and loads every pending delta.
    pub fn open(dir: impl AsRef<Path>) -> Result<Outbox, OutboxError> {
        let dir = dir.as_ref().to_path_buf();
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(OutboxError::io(&dir))?;
        let mut inner = Inner::default();
        for entry in fs::read_dir(&dir).map_err(OutboxError::io(&dir))? {
            let entry = entry.map_err(OutboxError::io(&dir))?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(TMP_PREFIX) {
                // `record` never returned for it: nobody was promised this delta.
                if let Err(e) = fs::remove_file(&path) {
                    tracing::warn!(path = %path.display(), error = %e, "outbox: cannot remove stale temp file");
                }
                continue;
            }
            if !name.ends_with(SUFFIX) {
                continue;
            }
            match read_delta(&path) {
                Ok(delta) => inner.insert(delta),
                Err(reason) => set_aside(&path, &reason),
            }
        }
        tracing::debug!(dir = %dir.display(), pending = inner.by_age.len(), "outbox opened");
        Ok(Outbox {
            dir,
            inner: Mutex::new(inner),
        })
    }

    /// The directory the outbox lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave `Inner` half-updated in a way that
        // matters (every update is one insert/remove pair); keep going.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn file_of(&self, id: &Uuid) -> PathBuf {
        self.dir.join(format!("{id}{SUFFIX}"))
    }

    /// Writes every delta to disk, durably, before returning; then they are pending.
    ///
    /// All or nothing: on error the files this call wrote are removed again (best effort) and
    /// nothing new is pending. Recording a delta whose id is already pending replaces it.
    pub fn record(&self, deltas: Vec<LifecycleDelta>) -> Result<(), OutboxError> {
        if deltas.is_empty() {
            return Ok(());
        }
        let mut inner = self.lock();
        let mut written = Vec::with_capacity(deltas.len());
        let result = (|| {
            for delta in &deltas {
                let path = self.file_of(&delta.id);
                let bytes = serde_json::to_vec(delta).map_err(|source| OutboxError::Encode {
                    id: delta.id,
                    source,
                })?;
                write_atomic(&self.dir, &path, &bytes)?;
                written.push(path);
            }
            sync_dir(&self.dir)
        })();
        if let Err(e) = result {
            for path in &written {
                if !inner.keys.contains_key(&id_of(path)) {
                    let _ = fs::remove_file(path);
                }
            }
            return Err(e);
        }
        for delta in deltas {
            tracing::debug!(delta = %delta.id, decky = %delta.decky_name, lifecycle_id = ?delta.lifecycle_id, "outbox: recorded");
            inner.insert(delta);
        }
        Ok(())
    }

    /// Up to `limit` pending deltas, oldest first (by `completed_at`, then id).
    pub fn pending(&self, limit: usize) -> Vec<LifecycleDelta> {
        self.lock().by_age.values().take(limit).cloned().collect()
    }

    /// Removes acknowledged deltas, durably. Unknown ids are ignored.
    ///
    /// An acked delta leaves the pending set even when its file cannot be removed (the error
    /// is returned): the master has it, and re-sending it after a restart is harmless.
    pub fn ack(&self, ids: &[Uuid]) -> Result<(), OutboxError> {
        let mut inner = self.lock();
        let mut first_err = None;
        let mut removed = 0usize;
        for id in ids {
            if !inner.remove(id) {
                continue;
            }
            removed += 1;
            let path = self.file_of(id);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    first_err.get_or_insert(OutboxError::Io { path, source: e });
                }
            }
        }
        if removed > 0 {
            if let Err(e) = sync_dir(&self.dir) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// How many deltas are pending.
    pub fn len(&self) -> usize {
        self.lock().by_age.len()
    }

    /// Whether no delta waits for the master's acknowledgement.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn id_of(path: &Path) -> Uuid {
    path.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(SUFFIX))
        .and_then(|n| Uuid::parse_str(n).ok())
        .unwrap_or_default()
}

fn read_delta(path: &Path) -> Result<LifecycleDelta, String> {
    let bytes = fs::read(path).map_err(|e| format!("read: {e}"))?;
    let delta: LifecycleDelta =
        serde_json::from_slice(&bytes).map_err(|e| format!("parse: {e}"))?;
    // The file name is the id: a mismatch means the file was not written by `record`.
    if id_of(path) != delta.id {
        return Err(format!("file name does not match delta id {}", delta.id));
    }
    Ok(delta)
}

fn set_aside(path: &Path, reason: &str) {
    let mut aside = path.as_os_str().to_owned();
    aside.push(CORRUPT_SUFFIX);
    match fs::rename(path, &aside) {
        Ok(()) => tracing::error!(
            path = %path.display(),
            moved_to = %Path::new(&aside).display(),
            %reason,
            "outbox: unreadable delta file set aside"
        ),
        Err(e) => tracing::error!(
            path = %path.display(),
            %reason,
            error = %e,
            "outbox: unreadable delta file could not be set aside; skipped"
        ),
    }
}

/// temp file (0600) + write + fsync + rename. The caller fsyncs the directory.
fn write_atomic(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), OutboxError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!("{TMP_PREFIX}{name}.{}", Uuid::new_v4().simple()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(OutboxError::io(path))
}

fn sync_dir(dir: &Path) -> Result<(), OutboxError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(OutboxError::io(dir))
}

/// The agent's [`LifecycleSink`]: records into the [`Outbox`] (on the blocking pool), then
/// wakes the heartbeat loop so the deltas are pushed at once.
#[derive(Debug, Clone)]
pub struct OutboxSink {
    outbox: Arc<Outbox>,
    wake: Arc<Notify>,
}

impl OutboxSink {
    /// `wake` is the same `Notify` given to [`crate::orchestrate::heartbeat::HeartbeatLoop::run`].
    pub fn new(outbox: Arc<Outbox>, wake: Arc<Notify>) -> Self {
        Self { outbox, wake }
    }
}

#[async_trait::async_trait]
impl LifecycleSink for OutboxSink {
    async fn record(&self, deltas: Vec<LifecycleDelta>) -> Result<(), SinkError> {
        if deltas.is_empty() {
            return Ok(());
        }
        let outbox = self.outbox.clone();
        tokio::task::spawn_blocking(move || outbox.record(deltas))
            .await
            .map_err(|e| SinkError::io("outbox writer task failed", e))?
            .map_err(|e| SinkError::Io {
                message: e.to_string(),
                source: Some(Box::new(e)),
            })?;
        // A stored permit if the loop is busy sending: it sends again right after.
        self.wake.notify_one();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DeckyName, Operation};

    fn delta(name: &str, secs: i64) -> LifecycleDelta {
        let at = DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap();
        LifecycleDelta::new(
            Some(Uuid::new_v4()),
            DeckyName::new(name).unwrap(),
            Operation::Deploy,
            Ok(()),
            at,
        )
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn record_pending_ack_survive_reopen() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("outbox");
        let ob = Outbox::open(&dir).unwrap();
        let (a, b, c) = (delta("a", 30), delta("b", 10), delta("c", 20));
        ob.record(vec![a.clone(), b.clone()]).unwrap();
        ob.record(vec![c.clone()]).unwrap();
        assert_eq!(ob.len(), 3);
        assert_eq!(ob.pending(10), vec![b.clone(), c.clone(), a.clone()]);
        assert_eq!(ob.pending(2), vec![b.clone(), c.clone()]);
        assert_eq!(files(&dir).len(), 3);

        drop(ob);
        let ob = Outbox::open(&dir).unwrap();
        assert_eq!(ob.pending(10), vec![b.clone(), c.clone(), a.clone()]);
        ob.ack(&[b.id, Uuid::new_v4()]).unwrap();
        assert_eq!(ob.pending(10), vec![c.clone(), a.clone()]);

        drop(ob);
        let ob = Outbox::open(&dir).unwrap();
        assert_eq!(ob.pending(10), vec![c, a]);
        assert!(!files(&dir).iter().any(|f| f.starts_with(TMP_PREFIX)));
    }

    #[test]
    fn ties_order_by_id_stably() {
        let tmp = tempfile::tempdir().unwrap();
        let ob = Outbox::open(tmp.path()).unwrap();
        let ds: Vec<_> = (0..8).map(|i| delta(&format!("d-{i}"), 0)).collect();
        ob.record(ds.clone()).unwrap();
        let first = ob.pending(100);
        let mut ids: Vec<Uuid> = ds.iter().map(|d| d.id).collect();
        ids.sort();
        assert_eq!(first.iter().map(|d| d.id).collect::<Vec<_>>(), ids);
        drop(ob);
        assert_eq!(Outbox::open(tmp.path()).unwrap().pending(100), first);
    }

    #[test]
    fn corrupt_files_are_set_aside_and_temp_files_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let good = delta("good", 1);
        {
            let ob = Outbox::open(tmp.path()).unwrap();
            ob.record(vec![good.clone()]).unwrap();
        }
        let bad = tmp.path().join(format!("{}.json", Uuid::new_v4()));
        fs::write(&bad, b"{not json").unwrap();
        // Valid JSON under the wrong name is not ours either.
        let other = delta("other", 2);
        let misnamed = tmp.path().join(format!("{}.json", Uuid::new_v4()));
        fs::write(&misnamed, serde_json::to_vec(&other).unwrap()).unwrap();
        let stale = tmp.path().join(format!("{TMP_PREFIX}x.json.123"));
        fs::write(&stale, b"half").unwrap();

        let ob = Outbox::open(tmp.path()).unwrap();
        assert_eq!(ob.pending(10), vec![good]);
        assert!(!bad.exists() && !stale.exists() && !misnamed.exists());
        let names = files(tmp.path());
        assert_eq!(
            names
                .iter()
                .filter(|n| n.ends_with(".json.corrupt"))
                .count(),
            2,
            "{names:?}"
        );
        // Reopening again does not touch the set-aside files.
        assert_eq!(Outbox::open(tmp.path()).unwrap().len(), 1);
    }

    #[test]
    fn files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("o");
        let ob = Outbox::open(&dir).unwrap();
        let d = delta("a", 0);
        ob.record(vec![d.clone()]).unwrap();
        let mode = fs::metadata(dir.join(format!("{}.json", d.id)))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o077,
            0,
            "outbox dir is private"
        );
    }

    #[test]
    fn failed_record_leaves_nothing_pending() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("o");
        let ob = Outbox::open(&dir).unwrap();
        // The directory vanished under us (works as root too, unlike a permission test).
        fs::remove_dir(&dir).unwrap();
        let e = ob.record(vec![delta("a", 0), delta("b", 1)]).unwrap_err();
        assert!(e.to_string().contains("outbox"), "{e}");
        assert_eq!(ob.len(), 0);
    }

    #[tokio::test]
    async fn sink_records_then_wakes() {
        let tmp = tempfile::tempdir().unwrap();
        let ob = Arc::new(Outbox::open(tmp.path()).unwrap());
        let wake = Arc::new(Notify::new());
        let sink = OutboxSink::new(ob.clone(), wake.clone());
        let d = delta("a", 0);
        sink.record(vec![d.clone()]).await.unwrap();
        // The permit was stored: this returns at once, and the delta is already durable.
        wake.notified().await;
        assert_eq!(ob.pending(10), vec![d.clone()]);
        assert_eq!(Outbox::open(tmp.path()).unwrap().pending(10), vec![d]);
    }
}

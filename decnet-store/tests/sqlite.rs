#![allow(clippy::unwrap_used)]
//! The SQLite store: the conformance suite on real files, the connection settings, and
//! compare-and-set across two pools on one file (as two processes would have).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use decnet_core::model::{
    DeckyName, EnrollToken, HostName, LifecycleRow, LifecycleStatus, Operation,
};
use decnet_core::testkit::{at, repository_conformance};
use decnet_core::traits::{RepoError, Repository};
use decnet_store::{SqliteRepository, StoreError};
use sqlx::Row;
use uuid::Uuid;

fn url(path: &std::path::Path) -> String {
    format!("sqlite://{}", path.display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let n = Arc::new(AtomicUsize::new(0));
    repository_conformance(move || {
        let path = root.join(format!("store-{}.db", n.fetch_add(1, Ordering::SeqCst)));
        async move { decnet_store::open(&url(&path)).await.unwrap() }
    })
    .await;
}

#[tokio::test]
async fn connections_use_wal_busy_timeout_foreign_keys_and_normal_sync() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.db");
    assert!(!path.exists());
    let repo = SqliteRepository::open(&url(&path)).await.unwrap();
    assert!(path.exists(), "the file is created when missing");

    let mut conn = repo.pool().acquire().await.unwrap();
    let pragma = |name: &'static str| format!("PRAGMA {name}");
    let journal: String = sqlx::query(&pragma("journal_mode"))
        .fetch_one(&mut *conn)
        .await
        .unwrap()
        .get(0);
    assert_eq!(journal, "wal");
    for (name, expect) in [
        ("busy_timeout", 5000),
        ("foreign_keys", 1),
        ("synchronous", 1),
    ] {
        let v: i64 = sqlx::query(&pragma(name))
            .fetch_one(&mut *conn)
            .await
            .unwrap()
            .get(0);
        assert_eq!(v, expect, "PRAGMA {name}");
    }
}

/// `RETURNING` needs 3.35, `IS NOT DISTINCT FROM` 3.39; the bundled library is newer.
#[tokio::test]
async fn bundled_sqlite_is_new_enough() {
    let dir = tempfile::tempdir().unwrap();
    let repo = SqliteRepository::open_path(&dir.path().join("v.db"))
        .await
        .unwrap();
    let version: String = sqlx::query("SELECT sqlite_version()")
        .fetch_one(repo.pool())
        .await
        .unwrap()
        .get(0);
    let parts: Vec<u32> = version.split('.').map(|p| p.parse().unwrap()).collect();
    assert!(parts[0] == 3 && parts[1] >= 39, "sqlite {version}");
}

#[tokio::test]
async fn reopening_keeps_data_and_migrates_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.db");
    let first = decnet_store::open(&url(&path)).await.unwrap();
    first.revoke_fingerprint("ab", at(0)).await.unwrap();
    drop(first);

    let second = SqliteRepository::open(&url(&path)).await.unwrap();
    assert!(second.is_revoked("ab").await.unwrap());
    let applied: i64 = sqlx::query("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(second.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        applied, 3,
        "0001_init, 0002_cert_renewal and 0003_attack_events, once each"
    );
}

#[tokio::test]
async fn a_missing_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no/such/dir/master.db");
    let err = decnet_store::open(&url(&path)).await.err().unwrap();
    assert!(matches!(err, StoreError::Connect { .. }), "{err}");
    assert!(err.to_string().contains("no/such/dir"), "{err}");
}

/// Two pools on one file (two processes): one enroll token is still consumed once, and one
/// lifecycle row still closes once, with every writer in flight at the same time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_and_set_holds_across_pools() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.db");
    let a: Arc<dyn Repository> = Arc::new(SqliteRepository::open(&url(&path)).await.unwrap());
    let b: Arc<dyn Repository> = Arc::new(SqliteRepository::open(&url(&path)).await.unwrap());
    let now: DateTime<Utc> = at(0);

    for round in 0..5 {
        let token = EnrollToken {
            id: Uuid::new_v4(),
            hash: format!("hash-{round}"),
            host_name: HostName::new("worker-1").unwrap(),
            address: "10.0.0.5:8765".into(),
            created_at: now,
            expires_at: now + TimeDelta::minutes(15),
            used_at: None,
        };
        a.insert_enroll_token(&token).await.unwrap();
        let row = LifecycleRow::new(
            DeckyName::new("decky-01").unwrap(),
            None,
            Operation::Deploy,
            now,
        );
        b.create_lifecycle(&row).await.unwrap();

        let mut tasks = Vec::new();
        for i in 0..16i64 {
            let repo = if i % 2 == 0 { a.clone() } else { b.clone() };
            let hash = token.hash.clone();
            tasks.push(tokio::spawn(async move {
                let consumed = repo.consume_enroll_token(&hash, at(i)).await.unwrap();
                let to = if i % 4 < 2 {
                    LifecycleStatus::Succeeded
                } else {
                    LifecycleStatus::Failed
                };
                let moved = repo.transition_lifecycle(row.id, to, None, at(i)).await;
                (consumed.is_some(), to, moved)
            }));
        }
        let mut winners = 0;
        let mut outcomes = Vec::new();
        for t in tasks {
            let (won, to, moved) = t.await.unwrap();
            winners += usize::from(won);
            outcomes.push((to, moved));
        }
        assert_eq!(winners, 1, "round {round}: one consumer wins");
        let last = a.lifecycle_rows(&[row.id]).await.unwrap().remove(0);
        assert!(last.status.is_terminal());
        for (to, moved) in outcomes {
            match moved {
                Ok(r) => assert_eq!((to, r), (last.status, last.clone())),
                Err(RepoError::Transition(_)) => assert_ne!(to, last.status),
                Err(e) => panic!("round {round}: {e}"),
            }
        }
    }
}

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn companions(db: &std::path::Path) -> [std::path::PathBuf; 3] {
    let with = |suffix: &str| {
        let mut name = db.as_os_str().to_os_string();
        name.push(suffix);
        std::path::PathBuf::from(name)
    };
    [db.to_path_buf(), with("-wal"), with("-shm")]
}

/// This process's umask lets group and others read new files (nextest's default, 022), so a
/// 0600 store file is the store's doing, not the environment's. The umask is never changed.
fn assert_permissive_umask(dir: &std::path::Path) {
    let probe = dir.join("umask-probe");
    std::fs::write(&probe, b"").unwrap();
    assert_ne!(
        mode(&probe) & 0o044,
        0,
        "the test needs a umask that leaves new files readable by others (e.g. 022)"
    );
}

async fn write_something(pool: &sqlx::SqlitePool) {
    sqlx::query("CREATE TABLE IF NOT EXISTS perm_probe (x INTEGER)")
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO perm_probe (x) VALUES (1)")
        .execute(pool)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_database_and_its_wal_and_shm_files_are_created_0600() {
    let dir = tempfile::tempdir().unwrap();
    assert_permissive_umask(dir.path());
    let path = dir.path().join("decnet.db");
    let repo = SqliteRepository::open(&url(&path)).await.unwrap();
    write_something(repo.pool()).await;
    let mut conn = repo.pool().acquire().await.unwrap();
    sqlx::query("SELECT count(*) FROM perm_probe")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    for file in companions(&path) {
        assert!(
            file.exists(),
            "{} exists while the store is open",
            file.display()
        );
        assert_eq!(format!("{:o}", mode(&file)), "600", "{}", file.display());
    }
}

#[tokio::test]
async fn world_readable_files_of_an_older_release_are_tightened_at_open() {
    let dir = tempfile::tempdir().unwrap();
    assert_permissive_umask(dir.path());
    let path = dir.path().join("decnet.db");
    // What an older release left: a WAL database created under the umask (0644), still open
    // so its -wal and -shm files exist.
    let old = sqlx::sqlite::SqlitePoolOptions::new()
        .connect_with(
            sqlx::sqlite::SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(true)
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal),
        )
        .await
        .unwrap();
    write_something(&old).await;
    for file in companions(&path) {
        assert_eq!(
            format!("{:o}", mode(&file)),
            "644",
            "{} before the upgrade",
            file.display()
        );
    }

    let repo = SqliteRepository::open(&url(&path)).await.unwrap();
    write_something(repo.pool()).await;
    for file in companions(&path) {
        assert_eq!(
            format!("{:o}", mode(&file)),
            "600",
            "{} after open",
            file.display()
        );
    }
    repo.pool().close().await;
    old.close().await;

    // A lone 0644 database file (its -wal and -shm gone at the last close) too.
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let repo = SqliteRepository::open(&url(&path)).await.unwrap();
    write_something(repo.pool()).await;
    for file in companions(&path) {
        assert_eq!(
            format!("{:o}", mode(&file)),
            "600",
            "{} after reopening",
            file.display()
        );
    }
}

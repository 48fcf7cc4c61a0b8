#![allow(clippy::unwrap_used)]
//! The PostgreSQL store against a real server (`scripts/pg-setup` installs and starts one).
//! `DECNET_TEST_PG_URL` names a role that may create databases; each test creates its own
//! database (and a fresh schema per conformance check) and drops it at the end, so runs in
//! parallel never meet. An unreachable server fails the test: it never skips.

use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use decnet_core::testkit::{at, repository_conformance};
use decnet_core::traits::Repository;
use decnet_store::{redact, PgRepository};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions};
use sqlx::Connection;
use sqlx::Row;
use uuid::Uuid;

const DEFAULT_URL: &str = "postgres://decnet:decnet@127.0.0.1:5432/decnet_test";

fn admin_url() -> String {
    std::env::var("DECNET_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_URL.to_string())
}

/// `url` pointing at database `db`, with `query` (already encoded) appended.
fn with_database(url: &str, db: &str, query: &str) -> String {
    let (base, old_query) = url.split_once('?').unwrap_or((url, ""));
    let (scheme, rest) = base.split_once("://").unwrap();
    let authority = rest.split_once('/').map_or(rest, |(a, _)| a);
    let mut params: Vec<&str> = old_query.split('&').filter(|p| !p.is_empty()).collect();
    params.extend(query.split('&').filter(|p| !p.is_empty()));
    let mut out = format!("{scheme}://{authority}/{db}");
    if !params.is_empty() {
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

/// A database of this test's own: its name and URL. [`with_test_db`] creates and drops it.
#[derive(Debug, Clone)]
struct TestDb {
    name: String,
    url: String,
}

impl TestDb {
    /// A URL whose connections work in `schema` (created first).
    async fn schema_url(&self, schema: &str) -> String {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect(&self.url)
            .await
            .unwrap();
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        with_database(
            &self.url,
            &self.name,
            &format!("options=-c%20search_path%3D{schema}"),
        )
    }
}

/// Runs `test` against a fresh database and drops the database afterwards, also when the
/// test fails.
async fn with_test_db<F, Fut>(test: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let admin_url = admin_url();
    let options = PgConnectOptions::from_str(&admin_url).unwrap();
    let mut admin = PgConnection::connect_with(&options)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is unreachable at {} ({e}): run scripts/pg-setup, or set \
                 DECNET_TEST_PG_URL to a role that may create databases",
                redact(&admin_url)
            )
        });
    let name = format!("decnet_t_{}", Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("create test database {name}: {e}"));
    let db = TestDb {
        url: with_database(&admin_url, &name, ""),
        name: name.clone(),
    };

    let outcome = tokio::spawn(test(db)).await;

    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("drop test database {name}: {e}"));
    admin.close().await.unwrap();
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

#[test]
fn urls_point_at_the_test_database() {
    assert_eq!(
        with_database(DEFAULT_URL, "x", ""),
        "postgres://decnet:decnet@127.0.0.1:5432/x"
    );
    assert_eq!(
        with_database("postgres://u@h/db?sslmode=disable", "x", "options=a"),
        "postgres://u@h/x?sslmode=disable&options=a"
    );
    assert_eq!(with_database("postgres://u@h", "x", ""), "postgres://u@h/x");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_passes_the_conformance_suite() {
    with_test_db(|db| async move {
        let n = Arc::new(AtomicUsize::new(0));
        repository_conformance(move || {
            let db = db.clone();
            let schema = format!("check_{}", n.fetch_add(1, Ordering::SeqCst));
            async move {
                let url = db.schema_url(&schema).await;
                decnet_store::open(&url).await.unwrap()
            }
        })
        .await;
    })
    .await;
}

/// Openers racing on one empty database all succeed (the migrator's advisory lock) and the
/// schema is applied once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_opens_migrate_once() {
    with_test_db(|db| async move {
        let url = db.schema_url("racing").await;
        let opens: Vec<_> = (0..4)
            .map(|_| {
                let url = url.clone();
                tokio::spawn(async move { PgRepository::open(&url).await.unwrap() })
            })
            .collect();
        let mut repos = Vec::new();
        for o in opens {
            repos.push(o.await.unwrap());
        }
        let applied: i64 = sqlx::query("SELECT count(*) FROM _sqlx_migrations")
            .fetch_one(repos[0].pool())
            .await
            .unwrap()
            .get(0);
        assert_eq!(
            applied, 3,
            "0001_init, 0002_cert_renewal and 0003_attack_events, once each"
        );
        repos[1].revoke_fingerprint("ab", at(0)).await.unwrap();
        assert!(repos[2].is_revoked("ab").await.unwrap());
        for r in repos {
            r.pool().close().await;
        }
    })
    .await;
}

/// `open` picks the PostgreSQL store by the URL's scheme.
#[tokio::test]
async fn the_url_scheme_picks_postgres() {
    with_test_db(|db| async move {
        let repo: Arc<dyn Repository> = decnet_store::open(&db.url).await.unwrap();
        repo.revoke_fingerprint("cd", at(1)).await.unwrap();
        assert!(repo.is_revoked("cd").await.unwrap());
    })
    .await;
}

//! One migration set per backend, embedded in the binary (`migrations/sqlite/*.sql`,
//! `migrations/postgres/*.sql`) and run at open by sqlx's `Migrator`, which records applied
//! versions and checksums in `_sqlx_migrations` (and takes an advisory lock on PostgreSQL).
//!
//! The files are listed here by hand rather than with `sqlx::migrate!`, which would need sqlx's
//! `macros` feature; a test checks that every file in each directory is listed.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};

/// `(version, description, sql)`, in version order.
type Set = &'static [(i64, &'static str, &'static str)];

pub(crate) const SQLITE: Set = &[
    (
        1,
        "init",
        include_str!("../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "cert_renewal",
        include_str!("../migrations/sqlite/0002_cert_renewal.sql"),
    ),
    (
        3,
        "attack_events",
        include_str!("../migrations/sqlite/0003_attack_events.sql"),
    ),
];

pub(crate) const POSTGRES: Set = &[
    (
        1,
        "init",
        include_str!("../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "cert_renewal",
        include_str!("../migrations/postgres/0002_cert_renewal.sql"),
    ),
    (
        3,
        "attack_events",
        include_str!("../migrations/postgres/0003_attack_events.sql"),
    ),
];

/// A migration set compiled into the binary.
#[derive(Debug)]
struct Embedded(Set);

impl MigrationSource<'static> for Embedded {
    fn resolve(
        self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 'static>> {
        let migrations = self
            .0
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    Cow::Borrowed(description),
                    MigrationType::Simple,
                    Cow::Borrowed(sql),
                    false,
                )
            })
            .collect();
        Box::pin(async move { Ok(migrations) })
    }
}

/// The migrator of one set.
pub(crate) async fn migrator(set: Set) -> Result<Migrator, sqlx::migrate::MigrateError> {
    Migrator::new(Embedded(set)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_dir(dir: &str, set: Set) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        let mut files: Vec<String> = std::fs::read_dir(&path)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        files.sort();
        let listed: Vec<String> = set
            .iter()
            .map(|(v, d, _)| format!("{v:04}_{d}.sql"))
            .collect();
        assert_eq!(files, listed, "{dir}: every file is listed, in order");
        for (i, (v, _, sql)) in set.iter().enumerate() {
            assert_eq!(*v, i as i64 + 1, "{dir}: versions count from 1");
            let on_disk = std::fs::read_to_string(path.join(&files[i])).unwrap();
            assert_eq!(&on_disk, sql);
        }
    }

    #[test]
    fn every_migration_file_is_embedded() {
        check_dir("migrations/sqlite", SQLITE);
        check_dir("migrations/postgres", POSTGRES);
    }

    #[test]
    fn both_backends_have_the_same_versions() {
        let versions = |set: Set| set.iter().map(|(v, d, _)| (*v, *d)).collect::<Vec<_>>();
        assert_eq!(versions(SQLITE), versions(POSTGRES));
    }
}

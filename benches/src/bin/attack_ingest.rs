//! Master ingest rate of attacker events (issue 11 benchmark): `Repository::insert_attack_events`
//! in batches of 1,000 (the `POST /swarm/events` bound) into a fresh SQLite file and a fresh
//! PostgreSQL database, then one page query and the attacker profiles over what was stored.
//!
//! `cargo run --release -p decnet-benches --bin attack_ingest -- [--events N]`
//! (PostgreSQL from `DECNET_TEST_PG_URL`, as the store's tests; `scripts/pg-setup` starts it).

use std::time::Instant;

use clap::Parser;
use decnet_core::model::attack::{
    new_event_id, AttackDetails, AttackEvent, AttackKind, AttackQuery, Transport,
};
use decnet_core::traits::Repository;

#[derive(Debug, Parser)]
struct Args {
    /// Events to store per backend.
    #[arg(long, default_value_t = 100_000)]
    events: usize,
    /// Skip PostgreSQL.
    #[arg(long)]
    no_postgres: bool,
}

fn events(n: usize) -> Vec<AttackEvent> {
    (0..n)
        .map(|i| AttackEvent {
            v: 1,
            id: new_event_id(),
            ts: chrono::Utc::now(),
            host: "3f2c0a4e-0000-4000-8000-000000000001".into(),
            decky: format!("decky-{:02}", i % 20),
            service: ["ssh", "http", "smb", "mysql"][i % 4].into(),
            protocol: Transport::Tcp,
            src_ip: format!("10.{}.{}.{}", (i / 65536) % 256, (i / 256) % 256, i % 256)
                .parse()
                .expect("ip"),
            src_port: 40000 + (i % 20000) as u16,
            dst_ip: Some("10.0.0.20".parse().expect("ip")),
            dst_port: 22,
            session: new_event_id(),
            stream: new_event_id(),
            seq: i as u64 + 1,
            kind: [
                AttackKind::Connect,
                AttackKind::Auth,
                AttackKind::Command,
                AttackKind::Disconnect,
            ][i % 4],
            details: AttackDetails {
                username: Some(format!("user{}", i % 50)),
                password: Some(format!("pass{i}")),
                ..AttackDetails::default()
            },
        })
        .collect()
}

async fn run(name: &str, repo: &dyn Repository, all: &[AttackEvent]) {
    let t = Instant::now();
    for chunk in all.chunks(1000) {
        repo.insert_attack_events(chunk).await.expect("insert");
    }
    let secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let again = repo
        .insert_attack_events(&all[..1000])
        .await
        .expect("again");
    let dup_ms = t.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(again, 0);
    let t = Instant::now();
    let page = repo
        .attack_events(&AttackQuery {
            service: Some("ssh".into()),
            limit: 1000,
            ..AttackQuery::default()
        })
        .await
        .expect("page");
    let page_ms = t.elapsed().as_secs_f64() * 1000.0;
    let t = Instant::now();
    let profiles = repo.attacker_profiles().await.expect("profiles");
    let prof_ms = t.elapsed().as_secs_f64() * 1000.0;
    println!(
        "{name:<10} {} events in {secs:.2} s = {:>8.0} events/s; a batch of 1000 again {dup_ms:.1} ms; a page of {} {page_ms:.1} ms; {} profiles {prof_ms:.0} ms",
        all.len(),
        all.len() as f64 / secs,
        page.len(),
        profiles.len()
    );
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let all = events(args.events);
    let dir = tempfile::tempdir().expect("tmp");
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let repo = decnet_store::open(&url).await.expect("sqlite");
    run("sqlite", repo.as_ref(), &all).await;
    if args.no_postgres {
        return;
    }
    let admin = std::env::var("DECNET_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://decnet:decnet@127.0.0.1:5432/decnet_test".into());
    let db = format!("bench_attacks_{}", std::process::id());
    let base = admin
        .rsplit_once('/')
        .map_or(admin.as_str(), |(b, _)| b)
        .to_string();
    let status = std::process::Command::new("su")
        .args([
            "postgres",
            "-c",
            &format!("psql -qc 'CREATE DATABASE {db} OWNER decnet'"),
        ])
        .status()
        .expect("psql");
    assert!(status.success(), "create the bench database");
    let repo = decnet_store::open(&format!("{base}/{db}"))
        .await
        .expect("postgres db");
    run("postgres", repo.as_ref(), &all).await;
    drop(repo);
    let _ = std::process::Command::new("su")
        .args(["postgres", "-c", &format!("psql -qc 'DROP DATABASE {db}'")])
        .status();
}

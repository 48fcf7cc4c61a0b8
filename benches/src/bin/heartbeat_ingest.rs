#![allow(clippy::unwrap_used)] // a load generator aborts on a broken fixture
//! `heartbeat_ingest`: how many agent heartbeats the master ingests per second, and at what
//! latency, on persistent mutual-TLS connections; and the resident memory of a real
//! `decnet serve` with 1,000 enrolled hosts. Figures and how to read them: BENCHMARKS.md,
//! "Master: heartbeat ingest".
//!
//! **Load phases** (`--stores sqlite,postgres`, the default without `--rss-hosts`). The master
//! is the real one (`decnet_master_bin::master::run::start`: the operator API, the swarm
//! endpoint over `decnet-web`'s rustls server, the background loop), started in-process on
//! 127.0.0.1:0 listeners on its own 2-worker tokio runtime (the runtime `decnet serve`
//! builds), with the default `MasterSettings` (heartbeat interval 30 s), a fresh PKI in a
//! temporary data dir and a fresh store: SQLite in the data dir (WAL), or a freshly created
//! PostgreSQL database. The load generator runs on a second 2-worker runtime in the same
//! process, so the master, the load generator (and PostgreSQL) share the machine's 2 vCPUs:
//! every figure includes the client's share of the CPU.
//!
//! Set-up (untimed): an admin API token is inserted in the store; each of `--hosts` simulated
//! hosts gets an enrollment token from `POST /api/v1/swarm/enroll-tokens` and enrolls through
//! `POST /swarm/enroll` with its own key and CSR (the enrollment rate limit, 10 a minute per
//! source address, is respected by enrolling from 127.1.0.x source addresses, 10 hosts each).
//! Its `--deckies` shards (state `running`) are inserted in the store. Each host then owns one
//! reqwest client built by the agent's own `transport::master_client` (its certificate as
//! identity, the master pinned by fingerprint) and so one persistent HTTP/1.1 connection; the
//! run checks in /proc/net/tcp that every phase ran on the same connections.
//!
//! The heartbeat body is the agent's `HeartbeatBody`: `AgentStatus` deployed (swarm mode) with
//! the host's decky configs, the runtime map (every service `running`), `taken_at` = the
//! moment of sending, `in_flight` and `lifecycle` empty. It is serialized once per host and
//! only `taken_at` is spliced in per request, so the generator spends little CPU.
//!
//! * **prime**: every host sends its first heartbeat (all at once): the master writes the
//!   host's `last_heartbeat` and reads its 50 shards (`observe_shard`: unchanged), filling its
//!   caches. Reported apart.
//! * **sustained**: every host sends heartbeats back to back (closed loop, one request in
//!   flight per host) for `--warmup` s unrecorded, then `--seconds` s recorded. Nothing
//!   changes, so the master's in-memory caches skip every store write.
//! * **changing**: the same, but every 10th heartbeat of a host flips one of its deckies'
//!   runtime (running → not running on one flip, back to running on the next, then the next
//!   decky), so 1 heartbeat in 10 carries a state change the master writes to the store
//!   (`observe_shard`: read + compare-and-set update) and publishes on its bus. The bus events
//!   are counted and must match the flips.
//! * **paced**, **paced changing** (`--rate`, default 1,000/s; 0 skips them): the same bodies
//!   in an open loop: each host on a fixed, staggered schedule (`hosts / rate` apart), latency
//!   counted from the scheduled send time, so a late answer is also charged to the next one.
//!
//! The per-host flip state carries over from phase to phase, so only flips write.
//!
//! A sample is send → the 204 fully read. Throughput is the requests started in the recorded
//! window over its length. CPU time is read from /proc per thread group (master runtime, load
//! generator, SQLite worker threads) and machine-wide from /proc/stat ("other" is everything
//! else on the machine: PostgreSQL, and whatever else was running).
//!
//! **RSS mode** (`--rss-hosts N`): `decnet init --data-dir D` then the real `decnet serve`
//! (target/release/decnet; build with `cargo build --release -p decnet-master-bin`) on
//! 127.0.0.1 ports; N hosts get tokens from the API with the admin token of `D/admin.token`,
//! enroll with CSRs, get `--rss-deckies` shards each (inserted in the SQLite store), and send
//! one heartbeat each on their own connection, which stays open. VmRSS/VmHWM of the serve
//! process are read from `/proc/<pid>/status` idle, after enrollment, with the N connections
//! open, and after they closed; then SIGTERM, and the process must exit 0.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use clap::{Parser, ValueEnum};
use decnet_benches::latency::{ms, summarize, Summary};
use decnet_benches::proc_status::{mib, read_mem, Mem};
use decnet_core::model::{
    AgentStatus, ApiToken, DeckyConfig, DeckyName, DeckyRuntime, EnrollTokenText, HeartbeatBody,
    HostUuid, Mode, Role, RuntimeMap, Shard, ShardState,
};
use decnet_core::traits::{Repository, SystemClock};
use decnet_master_bin::master::layout::{new_api_token, token_hash, DataDir};
use decnet_master_bin::master::run::{self, MasterConfig, RunningMaster};
use decnet_master_bin::master::state::MasterSettings;
use decnet_tls::pki::{generate_key_and_csr, write_private, Bundle, Ca, LeafSpec};
use futures_util::stream::{self, StreamExt};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

/// Heartbeat ingest of the master (in-process, SQLite and PostgreSQL) and the RSS of a real
/// `decnet serve` with many enrolled hosts.
#[derive(Debug, Parser)]
#[command(name = "heartbeat_ingest")]
struct Args {
    /// Simulated hosts, one persistent mTLS connection each.
    #[arg(long, default_value_t = 100)]
    hosts: usize,
    /// Recorded seconds of each phase.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Unrecorded seconds at the start of each phase.
    #[arg(long, default_value_t = 3)]
    warmup: u64,
    /// Deckies per host (shards in the store, entries in every heartbeat).
    #[arg(long, default_value_t = 50)]
    deckies: usize,
    /// Stores of the load phases (default: sqlite,postgres; none with --rss-hosts alone).
    #[arg(long, value_enum, value_delimiter = ',')]
    stores: Option<Vec<StoreKind>>,
    /// Administrative connection to PostgreSQL; a fresh database is created (and dropped)
    /// through it for each run.
    #[arg(
        long,
        env = "DECNET_TEST_PG_URL",
        default_value = "postgres://decnet:decnet@127.0.0.1:5432/decnet_test"
    )]
    pg_url: String,
    /// Open-loop phases at this total rate (heartbeats/s), after the closed-loop ones; 0
    /// skips them.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// RSS mode: enroll this many hosts into a real `decnet serve` and read its memory.
    #[arg(long)]
    rss_hosts: Option<usize>,
    /// Deckies per host in RSS mode.
    #[arg(long, default_value_t = 3)]
    rss_deckies: usize,
    /// The `decnet` binary for RSS mode (default: next to this executable).
    #[arg(long)]
    decnet_bin: Option<PathBuf>,
    /// Also write the figures as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum StoreKind {
    Sqlite,
    Postgres,
}

impl StoreKind {
    fn name(self) -> &'static str {
        match self {
            StoreKind::Sqlite => "SQLite",
            StoreKind::Postgres => "PostgreSQL",
        }
    }
}

const TARGET_RPS: f64 = 1000.0;
const TARGET_P99_US: u64 = 50_000;
const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");
/// Agent API address given to every enrollment token (never contacted).
const AGENT_ADDRESS: &str = "127.0.0.1:8765";

fn err<E: std::fmt::Display>(what: &str) -> impl Fn(E) -> String + '_ {
    move |e| format!("{what}: {e}")
}

// ---------------------------------------------------------------------------------------------
// Enrollment and the simulated hosts.

/// The source address of host `i`'s enrollment: 10 hosts per address (the master allows 10
/// attempts a minute per source address).
fn enroll_source(i: usize) -> IpAddr {
    let k = i / 10;
    IpAddr::V4(Ipv4Addr::new(127, 1, (k / 250) as u8, (k % 250 + 1) as u8))
}

fn host_name(i: usize) -> String {
    format!("bench-host-{i:04}")
}

/// What an enrollment returns to the worker.
struct Enrolled {
    uuid: HostUuid,
    bundle: Bundle,
    master_fingerprint: String,
}

/// An enrollment token from the operator API, then `/swarm/enroll` with a fresh key's CSR,
/// as `decnet-agent enroll` does.
async fn enroll(
    api: &reqwest::Client,
    api_url: &str,
    swarm_url: &str,
    admin: &str,
    i: usize,
) -> Result<Enrolled, String> {
    let name = host_name(i);
    let r = api
        .post(format!("{api_url}/api/v1/swarm/enroll-tokens"))
        .bearer_auth(admin)
        .json(&json!({"name": name, "address": AGENT_ADDRESS}))
        .send()
        .await
        .map_err(|e| format!("enroll token for {name}: {e:#}"))?;
    let status = r.status();
    let v: Value = r.json().await.map_err(|e| format!("{e:#}"))?;
    if status != 201 {
        return Err(format!("enroll token for {name}: {status} {v}"));
    }
    let token = v["token"]
        .as_str()
        .ok_or("no token in the answer")?
        .to_string();
    let ca_fp = EnrollTokenText::parse(&token)
        .map_err(|e| e.to_string())?
        .ca_fingerprint;
    let tls = decnet_tls::verify::enroll_client_config(&ca_fp).map_err(|e| e.to_string())?;
    let client = reqwest::Client::builder()
        .use_preconfigured_tls((*tls).clone())
        .local_address(enroll_source(i))
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    let (key_pem, csr) = generate_key_and_csr(&name).map_err(|e| e.to_string())?;
    let r = client
        .post(format!("{swarm_url}/swarm/enroll"))
        .json(&json!({"token": token, "csr_pem": csr}))
        .send()
        .await
        .map_err(|e| format!("enroll {name}: {e:#}"))?;
    let status = r.status();
    let v: Value = r.json().await.map_err(|e| format!("{e:#}"))?;
    if status != 200 {
        return Err(format!("enroll {name}: {status} {v}"));
    }
    let field = |k: &str| {
        v[k].as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("enroll {name}: no {k} in {v}"))
    };
    Ok(Enrolled {
        uuid: field("host_uuid")?.parse().map_err(|e| format!("{e}"))?,
        bundle: Bundle {
            ca_pem: field("ca_pem")?,
            cert_pem: field("cert_pem")?,
            key_pem,
        },
        master_fingerprint: field("master_fingerprint")?,
    })
}

async fn enroll_all(
    n: usize,
    api_url: &str,
    swarm_url: &str,
    admin: &str,
) -> Result<Vec<Enrolled>, String> {
    let api = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    let mut out: Vec<(usize, Enrolled)> = stream::iter(0..n)
        .map(|i| {
            let api = &api;
            async move {
                enroll(api, api_url, swarm_url, admin, i)
                    .await
                    .map(|e| (i, e))
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    out.sort_by_key(|(i, _)| *i);
    Ok(out.into_iter().map(|(_, e)| e).collect())
}

const SERVICES: [&str; 7] = ["ssh", "http", "smb", "ftp", "rdp", "mysql", "telnet"];

/// Host `i`'s deckies: fleet-unique names and addresses, 3 services each, full persona
/// fields as the planner writes them.
fn deckies_of(i: usize, n: usize, host: HostUuid) -> Vec<DeckyConfig> {
    (0..n)
        .map(|j| DeckyConfig {
            name: DeckyName::new(format!("h{i:04}-decky-{j:02}")).unwrap(),
            ip: Ipv4Addr::new(10, (i >> 8) as u8, (i & 0xff) as u8, (10 + j % 240) as u8),
            services: (0..3)
                .map(|s| SERVICES[(j + s) % SERVICES.len()].to_string())
                .collect(),
            distro: "debian".into(),
            base_image: "debian:bookworm-slim".into(),
            build_base: "debian:bookworm-slim".into(),
            hostname: format!("SRV-WEB-{j:02}"),
            archetype: Some("linux-server".into()),
            service_config: Default::default(),
            nmap_os: Default::default(),
            mutate_interval: Some(30),
            last_mutated: 1_764_000_000.25,
            last_login_attempt: 0.0,
            host_uuid: Some(host),
        })
        .collect()
}

/// Shards of these deckies, state `running`, as the lifecycle runner leaves them.
async fn insert_shards(
    repo: &dyn Repository,
    host: HostUuid,
    deckies: &[DeckyConfig],
) -> Result<(), String> {
    let now = Utc::now();
    for d in deckies {
        repo.upsert_shard(&Shard {
            host_uuid: host,
            decky_name: d.name.clone(),
            decky: d.clone(),
            state: ShardState::Running,
            last_error: None,
            last_seen: None,
            updated_at: now,
        })
        .await
        .map_err(|e| format!("upsert shard: {e}"))?;
    }
    Ok(())
}

/// A serialized heartbeat body with a hole for `taken_at`.
struct BodyTemplate {
    head: Vec<u8>,
    tail: Vec<u8>,
}

const SENTINEL: &str = "2000-01-01T00:00:00Z";

impl BodyTemplate {
    /// The agent's heartbeat: deployed, every service running except those of `down`.
    fn new(host: HostUuid, deckies: &[DeckyConfig], down: Option<usize>) -> BodyTemplate {
        let mut runtime = RuntimeMap::new();
        for (j, d) in deckies.iter().enumerate() {
            let state = if down == Some(j) { "exited" } else { "running" };
            runtime.insert(
                d.name.to_string(),
                DeckyRuntime::from_services(
                    d.services
                        .iter()
                        .map(|s| (s.clone(), state.to_string()))
                        .collect(),
                ),
            );
        }
        let body = HeartbeatBody {
            host_uuid: host,
            agent_version: Some(AGENT_VERSION.into()),
            wire_version: Some(decnet_core::model::WIRE_VERSION),
            status: AgentStatus {
                deployed: true,
                mode: Some(Mode::Swarm),
                compose_path: Some("/var/lib/decnet/state/decnet-compose.yml".into()),
                deckies: deckies.to_vec(),
                runtime: Some(runtime),
                taken_at: SENTINEL.parse().unwrap(),
                in_flight: vec![],
                state_error: None,
            },
            lifecycle: vec![],
        };
        let bytes = serde_json::to_vec(&body).unwrap();
        let needle = format!("\"taken_at\":\"{SENTINEL}\"");
        let at = bytes
            .windows(needle.len())
            .position(|w| w == needle.as_bytes())
            .expect("taken_at serialized as RFC 3339")
            + needle.len()
            - SENTINEL.len()
            - 1;
        BodyTemplate {
            head: bytes[..at].to_vec(),
            tail: bytes[at + SENTINEL.len()..].to_vec(),
        }
    }

    fn render(&self, taken_at: DateTime<Utc>) -> Vec<u8> {
        let t = taken_at.to_rfc3339_opts(SecondsFormat::Micros, true);
        let mut v = Vec::with_capacity(self.head.len() + t.len() + self.tail.len());
        v.extend_from_slice(&self.head);
        v.extend_from_slice(t.as_bytes());
        v.extend_from_slice(&self.tail);
        v
    }
}

/// One simulated agent.
struct SimHost {
    uuid: HostUuid,
    client: reqwest::Client,
    deckies: Vec<DeckyConfig>,
    steady: BodyTemplate,
    /// Carried from phase to phase: heartbeats sent, flips made, and the decky reported
    /// down (if any).
    state: std::sync::Mutex<(usize, usize, Option<usize>)>,
}

/// POSTs one heartbeat; the status once the answer is fully read.
async fn beat(client: &reqwest::Client, url: &str, body: Vec<u8>) -> Result<u16, String> {
    let r = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| format!("{e:#}"))?;
    let status = r.status().as_u16();
    r.bytes().await.map_err(|e| format!("{e:#}"))?;
    Ok(status)
}

// ---------------------------------------------------------------------------------------------
// Measuring.

fn summary_json(s: &Summary) -> Value {
    json!({"n": s.n, "mean_us": s.mean, "p50_us": s.p50, "p90_us": s.p90, "p99_us": s.p99,
           "max_us": s.max})
}

/// Remote ports of the established connections whose local port is `port` (the server side
/// of every connection to it): the identity of the open connections.
fn connections_to(port: u16) -> BTreeSet<u16> {
    let text = std::fs::read_to_string("/proc/self/net/tcp").unwrap_or_default();
    let port_of = |a: &str| {
        a.rsplit(':')
            .next()
            .and_then(|p| u16::from_str_radix(p, 16).ok())
    };
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            (f.len() >= 4 && f[3] == "01" && port_of(f[1]) == Some(port))
                .then(|| port_of(f[2]))
                .flatten()
        })
        .collect()
}

/// CPU ticks (utime + stime) of this process's threads, by group.
fn thread_ticks() -> BTreeMap<&'static str, u64> {
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for t in dir.flatten() {
        let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = &stat[open + 1..close];
        let f: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        // After the comm: state is field 3, utime 14, stime 15 (1-based over the whole line).
        let ticks = f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
            + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let group = if comm.starts_with("master") {
            "master"
        } else if comm.starts_with("load") {
            "load"
        } else if comm.starts_with("sqlx") {
            "sqlite"
        } else {
            "rest"
        };
        *out.entry(group).or_default() += ticks;
    }
    out
}

/// Machine-wide busy CPU ticks (all but idle and iowait) from /proc/stat.
fn machine_busy_ticks() -> u64 {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = text.lines().next() else {
        return 0;
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest is counted in user).
    v.iter().take(8).sum::<u64>() - v.get(3).copied().unwrap_or(0) - v.get(4).copied().unwrap_or(0)
}

#[derive(Debug, Clone, Copy)]
struct CpuSnap {
    threads: [u64; 4],
    machine: u64,
    at: Instant,
}

fn cpu_snap() -> CpuSnap {
    let t = thread_ticks();
    let g = |k| t.get(k).copied().unwrap_or(0);
    CpuSnap {
        threads: [g("master"), g("load"), g("sqlite"), g("rest")],
        machine: machine_busy_ticks(),
        at: Instant::now(),
    }
}

/// CPU used between two snapshots, in cores (CPU-seconds per second), assuming USER_HZ = 100.
#[derive(Debug, Clone, Copy, Default)]
struct CpuUse {
    master: f64,
    load: f64,
    sqlite: f64,
    other: f64,
    machine: f64,
}

fn cpu_use(a: &CpuSnap, b: &CpuSnap) -> CpuUse {
    let secs = b.at.duration_since(a.at).as_secs_f64().max(1e-9);
    let c = |x: u64, y: u64| y.saturating_sub(x) as f64 / 100.0 / secs;
    let master = c(a.threads[0], b.threads[0]);
    let load = c(a.threads[1], b.threads[1]);
    let sqlite = c(a.threads[2], b.threads[2]);
    let rest = c(a.threads[3], b.threads[3]);
    let machine = c(a.machine, b.machine);
    CpuUse {
        master,
        load: load + rest,
        sqlite,
        other: (machine - master - load - rest - sqlite).max(0.0),
        machine,
    }
}

fn cpu_json(c: &CpuUse) -> Value {
    json!({"master_runtime": c.master, "load_generator": c.load, "sqlite_workers": c.sqlite,
           "other_processes": c.other, "machine_busy": c.machine})
}

#[derive(Debug, Default)]
struct PhaseResult {
    name: &'static str,
    rate: Option<f64>,
    samples: Vec<u64>,
    statuses: BTreeMap<u16, usize>,
    errors: usize,
    first_error: Option<String>,
    flips: u64,
    events: u64,
    /// Hosts whose last heartbeat reported one decky not running.
    ended_down: usize,
    window: Duration,
    cpu: CpuUse,
    same_connections: bool,
}

impl PhaseResult {
    fn rps(&self) -> f64 {
        self.samples.len() as f64 / self.window.as_secs_f64().max(1e-9)
    }
    fn label(&self, hosts: usize) -> String {
        match self.rate {
            None => format!("{} (closed loop, {hosts} in flight)", self.name),
            Some(r) => format!("{} (open loop, {r:.0}/s scheduled)", self.name),
        }
    }
    /// ≥ 1,000/s (closed loop: achieved; open loop: scheduled at ≥ 1,000/s and kept up
    /// within 2 %) and p99 < 50 ms, every answer a 204 on the same connections.
    fn target_met(&self) -> bool {
        let fast_enough = match self.rate {
            None => self.rps() >= TARGET_RPS,
            Some(r) => r >= TARGET_RPS && self.rps() >= 0.98 * r,
        };
        self.ok() && fast_enough && summarize(&self.samples).p99 < TARGET_P99_US
    }
    fn ok(&self) -> bool {
        self.errors == 0 && self.statuses.keys().all(|s| *s == 204) && self.same_connections
    }
}

/// How a phase sends.
#[derive(Debug, Clone, Copy)]
struct PhaseSpec {
    name: &'static str,
    /// Every 10th heartbeat of a host flips one decky.
    changing: bool,
    /// `None`: closed loop (back to back). `Some(r)`: open loop, `r` heartbeats/s in all,
    /// each host on its own fixed schedule (staggered); latency counts from the scheduled
    /// time, so a late answer also delays (and is charged to) the next heartbeat.
    rate: Option<f64>,
}

/// One phase: every host until the end; samples of requests sent (or scheduled) in the
/// recorded window.
async fn run_phase(
    hosts: &[Arc<SimHost>],
    url: &str,
    port: u16,
    spec: PhaseSpec,
    warmup: Duration,
    window: Duration,
) -> PhaseResult {
    let PhaseSpec {
        name,
        changing,
        rate,
    } = spec;
    let n_hosts = hosts.len();
    let period = rate.map(|r| Duration::from_secs_f64(n_hosts as f64 / r));
    let before = connections_to(port);
    let start = Instant::now();
    let record_from = start + warmup;
    let end = record_from + window;
    let flips = Arc::new(AtomicU64::new(0));
    let cpu_at = tokio::spawn(async move {
        tokio::time::sleep_until(record_from.into()).await;
        let a = cpu_snap();
        tokio::time::sleep_until(end.into()).await;
        (a, cpu_snap())
    });
    let mut tasks = Vec::with_capacity(hosts.len());
    for (idx, h) in hosts.iter().cloned().enumerate() {
        let url = url.to_string();
        let flips = flips.clone();
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
            let mut errors = 0usize;
            let mut first_error = None;
            let (mut k, mut f, mut down) = *h.state.lock().unwrap();
            let mut flipped: Option<BodyTemplate> =
                down.map(|j| BodyTemplate::new(h.uuid, &h.deckies, Some(j)));
            let mut next = period.map(|p| start + p.mul_f64(idx as f64 / n_hosts as f64));
            loop {
                if let Some(at) = next {
                    if at >= end {
                        break;
                    }
                    tokio::time::sleep_until(at.into()).await;
                } else if Instant::now() >= end {
                    break;
                }
                k += 1;
                let mut flip = false;
                if changing && k % 10 == 0 {
                    let j = (f / 2) % h.deckies.len();
                    down = (f % 2 == 0).then_some(j);
                    f += 1;
                    flipped = down.map(|j| BodyTemplate::new(h.uuid, &h.deckies, Some(j)));
                    flip = true;
                }
                let body = flipped.as_ref().unwrap_or(&h.steady).render(Utc::now());
                let t0 = next.unwrap_or_else(Instant::now);
                let r = beat(&h.client, &url, body).await;
                let us = u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX);
                if let (Some(at), Some(p)) = (next.as_mut(), period) {
                    *at += p;
                }
                match r {
                    Ok(s) => {
                        if s == 204 && flip {
                            flips.fetch_add(1, Ordering::Relaxed);
                        }
                        if t0 >= record_from {
                            samples.push(us);
                            *statuses.entry(s).or_default() += 1;
                        }
                    }
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e);
                    }
                }
            }
            *h.state.lock().unwrap() = (k, f, down);
            (samples, statuses, errors, first_error, down.is_some())
        }));
    }
    let mut out = PhaseResult {
        name,
        rate,
        window,
        ..PhaseResult::default()
    };
    for t in tasks {
        let (s, st, e, fe, down) = t.await.unwrap();
        out.ended_down += usize::from(down);
        out.samples.extend(s);
        for (k, v) in st {
            *out.statuses.entry(k).or_default() += v;
        }
        out.errors += e;
        if out.first_error.is_none() {
            out.first_error = fe;
        }
    }
    let (a, b) = cpu_at.await.unwrap();
    out.cpu = cpu_use(&a, &b);
    out.flips = flips.load(Ordering::Relaxed);
    let after = connections_to(port);
    out.same_connections = before.len() == hosts.len() && before == after;
    out
}

/// Counts the master's bus events (state changes) from now on.
fn count_events(running: &RunningMaster, rt: &tokio::runtime::Runtime) -> Arc<AtomicU64> {
    let n = Arc::new(AtomicU64::new(0));
    let mut rx = running.bus.subscribe();
    let c = n.clone();
    rt.spawn(async move {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            match rx.recv().await {
                Ok((_, ev)) => {
                    if ev.topic.ends_with(".state") {
                        c.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Err(RecvError::Lagged(k)) => {
                    c.fetch_add(k, Ordering::Relaxed);
                }
                Err(RecvError::Closed) => return,
            }
        }
    });
    n
}

// ---------------------------------------------------------------------------------------------
// Load phases on an in-process master.

fn write_pki(layout: &DataDir) -> Result<(), String> {
    let ca = Ca::generate("DECNET bench CA").map_err(|e| e.to_string())?;
    std::fs::write(layout.ca_cert(), ca.cert_pem()).map_err(|e| e.to_string())?;
    write_private(&layout.ca_key(), ca.key_pem().as_bytes()).map_err(|e| e.to_string())?;
    let m = ca
        .issue_keypair(&LeafSpec::master(vec![]))
        .map_err(|e| e.to_string())?;
    std::fs::write(layout.master_cert(), &m.cert_pem).map_err(|e| e.to_string())?;
    write_private(&layout.master_key(), m.key_pem.as_bytes()).map_err(|e| e.to_string())?;
    Ok(())
}

/// A fresh PostgreSQL database; dropped by [`drop_pg_database`].
async fn create_pg_database(admin_url: &str) -> Result<(String, String), String> {
    use sqlx::{Connection, Executor};
    let mut conn = sqlx::PgConnection::connect(admin_url)
        .await
        .map_err(|e| format!("PostgreSQL unreachable ({e}): run scripts/pg-setup"))?;
    let db = format!("decnet_hb_{}", uuid::Uuid::new_v4().simple());
    conn.execute(format!("CREATE DATABASE {db}").as_str())
        .await
        .map_err(|e| format!("create database: {e}"))?;
    let (base, _) = admin_url
        .rsplit_once('/')
        .ok_or("--pg-url must name a database")?;
    Ok((db.clone(), format!("{base}/{db}")))
}

async fn drop_pg_database(admin_url: &str, db: &str) {
    use sqlx::{Connection, Executor};
    if let Ok(mut conn) = sqlx::PgConnection::connect(admin_url).await {
        if let Err(e) = conn
            .execute(format!("DROP DATABASE {db} WITH (FORCE)").as_str())
            .await
        {
            eprintln!("heartbeat_ingest: drop database {db}: {e}");
        }
    }
}

struct StoreRun {
    store: StoreKind,
    body_bytes: usize,
    setup: Duration,
    prime: Summary,
    prime_wall: Duration,
    phases: Vec<PhaseResult>,
    heartbeats_counted: u64,
    degraded_in_store: usize,
    expected_degraded: usize,
}

fn run_store(args: &Args, store: StoreKind) -> Result<StoreRun, String> {
    let master_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("master")
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let load_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("load")
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let layout = DataDir::new(dir.path());
    write_pki(&layout)?;
    let pg = match store {
        StoreKind::Sqlite => None,
        StoreKind::Postgres => Some(load_rt.block_on(create_pg_database(&args.pg_url))?),
    };
    let url = pg
        .as_ref()
        .map_or_else(|| layout.default_db_url(), |(_, u)| u.clone());
    let result = run_on_master(args, store, &master_rt, &load_rt, layout, url);
    if let Some((db, _)) = &pg {
        // The master's pool is gone with its runtime's tasks; FORCE ends what is left.
        load_rt.block_on(drop_pg_database(&args.pg_url, db));
    }
    drop(load_rt);
    master_rt.shutdown_timeout(Duration::from_secs(5));
    result
}

/// Every simulated host holds one connection from 127.0.0.1, idle between phases: caps and
/// idle timeout well above what the run needs.
fn bench_limits(hosts: usize) -> decnet_web::ServeLimits {
    let cap = (hosts + 64).max(decnet_web::limits::DEFAULT_MAX_CONNECTIONS);
    decnet_web::ServeLimits {
        idle_timeout: Duration::from_secs(3600),
        max_connections: cap,
        max_connections_per_source: cap,
        ..decnet_web::ServeLimits::default()
    }
}

fn run_on_master(
    args: &Args,
    store: StoreKind,
    master_rt: &tokio::runtime::Runtime,
    load_rt: &tokio::runtime::Runtime,
    layout: DataDir,
    url: String,
) -> Result<StoreRun, String> {
    let t_setup = Instant::now();
    let shutdown = CancellationToken::new();
    // The master: its store pool and server live on the master's runtime.
    let (running, repo, admin) = master_rt.block_on(async {
        let repo = decnet_store::open(&url).await.map_err(err("store"))?;
        let admin = new_api_token();
        repo.insert_api_token(&ApiToken {
            id: uuid::Uuid::new_v4(),
            hash: token_hash(&admin),
            role: Role::Admin,
            created_at: Utc::now(),
        })
        .await
        .map_err(|e| format!("admin token: {e}"))?;
        let cfg = MasterConfig {
            data_dir: layout.clone(),
            db_url: Some(url.clone()),
            api_bind: "127.0.0.1:0".parse().unwrap(),
            swarm_bind: "127.0.0.1:0".parse().unwrap(),
            settings: MasterSettings {
                advertise: String::new(),
                serve_limits: bench_limits(args.hosts),
                ..MasterSettings::default()
            },
        };
        let api = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let swarm = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let deps = run::MasterDeps {
            repo: repo.clone(),
            clock: Arc::new(SystemClock),
            local: None,
            hostnet: Arc::new(decnet_net::NetlinkHostNetwork::new()),
            local_events: None,
        };
        let running = run::start(&cfg, deps, api, swarm, shutdown.clone())
            .await
            .map_err(|e| format!("master: {e}"))?;
        Ok::<_, String>((running, repo, admin))
    })?;
    let api_url = running.api_url.clone();
    let swarm_url = running.swarm_url.clone();
    let port = running.swarm_addr.port();
    println!(
        "\n== {} store: master in-process at {swarm_url} (API {api_url}), {} hosts x {} deckies",
        store.name(),
        args.hosts,
        args.deckies
    );

    let master = master_rt.handle().clone();
    let out = load_rt.block_on(async {
        let enrolled = enroll_all(args.hosts, &api_url, &swarm_url, &admin).await?;
        let mut hosts = Vec::with_capacity(enrolled.len());
        for (i, e) in enrolled.into_iter().enumerate() {
            let deckies = deckies_of(i, args.deckies, e.uuid);
            let client = decnet_agent::transport::master_client(&e.bundle, &e.master_fingerprint)
                .map_err(|e| e.to_string())?;
            hosts.push(Arc::new(SimHost {
                uuid: e.uuid,
                client,
                steady: BodyTemplate::new(e.uuid, &deckies, None),
                deckies,
                state: std::sync::Mutex::new((0, 0, None)),
            }));
        }
        // The store's pool belongs to the master's runtime: insert from there.
        let shards: Vec<(HostUuid, Vec<DeckyConfig>)> =
            hosts.iter().map(|h| (h.uuid, h.deckies.clone())).collect();
        let repo2 = repo.clone();
        master
            .spawn(async move {
                stream::iter(shards)
                    .map(move |(u, d)| {
                        let repo = repo2.clone();
                        async move { insert_shards(repo.as_ref(), u, &d).await }
                    })
                    .buffer_unordered(8)
                    .collect::<Vec<_>>()
                    .await
                    .into_iter()
                    .collect::<Result<Vec<()>, String>>()
            })
            .await
            .map_err(|e| e.to_string())??;
        let setup = t_setup.elapsed();
        let body_bytes = hosts[0].steady.render(Utc::now()).len();
        println!(
            "set-up {:.1} s (PKI, store, {} enrollments, {} shards); heartbeat body {} bytes",
            setup.as_secs_f64(),
            hosts.len(),
            hosts.len() * args.deckies,
            body_bytes
        );

        // Prime: every host's first heartbeat, all at once; opens the connections.
        let hb_url = format!("{swarm_url}/swarm/heartbeat");
        let t0 = Instant::now();
        let prime: Vec<Result<(u16, u64), String>> =
            futures_util::future::join_all(hosts.iter().map(|h| {
                let body = h.steady.render(Utc::now());
                let url = hb_url.clone();
                async move {
                    let t = Instant::now();
                    let s = beat(&h.client, &url, body).await?;
                    Ok((s, t.elapsed().as_micros() as u64))
                }
            }))
            .await;
        let prime_wall = t0.elapsed();
        let mut prime_us = Vec::new();
        for p in prime {
            let (s, us) = p?;
            if s != 204 {
                return Err(format!("first heartbeat answered {s}"));
            }
            prime_us.push(us);
        }
        let prime = summarize(&prime_us);
        let open = connections_to(port).len();
        if open != hosts.len() {
            return Err(format!(
                "{open} connections open to the swarm port after the first heartbeats, expected {}",
                hosts.len()
            ));
        }
        Ok::<_, String>((hosts, setup, body_bytes, prime, prime_wall, hb_url))
    });
    let (hosts, setup, body_bytes, prime, prime_wall, hb_url) = match out {
        Ok(o) => o,
        Err(e) => {
            shutdown.cancel();
            master_rt.block_on(running.join());
            return Err(e);
        }
    };
    let warmup = Duration::from_secs(args.warmup);
    let window = Duration::from_secs(args.seconds);
    let mut phases = Vec::new();
    let events = count_events(&running, master_rt);
    let rate = (args.rate > 0.0).then_some(args.rate);
    let mut specs = vec![
        PhaseSpec {
            name: "sustained",
            changing: false,
            rate: None,
        },
        PhaseSpec {
            name: "changing",
            changing: true,
            rate: None,
        },
    ];
    if rate.is_some() {
        specs.push(PhaseSpec {
            name: "paced",
            changing: false,
            rate,
        });
        specs.push(PhaseSpec {
            name: "paced changing",
            changing: true,
            rate,
        });
    }
    for spec in specs {
        let seen = events.load(Ordering::Relaxed);
        let mut p = load_rt.block_on(run_phase(&hosts, &hb_url, port, spec, warmup, window));
        // Let the counter see the last events.
        std::thread::sleep(Duration::from_millis(200));
        p.events = events.load(Ordering::Relaxed) - seen;
        print_phase(&p, hosts.len());
        phases.push(p);
    }

    // What the store holds now: the deckies whose last flip was "down" are degraded.
    let shards = master_rt
        .block_on(repo.shards(None))
        .map_err(|e| format!("shards: {e}"))?;
    let degraded_in_store = shards
        .iter()
        .filter(|s| s.state == ShardState::Degraded)
        .count();
    let heartbeats_counted = running.master.metrics.heartbeats_received.get();
    let expected_degraded = phases.last().map_or(0, |p| p.ended_down);
    drop(hosts);
    shutdown.cancel();
    master_rt.block_on(running.join());
    Ok(StoreRun {
        store,
        body_bytes,
        setup,
        prime,
        prime_wall,
        phases,
        heartbeats_counted,
        degraded_in_store,
        expected_degraded,
    })
}

fn print_phase(p: &PhaseResult, hosts: usize) {
    let s = summarize(&p.samples);
    println!(
        "  {}: {:.0} heartbeats/s over {:.0} s (n={}), latency p50 {} p90 {} p99 {} max {} mean {}",
        p.label(hosts),
        p.rps(),
        p.window.as_secs_f64(),
        s.n,
        ms(s.p50),
        ms(s.p90),
        ms(s.p99),
        ms(s.max),
        ms(s.mean as u64)
    );
    println!(
        "    CPU (cores): master runtime {:.2}, load generator {:.2}, SQLite workers {:.2}, \
         other processes {:.2}; machine busy {:.2} of {}",
        p.cpu.master,
        p.cpu.load,
        p.cpu.sqlite,
        p.cpu.other,
        p.cpu.machine,
        cpus()
    );
    println!(
        "    state flips accepted {} (warm-up included), state-change events on the bus {}",
        p.flips, p.events
    );
    if !p.ok() {
        println!(
            "    PROBLEM: statuses {:?}, {} errors (first: {:?}), same connections: {}",
            p.statuses, p.errors, p.first_error, p.same_connections
        );
    }
}

// ---------------------------------------------------------------------------------------------
// RSS mode: the real `decnet serve`.

fn mem_json(m: &Mem) -> Value {
    json!({"vm_rss_kib": m.rss, "vm_hwm_kib": m.hwm, "rss_anon_kib": m.anon,
           "rss_file_kib": m.file, "threads": m.threads})
}

fn free_port() -> u16 {
    std::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct RssRun {
    hosts: usize,
    deckies: usize,
    stages: Vec<(&'static str, Mem)>,
    enroll_wall: Duration,
    heartbeat_wall: Duration,
    active: usize,
    exit_ok: bool,
}

/// A `decnet serve` child that is killed if the probe fails half-way.
struct Serve(std::process::Child);

impl Drop for Serve {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn run_rss(args: &Args, n: usize) -> Result<RssRun, String> {
    let bin = match &args.decnet_bin {
        Some(b) => b.clone(),
        None => std::env::current_exe()
            .map_err(|e| e.to_string())?
            .with_file_name("decnet"),
    };
    if !bin.is_file() {
        return Err(format!(
            "{} not found; build it with `cargo build --release -p decnet-master-bin` or pass \
             --decnet-bin",
            bin.display()
        ));
    }
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let data = tmp.path().join("master");
    let clean_env = |c: &mut Command| {
        for v in [
            "DECNET_DATA_DIR",
            "DECNET_DB",
            "DECNET_LOG",
            "DECNET_API_BIND",
            "DECNET_SWARM_BIND",
            "DECNET_ADVERTISE",
            "DECNET_HANDSHAKE_TIMEOUT",
            "DECNET_HEADER_TIMEOUT",
            "DECNET_IDLE_TIMEOUT",
            "DECNET_MAX_CONNECTIONS",
            "DECNET_MAX_CONNECTIONS_PER_SOURCE",
        ] {
            c.env_remove(v);
        }
    };
    let mut init = Command::new(&bin);
    init.arg("init").arg("--data-dir").arg(&data);
    clean_env(&mut init);
    let out = init.output().map_err(|e| format!("decnet init: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "decnet init: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let admin = std::fs::read_to_string(data.join("admin.token"))
        .map_err(|e| format!("admin.token: {e}"))?
        .trim()
        .to_string();
    let (api_port, swarm_port) = (free_port(), free_port());
    let log_path = tmp.path().join("serve.log");
    let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
    let mut serve = Command::new(&bin);
    serve
        .arg("serve")
        .arg("--data-dir")
        .arg(&data)
        .args(["--api-bind", &format!("127.0.0.1:{api_port}")])
        .args(["--swarm-bind", &format!("127.0.0.1:{swarm_port}")]);
    let limits = bench_limits(n);
    serve
        .args(["--idle-timeout", &limits.idle_timeout.as_secs().to_string()])
        .args(["--max-connections", &limits.max_connections.to_string()])
        .args([
            "--max-connections-per-source",
            &limits.max_connections_per_source.to_string(),
        ]);
    clean_env(&mut serve);
    let child = serve
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("spawn {}: {e}", bin.display()))?;
    let mut serve = Serve(child);
    let pid = serve.0.id();
    let log_tail = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let api_url = format!("http://127.0.0.1:{api_port}");
    let swarm_url = format!("https://127.0.0.1:{swarm_port}");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("load")
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let mut stages = Vec::new();
    let result = rt.block_on(async {
        let plain = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = plain.get(format!("{api_url}/health")).send().await {
                if r.status() == 200 {
                    break;
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "serve did not answer /health in 30 s:\n{}",
                    log_tail()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        stages.push(("idle, 0 hosts", read_mem(pid)?));

        let t0 = Instant::now();
        let enrolled = enroll_all(n, &api_url, &swarm_url, &admin).await?;
        let enroll_wall = t0.elapsed();
        tokio::time::sleep(Duration::from_secs(1)).await;
        stages.push(("after enrolling", read_mem(pid)?));

        // Shards in the master's store (SQLite, WAL: a second writer is fine).
        let repo = decnet_store::open(&format!("sqlite://{}", data.join("decnet.db").display()))
            .await
            .map_err(err("store"))?;
        let mut hosts = Vec::with_capacity(n);
        for (i, e) in enrolled.iter().enumerate() {
            let deckies = deckies_of(i, args.rss_deckies, e.uuid);
            insert_shards(repo.as_ref(), e.uuid, &deckies).await?;
            let client = decnet_agent::transport::master_client(&e.bundle, &e.master_fingerprint)
                .map_err(|e| e.to_string())?;
            hosts.push((client, BodyTemplate::new(e.uuid, &deckies, None)));
        }
        drop(repo);
        let hb_url = format!("{swarm_url}/swarm/heartbeat");
        let t0 = Instant::now();
        let answers: Vec<Result<u16, String>> = stream::iter(hosts.iter())
            .map(|(c, tpl)| beat(c, &hb_url, tpl.render(Utc::now())))
            .buffer_unordered(32)
            .collect()
            .await;
        let heartbeat_wall = t0.elapsed();
        for a in answers {
            let s = a?;
            if s != 204 {
                return Err(format!("heartbeat answered {s}"));
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let open = connections_to(swarm_port).len();
        stages.push(("1 heartbeat each, connections open", read_mem(pid)?));
        let listed: Vec<Value> = plain
            .get(format!("{api_url}/api/v1/swarm/hosts"))
            .bearer_auth(&admin)
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        let active = listed.iter().filter(|h| h["status"] == "active").count();
        drop(hosts);
        tokio::time::sleep(Duration::from_secs(2)).await;
        stages.push(("connections closed", read_mem(pid)?));
        println!(
            "  {n} hosts enrolled in {:.1} s, one heartbeat each in {:.2} s; {open} connections \
             were open; {active} hosts active",
            enroll_wall.as_secs_f64(),
            heartbeat_wall.as_secs_f64()
        );
        Ok((enroll_wall, heartbeat_wall, active))
    });
    let (enroll_wall, heartbeat_wall, active) = result?;
    drop(rt);

    let killed = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .map_err(|e| format!("kill -TERM {pid}: {e}"))?;
    if !killed.success() {
        return Err(format!("kill -TERM {pid}: {killed}"));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        match serve.0.try_wait().map_err(|e| e.to_string())? {
            Some(s) => break s,
            None if Instant::now() > deadline => {
                return Err("decnet serve did not exit within 30 s of SIGTERM".into());
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    if !status.success() {
        eprintln!("decnet serve's log:\n{}", log_tail());
    }
    Ok(RssRun {
        hosts: n,
        deckies: args.rss_deckies,
        stages,
        enroll_wall,
        heartbeat_wall,
        active,
        exit_ok: status.success(),
    })
}

// ---------------------------------------------------------------------------------------------

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get())
}

fn uptime_load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn main() -> ExitCode {
    decnet_tls::install_default_provider();
    let args = Args::parse();
    if args.hosts == 0 || args.deckies == 0 || args.seconds == 0 || args.deckies > 240 {
        eprintln!("heartbeat_ingest: --hosts, --seconds must be > 0 and --deckies 1..=240");
        return ExitCode::from(2);
    }
    let filter = tracing_subscriber::EnvFilter::try_from_env("DECNET_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let stores = match (&args.stores, args.rss_hosts) {
        (Some(s), _) => s.clone(),
        (None, Some(_)) => vec![],
        (None, None) => vec![StoreKind::Sqlite, StoreKind::Postgres],
    };
    let load_before = uptime_load();
    println!("heartbeat_ingest: load average {load_before}");
    if !stores.is_empty() {
        println!(
            "load phases: {} hosts x {} deckies, {} s warm-up + {} s recorded per phase; master \
             and load generator in one process, on this machine's {} CPUs",
            args.hosts,
            args.deckies,
            args.warmup,
            args.seconds,
            cpus()
        );
    }
    let mut runs = Vec::new();
    for store in stores {
        match run_store(&args, store) {
            Ok(r) => runs.push(r),
            Err(e) => {
                eprintln!("heartbeat_ingest: {}: {e}", store.name());
                return ExitCode::FAILURE;
            }
        }
    }
    let rss = match args.rss_hosts {
        Some(n) => {
            println!("\n== RSS of a real `decnet serve` with {n} enrolled hosts");
            match run_rss(&args, n) {
                Ok(r) => Some(r),
                Err(e) => {
                    eprintln!("heartbeat_ingest: rss: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        None => None,
    };
    let load_after = uptime_load();

    // The table.
    let mut all_ok = true;
    let mut report = serde_json::Map::new();
    if !runs.is_empty() {
        println!(
            "\n| store | phase | heartbeats/s | p50 | p90 | p99 | max | n | CPU: master / load gen / SQLite thr / other (cores) | target ≥ {TARGET_RPS:.0}/s, p99 < {} ms |",
            TARGET_P99_US / 1000
        );
        println!("|---|---|---|---|---|---|---|---|---|---|");
    }
    let mut runs_json = Vec::new();
    for r in &runs {
        println!(
            "| {} | first heartbeat (all {} at once) | – | {} | {} | {} | {} | {} | – | – |",
            r.store.name(),
            r.prime.n,
            ms(r.prime.p50),
            ms(r.prime.p90),
            ms(r.prime.p99),
            ms(r.prime.max),
            r.prime.n
        );
        let mut phases_json = Vec::new();
        for p in &r.phases {
            let s = summarize(&p.samples);
            let met = p.target_met();
            all_ok &= p.ok() && p.flips == p.events;
            println!(
                "| {} | {} | {:.0} | {} | {} | {} | {} | {} | {:.2} / {:.2} / {:.2} / {:.2} | {} |",
                r.store.name(),
                p.label(args.hosts),
                p.rps(),
                ms(s.p50),
                ms(s.p90),
                ms(s.p99),
                ms(s.max),
                s.n,
                p.cpu.master,
                p.cpu.load,
                p.cpu.sqlite,
                p.cpu.other,
                if met { "met" } else { "**not met**" }
            );
            phases_json.push(json!({
                "phase": p.name, "scheduled_rate": p.rate, "heartbeats_per_s": p.rps(), "window_s": p.window.as_secs_f64(),
                "latency": summary_json(&s), "statuses": p.statuses, "errors": p.errors,
                "first_error": p.first_error, "same_connections": p.same_connections,
                "flips_accepted": p.flips, "state_events": p.events, "cpu_cores": cpu_json(&p.cpu),
                "target_met": met,
            }));
        }
        runs_json.push(json!({
            "store": r.store.name(), "hosts": args.hosts, "deckies": args.deckies,
            "body_bytes": r.body_bytes, "setup_s": r.setup.as_secs_f64(),
            "first_heartbeat": summary_json(&r.prime), "first_heartbeat_wall_s": r.prime_wall.as_secs_f64(),
            "phases": phases_json, "heartbeats_received_metric": r.heartbeats_counted,
            "degraded_shards_at_end": r.degraded_in_store,
            "hosts_ending_with_a_decky_down": r.expected_degraded,
        }));
    }
    for r in &runs {
        let flips: u64 = r.phases.iter().map(|p| p.flips).sum();
        let events: u64 = r.phases.iter().map(|p| p.events).sum();
        let consistent = flips == events && r.degraded_in_store == r.expected_degraded;
        all_ok &= consistent;
        println!(
            "\n{}: body {} bytes; every phase on the same {} connections: {}; {} flips \
             accepted, {} state-change events ({}); {} shards degraded at the end (expected {}); \
             heartbeats_received metric {}",
            r.store.name(),
            r.body_bytes,
            args.hosts,
            r.phases.iter().all(|p| p.same_connections),
            flips,
            events,
            if consistent {
                "one write per flip"
            } else {
                "MISMATCH"
            },
            r.degraded_in_store,
            r.expected_degraded,
            r.heartbeats_counted
        );
    }
    report.insert("load_phases".into(), Value::Array(runs_json));
    if let Some(r) = &rss {
        println!(
            "\n| `decnet serve`, {} hosts x {} deckies | VmRSS | VmHWM | RssAnon | RssFile | threads |",
            r.hosts, r.deckies
        );
        println!("|---|---|---|---|---|---|");
        for (stage, m) in &r.stages {
            println!(
                "| {stage} | {:.1} MiB | {:.1} MiB | {:.1} MiB | {:.1} MiB | {} |",
                mib(m.rss),
                mib(m.hwm),
                mib(m.anon),
                mib(m.file),
                m.threads
            );
        }
        let idle = r.stages.first().map(|s| s.1.rss).unwrap_or(0);
        let open = r.stages.get(2).map(|s| s.1.rss).unwrap_or(0);
        println!(
            "per host (connections open − idle) / hosts: {:.1} KiB; {} of {} hosts active; \
             SIGTERM -> exit {}",
            (open.saturating_sub(idle)) as f64 / r.hosts.max(1) as f64,
            r.active,
            r.hosts,
            if r.exit_ok { "0" } else { "NOT 0" }
        );
        all_ok &= r.exit_ok && r.active == r.hosts;
        report.insert(
            "rss".into(),
            json!({
                "hosts": r.hosts, "deckies_per_host": r.deckies,
                "stages": r.stages.iter().map(|(s, m)| json!({"stage": s, "mem": mem_json(m)})).collect::<Vec<_>>(),
                "enroll_wall_s": r.enroll_wall.as_secs_f64(),
                "heartbeat_wall_s": r.heartbeat_wall.as_secs_f64(),
                "active_hosts": r.active, "sigterm_exit_0": r.exit_ok,
            }),
        );
    }
    println!("\nload average before {load_before}, after {load_after}");
    report.insert(
        "machine".into(),
        json!({"loadavg_before": load_before, "loadavg_after": load_after,
               "cpus": cpus()}),
    );
    if let Some(path) = &args.json {
        let v = Value::Object(report);
        if let Err(e) = std::fs::write(path, serde_json::to_vec_pretty(&v).unwrap()) {
            eprintln!("heartbeat_ingest: write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

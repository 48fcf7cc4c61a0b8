#![allow(clippy::unwrap_used)] // a probe aborts on a broken fixture
//! `agent_rss`: the resident memory of an idle, real `decnet-agent serve` process. Figures and
//! how to read them: BENCHMARKS.md, "Worker agent".
//!
//! For each scenario, `--runs` times: a fresh agent dir with a worker bundle of a fresh PKI,
//! a fresh state dir, `decnet-agent serve --agent-dir D --state-dir S --host 127.0.0.1 --port P`
//! (the production wiring: the Docker deployer connected to this machine's daemon, netlink,
//! the systemd-run reaper launcher, info logging to stderr — kept in a file). The probe waits
//! until `GET /health` answers 200 over mutual TLS with the master's certificate, closes that
//! connection, waits `--settle-secs`, reads VmRSS, VmHWM, RssAnon, RssFile and Threads from
//! `/proc/<pid>/status`, then sends SIGTERM and checks the agent exits 0.
//!
//! * `unenrolled`: bundle only — no identity, so no heartbeat loop.
//! * `enrolled`: also identity.json naming a master at an address nothing listens on, so the
//!   heartbeat loop runs (status snapshot from Docker, the mTLS client, failing sends, backoff).
//!
//! Build first: `cargo build --release -p decnet-agent-bin -p decnet-decky` (serve needs
//! `decnet-decky` next to `decnet-agent`).

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use decnet_agent::paths::Identity;
use decnet_benches::pki::BenchPki;
use decnet_benches::proc_status::{mib, read_mem, Mem};
use decnet_core::model::HostUuid;
use decnet_tls::pki::{WORKER_CERT_FILE, WORKER_KEY_FILE};
use serde_json::{json, Value};

/// Idle resident memory of `decnet-agent serve`.
#[derive(Debug, Parser)]
#[command(name = "agent_rss")]
struct Args {
    /// The `decnet-agent` binary (default: next to this executable).
    #[arg(long)]
    agent_bin: Option<PathBuf>,
    /// Samples per scenario (a fresh process each).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Seconds between the first 200 of /health and reading the memory figures.
    #[arg(long, default_value_t = 2)]
    settle_secs: u64,
    /// Also write the figures as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn master_client(pki: &BenchPki) -> reqwest::Client {
    reqwest::Client::builder()
        .use_preconfigured_tls((*pki.master_tls()).clone())
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap()
}

/// A loopback port nothing listens on (bound, then released).
fn free_port() -> u16 {
    TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One run's figures: the process's memory and the heartbeats it had tried (and failed).
#[derive(Debug, Clone, Copy)]
struct Run {
    mem: Mem,
    heartbeats_failed: u64,
}

/// One agent process, from spawn to its exit status.
fn measure(
    bin: &Path,
    enrolled: bool,
    settle: Duration,
    rt: &tokio::runtime::Runtime,
) -> Result<Run, String> {
    let pki = BenchPki::new();
    let agent_dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let state_dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    pki.bundle(&pki.worker)
        .write_dir(agent_dir.path(), WORKER_CERT_FILE, WORKER_KEY_FILE)
        .map_err(|e| e.to_string())?;
    if enrolled {
        Identity {
            host_uuid: HostUuid::new_v4(),
            master_url: format!("https://127.0.0.1:{}", free_port()),
            master_fingerprint: pki.master.fingerprint.clone(),
            master_next_fingerprint: None,
        }
        .save(agent_dir.path())
        .map_err(|e| e.to_string())?;
    }
    let port = free_port();
    let log_path = state_dir.path().join("agent.log");
    let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
    let mut child = Command::new(bin)
        .arg("serve")
        .arg("--agent-dir")
        .arg(agent_dir.path())
        .arg("--state-dir")
        .arg(state_dir.path())
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .env_remove("DECNET_AGENT_DIR")
        .env_remove("DECNET_LOG")
        .env_remove("DECNET_HEARTBEAT_INTERVAL")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("spawn {}: {e}", bin.display()))?;
    let pid = child.id();
    let log_tail = || std::fs::read_to_string(&log_path).unwrap_or_default();

    // Fully up: the mTLS server answers.
    let url = format!("https://127.0.0.1:{port}/health");
    let up = rt.block_on(async {
        let client = master_client(&pki);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(r) = client.get(&url).send().await {
                if r.status() == 200 {
                    return true;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    });
    // The client (and its connection) is gone here: the agent is idle from now on.
    if !up {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!(
            "the agent did not answer /health within 30 s; its log:\n{}",
            log_tail()
        ));
    }
    if let Ok(Some(status)) = child.try_wait() {
        return Err(format!(
            "the agent exited early ({status}); its log:\n{}",
            log_tail()
        ));
    }
    std::thread::sleep(settle);
    let mem = read_mem(pid);
    let heartbeats_failed = log_tail().matches("heartbeat failed").count() as u64;

    let killed = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .map_err(|e| format!("kill -TERM {pid}: {e}"))?;
    if !killed.success() {
        return Err(format!("kill -TERM {pid}: {killed}"));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(s) => break s,
            None if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("the agent did not exit within 20 s of SIGTERM".into());
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    if !status.success() {
        return Err(format!(
            "the agent exited with {status} after SIGTERM; its log:\n{}",
            log_tail()
        ));
    }
    let mem = mem?;
    if enrolled && heartbeats_failed == 0 {
        return Err(format!(
            "enrolled agent: no heartbeat attempt in its log:\n{}",
            log_tail()
        ));
    }
    Ok(Run {
        mem,
        heartbeats_failed,
    })
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.runs == 0 {
        eprintln!("agent_rss: --runs must be at least 1");
        return ExitCode::from(2);
    }
    let bin = match &args.agent_bin {
        Some(b) => b.clone(),
        None => match std::env::current_exe() {
            Ok(exe) => exe.with_file_name("decnet-agent"),
            Err(e) => {
                eprintln!("agent_rss: the current executable: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    if !bin.is_file() {
        eprintln!(
            "agent_rss: {} not found; build it with `cargo build --release -p decnet-agent-bin \
             -p decnet-decky` or pass --agent-bin",
            bin.display()
        );
        return ExitCode::from(2);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let settle = Duration::from_secs(args.settle_secs);
    println!(
        "agent_rss: {} serve, {} run(s) per scenario, memory read {} s after /health answered",
        bin.display(),
        args.runs,
        args.settle_secs
    );
    let mut report = serde_json::Map::new();
    let mut all_met = true;
    for (name, enrolled) in [("unenrolled", false), ("enrolled", true)] {
        let mut mems = Vec::with_capacity(args.runs);
        for i in 0..args.runs {
            match measure(&bin, enrolled, settle, &rt) {
                Ok(run) => {
                    let m = run.mem;
                    println!(
                        "  {name} run {}: VmRSS {:.1} MiB (anon {:.1}, file {:.1}), VmHWM {:.1} MiB, {} threads, {} heartbeat(s) failed; SIGTERM -> exit 0",
                        i + 1,
                        mib(m.rss),
                        mib(m.anon),
                        mib(m.file),
                        mib(m.hwm),
                        m.threads,
                        run.heartbeats_failed
                    );
                    mems.push(run);
                }
                Err(e) => {
                    eprintln!("agent_rss: {name} run {}: {e}", i + 1);
                    return ExitCode::FAILURE;
                }
            }
        }
        let rss = median(mems.iter().map(|r| r.mem.rss).collect());
        let hwm = median(mems.iter().map(|r| r.mem.hwm).collect());
        let anon = median(mems.iter().map(|r| r.mem.anon).collect());
        let file = median(mems.iter().map(|r| r.mem.file).collect());
        let met = mems.iter().all(|r| r.mem.rss < 20 * 1024);
        all_met &= met;
        println!(
            "{name}: median VmRSS {:.1} MiB (anon {:.1}, file {:.1}), VmHWM {:.1} MiB; target < 20 MiB: {}",
            mib(rss),
            mib(anon),
            mib(file),
            mib(hwm),
            if met { "met" } else { "NOT met" }
        );
        let runs: Vec<Value> = mems
            .iter()
            .map(|r| {
                let m = r.mem;
                json!({"vm_rss_kib": m.rss, "vm_hwm_kib": m.hwm, "rss_anon_kib": m.anon,
                       "rss_file_kib": m.file, "threads": m.threads,
                       "heartbeats_failed": r.heartbeats_failed})
            })
            .collect();
        report.insert(
            name.to_string(),
            json!({"runs": runs, "median_vm_rss_kib": rss, "median_vm_hwm_kib": hwm,
                   "median_rss_anon_kib": anon, "median_rss_file_kib": file,
                   "target_under_20mib_met": met}),
        );
    }
    if let Some(path) = &args.json {
        let v = Value::Object(report);
        if let Err(e) = std::fs::write(path, serde_json::to_vec_pretty(&v).unwrap()) {
            eprintln!("agent_rss: write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    println!(
        "target < 20 MiB in every run: {}",
        if all_met { "met" } else { "NOT met" }
    );
    ExitCode::SUCCESS
}

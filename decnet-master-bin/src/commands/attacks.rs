//! `decnet attacks` and `decnet attackers`: what the deckies saw of the attackers (PRODUCT §10).
//!
//! Through a master they read its store (`GET /api/v1/attacks`, every page, then `--follow`
//! polls with the last id as the cursor; `GET /api/v1/attackers`).
//!
//! On a host without a master (unihost) the events are collected from this host's service
//! containers into the data dir's spool (`<data-dir>/attacks/`), with a cursor per container, so
//! every event is kept once — across runs, and across a mutate or teardown (those collect first)
//! — and then printed from the spool, filtered.

use std::collections::BTreeSet;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use decnet_core::adapters::spool::{Spool, SpoolCursor, DEFAULT_SPOOL_BYTES};
use decnet_core::model::attack::{escape_terminal, AttackEvent, AttackKind, AttackerProfile};
use decnet_core::model::wire::{AttackPage, AttackersAnswer};
use decnet_core::orchestrate::collect::collect_into;
use decnet_core::traits::{OutputCollector, ServiceLogs};

use crate::cli::{AttackersArgs, AttacksArgs};
use crate::error::CliError;

/// The host name unihost events carry (bus topics and lists say `local`).
pub const LOCAL_HOST: &str = "local";
/// How often `--follow` looks for new events.
const FOLLOW_INTERVAL: Duration = Duration::from_secs(1);

fn attacks_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("attacks")
}

fn open_spool(data_dir: &Path) -> Result<Spool, CliError> {
    Spool::open(&attacks_dir(data_dir).join("spool"), DEFAULT_SPOOL_BYTES)
        .map_err(|e| CliError::Failed(e.into()))
}

/// One collection pass on this host into the data dir's spool (core's `collect_into`).
/// Returns how many events were added.
pub async fn collect_local(data_dir: &Path, logs: &dyn ServiceLogs) -> Result<usize, CliError> {
    let mut spool = open_spool(data_dir)?;
    collect_into(logs, LOCAL_HOST, &mut spool)
        .await
        .map_err(|e| CliError::Failed(e.into()))
}

/// The deployer's collector on this host: before a redeploy, mutate or teardown removes
/// service containers, their remaining output goes into the data dir's spool. Best effort: a
/// failure is a warning, never a failed command.
#[derive(Debug)]
pub struct SpoolCollector {
    pub data_dir: PathBuf,
}

#[async_trait::async_trait]
impl OutputCollector for SpoolCollector {
    async fn collect(&self, logs: &dyn ServiceLogs) {
        if let Err(e) = collect_local(&self.data_dir, logs).await {
            tracing::warn!(error = %e, "could not collect attacker events before removing containers");
        }
    }
}

/// The filters of `decnet attacks`.
#[derive(Debug, Default)]
pub struct Filter {
    pub since: Option<DateTime<Utc>>,
    pub decky: Option<String>,
    pub service: Option<String>,
    pub src: Option<IpAddr>,
    pub kind: Option<AttackKind>,
}

impl Filter {
    pub fn from_args(args: &AttacksArgs) -> Result<Filter, CliError> {
        let since = args
            .since
            .as_deref()
            .map(|s| {
                DateTime::parse_from_rfc3339(s)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|e| {
                        CliError::usage(format!(
                            "--since: {s:?} is not an RFC 3339 time (e.g. 2026-12-03T06:00:00Z): {e}"
                        ))
                    })
            })
            .transpose()?;
        let src = args
            .src
            .as_deref()
            .map(|s| {
                s.parse::<IpAddr>()
                    .map_err(|_| CliError::usage(format!("--src: {s:?} is not an IP address")))
            })
            .transpose()?;
        let kind = args
            .kind
            .as_deref()
            .map(|k| {
                serde_json::from_value::<AttackKind>(serde_json::Value::from(k))
                    .ok()
                    .filter(|k| *k != AttackKind::Other)
                    .ok_or_else(|| {
                        CliError::usage(format!(
                            "--kind: {k:?} is not a kind (connect, client, auth, command, exec, request, url, file_transfer, forward, datagram, rejected, disconnect, drop)"
                        ))
                    })
            })
            .transpose()?;
        Ok(Filter {
            since,
            decky: args.decky.clone(),
            service: args.service.clone(),
            src,
            kind,
        })
    }

    pub fn matches(&self, e: &AttackEvent) -> bool {
        self.since.is_none_or(|t| e.ts >= t)
            && self.decky.as_deref().is_none_or(|d| e.decky == d)
            && self.service.as_deref().is_none_or(|s| e.service == s)
            && self.src.is_none_or(|ip| e.src_ip == ip)
            && self.kind.is_none_or(|k| e.kind == k)
    }
}

/// One event as a line for a terminal; every attacker-chosen string escaped.
pub fn render_line(e: &AttackEvent) -> String {
    let d = &e.details;
    let mut parts: Vec<String> = Vec::new();
    let mut kv = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            parts.push(format!("{k}={}", escape_terminal(v)));
        }
    };
    kv("user", &d.username);
    kv("pass", &d.password);
    kv("hash", &d.hash);
    kv("method", &d.method);
    kv("key", &d.key_fingerprint);
    kv("cmd", &d.command);
    kv("url", &d.url);
    kv("http", &d.http_method);
    kv("path", &d.path);
    kv("ua", &d.user_agent);
    kv("client", &d.client_version);
    kv("fp", &d.fingerprint);
    kv("reason", &d.reason);
    if let Some(a) = d.accepted {
        parts.push(format!("accepted={a}"));
    }
    if let Some(n) = d.dropped {
        parts.push(format!("dropped={n}"));
    }
    if e.kind == AttackKind::Disconnect {
        if let Some(b) = d.bytes_in {
            parts.push(format!("bytes_in={b}"));
        }
        if let Some(ms) = d.duration_ms {
            parts.push(format!("duration_ms={ms}"));
        }
    }
    let src = if e.kind == AttackKind::Drop {
        "-".to_string()
    } else {
        format!("{}:{}", e.src_ip, e.src_port)
    };
    format!(
        "{}  {:<24} {:<22} {:<13} {}",
        e.ts.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
        escape_terminal(&format!("{}/{}", e.decky, e.service)),
        src,
        e.kind,
        parts.join(" ")
    )
    .trim_end()
    .to_string()
}

fn print(
    events: &[AttackEvent],
    filter: &Filter,
    json: bool,
    seen: &mut BTreeSet<uuid::Uuid>,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    for e in events {
        // A crash between spooling and saving the cursors repeats events: show each once.
        if !seen.insert(e.id) || !filter.matches(e) {
            continue;
        }
        let line = if json {
            e.to_json_line()
        } else {
            render_line(e)
        };
        writeln!(out, "{line}").context("write")?;
    }
    out.flush().context("flush")?;
    Ok(())
}

/// Prints the spool from `from`; returns where it ended.
fn print_spool(
    data_dir: &Path,
    from: SpoolCursor,
    filter: &Filter,
    json: bool,
    seen: &mut BTreeSet<uuid::Uuid>,
    out: &mut dyn Write,
) -> Result<SpoolCursor, CliError> {
    let spool = open_spool(data_dir)?;
    let mut cursor = from.max(spool.acked());
    loop {
        let (events, next) = spool
            .read(cursor, 1000)
            .map_err(|e| CliError::Failed(e.into()))?;
        print(&events, filter, json, seen, out)?;
        if next == cursor || events.is_empty() {
            return Ok(next);
        }
        cursor = next;
    }
}

/// `decnet attacks`: this host's events when there is no master.
pub async fn run(data_dir: &Path, args: &AttacksArgs, out: &mut dyn Write) -> Result<(), CliError> {
    if let Some(client) = super::remote::master(data_dir, &args.client)? {
        return remote(&client, args, out).await;
    }
    local(data_dir, args, out).await
}

/// `s` percent-encoded for a query string.
fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The query string of `GET /api/v1/attacks` for the filters (validated first).
fn remote_query(args: &AttacksArgs) -> Result<String, CliError> {
    Filter::from_args(args)?;
    let mut q = vec!["limit=1000".to_string()];
    for (k, v) in [
        ("since", &args.since),
        ("decky", &args.decky),
        ("src", &args.src),
        ("service", &args.service),
        ("kind", &args.kind),
    ] {
        if let Some(v) = v {
            q.push(format!("{k}={}", enc(v)));
        }
    }
    Ok(q.join("&"))
}

/// `decnet attacks` through the master: its store, every page, then (`--follow`) new events.
async fn remote(
    client: &crate::client::MasterClient,
    args: &AttacksArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let query = remote_query(args)?;
    let filter = Filter::default();
    let mut seen = BTreeSet::new();
    let mut after: Option<uuid::Uuid> = None;
    loop {
        loop {
            let path = match after {
                Some(a) => format!("/api/v1/attacks?{query}&after={a}"),
                None => format!("/api/v1/attacks?{query}"),
            };
            let body = client.get(&path).await?;
            let page: AttackPage = serde_json::from_value(body)
                .map_err(|e| CliError::Failed(anyhow::anyhow!("GET /api/v1/attacks: {e}")))?;
            if let Some(last) = page.events.last() {
                after = Some(last.id);
            }
            print(&page.events, &filter, args.json, &mut seen, out)?;
            if page.next.is_none() {
                break;
            }
        }
        if !args.follow {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = tokio::time::sleep(FOLLOW_INTERVAL) => {}
        }
    }
}

/// `decnet attackers`: one line per source address (the master's store, or this host's spool).
pub async fn attackers(
    data_dir: &Path,
    args: &AttackersArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let profiles = match super::remote::master(data_dir, &args.client)? {
        Some(client) => {
            let body = client.get("/api/v1/attackers").await?;
            let a: AttackersAnswer = serde_json::from_value(body)
                .map_err(|e| CliError::Failed(anyhow::anyhow!("GET /api/v1/attackers: {e}")))?;
            a.attackers
        }
        None => {
            let deployer = super::local::deployer(data_dir, &args.docker).await?;
            collect_local(data_dir, &deployer).await?;
            let spool = open_spool(data_dir)?;
            let mut events = Vec::new();
            let mut cursor = spool.acked();
            loop {
                let (page, next) = spool
                    .read(cursor, 1000)
                    .map_err(|e| CliError::Failed(e.into()))?;
                if page.is_empty() {
                    break;
                }
                events.extend(page);
                cursor = next;
            }
            AttackerProfile::from_events(&events)
        }
    };
    if args.json {
        let v = AttackersAnswer {
            attackers: profiles,
        };
        writeln!(out, "{}", serde_json::to_string(&v).context("json")?).context("write")?;
        return Ok(());
    }
    if profiles.is_empty() {
        writeln!(out, "No attacker seen yet.").context("write")?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<40} {:<24} {:<24} {:>7} {:>8}  deckies / services / usernames",
        "SOURCE", "FIRST SEEN", "LAST SEEN", "EVENTS", "ATTEMPTS"
    )
    .context("write")?;
    for p in &profiles {
        let users: Vec<String> = p.usernames.iter().map(|u| escape_terminal(u)).collect();
        writeln!(
            out,
            "{:<40} {:<24} {:<24} {:>7} {:>8}  {} / {} / {}",
            p.src_ip,
            p.first_seen.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
            p.last_seen.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
            p.events,
            p.attempts,
            escape_terminal(&p.deckies.join(",")),
            escape_terminal(&p.services.join(",")),
            if users.is_empty() {
                "-".to_string()
            } else {
                users.join(",")
            },
        )
        .context("write")?;
    }
    Ok(())
}

/// `decnet attacks` on this host (no master).
pub async fn local(
    data_dir: &Path,
    args: &AttacksArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let filter = Filter::from_args(args)?;
    let deployer = super::local::deployer(data_dir, &args.docker).await?;
    collect_local(data_dir, &deployer).await?;
    let mut seen = BTreeSet::new();
    let mut cursor = print_spool(
        data_dir,
        SpoolCursor::default(),
        &filter,
        args.json,
        &mut seen,
        out,
    )?;
    if !args.follow {
        return Ok(());
    }
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = tokio::time::sleep(FOLLOW_INTERVAL) => {}
        }
        collect_local(data_dir, &deployer).await?;
        cursor = print_spool(data_dir, cursor, &filter, args.json, &mut seen, out)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use decnet_core::model::attack::{new_event_id, AttackDetails, Transport};

    fn event(kind: AttackKind, details: AttackDetails) -> AttackEvent {
        AttackEvent {
            v: 1,
            id: new_event_id(),
            ts: DateTime::parse_from_rfc3339("2026-12-03T06:00:00.5Z")
                .expect("ts")
                .with_timezone(&Utc),
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
            seq: 1,
            kind,
            details,
        }
    }

    #[test]
    fn lines_escape_what_the_attacker_chose() {
        let e = event(
            AttackKind::Auth,
            AttackDetails {
                username: Some("root\u{1b}[2J".into()),
                password: Some("a\nb".into()),
                accepted: Some(false),
                ..AttackDetails::default()
            },
        );
        let line = render_line(&e);
        assert_eq!(
            line,
            "2026-12-03T06:00:00.500Z  decky-01/ssh             10.0.0.9:40000         auth          user=root\\x1b[2J pass=a\\nb accepted=false"
        );
        assert!(!line.chars().any(char::is_control));
    }

    #[test]
    fn filters_combine() {
        let e = event(AttackKind::Auth, AttackDetails::default());
        let all = Filter::default();
        assert!(all.matches(&e));
        let f = Filter {
            decky: Some("decky-01".into()),
            kind: Some(AttackKind::Auth),
            src: Some("10.0.0.9".parse().expect("ip")),
            ..Filter::default()
        };
        assert!(f.matches(&e));
        let other = Filter {
            service: Some("http".into()),
            ..Filter::default()
        };
        assert!(!other.matches(&e));
        let later = Filter {
            since: Some(e.ts + chrono::Duration::seconds(1)),
            ..Filter::default()
        };
        assert!(!later.matches(&e));
    }
}

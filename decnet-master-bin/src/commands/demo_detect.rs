//! The demo's last act: the attacker tries to log in (HTTP basic auth on every decky with
//! `http`, an OpenSSH login with a wrong password on every decky with `ssh` when this machine
//! has `ssh` and `sshpass`), then the demo prints what DECNET recorded of the attacker, per
//! decky — the product's point, visible in the main job.

use std::io::Write;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::Context;
use decnet_core::model::attack::{escape_terminal, AttackEvent, AttackKind};
use decnet_net::lab::{self, LabLan};

use super::demo::Target;
use crate::error::CliError;

/// The credentials the demo's attacker tries.
pub const HTTP_LOGIN: (&str, &str) = ("admin", "Summer2024!");
pub const SSH_LOGIN: (&str, &str) = ("root", "toor");
/// How long the demo waits for what it did to be recorded.
pub const RECORD_WAIT: Duration = Duration::from_secs(30);

fn on_path(cmd: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(cmd).is_file()))
}

/// What the attacker tried, so the wait knows what to look for.
#[derive(Debug, Default)]
pub struct Tried {
    /// (decky, service) pairs where a login was tried.
    pub logins: Vec<(String, String)>,
}

/// The attacker's logins; prints what it does.
pub(crate) async fn attack_logins(
    lan: &LabLan,
    targets: &[Target],
    out: &mut dyn Write,
) -> Result<Tried, CliError> {
    let mut tried = Tried::default();
    writeln!(out, "\nThe attacker tries to log in:").context("write")?;
    let ssh_client = on_path("ssh") && on_path("sshpass");
    for t in targets {
        if t.services.iter().any(|s| s == "http") {
            let basic = base64_encode(format!("{}:{}", HTTP_LOGIN.0, HTTP_LOGIN.1).as_bytes());
            let req = format!(
                "GET /admin/ HTTP/1.1\r\nHost: {}\r\nUser-Agent: Mozilla/5.0 (demo attacker)\r\nAuthorization: Basic {basic}\r\nConnection: close\r\n\r\n",
                t.ip
            );
            let (netns, ip) = (lan.netns.clone(), t.ip);
            let r = tokio::task::spawn_blocking(move || {
                lab::probe_tcp(
                    &netns,
                    ip,
                    80,
                    Some(req.into_bytes()),
                    Duration::from_secs(5),
                )
            })
            .await
            .map_err(|e| CliError::Failed(e.into()))?;
            let status = r
                .ok()
                .and_then(|p| {
                    String::from_utf8_lossy(&p.greeting)
                        .lines()
                        .next()
                        .map(str::to_string)
                })
                .unwrap_or_else(|| "no answer".into());
            writeln!(
                out,
                "  {:<10} http  GET /admin/ as {} / {}  → {}",
                t.name,
                HTTP_LOGIN.0,
                HTTP_LOGIN.1,
                escape_terminal(&status)
            )
            .context("write")?;
            tried.logins.push((t.name.clone(), "http".into()));
        }
        if t.services.iter().any(|s| s == "ssh") {
            if !ssh_client {
                writeln!(
                    out,
                    "  {:<10} ssh   skipped: no ssh and sshpass here (apt-get install openssh-client sshpass)",
                    t.name
                )
                .context("write")?;
                continue;
            }
            let answer = ssh_login(&lan.netns, t.ip).await;
            writeln!(
                out,
                "  {:<10} ssh   {}@{} password {}  → {}",
                t.name, SSH_LOGIN.0, t.ip, SSH_LOGIN.1, answer
            )
            .context("write")?;
            tried.logins.push((t.name.clone(), "ssh".into()));
        }
    }
    Ok(tried)
}

/// One OpenSSH login from the attacker namespace (the honeypot refuses it by default).
async fn ssh_login(netns: &str, ip: Ipv4Addr) -> String {
    let mut cmd = tokio::process::Command::new("ip");
    cmd.args(["netns", "exec", netns, "sshpass", "-p", SSH_LOGIN.1, "ssh"])
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "ConnectTimeout=5",
            "-o",
            "PreferredAuthentications=password,keyboard-interactive",
            "-o",
            "NumberOfPasswordPrompts=1",
            "-o",
            "LogLevel=ERROR",
        ])
        .arg(format!("{}@{ip}", SSH_LOGIN.0))
        .arg("true")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    match tokio::time::timeout(Duration::from_secs(20), cmd.output()).await {
        Ok(Ok(o)) => {
            let err = String::from_utf8_lossy(&o.stderr);
            let line = err.lines().last().unwrap_or("").trim();
            if o.status.success() {
                "logged in".into()
            } else if line.is_empty() {
                format!("refused (exit {})", o.status.code().unwrap_or(-1))
            } else {
                escape_terminal(line)
            }
        }
        Ok(Err(e)) => format!("could not run ssh: {e}"),
        Err(_) => "timed out".into(),
    }
}

/// Whether `events` hold an `auth` event for every login tried.
pub fn recorded_all(events: &[AttackEvent], tried: &Tried) -> bool {
    tried.logins.iter().all(|(decky, service)| {
        events
            .iter()
            .any(|e| &e.decky == decky && &e.service == service && e.kind == AttackKind::Auth)
    })
}

/// Waits (bounded) until `fetch` returns events covering every tried login; returns the last
/// events fetched.
pub async fn wait_recorded<F, Fut>(
    tried: &Tried,
    mut fetch: F,
) -> Result<Vec<AttackEvent>, CliError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Vec<AttackEvent>, CliError>>,
{
    let deadline = Instant::now() + RECORD_WAIT;
    loop {
        let events = fetch().await?;
        if recorded_all(&events, tried) || Instant::now() > deadline {
            return Ok(events);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The report: per decky, what the attacker's address did, credentials first.
pub fn render(events: &[AttackEvent], attacker: Ipv4Addr) -> String {
    use std::collections::BTreeMap;
    let mine: Vec<&AttackEvent> = events
        .iter()
        .filter(|e| e.src_ip == std::net::IpAddr::V4(attacker))
        .collect();
    let mut out = String::new();
    if mine.is_empty() {
        out.push_str("  (nothing recorded yet)\n");
        return out;
    }
    let mut by_decky: BTreeMap<&str, Vec<&AttackEvent>> = BTreeMap::new();
    for e in &mine {
        by_decky.entry(e.decky.as_str()).or_default().push(e);
    }
    for (decky, evs) in by_decky {
        let sessions: std::collections::BTreeSet<_> = evs.iter().map(|e| e.session).collect();
        let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
        for e in &evs {
            *kinds
                .entry(format!("{}/{}", e.service, e.kind))
                .or_default() += 1;
        }
        let summary: Vec<String> = kinds.iter().map(|(k, n)| format!("{k}×{n}")).collect();
        out.push_str(&format!(
            "  {} — {} connection(s) from {attacker}: {}\n",
            escape_terminal(decky),
            sessions.len(),
            summary.join(", ")
        ));
        for e in evs.iter().filter(|e| e.kind == AttackKind::Auth) {
            let d = &e.details;
            out.push_str(&format!(
                "      {}  {:<5} credentials {} / {} ({}){}\n",
                e.ts.format("%H:%M:%S%.3f"),
                e.service,
                escape_terminal(d.username.as_deref().unwrap_or("-")),
                escape_terminal(d.password.as_deref().unwrap_or("-")),
                d.method.as_deref().unwrap_or("?"),
                match d.accepted {
                    Some(true) => ", let in",
                    Some(false) => ", refused",
                    None => "",
                }
            ));
        }
    }
    out
}

fn base64_encode(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
            ("admin:Summer2024!", "YWRtaW46U3VtbWVyMjAyNCE="),
        ] {
            assert_eq!(base64_encode(i.as_bytes()), o, "{i}");
        }
    }
}

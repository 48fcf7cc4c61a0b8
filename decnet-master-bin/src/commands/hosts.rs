//! `decnet hosts enroll | list | decommission`: worker hosts, through the master's operator
//! API (PRODUCT §7, `/api/v1/swarm/...`).

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use decnet_core::model::wire::{EnrollTokenAnswer, EnrollTokenRequest, HostView};
use decnet_core::model::{FieldError, HostName};

use crate::cli::{
    ClientArgs, ClientListArgs, HostsCommand, HostsDecommissionArgs, HostsEnrollArgs,
};
use crate::client::{answer, format_at, print_json, render_table, MasterClient};
use crate::error::CliError;

const ENROLL_TOKENS: &str = "/api/v1/swarm/enroll-tokens";
pub(crate) const HOSTS: &str = "/api/v1/swarm/hosts";

/// The answer to `POST /api/v1/swarm/enroll-tokens`.
pub type EnrollAnswer = EnrollTokenAnswer;

/// One row of `GET /api/v1/swarm/hosts`.
pub type HostRow = HostView;

pub async fn run(data_dir: &Path, cmd: &HostsCommand, out: &mut dyn Write) -> Result<(), CliError> {
    match cmd {
        HostsCommand::Enroll(a) => enroll(data_dir, a, out).await,
        HostsCommand::List(a) => list(data_dir, a, out).await,
        HostsCommand::Decommission(a) => decommission(data_dir, a, out).await,
    }
}

fn connect(data_dir: &Path, c: &ClientArgs) -> Result<MasterClient, CliError> {
    MasterClient::discover(data_dir, c.master.clone(), c.token.clone(), c.ca.clone())
}

/// `--name`: the host-name rule, and not the master's reserved name.
pub fn check_name(name: &str) -> Result<HostName, CliError> {
    HostName::new_worker(name).map_err(|e| {
        CliError::from(FieldError {
            field: "--name".into(),
            ..e
        })
    })
}

/// `--address`: `HOST:PORT` (IPv6 in brackets), port 1-65535.
pub fn check_address(address: &str) -> Result<(), CliError> {
    let bad = |rule: &str| CliError::from(FieldError::new("--address", address, rule));
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| bad("must be HOST:PORT (e.g. 10.0.0.5:8765)"))?;
    match port.parse::<u16>() {
        Ok(p) if p >= 1 => {}
        _ => return Err(bad("must end in a port 1-65535 (HOST:PORT)")),
    }
    let bracketed = host.starts_with('[') && host.ends_with(']');
    let inner = if bracketed {
        &host[1..host.len() - 1]
    } else {
        host
    };
    if inner.is_empty() {
        return Err(bad("has no host before the port (HOST:PORT)"));
    }
    if bracketed {
        if inner.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(bad("has a bracketed host that is not an IPv6 address"));
        }
    } else if host.contains(':') {
        return Err(bad("must put an IPv6 address in brackets ([::1]:8765)"));
    } else if host.parse::<std::net::Ipv4Addr>().is_err()
        && !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return Err(bad(
            "has a host that is neither an IP address nor a DNS name",
        ));
    }
    Ok(())
}

async fn enroll(data_dir: &Path, a: &HostsEnrollArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let name = check_name(&a.name)?;
    check_address(&a.address)?;
    let client = connect(data_dir, &a.client)?;
    let body = client
        .post(
            ENROLL_TOKENS,
            &EnrollTokenRequest {
                name: name.to_string(),
                address: a.address.clone(),
            },
        )
        .await?;
    if a.json {
        return print_json(&body, out);
    }
    let ans: EnrollAnswer = answer(body, "enroll-tokens")?;
    write!(out, "{}", render_enroll(name.as_str(), &a.address, &ans)).context("write")?;
    Ok(())
}

/// The human form of an enrollment answer.
pub fn render_enroll(name: &str, address: &str, ans: &EnrollAnswer) -> String {
    format!(
        "enrollment token for {name} ({address}): single use, expires {}\n\
         run this on {name}:\n\n    {}\n",
        format_at(Some(ans.expires_at)),
        ans.command
    )
}

async fn list(data_dir: &Path, a: &ClientListArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let client = connect(data_dir, &a.client)?;
    let body = client.get(HOSTS).await?;
    if a.json {
        return print_json(&body, out);
    }
    let rows: Vec<HostRow> = answer(body, "GET /api/v1/swarm/hosts")?;
    write!(out, "{}", render_hosts(&rows)).context("write")?;
    Ok(())
}

/// The hosts table (NAME, ADDRESS, STATUS, LAST HEARTBEAT, AGENT, EXPIRES).
pub fn render_hosts(rows: &[HostRow]) -> String {
    if rows.is_empty() {
        return "no enrolled hosts (add one with `decnet hosts enroll --name N --address \
                HOST:PORT`)\n"
            .to_string();
    }
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_string());
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|h| {
            vec![
                h.name.clone(),
                h.address.clone(),
                match &h.version_error {
                    Some(_) => format!("{} (incompatible)", h.status),
                    None => h.status.to_string(),
                },
                format_at(h.last_heartbeat),
                dash(&h.agent_version),
                format_at(h.cert_expires_at),
            ]
        })
        .collect();
    let mut text = render_table(
        &[
            "NAME",
            "ADDRESS",
            "STATUS",
            "LAST HEARTBEAT",
            "AGENT",
            "EXPIRES",
        ],
        &cells,
    );
    text.push_str(&render_state_errors(rows));
    text
}

/// One line per host whose worker reports an unreadable state file (empty when none does):
/// such a worker refuses every operation until the operator fixes or moves the file.
pub fn render_state_errors(rows: &[HostRow]) -> String {
    let versions = rows.iter().filter_map(|h| {
        h.version_error
            .as_ref()
            .map(|e| format!("host {}: incompatible, heartbeats refused ({e})\n", h.name))
    });
    rows.iter()
        .filter_map(|h| {
            h.state_error.as_ref().map(|e| {
                format!(
                    "host {}: worker state file unreadable ({e}); it refuses work until the file is fixed or moved\n",
                    h.name
                )
            })
        })
        .chain(versions)
        .collect()
}

async fn decommission(
    data_dir: &Path,
    a: &HostsDecommissionArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let name = HostName::new(a.name.as_str()).map_err(|e| {
        CliError::from(FieldError {
            field: "NAME".into(),
            ..e
        })
    })?;
    let client = connect(data_dir, &a.client)?;
    let rows: Vec<HostRow> = answer(client.get(HOSTS).await?, "GET /api/v1/swarm/hosts")?;
    let host = rows
        .iter()
        .find(|h| h.name == name.as_str())
        .ok_or_else(|| CliError::not_found(format!("no enrolled host named {name}")))?;
    let uuid = host.uuid;
    client.delete(&format!("{HOSTS}/{uuid}")).await?;
    if a.json {
        return crate::client::print_json(
            &serde_json::json!({"name": name.as_str(), "uuid": uuid, "decommissioned": true}),
            out,
        );
    }
    writeln!(out, "decommissioned {name}: certificate revoked").context("write")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_and_addresses_are_checked_locally() {
        assert!(check_name("worker-1").is_ok());
        for bad in ["decnet-master", "", "Bad Name!"] {
            let e = check_name(bad).unwrap_err();
            assert_eq!(e.exit_code(), 2);
            assert!(e.to_string().starts_with("--name"), "{e}");
        }
        for ok in [
            "10.0.0.5:8765",
            "worker-1.lan:8765",
            "[::1]:8765",
            "[fe80::1]:1",
            "h:65535",
        ] {
            assert!(check_address(ok).is_ok(), "{ok}");
        }
        for bad in [
            "10.0.0.5",
            "10.0.0.5:0",
            "10.0.0.5:65536",
            "10.0.0.5:http",
            ":8765",
            "[]:8765",
            "::1:8765",
            "[nope]:8765",
            "a b:8765",
        ] {
            let e = check_address(bad).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad}");
            assert!(e.to_string().starts_with("--address"), "{e}");
        }
    }

    #[test]
    fn enroll_output_shows_the_command_and_expiry() {
        let ans = EnrollAnswer {
            token: "dnet1_x".into(),
            expires_at: "2030-01-01T12:15:00Z".parse().unwrap(),
            command: "decnet-agent enroll --master https://m:8770 --token dnet1_x".into(),
        };
        assert_eq!(
            render_enroll("w1", "10.0.0.5:8765", &ans),
            "enrollment token for w1 (10.0.0.5:8765): single use, expires 2030-01-01 12:15:00 UTC\n\
             run this on w1:\n\n    decnet-agent enroll --master https://m:8770 --token dnet1_x\n"
        );
    }

    #[test]
    fn hosts_table() {
        let rows: Vec<HostRow> = serde_json::from_value(json!([
            {"uuid": "00000000-0000-0000-0000-000000000001", "name": "w1",
             "address": "10.0.0.5:8765", "status": "active",
             "last_heartbeat": "2030-01-01T00:00:05Z", "agent_version": "0.1.0",
             "cert_expires_at": "2031-01-01T00:00:00Z"},
            {"uuid": "00000000-0000-0000-0000-000000000002", "name": "worker-two",
             "address": "10.0.0.6:8765", "status": "enrolled",
             "last_heartbeat": null, "agent_version": null}
        ]))
        .unwrap();
        assert_eq!(
            render_hosts(&rows),
            "NAME        ADDRESS        STATUS    LAST HEARTBEAT           AGENT  EXPIRES\n\
             w1          10.0.0.5:8765  active    2030-01-01 00:00:05 UTC  0.1.0  2031-01-01 00:00:00 UTC\n\
             worker-two  10.0.0.6:8765  enrolled  -                        -      -\n"
        );
        assert!(render_hosts(&[]).starts_with("no enrolled hosts"));
    }

    #[test]
    fn an_unreadable_worker_state_is_shown_under_the_table() {
        let rows: Vec<HostRow> = serde_json::from_value(json!([
            {"uuid": "00000000-0000-0000-0000-000000000001", "name": "w1",
             "address": "10.0.0.5:8765", "status": "active",
             "last_heartbeat": "2030-01-01T00:00:05Z", "agent_version": "0.1.0",
             "state_error": "/var/lib/decnet/agent/decnet-state.json: not valid JSON"},
            {"uuid": "00000000-0000-0000-0000-000000000002", "name": "w2",
             "address": "10.0.0.6:8765", "status": "active",
             "last_heartbeat": "2030-01-01T00:00:05Z", "agent_version": "0.1.0"}
        ]))
        .unwrap();
        let text = render_hosts(&rows);
        assert!(
            text.ends_with(
                "w2    10.0.0.6:8765  active  2030-01-01 00:00:05 UTC  0.1.0  -\n\
                 host w1: worker state file unreadable (/var/lib/decnet/agent/decnet-state.json: \
                 not valid JSON); it refuses work until the file is fixed or moved\n"
            ),
            "{text}"
        );
        assert_eq!(render_state_errors(&rows[1..]), "");
    }
}

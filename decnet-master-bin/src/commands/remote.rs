//! Client commands through the master (PRODUCT §4, §7): `deploy`, `status`, `teardown`,
//! `mutate` and `lifecycle` go to the operator API when a master is found (`--master` /
//! `DECNET_MASTER_URL`, or `<data-dir>/master.json` while `decnet serve` runs). The master then
//! owns the deckies and chooses the mode. Without a master, `status`, `teardown` and `mutate`
//! act on this host (see [`super::local`]); `lifecycle` needs a master.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use decnet_core::fleet::DeckySpec;
use decnet_core::fleet::{parse_fleet_ini, pick_services, GeneralSpec};
use decnet_core::model::wire::{
    DeckyMutateRequest, DeckyView, FleetDeployAnswer, FleetDeployRequest, FleetDryRun,
    LifecycleIdsAnswer,
};
use decnet_core::model::{DeckyName, FieldError};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use uuid::Uuid;

use super::local;
use super::output::{self, ChangeOutput, StatusOutput};
use super::wait::{self, RowView, Rows};
use crate::cli::{
    ClientArgs, DeployArgs, LifecycleArgs, ModeArg, MutateArgs, StatusArgs, TeardownArgs, WaitArgs,
};
use crate::client::{answer, find_master, format_time, print_json, render_table, MasterClient};
use crate::error::CliError;
use crate::master::layout::DataDir;

const DEPLOY: &str = "/api/v1/deckies/deploy";
const DECKIES: &str = "/api/v1/deckies";

/// The master, when one is found; `None` when there is none (then commands act on this host).
/// A master that is named but unusable (bad URL, no token, no CA) is an error, never a
/// silent fallback to this host.
pub fn master(data_dir: &Path, c: &ClientArgs) -> Result<Option<MasterClient>, CliError> {
    if find_master(&DataDir::new(data_dir), c.master.clone())?.is_none() {
        return Ok(None);
    }
    MasterClient::discover(data_dir, c.master.clone(), c.token.clone(), c.ca.clone()).map(Some)
}

/// Whether progress may be drawn in place (a terminal, no `NO_COLOR`).
fn tty() -> bool {
    crate::logging::stdout_decorated()
}

async fn follow(
    client: &MasterClient,
    ids: &[Uuid],
    w: &WaitArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    wait::follow(client, ids, Duration::from_secs(w.wait_timeout), tty(), out).await
}

/// The answer to a deploy (202).
pub(crate) type Accepted = FleetDeployAnswer;

fn ids_line(ids: &[Uuid]) -> String {
    if ids.is_empty() {
        return "no lifecycle rows (nothing changed)".to_string();
    }
    let ids: Vec<String> = ids.iter().map(Uuid::to_string).collect();
    format!("lifecycle ids: {}", ids.join(" "))
}

/// After a change with `--json`: the lifecycle rows (after `--wait`, their final state;
/// progress is not drawn) as one [`ChangeOutput`]. A failed wait still prints, then fails.
async fn json_change(
    client: &MasterClient,
    operation: &'static str,
    mode: Option<String>,
    ids: &[Uuid],
    w: &WaitArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let waited = if w.wait && !ids.is_empty() {
        wait::follow(
            client,
            ids,
            Duration::from_secs(w.wait_timeout),
            false,
            &mut std::io::sink(),
        )
        .await
    } else {
        Ok(())
    };
    let rows = if ids.is_empty() {
        Vec::new()
    } else {
        wait::fetch(client, ids).await?
    };
    output::print(
        &ChangeOutput::master(
            operation,
            client.url().as_str().trim_end_matches('/').to_string(),
            mode,
            ids,
            &rows,
        ),
        out,
    )?;
    waited
}

/// After a change: the ids, then either `--wait`'s progress or how to follow them.
async fn after_change(
    client: &MasterClient,
    ids: &[Uuid],
    w: &WaitArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    writeln!(out, "{}", ids_line(ids)).context("write")?;
    if w.wait {
        return follow(client, ids, w, out).await;
    }
    if !ids.is_empty() {
        let ids: Vec<String> = ids.iter().map(Uuid::to_string).collect();
        writeln!(
            out,
            "follow with `decnet lifecycle {}` (or pass --wait)",
            ids.join(" ")
        )
        .context("write")?;
    }
    Ok(())
}

// --- deploy -----------------------------------------------------------------------------------

/// Flags the master cannot honour. Some would silently change the plan, so they are refused
/// (exit 2); the others are only noted. Returns the notes.
pub fn check_deploy_flags(args: &DeployArgs) -> Result<Vec<String>, CliError> {
    let refuse = |flag: &str, why: &str| {
        Err(CliError::usage(format!(
            "{flag}: not available through a master ({why}); drop it, or run without a master"
        )))
    };
    if args.distro.is_some() {
        return refuse("--distro", "the master picks each decky's distro");
    }
    if args.randomize_distros {
        return refuse(
            "--randomize-distros",
            "the master picks each decky's distro",
        );
    }
    if args.ip_start.is_some() {
        return refuse("--ip-start", "the master allocates the addresses");
    }
    let mut notes = Vec::new();
    if args.mode == ModeArg::Swarm {
        notes.push(
            "--mode is ignored: the master chooses (swarm when workers are live)".to_string(),
        );
    }
    if args.host_ip.is_some() {
        notes.push("--host-ip is ignored: the master knows its own address".to_string());
    }
    if args.log_file.is_some() {
        notes.push("--log-file is ignored: the master's deckies log where it says".to_string());
    }
    let draws_here = args.config.is_none() && args.randomize_services && args.archetype.is_some();
    if args.seed.is_some() && !draws_here {
        notes.push("--seed is ignored: the master makes the random choices".to_string());
    }
    Ok(notes)
}

/// The network flags (and `--mutate-interval`) as a `general`.
fn flag_general(args: &DeployArgs) -> Result<GeneralSpec, CliError> {
    let net = crate::commands::deploy::flag_inputs(args)?;
    Ok(GeneralSpec {
        subnet: net.subnet,
        gateway: net.gateway,
        interface: net.interface,
        driver: net.driver,
        mutate_interval: args.mutate_interval,
    })
}

/// Flags beat the INI's `[general]`, field by field.
fn merge_general(flags: GeneralSpec, ini: &GeneralSpec) -> GeneralSpec {
    GeneralSpec {
        subnet: flags.subnet.or(ini.subnet),
        gateway: flags.gateway.or(ini.gateway),
        interface: flags.interface.or_else(|| ini.interface.clone()),
        driver: flags.driver.or(ini.driver),
        mutate_interval: flags.mutate_interval.or(ini.mutate_interval),
    }
}

/// `decky-01`, `decky-02`, … skipping names the fleet already has (as the flag path on this
/// host names them).
pub fn flag_names(count: usize, taken: &BTreeSet<String>) -> Vec<String> {
    (1usize..)
        .map(|i| format!("decky-{i:02}"))
        .filter(|n| !taken.contains(n))
        .take(count)
        .collect()
}

/// What `deploy` sends to `POST /api/v1/deckies/deploy`.
///
/// * `--config fleet.ini`: `{"ini_content": <the file's text>}`, checked here first; network
///   flags beat the INI's `[general]` and then travel as `general`.
/// * flags: `{"general": {…}, "deckies": [{"name": "decky-01", "services"?, "archetype"?}, …]}`,
///   named past `taken` (the fleet's names with `--add`). `--randomize-services` sends no
///   services, so the master draws clash-free ones per decky; with `--archetype` too, the
///   draw happens here (`rng`), since the master would use the archetype's services.
///
/// Plus `"replace_fleet": !--add`: by default the request replaces the fleet, like deploying
/// on this host does.
pub fn deploy_body(
    args: &DeployArgs,
    ini: Option<(&Path, &str)>,
    taken: &BTreeSet<String>,
    rng: &mut impl Rng,
) -> Result<FleetDeployRequest, CliError> {
    let flags = flag_general(args)?;
    let flags_given = flags != GeneralSpec::default();
    let mut body = FleetDeployRequest {
        replace_fleet: !args.add,
        ..FleetDeployRequest::default()
    };
    match ini {
        Some((path, text)) => {
            let spec = parse_fleet_ini(text)
                .map_err(|e| CliError::usage(format!("{}: {e}", path.display())))?;
            body.ini_content = Some(text.to_string());
            if flags_given {
                body.general = Some(merge_general(flags, &spec.general));
            }
        }
        None => {
            let count = args
                .deckies
                .ok_or_else(|| CliError::usage("--deckies: required when --config is not given"))?;
            if count == 0 {
                return Err(FieldError::new("--deckies", "0", "must be at least 1").into());
            }
            if args.services.is_none() && args.archetype.is_none() && !args.randomize_services {
                return Err(FieldError::new(
                    "--services",
                    "",
                    "none chosen: give --services a,b, --archetype NAME or --randomize-services",
                )
                .into());
            }
            let mut drawn: Vec<BTreeSet<String>> = Vec::new();
            let deckies: Vec<DeckySpec> = flag_names(count, taken)
                .into_iter()
                .map(|name| {
                    let services = match (&args.services, &args.archetype) {
                        (Some(s), _) => Some(s.clone()),
                        (None, Some(_)) if args.randomize_services => {
                            let s = pick_services(rng, &drawn);
                            drawn.push(s.iter().cloned().collect());
                            Some(s)
                        }
                        _ => None,
                    };
                    DeckySpec {
                        name,
                        services,
                        archetype: args.archetype.clone(),
                        ..DeckySpec::default()
                    }
                })
                .collect();
            if flags_given {
                body.general = Some(flags);
            }
            body.deckies = Some(deckies);
        }
    }
    Ok(body)
}

/// `decnet deploy` through the master.
pub async fn deploy(
    client: &MasterClient,
    args: &DeployArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    for note in check_deploy_flags(args)? {
        tracing::warn!("{note}");
    }
    let ini = match &args.config {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| CliError::usage(format!("--config {}: {e}", path.display())))?,
        ),
        None => None,
    };
    // Fail on bad input before asking the master for anything.
    let mut rng = match args.seed {
        Some(seed) => StdRng::seed_from_u64(seed),
        None => StdRng::from_entropy(),
    };
    let ini_ref = args.config.as_deref().zip(ini.as_deref());
    let mut body = deploy_body(args, ini_ref, &BTreeSet::new(), &mut rng)?;
    if args.add && ini.is_none() {
        // Name the new deckies past the fleet's own.
        let taken: BTreeSet<String> = list(client).await?.into_iter().map(|d| d.name).collect();
        if !taken.is_empty() {
            body = deploy_body(args, ini_ref, &taken, &mut rng)?;
        }
    }
    if args.dry_run {
        return dry_run(client, body, args.json, out).await;
    }
    let ans: Accepted = answer(
        client.post(DEPLOY, &body).await?,
        "POST /api/v1/deckies/deploy",
    )?;
    if args.json {
        let mode = Some(ans.mode.to_string());
        return json_change(client, "deploy", mode, &ans.lifecycle_ids, &args.wait, out).await;
    }
    writeln!(
        out,
        "{} (mode {}, master {})",
        ans.message,
        ans.mode,
        client.url()
    )
    .context("write")?;
    after_change(client, &ans.lifecycle_ids, &args.wait, out).await
}

/// `decnet deploy --dry-run` through the master: the master plans (its fleet, its workers,
/// their addresses) and commits nothing; this prints the plan and what it would change.
async fn dry_run(
    client: &MasterClient,
    mut body: FleetDeployRequest,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    body.dry_run = true;
    let raw = client.post(DEPLOY, &body).await?;
    if json {
        let text = serde_json::to_string_pretty(&raw).context("serialise the plan")?;
        writeln!(out, "{text}").context("write the plan")?;
        return Ok(());
    }
    let plan: FleetDryRun = answer(raw, "POST /api/v1/deckies/deploy (dry run)")?;
    crate::commands::deploy::print_plan(&plan.fleet, out).context("write the plan")?;
    let names = |v: &[String]| {
        if v.is_empty() {
            "-".to_string()
        } else {
            v.join(", ")
        }
    };
    writeln!(
        out,
        "Dry run on master {}: would add {}; change {}; remove {}; leave {} as they are",
        client.url(),
        names(&plan.added),
        names(&plan.changed),
        names(&plan.removed),
        plan.unchanged.len()
    )
    .context("write the plan")?;
    Ok(())
}

// --- status -----------------------------------------------------------------------------------

/// One row of `GET /api/v1/deckies`.
pub type DeckyRow = DeckyView;

pub(crate) async fn list(client: &MasterClient) -> Result<Vec<DeckyRow>, CliError> {
    answer(client.get(DECKIES).await?, "GET /api/v1/deckies")
}

/// The deckies table (NAME, HOST, IP, STATE, SERVICES, LAST SEEN).
pub fn render_deckies(rows: &[DeckyRow]) -> String {
    if rows.is_empty() {
        return "no deckies (deploy some with `decnet deploy`)\n".to_string();
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|d| {
            vec![
                d.name.clone(),
                d.host.clone(),
                d.ip.to_string(),
                d.state.to_string(),
                if d.services.is_empty() {
                    "-".to_string()
                } else {
                    d.services.join(",")
                },
                format_time(d.last_seen.map(|t| t.to_rfc3339()).as_deref()),
            ]
        })
        .collect();
    render_table(
        &["NAME", "HOST", "IP", "STATE", "SERVICES", "LAST SEEN"],
        &cells,
    )
}

/// `decnet status`: the master's fleet, else this host's.
pub async fn status(
    data_dir: &Path,
    args: &StatusArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let Some(client) = master(data_dir, &args.client)? else {
        return local::status(data_dir, args, out).await;
    };
    let body = client.get(DECKIES).await?;
    let rows: Vec<DeckyRow> = answer(body, "GET /api/v1/deckies")?;
    if args.json {
        return output::print(
            &StatusOutput::master(
                client.url().as_str().trim_end_matches('/').to_string(),
                rows,
            ),
            out,
        );
    }
    write!(out, "{}", render_deckies(&rows)).context("write")?;
    // Workers that refuse work on an unreadable state file (best effort: the deckies are
    // the answer, the hosts only add this warning).
    let hosts = match client.get(super::hosts::HOSTS).await {
        Ok(body) => answer::<Vec<super::hosts::HostRow>>(body, "GET /api/v1/swarm/hosts").ok(),
        Err(e) => {
            tracing::debug!(error = %e, "status: hosts unavailable");
            None
        }
    };
    if let Some(hosts) = hosts {
        write!(out, "{}", super::hosts::render_state_errors(&hosts)).context("write")?;
    }
    Ok(())
}

// --- teardown, mutate -------------------------------------------------------------------------

/// A decky name given on the command line (`field` names the flag).
pub fn check_decky(field: &str, name: &str) -> Result<DeckyName, CliError> {
    DeckyName::new(name).map_err(|e| {
        CliError::from(FieldError {
            field: field.into(),
            ..e
        })
    })
}

fn decky_path(name: &DeckyName) -> String {
    format!("{DECKIES}/{name}")
}

/// `decnet teardown`: through the master, else on this host.
pub async fn teardown(
    data_dir: &Path,
    args: &TeardownArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    // A bad name is bad wherever the decky runs.
    let name = args
        .id
        .as_deref()
        .map(|n| check_decky("--id", n))
        .transpose()?;
    let Some(client) = master(data_dir, &args.client)? else {
        return local::teardown(data_dir, args, out).await;
    };
    let names: Vec<DeckyName> = match name {
        Some(n) => vec![n],
        None => {
            let mut names = Vec::new();
            for d in list(&client).await? {
                names.push(DeckyName::new(d.name.as_str()).map_err(|e| {
                    CliError::Failed(anyhow::anyhow!("the master listed a bad decky name: {e}"))
                })?);
            }
            names
        }
    };
    if names.is_empty() {
        if args.json {
            return json_change(&client, "teardown", None, &[], &args.wait, out).await;
        }
        writeln!(out, "no deckies to tear down").context("write")?;
        return Ok(());
    }
    let mut ids = Vec::new();
    for name in &names {
        let result = client.delete(&decky_path(name)).await;
        let body = match result {
            Ok(b) => b,
            // --all: gone meanwhile (another client), nothing left to do for it.
            Err(CliError::NotFound(_)) if args.all => {
                if !args.json {
                    writeln!(out, "{name}: already gone").context("write")?;
                }
                continue;
            }
            Err(e) => return Err(e),
        };
        let ans: LifecycleIdsAnswer = answer(body, "DELETE /api/v1/deckies/{name}")?;
        if !args.json {
            writeln!(out, "tearing down {name}").context("write")?;
        }
        ids.extend(ans.lifecycle_ids);
    }
    if args.json {
        return json_change(&client, "teardown", None, &ids, &args.wait, out).await;
    }
    after_change(&client, &ids, &args.wait, out).await
}

/// `decnet mutate NAME [--services a,b]`: through the master, else on this host.
pub async fn mutate(
    data_dir: &Path,
    args: &MutateArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let name = check_decky("NAME", &args.name)?;
    let Some(client) = master(data_dir, &args.client)? else {
        return local::mutate(data_dir, &name, args, out).await;
    };
    let body = DeckyMutateRequest {
        services: args.services.clone(),
    };
    let ans: LifecycleIdsAnswer = answer(
        client
            .post(&format!("{}/mutate", decky_path(&name)), &body)
            .await?,
        "POST /api/v1/deckies/{name}/mutate",
    )?;
    if args.json {
        return json_change(&client, "mutate", None, &ans.lifecycle_ids, &args.wait, out).await;
    }
    match &args.services {
        Some(s) => writeln!(out, "mutating {name} to {}", s.join(",")),
        None => writeln!(out, "mutating {name} (the master draws its new services)"),
    }
    .context("write")?;
    after_change(&client, &ans.lifecycle_ids, &args.wait, out).await
}

// --- lifecycle --------------------------------------------------------------------------------

/// `ID…`: lifecycle ids are UUIDs (commas separate too); repeats are asked once.
pub fn parse_ids(ids: &[String]) -> Result<Vec<Uuid>, CliError> {
    let mut out: Vec<Uuid> = Vec::new();
    for arg in ids {
        for id in arg.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let uuid: Uuid = id.parse().map_err(|_| {
                CliError::from(FieldError::new(
                    "ID",
                    id,
                    "is not a lifecycle id (a UUID, as deploy, mutate and teardown print them)",
                ))
            })?;
            if !out.contains(&uuid) {
                out.push(uuid);
            }
        }
    }
    if out.is_empty() {
        return Err(CliError::usage("ID: give at least one lifecycle id"));
    }
    Ok(out)
}

/// The lifecycle table (ID, DECKY, OPERATION, STATUS, ERROR, UPDATED).
pub fn render_lifecycle(rows: &[RowView]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.id.clone(),
                r.decky_name.clone(),
                r.operation.clone(),
                r.status.clone(),
                r.error
                    .as_deref()
                    .map(wait::one_line)
                    .filter(|e| !e.is_empty())
                    .unwrap_or_else(|| "-".to_string()),
                format_time(r.updated_at.as_deref()),
            ]
        })
        .collect();
    render_table(
        &["ID", "DECKY", "OPERATION", "STATUS", "ERROR", "UPDATED"],
        &cells,
    )
}

/// `decnet lifecycle --recent [--decky NAME] [--limit N]`: the newest rows, newest first.
async fn recent(
    client: &MasterClient,
    args: &LifecycleArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let mut path = format!("{DECKIES}/lifecycle?recent={}", args.limit);
    if let Some(d) = &args.decky {
        path.push_str(&format!("&decky={}", check_decky("--decky", d)?));
    }
    let raw =
        answer::<Rows<Value>>(client.get(&path).await?, "GET /api/v1/deckies/lifecycle")?.rows;
    if args.json {
        return print_json(&json!({ "rows": raw }), out);
    }
    let rows = wait::views(&raw)?;
    if rows.is_empty() {
        writeln!(out, "no lifecycle rows").context("write")?;
        return Ok(());
    }
    write!(out, "{}", render_lifecycle(&rows)).context("write")?;
    Ok(())
}

/// `decnet lifecycle ID…` (or `--recent`): needs a master.
pub async fn lifecycle(
    data_dir: &Path,
    args: &LifecycleArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let c = &args.client;
    if args.recent {
        if let Some(d) = &args.decky {
            check_decky("--decky", d)?;
        }
        let client =
            MasterClient::discover(data_dir, c.master.clone(), c.token.clone(), c.ca.clone())?;
        return recent(&client, args, out).await;
    }
    let ids = parse_ids(&args.ids)?;
    let client = MasterClient::discover(data_dir, c.master.clone(), c.token.clone(), c.ca.clone())?;
    let mut raw = wait::fetch_values(&client, &ids).await?;
    // In the order asked.
    let position = |r: &Value| {
        r["id"]
            .as_str()
            .and_then(|id| ids.iter().position(|i| i.to_string() == id))
    };
    raw.sort_by_key(|r| position(r).unwrap_or(usize::MAX));
    let rows = wait::views(&raw)?;
    let known: BTreeSet<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let unknown: Vec<String> = ids
        .iter()
        .map(Uuid::to_string)
        .filter(|id| !known.contains(id.as_str()))
        .collect();
    if rows.is_empty() {
        return Err(CliError::not_found(format!(
            "no lifecycle rows with id(s) {}",
            unknown.join(" ")
        )));
    }
    for id in &unknown {
        tracing::warn!("no lifecycle row {id}");
    }
    if args.json {
        return print_json(&json!({ "rows": raw }), out);
    }
    write!(out, "{}", render_lifecycle(&rows)).context("write")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn deploy_args(argv: &[&str]) -> DeployArgs {
        let mut full = vec!["decnet", "deploy"];
        full.extend_from_slice(argv);
        match Cli::try_parse_from(full).unwrap().command {
            Command::Deploy(a) => *a,
            other => panic!("{other:?}"),
        }
    }

    fn body(argv: &[&str], taken: &[&str]) -> Result<Value, CliError> {
        let taken = taken.iter().map(|s| s.to_string()).collect();
        deploy_body(
            &deploy_args(argv),
            None,
            &taken,
            &mut StdRng::seed_from_u64(1),
        )
        .map(|b| serde_json::to_value(b).unwrap())
    }

    #[test]
    fn flags_become_a_json_fleet_spec() {
        assert_eq!(
            body(
                &[
                    "--deckies",
                    "3",
                    "--services",
                    "ssh,http",
                    "--subnet",
                    "10.60.0.0/24",
                    "--gateway",
                    "10.60.0.1",
                    "--interface",
                    "eth1",
                    "--ipvlan",
                ],
                &[]
            )
            .unwrap(),
            json!({
                "general": {"subnet": "10.60.0.0/24", "gateway": "10.60.0.1",
                            "interface": "eth1", "driver": "ipvlan"},
                "deckies": [
                    {"name": "decky-01", "services": ["ssh", "http"]},
                    {"name": "decky-02", "services": ["ssh", "http"]},
                    {"name": "decky-03", "services": ["ssh", "http"]},
                ],
                "replace_fleet": true,
            })
        );
        // --add keeps the fleet and names past it; no network flags, no general.
        assert_eq!(
            body(
                &["--deckies", "2", "--archetype", "linux-server", "--add"],
                &["decky-01", "decky-03"]
            )
            .unwrap(),
            json!({
                "deckies": [
                    {"name": "decky-02", "archetype": "linux-server"},
                    {"name": "decky-04", "archetype": "linux-server"},
                ],
                "replace_fleet": false,
            })
        );
        // --randomize-services: the master draws.
        assert_eq!(
            body(
                &[
                    "--deckies",
                    "1",
                    "--randomize-services",
                    "--mutate-interval",
                    "30"
                ],
                &[]
            )
            .unwrap(),
            json!({
                "general": {"mutate_interval": 30},
                "deckies": [{"name": "decky-01"}],
                "replace_fleet": true,
            })
        );
        // With an archetype the draw happens here, clash-free between deckies.
        let b = body(
            &[
                "--deckies",
                "2",
                "--randomize-services",
                "--archetype",
                "linux-server",
            ],
            &[],
        )
        .unwrap();
        let d = b["deckies"].as_array().unwrap();
        assert_eq!(d.len(), 2);
        for x in d {
            assert_eq!(x["archetype"], "linux-server");
            assert!(!x["services"].as_array().unwrap().is_empty());
        }
        assert_ne!(d[0]["services"], d[1]["services"]);
    }

    #[test]
    fn bad_flags_fail_before_any_request() {
        let check = |argv: &[&str], text: &str| {
            let e = body(argv, &[]).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{argv:?}");
            assert!(e.to_string().contains(text), "{argv:?}: {e}");
        };
        check(&["--services", "ssh"], "--deckies: required");
        check(&["--deckies", "0", "--services", "ssh"], "--deckies");
        check(&["--deckies", "2"], "none chosen");
        check(
            &[
                "--deckies",
                "1",
                "--services",
                "ssh",
                "--subnet",
                "10.0.0.0/33",
            ],
            "--subnet",
        );
        check(
            &["--deckies", "1", "--services", "ssh", "--gateway", "x"],
            "--gateway",
        );
        let refused = |argv: &[&str], flag: &str| {
            let e = check_deploy_flags(&deploy_args(argv)).unwrap_err();
            assert_eq!(e.exit_code(), 2);
            assert!(e.to_string().starts_with(flag), "{e}");
        };
        refused(&["--deckies", "1", "--distro", "debian"], "--distro");
        refused(
            &["--deckies", "1", "--randomize-distros"],
            "--randomize-distros",
        );
        refused(&["--deckies", "1", "--ip-start", "10.0.0.9"], "--ip-start");
        let notes = check_deploy_flags(&deploy_args(&[
            "--deckies",
            "1",
            "--mode",
            "swarm",
            "--host-ip",
            "10.0.0.2",
            "--seed",
            "3",
        ]))
        .unwrap();
        assert_eq!(notes.len(), 3, "{notes:?}");
        assert!(check_deploy_flags(&deploy_args(&["--deckies", "1"]))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn an_ini_travels_as_its_text_after_a_local_check() {
        let text = "[general]\nsubnet=10.61.0.0/24\ngateway=10.61.0.1\n\n[web]\nservices=http\n";
        let path = Path::new("/tmp/fleet.ini");
        let args = deploy_args(&["--config", "/tmp/fleet.ini"]);
        let mut rng = StdRng::seed_from_u64(1);
        assert_eq!(
            serde_json::to_value(
                deploy_body(&args, Some((path, text)), &BTreeSet::new(), &mut rng).unwrap()
            )
            .unwrap(),
            json!({"ini_content": text, "replace_fleet": true})
        );
        // Flags beat [general] field by field; the rest of [general] stays.
        let args = deploy_args(&[
            "--config",
            "/tmp/fleet.ini",
            "--gateway",
            "10.61.0.254",
            "--add",
        ]);
        assert_eq!(
            serde_json::to_value(
                deploy_body(&args, Some((path, text)), &BTreeSet::new(), &mut rng).unwrap()
            )
            .unwrap(),
            json!({
                "ini_content": text,
                "general": {"subnet": "10.61.0.0/24", "gateway": "10.61.0.254"},
                "replace_fleet": false,
            })
        );
        let e = deploy_body(
            &args,
            Some((path, "[web]\namount=3\nip=10.0.0.9\n")),
            &BTreeSet::new(),
            &mut rng,
        )
        .unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().starts_with("/tmp/fleet.ini: "), "{e}");
    }

    #[test]
    fn names_fill_the_gaps() {
        let taken: BTreeSet<String> = ["decky-01", "decky-02", "decky-04"]
            .into_iter()
            .map(String::from)
            .collect();
        assert_eq!(flag_names(3, &taken), ["decky-03", "decky-05", "decky-06"]);
        assert_eq!(flag_names(0, &taken), Vec::<String>::new());
    }

    #[test]
    fn ids_are_uuids() {
        let a = "3f2c8a4e-0b7e-4a39-9d1e-2f9b7c1a0e55";
        let b = "00000000-0000-0000-0000-000000000002";
        assert_eq!(
            parse_ids(&[a.into(), format!("{b},{a}")])
                .unwrap()
                .iter()
                .map(Uuid::to_string)
                .collect::<Vec<_>>(),
            [a, b]
        );
        for bad in [
            vec!["nope".to_string()],
            vec![a.into(), "12".into()],
            vec![",".into()],
        ] {
            let e = parse_ids(&bad).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad:?}");
            assert!(e.to_string().starts_with("ID"), "{e}");
        }
    }

    #[test]
    fn decky_names_are_checked_locally() {
        assert!(check_decky("--id", "decky-01").is_ok());
        let e = check_decky("--id", "Bad Name").unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().starts_with("--id"), "{e}");
    }

    #[test]
    fn tables() {
        let rows: Vec<DeckyRow> = serde_json::from_value(json!([
            {"name": "decky-01", "host_uuid": null, "host": "local", "ip": "10.60.0.2",
             "services": ["ssh", "http"], "state": "running",
             "last_seen": "2030-01-01T00:00:05Z"},
            {"name": "decky-02", "host_uuid": "00000000-0000-0000-0000-000000000009",
             "host": "w1", "ip": "10.60.0.3", "services": [], "state": "pending",
             "last_seen": null}
        ]))
        .unwrap();
        assert_eq!(
            render_deckies(&rows),
            "NAME      HOST   IP         STATE    SERVICES  LAST SEEN\n\
             decky-01  local  10.60.0.2  running  ssh,http  2030-01-01 00:00:05 UTC\n\
             decky-02  w1     10.60.0.3  pending  -         -\n"
        );
        assert!(render_deckies(&[]).starts_with("no deckies"));

        let rows: Rows = serde_json::from_value(json!({"rows": [
            {"id": "00000000-0000-0000-0000-000000000001", "decky_name": "decky-01",
             "host_uuid": null, "operation": "deploy", "status": "failed",
             "error": "image\npull failed", "started_at": "2030-01-01T00:00:00Z",
             "updated_at": "2030-01-01T00:00:09Z", "completed_at": "2030-01-01T00:00:09Z"}
        ]}))
        .unwrap();
        assert_eq!(
            render_lifecycle(&rows.rows),
            "ID                                    DECKY     OPERATION  STATUS  ERROR              UPDATED\n\
             00000000-0000-0000-0000-000000000001  decky-01  deploy     failed  image pull failed  2030-01-01 00:00:09 UTC\n"
        );
    }
}

//! The deckies routes of the operator API (PRODUCT §7): deploy, mutate, delete, list, and
//! lifecycle rows. The desired fleet is committed before 202; the runner does the work.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use decnet_core::fleet::{
    net_inputs, parse_fleet_ini, plan_fleet_change, FleetChange, FleetChangeRequest, FleetError,
    FleetFacts, FleetSpec, ModeChoice, NetInputs, NetRequest, Requested,
};
use decnet_core::model::wire::{
    DeckyMutateRequest, DeckyView, FleetDeployAnswer, FleetDeployRequest, FleetDryRun,
    LifecycleIdsAnswer, LifecycleRows,
};
use decnet_core::model::{
    DeckyConfig, DeckyName, DecnetConfig, HostUuid, Operation, Shard, ShardState,
};
use decnet_core::orchestrate::MutateError;
use decnet_core::traits::RepoError;
use decnet_web::{ApiError, JsonBody};
use rand::rngs::StdRng;
use rand::SeedableRng;
use uuid::Uuid;

use super::auth::{Admin, Caller};
use super::runner::live_hosts;
use super::state::Master;

type Ctx = State<Arc<Master>>;

pub fn routes() -> Router<Arc<Master>> {
    Router::new()
        .route("/api/v1/deckies", get(list))
        .route("/api/v1/deckies/deploy", post(deploy))
        .route("/api/v1/deckies/lifecycle", get(lifecycle))
        .route("/api/v1/deckies/{name}/mutate", post(mutate))
        .route("/api/v1/deckies/{name}", get(get_one).delete(remove))
}

fn store_error(e: RepoError) -> ApiError {
    tracing::error!(error = %e, "store error");
    ApiError::internal("store unavailable")
}

fn fleet_error(prefix: &str, e: FleetError) -> ApiError {
    match e {
        FleetError::Conflict(f) => ApiError::conflict(format!("{prefix}{f}")),
        FleetError::Alloc(a) => ApiError::conflict(format!("{prefix}{a}")),
        e @ (FleetError::OverLimit { .. }
        | FleetError::NoLocalDeployer
        | FleetError::NoLiveWorker) => ApiError::conflict(e.to_string()),
        FleetError::Net(f) => ApiError::unprocessable(format!("general.{f}")),
        other => ApiError::unprocessable(format!("{prefix}{other}")),
    }
}

/// The IPv4 part of a host's `host:port` address.
fn host_ip(address: &str) -> Option<std::net::Ipv4Addr> {
    address
        .rsplit_once(':')
        .map_or(address, |(h, _)| h)
        .parse()
        .ok()
}

pub(crate) fn epoch(now: DateTime<Utc>) -> f64 {
    now.timestamp_micros() as f64 / 1e6
}

async fn record(
    m: &Master,
    changes: &[(DeckyConfig, Operation)],
    now: DateTime<Utc>,
) -> Result<Vec<Uuid>, RepoError> {
    m.lifecycle().record(changes, now).await
}

async fn deploy(
    State(m): Ctx,
    _admin: Admin,
    JsonBody(body): JsonBody<FleetDeployRequest>,
) -> Result<Response, ApiError> {
    let (spec, prefix) = match (&body.ini_content, &body.deckies) {
        (Some(_), Some(_)) => {
            return Err(ApiError::unprocessable(
                "body: give either ini_content or deckies, not both",
            ))
        }
        (None, None) => {
            return Err(ApiError::unprocessable(
                "body: give ini_content (the original's INI) or deckies (a JSON fleet spec)",
            ))
        }
        (Some(ini), None) => {
            let mut spec = parse_fleet_ini(ini).map_err(|e| fleet_error("ini_content: ", e))?;
            if let Some(g) = &body.general {
                spec.general = g.clone();
            }
            (spec, "ini_content: ")
        }
        (None, Some(deckies)) => (
            FleetSpec {
                general: body.general.clone().unwrap_or_default(),
                deckies: deckies.clone(),
                custom_services: vec![],
            },
            "",
        ),
    };

    let _guard = m.lifecycle().lock_fleet().await;
    let existing = m.repo.desired_fleet().await.map_err(store_error)?;
    let hosts = m.swarm.hosts_view().await.map_err(store_error)?;
    let live = live_hosts(&hosts);
    let request = FleetChangeRequest {
        net: NetRequest::Inputs(NetInputs {
            interface: spec.general.interface.clone(),
            subnet: spec.general.subnet,
            gateway: spec.general.gateway,
            host_ip: None,
            driver: spec.general.driver,
        }),
        requested: Requested::Specs(spec),
        replace: body.replace_fleet,
        mode: ModeChoice::Auto,
        mutate_interval: None,
        log_file: None,
        host_ip_optional: true,
    };
    // The master always asks for this machine's facts: its own address stays off the LAN.
    let inputs = net_inputs(&request, existing.as_ref());
    let host_net = m
        .hostnet
        .facts(inputs.interface.as_deref())
        .await
        .map_err(|e| e.to_string());
    // Never a worker's own address: a worker on the fleet's LAN holds one of its IPs.
    let workers: Vec<std::net::Ipv4Addr> =
        hosts.iter().filter_map(|h| host_ip(&h.address)).collect();
    let facts = FleetFacts {
        existing: existing.as_ref(),
        live_hosts: &live,
        reserved: &workers,
        local_deployer: m.local.is_some(),
        host_net: Some(&host_net),
        fleet_limit: Some(m.settings.fleet_limit),
        now_epoch: epoch(m.clock.now()),
    };
    let planned = plan_fleet_change(&request, &facts, &mut StdRng::from_entropy())
        .map_err(|e| fleet_error(prefix, e))?;
    let now = m.clock.now();
    if body.dry_run {
        return Ok((StatusCode::OK, Json(dry_run(existing.as_ref(), &planned))).into_response());
    }
    let mode = planned.fleet.mode;
    let fleet = planned.fleet;
    let changes: Vec<(DeckyConfig, Operation)> = planned
        .changes
        .into_iter()
        .map(|c| (c.decky, c.operation))
        .collect();
    m.repo
        .put_desired_fleet(&fleet)
        .await
        .map_err(store_error)?;
    let ids = record(&m, &changes, now).await.map_err(store_error)?;
    drop(_guard);
    m.runner.wake();
    let deploys = changes
        .iter()
        .filter(|(_, op)| *op == Operation::Deploy)
        .count();
    let teardowns = changes.len() - deploys;
    Ok((
        StatusCode::ACCEPTED,
        Json(FleetDeployAnswer {
            message: format!("deploying {deploys} decky(ies), tearing down {teardowns}"),
            mode,
            lifecycle_ids: ids,
        }),
    )
        .into_response())
}

/// The answer to a dry run: the planned fleet and, by name, what applying it would add,
/// change (recreate or move), remove and leave alone.
fn dry_run(existing: Option<&DecnetConfig>, planned: &FleetChange) -> FleetDryRun {
    let s = planned.summary(existing);
    FleetDryRun {
        dry_run: true,
        mode: planned.fleet.mode,
        added: s.added,
        changed: s.changed,
        removed: s.removed,
        unchanged: s.unchanged,
        fleet: planned.fleet.clone(),
    }
}

fn decky_name(name: &str) -> Result<DeckyName, ApiError> {
    DeckyName::new(name).map_err(|e| ApiError::unprocessable(e.to_string()))
}

async fn mutate(
    State(m): Ctx,
    _admin: Admin,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<LifecycleIdsAnswer>), ApiError> {
    let name = decky_name(&name)?;
    let req: DeckyMutateRequest = if body.iter().all(u8::is_ascii_whitespace) {
        DeckyMutateRequest::default()
    } else {
        decnet_web::json::parse_json(&body)?
    };
    let ids = mutate_decky(&m, &name, req.services, "operator").await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(LifecycleIdsAnswer { lifecycle_ids: ids }),
    ))
}

/// Gives `name` new services (`None`: picked as the mutator picks them) in the desired fleet,
/// stamps `last_mutated`, records a mutate row, publishes `decky.<name>.mutation` with
/// `trigger`, and wakes the runner. Shared by the API (`operator`) and the mutator
/// (`scheduled`). 404 for an unknown decky, 422 for bad services, 409 when no new set exists.
pub(crate) async fn mutate_decky(
    m: &Master,
    name: &DeckyName,
    services: Option<Vec<String>>,
    trigger: &str,
) -> Result<Vec<Uuid>, ApiError> {
    let ids = m
        .lifecycle()
        .mutate(name, services, trigger, &mut StdRng::from_entropy())
        .await
        .map_err(|e| match e {
            MutateError::NotFound(_) => ApiError::not_found(e.to_string()),
            MutateError::Invalid(_) => ApiError::unprocessable(e.to_string()),
            MutateError::NoServices(_) => ApiError::conflict(e.to_string()),
            MutateError::Store(e) => store_error(e),
            _ => ApiError::internal(e.to_string()),
        })?;
    m.runner.wake();
    Ok(ids)
}

async fn remove(
    State(m): Ctx,
    _admin: Admin,
    Path(name): Path<String>,
) -> Result<(StatusCode, Json<LifecycleIdsAnswer>), ApiError> {
    let name = decky_name(&name)?;
    let _guard = m.lifecycle().lock_fleet().await;
    let mut fleet = m
        .repo
        .desired_fleet()
        .await
        .map_err(store_error)?
        .ok_or_else(|| ApiError::not_found(format!("no decky {name}")))?;
    let i = fleet
        .deckies
        .iter()
        .position(|d| d.name == name)
        .ok_or_else(|| ApiError::not_found(format!("no decky {name}")))?;
    let gone = fleet.deckies.remove(i);
    m.repo
        .put_desired_fleet(&fleet)
        .await
        .map_err(store_error)?;
    let ids = record(&m, &[(gone, Operation::Teardown)], m.clock.now())
        .await
        .map_err(store_error)?;
    drop(_guard);
    m.runner.wake();
    Ok((
        StatusCode::ACCEPTED,
        Json(LifecycleIdsAnswer { lifecycle_ids: ids }),
    ))
}

async fn list(State(m): Ctx, _caller: Caller) -> Result<Json<Vec<DeckyView>>, ApiError> {
    Ok(Json(views(&m).await?))
}

/// `GET /api/v1/deckies/{name}`: the decky as `GET /api/v1/deckies` lists it (the first row
/// of that name when two hosts hold one), 404 when there is none.
async fn get_one(
    State(m): Ctx,
    _caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<DeckyView>, ApiError> {
    let name = DeckyName::new(name.as_str()).map_err(|e| ApiError::unprocessable(e.to_string()))?;
    views(&m)
        .await?
        .into_iter()
        .find(|d| d.name == name.as_str())
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no decky {name}")))
}

/// Every decky of the fleet (and those that left it but still have a shard).
async fn views(m: &Master) -> Result<Vec<DeckyView>, ApiError> {
    let fleet = m.repo.desired_fleet().await.map_err(store_error)?;
    let shards = m.repo.shards(None).await.map_err(store_error)?;
    let hosts = m.swarm.hosts_view().await.map_err(store_error)?;
    let mut out: Vec<DeckyView> = fleet
        .iter()
        .flat_map(|f| f.deckies.iter())
        .map(|d| {
            let host = d.host_uuid.unwrap_or(HostUuid::LOCAL);
            let shard = shards
                .iter()
                .find(|s| s.host_uuid == host && s.decky_name == d.name);
            let host_name = match d.host_uuid {
                None => "local".to_string(),
                Some(h) => hosts
                    .iter()
                    .find(|x| x.uuid == h)
                    .map_or_else(|| h.to_string(), |x| x.name.to_string()),
            };
            DeckyView {
                name: d.name.to_string(),
                host_uuid: d.host_uuid,
                host: host_name,
                ip: d.ip,
                services: d.services.clone(),
                state: shard.map_or(ShardState::Pending, |s| s.state),
                last_seen: last_seen(m, host, d.name.as_str(), shard),
            }
        })
        .collect();
    // Deckies that left the fleet but still have a shard (tearing down, or a teardown that
    // failed: their containers may still run) are listed too, with that state.
    let in_fleet = |s: &Shard| {
        fleet.iter().flat_map(|f| f.deckies.iter()).any(|d| {
            d.name == s.decky_name && d.host_uuid.unwrap_or(HostUuid::LOCAL) == s.host_uuid
        })
    };
    for s in shards.iter().filter(|s| !in_fleet(s)) {
        let (uuid, host_name) = if s.host_uuid == HostUuid::LOCAL {
            (None, "local".to_string())
        } else {
            let name = hosts
                .iter()
                .find(|x| x.uuid == s.host_uuid)
                .map_or_else(|| s.host_uuid.to_string(), |x| x.name.to_string());
            (Some(s.host_uuid), name)
        };
        out.push(DeckyView {
            name: s.decky_name.to_string(),
            host_uuid: uuid,
            host: host_name,
            ip: s.decky.ip,
            services: s.decky.services.clone(),
            state: s.state,
            last_seen: last_seen(m, s.host_uuid, s.decky_name.as_str(), Some(s)),
        });
    }
    Ok(out)
}

/// The last heartbeat that echoed the decky (PRODUCT §7; the original moved `last_seen` only
/// on state changes), else the store's `last_seen`.
fn last_seen(
    m: &Master,
    host: HostUuid,
    decky: &str,
    shard: Option<&Shard>,
) -> Option<chrono::DateTime<chrono::Utc>> {
    let stored = shard.and_then(|s| s.last_seen);
    match (m.swarm.echoed_at(host, decky), stored) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// Most rows `?recent=N` returns.
pub const MAX_RECENT: u32 = 1000;

/// What `GET /api/v1/deckies/lifecycle` was asked.
#[derive(Debug, Default, PartialEq, Eq)]
struct LifecycleQuery {
    ids: Vec<Uuid>,
    recent: Option<u32>,
    decky: Option<DeckyName>,
}

/// `?ids=A&ids=B` (repeated keys; `ids=A,B` works too), or `?recent=N[&decky=NAME]` (the
/// newest N rows, one decky's when given).
fn lifecycle_query(query: Option<&str>) -> Result<LifecycleQuery, ApiError> {
    let mut q = LifecycleQuery::default();
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "ids" => {
                for v in v.split(',').filter(|v| !v.is_empty()) {
                    q.ids.push(Uuid::parse_str(v).map_err(|_| {
                        ApiError::unprocessable(format!("ids: {v:?} is not a UUID"))
                    })?);
                }
            }
            "recent" => {
                let n = v
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=MAX_RECENT).contains(n))
                    .ok_or_else(|| {
                        ApiError::unprocessable(format!(
                            "recent: {v:?} is not a row count in 1-{MAX_RECENT}"
                        ))
                    })?;
                q.recent = Some(n);
            }
            "decky" => {
                q.decky = Some(
                    DeckyName::new(v)
                        .map_err(|e| ApiError::unprocessable(format!("decky: {e}")))?,
                );
            }
            _ => {
                return Err(ApiError::unprocessable(format!(
                    "{k}: unknown query parameter (use ids=…, or recent=N and decky=NAME)"
                )))
            }
        }
    }
    if q.recent.is_some() && !q.ids.is_empty() {
        return Err(ApiError::unprocessable(
            "recent: give either ids or recent, not both",
        ));
    }
    if q.decky.is_some() && q.recent.is_none() {
        return Err(ApiError::unprocessable("decky: only with recent=N"));
    }
    Ok(q)
}

#[cfg(test)]
fn parse_ids(query: Option<&str>) -> Result<Vec<Uuid>, ApiError> {
    lifecycle_query(query).map(|q| q.ids)
}

async fn lifecycle(
    State(m): Ctx,
    _caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Json<LifecycleRows>, ApiError> {
    let q = lifecycle_query(query.as_deref())?;
    let rows = if let Some(limit) = q.recent {
        m.repo
            .recent_lifecycle_rows(q.decky, limit)
            .await
            .map_err(store_error)?
    } else if q.ids.is_empty() {
        vec![]
    } else {
        m.repo.lifecycle_rows(&q.ids).await.map_err(store_error)?
    };
    Ok(Json(LifecycleRows { rows }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        let a = Uuid::new_v4();
        let b = Uuid::new_v4();
        assert_eq!(
            parse_ids(Some(&format!("ids={a}&ids={b}"))).unwrap(),
            [a, b]
        );
        assert_eq!(parse_ids(Some(&format!("ids={a},{b}"))).unwrap(), [a, b]);
        assert_eq!(parse_ids(None).unwrap(), Vec::<Uuid>::new());
        assert!(parse_ids(Some("ids=nope"))
            .unwrap_err()
            .detail
            .contains("\"nope\" is not a UUID"));
        assert!(parse_ids(Some("id=x")).is_err());
    }

    #[test]
    fn recent_rows_query() {
        assert_eq!(
            lifecycle_query(Some("recent=5&decky=decky-01")).unwrap(),
            LifecycleQuery {
                ids: vec![],
                recent: Some(5),
                decky: Some(DeckyName::new("decky-01").unwrap()),
            }
        );
        let refused = |q: &str, text: &str| {
            let e = lifecycle_query(Some(q)).unwrap_err();
            assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY, "{q}");
            assert!(e.detail.contains(text), "{q}: {}", e.detail);
        };
        refused("recent=0", "recent: \"0\" is not a row count");
        refused("recent=1001", "1-1000");
        refused("recent=x", "recent");
        refused("decky=decky-01", "decky: only with recent");
        refused("recent=3&decky=Bad%20Name", "decky");
        refused(&format!("recent=3&ids={}", Uuid::new_v4()), "not both");
    }
}

//! The operator API (PRODUCT §7): tokens, enrollment tokens, hosts, metrics, health.
//! Deckies and lifecycle routes join with the lifecycle runner.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use decnet_core::model::wire::{
    EnrollTokenAnswer, EnrollTokenRequest, Health, HostView, SelfDestructRequest, TokenCreated,
    TokenRequest, TokenView,
};
use decnet_core::model::{
    ApiToken, EnrollToken, EnrollTokenText, Host, HostName, HostUuid, LifecycleStatus,
};
use decnet_core::traits::{BusEvent, RepoError, StateTransition};
use decnet_web::{ApiError, JsonBody};
use uuid::Uuid;

use super::auth::{Admin, Caller};
use super::layout::{new_api_token, new_secret, token_hash};
use super::state::Master;

type Ctx = State<Arc<Master>>;

pub fn router(m: Arc<Master>, limit: usize, events: super::events::EventsHub) -> Router {
    let r = Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/api/v1/tokens", post(create_token).get(list_tokens))
        .route("/api/v1/tokens/{id}", delete(revoke_token))
        .route("/api/v1/swarm/enroll-tokens", post(create_enroll_token))
        .route("/api/v1/swarm/hosts", get(list_hosts))
        .route(
            "/api/v1/swarm/hosts/{uuid}",
            get(get_host).delete(decommission),
        )
        .merge(super::fleet::routes())
        .merge(super::events::routes())
        .merge(super::attacks::routes())
        .with_state(m)
        .layer(axum::Extension(events));
    decnet_web::body_limit(r, limit)
}

fn store_error(e: RepoError) -> ApiError {
    tracing::error!(error = %e, "store error");
    ApiError::internal("store unavailable")
}

async fn health() -> Json<Health> {
    Json(Health::ok(env!("CARGO_PKG_VERSION")))
}

async fn metrics(State(m): Ctx) -> Result<impl IntoResponse, ApiError> {
    let facts = super::metrics::Facts {
        hosts: m.swarm.hosts_view().await.map_err(store_error)?,
        shards: m.repo.shards(None).await.map_err(store_error)?,
        open_rows: m.repo.open_lifecycle_rows().await.map_err(store_error)?,
        expiries: vec![("ca", m.pki.ca_not_after()), ("master", m.pki.not_after())],
        now: m.clock.now(),
    };
    Ok((
        [(header::CONTENT_TYPE, decnet_web::metrics::CONTENT_TYPE)],
        m.metrics.render(&facts),
    ))
}

async fn create_token(
    State(m): Ctx,
    _admin: Admin,
    JsonBody(req): JsonBody<TokenRequest>,
) -> Result<(StatusCode, Json<TokenCreated>), ApiError> {
    let token = new_api_token();
    let row = ApiToken {
        id: Uuid::new_v4(),
        hash: token_hash(&token),
        role: req.role,
        created_at: m.clock.now(),
    };
    m.repo.insert_api_token(&row).await.map_err(store_error)?;
    Ok((
        StatusCode::CREATED,
        Json(TokenCreated {
            id: row.id,
            token,
            role: row.role,
        }),
    ))
}

async fn list_tokens(State(m): Ctx, _admin: Admin) -> Result<Json<Vec<TokenView>>, ApiError> {
    let tokens = m.repo.api_tokens().await.map_err(store_error)?;
    Ok(Json(
        tokens
            .iter()
            .map(|t| TokenView {
                id: t.id,
                role: t.role,
                created_at: t.created_at,
            })
            .collect(),
    ))
}

fn parse_uuid(field: &str, s: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(s).map_err(|_| ApiError::unprocessable(format!("{field}: {s:?} is not a UUID")))
}

async fn revoke_token(
    State(m): Ctx,
    _admin: Admin,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_uuid("id", &id)?;
    if m.repo.delete_api_token(id).await.map_err(store_error)? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no token {id}")))
    }
}

/// `host:port`, port 1-65535, a non-empty host without spaces or slashes.
fn check_address(address: &str) -> Result<(), ApiError> {
    let bad = |rule: &str| ApiError::unprocessable(format!("address: {address:?} {rule}"));
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| bad("must be HOST:PORT (the agent API, e.g. 10.0.0.5:8765)"))?;
    let host = host.trim_matches(|c| c == '[' || c == ']');
    if host.is_empty() || host.contains(['/', ' ', '@']) {
        return Err(bad("has no usable host part"));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(bad("has a port outside 1-65535")),
    }
}

async fn create_enroll_token(
    State(m): Ctx,
    _admin: Admin,
    JsonBody(req): JsonBody<EnrollTokenRequest>,
) -> Result<(StatusCode, Json<EnrollTokenAnswer>), ApiError> {
    let name = HostName::new_worker(req.name.clone())
        .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    check_address(&req.address)?;
    if m.repo
        .host_by_name(&name)
        .await
        .map_err(store_error)?
        .is_some()
    {
        return Err(ApiError::conflict(format!(
            "name: a host named {:?} is already enrolled",
            name.as_str()
        )));
    }
    let text = EnrollTokenText {
        secret: new_secret(),
        ca_fingerprint: m.pki.ca_fingerprint.clone(),
    }
    .render();
    let now = m.clock.now();
    let ttl = chrono::Duration::from_std(m.settings.enroll_token_ttl)
        .unwrap_or(chrono::Duration::minutes(15));
    let row = EnrollToken {
        id: Uuid::new_v4(),
        hash: token_hash(&text),
        host_name: name,
        address: req.address,
        created_at: now,
        expires_at: now + ttl,
        used_at: None,
    };
    m.repo
        .insert_enroll_token(&row)
        .await
        .map_err(store_error)?;
    let command = format!(
        "decnet-agent enroll --master {} --token {text}",
        m.settings.advertise
    );
    Ok((
        StatusCode::CREATED,
        Json(EnrollTokenAnswer {
            token: text,
            expires_at: row.expires_at,
            command,
        }),
    ))
}

/// A host as the API shows it; `state_error` (an extension) only while the host's latest
/// heartbeat reported an unreadable worker state file.
fn host_view(m: &Master, h: &Host) -> HostView {
    HostView {
        uuid: h.uuid,
        name: h.name.to_string(),
        address: h.address.clone(),
        status: h.status,
        last_heartbeat: h.last_heartbeat,
        agent_version: h.agent_version.clone(),
        cert_expires_at: h.cert_expires_at,
        state_error: m.swarm.state_error(h.uuid),
        version_error: m.swarm.version_error(h.uuid),
    }
}

async fn list_hosts(State(m): Ctx, _caller: Caller) -> Result<Json<Vec<HostView>>, ApiError> {
    let hosts = m.swarm.hosts_view().await.map_err(store_error)?;
    Ok(Json(hosts.iter().map(|h| host_view(&m, h)).collect()))
}

async fn get_host(
    State(m): Ctx,
    _caller: Caller,
    Path(uuid): Path<String>,
) -> Result<Json<HostView>, ApiError> {
    let uuid = HostUuid(parse_uuid("uuid", &uuid)?);
    let hosts = m.swarm.hosts_view().await.map_err(store_error)?;
    hosts
        .iter()
        .find(|h| h.uuid == uuid)
        .map(|h| Json(host_view(&m, h)))
        .ok_or_else(|| ApiError::not_found(format!("no host {uuid}")))
}

/// Decommission: ask the agent to self-destruct (best effort, bounded wait), revoke its
/// certificate, forget the host. Its heartbeats get 403 from then on.
async fn decommission(
    State(m): Ctx,
    _admin: Admin,
    Path(uuid): Path<String>,
) -> Result<StatusCode, ApiError> {
    let uuid = HostUuid(parse_uuid("uuid", &uuid)?);
    let host = m
        .repo
        .host(uuid)
        .await
        .map_err(store_error)?
        .ok_or_else(|| ApiError::not_found(format!("no host {uuid}")))?;
    let now: DateTime<Utc> = m.clock.now();
    // Revoke first: whatever the agent does, its certificate is dead from here on.
    m.repo
        .revoke_fingerprint(&host.fingerprint, now)
        .await
        .map_err(store_error)?;
    // A renewal's previous certificate dies with it.
    m.swarm.end_overlap(uuid, now).await.map_err(store_error)?;
    m.swarm.forget_host(uuid, &host.fingerprint);
    let wait = m.settings.self_destruct_timeout;
    match tokio::time::timeout(wait, self_destruct(&m, &host, wait)).await {
        Ok(Ok(())) => tracing::info!(host = %host.name, "agent scheduled its self-destruct"),
        Ok(Err(e)) => tracing::warn!(host = %host.name, error = %e, "self-destruct not confirmed"),
        Err(_) => tracing::warn!(host = %host.name, "self-destruct timed out"),
    }
    forget_deckies(&m, &host, now).await.map_err(store_error)?;
    m.repo.delete_host(uuid).await.map_err(store_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// A decommissioned host takes its deckies with it: they leave the desired fleet (no ghost
/// `pending` entry under a deleted host), their open rows fail, and each shard's removal goes on
/// the bus.
async fn forget_deckies(m: &Master, host: &Host, now: DateTime<Utc>) -> Result<(), RepoError> {
    let _guard = m.lifecycle().lock_fleet().await;
    if let Some(mut fleet) = m.repo.desired_fleet().await? {
        let before = fleet.deckies.len();
        fleet.deckies.retain(|d| d.host_uuid != Some(host.uuid));
        if fleet.deckies.len() != before {
            m.repo.put_desired_fleet(&fleet).await?;
        }
    }
    let reason = format!("host {} was decommissioned", host.name);
    for row in m.repo.open_lifecycle_rows().await? {
        if row.host_uuid == Some(host.uuid) {
            m.lifecycle()
                .transition(row.id, LifecycleStatus::Failed, Some(reason.clone()), now)
                .await?;
        }
    }
    for shard in m.repo.shards(Some(host.uuid)).await? {
        m.publish(BusEvent::state(
            host.uuid,
            &shard.decky_name,
            "torn_down",
            StateTransition::Deleted,
        ));
    }
    Ok(())
}

async fn self_destruct(m: &Master, host: &Host, timeout: Duration) -> Result<(), String> {
    let agent = m.agents.connect(host, timeout).map_err(|e| e.to_string())?;
    agent
        .self_destruct(&SelfDestructRequest {
            host_uuid: host.uuid.to_string(),
        })
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

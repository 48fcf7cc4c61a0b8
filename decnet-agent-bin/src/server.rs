//! The agent API (PRODUCT §5), served over mutual TLS by [`decnet_web::serve()`]. Identity is
//! settled in the handshake (client certificate chained to the CA, CN `decnet-master`, pinned
//! fingerprint), so handlers only see the master. Work is queued and answered 202 at once;
//! a rejected request never touches the state file. While the state file is unreadable,
//! `/deploy`, `/mutate` and `/teardown` answer 409 naming it ([`crate::state`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use decnet_core::model::validate::validate_services;
use decnet_core::model::wire::{
    Acceptance, DeployAnswer, DeployRequest, Health, MutateAnswer, MutateRequest,
    SelfDestructAnswer, SelfDestructRequest, TeardownAnswer, TeardownRequest,
};
use decnet_core::model::{validate_config, AgentStatus, DeckyName, HostUuid};
use decnet_core::traits::Deployer;
use decnet_web::{body_limit, ApiError, JsonBody};
use uuid::Uuid;

use crate::heartbeat::StatusSource;
use crate::queue::{Job, QueueError, WorkQueue};
use crate::reaper::{Launcher, ReaperPlan};
use crate::state::{self, UnreadableState};

/// Default request body limit (PRODUCT §5).
pub const DEFAULT_BODY_LIMIT: usize = 16 * 1024 * 1024;

/// Tears this host down and launches the reaper.
#[async_trait::async_trait]
pub trait SelfDestruct: Send + Sync {
    async fn run(&self) -> Result<(), String>;
}

/// The production self-destruct: teardown of every decky (best effort), then the detached
/// reaper with the allow-listed paths.
pub struct Reaper {
    pub deployer: Arc<dyn Deployer>,
    pub launcher: Arc<dyn Launcher>,
    pub plan: ReaperPlan,
}

impl std::fmt::Debug for Reaper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reaper")
            .field("plan", &self.plan)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl SelfDestruct for Reaper {
    async fn run(&self) -> Result<(), String> {
        if let Err(e) = self.deployer.teardown(None).await {
            tracing::warn!(error = %e, "self-destruct: teardown failed; reaping anyway");
        }
        let launcher = self.launcher.clone();
        let plan = self.plan.clone();
        tokio::task::spawn_blocking(move || launcher.launch(&plan))
            .await
            .map_err(|e| format!("reaper launch task: {e}"))?
    }
}

/// What the handlers share.
pub struct AgentApi {
    pub queue: Arc<WorkQueue>,
    pub status: Arc<dyn StatusSource>,
    pub state_path: PathBuf,
    /// This host's uuid once enrolled; self-destruct is bound to it.
    pub host_uuid: Option<HostUuid>,
    pub self_destruct: Arc<dyn SelfDestruct>,
}

impl std::fmt::Debug for AgentApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentApi")
            .field("state_path", &self.state_path)
            .field("host_uuid", &self.host_uuid)
            .finish_non_exhaustive()
    }
}

type Ctx = State<Arc<AgentApi>>;

/// The router, with the body limit applied. No `/docs`, no `/openapi.json`.
pub fn router(api: Arc<AgentApi>, limit: usize) -> Router {
    let r = Router::new()
        .route("/health", get(health))
        .route("/status", get(status))
        .route("/deploy", post(deploy))
        .route("/mutate", post(mutate))
        .route("/teardown", post(teardown))
        .route("/self-destruct", post(self_destruct))
        .with_state(api);
    body_limit(r, limit)
}

async fn health() -> Json<Health> {
    Json(Health::ok(env!("CARGO_PKG_VERSION")))
}

async fn status(State(api): Ctx) -> Json<AgentStatus> {
    Json(api.status.snapshot().await)
}

fn unreadable(e: UnreadableState) -> ApiError {
    ApiError::conflict(e.to_string())
}

/// The worker state, or 409 when the file is unreadable: no work is accepted on it.
async fn readable_state(
    api: &AgentApi,
) -> Result<Option<decnet_core::model::WorkerState>, ApiError> {
    state::load(&api.state_path).await.map_err(unreadable)
}

fn queue_error(e: QueueError) -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
}

fn check_ids(ids: &BTreeMap<String, Uuid>, known: impl Fn(&str) -> bool) -> Result<(), ApiError> {
    match ids.keys().find(|k| !known(k)) {
        Some(k) => Err(ApiError::unprocessable(format!(
            "lifecycle_ids.{k}: not a decky of this request"
        ))),
        None => Ok(()),
    }
}

async fn deploy(
    State(api): Ctx,
    JsonBody(req): JsonBody<DeployRequest>,
) -> Result<(StatusCode, Json<DeployAnswer>), ApiError> {
    let _ = req.no_cache; // every image is built locally from the decky binary: nothing to skip
    readable_state(&api).await?;
    validate_config(&req.config).map_err(|e| {
        ApiError::unprocessable(
            e.0.iter()
                .map(|f| format!("config.{f}"))
                .collect::<Vec<_>>()
                .join("; "),
        )
    })?;
    let ids = req.lifecycle_ids.unwrap_or_default();
    check_ids(&ids, |k| req.config.decky(k).is_some())?;
    let names: Vec<String> = req
        .config
        .deckies
        .iter()
        .map(|d| d.name.to_string())
        .collect();
    if req.dry_run {
        return Ok((
            StatusCode::OK,
            Json(DeployAnswer {
                status: Acceptance::DryRun,
                deckies: names,
            }),
        ));
    }
    api.queue
        .submit(Job::Deploy {
            config: req.config,
            lifecycle_ids: ids,
        })
        .map_err(queue_error)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(DeployAnswer {
            status: Acceptance::Accepted,
            deckies: names,
        }),
    ))
}

async fn mutate(
    State(api): Ctx,
    JsonBody(req): JsonBody<MutateRequest>,
) -> Result<(StatusCode, Json<MutateAnswer>), ApiError> {
    let decky = DeckyName::new(req.decky_id.clone())
        .map_err(|e| ApiError::unprocessable(format!("decky_id: {e}")))?;
    let state = readable_state(&api).await?;
    let custom = state
        .as_ref()
        .map(|s| s.config.custom_services.clone())
        .unwrap_or_default();
    validate_services("services", &req.services, &custom)
        .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    let answer = |status| MutateAnswer {
        status,
        decky_id: decky.to_string(),
        services: req.services.clone(),
    };
    if req.dry_run {
        let Some(state) = state else {
            return Err(ApiError::not_found("no active deployment on this worker"));
        };
        if state.config.decky(decky.as_str()).is_none() {
            return Err(ApiError::not_found(format!(
                "decky {:?} not found in worker state",
                decky.as_str()
            )));
        }
        return Ok((StatusCode::OK, Json(answer(Acceptance::DryRun))));
    }
    let accepted = answer(Acceptance::Accepted);
    api.queue
        .submit(Job::Mutate {
            decky,
            services: req.services,
            lifecycle_id: req.lifecycle_id,
        })
        .map_err(queue_error)?;
    Ok((StatusCode::ACCEPTED, Json(accepted)))
}

async fn teardown(
    State(api): Ctx,
    JsonBody(req): JsonBody<TeardownRequest>,
) -> Result<(StatusCode, Json<TeardownAnswer>), ApiError> {
    let decky = req
        .decky_id
        .as_deref()
        .map(|d| DeckyName::new(d).map_err(|e| ApiError::unprocessable(format!("decky_id: {e}"))))
        .transpose()?;
    let ids = req.lifecycle_ids.unwrap_or_default();
    if let Some(d) = &decky {
        check_ids(&ids, |k| k == d.as_str())?;
    } else if let Some(k) = ids.keys().find(|k| DeckyName::new(k.as_str()).is_err()) {
        return Err(ApiError::unprocessable(format!(
            "lifecycle_ids.{k}: not a decky name"
        )));
    }
    readable_state(&api).await?;
    api.queue
        .submit(Job::Teardown {
            decky: decky.clone(),
            lifecycle_ids: ids,
        })
        .map_err(queue_error)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(TeardownAnswer {
            status: Acceptance::Accepted,
            decky_id: decky.map(|d| d.to_string()),
        }),
    ))
}

async fn self_destruct(
    State(api): Ctx,
    JsonBody(req): JsonBody<SelfDestructRequest>,
) -> Result<Json<SelfDestructAnswer>, ApiError> {
    let asked: Option<HostUuid> = req.host_uuid.parse().ok();
    match (api.host_uuid, asked) {
        (Some(mine), Some(asked)) if mine == asked => {}
        _ => return Err(ApiError::forbidden("host_uuid is not this host's")),
    }
    tracing::warn!(host_uuid = %req.host_uuid, "self-destruct requested by the master");
    api.self_destruct
        .run()
        .await
        .map_err(|e| ApiError::internal(format!("reaper not spawned: {e}")))?;
    Ok(Json(SelfDestructAnswer::scheduled()))
}

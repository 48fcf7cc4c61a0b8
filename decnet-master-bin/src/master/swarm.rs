//! The swarm endpoint (PRODUCT §6): enrollment by CSR, heartbeats, certificate renewal and
//! the master-certificate pins, over the core [`decnet_core::orchestrate::Swarm`]. Identity
//! comes first: every failure of it is the same 403.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Extension, Json, Router};
use decnet_core::model::wire::{
    EnrollAnswer, EnrollRequest, MasterPinsAnswer, MasterPinsRequest, RenewAnswer, RenewRequest,
};
use decnet_core::model::{HeartbeatBody, Host};
use decnet_core::orchestrate::{Presented, SwarmError};
use decnet_core::traits::RepoError;
use decnet_tls::pki::fingerprint;
use decnet_web::{ApiError, JsonBody, PeerCertificate, RemoteAddr};
use serde::Deserialize;
use serde_json::Value;

use super::metrics::Metrics;
use super::state::Master;

type Ctx = State<Arc<Master>>;

pub fn router(m: Arc<Master>, limit: usize) -> Router {
    let r = Router::new()
        .route("/swarm/enroll", post(enroll))
        .route("/swarm/heartbeat", post(heartbeat))
        .route("/swarm/renew", post(renew))
        .route("/swarm/master-pins", post(master_pins))
        .route("/swarm/events", post(super::attacks::ingest))
        .with_state(m);
    decnet_web::body_limit(r, limit)
}

fn store_error(e: RepoError) -> ApiError {
    tracing::error!(error = %e, "store error");
    ApiError::internal("store unavailable")
}

/// One status per [`SwarmError`] kind.
fn swarm_error(e: SwarmError) -> ApiError {
    match e {
        SwarmError::Forbidden => ApiError::forbidden("forbidden"),
        SwarmError::TokenRefused => ApiError::forbidden(e.to_string()),
        SwarmError::Invalid { .. } => ApiError::unprocessable(e.to_string()),
        SwarmError::Conflict { .. } | SwarmError::Incompatible { .. } => {
            ApiError::conflict(e.to_string())
        }
        SwarmError::Store(e) => store_error(e),
        other => {
            tracing::error!(error = %other, "swarm");
            ApiError::internal("certificate issuance failed")
        }
    }
}

async fn enroll(
    State(m): Ctx,
    Extension(remote): Extension<RemoteAddr>,
    JsonBody(req): JsonBody<EnrollRequest>,
) -> Result<Json<EnrollAnswer>, ApiError> {
    if !m.enroll_limiter.allow(remote.0.ip(), Instant::now()) {
        Metrics::inc(&m.metrics.enroll_refused);
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too many enrollment attempts from this address; wait a minute",
        ));
    }
    m.swarm
        .enroll(&req.token, &req.csr_pem)
        .await
        .map(Json)
        .map_err(swarm_error)
}

/// The only field read before the caller is identified.
#[derive(Debug, Deserialize)]
struct Claim {
    #[serde(default)]
    host_uuid: Option<Value>,
}

/// Reads the claimed `host_uuid` only (serde skips the rest without building it), then
/// identifies the caller by its certificate ([`decnet_core::orchestrate::Swarm::identify`]).
/// A body that is not JSON is 403 without a certificate, else 400.
pub(crate) async fn identify_body(
    m: &Master,
    peer: &PeerCertificate,
    body: &[u8],
) -> Result<(Host, Presented), ApiError> {
    let claim: Claim = serde_json::from_slice(body).map_err(|_| {
        if peer.0.is_none() {
            Metrics::inc(&m.metrics.heartbeats_rejected);
            ApiError::forbidden("forbidden")
        } else {
            ApiError::bad_request("body is not valid JSON")
        }
    })?;
    let fp = peer.0.as_ref().map(|c| fingerprint(c));
    let claimed = claim.host_uuid.as_ref().and_then(Value::as_str);
    m.swarm
        .identify(fp.as_deref(), claimed)
        .await
        .map_err(swarm_error)
}

/// POST `/swarm/master-pins`: the caller's agent says which successor of the master
/// certificate it pinned, and learns the current one and the successor to pin. Every enrolled
/// host having pinned the successor lets the rollover promote it ([`super::run::roll_master`]).
async fn master_pins(
    State(m): Ctx,
    Extension(peer): Extension<PeerCertificate>,
    body: axum::body::Bytes,
) -> Result<Json<MasterPinsAnswer>, ApiError> {
    let (host, _) = identify_body(&m, &peer, &body).await?;
    let req: MasterPinsRequest = decnet_web::json::parse_json(&body)?;
    m.swarm
        .master_pins(host.uuid, req.next_fingerprint)
        .map(Json)
        .map_err(swarm_error)
}

/// POST `/swarm/renew`: a new certificate for the caller's host
/// ([`decnet_core::orchestrate::Swarm::renew`]).
async fn renew(
    State(m): Ctx,
    Extension(peer): Extension<PeerCertificate>,
    body: axum::body::Bytes,
) -> Result<Json<RenewAnswer>, ApiError> {
    let (host, presented) = identify_body(&m, &peer, &body).await?;
    let req: RenewRequest = decnet_web::json::parse_json(&body)?;
    m.swarm
        .renew(&host, presented, &req.csr_pem)
        .await
        .map(Json)
        .map_err(swarm_error)
}

async fn heartbeat(
    State(m): Ctx,
    Extension(peer): Extension<PeerCertificate>,
    body: axum::body::Bytes,
) -> Result<StatusCode, ApiError> {
    // Identity before anything else.
    let (host, presented) = identify_body(&m, &peer, &body).await?;
    let beat: HeartbeatBody = decnet_web::json::parse_json(&body)?;
    m.swarm
        .heartbeat(&host, presented, &beat)
        .await
        .map_err(swarm_error)?;
    Ok(StatusCode::NO_CONTENT)
}

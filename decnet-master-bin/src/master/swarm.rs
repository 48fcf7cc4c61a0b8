//! The swarm endpoint (PRODUCT §6): enrollment by CSR, and heartbeats. Identity comes first:
//! every failure of it is the same 403.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Extension, Json, Router};
use decnet_core::model::{
    AgentStatus, EnrollTokenText, HeartbeatBody, Host, HostStatus, HostUuid, LifecycleDelta,
    ShardState,
};
use decnet_core::traits::{BusEvent, ObserveOutcome, ObservedShard, RepoError, StateTransition};
use decnet_tls::pki::{fingerprint, LeafSpec, San};
use decnet_web::{ApiError, JsonBody, PeerCertificate, RemoteAddr};
use serde::Deserialize;
use serde_json::{json, Value};

use super::layout::token_hash;
use super::lifecycle::apply_delta;
use super::metrics::Metrics;
use super::state::Master;

type Ctx = State<Arc<Master>>;

pub fn router(m: Arc<Master>, limit: usize) -> Router {
    let r = Router::new()
        .route("/swarm/enroll", post(enroll))
        .route("/swarm/heartbeat", post(heartbeat))
        .with_state(m);
    decnet_web::body_limit(r, limit)
}

fn store_error(e: RepoError) -> ApiError {
    tracing::error!(error = %e, "store error");
    ApiError::internal("store unavailable")
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnrollRequest {
    token: String,
    csr_pem: String,
}

const REFUSED: &str = "invalid, used or expired token";

async fn enroll(
    State(m): Ctx,
    Extension(remote): Extension<RemoteAddr>,
    JsonBody(req): JsonBody<EnrollRequest>,
) -> Result<Json<Value>, ApiError> {
    if !m.enroll_limiter.allow(remote.0.ip(), Instant::now()) {
        Metrics::inc(&m.metrics.enroll_refused);
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too many enrollment attempts from this address; wait a minute",
        ));
    }
    let refuse = || {
        Metrics::inc(&m.metrics.enroll_refused);
        ApiError::forbidden(REFUSED)
    };
    let text = EnrollTokenText::parse(&req.token).map_err(|_| refuse())?;
    if text.ca_fingerprint != m.pki.ca_fingerprint {
        return Err(refuse());
    }
    // Check the CSR before the one-time token is spent on it.
    m.pki
        .ca
        .issue_from_csr(&req.csr_pem, &LeafSpec::worker("csr-check", vec![]))
        .map_err(|e| ApiError::unprocessable(format!("csr_pem: {e}")))?;
    let now = m.clock.now();
    let token = m
        .repo
        .consume_enroll_token(&token_hash(&text.render()), now)
        .await
        .map_err(store_error)?
        .ok_or_else(refuse)?;
    // The master sets every field: CN = the enrolled name, SAN = the enrolled address.
    let host_part = token
        .address
        .rsplit_once(':')
        .map_or(token.address.as_str(), |(h, _)| h)
        .trim_matches(|c| c == '[' || c == ']');
    let spec = LeafSpec::worker(token.host_name.as_str(), vec![San::parse(host_part)]);
    let issued = m
        .pki
        .ca
        .issue_from_csr(&req.csr_pem, &spec)
        .map_err(|e| ApiError::unprocessable(format!("csr_pem: {e}")))?;
    let host = Host {
        uuid: HostUuid::new_v4(),
        name: token.host_name.clone(),
        address: token.address.clone(),
        fingerprint: issued.fingerprint.clone(),
        status: HostStatus::Enrolled,
        last_heartbeat: None,
        agent_version: None,
        enrolled_at: now,
        cert_expires_at: None,
        previous_fingerprint: None,
        previous_valid_until: None,
    };
    match m.repo.insert_host(&host).await {
        Ok(()) => {}
        Err(RepoError::Conflict(what)) => {
            return Err(ApiError::conflict(format!(
                "{what}: a host of that name is already enrolled"
            )))
        }
        Err(e) => return Err(store_error(e)),
    }
    m.remember_host(host.clone());
    Metrics::inc(&m.metrics.enrollments);
    tracing::info!(host = %host.name, uuid = %host.uuid, "worker enrolled");
    Ok(Json(json!({
        "host_uuid": host.uuid,
        "cert_pem": issued.cert_pem,
        "ca_pem": m.pki.bundle.ca_pem,
        "master_fingerprint": m.pki.fingerprint,
    })))
}

/// 403 without saying which identity check failed.
fn forbidden(m: &Master) -> ApiError {
    Metrics::inc(&m.metrics.heartbeats_rejected);
    ApiError::forbidden("forbidden")
}

/// Who is calling, from the client certificate alone: the host pinned to that fingerprint,
/// not revoked. Unknown, mismatched, revoked and decommissioned all look the same.
/// The only field read before the caller is identified.
#[derive(Debug, Deserialize)]
struct Claim {
    #[serde(default)]
    host_uuid: Option<Value>,
}

async fn identify(m: &Master, peer: &PeerCertificate, claimed: &Value) -> Result<Host, ApiError> {
    let Some(cert) = &peer.0 else {
        return Err(forbidden(m));
    };
    let fp = fingerprint(cert);
    let Some(uuid) = claimed.as_str().and_then(|s| s.parse::<HostUuid>().ok()) else {
        return Err(forbidden(m));
    };
    let host = m.host(uuid).await.map_err(store_error)?;
    let Some(host) = host else {
        return Err(forbidden(m));
    };
    if !decnet_tls_eq(&host.fingerprint, &fp) || m.is_revoked(&fp).await.map_err(store_error)? {
        return Err(forbidden(m));
    }
    Ok(host)
}

fn decnet_tls_eq(a: &str, b: &str) -> bool {
    super::layout::digest_eq(a, b)
}

async fn heartbeat(
    State(m): Ctx,
    Extension(peer): Extension<PeerCertificate>,
    body: axum::body::Bytes,
) -> Result<StatusCode, ApiError> {
    // Identity before anything else: read only `host_uuid` (serde skips the rest without
    // building it), then check the certificate.
    let claim: Claim = serde_json::from_slice(&body).map_err(|_| {
        if peer.0.is_none() {
            forbidden(&m)
        } else {
            ApiError::bad_request("body is not valid JSON")
        }
    })?;
    let host = identify(&m, &peer, claim.host_uuid.as_ref().unwrap_or(&Value::Null)).await?;
    let beat: HeartbeatBody = decnet_web::json::parse_json(&body)?;
    let now = m.clock.now();
    m.note_heartbeat(&host, beat.agent_version.clone(), now)
        .await
        .map_err(store_error)?;
    Metrics::inc(&m.metrics.heartbeats_received);
    for delta in &beat.lifecycle {
        apply(&m, host.uuid, delta).await?;
    }
    if !beat.status.in_flight.is_empty() {
        m.repo
            .touch_lifecycle(host.uuid, &beat.status.in_flight, now)
            .await
            .map_err(store_error)?;
    }
    observe(&m, host.uuid, &beat.status, now)
        .await
        .map_err(store_error)?;
    let echoed: &[decnet_core::model::DeckyConfig] = if beat.status.deployed {
        &beat.status.deckies
    } else {
        &[]
    };
    m.note_echo(host.uuid, now, echoed.iter().map(|d| d.name.as_str()));
    // Not "no deckies": `observe` acts only on deployed snapshots, so the shards stay as they were.
    m.note_state_error(host.uuid, beat.status.state_error.as_deref());
    Ok(StatusCode::NO_CONTENT)
}

async fn apply(m: &Master, host: HostUuid, delta: &LifecycleDelta) -> Result<(), ApiError> {
    apply_delta(m, host, delta).await.map_err(store_error)?;
    Ok(())
}

/// Applies the snapshot's per-decky states, skipping deckies whose state is unchanged since
/// the last heartbeat (no store round-trip at all). Also used for this master's own (unihost)
/// deckies, with host `local`.
pub(crate) async fn observe(
    m: &Master,
    host: HostUuid,
    status: &AgentStatus,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), RepoError> {
    if !status.deployed {
        return Ok(());
    }
    let empty = Default::default();
    let runtime = status.runtime.as_ref().unwrap_or(&empty);
    for d in &status.deckies {
        let state = if runtime.get(d.name.as_str()).is_some_and(|r| r.running) {
            ShardState::Running
        } else {
            ShardState::Degraded
        };
        let key = (host, d.name.to_string());
        let cached = m
            .observed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .copied();
        if cached == Some(state) {
            continue;
        }
        let outcome = m
            .repo
            .observe_shard(
                &ObservedShard {
                    host_uuid: host,
                    decky_name: d.name.clone(),
                    state,
                    taken_at: status.taken_at,
                },
                now,
            )
            .await?;
        match outcome {
            ObserveOutcome::Changed { previous } => {
                m.observed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(key, state);
                m.publish(BusEvent::state(
                    host,
                    &d.name,
                    state.as_str(),
                    StateTransition::StateChanged {
                        previous: previous.as_str(),
                    },
                ));
            }
            ObserveOutcome::Unchanged => {
                m.observed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(key, state);
            }
            ObserveOutcome::Refused => {}
        }
    }
    Ok(())
}

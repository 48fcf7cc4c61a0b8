//! The swarm endpoint (PRODUCT §6): enrollment by CSR, heartbeats, and certificate renewal
//! (issue 9, item 14). Identity comes first: every failure of it is the same 403.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Extension, Json, Router};
use decnet_core::model::wire::{
    EnrollAnswer, EnrollRequest, MasterPinsAnswer, MasterPinsRequest, RenewAnswer, RenewRequest,
};
use decnet_core::model::{EnrollTokenText, HeartbeatBody, Host, HostStatus, HostUuid};
use decnet_core::traits::{CertRenewal, RepoError};
use decnet_tls::pki::{cert_info, fingerprint, parse_cert_pem, IssuedCert, LeafSpec, San};
use decnet_web::{ApiError, JsonBody, PeerCertificate, RemoteAddr};
use serde::Deserialize;
use serde_json::Value;

use super::layout::token_hash;

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

const REFUSED: &str = "invalid, used or expired token";

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
    let refuse = || {
        Metrics::inc(&m.metrics.enroll_refused);
        ApiError::forbidden(REFUSED)
    };
    let text = EnrollTokenText::parse(&req.token).map_err(|_| refuse())?;
    if text.ca_fingerprint != m.pki.ca_fingerprint {
        return Err(refuse());
    }
    // Check the CSR before the one-time token is spent on it.
    issue(&m, &req.csr_pem, "csr-check", None)?;
    let now = m.clock.now();
    let token = m
        .repo
        .consume_enroll_token(&token_hash(&text.render()), now)
        .await
        .map_err(store_error)?
        .ok_or_else(refuse)?;
    // The master sets every field: CN = the enrolled name, SAN = the enrolled address.
    let (issued, not_after) = issue(
        &m,
        &req.csr_pem,
        token.host_name.as_str(),
        Some(&token.address),
    )?;
    let host = Host {
        uuid: HostUuid::new_v4(),
        name: token.host_name.clone(),
        address: token.address.clone(),
        fingerprint: issued.fingerprint.clone(),
        status: HostStatus::Enrolled,
        last_heartbeat: None,
        agent_version: None,
        enrolled_at: now,
        cert_expires_at: Some(not_after),
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
    Ok(Json(EnrollAnswer {
        host_uuid: host.uuid,
        cert_pem: issued.cert_pem,
        ca_pem: m.pki.ca_pem().to_string(),
        master_fingerprint: m.pki.fingerprint(),
    }))
}

/// The SAN of a host's certificate: the host part of its enrolled `host:port` address.
fn address_san(address: &str) -> San {
    let host_part = address
        .rsplit_once(':')
        .map_or(address, |(h, _)| h)
        .trim_matches(|c| c == '[' || c == ']');
    San::parse(host_part)
}

/// Signs the CSR's public key, and nothing else from it, as a worker certificate: CN `name`,
/// SAN from `address`, [`super::state::MasterSettings::worker_cert_lifetime`]. A bad CSR is a
/// 422 naming `csr_pem`. Returns the certificate and its `notAfter`.
fn issue(
    m: &Master,
    csr_pem: &str,
    name: &str,
    address: Option<&str>,
) -> Result<(IssuedCert, chrono::DateTime<chrono::Utc>), ApiError> {
    let spec = LeafSpec {
        validity: m.settings.worker_cert_lifetime,
        ..LeafSpec::worker(name, address.map(address_san).into_iter().collect())
    };
    let issued = m
        .pki
        .ca
        .issue_from_csr(csr_pem, &spec)
        .map_err(|e| ApiError::unprocessable(format!("csr_pem: {e}")))?;
    let not_after = parse_cert_pem(&issued.cert_pem)
        .and_then(|der| cert_info(&der))
        .map_err(|e| {
            tracing::error!(error = %e, "issued certificate does not parse");
            ApiError::internal("certificate issuance failed")
        })?
        .not_after;
    Ok((issued, not_after.into()))
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

///
/// A host is known by exactly {its pinned fingerprint} ∪ {its previous one while a renewal's
/// overlap lasts}, never by a revoked one. A previous certificate used after its overlap ends
/// the overlap (it is revoked) before the 403.
async fn identify(
    m: &Master,
    peer: &PeerCertificate,
    claimed: &Value,
) -> Result<(Host, Presented), ApiError> {
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
    let presented = if decnet_tls_eq(&host.fingerprint, &fp) {
        Presented::Current
    } else if host
        .previous_fingerprint
        .as_deref()
        .is_some_and(|p| decnet_tls_eq(p, &fp))
    {
        if host
            .previous_valid_until
            .is_some_and(|until| m.clock.now() < until)
        {
            Presented::Previous
        } else {
            m.end_overlap(host.uuid, m.clock.now())
                .await
                .map_err(store_error)?;
            return Err(forbidden(m));
        }
    } else {
        return Err(forbidden(m));
    };
    if m.is_revoked(&fp).await.map_err(store_error)? {
        return Err(forbidden(m));
    }
    Ok((host, presented))
}

/// Which of a host's accepted certificates the caller presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Presented {
    /// The pinned one.
    Current,
    /// The one a renewal replaced, during the overlap.
    Previous,
}

/// Reads the claimed `host_uuid` only (serde skips the rest without building it), then
/// identifies the caller. A body that is not JSON is 403 without a certificate, else 400.
pub(crate) async fn identify_body(
    m: &Master,
    peer: &PeerCertificate,
    body: &[u8],
) -> Result<(Host, Presented), ApiError> {
    let claim: Claim = serde_json::from_slice(body).map_err(|_| {
        if peer.0.is_none() {
            forbidden(m)
        } else {
            ApiError::bad_request("body is not valid JSON")
        }
    })?;
    identify(m, peer, claim.host_uuid.as_ref().unwrap_or(&Value::Null)).await
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
    let pinned = req
        .next_fingerprint
        .as_deref()
        .map(decnet_tls::pki::normalize_fingerprint)
        .transpose()
        .map_err(|e| ApiError::unprocessable(format!("next_fingerprint: {e}")))?;
    m.master_pins
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(host.uuid, pinned);
    Ok(Json(MasterPinsAnswer {
        master_fingerprint: m.pki.fingerprint(),
        next_fingerprint: m.pki.next_fingerprint(),
    }))
}

/// POST `/swarm/renew`: a new certificate for the caller's host, from a CSR's public key only
/// (CN = the host's name, SAN = its address, as at enrollment). The new fingerprint is pinned
/// at once; the presented certificate stays valid for the overlap, or until the host uses the
/// new one. Renewing with the previous certificate (the answer to an earlier renewal was lost)
/// abandons and revokes the never-used current one, and does not extend the overlap.
async fn renew(
    State(m): Ctx,
    Extension(peer): Extension<PeerCertificate>,
    body: axum::body::Bytes,
) -> Result<Json<RenewAnswer>, ApiError> {
    let (host, presented) = identify_body(&m, &peer, &body).await?;
    let req: RenewRequest = decnet_web::json::parse_json(&body)?;
    let (issued, not_after) = issue(&m, &req.csr_pem, host.name.as_str(), Some(&host.address))?;
    let now = m.clock.now();
    let overlap =
        chrono::Duration::from_std(m.settings.renewal_overlap).unwrap_or(chrono::Duration::MAX);
    let (previous, until) = match presented {
        Presented::Current => (
            host.fingerprint.clone(),
            now.checked_add_signed(overlap).unwrap_or(now),
        ),
        Presented::Previous => {
            m.repo
                .revoke_fingerprint(&host.fingerprint, now)
                .await
                .map_err(store_error)?;
            m.note_revoked(&host.fingerprint);
            (
                host.previous_fingerprint.clone().unwrap_or_default(),
                host.previous_valid_until.unwrap_or(now),
            )
        }
    };
    let renewal = CertRenewal {
        fingerprint: issued.fingerprint.clone(),
        cert_expires_at: not_after,
        previous_fingerprint: previous,
        previous_valid_until: until,
    };
    m.repo
        .renew_host_certificate(host.uuid, &renewal)
        .await
        .map_err(store_error)?;
    let mut renewed = host.clone();
    renewed.fingerprint = renewal.fingerprint.clone();
    renewed.cert_expires_at = Some(not_after);
    renewed.previous_fingerprint = Some(renewal.previous_fingerprint.clone());
    renewed.previous_valid_until = Some(until);
    m.remember_host(renewed);
    m.agents.forget(host.uuid);
    Metrics::inc(&m.metrics.renewals);
    tracing::info!(host = %host.name, uuid = %host.uuid, fingerprint = %issued.fingerprint, %not_after, "worker certificate renewed");
    Ok(Json(RenewAnswer {
        cert_pem: issued.cert_pem,
        ca_pem: m.pki.ca_pem().to_string(),
        not_after,
    }))
}

fn decnet_tls_eq(a: &str, b: &str) -> bool {
    super::layout::digest_eq(a, b)
}

async fn heartbeat(
    State(m): Ctx,
    Extension(peer): Extension<PeerCertificate>,
    body: axum::body::Bytes,
) -> Result<StatusCode, ApiError> {
    // Identity before anything else.
    let (host, presented) = identify_body(&m, &peer, &body).await?;
    let beat: HeartbeatBody = decnet_web::json::parse_json(&body)?;
    if let Err(why) = super::compat::check(beat.agent_version.as_deref(), beat.wire_version) {
        Metrics::inc(&m.metrics.heartbeats_incompatible);
        m.version_errors.note(host.uuid, Some(why.clone()));
        return Err(ApiError::conflict(why));
    }
    m.version_errors.note(host.uuid, None);
    let now = m.clock.now();
    if presented == Presented::Current && host.previous_fingerprint.is_some() {
        // The worker has proven its renewed certificate: the old one is revoked now.
        m.end_overlap(host.uuid, now).await.map_err(store_error)?;
    }
    m.note_heartbeat(&host, beat.agent_version.clone(), now)
        .await
        .map_err(store_error)?;
    Metrics::inc(&m.metrics.heartbeats_received);
    m.lifecycle()
        .ingest_heartbeat(host.uuid, &beat, now)
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

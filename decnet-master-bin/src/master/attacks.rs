//! Attacker events on the master (PRODUCT §10): the swarm intake `POST /swarm/events` and the
//! operator's `GET /api/v1/attacks` and `GET /api/v1/attackers`. The rules are core's
//! (`orchestrate::ingest`); this is the HTTP around them.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Extension, Json, Router};
use chrono::{DateTime, Utc};
use decnet_core::model::attack::{AttackKind, AttackQuery, MAX_ATTACK_PAGE};
use decnet_core::model::wire::{AttackPage, AttackersAnswer, EventBatch, EventBatchAnswer};
use decnet_core::orchestrate::ingest::check_batch;
use decnet_core::traits::{BusEvent, RepoError};
use decnet_web::{ApiError, PeerCertificate};

use super::auth::Caller;
use super::metrics::Metrics;
use super::state::Master;

type Ctx = State<Arc<Master>>;

fn store_error(e: RepoError) -> ApiError {
    tracing::error!(error = %e, "store error");
    ApiError::internal("store unavailable")
}

/// The operator routes.
pub fn routes() -> Router<Arc<Master>> {
    Router::new()
        .route("/api/v1/attacks", get(list))
        .route("/api/v1/attackers", get(attackers))
}

/// `POST /swarm/events`: a worker's batch, identified like a heartbeat; stored whole or
/// refused whole (4xx naming the field), idempotent by event id.
pub(crate) async fn ingest(
    State(m): Ctx,
    Extension(peer): Extension<PeerCertificate>,
    body: axum::body::Bytes,
) -> Result<Json<EventBatchAnswer>, ApiError> {
    let (host, _) = super::swarm::identify_body(&m, &peer, &body)
        .await
        .inspect_err(|_| Metrics::inc(&m.metrics.attack_batches_refused))?;
    let refused = |e: ApiError| {
        Metrics::inc(&m.metrics.attack_batches_refused);
        e
    };
    let batch: EventBatch = decnet_web::json::parse_json(&body).map_err(refused)?;
    // Assigned now, or torn down lately (the events a decky saw before its removal arrive
    // after it).
    let mut assigned: BTreeSet<String> = m
        .repo
        .shards(Some(host.uuid))
        .await
        .map_err(store_error)?
        .into_iter()
        .map(|s| s.decky_name.to_string())
        .collect();
    assigned.extend(m.retired_on(host.uuid, m.clock.now()));
    let events = check_batch(&host.uuid.to_string(), &assigned, batch.events)
        .map_err(|e| refused(ApiError::unprocessable(e.to_string())))?;
    let stored = m
        .repo
        .insert_attack_events(&events)
        .await
        .map_err(store_error)?;
    let duplicates = events.len() as u64 - stored;
    m.metrics.attack_events_stored.inc_by(stored);
    m.metrics.attack_events_duplicate.inc_by(duplicates);
    // Publishing is best effort, after the store; a batch delivered again publishes again
    // (the bus is at-least-once too, the id tells subscribers apart).
    for e in &events {
        m.publish(BusEvent::attack(e));
    }
    Ok(Json(EventBatchAnswer { stored, duplicates }))
}

/// Where the master's own (unihost) deckies' events go: straight into its store, stamped
/// `local`, and onto the bus.
pub struct StoreTransport {
    pub master: Arc<Master>,
}

impl std::fmt::Debug for StoreTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreTransport").finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl decnet_core::traits::EventTransport for StoreTransport {
    async fn send(
        &self,
        batch: &EventBatch,
    ) -> Result<decnet_core::traits::EventAck, decnet_core::traits::TransportError> {
        let mut events = batch.events.clone();
        for e in &mut events {
            e.host = crate::commands::attacks::LOCAL_HOST.to_string();
        }
        let stored = self
            .master
            .repo
            .insert_attack_events(&events)
            .await
            .map_err(|e| decnet_core::traits::TransportError::unreachable(e.to_string()))?;
        for e in &events {
            self.master.publish(BusEvent::attack(e));
        }
        Ok(decnet_core::traits::EventAck::Stored(EventBatchAnswer {
            stored,
            duplicates: events.len() as u64 - stored,
        }))
    }
}

/// How often retention runs (and once at start-up).
pub const RETENTION_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Applies a retention now — events older than `age`, then all but the newest `max` — and
/// returns how many were deleted.
pub async fn apply_retention(
    m: &Master,
    age: Option<std::time::Duration>,
    max: Option<u64>,
) -> Result<u64, RepoError> {
    let before = age
        .and_then(|d| chrono::Duration::from_std(d).ok())
        .and_then(|d| m.clock.now().checked_sub_signed(d));
    if before.is_none() && max.is_none() {
        return Ok(0);
    }
    m.repo.prune_attack_events(before, max).await
}

/// Retention at start-up, then every [`RETENTION_EVERY`], until `shutdown`.
pub async fn retention_loop(m: Arc<Master>, shutdown: tokio_util::sync::CancellationToken) {
    loop {
        let (age, max) = (m.settings.attack_retention, m.settings.attack_retention_max);
        match apply_retention(&m, age, max).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "attacker-event retention"),
            Err(e) => tracing::warn!(error = %e, "attacker-event retention failed"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(RETENTION_EVERY) => {}
        }
    }
}

/// Parses the query string of `GET /api/v1/attacks`; unknown parameters and bad values are
/// 400 naming the parameter.
pub fn parse_query(params: &HashMap<String, String>) -> Result<AttackQuery, ApiError> {
    let bad = |name: &str, rule: &str| ApiError::bad_request(format!("{name}: {rule}"));
    let time = |name: &str, v: &str| {
        DateTime::parse_from_rfc3339(v)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| bad(name, "an RFC 3339 time, e.g. 2026-12-03T06:00:00Z"))
    };
    let mut q = AttackQuery {
        limit: 100,
        ..AttackQuery::default()
    };
    for (k, v) in params {
        match k.as_str() {
            "since" => q.since = Some(time("since", v)?),
            "until" => q.until = Some(time("until", v)?),
            "decky" => q.decky = Some(v.clone()),
            "service" => q.service = Some(v.clone()),
            "src" => {
                q.src_ip = Some(v.parse().map_err(|_| bad("src", "an IP address"))?);
            }
            "kind" => {
                q.kind = Some(
                    serde_json::from_value::<AttackKind>(serde_json::Value::from(v.as_str()))
                        .ok()
                        .filter(|k| *k != AttackKind::Other)
                        .ok_or_else(|| {
                            bad("kind", "an attacker-event kind (connect, auth, command, …)")
                        })?,
                );
            }
            "after" => q.after = Some(v.parse().map_err(|_| bad("after", "an event id"))?),
            "limit" => {
                q.limit = v
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=MAX_ATTACK_PAGE).contains(n))
                    .ok_or_else(|| bad("limit", &format!("1 to {MAX_ATTACK_PAGE}")))?;
            }
            other => {
                return Err(bad(
                    other,
                    "unknown parameter (since, until, decky, src, service, kind, after, limit)",
                ))
            }
        }
    }
    Ok(q)
}

async fn list(
    State(m): Ctx,
    _caller: Caller,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<AttackPage>, ApiError> {
    let q = parse_query(&params)?;
    let events = m.repo.attack_events(&q).await.map_err(store_error)?;
    let next = if events.len() as u32 == q.page() {
        events.last().map(|e| e.id)
    } else {
        None
    };
    Ok(Json(AttackPage { events, next }))
}

async fn attackers(State(m): Ctx, _caller: Caller) -> Result<Json<AttackersAnswer>, ApiError> {
    let attackers = m.repo.attacker_profiles().await.map_err(store_error)?;
    Ok(Json(AttackersAnswer { attackers }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn queries_parse_and_bad_ones_name_the_parameter() {
        let q = parse_query(&params(&[
            ("since", "2026-12-03T06:00:00Z"),
            ("src", "10.0.0.9"),
            ("kind", "auth"),
            ("limit", "5"),
        ]))
        .expect("ok");
        assert_eq!(q.limit, 5);
        assert_eq!(q.kind, Some(AttackKind::Auth));
        assert_eq!(parse_query(&params(&[])).expect("default").limit, 100);
        for (k, v) in [
            ("since", "yesterday"),
            ("src", "10.0.0"),
            ("kind", "teleport"),
            ("limit", "0"),
            ("limit", "5000"),
            ("after", "x"),
            ("colour", "red"),
        ] {
            let err = parse_query(&params(&[(k, v)])).expect_err(k);
            assert!(err.to_string().contains(k), "{k}: {err}");
        }
    }
}

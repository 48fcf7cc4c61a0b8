//! Lifecycle transitions on the master: compare-and-set in the store, then a bus event.

use chrono::{DateTime, Utc};
use decnet_core::model::{
    HostUuid, LifecycleDelta, LifecycleRow, LifecycleStatus, Operation, ShardState,
};
use decnet_core::traits::{BusEvent, RepoError, StateTransition};
use uuid::Uuid;

use super::metrics::Metrics;
use super::state::Master;

/// Moves row `id` to `to` and publishes `decky.<name>.lifecycle` when it changed. Terminal
/// rows never change: that is an `Ok(None)`, not an error.
pub async fn transition(
    m: &Master,
    id: Uuid,
    to: LifecycleStatus,
    error: Option<String>,
    now: DateTime<Utc>,
) -> Result<Option<LifecycleRow>, RepoError> {
    let before = m.repo.lifecycle_rows(&[id]).await?.into_iter().next();
    let Some(before) = before else {
        return Ok(None);
    };
    match m.repo.transition_lifecycle(id, to, error, now).await {
        Ok(row) => {
            if row.status != before.status {
                m.publish(BusEvent::lifecycle(
                    &row.decky_name,
                    row.id,
                    row.operation,
                    row.status,
                    row.error.as_deref(),
                ));
                if row.status.is_terminal() {
                    settle_shard(m, &row, now).await?;
                }
                return Ok(Some(row));
            }
            Ok(None)
        }
        Err(RepoError::Transition(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A closed row settles its decky's shard: running or failed after a deploy or mutate, gone
/// (or teardown_failed) after a teardown. Observed-state events go on the bus.
async fn settle_shard(m: &Master, row: &LifecycleRow, now: DateTime<Utc>) -> Result<(), RepoError> {
    let host = row.host_uuid.unwrap_or(HostUuid::LOCAL);
    let shard = m
        .repo
        .shards(Some(host))
        .await?
        .into_iter()
        .find(|s| s.decky_name == row.decky_name);
    m.observed
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&(host, row.decky_name.to_string()));
    let ok = row.status == LifecycleStatus::Succeeded;
    match (row.operation, shard) {
        (Operation::Teardown, Some(_)) if ok => {
            // Retired first: an event batch racing the delete finds the decky in one or the
            // other, never in neither.
            m.note_retired(host, row.decky_name.as_str(), m.clock.now());
            m.repo.delete_shard(host, &row.decky_name).await?;
            m.publish(BusEvent::state(
                host,
                &row.decky_name,
                "torn_down",
                StateTransition::Deleted,
            ));
        }
        (op, Some(mut s)) => {
            let previous = s.state;
            s.state = match (op, ok) {
                (Operation::Teardown, _) => ShardState::TeardownFailed,
                (_, true) => ShardState::Running,
                (_, false) => ShardState::Failed,
            };
            s.last_error = row.error.clone();
            s.updated_at = now;
            m.repo.upsert_shard(&s).await?;
            if previous != s.state {
                m.publish(BusEvent::state(
                    host,
                    &row.decky_name,
                    s.state.as_str(),
                    StateTransition::StateChanged {
                        previous: previous.as_str(),
                    },
                ));
            }
        }
        (_, None) => {}
    }
    Ok(())
}

/// Closes the row a worker's delta speaks of: by `lifecycle_id` when given (and only if that
/// row belongs to the reporting host), else the oldest open row of that decky and operation on
/// that host. Applying the same delta twice changes nothing.
pub async fn apply_delta(
    m: &Master,
    host: HostUuid,
    delta: &LifecycleDelta,
) -> Result<bool, RepoError> {
    let row = match delta.lifecycle_id {
        Some(id) => m.repo.lifecycle_rows(&[id]).await?.into_iter().next(),
        None => {
            m.repo
                .find_open_lifecycle(&delta.decky_name, delta.operation, Some(host))
                .await?
        }
    };
    let Some(row) = row else {
        tracing::debug!(decky = %delta.decky_name, delta = %delta.id, "delta matches no open row");
        return Ok(false);
    };
    if row.host_uuid != Some(host) {
        tracing::warn!(decky = %delta.decky_name, %host, "delta for another host's row ignored");
        return Ok(false);
    }
    let changed = transition(
        m,
        row.id,
        delta.status.into(),
        delta.error.clone(),
        delta.completed_at,
    )
    .await?
    .is_some();
    if changed {
        Metrics::inc(&m.metrics.deltas_applied);
    }
    Ok(changed)
}

//! What the master keeps of the core lifecycle's work ([`decnet_core::orchestrate::Lifecycle`]):
//! the retired deckies whose late events it still accepts, metrics and logs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use decnet_core::model::{DeckyName, HostUuid, LifecycleDelta};
use decnet_core::orchestrate::LifecycleHooks;

use super::metrics::Metrics;
use super::state::RETIRED_EVENTS_GRACE;

/// Deckies torn down per host, and when.
pub type Retired = Arc<Mutex<HashMap<(HostUuid, String), DateTime<Utc>>>>;

/// The master's [`LifecycleHooks`].
#[derive(Debug, Clone)]
pub struct MasterHooks {
    pub retired: Retired,
    pub metrics: Arc<Metrics>,
}

impl LifecycleHooks for MasterHooks {
    fn shard_retiring(&self, host: HostUuid, decky: &DeckyName, at: DateTime<Utc>) {
        note_retired(&self.retired, host, decky.as_str(), at);
    }

    fn delta_applied(&self) {
        Metrics::inc(&self.metrics.deltas_applied);
    }

    fn delta_ignored(&self, host: HostUuid, delta: &LifecycleDelta, why: &'static str) {
        if why == "no open row" {
            tracing::debug!(decky = %delta.decky_name, delta = %delta.id, "delta matches no open row");
        } else {
            tracing::warn!(decky = %delta.decky_name, %host, "delta ignored: {why}");
        }
    }

    fn dispatched(&self, host: HostUuid, error: Option<&str>) {
        match error {
            None => Metrics::inc(&self.metrics.dispatches_accepted),
            Some(error) => {
                Metrics::inc(&self.metrics.dispatches_failed);
                tracing::warn!(%host, %error, "dispatch failed; probed the agent");
            }
        }
    }
}

/// Notes `decky` on `host` as retired at `now`, forgetting entries past the grace.
pub fn note_retired(retired: &Retired, host: HostUuid, decky: &str, now: DateTime<Utc>) {
    let mut r = retired.lock().unwrap_or_else(|p| p.into_inner());
    r.retain(|_, at| now - *at < RETIRED_EVENTS_GRACE);
    r.insert((host, decky.to_string()), now);
}

/// The master's [`decnet_core::orchestrate::SwarmHooks`]: metrics and logs of enrollment,
/// identity, heartbeats and renewal.
#[derive(Debug, Clone)]
pub struct MasterSwarmHooks {
    pub metrics: Arc<Metrics>,
}

impl decnet_core::orchestrate::SwarmHooks for MasterSwarmHooks {
    fn enrolled(&self, host: &decnet_core::model::Host) {
        Metrics::inc(&self.metrics.enrollments);
        tracing::info!(host = %host.name, uuid = %host.uuid, "worker enrolled");
    }

    fn enroll_refused(&self) {
        Metrics::inc(&self.metrics.enroll_refused);
    }

    fn identity_refused(&self) {
        Metrics::inc(&self.metrics.heartbeats_rejected);
    }

    fn heartbeat(&self, _host: HostUuid) {
        Metrics::inc(&self.metrics.heartbeats_received);
    }

    fn incompatible(&self, _host: HostUuid, _reason: &str) {
        Metrics::inc(&self.metrics.heartbeats_incompatible);
    }

    fn renewed(&self, host: &decnet_core::model::Host) {
        Metrics::inc(&self.metrics.renewals);
        tracing::info!(host = %host.name, uuid = %host.uuid, fingerprint = %host.fingerprint, not_after = ?host.cert_expires_at, "worker certificate renewed");
    }
}

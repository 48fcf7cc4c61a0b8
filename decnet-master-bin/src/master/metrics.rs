//! `/metrics` in Prometheus text format through `prometheus-client`: names prefixed
//! `decnet_`, no decky names or IPs in labels (only states, statuses, operations, results).
//!
//! Counters and histograms live in [`Metrics`] for the process's life; the gauges that
//! describe the store (deckies by state, open lifecycle rows, hosts and their heartbeat age)
//! are computed from it at each scrape ([`Facts`]), so a state nobody is in any more reads 0
//! instead of lingering.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use decnet_core::model::{
    Host, HostStatus, LifecycleRow, LifecycleStatus, Operation, Shard, ShardState,
};
use decnet_web::metrics::prometheus_client::metrics::counter::Counter;
use decnet_web::metrics::prometheus_client::metrics::family::Family;
use decnet_web::metrics::prometheus_client::metrics::gauge::Gauge;
use decnet_web::metrics::prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use decnet_web::metrics::prometheus_client::registry::Registry;

/// Label sets: a few fixed keys, values from closed sets.
pub type Labels = Vec<(&'static str, String)>;

fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, (*v).to_string())).collect()
}

fn duration_histogram() -> Histogram {
    // 0.25 s … ~34 min: a local decky comes up in seconds, a worker's deploy may take minutes.
    Histogram::new(exponential_buckets(0.25, 2.0, 14))
}

/// The master's counters and histograms.
#[derive(Debug)]
pub struct Metrics {
    pub heartbeats_received: Counter,
    pub heartbeats_rejected: Counter,
    pub deltas_applied: Counter,
    pub enrollments: Counter,
    /// Worker certificates renewed.
    pub renewals: Counter,
    pub enroll_refused: Counter,
    /// Work sent to agents: answered 2xx, or not (then the agent was probed).
    pub dispatches_accepted: Counter,
    pub dispatches_failed: Counter,
    /// Attacker events stored from workers' batches, and the ones delivered again.
    pub attack_events_stored: Counter,
    pub attack_events_duplicate: Counter,
    /// Event batches refused (identity or a broken rule).
    pub attack_batches_refused: Counter,
    /// Heartbeats from agents whose wire version this master does not speak.
    pub heartbeats_incompatible: Counter,
    /// Lifecycle rows that reached a terminal status, by operation and status.
    pub lifecycle_completed: Family<Labels, Counter>,
    /// Seconds from a row's creation to its terminal status, by operation and status.
    pub operation_duration: Family<Labels, Histogram, fn() -> Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            heartbeats_received: Counter::default(),
            heartbeats_rejected: Counter::default(),
            deltas_applied: Counter::default(),
            enrollments: Counter::default(),
            renewals: Counter::default(),
            enroll_refused: Counter::default(),
            dispatches_accepted: Counter::default(),
            dispatches_failed: Counter::default(),
            attack_events_stored: Counter::default(),
            attack_events_duplicate: Counter::default(),
            attack_batches_refused: Counter::default(),
            heartbeats_incompatible: Counter::default(),
            lifecycle_completed: Family::default(),
            operation_duration: Family::new_with_constructor(duration_histogram),
        }
    }
}

/// What a scrape reads from the store and the PKI.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub hosts: Vec<Host>,
    pub shards: Vec<Shard>,
    pub open_rows: Vec<LifecycleRow>,
    /// `(which, notAfter)`: `ca`, `master`.
    pub expiries: Vec<(&'static str, std::time::SystemTime)>,
    pub now: DateTime<Utc>,
}

impl Metrics {
    pub fn inc(counter: &Counter) {
        counter.inc();
    }

    /// Counts a row that reached a terminal status and observes how long it took.
    pub fn row_completed(&self, row: &LifecycleRow) {
        if !row.status.is_terminal() {
            return;
        }
        let l = labels(&[
            ("operation", row.operation.as_str()),
            ("status", row.status.as_str()),
        ]);
        self.lifecycle_completed.get_or_create(&l).inc();
        let end = row.completed_at.unwrap_or(row.updated_at);
        let secs = (end - row.started_at).num_milliseconds().max(0) as f64 / 1000.0;
        self.operation_duration.get_or_create(&l).observe(secs);
    }

    /// Every metric, with the gauges computed from `facts`.
    pub fn render(&self, facts: &Facts) -> String {
        let mut r = Registry::with_prefix("decnet");
        self.register(&mut r, facts);
        decnet_web::metrics::register_process(&mut r);
        decnet_web::metrics::encode(&r)
    }

    fn register(&self, r: &mut Registry, f: &Facts) {
        let info: Family<Labels, Gauge> = Family::default();
        info.get_or_create(&labels(&[("version", env!("CARGO_PKG_VERSION"))]))
            .set(1);
        r.register("build_info", "Build information", info);

        let hosts: Family<Labels, Gauge> = Family::default();
        let age: Family<Labels, Gauge> = Family::default();
        for status in [
            HostStatus::Enrolled,
            HostStatus::Active,
            HostStatus::Unreachable,
        ] {
            let of: Vec<&Host> = f.hosts.iter().filter(|h| h.status == status).collect();
            let l = labels(&[("status", status.as_str())]);
            hosts.get_or_create(&l).set(of.len() as i64);
            // The oldest heartbeat of the hosts in this status (hosts that never sent one
            // are not counted): how far behind the worst of them is.
            if let Some(oldest) = of.iter().filter_map(|h| h.last_heartbeat).min() {
                age.get_or_create(&l)
                    .set((f.now - oldest).num_seconds().max(0));
            }
        }
        r.register("hosts", "Enrolled worker hosts by status", hosts);
        r.register(
            "host_heartbeat_age_seconds",
            "Seconds since the oldest last heartbeat of the hosts in each status",
            age,
        );
        let versions: Family<Labels, Gauge> = Family::default();
        for h in &f.hosts {
            let v = h.agent_version.as_deref().unwrap_or("unknown");
            versions.get_or_create(&labels(&[("version", v)])).inc();
        }
        r.register(
            "hosts_by_agent_version",
            "Enrolled worker hosts by the agent version their last heartbeat reported",
            versions,
        );

        let deckies: Family<Labels, Gauge> = Family::default();
        for state in ShardState::ALL {
            let n = f.shards.iter().filter(|s| s.state == state).count();
            deckies
                .get_or_create(&labels(&[("state", state.as_str())]))
                .set(n as i64);
        }
        r.register("deckies", "Deckies of the fleet by state", deckies);

        let open: Family<Labels, Gauge> = Family::default();
        for op in Operation::ALL {
            for status in [LifecycleStatus::Pending, LifecycleStatus::Running] {
                let n = f
                    .open_rows
                    .iter()
                    .filter(|row| row.operation == op && row.status == status)
                    .count();
                open.get_or_create(&labels(&[
                    ("operation", op.as_str()),
                    ("status", status.as_str()),
                ]))
                .set(n as i64);
            }
        }
        r.register(
            "lifecycle_open_rows",
            "Lifecycle rows not finished yet, by operation and status",
            open,
        );
        r.register(
            "lifecycle_rows_completed",
            "Lifecycle rows finished since the master started, by operation and status",
            self.lifecycle_completed.clone(),
        );
        r.register(
            "operation_duration_seconds",
            "Seconds from a lifecycle row's creation to its end, by operation and status",
            self.operation_duration.clone(),
        );

        let expiry: Family<Labels, Gauge> = Family::default();
        for (which, at) in &f.expiries {
            let secs = at
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            expiry
                .get_or_create(&labels(&[("cert", which)]))
                .set(i64::try_from(secs).unwrap_or(i64::MAX));
        }
        r.register(
            "cert_expiry_timestamp_seconds",
            "When the CA and the master certificate expire (Unix time)",
            expiry,
        );

        let counters: [(&str, &str, &Counter); 10] = [
            (
                "heartbeats_received",
                "Heartbeats accepted",
                &self.heartbeats_received,
            ),
            (
                "heartbeats_rejected",
                "Heartbeats refused (identity)",
                &self.heartbeats_rejected,
            ),
            (
                "heartbeats_incompatible",
                "Heartbeats from agents speaking a wire version this master does not",
                &self.heartbeats_incompatible,
            ),
            (
                "lifecycle_deltas_applied",
                "Lifecycle deltas that changed a row",
                &self.deltas_applied,
            ),
            ("enrollments", "Workers enrolled", &self.enrollments),
            (
                "cert_renewals",
                "Worker certificates renewed",
                &self.renewals,
            ),
            (
                "enroll_refused",
                "Enrollment attempts refused",
                &self.enroll_refused,
            ),
            (
                "attack_events_stored",
                "Attacker events stored from workers",
                &self.attack_events_stored,
            ),
            (
                "attack_events_duplicate",
                "Attacker events delivered again (already stored)",
                &self.attack_events_duplicate,
            ),
            (
                "attack_batches_refused",
                "Attacker-event batches refused",
                &self.attack_batches_refused,
            ),
        ];
        for (name, help, c) in counters {
            r.register(name, help, c.clone());
        }
        let dispatches: Family<Labels, Counter> = Family::default();
        for (result, c) in [
            ("accepted", &self.dispatches_accepted),
            ("failed", &self.dispatches_failed),
        ] {
            dispatches
                .get_or_create(&labels(&[("result", result)]))
                .inc_by(c.get());
        }
        r.register(
            "dispatches",
            "Work sent to worker agents, by answer",
            dispatches,
        );
    }
}

/// Follows the bus: every lifecycle row that reaches a terminal status is looked up in the
/// store and counted ([`Metrics::row_completed`]). Runs until `shutdown`.
pub fn spawn_row_observer(
    master: Arc<super::state::Master>,
    bus: &super::state::BroadcastBus,
    shutdown: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let mut rx = bus.subscribe();
    tokio::spawn(async move {
        loop {
            let event = tokio::select! {
                _ = shutdown.cancelled() => return,
                e = rx.recv() => e,
            };
            let event = match event {
                Ok(e) => e,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::debug!(missed = n, "metrics fell behind the bus");
                    continue;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            };
            let (_, event) = event;
            let body = &event.body;
            if !event.topic.ends_with(".lifecycle") {
                continue;
            }
            let terminal = body["status"]
                .as_str()
                .is_some_and(|s| s == "succeeded" || s == "failed");
            let Some(id) = body["lifecycle_id"]
                .as_str()
                .and_then(|s| uuid::Uuid::parse_str(s).ok())
            else {
                continue;
            };
            if !terminal {
                continue;
            }
            match master.repo.lifecycle_rows(&[id]).await {
                Ok(rows) => rows.iter().for_each(|r| master.metrics.row_completed(r)),
                Err(e) => tracing::debug!(error = %e, "metrics: lifecycle row lookup"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use decnet_core::model::DeckyName;

    fn row(op: Operation, status: LifecycleStatus, secs: i64) -> LifecycleRow {
        let t0 = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap();
        LifecycleRow {
            id: uuid::Uuid::new_v4(),
            decky_name: DeckyName::new("secret-decky").unwrap(),
            host_uuid: None,
            operation: op,
            status,
            error: None,
            started_at: t0,
            updated_at: t0 + chrono::Duration::seconds(secs),
            completed_at: status
                .is_terminal()
                .then(|| t0 + chrono::Duration::seconds(secs)),
        }
    }

    #[test]
    fn rows_states_and_durations_without_names() {
        let m = Metrics::default();
        m.row_completed(&row(Operation::Deploy, LifecycleStatus::Succeeded, 3));
        m.row_completed(&row(Operation::Deploy, LifecycleStatus::Succeeded, 5));
        m.row_completed(&row(Operation::Teardown, LifecycleStatus::Failed, 1));
        m.row_completed(&row(Operation::Mutate, LifecycleStatus::Running, 1));
        Metrics::inc(&m.dispatches_accepted);
        let facts = Facts {
            open_rows: vec![row(Operation::Mutate, LifecycleStatus::Running, 1)],
            now: Utc::now(),
            ..Facts::default()
        };
        let text = m.render(&facts);
        for line in [
            "decnet_lifecycle_rows_completed_total{operation=\"deploy\",status=\"succeeded\"} 2\n",
            "decnet_lifecycle_rows_completed_total{operation=\"teardown\",status=\"failed\"} 1\n",
            "decnet_operation_duration_seconds_count{operation=\"deploy\",status=\"succeeded\"} 2\n",
            "decnet_operation_duration_seconds_sum{operation=\"deploy\",status=\"succeeded\"} 8.0\n",
            "decnet_lifecycle_open_rows{operation=\"mutate\",status=\"running\"} 1\n",
            "decnet_lifecycle_open_rows{operation=\"deploy\",status=\"pending\"} 0\n",
            "decnet_deckies{state=\"running\"} 0\n",
            "decnet_hosts{status=\"active\"} 0\n",
            "decnet_dispatches_total{result=\"accepted\"} 1\n",
            "decnet_dispatches_total{result=\"failed\"} 0\n",
            "# TYPE decnet_heartbeats_received_total counter\n",
            "decnet_heartbeats_received_total 0\n",
        ] {
            assert!(text.contains(line), "{line}{text}");
        }
        assert!(!text.contains("mutate\",status=\"running\"} 1\ndecnet_lifecycle_rows_completed"));
        assert!(!text.contains("secret-decky"), "{text}");
    }
}

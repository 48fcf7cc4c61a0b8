//! `/metrics` in Prometheus text format: names prefixed `decnet_`, no decky names or IPs in
//! labels.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use decnet_core::model::{Host, HostStatus};

#[derive(Debug, Default)]
pub struct Metrics {
    pub heartbeats_received: AtomicU64,
    pub heartbeats_rejected: AtomicU64,
    pub deltas_applied: AtomicU64,
    pub enrollments: AtomicU64,
    /// Worker certificates renewed.
    pub renewals: AtomicU64,
    pub enroll_refused: AtomicU64,
    /// Work sent to agents: answered 2xx, or not (then the agent was probed).
    pub dispatches_accepted: AtomicU64,
    pub dispatches_failed: AtomicU64,
    /// Attacker events stored from workers' batches, and the ones delivered again.
    pub attack_events_stored: AtomicU64,
    pub attack_events_duplicate: AtomicU64,
    /// Event batches refused (identity or a broken rule).
    pub attack_batches_refused: AtomicU64,
}

impl Metrics {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Renders every metric; `hosts` gives the hosts-by-status gauge, `expiries` the
    /// certificate-expiry gauges (`(which, notAfter)`: `ca`, `master`).
    pub fn render(&self, hosts: &[Host], expiries: &[(&str, std::time::SystemTime)]) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# HELP decnet_build_info Build information.");
        let _ = writeln!(out, "# TYPE decnet_build_info gauge");
        let _ = writeln!(
            out,
            "decnet_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        let _ = writeln!(out, "# HELP decnet_hosts Enrolled worker hosts by status.");
        let _ = writeln!(out, "# TYPE decnet_hosts gauge");
        for status in [
            HostStatus::Enrolled,
            HostStatus::Active,
            HostStatus::Unreachable,
        ] {
            let n = hosts.iter().filter(|h| h.status == status).count();
            let _ = writeln!(out, "decnet_hosts{{status=\"{status}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP decnet_cert_expiry_timestamp_seconds When the CA and the master certificate expire (Unix time)."
        );
        let _ = writeln!(out, "# TYPE decnet_cert_expiry_timestamp_seconds gauge");
        for (which, at) in expiries {
            let secs = at
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            let _ = writeln!(
                out,
                "decnet_cert_expiry_timestamp_seconds{{cert=\"{which}\"}} {secs}"
            );
        }
        let counters = [
            (
                "heartbeats_received_total",
                "Heartbeats accepted.",
                &self.heartbeats_received,
            ),
            (
                "heartbeats_rejected_total",
                "Heartbeats refused (identity).",
                &self.heartbeats_rejected,
            ),
            (
                "lifecycle_deltas_applied_total",
                "Lifecycle deltas that changed a row.",
                &self.deltas_applied,
            ),
            ("enrollments_total", "Workers enrolled.", &self.enrollments),
            (
                "cert_renewals_total",
                "Worker certificates renewed.",
                &self.renewals,
            ),
            (
                "enroll_refused_total",
                "Enrollment attempts refused.",
                &self.enroll_refused,
            ),
            (
                "attack_events_stored_total",
                "Attacker events stored from workers.",
                &self.attack_events_stored,
            ),
            (
                "attack_events_duplicate_total",
                "Attacker events delivered again (already stored).",
                &self.attack_events_duplicate,
            ),
            (
                "attack_batches_refused_total",
                "Attacker-event batches refused.",
                &self.attack_batches_refused,
            ),
        ];
        for (name, help, c) in counters {
            let _ = writeln!(out, "# HELP decnet_{name} {help}");
            let _ = writeln!(out, "# TYPE decnet_{name} counter");
            let _ = writeln!(out, "decnet_{name} {}", c.load(Ordering::Relaxed));
        }
        let _ = writeln!(
            out,
            "# HELP decnet_dispatches_total Work sent to worker agents, by answer."
        );
        let _ = writeln!(out, "# TYPE decnet_dispatches_total counter");
        for (result, c) in [
            ("accepted", &self.dispatches_accepted),
            ("failed", &self.dispatches_failed),
        ] {
            let _ = writeln!(
                out,
                "decnet_dispatches_total{{result=\"{result}\"}} {}",
                c.load(Ordering::Relaxed)
            );
        }
        out
    }
}

//! The agent's own `/metrics` (Prometheus text through `prometheus-client`), on a listener of
//! its own: plain HTTP, bound to loopback by default (`--metrics-bind`, `DECNET_METRICS_BIND`),
//! apart from the mutual-TLS agent API whose every client is the master.
//!
//! Work queue depth, lifecycle outbox depth, the attacker-event spool (bytes, segments,
//! events dropped), whether the agent is enrolled, and this process's CPU, memory and file
//! descriptors. No decky names or addresses.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use decnet_core::orchestrate::pipeline::EventPipeline;
use decnet_web::metrics::prometheus_client::metrics::counter::ConstCounter;
use decnet_web::metrics::prometheus_client::metrics::family::Family;
use decnet_web::metrics::prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use decnet_web::metrics::prometheus_client::registry::Registry;
use decnet_web::ServeLimits;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::outbox::Outbox;
use crate::queue::WorkQueue;

/// Default address of the metrics listener.
pub const DEFAULT_METRICS_BIND: &str = "127.0.0.1:8766";

/// What the agent's metrics read.
#[derive(Debug, Clone)]
pub struct AgentMetrics {
    pub queue: Arc<WorkQueue>,
    pub outbox: Arc<Outbox>,
    /// The attacker-event pipeline (enrolled agents).
    pub events: Option<Arc<EventPipeline>>,
    pub enrolled: bool,
}

impl AgentMetrics {
    /// Every metric, now.
    pub async fn render(&self) -> String {
        let mut r = Registry::with_prefix("decnet");
        let info: Family<Vec<(&'static str, String)>, Gauge> = Family::default();
        info.get_or_create(&vec![("version", env!("CARGO_PKG_VERSION").to_string())])
            .set(1);
        r.register("agent_build_info", "Build information", info);
        r.register(
            "agent_enrolled",
            "1 when this agent has an enrolled identity (and heartbeats)",
            ConstGauge::new(i64::from(self.enrolled)),
        );
        r.register(
            "agent_queue_depth",
            "Jobs in the work queue (waiting or running)",
            ConstGauge::new(self.queue.len() as i64),
        );
        r.register(
            "agent_outbox_depth",
            "Lifecycle deltas in the outbox, not yet acknowledged by the master",
            ConstGauge::new(self.outbox.len() as i64),
        );
        let stats = match &self.events {
            Some(p) => p.stats().await,
            None => None,
        };
        let stats = stats.unwrap_or_default();
        r.register(
            "agent_event_spool_bytes",
            "Bytes of attacker events spooled on disk, not yet shipped to the master",
            ConstGauge::new(i64::try_from(stats.bytes).unwrap_or(i64::MAX)),
        );
        r.register(
            "agent_event_spool_segments",
            "Segment files of the attacker-event spool",
            ConstGauge::new(stats.segments as i64),
        );
        r.register(
            "agent_events_dropped",
            "Attacker events dropped because the spool was full (since the spool was made)",
            ConstCounter::new(stats.dropped_total),
        );
        decnet_web::metrics::register_process(&mut r);
        decnet_web::metrics::encode(&r)
    }
}

async fn metrics(State(m): State<Arc<AgentMetrics>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, decnet_web::metrics::CONTENT_TYPE)],
        m.render().await,
    )
}

/// `GET /metrics`.
pub fn router(m: Arc<AgentMetrics>) -> Router {
    Router::new().route("/metrics", get(metrics)).with_state(m)
}

/// Serves [`router`] on `listener` (plain HTTP) until `shutdown`.
pub fn spawn(
    listener: TcpListener,
    m: AgentMetrics,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let app = router(Arc::new(m));
    tokio::spawn(async move {
        if let Err(e) =
            decnet_web::serve(listener, None, app, ServeLimits::default(), shutdown).await
        {
            tracing::error!(error = %e, "metrics listener stopped");
        }
    })
}

/// Whether `addr` is a loopback address (the default); the agent warns otherwise, since the
/// listener has no TLS and no token.
pub fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}

//! The heartbeat loop (PRODUCT §5, §6): the agent's status and its pending lifecycle deltas,
//! sent to the master at start-up, every interval (jittered) and at once when work finishes.
//!
//! A heartbeat carries at most `max_deltas` deltas, oldest first. A 204 acknowledges exactly
//! the deltas that heartbeat carried (never one recorded while it was in flight); when more are
//! pending the next heartbeat goes out at once. Anything else keeps them and retries with a
//! backoff that starts at [`FIRST_BACKOFF`], doubles, and never exceeds one interval, so a
//! master that comes back hears from the agent within an interval.

use std::sync::Arc;
use std::time::Duration;

use crate::model::{AgentStatus, HeartbeatBody, HostUuid};
use crate::traits::{HeartbeatAck, HeartbeatTransport};
use rand::Rng;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::adapters::outbox::Outbox;

/// Default time between heartbeats.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
/// Default bound on the deltas one heartbeat carries.
pub const DEFAULT_MAX_DELTAS: usize = 100;
/// Default jitter: each interval is drawn from ±10 % of the nominal one.
pub const DEFAULT_JITTER: f64 = 0.10;
/// The first retry delay after a failed heartbeat; it doubles up to one interval.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// Work done before each heartbeat (at start-up and on every tick): the agent renews its
/// certificate when due, keeps its master pins in step. Failures are the hook's to log; the
/// heartbeat goes out regardless.
#[async_trait::async_trait]
pub trait BeforeBeat: Send + Sync {
    /// Runs before one heartbeat.
    async fn before_beat(&self);
}

/// Where the heartbeat's `status` comes from (the same snapshot `GET /status` answers).
#[async_trait::async_trait]
pub trait StatusSource: Send + Sync {
    /// The agent's status now.
    async fn snapshot(&self) -> AgentStatus;
}

/// The heartbeat loop's configuration and collaborators. Build it with [`HeartbeatLoop::new`]
/// and adjust the public fields, then [`run`](HeartbeatLoop::run) it.
pub struct HeartbeatLoop {
    /// How a heartbeat reaches the master.
    pub transport: Arc<dyn HeartbeatTransport>,
    /// The lifecycle deltas waiting for the master; a heartbeat carries the oldest.
    pub outbox: Arc<Outbox>,
    /// The status snapshot each heartbeat carries.
    pub status: Arc<dyn StatusSource>,
    /// This worker's enrolled host id.
    pub host_uuid: HostUuid,
    /// The agent's version (`CARGO_PKG_VERSION` of the agent), sent in every heartbeat.
    pub agent_version: String,
    /// Nominal time between heartbeats (default 30 s).
    pub interval: Duration,
    /// Most deltas one heartbeat carries (default 100; at least 1 is used).
    pub max_deltas: usize,
    /// Fraction of the interval drawn at random either side of it (default 0.10; 0 = none).
    /// Retry delays only ever get shorter by it, so they stay within one interval.
    pub jitter: f64,
    /// Run in order before every heartbeat (so at start-up and on each tick); the agent's
    /// certificate renewal and master-pin check, so the heartbeat goes out with what they did.
    pub before_beat: Vec<Arc<dyn BeforeBeat>>,
}

impl std::fmt::Debug for HeartbeatLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeartbeatLoop")
            .field("host_uuid", &self.host_uuid)
            .field("agent_version", &self.agent_version)
            .field("interval", &self.interval)
            .field("max_deltas", &self.max_deltas)
            .field("jitter", &self.jitter)
            .field("pending", &self.outbox.len())
            .finish_non_exhaustive()
    }
}

/// What one heartbeat attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    /// 204, and the outbox still holds deltas: send again at once.
    AcceptedMorePending,
    /// 204, nothing left to push.
    Accepted,
    /// Rejected or unreachable: back off.
    Failed,
}

impl HeartbeatLoop {
    /// A loop with the defaults: 30 s interval, 100 deltas per heartbeat, ±10 % jitter, this
    /// crate's version.
    pub fn new(
        transport: Arc<dyn HeartbeatTransport>,
        outbox: Arc<Outbox>,
        status: Arc<dyn StatusSource>,
        host_uuid: HostUuid,
    ) -> Self {
        Self {
            transport,
            outbox,
            status,
            host_uuid,
            agent_version: env!("CARGO_PKG_VERSION").to_string(),
            interval: DEFAULT_INTERVAL,
            max_deltas: DEFAULT_MAX_DELTAS,
            jitter: DEFAULT_JITTER,
            before_beat: Vec::new(),
        }
    }

    /// Runs until `shutdown` is cancelled: one heartbeat at once, then one per interval, or
    /// sooner when `wake` is notified (work finished) or more deltas are pending.
    pub async fn run(self, wake: Arc<Notify>, shutdown: CancellationToken) {
        let span = tracing::info_span!("heartbeat", host_uuid = %self.host_uuid);
        self.run_inner(wake, shutdown).instrument(span).await
    }

    async fn run_inner(self, wake: Arc<Notify>, shutdown: CancellationToken) {
        let interval = self.interval.max(Duration::from_millis(1));
        let mut backoff: Option<Duration> = None;
        tracing::info!(
            interval_s = interval.as_secs_f64(),
            "heartbeat loop started"
        );
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            let attempt = tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                a = self.beat(interval) => a,
            };
            let wait = match attempt {
                Attempt::AcceptedMorePending => {
                    backoff = None;
                    Duration::ZERO
                }
                Attempt::Accepted => {
                    backoff = None;
                    self.jittered(interval)
                }
                Attempt::Failed => {
                    let next = next_backoff(backoff, interval);
                    backoff = Some(next);
                    self.shortened(next)
                }
            };
            if wait.is_zero() {
                continue;
            }
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = wake.notified() => {
                    tracing::debug!("heartbeat woken early");
                }
                _ = tokio::time::sleep(wait) => {}
            }
        }
        tracing::info!("heartbeat loop stopped");
    }

    /// Sends one heartbeat and acks what it carried when the master accepted it.
    async fn beat(&self, timeout: Duration) -> Attempt {
        for hook in &self.before_beat {
            hook.before_beat().await;
        }
        let status = self.status.snapshot().await;
        let lifecycle = self.outbox.pending(self.max_deltas.max(1));
        let sent: Vec<Uuid> = lifecycle.iter().map(|d| d.id).collect();
        let body = HeartbeatBody {
            host_uuid: self.host_uuid,
            agent_version: Some(self.agent_version.clone()),
            wire_version: Some(crate::model::WIRE_VERSION),
            status,
            lifecycle,
        };
        // A transport without its own timeout must not stall the loop past an interval.
        let result = tokio::time::timeout(timeout, self.transport.send(&body)).await;
        match result {
            Ok(Ok(HeartbeatAck::Accepted)) => {
                if sent.is_empty() {
                    tracing::debug!("heartbeat accepted");
                    return Attempt::Accepted;
                }
                let outbox = self.outbox.clone();
                let ids = sent.clone();
                let acked = tokio::task::spawn_blocking(move || outbox.ack(&ids)).await;
                match acked {
                    Ok(Ok(())) => {}
                    // The deltas left the pending set anyway (see `Outbox::ack`).
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "acknowledged deltas not removed from disk")
                    }
                    Err(e) => {
                        // Unknown outbox state: do not spin on it, wait an interval.
                        tracing::warn!(error = %e, "outbox ack task failed");
                        return Attempt::Accepted;
                    }
                }
                tracing::info!(
                    deltas = sent.len(),
                    pending = self.outbox.len(),
                    "heartbeat accepted, deltas acknowledged"
                );
                if self.outbox.is_empty() {
                    Attempt::Accepted
                } else {
                    Attempt::AcceptedMorePending
                }
            }
            Ok(Ok(HeartbeatAck::Rejected { status })) => {
                tracing::warn!(
                    status,
                    pending = sent.len(),
                    "heartbeat rejected by the master"
                );
                Attempt::Failed
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, pending = sent.len(), "heartbeat failed");
                Attempt::Failed
            }
            Err(_) => {
                tracing::warn!(timeout_s = timeout.as_secs_f64(), "heartbeat timed out");
                Attempt::Failed
            }
        }
    }

    fn jitter_fraction(&self) -> f64 {
        if self.jitter.is_finite() {
            self.jitter.clamp(0.0, 0.5)
        } else {
            0.0
        }
    }

    /// `d` ± jitter.
    fn jittered(&self, d: Duration) -> Duration {
        let j = self.jitter_fraction();
        if j == 0.0 {
            return d;
        }
        d.mul_f64(rand::thread_rng().gen_range(1.0 - j..=1.0 + j))
    }

    /// `d` minus up to jitter (retries spread out but never exceed `d`).
    fn shortened(&self, d: Duration) -> Duration {
        let j = self.jitter_fraction();
        if j == 0.0 {
            return d;
        }
        d.mul_f64(rand::thread_rng().gen_range(1.0 - j..=1.0))
    }
}

/// The retry delay after another failure: [`FIRST_BACKOFF`], doubling, capped at `interval`.
pub fn next_backoff(previous: Option<Duration>, interval: Duration) -> Duration {
    let next = match previous {
        None => FIRST_BACKOFF,
        Some(p) => p.saturating_mul(2),
    };
    next.min(interval)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps_at_the_interval() {
        let interval = Duration::from_secs(30);
        let mut b = None;
        let mut seen = vec![];
        for _ in 0..8 {
            let n = next_backoff(b, interval);
            seen.push(n.as_secs());
            b = Some(n);
        }
        assert_eq!(seen, [1, 2, 4, 8, 16, 30, 30, 30]);
        // An interval shorter than the first backoff caps it too.
        assert_eq!(
            next_backoff(None, Duration::from_millis(200)),
            Duration::from_millis(200)
        );
    }
}

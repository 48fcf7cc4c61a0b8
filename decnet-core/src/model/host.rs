//! Worker hosts and the deckies assigned to them (shards).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::config::DeckyConfig;
use super::error::FieldError;
use super::names::{DeckyName, HostName, HostUuid};

/// A worker's status word. Decommissioned hosts are deleted, not marked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HostStatus {
    /// Enrolled, never heard from.
    Enrolled,
    /// Heartbeating.
    Active,
    /// Missed three heartbeat intervals.
    Unreachable,
}

impl HostStatus {
    /// The wire name (`"enrolled"`, `"active"`, `"unreachable"`).
    pub fn as_str(self) -> &'static str {
        match self {
            HostStatus::Enrolled => "enrolled",
            HostStatus::Active => "active",
            HostStatus::Unreachable => "unreachable",
        }
    }
}

impl fmt::Display for HostStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for HostStatus {
    type Err = FieldError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "enrolled" => Ok(Self::Enrolled),
            "active" => Ok(Self::Active),
            "unreachable" => Ok(Self::Unreachable),
            _ => Err(FieldError::new(
                "status",
                s,
                "must be enrolled, active or unreachable",
            )),
        }
    }
}

/// A worker host as the master knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Host {
    /// The id the master gave the host at enrollment; it keys the host's shards.
    pub uuid: HostUuid,
    /// The host name the worker enrolled with, also its certificate's CN.
    pub name: HostName,
    /// `host:port` the master dials for the agent API.
    pub address: String,
    /// Lowercase hex SHA-256 of the worker certificate's DER: the pin for both directions.
    pub fingerprint: String,
    /// Whether the master hears from the host (see [`HostStatus`]).
    pub status: HostStatus,
    /// When the last heartbeat arrived; `None` before the first.
    pub last_heartbeat: Option<DateTime<Utc>>,
    /// The `decnet-agent` version the last heartbeat reported.
    pub agent_version: Option<String>,
    /// When the host was enrolled.
    pub enrolled_at: DateTime<Utc>,
    /// `notAfter` of the pinned certificate (`None` for hosts enrolled before it was kept).
    #[serde(default)]
    pub cert_expires_at: Option<DateTime<Utc>>,
    /// After a renewal, the certificate the host held before: still accepted until
    /// `previous_valid_until`, or until the host proves the new one (then it is revoked).
    #[serde(default)]
    pub previous_fingerprint: Option<String>,
    /// End of the renewal overlap of `previous_fingerprint`.
    #[serde(default)]
    pub previous_valid_until: Option<DateTime<Utc>>,
}

/// The observed state of one decky on its host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShardState {
    /// Assigned, not yet confirmed by the host.
    Pending,
    /// Deployed and every service container runs.
    Running,
    /// Deployed but not every service container runs.
    Degraded,
    /// The deploy failed; `last_error` says why.
    Failed,
    /// A teardown is in progress.
    TearingDown,
    /// The teardown failed; the decky may still run.
    TeardownFailed,
}

impl ShardState {
    /// Every state, in wire order.
    pub const ALL: [ShardState; 6] = [
        ShardState::Pending,
        ShardState::Running,
        ShardState::Degraded,
        ShardState::Failed,
        ShardState::TearingDown,
        ShardState::TeardownFailed,
    ];

    /// The wire name (`"pending"`, `"running"`, `"degraded"`, `"failed"`, `"tearing_down"`,
    /// `"teardown_failed"`).
    pub fn as_str(self) -> &'static str {
        match self {
            ShardState::Pending => "pending",
            ShardState::Running => "running",
            ShardState::Degraded => "degraded",
            ShardState::Failed => "failed",
            ShardState::TearingDown => "tearing_down",
            ShardState::TeardownFailed => "teardown_failed",
        }
    }

    /// States an operation in progress owns; a heartbeat never overwrites them.
    pub fn is_transitional(self) -> bool {
        matches!(self, ShardState::Pending | ShardState::TearingDown)
    }
}

impl fmt::Display for ShardState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// One decky assigned to one host, keyed by `(host_uuid, decky_name)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shard {
    /// The host the decky is assigned to.
    pub host_uuid: HostUuid,
    /// The decky's name, the second half of the key.
    pub decky_name: DeckyName,
    /// The decky as the master wants it on that host.
    pub decky: DeckyConfig,
    /// What the host last reported, or what an operation in progress set.
    pub state: ShardState,
    /// The last operation error recorded for the decky, if any.
    pub last_error: Option<String>,
    /// When a heartbeat last spoke for the decky.
    pub last_seen: Option<DateTime<Utc>>,
    /// When the shard last changed.
    pub updated_at: DateTime<Utc>,
}

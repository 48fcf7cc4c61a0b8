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
    pub uuid: HostUuid,
    pub name: HostName,
    /// `host:port` the master dials for the agent API.
    pub address: String,
    /// Lowercase hex SHA-256 of the worker certificate's DER: the pin for both directions.
    pub fingerprint: String,
    pub status: HostStatus,
    pub last_heartbeat: Option<DateTime<Utc>>,
    pub agent_version: Option<String>,
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
    Running,
    /// Deployed but not every service container runs.
    Degraded,
    Failed,
    TearingDown,
    TeardownFailed,
}

impl ShardState {
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
    pub host_uuid: HostUuid,
    pub decky_name: DeckyName,
    pub decky: DeckyConfig,
    pub state: ShardState,
    pub last_error: Option<String>,
    pub last_seen: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

//! The agent's status snapshot (`GET /status`) and the heartbeat body that carries it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::config::{DeckyConfig, DecnetConfig, Mode};
use super::lifecycle::LifecycleDelta;
use super::names::HostUuid;

/// A service container's state as the runtime reports it (`running`, `exited`, …), or
/// `"absent"` when there is no container.
pub const ABSENT: &str = "absent";

/// One decky's containers as found on the host.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DeckyRuntime {
    /// True when the decky has services and every one of them is running.
    pub running: bool,
    /// Service slug → container state (`running`, `exited`, …, or [`ABSENT`]).
    pub services: BTreeMap<String, String>,
}

impl DeckyRuntime {
    /// Builds the entry from per-service states, deriving `running`.
    pub fn from_services(services: BTreeMap<String, String>) -> Self {
        let running = !services.is_empty() && services.values().all(|s| s == "running");
        Self { running, services }
    }
}

/// Decky name → runtime state.
pub type RuntimeMap = BTreeMap<String, DeckyRuntime>;

/// The agent's `/status` answer, also the heartbeat's `status` field.
///
/// Not deployed: `{"deployed":false,"deckies":[],"taken_at","in_flight"}`. Deployed adds
/// `mode`, `compose_path` and `runtime`.
///
/// Extension: when the worker's state file exists but cannot be read, `state_error` says why
/// (`"<path>: <reason>"`), `deployed` is false (nothing is known about the deployment) and
/// `runtime` still lists the containers found by label, so an operator sees what runs. The
/// field is omitted otherwise, so a healthy snapshot has exactly the PRODUCT §5 shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentStatus {
    /// Whether the worker has a deployment (a readable state file).
    pub deployed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The deployment's mode; present only when deployed.
    pub mode: Option<Mode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The state file's `compose_path`, for wire compatibility (DECNET-rs writes no compose
    /// file); present only when deployed.
    pub compose_path: Option<String>,
    #[serde(default)]
    /// The deckies of the deployed shard (empty when not deployed).
    pub deckies: Vec<DeckyConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Decky name → containers found; present when deployed or when the state file is unreadable.
    pub runtime: Option<RuntimeMap>,
    /// When the snapshot was taken: the master never lets it overwrite newer state.
    pub taken_at: DateTime<Utc>,
    /// Lifecycle ids of operations queued or running on the agent.
    #[serde(default)]
    pub in_flight: Vec<Uuid>,
    /// Why the worker's state file is unreadable (`"<path>: <reason>"`); the agent refuses
    /// work until the operator fixes or moves it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_error: Option<String>,
}

impl AgentStatus {
    /// The snapshot of a worker with no deployment.
    pub fn not_deployed(taken_at: DateTime<Utc>, in_flight: Vec<Uuid>) -> Self {
        Self {
            deployed: false,
            mode: None,
            compose_path: None,
            deckies: vec![],
            runtime: None,
            taken_at,
            in_flight,
            state_error: None,
        }
    }

    /// The state file is unreadable: not deployed as far as anyone can tell, the reason, and
    /// the containers found by label (when the runtime could be read).
    pub fn unreadable_state(
        state_error: String,
        runtime: Option<RuntimeMap>,
        taken_at: DateTime<Utc>,
        in_flight: Vec<Uuid>,
    ) -> Self {
        Self {
            runtime,
            state_error: Some(state_error),
            ..Self::not_deployed(taken_at, in_flight)
        }
    }

    /// The snapshot of a worker running `config`, with the containers found in `runtime`.
    pub fn deployed(
        config: &DecnetConfig,
        compose_path: String,
        runtime: RuntimeMap,
        taken_at: DateTime<Utc>,
        in_flight: Vec<Uuid>,
    ) -> Self {
        Self {
            deployed: true,
            mode: Some(config.mode),
            compose_path: Some(compose_path),
            deckies: config.deckies.clone(),
            runtime: Some(runtime),
            taken_at,
            in_flight,
            state_error: None,
        }
    }
}

/// The swarm wire version this build speaks (the heartbeat's `wire_version`). Bodies change
/// additively within a version; a master refuses agents newer than its own version with a
/// reason the host shows, and speaks to older ones.
pub const WIRE_VERSION: u32 = 1;

/// `POST /swarm/heartbeat` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeartbeatBody {
    /// The host sending the heartbeat; it must match the client certificate's enrolled host.
    pub host_uuid: HostUuid,
    /// The agent's version string, stored on the host row.
    pub agent_version: Option<String>,
    /// The swarm wire version the agent speaks ([`WIRE_VERSION`]; absent from agents that
    /// predate it: version 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wire_version: Option<u32>,
    /// The agent's `/status` snapshot at the time of sending.
    pub status: AgentStatus,
    #[serde(default)]
    /// Outcomes of operations finished since the last acknowledged heartbeat (the outbox).
    pub lifecycle: Vec<LifecycleDelta>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_deployed_shape() {
        let t: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        let v = serde_json::to_value(AgentStatus::not_deployed(t, vec![])).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"deployed":false,"deckies":[],"taken_at":"2026-01-01T00:00:00Z","in_flight":[]})
        );
    }

    #[test]
    fn unreadable_state_shape() {
        let t: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        let runtime = RuntimeMap::from([(
            "decky-01".to_string(),
            DeckyRuntime::from_services(BTreeMap::from([("ssh".into(), "running".into())])),
        )]);
        let s = AgentStatus::unreadable_state(
            "/x/decnet-state.json: bad".into(),
            Some(runtime),
            t,
            vec![],
        );
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"deployed":false,"deckies":[],"taken_at":"2026-01-01T00:00:00Z",
                "in_flight":[],"state_error":"/x/decnet-state.json: bad",
                "runtime":{"decky-01":{"running":true,"services":{"ssh":"running"}}}})
        );
        assert_eq!(serde_json::from_value::<AgentStatus>(v).unwrap(), s);
    }

    #[test]
    fn runtime_running_rule() {
        assert!(!DeckyRuntime::from_services(BTreeMap::new()).running);
        let mut m = BTreeMap::new();
        m.insert("ssh".to_string(), "running".to_string());
        assert!(DeckyRuntime::from_services(m.clone()).running);
        m.insert("http".to_string(), ABSENT.to_string());
        assert!(!DeckyRuntime::from_services(m).running);
    }
}

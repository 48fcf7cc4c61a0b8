//! The request and response bodies of the agent API (PRODUCT §5), the swarm endpoint (§6) and
//! the operator API (§7), shared by both ends: the master's dispatch and the agent's handlers,
//! the agent's enrollment and the master's swarm handlers, the operator API and the remote CLI,
//! and any embedder's own client.
//!
//! Requests refuse unknown fields (a typo in a hand-written body is a 422 naming it, not a
//! silently ignored option); answers accept them, so an older client reads a newer server.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use std::net::Ipv4Addr;

use super::auth::Role;
use super::config::{DecnetConfig, Mode};
use super::host::{HostStatus, ShardState};
use super::lifecycle::LifecycleRow;
use super::names::HostUuid;
use crate::fleet::{DeckySpec, GeneralSpec};

/// Decky name → the lifecycle row the master opened for it.
pub type LifecycleIds = BTreeMap<String, Uuid>;

/// The `status` word of an agent's answer to `/deploy`, `/mutate` and `/teardown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Acceptance {
    /// The work is queued (202).
    Accepted,
    /// A dry run: checked, nothing queued (200).
    DryRun,
}

/// `GET /health` (agent and master).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// Always `"ok"` when the process answers.
    pub status: String,
    /// The answering binary's version.
    pub version: String,
}

impl Health {
    /// The answer of a running process of `version`.
    pub fn ok(version: impl Into<String>) -> Self {
        Self {
            status: "ok".into(),
            version: version.into(),
        }
    }
}

/// `POST /deploy`: the host's complete shard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployRequest {
    /// Every decky this host should run; the ones it runs that are not here are removed.
    pub config: DecnetConfig,
    /// Check only: 200 with the decky names, nothing queued.
    #[serde(default)]
    pub dry_run: bool,
    /// Accepted for the original's wire shape; images are always built locally.
    #[serde(default)]
    pub no_cache: bool,
    /// The lifecycle rows the master opened, echoed in the deltas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle_ids: Option<LifecycleIds>,
}

impl DeployRequest {
    /// A real (not dry-run) deploy of `config`, carrying `lifecycle_ids`.
    pub fn new(config: DecnetConfig, lifecycle_ids: LifecycleIds) -> Self {
        Self {
            config,
            dry_run: false,
            no_cache: false,
            lifecycle_ids: Some(lifecycle_ids),
        }
    }
}

/// The answer to `POST /deploy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployAnswer {
    /// `accepted` (202) or `dry_run` (200).
    pub status: Acceptance,
    /// The deckies of the request.
    pub deckies: Vec<String>,
}

/// `POST /mutate`: new services for one decky.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MutateRequest {
    /// The decky's name.
    pub decky_id: String,
    /// Its complete new service list.
    pub services: Vec<String>,
    /// Check only: 200, nothing queued.
    #[serde(default)]
    pub dry_run: bool,
    /// The lifecycle row the master opened, echoed in the delta.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle_id: Option<Uuid>,
}

/// The answer to `POST /mutate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MutateAnswer {
    /// `accepted` (202) or `dry_run` (200).
    pub status: Acceptance,
    /// The decky of the request.
    pub decky_id: String,
    /// Its new services.
    pub services: Vec<String>,
}

/// `POST /teardown`: one decky, or all of this host's (`decky_id: null`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeardownRequest {
    /// The decky to remove; `None` removes every decky and the host's decky network.
    #[serde(default)]
    pub decky_id: Option<String>,
    /// The lifecycle rows the master opened, echoed in the deltas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle_ids: Option<LifecycleIds>,
}

/// The answer to `POST /teardown`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeardownAnswer {
    /// Always `accepted` (202).
    pub status: Acceptance,
    /// The decky of the request (`None`: all).
    pub decky_id: Option<String>,
}

/// `POST /self-destruct`: must name the agent's own host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelfDestructRequest {
    /// The host the master means; any other value is refused with 403.
    pub host_uuid: String,
}

/// The answer to `POST /self-destruct`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelfDestructAnswer {
    /// `"self_destruct_scheduled"`.
    pub status: String,
}

impl SelfDestructAnswer {
    /// The answer once the reaper is on its way.
    pub fn scheduled() -> Self {
        Self {
            status: "self_destruct_scheduled".into(),
        }
    }
}

/// The body of every 4xx and 5xx answer of the agent API, the swarm endpoint and the operator
/// API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What was wrong, naming the field where one was.
    pub detail: String,
}

/// `POST /swarm/enroll`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// The one-time enrollment token, as `decnet swarm enroll-token` printed it.
    pub token: String,
    /// A CSR; only its public key is used.
    pub csr_pem: String,
}

/// The answer to `POST /swarm/enroll`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollAnswer {
    /// The enrolled host's id.
    pub host_uuid: HostUuid,
    /// Its certificate (CN = host name, SAN = its address).
    pub cert_pem: String,
    /// The DECNET CA.
    pub ca_pem: String,
    /// SHA-256 of the master's certificate (lowercase hex of the DER), pinned by the agent.
    pub master_fingerprint: String,
}

/// `POST /swarm/renew` (extension): a new certificate for the calling worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewRequest {
    /// The caller's host id (checked against its certificate).
    pub host_uuid: HostUuid,
    /// A CSR; only its public key is used.
    pub csr_pem: String,
}

/// The answer to `POST /swarm/renew`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewAnswer {
    /// The new certificate.
    pub cert_pem: String,
    /// The DECNET CA.
    pub ca_pem: String,
    /// When the new certificate expires.
    pub not_after: DateTime<Utc>,
}

/// `POST /swarm/master-pins` (extension, master-certificate rollover): a worker says which
/// successor of the master certificate it has pinned, and learns the current and the next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MasterPinsRequest {
    /// The caller's host id (checked against its certificate).
    pub host_uuid: HostUuid,
    /// The successor fingerprint the worker accepts beside the current one, if any.
    #[serde(default)]
    pub next_fingerprint: Option<String>,
}

/// The answer to `POST /swarm/master-pins`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MasterPinsAnswer {
    /// The certificate the master presents now (lowercase hex SHA-256 of its DER).
    pub master_fingerprint: String,
    /// The certificate it will present once every worker pinned it (or its current one is
    /// about to expire); `None` when no rollover is under way.
    pub next_fingerprint: Option<String>,
}

/// `POST /swarm/events` (PRODUCT §10): a batch of attacker events from a worker's spool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventBatch {
    /// The caller's host id (checked against its certificate).
    pub host_uuid: HostUuid,
    /// At most [`crate::orchestrate::ingest::MAX_BATCH`] events.
    pub events: Vec<crate::model::attack::AttackEvent>,
}

/// The answer to `POST /swarm/events`: every event of the batch is stored now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventBatchAnswer {
    /// Events stored by this request.
    pub stored: u64,
    /// Events already stored (a batch delivered again).
    pub duplicates: u64,
}

// --- operator API (§7) --------------------------------------------------------------------

/// `GET /api/v1/attacks`: one page of attacker events, in id (birth) order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttackPage {
    /// The page's events, oldest id first.
    pub events: Vec<crate::model::attack::AttackEvent>,
    /// The `after` of the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<Uuid>,
}

/// `GET /api/v1/attackers`: one profile per source address, most recently seen first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttackersAnswer {
    /// The profiles, most recently seen first.
    pub attackers: Vec<crate::model::attack::AttackerProfile>,
}

/// `POST /api/v1/deckies/deploy`: an INI (`ini_content`) or a structured fleet.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetDeployRequest {
    /// The original's deployment INI; excludes `general` and `deckies`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ini_content: Option<String>,
    /// Network settings (subnet, gateway, interface, driver, mutate interval).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub general: Option<GeneralSpec>,
    /// The requested deckies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deckies: Option<Vec<DeckySpec>>,
    /// Replace the whole fleet (deckies not requested are removed) rather than add to it.
    #[serde(default)]
    pub replace_fleet: bool,
    /// Plan only (extension): answer a [`FleetDryRun`], commit nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

/// The 202 answer to a deploy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetDeployAnswer {
    /// What will happen, in words.
    pub message: String,
    /// Where the deckies run.
    pub mode: Mode,
    /// One lifecycle row per changed decky.
    pub lifecycle_ids: Vec<Uuid>,
}

/// The 200 answer to a dry-run deploy: the planned fleet and what applying it would change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetDryRun {
    /// Always true.
    pub dry_run: bool,
    /// Where the deckies would run.
    pub mode: Mode,
    /// New deckies.
    pub added: Vec<String>,
    /// Deckies recreated or moved.
    pub changed: Vec<String>,
    /// Deckies removed.
    pub removed: Vec<String>,
    /// Deckies left as they are.
    pub unchanged: Vec<String>,
    /// The complete planned fleet.
    pub fleet: DecnetConfig,
}

/// `POST /api/v1/deckies/{name}/mutate` (the body is optional).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeckyMutateRequest {
    /// The decky's new services; without them they are picked as the mutator would.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<Vec<String>>,
}

/// The 202 answer to a mutate or a delete.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LifecycleIdsAnswer {
    /// The rows opened (none when nothing changed).
    pub lifecycle_ids: Vec<Uuid>,
}

/// `GET /api/v1/deckies/lifecycle`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleRows {
    /// The rows found; unknown ids are omitted.
    pub rows: Vec<LifecycleRow>,
}

/// One entry of `GET /api/v1/deckies`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeckyView {
    /// The decky's name.
    pub name: String,
    /// Its worker (`None`: this master's machine).
    pub host_uuid: Option<HostUuid>,
    /// The worker's name, or `local`.
    pub host: String,
    /// Its address on the LAN.
    pub ip: Ipv4Addr,
    /// Its services.
    pub services: Vec<String>,
    /// Its observed state (`pending` until its host confirmed it).
    pub state: ShardState,
    /// The last heartbeat that echoed it.
    pub last_seen: Option<DateTime<Utc>>,
}

/// `POST /api/v1/swarm/enroll-tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollTokenRequest {
    /// The worker's name (its certificate's CN).
    pub name: String,
    /// `host:port` of its agent API.
    pub address: String,
}

/// The 201 answer to an enroll-token request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollTokenAnswer {
    /// The one-time token.
    pub token: String,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// The command to run on the worker.
    pub command: String,
}

/// One worker of `GET /api/v1/swarm/hosts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostView {
    /// Its id.
    pub uuid: HostUuid,
    /// Its name.
    pub name: String,
    /// `host:port` of its agent API.
    pub address: String,
    /// `enrolled`, `active` or `unreachable`.
    pub status: HostStatus,
    /// Its latest heartbeat.
    pub last_heartbeat: Option<DateTime<Utc>>,
    /// The version its agent reported.
    pub agent_version: Option<String>,
    /// When its pinned certificate expires (extension; `None` for hosts enrolled before it
    /// was kept).
    #[serde(default)]
    pub cert_expires_at: Option<DateTime<Utc>>,
    /// Why its worker state file is unreadable, while its latest heartbeat says so
    /// (extension; absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_error: Option<String>,
    /// Why its latest heartbeat was refused: an agent speaking a newer wire version than the
    /// master (extension; absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_error: Option<String>,
}

/// `POST /api/v1/tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// `admin` or `viewer`.
    pub role: Role,
}

/// The 201 answer to a token request: the secret is shown this once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenCreated {
    /// The token's id (to revoke it).
    pub id: Uuid,
    /// The bearer secret.
    pub token: String,
    /// Its role.
    pub role: Role,
}

/// One entry of `GET /api/v1/tokens` (no secrets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenView {
    /// The token's id.
    pub id: Uuid,
    /// Its role.
    pub role: Role,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn agent_answers_have_the_documented_shapes() {
        let a = DeployAnswer {
            status: Acceptance::Accepted,
            deckies: vec!["decky-01".into()],
        };
        assert_eq!(
            serde_json::to_value(&a).unwrap(),
            json!({"status":"accepted","deckies":["decky-01"]})
        );
        let t = TeardownAnswer {
            status: Acceptance::Accepted,
            decky_id: None,
        };
        assert_eq!(
            serde_json::to_value(&t).unwrap(),
            json!({"status":"accepted","decky_id":null})
        );
        let m = MutateAnswer {
            status: Acceptance::DryRun,
            decky_id: "d".into(),
            services: vec!["ssh".into()],
        };
        assert_eq!(
            serde_json::to_value(&m).unwrap(),
            json!({"status":"dry_run","decky_id":"d","services":["ssh"]})
        );
        assert_eq!(
            serde_json::to_value(SelfDestructAnswer::scheduled()).unwrap(),
            json!({"status":"self_destruct_scheduled"})
        );
    }

    #[test]
    fn requests_refuse_unknown_fields_and_default_the_optional_ones() {
        let e = serde_json::from_value::<TeardownRequest>(json!({"decky": "x"})).unwrap_err();
        assert!(e.to_string().contains("unknown field `decky`"), "{e}");
        let t: TeardownRequest = serde_json::from_value(json!({})).unwrap();
        assert_eq!(
            t,
            TeardownRequest {
                decky_id: None,
                lifecycle_ids: None
            }
        );
        let m: MutateRequest =
            serde_json::from_value(json!({"decky_id":"d","services":[]})).unwrap();
        assert!(!m.dry_run && m.lifecycle_id.is_none());
        // Without ids the field is left out, as the original's master sends it.
        let v = serde_json::to_value(TeardownRequest {
            decky_id: Some("d".into()),
            lifecycle_ids: None,
        })
        .unwrap();
        assert_eq!(v, json!({"decky_id":"d"}));
    }
}

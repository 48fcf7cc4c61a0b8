//! The master's side of the swarm protocol (PRODUCT §6), transport-free: enrollment by
//! one-time token and CSR, caller identification by certificate fingerprint, certificate
//! renewal with its overlap, heartbeat ingest with its write-skipping caches, the unreachable
//! check, and the agents' answers about the master certificate's successor.
//!
//! [`Swarm`] reaches the world through a [`Repository`], a [`CertIssuer`], an
//! [`AgentConnector`] (to drop cached clients when pins change) and the [`Lifecycle`] (deltas
//! and snapshots). The HTTP layer only extracts the peer certificate's fingerprint and the
//! body, and maps [`SwarmError`] kinds to status codes.
//!
//! ```
//! # use std::sync::Arc;
//! # use decnet_core::orchestrate::{Lifecycle, swarm::{Swarm, SwarmSettings}};
//! # use decnet_core::orchestrate::bus::BroadcastBus;
//! # use decnet_core::testkit::{ManualClock, MemRepository};
//! # use decnet_core::traits::{MockAgentConnector, MockCertIssuer};
//! # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
//! # rt.block_on(async {
//! let repo = Arc::new(MemRepository::new());
//! let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
//! let lifecycle = Lifecycle::new(repo.clone(), Arc::new(BroadcastBus::new(16)), clock.clone());
//! let swarm = Swarm::new(
//!     repo,
//!     clock,
//!     Arc::new(MockCertIssuer::new()),
//!     Arc::new(MockAgentConnector::new()),
//!     lifecycle,
//!     SwarmSettings::default(),
//! );
//! // A caller presenting no known certificate is refused, without saying why.
//! let who = swarm.identify(Some("00".repeat(32).as_str()), Some("not-a-uuid")).await;
//! assert!(matches!(who, Err(decnet_core::orchestrate::swarm::SwarmError::Forbidden)));
//! # });
//! ```

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::model::auth::{digest_eq, token_hash};
use crate::model::wire::{EnrollAnswer, MasterPinsAnswer, RenewAnswer};
use crate::model::{EnrollTokenText, HeartbeatBody, Host, HostStatus, HostUuid};
use crate::traits::{
    AgentConnector, CertIssuer, CertRenewal, Clock, IssueError, IssuedWorkerCert, RepoError,
    Repository, WorkerCertRequest,
};

use super::Lifecycle;

/// Tunables of the swarm protocol.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SwarmSettings {
    /// The agents' heartbeat interval: a heartbeat is written through at most once per
    /// interval, and hosts silent for 3 intervals become `unreachable`.
    pub heartbeat_interval: Duration,
    /// Validity of the worker certificates issued at enrollment and renewal.
    pub worker_cert_lifetime: Duration,
    /// After a renewal, how long the certificate it replaces is still accepted (unless the
    /// worker uses the new one first).
    pub renewal_overlap: Duration,
}

impl Default for SwarmSettings {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_secs(30),
            worker_cert_lifetime: Duration::from_secs(365 * 86_400),
            renewal_overlap: Duration::from_secs(86_400),
        }
    }
}

impl SwarmSettings {
    /// With `interval` as the agents' heartbeat interval.
    pub fn with_heartbeat_interval(mut self, interval: Duration) -> Self {
        self.heartbeat_interval = interval;
        self
    }

    /// With `lifetime` for issued worker certificates.
    pub fn with_worker_cert_lifetime(mut self, lifetime: Duration) -> Self {
        self.worker_cert_lifetime = lifetime;
        self
    }

    /// With `overlap` after a renewal.
    pub fn with_renewal_overlap(mut self, overlap: Duration) -> Self {
        self.renewal_overlap = overlap;
        self
    }
}

/// Why a swarm call was refused, by kind (an HTTP layer maps each to one status).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SwarmError {
    /// The caller is not a known, pinned, unrevoked host. Never says which check failed.
    #[error("forbidden")]
    Forbidden,
    /// The enrollment token is invalid, used, expired or names another CA.
    #[error("invalid, used or expired token")]
    TokenRefused,
    /// A field of the request is unusable.
    #[error("{field}: {message}")]
    Invalid {
        /// The request field (`csr_pem`, `next_fingerprint`).
        field: &'static str,
        /// What is wrong with it.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<crate::traits::BoxError>,
    },
    /// A host of the token's name is already enrolled.
    #[error("{what}: a host of that name is already enrolled")]
    Conflict {
        /// The store's description of the conflict.
        what: String,
    },
    /// The CA failed (not the caller's fault).
    #[error(transparent)]
    Issue(IssueError),
    /// The agent speaks a newer swarm wire version than this master
    /// ([`crate::model::WIRE_VERSION`]): upgrade the master first.
    #[error("{reason}")]
    Incompatible {
        /// Which versions, and what to do.
        reason: String,
    },
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] RepoError),
}

/// Whether a master of this build can speak with an agent that reports `agent_version` and
/// `wire` (absent: version 1): its own wire version and older ones are spoken (older bodies
/// parse with their missing fields defaulted), newer ones are refused with the reason.
pub fn check_wire_version(agent_version: Option<&str>, wire: Option<u32>) -> Result<(), String> {
    let wire = wire.unwrap_or(1);
    if wire <= crate::model::WIRE_VERSION {
        return Ok(());
    }
    Err(format!(
        "agent {} speaks wire version {wire}; this master ({}) speaks up to {}: \
         upgrade the master first, then the agents",
        agent_version.unwrap_or("(version unknown)"),
        env!("CARGO_PKG_VERSION"),
        crate::model::WIRE_VERSION
    ))
}

/// Which of a host's accepted certificates the caller presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Presented {
    /// The pinned one.
    Current,
    /// The one a renewal replaced, during the overlap.
    Previous,
}

/// What the embedder counts or logs of the swarm's work. Every method has a no-op default.
pub trait SwarmHooks: Send + Sync + fmt::Debug {
    /// A worker enrolled.
    fn enrolled(&self, _host: &Host) {}
    /// An enrollment was refused (bad, used or foreign token).
    fn enroll_refused(&self) {}
    /// A caller failed identification.
    fn identity_refused(&self) {}
    /// A heartbeat was taken in.
    fn heartbeat(&self, _host: HostUuid) {}
    /// A heartbeat was refused: its agent speaks a newer wire version.
    fn incompatible(&self, _host: HostUuid, _reason: &str) {}
    /// A worker's certificate was renewed.
    fn renewed(&self, _host: &Host) {}
}

/// [`SwarmHooks`] that do nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSwarmHooks;

impl SwarmHooks for NoSwarmHooks {}

/// In-memory view of a host's heartbeats, so an unchanged heartbeat costs no write: the
/// store's `last_heartbeat` is refreshed at most once per interval.
#[derive(Debug, Clone)]
struct Seen {
    last: DateTime<Utc>,
    flushed: DateTime<Utc>,
    version: Option<String>,
}

/// A host's latest heartbeat and the deckies it echoed.
#[derive(Debug, Clone)]
struct Echo {
    at: DateTime<Utc>,
    names: HashSet<String>,
}

#[derive(Debug, Default)]
struct Caches {
    /// uuid → host (fingerprints, name, status). The store is authoritative; this process is
    /// its only writer of hosts.
    hosts: HashMap<HostUuid, Host>,
    revoked: HashSet<String>,
    not_revoked: HashSet<String>,
    seen: HashMap<HostUuid, Seen>,
    /// A decky's `last_seen` is the last heartbeat that echoed it, kept here rather than
    /// written per heartbeat (the store's `last_seen` moves on state changes).
    echoed: HashMap<HostUuid, Echo>,
    /// Why a host's worker state file is unreadable, as its latest heartbeat said.
    state_errors: HashMap<HostUuid, String>,
    /// The master-certificate successor each host's agent last said it pinned.
    master_pins: HashMap<HostUuid, Option<String>>,
    /// Why a host's latest heartbeat was refused for its wire version.
    version_errors: HashMap<HostUuid, String>,
}

/// The master's side of the swarm protocol. See the [module](self) documentation.
pub struct Swarm {
    repo: Arc<dyn Repository>,
    clock: Arc<dyn Clock>,
    issuer: Arc<dyn CertIssuer>,
    agents: Arc<dyn AgentConnector>,
    lifecycle: Lifecycle,
    settings: SwarmSettings,
    hooks: Arc<dyn SwarmHooks>,
    caches: Mutex<Caches>,
}

impl fmt::Debug for Swarm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Swarm")
            .field("settings", &self.settings)
            .field("hooks", &self.hooks)
            .finish_non_exhaustive()
    }
}

impl Swarm {
    /// A swarm over `repo`, signing with `issuer`, dropping `agents`' cached clients when a
    /// host's pins change, and taking heartbeats into `lifecycle`.
    pub fn new(
        repo: Arc<dyn Repository>,
        clock: Arc<dyn Clock>,
        issuer: Arc<dyn CertIssuer>,
        agents: Arc<dyn AgentConnector>,
        lifecycle: Lifecycle,
        settings: SwarmSettings,
    ) -> Self {
        Self {
            repo,
            clock,
            issuer,
            agents,
            lifecycle,
            settings,
            hooks: Arc::new(NoSwarmHooks),
            caches: Mutex::new(Caches::default()),
        }
    }

    /// The same swarm reporting to `hooks`.
    pub fn with_hooks(mut self, hooks: Arc<dyn SwarmHooks>) -> Self {
        self.hooks = hooks;
        self
    }

    /// The same swarm dropping the clients of `agents` (the connector the runner uses).
    pub fn with_agents(mut self, agents: Arc<dyn AgentConnector>) -> Self {
        self.agents = agents;
        self
    }

    /// The settings it runs with.
    pub fn settings(&self) -> &SwarmSettings {
        &self.settings
    }

    /// The CA and master identity it enrolls with.
    pub fn issuer(&self) -> &Arc<dyn CertIssuer> {
        &self.issuer
    }

    fn caches(&self) -> MutexGuard<'_, Caches> {
        self.caches.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Loads the host cache from the store (revocations are looked up on a cache miss).
    pub async fn warm(&self) -> Result<(), RepoError> {
        let hosts = self.repo.hosts().await?;
        let mut c = self.caches();
        for h in hosts {
            c.hosts.insert(h.uuid, h);
        }
        Ok(())
    }

    /// One host, from the cache or the store.
    pub async fn host(&self, uuid: HostUuid) -> Result<Option<Host>, RepoError> {
        if let Some(h) = self.caches().hosts.get(&uuid) {
            return Ok(Some(h.clone()));
        }
        let h = self.repo.host(uuid).await?;
        if let Some(h) = &h {
            self.caches().hosts.insert(uuid, h.clone());
        }
        Ok(h)
    }

    /// Puts `host` in the cache as the store now has it.
    pub fn remember_host(&self, host: Host) {
        self.caches().hosts.insert(host.uuid, host);
    }

    /// Revocation, cached both ways: this process is the only one that revokes.
    pub async fn is_revoked(&self, fingerprint: &str) -> Result<bool, RepoError> {
        {
            let c = self.caches();
            if c.revoked.contains(fingerprint) {
                return Ok(true);
            }
            if c.not_revoked.contains(fingerprint) {
                return Ok(false);
            }
        }
        let r = self.repo.is_revoked(fingerprint).await?;
        let mut c = self.caches();
        if r {
            c.revoked.insert(fingerprint.to_string());
        } else {
            c.not_revoked.insert(fingerprint.to_string());
        }
        Ok(r)
    }

    /// A fingerprint just revoked (the cache must not keep calling it valid).
    pub fn note_revoked(&self, fingerprint: &str) {
        let mut c = self.caches();
        c.not_revoked.remove(fingerprint);
        c.revoked.insert(fingerprint.to_string());
    }

    /// Ends `uuid`'s renewal overlap: its previous certificate is revoked and forgotten, and
    /// the client towards its agent pins the current one only.
    pub async fn end_overlap(&self, uuid: HostUuid, at: DateTime<Utc>) -> Result<(), RepoError> {
        let revoked = self.repo.end_certificate_overlap(uuid, at).await?;
        if let Some(fp) = &revoked {
            self.note_revoked(fp);
            log_info(uuid, fp);
        }
        if let Some(h) = self.caches().hosts.get_mut(&uuid) {
            h.previous_fingerprint = None;
            h.previous_valid_until = None;
        }
        self.agents.forget(uuid);
        Ok(())
    }

    /// Forgets a decommissioned host: its caches, its observed deckies, its client; its
    /// certificate counts as revoked.
    pub fn forget_host(&self, uuid: HostUuid, fingerprint: &str) {
        {
            let mut c = self.caches();
            c.hosts.remove(&uuid);
            c.seen.remove(&uuid);
            c.echoed.remove(&uuid);
            c.state_errors.remove(&uuid);
            c.master_pins.remove(&uuid);
            c.version_errors.remove(&uuid);
            c.not_revoked.remove(fingerprint);
            c.revoked.insert(fingerprint.to_string());
        }
        self.lifecycle.forget_observed(uuid);
        self.agents.forget(uuid);
    }

    /// Who is calling, from its certificate's fingerprint (`None`: it presented none) and the
    /// `host_uuid` its body claims. A host is known by exactly {its pinned fingerprint} ∪ {its
    /// previous one while a renewal's overlap lasts}, never by a revoked one; a previous
    /// certificate used after its overlap ends the overlap before the refusal. Unknown,
    /// mismatched, revoked and decommissioned callers all get [`SwarmError::Forbidden`].
    pub async fn identify(
        &self,
        fingerprint: Option<&str>,
        claimed: Option<&str>,
    ) -> Result<(Host, Presented), SwarmError> {
        let refused = || {
            self.hooks.identity_refused();
            SwarmError::Forbidden
        };
        let Some(fp) = fingerprint else {
            return Err(refused());
        };
        let Some(uuid) = claimed.and_then(|s| s.parse::<HostUuid>().ok()) else {
            return Err(refused());
        };
        let Some(host) = self.host(uuid).await? else {
            return Err(refused());
        };
        let presented = if digest_eq(&host.fingerprint, fp) {
            Presented::Current
        } else if host
            .previous_fingerprint
            .as_deref()
            .is_some_and(|p| digest_eq(p, fp))
        {
            let now = self.clock.now();
            if host.previous_valid_until.is_some_and(|until| now < until) {
                Presented::Previous
            } else {
                self.end_overlap(host.uuid, now).await?;
                return Err(refused());
            }
        } else {
            return Err(refused());
        };
        if self.is_revoked(fp).await? {
            return Err(refused());
        }
        Ok((host, presented))
    }

    /// Signs the CSR's public key, and nothing else from it, as a worker certificate: CN
    /// `name`, SAN from `address`. A bad CSR is [`SwarmError::Invalid`] naming `csr_pem`.
    fn issue(
        &self,
        csr_pem: &str,
        name: &str,
        address: &str,
    ) -> Result<IssuedWorkerCert, SwarmError> {
        self.issuer
            .issue_worker(&WorkerCertRequest {
                csr_pem,
                name,
                address,
                validity: self.settings.worker_cert_lifetime,
            })
            .map_err(|e| match e {
                IssueError::BadCsr { message, source } => SwarmError::Invalid {
                    field: "csr_pem",
                    message,
                    source,
                },
                other => SwarmError::Issue(other),
            })
    }

    /// `POST /swarm/enroll`: spends the one-time `token` on `csr_pem` and enrolls the host the
    /// token was issued for (CN = its name, SAN = its address). The CSR is checked before the
    /// token is spent, so a bad CSR leaves the token usable.
    pub async fn enroll(&self, token: &str, csr_pem: &str) -> Result<EnrollAnswer, SwarmError> {
        let refused = || {
            self.hooks.enroll_refused();
            SwarmError::TokenRefused
        };
        let text = EnrollTokenText::parse(token).map_err(|_| refused())?;
        if !digest_eq(&text.ca_fingerprint, &self.issuer.ca_fingerprint()) {
            return Err(refused());
        }
        self.issue(csr_pem, "csr-check", "127.0.0.1:0")?;
        let now = self.clock.now();
        let token = self
            .repo
            .consume_enroll_token(&token_hash(&text.render()), now)
            .await?
            .ok_or_else(refused)?;
        let issued = self.issue(csr_pem, token.host_name.as_str(), &token.address)?;
        let host = Host {
            uuid: HostUuid::new_v4(),
            name: token.host_name.clone(),
            address: token.address.clone(),
            fingerprint: issued.fingerprint.clone(),
            status: HostStatus::Enrolled,
            last_heartbeat: None,
            agent_version: None,
            enrolled_at: now,
            cert_expires_at: Some(issued.not_after),
            previous_fingerprint: None,
            previous_valid_until: None,
        };
        match self.repo.insert_host(&host).await {
            Ok(()) => {}
            Err(RepoError::Conflict(what)) => return Err(SwarmError::Conflict { what }),
            Err(e) => return Err(e.into()),
        }
        self.remember_host(host.clone());
        self.hooks.enrolled(&host);
        Ok(EnrollAnswer {
            host_uuid: host.uuid,
            cert_pem: issued.cert_pem,
            ca_pem: self.issuer.ca_pem(),
            master_fingerprint: self.issuer.master_fingerprint(),
        })
    }

    /// `POST /swarm/renew`: a new certificate for `host` (identified, presenting `presented`)
    /// from `csr_pem`'s public key. The new fingerprint is pinned at once; the presented
    /// certificate stays valid for the overlap, or until the host uses the new one. Renewing
    /// with the previous certificate (the answer to an earlier renewal was lost) abandons and
    /// revokes the never-used current one, and does not extend the overlap.
    pub async fn renew(
        &self,
        host: &Host,
        presented: Presented,
        csr_pem: &str,
    ) -> Result<RenewAnswer, SwarmError> {
        let issued = self.issue(csr_pem, host.name.as_str(), &host.address)?;
        let now = self.clock.now();
        let overlap = chrono::Duration::from_std(self.settings.renewal_overlap)
            .unwrap_or(chrono::Duration::MAX);
        let (previous, until) = match presented {
            Presented::Current => (
                host.fingerprint.clone(),
                now.checked_add_signed(overlap).unwrap_or(now),
            ),
            Presented::Previous => {
                self.repo.revoke_fingerprint(&host.fingerprint, now).await?;
                self.note_revoked(&host.fingerprint);
                (
                    host.previous_fingerprint.clone().unwrap_or_default(),
                    host.previous_valid_until.unwrap_or(now),
                )
            }
        };
        let renewal = CertRenewal {
            fingerprint: issued.fingerprint.clone(),
            cert_expires_at: issued.not_after,
            previous_fingerprint: previous,
            previous_valid_until: until,
        };
        self.repo
            .renew_host_certificate(host.uuid, &renewal)
            .await?;
        let mut renewed = host.clone();
        renewed.fingerprint = renewal.fingerprint;
        renewed.cert_expires_at = Some(issued.not_after);
        renewed.previous_fingerprint = Some(renewal.previous_fingerprint);
        renewed.previous_valid_until = Some(until);
        self.remember_host(renewed.clone());
        self.agents.forget(host.uuid);
        self.hooks.renewed(&renewed);
        Ok(RenewAnswer {
            cert_pem: issued.cert_pem,
            ca_pem: self.issuer.ca_pem(),
            not_after: issued.not_after,
        })
    }

    /// `POST /swarm/heartbeat` of `host` (identified, presenting `presented`): refuses an
    /// agent of a newer wire version ([`SwarmError::Incompatible`], remembered for the host's
    /// view until a heartbeat is accepted), ends a renewal
    /// overlap the host has proven its new certificate for, records the heartbeat (written
    /// through only when the host was not active, its version changed, or the last write is
    /// an interval old), and takes its deltas and snapshot into the lifecycle.
    pub async fn heartbeat(
        &self,
        host: &Host,
        presented: Presented,
        beat: &HeartbeatBody,
    ) -> Result<(), SwarmError> {
        if let Err(reason) = check_wire_version(beat.agent_version.as_deref(), beat.wire_version) {
            let new = self
                .caches()
                .version_errors
                .insert(host.uuid, reason.clone())
                .as_ref()
                != Some(&reason);
            if new {
                tracing::error!(host_uuid = %host.uuid, error = %reason, "heartbeat refused: incompatible agent");
            }
            self.hooks.incompatible(host.uuid, &reason);
            return Err(SwarmError::Incompatible { reason });
        }
        self.caches().version_errors.remove(&host.uuid);
        let now = self.clock.now();
        if presented == Presented::Current && host.previous_fingerprint.is_some() {
            self.end_overlap(host.uuid, now).await?;
        }
        self.note_heartbeat(host, beat.agent_version.clone(), now)
            .await?;
        self.hooks.heartbeat(host.uuid);
        self.lifecycle
            .ingest_heartbeat(host.uuid, beat, now)
            .await?;
        let echoed: &[crate::model::DeckyConfig] = if beat.status.deployed {
            &beat.status.deckies
        } else {
            &[]
        };
        self.note_echo(host.uuid, now, echoed.iter().map(|d| d.name.as_str()));
        self.note_state_error(host.uuid, beat.status.state_error.as_deref());
        Ok(())
    }

    /// Records a heartbeat of `host` at `now`; see [`Swarm::heartbeat`].
    pub async fn note_heartbeat(
        &self,
        host: &Host,
        version: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<(), RepoError> {
        let write = {
            let mut c = self.caches();
            let entry = c.seen.entry(host.uuid).or_insert(Seen {
                last: now,
                flushed: DateTime::<Utc>::MIN_UTC,
                version: None,
            });
            entry.last = now;
            let interval = chrono::Duration::from_std(self.settings.heartbeat_interval)
                .unwrap_or(chrono::Duration::seconds(30));
            let stale = now - entry.flushed >= interval;
            let w = host.status != HostStatus::Active || entry.version != version || stale;
            if w {
                entry.flushed = now;
                entry.version = version.clone();
            }
            w
        };
        if write {
            self.repo
                .record_heartbeat(host.uuid, now, version.clone())
                .await?;
            if let Some(h) = self.caches().hosts.get_mut(&host.uuid) {
                h.status = HostStatus::Active;
                h.last_heartbeat = Some(now);
                if version.is_some() {
                    h.agent_version = version;
                }
            }
        }
        Ok(())
    }

    /// Records that `host`'s heartbeat at `at` echoed exactly `deckies`. Allocates only when
    /// the set changed since the host's previous heartbeat.
    pub fn note_echo<'a>(
        &self,
        host: HostUuid,
        at: DateTime<Utc>,
        deckies: impl ExactSizeIterator<Item = &'a str> + Clone,
    ) {
        let mut c = self.caches();
        let echo = c.echoed.entry(host).or_insert_with(|| Echo {
            at,
            names: HashSet::new(),
        });
        echo.at = echo.at.max(at);
        let same =
            echo.names.len() == deckies.len() && deckies.clone().all(|d| echo.names.contains(d));
        if !same {
            echo.names = deckies.map(str::to_string).collect();
        }
    }

    /// When `host`'s heartbeats last echoed `decky` (`None`: not in its latest heartbeat, or
    /// none since this process started).
    pub fn echoed_at(&self, host: HostUuid, decky: &str) -> Option<DateTime<Utc>> {
        self.caches()
            .echoed
            .get(&host)
            .filter(|e| e.names.contains(decky))
            .map(|e| e.at)
    }

    /// Records the `state_error` of `host`'s latest heartbeat (`None`: its state file reads
    /// fine), logging when it appears or goes away.
    pub fn note_state_error(&self, host: HostUuid, error: Option<&str>) {
        let mut c = self.caches();
        match error {
            Some(e) if c.state_errors.get(&host).map(String::as_str) != Some(e) => {
                tracing::warn!(host_uuid = %host, state_error = %e, "worker reports an unreadable state file; it refuses work until the operator fixes it");
                c.state_errors.insert(host, e.to_string());
            }
            Some(_) => {}
            None => {
                if c.state_errors.remove(&host).is_some() {
                    tracing::info!(host_uuid = %host, "worker state file readable again");
                }
            }
        }
    }

    /// Why `host`'s latest heartbeat was refused for its wire version, until one is accepted
    /// (in memory: after a restart the next heartbeat tells again).
    pub fn version_error(&self, host: HostUuid) -> Option<String> {
        self.caches().version_errors.get(&host).cloned()
    }

    /// Why `host`'s worker state file is unreadable, if its latest heartbeat said so.
    pub fn state_error(&self, host: HostUuid) -> Option<String> {
        self.caches().state_errors.get(&host).cloned()
    }

    /// Hosts as the store has them, with fresher heartbeat times from memory.
    pub async fn hosts_view(&self) -> Result<Vec<Host>, RepoError> {
        let mut hosts = self.repo.hosts().await?;
        let c = self.caches();
        for h in &mut hosts {
            if let Some(s) = c.seen.get(&h.uuid) {
                if h.last_heartbeat.is_none_or(|t| t < s.last) {
                    h.last_heartbeat = Some(s.last);
                }
            }
        }
        Ok(hosts)
    }

    /// One pass of the unreachable check at `now`: heartbeat times kept in memory are flushed
    /// first (only those of hosts still within the grace, each once), then hosts silent for 3
    /// intervals become `unreachable`. Returns the hosts that changed. A silent host's last,
    /// unflushed heartbeat never marks it active again on a later pass.
    pub async fn check_hosts(&self, now: DateTime<Utc>) -> Result<Vec<HostUuid>, RepoError> {
        let grace = chrono::Duration::from_std(self.settings.heartbeat_interval * 3)
            .unwrap_or(chrono::Duration::seconds(90));
        let cutoff = now - grace;
        let fresh: Vec<_> = self
            .caches()
            .seen
            .iter()
            .filter(|(_, s)| s.last > s.flushed && s.last >= cutoff)
            .map(|(h, s)| (*h, s.last, s.version.clone()))
            .collect();
        for (host, last, version) in fresh {
            // A failed flush leaves the time in memory for the next pass; the check goes on.
            match self.repo.record_heartbeat(host, last, version).await {
                Ok(()) => {
                    if let Some(s) = self.caches().seen.get_mut(&host) {
                        s.flushed = s.flushed.max(last);
                    }
                }
                Err(e) => tracing::warn!(host = %host, error = %e, "flush heartbeat"),
            }
        }
        let changed = self.repo.mark_unreachable(cutoff).await?;
        let mut c = self.caches();
        for uuid in &changed {
            tracing::warn!(host = %uuid, "host missed 3 heartbeats: unreachable");
            if let Some(h) = c.hosts.get_mut(uuid) {
                h.status = HostStatus::Unreachable;
            }
        }
        Ok(changed)
    }

    /// `POST /swarm/master-pins` of `host`: records the successor fingerprint its agent
    /// pinned (`None`: none) and answers the current master fingerprint and the successor to
    /// pin.
    pub fn master_pins(
        &self,
        host: HostUuid,
        pinned: Option<String>,
    ) -> Result<MasterPinsAnswer, SwarmError> {
        let pinned = pinned
            .as_deref()
            .map(normalize_fingerprint)
            .transpose()
            .map_err(|message| SwarmError::Invalid {
                field: "next_fingerprint",
                message,
                source: None,
            })?;
        self.caches().master_pins.insert(host, pinned);
        Ok(MasterPinsAnswer {
            master_fingerprint: self.issuer.master_fingerprint(),
            next_fingerprint: self.issuer.next_master_fingerprint(),
        })
    }

    /// The names of the enrolled hosts whose agents have not said they pinned `next`.
    pub async fn unpinned(&self, next: &str) -> Result<Vec<String>, RepoError> {
        let hosts = self.repo.hosts().await?;
        let c = self.caches();
        Ok(hosts
            .iter()
            .filter(|h| c.master_pins.get(&h.uuid).and_then(|p| p.as_deref()) != Some(next))
            .map(|h| h.name.to_string())
            .collect())
    }
}

fn log_info(uuid: HostUuid, fp: &str) {
    tracing::info!(host_uuid = %uuid, fingerprint = %fp, "previous worker certificate revoked");
}

/// A SHA-256 fingerprint as 64 lowercase hex digits: surrounding whitespace and colons are
/// dropped, case is folded (the rule of `decnet_tls::pki::normalize_fingerprint`).
///
/// ```
/// use decnet_core::orchestrate::swarm::normalize_fingerprint;
/// let fp = "AB:".repeat(31) + "AB";
/// assert_eq!(normalize_fingerprint(&fp).unwrap(), "ab".repeat(32));
/// assert!(normalize_fingerprint("abc").is_err());
/// ```
pub fn normalize_fingerprint(text: &str) -> Result<String, String> {
    let hex: String = text
        .trim()
        .chars()
        .filter(|c| *c != ':')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(hex)
    } else {
        Err(format!(
            "invalid fingerprint {text:?}: expected 64 hex digits (SHA-256 of the certificate DER)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::auth::EnrollToken;
    use crate::model::{AgentStatus, HostName};
    use crate::orchestrate::bus::BroadcastBus;
    use crate::testkit::{ManualClock, MemRepository};
    use crate::traits::MockAgentConnector;

    const CA_FP: &str = "ca00000000000000000000000000000000000000000000000000000000000000";
    const MASTER_FP: &str = "aa00000000000000000000000000000000000000000000000000000000000000";

    /// Signs anything but the CSR `bad`; the fingerprint is a hash of the CSR and name.
    #[derive(Debug)]
    struct FakeIssuer;

    impl CertIssuer for FakeIssuer {
        fn ca_fingerprint(&self) -> String {
            CA_FP.into()
        }
        fn ca_pem(&self) -> String {
            "CA PEM".into()
        }
        fn master_fingerprint(&self) -> String {
            MASTER_FP.into()
        }
        fn next_master_fingerprint(&self) -> Option<String> {
            None
        }
        fn issue_worker<'a>(
            &self,
            req: &WorkerCertRequest<'a>,
        ) -> Result<IssuedWorkerCert, IssueError> {
            if req.csr_pem == "bad" {
                return Err(IssueError::BadCsr {
                    message: "not a PEM CSR".into(),
                    source: None,
                });
            }
            Ok(IssuedWorkerCert {
                cert_pem: format!("CERT {} {}", req.name, req.address),
                fingerprint: token_hash(&format!("{}/{}", req.csr_pem, req.name)),
                not_after: Utc::now() + chrono::Duration::days(365),
            })
        }
    }

    struct Lab {
        repo: Arc<MemRepository>,
        clock: Arc<ManualClock>,
        swarm: Swarm,
    }

    fn lab() -> Lab {
        let repo = Arc::new(MemRepository::new());
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let lifecycle =
            Lifecycle::new(repo.clone(), Arc::new(BroadcastBus::new(16)), clock.clone());
        let mut agents = MockAgentConnector::new();
        agents.expect_forget().return_const(());
        let swarm = Swarm::new(
            repo.clone(),
            clock.clone(),
            Arc::new(FakeIssuer),
            Arc::new(agents),
            lifecycle,
            SwarmSettings::default()
                .with_heartbeat_interval(Duration::from_secs(30))
                .with_renewal_overlap(Duration::from_secs(3600)),
        );
        Lab { repo, clock, swarm }
    }

    impl Lab {
        /// A fresh one-time token for `name`, as the operator would paste it.
        async fn token(&self, name: &str) -> String {
            let text = EnrollTokenText {
                secret: format!("{}abcdefghijk", uuid::Uuid::new_v4().simple()),
                ca_fingerprint: CA_FP.into(),
            }
            .render();
            let now = self.clock.now();
            self.repo
                .insert_enroll_token(&EnrollToken {
                    id: uuid::Uuid::new_v4(),
                    hash: token_hash(&text),
                    host_name: HostName::new(name).unwrap(),
                    address: "10.0.0.5:8765".into(),
                    created_at: now,
                    expires_at: now + chrono::Duration::minutes(15),
                    used_at: None,
                })
                .await
                .unwrap();
            text
        }

        async fn enrolled(&self, name: &str) -> (Host, String) {
            let token = self.token(name).await;
            let a = self.swarm.enroll(&token, "csr-1").await.unwrap();
            let host = self.repo.host(a.host_uuid).await.unwrap().unwrap();
            let fp = host.fingerprint.clone();
            (host, fp)
        }

        async fn beat(&self, host: &Host) {
            let beat = HeartbeatBody {
                host_uuid: host.uuid,
                agent_version: Some("1.0".into()),
                wire_version: Some(crate::model::WIRE_VERSION),
                status: AgentStatus::not_deployed(self.clock.now(), vec![]),
                lifecycle: vec![],
            };
            let (h, p) = self
                .swarm
                .identify(Some(&host.fingerprint), Some(&host.uuid.to_string()))
                .await
                .unwrap();
            self.swarm.heartbeat(&h, p, &beat).await.unwrap();
        }
    }

    #[tokio::test]
    async fn enrollment_spends_a_token_once_and_never_on_a_bad_csr() {
        let lab = lab();
        let token = lab.token("worker-1").await;
        let bad = lab.swarm.enroll(&token, "bad").await.unwrap_err();
        assert!(
            matches!(
                bad,
                SwarmError::Invalid {
                    field: "csr_pem",
                    ..
                }
            ),
            "{bad:?}"
        );
        let a = lab.swarm.enroll(&token, "csr-1").await.unwrap();
        assert_eq!(a.master_fingerprint, MASTER_FP);
        assert_eq!(a.ca_pem, "CA PEM");
        let host = lab.repo.host(a.host_uuid).await.unwrap().unwrap();
        assert_eq!(host.name.as_str(), "worker-1");
        assert_eq!(host.status, HostStatus::Enrolled);
        assert_eq!(a.cert_pem, "CERT worker-1 10.0.0.5:8765");
        for again in [token.as_str(), "dnet1_garbage", ""] {
            let e = lab.swarm.enroll(again, "csr-1").await.unwrap_err();
            assert!(matches!(e, SwarmError::TokenRefused), "{again:?}: {e:?}");
        }
        // A token naming another CA is refused before the store is asked.
        let foreign = EnrollTokenText::parse(&lab.token("worker-2").await).unwrap();
        let foreign = EnrollTokenText {
            ca_fingerprint: "cb".repeat(32),
            ..foreign
        };
        let e = lab
            .swarm
            .enroll(&foreign.render(), "csr-1")
            .await
            .unwrap_err();
        assert!(matches!(e, SwarmError::TokenRefused));
    }

    #[tokio::test]
    async fn a_second_host_of_the_same_name_is_a_conflict() {
        let lab = lab();
        lab.enrolled("worker-1").await;
        let token = lab.token("worker-1").await;
        let e = lab.swarm.enroll(&token, "csr-2").await.unwrap_err();
        assert!(matches!(e, SwarmError::Conflict { .. }), "{e:?}");
    }

    #[tokio::test]
    async fn identity_is_the_pinned_fingerprint_and_nothing_else() {
        let lab = lab();
        let (host, fp) = lab.enrolled("worker-1").await;
        let uuid = host.uuid.to_string();
        let (h, p) = lab.swarm.identify(Some(&fp), Some(&uuid)).await.unwrap();
        assert_eq!((h.uuid, p), (host.uuid, Presented::Current));
        let (_, other) = lab.enrolled("worker-2").await;
        for (fp, uuid) in [
            (None, Some(uuid.as_str())),
            (Some(fp.as_str()), None),
            (Some(fp.as_str()), Some("not-a-uuid")),
            (Some(other.as_str()), Some(uuid.as_str())),
            (Some(fp.as_str()), Some(&*HostUuid::new_v4().to_string())),
        ] {
            let e = lab.swarm.identify(fp, uuid).await.unwrap_err();
            assert!(matches!(e, SwarmError::Forbidden), "{fp:?} {uuid:?}");
        }
        lab.repo
            .revoke_fingerprint(&fp, lab.clock.now())
            .await
            .unwrap();
        lab.swarm.note_revoked(&fp);
        let e = lab
            .swarm
            .identify(Some(&fp), Some(&uuid))
            .await
            .unwrap_err();
        assert!(matches!(e, SwarmError::Forbidden), "revoked");
    }

    #[tokio::test]
    async fn a_renewal_overlaps_until_the_new_certificate_is_used_or_the_overlap_ends() {
        let lab = lab();
        let (host, old) = lab.enrolled("worker-1").await;
        let uuid = host.uuid.to_string();
        lab.swarm
            .renew(&host, Presented::Current, "csr-2")
            .await
            .unwrap();
        let renewed = lab.swarm.host(host.uuid).await.unwrap().unwrap();
        let new = renewed.fingerprint.clone();
        assert_ne!(new, old);
        // Both are accepted during the overlap: the old one as the previous.
        let (_, p) = lab.swarm.identify(Some(&old), Some(&uuid)).await.unwrap();
        assert_eq!(p, Presented::Previous);
        // The old one used after the overlap ends it and is refused.
        lab.clock.advance(Duration::from_secs(3601));
        let e = lab
            .swarm
            .identify(Some(&old), Some(&uuid))
            .await
            .unwrap_err();
        assert!(matches!(e, SwarmError::Forbidden));
        assert!(lab.repo.is_revoked(&old).await.unwrap());
        let stored = lab.repo.host(host.uuid).await.unwrap().unwrap();
        assert_eq!(stored.previous_fingerprint, None);
        let (_, p) = lab.swarm.identify(Some(&new), Some(&uuid)).await.unwrap();
        assert_eq!(p, Presented::Current);
    }

    #[tokio::test]
    async fn a_heartbeat_with_the_new_certificate_ends_the_overlap() {
        let lab = lab();
        let (host, old) = lab.enrolled("worker-1").await;
        lab.swarm
            .renew(&host, Presented::Current, "csr-2")
            .await
            .unwrap();
        let renewed = lab.swarm.host(host.uuid).await.unwrap().unwrap();
        lab.beat(&renewed).await;
        assert!(lab.repo.is_revoked(&old).await.unwrap());
        let e = lab
            .swarm
            .identify(Some(&old), Some(&host.uuid.to_string()))
            .await
            .unwrap_err();
        assert!(matches!(e, SwarmError::Forbidden));
    }

    #[tokio::test]
    async fn unchanged_heartbeats_are_written_once_per_interval_and_silence_is_unreachable() {
        let lab = lab();
        let (host, _) = lab.enrolled("worker-1").await;
        let t0 = lab.clock.now();
        lab.beat(&host).await;
        let stored = || async { lab.repo.host(host.uuid).await.unwrap().unwrap() };
        assert_eq!(stored().await.status, HostStatus::Active);
        assert_eq!(stored().await.last_heartbeat, Some(t0));
        // Within the interval: kept in memory, not written; the view shows it.
        lab.clock.advance(Duration::from_secs(10));
        let host = lab.swarm.host(host.uuid).await.unwrap().unwrap();
        lab.beat(&host).await;
        assert_eq!(stored().await.last_heartbeat, Some(t0));
        let t1 = lab.clock.now();
        let view = lab.swarm.hosts_view().await.unwrap();
        assert_eq!(view[0].last_heartbeat, Some(t1));
        // The check flushes the unwritten time first: the host is not unreachable yet.
        lab.clock.advance(Duration::from_secs(80));
        assert!(lab
            .swarm
            .check_hosts(lab.clock.now())
            .await
            .unwrap()
            .is_empty());
        assert_eq!(stored().await.last_heartbeat, Some(t1));
        // Three intervals of silence after the last heartbeat: unreachable, once.
        lab.clock.advance(Duration::from_secs(20));
        let changed = lab.swarm.check_hosts(lab.clock.now()).await.unwrap();
        assert_eq!(changed, vec![host.uuid]);
        assert_eq!(stored().await.status, HostStatus::Unreachable);
        assert!(lab
            .swarm
            .check_hosts(lab.clock.now())
            .await
            .unwrap()
            .is_empty());
        // Its next heartbeat is written through at once (it was not active).
        let host = lab.swarm.host(host.uuid).await.unwrap().unwrap();
        lab.beat(&host).await;
        assert_eq!(stored().await.status, HostStatus::Active);
    }

    #[tokio::test]
    async fn a_newer_wire_version_is_refused_and_shown_until_an_accepted_heartbeat() {
        let lab = lab();
        let (host, _) = lab.enrolled("worker-1").await;
        let mut beat = HeartbeatBody {
            host_uuid: host.uuid,
            agent_version: Some("9.0.0".into()),
            wire_version: Some(crate::model::WIRE_VERSION + 1),
            status: AgentStatus::not_deployed(lab.clock.now(), vec![]),
            lifecycle: vec![],
        };
        let e = lab
            .swarm
            .heartbeat(&host, Presented::Current, &beat)
            .await
            .unwrap_err();
        assert!(matches!(e, SwarmError::Incompatible { .. }), "{e:?}");
        let why = lab.swarm.version_error(host.uuid).unwrap();
        assert!(
            why.contains("agent 9.0.0") && why.contains("upgrade the master first"),
            "{why}"
        );
        assert_eq!(
            lab.repo.host(host.uuid).await.unwrap().unwrap().status,
            HostStatus::Enrolled,
            "a refused heartbeat changes nothing"
        );
        // No wire version at all is version 1, spoken.
        beat.wire_version = None;
        lab.swarm
            .heartbeat(&host, Presented::Current, &beat)
            .await
            .unwrap();
        assert_eq!(lab.swarm.version_error(host.uuid), None);
    }

    #[tokio::test]
    async fn master_pins_are_recorded_normalized_and_checked() {
        let lab = lab();
        let (host, _) = lab.enrolled("worker-1").await;
        let next = "BB:".repeat(31) + "BB";
        assert_eq!(
            lab.swarm.unpinned(&"bb".repeat(32)).await.unwrap(),
            vec!["worker-1".to_string()]
        );
        let answer = lab.swarm.master_pins(host.uuid, Some(next)).unwrap();
        assert_eq!(answer.master_fingerprint, MASTER_FP);
        assert!(lab
            .swarm
            .unpinned(&"bb".repeat(32))
            .await
            .unwrap()
            .is_empty());
        let e = lab
            .swarm
            .master_pins(host.uuid, Some("xyz".into()))
            .unwrap_err();
        assert!(
            matches!(
                e,
                SwarmError::Invalid {
                    field: "next_fingerprint",
                    ..
                }
            ),
            "{e:?}"
        );
    }
}

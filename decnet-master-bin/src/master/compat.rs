//! Mixed-version fleets: which agents this master can speak with.
//!
//! Heartbeats carry the agent's version and, since wire version 1 was numbered, its
//! `wire_version` ([`WIRE_VERSION`]); an agent that sends none speaks version 1. The master
//! accepts agents of its own wire version or older (it adapts: older bodies parse with their
//! missing fields defaulted) and refuses newer ones with 409 and a reason, which the host then
//! shows (`version_error` in `GET /api/v1/swarm/hosts`, a line under `decnet hosts list`), and
//! `decnet_heartbeats_incompatible_total` counts — never a silent failure. Upgrade order
//! (docs/operations.md): the master first, then the agents.

use std::collections::HashMap;
use std::sync::Mutex;

use decnet_core::model::HostUuid;
pub use decnet_core::model::WIRE_VERSION;

/// Why this master cannot speak with an agent that reports `agent_version` and `wire`.
pub fn check(agent_version: Option<&str>, wire: Option<u32>) -> Result<(), String> {
    let wire = wire.unwrap_or(1);
    if wire <= WIRE_VERSION {
        return Ok(());
    }
    Err(format!(
        "agent {} speaks wire version {wire}; this master ({}) speaks up to {WIRE_VERSION}: \
         upgrade the master first, then the agents",
        agent_version.unwrap_or("(version unknown)"),
        env!("CARGO_PKG_VERSION")
    ))
}

/// Per host, why its latest heartbeat was refused for its version (in memory: after a
/// restart the next heartbeat tells again).
#[derive(Debug, Default)]
pub struct VersionErrors(Mutex<HashMap<HostUuid, String>>);

impl VersionErrors {
    /// Records (`Some`) or clears (`None`) `host`'s version error; logs a new one.
    pub fn note(&self, host: HostUuid, error: Option<String>) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match error {
            Some(e) => {
                if map.get(&host) != Some(&e) {
                    tracing::error!(host_uuid = %host, error = %e, "heartbeat refused: incompatible agent");
                }
                map.insert(host, e);
            }
            None => {
                map.remove(&host);
            }
        }
    }

    pub fn get(&self, host: HostUuid) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&host)
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn older_and_equal_wire_versions_are_spoken_newer_refused() {
        assert!(
            check(Some("0.0.9"), None).is_ok(),
            "no wire_version: version 1"
        );
        assert!(check(Some("0.1.0"), Some(WIRE_VERSION)).is_ok());
        let e = check(Some("9.0.0"), Some(WIRE_VERSION + 1)).unwrap_err();
        assert!(
            e.contains("agent 9.0.0") && e.contains("upgrade the master first"),
            "{e}"
        );
        let errors = VersionErrors::default();
        let h = HostUuid(uuid::Uuid::nil());
        errors.note(h, Some(e.clone()));
        assert_eq!(errors.get(h), Some(e));
        errors.note(h, None);
        assert_eq!(errors.get(h), None);
    }
}

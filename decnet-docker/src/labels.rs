//! The labels every DECNET container and network carries (PRODUCT §3). Every list and remove is
//! scoped by them, so a master, an agent and tests sharing one daemon never touch each other.

use std::collections::HashMap;

use bollard::models::ContainerSummary;
use decnet_core::model::DeckyName;
use decnet_core::plan::{Observed, Role};

pub const MANAGED: &str = "decnet.managed";
pub const HOST: &str = "decnet.host";
pub const DECKY: &str = "decnet.decky";
pub const ROLE: &str = "decnet.role";
pub const SERVICE: &str = "decnet.service";
/// The shape hash the converge planner compares.
pub const SHAPE: &str = "decnet.shape";

/// Labels of one container.
pub fn container_labels(
    host: &str,
    decky: &DeckyName,
    role: &Role,
    shape: &str,
) -> HashMap<String, String> {
    let mut l = HashMap::from([
        (MANAGED.to_string(), "true".to_string()),
        (HOST.to_string(), host.to_string()),
        (DECKY.to_string(), decky.to_string()),
        (SHAPE.to_string(), shape.to_string()),
    ]);
    match role {
        Role::Base => {
            l.insert(ROLE.into(), "base".into());
        }
        Role::Service(svc) => {
            l.insert(ROLE.into(), "service".into());
            l.insert(SERVICE.into(), svc.clone());
        }
    }
    l
}

/// The label filter selecting this host's containers (optionally one decky's).
pub fn host_filter(host: &str, decky: Option<&DeckyName>) -> HashMap<String, Vec<String>> {
    let mut labels = vec![format!("{MANAGED}=true"), format!("{HOST}={host}")];
    if let Some(d) = decky {
        labels.push(format!("{DECKY}={d}"));
    }
    HashMap::from([("label".to_string(), labels)])
}

/// Reads a container this project made back into the planner's terms; `None` for anything
/// else (a container without our labels is never touched).
pub fn observed(c: &ContainerSummary) -> Option<Observed> {
    let labels = c.labels.as_ref()?;
    if labels.get(MANAGED).map(String::as_str) != Some("true") {
        return None;
    }
    let decky = DeckyName::new(labels.get(DECKY)?.clone()).ok()?;
    let role = match labels.get(ROLE).map(String::as_str) {
        Some("base") => Role::Base,
        Some("service") => Role::Service(labels.get(SERVICE)?.clone()),
        _ => return None,
    };
    Some(Observed {
        id: c.id.clone()?,
        decky,
        role,
        hash: labels.get(SHAPE).cloned(),
        running: c
            .state
            .is_some_and(|s| s == bollard::models::ContainerSummaryStateEnum::RUNNING),
    })
}

/// The container's state word (`running`, `exited`, …).
pub fn state_word(c: &ContainerSummary) -> String {
    c.state
        .map(|s| s.to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

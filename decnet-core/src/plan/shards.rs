//! The shard planner and the partial-failure merge (pure; the lifecycle runner applies them).

use std::collections::BTreeMap;

use crate::model::{DeckyName, HostUuid, LifecycleStatus, Operation, RuntimeMap};

/// Assigns every decky to a live host: a decky already on a live host keeps it (moving one
/// would put its IP and MAC on two hosts); the others go round-robin over the live hosts,
/// least-loaded first, in name order. With no live host, nothing is assigned (unihost).
///
/// ```
/// use std::collections::BTreeMap;
///
/// use decnet_core::model::{DeckyName, HostUuid};
/// use decnet_core::plan::plan_shards;
///
/// let name = |s: &str| DeckyName::new(s).unwrap();
/// let (a, b) = (HostUuid::new_v4(), HostUuid::new_v4());
/// // `db` already runs on `b`; the new deckies fill the least-loaded host first.
/// let current = BTreeMap::from([(name("db"), b)]);
/// let plan = plan_shards(&[name("db"), name("mail"), name("web")], &[a, b], &current);
/// assert_eq!(plan[&name("db")], b);
/// assert_eq!(plan[&name("mail")], a);
/// assert_eq!(plan.len(), 3);
/// assert!(plan_shards(&[name("web")], &[], &BTreeMap::new()).is_empty());
/// ```
pub fn plan_shards(
    deckies: &[DeckyName],
    live_hosts: &[HostUuid],
    current: &BTreeMap<DeckyName, HostUuid>,
) -> BTreeMap<DeckyName, HostUuid> {
    let mut out = BTreeMap::new();
    if live_hosts.is_empty() {
        return out;
    }
    let mut load: BTreeMap<HostUuid, usize> = live_hosts.iter().map(|h| (*h, 0)).collect();
    for d in deckies {
        if let Some(h) = current.get(d).filter(|h| load.contains_key(h)) {
            out.insert(d.clone(), *h);
            *load.entry(*h).or_default() += 1;
        }
    }
    for d in deckies {
        if out.contains_key(d) {
            continue;
        }
        // Least loaded; ties broken by the order of `live_hosts`, so it is round-robin.
        let host = live_hosts
            .iter()
            .min_by_key(|h| load.get(h).copied().unwrap_or(0))
            .copied()
            .unwrap_or(live_hosts[0]);
        out.insert(d.clone(), host);
        *load.entry(host).or_default() += 1;
    }
    out
}

/// Who was probed after a failed dispatch: it names the probe in the rows' errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Probed {
    /// A worker's agent (`GET /status`).
    Agent,
    /// This machine's container runtime (unihost).
    Runtime,
}

/// What one decky's row should become after a failed dispatch, from the agent's `/status`
/// runtime map (`Ok`) or the probe's failure (`Err`). A failed probe fails the whole shard.
pub fn merge_probe(
    rows: &[(DeckyName, Operation)],
    probe: Result<&RuntimeMap, &str>,
    dispatch_error: &str,
) -> Vec<(DeckyName, LifecycleStatus, Option<String>)> {
    merge_probe_of(Probed::Agent, rows, probe, dispatch_error)
}

/// [`merge_probe`] for either kind of probe: the unihost path reads the local runtime after a
/// deployer error the same way.
pub fn merge_probe_of(
    who: Probed,
    rows: &[(DeckyName, Operation)],
    probe: Result<&RuntimeMap, &str>,
    dispatch_error: &str,
) -> Vec<(DeckyName, LifecycleStatus, Option<String>)> {
    let (failed_probe, shows) = match who {
        Probed::Agent => ("the agent could not be probed", "the agent's status shows"),
        Probed::Runtime => (
            "the container runtime could not be read",
            "the container runtime shows",
        ),
    };
    rows.iter()
        .map(|(name, op)| {
            (
                name,
                op,
                match who {
                    Probed::Agent => "dispatch",
                    // The runtime ran the operation itself: name it.
                    Probed::Runtime => op.as_str(),
                },
            )
        })
        .map(|(name, op, what)| match probe {
            Err(probe_err) => (
                name.clone(),
                LifecycleStatus::Failed,
                Some(format!(
                    "{what} failed ({dispatch_error}) and {failed_probe} ({probe_err})"
                )),
            ),
            Ok(runtime) => {
                let running = runtime.get(name.as_str()).is_some_and(|r| r.running);
                let present = runtime.contains_key(name.as_str());
                let ok = match op {
                    Operation::Deploy | Operation::Mutate => running,
                    Operation::Teardown => !present,
                };
                if ok {
                    (name.clone(), LifecycleStatus::Succeeded, None)
                } else {
                    let seen = if present { "not running" } else { "absent" };
                    (
                        name.clone(),
                        LifecycleStatus::Failed,
                        Some(format!(
                            "{what} failed ({dispatch_error}); {shows} the decky {seen}"
                        )),
                    )
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DeckyRuntime;
    use proptest::prelude::*;

    fn n(s: &str) -> DeckyName {
        DeckyName::new(s).unwrap()
    }

    #[test]
    fn round_robin_and_sticky() {
        let h1 = HostUuid(uuid::Uuid::from_u128(1));
        let h2 = HostUuid(uuid::Uuid::from_u128(2));
        let dead = HostUuid(uuid::Uuid::from_u128(3));
        let names: Vec<_> = ["a", "b", "c", "d"].iter().map(|s| n(s)).collect();
        let p = plan_shards(&names, &[h1, h2], &BTreeMap::new());
        assert_eq!(p.values().copied().collect::<Vec<_>>(), [h1, h2, h1, h2]);
        // "c" already lives on h2: it stays; a decky on a dead host is reassigned.
        let current = BTreeMap::from([(n("c"), h2), (n("d"), dead)]);
        let p = plan_shards(&names, &[h1, h2], &current);
        assert_eq!(p[&n("c")], h2);
        assert_ne!(p[&n("d")], dead);
        assert!(plan_shards(&names, &[], &current).is_empty());
    }

    #[test]
    fn probe_merge() {
        let mut rt = RuntimeMap::new();
        rt.insert(
            "a".into(),
            DeckyRuntime::from_services([("ssh".to_string(), "running".to_string())].into()),
        );
        rt.insert(
            "b".into(),
            DeckyRuntime::from_services([("ssh".to_string(), "exited".to_string())].into()),
        );
        let rows = vec![
            (n("a"), Operation::Deploy),
            (n("b"), Operation::Deploy),
            (n("c"), Operation::Deploy),
            (n("z"), Operation::Teardown),
        ];
        let out = merge_probe(&rows, Ok(&rt), "connection reset");
        let statuses: Vec<_> = out.iter().map(|(_, s, _)| *s).collect();
        assert_eq!(
            statuses,
            [
                LifecycleStatus::Succeeded,
                LifecycleStatus::Failed,
                LifecycleStatus::Failed,
                LifecycleStatus::Succeeded
            ]
        );
        assert!(out[1].2.as_deref().unwrap().contains("not running"));
        let out = merge_probe(&rows, Err("timed out"), "connection reset");
        assert!(out.iter().all(|(_, s, e)| *s == LifecycleStatus::Failed
            && e.as_deref().unwrap().contains("timed out")));
    }

    proptest! {
        #[test]
        fn balanced_and_complete(n_deckies in 0usize..60, n_hosts in 1usize..6) {
            let names: Vec<_> = (0..n_deckies).map(|i| n(&format!("d{i}"))).collect();
            let hosts: Vec<_> = (0..n_hosts).map(|i| HostUuid(uuid::Uuid::from_u128(i as u128 + 1))).collect();
            let p = plan_shards(&names, &hosts, &BTreeMap::new());
            prop_assert_eq!(p.len(), n_deckies);
            let mut load = BTreeMap::new();
            for h in p.values() { *load.entry(*h).or_insert(0usize) += 1; }
            let max = load.values().max().copied().unwrap_or(0);
            let min = if load.len() < n_hosts { 0 } else { load.values().min().copied().unwrap_or(0) };
            prop_assert!(max - min <= 1);
            // Planning again from the result changes nothing.
            prop_assert_eq!(plan_shards(&names, &hosts, &p), p);
        }
    }
}

//! The converge planner: what a deployer must do to bring a host from the containers it has
//! to the deckies it should have. Level-triggered and idempotent: it only compares desired
//! shapes with observed containers, and an already converged host yields no step at all.
//!
//! Each container carries a *shape hash* label. The base's hash covers what shapes the base
//! (address, MAC, hostname, OS profile, image, network); a service's hash covers the service,
//! its persona config, the image and the base's hash, so services follow their base.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::model::DeckyName;
use crate::registry::oui::fnv1a64;

/// A stable hash of any serialisable shape (FNV-1a 64 over its JSON; struct fields serialise
/// in declaration order and maps are sorted, so equal shapes hash equal across runs).
pub fn shape_hash<T: Serialize + ?Sized>(shape: &T) -> String {
    let json = serde_json::to_vec(shape).unwrap_or_default();
    format!("{:016x}", fnv1a64(&json))
}

/// Which container of a decky.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// The decky's base container (`<decky>`): it holds the address, MAC and network stack.
    Base,
    /// One service's container (`<decky>.<svc>`), by service slug; it shares the base's network.
    Service(String),
}

/// A container found on the host (by its labels).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// The runtime's container id.
    pub id: String,
    /// The decky the container belongs to (its `decnet.decky` label).
    pub decky: DeckyName,
    /// Which of the decky's containers it is (its `decnet.role` and `decnet.service` labels).
    pub role: Role,
    /// The shape hash label; `None` when missing (then the container is replaced).
    pub hash: Option<String>,
    /// Whether the container is running; a stopped one is replaced.
    pub running: bool,
}

/// A decky as it should be, with its shape hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    /// The decky's name.
    pub decky: DeckyName,
    /// The shape hash the base container must carry.
    pub base_hash: String,
    /// Service slug → shape hash.
    pub services: BTreeMap<String, String>,
}

/// What to do for one decky. Order of execution: remove (services before the base), then create
/// the base, then the services.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeckySteps {
    /// Container ids to remove.
    pub remove: Vec<String>,
    /// Whether to (re)create the base container.
    pub create_base: bool,
    /// Service slugs whose containers to (re)create, after the base.
    pub create_services: Vec<String>,
    /// The decky is no longer desired on this host.
    pub retire: bool,
}

impl DeckySteps {
    /// True when nothing is to be removed or created.
    pub fn is_noop(&self) -> bool {
        self.remove.is_empty() && !self.create_base && self.create_services.is_empty()
    }
}

/// The whole plan, per decky. Converged deckies are absent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConvergePlan {
    /// Decky name → its steps.
    pub deckies: BTreeMap<DeckyName, DeckySteps>,
}

impl ConvergePlan {
    /// True when the host is converged: no decky has a step.
    pub fn is_noop(&self) -> bool {
        self.deckies.is_empty()
    }
}

fn is_current(o: &Observed, want: &str) -> bool {
    o.running && o.hash.as_deref() == Some(want)
}

/// Plans the steps from `observed` containers to `desired` deckies.
///
/// - no base, or a base of another shape or not running → replace the base and every service;
/// - a service missing, of another shape or not running → replace that service only;
/// - a service no longer wanted, or a duplicate container → remove it;
/// - a decky not desired → remove all its containers (`retire`).
///
/// ```
/// use std::collections::BTreeMap;
///
/// use decnet_core::model::DeckyName;
/// use decnet_core::plan::{plan_converge, Desired, Observed, Role};
///
/// let web = DeckyName::new("web").unwrap();
/// let desired = [Desired {
///     decky: web.clone(),
///     base_hash: "b1".into(),
///     services: BTreeMap::from([("ssh".into(), "s1".into()), ("http".into(), "h1".into())]),
/// }];
/// let container = |id: &str, role: Role, hash: &str| Observed {
///     id: id.into(),
///     decky: web.clone(),
///     role,
///     hash: Some(hash.into()),
///     running: true,
/// };
/// // The base and ssh are current; http runs with an old shape.
/// let observed = [
///     container("c1", Role::Base, "b1"),
///     container("c2", Role::Service("ssh".into()), "s1"),
///     container("c3", Role::Service("http".into()), "h0"),
/// ];
/// let plan = plan_converge(&desired, &observed);
/// let steps = &plan.deckies[&web];
/// assert_eq!(steps.remove, ["c3"]);
/// assert!(!steps.create_base);
/// assert_eq!(steps.create_services, ["http"]);
///
/// // Once converged, there is nothing to do.
/// let http = container("c4", Role::Service("http".into()), "h1");
/// let observed = [observed[0].clone(), observed[1].clone(), http];
/// assert!(plan_converge(&desired, &observed).is_noop());
/// ```
pub fn plan_converge(desired: &[Desired], observed: &[Observed]) -> ConvergePlan {
    let mut by_decky: BTreeMap<&DeckyName, Vec<&Observed>> = BTreeMap::new();
    for o in observed {
        by_decky.entry(&o.decky).or_default().push(o);
    }
    let wanted: BTreeSet<&DeckyName> = desired.iter().map(|d| &d.decky).collect();
    let mut plan = ConvergePlan::default();

    for d in desired {
        let have = by_decky.get(&d.decky).map(Vec::as_slice).unwrap_or(&[]);
        let bases: Vec<&&Observed> = have.iter().filter(|o| o.role == Role::Base).collect();
        let mut steps = DeckySteps::default();
        let base_ok = bases.len() == 1 && is_current(bases[0], &d.base_hash);
        if base_ok {
            // Keep the base; settle each service on its own.
            let mut kept = BTreeSet::new();
            for o in have {
                let Role::Service(svc) = &o.role else {
                    continue;
                };
                match d.services.get(svc) {
                    Some(h) if is_current(o, h) && kept.insert(svc.clone()) => {}
                    _ => steps.remove.push(o.id.clone()),
                }
            }
            steps.create_services = d
                .services
                .keys()
                .filter(|s| !kept.contains(*s))
                .cloned()
                .collect();
        } else {
            // Services lose their network with the base: replace the whole decky.
            steps.remove.extend(
                have.iter()
                    .filter(|o| o.role != Role::Base)
                    .chain(bases.iter().copied())
                    .map(|o| o.id.clone()),
            );
            steps.create_base = true;
            steps.create_services = d.services.keys().cloned().collect();
        }
        if !steps.is_noop() {
            plan.deckies.insert(d.decky.clone(), steps);
        }
    }

    for (decky, have) in by_decky {
        if wanted.contains(decky) {
            continue;
        }
        let mut ids: Vec<String> = have
            .iter()
            .filter(|o| o.role != Role::Base)
            .chain(have.iter().filter(|o| o.role == Role::Base))
            .map(|o| o.id.clone())
            .collect();
        ids.dedup();
        plan.deckies.insert(
            decky.clone(),
            DeckySteps {
                remove: ids,
                retire: true,
                ..Default::default()
            },
        );
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn name(s: &str) -> DeckyName {
        DeckyName::new(s).unwrap()
    }

    fn desired(decky: &str, base: &str, services: &[(&str, &str)]) -> Desired {
        Desired {
            decky: name(decky),
            base_hash: base.into(),
            services: services
                .iter()
                .map(|(s, h)| (s.to_string(), h.to_string()))
                .collect(),
        }
    }

    fn obs(id: &str, decky: &str, role: Option<&str>, hash: &str, running: bool) -> Observed {
        Observed {
            id: id.into(),
            decky: name(decky),
            role: role.map_or(Role::Base, |s| Role::Service(s.into())),
            hash: Some(hash.into()),
            running,
        }
    }

    #[test]
    fn empty_host_creates_everything() {
        let p = plan_converge(&[desired("a", "b1", &[("ssh", "s1"), ("http", "h1")])], &[]);
        let s = &p.deckies[&name("a")];
        assert!(s.create_base && s.remove.is_empty() && !s.retire);
        assert_eq!(s.create_services, ["http", "ssh"]);
    }

    #[test]
    fn converged_host_is_a_noop() {
        let d = [desired("a", "b1", &[("ssh", "s1")])];
        let o = [
            obs("1", "a", None, "b1", true),
            obs("2", "a", Some("ssh"), "s1", true),
        ];
        assert!(plan_converge(&d, &o).is_noop());
    }

    #[test]
    fn changed_service_set_keeps_the_base() {
        let d = [desired("a", "b1", &[("ssh", "s1"), ("ftp", "f1")])];
        let o = [
            obs("1", "a", None, "b1", true),
            obs("2", "a", Some("ssh"), "s1", true),
            obs("3", "a", Some("http"), "h1", true),
        ];
        let s = &plan_converge(&d, &o).deckies[&name("a")];
        assert!(!s.create_base);
        assert_eq!(s.remove, ["3"]);
        assert_eq!(s.create_services, ["ftp"]);
    }

    #[test]
    fn changed_base_replaces_the_decky_services_first() {
        let d = [desired("a", "b2", &[("ssh", "s1")])];
        let o = [
            obs("1", "a", None, "b1", true),
            obs("2", "a", Some("ssh"), "s1", true),
        ];
        let s = &plan_converge(&d, &o).deckies[&name("a")];
        assert_eq!(s.remove, ["2", "1"]);
        assert!(s.create_base);
        assert_eq!(s.create_services, ["ssh"]);
    }

    #[test]
    fn stopped_or_unlabelled_containers_are_replaced() {
        let d = [desired("a", "b1", &[("ssh", "s1")])];
        let o = [
            obs("1", "a", None, "b1", true),
            obs("2", "a", Some("ssh"), "s1", false),
        ];
        let s = &plan_converge(&d, &o).deckies[&name("a")];
        assert_eq!(
            (s.remove.as_slice(), s.create_services.as_slice()),
            (&["2".to_string()][..], &["ssh".to_string()][..])
        );
        let mut unlabelled = obs("1", "a", None, "b1", true);
        unlabelled.hash = None;
        let s = &plan_converge(&d, &[unlabelled]).deckies[&name("a")];
        assert!(s.create_base);
    }

    #[test]
    fn undesired_deckies_are_retired_and_others_untouched() {
        let d = [desired("a", "b1", &[("ssh", "s1")])];
        let o = [
            obs("1", "a", None, "b1", true),
            obs("2", "a", Some("ssh"), "s1", true),
            obs("3", "z", None, "b9", true),
            obs("4", "z", Some("ftp"), "f9", false),
        ];
        let p = plan_converge(&d, &o);
        assert_eq!(p.deckies.len(), 1);
        let s = &p.deckies[&name("z")];
        assert!(s.retire);
        assert_eq!(s.remove, ["4", "3"]);
    }

    #[test]
    fn duplicates_are_removed() {
        let d = [desired("a", "b1", &[("ssh", "s1")])];
        let o = [
            obs("1", "a", None, "b1", true),
            obs("2", "a", Some("ssh"), "s1", true),
            obs("3", "a", Some("ssh"), "s1", true),
        ];
        let s = &plan_converge(&d, &o).deckies[&name("a")];
        assert_eq!(s.remove, ["3"]);
        assert!(s.create_services.is_empty());
        let two_bases = [
            obs("1", "a", None, "b1", true),
            obs("5", "a", None, "b1", true),
        ];
        let s = &plan_converge(&d, &two_bases).deckies[&name("a")];
        assert!(s.create_base && s.remove.len() == 2);
    }

    #[test]
    fn hashes_are_stable() {
        assert_eq!(shape_hash(&("a", 1)), shape_hash(&("a", 1)));
        assert_ne!(shape_hash(&("a", 1)), shape_hash(&("a", 2)));
        assert_eq!(shape_hash("x").len(), 16);
    }

    proptest! {
        /// Applying a plan and planning again yields nothing: the planner converges in one step.
        #[test]
        fn one_step_converges(
            want in proptest::collection::btree_map(0u8..6, (0u8..3, proptest::collection::btree_map(0u8..4, 0u8..3, 0..4)), 0..5),
            have in proptest::collection::vec((0u8..8, proptest::option::of(0u8..4), 0u8..3, any::<bool>()), 0..20),
        ) {
            let desired: Vec<Desired> = want.iter().map(|(d, (b, svcs))| Desired {
                decky: name(&format!("d{d}")),
                base_hash: format!("b{b}"),
                services: svcs.iter().map(|(s, h)| (format!("s{s}"), format!("h{h}"))).collect(),
            }).collect();
            let mut observed: Vec<Observed> = have.iter().enumerate().map(|(i, (d, s, h, r))| Observed {
                id: format!("c{i}"),
                decky: name(&format!("d{d}")),
                role: s.map_or(Role::Base, |s| Role::Service(format!("s{s}"))),
                hash: Some(match s { None => format!("b{h}"), Some(_) => format!("h{h}") }),
                running: *r,
            }).collect();
            let plan = plan_converge(&desired, &observed);
            // Apply it.
            let removed: BTreeSet<String> = plan.deckies.values().flat_map(|s| s.remove.clone()).collect();
            observed.retain(|o| !removed.contains(&o.id));
            let mut n = 0;
            for d in &desired {
                let Some(steps) = plan.deckies.get(&d.decky) else { continue };
                if steps.create_base {
                    n += 1;
                    observed.push(Observed { id: format!("n{n}"), decky: d.decky.clone(), role: Role::Base, hash: Some(d.base_hash.clone()), running: true });
                }
                for s in &steps.create_services {
                    n += 1;
                    observed.push(Observed { id: format!("n{n}"), decky: d.decky.clone(), role: Role::Service(s.clone()), hash: Some(d.services[s].clone()), running: true });
                }
            }
            prop_assert!(plan_converge(&desired, &observed).is_noop());
            // Nothing of an undesired decky is left.
            let wanted: BTreeSet<_> = desired.iter().map(|d| d.decky.clone()).collect();
            prop_assert!(observed.iter().all(|o| wanted.contains(&o.decky)));
        }
    }
}

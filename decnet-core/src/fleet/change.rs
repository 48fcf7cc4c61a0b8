//! The fleet-change planner: the one place that turns an operator's request and the facts of
//! the moment into the new desired fleet and the per-decky changes. The CLI (unihost), the
//! operator API (master) and the demo all plan through it.
//!
//! Pure: the existing fleet, the live hosts, the host's network facts, the randomness and the
//! time come in as arguments; nothing is read or written.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use rand::Rng;

use super::build::{build_from_flags, build_from_specs, requested_deckies, BuildContext};
use super::net::{resolve_net, NetInputs, NetPlan};
use super::{FleetError, FleetFlags, FleetSpec};
use crate::model::{
    validate_config, DeckyConfig, DeckyName, DecnetConfig, HostUuid, Mode, Operation,
};
use crate::plan::plan_shards;
use crate::traits::LocalNetFacts;

/// What the operator asks for.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Requested {
    /// Decky specs: the original's INI or the API's JSON fleet.
    Specs(FleetSpec),
    /// The CLI's `--deckies N` flags.
    Flags(FleetFlags),
}

/// Where the deckies are to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ModeChoice {
    /// As given (the CLI's `--mode`).
    Fixed(Mode),
    /// The planner chooses: an existing fleet keeps its mode; else swarm when a worker is
    /// live, else unihost.
    Auto,
}

/// The network a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NetRequest {
    /// What the request gives (flags over the INI's `[general]`); unset fields come from the
    /// existing fleet, then from the host's facts.
    Inputs(NetInputs),
    /// Already resolved (the demo's lab LAN).
    Resolved(NetPlan),
}

/// An operator's request to change the fleet.
#[derive(Debug, Clone)]
pub struct FleetChangeRequest {
    /// The deckies asked for.
    pub requested: Requested,
    /// The network.
    pub net: NetRequest,
    /// Replace the fleet (deckies not asked for go) rather than add to it.
    pub replace: bool,
    /// Where they run.
    pub mode: ModeChoice,
    /// `--mutate-interval`: beats every interval of the request.
    pub mutate_interval: Option<u32>,
    /// `--log-file` of the original's config.
    pub log_file: Option<String>,
    /// Plan even when the host's own address is not on the fleet's LAN (a master planning for
    /// workers on another LAN): the plan then carries no host address.
    pub host_ip_optional: bool,
}

/// What the planner is told about the moment.
#[derive(Debug, Clone, Copy)]
pub struct FleetFacts<'a> {
    /// The fleet as it is desired now.
    pub existing: Option<&'a DecnetConfig>,
    /// Enrolled hosts heard from recently, sorted (swarm placement).
    pub live_hosts: &'a [HostUuid],
    /// Addresses no decky may take (the workers' own, a lab's attacker).
    pub reserved: &'a [Ipv4Addr],
    /// Whether this machine can run deckies itself (an automatic unihost plan needs it).
    pub local_deployer: bool,
    /// What the kernel said about the interface, or why it could not (asked when
    /// [`net_inputs`] needs facts, or always by a master that wants the host's address).
    pub host_net: Option<&'a Result<LocalNetFacts, String>>,
    /// Most deckies the fleet may hold.
    pub fleet_limit: Option<usize>,
    /// Seconds since the epoch (`last_mutated` of new deckies).
    pub now_epoch: f64,
}

/// One decky's change.
#[derive(Debug, Clone, PartialEq)]
pub struct DeckyChange {
    /// The decky as desired after the change (for a teardown: as it was).
    pub decky: DeckyConfig,
    /// Deploy (new or reshaped or moved) or teardown (no longer desired).
    pub operation: Operation,
}

/// The planned change.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetChange {
    /// The complete new desired fleet.
    pub fleet: DecnetConfig,
    /// One entry per decky that must be deployed or torn down; unchanged deckies have none.
    pub changes: Vec<DeckyChange>,
}

/// The change by name, as a dry run shows it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChangeSummary {
    /// New deckies.
    pub added: Vec<String>,
    /// Deckies recreated or moved.
    pub changed: Vec<String>,
    /// Deckies removed.
    pub removed: Vec<String>,
    /// Deckies left as they are.
    pub unchanged: Vec<String>,
}

impl FleetChange {
    /// Names of what is added, changed, removed and left alone, against `existing`.
    pub fn summary(&self, existing: Option<&DecnetConfig>) -> ChangeSummary {
        let mut s = ChangeSummary::default();
        for c in &self.changes {
            let name = c.decky.name.to_string();
            match (c.operation, existing.and_then(|e| e.decky(&name))) {
                (Operation::Teardown, _) => s.removed.push(name),
                (_, None) => s.added.push(name),
                (_, Some(_)) => s.changed.push(name),
            }
        }
        let touched: BTreeSet<&str> = self.changes.iter().map(|c| c.decky.name.as_str()).collect();
        s.unchanged = self
            .fleet
            .deckies
            .iter()
            .filter(|d| !touched.contains(d.name.as_str()))
            .map(|d| d.name.to_string())
            .collect();
        s
    }
}

/// The network inputs the request resolves from: its own, else the existing fleet's. When
/// [`NetInputs::needs_facts`], the caller asks the kernel about `interface` and passes the
/// answer as [`FleetFacts::host_net`].
pub fn net_inputs(req: &FleetChangeRequest, existing: Option<&DecnetConfig>) -> NetInputs {
    let own = match &req.net {
        NetRequest::Inputs(i) => i.clone(),
        NetRequest::Resolved(p) => NetInputs {
            interface: Some(p.interface.clone()),
            subnet: Some(p.subnet),
            gateway: Some(p.gateway),
            host_ip: p.host_ip,
            driver: Some(p.driver),
        },
    };
    own.or(existing.map_or_else(NetInputs::default, |p| NetInputs {
        interface: Some(p.interface.clone()),
        subnet: Some(p.subnet),
        gateway: Some(p.gateway),
        host_ip: None,
        driver: Some(p.driver()),
    }))
}

/// The rows a change of the desired fleet calls for: a deploy for every new, reshaped or
/// moved decky, a teardown for every decky that is gone.
pub fn diff_fleets(old: Option<&DecnetConfig>, new: &DecnetConfig) -> Vec<DeckyChange> {
    let mut out = Vec::new();
    for d in &new.deckies {
        match old.and_then(|o| o.decky(d.name.as_str())) {
            Some(prev) if !prev.shape_differs(d) && prev.host_uuid == d.host_uuid => {}
            _ => out.push(DeckyChange {
                decky: d.clone(),
                operation: Operation::Deploy,
            }),
        }
    }
    if let Some(old) = old {
        for d in &old.deckies {
            if new.decky(d.name.as_str()).is_none() {
                out.push(DeckyChange {
                    decky: d.clone(),
                    operation: Operation::Teardown,
                });
            }
        }
    }
    out
}

fn over_limit(count: u64, limit: usize) -> FleetError {
    FleetError::OverLimit { count, limit }
}

/// Plans the change: mode, network, the new deckies (merged into the existing fleet unless
/// replacing it), the fleet limit, swarm placement, and the per-decky changes.
///
/// ```
/// use decnet_core::fleet::change::*;
/// use decnet_core::fleet::{FleetFlags, NetInputs};
/// use decnet_core::model::{Mode, Subnet};
/// use rand::SeedableRng;
///
/// let req = FleetChangeRequest {
///     requested: Requested::Flags(FleetFlags {
///         count: 2,
///         services: Some(vec!["ssh".into()]),
///         ..FleetFlags::default()
///     }),
///     net: NetRequest::Inputs(NetInputs {
///         interface: Some("eth1".into()),
///         subnet: Some(Subnet::parse("subnet", "10.9.0.0/24").unwrap()),
///         gateway: Some("10.9.0.1".parse().unwrap()),
///         host_ip: Some("10.9.0.2".parse().unwrap()),
///         driver: None,
///     }),
///     replace: true,
///     mode: ModeChoice::Fixed(Mode::Unihost),
///     mutate_interval: None,
///     log_file: None,
///     host_ip_optional: false,
/// };
/// let facts = FleetFacts {
///     existing: None,
///     live_hosts: &[],
///     reserved: &[],
///     local_deployer: true,
///     host_net: None,
///     fleet_limit: Some(256),
///     now_epoch: 0.0,
/// };
/// let change = plan_fleet_change(&req, &facts, &mut rand::rngs::StdRng::seed_from_u64(7)).unwrap();
/// assert_eq!(change.fleet.deckies.len(), 2);
/// assert_eq!(change.changes.len(), 2); // both new
/// ```
pub fn plan_fleet_change(
    req: &FleetChangeRequest,
    facts: &FleetFacts<'_>,
    rng: &mut impl Rng,
) -> Result<FleetChange, FleetError> {
    let existing = facts.existing;
    let base = if req.replace { None } else { existing };

    // Counted before anything is built: 20,000 specs × amount 100 must not be expanded first.
    let kept = base.map_or(0, |b| b.deckies.len() as u64);
    let asked = match &req.requested {
        Requested::Specs(spec) => requested_deckies(spec)?,
        Requested::Flags(flags) => flags.count as u64,
    };
    let count = asked.saturating_add(kept);
    if let Some(limit) = facts.fleet_limit {
        if count > limit as u64 {
            return Err(over_limit(count, limit));
        }
    }

    let mode = match req.mode {
        ModeChoice::Fixed(m) => m,
        ModeChoice::Auto => {
            let mode = match base {
                Some(b) if !b.deckies.is_empty() => b.mode,
                _ if !facts.live_hosts.is_empty() => Mode::Swarm,
                _ => Mode::Unihost,
            };
            if mode == Mode::Unihost && !facts.local_deployer {
                return Err(FleetError::NoLocalDeployer);
            }
            if mode == Mode::Swarm && facts.live_hosts.is_empty() {
                return Err(FleetError::NoLiveWorker);
            }
            mode
        }
    };

    let net = match &req.net {
        NetRequest::Resolved(plan) => plan.clone(),
        NetRequest::Inputs(_) => resolve(req, existing, facts.host_net)?,
    };

    let ctx = BuildContext {
        mode,
        net,
        reserved: base
            .iter()
            .flat_map(|b| b.deckies.iter().map(|d| d.ip))
            .chain(facts.reserved.iter().copied())
            .collect(),
        taken_names: base
            .iter()
            .flat_map(|b| b.deckies.iter().map(|d| d.name.to_string()))
            .collect(),
        // A replaced fleet's deckies keep their addresses and hostnames (unchanged specs
        // recreate nothing).
        current: match (base, existing) {
            (None, Some(e)) => e.deckies.clone(),
            _ => Vec::new(),
        },
        mutate_interval: req.mutate_interval,
        log_file: req.log_file.clone(),
        now_epoch: facts.now_epoch,
    };
    let built = match &req.requested {
        Requested::Specs(spec) => build_from_specs(spec, &ctx, rng)?,
        Requested::Flags(flags) => build_from_flags(flags, &ctx, rng)?,
    };
    let mut fleet = match base {
        Some(b) => {
            let mut merged = b.clone();
            merged.deckies.extend(built.deckies);
            for c in built.custom_services {
                if merged.custom_service(&c.name).is_none() {
                    merged.custom_services.push(c);
                }
            }
            validate_config(&merged)?;
            merged
        }
        None => built,
    };
    if let Some(limit) = facts.fleet_limit {
        if fleet.deckies.len() > limit {
            return Err(over_limit(fleet.deckies.len() as u64, limit));
        }
    }
    if mode == Mode::Swarm && !facts.live_hosts.is_empty() {
        let current: BTreeMap<DeckyName, HostUuid> = existing
            .iter()
            .flat_map(|e| e.deckies.iter())
            .filter_map(|d| d.host_uuid.map(|h| (d.name.clone(), h)))
            .collect();
        let names: Vec<DeckyName> = fleet.deckies.iter().map(|d| d.name.clone()).collect();
        let plan = plan_shards(&names, facts.live_hosts, &current);
        for d in &mut fleet.deckies {
            d.host_uuid = plan.get(&d.name).copied();
        }
    }
    let changes = diff_fleets(existing, &fleet);
    Ok(FleetChange { fleet, changes })
}

/// Resolves the network: the request's inputs, else the existing fleet's, else the host's
/// facts; the host's own address when it lies on the fleet's LAN.
fn resolve(
    req: &FleetChangeRequest,
    existing: Option<&DecnetConfig>,
    host_net: Option<&Result<LocalNetFacts, String>>,
) -> Result<NetPlan, FleetError> {
    let mut inputs = net_inputs(req, existing);
    if req.host_ip_optional && inputs.host_ip.is_none() {
        if let Some(Ok(f)) = host_net {
            if inputs.subnet.is_none_or(|s| s.contains(f.host_ip)) {
                inputs.host_ip = Some(f.host_ip);
            }
        }
    }
    match resolve_net(&inputs, host_net) {
        Ok(n) => Ok(n),
        // Planning for workers on another LAN: the host's own address does not matter.
        Err(e) if e.field == "host_ip" && req.host_ip_optional => {
            let mut i = inputs;
            i.host_ip = Some(Ipv4Addr::UNSPECIFIED);
            let mut n = resolve_net(&i, host_net).map_err(FleetError::Net)?;
            n.host_ip = None;
            Ok(n)
        }
        Err(e) => Err(FleetError::Net(e)),
    }
}

/// Why the host-side facts would be needed: the request leaves part of the network open.
pub fn needs_host_facts(req: &FleetChangeRequest, existing: Option<&DecnetConfig>) -> bool {
    matches!(req.net, NetRequest::Inputs(_)) && net_inputs(req, existing).needs_facts()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::DeckySpec;
    use crate::model::Subnet;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn inputs() -> NetInputs {
        NetInputs {
            interface: Some("eth1".into()),
            subnet: Some(Subnet::parse("subnet", "10.9.0.0/24").unwrap()),
            gateway: Some("10.9.0.1".parse().unwrap()),
            host_ip: Some("10.9.0.2".parse().unwrap()),
            driver: None,
        }
    }

    fn specs(names: &[&str]) -> Requested {
        Requested::Specs(FleetSpec {
            deckies: names
                .iter()
                .map(|n| DeckySpec {
                    name: n.to_string(),
                    services: Some(vec!["ssh".into()]),
                    ..DeckySpec::default()
                })
                .collect(),
            ..FleetSpec::default()
        })
    }

    fn req(requested: Requested, replace: bool, mode: ModeChoice) -> FleetChangeRequest {
        FleetChangeRequest {
            requested,
            net: NetRequest::Inputs(inputs()),
            replace,
            mode,
            mutate_interval: None,
            log_file: None,
            host_ip_optional: true,
        }
    }

    fn facts<'a>(existing: Option<&'a DecnetConfig>, live: &'a [HostUuid]) -> FleetFacts<'a> {
        FleetFacts {
            existing,
            live_hosts: live,
            reserved: &[],
            local_deployer: true,
            host_net: None,
            fleet_limit: Some(10),
            now_epoch: 0.0,
        }
    }

    fn plan(r: &FleetChangeRequest, f: &FleetFacts<'_>) -> Result<FleetChange, FleetError> {
        plan_fleet_change(r, f, &mut StdRng::seed_from_u64(1))
    }

    fn h(n: u128) -> HostUuid {
        HostUuid(uuid::Uuid::from_u128(n))
    }

    #[test]
    fn mode_choice_table() {
        let live = [h(1)];
        // (existing mode, live hosts, local deployer) → mode or error
        let first = plan(
            &req(specs(&["a"]), true, ModeChoice::Auto),
            &facts(None, &live),
        )
        .unwrap();
        assert_eq!(first.fleet.mode, Mode::Swarm);
        assert!(first
            .fleet
            .deckies
            .iter()
            .all(|d| d.host_uuid == Some(h(1))));
        let none = plan(
            &req(specs(&["a"]), true, ModeChoice::Auto),
            &facts(None, &[]),
        )
        .unwrap();
        assert_eq!(none.fleet.mode, Mode::Unihost);
        let mut f = facts(None, &[]);
        f.local_deployer = false;
        assert_eq!(
            plan(&req(specs(&["a"]), true, ModeChoice::Auto), &f),
            Err(FleetError::NoLocalDeployer)
        );
        // A swarm fleet keeps its mode when added to; with no live worker that is refused.
        let add = req(specs(&["b"]), false, ModeChoice::Auto);
        assert_eq!(
            plan(&add, &facts(Some(&first.fleet), &[])),
            Err(FleetError::NoLiveWorker)
        );
        // Fixed: as given, nothing checked.
        let fixed = plan(
            &req(specs(&["a"]), true, ModeChoice::Fixed(Mode::Swarm)),
            &facts(None, &[]),
        )
        .unwrap();
        assert_eq!(fixed.fleet.mode, Mode::Swarm);
    }

    #[test]
    fn add_keeps_the_fleet_and_replace_keeps_addresses_of_same_names() {
        let first = plan(
            &req(specs(&["a", "b"]), true, ModeChoice::Auto),
            &facts(None, &[]),
        )
        .unwrap();
        let added = plan(
            &req(specs(&["c"]), false, ModeChoice::Auto),
            &facts(Some(&first.fleet), &[]),
        )
        .unwrap();
        assert_eq!(added.fleet.deckies.len(), 3);
        assert_eq!(added.summary(Some(&first.fleet)).added, ["c"]);
        assert_eq!(added.summary(Some(&first.fleet)).unchanged, ["a", "b"]);
        // Replacing with a and c: b goes, a stays untouched (same address), c comes.
        let replaced = plan(
            &req(specs(&["a", "c"]), true, ModeChoice::Auto),
            &facts(Some(&first.fleet), &[]),
        )
        .unwrap();
        let s = replaced.summary(Some(&first.fleet));
        assert_eq!(s.removed, ["b"]);
        assert_eq!(s.added, ["c"]);
        assert_eq!(s.unchanged, ["a"]);
        assert_eq!(
            replaced.fleet.decky("a").unwrap().ip,
            first.fleet.decky("a").unwrap().ip
        );
    }

    #[test]
    fn the_fleet_limit_is_checked_before_expansion_and_after_merge() {
        let big = Requested::Specs(FleetSpec {
            deckies: vec![DeckySpec {
                name: "web".into(),
                services: Some(vec!["http".into()]),
                amount: Some(50),
                ..DeckySpec::default()
            }],
            ..FleetSpec::default()
        });
        assert_eq!(
            plan(&req(big, true, ModeChoice::Auto), &facts(None, &[])),
            Err(FleetError::OverLimit {
                count: 50,
                limit: 10
            })
        );
        let nine: Vec<String> = (1..=9).map(|i| format!("d{i}")).collect();
        let nine: Vec<&str> = nine.iter().map(String::as_str).collect();
        let first = plan(
            &req(specs(&nine), true, ModeChoice::Auto),
            &facts(None, &[]),
        )
        .unwrap();
        let e = plan(
            &req(specs(&["x", "y"]), false, ModeChoice::Auto),
            &facts(Some(&first.fleet), &[]),
        )
        .unwrap_err();
        assert_eq!(
            e,
            FleetError::OverLimit {
                count: 11,
                limit: 10
            }
        );
        assert!(e.to_string().contains("over the limit of 10"), "{e}");
    }

    #[test]
    fn reserved_addresses_are_never_given_and_swarm_placement_is_sticky() {
        let reserved: Vec<Ipv4Addr> = (3..=5).map(|i| Ipv4Addr::new(10, 9, 0, i)).collect();
        let live = [h(1), h(2)];
        let mut f = facts(None, &live);
        f.reserved = &reserved;
        let first = plan(&req(specs(&["a", "b", "c"]), true, ModeChoice::Auto), &f).unwrap();
        assert!(first
            .fleet
            .deckies
            .iter()
            .all(|d| !reserved.contains(&d.ip)));
        let placed: Vec<_> = first.fleet.deckies.iter().map(|d| d.host_uuid).collect();
        // A new live host does not move anything already placed.
        let live3 = [h(1), h(2), h(3)];
        let mut f = facts(Some(&first.fleet), &live3);
        f.reserved = &reserved;
        let again = plan(&req(specs(&["a", "b", "c"]), true, ModeChoice::Auto), &f).unwrap();
        let placed_again: Vec<_> = again.fleet.deckies.iter().map(|d| d.host_uuid).collect();
        assert_eq!(placed, placed_again);
        assert!(again.changes.is_empty(), "{:?}", again.changes);
    }

    #[test]
    fn a_host_off_the_lan_is_tolerated_only_when_optional() {
        let facts_off_lan: Result<LocalNetFacts, String> = Ok(LocalNetFacts {
            interface: "eth0".into(),
            subnet: "192.168.1.0/24".parse().unwrap(),
            host_ip: "192.168.1.5".parse().unwrap(),
            gateway: None,
        });
        let mut r = req(specs(&["a"]), true, ModeChoice::Auto);
        r.net = NetRequest::Inputs(NetInputs {
            host_ip: None,
            ..inputs()
        });
        let mut f = facts(None, &[]);
        f.host_net = Some(&facts_off_lan);
        let p = plan(&r, &f).unwrap();
        assert_eq!(p.fleet.deckies.len(), 1);
        r.host_ip_optional = false;
        // Without the tolerance, resolve_net takes the host's address from the facts.
        assert!(plan(&r, &f).is_ok());
        f.host_net = None;
        assert!(matches!(plan(&r, &f), Err(FleetError::Net(e)) if e.field == "host_ip"));
        assert!(needs_host_facts(&r, None));
    }
}

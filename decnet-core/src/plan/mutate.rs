//! The mutator's pure parts: which deckies are due for new services, and which services.
//!
//! A decky mutates every `mutate_interval` minutes: its own, else the fleet's (default 30);
//! `0` means never (the original treated 0 as "inherit"). It is due when at least that long has
//! passed since `last_mutated` (epoch seconds; `0.0`, as the original's CLI wrote it, is due at
//! once).

use std::collections::BTreeSet;

use rand::seq::SliceRandom;
use rand::Rng;

use crate::model::{DeckyConfig, DeckyName, DecnetConfig};
use crate::registry;

/// What [`due_mutations`] found.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DueMutations {
    /// Deckies due now, in fleet order.
    pub due: Vec<DeckyName>,
    /// Seconds until the next not-yet-due decky is due (`None`: none is scheduled).
    pub next_in: Option<f64>,
}

/// The deckies of `fleet` due for mutation at `now` (epoch seconds).
pub fn due_mutations(fleet: &DecnetConfig, now: f64) -> DueMutations {
    let mut out = DueMutations::default();
    for d in &fleet.deckies {
        let minutes = match d.effective_mutate_interval(fleet.mutate_interval) {
            None | Some(0) => continue,
            Some(m) => m,
        };
        let period = f64::from(minutes) * 60.0;
        // A `last_mutated` in the future (a clock that went back) counts as "just now".
        let elapsed = (now - d.last_mutated).max(0.0);
        if elapsed >= period {
            out.due.push(d.name.clone());
        } else {
            let left = period - elapsed;
            out.next_in = Some(out.next_in.map_or(left, |n: f64| n.min(left)));
        }
    }
    out
}

/// How many draws [`pick_new_services`] makes before it settles for an unchanged set.
const ATTEMPTS: usize = 64;

/// New services for `decky`, as the mutator picks them: 1–3 distinct services from its
/// archetype's list (any deployable service when it has no known archetype), sharing no
/// port/protocol, and a set different from the current one whenever the pool allows it.
/// Sorted. `None` when the pool is empty.
pub fn pick_new_services(rng: &mut impl Rng, decky: &DeckyConfig) -> Option<Vec<String>> {
    let pool: Vec<&'static str> = match decky
        .archetype
        .as_deref()
        .and_then(registry::archetypes::archetype)
    {
        Some(a) => a.services.to_vec(),
        None => registry::deployable_service_slugs(),
    };
    if pool.is_empty() {
        return None;
    }
    let current: BTreeSet<&str> = decky.services.iter().map(String::as_str).collect();
    let max_k = pool.len().min(3);
    let mut fallback: Option<Vec<&str>> = None;
    for _ in 0..ATTEMPTS {
        let k = rng.gen_range(1..=max_k);
        let mut pick: Vec<&str> = pool.choose_multiple(rng, k).copied().collect();
        if registry::port_clash(&pick).is_some() {
            continue;
        }
        pick.sort_unstable();
        let set: BTreeSet<&str> = pick.iter().copied().collect();
        if set != current {
            return Some(pick.into_iter().map(str::to_string).collect());
        }
        fallback = Some(pick);
    }
    fallback.map(|p| p.into_iter().map(str::to_string).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{fixtures, Mode};
    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn one(i: usize) -> DeckyConfig {
        fixtures::decky(
            &format!("decky-{:02}", i + 1),
            std::net::Ipv4Addr::new(10, 0, 0, 10 + i as u8),
            &["ssh"],
        )
    }

    fn fleet(deckies: &[(Option<u32>, f64)], fleet_interval: Option<u32>) -> DecnetConfig {
        let list = deckies
            .iter()
            .enumerate()
            .map(|(i, (interval, last))| {
                let mut d = one(i);
                d.mutate_interval = *interval;
                d.last_mutated = *last;
                d
            })
            .collect();
        let mut c = fixtures::config(Mode::Unihost, "10.0.0.0/24", "10.0.0.1", list);
        c.mutate_interval = fleet_interval;
        c
    }

    fn names(d: &DueMutations) -> Vec<&str> {
        d.due.iter().map(DeckyName::as_str).collect()
    }

    #[test]
    fn due_follows_own_then_fleet_interval_and_zero_is_never() {
        let now = 10_000.0;
        // decky-01: own 10 min, mutated 700 s ago → due. decky-02: inherits 30 min, 700 s ago
        // → 1,100 s left. decky-03: own 0 → never. decky-04: never mutated (0.0) → due.
        let c = fleet(
            &[
                (Some(10), now - 700.0),
                (None, now - 700.0),
                (Some(0), 0.0),
                (None, 0.0),
            ],
            Some(30),
        );
        let due = due_mutations(&c, now);
        assert_eq!(names(&due), ["decky-01", "decky-04"]);
        assert_eq!(due.next_in, Some(1_100.0));
    }

    #[test]
    fn nothing_scheduled_without_an_interval() {
        let c = fleet(&[(None, 0.0), (Some(0), 0.0)], None);
        assert_eq!(due_mutations(&c, 1e9), DueMutations::default());
        let c = fleet(&[(None, 0.0)], Some(0));
        assert_eq!(due_mutations(&c, 1e9), DueMutations::default());
    }

    #[test]
    fn exactly_at_the_period_is_due_and_a_future_stamp_waits_a_full_period() {
        let c = fleet(&[(Some(1), 940.0)], None);
        let early = due_mutations(&c, 999.5);
        assert!(early.due.is_empty());
        assert_eq!(early.next_in, Some(0.5));
        assert_eq!(names(&due_mutations(&c, 1_000.0)), ["decky-01"]);
        let future = fleet(&[(Some(1), 5_000.0)], None);
        assert_eq!(due_mutations(&future, 1_000.0).next_in, Some(60.0));
    }

    #[test]
    fn archetype_pool_is_used_and_an_unknown_archetype_falls_back_to_all() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut d = one(0);
        d.archetype = Some("windows-workstation".into());
        let pool = registry::archetypes::archetype("windows-workstation")
            .unwrap()
            .services;
        for _ in 0..50 {
            let got = pick_new_services(&mut rng, &d).unwrap();
            assert!(got.iter().all(|s| pool.contains(&s.as_str())), "{got:?}");
        }
        // Unknown archetype: any deployable service.
        d.archetype = Some("no-such-type".into());
        assert!(pick_new_services(&mut rng, &d).is_some());
    }

    proptest! {
        #[test]
        fn picks_are_clash_free_small_sorted_and_new(seed in any::<u64>(), current in 0usize..29) {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut d = one(0);
            let pool = registry::deployable_service_slugs();
            d.services = vec![pool[current % pool.len()].to_string()];
            d.archetype = None;
            let got = pick_new_services(&mut rng, &d).unwrap();
            let refs: Vec<&str> = got.iter().map(String::as_str).collect();
            prop_assert!(!got.is_empty() && got.len() <= 3);
            prop_assert!(registry::port_clash(&refs).is_none());
            prop_assert!(got.windows(2).all(|w| w[0] < w[1]));
            prop_assert!(got != d.services);
        }
    }
}

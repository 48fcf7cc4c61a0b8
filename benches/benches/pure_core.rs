#![allow(clippy::unwrap_used)] // a benchmark aborts on a broken fixture
//! Benchmarks of the pure core: IP allocation and relocalization at fleet scale, planning a
//! fleet from flags, the converge planner and the fleet-change planner at 10,000 deckies.
//! Figures go to BENCHMARKS.md.

use std::collections::{BTreeMap, BTreeSet};
use std::hint::black_box;
use std::net::Ipv4Addr;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use decnet_core::fleet::{
    build_from_flags, plan_fleet_change, BuildContext, FleetChangeRequest, FleetFacts, FleetFlags,
    ModeChoice, NetPlan, NetRequest, Requested,
};
use decnet_core::model::{DeckyName, DecnetConfig, Mode, NetworkDriver, Subnet};
use decnet_core::plan::{
    allocate_ips, plan_converge, relocalize, AllocRequest, Desired, Observed, Role,
};
use decnet_core::traits::LocalNetFacts;
use rand::rngs::StdRng;
use rand::SeedableRng;

const N: usize = 10_000;

fn net(subnet: &str, gw: &str, host: &str) -> NetPlan {
    NetPlan {
        interface: "eth0".into(),
        subnet: Subnet::parse("subnet", subnet).unwrap(),
        gateway: gw.parse().unwrap(),
        host_ip: Some(host.parse().unwrap()),
        driver: NetworkDriver::Macvlan,
    }
}

fn fleet(n: usize, mode: Mode) -> DecnetConfig {
    let ctx = BuildContext {
        mode,
        net: net("10.0.0.0/16", "10.0.0.1", "10.0.0.2"),
        reserved: BTreeSet::new(),
        taken_names: BTreeSet::new(),
        current: Vec::new(),
        mutate_interval: None,
        log_file: None,
        now_epoch: 0.0,
    };
    let flags = FleetFlags {
        count: n,
        services: Some(vec!["ssh".into()]),
        ..Default::default()
    };
    build_from_flags(&flags, &ctx, &mut StdRng::seed_from_u64(1)).unwrap()
}

fn bench_allocate(c: &mut Criterion) {
    let subnet = Subnet::parse("subnet", "10.0.0.0/16").unwrap();
    // Every 7th address already in use, like a busy LAN.
    let reserved: BTreeSet<Ipv4Addr> = (0..65_536u32)
        .step_by(7)
        .map(|n| Ipv4Addr::from(u32::from(subnet.network()) + n))
        .collect();
    let req = AllocRequest {
        subnet,
        gateway: Some("10.0.0.1".parse().unwrap()),
        host_ip: Some("10.0.0.2".parse().unwrap()),
        ip_start: None,
        reserved: &reserved,
    };
    c.bench_function("allocate_ips 10k in /16 (1/7 reserved)", |b| {
        b.iter(|| allocate_ips(black_box(&req), N).unwrap())
    });
}

fn bench_relocalize(c: &mut Criterion) {
    let shard = fleet(N, Mode::Swarm);
    let facts = LocalNetFacts {
        interface: "ens3".into(),
        subnet: "172.16.0.0/16".parse().unwrap(),
        host_ip: "172.16.0.9".parse().unwrap(),
        gateway: Some("172.16.0.1".parse().unwrap()),
    };
    // Half the shard already runs on this worker.
    let mut current = relocalize(&shard, &facts, None).unwrap();
    current.deckies.truncate(N / 2);
    c.bench_function(
        "relocalize 10k deckies, other subnet, 5k already here",
        |b| {
            b.iter_batched(
                || (),
                |()| relocalize(black_box(&shard), &facts, Some(&current)).unwrap(),
                BatchSize::SmallInput,
            )
        },
    );
    let same = LocalNetFacts {
        subnet: "10.0.0.0/16".parse().unwrap(),
        ..facts.clone()
    };
    c.bench_function("relocalize 10k deckies, same subnet", |b| {
        b.iter(|| relocalize(black_box(&shard), &same, None).unwrap())
    });
}

fn bench_converge(c: &mut Criterion) {
    // 10k desired deckies of base + 2 services; the host runs all of them, a tenth with an
    // outdated service and a hundredth stopped, plus 500 retired deckies.
    let names: Vec<DeckyName> = (0..N + 500)
        .map(|i| DeckyName::new(format!("d-{i:05}")).unwrap())
        .collect();
    let desired: Vec<Desired> = names[..N]
        .iter()
        .map(|n| Desired {
            decky: n.clone(),
            base_hash: "b1".into(),
            services: BTreeMap::from([("ssh".into(), "s1".into()), ("http".into(), "h1".into())]),
        })
        .collect();
    let mut observed = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let obs = |role: Role, hash: &str| Observed {
            id: format!("{n}-{role:?}"),
            decky: n.clone(),
            role,
            hash: Some(hash.into()),
            running: i % 100 != 0,
        };
        observed.push(obs(Role::Base, "b1"));
        observed.push(obs(Role::Service("ssh".into()), "s1"));
        observed.push(obs(
            Role::Service("http".into()),
            if i % 10 == 0 { "h0" } else { "h1" },
        ));
    }
    c.bench_function(
        "plan_converge 10k deckies (30.5k containers observed)",
        |b| b.iter(|| plan_converge(black_box(&desired), black_box(&observed))),
    );
}

fn bench_fleet_change(c: &mut Criterion) {
    let existing = fleet(N, Mode::Unihost);
    let request = FleetChangeRequest {
        requested: Requested::Flags(FleetFlags {
            count: N,
            services: Some(vec!["ssh".into()]),
            ..Default::default()
        }),
        net: NetRequest::Resolved(net("10.0.0.0/16", "10.0.0.1", "10.0.0.2")),
        replace: true,
        mode: ModeChoice::Fixed(Mode::Unihost),
        mutate_interval: None,
        log_file: None,
        host_ip_optional: false,
    };
    let facts = FleetFacts {
        existing: Some(&existing),
        live_hosts: &[],
        reserved: &[],
        local_deployer: true,
        host_net: None,
        fleet_limit: None,
        now_epoch: 0.0,
    };
    c.bench_function("plan_fleet_change replace 10k deckies by 10k (diff)", |b| {
        b.iter(|| {
            plan_fleet_change(black_box(&request), &facts, &mut StdRng::seed_from_u64(1)).unwrap()
        })
    });
}

fn bench_plan(c: &mut Criterion) {
    c.bench_function("build_from_flags 1k deckies (validated)", |b| {
        b.iter(|| fleet(black_box(1_000), Mode::Unihost))
    });
}

criterion_group!(
    benches,
    bench_allocate,
    bench_relocalize,
    bench_plan,
    bench_converge,
    bench_fleet_change
);
criterion_main!(benches);

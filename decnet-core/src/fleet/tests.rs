//! Table and property tests of the fleet builders.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::json;

use super::*;
use crate::model::{DeckyConfig, DecnetConfig, Mode, NetworkDriver, Subnet};
use crate::registry::{self, OsFamily};

fn ctx() -> BuildContext {
    BuildContext {
        mode: Mode::Unihost,
        net: NetPlan {
            interface: "eth0".into(),
            subnet: Subnet::parse("subnet", "192.168.1.0/24").unwrap(),
            gateway: "192.168.1.1".parse().unwrap(),
            host_ip: Some("192.168.1.5".parse().unwrap()),
            driver: NetworkDriver::Macvlan,
        },
        reserved: BTreeSet::new(),
        taken_names: BTreeSet::new(),
        current: Vec::new(),
        mutate_interval: None,
        log_file: None,
        now_epoch: 1000.0,
    }
}

fn rng() -> StdRng {
    StdRng::seed_from_u64(7)
}

fn from_ini(text: &str) -> Result<DecnetConfig, FleetError> {
    from_ini_ctx(text, &ctx())
}

fn from_ini_ctx(text: &str, ctx: &BuildContext) -> Result<DecnetConfig, FleetError> {
    build_from_specs(&parse_fleet_ini(text)?, ctx, &mut rng())
}

fn summary(c: &DecnetConfig) -> Vec<(String, String, String)> {
    c.deckies
        .iter()
        .map(|d| (d.name.to_string(), d.ip.to_string(), d.services.join(",")))
        .collect()
}

const EXAMPLE: &str = "\
[general]
net=192.168.1.0/24
gw=192.168.1.1
interface=eth0
mutate_interval=45

[hostname-1]
ip=192.168.1.82
services=ssh,http
nmap_os: bsd

[hostname-1.ssh]
password = hunter2

[web]
amount=3
archetype=web-server

[web.http]
server_header = nginx/1.24.0

[win]
archetype=windows-workstation

[win.rdp]
nla = false

[app]
services = myapp, ssh
mutate_interval = 0

[custom-myapp]
binary=myorg/app:1
exec=/bin/app --port 9000
ports=9000,9001
";

#[test]
fn the_example_ini() {
    let c = from_ini(EXAMPLE).unwrap();
    let s = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
    assert_eq!(
        summary(&c),
        [
            s("hostname-1", "192.168.1.82", "ssh,http"),
            s("web-01", "192.168.1.2", "http,ftp"),
            s("web-02", "192.168.1.3", "http,ftp"),
            s("web-03", "192.168.1.4", "http,ftp"),
            s("win", "192.168.1.6", "smb,rdp"),
            s("app", "192.168.1.7", "myapp,ssh"),
        ]
    );
    let d = |n: &str| c.decky(n).unwrap();
    assert_eq!(d("hostname-1").nmap_os, OsFamily::Bsd);
    assert_eq!(
        d("hostname-1").service_config["ssh"]["password"],
        json!("hunter2")
    );
    // A group's sub-section reaches every decky of the group.
    for n in ["web-01", "web-02", "web-03"] {
        assert_eq!(
            d(n).service_config["http"]["server_header"],
            json!("nginx/1.24.0")
        );
        assert_eq!(d(n).archetype.as_deref(), Some("web-server"));
    }
    // Typed, not a truthy string (the original's bug).
    assert_eq!(d("win").service_config["rdp"]["nla"], json!(false));
    assert_eq!(d("win").nmap_os, OsFamily::Windows);
    // Distros cycle through the archetype's preferred ones by overall position.
    let web = registry::archetype("web-server").unwrap();
    assert_eq!(
        d("web-01").distro,
        web.preferred_distros[1 % web.preferred_distros.len()]
    );
    assert_eq!(c.mutate_interval, Some(45));
    assert_eq!(d("app").mutate_interval, Some(0));
    assert_eq!(d("web-01").mutate_interval, None);
    assert_eq!(d("web-01").last_mutated, 1000.0);
    assert_eq!(c.custom_services.len(), 1);
    assert_eq!(c.custom_services[0].ports, [9000, 9001]);
    crate::model::validate_config(&c).unwrap();
}

#[test]
fn cli_interval_beats_the_ini() {
    let mut cx = ctx();
    cx.mutate_interval = Some(5);
    let c = from_ini_ctx(EXAMPLE, &cx).unwrap();
    assert_eq!(c.mutate_interval, Some(5));
    assert!(c.deckies.iter().all(|d| d.mutate_interval == Some(5)));
}

#[test]
fn ini_errors_name_section_line_key_and_rule() {
    let table: &[(&str, &str)] = &[
        ("", "ini: empty input"),
        (
            "[general]\nnet=10.0.0.0/24\n",
            "deckies: must hold at least one decky",
        ),
        (
            "[a]\nservics=ssh\n",
            "[a] (line 2): \"servics\" is not a known key here",
        ),
        (
            "[a]\nservices=ssh\namount=0\n",
            "[a] amount (line 3): \"0\" must be a positive integer",
        ),
        (
            "[a]\nservices=ssh\namount=abc\n",
            "must be a positive integer",
        ),
        (
            "[a]\nservices=ssh\namount=101\n",
            "exceeds the maximum of 100",
        ),
        (
            "[a]\nservices=ssh\namount=2\nip=192.168.1.9\n",
            "cannot be combined with amount > 1",
        ),
        (
            "[a]\nservices=ssh\nip=192.168.1.300\n",
            "[a] ip (line 3): \"192.168.1.300\" is not an IPv4 address",
        ),
        (
            "[a]\nservices=ssh\nip=10.0.0.9\n",
            "is not inside subnet 192.168.1.0/24",
        ),
        ("[a]\nservices=ssh\nip=192.168.1.1\n", "is the gateway"),
        (
            "[a]\nservices=ssh\nip=192.168.1.5\n",
            "is the host's own address",
        ),
        (
            "[a]\nservices=ssh\nip=192.168.1.9\n[b]\nservices=ssh\nip=192.168.1.9\n",
            "is used by two deckies",
        ),
        (
            "[a]\nservices=gopher\n",
            "\"gopher\" is not a known service",
        ),
        ("[a]\nservices=http,https\n", "port clash"),
        ("[a]\nservices=sniffer\n", "singleton"),
        ("[a]\nservices=\n", "needs a value"),
        ("[a]\nservices= , \n", "must list at least one service"),
        ("[a]\narchetype=mainframe\n", "is not a known archetype"),
        ("[a]\nservices=ssh\nnmap_os=amiga\n", "amiga"),
        ("[Web]\nservices=ssh\n", "must match ^[a-z0-9]"),
        (
            "[a]\nservices=ssh\n[b.ssh]\nuser=x\n",
            "[b.ssh] (line 3): \"b\" matches no decky section",
        ),
        (
            "[a]\nservices=ssh\n[a.gopher]\nx=1\n",
            "is not a known service: sub-sections",
        ),
        ("[a]\nservices=rdp\n[a.rdp]\nnla=maybe\n", "nla"),
        ("[a]\nservices=ssh\n[a.ssh]\ncolour=red\n", "colour"),
        ("[custom-x]\nports=80\n[a]\nservices=x\n", "needs binary"),
        (
            "[custom-x]\nbinary=i\nports=80,eighty\n[a]\nservices=x\n",
            "\"eighty\" is not a port number",
        ),
        ("[custom-ssh]\nbinary=i\n", "is a built-in service name"),
        (
            "[general]\nnet=10.0.0.5/24\n[a]\nservices=ssh\n",
            "has host bits set",
        ),
        (
            "[general]\ndriver=vxlan\n[a]\nservices=ssh\n",
            "must be one of macvlan, ipvlan, bridge",
        ),
        ("[general]\ncolour=1\n", "is not a known key here"),
    ];
    for (ini, expect) in table {
        let err = from_ini(ini).expect_err(ini).to_string();
        assert!(
            err.contains(expect),
            "for {ini:?}\n  got: {err}\n want: {expect}"
        );
    }
}

#[test]
fn exhausted_subnet_names_subnet_count_and_found() {
    let mut cx = ctx();
    cx.net.subnet = Subnet::parse("subnet", "192.168.1.0/29").unwrap();
    let err = from_ini_ctx("[a]\nservices=ssh\namount=9\n", &cx).unwrap_err();
    assert!(matches!(err, FleetError::Alloc(_)));
    assert_eq!(
        err.to_string(),
        "not enough free IPs in 192.168.1.0/29: 9 wanted, 4 free"
    );
}

#[test]
fn additive_requests_conflict_with_the_deployed_fleet() {
    let mut cx = ctx();
    cx.taken_names.insert("a".into());
    cx.reserved.insert("192.168.1.2".parse().unwrap());
    let err = from_ini_ctx("[a]\nservices=ssh\n", &cx).unwrap_err();
    assert!(matches!(err, FleetError::Conflict(_)), "{err}");
    let err = from_ini_ctx("[b]\nservices=ssh\nip=192.168.1.2\n", &cx).unwrap_err();
    assert!(matches!(err, FleetError::Conflict(_)), "{err}");
    // Automatic addresses step around the deployed ones.
    let c = from_ini_ctx("[b]\nservices=ssh\n", &cx).unwrap();
    assert_eq!(c.deckies[0].ip.to_string(), "192.168.1.3");
}

#[test]
fn api_json_specs_use_the_same_builder() {
    let spec = FleetSpec {
        deckies: serde_json::from_value(json!([
            {"name": "db", "archetype": "database-server"},
            {"name": "mail", "services": ["smtp", "imap"], "amount": 2, "service_config": {"smtp": {"mta": "exim"}}}
        ]))
        .unwrap(),
        ..Default::default()
    };
    let c = build_from_specs(&spec, &ctx(), &mut rng()).unwrap();
    assert_eq!(
        c.deckies
            .iter()
            .map(|d| d.name.as_str())
            .collect::<Vec<_>>(),
        ["db", "mail-01", "mail-02"]
    );
    let bad: Result<Vec<DeckySpec>, _> =
        serde_json::from_value(json!([{"name": "x", "colour": 1}]));
    assert!(bad
        .unwrap_err()
        .to_string()
        .contains("unknown field `colour`"));
    let spec = FleetSpec {
        deckies: serde_json::from_value(json!([{"name": "x", "services": ["ssh"], "amount": 0}]))
            .unwrap(),
        ..Default::default()
    };
    let err = build_from_specs(&spec, &ctx(), &mut rng())
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("deckies[0].amount"), "{err}");
}

fn flags(count: usize) -> FleetFlags {
    FleetFlags {
        count,
        ..Default::default()
    }
}

#[test]
fn flags_builder() {
    let f = FleetFlags {
        services: Some(vec!["ssh".into(), "http".into()]),
        ..flags(3)
    };
    let c = build_from_flags(&f, &ctx(), &mut rng()).unwrap();
    assert_eq!(
        summary(&c)
            .iter()
            .map(|(n, ip, _)| format!("{n}={ip}"))
            .collect::<Vec<_>>(),
        [
            "decky-01=192.168.1.2",
            "decky-02=192.168.1.3",
            "decky-03=192.168.1.4"
        ]
    );
    // Distros cycle through every distro in registry order.
    assert_eq!(c.deckies[1].distro, registry::distros()[1].slug);
    assert_eq!(c.mutate_interval, Some(30));
    assert_eq!(c.deckies[0].last_mutated, 0.0);

    let f = FleetFlags {
        archetype: Some("windows-server".into()),
        ip_start: Some("192.168.1.100".parse().unwrap()),
        ..flags(2)
    };
    let c = build_from_flags(&f, &ctx(), &mut rng()).unwrap();
    assert_eq!(c.deckies[0].ip.to_string(), "192.168.1.100");
    assert_eq!(c.deckies[0].nmap_os, OsFamily::WindowsServer);
    assert_eq!(c.deckies[0].services, ["smb", "rdp", "ldap"]);

    let mut cx = ctx();
    cx.taken_names.insert("decky-01".into());
    cx.net.driver = NetworkDriver::Ipvlan;
    let f = FleetFlags {
        randomize_services: true,
        distros: Some(vec!["alpine".into()]),
        ..flags(2)
    };
    let c = build_from_flags(&f, &cx, &mut rng()).unwrap();
    assert_eq!(c.deckies[0].name.as_str(), "decky-02");
    assert!(c.ipvlan);
    assert!(c.deckies.iter().all(|d| d.distro == "alpine"));
}

#[test]
fn flags_errors() {
    let table: Vec<(FleetFlags, &str)> = vec![
        (flags(0), "deckies: \"0\" must be at least 1"),
        (flags(1), "services: none chosen"),
        (
            FleetFlags {
                services: Some(vec!["gopher".into()]),
                ..flags(1)
            },
            "not a known service",
        ),
        (
            FleetFlags {
                services: Some(vec!["http".into(), "https".into()]),
                ..flags(1)
            },
            "port clash",
        ),
        (
            FleetFlags {
                archetype: Some("x".into()),
                ..flags(1)
            },
            "archetype: \"x\" is not a known archetype",
        ),
        (
            FleetFlags {
                randomize_services: true,
                distros: Some(vec!["beos".into()]),
                ..flags(1)
            },
            "distro: \"beos\" is not a known distro",
        ),
        (
            FleetFlags {
                randomize_services: true,
                ip_start: Some("10.0.0.1".parse().unwrap()),
                ..flags(1)
            },
            "ip_start",
        ),
        (
            FleetFlags {
                randomize_services: true,
                ..flags(300)
            },
            "not enough free IPs in 192.168.1.0/24: 300 wanted, 252 free",
        ),
    ];
    for (f, expect) in table {
        let err = build_from_flags(&f, &ctx(), &mut rng())
            .unwrap_err()
            .to_string();
        assert!(err.contains(expect), "got {err}, want {expect}");
    }
}

#[test]
fn no_archetype_clashes() {
    for a in registry::archetypes() {
        let services: Vec<String> = a.services.iter().map(|s| s.to_string()).collect();
        crate::model::validate::validate_services(a.slug, &services, &[])
            .unwrap_or_else(|e| panic!("archetype {}: {e}", a.slug));
    }
}

proptest! {
    #[test]
    fn random_service_draws_are_clash_free(seed in any::<u64>(), n_avoid in 0usize..10) {
        let mut r = StdRng::seed_from_u64(seed);
        let avoid: Vec<BTreeSet<String>> = (0..n_avoid).map(|_| pick_services(&mut r, &[]).into_iter().collect()).collect();
        let pick = pick_services(&mut r, &avoid);
        prop_assert!((1..=3).contains(&pick.len()));
        crate::model::validate::validate_services("services", &pick, &[]).map_err(|e| TestCaseError::fail(e.to_string()))?;
    }

    #[test]
    fn random_fleets_are_valid(seed in any::<u64>(), count in 1usize..60, start in 2u8..200) {
        let f = FleetFlags {
            randomize_services: true,
            randomize_distros: seed % 2 == 0,
            ip_start: Some(Ipv4Addr::new(192, 168, 1, start)),
            ..flags(count)
        };
        let mut r = StdRng::seed_from_u64(seed);
        match build_from_flags(&f, &ctx(), &mut r) {
            Ok(c) => {
                prop_assert_eq!(c.deckies.len(), count);
                crate::model::validate_config(&c).map_err(|e| TestCaseError::fail(e.to_string()))?;
            }
            Err(FleetError::Alloc(_)) => prop_assert!(usize::from(start) + count > 250),
            Err(e) => prop_assert!(false, "{e}"),
        }
        // Same seed, same fleet.
        let a = build_from_flags(&f, &ctx(), &mut StdRng::seed_from_u64(seed));
        let b = build_from_flags(&f, &ctx(), &mut StdRng::seed_from_u64(seed));
        prop_assert_eq!(a, b);
    }
}

/// `ctx()` replacing `current`.
fn replacing(current: &DecnetConfig) -> BuildContext {
    BuildContext {
        current: current.deckies.clone(),
        ..ctx()
    }
}

#[test]
fn redeploying_an_unchanged_spec_keeps_every_decky_as_it_is() {
    let spec = parse_fleet_ini(EXAMPLE).unwrap();
    let first = build_from_specs(&spec, &ctx(), &mut StdRng::seed_from_u64(1)).unwrap();
    // Another draw (no --seed): without the current fleet, hostnames change.
    let fresh = build_from_specs(&spec, &ctx(), &mut StdRng::seed_from_u64(2)).unwrap();
    assert_ne!(
        first
            .deckies
            .iter()
            .map(|d| &d.hostname)
            .collect::<Vec<_>>(),
        fresh
            .deckies
            .iter()
            .map(|d| &d.hostname)
            .collect::<Vec<_>>(),
        "the fixture must draw other hostnames"
    );
    let again = build_from_specs(&spec, &replacing(&first), &mut StdRng::seed_from_u64(2)).unwrap();
    assert_eq!(again, first);
    for (a, b) in first.deckies.iter().zip(&again.deckies) {
        assert!(!a.shape_differs(b), "{} would be recreated", a.name);
    }
}

#[test]
fn a_replaced_fleet_keeps_addresses_and_frees_the_removed_ones() {
    let one = |specs: serde_json::Value, current: &[DeckyConfig], seed: u64| {
        let spec = FleetSpec {
            deckies: serde_json::from_value(specs).unwrap(),
            ..Default::default()
        };
        let ctx = BuildContext {
            current: current.to_vec(),
            ..ctx()
        };
        build_from_specs(&spec, &ctx, &mut StdRng::seed_from_u64(seed)).unwrap()
    };
    let first = one(
        json!([{"name": "a", "services": ["ssh"]}, {"name": "b", "services": ["ssh"]},
               {"name": "c", "archetype": "web-server"}]),
        &[],
        1,
    );
    let ip = |c: &DecnetConfig, n: &str| c.decky(n).unwrap().ip;
    // `a` goes, `d` comes, `b` changes its services, `c` its archetype.
    let second = one(
        json!([{"name": "d", "services": ["ftp"]}, {"name": "b", "services": ["ftp"]},
               {"name": "c", "archetype": "windows-workstation"}]),
        &first.deckies,
        2,
    );
    assert_eq!(ip(&second, "b"), ip(&first, "b"));
    assert_eq!(ip(&second, "c"), ip(&first, "c"));
    assert_eq!(
        ip(&second, "d"),
        ip(&first, "a"),
        "the freed address is reused"
    );
    let (b0, b1) = (first.decky("b").unwrap(), second.decky("b").unwrap());
    assert_eq!(b1.hostname, b0.hostname, "new services, same host");
    assert_eq!(b1.services, ["ftp"]);
    let c1 = second.decky("c").unwrap();
    let windows = registry::archetype("windows-workstation").unwrap();
    assert!(windows.preferred_distros.contains(&c1.distro.as_str()));
    assert_eq!(c1.nmap_os, OsFamily::Windows);

    // An explicit address wins; the one it had is free for others.
    let third = one(
        json!([{"name": "b", "services": ["ftp"], "ip": "192.168.1.200"},
               {"name": "e", "services": ["ssh"]}]),
        &second.deckies,
        3,
    );
    assert_eq!(
        third.decky("b").unwrap().ip,
        Ipv4Addr::new(192, 168, 1, 200)
    );
    assert_eq!(third.decky("b").unwrap().hostname, b1.hostname);
    crate::model::validate_config(&third).unwrap();
}

#[test]
fn flags_redeploys_keep_random_services_and_hostnames() {
    let f = FleetFlags {
        randomize_services: true,
        ..flags(5)
    };
    let first = build_from_flags(&f, &ctx(), &mut StdRng::seed_from_u64(1)).unwrap();
    let again = build_from_flags(&f, &replacing(&first), &mut StdRng::seed_from_u64(9)).unwrap();
    assert_eq!(again, first);
    // Asking for other distros redraws the persona, not the address.
    let g = FleetFlags {
        distros: Some(vec!["alpine".into()]),
        ..f.clone()
    };
    let other = build_from_flags(&g, &replacing(&first), &mut StdRng::seed_from_u64(9)).unwrap();
    for (a, b) in first.deckies.iter().zip(&other.deckies) {
        assert_eq!(a.ip, b.ip);
        assert_eq!(a.services, b.services);
        assert_eq!(b.distro, "alpine");
    }
    // A smaller fleet keeps the first ones; a larger one allocates only for the new.
    let h = FleetFlags {
        randomize_services: true,
        ..flags(7)
    };
    let bigger = build_from_flags(&h, &replacing(&first), &mut StdRng::seed_from_u64(3)).unwrap();
    assert_eq!(bigger.deckies[..5], first.deckies[..]);
    crate::model::validate_config(&bigger).unwrap();
}

proptest! {
    #[test]
    fn rebuilding_against_the_current_fleet_is_idempotent(a in any::<u64>(), b in any::<u64>(), count in 1usize..20) {
        let f = FleetFlags { randomize_services: true, randomize_distros: a % 2 == 0, ..flags(count) };
        let first = build_from_flags(&f, &ctx(), &mut StdRng::seed_from_u64(a)).unwrap();
        let again = build_from_flags(&f, &replacing(&first), &mut StdRng::seed_from_u64(b)).unwrap();
        prop_assert_eq!(again, first);
    }
}

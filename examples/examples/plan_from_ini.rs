//! Recipe: plan a fleet from the original DECNET's deployment INI using only `decnet-core`.
//!
//! No Docker, no network access: the network facts are given, randomness is seeded.
//! Run it with `cargo run -p decnet-examples --example plan_from_ini`.

use std::collections::BTreeSet;

use decnet_core::fleet::{build_from_specs, parse_fleet_ini, resolve_net, BuildContext, NetInputs};
use decnet_core::model::{validate_config, DecnetConfig, Mode};
use rand::rngs::StdRng;
use rand::SeedableRng;

const FLEET_INI: &str = "\
[general]
net = 192.168.50.0/24
gw = 192.168.50.1
interface = eth0

[dc]
ip = 192.168.50.10
archetype = domain-controller

[web]
amount = 3
archetype = web-server

[web.http]
server_header = Apache/2.4.41 (Ubuntu)

[plc]
archetype = industrial-control
";

fn plan() -> Result<DecnetConfig, Box<dyn std::error::Error>> {
    let spec = parse_fleet_ini(FLEET_INI)?;
    // Flags would go first; here only the host's own address is added to the INI's facts.
    let inputs = NetInputs {
        host_ip: Some("192.168.50.2".parse()?),
        ..Default::default()
    }
    .or(NetInputs {
        interface: spec.general.interface.clone(),
        subnet: spec.general.subnet,
        gateway: spec.general.gateway,
        host_ip: None,
        driver: spec.general.driver,
    });
    let ctx = BuildContext {
        mode: Mode::Unihost,
        net: resolve_net(&inputs, None)?,
        reserved: BTreeSet::new(),
        taken_names: BTreeSet::new(),
        current: Vec::new(),
        mutate_interval: None,
        log_file: None,
        now_epoch: 0.0,
    };
    let config = build_from_specs(&spec, &ctx, &mut StdRng::seed_from_u64(42))?;
    validate_config(&config)?;
    Ok(config)
}

#[cfg_attr(test, allow(dead_code))]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = plan()?;
    println!("{}", serde_json::to_string_pretty(&config)?);
    Ok(())
}

#[test]
fn the_recipe_plans_five_deckies() {
    let config = plan().expect("plan");
    let names: Vec<&str> = config.deckies.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["dc", "web-01", "web-02", "web-03", "plc"]);
    assert_eq!(config.deckies[0].ip.to_string(), "192.168.50.10");
    assert_eq!(config.deckies[4].services, ["conpot"]);
}

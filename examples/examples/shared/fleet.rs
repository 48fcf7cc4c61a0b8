//! The fleet change the recipes plan: three deckies of different archetypes on a resolved
//! network, one of which (`flaky`) the in-memory deployer never brings up.

use decnet_core::fleet::{
    plan_fleet_change, DeckySpec, FleetChange, FleetChangeRequest, FleetError, FleetFacts,
    FleetSpec, ModeChoice, NetPlan, NetRequest, Requested,
};
use decnet_core::model::{Mode, NetworkDriver, Subnet};
use rand::rngs::StdRng;
use rand::SeedableRng;

/// Three deckies, unihost, replacing any existing fleet.
fn request() -> FleetChangeRequest {
    let decky = |name: &str, archetype: &str| DeckySpec {
        name: name.to_string(),
        archetype: Some(archetype.to_string()),
        ..Default::default()
    };
    FleetChangeRequest {
        requested: Requested::Specs(FleetSpec {
            deckies: vec![
                decky("web", "web-server"),
                decky("db", "database-server"),
                decky("flaky", "linux-server"),
            ],
            ..Default::default()
        }),
        net: NetRequest::Resolved(NetPlan {
            interface: "eth0".into(),
            subnet: Subnet::new("192.168.60.0/24".parse().expect("subnet")),
            gateway: "192.168.60.1".parse().expect("gateway"),
            host_ip: Some("192.168.60.2".parse().expect("host ip")),
            driver: NetworkDriver::Macvlan,
        }),
        replace: true,
        mode: ModeChoice::Fixed(Mode::Unihost),
        mutate_interval: Some(0),
        log_file: None,
        host_ip_optional: false,
    }
}

/// The change planned (pure, seeded) on this machine with a local deployer and no fleet yet.
pub fn plan() -> Result<FleetChange, FleetError> {
    let facts = FleetFacts {
        existing: None,
        live_hosts: &[],
        reserved: &[],
        local_deployer: true,
        host_net: None,
        fleet_limit: Some(256),
        now_epoch: 0.0,
    };
    plan_fleet_change(&request(), &facts, &mut StdRng::seed_from_u64(7))
}

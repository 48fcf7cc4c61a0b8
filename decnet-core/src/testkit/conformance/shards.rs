//! The desired fleet and the shards (the runner's view plus heartbeat observations).

use std::sync::Arc;

use super::{decky_name, shard};
use crate::model::{fixtures, CustomService, HostUuid, Mode, NetworkDriver, ShardState};
use crate::registry::OsFamily;
use crate::testkit::at;
use crate::traits::{ObserveOutcome, ObservedShard, Repository};

pub(super) async fn desired_fleet_round_trip(repo: Arc<dyn Repository>) {
    assert_eq!(repo.desired_fleet().await.expect("fleet"), None);

    let mut a = fixtures::decky("decky-01", "192.168.1.10".parse().expect("ip"), &["ssh"]);
    a.archetype = Some("linux-server".into());
    a.mutate_interval = Some(0);
    a.last_mutated = 1_767_225_600.5;
    a.host_uuid = Some(HostUuid::new_v4());
    let mut ssh = serde_json::Map::new();
    ssh.insert("password".into(), "hunter2".into());
    ssh.insert("port".into(), 2222.into());
    ssh.insert("nla".into(), false.into());
    a.service_config.insert("ssh".into(), ssh);
    let mut b = fixtures::decky(
        "decky-02",
        "192.168.1.11".parse().expect("ip"),
        &["http", "custom-x"],
    );
    b.nmap_os = OsFamily::WindowsServer;
    b.mutate_interval = Some(45);
    let mut config = fixtures::config(Mode::Swarm, "192.168.1.0/24", "192.168.1.1", vec![a, b]);
    config.log_file = Some("/var/log/decnet/decnet.log".into());
    config.mutate_interval = None;
    config.set_driver(NetworkDriver::Bridge);
    config.custom_services = vec![CustomService {
        name: "custom-x".into(),
        image: "acme/x:1.0".into(),
        exec_cmd: "/usr/bin/x --serve".into(),
        ports: vec![8080, 8443],
    }];

    repo.put_desired_fleet(&config).await.expect("put fleet");
    assert_eq!(
        repo.desired_fleet().await.expect("fleet"),
        Some(config.clone())
    );

    // A second put replaces the first.
    config.deckies.truncate(1);
    config.custom_services.clear();
    repo.put_desired_fleet(&config).await.expect("put fleet");
    assert_eq!(repo.desired_fleet().await.expect("fleet"), Some(config));
}

pub(super) async fn upsert_replaces_by_host_and_name(repo: Arc<dyn Repository>) {
    let h = HostUuid::new_v4();
    let first = shard(h, "decky-01", ShardState::Pending, 0);
    repo.upsert_shard(&first).await.expect("upsert");
    assert_eq!(
        repo.shards(Some(h)).await.expect("shards"),
        vec![first.clone()]
    );

    let mut second = first.clone();
    second.state = ShardState::Failed;
    second.last_error = Some("image missing".into());
    second.last_seen = Some(at(5));
    second.updated_at = at(6);
    second.decky.services = vec!["ssh".into(), "http".into()];
    repo.upsert_shard(&second).await.expect("upsert");
    assert_eq!(repo.shards(None).await.expect("shards"), vec![second]);
}

/// Shards are keyed by `(host_uuid, decky_name)`; `shards(None)` lists by host, then name.
pub(super) async fn same_decky_name_on_two_hosts(repo: Arc<dyn Repository>) {
    let h1 = HostUuid::new_v4();
    let h2 = HostUuid::LOCAL;
    let h1_a = shard(h1, "decky-a", ShardState::Running, 0);
    let h1_b = shard(h1, "decky-b", ShardState::Degraded, 1);
    let h2_a = shard(h2, "decky-a", ShardState::Failed, 2);
    for s in [&h1_b, &h2_a, &h1_a] {
        repo.upsert_shard(s).await.expect("upsert");
    }

    let mut all = vec![h1_a.clone(), h1_b.clone(), h2_a.clone()];
    all.sort_by(|x, y| (x.host_uuid, &x.decky_name).cmp(&(y.host_uuid, &y.decky_name)));
    assert_eq!(repo.shards(None).await.expect("shards"), all);
    assert_eq!(
        repo.shards(Some(h1)).await.expect("shards"),
        vec![h1_a.clone(), h1_b.clone()]
    );
    assert_eq!(
        repo.shards(Some(h2)).await.expect("shards"),
        vec![h2_a.clone()]
    );
    assert_eq!(
        repo.shards(Some(HostUuid::new_v4())).await.expect("shards"),
        vec![]
    );

    let name = decky_name("decky-a");
    assert!(repo.delete_shard(h1, &name).await.expect("delete"));
    assert!(!repo.delete_shard(h1, &name).await.expect("delete again"));
    assert_eq!(repo.shards(Some(h2)).await.expect("shards"), vec![h2_a]);
    assert_eq!(repo.shards(Some(h1)).await.expect("shards"), vec![h1_b]);
}

fn observed(host: HostUuid, name: &str, state: ShardState, taken_at_us: i64) -> ObservedShard {
    ObservedShard {
        host_uuid: host,
        decky_name: decky_name(name),
        state,
        taken_at: at(taken_at_us),
    }
}

/// Refused: another host's shard, an unknown shard, a transitional state, or a shard the
/// runner wrote after the snapshot. Nothing is written.
pub(super) async fn observe_refused(repo: Arc<dyn Repository>) {
    let h1 = HostUuid::new_v4();
    let h2 = HostUuid::new_v4();
    for s in [
        shard(h1, "decky-run", ShardState::Failed, 100),
        shard(h1, "decky-pend", ShardState::Pending, 100),
        shard(h1, "decky-td", ShardState::TearingDown, 100),
        shard(h1, "decky-new", ShardState::Failed, 300),
    ] {
        repo.upsert_shard(&s).await.expect("upsert");
    }
    let before = repo.shards(None).await.expect("shards");

    for (why, obs) in [
        (
            "another host's shard",
            observed(h2, "decky-run", ShardState::Running, 200),
        ),
        (
            "unknown shard",
            observed(h1, "decky-zzz", ShardState::Running, 200),
        ),
        (
            "pending",
            observed(h1, "decky-pend", ShardState::Running, 200),
        ),
        (
            "tearing_down",
            observed(h1, "decky-td", ShardState::Degraded, 200),
        ),
        (
            "updated after the snapshot",
            observed(h1, "decky-new", ShardState::Running, 299),
        ),
    ] {
        assert_eq!(
            repo.observe_shard(&obs, at(400)).await.expect("observe"),
            ObserveOutcome::Refused,
            "{why}"
        );
    }
    assert_eq!(repo.shards(None).await.expect("shards"), before);
}

/// The same state again is `Unchanged` and writes nothing (`updated_at` and `last_seen` stay).
pub(super) async fn observe_unchanged_writes_nothing(repo: Arc<dyn Repository>) {
    let h = HostUuid::new_v4();
    let mut s = shard(h, "decky-01", ShardState::Running, 100);
    s.last_seen = Some(at(100));
    repo.upsert_shard(&s).await.expect("upsert");
    assert_eq!(
        repo.observe_shard(&observed(h, "decky-01", ShardState::Running, 200), at(250))
            .await
            .expect("observe"),
        ObserveOutcome::Unchanged
    );
    assert_eq!(repo.shards(Some(h)).await.expect("shards"), vec![s]);
}

/// A new state is written with `updated_at = last_seen = now`; `Changed` names the previous
/// one. A snapshot taken at the instant of the last write still applies.
pub(super) async fn observe_changed(repo: Arc<dyn Repository>) {
    let h = HostUuid::new_v4();
    let mut s = shard(h, "decky-01", ShardState::Running, 100);
    s.last_error = Some("old".into());
    repo.upsert_shard(&s).await.expect("upsert");

    let outcome = repo
        .observe_shard(&observed(h, "decky-01", ShardState::Degraded, 100), at(300))
        .await
        .expect("observe");
    assert_eq!(
        outcome,
        ObserveOutcome::Changed {
            previous: ShardState::Running
        }
    );
    let mut expect = s.clone();
    expect.state = ShardState::Degraded;
    expect.updated_at = at(300);
    expect.last_seen = Some(at(300));
    assert_eq!(repo.shards(Some(h)).await.expect("shards"), vec![expect]);

    // Our own write now postdates this older snapshot.
    assert_eq!(
        repo.observe_shard(&observed(h, "decky-01", ShardState::Running, 200), at(310))
            .await
            .expect("observe"),
        ObserveOutcome::Refused
    );
    assert_eq!(
        repo.observe_shard(&observed(h, "decky-01", ShardState::Running, 400), at(450))
            .await
            .expect("observe"),
        ObserveOutcome::Changed {
            previous: ShardState::Degraded
        }
    );

    // Settled failure states are not transitional: a heartbeat may correct them.
    for (i, previous) in [ShardState::Failed, ShardState::TeardownFailed]
        .into_iter()
        .enumerate()
    {
        let name = format!("decky-x{i}");
        repo.upsert_shard(&shard(h, &name, previous, 0))
            .await
            .expect("upsert");
        assert_eq!(
            repo.observe_shard(&observed(h, &name, ShardState::Running, 10), at(20))
                .await
                .expect("observe"),
            ObserveOutcome::Changed { previous }
        );
    }
    let states: Vec<ShardState> = repo
        .shards(Some(h))
        .await
        .expect("shards")
        .into_iter()
        .map(|s| s.state)
        .collect();
    assert_eq!(states, vec![ShardState::Running; 3]);
}

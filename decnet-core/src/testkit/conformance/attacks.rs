//! Attacker events: idempotent inserts, filtered and paged reads in id order, profiles, and
//! retention.

use std::net::IpAddr;
use std::sync::Arc;

use crate::model::attack::{
    new_event_id, AttackDetails, AttackEvent, AttackKind, AttackQuery, AttackerProfile, Transport,
    MAX_ATTACK_PAGE,
};
use crate::testkit::at;
use crate::traits::Repository;

/// An event born now (ids grow in call order), at `at(ts_us)`, with attacker strings that
/// need escaping in every medium.
fn event(decky: &str, service: &str, src: &str, kind: AttackKind, ts_us: i64) -> AttackEvent {
    AttackEvent {
        v: 1,
        id: new_event_id(),
        ts: at(ts_us),
        host: "local".into(),
        decky: decky.into(),
        service: service.into(),
        protocol: Transport::Tcp,
        src_ip: src.parse().expect("ip"),
        src_port: 40000,
        dst_ip: Some("10.0.0.20".parse().expect("ip")),
        dst_port: 22,
        session: new_event_id(),
        stream: new_event_id(),
        seq: 1,
        kind,
        details: AttackDetails::default(),
    }
}

fn auth(decky: &str, src: &str, user: &str, pass: &str, ts_us: i64) -> AttackEvent {
    let mut e = event(decky, "ssh", src, AttackKind::Auth, ts_us);
    e.details.username = Some(user.into());
    e.details.password = Some(pass.into());
    e.details.method = Some("password".into());
    e.details.extra.insert(
        "note".into(),
        serde_json::json!({"quote": "'\"; DROP TABLE x;--"}),
    );
    e
}

fn everything() -> AttackQuery {
    AttackQuery {
        limit: MAX_ATTACK_PAGE,
        ..AttackQuery::default()
    }
}

/// A batch delivered twice is stored once; events read back whole, in id order.
pub(super) async fn insert_is_idempotent_by_id(repo: Arc<dyn Repository>) {
    let a = auth("decky-01", "10.0.0.9", "root", "to'or\u{1b}[2J", 10);
    let b = event("decky-01", "ssh", "10.0.0.9", AttackKind::Connect, 5);
    let c = event("decky-02", "http", "10.0.0.8", AttackKind::Request, 20);
    assert_eq!(
        repo.insert_attack_events(&[a.clone(), b.clone()])
            .await
            .expect("insert"),
        2
    );
    assert_eq!(
        repo.insert_attack_events(&[b.clone(), c.clone(), a.clone()])
            .await
            .expect("insert again"),
        1,
        "only c is new"
    );
    assert_eq!(
        repo.insert_attack_events(&[]).await.expect("empty batch"),
        0
    );
    let got = repo.attack_events(&everything()).await.expect("list");
    assert_eq!(got, vec![a, b, c], "whole events, in id (birth) order");
}

/// Every filter, alone and combined; `since` inclusive, `until` exclusive.
pub(super) async fn filters(repo: Arc<dyn Repository>) {
    let e1 = event("decky-01", "ssh", "10.0.0.9", AttackKind::Connect, 100);
    let e2 = auth("decky-01", "10.0.0.9", "root", "x", 200);
    let e3 = event("decky-02", "http", "10.0.0.8", AttackKind::Request, 300);
    let e4 = event("decky-02", "ssh", "10.0.0.8", AttackKind::Disconnect, 400);
    repo.insert_attack_events(&[e1.clone(), e2.clone(), e3.clone(), e4.clone()])
        .await
        .expect("insert");
    let ids = |v: Vec<AttackEvent>| v.into_iter().map(|e| e.id).collect::<Vec<_>>();
    let q = |f: fn(&mut AttackQuery)| {
        let mut q = everything();
        f(&mut q);
        q
    };
    let cases: Vec<(AttackQuery, Vec<&AttackEvent>)> = vec![
        (q(|q| q.decky = Some("decky-02".into())), vec![&e3, &e4]),
        (q(|q| q.service = Some("ssh".into())), vec![&e1, &e2, &e4]),
        (q(|q| q.kind = Some(AttackKind::Auth)), vec![&e2]),
        (
            q(|q| q.src_ip = Some("10.0.0.8".parse::<IpAddr>().expect("ip"))),
            vec![&e3, &e4],
        ),
        (q(|q| q.since = Some(at(200))), vec![&e2, &e3, &e4]),
        (q(|q| q.until = Some(at(300))), vec![&e1, &e2]),
        (
            q(|q| {
                q.since = Some(at(150));
                q.until = Some(at(400));
                q.service = Some("ssh".into());
            }),
            vec![&e2],
        ),
        (q(|q| q.decky = Some("nope".into())), vec![]),
    ];
    for (query, want) in cases {
        let got = repo.attack_events(&query).await.expect("query");
        assert_eq!(
            ids(got),
            want.iter().map(|e| e.id).collect::<Vec<_>>(),
            "{query:?}"
        );
    }
}

/// Pages of `limit` after the previous page's last id cover everything once, in order; a
/// limit of 0 reads as 1 and a huge one is capped.
pub(super) async fn cursor_pagination(repo: Arc<dyn Repository>) {
    let all: Vec<AttackEvent> = (0..10)
        .map(|i| event("decky-01", "ssh", "10.0.0.9", AttackKind::Command, i * 10))
        .collect();
    // Inserted out of order: the store orders by id, not by arrival.
    let mut shuffled = all.clone();
    shuffled.reverse();
    repo.insert_attack_events(&shuffled).await.expect("insert");
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = repo
            .attack_events(&AttackQuery {
                after,
                limit: 3,
                ..AttackQuery::default()
            })
            .await
            .expect("page");
        assert!(page.len() <= 3);
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        seen.extend(page.into_iter().map(|e| e.id));
    }
    assert_eq!(seen, all.iter().map(|e| e.id).collect::<Vec<_>>());
    let one = repo
        .attack_events(&AttackQuery::default())
        .await
        .expect("limit 0");
    assert_eq!(one.len(), 1);
    let capped = repo
        .attack_events(&AttackQuery {
            limit: u32::MAX,
            ..AttackQuery::default()
        })
        .await
        .expect("huge limit");
    assert_eq!(capped.len(), 10);
}

/// Profiles agree with the reference fold: per source address, first and last seen, counts,
/// deckies, services, usernames and the latest credentials; drop events count nowhere.
pub(super) async fn attacker_profiles(repo: Arc<dyn Repository>) {
    let mut drop = event("decky-01", "spool", "0.0.0.0", AttackKind::Drop, 50);
    drop.details.dropped = Some(7);
    let events = vec![
        event("decky-01", "ssh", "10.0.0.9", AttackKind::Connect, 100),
        auth("decky-01", "10.0.0.9", "root", "toor", 200),
        auth("decky-02", "10.0.0.9", "admin", "admin'1", 300),
        auth("decky-02", "10.0.0.9", "root", "hunter2", 250),
        event("decky-03", "http", "10.0.0.8", AttackKind::Request, 150),
        drop,
    ];
    repo.insert_attack_events(&events).await.expect("insert");
    let got = repo.attacker_profiles().await.expect("profiles");
    let want = AttackerProfile::from_events(&events);
    assert_eq!(got, want);
    assert_eq!(got.len(), 2, "the drop report is no attacker");
    let p = &got[0];
    assert_eq!(p.src_ip, "10.0.0.9".parse::<IpAddr>().expect("ip"));
    assert_eq!((p.first_seen, p.last_seen), (at(100), at(300)));
    assert_eq!((p.events, p.attempts), (4, 3));
    assert_eq!(p.deckies, ["decky-01", "decky-02"]);
    assert_eq!(p.usernames, ["admin", "root"]);
    // The latest auth by id (birth), whatever its timestamp says.
    assert_eq!(p.last_username.as_deref(), Some("root"));
    assert_eq!(p.last_password.as_deref(), Some("hunter2"));
    assert!(repo
        .attacker_profiles()
        .await
        .expect("again")
        .iter()
        .all(|p| !p.src_ip.is_unspecified()));
}

/// Retention by age, then by count (the newest by id stay).
pub(super) async fn prune_by_age_and_count(repo: Arc<dyn Repository>) {
    let all: Vec<AttackEvent> = (0..6)
        .map(|i| event("decky-01", "ssh", "10.0.0.9", AttackKind::Command, i * 100))
        .collect();
    repo.insert_attack_events(&all).await.expect("insert");
    assert_eq!(
        repo.prune_attack_events(Some(at(200)), None)
            .await
            .expect("age"),
        2
    );
    assert_eq!(
        repo.prune_attack_events(None, Some(3))
            .await
            .expect("count"),
        1
    );
    assert_eq!(
        repo.prune_attack_events(None, Some(3))
            .await
            .expect("again"),
        0
    );
    let left = repo.attack_events(&everything()).await.expect("list");
    assert_eq!(
        left.iter().map(|e| e.id).collect::<Vec<_>>(),
        all[3..].iter().map(|e| e.id).collect::<Vec<_>>()
    );
}

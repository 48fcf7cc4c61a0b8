//! Hosts and the revocation table.

use std::sync::Arc;

use super::{host, shard};
use crate::model::{HostName, HostStatus, HostUuid, ShardState};
use crate::testkit::at;
use crate::traits::{CertRenewal, RepoError, Repository};

pub(super) async fn insert_and_get(repo: Arc<dyn Repository>) {
    let h = host("worker-1");
    repo.insert_host(&h).await.expect("insert host");
    assert_eq!(repo.host(h.uuid).await.expect("host"), Some(h.clone()));
    assert_eq!(
        repo.host_by_name(&h.name).await.expect("host by name"),
        Some(h.clone())
    );
    assert_eq!(repo.hosts().await.expect("hosts"), vec![h.clone()]);
    assert_eq!(repo.host(HostUuid::new_v4()).await.expect("host"), None);
    let nobody = HostName::new("nobody").expect("name");
    assert_eq!(repo.host_by_name(&nobody).await.expect("by name"), None);
}

pub(super) async fn optional_fields_round_trip(repo: Arc<dyn Repository>) {
    let mut h = host("worker-2");
    h.status = HostStatus::Unreachable;
    h.last_heartbeat = Some(at(5_000_123));
    h.agent_version = Some("1.2.3-rc.1".into());
    h.address = "[fd00::7]:8765".into();
    h.cert_expires_at = Some(at(9_000_000_456));
    h.previous_fingerprint = Some("ef".repeat(32));
    h.previous_valid_until = Some(at(7_000_000_001));
    repo.insert_host(&h).await.expect("insert host");
    assert_eq!(repo.host(h.uuid).await.expect("host"), Some(h));
}

/// `hosts()` lists by name, byte-wise (PostgreSQL must not apply a locale collation that
/// ignores '-').
pub(super) async fn listed_by_name_bytewise(repo: Arc<dyn Repository>) {
    for name in ["w10", "w-2", "w1", "a"] {
        repo.insert_host(&host(name)).await.expect("insert host");
    }
    let names: Vec<String> = repo
        .hosts()
        .await
        .expect("hosts")
        .into_iter()
        .map(|h| h.name.to_string())
        .collect();
    assert_eq!(names, ["a", "w-2", "w1", "w10"]);
}

pub(super) async fn conflicts(repo: Arc<dyn Repository>) {
    let h = host("worker-1");
    repo.insert_host(&h).await.expect("insert host");

    let mut same_uuid = host("worker-2");
    same_uuid.uuid = h.uuid;
    let mut same_name = host("worker-1");
    same_name.enrolled_at = at(1);
    let mut same_fingerprint = host("worker-3");
    same_fingerprint.fingerprint = h.fingerprint.clone();

    for (what, dup) in [
        ("uuid", same_uuid),
        ("name", same_name),
        ("fingerprint", same_fingerprint),
    ] {
        let res = repo.insert_host(&dup).await;
        assert!(
            matches!(res, Err(RepoError::Conflict(_))),
            "duplicate {what}: expected Conflict, got {res:?}"
        );
    }
    assert_eq!(repo.hosts().await.expect("hosts"), vec![h]);
}

/// A heartbeat makes the host `active` and records its time and version; a heartbeat without
/// a version keeps the recorded one. Unknown hosts are `NotFound`.
pub(super) async fn heartbeat_activates(repo: Arc<dyn Repository>) {
    let h = host("worker-1");
    repo.insert_host(&h).await.expect("insert host");

    repo.record_heartbeat(h.uuid, at(10), Some("1.0.0".into()))
        .await
        .expect("heartbeat");
    let got = repo.host(h.uuid).await.expect("host").expect("present");
    assert_eq!(got.status, HostStatus::Active);
    assert_eq!(got.last_heartbeat, Some(at(10)));
    assert_eq!(got.agent_version.as_deref(), Some("1.0.0"));
    assert_eq!((got.name, got.enrolled_at), (h.name.clone(), h.enrolled_at));

    repo.record_heartbeat(h.uuid, at(20), None)
        .await
        .expect("heartbeat");
    let got = repo.host(h.uuid).await.expect("host").expect("present");
    assert_eq!(got.last_heartbeat, Some(at(20)));
    assert_eq!(got.agent_version.as_deref(), Some("1.0.0"));

    // An unreachable host that heartbeats again is active again.
    let mut u = host("worker-2");
    u.status = HostStatus::Unreachable;
    u.last_heartbeat = Some(at(0));
    repo.insert_host(&u).await.expect("insert host");
    repo.record_heartbeat(u.uuid, at(30), Some("1.1.0".into()))
        .await
        .expect("heartbeat");
    let got = repo.host(u.uuid).await.expect("host").expect("present");
    assert_eq!(got.status, HostStatus::Active);
    assert_eq!(got.last_heartbeat, Some(at(30)));
    assert_eq!(got.agent_version.as_deref(), Some("1.1.0"));

    let res = repo
        .record_heartbeat(HostUuid::new_v4(), at(40), None)
        .await;
    assert!(
        matches!(res, Err(RepoError::NotFound(_))),
        "unknown host: {res:?}"
    );
}

/// Only `active` hosts last heard from strictly before the cutoff change; the call returns
/// exactly those.
pub(super) async fn mark_unreachable_only_stale_active(repo: Arc<dyn Repository>) {
    let active = |name: &str, hb: i64| {
        let mut h = host(name);
        h.status = HostStatus::Active;
        h.last_heartbeat = Some(at(hb));
        h
    };
    let stale_a = active("stale-a", 0);
    let stale_b = active("stale-b", 49_999_999);
    let boundary = active("boundary", 50_000_000);
    let fresh = active("fresh", 90_000_000);
    let never = host("never");
    let mut already = host("already");
    already.status = HostStatus::Unreachable;
    already.last_heartbeat = Some(at(0));
    for h in [&stale_a, &stale_b, &boundary, &fresh, &never, &already] {
        repo.insert_host(h).await.expect("insert host");
    }

    let mut changed = repo.mark_unreachable(at(50_000_000)).await.expect("mark");
    changed.sort();
    let mut expect = vec![stale_a.uuid, stale_b.uuid];
    expect.sort();
    assert_eq!(changed, expect);

    for h in [&stale_a, &stale_b] {
        let got = repo.host(h.uuid).await.expect("host").expect("present");
        assert_eq!(got.status, HostStatus::Unreachable, "{}", h.name);
        assert_eq!(got.last_heartbeat, h.last_heartbeat, "{}", h.name);
    }
    for h in [&boundary, &fresh, &never, &already] {
        let got = repo.host(h.uuid).await.expect("host").expect("present");
        assert_eq!(&got, h, "{} must not change", h.name);
    }
    assert_eq!(
        repo.mark_unreachable(at(50_000_000)).await.expect("mark"),
        vec![]
    );
}

pub(super) async fn delete_host_removes_its_shards(repo: Arc<dyn Repository>) {
    let h1 = host("worker-1");
    let h2 = host("worker-2");
    repo.insert_host(&h1).await.expect("insert host");
    repo.insert_host(&h2).await.expect("insert host");
    let kept = shard(h2.uuid, "decky-a", ShardState::Running, 0);
    for s in [
        shard(h1.uuid, "decky-a", ShardState::Running, 0),
        shard(h1.uuid, "decky-b", ShardState::Failed, 0),
        kept.clone(),
    ] {
        repo.upsert_shard(&s).await.expect("upsert shard");
    }

    assert!(repo.delete_host(h1.uuid).await.expect("delete"));
    assert_eq!(repo.host(h1.uuid).await.expect("host"), None);
    assert_eq!(repo.shards(Some(h1.uuid)).await.expect("shards"), vec![]);
    assert_eq!(repo.shards(None).await.expect("shards"), vec![kept]);
    assert_eq!(repo.hosts().await.expect("hosts"), vec![h2]);
    assert!(!repo.delete_host(h1.uuid).await.expect("delete again"));
    assert!(!repo.delete_host(HostUuid::new_v4()).await.expect("delete"));
}

pub(super) async fn revocation_is_idempotent(repo: Arc<dyn Repository>) {
    let fp = "ab".repeat(32);
    assert!(!repo.is_revoked(&fp).await.expect("is_revoked"));
    repo.revoke_fingerprint(&fp, at(1)).await.expect("revoke");
    assert!(repo.is_revoked(&fp).await.expect("is_revoked"));
    repo.revoke_fingerprint(&fp, at(2))
        .await
        .expect("revoke again");
    assert!(repo.is_revoked(&fp).await.expect("is_revoked"));
    assert!(!repo.is_revoked(&"cd".repeat(32)).await.expect("is_revoked"));
}

fn renewal(fingerprint: &str, previous: &str) -> CertRenewal {
    CertRenewal {
        fingerprint: fingerprint.to_string(),
        cert_expires_at: at(3_600_000_123),
        previous_fingerprint: previous.to_string(),
        previous_valid_until: at(600_000_001),
    }
}

/// A renewal pins the new fingerprint and keeps the old one as the previous, with the
/// overlap's end and the new expiry; nothing else of the host changes. A second renewal
/// replaces the previous.
pub(super) async fn renewal_pins_the_new_fingerprint(repo: Arc<dyn Repository>) {
    let mut h = host("worker-1");
    h.cert_expires_at = Some(at(1_000));
    repo.insert_host(&h).await.expect("insert host");
    let new_fp = "12".repeat(32);
    repo.renew_host_certificate(h.uuid, &renewal(&new_fp, &h.fingerprint))
        .await
        .expect("renew");
    let got = repo.host(h.uuid).await.expect("host").expect("present");
    let mut expect = h.clone();
    expect.fingerprint = new_fp.clone();
    expect.cert_expires_at = Some(at(3_600_000_123));
    expect.previous_fingerprint = Some(h.fingerprint.clone());
    expect.previous_valid_until = Some(at(600_000_001));
    assert_eq!(got, expect);
    assert_eq!(repo.hosts().await.expect("hosts"), vec![expect]);
    assert!(
        !repo.is_revoked(&h.fingerprint).await.expect("is_revoked"),
        "the previous stays valid during the overlap"
    );

    let newer = "34".repeat(32);
    repo.renew_host_certificate(h.uuid, &renewal(&newer, &new_fp))
        .await
        .expect("renew again");
    let got = repo.host(h.uuid).await.expect("host").expect("present");
    assert_eq!(got.fingerprint, newer);
    assert_eq!(got.previous_fingerprint.as_deref(), Some(new_fp.as_str()));
}

pub(super) async fn renewal_conflicts_and_unknown_host(repo: Arc<dyn Repository>) {
    let a = host("worker-1");
    let b = host("worker-2");
    repo.insert_host(&a).await.expect("insert host");
    repo.insert_host(&b).await.expect("insert host");
    let res = repo
        .renew_host_certificate(a.uuid, &renewal(&b.fingerprint, &a.fingerprint))
        .await;
    assert!(
        matches!(res, Err(RepoError::Conflict(_))),
        "another host's fingerprint: {res:?}"
    );
    assert_eq!(repo.host(a.uuid).await.expect("host"), Some(a.clone()));
    let res = repo
        .renew_host_certificate(HostUuid::new_v4(), &renewal(&"56".repeat(32), "x"))
        .await;
    assert!(
        matches!(res, Err(RepoError::NotFound(_))),
        "unknown host: {res:?}"
    );
}

/// Ending the overlap revokes the previous fingerprint and clears it; again, it is a no-op.
/// The current pin is never revoked by it.
pub(super) async fn ending_the_overlap_revokes_the_previous(repo: Arc<dyn Repository>) {
    let h = host("worker-1");
    repo.insert_host(&h).await.expect("insert host");
    assert_eq!(
        repo.end_certificate_overlap(h.uuid, at(5))
            .await
            .expect("end overlap"),
        None
    );
    assert!(!repo.is_revoked(&h.fingerprint).await.expect("is_revoked"));
    let new_fp = "78".repeat(32);
    repo.renew_host_certificate(h.uuid, &renewal(&new_fp, &h.fingerprint))
        .await
        .expect("renew");
    assert_eq!(
        repo.end_certificate_overlap(h.uuid, at(10))
            .await
            .expect("end overlap"),
        Some(h.fingerprint.clone())
    );
    assert!(repo.is_revoked(&h.fingerprint).await.expect("is_revoked"));
    assert!(!repo.is_revoked(&new_fp).await.expect("is_revoked"));
    let got = repo.host(h.uuid).await.expect("host").expect("present");
    assert_eq!(got.fingerprint, new_fp);
    assert_eq!(got.previous_fingerprint, None);
    assert_eq!(got.previous_valid_until, None);
    assert_eq!(got.cert_expires_at, Some(at(3_600_000_123)));
    assert_eq!(
        repo.end_certificate_overlap(h.uuid, at(20))
            .await
            .expect("end overlap again"),
        None
    );
    assert_eq!(
        repo.end_certificate_overlap(HostUuid::new_v4(), at(20))
            .await
            .expect("unknown host"),
        None
    );
}

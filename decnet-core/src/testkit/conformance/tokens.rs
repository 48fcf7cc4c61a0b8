//! Enrollment tokens (one-time, atomic consumption) and operator API tokens.

use std::sync::Arc;

use uuid::Uuid;

use crate::model::{ApiToken, EnrollToken, HostName, Role};
use crate::testkit::at;
use crate::testkit::join::{join_all, Task};
use crate::traits::{RepoError, Repository};

fn enroll_token(expires_at_us: i64) -> EnrollToken {
    EnrollToken {
        id: Uuid::new_v4(),
        hash: format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple()),
        host_name: HostName::new("worker-1").expect("name"),
        address: "10.0.0.5:8765".into(),
        created_at: at(0),
        expires_at: at(expires_at_us),
        used_at: None,
    }
}

fn api_token(role: Role, created_at_us: i64) -> ApiToken {
    ApiToken {
        id: Uuid::new_v4(),
        hash: format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple()),
        role,
        created_at: at(created_at_us),
    }
}

/// The first consume returns the token marked used at `now`; every later one gets `None`.
pub(super) async fn enroll_token_is_consumed_once(repo: Arc<dyn Repository>) {
    let t = enroll_token(900_000_000);
    repo.insert_enroll_token(&t).await.expect("insert token");

    let got = repo
        .consume_enroll_token(&t.hash, at(10))
        .await
        .expect("consume");
    let mut used = t.clone();
    used.used_at = Some(at(10));
    assert_eq!(got, Some(used));

    for now in [at(10), at(20)] {
        assert_eq!(
            repo.consume_enroll_token(&t.hash, now)
                .await
                .expect("consume"),
            None,
            "a used token is never returned again"
        );
    }
}

/// A token expires at `expires_at` (that instant included); unknown hashes give `None`.
pub(super) async fn expired_and_unknown_enroll_tokens(repo: Arc<dyn Repository>) {
    let t = enroll_token(100);
    repo.insert_enroll_token(&t).await.expect("insert token");
    for now in [at(100), at(200)] {
        assert_eq!(
            repo.consume_enroll_token(&t.hash, now)
                .await
                .expect("consume"),
            None,
            "expired at {now}"
        );
    }

    let fresh = enroll_token(100);
    repo.insert_enroll_token(&fresh)
        .await
        .expect("insert token");
    let got = repo
        .consume_enroll_token(&fresh.hash, at(99))
        .await
        .expect("consume");
    assert_eq!(got.map(|t| t.id), Some(fresh.id), "one µs before expiry");

    assert_eq!(
        repo.consume_enroll_token(&"00".repeat(32), at(0))
            .await
            .expect("consume"),
        None
    );
}

pub(super) async fn enroll_token_conflicts(repo: Arc<dyn Repository>) {
    let t = enroll_token(1_000);
    repo.insert_enroll_token(&t).await.expect("insert token");
    let mut same_id = enroll_token(1_000);
    same_id.id = t.id;
    let mut same_hash = enroll_token(1_000);
    same_hash.hash = t.hash.clone();
    for (what, dup) in [("id", same_id), ("hash", same_hash.clone())] {
        let res = repo.insert_enroll_token(&dup).await;
        assert!(
            matches!(res, Err(RepoError::Conflict(_))),
            "duplicate {what}: {res:?}"
        );
    }
    // The original is intact and still consumable once.
    let got = repo
        .consume_enroll_token(&t.hash, at(1))
        .await
        .expect("consume");
    assert_eq!(got.map(|g| g.id), Some(t.id));
}

/// Eight consumers of one token in flight at once: exactly one gets it.
pub(super) async fn concurrent_consume_has_one_winner(repo: Arc<dyn Repository>) {
    let t = enroll_token(900_000_000);
    repo.insert_enroll_token(&t).await.expect("insert token");
    let tasks: Vec<Task<'_, Result<Option<EnrollToken>, RepoError>>> = (0..8)
        .map(|i| -> Task<'_, _> {
            let repo = repo.clone();
            let hash = t.hash.clone();
            Box::pin(async move { repo.consume_enroll_token(&hash, at(10 + i)).await })
        })
        .collect();
    let results = join_all(tasks).await;
    let winners: Vec<EnrollToken> = results
        .into_iter()
        .filter_map(|r| r.expect("consume"))
        .collect();
    assert_eq!(winners.len(), 1, "exactly one consumer wins: {winners:?}");
    assert_eq!(winners[0].id, t.id);
    assert!(winners[0].used_at.is_some());
    assert_eq!(
        repo.consume_enroll_token(&t.hash, at(100))
            .await
            .expect("consume"),
        None
    );
}

pub(super) async fn api_tokens(repo: Arc<dyn Repository>) {
    assert_eq!(repo.api_tokens().await.expect("list"), vec![]);
    let admin = api_token(Role::Admin, 1);
    let viewer = api_token(Role::Viewer, 0);
    repo.insert_api_token(&admin).await.expect("insert");
    repo.insert_api_token(&viewer).await.expect("insert");

    assert_eq!(
        repo.api_token_by_hash(&admin.hash).await.expect("by hash"),
        Some(admin.clone())
    );
    assert_eq!(
        repo.api_token_by_hash(&"00".repeat(32))
            .await
            .expect("by hash"),
        None
    );
    // Listed oldest first.
    assert_eq!(
        repo.api_tokens().await.expect("list"),
        vec![viewer.clone(), admin.clone()]
    );

    let mut same_hash = api_token(Role::Viewer, 2);
    same_hash.hash = admin.hash.clone();
    let mut same_id = api_token(Role::Viewer, 2);
    same_id.id = admin.id;
    for (what, dup) in [("hash", same_hash), ("id", same_id)] {
        let res = repo.insert_api_token(&dup).await;
        assert!(
            matches!(res, Err(RepoError::Conflict(_))),
            "duplicate {what}: {res:?}"
        );
    }

    assert!(repo.delete_api_token(viewer.id).await.expect("delete"));
    assert!(!repo
        .delete_api_token(viewer.id)
        .await
        .expect("delete again"));
    assert!(!repo
        .delete_api_token(Uuid::new_v4())
        .await
        .expect("delete unknown"));
    assert_eq!(
        repo.api_token_by_hash(&viewer.hash).await.expect("by hash"),
        None
    );
    assert_eq!(repo.api_tokens().await.expect("list"), vec![admin]);
}

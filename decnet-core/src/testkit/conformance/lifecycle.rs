//! Lifecycle rows: creation, compare-and-set transitions, the open-row queries.

use std::sync::Arc;

use uuid::Uuid;

use super::row;
use crate::model::lifecycle::MAX_ERROR_LEN;
use crate::model::{
    DeckyName, HostUuid, LifecycleRow, LifecycleStatus, Operation, TransitionError,
};
use crate::testkit::at;
use crate::testkit::join::{join_all, Task};
use crate::traits::{RepoError, Repository};

use LifecycleStatus::{Failed, Pending, Running, Succeeded};

async fn get(repo: &Arc<dyn Repository>, id: Uuid) -> LifecycleRow {
    let mut rows = repo.lifecycle_rows(&[id]).await.expect("lifecycle rows");
    assert_eq!(rows.len(), 1, "row {id} is stored");
    rows.remove(0)
}

async fn create(repo: &Arc<dyn Repository>, row: &LifecycleRow) {
    repo.create_lifecycle(row).await.expect("create lifecycle");
}

async fn move_to(
    repo: &Arc<dyn Repository>,
    id: Uuid,
    to: LifecycleStatus,
    error: Option<&str>,
    now_us: i64,
) -> LifecycleRow {
    repo.transition_lifecycle(id, to, error.map(str::to_string), at(now_us))
        .await
        .unwrap_or_else(|e| panic!("transition {id} to {to}: {e}"))
}

fn is_transition_error(res: &Result<LifecycleRow, RepoError>, expect: TransitionError) -> bool {
    matches!(res, Err(RepoError::Transition(e)) if *e == expect)
}

/// Rows come back oldest first; unknown ids are omitted; no ids, no rows.
pub(super) async fn create_and_get_oldest_first(repo: Arc<dyn Repository>) {
    let h = HostUuid::new_v4();
    let late = row("decky-01", None, Operation::Deploy, 200);
    let early = row("decky-02", Some(h), Operation::Teardown, 0);
    // A caller may seed any status.
    let mut mid = row("decky-03", Some(h), Operation::Mutate, 100);
    mid.status = Failed;
    mid.error = Some("seeded".into());
    mid.updated_at = at(150);
    mid.completed_at = Some(at(150));
    for r in [&late, &early, &mid] {
        create(&repo, r).await;
    }

    let unknown = Uuid::new_v4();
    assert_eq!(
        repo.lifecycle_rows(&[late.id, unknown, early.id, mid.id])
            .await
            .expect("rows"),
        vec![early.clone(), mid.clone(), late.clone()]
    );
    assert_eq!(repo.lifecycle_rows(&[]).await.expect("rows"), vec![]);
    assert_eq!(repo.lifecycle_rows(&[unknown]).await.expect("rows"), vec![]);
    assert_eq!(
        repo.lifecycle_rows(&[mid.id, mid.id]).await.expect("rows"),
        vec![mid.clone()]
    );

    let mut dup = row("decky-09", None, Operation::Deploy, 5);
    dup.id = late.id;
    let res = repo.create_lifecycle(&dup).await;
    assert!(matches!(res, Err(RepoError::Conflict(_))), "{res:?}");
    assert_eq!(get(&repo, late.id).await, late);
}

/// The newest rows first, at most `limit`, one decky's when asked.
pub(super) async fn recent_rows_newest_first(repo: Arc<dyn Repository>) {
    let a1 = row("decky-01", None, Operation::Deploy, 0);
    let b = row("decky-02", None, Operation::Deploy, 10);
    let a2 = row("decky-01", None, Operation::Mutate, 20);
    let a3 = row("decky-01", None, Operation::Teardown, 30);
    for r in [&a1, &b, &a2, &a3] {
        create(&repo, r).await;
    }
    let recent = |decky: Option<&'static str>, limit: u32| {
        let repo = repo.clone();
        async move {
            let decky = decky.map(|d| DeckyName::new(d).expect("name"));
            repo.recent_lifecycle_rows(decky, limit)
                .await
                .expect("recent rows")
        }
    };
    assert_eq!(
        recent(None, 10).await,
        vec![a3.clone(), a2.clone(), b.clone(), a1.clone()]
    );
    assert_eq!(recent(None, 2).await, vec![a3.clone(), a2.clone()]);
    assert_eq!(
        recent(Some("decky-01"), 10).await,
        vec![a3.clone(), a2.clone(), a1.clone()]
    );
    assert_eq!(recent(Some("decky-01"), 1).await, vec![a3.clone()]);
    assert_eq!(recent(Some("decky-09"), 10).await, vec![]);
    assert_eq!(recent(None, 0).await, vec![]);
}

/// pending → running → succeeded, with `updated_at` and `completed_at` stamped.
pub(super) async fn happy_path(repo: Arc<dyn Repository>) {
    let r = row("decky-01", Some(HostUuid::new_v4()), Operation::Deploy, 0);
    create(&repo, &r).await;

    let running = move_to(&repo, r.id, Running, None, 10).await;
    let mut expect = r.clone();
    expect.status = Running;
    expect.updated_at = at(10);
    assert_eq!(running, expect);
    assert_eq!(get(&repo, r.id).await, expect);

    let done = move_to(&repo, r.id, Succeeded, None, 20).await;
    expect.status = Succeeded;
    expect.updated_at = at(20);
    expect.completed_at = Some(at(20));
    assert_eq!(done, expect);
    assert_eq!(get(&repo, r.id).await, expect);
}

/// A fast worker or the sweep may close a row that never reached running.
pub(super) async fn pending_may_close(repo: Arc<dyn Repository>) {
    let r = row("decky-01", None, Operation::Mutate, 0);
    create(&repo, &r).await;
    let failed = move_to(&repo, r.id, Failed, Some("mutate timed out after 10m"), 5).await;
    assert_eq!(failed.status, Failed);
    assert_eq!(failed.error.as_deref(), Some("mutate timed out after 10m"));
    assert_eq!(failed.completed_at, Some(at(5)));
    assert_eq!(failed.updated_at, at(5));
    assert_eq!(get(&repo, r.id).await, failed);
}

/// A terminal row never changes: other statuses are refused, the same one is a no-op that
/// keeps the first error.
pub(super) async fn terminal_never_changes(repo: Arc<dyn Repository>) {
    let r = row("decky-01", None, Operation::Deploy, 0);
    create(&repo, &r).await;
    move_to(&repo, r.id, Running, None, 10).await;
    let failed = move_to(&repo, r.id, Failed, Some("boom"), 20).await;
    assert_eq!(failed.error.as_deref(), Some("boom"));

    for to in [Succeeded, Running, Pending] {
        let res = repo.transition_lifecycle(r.id, to, None, at(30)).await;
        assert!(
            is_transition_error(&res, TransitionError::Terminal(Failed)),
            "failed -> {to}: {res:?}"
        );
    }
    let again = move_to(&repo, r.id, Failed, Some("again"), 40).await;
    assert_eq!(again, failed);
    assert_eq!(get(&repo, r.id).await, failed);
}

/// Moving a row to the status it has returns it unchanged (re-delivery is harmless).
pub(super) async fn same_status_is_unchanged(repo: Arc<dyn Repository>) {
    let r = row("decky-01", None, Operation::Deploy, 0);
    create(&repo, &r).await;
    assert_eq!(move_to(&repo, r.id, Pending, None, 5).await, r);

    let running = move_to(&repo, r.id, Running, None, 10).await;
    assert_eq!(
        move_to(&repo, r.id, Running, Some("ignored"), 50).await,
        running
    );
    assert_eq!(get(&repo, r.id).await, running);
}

pub(super) async fn backwards_is_refused(repo: Arc<dyn Repository>) {
    let r = row("decky-01", None, Operation::Deploy, 0);
    create(&repo, &r).await;
    let running = move_to(&repo, r.id, Running, None, 10).await;
    let res = repo.transition_lifecycle(r.id, Pending, None, at(20)).await;
    assert!(
        is_transition_error(
            &res,
            TransitionError::NotAllowed {
                from: Running,
                to: Pending
            }
        ),
        "{res:?}"
    );
    assert_eq!(get(&repo, r.id).await, running);
}

/// Errors keep at most [`MAX_ERROR_LEN`] bytes, cut on a character boundary.
pub(super) async fn error_is_truncated(repo: Arc<dyn Repository>) {
    for (text, expect) in [
        ("x".repeat(3 * MAX_ERROR_LEN), "x".repeat(MAX_ERROR_LEN)),
        ("é".repeat(MAX_ERROR_LEN), "é".repeat(MAX_ERROR_LEN / 2)),
        ("€".repeat(MAX_ERROR_LEN), "€".repeat(MAX_ERROR_LEN / 3)),
    ] {
        let r = row("decky-01", None, Operation::Deploy, 0);
        create(&repo, &r).await;
        let failed = move_to(&repo, r.id, Failed, Some(&text), 10).await;
        assert_eq!(failed.error.as_deref(), Some(expect.as_str()));
        assert_eq!(get(&repo, r.id).await, failed);
    }
}

pub(super) async fn unknown_id_is_not_found(repo: Arc<dyn Repository>) {
    for to in [Pending, Running, Succeeded, Failed] {
        let res = repo
            .transition_lifecycle(Uuid::new_v4(), to, None, at(1))
            .await;
        assert!(matches!(res, Err(RepoError::NotFound(_))), "{to}: {res:?}");
    }
}

/// Eight closers of one running row in flight at once, half `succeeded`, half `failed`:
/// exactly one wins, the others see it (same status) or are refused (the other one), and the
/// row never changes afterwards.
pub(super) async fn concurrent_terminal_transitions_have_one_winner(repo: Arc<dyn Repository>) {
    let r = row("decky-01", Some(HostUuid::new_v4()), Operation::Deploy, 0);
    create(&repo, &r).await;
    move_to(&repo, r.id, Running, None, 1).await;

    let wants = |i: i64| if i % 2 == 0 { Succeeded } else { Failed };
    let tasks: Vec<Task<'_, Result<LifecycleRow, RepoError>>> = (0..8)
        .map(|i| -> Task<'_, _> {
            let repo = repo.clone();
            let error = (wants(i) == Failed).then(|| format!("closer {i}"));
            Box::pin(async move {
                repo.transition_lifecycle(r.id, wants(i), error, at(100 + i))
                    .await
            })
        })
        .collect();
    let results = join_all(tasks).await;

    let last = get(&repo, r.id).await;
    assert!(last.status.is_terminal(), "{last:?}");
    let winners: Vec<i64> = (0..8)
        .filter(|&i| last.completed_at == Some(at(100 + i)))
        .collect();
    assert_eq!(winners.len(), 1, "one winner stamped the row: {last:?}");
    let winner = winners[0];
    assert_eq!(last.status, wants(winner));
    assert_eq!(last.updated_at, at(100 + winner));
    let expect_error = (last.status == Failed).then(|| format!("closer {winner}"));
    assert_eq!(last.error, expect_error);

    for (i, res) in (0..8).zip(results) {
        if wants(i) == last.status {
            assert_eq!(
                res.expect("same status is not an error"),
                last,
                "closer {i}"
            );
        } else {
            assert!(
                is_transition_error(&res, TransitionError::Terminal(last.status)),
                "closer {i}: {res:?}"
            );
        }
    }

    for to in [Pending, Running, Succeeded, Failed] {
        let _ = repo
            .transition_lifecycle(r.id, to, Some("late".into()), at(500))
            .await;
    }
    repo.touch_lifecycle(
        r.host_uuid.unwrap_or_else(HostUuid::new_v4),
        &[r.id],
        at(600),
    )
    .await
    .expect("touch");
    assert_eq!(get(&repo, r.id).await, last);
}

/// The oldest open row of exactly this decky, operation and host (`None` = the master's own).
pub(super) async fn find_open_returns_oldest_match(repo: Arc<dyn Repository>) {
    let h = HostUuid::new_v4();
    let decky = DeckyName::new("decky-01").expect("name");
    let mut done = row("decky-01", Some(h), Operation::Deploy, 0);
    done.status = Succeeded;
    done.completed_at = Some(at(0));
    let oldest_open = row("decky-01", Some(h), Operation::Deploy, 10);
    let mut newer = row("decky-01", Some(h), Operation::Deploy, 20);
    newer.status = Running;
    let other_host = row("decky-01", Some(HostUuid::new_v4()), Operation::Deploy, 5);
    let other_op = row("decky-01", Some(h), Operation::Mutate, 1);
    let unihost = row("decky-01", None, Operation::Deploy, 2);
    let other_decky = row("decky-02", Some(h), Operation::Deploy, 3);
    for r in [
        &newer,
        &done,
        &oldest_open,
        &other_host,
        &other_op,
        &unihost,
        &other_decky,
    ] {
        create(&repo, r).await;
    }

    let find = |op: Operation, host: Option<HostUuid>| {
        let repo = repo.clone();
        let decky = decky.clone();
        async move {
            repo.find_open_lifecycle(&decky, op, host)
                .await
                .expect("find open")
        }
    };
    assert_eq!(
        find(Operation::Deploy, Some(h)).await,
        Some(oldest_open.clone())
    );
    assert_eq!(find(Operation::Deploy, None).await, Some(unihost));
    assert_eq!(find(Operation::Mutate, Some(h)).await, Some(other_op));
    assert_eq!(find(Operation::Teardown, Some(h)).await, None);

    move_to(&repo, oldest_open.id, Failed, Some("superseded"), 30).await;
    assert_eq!(find(Operation::Deploy, Some(h)).await, Some(newer.clone()));
    move_to(&repo, newer.id, Succeeded, None, 40).await;
    assert_eq!(find(Operation::Deploy, Some(h)).await, None);
}

pub(super) async fn open_rows_oldest_first(repo: Arc<dyn Repository>) {
    assert_eq!(repo.open_lifecycle_rows().await.expect("open rows"), vec![]);
    let with = |name: &str, status: LifecycleStatus, started: i64| {
        let mut r = row(name, None, Operation::Deploy, started);
        r.status = status;
        if status.is_terminal() {
            r.completed_at = Some(at(started));
        }
        r
    };
    let a = with("decky-a", Pending, 30);
    let b = with("decky-b", Running, 10);
    let c = with("decky-c", Succeeded, 0);
    let d = with("decky-d", Failed, 5);
    let e = with("decky-e", Pending, 20);
    for r in [&a, &b, &c, &d, &e] {
        create(&repo, r).await;
    }
    assert_eq!(
        repo.open_lifecycle_rows().await.expect("open rows"),
        vec![b, e, a]
    );
}

/// Touching marks progress on the reporting host's open rows only; nothing else about them
/// changes, and rows of other hosts or of the master itself are left alone.
pub(super) async fn touch_moves_open_rows_only(repo: Arc<dyn Repository>) {
    let h = HostUuid::new_v4();
    let pending = row("decky-a", Some(h), Operation::Deploy, 0);
    let running = row("decky-b", Some(h), Operation::Mutate, 0);
    let done = row("decky-c", Some(h), Operation::Teardown, 0);
    let other_host = row("decky-d", Some(HostUuid::new_v4()), Operation::Deploy, 0);
    let unihost = row("decky-e", None, Operation::Deploy, 0);
    for r in [&pending, &running, &done, &other_host, &unihost] {
        create(&repo, r).await;
    }
    let running = move_to(&repo, running.id, Running, None, 1).await;
    let done = move_to(&repo, done.id, Succeeded, None, 2).await;

    repo.touch_lifecycle(h, &[], at(50))
        .await
        .expect("touch none");
    repo.touch_lifecycle(
        h,
        &[
            pending.id,
            done.id,
            Uuid::new_v4(),
            running.id,
            other_host.id,
            unihost.id,
        ],
        at(100),
    )
    .await
    .expect("touch");

    let mut expect_pending = pending.clone();
    expect_pending.updated_at = at(100);
    let mut expect_running = running.clone();
    expect_running.updated_at = at(100);
    assert_eq!(get(&repo, pending.id).await, expect_pending);
    assert_eq!(get(&repo, running.id).await, expect_running);
    assert_eq!(get(&repo, done.id).await, done);
    assert_eq!(
        get(&repo, other_host.id).await,
        other_host,
        "another host's row"
    );
    assert_eq!(
        get(&repo, unihost.id).await,
        unihost,
        "the master's own row"
    );
}

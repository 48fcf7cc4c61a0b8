//! The one conformance suite every [`Repository`] backend passes: many small checks, each
//! on a fresh store. The contract is the trait's documentation; where it is silent, the
//! choices made here (ordering, boundaries) are written next to the check that pins them.

mod attacks;
mod hosts;
mod lifecycle;
mod shards;
mod tokens;

use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::task::Poll;

use uuid::Uuid;

use super::at;
use super::join::Task;
use crate::model::fixtures;
use crate::model::{
    DeckyName, Host, HostName, HostStatus, HostUuid, LifecycleRow, Operation, Shard, ShardState,
};
use crate::traits::Repository;

type Check = fn(Arc<dyn Repository>) -> Task<'static, ()>;

macro_rules! checks {
    ($($module:ident :: $check:ident),* $(,)?) => {
        &[$((
            concat!(stringify!($module), "::", stringify!($check)),
            |repo| Box::pin($module::$check(repo)),
        )),*]
    };
}

const CHECKS: &[(&str, Check)] = checks![
    hosts::insert_and_get,
    hosts::optional_fields_round_trip,
    hosts::listed_by_name_bytewise,
    hosts::conflicts,
    hosts::heartbeat_activates,
    hosts::mark_unreachable_only_stale_active,
    hosts::delete_host_removes_its_shards,
    hosts::revocation_is_idempotent,
    hosts::renewal_pins_the_new_fingerprint,
    hosts::renewal_conflicts_and_unknown_host,
    hosts::ending_the_overlap_revokes_the_previous,
    tokens::enroll_token_is_consumed_once,
    tokens::expired_and_unknown_enroll_tokens,
    tokens::enroll_token_conflicts,
    tokens::concurrent_consume_has_one_winner,
    tokens::api_tokens,
    shards::desired_fleet_round_trip,
    shards::upsert_replaces_by_host_and_name,
    shards::same_decky_name_on_two_hosts,
    shards::observe_refused,
    shards::observe_unchanged_writes_nothing,
    shards::observe_changed,
    lifecycle::create_and_get_oldest_first,
    lifecycle::happy_path,
    lifecycle::pending_may_close,
    lifecycle::terminal_never_changes,
    lifecycle::same_status_is_unchanged,
    lifecycle::backwards_is_refused,
    lifecycle::error_is_truncated,
    lifecycle::unknown_id_is_not_found,
    lifecycle::concurrent_terminal_transitions_have_one_winner,
    lifecycle::find_open_returns_oldest_match,
    lifecycle::open_rows_oldest_first,
    lifecycle::recent_rows_newest_first,
    lifecycle::touch_moves_open_rows_only,
    attacks::insert_is_idempotent_by_id,
    attacks::filters,
    attacks::cursor_pagination,
    attacks::attacker_profiles,
    attacks::prune_by_age_and_count,
];

/// Runs every check of the suite, each against a fresh store from `make`; panics naming the
/// first check that fails.
///
/// Times in the checks are microsecond-precise (see [`super::at`]); concurrent checks run
/// eight calls in flight at once from one task (the core has no runtime to spawn on).
pub async fn repository_conformance<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Repository>>,
{
    for (name, check) in CHECKS {
        let repo = make().await;
        if let Err(payload) = catching(check(repo)).await {
            panic!(
                "repository conformance check `{name}` failed: {}",
                panic_message(payload.as_ref())
            );
        }
    }
}

/// Runs `task`, turning a panic inside it into an `Err` with the panic's payload.
async fn catching(mut task: Task<'static, ()>) -> Result<(), Box<dyn Any + Send>> {
    std::future::poll_fn(move |cx| {
        match catch_unwind(AssertUnwindSafe(|| task.as_mut().poll(cx))) {
            Ok(Poll::Ready(())) => Poll::Ready(Ok(())),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(payload)),
        }
    })
    .await
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic payload)".to_string()
    }
}

// --- fixtures ---------------------------------------------------------------------------------

fn decky_name(name: &str) -> DeckyName {
    DeckyName::new(name).expect("fixture decky name")
}

/// A fresh enrolled host with a unique uuid and fingerprint.
fn host(name: &str) -> Host {
    Host {
        uuid: HostUuid::new_v4(),
        name: HostName::new(name).expect("fixture host name"),
        address: format!("{name}.example.invalid:8765"),
        fingerprint: format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple()),
        status: HostStatus::Enrolled,
        last_heartbeat: None,
        agent_version: None,
        enrolled_at: at(0),
        cert_expires_at: None,
        previous_fingerprint: None,
        previous_valid_until: None,
    }
}

/// A shard of `host` for a decky named `name`, in `state`, last written at `updated_at`.
fn shard(host: HostUuid, name: &str, state: ShardState, updated_at_us: i64) -> Shard {
    let mut decky = fixtures::decky(name, "192.168.1.10".parse().expect("ip"), &["ssh"]);
    decky.host_uuid = Some(host);
    Shard {
        host_uuid: host,
        decky_name: decky_name(name),
        decky,
        state,
        last_error: None,
        last_seen: None,
        updated_at: at(updated_at_us),
    }
}

/// A pending lifecycle row started at `at(started_at_us)`.
fn row(decky: &str, host: Option<HostUuid>, op: Operation, started_at_us: i64) -> LifecycleRow {
    LifecycleRow::new(decky_name(decky), host, op, at(started_at_us))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_names_are_unique() {
        let mut names: Vec<&str> = CHECKS.iter().map(|(n, _)| *n).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CHECKS.len());
    }

    #[tokio::test]
    async fn a_failing_check_is_named() {
        let task: Task<'static, ()> = Box::pin(async { panic!("boom {}", 1) });
        let err = catching(task).await.unwrap_err();
        assert_eq!(panic_message(err.as_ref()), "boom 1");
    }
}

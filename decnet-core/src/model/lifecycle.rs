//! Lifecycle rows, deltas and the transition rules (PRODUCT §8).
//!
//! One row per (decky, operation) attempt. `pending → running → succeeded | failed`;
//! transitions are compare-and-set and terminal rows never change. The rules live here as
//! pure functions so every store applies the same ones.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::error::FieldError;
use super::names::{DeckyName, HostUuid};

/// Longest error text kept on a row or delta (the original's limit).
pub const MAX_ERROR_LEN: usize = 2000;

/// What a lifecycle row tracks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    /// Bring the decky up (create or recreate its containers); wire name `deploy`.
    Deploy,
    /// Swap the decky's services for a new draw; wire name `mutate`.
    Mutate,
    /// Remove the decky's containers; wire name `teardown`.
    Teardown,
}

impl Operation {
    /// Every operation, in wire order.
    pub const ALL: [Operation; 3] = [Operation::Deploy, Operation::Mutate, Operation::Teardown];

    /// The wire name (`"deploy"`, `"mutate"`, `"teardown"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Deploy => "deploy",
            Operation::Mutate => "mutate",
            Operation::Teardown => "teardown",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for Operation {
    type Err = FieldError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Operation::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| FieldError::new("operation", s, "must be deploy, mutate or teardown"))
    }
}

/// Where a lifecycle row stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LifecycleStatus {
    /// Recorded, not yet started by the runner or a worker.
    Pending,
    /// Handed to the deployer or a worker; the outcome is not known yet.
    Running,
    /// Finished: the decky is in the state the operation asked for. Terminal.
    Succeeded,
    /// Finished without reaching that state, or failed by the sweep; `error` says why. Terminal.
    Failed,
}

impl LifecycleStatus {
    /// Every status, in the order a row passes through them.
    pub const ALL: [LifecycleStatus; 4] = [
        LifecycleStatus::Pending,
        LifecycleStatus::Running,
        LifecycleStatus::Succeeded,
        LifecycleStatus::Failed,
    ];

    /// The wire name (`"pending"`, `"running"`, `"succeeded"`, `"failed"`).
    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleStatus::Pending => "pending",
            LifecycleStatus::Running => "running",
            LifecycleStatus::Succeeded => "succeeded",
            LifecycleStatus::Failed => "failed",
        }
    }

    /// Succeeded and failed rows never change again.
    pub fn is_terminal(self) -> bool {
        matches!(self, LifecycleStatus::Succeeded | LifecycleStatus::Failed)
    }

    /// The statuses a row may move to `self` from: the `WHERE status IN (…)` of the
    /// compare-and-set. Empty for `Pending` (rows are created pending, never moved back).
    pub fn allowed_from(self) -> &'static [LifecycleStatus] {
        use LifecycleStatus::*;
        match self {
            Pending => &[],
            Running => &[Pending],
            // A fast worker may report before the runner's `running` lands, and the sweep
            // fails rows that never started: both may close a pending row.
            Succeeded | Failed => &[Pending, Running],
        }
    }
}

impl fmt::Display for LifecycleStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for LifecycleStatus {
    type Err = FieldError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LifecycleStatus::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| {
                FieldError::new("status", s, "must be pending, running, succeeded or failed")
            })
    }
}

/// Why a transition was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("lifecycle row is already {0} (terminal rows never change)")]
    /// The row already reached this terminal status.
    Terminal(LifecycleStatus),
    #[error("lifecycle row cannot move from {from} to {to}")]
    /// The rules do not allow this move (e.g. `running` back to `pending`).
    NotAllowed {
        /// The row's current status.
        from: LifecycleStatus,
        /// The status asked for.
        to: LifecycleStatus,
    },
}

/// What applying a transition means for a row currently in `from`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransitionOutcome {
    /// Write the new status.
    Apply,
    /// The row is already there: nothing to write (idempotent re-delivery).
    AlreadyThere,
}

/// The compare-and-set rule: may a row in `from` move to `to`?
pub fn check_transition(
    from: LifecycleStatus,
    to: LifecycleStatus,
) -> Result<TransitionOutcome, TransitionError> {
    if from == to {
        return Ok(TransitionOutcome::AlreadyThere);
    }
    if from.is_terminal() {
        return Err(TransitionError::Terminal(from));
    }
    if to.allowed_from().contains(&from) {
        Ok(TransitionOutcome::Apply)
    } else {
        Err(TransitionError::NotAllowed { from, to })
    }
}

/// Cuts an error text to [`MAX_ERROR_LEN`] bytes on a character boundary.
pub fn truncate_error(s: &str) -> String {
    if s.len() <= MAX_ERROR_LEN {
        return s.to_string();
    }
    let mut end = MAX_ERROR_LEN;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// One row: one attempt of one operation on one decky.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleRow {
    /// The row's id, which the operator API's `?ids=` and a worker's delta (`lifecycle_id`) name.
    pub id: Uuid,
    /// The decky the operation is about.
    pub decky_name: DeckyName,
    /// `None` for unihost deckies run by the master itself.
    pub host_uuid: Option<HostUuid>,
    /// What the row tracks.
    pub operation: Operation,
    /// Where the row stands; terminal rows never change.
    pub status: LifecycleStatus,
    /// Why the row failed (at most [`MAX_ERROR_LEN`] bytes); `None` while it has not.
    pub error: Option<String>,
    /// When the row was recorded.
    pub started_at: DateTime<Utc>,
    /// When the row last changed status.
    pub updated_at: DateTime<Utc>,
    /// When the row reached a terminal status; `None` before.
    pub completed_at: Option<DateTime<Utc>>,
}

impl LifecycleRow {
    /// A new pending row.
    pub fn new(
        decky_name: DeckyName,
        host_uuid: Option<HostUuid>,
        operation: Operation,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            id: Uuid::new_v4(),
            decky_name,
            host_uuid,
            operation,
            status: LifecycleStatus::Pending,
            error: None,
            started_at: now,
            updated_at: now,
            completed_at: None,
        }
    }

    /// Applies a transition under the rules; returns whether anything changed.
    pub fn transition(
        &mut self,
        to: LifecycleStatus,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool, TransitionError> {
        match check_transition(self.status, to)? {
            TransitionOutcome::AlreadyThere => Ok(false),
            TransitionOutcome::Apply => {
                self.status = to;
                self.updated_at = now;
                if let Some(e) = error {
                    self.error = Some(truncate_error(e));
                }
                if to.is_terminal() {
                    self.completed_at = Some(now);
                }
                Ok(true)
            }
        }
    }
}

/// The terminal status a worker reports for an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeltaStatus {
    /// The operation reached its goal.
    Succeeded,
    /// The operation failed; the delta's `error` says why.
    Failed,
}

impl From<DeltaStatus> for LifecycleStatus {
    fn from(s: DeltaStatus) -> Self {
        match s {
            DeltaStatus::Succeeded => LifecycleStatus::Succeeded,
            DeltaStatus::Failed => LifecycleStatus::Failed,
        }
    }
}

/// What a worker reports when an operation on one decky finished (PRODUCT §5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleDelta {
    /// Unique per delta, so re-delivery is recognisable.
    pub id: Uuid,
    /// Echo of the master's row id, when the master sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle_id: Option<Uuid>,
    /// The decky the operation was about.
    pub decky_name: DeckyName,
    /// The operation that finished.
    pub operation: Operation,
    /// How it ended.
    pub status: DeltaStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Why it failed (at most [`MAX_ERROR_LEN`] bytes); absent on success.
    pub error: Option<String>,
    /// When the worker saw the operation finish.
    pub completed_at: DateTime<Utc>,
}

impl LifecycleDelta {
    /// A delta with a fresh id: `Ok(())` reports success, `Err(text)` a failure with its text
    /// cut to [`MAX_ERROR_LEN`] bytes.
    pub fn new(
        lifecycle_id: Option<Uuid>,
        decky_name: DeckyName,
        operation: Operation,
        result: Result<(), &str>,
        now: DateTime<Utc>,
    ) -> Self {
        let (status, error) = match result {
            Ok(()) => (DeltaStatus::Succeeded, None),
            Err(e) => (DeltaStatus::Failed, Some(truncate_error(e))),
        };
        Self {
            id: Uuid::new_v4(),
            lifecycle_id,
            decky_name,
            operation,
            status,
            error,
            completed_at: now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use LifecycleStatus::*;

    #[test]
    fn transition_table() {
        use TransitionOutcome::*;
        let table: &[(
            LifecycleStatus,
            LifecycleStatus,
            Result<TransitionOutcome, ()>,
        )] = &[
            (Pending, Running, Ok(Apply)),
            (Pending, Succeeded, Ok(Apply)),
            (Pending, Failed, Ok(Apply)),
            (Pending, Pending, Ok(AlreadyThere)),
            (Running, Running, Ok(AlreadyThere)),
            (Running, Succeeded, Ok(Apply)),
            (Running, Failed, Ok(Apply)),
            (Running, Pending, Err(())),
            (Succeeded, Succeeded, Ok(AlreadyThere)),
            (Succeeded, Failed, Err(())),
            (Succeeded, Running, Err(())),
            (Failed, Succeeded, Err(())),
            (Failed, Pending, Err(())),
        ];
        for &(from, to, expect) in table {
            assert_eq!(
                check_transition(from, to).map_err(|_| ()),
                expect,
                "{from} -> {to}"
            );
        }
    }

    #[test]
    fn terminal_rows_never_change() {
        let now = Utc::now();
        let mut row = LifecycleRow::new(
            DeckyName::new("decky-01").unwrap(),
            None,
            Operation::Deploy,
            now,
        );
        assert!(row.transition(Running, None, now).unwrap());
        assert!(row.transition(Failed, Some("boom"), now).unwrap());
        assert_eq!(row.completed_at, Some(now));
        assert_eq!(
            row.transition(Succeeded, None, now),
            Err(TransitionError::Terminal(Failed))
        );
        assert_eq!(row.status, Failed);
        assert_eq!(row.error.as_deref(), Some("boom"));
        // Re-delivery of the same terminal status is a no-op, not an error.
        assert_eq!(row.transition(Failed, Some("again"), now), Ok(false));
        assert_eq!(row.error.as_deref(), Some("boom"));
    }

    #[test]
    fn errors_are_truncated_on_char_boundaries() {
        let long = "é".repeat(1500);
        let t = truncate_error(&long);
        assert!(t.len() <= MAX_ERROR_LEN);
        assert!(t.chars().all(|c| c == 'é'));
    }

    #[test]
    fn delta_wire_shape() {
        let now: DateTime<Utc> = "2026-01-02T03:04:05Z".parse().unwrap();
        let d = LifecycleDelta::new(
            None,
            DeckyName::new("decky-01").unwrap(),
            Operation::Deploy,
            Err("image missing"),
            now,
        );
        let v = serde_json::to_value(&d).unwrap();
        assert_eq!(v["status"], "failed");
        assert_eq!(v["operation"], "deploy");
        assert_eq!(v["error"], "image missing");
        assert_eq!(v["completed_at"], "2026-01-02T03:04:05Z");
        assert!(v.get("lifecycle_id").is_none());
        let back: LifecycleDelta = serde_json::from_value(v).unwrap();
        assert_eq!(back, d);
    }
}

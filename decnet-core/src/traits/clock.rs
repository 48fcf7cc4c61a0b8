//! `Clock`: the time, injected so time-dependent logic is testable.

use chrono::{DateTime, Utc};

/// The source of "now" for lifecycle timestamps, the sweep's timeouts and heartbeat
/// cut-offs; tests pass a manual clock instead of sleeping.
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
pub trait Clock: Send + Sync {
    /// The current instant, in UTC.
    fn now(&self) -> DateTime<Utc>;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that says what it is told (tests, simulations).
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub DateTime<Utc>);

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}

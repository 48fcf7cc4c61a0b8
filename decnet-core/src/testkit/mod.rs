//! Test support for crates that embed the core (feature `test-util`): in-memory fakes of the
//! traits that hold state, and the conformance suites every implementation must pass.
//!
//! - [`MemRepository`]: the master's store in memory.
//! - [`repository_conformance`]: one suite for every [`crate::traits::Repository`] backend
//!   (this fake, SQLite, PostgreSQL).
//!
//! Time: real stores keep microseconds (PostgreSQL `timestamptz`), so the fake truncates the
//! times it is given to microseconds too, and the suite only makes times with [`at`].

mod conformance;
mod join;
mod mem;

pub use conformance::repository_conformance;
pub use mem::MemRepository;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

/// `t` cut to whole microseconds: the precision every store keeps.
pub fn trunc_us(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(TimeDelta::microseconds(1)).unwrap_or(t)
}

/// The current time at microsecond precision.
pub fn now_us() -> DateTime<Utc> {
    trunc_us(Utc::now())
}

/// A fixed instant plus `offset_us` microseconds: the suite's clock. The base has a
/// non-zero microsecond part so a store that drops sub-second precision fails.
pub fn at(offset_us: i64) -> DateTime<Utc> {
    // 2026-03-04T05:06:07.123456Z
    let base = DateTime::<Utc>::from_timestamp(1_772_600_767, 123_456_000).unwrap_or_default();
    base + TimeDelta::microseconds(offset_us)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::traits::Repository;

    #[tokio::test]
    async fn mem_repository_passes_the_conformance_suite() {
        repository_conformance(|| async { Arc::new(MemRepository::new()) as Arc<dyn Repository> })
            .await;
    }

    #[test]
    fn times_are_microseconds() {
        let t = at(0);
        assert_eq!(t.to_rfc3339(), "2026-03-04T05:06:07.123456+00:00");
        assert_eq!(trunc_us(t), t);
        let ns = t + TimeDelta::nanoseconds(789);
        assert_eq!(trunc_us(ns), t);
        let now = now_us();
        assert_eq!(trunc_us(now), now);
    }
}

/// A [`crate::traits::Clock`] that moves only when told: tests of the sweep and of anything
/// else that compares stored times with "now" advance it instead of waiting.
#[derive(Debug)]
pub struct ManualClock(std::sync::Mutex<DateTime<Utc>>);

impl ManualClock {
    /// A clock standing at `start` (cut to microseconds, like the stores).
    pub fn new(start: DateTime<Utc>) -> Self {
        Self(std::sync::Mutex::new(trunc_us(start)))
    }

    /// Moves the clock on by `by`.
    pub fn advance(&self, by: std::time::Duration) {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *t += TimeDelta::from_std(by).unwrap_or(TimeDelta::MAX);
    }
}

impl crate::traits::Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

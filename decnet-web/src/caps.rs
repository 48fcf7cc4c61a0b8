//! Connection caps of one listener: in total (a semaphore) and per source IP address (a
//! counted map), checked at accept before any TLS work. Refusals are counted and logged at
//! most once per [`LOG_EVERY`], so a flood of connections cannot flood the log.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Refusals are summed up in one log line per this interval at most.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// Which cap refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    Total,
    PerSource,
}

/// The caps and the current counts.
#[derive(Debug)]
pub(crate) struct Caps {
    total: Arc<Semaphore>,
    per_source: Arc<Mutex<HashMap<IpAddr, usize>>>,
    max_per_source: usize,
}

/// A connection's place under the caps; dropping it frees the place.
#[derive(Debug)]
pub(crate) struct Admission {
    _permit: OwnedSemaphorePermit,
    source: IpAddr,
    per_source: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut map = self.per_source.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.source) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.source);
            }
        }
    }
}

impl Caps {
    pub(crate) fn new(max_total: usize, max_per_source: usize) -> Self {
        Self {
            total: Arc::new(Semaphore::new(max_total.min(Semaphore::MAX_PERMITS))),
            per_source: Arc::new(Mutex::new(HashMap::new())),
            max_per_source,
        }
    }

    /// A place for a connection from `source`, or which cap is full.
    pub(crate) fn admit(&self, source: IpAddr) -> Result<Admission, Refusal> {
        let source = source.to_canonical();
        let permit = self
            .total
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::Total)?;
        let mut map = self.per_source.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(source).or_insert(0);
        if *n >= self.max_per_source {
            if *n == 0 {
                map.remove(&source);
            }
            return Err(Refusal::PerSource);
        }
        *n += 1;
        drop(map);
        Ok(Admission {
            _permit: permit,
            source,
            per_source: self.per_source.clone(),
        })
    }
}

/// Counts refusals and logs them at most once per [`LOG_EVERY`] (the first at once).
#[derive(Debug, Default)]
pub(crate) struct RefusalLog {
    logged_at: Option<Instant>,
    total: u64,
    per_source: u64,
    last_source: Option<IpAddr>,
}

impl RefusalLog {
    pub(crate) fn record(
        &mut self,
        refusal: Refusal,
        source: IpAddr,
        local: Option<std::net::SocketAddr>,
    ) {
        match refusal {
            Refusal::Total => self.total += 1,
            Refusal::PerSource => self.per_source += 1,
        }
        self.last_source = Some(source);
        if self.logged_at.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
            self.flush(local);
            self.logged_at = Some(Instant::now());
        }
    }

    /// Logs what was counted since the last line, if anything.
    pub(crate) fn flush(&mut self, local: Option<std::net::SocketAddr>) {
        if self.total == 0 && self.per_source == 0 {
            return;
        }
        tracing::info!(
            listener = ?local,
            over_max_connections = self.total,
            over_max_connections_per_source = self.per_source,
            last_source = ?self.last_source,
            "closed connections over the connection caps"
        );
        self.total = 0;
        self.per_source = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("an address")
    }

    #[test]
    fn caps_count_and_free() {
        let caps = Caps::new(3, 2);
        let a1 = caps.admit(ip("10.0.0.1")).expect("first");
        let a2 = caps.admit(ip("10.0.0.1")).expect("second");
        assert_eq!(caps.admit(ip("10.0.0.1")).err(), Some(Refusal::PerSource));
        // The IPv4-mapped form is the same source.
        assert_eq!(
            caps.admit(ip("::ffff:10.0.0.1")).err(),
            Some(Refusal::PerSource)
        );
        let b1 = caps.admit(ip("10.0.0.2")).expect("another source");
        assert_eq!(caps.admit(ip("10.0.0.3")).err(), Some(Refusal::Total));
        drop(a1);
        let a3 = caps.admit(ip("10.0.0.1")).expect("a freed place");
        drop((a2, a3, b1));
        assert!(caps.per_source.lock().expect("not poisoned").is_empty());
        assert_eq!(caps.total.available_permits(), 3);
    }

    #[test]
    fn refusals_are_counted_between_lines() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("runtime");
        rt.block_on(async {
            let mut log = RefusalLog::default();
            log.record(Refusal::Total, ip("10.0.0.1"), None);
            // The first is logged at once.
            assert_eq!((log.total, log.per_source), (0, 0));
            for _ in 0..100 {
                log.record(Refusal::PerSource, ip("10.0.0.1"), None);
            }
            assert_eq!(log.per_source, 100, "counted, not logged");
            tokio::time::advance(LOG_EVERY).await;
            log.record(Refusal::Total, ip("10.0.0.1"), None);
            assert_eq!(
                (log.total, log.per_source),
                (0, 0),
                "one line for all of them"
            );
        });
    }
}

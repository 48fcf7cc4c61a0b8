//! What one listener tolerates from its clients: how long a client may take to handshake, to
//! send its request headers and to sit idle between requests, and how many connections it may
//! hold (in total and from one source address).

use std::time::Duration;

/// Default TLS handshake timeout.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default header-read timeout.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default request-body timeout.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Default keep-alive idle timeout.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default cap on open connections per listener.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Default cap on open connections per source IP address.
pub const DEFAULT_MAX_CONNECTIONS_PER_SOURCE: usize = 64;
/// Longest timeout [`ServeLimits::validate`] accepts (one day).
pub const MAX_TIMEOUT: Duration = Duration::from_secs(86_400);

/// The limits of one [`serve`](crate::serve()) call (each listener has its own counts).
///
/// - `handshake_timeout`: from accept until the TLS handshake is done (TLS listeners only).
/// - `header_timeout`: a new connection must complete its first request's headers within it
///   (counted from accept, or from the end of the handshake); a later request's headers must be
///   complete within it of their first byte.
/// - `body_timeout`: a request's body must have arrived in full within it of the request's
///   headers (a client that sends its headers and then trickles, or withholds, the body is
///   closed); requests without a body are not affected.
/// - `idle_timeout`: a keep-alive connection with no request in progress is closed after this
///   long without a new request. A request is in progress from its headers until its response
///   body has been sent, so a long streaming response (server-sent events) is never cut.
/// - `max_connections`, `max_connections_per_source`: connections over a cap are closed at
///   once, before any TLS work; the source is the peer's IP address (IPv4-mapped IPv6
///   addresses count as their IPv4 address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeLimits {
    pub handshake_timeout: Duration,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_source: usize,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_source: DEFAULT_MAX_CONNECTIONS_PER_SOURCE,
        }
    }
}

/// A limit that makes no sense. `field` is the [`ServeLimits`] field name; binaries turn it
/// into their flag (`max_connections` → `--max-connections`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {value}: {rule}")]
pub struct LimitError {
    pub field: &'static str,
    pub value: String,
    pub rule: String,
}

impl LimitError {
    /// The field as a command-line flag: `--max-connections`.
    pub fn flag(&self) -> String {
        format!("--{}", self.field.replace('_', "-"))
    }

    /// The message with the flag instead of the field: `--max-connections 0: must be at
    /// least 1`.
    pub fn flag_message(&self) -> String {
        format!("{} {}: {}", self.flag(), self.value, self.rule)
    }
}

impl ServeLimits {
    /// Every timeout between 1 ms and [`MAX_TIMEOUT`], every cap at least 1, and the
    /// per-source cap no larger than the total.
    pub fn validate(&self) -> Result<(), LimitError> {
        for (field, d) in [
            ("handshake_timeout", self.handshake_timeout),
            ("header_timeout", self.header_timeout),
            ("body_timeout", self.body_timeout),
            ("idle_timeout", self.idle_timeout),
        ] {
            if d.is_zero() || d > MAX_TIMEOUT {
                return Err(LimitError {
                    field,
                    value: format!("{}s", d.as_secs_f64()),
                    rule: format!(
                        "must be more than 0 and at most {} seconds",
                        MAX_TIMEOUT.as_secs()
                    ),
                });
            }
        }
        for (field, n) in [
            ("max_connections", self.max_connections),
            (
                "max_connections_per_source",
                self.max_connections_per_source,
            ),
        ] {
            if n == 0 {
                return Err(LimitError {
                    field,
                    value: n.to_string(),
                    rule: "must be at least 1".into(),
                });
            }
        }
        // The semaphore's own ceiling.
        if self.max_connections > tokio::sync::Semaphore::MAX_PERMITS {
            return Err(LimitError {
                field: "max_connections",
                value: self.max_connections.to_string(),
                rule: format!("must be at most {}", tokio::sync::Semaphore::MAX_PERMITS),
            });
        }
        if self.max_connections_per_source > self.max_connections {
            return Err(LimitError {
                field: "max_connections_per_source",
                value: self.max_connections_per_source.to_string(),
                rule: format!("must not exceed the total cap ({})", self.max_connections),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(change: impl FnOnce(&mut ServeLimits), expect: Option<(&str, &str)>) {
        let mut l = ServeLimits::default();
        change(&mut l);
        match (l.validate(), expect) {
            (Ok(()), None) => {}
            (Err(e), Some((flag, needle))) => {
                assert_eq!(e.flag(), flag, "{e}");
                assert!(e.to_string().contains(needle), "{e}");
            }
            (got, want) => panic!("{l:?}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn validation() {
        check(|_| {}, None);
        check(
            |l| {
                l.max_connections = 1;
                l.max_connections_per_source = 1;
            },
            None,
        );
        check(
            |l| l.header_timeout = Duration::ZERO,
            Some(("--header-timeout", "header_timeout 0s: must be more than 0")),
        );
        check(
            |l| l.idle_timeout = Duration::from_secs(86_401),
            Some(("--idle-timeout", "at most 86400 seconds")),
        );
        check(
            |l| l.body_timeout = Duration::ZERO,
            Some(("--body-timeout", "body_timeout 0s: must be more than 0")),
        );
        check(
            |l| l.handshake_timeout = Duration::ZERO,
            Some(("--handshake-timeout", "must be more than 0")),
        );
        check(
            |l| l.max_connections = 0,
            Some(("--max-connections", "max_connections 0: must be at least 1")),
        );
        check(
            |l| l.max_connections_per_source = 0,
            Some(("--max-connections-per-source", "must be at least 1")),
        );
        check(
            |l| l.max_connections_per_source = 2000,
            Some((
                "--max-connections-per-source",
                "2000: must not exceed the total cap (1024)",
            )),
        );
    }
}

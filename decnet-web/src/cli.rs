//! The listener limits as command-line flags (feature `cli`): both binaries flatten
//! [`LimitArgs`] into their serve commands, so the flags, their environment variables, their
//! ranges and their messages are the same for the agent API, the swarm endpoint and the
//! operator API.

use std::time::Duration;

use clap::Args;

use crate::limits::{self, ServeLimits};

/// Timeouts and connection caps of each listener (the operator API and the swarm endpoint
/// count separately): slow or idle clients cannot hold connections open.
#[derive(Debug, Clone, Args)]
pub struct LimitArgs {
    /// Seconds a client has to finish the TLS handshake.
    #[arg(long, value_name = "SECS", env = "DECNET_HANDSHAKE_TIMEOUT",
          default_value_t = limits::DEFAULT_HANDSHAKE_TIMEOUT.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=limits::MAX_TIMEOUT.as_secs()))]
    pub handshake_timeout: u64,
    /// Seconds a client has to send a request's headers (from connect, or from the
    /// request's first byte on a kept-alive connection).
    #[arg(long, value_name = "SECS", env = "DECNET_HEADER_TIMEOUT",
          default_value_t = limits::DEFAULT_HEADER_TIMEOUT.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=limits::MAX_TIMEOUT.as_secs()))]
    pub header_timeout: u64,
    /// Seconds a client has to send a request's body in full, from the end of its headers.
    #[arg(long, value_name = "SECS", env = "DECNET_BODY_TIMEOUT",
          default_value_t = limits::DEFAULT_BODY_TIMEOUT.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=limits::MAX_TIMEOUT.as_secs()))]
    pub body_timeout: u64,
    /// Seconds a kept-alive connection may sit idle between requests (a streaming response,
    /// such as /api/v1/events, is not idle).
    #[arg(long, value_name = "SECS", env = "DECNET_IDLE_TIMEOUT",
          default_value_t = limits::DEFAULT_IDLE_TIMEOUT.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=limits::MAX_TIMEOUT.as_secs()))]
    pub idle_timeout: u64,
    /// Most open connections per listener; more are closed at once.
    #[arg(long, value_name = "N", env = "DECNET_MAX_CONNECTIONS",
          default_value_t = limits::DEFAULT_MAX_CONNECTIONS as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: u64,
    /// Most open connections per listener from one source IP address.
    #[arg(long, value_name = "N", env = "DECNET_MAX_CONNECTIONS_PER_SOURCE",
          default_value_t = limits::DEFAULT_MAX_CONNECTIONS_PER_SOURCE as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections_per_source: u64,
}

impl LimitArgs {
    /// The checked limits; the error names the flag, the value and the rule.
    pub fn limits(&self) -> Result<ServeLimits, String> {
        let count = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        let l = ServeLimits {
            handshake_timeout: Duration::from_secs(self.handshake_timeout),
            header_timeout: Duration::from_secs(self.header_timeout),
            body_timeout: Duration::from_secs(self.body_timeout),
            idle_timeout: Duration::from_secs(self.idle_timeout),
            max_connections: count(self.max_connections),
            max_connections_per_source: count(self.max_connections_per_source),
        };
        l.validate().map_err(|e| e.flag_message())?;
        Ok(l)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cmd {
        #[command(flatten)]
        limits: LimitArgs,
    }

    fn parse(args: &[&str]) -> Result<Result<ServeLimits, String>, clap::Error> {
        Cmd::try_parse_from(std::iter::once("serve").chain(args.iter().copied()))
            .map(|c| c.limits.limits())
    }

    #[test]
    fn defaults_are_the_library_defaults() {
        assert_eq!(parse(&[]).unwrap().unwrap(), ServeLimits::default());
    }

    #[test]
    fn flags_set_each_limit() {
        let l = parse(&[
            "--handshake-timeout=2",
            "--header-timeout=3",
            "--body-timeout=4",
            "--idle-timeout=5",
            "--max-connections=6",
            "--max-connections-per-source=6",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(l.handshake_timeout, Duration::from_secs(2));
        assert_eq!(l.header_timeout, Duration::from_secs(3));
        assert_eq!(l.body_timeout, Duration::from_secs(4));
        assert_eq!(l.idle_timeout, Duration::from_secs(5));
        assert_eq!((l.max_connections, l.max_connections_per_source), (6, 6));
    }

    #[test]
    fn bad_values_name_the_flag() {
        let e = parse(&["--body-timeout=0"]).unwrap_err().to_string();
        assert!(e.contains("--body-timeout"), "{e}");
        let e = parse(&["--max-connections=2", "--max-connections-per-source=3"])
            .unwrap()
            .unwrap_err();
        assert!(
            e.contains("--max-connections-per-source 3: must not exceed"),
            "{e}"
        );
    }
}

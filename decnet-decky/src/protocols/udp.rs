//! UDP responders and the guards that keep a decky from being a reflector: replies are
//! rate-limited per source address (a token bucket each, in a bounded table) and never larger
//! than [`MAX_AMPLIFICATION`] times the datagram they answer.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use serde_json::Value;

use super::{dns, generic, sip, snmp, tftp, ServiceCtx};
use crate::log::{Fields, Reporter};

/// A reply is at most this many times the size of the datagram it answers.
pub const MAX_AMPLIFICATION: usize = 4;
/// Replies one source may get in a burst.
pub const DEFAULT_BURST: u32 = 20;
/// Replies per second one source earns back after a burst.
pub const DEFAULT_RATE: f64 = 5.0;
/// Sources tracked at once; past it, only sources already known (or idle ones' places) get
/// replies.
pub const MAX_SOURCES: usize = 4096;

/// A token bucket per source address, in a bounded table.
#[derive(Debug)]
pub struct RateLimiter {
    burst: f64,
    rate: f64,
    max_sources: usize,
    buckets: HashMap<IpAddr, (f64, Instant)>,
}

impl RateLimiter {
    pub fn new(burst: u32, rate: f64, max_sources: usize) -> Self {
        RateLimiter {
            burst: f64::from(burst),
            rate,
            max_sources,
            buckets: HashMap::new(),
        }
    }

    fn refilled(&self, tokens: f64, last: Instant, now: Instant) -> f64 {
        let dt = now.saturating_duration_since(last).as_secs_f64();
        (tokens + dt * self.rate).min(self.burst)
    }

    /// Whether `src` may get a reply at `now` (taking a token if so).
    pub fn allow(&mut self, src: IpAddr, now: Instant) -> bool {
        if !self.buckets.contains_key(&src) && self.buckets.len() >= self.max_sources {
            // Forget sources whose buckets are full again: they lose nothing.
            let (burst, rate) = (self.burst, self.rate);
            self.buckets.retain(|_, (t, last)| {
                let dt = now.saturating_duration_since(*last).as_secs_f64();
                (*t + dt * rate) < burst
            });
            if self.buckets.len() >= self.max_sources {
                return false;
            }
        }
        let (tokens, last) = self.buckets.get(&src).copied().unwrap_or((self.burst, now));
        let tokens = self.refilled(tokens, last, now);
        let (ok, left) = if tokens >= 1.0 {
            (true, tokens - 1.0)
        } else {
            (false, tokens)
        };
        self.buckets.insert(src, (left, now));
        ok
    }

    pub fn sources(&self) -> usize {
        self.buckets.len()
    }
}

/// One UDP socket's responder: the service's state and the reply limiter.
#[derive(Debug)]
pub struct Responder {
    snmp: Option<snmp::Agent>,
    dns: Option<dns::Zone>,
    tftp: Option<tftp::Server>,
    sip: Option<sip::Pbx>,
    /// LLMNR: the decky's own name, and its address (answered for that name).
    llmnr: Option<(String, Option<std::net::Ipv4Addr>)>,
    limiter: RateLimiter,
}

impl Responder {
    /// The responder for `ctx`'s service on a socket bound to `local_ip`.
    pub fn new(ctx: &ServiceCtx, local_ip: Option<IpAddr>) -> Self {
        Self::with_limits(ctx, local_ip, DEFAULT_BURST, DEFAULT_RATE)
    }

    pub fn with_limits(ctx: &ServiceCtx, local_ip: Option<IpAddr>, burst: u32, rate: f64) -> Self {
        let snmp =
            matches!(ctx.slug.as_str(), "snmp" | "conpot").then(|| snmp::Agent::from_ctx(ctx));
        let dns = (ctx.slug == "dns").then(|| dns::Zone::from_ctx(ctx, dns::own_v4(local_ip)));
        let tftp = (ctx.slug == "tftp").then(tftp::Server::new);
        let sip = (ctx.slug == "sip").then(|| sip::Pbx::from_ctx(ctx));
        let llmnr = (ctx.service == super::Service::Llmnr).then(|| {
            let ip = match local_ip {
                Some(IpAddr::V4(ip)) => Some(ip),
                _ => None,
            };
            (ctx.hostname.clone(), ip)
        });
        Responder {
            snmp,
            dns,
            tftp,
            sip,
            llmnr,
            limiter: RateLimiter::new(burst, rate, MAX_SOURCES),
        }
    }

    /// Records `data` from `src` into `fields` (and step events on `report`) and returns the
    /// reply to send, if the service answers and the guards allow it.
    pub fn datagram(
        &mut self,
        src: SocketAddr,
        data: &[u8],
        report: &Reporter,
        fields: &mut Fields,
        now: Instant,
    ) -> Option<Vec<u8>> {
        let bound = MAX_AMPLIFICATION * data.len().max(1);
        let reply = if let Some(agent) = &self.snmp {
            snmp::datagram(agent, data, report, fields)
        } else if let Some(server) = &mut self.tftp {
            server.datagram(src, data, now, report, fields)
        } else if let Some(pbx) = &self.sip {
            sip::datagram(pbx, data, report, fields)
        } else if let Some(zone) = &self.dns {
            // Plain DNS over UDP is 512 bytes at most (EDNS could say more; the bound is less).
            dns::query(zone, data, bound.min(1232), report, fields)
        } else if let Some((hostname, ip)) = &self.llmnr {
            generic::record(data, fields);
            super::llmnr::datagram(data, hostname, *ip, fields)
        } else {
            generic::record(data, fields);
            None
        }?;
        if reply.len() > bound {
            fields.insert("reply_suppressed".into(), Value::from("amplification"));
            return None;
        }
        // A reply no larger than its request (TFTP's ACKs of DATA) cannot amplify anything; the
        // bucket is for every other reply.
        if reply.len() > data.len() && !self.limiter.allow(src.ip(), now) {
            fields.insert("reply_suppressed".into(), Value::from("rate limit"));
            return None;
        }
        fields.insert("bytes_out".into(), Value::from(reply.len()));
        Some(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([198, 51, 100, n])
    }

    #[test]
    fn a_burst_gets_at_most_the_bucket_then_the_rate() {
        let t0 = Instant::now();
        let mut l = RateLimiter::new(5, 2.0, 16);
        let granted = (0..100).filter(|_| l.allow(ip(1), t0)).count();
        assert_eq!(granted, 5);
        // Another source has its own bucket.
        assert!(l.allow(ip(2), t0));
        // Half a second earns one reply back, not more.
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!((0..10).filter(|_| l.allow(ip(1), t1)).count(), 1);
        // A long pause refills to the burst, never beyond.
        let t2 = t1 + Duration::from_secs(3600);
        assert_eq!((0..100).filter(|_| l.allow(ip(1), t2)).count(), 5);
    }

    #[test]
    fn the_table_is_bounded() {
        let t0 = Instant::now();
        let mut l = RateLimiter::new(2, 1.0, 4);
        for n in 0..4 {
            assert!(l.allow(ip(n), t0));
        }
        // Full of sources still owed tokens: a new source gets nothing.
        assert!(!l.allow(ip(9), t0));
        assert_eq!(l.sources(), 4);
        // Once they are idle (full again) they make room.
        assert!(l.allow(ip(9), t0 + Duration::from_secs(10)));
        assert!(l.sources() <= 4);
    }
}

//! The accept policy shared by the SSH and telnet logins.
//!
//! `service_config` keys:
//! - `accept`: `never` (default without a credential list) | `any` | `after:N` (refuse each
//!   source's first N attempts, accept the next) | `list` (default when credentials are given);
//! - `credentials`: an array of `user:pass` strings; `users`: the original's
//!   `"user:pass,user2:pass2"`. `*` on either side matches anything;
//! - the original's `password` (root's) and `user` / `user_password` (default user `ubuntu`).
//!
//! A listed credential is accepted under every mode except `never`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, OnceLock};

use crate::config::ServiceConfig;

/// Sources whose attempt counts `after:N` remembers (oldest forgotten first).
const MAX_SOURCES: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Never,
    Any,
    After(u32),
    List,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub mode: Mode,
    pub credentials: Vec<(String, String)>,
}

fn pair(s: &str) -> Option<(String, String)> {
    let (u, p) = s.trim().split_once(':')?;
    Some((u.to_owned(), p.to_owned()))
}

impl Policy {
    pub fn from_config(config: &ServiceConfig) -> Policy {
        let mut credentials = Vec::new();
        if let Some(serde_json::Value::Array(list)) = config.get("credentials") {
            credentials.extend(list.iter().filter_map(|v| v.as_str()).filter_map(pair));
        }
        if let Some(users) = config.string("users") {
            credentials.extend(users.split(',').filter_map(pair));
        }
        // The original's keys: root's password, and a bait user's.
        if let Some(p) = config.string("password").filter(|p| !p.is_empty()) {
            credentials.push(("root".into(), p));
        }
        if let Some(p) = config.string("user_password").filter(|p| !p.is_empty()) {
            let user = config.line("user").unwrap_or_else(|| "ubuntu".into());
            credentials.push((user, p));
        }
        let accept = config.string("accept").unwrap_or_default();
        let accept = accept.trim().to_ascii_lowercase();
        let mode = match accept.as_str() {
            "any" | "all" => Mode::Any,
            "never" | "none" => Mode::Never,
            "list" => Mode::List,
            a => match a.strip_prefix("after:").and_then(|n| n.trim().parse().ok()) {
                Some(n) => Mode::After(n),
                None if credentials.is_empty() => Mode::Never,
                None => Mode::List,
            },
        };
        Policy { mode, credentials }
    }

    fn listed(&self, user: &str, pass: &str) -> bool {
        self.credentials
            .iter()
            .any(|(u, p)| (u == "*" || u == user) && (p == "*" || p == pass))
    }

    /// Whether to let `user`/`pass` in, given how many attempts this source made before.
    pub fn decide(&self, user: &str, pass: &str, prior_attempts: u32) -> bool {
        match self.mode {
            Mode::Never => false,
            Mode::Any => true,
            Mode::List => self.listed(user, pass),
            Mode::After(n) => prior_attempts >= n || self.listed(user, pass),
        }
    }

    /// Decides and counts the attempt against `source` (per service slug).
    pub fn attempt(&self, slug: &str, source: IpAddr, user: &str, pass: &str) -> bool {
        let prior = bump(slug, source);
        self.decide(user, pass, prior)
    }
}

type Counts = HashMap<(String, IpAddr), (u32, u64)>;

/// The number of attempts `source` made before this one.
fn bump(slug: &str, source: IpAddr) -> u32 {
    static COUNTS: OnceLock<Mutex<(Counts, u64)>> = OnceLock::new();
    let lock = COUNTS.get_or_init(|| Mutex::new((HashMap::new(), 0)));
    let mut guard = lock.lock().unwrap_or_else(|e| e.into_inner());
    let (map, clock) = &mut *guard;
    *clock += 1;
    let now = *clock;
    if map.len() >= MAX_SOURCES && !map.contains_key(&(slug.to_owned(), source)) {
        if let Some(oldest) = map.iter().min_by_key(|(_, v)| v.1).map(|(k, _)| k.clone()) {
            map.remove(&oldest);
        }
    }
    let e = map.entry((slug.to_owned(), source)).or_insert((0, now));
    let prior = e.0;
    *e = (prior.saturating_add(1), now);
    prior
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(v: serde_json::Value) -> Policy {
        let serde_json::Value::Object(m) = v else {
            unreachable!()
        };
        Policy::from_config(&ServiceConfig::from_map(m))
    }

    #[test]
    fn modes_parse() {
        assert_eq!(policy(json!({})).mode, Mode::Never);
        assert_eq!(policy(json!({"accept": "any"})).mode, Mode::Any);
        assert_eq!(policy(json!({"accept": "after:3"})).mode, Mode::After(3));
        let p = policy(json!({"users": "root:toor, admin:*", "credentials": ["pi:raspberry"]}));
        assert_eq!(p.mode, Mode::List);
        assert_eq!(p.credentials.len(), 3);
        assert!(p.decide("root", "toor", 0));
        assert!(p.decide("admin", "x", 0));
        assert!(p.decide("pi", "raspberry", 0));
        assert!(!p.decide("root", "root", 9));
        let p = policy(json!({"password": "admin", "user_password": "ub"}));
        assert!(p.decide("root", "admin", 0) && p.decide("ubuntu", "ub", 0));
        assert!(!p.decide("ubuntu", "admin", 0));
        let p = policy(json!({"accept": "never", "users": "root:toor"}));
        assert!(!p.decide("root", "toor", 0));
    }

    #[test]
    fn after_n_counts_per_source() {
        let p = policy(json!({"accept": "after:2"}));
        let ip = IpAddr::from([198, 51, 100, 201]);
        assert!(!p.attempt("t-after", ip, "a", "b"));
        assert!(!p.attempt("t-after", ip, "a", "b"));
        assert!(p.attempt("t-after", ip, "a", "b"));
        assert!(!p.attempt("t-after", IpAddr::from([198, 51, 100, 202]), "a", "b"));
    }
}

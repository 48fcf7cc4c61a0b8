//! The worker state file `{"config": DecnetConfig, "compose_path": string}`, read leniently.
//!
//! Files written by the original load: legacy deckies without `host_uuid`, unknown keys, and
//! deckies that break today's rules. A decky that fails to parse or breaks a rule is *rejected*:
//! reported with the rule, kept verbatim in the file, and never acted upon until fixed. Only a
//! broken top level (not JSON, no `config`, an unusable subnet) fails the load.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::config::{DeckyConfig, DecnetConfig};
use super::validate::validate_decky;

/// A decky from a state file that cannot be acted upon, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RejectedDecky {
    /// Its `name`, when it had a string one.
    pub name: Option<String>,
    /// The rule it breaks, naming the field.
    pub reason: String,
    /// The decky exactly as it was in the file.
    #[serde(skip)]
    pub raw: Value,
}

/// A loaded worker (or unihost) state file.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerState {
    /// The config with only the deckies that may be acted upon.
    pub config: DecnetConfig,
    /// Kept for wire compatibility; DECNET-rs writes no compose file.
    pub compose_path: String,
    /// Deckies in the file that break today's rules: reported, never acted upon.
    pub rejected: Vec<RejectedDecky>,
}

/// Why a state file could not be loaded at all.
#[derive(Debug, thiserror::Error)]
pub enum StateParseError {
    #[error("state file is not valid JSON: {0}")]
    /// The file is not JSON at all.
    Json(#[source] serde_json::Error),
    #[error("state file: {0}")]
    /// The JSON lacks the state file's shape (e.g. no `config` object); the text says what.
    Shape(String),
}

impl WorkerState {
    /// A state of `config` as this process writes it: no compose path, nothing rejected.
    pub fn new(config: DecnetConfig) -> Self {
        Self {
            config,
            compose_path: String::new(),
            rejected: vec![],
        }
    }

    /// Every address a decky in this file holds, rejected ones included (when readable).
    pub fn ips_in_use(&self) -> BTreeSet<Ipv4Addr> {
        let mut ips: BTreeSet<Ipv4Addr> = self.config.deckies.iter().map(|d| d.ip).collect();
        for r in &self.rejected {
            if let Some(ip) = r.raw.get("ip").and_then(Value::as_str) {
                if let Ok(ip) = ip.parse() {
                    ips.insert(ip);
                }
            }
        }
        ips
    }
}

/// Parses a state file's text leniently (see the module docs).
pub fn parse_state(text: &str) -> Result<WorkerState, StateParseError> {
    let mut doc: Value = serde_json::from_str(text).map_err(StateParseError::Json)?;
    let compose_path = match doc.get("compose_path") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            return Err(StateParseError::Shape(
                "compose_path is not a string".into(),
            ))
        }
    };
    let config = doc
        .get_mut("config")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| StateParseError::Shape("no \"config\" object".into()))?;
    let raw_deckies = match config.insert("deckies".into(), Value::Array(vec![])) {
        Some(Value::Array(items)) => items,
        None | Some(Value::Null) => vec![],
        Some(_) => {
            return Err(StateParseError::Shape(
                "config.deckies is not a list".into(),
            ))
        }
    };
    let mut cfg: DecnetConfig = serde_json::from_value(Value::Object(config.clone()))
        .map_err(|e| StateParseError::Shape(format!("config: {e}")))?;

    let mut rejected = Vec::new();
    let mut names = BTreeSet::new();
    let mut ips = BTreeSet::new();
    for (index, raw) in raw_deckies.into_iter().enumerate() {
        let name = raw.get("name").and_then(Value::as_str).map(str::to_string);
        let label = name.clone().unwrap_or_else(|| format!("#{index}"));
        let reason = match DeckyConfig::deserialize(&raw) {
            Err(e) => Some(format!("deckies[{label}]: {e}")),
            Ok(d) => {
                let errors = validate_decky(&d, &cfg.subnet, cfg.gateway, &cfg.custom_services);
                if let Some(e) = errors.first() {
                    Some(e.to_string())
                } else if !names.insert(d.name.clone()) {
                    Some(format!("deckies[{label}].name: is used by another decky"))
                } else if !ips.insert(d.ip) {
                    Some(format!(
                        "deckies[{label}].ip: {} is used by another decky",
                        d.ip
                    ))
                } else {
                    cfg.deckies.push(d);
                    None
                }
            }
        };
        if let Some(reason) = reason {
            rejected.push(RejectedDecky { name, reason, raw });
        }
    }
    Ok(WorkerState {
        config: cfg,
        compose_path,
        rejected,
    })
}

/// Renders a state file (indent 2, like the original), rejected deckies kept verbatim.
pub fn render_state(state: &WorkerState) -> String {
    let mut config = serde_json::to_value(&state.config).unwrap_or(Value::Null);
    if let Some(Value::Array(deckies)) = config.get_mut("deckies") {
        deckies.extend(state.rejected.iter().map(|r| r.raw.clone()));
    }
    let doc = serde_json::json!({ "config": config, "compose_path": state.compose_path });
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shaped like a state file the original 1.2 wrote (see reference §1.3).
    const ORIGINAL: &str = r#"{
  "config": {
    "mode": "unihost", "interface": "eth0", "subnet": "192.168.1.0/24", "gateway": "192.168.1.1",
    "deckies": [
      {"name": "decky-01", "ip": "192.168.1.10", "services": ["ssh", "http"], "distro": "debian",
       "base_image": "debian:bookworm-slim@sha256:f9c6", "build_base": "debian:bookworm-slim@sha256:f9c6",
       "hostname": "SRV-WEB-42", "archetype": null, "service_config": {}, "nmap_os": "linux",
       "mutate_interval": null, "last_mutated": 0.0, "last_login_attempt": 0.0, "host_uuid": null},
      {"name": "decky-02", "ip": "999.1.1.1", "services": ["ssh"], "distro": "debian",
       "base_image": "debian", "hostname": "h"},
      {"name": "Decky_03", "ip": "192.168.1.12", "services": ["ssh"], "distro": "debian",
       "base_image": "debian", "hostname": "h"},
      {"name": "decky-04", "ip": "192.168.1.13", "services": ["http", "https"], "distro": "debian",
       "base_image": "debian", "hostname": "h", "some_future_key": true},
      {"name": "decky-05", "ip": "192.168.1.10", "services": ["ftp"], "distro": "debian",
       "base_image": "debian", "hostname": "h"}
    ],
    "log_file": null, "ipvlan": false, "mutate_interval": 30, "host_ip": "ignored"
  },
  "compose_path": "decnet-compose.yml"
}"#;

    /// The pre-swarm shape: no host_uuid, log_file, ipvlan or mutate_interval.
    const LEGACY: &str = r#"{"config": {"mode": "unihost", "interface": "eth0",
      "subnet": "10.0.0.0/24", "gateway": "10.0.0.1", "deckies": [{"name": "decky-01",
      "ip": "10.0.0.5", "services": ["ssh"], "distro": "debian", "base_image": "debian:bookworm-slim",
      "hostname": "SRV-DB-11"}]}, "compose_path": "decnet-compose.yml"}"#;

    #[test]
    fn original_file_loads_with_bad_deckies_reported() {
        let s = parse_state(ORIGINAL).unwrap();
        let ok: Vec<_> = s.config.deckies.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(ok, ["decky-01"]);
        let reasons: Vec<_> = s.rejected.iter().map(|r| r.reason.as_str()).collect();
        assert_eq!(reasons.len(), 4, "{reasons:?}");
        assert!(reasons[0].contains("deckies[decky-02]"), "{}", reasons[0]);
        assert!(reasons[1].contains("must match"), "{}", reasons[1]);
        assert!(reasons[2].contains("port clash"), "{}", reasons[2]);
        assert!(
            reasons[3].contains("192.168.1.10 is used by another decky"),
            "{}",
            reasons[3]
        );
        assert_eq!(s.compose_path, "decnet-compose.yml");
        assert!(s.ips_in_use().contains(&"192.168.1.13".parse().unwrap()));
    }

    #[test]
    fn legacy_file_loads() {
        let s = parse_state(LEGACY).unwrap();
        assert!(s.rejected.is_empty());
        assert_eq!(s.config.mutate_interval, Some(30));
        assert_eq!(s.config.deckies[0].host_uuid, None);
    }

    #[test]
    fn render_keeps_rejected_deckies_verbatim() {
        let s = parse_state(ORIGINAL).unwrap();
        let again = parse_state(&render_state(&s)).unwrap();
        assert_eq!(again, s);
        let text = render_state(&s);
        assert!(text.contains("999.1.1.1") && text.contains("some_future_key"));
    }

    #[test]
    fn broken_top_level_fails() {
        for bad in [
            "",
            "[]",
            "{}",
            r#"{"config": {"mode": "x"}}"#,
            r#"{"config": {"mode": "unihost", "interface": "e", "subnet": "nope", "gateway": "1.1.1.1", "deckies": []}}"#,
            r#"{"config": {"mode": "unihost", "interface": "e", "subnet": "10.0.0.0/8", "gateway": "1.1.1.1", "deckies": 3}}"#,
        ] {
            assert!(parse_state(bad).is_err(), "{bad}");
        }
    }
}

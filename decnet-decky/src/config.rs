//! Persona configuration: the service's JSON config and the decky's identity.
//!
//! `main` reads the process environment once into [`Env`]; everything else
//! takes values, so tests never touch the real environment.

use std::fmt;

use serde_json::{Map, Value};

/// Raw values from the process environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env {
    /// `DECNET_SERVICE_CONFIG`: a JSON object, may be absent.
    pub service_config: Option<String>,
    /// `HOSTNAME` (set by the composer), else the kernel's hostname.
    pub hostname: Option<String>,
    /// `DECNET_DECKY`, else `NODE_NAME` (the original's variable).
    pub decky: Option<String>,
    /// `DECNET_ARCHETYPE`: the decky's archetype slug, may be absent.
    pub archetype: Option<String>,
    /// `DECNET_OS`: the decky's OS family (`windows`, `windows_server`, …), may be absent.
    pub os: Option<String>,
}

impl Env {
    pub fn from_process() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        Env {
            service_config: var("DECNET_SERVICE_CONFIG"),
            hostname: var("HOSTNAME").or_else(|| {
                std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .ok()
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
            }),
            decky: var("DECNET_DECKY").or_else(|| var("NODE_NAME")),
            archetype: var("DECNET_ARCHETYPE"),
            os: var("DECNET_OS"),
        }
    }
}

/// The service's persona settings (`DECNET_SERVICE_CONFIG`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceConfig(Map<String, Value>);

/// `DECNET_SERVICE_CONFIG` is not a JSON object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DECNET_SERVICE_CONFIG: {}", self.0)
    }
}

impl std::error::Error for ConfigError {}

impl ServiceConfig {
    /// Parses the env value; absent or blank means "no settings".
    pub fn parse(json: Option<&str>) -> Result<Self, ConfigError> {
        let Some(json) = json.filter(|j| !j.trim().is_empty()) else {
            return Ok(Self::default());
        };
        match serde_json::from_str::<Value>(json) {
            Ok(Value::Object(m)) => Ok(ServiceConfig(m)),
            Ok(Value::Null) => Ok(Self::default()),
            Ok(other) => Err(ConfigError(format!(
                "must be a JSON object, got {}",
                kind(&other)
            ))),
            Err(e) => Err(ConfigError(format!("invalid JSON: {e}"))),
        }
    }

    pub fn from_map(m: Map<String, Value>) -> Self {
        ServiceConfig(m)
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    /// A non-empty setting as text (numbers and booleans are accepted).
    pub fn string(&self, key: &str) -> Option<String> {
        match self.get(key)? {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// A setting safe to put on one protocol line (control characters dropped).
    pub fn line(&self, key: &str) -> Option<String> {
        self.string(key)
            .map(|s| one_line(&s))
            .filter(|s| !s.is_empty())
    }

    /// A setting that must be an integer in range (given as number or text).
    pub fn u16(&self, key: &str) -> Option<u16> {
        match self.get(key)? {
            Value::Number(n) => n.as_u64().and_then(|v| u16::try_from(v).ok()),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Drops control characters so a value cannot inject protocol lines.
pub fn one_line(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim()
        .to_owned()
}

/// A hostname safe for banners: letters, digits, `.`, `-`, `_`; else `localhost`.
pub fn clean_hostname(raw: Option<&str>) -> String {
    let h: String = raw
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .take(253)
        .collect();
    if h.is_empty() {
        "localhost".to_owned()
    } else {
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_objects_and_absence() {
        assert_eq!(ServiceConfig::parse(None), Ok(ServiceConfig::default()));
        assert_eq!(
            ServiceConfig::parse(Some("  ")),
            Ok(ServiceConfig::default())
        );
        assert_eq!(
            ServiceConfig::parse(Some("null")),
            Ok(ServiceConfig::default())
        );
        let c = ServiceConfig::parse(Some(
            r#"{"banner":"X\r\n250 hi","response_code":"404","n":7,"e":""}"#,
        ))
        .expect("object");
        assert_eq!(c.line("banner").as_deref(), Some("X250 hi"));
        assert_eq!(c.u16("response_code"), Some(404));
        assert_eq!(c.u16("n"), Some(7));
        assert_eq!(c.string("n").as_deref(), Some("7"));
        assert_eq!(c.string("e"), None);
        assert_eq!(c.string("missing"), None);
    }

    #[test]
    fn parse_rejects_non_objects() {
        let e = ServiceConfig::parse(Some("[1]")).expect_err("array");
        assert!(e
            .to_string()
            .contains("must be a JSON object, got an array"));
        let e = ServiceConfig::parse(Some("{nope")).expect_err("bad json");
        assert!(e
            .to_string()
            .starts_with("DECNET_SERVICE_CONFIG: invalid JSON"));
    }

    #[test]
    fn hostnames_are_cleaned() {
        assert_eq!(clean_hostname(Some("web-01.corp")), "web-01.corp");
        assert_eq!(clean_hostname(Some("evil\r\nhost")), "evilhost");
        assert_eq!(clean_hostname(Some("")), "localhost");
        assert_eq!(clean_hostname(None), "localhost");
    }
}

//! The original's deployment INI (`decnet deploy --config fleet.ini`, the API's `ini_content`)
//! read into a [`FleetSpec`], with an error naming the section, line, key and rule for every
//! bad input (the original ignored unknown keys, orphan sub-sections and bad port tokens).
//!
//! - `[general]`: `net`/`subnet`, `gw`/`gateway`, `interface`, `driver`, `mutate_interval`.
//! - `[custom-<name>]`: an operator's own service: `binary`/`image`, `exec`, `ports`.
//! - `[<decky>.<service>]`: persona config for that service of the decky, or of every decky of
//!   the group `<decky>-…`.
//! - any other section is a decky (or a group with `amount`): `ip`, `services`, `archetype`,
//!   `nmap_os`, `mutate_interval`, `amount`.

use std::collections::BTreeSet;

use serde_json::Value;

use super::ini::{parse_ini, IniEntry, IniSection};
use super::spec::{DeckySpec, FleetSpec, GeneralSpec, MAX_AMOUNT};
use super::FleetError;
use crate::model::{parse_ipv4, CustomService, FieldError, Subnet};
use crate::registry::{self, OsFamily};

const GENERAL_KEYS: &str = "net, gw, interface, driver, mutate_interval";
const DECKY_KEYS: &str = "ip, services, archetype, nmap_os, mutate_interval, amount";
const CUSTOM_KEYS: &str = "binary, exec, ports";

fn field(section: &IniSection, entry: &IniEntry) -> String {
    format!("[{}] {} (line {})", section.name, entry.key, entry.line)
}

fn value<'a>(section: &IniSection, entry: &'a IniEntry) -> Result<&'a str, FieldError> {
    match entry.value.as_deref().map(str::trim) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(FieldError::new(field(section, entry), "", "needs a value")),
    }
}

fn unknown_key(section: &IniSection, entry: &IniEntry, known: &str) -> FieldError {
    FieldError::new(
        format!("[{}] (line {})", section.name, entry.line),
        &entry.key,
        format!("is not a known key here (known: {known})"),
    )
}

fn parse_u32(section: &IniSection, entry: &IniEntry, rule: &str) -> Result<u32, FieldError> {
    let v = value(section, entry)?;
    v.parse::<u32>()
        .map_err(|_| FieldError::new(field(section, entry), v, rule))
}

fn parse_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn parse_general(section: &IniSection) -> Result<GeneralSpec, FieldError> {
    let mut g = GeneralSpec::default();
    for e in &section.entries {
        let f = field(section, e);
        match e.key.as_str() {
            "net" | "subnet" => g.subnet = Some(Subnet::parse(&f, value(section, e)?)?),
            "gw" | "gateway" => g.gateway = Some(parse_ipv4(&f, value(section, e)?)?),
            "interface" => g.interface = Some(value(section, e)?.to_string()),
            "driver" => {
                let v = value(section, e)?;
                g.driver = Some(
                    v.parse()
                        .map_err(|err: FieldError| FieldError { field: f, ..err })?,
                );
            }
            "mutate_interval" | "mutate-interval" => {
                g.mutate_interval = Some(parse_u32(
                    section,
                    e,
                    "must be a whole number of minutes (0 = never)",
                )?)
            }
            _ => return Err(unknown_key(section, e, GENERAL_KEYS)),
        }
    }
    Ok(g)
}

fn parse_custom(section: &IniSection, name: &str) -> Result<CustomService, FieldError> {
    let at = format!("[{}] (line {})", section.name, section.line);
    let slug_ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !slug_ok {
        return Err(FieldError::new(
            at,
            name,
            "custom service names use a-z, 0-9, '_' and '-'",
        ));
    }
    if registry::service(name).is_some() {
        return Err(FieldError::new(at, name, "is a built-in service name"));
    }
    let mut c = CustomService {
        name: name.to_string(),
        image: String::new(),
        exec_cmd: String::new(),
        ports: vec![],
    };
    for e in &section.entries {
        match e.key.as_str() {
            "binary" | "image" => c.image = value(section, e)?.to_string(),
            "exec" | "exec_cmd" => {
                c.exec_cmd = e.value.clone().unwrap_or_default().trim().to_string()
            }
            "ports" => {
                for token in parse_list(value(section, e)?) {
                    let port = token
                        .parse::<u16>()
                        .ok()
                        .filter(|p| *p > 0)
                        .ok_or_else(|| {
                            FieldError::new(
                                field(section, e),
                                &token,
                                "is not a port number (1-65535)",
                            )
                        })?;
                    c.ports.push(port);
                }
            }
            _ => return Err(unknown_key(section, e, CUSTOM_KEYS)),
        }
    }
    if c.image.is_empty() {
        return Err(FieldError::new(at, "", "needs binary = <local image>"));
    }
    Ok(c)
}

fn parse_decky(section: &IniSection) -> Result<DeckySpec, FieldError> {
    let mut d = DeckySpec {
        name: section.name.clone(),
        origin: Some(format!("[{}] (line {})", section.name, section.line)),
        ..Default::default()
    };
    for e in &section.entries {
        let f = field(section, e);
        match e.key.as_str() {
            "ip" => d.ip = Some(parse_ipv4(&f, value(section, e)?)?),
            "services" => {
                let list = parse_list(value(section, e)?);
                if list.is_empty() {
                    return Err(FieldError::new(f, "", "must list at least one service"));
                }
                d.services = Some(list);
            }
            "archetype" => d.archetype = Some(value(section, e)?.to_string()),
            "nmap_os" | "nmap-os" => {
                let v = value(section, e)?;
                d.nmap_os = Some(
                    v.parse::<OsFamily>()
                        .map_err(|err| FieldError::new(f, v, err.to_string()))?,
                );
            }
            "mutate_interval" | "mutate-interval" => {
                d.mutate_interval = Some(parse_u32(
                    section,
                    e,
                    "must be a whole number of minutes (0 = never)",
                )?)
            }
            "amount" => {
                let n = parse_u32(section, e, "must be a positive integer")?;
                if n == 0 {
                    return Err(FieldError::new(f, "0", "must be a positive integer"));
                }
                if n > MAX_AMOUNT {
                    return Err(FieldError::new(
                        f,
                        &n.to_string(),
                        format!("exceeds the maximum of {MAX_AMOUNT}"),
                    ));
                }
                d.amount = Some(n);
            }
            _ => return Err(unknown_key(section, e, DECKY_KEYS)),
        }
    }
    if let (Some(n), Some(ip)) = (d.amount, d.ip) {
        if n > 1 {
            let line = section.get("ip").map_or(section.line, |e| e.line);
            return Err(FieldError::new(
                format!("[{}] ip (line {line})", section.name),
                &ip.to_string(),
                "cannot be combined with amount > 1 (each decky needs its own address)",
            ));
        }
    }
    Ok(d)
}

/// Reads a deployment INI into a fleet spec.
///
/// ```
/// use decnet_core::fleet::parse_fleet_ini;
///
/// let spec = parse_fleet_ini(
///     "[general]\n\
///      subnet = 192.168.1.0/24\n\
///      gateway = 192.168.1.1\n\
///      \n\
///      [web]\n\
///      services = http, ssh\n\
///      amount = 3\n",
/// )
/// .unwrap();
/// assert_eq!(spec.general.subnet.unwrap().to_string(), "192.168.1.0/24");
/// assert_eq!(spec.deckies[0].name, "web");
/// assert_eq!(spec.deckies[0].amount, Some(3));
///
/// // Errors name the section, the key, its line and the rule.
/// let err = parse_fleet_ini("[web]\nsevrices = ssh\n").unwrap_err();
/// assert!(err.to_string().contains("sevrices"), "{err}");
/// ```
pub fn parse_fleet_ini(text: &str) -> Result<FleetSpec, FleetError> {
    let doc = parse_ini(text)?;
    let mut spec = FleetSpec::default();

    // Custom services first: sub-sections may name them.
    for s in &doc.sections {
        if let Some(name) = s.name.strip_prefix("custom-") {
            spec.custom_services.push(parse_custom(s, name)?);
        }
    }
    let is_service = |svc: &str| {
        registry::service(svc).is_some() || spec.custom_services.iter().any(|c| c.name == svc)
    };

    let mut subsections = Vec::new();
    for s in &doc.sections {
        if s.name == "general" {
            spec.general = parse_general(s)?;
        } else if s.name.starts_with("custom-") {
            continue;
        } else if let Some((target, svc)) = s.name.rsplit_once('.') {
            if !is_service(svc) {
                return Err(FieldError::new(
                    format!("[{}] (line {})", s.name, s.line),
                    svc,
                    "is not a known service: sub-sections are [<decky>.<service>], and decky names have no dots",
                )
                .into());
            }
            subsections.push((s, target, svc));
        } else {
            spec.deckies.push(parse_decky(s)?);
        }
    }

    // Pass 2: `[X.svc]` configures decky X, or every decky of the group `X-…`.
    for (s, target, svc) in subsections {
        let values: serde_json::Map<String, Value> = s
            .entries
            .iter()
            .map(|e| {
                (
                    e.key.clone(),
                    e.value.clone().map_or(Value::Null, Value::String),
                )
            })
            .collect();
        let prefix = format!("{target}-");
        let mut matched = BTreeSet::new();
        for (i, d) in spec.deckies.iter_mut().enumerate() {
            if d.name == target || d.name.starts_with(&prefix) {
                d.service_config
                    .entry(svc.to_string())
                    .or_default()
                    .extend(values.clone());
                matched.insert(i);
            }
        }
        if matched.is_empty() {
            return Err(FieldError::new(
                format!("[{}] (line {})", s.name, s.line),
                target,
                "matches no decky section",
            )
            .into());
        }
    }
    Ok(spec)
}

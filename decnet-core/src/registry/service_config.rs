//! Per-service persona settings (`service_config.<slug>` of a decky): the schema of each
//! service and the coercion of raw values into typed JSON.
//!
//! The original passed INI sub-section values through as raw strings, so `[d.rdp] nla=false`
//! *enabled* NLA (a non-empty string is truthy) and misspelt keys were silently ignored.
//! [`validate_service_config`] runs every value, from any source, through its field's type and
//! rejects keys the service does not know.

use serde_json::{Map, Value};

/// The type of a persona setting, and so how a raw value is coerced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "type", content = "choices", rename_all = "snake_case")]
pub enum FieldKind {
    /// One line of text. Numbers and booleans are turned into their text.
    String,
    /// Like `String`, but never echoed back in errors or listings (passwords, keys).
    Secret,
    /// A signed 64-bit integer, from a JSON number or decimal text.
    Int,
    /// `true`/`1`/`yes`/`on` or `false`/`0`/`no`/`off` (ASCII case ignored), or a JSON bool.
    Bool,
    /// Free text, possibly several lines, kept verbatim (the original's `b64:` prefix is not
    /// decoded).
    Text,
    /// Exactly one of the listed values.
    Enum(&'static [&'static str]),
    /// A non-empty set of the listed values: a JSON list or comma-separated text; duplicates
    /// are dropped, first occurrence kept.
    MultiEnum(&'static [&'static str]),
    /// Any JSON value; text is parsed as JSON.
    Json,
}

/// One persona setting a service accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ConfigField {
    /// The key under `service_config.<slug>` (INI: the key of the `[decky.slug]` sub-section).
    pub key: &'static str,
    /// Its type.
    pub kind: FieldKind,
    /// One line for operators.
    pub help: &'static str,
}

const fn field(key: &'static str, kind: FieldKind, help: &'static str) -> ConfigField {
    ConfigField { key, kind, help }
}

// ---- schemas -------------------------------------------------------------------------------

pub(crate) const DNS: &[ConfigField] = &[
    field(
        "zone_mode",
        FieldKind::Enum(&["auth", "recursive", "open"]),
        "auth: authoritative only; recursive: RA flag set, NXDOMAIN out of zone; open: answers everything (amplification bait). Default auth",
    ),
    field(
        "domain",
        FieldKind::String,
        "authoritative zone name (e.g. corp.local); empty derives one from the decky name",
    ),
    field(
        "bind_version",
        FieldKind::String,
        "answer to version.bind CHAOS TXT queries (default 9.11.4-P2-RedHat-9.11.4-26.P2.el7_9.10)",
    ),
    field(
        "nsid",
        FieldKind::String,
        "EDNS NSID string; empty derives one from the decky's identity",
    ),
    field(
        "extra_records",
        FieldKind::Text,
        "extra zone records, one per line: <name> <TYPE> <value>",
    ),
    field(
        "real_recursive",
        FieldKind::Bool,
        "forward out-of-zone queries to the upstream resolver (rate-limited)",
    ),
    field(
        "upstream",
        FieldKind::String,
        "upstream resolver as host:port (default 8.8.8.8:53)",
    ),
    field(
        "forward_budget",
        FieldKind::Int,
        "queries forwarded upstream per window (default 50)",
    ),
    field(
        "forward_window",
        FieldKind::String,
        "length of the forwarding window in seconds, decimal (default 1.0)",
    ),
    field(
        "state_path",
        FieldKind::String,
        "in-container path where the resolver keeps its state",
    ),
];

const FAKE_APPS: &[&str] = &[
    "none",
    "apache",
    "nginx",
    "iis",
    "owa",
    "wordpress",
    "phpmyadmin",
    "jenkins",
    "tomcat",
    "router",
    "nas",
    "s7-hmi",
];

pub(crate) const HTTP: &[ConfigField] = &[
    field(
        "server_header",
        FieldKind::String,
        "value of the Server: response header (e.g. Apache/2.4.41 (Ubuntu))",
    ),
    field(
        "response_code",
        FieldKind::Int,
        "status code of the default response (default 200)",
    ),
    field(
        "fake_app",
        FieldKind::Enum(FAKE_APPS),
        "web persona: routes, login pages, headers and 404s of the product (default none: Apache, or nginx/IIS after server_header)",
    ),
    field(
        "extra_headers",
        FieldKind::Json,
        "extra response headers as a JSON object, e.g. {\"X-Powered-By\": \"PHP/7.4.3\"}",
    ),
    field(
        "custom_body",
        FieldKind::Text,
        "body of the default response",
    ),
    field(
        "http_versions",
        FieldKind::MultiEnum(&["http/1.1", "http/2"]),
        "protocol versions advertised (default http/1.1); HTTP/3 needs the https service",
    ),
    field(
        "files",
        FieldKind::String,
        "host directory served read-only as the site's files",
    ),
];

pub(crate) const HTTPS: &[ConfigField] = &[
    field(
        "server_header",
        FieldKind::String,
        "value of the Server: response header (e.g. nginx/1.18.0)",
    ),
    field(
        "response_code",
        FieldKind::Int,
        "status code of the default response (default 200)",
    ),
    field(
        "fake_app",
        FieldKind::Enum(FAKE_APPS),
        "web persona: routes, login pages, headers and 404s of the product (default none: Apache, or nginx/IIS after server_header)",
    ),
    field(
        "extra_headers",
        FieldKind::Json,
        "extra response headers as a JSON object, e.g. {\"X-Powered-By\": \"PHP/7.4.3\"}",
    ),
    field(
        "custom_body",
        FieldKind::Text,
        "body of the default response",
    ),
    field(
        "http_versions",
        FieldKind::MultiEnum(&["http/1.1", "http/2", "http/3"]),
        "protocol versions advertised (default http/1.1); http/3 also answers QUIC on 443/udp",
    ),
    field(
        "files",
        FieldKind::String,
        "host directory served read-only as the site's files",
    ),
    field(
        "tls_cn",
        FieldKind::String,
        "common name of the self-signed certificate made when no cert/key is given",
    ),
    field("tls_cert", FieldKind::Text, "certificate chain (PEM)"),
    field(
        "tls_key",
        FieldKind::Secret,
        "private key of the certificate (PEM)",
    ),
];

pub(crate) const IMAP: &[ConfigField] = &[
    field(
        "banner",
        FieldKind::String,
        "greeting after \"* OK\" (e.g. Dovecot ready.)",
    ),
    field(
        "email_seed",
        FieldKind::String,
        "host directory of bait mails mounted read-only into the mailbox",
    ),
];

pub(crate) const POP3: &[ConfigField] = &[
    field(
        "banner",
        FieldKind::String,
        "greeting after \"+OK\" (e.g. Dovecot ready.)",
    ),
    field(
        "email_seed",
        FieldKind::String,
        "host directory of bait mails mounted read-only into the mailbox",
    ),
];

pub(crate) const MYSQL: &[ConfigField] = &[field(
    "version",
    FieldKind::String,
    "server version in the handshake (e.g. 5.7.38-log)",
)];

pub(crate) const MONGODB: &[ConfigField] = &[field(
    "version",
    FieldKind::String,
    "server version in hello/buildInfo/serverStatus (e.g. 4.4.25); sets maxWireVersion (default 6.0.12)",
)];

pub(crate) const MQTT: &[ConfigField] = &[field(
    "accept",
    FieldKind::Enum(&["never", "anonymous", "any"]),
    "who CONNECT lets in: never (default: bad username or password / not authorized), anonymous (clients without a username), any",
)];

pub(crate) const CONPOT: &[ConfigField] = &[
    field(
        "vendor",
        FieldKind::String,
        "Modbus device identification VendorName (default Siemens)",
    ),
    field(
        "product_code",
        FieldKind::String,
        "Modbus device identification ProductCode (default SIMATIC S7-200)",
    ),
    field(
        "revision",
        FieldKind::String,
        "Modbus device identification MajorMinorRevision (default V2.3)",
    ),
    field(
        "community",
        FieldKind::Secret,
        "SNMP read community (default public)",
    ),
    field(
        "sys_descr",
        FieldKind::String,
        "SNMP sysDescr.0 (default Siemens, SIMATIC, S7-200)",
    ),
];

pub(crate) const SIP: &[ConfigField] = &[
    field(
        "server",
        FieldKind::String,
        "Server header of every answer (default Asterisk PBX 18.12.1)",
    ),
    field(
        "realm",
        FieldKind::String,
        "realm of the digest challenge (default asterisk)",
    ),
];

pub(crate) const SNMP: &[ConfigField] = &[
    field(
        "community",
        FieldKind::Secret,
        "the read community the agent answers (default public); other communities get silence",
    ),
    field(
        "sys_descr",
        FieldKind::String,
        "sysDescr.0 (e.g. Cisco IOS Software, C2960 Software ...; default a Linux host's)",
    ),
    field(
        "sys_object_id",
        FieldKind::String,
        "sysObjectID.0 as a dotted OID (default net-snmp's 1.3.6.1.4.1.8072.3.2.10)",
    ),
    field("sys_contact", FieldKind::String, "sysContact.0"),
    field("sys_location", FieldKind::String, "sysLocation.0"),
];

pub(crate) const POSTGRES: &[ConfigField] = &[
    field(
        "version",
        FieldKind::String,
        "server version (e.g. 14.5); its major version shapes the errors nmap reads (default 15.5)",
    ),
    field(
        "auth_method",
        FieldKind::Enum(&["md5", "password", "scram-sha-256"]),
        "authentication the server asks for: md5 (default), password (cleartext) or scram-sha-256",
    ),
    field(
        "ssl",
        FieldKind::Bool,
        "accept SSLRequest ('S', then TLS with a self-signed certificate); default refused ('N')",
    ),
];

pub(crate) const REDIS: &[ConfigField] = &[
    field(
        "version",
        FieldKind::String,
        "redis_version reported by INFO (e.g. 6.2.6)",
    ),
    field(
        "os_string",
        FieldKind::String,
        "os reported by INFO (e.g. Linux 5.15.0-91-generic x86_64)",
    ),
    field(
        "requirepass",
        FieldKind::Bool,
        "answer every command with NOAUTH until an AUTH (which always fails); default: an open server",
    ),
];

/// The identity a Windows service tells NTLM clients (the challenge's target info) and
/// scanners; shared by smb, rdp, mssql and ldap.
macro_rules! windows_identity {
    () => {
        [
            field(
                "domain",
                FieldKind::String,
                "DNS domain the host is joined to (default corp.local); the NetBIOS domain is its first label",
            ),
            field(
                "netbios_domain",
                FieldKind::String,
                "NetBIOS domain name (default: the domain's first label, upper-cased)",
            ),
            field(
                "os_version",
                FieldKind::String,
                "Windows version major.minor.build in the NTLM challenge (default 10.0.14393)",
            ),
        ]
    };
}

pub(crate) const RDP: &[ConfigField] = &{
    let [a, b, c] = windows_identity!();
    [
        field(
            "nla",
            FieldKind::Bool,
            "require Network Level Authentication and capture the CredSSP/NTLM exchange",
        ),
        a,
        b,
        c,
    ]
};

pub(crate) const SMB: &[ConfigField] = &{
    let [a, b, c] = windows_identity!();
    [
        a,
        b,
        c,
        field(
            "signing_required",
            FieldKind::Bool,
            "SMB2 security mode says signing is required, as on domain controllers (default false)",
        ),
        field(
            "smb1",
            FieldKind::Bool,
            "answer SMB1-only clients (default: true for builds before 16299, as Windows ships)",
        ),
        field(
            "native_os",
            FieldKind::String,
            "SMB1 native OS string (default from os_version, e.g. Windows Server 2016 Standard 14393)",
        ),
    ]
};

pub(crate) const MSSQL: &[ConfigField] = &{
    let [a, b, c] = windows_identity!();
    [
        field(
            "version",
            FieldKind::String,
            "SQL Server version in PRELOGIN, major.minor.build[.sub] (default 15.0.2000.5, 2019 RTM)",
        ),
        a,
        b,
        c,
    ]
};

pub(crate) const LDAP: &[ConfigField] = &windows_identity!();

const MTAS: &[&str] = &["postfix", "exim", "sendmail"];

pub(crate) const SMTP: &[ConfigField] = &[
    field(
        "banner",
        FieldKind::String,
        "greeting after \"220 \" (e.g. mail.corp.local ESMTP Postfix)",
    ),
    field(
        "mta",
        FieldKind::Enum(MTAS),
        "MTA persona: shapes the EHLO capabilities and error wording (default postfix)",
    ),
];

pub(crate) const SMTP_RELAY: &[ConfigField] = &[
    field(
        "banner",
        FieldKind::String,
        "greeting after \"220 \" (e.g. mail.corp.local ESMTP Postfix)",
    ),
    field(
        "mta",
        FieldKind::Enum(MTAS),
        "MTA persona: shapes the EHLO capabilities and error wording (default postfix)",
    ),
    field(
        "upstream_host",
        FieldKind::String,
        "real relay that probe mails are forwarded to (host side); empty disables forwarding",
    ),
    field(
        "upstream_port",
        FieldKind::Int,
        "port of the upstream relay (default 25)",
    ),
    field(
        "upstream_user",
        FieldKind::String,
        "AUTH user name at the upstream relay",
    ),
    field(
        "upstream_pass",
        FieldKind::Secret,
        "AUTH password at the upstream relay",
    ),
    field(
        "upstream_sender",
        FieldKind::String,
        "envelope MAIL FROM used upstream (an address allowed to send, so SPF passes)",
    ),
    field(
        "probe_limit",
        FieldKind::Int,
        "mails per source IP actually delivered upstream; the rest are quarantined (default 1)",
    ),
];

pub(crate) const SSH: &[ConfigField] = &[
    field(
        "banner",
        FieldKind::String,
        "identification string sent first (e.g. SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.6)",
    ),
    field(
        "password",
        FieldKind::Secret,
        "root password the bait accepts (none by default: see accept)",
    ),
    field(
        "user",
        FieldKind::String,
        "unprivileged bait user whose user_password is accepted (default ubuntu)",
    ),
    field(
        "user_password",
        FieldKind::Secret,
        "password of the bait user (none by default: see accept)",
    ),
    field(
        "hostname",
        FieldKind::String,
        "host name shown in the shell prompt (cosmetic)",
    ),
    field(
        "accept",
        FieldKind::String,
        "login policy: never (default without credentials), any, after:N (each source's N+1th attempt), list (default with credentials)",
    ),
    field(
        "users",
        FieldKind::Secret,
        "credentials accepted, the original's form: user:pass,user2:pass2 (* matches anything)",
    ),
    field(
        "credentials",
        FieldKind::Json,
        "credentials accepted, a JSON list of \"user:pass\" texts (* matches anything)",
    ),
];

pub(crate) const TELNET: &[ConfigField] = &[
    field(
        "banner",
        FieldKind::String,
        "text shown before the login: prompt (e.g. Ubuntu 22.04.3 LTS)",
    ),
    field(
        "password",
        FieldKind::Secret,
        "root password the bait accepts (none by default: see accept)",
    ),
    field(
        "user",
        FieldKind::String,
        "unprivileged bait user whose user_password is accepted (default ubuntu)",
    ),
    field(
        "user_password",
        FieldKind::Secret,
        "password of the bait user (none by default: see accept)",
    ),
    field(
        "hostname",
        FieldKind::String,
        "host name shown in the shell prompt (cosmetic)",
    ),
    field(
        "accept",
        FieldKind::String,
        "login policy: never (default without credentials), any, after:N (each source's N+1th attempt), list (default with credentials)",
    ),
    field(
        "users",
        FieldKind::Secret,
        "credentials accepted, the original's form: user:pass,user2:pass2 (* matches anything)",
    ),
    field(
        "credentials",
        FieldKind::Json,
        "credentials accepted, a JSON list of \"user:pass\" texts (* matches anything)",
    ),
];

pub(crate) const FTP: &[ConfigField] = &[field(
    "banner",
    FieldKind::String,
    "greeting after \"220 \" (e.g. (vsFTPd 3.0.3))",
)];

pub(crate) const DOCKER_API: &[ConfigField] = &[
    field(
        "server_header",
        FieldKind::String,
        "value of the Server: response header (e.g. Docker/24.0.7 (linux))",
    ),
    field(
        "version",
        FieldKind::String,
        "Docker Engine version reported (default 20.10.24)",
    ),
    field(
        "tls_cn",
        FieldKind::String,
        "common name of the daemon certificate on 2376 (default the hostname)",
    ),
];

pub(crate) const K8S: &[ConfigField] = &[
    field(
        "server_header",
        FieldKind::String,
        "value of the Server: response header, if any",
    ),
    field(
        "version",
        FieldKind::String,
        "kube-apiserver gitVersion reported (default v1.28.4)",
    ),
    field(
        "tls_cn",
        FieldKind::String,
        "common name of the apiserver certificate on 6443 (default kube-apiserver)",
    ),
];

pub(crate) const ELASTICSEARCH: &[ConfigField] = &[
    field(
        "server_header",
        FieldKind::String,
        "value of the Server: response header, if any",
    ),
    field(
        "version",
        FieldKind::String,
        "Elasticsearch version number reported (default 7.10.2)",
    ),
    field(
        "cluster_name",
        FieldKind::String,
        "cluster_name reported by / and _cluster/health (default elasticsearch)",
    ),
];

/// A service with no persona settings.
pub(crate) const NONE: &[ConfigField] = &[];

// ---- validation ----------------------------------------------------------------------------

/// Why a `service_config` entry was refused. Messages name the service, the key, the value
/// (secrets are never echoed) and the rule.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ServiceConfigError {
    /// The section names no service of the registry.
    #[error("service_config.{service}: unknown service {service:?}")]
    UnknownService {
        /// The slug as given.
        service: String,
    },
    /// The service has no setting of that name.
    #[error("service_config.{service}.{key}: unknown key ({})", known_keys(known))]
    UnknownKey {
        /// The service slug.
        service: &'static str,
        /// The key as given.
        key: String,
        /// The keys the service accepts, in schema order.
        known: Vec<&'static str>,
    },
    /// The value does not fit the setting's type.
    #[error("service_config.{service}.{key}: {value} {rule}")]
    Invalid {
        /// The service slug.
        service: &'static str,
        /// The setting.
        key: &'static str,
        /// The value as JSON (shortened; `<secret>` for secrets).
        value: String,
        /// The rule it broke, e.g. `is not a boolean (use true/false)`.
        rule: String,
    },
}

fn known_keys(known: &[&str]) -> String {
    if known.is_empty() {
        "the service takes no settings".to_owned()
    } else {
        format!("known: {}", known.join(", "))
    }
}

/// The schema of a service, `None` for an unknown slug.
pub fn service_config_schema(slug: &str) -> Option<&'static [ConfigField]> {
    super::services::service(slug).map(|s| s.config)
}

/// Checks and coerces one service's raw settings (from the API, the CLI or an INI
/// sub-section) into typed JSON.
///
/// `null` and `""` values are dropped (an INI `key=` means "unset"); any other value is
/// coerced by its field's [`FieldKind`]. Unknown keys are refused, also for services that
/// take no settings at all (only an empty map is valid for those). The first error in key
/// order is returned.
pub fn validate_service_config(
    slug: &str,
    raw: &Map<String, Value>,
) -> Result<Map<String, Value>, ServiceConfigError> {
    let spec =
        super::services::service(slug).ok_or_else(|| ServiceConfigError::UnknownService {
            service: slug.to_owned(),
        })?;
    let mut out = Map::new();
    for (key, value) in raw {
        let Some(field) = spec.config.iter().find(|f| f.key == key.as_str()) else {
            return Err(ServiceConfigError::UnknownKey {
                service: spec.slug,
                key: key.clone(),
                known: spec.config.iter().map(|f| f.key).collect(),
            });
        };
        if value.is_null() || value.as_str() == Some("") {
            continue;
        }
        let coerced = coerce(field.kind, value).map_err(|rule| ServiceConfigError::Invalid {
            service: spec.slug,
            key: field.key,
            value: show_value(field.kind, value),
            rule,
        })?;
        out.insert(field.key.to_owned(), coerced);
    }
    Ok(out)
}

/// A value for an error message: JSON, shortened, or `<secret>`.
fn show_value(kind: FieldKind, value: &Value) -> String {
    const MAX_CHARS: usize = 60;
    if kind == FieldKind::Secret {
        return "<secret>".to_owned();
    }
    let text = value.to_string();
    if text.chars().count() <= MAX_CHARS {
        text
    } else {
        let mut short: String = text.chars().take(MAX_CHARS).collect();
        short.push('…');
        short
    }
}

/// Coerces one value; the error is the rule it broke.
fn coerce(kind: FieldKind, value: &Value) -> Result<Value, String> {
    match kind {
        FieldKind::String | FieldKind::Secret | FieldKind::Text => match value {
            Value::String(s) => Ok(Value::String(s.clone())),
            Value::Number(n) => Ok(Value::String(n.to_string())),
            Value::Bool(b) => Ok(Value::String(b.to_string())),
            _ => Err("is not text".to_owned()),
        },
        FieldKind::Int => coerce_int(value)
            .map(Value::from)
            .ok_or_else(|| "is not an integer".to_owned()),
        FieldKind::Bool => coerce_bool(value)
            .map(Value::Bool)
            .ok_or_else(|| "is not a boolean (use true/false)".to_owned()),
        FieldKind::Enum(choices) => match value.as_str() {
            Some(s) if choices.contains(&s) => Ok(Value::String(s.to_owned())),
            _ => Err(format!("is not one of: {}", choices.join(", "))),
        },
        FieldKind::MultiEnum(choices) => coerce_multi(choices, value).map(|items| {
            Value::Array(
                items
                    .into_iter()
                    .map(|s| Value::String(s.to_owned()))
                    .collect(),
            )
        }),
        FieldKind::Json => match value {
            Value::String(s) => serde_json::from_str(s).map_err(|e| format!("is not JSON ({e})")),
            other => Ok(other.clone()),
        },
    }
}

fn coerce_int(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn coerce_bool(value: &Value) -> Option<bool> {
    const TRUE: [&str; 4] = ["true", "1", "yes", "on"];
    const FALSE: [&str; 4] = ["false", "0", "no", "off"];
    match value {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_i64() {
            Some(1) => Some(true),
            Some(0) => Some(false),
            _ => None,
        },
        Value::String(s) => {
            let s = s.trim();
            if TRUE.iter().any(|t| t.eq_ignore_ascii_case(s)) {
                Some(true)
            } else if FALSE.iter().any(|f| f.eq_ignore_ascii_case(s)) {
                Some(false)
            } else {
                None
            }
        }
        _ => None,
    }
}

fn coerce_multi(
    choices: &'static [&'static str],
    value: &Value,
) -> Result<Vec<&'static str>, String> {
    let items: Vec<&str> = match value {
        Value::String(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect(),
        Value::Array(list) => {
            let mut items = Vec::with_capacity(list.len());
            for item in list {
                match item.as_str() {
                    Some(s) => items.push(s),
                    None => return Err("is not a list of text values".to_owned()),
                }
            }
            items
        }
        _ => return Err("is not a list (use a JSON list or a comma-separated text)".to_owned()),
    };
    let mut out: Vec<&'static str> = Vec::with_capacity(items.len());
    for item in items {
        let Some(choice) = choices.iter().find(|c| **c == item) else {
            return Err(format!(
                "has {item:?}, which is not one of: {}",
                choices.join(", ")
            ));
        };
        if !out.contains(choice) {
            out.push(*choice);
        }
    }
    if out.is_empty() {
        return Err(format!("must list at least one of: {}", choices.join(", ")));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    /// `check(slug, input, expected output)`.
    fn check(slug: &str, input: Value, expect: Value) {
        let got = validate_service_config(slug, &map(input.clone()))
            .unwrap_or_else(|e| panic!("{slug} {input}: {e}"));
        assert_eq!(Value::Object(got), expect, "{slug} {input}");
    }

    /// `check_err(slug, input, expected message)`.
    fn check_err(slug: &str, input: Value, expect: &str) {
        let err = validate_service_config(slug, &map(input.clone()))
            .expect_err(&format!("{slug} {input} should fail"));
        assert_eq!(err.to_string(), expect, "{slug} {input}");
    }

    #[test]
    fn booleans() {
        for t in ["true", "TRUE", "1", "yes", "Yes", "on", " on "] {
            check("rdp", json!({ "nla": t }), json!({ "nla": true }));
        }
        for f in ["false", "False", "0", "no", "NO", "off"] {
            check("rdp", json!({ "nla": f }), json!({ "nla": false }));
        }
        check("rdp", json!({ "nla": true }), json!({ "nla": true }));
        check("rdp", json!({ "nla": 0 }), json!({ "nla": false }));
        check_err(
            "rdp",
            json!({ "nla": "maybe" }),
            r#"service_config.rdp.nla: "maybe" is not a boolean (use true/false)"#,
        );
        check_err(
            "rdp",
            json!({ "nla": 2 }),
            "service_config.rdp.nla: 2 is not a boolean (use true/false)",
        );
        check_err(
            "dns",
            json!({ "real_recursive": [true] }),
            "service_config.dns.real_recursive: [true] is not a boolean (use true/false)",
        );
    }

    #[test]
    fn integers() {
        check(
            "http",
            json!({ "response_code": "404" }),
            json!({ "response_code": 404 }),
        );
        check(
            "http",
            json!({ "response_code": 301 }),
            json!({ "response_code": 301 }),
        );
        check(
            "smtp_relay",
            json!({ "upstream_port": " 587 " }),
            json!({ "upstream_port": 587 }),
        );
        check_err(
            "http",
            json!({ "response_code": "ok" }),
            r#"service_config.http.response_code: "ok" is not an integer"#,
        );
        check_err(
            "http",
            json!({ "response_code": 2.5 }),
            "service_config.http.response_code: 2.5 is not an integer",
        );
        check_err(
            "http",
            json!({ "response_code": true }),
            "service_config.http.response_code: true is not an integer",
        );
    }

    #[test]
    fn text_fields() {
        check(
            "mysql",
            json!({ "version": "5.7.38-log" }),
            json!({ "version": "5.7.38-log" }),
        );
        check("mysql", json!({ "version": 8 }), json!({ "version": "8" }));
        check(
            "dns",
            json!({ "extra_records": "www A 10.0.0.5\nmail TXT v=spf1 ~all" }),
            json!({ "extra_records": "www A 10.0.0.5\nmail TXT v=spf1 ~all" }),
        );
        check_err(
            "redis",
            json!({ "os_string": { "a": 1 } }),
            r#"service_config.redis.os_string: {"a":1} is not text"#,
        );
    }

    #[test]
    fn secrets_are_not_echoed() {
        check(
            "ssh",
            json!({ "password": "hunter2" }),
            json!({ "password": "hunter2" }),
        );
        check_err(
            "ssh",
            json!({ "password": ["hunter2"] }),
            "service_config.ssh.password: <secret> is not text",
        );
    }

    #[test]
    fn enums() {
        check("smtp", json!({ "mta": "exim" }), json!({ "mta": "exim" }));
        check(
            "dns",
            json!({ "zone_mode": "open" }),
            json!({ "zone_mode": "open" }),
        );
        check_err(
            "smtp_relay",
            json!({ "mta": "qmail" }),
            r#"service_config.smtp_relay.mta: "qmail" is not one of: postfix, exim, sendmail"#,
        );
        check_err(
            "smtp",
            json!({ "mta": "Postfix" }),
            r#"service_config.smtp.mta: "Postfix" is not one of: postfix, exim, sendmail"#,
        );
    }

    #[test]
    fn multi_enums() {
        check(
            "https",
            json!({ "http_versions": "http/1.1, http/3,http/1.1" }),
            json!({ "http_versions": ["http/1.1", "http/3"] }),
        );
        check(
            "https",
            json!({ "http_versions": ["http/2", "http/2", "http/1.1"] }),
            json!({ "http_versions": ["http/2", "http/1.1"] }),
        );
        check_err(
            "http",
            json!({ "http_versions": "http/1.1,http/3" }),
            r#"service_config.http.http_versions: "http/1.1,http/3" has "http/3", which is not one of: http/1.1, http/2"#,
        );
        check_err(
            "http",
            json!({ "http_versions": [] }),
            "service_config.http.http_versions: [] must list at least one of: http/1.1, http/2",
        );
        check_err(
            "http",
            json!({ "http_versions": " , " }),
            r#"service_config.http.http_versions: " , " must list at least one of: http/1.1, http/2"#,
        );
        check_err(
            "http",
            json!({ "http_versions": [2] }),
            "service_config.http.http_versions: [2] is not a list of text values",
        );
    }

    #[test]
    fn json_fields() {
        check(
            "http",
            json!({ "extra_headers": "{\"X-Powered-By\": \"PHP/7.4.3\"}" }),
            json!({ "extra_headers": { "X-Powered-By": "PHP/7.4.3" } }),
        );
        check(
            "https",
            json!({ "extra_headers": { "X-A": "1" } }),
            json!({ "extra_headers": { "X-A": "1" } }),
        );
        let err = validate_service_config(
            "http",
            &map(json!({ "extra_headers": "X-Powered-By: PHP" })),
        )
        .expect_err("raw header text is not JSON");
        assert!(
            err.to_string().starts_with(
                r#"service_config.http.extra_headers: "X-Powered-By: PHP" is not JSON ("#
            ),
            "{err}"
        );
    }

    #[test]
    fn empty_values_are_dropped() {
        check(
            "ssh",
            json!({ "user": "", "hostname": null, "banner": "SSH-2.0-OpenSSH_8.9p1" }),
            json!({ "banner": "SSH-2.0-OpenSSH_8.9p1" }),
        );
        check("vnc", json!({}), json!({}));
    }

    #[test]
    fn unknown_keys_and_services() {
        check_err(
            "http",
            json!({ "colour": "red" }),
            "service_config.http.colour: unknown key (known: server_header, response_code, \
             fake_app, extra_headers, custom_body, http_versions, files)",
        );
        check_err(
            "vnc",
            json!({ "password": "x" }),
            "service_config.vnc.password: unknown key (the service takes no settings)",
        );
        // An unknown key is refused even when its value would be dropped.
        check_err(
            "rdp",
            json!({ "nla2": "" }),
            "service_config.rdp.nla2: unknown key (known: nla, domain, netbios_domain, os_version)",
        );
        check_err(
            "gopher",
            json!({}),
            r#"service_config.gopher: unknown service "gopher""#,
        );
    }

    #[test]
    fn long_values_are_shortened() {
        let long = "x".repeat(200);
        let err = validate_service_config("rdp", &map(json!({ "nla": long })))
            .expect_err("not a boolean");
        let msg = err.to_string();
        assert!(msg.contains('…'), "{msg}");
        assert!(msg.len() < 140, "{msg}");
    }

    #[test]
    fn schemas_of_the_reference_and_the_additions() {
        let keys = |slug: &str| -> Vec<&str> {
            service_config_schema(slug)
                .expect(slug)
                .iter()
                .map(|f| f.key)
                .collect()
        };
        let cases: &[(&str, &[&str])] = &[
            (
                "dns",
                &[
                    "zone_mode",
                    "domain",
                    "bind_version",
                    "nsid",
                    "extra_records",
                    "real_recursive",
                    "upstream",
                    "forward_budget",
                    "forward_window",
                    "state_path",
                ],
            ),
            (
                "http",
                &[
                    "server_header",
                    "response_code",
                    "fake_app",
                    "extra_headers",
                    "custom_body",
                    "http_versions",
                    "files",
                ],
            ),
            (
                "https",
                &[
                    "server_header",
                    "response_code",
                    "fake_app",
                    "extra_headers",
                    "custom_body",
                    "http_versions",
                    "files",
                    "tls_cn",
                    "tls_cert",
                    "tls_key",
                ],
            ),
            ("imap", &["banner", "email_seed"]),
            ("pop3", &["banner", "email_seed"]),
            ("mysql", &["version"]),
            ("ldap", &["domain", "netbios_domain", "os_version"]),
            (
                "mssql",
                &["version", "domain", "netbios_domain", "os_version"],
            ),
            ("rdp", &["nla", "domain", "netbios_domain", "os_version"]),
            (
                "smb",
                &[
                    "domain",
                    "netbios_domain",
                    "os_version",
                    "signing_required",
                    "smb1",
                    "native_os",
                ],
            ),
            ("postgres", &["version", "auth_method", "ssl"]),
            ("mongodb", &["version"]),
            ("mqtt", &["accept"]),
            ("sip", &["server", "realm"]),
            (
                "conpot",
                &[
                    "vendor",
                    "product_code",
                    "revision",
                    "community",
                    "sys_descr",
                ],
            ),
            (
                "snmp",
                &[
                    "community",
                    "sys_descr",
                    "sys_object_id",
                    "sys_contact",
                    "sys_location",
                ],
            ),
            ("redis", &["version", "os_string", "requirepass"]),
            ("smtp", &["banner", "mta"]),
            (
                "smtp_relay",
                &[
                    "banner",
                    "mta",
                    "upstream_host",
                    "upstream_port",
                    "upstream_user",
                    "upstream_pass",
                    "upstream_sender",
                    "probe_limit",
                ],
            ),
            (
                "ssh",
                &[
                    "banner",
                    "password",
                    "user",
                    "user_password",
                    "hostname",
                    "accept",
                    "users",
                    "credentials",
                ],
            ),
            (
                "telnet",
                &[
                    "banner",
                    "password",
                    "user",
                    "user_password",
                    "hostname",
                    "accept",
                    "users",
                    "credentials",
                ],
            ),
            ("ftp", &["banner"]),
            ("docker_api", &["server_header", "version", "tls_cn"]),
            ("k8s", &["server_header", "version", "tls_cn"]),
            (
                "elasticsearch",
                &["server_header", "version", "cluster_name"],
            ),
            ("vnc", &[]),
            ("sniffer", &[]),
        ];
        for (slug, expect) in cases {
            assert_eq!(keys(slug), *expect, "{slug}");
        }
        assert_eq!(service_config_schema("gopher"), None);
    }

    #[test]
    fn schema_keys_are_unique_and_documented() {
        for svc in super::super::services::services() {
            for (i, f) in svc.config.iter().enumerate() {
                assert!(!f.help.is_empty(), "{}.{}", svc.slug, f.key);
                assert!(
                    svc.config[i + 1..].iter().all(|g| g.key != f.key),
                    "{}.{} twice",
                    svc.slug,
                    f.key
                );
            }
        }
    }

    #[test]
    fn field_kinds_serialize_with_their_choices() {
        assert_eq!(
            serde_json::to_value(FieldKind::Bool).expect("serialize"),
            json!({ "type": "bool" })
        );
        assert_eq!(
            serde_json::to_value(FieldKind::Enum(&["a", "b"])).expect("serialize"),
            json!({ "type": "enum", "choices": ["a", "b"] })
        );
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Any text either coerces to a bool or is refused; the coercion never panics and
            /// an accepted value re-validates to itself.
            #[test]
            fn bool_coercion_is_total_and_idempotent(s in ".{0,12}") {
                if let Ok(out) = validate_service_config("rdp", &map(json!({ "nla": s }))) {
                    prop_assert_eq!(validate_service_config("rdp", &out), Ok(out.clone()));
                }
            }

            #[test]
            fn multi_enum_coercion_is_idempotent(s in "[a-z/0-9., ]{0,30}") {
                if let Ok(out) = validate_service_config("https", &map(json!({ "http_versions": s }))) {
                    prop_assert_eq!(validate_service_config("https", &out), Ok(out.clone()));
                }
            }
        }
    }
}

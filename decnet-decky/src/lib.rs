//! `decnet-decky`: the one binary inside every decky container.
//!
//! * `base` — PID 1 of the base container: reaps zombies, exits 0 on
//!   SIGTERM/SIGINT ([`base`]).
//! * `serve <slug>` — a honeypot responder on the registry's ports
//!   ([`listen`] for sockets and bounds, [`protocols`] for the personas),
//!   logging one JSON event per connection or datagram to stdout ([`log`]).
//!
//! Built to run `FROM scratch`: std threads and sockets only, no DNS
//! resolution anywhere, TLS on rustls with the ring provider.

pub mod args;
pub mod base;
pub mod cloak;
pub mod config;
pub mod listen;
pub mod log;
pub mod protocols;
pub mod util;

use std::fmt;

use crate::args::ServeArgs;
use crate::config::{clean_hostname, ConfigError, Env, ServiceConfig};
use crate::protocols::{tls, Service, ServiceCtx};

/// Why `serve` could not start (before binding).
#[derive(Debug)]
pub enum SetupError {
    Config(ConfigError),
    /// `DECNET_OS` names no OS family.
    Os(decnet_core::registry::UnknownOsFamily),
    Tls(tls::TlsSetupError),
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetupError::Config(e) => e.fmt(f),
            SetupError::Os(e) => write!(f, "DECNET_OS: {e}"),
            SetupError::Tls(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SetupError {}

/// Builds the persona for `serve` from its arguments and environment,
/// including the self-signed certificate when the service needs one.
pub fn service_ctx(args: &ServeArgs, env: &Env) -> Result<ServiceCtx, SetupError> {
    let config = ServiceConfig::parse(env.service_config.as_deref()).map_err(SetupError::Config)?;
    let hostname = clean_hostname(env.hostname.as_deref());
    let decky = env
        .decky
        .as_deref()
        .map(config::one_line)
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| hostname.clone());
    let os = env
        .os
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(SetupError::Os)?;
    let archetype = env.archetype.as_deref().map(config::one_line);
    let mut ctx = ServiceCtx::new(&args.slug, &decky, &hostname, config)
        .with_persona(archetype.as_deref(), os);
    if ctx.service == Service::Ssh {
        // Loaded (or generated) now, so its fingerprint is on stderr at start-up.
        let _ = protocols::ssh::host_key();
    }
    let ports: Vec<u16> = args.ports.iter().map(|p| p.port).collect();
    let by_config = ctx.service == Service::Postgres && protocols::postgres::ssl_enabled(&ctx);
    if ctx.service.needs_tls(&ports) || by_config {
        let cn = ctx.config.line("tls_cn");
        let alpn: &[&[u8]] = match ctx.service {
            Service::Http(_) | Service::Https => &[b"http/1.1"],
            _ => &[],
        };
        let mut persona = tls::CertPersona::for_service(&args.slug, &hostname, cn.as_deref());
        if matches!(ctx.service, Service::Ldap | Service::Rdp) && cn.is_none() {
            // Windows names its RDP and LDAPS certificates by the host's FQDN; a domain
            // controller's LDAPS one is issued by the enterprise CA (`ACME-DC01-CA`).
            let id = protocols::ntlm::Identity::from_ctx(&ctx);
            persona.cn = id.dns_computer.clone();
            if ctx.service == Service::Ldap {
                persona.issuer = Some(format!("{}-{}-CA", id.nb_domain, id.nb_computer));
            }
        }
        if ctx.service == Service::Mssql && cn.is_none() {
            // SQL Server without a configured certificate makes this one at start-up.
            persona.cn = "SSL_Self_Signed_Fallback".into();
        }
        let versions: &[&'static rustls::SupportedProtocolVersion] = match ctx.service {
            Service::Mssql => &[&rustls::version::TLS12],
            _ => rustls::DEFAULT_VERSIONS,
        };
        ctx.tls =
            Some(tls::server_config_versions(&persona, alpn, versions).map_err(SetupError::Tls)?);
    }
    Ok(ctx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::PortSpec;
    use crate::log::Proto;

    fn serve_args(slug: &str, ports: &[u16]) -> ServeArgs {
        ServeArgs {
            slug: slug.into(),
            bind: std::net::Ipv4Addr::LOCALHOST,
            ports: ports
                .iter()
                .map(|&port| PortSpec {
                    port,
                    proto: Proto::Tcp,
                })
                .collect(),
            max_conns: 1,
            timeout: None,
        }
    }

    #[test]
    fn ctx_from_env() {
        let env = Env {
            service_config: Some(r#"{"banner":"x"}"#.into()),
            hostname: Some("mail-02".into()),
            decky: Some("decky-07".into()),
            ..Env::default()
        };
        let ctx = service_ctx(&serve_args("pop3", &[110]), &env).expect("ctx");
        assert_eq!(ctx.hostname, "mail-02");
        assert_eq!(ctx.decky, "decky-07");
        assert!(ctx.tls.is_none());
        let ctx = service_ctx(&serve_args("pop3", &[110, 995]), &env).expect("ctx");
        assert!(ctx.tls.is_some());
        let ctx = service_ctx(&serve_args("ssh", &[22]), &Env::default()).expect("ctx");
        assert_eq!(ctx.hostname, "localhost");
        assert_eq!(ctx.decky, "localhost");
    }

    #[test]
    fn persona_from_env() {
        let env = Env {
            archetype: Some("windows-workstation".into()),
            os: Some("Windows".into()),
            ..Env::default()
        };
        let ctx = service_ctx(&serve_args("smb", &[445]), &env).expect("ctx");
        assert_eq!(ctx.archetype.as_deref(), Some("windows-workstation"));
        assert_eq!(ctx.os, Some(decnet_core::registry::OsFamily::Windows));
        assert_eq!(
            ctx.windows_identity().map(|w| w.os_version),
            Some((10, 0, 19045))
        );
        let env = Env {
            os: Some("amiga".into()),
            ..Env::default()
        };
        let err = service_ctx(&serve_args("smb", &[445]), &env).expect_err("unknown os");
        assert!(matches!(err, SetupError::Os(_)), "{err}");
    }

    #[test]
    fn bad_config_is_refused() {
        let env = Env {
            service_config: Some("[]".into()),
            ..Env::default()
        };
        let err = service_ctx(&serve_args("http", &[80]), &env).expect_err("bad");
        assert!(matches!(err, SetupError::Config(_)));
    }
}

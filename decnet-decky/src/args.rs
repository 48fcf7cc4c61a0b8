//! Hand-written argument parser (no clap: the binary must stay small).
//!
//! ```text
//! decnet-decky [base]
//! decnet-decky serve <slug> [--bind <ipv4>] [--port <port>[/tcp|/udp]]...
//!                    [--max-conns <n>] [--timeout <secs>]
//! decnet-decky --version | --help
//! ```

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;
use std::time::Duration;

use crate::log::Proto;

pub const USAGE: &str = "\
usage: decnet-decky [base]
       decnet-decky serve <slug> [--bind <ipv4>] [--port <port>/<tcp|udp>]...
                          [--max-conns <n>] [--timeout <secs>]
       decnet-decky cloak [--queue <n>] [--port <tcp port>]...
       decnet-decky --version | --help

  base    PID 1 of a decky's base container: sleep, reap zombies, exit 0 on SIGTERM/SIGINT
  serve   run the honeypot responder <slug> on the given ports (at least one --port);
          --timeout: idle seconds per read/write (default 10, ssh and telnet 120)
  cloak   the OS-fingerprint mangler of the decky's network namespace (NFQUEUE <n>, default
          16; --port: the decky's open TCP ports, where T2/T3 are answered)

env (serve): DECNET_SERVICE_CONFIG (JSON object), HOSTNAME, DECNET_DECKY, DECNET_ARCHETYPE,
             DECNET_OS (the persona: defaults such as the Windows build)
env (cloak): DECNET_OS_PROFILE (the registry's profile line)";

/// Default NFQUEUE number of `cloak`.
pub const DEFAULT_QUEUE: u16 = 16;

/// Default cap on concurrent TCP connections.
pub const DEFAULT_MAX_CONNS: usize = 256;
/// Default per-read/per-write socket timeout (interactive services: see `Limits::for_service`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Base,
    Serve(ServeArgs),
    Cloak(CloakArgs),
    Version,
    Help,
}

/// `serve` arguments, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeArgs {
    pub slug: String,
    pub bind: Ipv4Addr,
    pub ports: Vec<PortSpec>,
    pub max_conns: usize,
    /// `--timeout`; `None`: the service's default.
    pub timeout: Option<Duration>,
}

/// `cloak` arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloakArgs {
    pub queue: u16,
    pub ports: Vec<u16>,
}

/// `<port>/<proto>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortSpec {
    pub port: u16,
    pub proto: Proto,
}

impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.port, self.proto)
    }
}

impl FromStr for PortSpec {
    type Err = ArgError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |rule: &str| ArgError::Invalid {
            flag: "--port",
            value: s.to_owned(),
            rule: rule.to_owned(),
        };
        let (port, proto) = match s.split_once('/') {
            Some((p, proto)) => (p, proto),
            None => (s, "tcp"),
        };
        let proto = match proto.to_ascii_lowercase().as_str() {
            "tcp" => Proto::Tcp,
            "udp" => Proto::Udp,
            _ => return Err(bad("protocol must be tcp or udp")),
        };
        let port: u16 = port
            .parse()
            .map_err(|_| bad("port must be a number 1-65535"))?;
        if port == 0 {
            return Err(bad("port must be a number 1-65535"));
        }
        Ok(PortSpec { port, proto })
    }
}

/// A command line that cannot be run; the message names the flag and the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgError {
    UnknownCommand(String),
    UnknownFlag(String),
    MissingValue(&'static str),
    MissingSlug,
    NoPorts,
    DuplicatePort(PortSpec),
    Invalid {
        flag: &'static str,
        value: String,
        rule: String,
    },
}

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArgError::UnknownCommand(c) => {
                write!(f, "unknown command {c:?} (expected base, serve or cloak)")
            }
            ArgError::UnknownFlag(x) => write!(f, "unknown argument {x:?}"),
            ArgError::MissingValue(flag) => write!(f, "{flag} needs a value"),
            ArgError::MissingSlug => write!(f, "serve needs a service slug"),
            ArgError::NoPorts => write!(f, "serve needs at least one --port <port>/<tcp|udp>"),
            ArgError::DuplicatePort(p) => write!(f, "--port {p} given twice"),
            ArgError::Invalid { flag, value, rule } => write!(f, "{flag} {value:?}: {rule}"),
        }
    }
}

impl std::error::Error for ArgError {}

/// Parses the arguments after the program name.
pub fn parse<I, S>(args: I) -> Result<Command, ArgError>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut it = args.into_iter().map(Into::into);
    match it.next().as_deref() {
        None | Some("base") => match it.next() {
            None => Ok(Command::Base),
            Some(x) => Err(ArgError::UnknownFlag(x)),
        },
        Some("--version" | "-V" | "version") => Ok(Command::Version),
        Some("--help" | "-h" | "help") => Ok(Command::Help),
        Some("serve") => parse_serve(it).map(Command::Serve),
        Some("cloak") => parse_cloak(it).map(Command::Cloak),
        Some(other) => Err(ArgError::UnknownCommand(other.to_owned())),
    }
}

fn parse_serve(mut it: impl Iterator<Item = String>) -> Result<ServeArgs, ArgError> {
    let mut slug = None;
    let mut bind = Ipv4Addr::UNSPECIFIED;
    let mut ports: Vec<PortSpec> = Vec::new();
    let mut max_conns = DEFAULT_MAX_CONNS;
    let mut timeout = None;

    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &'static str| -> Result<String, ArgError> {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or(ArgError::MissingValue(name))
        };
        match flag.as_str() {
            "--bind" => {
                let v = value("--bind")?;
                bind = v.parse().map_err(|_| ArgError::Invalid {
                    flag: "--bind",
                    value: v.clone(),
                    rule: "must be an IPv4 address (names are never resolved)".into(),
                })?;
            }
            "--port" | "-p" => {
                let spec: PortSpec = value("--port")?.parse()?;
                if ports.contains(&spec) {
                    return Err(ArgError::DuplicatePort(spec));
                }
                ports.push(spec);
            }
            "--max-conns" => {
                let v = value("--max-conns")?;
                max_conns = match v.parse::<usize>() {
                    Ok(n) if (1..=65_536).contains(&n) => n,
                    _ => {
                        return Err(ArgError::Invalid {
                            flag: "--max-conns",
                            value: v,
                            rule: "must be a number 1-65536".into(),
                        })
                    }
                };
            }
            "--timeout" => {
                let v = value("--timeout")?;
                timeout = match v.parse::<u64>() {
                    Ok(n) if (1..=3600).contains(&n) => Some(Duration::from_secs(n)),
                    _ => {
                        return Err(ArgError::Invalid {
                            flag: "--timeout",
                            value: v,
                            rule: "must be a number of seconds 1-3600".into(),
                        })
                    }
                };
            }
            s if s.starts_with('-') => return Err(ArgError::UnknownFlag(arg)),
            _ if slug.is_none() => {
                if !valid_slug(&arg) {
                    return Err(ArgError::Invalid {
                        flag: "<slug>",
                        value: arg,
                        rule: "must be 1-64 characters of a-z, 0-9, '_' or '-'".into(),
                    });
                }
                slug = Some(arg);
            }
            _ => return Err(ArgError::UnknownFlag(arg)),
        }
    }
    let slug = slug.ok_or(ArgError::MissingSlug)?;
    if ports.is_empty() {
        return Err(ArgError::NoPorts);
    }
    Ok(ServeArgs {
        slug,
        bind,
        ports,
        max_conns,
        timeout,
    })
}

fn valid_slug(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn parse_cloak(mut it: impl Iterator<Item = String>) -> Result<CloakArgs, ArgError> {
    let mut out = CloakArgs {
        queue: DEFAULT_QUEUE,
        ports: Vec::new(),
    };
    while let Some(flag) = it.next() {
        let name: &'static str = match flag.as_str() {
            "--queue" => "--queue",
            "--port" => "--port",
            _ => return Err(ArgError::UnknownFlag(flag)),
        };
        let value = it.next().ok_or(ArgError::MissingValue(name))?;
        let n = value
            .parse::<u16>()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| ArgError::Invalid {
                flag: name,
                value: value.clone(),
                rule: "must be 1-65535".into(),
            })?;
        if name == "--queue" {
            out.queue = n;
        } else {
            out.ports.push(n);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Command, ArgError> {
        parse(args.iter().copied())
    }

    fn serve(args: &[&str]) -> ServeArgs {
        match p(args) {
            Ok(Command::Serve(s)) => s,
            other => panic!("expected serve, got {other:?}"),
        }
    }

    #[test]
    fn base_is_default() {
        assert_eq!(p(&[]), Ok(Command::Base));
        assert_eq!(p(&["base"]), Ok(Command::Base));
        assert!(p(&["base", "x"]).is_err());
        assert_eq!(p(&["--version"]), Ok(Command::Version));
        assert_eq!(p(&["-h"]), Ok(Command::Help));
        assert_eq!(p(&["nope"]), Err(ArgError::UnknownCommand("nope".into())));
        assert_eq!(
            p(&["cloak", "--port", "445", "--queue", "3", "--port", "3389"]),
            Ok(Command::Cloak(CloakArgs {
                queue: 3,
                ports: vec![445, 3389]
            }))
        );
        assert_eq!(
            p(&["cloak"]),
            Ok(Command::Cloak(CloakArgs {
                queue: DEFAULT_QUEUE,
                ports: vec![]
            }))
        );
        assert!(p(&["cloak", "--queue", "0"]).is_err());
        assert!(p(&["cloak", "--port"]).is_err());
        assert!(p(&["cloak", "--frob"]).is_err());
    }

    #[test]
    fn serve_full() {
        let s = serve(&[
            "serve",
            "ssh",
            "--bind",
            "10.1.2.3",
            "--port",
            "22/tcp",
            "--port=2222",
            "-p",
            "53/UDP",
            "--max-conns",
            "8",
            "--timeout=3",
        ]);
        assert_eq!(s.slug, "ssh");
        assert_eq!(s.bind, Ipv4Addr::new(10, 1, 2, 3));
        assert_eq!(
            s.ports,
            vec![
                PortSpec {
                    port: 22,
                    proto: Proto::Tcp
                },
                PortSpec {
                    port: 2222,
                    proto: Proto::Tcp
                },
                PortSpec {
                    port: 53,
                    proto: Proto::Udp
                },
            ]
        );
        assert_eq!(s.max_conns, 8);
        assert_eq!(s.timeout, Some(Duration::from_secs(3)));
    }

    #[test]
    fn serve_defaults() {
        let s = serve(&["serve", "http", "--port", "80/tcp"]);
        assert_eq!(s.bind, Ipv4Addr::UNSPECIFIED);
        assert_eq!(s.max_conns, DEFAULT_MAX_CONNS);
        assert_eq!(s.timeout, None);
    }

    #[test]
    fn serve_rejects_bad_input() {
        let err = |a: &[&str]| p(a).expect_err("must fail").to_string();
        assert!(err(&["serve", "ssh"]).contains("at least one --port"));
        assert!(err(&["serve", "--port", "22"]).contains("slug"));
        assert!(err(&["serve", "ssh", "--port", "0/tcp"]).contains("1-65535"));
        assert!(err(&["serve", "ssh", "--port", "70000"]).contains("1-65535"));
        assert!(err(&["serve", "ssh", "--port", "22/sctp"]).contains("tcp or udp"));
        assert!(err(&["serve", "ssh", "--port", "22", "--port", "22/tcp"]).contains("twice"));
        assert!(err(&["serve", "ssh", "--port"]).contains("needs a value"));
        assert!(err(&["serve", "ssh", "--port", "22", "--bind", "localhost"]).contains("IPv4"));
        assert!(err(&["serve", "ssh", "--port", "22", "--bind", "::1"]).contains("IPv4"));
        assert!(err(&["serve", "ssh", "--port", "22", "--frob"]).contains("--frob"));
        assert!(err(&["serve", "Bad/Slug", "--port", "22"]).contains("slug"));
        assert!(err(&["serve", "ssh", "ftp", "--port", "22"]).contains("ftp"));
        assert!(err(&["serve", "ssh", "--port", "22", "--max-conns", "0"]).contains("--max-conns"));
    }
}

//! Fleet builders: from flags (`decnet deploy --deckies N …`) and from specs (the INI, the
//! API's JSON). They decide names, IPs, services, distros and hostnames, and validate the result.
//! Randomness comes from the caller's RNG, so a seeded RNG gives a reproducible fleet.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use rand::seq::SliceRandom;
use rand::Rng;

use super::net::NetPlan;
use super::spec::{DeckySpec, FleetSpec, MAX_AMOUNT};
use super::FleetError;
use crate::model::validate::{validate_decky_ip, validate_services};
use crate::model::{
    validate_config, CustomService, DeckyConfig, DeckyName, DecnetConfig, FieldError, Mode,
    ServiceConfig, DEFAULT_MUTATE_INTERVAL,
};
use crate::plan::{allocate_ips, AllocRequest};
use crate::registry::{self, Archetype, OsFamily};

/// What a builder needs besides the request.
#[derive(Debug, Clone)]
pub struct BuildContext {
    /// Unihost or swarm: the mode written into the built config.
    pub mode: Mode,
    /// The decky network: interface, subnet, gateway, host IP and driver.
    pub net: NetPlan,
    /// Addresses already used (deckies already deployed, on an additive deploy).
    pub reserved: BTreeSet<Ipv4Addr>,
    /// Names already deployed: new deckies may not take them.
    pub taken_names: BTreeSet<String>,
    /// The fleet this build replaces (empty for a first deploy or an `--add`). A decky of the
    /// same name keeps what it already has — its address, and with the same archetype its
    /// hostname and distro; with randomly drawn services, its services — so redeploying an
    /// unchanged spec changes nothing and recreates no container.
    pub current: Vec<DeckyConfig>,
    /// `--mutate-interval`: beats every interval in the spec when given.
    pub mutate_interval: Option<u32>,
    /// `--log-file`: where the deckies' service logs go.
    pub log_file: Option<String>,
    /// Seconds since the epoch, stamped as `last_mutated` on spec-built deckies.
    pub now_epoch: f64,
}

/// `decnet deploy` flags that shape the fleet.
#[derive(Debug, Clone, Default)]
pub struct FleetFlags {
    /// `--deckies N`: how many deckies to build (at least 1).
    pub count: usize,
    /// `--services a,b`: every decky runs exactly these services.
    pub services: Option<Vec<String>>,
    /// `--randomize-services`: each decky draws 1–3 clash-free services.
    pub randomize_services: bool,
    /// `--archetype NAME`: every decky takes this archetype's services, OS and preferred distros.
    pub archetype: Option<String>,
    /// `--distros a,b`: distro slugs assigned round-robin.
    pub distros: Option<Vec<String>>,
    /// `--randomize-distros`: each decky draws a random distro.
    pub randomize_distros: bool,
    /// `--ip-start`: allocate addresses from here upwards instead of from the subnet's start.
    pub ip_start: Option<Ipv4Addr>,
}

/// Draws 1–3 random services that share no port, preferring a set no earlier decky has.
/// Never yields a fleet singleton or a clashing set.
pub fn pick_services(rng: &mut impl Rng, avoid: &[BTreeSet<String>]) -> Vec<String> {
    let pool = registry::deployable_service_slugs();
    let max_k = pool.len().min(3);
    let mut fallback = None;
    for _ in 0..64 {
        let k = rng.gen_range(1..=max_k);
        let pick: Vec<&str> = pool.choose_multiple(rng, k).copied().collect();
        if registry::port_clash(&pick).is_some() {
            continue;
        }
        let set: BTreeSet<String> = pick.iter().map(|s| s.to_string()).collect();
        if avoid.contains(&set) {
            fallback.get_or_insert(pick);
            continue;
        }
        return pick.into_iter().map(str::to_string).collect();
    }
    match fallback {
        Some(p) => p.into_iter().map(str::to_string).collect(),
        // A single service can never clash with itself.
        None => vec![pool[rng.gen_range(0..pool.len())].to_string()],
    }
}

fn lookup_archetype(field: &str, slug: &str) -> Result<&'static Archetype, FieldError> {
    registry::archetype(slug).ok_or_else(|| {
        let known: Vec<_> = registry::archetypes().iter().map(|a| a.slug).collect();
        FieldError::new(
            field,
            slug,
            format!("is not a known archetype (known: {})", known.join(", ")),
        )
    })
}

fn check_distro(field: &str, slug: &str) -> Result<(), FieldError> {
    if registry::distro(slug).is_some() {
        return Ok(());
    }
    let known: Vec<_> = registry::distros().iter().map(|d| d.slug).collect();
    Err(FieldError::new(
        field,
        slug,
        format!("is not a known distro (known: {})", known.join(", ")),
    ))
}

/// Assembles one decky from decided parts.
struct Parts<'a> {
    name: DeckyName,
    ip: Ipv4Addr,
    services: Vec<String>,
    distro: &'a str,
    archetype: Option<&'a Archetype>,
    nmap_os: Option<OsFamily>,
    service_config: ServiceConfig,
    mutate_interval: Option<u32>,
    last_mutated: f64,
}

fn assemble(p: Parts<'_>, rng: &mut impl Rng) -> DeckyConfig {
    let distro = registry::distro(p.distro);
    DeckyConfig {
        hostname: registry::random_hostname(p.distro, rng),
        name: p.name,
        ip: p.ip,
        services: p.services,
        distro: p.distro.to_string(),
        base_image: distro
            .map_or("debian:bookworm-slim", |d| d.image)
            .to_string(),
        build_base: distro
            .map_or("debian:bookworm-slim", |d| d.build_base)
            .to_string(),
        archetype: p.archetype.map(|a| a.slug.to_string()),
        service_config: p.service_config,
        nmap_os: p
            .nmap_os
            .or(p.archetype.map(|a| a.nmap_os))
            .unwrap_or_default(),
        mutate_interval: p.mutate_interval,
        last_mutated: p.last_mutated,
        last_login_attempt: 0.0,
        host_uuid: None,
    }
}

fn finish(
    ctx: &BuildContext,
    deckies: Vec<DeckyConfig>,
    mutate_interval: Option<u32>,
    custom_services: Vec<CustomService>,
) -> Result<DecnetConfig, FleetError> {
    let mut config = DecnetConfig {
        mode: ctx.mode,
        interface: ctx.net.interface.clone(),
        subnet: ctx.net.subnet,
        gateway: ctx.net.gateway,
        deckies,
        log_file: ctx.log_file.clone(),
        ipvlan: false,
        mutate_interval: ctx
            .mutate_interval
            .or(mutate_interval)
            .or(Some(DEFAULT_MUTATE_INTERVAL)),
        network_driver: None,
        custom_services,
    };
    config.set_driver(ctx.net.driver);
    validate_config(&config)?;
    Ok(config)
}

fn reserved_with_net(ctx: &BuildContext) -> BTreeSet<Ipv4Addr> {
    let mut reserved = ctx.reserved.clone();
    reserved.insert(ctx.net.gateway);
    reserved.extend(ctx.net.host_ip);
    reserved
}

/// The decky of this name in the fleet being replaced.
fn previous<'a>(ctx: &'a BuildContext, name: &DeckyName) -> Option<&'a DeckyConfig> {
    ctx.current.iter().find(|d| &d.name == name)
}

/// Reserves the current address of every decky in `names` that keeps one (it still lies in
/// the subnet and nobody else claimed it); returns them by name.
fn keep_addresses<'a>(
    ctx: &BuildContext,
    names: impl Iterator<Item = &'a DeckyName>,
    reserved: &mut BTreeSet<Ipv4Addr>,
) -> std::collections::BTreeMap<DeckyName, Ipv4Addr> {
    let mut kept = std::collections::BTreeMap::new();
    for name in names {
        let Some(prev) = previous(ctx, name) else {
            continue;
        };
        let fits = validate_decky_ip("ip", prev.ip, &ctx.net.subnet, ctx.net.gateway).is_ok();
        if fits && reserved.insert(prev.ip) {
            kept.insert(name.clone(), prev.ip);
        }
    }
    kept
}

/// What a decky keeps of its previous self once its services and persona are decided: with
/// the same archetype and a distro the request still allows, its hostname and distro.
fn carry_over(decky: &mut DeckyConfig, prev: Option<&DeckyConfig>, allowed_distros: &[&str]) {
    let Some(prev) = prev else { return };
    if prev.archetype == decky.archetype && allowed_distros.contains(&prev.distro.as_str()) {
        decky.hostname = prev.hostname.clone();
        decky.distro = prev.distro.clone();
        decky.base_image = prev.base_image.clone();
        decky.build_base = prev.build_base.clone();
    }
    if prev.services == decky.services {
        decky.last_mutated = prev.last_mutated;
    }
    decky.last_login_attempt = prev.last_login_attempt;
}

/// `decnet deploy --deckies N [--services … | --archetype … | --randomize-services]`.
pub fn build_from_flags(
    flags: &FleetFlags,
    ctx: &BuildContext,
    rng: &mut impl Rng,
) -> Result<DecnetConfig, FleetError> {
    if flags.count == 0 {
        return Err(FieldError::new("deckies", "0", "must be at least 1").into());
    }
    let archetype = flags
        .archetype
        .as_deref()
        .map(|a| lookup_archetype("archetype", a))
        .transpose()?;
    if let Some(services) = &flags.services {
        validate_services("services", services, &[])?;
    } else if archetype.is_none() && !flags.randomize_services {
        return Err(FieldError::new(
            "services",
            "",
            "none chosen: give --services a,b, --archetype NAME or --randomize-services",
        )
        .into());
    }
    let distros = flags.distros.clone().unwrap_or_default();
    for d in &distros {
        check_distro("distro", d)?;
    }

    let mut names = Vec::with_capacity(flags.count);
    let mut next_index = 1usize;
    while names.len() < flags.count {
        let candidate = format!("decky-{next_index:02}");
        next_index += 1;
        if !ctx.taken_names.contains(&candidate) {
            names.push(DeckyName::new(candidate)?);
        }
    }
    let mut reserved = reserved_with_net(ctx);
    // `--ip-start` asks for addresses from there on: nothing keeps its old one.
    let kept = if flags.ip_start.is_none() {
        keep_addresses(ctx, names.iter(), &mut reserved)
    } else {
        Default::default()
    };
    let req = AllocRequest {
        subnet: ctx.net.subnet,
        gateway: Some(ctx.net.gateway),
        host_ip: ctx.net.host_ip,
        ip_start: flags.ip_start,
        reserved: &reserved,
    };
    let mut fresh = allocate_ips(&req, flags.count - kept.len())?.into_iter();

    let all_distros: Vec<&str> = registry::distros().iter().map(|d| d.slug).collect();
    let mut drawn: Vec<BTreeSet<String>> = Vec::new();
    let mut deckies = Vec::with_capacity(flags.count);
    for (i, name) in names.into_iter().enumerate() {
        let ip = match kept.get(&name) {
            Some(ip) => *ip,
            // allocate_ips returned one address for every decky that keeps none.
            None => fresh.next().ok_or_else(|| {
                FieldError::new(
                    "deckies",
                    &flags.count.to_string(),
                    "no free address left in the subnet",
                )
            })?,
        };
        let prev = previous(ctx, &name);
        let services = match (&flags.services, archetype) {
            (Some(s), _) => s.clone(),
            (None, Some(a)) if !flags.randomize_services => {
                a.services.iter().map(|s| s.to_string()).collect()
            }
            _ => match prev.filter(|p| validate_services("services", &p.services, &[]).is_ok()) {
                Some(p) => p.services.clone(),
                None => {
                    let s = pick_services(rng, &drawn);
                    drawn.push(s.iter().cloned().collect());
                    s
                }
            },
        };
        let distro: &str = if !distros.is_empty() {
            &distros[i % distros.len()]
        } else if flags.randomize_distros {
            all_distros[rng.gen_range(0..all_distros.len())]
        } else if let Some(a) = archetype {
            a.preferred_distros[i % a.preferred_distros.len()]
        } else {
            all_distros[i % all_distros.len()]
        };
        let mut decky = assemble(
            Parts {
                name,
                ip,
                services,
                distro,
                archetype,
                nmap_os: None,
                service_config: ServiceConfig::new(),
                mutate_interval: None,
                last_mutated: 0.0,
            },
            rng,
        );
        let allowed: Vec<&str> = if !distros.is_empty() {
            distros.iter().map(String::as_str).collect()
        } else if let Some(a) = archetype.filter(|_| !flags.randomize_distros) {
            a.preferred_distros.to_vec()
        } else {
            all_distros.clone()
        };
        carry_over(&mut decky, prev, &allowed);
        deckies.push(decky);
    }
    finish(ctx, deckies, None, vec![])
}

/// One spec after `amount` expansion.
struct Expanded<'a> {
    spec: &'a DeckySpec,
    origin: String,
    name: DeckyName,
}

fn origin_of(spec: &DeckySpec, index: usize) -> String {
    spec.origin
        .clone()
        .unwrap_or_else(|| format!("deckies[{index}]"))
}

/// A spec's `amount` (1 when unset), checked against its rule.
fn checked_amount(spec: &DeckySpec, index: usize) -> Result<u32, FieldError> {
    let amount = spec.amount.unwrap_or(1);
    let field = || format!("{}.amount", origin_of(spec, index));
    if amount == 0 {
        return Err(FieldError::new(field(), "0", "must be a positive integer"));
    }
    if amount > MAX_AMOUNT {
        return Err(FieldError::new(
            field(),
            &amount.to_string(),
            format!("exceeds the maximum of {MAX_AMOUNT}"),
        ));
    }
    Ok(amount)
}

/// How many deckies `spec` asks for, counted without expanding anything, so a fleet limit can
/// be checked before a huge request is built. Fails on the first `amount` that breaks its rule.
pub fn requested_deckies(spec: &FleetSpec) -> Result<u64, FieldError> {
    spec.deckies.iter().enumerate().try_fold(0u64, |n, (i, d)| {
        Ok(n.saturating_add(u64::from(checked_amount(d, i)?)))
    })
}

fn expand(spec: &DeckySpec, index: usize) -> Result<Vec<Expanded<'_>>, FieldError> {
    let origin = origin_of(spec, index);
    let at = |f: &str| format!("{origin}.{f}");
    let amount = checked_amount(spec, index)?;
    if amount > 1 && spec.ip.is_some() {
        return Err(FieldError::new(
            at("ip"),
            &spec.ip.map(|i| i.to_string()).unwrap_or_default(),
            "cannot be combined with amount > 1 (each decky needs its own address)",
        ));
    }
    let names: Vec<String> = if amount == 1 {
        vec![spec.name.clone()]
    } else {
        (1..=amount)
            .map(|n| format!("{}-{n:02}", spec.name))
            .collect()
    };
    names
        .into_iter()
        .map(|n| {
            let name = DeckyName::new(n).map_err(|e| FieldError {
                field: at("name"),
                ..e
            })?;
            Ok(Expanded {
                spec,
                origin: origin.clone(),
                name,
            })
        })
        .collect()
}

fn coerce_service_config(
    origin: &str,
    raw: &ServiceConfig,
    custom: &[CustomService],
) -> Result<ServiceConfig, FieldError> {
    let mut out = ServiceConfig::new();
    for (svc, values) in raw {
        let coerced = if custom.iter().any(|c| &c.name == svc) {
            values.clone()
        } else {
            registry::validate_service_config(svc, values).map_err(|e| {
                FieldError::new(format!("{origin}.service_config"), "", e.to_string())
            })?
        };
        out.insert(svc.clone(), coerced);
    }
    Ok(out)
}

/// Builds a fleet from specs (the INI, or the API's JSON), like the original's
/// `build_deckies_from_ini` with its bugs fixed: explicit IPs are checked, service config is
/// typed, the CLI's interval wins only when given.
pub fn build_from_specs(
    spec: &FleetSpec,
    ctx: &BuildContext,
    rng: &mut impl Rng,
) -> Result<DecnetConfig, FleetError> {
    let custom = &spec.custom_services;
    let mut expanded = Vec::new();
    for (i, s) in spec.deckies.iter().enumerate() {
        expanded.extend(expand(s, i)?);
    }
    if expanded.is_empty() {
        return Err(FieldError::new("deckies", "", "must hold at least one decky").into());
    }

    // Names: unique in the request and not already deployed.
    let mut names = BTreeSet::new();
    for e in &expanded {
        if ctx.taken_names.contains(e.name.as_str()) {
            return Err(FleetError::Conflict(FieldError::new(
                format!("{}.name", e.origin),
                e.name.as_str(),
                "is already deployed (names are unique fleet-wide)",
            )));
        }
        if !names.insert(e.name.as_str()) {
            return Err(FieldError::new(
                format!("{}.name", e.origin),
                e.name.as_str(),
                "is used by two deckies (names are unique fleet-wide)",
            )
            .into());
        }
    }

    // Explicit addresses: valid, free, unique; then reserved for the automatic pool.
    let mut reserved = reserved_with_net(ctx);
    for e in &expanded {
        let Some(ip) = e.spec.ip else { continue };
        let field = format!("{}.ip", e.origin);
        validate_decky_ip(&field, ip, &ctx.net.subnet, ctx.net.gateway)?;
        if Some(ip) == ctx.net.host_ip {
            return Err(
                FieldError::new(field, &ip.to_string(), "is the host's own address").into(),
            );
        }
        if ctx.reserved.contains(&ip) {
            return Err(FleetError::Conflict(FieldError::new(
                field,
                &ip.to_string(),
                "is already used by a deployed decky",
            )));
        }
        if !reserved.insert(ip) {
            return Err(FieldError::new(field, &ip.to_string(), "is used by two deckies").into());
        }
    }
    let kept = keep_addresses(
        ctx,
        expanded
            .iter()
            .filter(|e| e.spec.ip.is_none())
            .map(|e| &e.name),
        &mut reserved,
    );
    let auto_count = expanded
        .iter()
        .filter(|e| e.spec.ip.is_none() && !kept.contains_key(&e.name))
        .count();
    let req = AllocRequest {
        subnet: ctx.net.subnet,
        gateway: Some(ctx.net.gateway),
        host_ip: ctx.net.host_ip,
        ip_start: None,
        reserved: &reserved,
    };
    let mut auto_ips = allocate_ips(&req, auto_count)?.into_iter();

    let all_distros: Vec<&str> = registry::distros().iter().map(|d| d.slug).collect();
    let mut drawn: Vec<BTreeSet<String>> = Vec::new();
    let mut deckies = Vec::with_capacity(expanded.len());
    for (position, e) in expanded.into_iter().enumerate() {
        let at = |f: &str| format!("{}.{f}", e.origin);
        let archetype = e
            .spec
            .archetype
            .as_deref()
            .map(|a| lookup_archetype(&at("archetype"), a))
            .transpose()?;
        let prev = previous(ctx, &e.name);
        let services = match (&e.spec.services, archetype) {
            (Some(s), _) => {
                validate_services(&at("services"), s, custom)?;
                s.clone()
            }
            (None, Some(a)) => a.services.iter().map(|s| s.to_string()).collect(),
            (None, None) => {
                match prev.filter(|p| validate_services("services", &p.services, custom).is_ok()) {
                    Some(p) => p.services.clone(),
                    None => {
                        let s = pick_services(rng, &drawn);
                        drawn.push(s.iter().cloned().collect());
                        s
                    }
                }
            }
        };
        let pool: &[&str] = archetype.map_or(&all_distros, |a| a.preferred_distros);
        let distro = pool[position % pool.len()];
        let ip = match (e.spec.ip, kept.get(&e.name)) {
            (Some(ip), _) | (None, Some(&ip)) => ip,
            // allocate_ips returned exactly auto_count addresses.
            (None, None) => auto_ips.next().ok_or_else(|| {
                FieldError::new(at("ip"), "", "no free address left in the subnet")
            })?,
        };
        let mut decky = assemble(
            Parts {
                name: e.name,
                ip,
                services,
                distro,
                archetype,
                nmap_os: e.spec.nmap_os,
                service_config: coerce_service_config(&e.origin, &e.spec.service_config, custom)?,
                mutate_interval: ctx.mutate_interval.or(e.spec.mutate_interval),
                last_mutated: ctx.now_epoch,
            },
            rng,
        );
        carry_over(&mut decky, prev, pool);
        deckies.push(decky);
    }
    finish(ctx, deckies, spec.general.mutate_interval, custom.clone())
}

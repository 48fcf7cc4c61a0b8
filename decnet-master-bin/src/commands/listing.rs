//! `decnet services | archetypes | distros`: the registries, as tables or JSON.

use std::io::Write;

use anyhow::Context;
use decnet_core::registry;

use crate::error::CliError;

fn emit_json<T: serde::Serialize + ?Sized>(value: &T, out: &mut dyn Write) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value).context("serialise")?;
    writeln!(out, "{text}").context("write")?;
    Ok(())
}

pub fn services(json: bool, out: &mut dyn Write) -> Result<(), CliError> {
    let all = registry::services();
    if json {
        return emit_json(all, out);
    }
    let mut write = || -> std::io::Result<()> {
        writeln!(out, "{:<14} {:<28} DESCRIPTION", "SERVICE", "PORTS")?;
        for s in all {
            let ports: Vec<String> = s.ports.iter().map(|p| p.to_string()).collect();
            let note = if s.fleet_singleton {
                " (host-wide singleton)"
            } else {
                ""
            };
            writeln!(
                out,
                "{:<14} {:<28} {}{note}",
                s.slug,
                ports.join(","),
                s.description
            )?;
        }
        Ok(())
    };
    write().context("write")?;
    Ok(())
}

pub fn archetypes(json: bool, out: &mut dyn Write) -> Result<(), CliError> {
    let all = registry::archetypes();
    if json {
        return emit_json(all, out);
    }
    let mut write = || -> std::io::Result<()> {
        writeln!(
            out,
            "{:<20} {:<26} {:<15} DESCRIPTION",
            "ARCHETYPE", "SERVICES", "OS"
        )?;
        for a in all {
            writeln!(
                out,
                "{:<20} {:<26} {:<15} {}",
                a.slug,
                a.services.join(","),
                a.nmap_os,
                a.description
            )?;
        }
        Ok(())
    };
    write().context("write")?;
    Ok(())
}

pub fn distros(json: bool, out: &mut dyn Write) -> Result<(), CliError> {
    let all = registry::distros();
    if json {
        return emit_json(all, out);
    }
    let mut write = || -> std::io::Result<()> {
        writeln!(out, "{:<10} {:<28} PERSONA IMAGE", "DISTRO", "NAME")?;
        for d in all {
            writeln!(out, "{:<10} {:<28} {}", d.slug, d.display_name, d.image)?;
        }
        Ok(())
    };
    write().context("write")?;
    Ok(())
}

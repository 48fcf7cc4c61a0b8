//! The `decnet` binary's library: every command as a function tests can call.

pub mod cli;
pub mod commands;
pub mod error;
pub mod logging;

use std::io::Write;

pub use error::CliError;

/// Runs one command, writing its output to `out`.
pub async fn run(cli: cli::Cli, out: &mut dyn Write) -> Result<(), CliError> {
    match cli.command {
        cli::Command::Deploy(args) => {
            let hostnet = decnet_net::NetlinkHostNetwork::new();
            commands::deploy::run(&args, &hostnet, out).await
        }
        cli::Command::Services(a) => commands::listing::services(a.json, out),
        cli::Command::Archetypes(a) => commands::listing::archetypes(a.json, out),
        cli::Command::Distros(a) => commands::listing::distros(a.json, out),
    }
}

//! The `decnet` binary's library: every command as a function tests can call.

pub mod cli;
pub mod client;
pub mod commands;
pub mod error;
pub mod logging;
pub mod master;

use std::io::Write;

pub use error::CliError;

/// Runs one command, writing its output to `out`.
pub async fn run(cli: cli::Cli, out: &mut dyn Write) -> Result<(), CliError> {
    let data_dir = commands::local::data_dir(cli.data_dir.as_deref());
    match cli.command {
        cli::Command::Deploy(args) => {
            let hostnet = decnet_net::NetlinkHostNetwork::new();
            commands::deploy::run(&args, &data_dir, &hostnet, out).await
        }
        cli::Command::Status(a) => commands::remote::status(&data_dir, &a, out).await,
        cli::Command::Teardown(a) => commands::remote::teardown(&data_dir, &a, out).await,
        cli::Command::Demo(a) => commands::demo::run(&a, out).await,
        cli::Command::Services(a) => commands::listing::services(a.json, out),
        cli::Command::Archetypes(a) => commands::listing::archetypes(a.json, out),
        cli::Command::Distros(a) => commands::listing::distros(a.json, out),
        cli::Command::Init(a) => commands::init::run(&data_dir, &a, out).await,
        cli::Command::Hosts(c) => commands::hosts::run(&data_dir, &c, out).await,
        cli::Command::Tokens(c) => commands::tokens::run(&data_dir, &c, out).await,
        cli::Command::Serve(a) => commands::serve::run(&data_dir, &a, out).await,
        cli::Command::Mutate(a) => commands::remote::mutate(&data_dir, &a, out).await,
        cli::Command::Lifecycle(a) => commands::remote::lifecycle(&data_dir, &a, out).await,
        cli::Command::Events(a) => commands::events::run(&data_dir, &a, out).await,
        cli::Command::Attacks(a) => commands::attacks::run(&data_dir, &a, out).await,
        cli::Command::Attackers(a) => commands::attacks::attackers(&data_dir, &a, out).await,
        cli::Command::Completions(a) => commands::manual::completions(a.shell, out),
        cli::Command::Man(a) => commands::manual::man(&a.out, out),
        cli::Command::Backup(a) => commands::backup::backup(&data_dir, &a, out).await,
        cli::Command::Restore(a) => commands::backup::restore(&data_dir, &a, out).await,
    }
}

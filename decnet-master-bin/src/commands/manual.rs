//! `decnet completions SHELL` and `decnet man --out DIR`: shell completions and man pages,
//! both generated from the clap definitions in [`crate::cli`] (by [`decnet_web::manual`]), so
//! they never drift from the flags. Nothing here runs at build time: a plain `cargo build
//! --release` needs neither.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use clap::CommandFactory;
use decnet_web::manual::{self, Shell};

use crate::cli::Cli;
use crate::error::CliError;

/// `decnet completions bash|zsh|fish|elvish|powershell`.
pub fn completions(shell: Shell, out: &mut dyn Write) -> Result<(), CliError> {
    out.write_all(&manual::completion_script(shell, Cli::command(), "decnet"))
        .context("write")?;
    Ok(())
}

/// `decnet man --out DIR`: writes the pages, prints their paths.
pub fn man(dir: &Path, out: &mut dyn Write) -> Result<(), CliError> {
    let files = manual::write_man_pages(Cli::command(), dir)
        .map_err(|e| CliError::usage(format!("--out {}: {e}", dir.display())))?;
    for file in files {
        writeln!(out, "{}", file.display()).context("write")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completions_know_the_commands_and_flags() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let mut out = Vec::new();
            completions(shell, &mut out).unwrap();
            let script = String::from_utf8(out).unwrap();
            for word in ["deploy", "teardown", "lifecycle", "randomize-services"] {
                assert!(script.contains(word), "{shell}: {word}");
            }
        }
    }

    #[test]
    fn one_man_page_per_visible_command() {
        let dir = tempfile::tempdir().unwrap();
        let mut out = Vec::new();
        man(dir.path(), &mut out).unwrap();
        let listed = String::from_utf8(out).unwrap();
        for want in [
            "decnet.1",
            "decnet-deploy.1",
            "decnet-hosts-enroll.1",
            "decnet-man.1",
        ] {
            assert!(dir.path().join(want).is_file(), "{want}: {listed}");
        }
        let deploy = std::fs::read_to_string(dir.path().join("decnet-deploy.1")).unwrap();
        assert!(deploy.contains("randomize\\-services"), "{deploy:.2000}");
    }

    /// Every flag and positional of every command, hidden ones too, says what it does; every
    /// flag of `decnet serve` can be set from a unit file's environment.
    #[test]
    fn every_arg_has_help_and_serve_flags_have_env_vars() {
        assert_eq!(
            manual::args_without_help(Cli::command()),
            Vec::<String>::new()
        );
        assert_eq!(
            manual::flags_without_env(Cli::command(), &["serve"]),
            Vec::<String>::new()
        );
    }

    #[test]
    fn deploy_help_is_grouped_with_examples() {
        let mut cmd = Cli::command();
        let help = cmd
            .find_subcommand_mut("deploy")
            .unwrap()
            .render_long_help()
            .to_string();
        for heading in [
            "Fleet:",
            "Network:",
            "Output:",
            "Docker (without a master):",
            "Master:",
            "Waiting (with a master):",
            "Examples:",
        ] {
            assert!(help.contains(heading), "{heading}\n{help}");
        }
    }
}

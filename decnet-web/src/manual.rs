//! Shell completions and man pages generated from a clap command tree (feature `cli`), so
//! they never drift from the flags; and the checks the binaries' tests make on that tree:
//! every argument has help text, every flag of a daemon's serve command an env var (what an
//! operator sets in a unit file). Nothing here runs at build time.

use std::io;
use std::path::{Path, PathBuf};

pub use clap_complete::Shell;

/// The completion script for `shell`, for the command tree `cmd` named `bin`.
///
/// Rendered into memory: clap_complete panics on a failed write, and a closed stdout must
/// end the command quietly.
pub fn completion_script(shell: Shell, mut cmd: clap::Command, bin: &str) -> Vec<u8> {
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, bin, &mut buf);
    buf
}

/// Writes one man page per visible command of `cmd` into `dir` (created when missing):
/// `<bin>.1`, `<bin>-deploy.1`, `<bin>-hosts-enroll.1`, …. Returns the files, sorted.
pub fn write_man_pages(cmd: clap::Command, dir: &Path) -> io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut cmd = cmd;
    cmd.build();
    let mut written = Vec::new();
    let mut stack = vec![(cmd, String::new())];
    while let Some((cmd, parent)) = stack.pop() {
        let name = if parent.is_empty() {
            cmd.get_name().to_string()
        } else {
            format!("{parent}-{}", cmd.get_name())
        };
        let mut page = Vec::new();
        // A subcommand's page carries its full name (`decnet-hosts-enroll`).
        clap_mangen::Man::new(cmd.clone().name(name.clone())).render(&mut page)?;
        let file = dir.join(format!("{name}.1"));
        std::fs::write(&file, page)?;
        written.push(file);
        for sub in cmd.get_subcommands() {
            if !sub.is_hide_set() && sub.get_name() != "help" {
                stack.push((sub.clone(), name.clone()));
            }
        }
    }
    written.sort();
    Ok(written)
}

/// Every (sub)command of `cmd` with its path (`decnet hosts enroll`), hidden ones too.
fn walk(cmd: &clap::Command, path: &str, out: &mut Vec<(String, clap::Command)>) {
    let path = if path.is_empty() {
        cmd.get_name().to_string()
    } else {
        format!("{path} {}", cmd.get_name())
    };
    out.push((path.clone(), cmd.clone()));
    for sub in cmd.get_subcommands() {
        walk(sub, &path, out);
    }
}

fn commands(cmd: clap::Command) -> Vec<(String, clap::Command)> {
    let mut cmd = cmd;
    cmd.build();
    let mut out = Vec::new();
    walk(&cmd, "", &mut out);
    out
}

fn is_builtin(arg: &clap::Arg) -> bool {
    matches!(arg.get_id().as_str(), "help" | "version")
}

/// The arguments (`decnet deploy --seed`) of every command, hidden ones too, that have no
/// help text: empty when the whole tree is documented.
pub fn args_without_help(cmd: clap::Command) -> Vec<String> {
    let mut missing = Vec::new();
    for (path, cmd) in commands(cmd) {
        for arg in cmd.get_arguments().filter(|a| !is_builtin(a)) {
            let empty = |s: Option<&clap::builder::StyledStr>| {
                s.is_none_or(|s| s.to_string().trim().is_empty())
            };
            if empty(arg.get_help()) && empty(arg.get_long_help()) {
                missing.push(format!("{path} {}", arg.get_id()));
            }
        }
    }
    missing
}

/// The visible flags of the command at `path` under `cmd` (e.g. `["serve"]`) that cannot be
/// set from the environment: empty when a unit file can set them all.
pub fn flags_without_env(cmd: clap::Command, path: &[&str]) -> Vec<String> {
    let want = std::iter::once(cmd.get_name().to_string())
        .chain(path.iter().map(|s| s.to_string()))
        .collect::<Vec<_>>()
        .join(" ");
    let Some((_, cmd)) = commands(cmd).into_iter().find(|(p, _)| *p == want) else {
        return vec![format!("{want}: no such command")];
    };
    cmd.get_arguments()
        .filter(|a| !is_builtin(a) && !a.is_hide_set() && !a.is_positional())
        .filter(|a| a.get_env().is_none())
        .map(|a| format!("{want} --{}", a.get_long().unwrap_or(a.get_id().as_str())))
        .collect()
}

#[cfg(test)]
mod tests {
    use clap::{Arg, ArgAction, Command};

    use super::*;

    fn tree() -> Command {
        Command::new("tool")
            .arg(
                Arg::new("verbose")
                    .long("verbose")
                    .action(ArgAction::SetTrue)
                    .help("Talk."),
            )
            .subcommand(
                Command::new("serve")
                    .arg(
                        Arg::new("port")
                            .long("port")
                            .env("TOOL_PORT")
                            .help("The port."),
                    )
                    .arg(Arg::new("host").long("host"))
                    .arg(Arg::new("secret").long("secret").hide(true).help("Hidden.")),
            )
    }

    #[test]
    fn undocumented_args_and_env_less_flags_are_named() {
        assert_eq!(args_without_help(tree()), ["tool serve host"]);
        assert_eq!(flags_without_env(tree(), &["serve"]), ["tool serve --host"]);
        assert_eq!(
            flags_without_env(tree(), &["nope"]),
            ["tool nope: no such command"]
        );
    }

    #[test]
    fn completions_and_man_pages_come_from_the_tree() {
        let bash = String::from_utf8(completion_script(Shell::Bash, tree(), "tool")).unwrap();
        assert!(bash.contains("serve") && bash.contains("--port"), "{bash}");
        let dir = std::env::temp_dir().join(format!("decnet-web-man-{}", std::process::id()));
        let files = write_man_pages(tree(), &dir).unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|f| f.file_name().unwrap().to_owned())
            .collect();
        assert_eq!(names, ["tool-serve.1", "tool.1"]);
        let page = std::fs::read_to_string(dir.join("tool-serve.1")).unwrap();
        assert!(
            page.contains("tool\\-serve") && page.contains("TOOL_PORT"),
            "{page}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

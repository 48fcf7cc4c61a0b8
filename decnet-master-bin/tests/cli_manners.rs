//! Unix manners of the real `decnet` binary: a closed stdout ends it quietly with exit 0,
//! terminal escapes only on a terminal without `NO_COLOR`, a missing or down parent
//! interface named before Docker is asked.

use std::process::{Command, Output, Stdio};

fn decnet() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_decnet"));
    c.env_remove("DECNET_MASTER_URL")
        .env_remove("DECNET_INTERFACE")
        .env_remove("DECNET_DATA_DIR")
        .env_remove("NO_COLOR");
    c
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn a_closed_stdout_ends_the_command_quietly_with_exit_0() {
    for args in [
        &["services"][..],
        &["archetypes"],
        &["distros", "--json"],
        &["services", "--json"],
    ] {
        // The reading end is closed before the command writes anything: every write fails
        // with EPIPE (as `decnet services | head -1` after head has exited).
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = decnet()
            .args(args)
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert_eq!(text(&out.stderr), "", "{args:?}");
    }
}

/// Runs `decnet` under a pseudo-terminal (`script`), stdout and stderr both on it.
fn on_a_terminal(no_color: bool) -> String {
    let cmd = format!("{} services", env!("CARGO_BIN_EXE_decnet"));
    let mut c = Command::new("script");
    c.args(["-qec", &cmd, "/dev/null"])
        .env("DECNET_LOG", "debug")
        .env("TERM", "xterm")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null());
    if no_color {
        c.env("NO_COLOR", "1");
    }
    let out = c.output().expect("script(1) from util-linux runs");
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

#[test]
fn logs_are_coloured_only_on_a_terminal_and_never_with_no_color() {
    // Piped (a log file, a pipe): no escape at all.
    let out: Output = decnet()
        .arg("services")
        .env("DECNET_LOG", "debug")
        .env("TERM", "xterm")
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("decnet starting"), "{err}");
    assert!(!err.contains('\u{1b}'), "{err:?}");
    assert!(!text(&out.stdout).contains('\u{1b}'));

    let tty = on_a_terminal(false);
    assert!(tty.contains("decnet starting"), "{tty}");
    assert!(tty.contains('\u{1b}'), "a terminal gets colour: {tty:?}");

    let plain = on_a_terminal(true);
    assert!(plain.contains("decnet starting"), "{plain}");
    assert!(!plain.contains('\u{1b}'), "NO_COLOR: {plain:?}");
}

fn deploy_on(interface: &str) -> Output {
    let dir = tempfile::tempdir().expect("temp dir");
    decnet()
        .args([
            "deploy",
            "--deckies",
            "1",
            "--services",
            "ssh",
            "--interface",
        ])
        .arg(interface)
        .args([
            "--subnet",
            "10.79.0.0/24",
            "--gateway",
            "10.79.0.1",
            "--host-ip",
            "10.79.0.2",
            "--network-name",
            "decnet_cli_manners_never",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .expect("run decnet")
}

#[test]
fn a_missing_interface_is_named_before_docker_is_asked() {
    let out = deploy_on("dcli-nowhere0");
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(r#"--interface: "dcli-nowhere0" is not an interface of this host"#),
        "{err}"
    );
    assert!(!err.contains("subinterface"), "{err}");
}

/// A veth pair in the host's namespace (down, as created), removed on drop (also when the
/// test panics).
struct Veth(String);

impl Drop for Veth {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.0]).status();
    }
}

#[test]
fn a_down_interface_is_named_before_docker_is_asked() {
    let name = format!("dcdown{}", std::process::id() % 100_000);
    let made = Command::new("ip")
        .args([
            "link",
            "add",
            &name,
            "type",
            "veth",
            "peer",
            "name",
            &format!("{name}p"),
        ])
        .status()
        .expect("ip(8) runs");
    assert!(made.success(), "ip link add {name} (this test needs root)");
    let _link = Veth(name.clone());
    let out = deploy_on(&name);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("--interface: {name:?} is down")),
        "{err}"
    );
}

/// bash, given `decnet completions bash`, completes commands and flags.
#[test]
fn bash_completes_decnet() {
    let script = format!(
        "source <({exe} completions bash)\n\
         COMP_WORDS=(decnet dep); COMP_CWORD=1; _decnet decnet dep decnet; echo \"${{COMPREPLY[@]}}\"\n\
         COMP_WORDS=(decnet deploy --rand); COMP_CWORD=2; _decnet decnet --rand deploy; echo \"${{COMPREPLY[@]}}\"\n",
        exe = env!("CARGO_BIN_EXE_decnet")
    );
    let out = Command::new("bash")
        .args(["-c", &script])
        .output()
        .expect("bash runs");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "deploy\n--randomize-services --randomize-distros\n"
    );
}

/// `decnet man --out DIR` writes pages man(1) can read.
#[test]
fn man_pages_are_written_by_a_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = decnet()
        .args(["man", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed = text(&out.stdout);
    assert!(listed.contains("decnet-deploy.1"), "{listed}");
    let page = std::fs::read_to_string(dir.path().join("decnet-teardown.1")).unwrap();
    assert!(page.contains(".SH NAME"), "{page}");
}

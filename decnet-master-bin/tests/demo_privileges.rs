//! `decnet demo` run by a user without CAP_NET_ADMIN: with a `sudo` on PATH it runs the same
//! command again under it; without one it says how to run it and exits 2. The user is `nobody`
//! (setpriv drops root for the child); the `sudo` is a script that records its arguments, so the
//! system's sudo, if any, is never run.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

/// Runs `decnet demo --unihost` as `nobody` with `path` as its PATH.
fn demo_as_nobody(path: &Path) -> Output {
    Command::new("/usr/bin/setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_decnet"))
        .args(["demo", "--unihost"])
        .env_clear()
        .env("PATH", path)
        .env("HOME", path)
        .output()
        .expect("setpriv runs")
}

/// A world-writable temp dir (nobody must be able to write the fake sudo's record there).
fn shared_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).expect("chmod");
    dir
}

#[test]
fn without_privileges_and_with_sudo_the_demo_reruns_itself_under_sudo() {
    let dir = shared_dir();
    let record = dir.path().join("sudo-args");
    let sudo = dir.path().join("sudo");
    fs::write(
        &sudo,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > {}\nexit 0\n",
            record.display()
        ),
    )
    .expect("write sudo");
    fs::set_permissions(&sudo, fs::Permissions::from_mode(0o755)).expect("chmod");
    // /bin for the script's sh and printf.
    let path = format!("{}:/usr/bin:/bin", dir.path().display());

    let out = demo_as_nobody(Path::new(&path));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the re-run's status is the demo's: {stderr}"
    );
    assert!(stderr.contains("running it again under sudo"), "{stderr}");
    let args = fs::read_to_string(&record).expect("sudo was run");
    let args: Vec<&str> = args.lines().collect();
    assert_eq!(
        args,
        [
            "--",
            "env",
            "DECNET_DEMO_SUDO_RERUN=1",
            env!("CARGO_BIN_EXE_decnet"),
            "demo",
            "--unihost"
        ]
    );
}

#[test]
fn without_privileges_or_sudo_the_demo_says_how_to_run_it() {
    let dir = shared_dir();
    let out = demo_as_nobody(dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("needs root (CAP_NET_ADMIN)"), "{stderr}");
    assert!(stderr.contains("run it again as root"), "{stderr}");
    assert!(out.stdout.is_empty(), "nothing half done on stdout");
}

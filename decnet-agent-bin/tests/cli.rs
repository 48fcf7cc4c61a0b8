//! `decnet-agent serve` flags, run as the real binary: a bad limit is a usage error (exit 2)
//! naming the flag, before anything is loaded or bound.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};

fn agent(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let empty = tempfile::tempdir().unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_decnet-agent"));
    c.arg("serve")
        .args(["--agent-dir", empty.path().to_str().unwrap()])
        .args(["--state-dir", empty.path().to_str().unwrap()])
        .args(["--host", "127.0.0.1", "--port", "0"])
        .args(args)
        .env("DECNET_LOG", "warn");
    for v in [
        "DECNET_AGENT_DIR",
        "DECNET_HANDSHAKE_TIMEOUT",
        "DECNET_HEADER_TIMEOUT",
        "DECNET_IDLE_TIMEOUT",
        "DECNET_MAX_CONNECTIONS",
        "DECNET_MAX_CONNECTIONS_PER_SOURCE",
    ] {
        c.env_remove(v);
    }
    for (k, v) in envs {
        c.env(k, v);
    }
    c.output().unwrap()
}

#[track_caller]
fn usage_error(args: &[&str], envs: &[(&str, &str)], needles: &[&str]) {
    let out = agent(args, envs);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?} {envs:?}: {err}");
    for n in needles {
        assert!(err.contains(n), "{args:?} {envs:?}: {err:?} lacks {n:?}");
    }
    assert!(
        !err.contains("no cert bundle"),
        "checked after the bundle: {err}"
    );
}

#[test]
fn bad_limits_are_usage_errors_naming_the_flag() {
    usage_error(
        &["--header-timeout", "0"],
        &[],
        &["--header-timeout", "'0'"],
    );
    usage_error(
        &["--idle-timeout", "soon"],
        &[],
        &["--idle-timeout", "'soon'"],
    );
    usage_error(
        &["--handshake-timeout", "86401"],
        &[],
        &["--handshake-timeout"],
    );
    usage_error(
        &["--max-connections", "0"],
        &[],
        &["--max-connections", "'0'"],
    );
    usage_error(
        &["--max-connections-per-source", "many"],
        &[],
        &["--max-connections-per-source"],
    );
    // The env equivalents go through the same checks.
    usage_error(
        &[],
        &[("DECNET_IDLE_TIMEOUT", "0")],
        &["--idle-timeout", "'0'"],
    );
    // Rules across flags.
    usage_error(
        &[
            "--max-connections",
            "4",
            "--max-connections-per-source",
            "8",
        ],
        &[],
        &["--max-connections-per-source 8: must not exceed the total cap (4)"],
    );
    usage_error(
        &[],
        &[("DECNET_MAX_CONNECTIONS", "16")],
        &["--max-connections-per-source 64: must not exceed the total cap (16)"],
    );
}

#[test]
fn good_limits_pass_the_checks() {
    // Valid limits get as far as the (missing) bundle: exit 2 for that reason only.
    let out = agent(
        &[
            "--header-timeout",
            "1",
            "--idle-timeout",
            "1",
            "--handshake-timeout",
            "1",
            "--max-connections",
            "8",
            "--max-connections-per-source",
            "8",
        ],
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("no cert bundle"), "{err}");
}

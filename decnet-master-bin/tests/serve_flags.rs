//! `decnet serve` limit flags, run as the real binary: a bad limit is a usage error (exit 2)
//! naming the flag, checked before anything is bound or opened.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};

fn serve(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let data = tempfile::tempdir().unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_decnet"));
    c.arg("serve")
        .args(["--data-dir", data.path().to_str().unwrap()])
        .args(["--api-bind", "127.0.0.1:0", "--swarm-bind", "127.0.0.1:0"])
        .args(["--no-local", "--db", "mysql://nowhere"])
        .args(args)
        .env("DECNET_LOG", "warn");
    for v in [
        "DECNET_DATA_DIR",
        "DECNET_DB",
        "DECNET_API_BIND",
        "DECNET_SWARM_BIND",
        "DECNET_HANDSHAKE_TIMEOUT",
        "DECNET_HEADER_TIMEOUT",
        "DECNET_IDLE_TIMEOUT",
        "DECNET_MAX_CONNECTIONS",
        "DECNET_MAX_CONNECTIONS_PER_SOURCE",
        "DECNET_DEPLOY_TIMEOUT",
        "DECNET_MUTATE_TIMEOUT",
        "DECNET_TEARDOWN_TIMEOUT",
        "DECNET_ENROLL_TOKEN_TTL",
        "DECNET_BODY_TIMEOUT",
        "DECNET_WORKER_CERT_LIFETIME",
        "DECNET_RENEWAL_OVERLAP",
        "DECNET_MASTER_RENEW_BEFORE",
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
    let out = serve(args, envs);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?} {envs:?}: {err}");
    for n in needles {
        assert!(err.contains(n), "{args:?} {envs:?}: {err:?} lacks {n:?}");
    }
    assert!(!err.contains("--db"), "checked after the store: {err}");
}

#[test]
fn sweep_timeouts_and_the_enroll_token_lifetime_are_settable_and_checked() {
    usage_error(
        &["--deploy-timeout", "0"],
        &[],
        &["--deploy-timeout", "'0'"],
    );
    usage_error(
        &["--mutate-timeout", "soon"],
        &[],
        &["--mutate-timeout", "'soon'"],
    );
    usage_error(&["--teardown-timeout=-5"], &[], &["--teardown-timeout"]);
    usage_error(
        &[],
        &[("DECNET_ENROLL_TOKEN_TTL", "0")],
        &["--enroll-token-ttl", "'0'"],
    );
    // Good values get past the flags (to the store, which this test leaves unreachable).
    let out = serve(
        &[
            "--deploy-timeout",
            "60",
            "--mutate-timeout",
            "60",
            "--teardown-timeout",
            "60",
        ],
        &[("DECNET_ENROLL_TOKEN_TTL", "120")],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--db") || err.contains("mysql"), "{err}");
}

#[test]
fn certificate_lifetimes_are_settable_and_checked() {
    usage_error(
        &["--worker-cert-lifetime", "59"],
        &[],
        &["--worker-cert-lifetime", "'59'"],
    );
    usage_error(
        &[],
        &[("DECNET_RENEWAL_OVERLAP", "-1")],
        &["--renewal-overlap", "'-1'"],
    );
    usage_error(
        &[
            "--worker-cert-lifetime",
            "3600",
            "--renewal-overlap",
            "3600",
        ],
        &[],
        &["--renewal-overlap 3600: must be shorter than --worker-cert-lifetime (3600 seconds)"],
    );
    usage_error(
        &["--master-renew-before", "soon"],
        &[],
        &["--master-renew-before", "'soon'"],
    );
    let out = serve(
        &[
            "--worker-cert-lifetime",
            "3600",
            "--master-renew-before",
            "0",
        ],
        &[("DECNET_RENEWAL_OVERLAP", "600")],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--db") || err.contains("mysql"), "{err}");
}

#[test]
fn bad_limits_are_usage_errors_naming_the_flag() {
    usage_error(&["--body-timeout", "0"], &[], &["--body-timeout", "'0'"]);
    usage_error(
        &["--header-timeout", "0"],
        &[],
        &["--header-timeout", "'0'"],
    );
    usage_error(
        &["--idle-timeout", "1.5"],
        &[],
        &["--idle-timeout", "'1.5'"],
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
        &["--max-connections-per-source", "x"],
        &[],
        &["--max-connections-per-source"],
    );
    usage_error(
        &[],
        &[("DECNET_HEADER_TIMEOUT", "0")],
        &["--header-timeout", "'0'"],
    );
    usage_error(
        &[
            "--max-connections",
            "10",
            "--max-connections-per-source",
            "11",
        ],
        &[],
        &["--max-connections-per-source 11: must not exceed the total cap (10)"],
    );
}

#[test]
fn good_limits_pass_the_checks() {
    // Valid limits get as far as the store, which this URL cannot open.
    let out = serve(
        &[
            "--header-timeout",
            "1",
            "--idle-timeout",
            "1",
            "--body-timeout",
            "1",
            "--max-connections",
            "2",
            "--max-connections-per-source",
            "1",
        ],
        &[("DECNET_HANDSHAKE_TIMEOUT", "1")],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--db"), "{err}");
}

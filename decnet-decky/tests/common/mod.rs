//! Runs the real `decnet-decky` binary for the integration tests.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_decnet-decky");
pub const HOST: &str = "decoy-host";
pub const DECKY: &str = "decky-it";
pub const WAIT: Duration = Duration::from_secs(10);

pub fn free_tcp_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind probe");
    l.local_addr().expect("addr").port()
}

pub fn free_udp_port() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind probe");
    s.local_addr().expect("addr").port()
}

/// Spawns the binary with piped output and the test persona's env.
pub fn command(args: &[&str], config: Option<&str>) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env("HOSTNAME", HOST)
        .env("DECNET_DECKY", DECKY)
        .env_remove("NODE_NAME")
        .env_remove("DECNET_ARCHETYPE")
        .env_remove("DECNET_OS")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match config {
        Some(c) => cmd.env("DECNET_SERVICE_CONFIG", c),
        None => cmd.env_remove("DECNET_SERVICE_CONFIG"),
    };
    cmd
}

fn lines<R: Read + Send + 'static>(r: R) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// A running `decnet-decky serve`.
pub struct Decky {
    child: Option<Child>,
    stdout: Receiver<String>,
    pub stderr: Receiver<String>,
    pub port: u16,
}

impl Decky {
    /// `serve <slug> --bind 127.0.0.1 --port <free>/tcp [extra…]`, started
    /// and ready (its start-up line seen on stderr).
    pub fn serve(slug: &str, config: Option<&str>) -> Decky {
        Self::serve_with(slug, config, &[])
    }

    pub fn serve_with(slug: &str, config: Option<&str>, extra: &[&str]) -> Decky {
        Self::spawn(slug, config, extra, &[])
    }

    /// Like [`Decky::serve`], with extra environment variables.
    pub fn serve_with_env(slug: &str, config: Option<&str>, env: &[(&str, &str)]) -> Decky {
        Self::spawn(slug, config, &[], env)
    }

    /// Like [`Decky::serve`] on a fixed `port` (a scanner script that only looks at the
    /// well-known port, e.g. nmap's smb-os-discovery on 445).
    pub fn serve_on(slug: &str, config: Option<&str>, port: u16) -> Decky {
        Self::spawn_at(port, slug, config, &[], &[])
    }

    fn spawn(slug: &str, config: Option<&str>, extra: &[&str], env: &[(&str, &str)]) -> Decky {
        Self::spawn_at(free_tcp_port(), slug, config, extra, env)
    }

    fn spawn_at(
        port: u16,
        slug: &str,
        config: Option<&str>,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Decky {
        let spec = format!("{port}/tcp");
        let mut args = vec!["serve", slug, "--bind", "127.0.0.1", "--port", &spec];
        args.extend_from_slice(extra);
        let mut cmd = command(&args, config);
        // A host key file of the tester's machine is never picked up by accident.
        cmd.env("DECNET_SSH_HOST_KEY", "/nonexistent/ssh12-host-key");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn decnet-decky");
        let stdout = lines(child.stdout.take().expect("stdout"));
        let stderr = lines(child.stderr.take().expect("stderr"));
        let d = Decky {
            child: Some(child),
            stdout,
            stderr,
            port,
        };
        // An ssh service first says which host key it serves.
        let mut line = d
            .stderr
            .recv_timeout(WAIT)
            .expect("start-up line on stderr");
        while line.contains("ssh host key") {
            line = d
                .stderr
                .recv_timeout(WAIT)
                .expect("start-up line on stderr");
        }
        assert!(line.contains("serving"), "unexpected start-up line: {line}");
        d
    }

    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        s.set_read_timeout(Some(WAIT)).expect("timeout");
        s.set_write_timeout(Some(WAIT)).expect("timeout");
        s
    }

    /// The next JSON event from stdout, of any kind.
    pub fn next_event(&self) -> Value {
        let line = self
            .stdout
            .recv_timeout(WAIT)
            .expect("an event line on stdout");
        let v: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            decnet_core::model::attack::AttackEvent::parse_line(&line).is_some(),
            "not an attacker event of the schema: {line}"
        );
        v
    }

    /// The next summary event — a session's `disconnect`, a `datagram` or a `rejected` —
    /// skipping the step events before it.
    pub fn event(&self) -> Value {
        loop {
            let v = self.next_event();
            if matches!(
                v["kind"].as_str(),
                Some("disconnect" | "datagram" | "rejected")
            ) {
                return v;
            }
        }
    }

    /// The events of the next session, up to and including its `disconnect`.
    pub fn session_events(&self) -> Vec<Value> {
        let mut out = Vec::new();
        loop {
            let v = self.next_event();
            let done = v["kind"] == "disconnect";
            out.push(v);
            if done {
                return out;
            }
        }
    }

    /// No further event within `wait`.
    pub fn assert_no_event(&self, wait: Duration) {
        if let Ok(line) = self.stdout.recv_timeout(wait) {
            panic!("unexpected extra event: {line}");
        }
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.as_ref().map_or(0, |c| c.id() as i32))
    }

    /// SIGTERM, then the exit status (fails after [`WAIT`]).
    pub fn terminate(mut self) -> ExitStatus {
        let mut child = self.child.take().expect("child");
        terminate(&mut child, Signal::SIGTERM)
    }
}

impl Drop for Decky {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn terminate(child: &mut Child, sig: Signal) -> ExitStatus {
    kill(Pid::from_raw(child.id() as i32), sig).expect("kill");
    wait_exit(child)
}

pub fn wait_exit(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            return st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("decnet-decky did not exit in time");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Reads until `needle` has arrived (or EOF/timeout), returns all read.
pub fn read_until(s: &mut impl Read, needle: &str) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&got).contains(needle) {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

pub fn read_to_end(s: &mut impl Read) -> Vec<u8> {
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    got
}

/// Checks the fixed part of a TCP session's `disconnect` event.
pub fn assert_connection_event(ev: &Value, service: &str, port: u16) {
    assert_eq!(ev["v"], 1, "{ev}");
    assert_eq!(ev["service"], service, "{ev}");
    assert_eq!(ev["decky"], DECKY, "{ev}");
    assert_eq!(ev["protocol"], "tcp", "{ev}");
    assert_eq!(ev["kind"], "disconnect", "{ev}");
    assert_eq!(ev["src_ip"], "127.0.0.1", "{ev}");
    assert_eq!(ev["dst_ip"], "127.0.0.1", "{ev}");
    assert_eq!(ev["dst_port"], u64::from(port), "{ev}");
    assert!(ev["src_port"].as_u64().is_some_and(|p| p > 0), "{ev}");
    assert!(ev["details"]["bytes_in"].is_u64(), "{ev}");
    assert!(ev["details"]["duration_ms"].is_u64(), "{ev}");
    assert!(ev["seq"].as_u64().is_some_and(|s| s > 0), "{ev}");
    let ts = ev["ts"].as_str().expect("ts");
    assert!(ts.ends_with('Z') && ts.as_bytes()[10] == b'T', "{ts}");
}

/// `timeout <secs> <name>`, after checking `name` is installed (`package` provides it): a
/// missing client fails the test saying what to install, never skips it.
pub fn tool_with_timeout(name: &str, package: &str, secs: u32) -> Command {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{name} is required for this test (apt-get install {package})"
    );
    let mut c = Command::new("timeout");
    c.arg(secs.to_string()).arg(name).stdin(Stdio::null());
    c
}

//! Docker's hijacked streams. `POST /exec/{id}/start` and `POST /containers/{id}/attach`
//! answer `101 UPGRADED` (with `Upgrade: tcp`; `200 OK` without it) and the connection then
//! carries the container's stdin and stdout: raw bytes with a TTY, otherwise stdout in
//! Docker's multiplexed frames (`[stream, 0, 0, 0, len u32 BE]` + payload) and stdin raw.
//!
//! Behind the stream is the SSH/telnet fake shell ([`crate::protocols::shell`]) as root in the
//! container: an interactive `sh`/`bash` gets a prompt and runs every line, `sh -c …` and any
//! other command run once. Every simple command is a `command` event (the shell reports it).
//! The execs and containers created on earlier connections are kept in a bounded table
//! ([`Objects`]) so the start, the attach and the exit code (`GET /exec/{id}/json`) find them.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::Mutex;

use super::Request;
use crate::log::Reporter;
use crate::protocols::shell::{crlf, Key, LineEditor, Shell, MAX_SESSION_COMMANDS};
use crate::protocols::{Conn, Peer, ServiceCtx};

/// Execs and containers remembered per decky (oldest forgotten first).
pub const MAX_OBJECTS: usize = 256;
/// Bytes of a remembered command line.
pub const MAX_CMD_BYTES: usize = 4096;
/// Bytes of one line of stdin without a TTY.
const MAX_LINE: usize = 4096;

/// An exec instance or a container created through the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// The container's full id (an exec's container, or the container itself).
    pub container: String,
    /// Its image (containers only; empty for execs).
    pub image: String,
    /// Entrypoint and command, as the client sent them (bounded).
    pub cmd: Vec<String>,
    pub tty: bool,
    /// Whether stdin is attached (`AttachStdin` of an exec, `OpenStdin` of a container).
    pub stdin: bool,
    /// The exit code once its stream ended.
    pub exit_code: Option<u32>,
}

/// The bounded table of [`Spec`]s by id.
#[derive(Debug, Default)]
pub struct Objects {
    inner: Mutex<VecDeque<(String, Spec)>>,
}

impl Objects {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(String, Spec)>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Remembers `spec` under `id`; its command is cut to [`MAX_CMD_BYTES`] so the table stays
    /// small (at most [`MAX_OBJECTS`] × that).
    pub fn insert(&self, id: &str, mut spec: Spec) {
        let mut left = MAX_CMD_BYTES;
        spec.cmd.retain_mut(|a| {
            if left == 0 {
                return false;
            }
            if a.len() > left {
                let mut end = left;
                while !a.is_char_boundary(end) {
                    end -= 1;
                }
                a.truncate(end);
            }
            left -= a.len().min(left);
            true
        });
        let mut t = self.lock();
        t.retain(|(k, _)| k != id);
        if t.len() >= MAX_OBJECTS {
            t.pop_front();
        }
        t.push_back((id.to_owned(), spec));
    }

    /// The object whose id is `key`, or starts with it (at least 4 characters, like Docker's
    /// short ids).
    pub fn get(&self, key: &str) -> Option<(String, Spec)> {
        let t = self.lock();
        t.iter()
            .find(|(k, _)| k == key)
            .or_else(|| {
                (key.len() >= 4)
                    .then(|| t.iter().find(|(k, _)| k.starts_with(key)))
                    .flatten()
            })
            .cloned()
    }

    fn finish(&self, id: &str, code: u32) {
        if let Some((_, s)) = self.lock().iter_mut().find(|(k, _)| k == id) {
            s.exit_code = Some(code);
        }
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The head Docker writes before the raw stream (no `Content-Length`, no `Date`: the
/// connection is no longer HTTP). `server` is the `Server` header of the persona.
pub fn head(req: &Request, server: &str) -> Vec<u8> {
    let upgrade = req
        .header("upgrade")
        .is_some_and(|u| u.eq_ignore_ascii_case("tcp"));
    let mut out = String::new();
    if upgrade {
        out.push_str(
            "HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n\
             Connection: Upgrade\r\nUpgrade: tcp\r\n",
        );
    } else {
        out.push_str("HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.raw-stream\r\n");
    }
    out.push_str(&format!(
        "Api-Version: 1.41\r\nDocker-Experimental: false\r\nOstype: linux\r\nServer: {server}\r\n\r\n"
    ));
    out.into_bytes()
}

/// What the stream runs.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Mode {
    /// An interactive shell; `dash`: `sh`/`ash`/`dash`, whose prompt is `# `.
    Shell { dash: bool },
    /// One command line, then the stream ends.
    Once(String),
    /// A daemon's output (attach to a bait container): nothing until the client leaves.
    Idle,
}

const SHELLS: &[&str] = &["sh", "ash", "dash", "bash", "zsh"];

fn mode(cmd: &[String], attach: bool) -> Mode {
    let Some(prog) = cmd.first() else {
        return Mode::Shell { dash: true };
    };
    let base = prog.rsplit('/').next().unwrap_or(prog);
    if SHELLS.contains(&base) {
        let mut rest = cmd[1..].iter();
        while let Some(a) = rest.next() {
            if a == "-c" {
                let script: Vec<&str> = rest.map(String::as_str).take(1).collect();
                return Mode::Once(script.concat());
            }
            if !a.starts_with('-') {
                // `sh script.sh`: run it as the shell would.
                return Mode::Once(cmd[1..].join(" "));
            }
        }
        return Mode::Shell {
            dash: base != "bash" && base != "zsh",
        };
    }
    if attach {
        Mode::Idle
    } else {
        Mode::Once(cmd.join(" "))
    }
}

/// One stdout frame of Docker's multiplexed stream.
fn frame(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + text.len());
    out.push(1);
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(&u32::try_from(text.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(text.as_bytes());
    out
}

/// Serves the hijacked stream of object `id` after its head was sent; `attach`: a container
/// attach rather than an exec start. `tty` is the TTY flag of the start request (an exec's
/// start repeats it), else the object's.
pub fn serve<S: Read + Write>(
    conn: &mut Conn<S>,
    ctx: &ServiceCtx,
    peer: &Peer,
    report: &Reporter,
    id: &str,
    spec: &Spec,
    attach: bool,
) -> io::Result<()> {
    let short: String = spec.container.chars().take(12).collect();
    let mut sh = Shell::new("root", ctx, peer, report).in_container(&short, "/");
    let tty = spec.tty;
    let send = |conn: &mut Conn<S>, text: &str| {
        if text.is_empty() {
            return Ok(());
        }
        if tty {
            conn.send(crlf(text).as_bytes())
        } else {
            conn.send(&frame(text))
        }
    };
    let mut status = 0;
    match mode(&spec.cmd, attach) {
        Mode::Once(line) => {
            let out = sh.run(&line);
            status = out.status;
            send(conn, &out.text)?;
        }
        Mode::Idle => while !conn.read_some()?.is_empty() {},
        Mode::Shell { .. } if !spec.stdin => {}
        Mode::Shell { dash } => {
            let prompt = |sh: &Shell| {
                if dash {
                    "# ".to_owned()
                } else {
                    sh.prompt()
                }
            };
            if tty {
                conn.send(prompt(&sh).as_bytes())?;
                let mut editor = LineEditor::default();
                let mut keys = Vec::new();
                'session: loop {
                    let data = conn.read_some()?;
                    if data.is_empty() {
                        break;
                    }
                    keys.clear();
                    editor.feed(&data, &mut keys);
                    for k in keys.drain(..) {
                        match k {
                            Key::Echo(b) => conn.send(&b)?,
                            Key::Line(l) => {
                                let out = sh.run(&l);
                                status = out.status;
                                if out.exit {
                                    send(conn, &out.text)?;
                                    break 'session;
                                }
                                send(conn, &format!("{}{}", out.text, prompt(&sh)))?;
                            }
                            Key::Interrupt => conn.send(prompt(&sh).as_bytes())?,
                            Key::Eof => {
                                conn.send(b"exit\r\n")?;
                                break 'session;
                            }
                        }
                    }
                }
            } else {
                // Without a TTY the shell reads stdin line by line and prints no prompt.
                for _ in 0..MAX_SESSION_COMMANDS {
                    let Some(line) = conn.read_line(MAX_LINE)? else {
                        break;
                    };
                    let out = sh.run(&String::from_utf8_lossy(&line));
                    status = out.status;
                    send(conn, &out.text)?;
                    if out.exit {
                        break;
                    }
                }
            }
        }
    }
    ctx.docker.finish(id, status);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::AttackKind;
    use crate::protocols::testing::{ctx, peer, reporter, Mock};
    use proptest::prelude::*;

    fn spec(cmd: &[&str], tty: bool, stdin: bool) -> Spec {
        Spec {
            container: "0575e662771e".repeat(5) + "abcd",
            image: String::new(),
            cmd: v(cmd),
            tty,
            stdin,
            exit_code: None,
        }
    }

    /// Serves `input` as the stream of `spec`; (output, commands reported, exit code kept).
    fn stream(spec: &Spec, attach: bool, input: &[u8]) -> (Vec<u8>, Vec<String>, Option<u32>) {
        let c = ctx("docker_api", serde_json::json!({}));
        c.docker.insert("e1", spec.clone());
        let (report, sink) = reporter("docker_api", 2375);
        let mut m = Mock::new(input);
        let mut conn = Conn::new(&mut m);
        serve(&mut conn, &c, &peer(2375), &report, "e1", spec, attach).expect("stream");
        let cmds = sink
            .events()
            .iter()
            .filter(|e| e.kind == AttackKind::Command)
            .filter_map(|e| e.details.command.clone())
            .collect();
        let code = c.docker.get("e1").and_then(|(_, s)| s.exit_code);
        (m.output, cmds, code)
    }

    #[test]
    fn tty_and_plain_streams() {
        let (out, cmds, code) = stream(&spec(&["sh"], true, true), false, b"id\rexit\r");
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("# id\r\nuid=0(root)"), "{text}");
        assert_eq!(cmds, ["id", "exit"]);
        assert_eq!(code, Some(0));
        // Without a TTY: Docker's stdout frames, no prompt, no echo.
        let (out, cmds, _) = stream(&spec(&["bash"], false, true), false, b"hostname\n");
        assert_eq!(&out[..8], b"\x01\x00\x00\x00\x00\x00\x00\x0d", "{out:?}");
        assert_eq!(&out[8..], b"0575e662771e\n");
        assert_eq!(cmds, ["hostname"]);
        // A command runs once; a daemon's attach stays silent; a shell without stdin ends.
        let (_, cmds, code) = stream(&spec(&["cat", "/nope"], false, false), false, b"");
        assert_eq!((cmds, code), (vec!["cat /nope".to_owned()], Some(1)));
        let (out, cmds, _) = stream(
            &spec(&["nginx", "-g", "daemon off;"], false, false),
            true,
            b"xx",
        );
        assert!(out.is_empty() && cmds.is_empty());
        let (out, _, _) = stream(&spec(&["sh"], false, false), true, b"id\n");
        assert!(out.is_empty());
    }

    proptest! {
        #[test]
        fn arbitrary_stdin_never_panics(
            input in proptest::collection::vec(any::<u8>(), 0..4096),
            tty in any::<bool>(),
        ) {
            let (out, cmds, _) = stream(&spec(&["sh"], tty, true), false, &input);
            prop_assert!(cmds.len() <= MAX_SESSION_COMMANDS);
            prop_assert!(out.len() <= 64 * 1024 + input.len() * 256);
        }
    }

    fn v(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn modes() {
        let check = |cmd: &[&str], attach: bool, expect: Mode| {
            assert_eq!(mode(&v(cmd), attach), expect, "{cmd:?} attach={attach}");
        };
        check(&["sh"], false, Mode::Shell { dash: true });
        check(&["/bin/bash", "-l"], false, Mode::Shell { dash: false });
        check(
            &["sh", "-c", "id; uname -a"],
            false,
            Mode::Once("id; uname -a".into()),
        );
        check(
            &["cat", "/etc/shadow"],
            false,
            Mode::Once("cat /etc/shadow".into()),
        );
        check(&["nginx", "-g", "daemon off;"], true, Mode::Idle);
        check(&[], true, Mode::Shell { dash: true });
    }

    #[test]
    fn frames_and_table() {
        assert_eq!(frame("hi"), b"\x01\x00\x00\x00\x00\x00\x00\x02hi");
        let t = Objects::default();
        let spec = Spec {
            container: "c".repeat(64),
            image: String::new(),
            cmd: v(&["sh"]),
            tty: true,
            stdin: true,
            exit_code: None,
        };
        for i in 0..MAX_OBJECTS + 5 {
            t.insert(&format!("{i:064x}"), spec.clone());
        }
        assert_eq!(t.len(), MAX_OBJECTS);
        assert!(t.get(&format!("{:064x}", 0)).is_none());
        let last = format!("{:064x}", MAX_OBJECTS + 4);
        assert!(t.get(&last).is_some());
        t.finish(&last, 127);
        assert_eq!(t.get(&last).map(|(_, s)| s.exit_code), Some(Some(127)));
        assert!(t.get("000").is_none(), "short keys are not prefixes");
        let mut long = spec.clone();
        long.cmd = vec!["x".repeat(1000); 64];
        t.insert("long", long);
        let cmd = t.get("long").map(|(_, s)| s.cmd).unwrap_or_default();
        assert_eq!(cmd.len(), 5);
        assert_eq!(cmd.iter().map(String::len).sum::<usize>(), MAX_CMD_BYTES);
    }
}

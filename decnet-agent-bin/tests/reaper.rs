#![allow(clippy::unwrap_used)]
//! Self-destruct against a temporary root, with recorded units and fake launch programs:
//! never the real system, never the real systemd-run/systemctl.

use std::cell::RefCell;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use decnet_agent::reaper::{
    parse_reaper_paths, reap, reap_from_file, Launcher, ReaperPlan, SystemdRunLauncher,
    UnitControl, DEFAULT_UNITS,
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

/// A stand-in program that writes its arguments, one per line, to `<dir>/args`.
fn recorder(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    fs::write(
        &p,
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do echo \"$a\"; done > {}/args.tmp\nmv {0}/args.tmp {0}/args\n",
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

#[test]
fn launcher_goes_through_systemd_run_with_a_collected_unit() {
    let tmp = tempfile::tempdir().unwrap();
    let fake_systemd_run = recorder(tmp.path(), "systemd-run");
    let plan_dir = tmp.path().join("state");
    let launcher = SystemdRunLauncher {
        exe: PathBuf::from("/usr/local/bin/decnet-agent"),
        plan_dir: plan_dir.clone(),
        pid: 4242,
        systemd_run: Some(fake_systemd_run),
    };
    let plan = ReaperPlan::new(vec!["/opt/decnet".into()]);
    launcher.launch(&plan).unwrap();
    let args = wait_for_args(tmp.path());
    assert!(args.contains(&"--collect".to_string()), "{args:?}");
    let unit = args.iter().position(|a| a == "--unit").unwrap();
    assert_eq!(args[unit + 1], "decnet-reaper-4242");
    let n = args.len();
    assert_eq!(
        args[n - 4..n - 1],
        ["/usr/local/bin/decnet-agent", "reap", "--plan"]
    );
    // The plan file it names holds the plan, private.
    let plan_file = PathBuf::from(&args[n - 1]);
    assert!(plan_file.starts_with(&plan_dir));
    let back: ReaperPlan = serde_json::from_slice(&fs::read(&plan_file).unwrap()).unwrap();
    assert_eq!(back, plan);
    assert_eq!(
        fs::metadata(&plan_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn launcher_without_systemd_run_spawns_the_agent_detached() {
    let tmp = tempfile::tempdir().unwrap();
    let fake_agent = recorder(tmp.path(), "decnet-agent");
    let launcher = SystemdRunLauncher {
        exe: fake_agent,
        plan_dir: tmp.path().join("state"),
        pid: 7,
        systemd_run: None,
    };
    launcher
        .launch(&ReaperPlan::new(vec!["/opt/decnet".into()]))
        .unwrap();
    let args = wait_for_args(tmp.path());
    assert_eq!(args[..2], ["reap", "--plan"]);
    assert!(Path::new(&args[2]).exists());
}

#[test]
fn a_failing_systemd_run_is_an_error_and_leaves_no_plan() {
    let tmp = tempfile::tempdir().unwrap();
    let failing = tmp.path().join("systemd-run");
    fs::write(
        &failing,
        "#!/bin/sh\necho 'Failed to start transient unit' >&2\nexit 1\n",
    )
    .unwrap();
    fs::set_permissions(&failing, fs::Permissions::from_mode(0o755)).unwrap();
    let plan_dir = tmp.path().join("state");
    let launcher = SystemdRunLauncher {
        exe: PathBuf::from("/usr/local/bin/decnet-agent"),
        plan_dir: plan_dir.clone(),
        pid: 1,
        systemd_run: Some(failing),
    };
    let e = launcher.launch(&ReaperPlan::new(vec![])).unwrap_err();
    assert!(e.contains("Failed to start transient unit"), "{e}");
    assert_eq!(fs::read_dir(&plan_dir).unwrap().count(), 0);
}

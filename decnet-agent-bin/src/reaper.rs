//! Self-destruct support (PRODUCT §4, §5): after the agent tore its deckies down, a detached
//! reaper stops the units `decnet init --systemd` installed and removes an explicit allow-list
//! of paths (`DECNET_REAPER_PATHS`), keeping logs.
//!
//! Unlike the original's hard-coded `rm -rf /opt/decnet* /etc/decnet …` bash script, nothing is
//! removed unless it is listed; `/`, relative paths and `..` are refused; symlinks are removed
//! as links, never followed; and paths are taken relative to a `root` so tests reap a
//! temporary directory, never the real system.
//!
//! The reaper must outlive the agent's own unit (`systemctl stop decnet-agent` kills the
//! agent's cgroup), so [`SystemdRunLauncher`] starts it as a transient unit
//! (`systemd-run --collect --unit decnet-reaper-<pid>`) when systemd is running, or else as a
//! detached process group. "Running" means `/run/systemd/system` is a directory (what
//! `sd_booted()` checks): the `systemd-run` binary alone proves nothing — in a container, a
//! chroot or a CI machine it exits 1 ("System has not been booted with systemd"). When
//! `systemd-run` fails anyway, the launcher falls back to the process group and logs why.
//!
//! The detached process runs `decnet-agent reap --plan <file> --ready <file>`, whose body is
//! [`run_reap_command`]: it reads (and deletes) its plan, then creates the ready file. The
//! launcher succeeds only once that file exists (bounded wait), so the agent answers
//! `self_destruct_scheduled` only when a reaper really runs.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The environment variable holding the allow-list (colon-separated absolute paths).
pub const REAPER_PATHS_ENV: &str = "DECNET_REAPER_PATHS";
/// The units `decnet init --systemd` installs.
pub const DEFAULT_UNITS: &[&str] = &[
    "decnet-agent.service",
    "decnet-master.service",
    "decnet.target",
];
/// What is never removed, even under an allowed parent: the logs.
pub const DEFAULT_KEEP: &[&str] = &["/var/log/decnet"];
/// How long the reaper waits before acting, so the agent's HTTP answer gets out.
pub const REAP_DELAY: Duration = Duration::from_secs(3);
/// The directory that exists while systemd runs as the init system (`sd_booted()`).
pub const SYSTEMD_RUNTIME_DIR: &str = "/run/systemd/system";
/// How long the launcher waits for the reaper to confirm it started.
pub const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// Errors of the reaper's input.
#[derive(Debug, thiserror::Error)]
pub enum ReaperError {
    #[error("reaper path {0:?} is the root directory: refused")]
    Root(PathBuf),
    #[error("reaper path {0:?} is relative: only absolute paths are allowed")]
    Relative(PathBuf),
    #[error("reaper path {0:?} contains '..': refused")]
    Traversal(PathBuf),
    #[error("unit {0:?} was not installed by decnet (names start with \"decnet\"): refused")]
    Unit(String),
    #[error("reaper plan {path}: {source}")]
    PlanIo {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("reaper plan {path}: {source}")]
    PlanJson {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// Checks one allow-listed path: absolute, not `/`, no `..`.
pub fn check_path(path: &Path) -> Result<(), ReaperError> {
    let mut comps = path.components();
    if comps.next() != Some(Component::RootDir) {
        return Err(ReaperError::Relative(path.to_path_buf()));
    }
    let mut normal = 0usize;
    for c in comps {
        match c {
            Component::Normal(_) => normal += 1,
            Component::ParentDir => return Err(ReaperError::Traversal(path.to_path_buf())),
            // `Path` drops inner `.`; a prefix or second root cannot occur on Unix.
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    if normal == 0 {
        return Err(ReaperError::Root(path.to_path_buf()));
    }
    Ok(())
}

/// Parses `DECNET_REAPER_PATHS`: colon-separated absolute paths; empty (or only colons) →
/// nothing. Any `/`, relative path or path with `..` refuses the whole value.
pub fn parse_reaper_paths(value: &str) -> Result<Vec<PathBuf>, ReaperError> {
    let mut out = Vec::new();
    for part in value.split(':').filter(|p| !p.is_empty()) {
        let p = PathBuf::from(part);
        check_path(&p)?;
        if !out.contains(&p) {
            out.push(p);
        }
    }
    Ok(out)
}

/// Checks a unit name: only the project's own units may be stopped.
pub fn check_unit(unit: &str) -> Result<(), ReaperError> {
    let ok = unit.starts_with("decnet")
        && unit
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'@'));
    if ok {
        Ok(())
    } else {
        Err(ReaperError::Unit(unit.to_string()))
    }
}

/// What the reaper does: the units to stop and disable, the paths to remove, the paths to
/// keep. Serialised as JSON into the plan file the detached reaper reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReaperPlan {
    pub units: Vec<String>,
    pub paths: Vec<PathBuf>,
    pub keep: Vec<PathBuf>,
}

impl ReaperPlan {
    /// The installed units ([`DEFAULT_UNITS`]), these paths, logs kept ([`DEFAULT_KEEP`]).
    pub fn new(paths: Vec<PathBuf>) -> Self {
        Self {
            units: DEFAULT_UNITS.iter().map(|u| u.to_string()).collect(),
            paths,
            keep: DEFAULT_KEEP.iter().map(PathBuf::from).collect(),
        }
    }
}

/// What the reaper did. Paths are as the plan names them (absolute, without the root).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReapReport {
    pub stopped: Vec<String>,
    pub disabled: Vec<String>,
    pub removed: Vec<PathBuf>,
    pub kept: Vec<PathBuf>,
    pub errors: Vec<String>,
}

impl ReapReport {
    pub fn ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Stops and disables systemd units. Tests inject a recorder; [`Systemctl`] runs `systemctl`.
pub trait UnitControl {
    fn stop(&self, unit: &str) -> Result<(), String>;
    fn disable(&self, unit: &str) -> Result<(), String>;
    fn daemon_reload(&self) -> Result<(), String>;
}

/// The real [`UnitControl`]: `systemctl stop|disable <unit>`, `systemctl daemon-reload`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Systemctl;

impl Systemctl {
    fn run(args: &[&str]) -> Result<(), String> {
        let out = Command::new("systemctl")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("systemctl {}: {e}", args.join(" ")))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "systemctl {}: {}: {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }
}

impl UnitControl for Systemctl {
    fn stop(&self, unit: &str) -> Result<(), String> {
        Self::run(&["stop", unit])
    }
    fn disable(&self, unit: &str) -> Result<(), String> {
        Self::run(&["disable", unit])
    }
    fn daemon_reload(&self) -> Result<(), String> {
        Self::run(&["daemon-reload"])
    }
}

/// `path` (absolute, checked) under `root`.
fn rebase(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

/// Carries out `plan` under `root` (`/` in production): stops and disables the units, removes
/// each allowed path that exists — never anything under a `keep` path, never through a symlink
/// — then reloads systemd. Every problem is reported; none stops the rest.
pub fn reap(plan: &ReaperPlan, root: &Path, units: &dyn UnitControl) -> ReapReport {
    let mut report = ReapReport::default();
    let span = tracing::info_span!("reap", root = %root.display());
    let _guard = span.enter();

    for unit in &plan.units {
        if let Err(e) = check_unit(unit) {
            report.errors.push(e.to_string());
            continue;
        }
        match units.stop(unit) {
            Ok(()) => report.stopped.push(unit.clone()),
            Err(e) => report.errors.push(e),
        }
        match units.disable(unit) {
            Ok(()) => report.disabled.push(unit.clone()),
            Err(e) => report.errors.push(e),
        }
    }

    let mut keep_ok = true;
    for k in &plan.keep {
        // A bad keep path could mean keeping less than intended: remove nothing then.
        if let Err(e @ (ReaperError::Relative(_) | ReaperError::Traversal(_))) = check_path(k) {
            report
                .errors
                .push(format!("{e}; nothing removed (keep list)"));
            keep_ok = false;
        }
    }
    if keep_ok {
        for path in &plan.paths {
            if let Err(e) = check_path(path) {
                tracing::warn!(error = %e, "reaper path refused");
                report.errors.push(e.to_string());
                continue;
            }
            remove_allowed(path, root, &plan.keep, &mut report);
        }
    }

    if !plan.units.is_empty() {
        if let Err(e) = units.daemon_reload() {
            report.errors.push(e);
        }
    }
    tracing::info!(
        stopped = report.stopped.len(),
        removed = report.removed.len(),
        kept = report.kept.len(),
        errors = report.errors.len(),
        "reap finished"
    );
    report
}

fn is_kept(path: &Path, keep: &[PathBuf]) -> bool {
    keep.iter().any(|k| path.starts_with(k))
}

fn remove_allowed(path: &Path, root: &Path, keep: &[PathBuf], report: &mut ReapReport) {
    if is_kept(path, keep) {
        report.kept.push(path.to_path_buf());
        return;
    }
    // No ancestor between the root and the path may be a symlink: that would lead out of it.
    let mut ancestors: Vec<&Path> = path
        .ancestors()
        .skip(1)
        .filter(|a| a.parent().is_some())
        .collect();
    ancestors.reverse();
    for a in ancestors {
        match fs::symlink_metadata(rebase(root, a)) {
            Ok(md) if md.file_type().is_symlink() => {
                report.errors.push(format!(
                    "{}: parent {} is a symlink; not followed",
                    path.display(),
                    a.display()
                ));
                return;
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return,
            Err(e) => {
                report
                    .errors
                    .push(format!("{}: inspect {}: {e}", path.display(), a.display()));
                return;
            }
        }
    }
    remove_tree(path, &rebase(root, path), keep, report);
}

/// Removes `target` (the plan path `path` under the root), keeping every `keep` path inside.
fn remove_tree(path: &Path, target: &Path, keep: &[PathBuf], report: &mut ReapReport) {
    if is_kept(path, keep) {
        report.kept.push(path.to_path_buf());
        return;
    }
    let md = match fs::symlink_metadata(target) {
        Ok(md) => md,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return,
        Err(e) => {
            report.errors.push(format!("{}: {e}", path.display()));
            return;
        }
    };
    // `symlink_metadata` does not follow links: a symlink is never a directory here.
    let result = if md.is_dir() {
        if keep.iter().any(|k| k.starts_with(path)) {
            // A kept path lies inside: remove around it, keep the directory itself.
            let entries = match fs::read_dir(target) {
                Ok(e) => e,
                Err(e) => {
                    report.errors.push(format!("{}: {e}", path.display()));
                    return;
                }
            };
            for entry in entries {
                match entry {
                    Ok(entry) => {
                        let name = entry.file_name();
                        remove_tree(&path.join(&name), &target.join(&name), keep, report);
                    }
                    Err(e) => report.errors.push(format!("{}: {e}", path.display())),
                }
            }
            return;
        }
        // std's remove_dir_all never follows symlinks inside the tree.
        fs::remove_dir_all(target)
    } else {
        fs::remove_file(target)
    };
    match result {
        Ok(()) => {
            tracing::info!(path = %path.display(), "removed");
            report.removed.push(path.to_path_buf());
        }
        Err(e) => report
            .errors
            .push(format!("remove {}: {e}", path.display())),
    }
}

/// Reads a plan file and deletes it.
pub fn load_plan(plan_path: &Path) -> Result<ReaperPlan, ReaperError> {
    let text = fs::read(plan_path).map_err(|source| ReaperError::PlanIo {
        path: plan_path.to_path_buf(),
        source,
    })?;
    let plan: ReaperPlan =
        serde_json::from_slice(&text).map_err(|source| ReaperError::PlanJson {
            path: plan_path.to_path_buf(),
            source,
        })?;
    if let Err(e) = fs::remove_file(plan_path) {
        tracing::warn!(path = %plan_path.display(), error = %e, "cannot remove the reaper plan file");
    }
    Ok(plan)
}

/// Reads a plan file, deletes it, and reaps under `root` (no delay).
pub fn reap_from_file(
    plan_path: &Path,
    root: &Path,
    units: &dyn UnitControl,
) -> Result<ReapReport, ReaperError> {
    Ok(reap(&load_plan(plan_path)?, root, units))
}

/// Refuses every unit: under a root other than `/` (tests) the system's units are never
/// touched, whatever the plan lists.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoUnits;

impl UnitControl for NoUnits {
    fn stop(&self, unit: &str) -> Result<(), String> {
        Err(format!(
            "unit {unit}: not stopped (reaping under a test root)"
        ))
    }
    fn disable(&self, unit: &str) -> Result<(), String> {
        Err(format!(
            "unit {unit}: not disabled (reaping under a test root)"
        ))
    }
    fn daemon_reload(&self) -> Result<(), String> {
        Ok(())
    }
}

/// The arguments of `decnet-agent reap`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReapArgs {
    /// The plan file (read, then deleted).
    pub plan: PathBuf,
    /// Created once the plan is read: the launcher waits for it.
    pub ready: Option<PathBuf>,
    /// `/` in production; tests reap a temporary directory (and then stop no units).
    pub root: PathBuf,
    /// Waited after the ready file, before reaping.
    pub delay: Duration,
}

/// Creates the ready file (`ready <pid>`), which the launcher waits for.
fn signal_ready(path: &Path) -> io::Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    writeln!(f, "ready {}", std::process::id())?;
    f.sync_all()
}

/// The body of `decnet-agent reap`: reads the plan, confirms it started (the ready file),
/// waits `delay` (so the agent's answer gets out), then reaps `root` — through `systemctl`
/// only when the root is `/`.
/// Exit 0 when everything went, 1 when something could not be done, 2 for an unusable plan.
pub fn run_reap_command(args: &ReapArgs) -> ExitCode {
    if !args.root.is_absolute() {
        tracing::error!(root = %args.root.display(), "reaper root must be absolute");
        return ExitCode::from(2);
    }
    let plan = match load_plan(&args.plan) {
        Ok(plan) => plan,
        Err(e) => {
            tracing::error!(error = %e, "reaper cannot start");
            return ExitCode::from(2);
        }
    };
    if let Some(ready) = &args.ready {
        if let Err(e) = signal_ready(ready) {
            tracing::error!(path = %ready.display(), error = %e, "reaper cannot confirm it started");
            return ExitCode::from(2);
        }
    }
    std::thread::sleep(args.delay);
    let system = args.root == Path::new("/");
    let units: &dyn UnitControl = if system { &Systemctl } else { &NoUnits };
    let report = reap(&plan, &args.root, units);
    for e in &report.errors {
        tracing::error!(error = %e, "reaper");
    }
    tracing::info!(
        stopped = ?report.stopped,
        removed = ?report.removed,
        kept = ?report.kept,
        "self-destruct finished"
    );
    if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Starts the detached reaper. Tests inject a recorder; [`SystemdRunLauncher`] is the real one.
pub trait Launcher: Send + Sync {
    fn launch(&self, plan: &ReaperPlan) -> Result<(), String>;
}

/// A program and its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine {
    pub program: PathBuf,
    pub args: Vec<OsString>,
}

impl CommandLine {
    /// Everything, for logs and tests.
    pub fn to_vec(&self) -> Vec<OsString> {
        std::iter::once(self.program.clone().into_os_string())
            .chain(self.args.iter().cloned())
            .collect()
    }
}

/// The transient unit's name: `decnet-reaper-<pid of the agent>`.
pub fn reaper_unit_name(pid: u32) -> String {
    format!("decnet-reaper-{pid}")
}

/// The reaper's command line: through `systemd-run` when given (its own transient unit, so
/// stopping the agent's unit does not kill it), else the agent binary itself. The reap
/// arguments come last: `reap --plan <file> --ready <file> --delay-ms <ms> [--root <dir>]`
/// (`--root` only when it is not `/`).
pub fn reaper_command(
    exe: &Path,
    reap: &ReapArgs,
    pid: u32,
    systemd_run: Option<&Path>,
) -> CommandLine {
    let mut reap_args: Vec<OsString> =
        vec!["reap".into(), "--plan".into(), reap.plan.clone().into()];
    if let Some(ready) = &reap.ready {
        reap_args.extend(["--ready".into(), ready.clone().into()]);
    }
    reap_args.extend([
        "--delay-ms".into(),
        reap.delay.as_millis().to_string().into(),
    ]);
    if reap.root != Path::new("/") {
        reap_args.extend(["--root".into(), reap.root.clone().into()]);
    }
    match systemd_run {
        Some(systemd_run) => CommandLine {
            program: systemd_run.to_path_buf(),
            args: [
                OsString::from("--collect"),
                "--quiet".into(),
                "--unit".into(),
                reaper_unit_name(pid).into(),
                "--description".into(),
                "DECNET agent self-destruct reaper".into(),
                exe.into(),
            ]
            .into_iter()
            .chain(reap_args)
            .collect(),
        },
        None => CommandLine {
            program: exe.to_path_buf(),
            args: reap_args,
        },
    }
}

/// Whether systemd runs as the init system: `dir` (`/run/systemd/system`,
/// [`SYSTEMD_RUNTIME_DIR`]) is a directory.
pub fn systemd_running(dir: &Path) -> bool {
    dir.is_dir()
}

/// How the launcher starts the reaper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LaunchMethod {
    /// A transient unit through this `systemd-run`.
    SystemdRun(PathBuf),
    /// A detached process group; why `systemd-run` is not used.
    ProcessGroup { reason: String },
}

/// Finds `name` in a `PATH`-style value (first executable file wins).
pub fn find_program(name: &str, path_var: Option<&OsStr>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path_var = path_var?;
    std::env::split_paths(path_var)
        .filter(|d| d.is_absolute())
        .map(|d| d.join(name))
        .find(|p| {
            fs::metadata(p)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

/// The real [`Launcher`]: writes the plan (0600) into `plan_dir` and starts
/// `<exe> reap --plan <file> --ready <file>` through `systemd-run` (when systemd runs) or as a
/// detached process group, then waits until the reaper confirms it started.
///
/// `plan_dir` must be visible to the reaper: use the agent's state directory, not `/tmp` —
/// a hardened unit's `PrivateTmp=` hides the agent's `/tmp` from the transient reaper unit.
#[derive(Debug, Clone)]
pub struct SystemdRunLauncher {
    pub exe: PathBuf,
    pub plan_dir: PathBuf,
    pub pid: u32,
    /// The `systemd-run` binary, if installed.
    pub systemd_run: Option<PathBuf>,
    /// Where to look for a running systemd ([`SYSTEMD_RUNTIME_DIR`]).
    pub systemd_dir: PathBuf,
    /// What the reaper reaps under: `/`, or a temporary root in tests.
    pub root: PathBuf,
    /// The reaper's wait before acting ([`REAP_DELAY`]).
    pub delay: Duration,
    /// How long to wait for the reaper's confirmation ([`READY_TIMEOUT`]).
    pub ready_timeout: Duration,
}

impl SystemdRunLauncher {
    /// This process's executable and pid; `systemd-run` looked up in `PATH`; systemd detected
    /// at [`SYSTEMD_RUNTIME_DIR`]; the real root.
    pub fn new(plan_dir: PathBuf) -> Result<Self, String> {
        let exe = std::env::current_exe().map_err(|e| format!("locate the agent binary: {e}"))?;
        let path_var = std::env::var_os("PATH");
        Ok(Self {
            exe,
            plan_dir,
            pid: std::process::id(),
            systemd_run: find_program("systemd-run", path_var.as_deref()),
            systemd_dir: PathBuf::from(SYSTEMD_RUNTIME_DIR),
            root: PathBuf::from("/"),
            delay: REAP_DELAY,
            ready_timeout: READY_TIMEOUT,
        })
    }

    /// Whether systemd runs here (see [`systemd_running`]).
    pub fn systemd_running(&self) -> bool {
        systemd_running(&self.systemd_dir)
    }

    /// `systemd-run` when it is installed and systemd runs; else the process group.
    pub fn method(&self) -> LaunchMethod {
        match &self.systemd_run {
            None => LaunchMethod::ProcessGroup {
                reason: "systemd-run is not installed".into(),
            },
            Some(_) if !self.systemd_running() => LaunchMethod::ProcessGroup {
                reason: format!(
                    "systemd is not running ({} is not a directory)",
                    self.systemd_dir.display()
                ),
            },
            Some(p) => LaunchMethod::SystemdRun(p.clone()),
        }
    }

    fn write_plan(&self, plan: &ReaperPlan) -> Result<ReapArgs, String> {
        let json = serde_json::to_vec_pretty(plan).map_err(|e| format!("encode plan: {e}"))?;
        fs::create_dir_all(&self.plan_dir)
            .map_err(|e| format!("create {}: {e}", self.plan_dir.display()))?;
        let stem = format!(
            "decnet-reaper-{}-{}",
            self.pid,
            uuid::Uuid::new_v4().simple()
        );
        let path = self.plan_dir.join(format!("{stem}.json"));
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| format!("write {}: {e}", path.display()))?;
        f.write_all(&json)
            .and_then(|()| f.sync_all())
            .map_err(|e| format!("write {}: {e}", path.display()))?;
        Ok(ReapArgs {
            plan: path,
            ready: Some(self.plan_dir.join(format!("{stem}.ready"))),
            root: self.root.clone(),
            delay: self.delay,
        })
    }

    /// `systemd-run`, which returns once the transient unit started (or failed to).
    fn run_systemd(&self, systemd_run: &Path, reap: &ReapArgs) -> Result<(), String> {
        let cmd = reaper_command(&self.exe, reap, self.pid, Some(systemd_run));
        tracing::info!(command = ?cmd.to_vec(), "launching the self-destruct reaper as a transient unit");
        let out = Command::new(&cmd.program)
            .args(&cmd.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| format!("run {}: {e}", cmd.program.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{}: {}: {}",
                cmd.program.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// The agent binary in a process group of its own, so signals to the agent's group
    /// (and its exit) do not reach it.
    fn spawn_detached(&self, reap: &ReapArgs) -> Result<std::process::Child, String> {
        let cmd = reaper_command(&self.exe, reap, self.pid, None);
        tracing::info!(command = ?cmd.to_vec(), "launching the self-destruct reaper as a detached process group");
        Command::new(&cmd.program)
            .args(&cmd.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", cmd.program.display()))
    }

    /// Waits for the ready file; a detached child that exits first is an error at once.
    fn await_ready(
        &self,
        ready: &Path,
        mut child: Option<&mut std::process::Child>,
    ) -> Result<(), String> {
        let deadline = std::time::Instant::now() + self.ready_timeout;
        loop {
            if ready.exists() {
                if let Err(e) = fs::remove_file(ready) {
                    tracing::warn!(path = %ready.display(), error = %e, "cannot remove the reaper's ready file");
                }
                return Ok(());
            }
            if let Some(child) = child.as_deref_mut() {
                match child.try_wait() {
                    Ok(Some(status)) if !ready.exists() => {
                        return Err(format!(
                            "the reaper exited ({status}) before it confirmed it started"
                        ))
                    }
                    Ok(_) => {}
                    Err(e) => return Err(format!("watch the reaper: {e}")),
                }
            }
            if std::time::Instant::now() >= deadline {
                return Err(format!(
                    "the reaper did not confirm it started within {:?} (no {})",
                    self.ready_timeout,
                    ready.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn launch_with(&self, reap: &ReapArgs) -> Result<(), String> {
        let ready = reap
            .ready
            .clone()
            .ok_or_else(|| "the reaper has no ready file".to_string())?;
        match self.method() {
            LaunchMethod::SystemdRun(systemd_run) => match self.run_systemd(&systemd_run, reap) {
                Ok(()) => return self.await_ready(&ready, None),
                Err(e) => tracing::warn!(
                    error = %e,
                    "systemd-run failed; falling back to a detached process group"
                ),
            },
            LaunchMethod::ProcessGroup { reason } => {
                tracing::info!(%reason, "not using systemd-run for the reaper");
            }
        }
        let mut child = self.spawn_detached(reap)?;
        let result = self.await_ready(&ready, Some(&mut child));
        // Reap it if we are still around when it exits (no zombie).
        std::thread::spawn(move || {
            let _ = child.wait();
        });
        result
    }
}

impl Launcher for SystemdRunLauncher {
    fn launch(&self, plan: &ReaperPlan) -> Result<(), String> {
        let reap = self.write_plan(plan)?;
        let result = self.launch_with(&reap);
        if let Err(e) = &result {
            // A reaper that never confirmed must not find its plan later.
            let _ = fs::remove_file(&reap.plan);
            if let Some(ready) = &reap.ready {
                let _ = fs::remove_file(ready);
            }
            tracing::error!(error = %e, "self-destruct reaper not spawned");
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_table() {
        fn check(input: &str, expect: Result<&[&str], &str>) {
            let got = parse_reaper_paths(input);
            match (got, expect) {
                (Ok(v), Ok(e)) => {
                    let e: Vec<PathBuf> = e.iter().map(PathBuf::from).collect();
                    assert_eq!(v, e, "{input:?}");
                }
                (Err(err), Err(needle)) => {
                    assert!(err.to_string().contains(needle), "{input:?}: {err}")
                }
                (got, expect) => panic!("{input:?}: got {got:?}, expected {expect:?}"),
            }
        }
        check("", Ok(&[]));
        check(":::", Ok(&[]));
        check("/opt/decnet", Ok(&["/opt/decnet"]));
        check(
            "/opt/decnet:/var/lib/decnet::/etc/decnet/",
            Ok(&["/opt/decnet", "/var/lib/decnet", "/etc/decnet/"]),
        );
        check("/a:/a", Ok(&["/a"]));
        check("/", Err("root directory"));
        check("//", Err("root directory"));
        check("/.", Err("root directory"));
        check("/opt:/", Err("root directory"));
        check("opt/decnet", Err("relative"));
        check("./opt", Err("relative"));
        check("/opt/decnet:~/x", Err("relative"));
        check("/opt/../etc", Err("'..'"));
        check("/opt/decnet/..", Err("'..'"));
    }

    #[test]
    fn unit_names_are_checked() {
        for u in DEFAULT_UNITS {
            check_unit(u).unwrap();
        }
        check_unit("decnet-reaper-12.service").unwrap();
        for bad in ["sshd.service", "", "decnet/../x", "decnet agent", "-decnet"] {
            assert!(check_unit(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn launcher_command_lines() {
        let exe = Path::new("/usr/local/bin/decnet-agent");
        let reap = ReapArgs {
            plan: "/var/lib/decnet/agent/decnet-reaper-42-x.json".into(),
            ready: Some("/var/lib/decnet/agent/decnet-reaper-42-x.ready".into()),
            root: "/".into(),
            delay: Duration::from_secs(3),
        };
        let tail = [
            "/usr/local/bin/decnet-agent",
            "reap",
            "--plan",
            "/var/lib/decnet/agent/decnet-reaper-42-x.json",
            "--ready",
            "/var/lib/decnet/agent/decnet-reaper-42-x.ready",
            "--delay-ms",
            "3000",
        ];
        let strings = |cmd: CommandLine| -> Vec<String> {
            cmd.to_vec()
                .into_iter()
                .map(|s| s.to_string_lossy().into_owned())
                .collect()
        };
        let v = strings(reaper_command(
            exe,
            &reap,
            42,
            Some(Path::new("/usr/bin/systemd-run")),
        ));
        assert_eq!(v[0], "/usr/bin/systemd-run");
        assert!(v.contains(&"--collect".to_string()));
        let unit = v.iter().position(|a| a == "--unit").unwrap();
        assert_eq!(v[unit + 1], "decnet-reaper-42");
        // The reaper command comes last, after every systemd-run option; no --root for `/`.
        assert_eq!(&v[v.len() - tail.len()..], tail);

        let v = strings(reaper_command(exe, &reap, 42, None));
        assert_eq!(v, tail);

        let test_root = ReapArgs {
            root: "/tmp/root".into(),
            ..reap
        };
        let v = strings(reaper_command(exe, &test_root, 42, None));
        assert_eq!(&v[v.len() - 2..], ["--root", "/tmp/root"]);
    }

    #[test]
    fn systemd_counts_only_when_it_runs() {
        let tmp = tempfile::tempdir().unwrap();
        let running = tmp.path().join("run-systemd-system");
        let launcher = |systemd_run: Option<&str>, dir: &Path| SystemdRunLauncher {
            exe: "/usr/local/bin/decnet-agent".into(),
            plan_dir: tmp.path().into(),
            pid: 1,
            systemd_run: systemd_run.map(PathBuf::from),
            systemd_dir: dir.into(),
            root: "/".into(),
            delay: REAP_DELAY,
            ready_timeout: READY_TIMEOUT,
        };
        // Installed, not running (no directory, or a file in its place): the process group.
        for dir in [running.clone(), tmp.path().join("a-file")] {
            let _ = fs::write(tmp.path().join("a-file"), b"");
            let m = launcher(Some("/usr/bin/systemd-run"), &dir).method();
            assert!(
                matches!(&m, LaunchMethod::ProcessGroup { reason } if reason.contains("not running")),
                "{m:?}"
            );
        }
        fs::create_dir_all(&running).unwrap();
        assert_eq!(
            launcher(Some("/usr/bin/systemd-run"), &running).method(),
            LaunchMethod::SystemdRun("/usr/bin/systemd-run".into())
        );
        let m = launcher(None, &running).method();
        assert!(
            matches!(&m, LaunchMethod::ProcessGroup { reason } if reason.contains("not installed")),
            "{m:?}"
        );
    }

    #[test]
    fn find_program_searches_path() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let a = tmp.path().join("a");
        let b = tmp.path().join("b");
        fs::create_dir_all(&a).unwrap();
        fs::create_dir_all(&b).unwrap();
        // Not executable in a: skipped; executable in b: found.
        fs::write(a.join("systemd-run"), b"").unwrap();
        fs::write(b.join("systemd-run"), b"#!/bin/sh\n").unwrap();
        fs::set_permissions(b.join("systemd-run"), fs::Permissions::from_mode(0o755)).unwrap();
        let path = std::env::join_paths([&a, &b]).unwrap();
        assert_eq!(
            find_program("systemd-run", Some(&path)),
            Some(b.join("systemd-run"))
        );
        assert_eq!(find_program("nope", Some(&path)), None);
        assert_eq!(find_program("systemd-run", None), None);
    }

    #[test]
    fn plan_round_trips_and_defaults() {
        let plan = ReaperPlan::new(vec!["/opt/decnet".into()]);
        assert_eq!(
            plan.units,
            [
                "decnet-agent.service",
                "decnet-master.service",
                "decnet.target"
            ]
        );
        assert_eq!(plan.keep, [PathBuf::from("/var/log/decnet")]);
        let json = serde_json::to_string(&plan).unwrap();
        assert_eq!(serde_json::from_str::<ReaperPlan>(&json).unwrap(), plan);
    }
}

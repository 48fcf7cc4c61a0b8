//! `decnet init`: makes this host a master (PRODUCT §4). Idempotent: every step keeps what is
//! already there (after checking it) and says so.
//!
//! 1. the data dir (0700 when created);
//! 2. the CA: `ca.crt` (0644) + `ca.key` (0600);
//! 3. the master certificate (CN `decnet-master`, SANs: this machine's host name, 127.0.0.1,
//!    ::1): `master.crt` (0644) + `master.key` (0600), checked against the CA when present;
//! 4. the store (`--db`, default SQLite in the data dir), migrated;
//! 5. the first admin API token: stored hashed, written to `admin.token` (0600), printed once;
//! 6. with `--systemd`: hardened units and the agent's `DECNET_REAPER_PATHS` (never runs
//!    systemctl).

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;
use std::time::SystemTime;

use anyhow::Context;
use chrono::{DateTime, Utc};
use decnet_core::model::{ApiToken, Role};
use decnet_core::traits::Repository;
use decnet_tls::pki::{self, Ca, LeafSpec, San, MASTER_CN};
use decnet_tls::rustls::client::danger::ServerCertVerifier;
use decnet_tls::rustls::pki_types::{ServerName, UnixTime};
use decnet_tls::verify::{PeerPolicy, PolicyServerVerifier};
use uuid::Uuid;

use crate::cli::{InitArgs, DEFAULT_AGENT_ENV, DEFAULT_SYSTEMD_DIR};
use crate::error::CliError;
use crate::master::layout::{new_api_token, token_hash, DataDir};

/// The CN of the CA `decnet init` makes.
pub const CA_CN: &str = "DECNET CA";
/// The agent binary's file name, next to `decnet`.
pub const AGENT_BIN: &str = "decnet-agent";
pub use super::units::{
    agent_unit, master_unit, merge_env_file, target_unit, UnitPaths, AGENT_UNIT, MASTER_UNIT,
    REAPER_PATHS_VAR, TARGET_UNIT,
};

type Out<'a> = &'a mut dyn Write;

fn failed(e: impl std::fmt::Display) -> CliError {
    CliError::Failed(anyhow::anyhow!("{e}"))
}

pub async fn run(data_dir: &Path, args: &InitArgs, out: Out<'_>) -> Result<(), CliError> {
    // Refuse bad --systemd input before touching anything.
    if args.systemd {
        check_systemd_args(args, is_root())?;
    }
    let layout = prepare_data_dir(data_dir, out)?;
    let ca = ensure_ca(&layout, out)?;
    ensure_master_cert(&layout, &ca, out)?;
    let db_url = args
        .db
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| layout.default_db_url());
    let repo = open_store(&db_url).await?;
    writeln!(
        out,
        "store: {} (schema up to date)",
        decnet_store::redact(&db_url)
    )
    .context("write")?;
    ensure_admin_token(&layout, repo.as_ref(), args.force_token, out).await?;
    if args.systemd {
        install_systemd(&layout, args, out)?;
    }
    Ok(())
}

/// Whether this process runs as root (effective uid 0), from `/proc/self/status`.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// `--systemd` writes to system paths only as root; other paths must be nameable in a unit.
pub fn check_systemd_args(args: &InitArgs, root: bool) -> Result<(), CliError> {
    let defaults = args.systemd_dir == Path::new(DEFAULT_SYSTEMD_DIR)
        || args.agent_env == Path::new(DEFAULT_AGENT_ENV);
    if defaults && !root {
        return Err(CliError::usage(format!(
            "--systemd: writing {} and {} needs root; run it as root, or pass --systemd-dir DIR \
             and --agent-env FILE",
            args.systemd_dir.display(),
            args.agent_env.display()
        )));
    }
    check_unit_path("--systemd-dir", &args.systemd_dir)?;
    check_unit_path("--agent-env", &args.agent_env)?;
    Ok(())
}

/// A path that goes into a unit file or `DECNET_REAPER_PATHS`: absolute, no whitespace,
/// control characters or `:`.
fn check_unit_path(field: &str, path: &Path) -> Result<(), CliError> {
    let text = path.to_string_lossy();
    let rule = if !path.is_absolute() {
        Some("must be an absolute path")
    } else if text
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == ':' || c == '"' || c == '\\')
    {
        Some("must not contain whitespace, quotes, backslashes or ':' (systemd units and DECNET_REAPER_PATHS name it)")
    } else {
        None
    };
    match rule {
        Some(rule) => Err(CliError::from(decnet_core::model::FieldError::new(
            field, &text, rule,
        ))),
        None => Ok(()),
    }
}

/// Creates `data_dir` (and its parents) as 0700, exactly: the umask may narrow the mode,
/// never widen it, so it is set afterwards. An existing directory gets its mode set too.
pub(crate) fn create_private_dir(data_dir: &Path) -> Result<(), CliError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data_dir)
        .map_err(|e| {
            CliError::usage(format!(
                "--data-dir {}: cannot create: {e}",
                data_dir.display()
            ))
        })?;
    std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("chmod {}", data_dir.display()))?;
    Ok(())
}

fn prepare_data_dir(data_dir: &Path, out: Out<'_>) -> Result<DataDir, CliError> {
    let created = !data_dir.exists();
    if created {
        create_private_dir(data_dir)?;
    } else if !data_dir.is_dir() {
        return Err(CliError::usage(format!(
            "--data-dir {}: not a directory",
            data_dir.display()
        )));
    }
    let abs = std::fs::canonicalize(data_dir)
        .with_context(|| format!("resolve {}", data_dir.display()))?;
    writeln!(
        out,
        "data dir: {} ({})",
        abs.display(),
        if created { "created" } else { "exists" }
    )
    .context("write")?;
    Ok(DataDir::new(abs))
}

fn read(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|e| CliError::usage(format!("{}: {e}", path.display())))
}

/// Makes a secret file 0600 again when someone widened it.
fn tighten(path: &Path, out: Out<'_>) -> Result<(), CliError> {
    let meta = std::fs::metadata(path).with_context(|| format!("stat {}", path.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("chmod {}", path.display()))?;
        writeln!(out, "tightened {} to mode 0600", path.display()).context("write")?;
    }
    Ok(())
}

/// Both files of a pair, neither, or an error naming the one that is missing.
fn pair_present(a: &Path, b: &Path) -> Result<bool, CliError> {
    match (a.exists(), b.exists()) {
        (true, true) => Ok(true),
        (false, false) => Ok(false),
        (true, false) | (false, true) => {
            let (have, missing) = if a.exists() { (a, b) } else { (b, a) };
            Err(CliError::usage(format!(
                "{} exists but {} does not: restore it, or remove {} to make a new one",
                have.display(),
                missing.display(),
                have.display()
            )))
        }
    }
}

fn date(t: SystemTime) -> String {
    DateTime::<Utc>::from(t).format("%Y-%m-%d").to_string()
}

fn ensure_ca(layout: &DataDir, out: Out<'_>) -> Result<Ca, CliError> {
    let (cert, key) = (layout.ca_cert(), layout.ca_key());
    if pair_present(&cert, &key)? {
        let ca = Ca::load(&read(&cert)?, &read(&key)?).map_err(|e| {
            CliError::usage(format!(
                "{} / {}: not a usable CA: {e}",
                cert.display(),
                key.display()
            ))
        })?;
        let info = pki::cert_info(ca.cert_der())
            .map_err(|e| CliError::usage(format!("{}: {e}", cert.display())))?;
        if info.not_after <= SystemTime::now() {
            return Err(CliError::usage(format!(
                "{}: the CA expired on {}; every certificate it signed is now refused",
                cert.display(),
                date(info.not_after)
            )));
        }
        tighten(&key, out)?;
        writeln!(
            out,
            "CA: already initialized ({}, fingerprint {}, valid until {})",
            cert.display(),
            ca.fingerprint(),
            date(info.not_after)
        )
        .context("write")?;
        return Ok(ca);
    }
    let ca = Ca::generate(CA_CN).map_err(failed)?;
    // Key first: a crash in between leaves a key without a certificate, which the next run
    // reports instead of silently making a second CA.
    pki::write_private(&key, ca.key_pem().as_bytes()).map_err(failed)?;
    pki::write_file_atomic(&cert, ca.cert_pem().as_bytes(), 0o644).map_err(failed)?;
    writeln!(
        out,
        "CA: created {} (fingerprint {})",
        cert.display(),
        ca.fingerprint()
    )
    .context("write")?;
    Ok(ca)
}

/// This machine's host name as a SAN, when `/etc/hostname` holds a usable one.
pub fn hostname_san() -> Option<San> {
    let text = std::fs::read_to_string("/etc/hostname").ok()?;
    let name = text.trim();
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    ok.then(|| San::Dns(name.to_string()))
}

/// The master certificate's SANs: the host name (when known), 127.0.0.1 and ::1 (the leaf also
/// gets `DNS:decnet-master` from [`LeafSpec::master`]).
pub fn master_sans(hostname: Option<San>) -> Vec<San> {
    let mut sans: Vec<San> = hostname.into_iter().collect();
    sans.push(San::Ip(std::net::Ipv4Addr::LOCALHOST.into()));
    sans.push(San::Ip(std::net::Ipv6Addr::LOCALHOST.into()));
    sans
}

fn ensure_master_cert(layout: &DataDir, ca: &Ca, out: Out<'_>) -> Result<(), CliError> {
    let (cert, key) = (layout.master_cert(), layout.master_key());
    if pair_present(&cert, &key)? {
        let not_after = check_master_cert(ca, &read(&cert)?, &read(&key)?, SystemTime::now())
            .map_err(|e| CliError::usage(format!("{}: {e}", cert.display())))?;
        tighten(&key, out)?;
        writeln!(
            out,
            "master certificate: already initialized ({}, valid until {})",
            cert.display(),
            date(not_after)
        )
        .context("write")?;
        return Ok(());
    }
    let spec = LeafSpec::master(master_sans(hostname_san()));
    let issued = ca.issue_keypair(&spec).map_err(failed)?;
    pki::write_private(&key, issued.key_pem.as_bytes()).map_err(failed)?;
    pki::write_file_atomic(&cert, issued.cert_pem.as_bytes(), 0o644).map_err(failed)?;
    let sans: Vec<String> = spec.sans.iter().map(ToString::to_string).collect();
    writeln!(
        out,
        "master certificate: created {} (CN {MASTER_CN}; {}; fingerprint {})",
        cert.display(),
        sans.join(", "),
        issued.fingerprint
    )
    .context("write")?;
    Ok(())
}

/// Checks an existing master certificate: parses, not expired, issued by `ca` (chain,
/// signature, serverAuth, CN `decnet-master`), and `key_pem` is its key. Returns `notAfter`.
pub fn check_master_cert(
    ca: &Ca,
    cert_pem: &str,
    key_pem: &str,
    now: SystemTime,
) -> Result<SystemTime, String> {
    let der = pki::parse_cert_pem(cert_pem).map_err(|e| e.to_string())?;
    let info = pki::cert_info(&der).map_err(|e| e.to_string())?;
    const REISSUE: &str = "remove master.crt and master.key and run `decnet init` again \
                           (enrolled agents pinned the old certificate and must be re-enrolled)";
    if info.not_after <= now {
        return Err(format!(
            "the master certificate expired on {}; {REISSUE}",
            date(info.not_after)
        ));
    }
    let policy = PeerPolicy::new(ca.cert_der().clone()).with_expected_cn(MASTER_CN);
    let verifier = PolicyServerVerifier::new(&policy).map_err(|e| e.to_string())?;
    let since_epoch = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_err(|e| e.to_string())?;
    verifier
        .verify_server_cert(
            &der,
            &[],
            &ServerName::IpAddress(std::net::IpAddr::from(std::net::Ipv4Addr::LOCALHOST).into()),
            &[],
            UnixTime::since_unix_epoch(since_epoch),
        )
        .map_err(|e| {
            format!("not a master certificate issued by this data dir's CA ({e}); {REISSUE}")
        })?;
    let bundle = pki::Bundle {
        ca_pem: ca.cert_pem().to_string(),
        cert_pem: cert_pem.to_string(),
        key_pem: key_pem.to_string(),
    };
    decnet_tls::verify::server_config(&bundle, &policy, decnet_tls::verify::ClientAuth::Optional)
        .map_err(|e| format!("master.key does not fit master.crt ({e}); {REISSUE}"))?;
    Ok(info.not_after)
}

async fn open_store(url: &str) -> Result<std::sync::Arc<dyn Repository>, CliError> {
    use decnet_store::StoreError;
    decnet_store::open(url).await.map_err(|e| match e {
        StoreError::UnsupportedUrl(_) | StoreError::InMemory(_) | StoreError::Url { .. } => {
            CliError::usage(format!("--db: {e}"))
        }
        other => CliError::Failed(anyhow::Error::new(other)),
    })
}

async fn ensure_admin_token(
    layout: &DataDir,
    repo: &dyn Repository,
    force: bool,
    out: Out<'_>,
) -> Result<(), CliError> {
    let path = layout.admin_token();
    let existing = match std::fs::read_to_string(&path) {
        Ok(text) => Some(text.trim().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(CliError::usage(format!("{}: {e}", path.display()))),
    };
    let known = match &existing {
        Some(t) if !t.is_empty() => repo
            .api_token_by_hash(&token_hash(t))
            .await
            .map_err(failed)?,
        _ => None,
    };
    if let (Some(_), false) = (&existing, force) {
        tighten(&path, out)?;
        if known.is_some() {
            writeln!(out, "admin token: already initialized ({})", path.display())
                .context("write")?;
        } else {
            writeln!(
                out,
                "admin token: {} is not a token of this store (revoked, or another --db); \
                 run `decnet init --force-token` for a new one",
                path.display()
            )
            .context("write")?;
        }
        return Ok(());
    }
    let token = new_api_token();
    let row = ApiToken {
        id: Uuid::new_v4(),
        hash: token_hash(&token),
        role: Role::Admin,
        created_at: Utc::now(),
    };
    repo.insert_api_token(&row).await.map_err(failed)?;
    if let Err(e) = pki::write_private(&path, format!("{token}\n").as_bytes()) {
        // Do not leave a live token nobody has.
        let _ = repo.delete_api_token(row.id).await;
        return Err(failed(e));
    }
    if let Some(old) = known {
        repo.delete_api_token(old.id).await.map_err(failed)?;
        writeln!(out, "revoked the previous admin token {}", old.id).context("write")?;
    }
    writeln!(out, "admin token: {token}").context("write")?;
    writeln!(
        out,
        "  saved to {} (mode 0600); it is printed only this once",
        path.display()
    )
    .context("write")?;
    Ok(())
}

// --- systemd ---------------------------------------------------------------------------------

/// Writes `contents` unless the file already holds exactly that; says which.
fn write_if_changed(path: &Path, contents: &str, mode: u32, out: Out<'_>) -> Result<(), CliError> {
    if std::fs::read_to_string(path).is_ok_and(|old| old == contents) {
        writeln!(out, "unchanged {}", path.display()).context("write")?;
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(parent)
            .with_context(|| format!("create {}", parent.display()))?;
    }
    pki::write_file_atomic(path, contents.as_bytes(), mode).map_err(failed)?;
    writeln!(out, "wrote {}", path.display()).context("write")?;
    Ok(())
}

fn read_env_file(path: &Path, field: &str) -> Result<String, CliError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(s),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(CliError::usage(format!("{field} {}: {e}", path.display()))),
    }
}

fn install_systemd(layout: &DataDir, args: &InitArgs, out: Out<'_>) -> Result<(), CliError> {
    let exe = std::env::current_exe().context("locate the decnet executable")?;
    let exe = std::fs::canonicalize(&exe).unwrap_or(exe);
    let bin_dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    let agent_exe = bin_dir.join(AGENT_BIN);
    check_unit_path("the decnet executable", &exe)?;
    check_unit_path("--data-dir", layout.path())?;
    // The master's environment file and the operations guide live next to the agent's.
    let etc = args
        .agent_env
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let paths = UnitPaths {
        decnet: exe.clone(),
        agent: agent_exe.clone(),
        data_dir: layout.path().to_path_buf(),
        master_env: etc.join(super::units::MASTER_ENV),
        agent_env: args.agent_env.clone(),
        doc: etc.join(super::units::OPERATIONS_FILE),
    };
    let units_dir = &args.systemd_dir;
    let units = [
        (MASTER_UNIT, master_unit(&paths, args.local_deckies)),
        (AGENT_UNIT, agent_unit(&paths)),
        (TARGET_UNIT, target_unit()),
    ];
    let mut reaper_paths = Vec::new();
    for (name, text) in &units {
        let path = units_dir.join(name);
        write_if_changed(&path, text, 0o644, out)?;
        reaper_paths.push(path);
    }
    write_if_changed(&paths.doc, super::units::OPERATIONS_DOC, 0o644, out)?;
    // The master's settings: a commented template; `--db` is recorded there (0600: a
    // PostgreSQL URL may carry a password).
    let master_env = read_env_file(&paths.master_env, "master env")?;
    let master_env = match args.db.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(db) => super::units::merge_env_var(
            &master_env,
            super::units::MASTER_ENV_HEADER,
            "DECNET_DB",
            db,
        ),
        None if master_env.is_empty() => super::units::MASTER_ENV_HEADER.to_string(),
        None => master_env,
    };
    write_if_changed(&paths.master_env, &master_env, 0o600, out)?;
    reaper_paths.push(paths.doc.clone());
    reaper_paths.push(paths.master_env.clone());
    reaper_paths.push(agent_exe.clone());
    reaper_paths.push(exe.clone());
    reaper_paths.push(args.agent_env.clone());
    let existing = read_env_file(&args.agent_env, "--agent-env")?;
    write_if_changed(
        &args.agent_env,
        &merge_env_file(&existing, &reaper_paths),
        0o644,
        out,
    )?;
    if ["/tmp", "/var/tmp"]
        .iter()
        .any(|t| layout.path().starts_with(t))
    {
        writeln!(
            out,
            "note: {} is under a temporary directory, which PrivateTmp=yes hides from \
             decnet-master.service; use a data dir such as /var/lib/decnet",
            layout.path().display()
        )
        .context("write")?;
    }
    if !agent_exe.exists() {
        writeln!(
            out,
            "note: {} does not exist yet; install decnet-agent there before starting the agent",
            agent_exe.display()
        )
        .context("write")?;
    }
    writeln!(
        out,
        "next: systemctl daemon-reload && systemctl enable --now {TARGET_UNIT}"
    )
    .context("write")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(systemd_dir: &str, agent_env: &str) -> InitArgs {
        InitArgs {
            db: None,
            systemd: true,
            systemd_dir: systemd_dir.into(),
            agent_env: agent_env.into(),
            local_deckies: false,
            force_token: false,
        }
    }

    #[test]
    fn systemd_paths_need_root_or_explicit_paths() {
        let e =
            check_systemd_args(&args(DEFAULT_SYSTEMD_DIR, DEFAULT_AGENT_ENV), false).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("needs root"), "{e}");
        assert!(check_systemd_args(&args("/t/units", DEFAULT_AGENT_ENV), false).is_err());
        assert!(check_systemd_args(&args(DEFAULT_SYSTEMD_DIR, DEFAULT_AGENT_ENV), true).is_ok());
        assert!(check_systemd_args(&args("/t/units", "/t/agent.env"), false).is_ok());
        for (dir, env) in [
            ("units", "/t/a.env"),
            ("/t/u", "/t/a b.env"),
            ("/t/u:v", "/t/a"),
        ] {
            let e = check_systemd_args(&args(dir, env), true).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{dir} {env}");
        }
    }

    #[test]
    fn master_certificate_checks() {
        let ca = Ca::generate(CA_CN).unwrap();
        let now = SystemTime::now();
        let good = ca
            .issue_keypair(&LeafSpec::master(master_sans(None)))
            .unwrap();
        assert!(check_master_cert(&ca, &good.cert_pem, &good.key_pem, now).is_ok());

        // Another CA's certificate.
        let other = Ca::generate(CA_CN).unwrap();
        let foreign = other.issue_keypair(&LeafSpec::master(vec![])).unwrap();
        let e = check_master_cert(&ca, &foreign.cert_pem, &foreign.key_pem, now).unwrap_err();
        assert!(
            e.contains("not a master certificate issued by this data dir's CA"),
            "{e}"
        );

        // A worker certificate of the right CA is not the master's.
        let worker = ca.issue_keypair(&LeafSpec::worker("w1", vec![])).unwrap();
        assert!(check_master_cert(&ca, &worker.cert_pem, &worker.key_pem, now).is_err());

        // The wrong key.
        let e = check_master_cert(&ca, &good.cert_pem, &worker.key_pem, now).unwrap_err();
        assert!(e.contains("does not fit"), "{e}");

        // Expired.
        let mut spec = LeafSpec::master(vec![]);
        spec.not_before = Some(now - std::time::Duration::from_secs(3 * 86_400));
        spec.validity = std::time::Duration::from_secs(86_400);
        let old = ca.issue_keypair(&spec).unwrap();
        let e = check_master_cert(&ca, &old.cert_pem, &old.key_pem, now).unwrap_err();
        assert!(e.contains("expired on"), "{e}");
    }

    #[test]
    fn sans_include_loopback() {
        let sans = master_sans(Some(San::Dns("m1".into())));
        let text: Vec<String> = sans.iter().map(ToString::to_string).collect();
        assert_eq!(text, ["DNS:m1", "IP:127.0.0.1", "IP:::1"]);
    }
}

//! The ssh host key of each decky: generated on its first deploy into
//! `<state-dir>/deckies/<decky>/ssh_host_ed25519_key` (mode 0600; the raw 32-byte ed25519
//! seed, the format `decnet-decky` reads besides OpenSSH's), kept across redeploys and
//! mutations, and bind-mounted read-only into the decky's `ssh` service container at
//! [`KEY_IN_CONTAINER`], so the fingerprint an attacker saw yesterday is the one he sees
//! today. The container's root stays read-only (PRODUCT §11).

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use bollard::models::ContainerCreateBody;

/// Where `decnet-decky serve ssh` looks for its host key.
pub const KEY_IN_CONTAINER: &str = "/run/decnet/ssh_host_ed25519_key";
const FILE_NAME: &str = "ssh_host_ed25519_key";

/// The key file of `decky` under `state_dir`.
pub fn key_path(state_dir: &Path, decky: &str) -> PathBuf {
    state_dir.join("deckies").join(decky).join(FILE_NAME)
}

/// The key file of `decky`, created (32 random bytes, 0600, directories 0700) when missing.
pub fn ensure_key(state_dir: &Path, decky: &str) -> io::Result<PathBuf> {
    let path = key_path(state_dir, decky);
    if fs::metadata(&path).is_ok_and(|m| m.len() == 32) {
        return Ok(path);
    }
    if let Some(dir) = path.parent() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let mut seed = [0u8; 32];
    fs::File::open("/dev/urandom")?.read_exact(&mut seed)?;
    // Written aside and renamed, so a crash never leaves a short key behind.
    let tmp = path.with_extension("tmp");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(&seed)?;
    f.sync_all()?;
    fs::rename(&tmp, &path)?;
    Ok(path)
}

/// For the `ssh` service: makes sure `decky` has its key and mounts it read-only into `body`.
/// Other services are left alone.
pub fn mount_ssh_host_key(
    state_path: &Path,
    decky: &str,
    slug: &str,
    body: &mut ContainerCreateBody,
) -> io::Result<()> {
    if slug != "ssh" {
        return Ok(());
    }
    let state_dir = state_path.parent().unwrap_or(Path::new("."));
    let state_dir = if state_dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        state_dir
    };
    let key = fs::canonicalize(ensure_key(state_dir, decky)?)?;
    let hc = body.host_config.get_or_insert_with(Default::default);
    hc.binds
        .get_or_insert_with(Vec::new)
        .push(format!("{}:{KEY_IN_CONTAINER}:ro", key.display()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn generated_once_private_and_mounted_read_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("decnet-state.json");
        let mut body = ContainerCreateBody::default();
        mount_ssh_host_key(&state, "web-1", "ssh", &mut body).expect("mount");
        let path = key_path(dir.path(), "web-1");
        let first = fs::read(&path).expect("key");
        assert_eq!(first.len(), 32);
        let mode = fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let binds = body.host_config.and_then(|h| h.binds).expect("binds");
        assert_eq!(binds.len(), 1);
        assert!(binds[0].ends_with(":/run/decnet/ssh_host_ed25519_key:ro"));
        // A second deploy keeps it; another decky gets its own; other services get nothing.
        let mut again = ContainerCreateBody::default();
        mount_ssh_host_key(&state, "web-1", "ssh", &mut again).expect("mount");
        assert_eq!(fs::read(&path).expect("key"), first);
        ensure_key(dir.path(), "web-2").expect("second decky");
        assert_ne!(fs::read(key_path(dir.path(), "web-2")).expect("key"), first);
        let mut http = ContainerCreateBody::default();
        mount_ssh_host_key(&state, "web-1", "http", &mut http).expect("noop");
        assert!(http.host_config.is_none());
    }
}

//! The agent directory and the enrolled identity (PRODUCT §4).
//!
//! One function decides the agent directory for every command (the original had two orders,
//! and its bundle-installed agent could not find its own certificates).

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use decnet_core::model::HostUuid;
use serde::{Deserialize, Serialize};

/// The system-wide agent directory, used when it exists.
pub const SYSTEM_AGENT_DIR: &str = "/etc/decnet/agent";
/// The environment variable naming the agent directory.
pub const AGENT_DIR_ENV: &str = "DECNET_AGENT_DIR";
/// The identity file inside the agent directory.
pub const IDENTITY_FILE: &str = "identity.json";

/// The agent directory, first match wins: `--agent-dir`, then `DECNET_AGENT_DIR`, then
/// `/etc/decnet/agent` if it exists, then `~/.decnet/agent`. Empty values count as unset. Without a home directory (a root service
/// has no `HOME` unless its unit sets `User=`) the system directory is used even when it does
/// not exist yet.
///
/// Pure: the caller passes the flag, the environment values and an existence check.
pub fn agent_dir(
    flag: Option<&Path>,
    env: Option<&OsStr>,
    home: Option<&Path>,
    exists: impl Fn(&Path) -> bool,
) -> PathBuf {
    if let Some(f) = flag.filter(|f| !f.as_os_str().is_empty()) {
        return f.to_path_buf();
    }
    if let Some(e) = env.filter(|e| !e.is_empty()) {
        return PathBuf::from(e);
    }
    let system = Path::new(SYSTEM_AGENT_DIR);
    if exists(system) {
        return system.to_path_buf();
    }
    match home.filter(|h| !h.as_os_str().is_empty()) {
        Some(h) => h.join(".decnet").join("agent"),
        None => system.to_path_buf(),
    }
}

/// Errors reading or writing the identity file; each names the path.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: not a valid identity file: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Who this agent is and which master it trusts, written at enrollment:
/// `{"host_uuid","master_url","master_fingerprint"}`, plus `master_next_fingerprint` while the
/// master's certificate rolls over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub host_uuid: HostUuid,
    pub master_url: String,
    /// Lowercase hex SHA-256 of the master certificate's DER.
    pub master_fingerprint: String,
    /// The successor of the master certificate, accepted beside it until the master presents
    /// it (then it becomes `master_fingerprint`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_next_fingerprint: Option<String>,
}

impl Identity {
    /// The fingerprints the master is accepted by: the pinned one and its successor, if any.
    pub fn master_pins(&self) -> Vec<String> {
        std::iter::once(self.master_fingerprint.clone())
            .chain(self.master_next_fingerprint.clone())
            .collect()
    }

    /// `<dir>/identity.json`.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(IDENTITY_FILE)
    }

    /// Loads the identity; `Ok(None)` when the agent is not enrolled (no file).
    pub fn load(dir: &Path) -> Result<Option<Identity>, IdentityError> {
        let path = Self::path(dir);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(IdentityError::Read { path, source }),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| IdentityError::Parse { path, source })
    }

    /// Writes the identity atomically (temp file + fsync + rename + directory fsync), mode
    /// 0600, creating the directory (0700) when needed.
    pub fn save(&self, dir: &Path) -> Result<(), IdentityError> {
        let path = Self::path(dir);
        let err = |source| IdentityError::Write {
            path: path.clone(),
            source,
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(err)?;
        let json = serde_json::to_vec_pretty(self).map_err(|e| err(io::Error::other(e)))?;
        let tmp = dir.join(format!(".{IDENTITY_FILE}.tmp.{}", std::process::id()));
        let result = (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            // A temp file left by an earlier crash keeps its old mode: set it.
            f.set_permissions(fs::Permissions::from_mode(0o600))?;
            f.write_all(&json)?;
            f.sync_all()?;
            fs::rename(&tmp, &path)?;
            File::open(dir)?.sync_all()
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_dir_table() {
        struct Case {
            flag: Option<&'static str>,
            env: Option<&'static str>,
            home: Option<&'static str>,
            system_exists: bool,
            expect: &'static str,
        }
        let cases = [
            // The flag wins over everything.
            Case {
                flag: Some("/srv/agent"),
                env: Some("/env/agent"),
                home: Some("/root"),
                system_exists: true,
                expect: "/srv/agent",
            },
            // Then the environment.
            Case {
                flag: None,
                env: Some("/env/agent"),
                home: Some("/root"),
                system_exists: true,
                expect: "/env/agent",
            },
            // Then /etc/decnet/agent when it exists.
            Case {
                flag: None,
                env: None,
                home: Some("/home/op"),
                system_exists: true,
                expect: "/etc/decnet/agent",
            },
            // Else ~/.decnet/agent.
            Case {
                flag: None,
                env: None,
                home: Some("/home/op"),
                system_exists: false,
                expect: "/home/op/.decnet/agent",
            },
            // Empty values are unset.
            Case {
                flag: Some(""),
                env: Some(""),
                home: Some("/home/op"),
                system_exists: false,
                expect: "/home/op/.decnet/agent",
            },
            // No home at all (a root service): the system directory.
            Case {
                flag: None,
                env: None,
                home: None,
                system_exists: false,
                expect: "/etc/decnet/agent",
            },
        ];
        for (i, c) in cases.iter().enumerate() {
            let got = agent_dir(
                c.flag.map(Path::new),
                c.env.map(OsStr::new),
                c.home.map(Path::new),
                |p| p == Path::new(SYSTEM_AGENT_DIR) && c.system_exists,
            );
            assert_eq!(got, PathBuf::from(c.expect), "case {i}");
        }
    }

    #[test]
    fn identity_round_trip_private() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("agent");
        assert_eq!(Identity::load(&dir).unwrap(), None);
        let id = Identity {
            host_uuid: HostUuid::new_v4(),
            master_url: "https://master.example:8770".into(),
            master_fingerprint: "ab".repeat(32),
            master_next_fingerprint: None,
        };
        id.save(&dir).unwrap();
        assert_eq!(Identity::load(&dir).unwrap(), Some(id.clone()));
        let mode = fs::metadata(dir.join(IDENTITY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // Wire shape: exactly the three keys.
        let v: serde_json::Value =
            serde_json::from_slice(&fs::read(dir.join(IDENTITY_FILE)).unwrap()).unwrap();
        let mut keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["host_uuid", "master_fingerprint", "master_url"]);
        // Saving again replaces it; no temp file is left.
        let id2 = Identity {
            master_url: "https://10.0.0.1:8770".into(),
            ..id
        };
        id2.save(&dir).unwrap();
        assert_eq!(Identity::load(&dir).unwrap(), Some(id2));
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
    }

    #[test]
    fn broken_identity_names_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join(IDENTITY_FILE), b"{\"host_uuid\": 1}").unwrap();
        let e = Identity::load(tmp.path()).unwrap_err().to_string();
        assert!(e.contains("identity.json"), "{e}");
    }
}

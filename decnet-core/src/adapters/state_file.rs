//! The state file on disk: lenient load, atomic save (temp file + fsync + rename + directory
//! fsync), mode 0600 (it holds persona passwords). Only std I/O; written only as part of an
//! operation, never on start-up.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::model::{parse_state, render_state, StateParseError, WorkerState};

/// The file name inside a state or data directory.
pub const STATE_FILE_NAME: &str = "decnet-state.json";

/// Errors reading or writing a state file; each names the path.
#[derive(Debug, thiserror::Error)]
pub enum StateFileError {
    /// The file exists but could not be read (a missing file is not an error: nothing deployed).
    #[error("read {path}: {source}")]
    Read {
        /// The state file's path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The file was read but is not a state file.
    #[error("{path}: {source}")]
    Parse {
        /// The state file's path.
        path: PathBuf,
        /// Why it does not parse.
        #[source]
        source: StateParseError,
    },
    /// Writing the temp file, syncing it or renaming it into place failed.
    #[error("write {path}: {source}")]
    Write {
        /// The state file's path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

/// `<dir>/decnet-state.json`.
pub fn state_path(dir: &Path) -> PathBuf {
    dir.join(STATE_FILE_NAME)
}

/// Loads the state file; `Ok(None)` when there is none.
pub fn load(path: &Path) -> Result<Option<WorkerState>, StateFileError> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateFileError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    parse_state(&text)
        .map(Some)
        .map_err(|source| StateFileError::Parse {
            path: path.to_path_buf(),
            source,
        })
}

/// Writes the state atomically: readers see the old file or the new one, never a torn one.
pub fn save(path: &Path, state: &WorkerState) -> Result<(), StateFileError> {
    let err = |source| StateFileError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(err)?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| STATE_FILE_NAME.to_string());
    let tmp = dir.join(format!(".{file_name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(render_state(state).as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(err)
}

/// Removes the state file; a missing file is fine.
pub fn clear(path: &Path) -> Result<(), StateFileError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(StateFileError::Write {
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const STATE: &str = r#"{"config": {"mode": "unihost", "interface": "eth0",
      "subnet": "10.0.0.0/24", "gateway": "10.0.0.1", "deckies": [{"name": "decky-01",
      "ip": "10.0.0.5", "services": ["ssh"], "distro": "debian", "base_image": "debian:bookworm-slim",
      "hostname": "SRV-DB-11"}]}, "compose_path": "decnet-compose.yml"}"#;

    #[test]
    fn round_trip_atomic_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = state_path(dir.path());
        assert!(load(&path).unwrap().is_none());
        let state = parse_state(STATE).unwrap();
        save(&path, &state).unwrap();
        assert_eq!(load(&path).unwrap().unwrap(), state);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // No temp file is left behind.
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
        clear(&path).unwrap();
        clear(&path).unwrap();
        assert!(load(&path).unwrap().is_none());
    }

    #[test]
    fn corrupt_file_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = state_path(dir.path());
        fs::write(&path, "{not json").unwrap();
        let e = load(&path).unwrap_err().to_string();
        assert!(
            e.contains("decnet-state.json") && e.contains("not valid JSON"),
            "{e}"
        );
    }
}

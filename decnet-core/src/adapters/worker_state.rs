//! The worker state file as the agent reads it. A file that exists but cannot be read (bad
//! JSON, a broken top level, an I/O error) is reported — in `/status` and every heartbeat as
//! `state_error` — and every operation on it is refused (409 at the API, a failed lifecycle
//! delta for a job already queued; feature `runtime`). The agent never rewrites, moves or deletes such a file:
//! it may be the only record of what runs here, and the operator decides what to do with it.

use std::path::{Path, PathBuf};

use crate::adapters::state_file::{self, StateFileError};
use crate::model::WorkerState;

/// The state file exists but cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("worker state file {} is unreadable: {reason}; fix or move it, then retry", path.display())]
pub struct UnreadableState {
    /// The state file.
    pub path: PathBuf,
    /// What is wrong with it (the parse or I/O error), without the path.
    pub reason: String,
}

impl UnreadableState {
    /// `"<path>: <reason>"`, the `state_error` of the status snapshot.
    pub fn status_text(&self) -> String {
        format!("{}: {}", self.path.display(), self.reason)
    }

    fn from_error(path: &Path, e: StateFileError) -> Self {
        let reason = match e {
            StateFileError::Read { source, .. } | StateFileError::Write { source, .. } => {
                source.to_string()
            }
            StateFileError::Parse { source, .. } => source.to_string(),
        };
        Self {
            path: path.to_path_buf(),
            reason,
        }
    }
}

/// Loads the state file (`Ok(None)`: there is none), off the async threads.
pub async fn load(path: &Path) -> Result<Option<WorkerState>, UnreadableState> {
    let owned = path.to_path_buf();
    match tokio::task::spawn_blocking(move || state_file::load(&owned)).await {
        Ok(result) => result.map_err(|e| UnreadableState::from_error(path, e)),
        Err(e) => Err(UnreadableState {
            path: path.to_path_buf(),
            reason: format!("the state loader task failed: {e}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unreadable_file_names_path_and_reason_and_stays() {
        let dir = tempfile::tempdir().unwrap();
        let path = state_file::state_path(dir.path());
        assert_eq!(load(&path).await.unwrap(), None);
        std::fs::write(&path, b"{garbage").unwrap();
        let e = load(&path).await.unwrap_err();
        assert_eq!(e.path, path);
        assert!(e.reason.contains("not valid JSON"), "{}", e.reason);
        let msg = e.to_string();
        assert!(
            msg.starts_with(&format!(
                "worker state file {} is unreadable: ",
                path.display()
            )) && msg.ends_with("; fix or move it, then retry"),
            "{msg}"
        );
        assert_eq!(e.status_text(), format!("{}: {}", path.display(), e.reason));
        assert_eq!(std::fs::read(&path).unwrap(), b"{garbage");
    }
}

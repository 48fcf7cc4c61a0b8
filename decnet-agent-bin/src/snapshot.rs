//! The live status snapshot: what `GET /status` answers and every heartbeat carries.

use std::path::PathBuf;
use std::sync::Arc;

use decnet_core::model::{AgentStatus, RuntimeMap};
use decnet_core::traits::{Clock, Deployer};

use crate::heartbeat::StatusSource;
use crate::queue::WorkQueue;

/// Builds [`AgentStatus`] from the state file, the deployer's runtime view and the queue.
///
/// `taken_at` is read *before* anything else, so the master never treats the snapshot as newer
/// than what it saw. A runtime error reports an empty runtime map (every decky looks not
/// running), as the original did. An unreadable state file is reported as such
/// (`state_error`, see [`crate::state`]): not deployed as far as the agent can tell, with the
/// containers it finds by label in `runtime` — never a plain "not deployed" while deckies run.
pub struct LiveStatus {
    pub deployer: Arc<dyn Deployer>,
    pub state_path: PathBuf,
    pub queue: Arc<WorkQueue>,
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for LiveStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveStatus")
            .field("state_path", &self.state_path)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl StatusSource for LiveStatus {
    async fn snapshot(&self) -> AgentStatus {
        let taken_at = self.clock.now();
        let in_flight = self.queue.in_flight();
        let state = match crate::state::load(&self.state_path).await {
            Ok(state) => state,
            Err(e) => {
                tracing::warn!(error = %e, "status: worker state unreadable");
                let runtime = match self.deployer.runtime().await {
                    Ok(rt) => Some(rt),
                    Err(e) => {
                        tracing::warn!(error = %e, "status: runtime unavailable");
                        None
                    }
                };
                return AgentStatus::unreadable_state(
                    e.status_text(),
                    runtime,
                    taken_at,
                    in_flight,
                );
            }
        };
        let Some(state) = state else {
            return AgentStatus::not_deployed(taken_at, in_flight);
        };
        for r in &state.rejected {
            tracing::debug!(decky = ?r.name, reason = %r.reason, "decky in the state file is not acted upon");
        }
        let runtime = match self.deployer.runtime().await {
            Ok(rt) => rt,
            Err(e) => {
                tracing::warn!(error = %e, "status: runtime unavailable");
                RuntimeMap::new()
            }
        };
        AgentStatus::deployed(
            &state.config,
            state.compose_path.clone(),
            runtime,
            taken_at,
            in_flight,
        )
    }
}

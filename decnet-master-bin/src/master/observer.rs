//! The local observer: what heartbeats do for a worker's deckies, done for this master's own
//! (unihost) deckies. Every heartbeat interval it asks the local deployer for the runtime of
//! the desired unihost deckies and applies it like a heartbeat (`decky.local:<name>.state`
//! on a change, no write when nothing changed, never over a transitional state or a newer
//! change), so the deckies list shows a unihost decky that stopped as `degraded` and keeps its
//! `last_seen` fresh. It never starts or stops containers (their restart policy does that).

use std::sync::Arc;

use decnet_core::model::{AgentStatus, DecnetConfig, HostUuid};
use decnet_core::traits::RepoError;
use tokio_util::sync::CancellationToken;

use super::state::Master;

/// Runs [`observe_once`] every heartbeat interval until `shutdown`; idle without a local
/// deployer.
pub async fn local_loop(m: Arc<Master>, shutdown: CancellationToken) {
    if m.local.is_none() {
        return;
    }
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(m.settings.heartbeat_interval) => {}
        }
        if let Err(e) = observe_once(&m).await {
            tracing::warn!(error = %e, "local observation failed");
        }
    }
}

/// One observation of the local deckies.
pub async fn observe_once(m: &Master) -> Result<(), RepoError> {
    let Some(local) = m.local.as_ref() else {
        return Ok(());
    };
    let Some(fleet) = m.repo.desired_fleet().await? else {
        return Ok(());
    };
    let mine = DecnetConfig {
        deckies: fleet
            .deckies
            .iter()
            .filter(|d| d.host_uuid.is_none())
            .cloned()
            .collect(),
        ..fleet
    };
    if mine.deckies.is_empty() {
        return Ok(());
    }
    let taken_at = m.clock.now();
    let runtime = match local.runtime().await {
        Ok(r) => r,
        Err(e) => {
            // Unknown is not "all stopped": observe nothing this time.
            tracing::warn!(error = %e, "local runtime unavailable");
            return Ok(());
        }
    };
    let status = AgentStatus::deployed(&mine, String::new(), runtime, taken_at, vec![]);
    m.lifecycle()
        .observe(HostUuid::LOCAL, &status, taken_at)
        .await?;
    m.swarm.note_echo(
        HostUuid::LOCAL,
        taken_at,
        status.deckies.iter().map(|d| d.name.as_str()),
    );
    Ok(())
}

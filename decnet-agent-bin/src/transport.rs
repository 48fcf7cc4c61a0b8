//! The worker's clients towards the master: the `decnet-swarm` adapters (heartbeats, event
//! batches, and the pinned client that renewal and the master-pin check use).

pub use decnet_swarm::{
    master_client, pinned_master_client, HttpsEventTransport, HttpsTransport, REQUEST_TIMEOUT,
};

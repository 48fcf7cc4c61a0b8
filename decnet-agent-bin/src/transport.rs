//! `HeartbeatTransport` over reqwest + rustls: the worker's certificate as client identity,
//! the master verified by CA, CN `decnet-master` and the fingerprints pinned (at enrollment,
//! and a successor the master announced during its certificate's rollover) — never by
//! hostname, so the master's address may change.

use std::time::Duration;

use decnet_core::model::wire::{EventBatch, EventBatchAnswer};
use decnet_core::model::HeartbeatBody;
use decnet_core::traits::{
    EventAck, EventTransport, HeartbeatAck, HeartbeatTransport, TransportError,
};
use decnet_tls::pki::{Bundle, MASTER_CN};
use decnet_tls::verify::{client_config, PeerPolicy, SharedPins};

use crate::paths::Identity;

/// How long one heartbeat may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds the pinned mTLS client the agent uses towards the master.
pub fn master_client(bundle: &Bundle, master_fingerprint: &str) -> Result<reqwest::Client, String> {
    let pins = SharedPins::new(&[master_fingerprint.to_string()]).map_err(|e| e.to_string())?;
    pinned_master_client(bundle, &pins)
}

/// [`master_client`] accepting the master by any of `pins` as they are at each connection.
pub fn pinned_master_client(bundle: &Bundle, pins: &SharedPins) -> Result<reqwest::Client, String> {
    let policy = PeerPolicy::from_ca_pem(&bundle.ca_pem)
        .map_err(|e| e.to_string())?
        .with_expected_cn(MASTER_CN)
        .with_shared_pins(pins.clone());
    let tls = client_config(bundle, &policy).map_err(|e| e.to_string())?;
    reqwest::Client::builder()
        .use_preconfigured_tls((*tls).clone())
        .timeout(REQUEST_TIMEOUT)
        .pool_idle_timeout(Duration::from_secs(90))
        .build()
        .map_err(|e| e.to_string())
}

/// The pinned mTLS client towards one master URL path, swappable when the worker's certificate
/// is renewed.
#[derive(Debug)]
struct PinnedClient {
    client: std::sync::RwLock<reqwest::Client>,
    pins: SharedPins,
    url: String,
}

impl PinnedClient {
    fn new(
        bundle: &Bundle,
        identity: &Identity,
        pins: &SharedPins,
        path: &str,
    ) -> Result<Self, String> {
        Ok(Self {
            client: std::sync::RwLock::new(pinned_master_client(bundle, pins)?),
            pins: pins.clone(),
            url: format!("{}{path}", identity.master_url.trim_end_matches('/')),
        })
    }

    fn reload(&self, bundle: &Bundle) -> Result<(), String> {
        let client = pinned_master_client(bundle, &self.pins)?;
        *self.client.write().unwrap_or_else(|p| p.into_inner()) = client;
        Ok(())
    }

    fn post(&self) -> reqwest::RequestBuilder {
        self.client
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .post(&self.url)
    }
}

/// POSTs heartbeats to `<master_url>/swarm/heartbeat` on one persistent connection.
#[derive(Debug)]
pub struct HttpsTransport(PinnedClient);

impl HttpsTransport {
    /// Heartbeats presenting `bundle`, the master accepted by any of `pins`.
    pub fn new(bundle: &Bundle, identity: &Identity, pins: &SharedPins) -> Result<Self, String> {
        PinnedClient::new(bundle, identity, pins, "/swarm/heartbeat").map(Self)
    }

    /// Presents `bundle` (a renewed certificate) from the next heartbeat on.
    pub fn reload(&self, bundle: &Bundle) -> Result<(), String> {
        self.0.reload(bundle)
    }
}

#[async_trait::async_trait]
impl HeartbeatTransport for HttpsTransport {
    async fn send(&self, body: &HeartbeatBody) -> Result<HeartbeatAck, TransportError> {
        let resp = self.0.post().json(body).send().await.map_err(|e| {
            let text = format!("{e:#}");
            if text.contains("certificate") || text.contains("Certificate") {
                TransportError::Identity(text)
            } else {
                TransportError::Unreachable(text)
            }
        })?;
        let status = resp.status().as_u16();
        Ok(if status == 204 {
            HeartbeatAck::Accepted
        } else {
            HeartbeatAck::Rejected { status }
        })
    }
}

/// `EventTransport` over the worker's pinned mTLS client: `<master_url>/swarm/events`.
#[derive(Debug)]
pub struct HttpsEventTransport(PinnedClient);

impl HttpsEventTransport {
    /// Event batches presenting `bundle`, the master accepted by any of `pins`.
    pub fn new(bundle: &Bundle, identity: &Identity, pins: &SharedPins) -> Result<Self, String> {
        PinnedClient::new(bundle, identity, pins, "/swarm/events").map(Self)
    }

    /// Presents `bundle` (a renewed certificate) from the next batch on.
    pub fn reload(&self, bundle: &Bundle) -> Result<(), String> {
        self.0.reload(bundle)
    }
}

#[async_trait::async_trait]
impl EventTransport for HttpsEventTransport {
    async fn send(&self, batch: &EventBatch) -> Result<EventAck, TransportError> {
        let resp = self
            .0
            .post()
            .json(batch)
            .send()
            .await
            .map_err(|e| TransportError::Unreachable(format!("{e:#}")))?;
        let status = resp.status().as_u16();
        if status == 200 {
            let answer: EventBatchAnswer = resp
                .json()
                .await
                .map_err(|e| TransportError::Unreachable(format!("answer: {e:#}")))?;
            return Ok(EventAck::Stored(answer));
        }
        let detail = resp.text().await.unwrap_or_default();
        Ok(EventAck::Rejected { status, detail })
    }
}

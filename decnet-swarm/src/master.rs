//! A worker's clients towards the master: heartbeats and attacker-event batches over the
//! worker's certificate, the master verified by the DECNET CA, CN `decnet-master` and the
//! fingerprints pinned (at enrollment, and a successor the master announced during its
//! certificate's rollover) — never by hostname, so the master's address may change.

use std::time::Duration;

use decnet_core::model::wire::{EventBatch, EventBatchAnswer};
use decnet_core::model::HeartbeatBody;
use decnet_core::traits::{
    EventAck, EventTransport, HeartbeatAck, HeartbeatTransport, TransportError,
};
use decnet_tls::pki::{Bundle, MASTER_CN};
use decnet_tls::verify::{client_config, PeerPolicy, SharedPins};

use crate::errors::{error_chain, is_certificate_error};

/// How long one heartbeat or event batch may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The pinned mTLS client a worker uses towards the master: `bundle` as identity, the master
/// accepted by the CA, CN `decnet-master` and any of `pins` as they are at each handshake.
pub fn pinned_master_client(
    bundle: &Bundle,
    pins: &SharedPins,
) -> Result<reqwest::Client, TransportError> {
    let policy = PeerPolicy::from_ca_pem(&bundle.ca_pem)
        .map_err(|e| TransportError::identity(e.to_string()).with_source(e))?
        .with_expected_cn(MASTER_CN)
        .with_shared_pins(pins.clone());
    let tls = client_config(bundle, &policy)
        .map_err(|e| TransportError::identity(e.to_string()).with_source(e))?;
    reqwest::Client::builder()
        .use_preconfigured_tls((*tls).clone())
        .timeout(REQUEST_TIMEOUT)
        .pool_idle_timeout(Duration::from_secs(90))
        .build()
        .map_err(|e| TransportError::identity(error_chain(&e)).with_source(e))
}

/// [`pinned_master_client`] pinning the master by one fingerprint (the one an enrollment
/// answer carries).
pub fn master_client(
    bundle: &Bundle,
    master_fingerprint: &str,
) -> Result<reqwest::Client, TransportError> {
    let pins = SharedPins::new(&[master_fingerprint.to_string()])
        .map_err(|e| TransportError::identity(e.to_string()).with_source(e))?;
    pinned_master_client(bundle, &pins)
}

/// The pinned client towards one master route, swappable when the worker's certificate is
/// renewed.
#[derive(Debug)]
struct PinnedClient {
    client: std::sync::RwLock<reqwest::Client>,
    pins: SharedPins,
    url: String,
}

impl PinnedClient {
    fn new(
        bundle: &Bundle,
        master_url: &str,
        pins: &SharedPins,
        path: &str,
    ) -> Result<Self, TransportError> {
        Ok(Self {
            client: std::sync::RwLock::new(pinned_master_client(bundle, pins)?),
            pins: pins.clone(),
            url: format!("{}{path}", master_url.trim_end_matches('/')),
        })
    }

    fn reload(&self, bundle: &Bundle) -> Result<(), TransportError> {
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

/// A failed send: a certificate refused on either side is an identity problem (the worker
/// must renew or re-enroll), anything else leaves the master unreachable for now.
fn send_error(e: reqwest::Error) -> TransportError {
    let text = error_chain(&e);
    if is_certificate_error(&e) {
        TransportError::identity(text).with_source(e)
    } else {
        TransportError::unreachable(text).with_source(e)
    }
}

/// [`HeartbeatTransport`]: POSTs heartbeats to `<master_url>/swarm/heartbeat` on one
/// persistent connection.
#[derive(Debug)]
pub struct HttpsTransport(PinnedClient);

impl HttpsTransport {
    /// Heartbeats to `master_url` presenting `bundle`, the master accepted by any of `pins`.
    pub fn new(
        bundle: &Bundle,
        master_url: &str,
        pins: &SharedPins,
    ) -> Result<Self, TransportError> {
        PinnedClient::new(bundle, master_url, pins, "/swarm/heartbeat").map(Self)
    }

    /// Presents `bundle` (a renewed certificate) from the next heartbeat on.
    pub fn reload(&self, bundle: &Bundle) -> Result<(), TransportError> {
        self.0.reload(bundle)
    }
}

#[async_trait::async_trait]
impl HeartbeatTransport for HttpsTransport {
    async fn send(&self, body: &HeartbeatBody) -> Result<HeartbeatAck, TransportError> {
        let resp = self.0.post().json(body).send().await.map_err(send_error)?;
        let status = resp.status().as_u16();
        Ok(if status == 204 {
            HeartbeatAck::Accepted
        } else {
            HeartbeatAck::Rejected { status }
        })
    }
}

/// [`EventTransport`]: POSTs attacker-event batches to `<master_url>/swarm/events`.
#[derive(Debug)]
pub struct HttpsEventTransport(PinnedClient);

impl HttpsEventTransport {
    /// Event batches to `master_url` presenting `bundle`, the master accepted by any of `pins`.
    pub fn new(
        bundle: &Bundle,
        master_url: &str,
        pins: &SharedPins,
    ) -> Result<Self, TransportError> {
        PinnedClient::new(bundle, master_url, pins, "/swarm/events").map(Self)
    }

    /// Presents `bundle` (a renewed certificate) from the next batch on.
    pub fn reload(&self, bundle: &Bundle) -> Result<(), TransportError> {
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
            .map_err(|e| TransportError::unreachable(error_chain(&e)).with_source(e))?;
        let status = resp.status().as_u16();
        if status == 200 {
            let answer: EventBatchAnswer = resp.json().await.map_err(|e| {
                TransportError::unreachable(format!("answer: {}", error_chain(&e))).with_source(e)
            })?;
            return Ok(EventAck::Stored(answer));
        }
        let detail = resp.text().await.unwrap_or_default();
        Ok(EventAck::Rejected { status, detail })
    }
}

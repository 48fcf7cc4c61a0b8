//! Shipping a worker's spooled attacker events to the master (`POST /swarm/events`, PRODUCT
//! §10): oldest first, in batches, acknowledged in the spool only once the master has stored
//! them — at least once on the wire, exactly once in the store (it is idempotent by id).

use crate::adapters::spool::{Spool, SpoolError};
use crate::model::wire::EventBatch;
use crate::model::HostUuid;
use crate::orchestrate::ingest::MAX_BATCH;
use crate::traits::{EventAck, EventTransport, TransportError};

/// What one shipping pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shipped {
    /// Events the master stored or already had.
    pub delivered: u64,
    /// Events of batches the master refused for good (4xx other than 403 and 429), counted as
    /// dropped in the spool so the loss is reported.
    pub refused: u64,
    /// The master's answer to the last such batch, for the log.
    pub last_refusal: Option<String>,
}

/// Why a pass stopped early (the caller backs off and tries again).
#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    /// The master could not be reached or failed its identity check.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The master refused for now (403, 429 or 5xx): the batch stays in the spool.
    #[error("the master refused the batch ({status}): {detail}")]
    Refused {
        /// The HTTP status the master answered.
        status: u16,
        /// The master's detail text.
        detail: String,
    },
    /// Reading the spool or recording the acknowledged position failed.
    #[error(transparent)]
    Spool(#[from] SpoolError),
}

/// Sends everything the spool holds past its acknowledged position, `batch` events at a time
/// (at most the master's bound). A batch the master answers 4xx for good — it will never take
/// it — is acknowledged and counted as dropped instead of blocking the ones behind it; 403 (an
/// identity problem), 429, 5xx and an unreachable master stop the pass with nothing lost.
pub async fn ship_spool(
    spool: &mut Spool,
    transport: &dyn EventTransport,
    host: HostUuid,
    batch: usize,
) -> Result<Shipped, ShipError> {
    let batch = batch.clamp(1, MAX_BATCH);
    let mut done = Shipped::default();
    loop {
        let (events, next) = spool.read(spool.acked(), batch)?;
        if events.is_empty() {
            // Past a torn or foreign line: move the cursor over it.
            if next != spool.acked() {
                spool.ack(next)?;
            }
            return Ok(done);
        }
        let n = events.len() as u64;
        let body = EventBatch {
            host_uuid: host,
            events,
        };
        match transport.send(&body).await? {
            EventAck::Stored(_) => {
                spool.ack(next)?;
                done.delivered += n;
            }
            EventAck::Rejected { status, detail }
                if (400..500).contains(&status) && status != 403 && status != 429 =>
            {
                spool.ack(next)?;
                spool.record_dropped(n)?;
                done.refused += n;
                done.last_refusal = Some(format!("{status}: {detail}"));
            }
            EventAck::Rejected { status, detail } => {
                return Err(ShipError::Refused { status, detail });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::spool::DEFAULT_SPOOL_BYTES;
    use crate::model::attack::{new_event_id, AttackDetails, AttackEvent, AttackKind, Transport};
    use crate::model::wire::EventBatchAnswer;
    use crate::traits::MockEventTransport;
    use std::sync::{Arc, Mutex};

    fn event(seq: u64) -> AttackEvent {
        AttackEvent {
            v: 1,
            id: new_event_id(),
            ts: chrono::Utc::now(),
            host: "h".into(),
            decky: "decky-01".into(),
            service: "ssh".into(),
            protocol: Transport::Tcp,
            src_ip: "10.0.0.9".parse().expect("ip"),
            src_port: 1,
            dst_ip: None,
            dst_port: 22,
            session: new_event_id(),
            stream: new_event_id(),
            seq,
            kind: AttackKind::Connect,
            details: AttackDetails::default(),
        }
    }

    fn spool_with(n: u64) -> (tempfile::TempDir, Spool) {
        let dir = tempfile::tempdir().expect("tmp");
        let mut s = Spool::open(dir.path(), DEFAULT_SPOOL_BYTES).expect("open");
        s.append(&(1..=n).map(event).collect::<Vec<_>>())
            .expect("append");
        (dir, s)
    }

    fn stored() -> EventAck {
        EventAck::Stored(EventBatchAnswer {
            stored: 1,
            duplicates: 0,
        })
    }

    #[tokio::test]
    async fn everything_goes_in_batches_and_is_acknowledged() {
        let (_dir, mut spool) = spool_with(7);
        let sent = Arc::new(Mutex::new(Vec::new()));
        let log = sent.clone();
        let mut t = MockEventTransport::new();
        t.expect_send().returning(move |b| {
            log.lock()
                .expect("lock")
                .push(b.events.iter().map(|e| e.seq).collect::<Vec<_>>());
            Ok(stored())
        });
        let host = HostUuid::new_v4();
        let got = ship_spool(&mut spool, &t, host, 3).await.expect("ship");
        assert_eq!((got.delivered, got.refused), (7, 0));
        assert_eq!(
            *sent.lock().expect("lock"),
            vec![vec![1, 2, 3], vec![4, 5, 6], vec![7]]
        );
        let (rest, _) = spool.read(spool.acked(), 100).expect("read");
        assert!(rest.is_empty(), "all acknowledged");
    }

    #[tokio::test]
    async fn an_unreachable_master_keeps_everything_for_the_next_pass() {
        let (_dir, mut spool) = spool_with(4);
        let mut t = MockEventTransport::new();
        let mut calls = 0;
        t.expect_send().returning(move |_| {
            calls += 1;
            if calls == 1 {
                Ok(stored())
            } else {
                Err(TransportError::unreachable("connection refused"))
            }
        });
        let err = ship_spool(&mut spool, &t, HostUuid::new_v4(), 2)
            .await
            .expect_err("stops");
        assert!(matches!(err, ShipError::Transport(_)));
        let (rest, _) = spool.read(spool.acked(), 100).expect("read");
        assert_eq!(rest.iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 4]);
    }

    #[tokio::test]
    async fn forbidden_stops_and_a_refused_batch_is_dropped_and_counted() {
        let (_dir, mut spool) = spool_with(4);
        let mut t = MockEventTransport::new();
        t.expect_send().times(1).returning(|_| {
            Ok(EventAck::Rejected {
                status: 403,
                detail: "forbidden".into(),
            })
        });
        let err = ship_spool(&mut spool, &t, HostUuid::new_v4(), 2)
            .await
            .expect_err("403 stops");
        assert!(matches!(err, ShipError::Refused { status: 403, .. }));
        let (kept, _) = spool.read(spool.acked(), 100).expect("read");
        assert_eq!(kept.len(), 4, "nothing lost on 403");

        let mut t = MockEventTransport::new();
        let mut calls = 0;
        t.expect_send().returning(move |_| {
            calls += 1;
            Ok(if calls == 1 {
                EventAck::Rejected {
                    status: 422,
                    detail: "events[0].decky: is not a decky assigned to this host".into(),
                }
            } else {
                stored()
            })
        });
        let got = ship_spool(&mut spool, &t, HostUuid::new_v4(), 2)
            .await
            .expect("ship");
        assert_eq!((got.delivered, got.refused), (2, 2));
        assert!(got.last_refusal.expect("why").contains("events[0].decky"));
        assert_eq!(
            spool.take_dropped().expect("dropped"),
            2,
            "reported as a drop"
        );
    }
}

//! The bus with replay (feature `runtime`, PRODUCT §9): an in-process [`Bus`] that numbers
//! events and keeps the last ones, so a stream (the master's server-sent events) can replay
//! them and resume after an id without a gap or a duplicate.

use std::sync::{Arc, Mutex};

use crate::traits::{Bus, BusEvent};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A bus event with its sequence number (1, 2, …; the SSE `id`).
pub type Numbered = (u64, BusEvent);

/// An in-process bus: a broadcast channel, so slow subscribers lose events (and are told how
/// many) while publishers never wait; it also keeps the last `capacity` events, numbered, so a
/// stream can replay them and resume after an id without a gap or a duplicate.
#[derive(Debug, Clone)]
pub struct BroadcastBus {
    log: Arc<Mutex<EventLog>>,
}

#[derive(Debug)]
struct EventLog {
    next: u64,
    capacity: usize,
    recent: std::collections::VecDeque<Numbered>,
    numbered: tokio::sync::broadcast::Sender<Numbered>,
}

impl BroadcastBus {
    /// A bus keeping the last `capacity` events (at least 1).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let (numbered, _) = tokio::sync::broadcast::channel(capacity);
        Self {
            log: Arc::new(Mutex::new(EventLog {
                next: 1,
                capacity,
                recent: std::collections::VecDeque::with_capacity(capacity),
                numbered,
            })),
        }
    }

    /// Every event from now on, numbered.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Numbered> {
        lock(&self.log).numbered.subscribe()
    }

    /// The kept events numbered above `after` (all kept ones for `None`), and a receiver of
    /// every later one: taken together, so nothing falls between them or comes twice.
    pub fn replay_and_subscribe(
        &self,
        after: Option<u64>,
    ) -> (Vec<Numbered>, tokio::sync::broadcast::Receiver<Numbered>) {
        let log = lock(&self.log);
        let replay = log
            .recent
            .iter()
            .filter(|(id, _)| after.is_none_or(|a| *id > a))
            .cloned()
            .collect();
        (replay, log.numbered.subscribe())
    }
}

impl Bus for BroadcastBus {
    fn publish(&self, event: BusEvent) {
        let mut log = lock(&self.log);
        let id = log.next;
        log.next += 1;
        if log.recent.len() == log.capacity {
            log.recent.pop_front();
        }
        log.recent.push_back((id, event.clone()));
        let _ = log.numbered.send((id, event));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DeckyName;

    fn ev(n: u32) -> BusEvent {
        BusEvent::mutation(
            &DeckyName::new(format!("d-{n}")).unwrap(),
            &[],
            &[],
            "operator",
        )
    }

    #[test]
    fn replay_keeps_the_last_events_and_resumes_after_an_id() {
        let bus = BroadcastBus::new(3);
        for n in 1..=5 {
            bus.publish(ev(n));
        }
        let (all, _) = bus.replay_and_subscribe(None);
        let ids: Vec<u64> = all.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, [3, 4, 5]);
        assert_eq!(all[0].1.topic, "decky.d-3.mutation");
        let (after, mut rx) = bus.replay_and_subscribe(Some(4));
        assert_eq!(after.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [5]);
        bus.publish(ev(6));
        let (id, e) = rx.try_recv().unwrap();
        assert_eq!((id, e.topic.as_str()), (6, "decky.d-6.mutation"));
        assert!(bus.replay_and_subscribe(Some(99)).0.is_empty());
    }

    #[test]
    fn every_body_gets_a_ts_and_an_attack_keeps_its_own() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-03T07:00:00.5Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let mut e = ev(1);
        e.stamp(now);
        assert_eq!(e.body["ts"], "2026-12-03T07:00:00.500000Z");
        let mut own = ev(2);
        own.body["ts"] = serde_json::Value::from("2026-01-01T00:00:00Z");
        own.stamp(now);
        assert_eq!(own.body["ts"], "2026-01-01T00:00:00Z");
    }
}

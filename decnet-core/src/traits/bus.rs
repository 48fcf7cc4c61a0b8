//! `Bus`: where events go (PRODUCT §9). Publishing is best-effort and never fails the
//! operation: the database write is authoritative.

use serde::Serialize;
use serde_json::Value;

use crate::model::{DeckyName, HostUuid, LifecycleStatus, Operation};

/// One event: a topic and a JSON body.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BusEvent {
    /// The dotted topic, e.g. `decky.<host_uuid>:<name>.state` (host `local` for unihost).
    pub topic: String,
    /// The event's JSON object, with a `ts` once [`BusEvent::stamp`]ed.
    pub body: Value,
}

impl BusEvent {
    /// Adds `ts` (RFC 3339, UTC, microseconds) to an object body that has none: every event
    /// the orchestration publishes says when it happened.
    pub fn stamp(&mut self, now: chrono::DateTime<chrono::Utc>) {
        if let Value::Object(body) = &mut self.body {
            body.entry("ts").or_insert_with(|| {
                Value::String(now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
            });
        }
    }

    /// `attack.<decky>.<service>`: the attacker event itself (it carries its `ts`).
    pub fn attack(event: &crate::model::attack::AttackEvent) -> Self {
        Self {
            topic: event.topic(),
            body: serde_json::to_value(event).unwrap_or(Value::Null),
        }
    }

    /// `decky.<name>.lifecycle` `{"lifecycle_id","operation","status","error"?}`.
    pub fn lifecycle(
        decky: &DeckyName,
        lifecycle_id: uuid::Uuid,
        operation: Operation,
        status: LifecycleStatus,
        error: Option<&str>,
    ) -> Self {
        let mut body = serde_json::json!({
            "lifecycle_id": lifecycle_id,
            "operation": operation,
            "status": status,
        });
        if let Some(e) = error {
            body["error"] = Value::String(e.to_string());
        }
        Self {
            topic: format!("decky.{decky}.lifecycle"),
            body,
        }
    }

    /// `decky.<host>:<name>.state` — `host` is `local` for unihost deckies. The body carries
    /// `previous_state` only for [`StateTransition::StateChanged`], as the original's did.
    pub fn state(
        host: HostUuid,
        decky: &DeckyName,
        state: &str,
        transition: StateTransition<'_>,
    ) -> Self {
        let host_seg = host.topic_segment();
        let mut body = serde_json::json!({
            "host_uuid": host_seg,
            "name": decky,
            "state": state,
            "transition": transition.as_str(),
            "source": "fleet",
        });
        if let StateTransition::StateChanged { previous } = transition {
            body["previous_state"] = Value::String(previous.to_string());
        }
        Self {
            topic: format!("decky.{host_seg}:{decky}.state"),
            body,
        }
    }

    /// `decky.<name>.mutation` when services change: the original's payload `{decky,
    /// old_services, new_services, trigger}` (`trigger`: `operator`, `scheduled`, …).
    pub fn mutation(decky: &DeckyName, old: &[String], new: &[String], trigger: &str) -> Self {
        Self {
            topic: format!("decky.{decky}.mutation"),
            body: serde_json::json!({
                "decky": decky,
                "old_services": old,
                "new_services": new,
                "trigger": trigger,
            }),
        }
    }
}

/// What happened to a decky's recorded state (the `transition` of a `.state` event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateTransition<'a> {
    /// A decky the fleet did not have before.
    Inserted,
    /// The decky left the fleet (its state is `torn_down`).
    Deleted,
    /// Its state changed from `previous`.
    StateChanged {
        /// The state word before the change (`pending`, `running`, …).
        previous: &'a str,
    },
}

impl StateTransition<'_> {
    /// The wire word: `inserted`, `deleted` or `state_changed`.
    pub fn as_str(&self) -> &'static str {
        match self {
            StateTransition::Inserted => "inserted",
            StateTransition::Deleted => "deleted",
            StateTransition::StateChanged { .. } => "state_changed",
        }
    }
}

/// Publishes events; implementations must not block or fail the caller.
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
pub trait Bus: Send + Sync {
    /// Hands `event` on. Returns promptly and never fails the operation that published it:
    /// the store, not the bus, is authoritative.
    fn publish(&self, event: BusEvent);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_and_bodies() {
        let d = DeckyName::new("decky-01").unwrap();
        let id = uuid::Uuid::nil();
        let e = BusEvent::lifecycle(
            &d,
            id,
            Operation::Deploy,
            LifecycleStatus::Failed,
            Some("boom"),
        );
        assert_eq!(e.topic, "decky.decky-01.lifecycle");
        assert_eq!(e.body["status"], "failed");
        assert_eq!(e.body["error"], "boom");
        let e = BusEvent::state(
            HostUuid::LOCAL,
            &d,
            "running",
            StateTransition::StateChanged {
                previous: "degraded",
            },
        );
        assert_eq!(e.topic, "decky.local:decky-01.state");
        assert_eq!(e.body["source"], "fleet");
        assert_eq!(e.body["transition"], "state_changed");
        assert_eq!(e.body["previous_state"], "degraded");
        let h = HostUuid::new_v4();
        let e = BusEvent::state(h, &d, "pending", StateTransition::Inserted);
        assert_eq!(e.topic, format!("decky.{h}:decky-01.state"));
        assert_eq!(e.body["transition"], "inserted");
        assert!(e.body.get("previous_state").is_none());
        let e = BusEvent::mutation(&d, &["ssh".into()], &["ftp".into()], "operator");
        assert_eq!(e.topic, "decky.decky-01.mutation");
        assert_eq!(
            e.body,
            serde_json::json!({"decky": "decky-01", "old_services": ["ssh"],
                               "new_services": ["ftp"], "trigger": "operator"})
        );
        let e = BusEvent::state(h, &d, "torn_down", StateTransition::Deleted);
        assert_eq!(e.body["transition"], "deleted");
        assert!(e.body.get("previous_state").is_none());
    }
}

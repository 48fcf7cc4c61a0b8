//! The master's intake of attacker events from a worker (`POST /swarm/events`, PRODUCT §10),
//! as a pure check: a batch may only speak for the deckies assigned to the reporting host, in a
//! schema version this build reads, within the batch bound. A batch is taken whole or refused
//! whole, with the first offending field named; the caller stores what it returns.

use std::collections::BTreeSet;

use crate::model::attack::{AttackEvent, AttackKind, ATTACK_SCHEMA_VERSION};
use crate::model::FieldError;

/// The most events one batch may carry.
pub const MAX_BATCH: usize = 1000;

/// Checks `events` from the host `host` (its uuid, stamped on every event) whose assigned
/// deckies are `assigned`; returns them stamped, or the first field that breaks a rule.
///
/// A `drop` report may name no decky (a loss in the worker's spool is the host's, not a
/// decky's); every other event names an assigned decky.
pub fn check_batch(
    host: &str,
    assigned: &BTreeSet<String>,
    events: Vec<AttackEvent>,
) -> Result<Vec<AttackEvent>, FieldError> {
    if events.len() > MAX_BATCH {
        return Err(FieldError::new(
            "events",
            &events.len().to_string(),
            format!("at most {MAX_BATCH} events per batch"),
        ));
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(events.len());
    for (i, mut e) in events.into_iter().enumerate() {
        let field = |name: &str| format!("events[{i}].{name}");
        if e.v != ATTACK_SCHEMA_VERSION {
            return Err(FieldError::new(
                field("v"),
                &e.v.to_string(),
                format!("is not the schema version this master reads ({ATTACK_SCHEMA_VERSION})"),
            ));
        }
        if e.kind == AttackKind::Other {
            return Err(FieldError::new(
                field("kind"),
                "other",
                "not a kind this master knows",
            ));
        }
        let host_level_drop = e.kind == AttackKind::Drop && e.decky.is_empty();
        if !host_level_drop && !assigned.contains(&e.decky) {
            return Err(FieldError::new(
                field("decky"),
                &e.decky,
                "is not a decky assigned to this host",
            ));
        }
        if e.service.is_empty() || e.service.len() > 64 {
            return Err(FieldError::new(
                field("service"),
                &e.service,
                "1 to 64 characters",
            ));
        }
        if !seen.insert(e.id) {
            return Err(FieldError::new(
                field("id"),
                &e.id.to_string(),
                "appears twice in the batch",
            ));
        }
        e.host = host.to_owned();
        out.push(e);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::attack::{new_event_id, AttackDetails, Transport};

    fn event(decky: &str, kind: AttackKind) -> AttackEvent {
        AttackEvent {
            v: 1,
            id: new_event_id(),
            ts: chrono::Utc::now(),
            host: "forged".into(),
            decky: decky.into(),
            service: "ssh".into(),
            protocol: Transport::Tcp,
            src_ip: "10.0.0.9".parse().expect("ip"),
            src_port: 1,
            dst_ip: None,
            dst_port: 22,
            session: new_event_id(),
            stream: new_event_id(),
            seq: 1,
            kind,
            details: AttackDetails::default(),
        }
    }

    fn assigned() -> BTreeSet<String> {
        ["decky-01".to_string(), "decky-02".to_string()].into()
    }

    #[test]
    fn a_good_batch_is_stamped_with_the_reporting_host() {
        let mut drop = event("", AttackKind::Drop);
        drop.service = "spool".into();
        let got = check_batch(
            "host-a",
            &assigned(),
            vec![event("decky-01", AttackKind::Connect), drop],
        )
        .expect("ok");
        assert!(got.iter().all(|e| e.host == "host-a"));
    }

    #[test]
    fn each_rule_names_its_field() {
        let mut too_new = event("decky-01", AttackKind::Auth);
        too_new.v = 2;
        let mut unknown_kind = event("decky-01", AttackKind::Auth);
        unknown_kind.kind = AttackKind::Other;
        let mut no_service = event("decky-01", AttackKind::Auth);
        no_service.service.clear();
        let twice = event("decky-01", AttackKind::Auth);
        let cases: Vec<(Vec<AttackEvent>, &str, &str)> = vec![
            (
                vec![
                    event("decky-01", AttackKind::Auth),
                    event("other-host-decky", AttackKind::Auth),
                ],
                "events[1].decky",
                "not a decky assigned to this host",
            ),
            (
                vec![too_new],
                "events[0].v",
                "schema version this master reads",
            ),
            (vec![unknown_kind], "events[0].kind", "not a kind"),
            (vec![no_service], "events[0].service", "1 to 64"),
            (vec![twice.clone(), twice], "events[1].id", "twice"),
            (
                vec![event("", AttackKind::Auth)],
                "events[0].decky",
                "not a decky assigned",
            ),
            (
                (0..=MAX_BATCH)
                    .map(|_| event("decky-01", AttackKind::Connect))
                    .collect(),
                "events",
                "at most 1000",
            ),
        ];
        for (batch, field, rule) in cases {
            let err = check_batch("h", &assigned(), batch).expect_err(field);
            assert_eq!(err.field, field);
            assert!(err.rule.contains(rule), "{}: {}", err.field, err.rule);
        }
    }
}

//! What the SQLite and PostgreSQL stores share for attacker events: the query text built from
//! a filter, the aggregate queries behind attacker profiles, and their assembly.

use crate::common::{backend, insert_sql};
use decnet_core::traits::RepoError;

/// Columns of `attack_events` in insert order.
pub(crate) const ATTACK_COLS: &str =
    "id, ts, host, decky, service, kind, src_ip, username, password, body";

/// The insert of one event; an id already stored is skipped.
pub(crate) fn insert_attack_sql() -> String {
    format!(
        "{} ON CONFLICT (id) DO NOTHING",
        insert_sql("attack_events", ATTACK_COLS)
    )
}

/// One bound parameter of an attack-event query; each backend binds it its own way.
pub(crate) enum AttackParam {
    Ts(chrono::DateTime<chrono::Utc>),
    Text(String),
    Id(uuid::Uuid),
    Limit(i64),
}

/// `SELECT body …` for `q`: only the filters present become clauses (so indexes apply), in id
/// order, after the cursor, limited to the page.
pub(crate) fn attack_select(
    q: &decnet_core::model::attack::AttackQuery,
) -> (String, Vec<AttackParam>) {
    let mut clauses = Vec::new();
    let mut params = Vec::new();
    let mut push = |clause: &str, p: AttackParam| {
        params.push(p);
        clauses.push(format!("{clause} ${}", params.len()));
    };
    if let Some(t) = q.since {
        push("ts >=", AttackParam::Ts(t));
    }
    if let Some(t) = q.until {
        push("ts <", AttackParam::Ts(t));
    }
    if let Some(d) = &q.decky {
        push("decky =", AttackParam::Text(d.clone()));
    }
    if let Some(ip) = q.src_ip {
        push("src_ip =", AttackParam::Text(ip.to_string()));
    }
    if let Some(s) = &q.service {
        push("service =", AttackParam::Text(s.clone()));
    }
    if let Some(k) = q.kind {
        push("kind =", AttackParam::Text(k.as_str().to_string()));
    }
    if let Some(id) = q.after {
        push("id >", AttackParam::Id(id));
    }
    let filter = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    params.push(AttackParam::Limit(i64::from(q.page())));
    let sql = format!(
        "SELECT body FROM attack_events {filter} ORDER BY id LIMIT ${}",
        params.len()
    );
    (sql, params)
}

/// Parses a stored event body.
pub(crate) fn attack_from_body(
    body: &str,
) -> Result<decnet_core::model::attack::AttackEvent, RepoError> {
    serde_json::from_str(body).map_err(|e| backend("stored attacker event", e))
}

/// The aggregate queries behind attacker profiles (the same text on both backends).
pub(crate) const PROFILE_TOTALS: &str =
    "SELECT src_ip, MIN(ts) AS first_seen, MAX(ts) AS last_seen, \
     COUNT(*) AS events, SUM(CASE WHEN kind = 'auth' THEN 1 ELSE 0 END) AS attempts \
     FROM attack_events WHERE kind <> 'drop' GROUP BY src_ip";
pub(crate) const PROFILE_TOUCHED: &str =
    "SELECT DISTINCT src_ip, decky, service FROM attack_events WHERE kind <> 'drop'";
pub(crate) const PROFILE_USERNAMES: &str = "SELECT DISTINCT src_ip, username FROM attack_events \
     WHERE kind <> 'drop' AND username IS NOT NULL";
/// The latest `auth` of each source address, by id (a window, so one pass: a correlated
/// "latest id" subquery let SQLite's planner walk the kind index once per row, O(n²)).
pub(crate) const PROFILE_LAST_AUTH: &str = "SELECT src_ip, username, password FROM \
     (SELECT src_ip, username, password, \
      ROW_NUMBER() OVER (PARTITION BY src_ip ORDER BY id DESC) AS rn \
      FROM attack_events WHERE kind = 'auth') latest WHERE rn = 1";
pub(crate) const PRUNE_BEFORE: &str = "DELETE FROM attack_events WHERE ts < $1";
pub(crate) const PRUNE_KEEP: &str = "DELETE FROM attack_events WHERE id NOT IN \
     (SELECT id FROM attack_events ORDER BY id DESC LIMIT $1)";

/// One source address's totals, as the aggregate query returns them.
pub(crate) struct ProfileTotals {
    pub src_ip: String,
    pub first_seen: chrono::DateTime<chrono::Utc>,
    pub last_seen: chrono::DateTime<chrono::Utc>,
    pub events: i64,
    pub attempts: i64,
}

/// Assembles profiles from the aggregate queries' rows, ordered and capped as
/// `AttackerProfile::from_events` does.
pub(crate) fn assemble_profiles(
    totals: Vec<ProfileTotals>,
    touched: Vec<(String, String, String)>,
    usernames: Vec<(String, String)>,
    last_auth: Vec<(String, Option<String>, Option<String>)>,
) -> Result<Vec<decnet_core::model::attack::AttackerProfile>, RepoError> {
    use decnet_core::model::attack::{AttackerProfile, MAX_PROFILE_USERNAMES};
    use std::collections::{BTreeMap, BTreeSet};
    type Sets = (BTreeSet<String>, BTreeSet<String>, BTreeSet<String>);
    let mut sets: BTreeMap<String, Sets> = BTreeMap::new();
    for (ip, decky, service) in touched {
        let e = sets.entry(ip).or_default();
        e.0.insert(decky);
        e.1.insert(service);
    }
    for (ip, user) in usernames {
        sets.entry(ip).or_default().2.insert(user);
    }
    let last: BTreeMap<String, (Option<String>, Option<String>)> = last_auth
        .into_iter()
        .map(|(ip, u, p)| (ip, (u, p)))
        .collect();
    let mut out = Vec::with_capacity(totals.len());
    for t in totals {
        let src_ip = t
            .src_ip
            .parse()
            .map_err(|e| backend(format_args!("stored src_ip {:?}", t.src_ip), e))?;
        let (deckies, services, users) = sets.remove(&t.src_ip).unwrap_or_default();
        let (last_username, last_password) = last.get(&t.src_ip).cloned().unwrap_or_default();
        out.push(AttackerProfile {
            src_ip,
            first_seen: t.first_seen,
            last_seen: t.last_seen,
            events: u64::try_from(t.events).unwrap_or(0),
            attempts: u64::try_from(t.attempts).unwrap_or(0),
            deckies: deckies.into_iter().collect(),
            services: services.into_iter().collect(),
            usernames: users.into_iter().take(MAX_PROFILE_USERNAMES).collect(),
            last_username,
            last_password,
        });
    }
    out.sort_by(|a, b| b.last_seen.cmp(&a.last_seen).then(a.src_ip.cmp(&b.src_ip)));
    Ok(out)
}

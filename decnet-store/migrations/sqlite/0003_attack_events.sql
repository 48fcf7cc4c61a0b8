-- Attacker events (PRODUCT §10, issue 11): stored once by event id (UUIDv7, so id order is
-- birth order), the whole event in `body`, the filtered and aggregated fields as columns.
-- Times are RFC 3339 text with six fractional digits (sortable as text).

CREATE TABLE attack_events (
    id       TEXT PRIMARY KEY,
    ts       TEXT NOT NULL,
    host     TEXT NOT NULL,
    decky    TEXT NOT NULL,
    service  TEXT NOT NULL,
    kind     TEXT NOT NULL,
    src_ip   TEXT NOT NULL,
    username TEXT,
    password TEXT,
    body     TEXT NOT NULL
);
CREATE INDEX attack_events_ts ON attack_events (ts);
CREATE INDEX attack_events_decky ON attack_events (decky, id);
CREATE INDEX attack_events_src ON attack_events (src_ip, id);
CREATE INDEX attack_events_service ON attack_events (service, id);
CREATE INDEX attack_events_kind ON attack_events (kind, id);

-- Attacker events (PRODUCT §10, issue 11): stored once by event id (UUIDv7, so id order is
-- birth order), the whole event in `body`, the filtered and aggregated fields as columns.

CREATE TABLE attack_events (
    id       uuid PRIMARY KEY,
    ts       timestamptz NOT NULL,
    host     text NOT NULL,
    decky    text COLLATE "C" NOT NULL,
    service  text COLLATE "C" NOT NULL,
    kind     text NOT NULL,
    src_ip   text NOT NULL,
    username text,
    password text,
    body     text NOT NULL
);
CREATE INDEX attack_events_ts ON attack_events (ts);
CREATE INDEX attack_events_decky ON attack_events (decky, id);
CREATE INDEX attack_events_src ON attack_events (src_ip, id);
CREATE INDEX attack_events_service ON attack_events (service, id);
CREATE INDEX attack_events_kind ON attack_events (kind, id);

-- DECNET-rs master store, SQLite.
-- Times are TEXT in RFC 3339 UTC with exactly six fractional digits
-- ('2026-03-04T05:06:07.123456Z'): fixed width, so text order is time order, and exact to the
-- microsecond like PostgreSQL's timestamptz. UUIDs are TEXT, lowercase and hyphenated, so text
-- order is byte order (PostgreSQL's uuid order). JSON documents are TEXT.

CREATE TABLE hosts (
    uuid           TEXT PRIMARY KEY NOT NULL,
    name           TEXT NOT NULL UNIQUE,
    address        TEXT NOT NULL,
    fingerprint    TEXT NOT NULL UNIQUE,
    status         TEXT NOT NULL CHECK (status IN ('enrolled', 'active', 'unreachable')),
    last_heartbeat TEXT,
    agent_version  TEXT,
    enrolled_at    TEXT NOT NULL
) STRICT;
CREATE INDEX hosts_status_heartbeat ON hosts (status, last_heartbeat);

CREATE TABLE revoked_certs (
    fingerprint TEXT PRIMARY KEY NOT NULL,
    revoked_at  TEXT NOT NULL
) STRICT;

CREATE TABLE enroll_tokens (
    id         TEXT PRIMARY KEY NOT NULL,
    hash       TEXT NOT NULL UNIQUE,
    host_name  TEXT NOT NULL,
    address    TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at    TEXT
) STRICT;

CREATE TABLE api_tokens (
    id         TEXT PRIMARY KEY NOT NULL,
    hash       TEXT NOT NULL UNIQUE,
    role       TEXT NOT NULL CHECK (role IN ('admin', 'viewer')),
    created_at TEXT NOT NULL
) STRICT;

-- One row: the fleet the operator asked for, as DecnetConfig JSON.
CREATE TABLE desired_fleet (
    id     INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    config TEXT NOT NULL
) STRICT;

-- No foreign key to hosts: the master's own (unihost) deckies use the nil host uuid.
CREATE TABLE shards (
    host_uuid  TEXT NOT NULL,
    decky_name TEXT NOT NULL,
    decky      TEXT NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('pending', 'running', 'degraded', 'failed',
                                              'tearing_down', 'teardown_failed')),
    last_error TEXT,
    last_seen  TEXT,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (host_uuid, decky_name)
) STRICT;

CREATE TABLE lifecycle (
    id           TEXT PRIMARY KEY NOT NULL,
    decky_name   TEXT NOT NULL,
    host_uuid    TEXT,
    operation    TEXT NOT NULL CHECK (operation IN ('deploy', 'mutate', 'teardown')),
    status       TEXT NOT NULL CHECK (status IN ('pending', 'running', 'succeeded', 'failed')),
    error        TEXT,
    started_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    completed_at TEXT
) STRICT;
CREATE INDEX lifecycle_decky_operation_status ON lifecycle (decky_name, operation, status);
CREATE INDEX lifecycle_status_started ON lifecycle (status, started_at);

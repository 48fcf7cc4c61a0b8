-- DECNET-rs master store, PostgreSQL.
-- Times are timestamptz (microseconds), ids uuid, JSON documents text (kept verbatim).
-- Names use the "C" collation so they sort byte-wise, as on SQLite and in memory.

CREATE TABLE hosts (
    uuid           uuid PRIMARY KEY,
    name           text COLLATE "C" NOT NULL UNIQUE,
    address        text NOT NULL,
    fingerprint    text NOT NULL UNIQUE,
    status         text NOT NULL CHECK (status IN ('enrolled', 'active', 'unreachable')),
    last_heartbeat timestamptz,
    agent_version  text,
    enrolled_at    timestamptz NOT NULL
);
CREATE INDEX hosts_status_heartbeat ON hosts (status, last_heartbeat);

CREATE TABLE revoked_certs (
    fingerprint text PRIMARY KEY,
    revoked_at  timestamptz NOT NULL
);

CREATE TABLE enroll_tokens (
    id         uuid PRIMARY KEY,
    hash       text NOT NULL UNIQUE,
    host_name  text NOT NULL,
    address    text NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);

CREATE TABLE api_tokens (
    id         uuid PRIMARY KEY,
    hash       text NOT NULL UNIQUE,
    role       text NOT NULL CHECK (role IN ('admin', 'viewer')),
    created_at timestamptz NOT NULL
);

-- One row: the fleet the operator asked for, as DecnetConfig JSON.
CREATE TABLE desired_fleet (
    id     smallint PRIMARY KEY CHECK (id = 1),
    config text NOT NULL
);

-- No foreign key to hosts: the master's own (unihost) deckies use the nil host uuid.
CREATE TABLE shards (
    host_uuid  uuid NOT NULL,
    decky_name text COLLATE "C" NOT NULL,
    decky      text NOT NULL,
    state      text NOT NULL CHECK (state IN ('pending', 'running', 'degraded', 'failed',
                                              'tearing_down', 'teardown_failed')),
    last_error text,
    last_seen  timestamptz,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (host_uuid, decky_name)
);

CREATE TABLE lifecycle (
    id           uuid PRIMARY KEY,
    decky_name   text COLLATE "C" NOT NULL,
    host_uuid    uuid,
    operation    text NOT NULL CHECK (operation IN ('deploy', 'mutate', 'teardown')),
    status       text NOT NULL CHECK (status IN ('pending', 'running', 'succeeded', 'failed')),
    error        text,
    started_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    completed_at timestamptz
);
CREATE INDEX lifecycle_decky_operation_status ON lifecycle (decky_name, operation, status);
CREATE INDEX lifecycle_status_started ON lifecycle (status, started_at);

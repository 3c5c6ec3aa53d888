-- Back-channel logout outbox, delivery attempts, audit log, API tokens.

CREATE TABLE deliveries (
    id               TEXT PRIMARY KEY,
    session_id       TEXT NOT NULL,
    client_id        TEXT NOT NULL,
    sub              TEXT NOT NULL,
    sid              TEXT NOT NULL,
    initiator        TEXT NOT NULL,
    status           TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0, -- in the current round
    total_attempts   INTEGER NOT NULL DEFAULT 0, -- ever
    next_attempt_at  INTEGER NOT NULL,
    lease_until      INTEGER,
    round_started_at INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    finished_at      INTEGER,
    last_error       TEXT
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_leased ON deliveries (lease_until) WHERE status = 'leased';
CREATE INDEX deliveries_client ON deliveries (client_id, created_at);
CREATE INDEX deliveries_session ON deliveries (session_id);
CREATE INDEX deliveries_status ON deliveries (status, created_at);

CREATE TABLE delivery_attempts (
    delivery_id TEXT NOT NULL,
    number      INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    latency_ms  INTEGER NOT NULL,
    http_status INTEGER,
    error       TEXT,
    PRIMARY KEY (delivery_id, number)
);

CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    actor       TEXT NOT NULL,
    client_id   TEXT,
    user_id     TEXT,
    session_id  TEXT,
    delivery_id TEXT,
    detail      TEXT NOT NULL -- JSON
);
CREATE INDEX audit_at ON audit_log (at);
CREATE INDEX audit_client ON audit_log (client_id, at);
CREATE INDEX audit_kind ON audit_log (kind, at);

CREATE TABLE api_tokens (
    hash       TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    label      TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

-- Back-channel logout outbox, delivery attempts, audit log, API tokens (mirrors
-- migrations/sqlite/0002_deliveries.sql). PostgreSQL only: `lease_owner`, the replica that holds a
-- delivery's lease, so that a replica releases only its own leases when it starts.

CREATE TABLE deliveries (
    id               TEXT COLLATE "C" PRIMARY KEY,
    session_id       TEXT COLLATE "C" NOT NULL,
    client_id        TEXT COLLATE "C" NOT NULL,
    sub              TEXT COLLATE "C" NOT NULL,
    sid              TEXT COLLATE "C" NOT NULL,
    initiator        TEXT NOT NULL,
    status           TEXT NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0, -- in the current round
    total_attempts   BIGINT NOT NULL DEFAULT 0, -- ever
    next_attempt_at  BIGINT NOT NULL,
    lease_until      BIGINT,
    lease_owner      TEXT,
    round_started_at BIGINT NOT NULL,
    created_at       BIGINT NOT NULL,
    finished_at      BIGINT,
    last_error       TEXT
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_leased ON deliveries (lease_until) WHERE status = 'leased';
CREATE INDEX deliveries_client ON deliveries (client_id, created_at);
CREATE INDEX deliveries_session ON deliveries (session_id);
CREATE INDEX deliveries_status ON deliveries (status, created_at);

CREATE TABLE delivery_attempts (
    delivery_id TEXT COLLATE "C" NOT NULL,
    number      BIGINT NOT NULL,
    at          BIGINT NOT NULL,
    latency_ms  BIGINT NOT NULL,
    http_status BIGINT,
    error       TEXT,
    PRIMARY KEY (delivery_id, number)
);

CREATE TABLE audit_log (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          BIGINT NOT NULL,
    kind        TEXT COLLATE "C" NOT NULL,
    actor       TEXT NOT NULL,
    client_id   TEXT COLLATE "C",
    user_id     TEXT COLLATE "C",
    session_id  TEXT COLLATE "C",
    delivery_id TEXT COLLATE "C",
    detail      TEXT NOT NULL -- JSON
);
CREATE INDEX audit_at ON audit_log (at);
CREATE INDEX audit_client ON audit_log (client_id, at);
CREATE INDEX audit_kind ON audit_log (kind, at);

CREATE TABLE api_tokens (
    hash       TEXT COLLATE "C" PRIMARY KEY,
    kind       TEXT NOT NULL,
    label      TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

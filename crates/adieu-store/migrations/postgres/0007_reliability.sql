-- Grants revoked by a code reuse or a refresh-token replay, remembered for an hour so that tokens
-- a concurrent request is issuing for the grant are refused (issue_tokens).
CREATE TABLE revoked_grants (
    grant_id   TEXT PRIMARY KEY,
    revoked_at BIGINT NOT NULL
);
CREATE INDEX revoked_grants_at ON revoked_grants (revoked_at);

-- One row per replica that readiness writes (kept for parity with SQLite; PostgreSQL's ping
-- writes it too, so /readyz fails when the database cannot write).
CREATE TABLE heartbeat (
    id TEXT PRIMARY KEY,
    at BIGINT NOT NULL
);

-- Retention prunes finished deliveries oldest first.
CREATE INDEX deliveries_finished ON deliveries (finished_at) WHERE finished_at IS NOT NULL;

-- Grants revoked by a code reuse or a refresh-token replay, remembered for an hour so that tokens
-- a concurrent request is issuing for the grant are refused (issue_tokens).
CREATE TABLE revoked_grants (
    grant_id   TEXT PRIMARY KEY,
    revoked_at INTEGER NOT NULL
);
CREATE INDEX revoked_grants_at ON revoked_grants (revoked_at);

-- One row that readiness writes, so /readyz fails when the database cannot write.
CREATE TABLE heartbeat (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    at INTEGER NOT NULL
);

-- Retention prunes finished deliveries oldest first.
CREATE INDEX deliveries_finished ON deliveries (finished_at) WHERE finished_at IS NOT NULL;

-- Upstream OpenID Providers (idp-logout): accounts linked to an upstream account, sign-ins waiting
-- for their callback, and, on each session, the upstream sign-in that authenticated it (mirrors
-- migrations/sqlite/0004_upstreams.sql).

-- (iss, sub) is the upstream's stable identifier for a person (Core §5.7). The link goes with the
-- account.
CREATE TABLE upstream_identities (
    issuer      TEXT COLLATE "C" NOT NULL,
    sub         TEXT COLLATE "C" NOT NULL,
    user_id     TEXT COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    upstream_id TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (issuer, sub)
);
CREATE INDEX upstream_identities_user ON upstream_identities (user_id);

-- Keyed by the hash of the `state` sent upstream; deleted when the callback takes it (single use).
CREATE TABLE upstream_logins (
    state_hash    TEXT COLLATE "C" PRIMARY KEY,
    upstream_id   TEXT NOT NULL,
    nonce         TEXT NOT NULL,
    code_verifier TEXT NOT NULL,
    request_id    TEXT,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL
);

-- BC-SID-04: the upstream iss/sub/sid of the sign-in that authenticated the session, and when.
ALTER TABLE sessions ADD COLUMN upstream_iss TEXT COLLATE "C";
ALTER TABLE sessions ADD COLUMN upstream_sub TEXT COLLATE "C";
ALTER TABLE sessions ADD COLUMN upstream_sid TEXT COLLATE "C";
ALTER TABLE sessions ADD COLUMN upstream_auth_at BIGINT;
CREATE INDEX sessions_upstream_sid ON sessions (upstream_iss, upstream_sid) WHERE ended_at IS NULL;
CREATE INDEX sessions_upstream_sub ON sessions (upstream_iss, upstream_sub) WHERE ended_at IS NULL;

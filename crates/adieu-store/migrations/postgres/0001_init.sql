-- adieu schema v1 (PostgreSQL), mirroring migrations/sqlite/0001_init.sql. Times are Unix
-- milliseconds (BIGINT); secrets are stored only as hashes. Identifiers and names use the "C"
-- collation so that ordering and comparisons are bytewise, as in SQLite.

CREATE TABLE users (
    id            TEXT COLLATE "C" PRIMARY KEY,
    username      TEXT COLLATE "C" NOT NULL UNIQUE,
    email         TEXT COLLATE "C" UNIQUE,
    password_hash TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

CREATE TABLE clients (
    id                                  TEXT COLLATE "C" PRIMARY KEY,
    name                                TEXT NOT NULL,
    secret_hash                         TEXT,
    redirect_uris                       TEXT NOT NULL, -- JSON array
    post_logout_redirect_uris           TEXT NOT NULL, -- JSON array
    backchannel_logout_uri              TEXT,
    backchannel_logout_session_required BOOLEAN NOT NULL,
    backchannel_logout_initiators       TEXT NOT NULL, -- JSON object
    token_endpoint_auth_method          TEXT NOT NULL,
    id_token_signed_response_alg        TEXT NOT NULL,
    created_at                          BIGINT NOT NULL,
    updated_at                          BIGINT NOT NULL
);

-- No foreign key to users: an ended session keeps naming its subject after the account is deleted,
-- so logout notifications still carry the right `sub`.
CREATE TABLE sessions (
    id           TEXT COLLATE "C" PRIMARY KEY,
    user_id      TEXT COLLATE "C" NOT NULL,
    cookie_hash  TEXT COLLATE "C" NOT NULL UNIQUE,
    auth_time    BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    ended_at     BIGINT,
    end_reason   TEXT
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_open ON sessions (last_seen_at) WHERE ended_at IS NULL;

CREATE TABLE participations (
    session_id TEXT COLLATE "C" NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    client_id  TEXT COLLATE "C" NOT NULL,
    sid        TEXT COLLATE "C" NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (session_id, client_id)
);
CREATE INDEX participations_client ON participations (client_id);

CREATE TABLE pending_authorizations (
    id         TEXT COLLATE "C" PRIMARY KEY,
    request    TEXT NOT NULL, -- JSON
    expires_at BIGINT NOT NULL
);

CREATE TABLE auth_codes (
    code_hash      TEXT COLLATE "C" PRIMARY KEY,
    grant_id       TEXT COLLATE "C" NOT NULL,
    client_id      TEXT COLLATE "C" NOT NULL,
    redirect_uri   TEXT NOT NULL,
    user_id        TEXT COLLATE "C" NOT NULL,
    session_id     TEXT COLLATE "C" NOT NULL,
    sid            TEXT COLLATE "C" NOT NULL,
    scope          TEXT NOT NULL,
    nonce          TEXT,
    code_challenge TEXT,
    auth_time      BIGINT NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    used_at        BIGINT
);

CREATE TABLE access_tokens (
    token_hash TEXT COLLATE "C" PRIMARY KEY,
    grant_id   TEXT COLLATE "C" NOT NULL,
    client_id  TEXT COLLATE "C" NOT NULL,
    user_id    TEXT COLLATE "C" NOT NULL,
    session_id TEXT COLLATE "C" NOT NULL,
    scope      TEXT NOT NULL,
    offline    BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX access_tokens_session ON access_tokens (session_id);
CREATE INDEX access_tokens_grant ON access_tokens (grant_id);
CREATE INDEX access_tokens_user ON access_tokens (user_id);

CREATE TABLE refresh_tokens (
    token_hash TEXT COLLATE "C" PRIMARY KEY,
    grant_id   TEXT COLLATE "C" NOT NULL,
    client_id  TEXT COLLATE "C" NOT NULL,
    user_id    TEXT COLLATE "C" NOT NULL,
    session_id TEXT COLLATE "C" NOT NULL,
    sid        TEXT COLLATE "C" NOT NULL,
    scope      TEXT NOT NULL,
    offline    BOOLEAN NOT NULL,
    auth_time  BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    rotated_at BIGINT,
    revoked_at BIGINT
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);
CREATE INDEX refresh_tokens_grant ON refresh_tokens (grant_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);

CREATE TABLE signing_keys (
    kid           TEXT COLLATE "C" PRIMARY KEY,
    alg           TEXT NOT NULL,
    private_pkcs8 BYTEA NOT NULL,
    created_at    BIGINT NOT NULL
);

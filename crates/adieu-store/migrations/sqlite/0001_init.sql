-- adieu schema v1 (SQLite). Times are Unix milliseconds; secrets are stored only as hashes.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    email         TEXT UNIQUE,
    password_hash TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

CREATE TABLE clients (
    id                                  TEXT PRIMARY KEY,
    name                                TEXT NOT NULL,
    secret_hash                         TEXT,
    redirect_uris                       TEXT NOT NULL, -- JSON array
    post_logout_redirect_uris           TEXT NOT NULL, -- JSON array
    backchannel_logout_uri              TEXT,
    backchannel_logout_session_required INTEGER NOT NULL,
    backchannel_logout_initiators       TEXT NOT NULL, -- JSON object
    token_endpoint_auth_method          TEXT NOT NULL,
    id_token_signed_response_alg        TEXT NOT NULL,
    created_at                          INTEGER NOT NULL,
    updated_at                          INTEGER NOT NULL
);

-- No foreign key to users: an ended session keeps naming its subject after the account is deleted,
-- so logout notifications still carry the right `sub`.
CREATE TABLE sessions (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL,
    cookie_hash  TEXT NOT NULL UNIQUE,
    auth_time    INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    ended_at     INTEGER,
    end_reason   TEXT
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_open ON sessions (last_seen_at) WHERE ended_at IS NULL;

CREATE TABLE participations (
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL,
    sid        TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (session_id, client_id)
);
CREATE INDEX participations_client ON participations (client_id);

CREATE TABLE pending_authorizations (
    id         TEXT PRIMARY KEY,
    request    TEXT NOT NULL, -- JSON
    expires_at INTEGER NOT NULL
);

CREATE TABLE auth_codes (
    code_hash      TEXT PRIMARY KEY,
    grant_id       TEXT NOT NULL,
    client_id      TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL,
    user_id        TEXT NOT NULL,
    session_id     TEXT NOT NULL,
    sid            TEXT NOT NULL,
    scope          TEXT NOT NULL,
    nonce          TEXT,
    code_challenge TEXT,
    auth_time      INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    used_at        INTEGER
);

CREATE TABLE access_tokens (
    token_hash TEXT PRIMARY KEY,
    grant_id   TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    session_id TEXT NOT NULL,
    scope      TEXT NOT NULL,
    offline    INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX access_tokens_session ON access_tokens (session_id);
CREATE INDEX access_tokens_grant ON access_tokens (grant_id);
CREATE INDEX access_tokens_user ON access_tokens (user_id);

CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    grant_id   TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    session_id TEXT NOT NULL,
    sid        TEXT NOT NULL,
    scope      TEXT NOT NULL,
    offline    INTEGER NOT NULL,
    auth_time  INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    rotated_at INTEGER,
    revoked_at INTEGER
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);
CREATE INDEX refresh_tokens_grant ON refresh_tokens (grant_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);

CREATE TABLE signing_keys (
    kid           TEXT PRIMARY KEY,
    alg           TEXT NOT NULL,
    private_pkcs8 BLOB NOT NULL,
    created_at    INTEGER NOT NULL
);

-- Consent (issue 13): clients marked third-party ask users before signing them in, and
-- offline_access is granted only after consent. A consent holds the scopes a user allowed an
-- application (a JSON list of supported scope names, so it stays short). Deleting the user or the
-- application deletes its consents in the same transaction (no foreign keys, as elsewhere).
ALTER TABLE clients ADD COLUMN third_party BOOLEAN NOT NULL DEFAULT FALSE;
CREATE TABLE consents (
    user_id    TEXT COLLATE "C" NOT NULL,
    client_id  TEXT COLLATE "C" NOT NULL,
    scopes     TEXT NOT NULL,
    granted_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_id)
);
CREATE INDEX consents_by_client ON consents (client_id);

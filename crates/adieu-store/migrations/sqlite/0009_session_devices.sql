-- Where each session was signed in from, for the account page (issue 13): the client's address
-- (as text) and its User-Agent (at most 512 characters, no control characters) at the latest
-- sign-in; a re-authentication replaces them. A row exists only while its session is open: ending
-- the session deletes it (sessions themselves are never deleted; the cascade is there should they be).
CREATE TABLE session_devices (
    session_id  TEXT PRIMARY KEY REFERENCES sessions (id) ON DELETE CASCADE,
    address     TEXT,
    user_agent  TEXT,
    recorded_at INTEGER NOT NULL
);

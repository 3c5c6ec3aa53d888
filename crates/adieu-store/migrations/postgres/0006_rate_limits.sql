-- Fixed-window rate-limit counters (sign-in attempts), shared by every replica: a hit is one
-- atomic upsert. A window ends at window_ends; a hit at or after it starts a new window. Keys are
-- opaque (the server hashes anything a user typed). Ended windows are deleted by the periodic purge.
CREATE TABLE rate_limits (
    key TEXT PRIMARY KEY,
    count BIGINT NOT NULL,
    window_ends BIGINT NOT NULL
);
CREATE INDEX rate_limits_window_ends ON rate_limits (window_ends);

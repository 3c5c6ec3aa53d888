-- The session sweeper finds open sessions past their idle lifetime through `sessions_open`
-- (last_seen_at) and those past their absolute lifetime through this index.
CREATE INDEX sessions_open_created ON sessions (created_at) WHERE ended_at IS NULL;

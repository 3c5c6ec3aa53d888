-- One store for both backends (issue 12): the statements are shared with SQLite, which gains
-- `lease_owner` in its 0008. Nothing changes here; the version keeps both lists the same.
COMMENT ON COLUMN deliveries.lease_owner IS 'the replica that holds the lease (adieu replica id)';

-- One store for both backends (issue 12): the statements are shared, so SQLite gains the column
-- PostgreSQL has had since 0002. `lease_owner` names who holds a lease; with one process per file
-- it is always "sqlite", and releasing leases still releases every lease.
ALTER TABLE deliveries ADD COLUMN lease_owner TEXT;

//! Migrations embedded in the binary, applied in order at start-up (and by `adieu migrate`).
//!
//! Each migration runs in its own transaction together with the row that records it in
//! `adieu_migrations`, so a crash leaves either all of a migration or none of it.

/// One migration: a version number and its SQL.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Increasing version number.
    pub version: i64,
    /// Short name.
    pub name: &'static str,
    /// The SQL (several statements).
    pub sql: &'static str,
}

/// The SQLite migrations.
pub const SQLITE: &[Migration] = &[
    Migration { version: 1, name: "init", sql: include_str!("../migrations/sqlite/0001_init.sql") },
    Migration { version: 2, name: "deliveries", sql: include_str!("../migrations/sqlite/0002_deliveries.sql") },
    Migration { version: 3, name: "session_expiry", sql: include_str!("../migrations/sqlite/0003_session_expiry.sql") },
    Migration { version: 4, name: "upstreams", sql: include_str!("../migrations/sqlite/0004_upstreams.sql") },
];

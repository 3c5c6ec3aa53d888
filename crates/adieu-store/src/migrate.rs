//! Migrations embedded in the binary, applied in order at start-up (and by `adieu migrate`).
//!
//! Each migration runs in its own transaction together with the row that records it in
//! `adieu_migrations`, so a crash leaves either all of a migration or none of it. SQLite and
//! PostgreSQL have their own SQL (`migrations/sqlite`, `migrations/postgres`) with the same
//! versions and names; on PostgreSQL the runner holds an advisory lock, so replicas that start
//! together apply each migration once.

use crate::sql::{Dialect, Sql};
use adieu_core::store::StoreResult;
use sqlx::Connection;

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
    Migration { version: 5, name: "key_rotation", sql: include_str!("../migrations/sqlite/0005_key_rotation.sql") },
    Migration { version: 6, name: "rate_limits", sql: include_str!("../migrations/sqlite/0006_rate_limits.sql") },
    Migration { version: 7, name: "reliability", sql: include_str!("../migrations/sqlite/0007_reliability.sql") },
    Migration { version: 8, name: "one_store", sql: include_str!("../migrations/sqlite/0008_one_store.sql") },
    Migration {
        version: 9,
        name: "session_devices",
        sql: include_str!("../migrations/sqlite/0009_session_devices.sql"),
    },
    Migration { version: 10, name: "frontchannel", sql: include_str!("../migrations/sqlite/0010_frontchannel.sql") },
    Migration { version: 11, name: "consent", sql: include_str!("../migrations/sqlite/0011_consent.sql") },
];

/// The PostgreSQL migrations: the same versions and names as [`SQLITE`].
pub const POSTGRES: &[Migration] = &[
    Migration { version: 1, name: "init", sql: include_str!("../migrations/postgres/0001_init.sql") },
    Migration { version: 2, name: "deliveries", sql: include_str!("../migrations/postgres/0002_deliveries.sql") },
    Migration {
        version: 3,
        name: "session_expiry",
        sql: include_str!("../migrations/postgres/0003_session_expiry.sql"),
    },
    Migration { version: 4, name: "upstreams", sql: include_str!("../migrations/postgres/0004_upstreams.sql") },
    Migration { version: 5, name: "key_rotation", sql: include_str!("../migrations/postgres/0005_key_rotation.sql") },
    Migration { version: 6, name: "rate_limits", sql: include_str!("../migrations/postgres/0006_rate_limits.sql") },
    Migration { version: 7, name: "reliability", sql: include_str!("../migrations/postgres/0007_reliability.sql") },
    Migration { version: 8, name: "one_store", sql: include_str!("../migrations/postgres/0008_one_store.sql") },
    Migration {
        version: 9,
        name: "session_devices",
        sql: include_str!("../migrations/postgres/0009_session_devices.sql"),
    },
    Migration { version: 10, name: "frontchannel", sql: include_str!("../migrations/postgres/0010_frontchannel.sql") },
    Migration { version: 11, name: "consent", sql: include_str!("../migrations/postgres/0011_consent.sql") },
];

/// Applies every migration of `list` not yet applied, on `conn`, each in its own transaction
/// with the row that records it; returns how many ran.
pub(crate) async fn run<D: Dialect>(conn: &mut D::Connection, list: &[Migration]) -> StoreResult<usize> {
    Sql::new(
        "CREATE TABLE IF NOT EXISTS adieu_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
    )
    .execute::<D>(conn)
    .await?;
    let mut ran = 0;
    for m in list {
        if apply::<D>(conn, m).await? {
            ran += 1;
        }
    }
    Ok(ran)
}

async fn apply<D: Dialect>(conn: &mut D::Connection, m: &Migration) -> StoreResult<bool> {
    let mut tx = conn.begin_with(D::BEGIN_WRITE).await.map_err(D::error)?;
    let done = Sql::new("SELECT version FROM adieu_migrations WHERE version = $1")
        .bind(m.version)
        .fetch_optional::<D>(&mut tx)
        .await?;
    if done.is_some() {
        return Ok(false);
    }
    D::execute_script(&mut tx, m.sql).await.map_err(D::error)?;
    Sql::new(format!("INSERT INTO adieu_migrations (version, name, applied_at) VALUES ($1, $2, {})", D::NOW_MS))
        .bind(m.version)
        .bind(m.name)
        .execute::<D>(&mut tx)
        .await?;
    tx.commit().await.map_err(D::error)?;
    tracing::info!(version = m.version, name = m.name, "applied migration");
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::{POSTGRES, SQLITE};

    /// Every SQLite migration has its PostgreSQL twin (same version and name), and the other way
    /// round: a migration added for one backend only fails here.
    #[test]
    fn both_backends_have_the_same_migrations() {
        let names = |ms: &[super::Migration]| ms.iter().map(|m| (m.version, m.name)).collect::<Vec<_>>();
        assert_eq!(names(SQLITE), names(POSTGRES));
        for (i, m) in SQLITE.iter().enumerate() {
            assert_eq!(m.version, i as i64 + 1, "versions are 1, 2, 3, …");
        }
    }

    /// The files in `migrations/` are exactly the embedded ones.
    #[test]
    fn every_migration_file_is_embedded() {
        for (dir, list) in [("sqlite", SQLITE), ("postgres", POSTGRES)] {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(dir);
            let mut files: Vec<String> = std::fs::read_dir(&path)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|f| f.ends_with(".sql"))
                .collect();
            files.sort();
            let embedded: Vec<String> = list.iter().map(|m| format!("{:04}_{}.sql", m.version, m.name)).collect();
            assert_eq!(files, embedded, "migrations/{dir}");
        }
    }
}

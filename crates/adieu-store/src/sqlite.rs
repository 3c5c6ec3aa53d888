//! The SQLite backend: the embedded default.
//!
//! One database file in WAL mode. Writes go through a pool of exactly one connection and every
//! multi-statement write runs in `BEGIN IMMEDIATE`, so writers queue instead of failing with
//! `SQLITE_BUSY`; reads use a separate small pool and see committed data (WAL readers never block).
//! A second process on the same file (the admin CLI beside a running server) waits on `busy_timeout`.
//!
//! The statements are those of [`crate::sql`]; this file opens the file and says what differs
//! ([`Dialect`] for [`Sqlite`]).

use crate::migrate::{self, SQLITE};
use crate::sql::stmt::backend_impls;
use crate::sql::{Dialect, Sql, SqlStore};
use adieu_core::store::{StoreError, StoreResult};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{Connection, Sqlite};
use std::str::FromStr;
use std::time::Duration;

/// The SQLite store.
pub type SqliteStore = SqlStore<Sqlite>;

backend_impls!(Sqlite, SqliteRow);

impl Dialect for Sqlite {
    const NOW_MS: &'static str = "CAST(unixepoch('subsec') * 1000 AS INTEGER)";
    const NEW_ID: &'static str = "lower(hex(randomblob(16)))";
    const FOR_UPDATE: &'static str = "";
    const SKIP_LOCKED: &'static str = "";
    const FOR_KEY_SHARE: &'static str = "";
    const ILIKE: &'static str = "LIKE";
    const RELEASES_EVERY_LEASE: bool = true;
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";

    fn error(e: sqlx::Error) -> StoreError {
        if let sqlx::Error::Database(db) = &e
            && db.is_unique_violation()
        {
            // SQLite says "UNIQUE constraint failed: users.username"; keep the column name only.
            let msg = db.message();
            let field = msg.rsplit(['.', ' ']).next().unwrap_or("value");
            return StoreError::Conflict(field.to_owned());
        }
        if is_unavailable(&e) {
            return StoreError::Unavailable(e.to_string());
        }
        StoreError::Backend(e.to_string())
    }

    fn heartbeat(_replica: &str) -> Sql {
        // One process per file: one row.
        Sql::new(
            "INSERT INTO heartbeat (id, at) VALUES (1, CAST(unixepoch('subsec') * 1000 AS INTEGER))
             ON CONFLICT (id) DO UPDATE SET at = excluded.at",
        )
    }

    fn json_list(param: &str) -> String {
        format!("(SELECT value FROM json_each({param}))")
    }

    fn indexed(table: &str, index: &str) -> String {
        format!("{table} INDEXED BY {index}")
    }

    fn json_rows(param: &str, alias: &str, cols: &[(&str, &str)]) -> String {
        let cols: Vec<String> =
            cols.iter().map(|(name, _)| format!("json_extract(value, '$.{name}') AS {name}")).collect();
        format!("(SELECT {} FROM json_each({param})) AS {alias}", cols.join(", "))
    }

    runners!();
}

/// Whether `e` says the database cannot write now for a reason outside the request: SQLite's
/// primary result codes READONLY (8), IOERR (10), FULL (13), CANTOPEN (14), BUSY (5) and LOCKED
/// (6) after the busy timeout, or no connection was free in time.
fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            db.code().and_then(|c| c.parse::<i32>().ok()).is_some_and(|c| matches!(c & 0xff, 5 | 6 | 8 | 10 | 13 | 14))
        }
        _ => false,
    }
}

impl SqlStore<Sqlite> {
    /// Opens (creating if needed) the database at `url` (`sqlite://path/to/adieu.db`) and applies
    /// the embedded migrations.
    pub async fn open(url: &str) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(Sqlite::error)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            // Statement journals (multi-row UPDATE … FROM, upserts) stay in memory: a batch of
            // recorded attempts otherwise writes its sub-journal to a temporary file.
            .pragma("temp_store", "MEMORY")
            .busy_timeout(Duration::from_secs(10));
        // The writer heals itself: a connection that comes back to the pool still inside a
        // transaction (a ROLLBACK that failed after an I/O error, e.g. a full disk) is closed
        // instead of reused, and the pool opens a fresh one. The ping that runs first lets any
        // queued rollback finish, so only a connection that is really stuck is closed.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .test_before_acquire(true)
            .before_acquire(|conn, _meta| {
                Box::pin(async move {
                    let stuck = conn.is_in_transaction();
                    if stuck {
                        tracing::warn!("the SQLite writer connection was left inside a transaction; opening a new one");
                    }
                    Ok(!stuck)
                })
            })
            .connect_with(options.clone())
            .await
            .map_err(Sqlite::error)?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.read_only(true))
            .await
            .map_err(Sqlite::error)?;
        let store = SqlStore::new(writer, reader, "sqlite".into());
        store.migrate().await?;
        Ok(store)
    }

    /// Applies every migration not yet applied; returns how many ran.
    pub async fn migrate(&self) -> StoreResult<usize> {
        let mut conn = self.writer().await?;
        migrate::run::<Sqlite>(&mut conn, SQLITE).await
    }
}

//! The store, written once for both backends.
//!
//! [`SqlStore`] implements every trait of [`adieu_core::store`] with statements shared by SQLite
//! and PostgreSQL. What truly differs between the two sits behind [`Dialect`], implemented by
//! [`sqlx::Sqlite`] (in `crate::sqlite`) and [`sqlx::Postgres`] (in `crate::postgres`):
//! running a statement with that backend's types, how errors are classified, a handful of SQL
//! fragments (the time now, a new id, row locks, a JSON list as a table), how a writing
//! transaction starts, and the PostgreSQL-only waking of other replicas (`NOTIFY`).
//!
//! The rules themselves come from `adieu-core`: who is notified when a session ends
//! ([`adieu_core::delivery::notified`]) and how a delivery changes state after an attempt
//! ([`adieu_core::delivery::DeliveryState`]). This layer reads, persists and keeps concurrent
//! writers apart.
//!
//! One module per store trait: `users`, `clients`, `sessions` (with the one code path that ends a
//! session), `grants`, `deliveries` (with `claim`), `audit` (audit log, API tokens, health),
//! `keys`, `upstream`, `ratelimit`, `retention`; `rows` maps rows to domain types.

mod audit;
mod claim;
mod clients;
mod consents;
mod deliveries;
mod grants;
mod keys;
mod ratelimit;
mod retention;
pub(crate) mod rows;
mod sessions;
pub(crate) mod stmt;
mod upstream;
mod users;

pub use stmt::{Arg, Read, Sql};

use adieu_core::store::{StoreError, StoreResult};
use sqlx::pool::PoolConnection;
use sqlx::{Database, Pool, Transaction};
use std::fmt;
use std::future::Future;
use std::sync::Arc;

/// What differs between the backends. Implemented by [`sqlx::Sqlite`] and [`sqlx::Postgres`]
/// only.
pub trait Dialect: Database<Row: Read> + Sized {
    /// SQL for the time now, Unix milliseconds.
    const NOW_MS: &'static str;
    /// SQL for a new random id (32 hex digits).
    const NEW_ID: &'static str;
    /// Appended to a `SELECT` that reads rows it will change (`FOR UPDATE` on PostgreSQL; SQLite
    /// has one writer, so nothing).
    const FOR_UPDATE: &'static str;
    /// Appended to a claim's `SELECT`: rows other replicas are claiming are skipped.
    const SKIP_LOCKED: &'static str;
    /// Appended to a `SELECT` of client rows a logout depends on (`FOR KEY SHARE`).
    const FOR_KEY_SHARE: &'static str;
    /// Case-insensitive `LIKE` (SQLite's `LIKE` ignores ASCII case; PostgreSQL needs `ILIKE`).
    const ILIKE: &'static str;
    /// Whether releasing leases at start and stop releases every lease (one process per
    /// SQLite file) or only this replica's.
    const RELEASES_EVERY_LEASE: bool;

    /// Classifies an error: unique violations become [`StoreError::Conflict`] naming the column,
    /// an unreachable or full database [`StoreError::Unavailable`].
    fn error(e: sqlx::Error) -> StoreError;
    /// The heartbeat upsert of [`Health::ping`](adieu_core::store::Health::ping) for `replica`.
    fn heartbeat(replica: &str) -> Sql;
    /// A subquery of the text values of the JSON array bound at `param` (`$3`), for `IN (…)`.
    fn json_list(param: &str) -> String;
    /// `table` read through `index`. SQLite's planner, without statistics, prefers an equality
    /// index on `status` and sorts every matching row; it is told (`INDEXED BY`). PostgreSQL
    /// picks by itself.
    fn indexed(table: &str, index: &str) -> String;
    /// A FROM item named `alias` with one row per object of the JSON array bound at `param`
    /// and the given `(name, type)` columns (`type` is `text` or `bigint`).
    fn json_rows(param: &str, alias: &str, cols: &[(&str, &str)]) -> String;
    /// How a writing transaction begins (SQLite: `BEGIN IMMEDIATE`, so writers queue for the
    /// lock instead of failing when they upgrade).
    const BEGIN_WRITE: &'static str;
    /// Runs `q`; the number of rows it changed.
    fn execute<'c>(
        conn: &'c mut Self::Connection,
        q: Sql,
    ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send + 'c;
    /// Runs `q`; every row.
    fn fetch_all<'c>(
        conn: &'c mut Self::Connection,
        q: Sql,
    ) -> impl Future<Output = Result<Vec<Self::Row>, sqlx::Error>> + Send + 'c;
    /// Runs a script of several statements without arguments (a migration).
    fn execute_script<'c>(
        conn: &'c mut Self::Connection,
        sql: &'static str,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send + 'c;
    /// Runs `q`; the first row.
    fn fetch_optional<'c>(
        conn: &'c mut Self::Connection,
        q: Sql,
    ) -> impl Future<Output = Result<Option<Self::Row>, sqlx::Error>> + Send + 'c;

    /// Inside a transaction that makes deliveries claimable: wake the other replicas' workers at
    /// commit. Nothing to do where there is one process.
    fn wake_at_commit(conn: &mut Self::Connection) -> impl Future<Output = StoreResult<()>> + Send {
        let _ = conn;
        async { Ok(()) }
    }
    /// Inside a transaction: wait for other transactions on the grant `grant_id` (token issue
    /// against revocation). Nothing to do with a single writer.
    fn lock_grant(conn: &mut Self::Connection, grant_id: &str) -> impl Future<Output = StoreResult<()>> + Send {
        let _ = (conn, grant_id);
        async { Ok(()) }
    }
    /// See [`DeliveryStore::listen_for_deliveries`](adieu_core::store::DeliveryStore::listen_for_deliveries).
    fn listen(store: &SqlStore<Self>, wake: &(dyn Fn() + Send + Sync)) -> impl Future<Output = StoreResult<()>> + Send {
        let _ = (store, wake);
        async {
            std::future::pending::<()>().await;
            Ok(())
        }
    }
}

/// The store on one backend: [`SqliteStore`](crate::SqliteStore) or
/// [`PostgresStore`](crate::PostgresStore). Clones share the pools.
pub struct SqlStore<D: Dialect> {
    /// Writes (SQLite: one connection; PostgreSQL: the pool).
    pub(crate) writer: Pool<D>,
    /// Reads (SQLite: read-only connections; PostgreSQL: the same pool).
    pub(crate) reader: Pool<D>,
    /// The name delivery leases are held under.
    pub(crate) replica: Arc<str>,
    /// This process's worker, which takes deliveries as they are written (see
    /// [`adieu_core::handoff`]); unset in the command line.
    pub(crate) handoff: Arc<std::sync::OnceLock<Arc<dyn adieu_core::handoff::Handoff>>>,
}

impl<D: Dialect> SqlStore<D> {
    /// A store over `writer` and `reader` whose leases are held under `replica`.
    pub(crate) fn new(writer: Pool<D>, reader: Pool<D>, replica: Arc<str>) -> Self {
        SqlStore { writer, reader, replica, handoff: Arc::default() }
    }

    /// The worker that takes deliveries as they are written, if one is installed.
    pub(crate) fn handoff(&self) -> Option<&dyn adieu_core::handoff::Handoff> {
        self.handoff.get().map(|h| &**h)
    }
}

impl<D: Dialect> Clone for SqlStore<D> {
    fn clone(&self) -> Self {
        SqlStore {
            writer: self.writer.clone(),
            reader: self.reader.clone(),
            replica: self.replica.clone(),
            handoff: self.handoff.clone(),
        }
    }
}

impl<D: Dialect> fmt::Debug for SqlStore<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlStore").field("backend", &D::NAME).field("replica", &self.replica).finish()
    }
}

impl<D: Dialect> SqlStore<D> {
    /// A connection for reading.
    pub(crate) async fn read(&self) -> StoreResult<PoolConnection<D>> {
        self.reader.acquire().await.map_err(D::error)
    }

    /// The writer's connection, for one statement outside a transaction.
    pub(crate) async fn writer(&self) -> StoreResult<PoolConnection<D>> {
        self.writer.acquire().await.map_err(D::error)
    }

    /// A writing transaction.
    pub(crate) async fn write(&self) -> StoreResult<Transaction<'static, D>> {
        self.writer.begin_with(D::BEGIN_WRITE).await.map_err(D::error)
    }

    /// The name this store's delivery leases are held under.
    pub fn replica_id(&self) -> &str {
        &self.replica
    }
}

/// Commits `tx`.
pub(crate) async fn commit<D: Dialect>(tx: Transaction<'static, D>) -> StoreResult<()> {
    tx.commit().await.map_err(D::error)
}

//! The PostgreSQL backend: several `adieu serve` replicas on one database (DESIGN.md §3).
//!
//! The statements are those of [`crate::sql`], shared with SQLite; this file opens the pool
//! (migrations, replica id) and says what differs ([`Dialect`] for [`Postgres`]); `notify` holds
//! `LISTEN/NOTIFY`, which wakes the other replicas' workers when deliveries become claimable.
//!
//! The conformance suite runs both backends; what differs is how concurrent writers are kept
//! apart. SQLite has one writer; here transactions run side by side at
//! READ COMMITTED and rely on row locks:
//! - delivery claims take due rows with `FOR UPDATE SKIP LOCKED` and lease them to this replica
//!   (`lease_owner`), so two replicas never claim the same row while its lease is valid, and a
//!   replica that dies loses its leases when they expire;
//! - the expiry sweeper takes sessions with `FOR UPDATE SKIP LOCKED`, so sweepers on every replica
//!   end each session once;
//! - read-modify-write operations (code redemption, refresh rotation, user and client changes)
//!   lock their row first (`FOR UPDATE`);
//! - ending a session takes a `FOR KEY SHARE` lock on its participants' client rows, which client
//!   updates and deletions lock `FOR UPDATE`: a logout and an unsubscription are ordered, so no
//!   delivery is written for a client that has just removed its logout URI;
//! - rows are always locked in one order (tokens: refresh before access; deliveries: by id) so
//!   that transactions wait for each other instead of deadlocking.

mod notify;

pub use notify::CHANNEL;

use crate::migrate::{self, POSTGRES};
use crate::sql::stmt::backend_impls;
use crate::sql::{Dialect, Sql, SqlStore};
use adieu_core::store::{StoreError, StoreResult};
use sqlx::postgres::{PgConnectOptions, PgDatabaseError, PgPoolOptions, PgRow};
use sqlx::{Connection, PgConnection, PgPool, Postgres};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// How to open a [`PostgresStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresOptions {
    /// Connections in the pool (default 10).
    pub max_connections: u32,
    /// How long a query waits for a free connection, or for the database to accept one, before
    /// it fails (default 5 seconds; readiness answers within it when the database is down).
    pub acquire_timeout: Duration,
    /// This replica's name as the owner of delivery leases. With a stable, unique name per
    /// replica, a restarted replica releases the leases its previous run left at once; without
    /// one, a random name is drawn at every start and those leases end by expiry.
    pub replica_id: Option<String>,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions { max_connections: 10, acquire_timeout: Duration::from_secs(5), replica_id: None }
    }
}

/// The PostgreSQL store. Clones share the pool and the replica id.
pub type PostgresStore = SqlStore<Postgres>;

backend_impls!(Postgres, PgRow);

impl Dialect for Postgres {
    const NOW_MS: &'static str = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint";
    const NEW_ID: &'static str = "replace(gen_random_uuid()::text, '-', '')";
    const FOR_UPDATE: &'static str = " FOR UPDATE";
    const SKIP_LOCKED: &'static str = " FOR UPDATE SKIP LOCKED";
    const FOR_KEY_SHARE: &'static str = " FOR KEY SHARE";
    const ILIKE: &'static str = "ILIKE";
    const RELEASES_EVERY_LEASE: bool = false;
    const BEGIN_WRITE: &'static str = "BEGIN";

    fn error(e: sqlx::Error) -> StoreError {
        classify(e)
    }

    fn heartbeat(replica: &str) -> Sql {
        // One row per replica.
        Sql::new(
            "INSERT INTO heartbeat (id, at) VALUES ($1, (extract(epoch from now()) * 1000)::bigint)
             ON CONFLICT (id) DO UPDATE SET at = excluded.at",
        )
        .bind(replica)
    }

    fn json_list(param: &str) -> String {
        format!("(SELECT jsonb_array_elements_text(CAST({param} AS jsonb)))")
    }

    fn indexed(table: &str, _index: &str) -> String {
        table.to_owned()
    }

    fn json_rows(param: &str, alias: &str, cols: &[(&str, &str)]) -> String {
        let cols: Vec<String> = cols.iter().map(|(name, ty)| format!("{name} {ty}")).collect();
        format!("jsonb_to_recordset(CAST({param} AS jsonb)) AS {alias}({})", cols.join(", "))
    }

    async fn wake_at_commit(conn: &mut PgConnection) -> StoreResult<()> {
        notify::notify_in(conn).await
    }

    async fn lock_grant(conn: &mut PgConnection, grant_id: &str) -> StoreResult<()> {
        // Token issue and revocation of one grant are ordered (both take this lock).
        Sql::new("SELECT pg_advisory_xact_lock(hashtextextended('adieu.grant.' || $1, 0))")
            .bind(grant_id)
            .execute::<Postgres>(conn)
            .await
            .map(|_| ())
    }

    async fn listen(store: &SqlStore<Self>, wake: &(dyn Fn() + Send + Sync)) -> StoreResult<()> {
        notify::listen(store, wake).await
    }

    runners!();
}

/// Maps a database error; unique violations become [`StoreError::Conflict`] naming the column.
fn classify(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e
        && db.is_unique_violation()
    {
        let pg = db.try_downcast_ref::<PgDatabaseError>();
        // "Key (username)=(alice) already exists." — keep the (last) column name only, never the value.
        let from_detail = pg.and_then(PgDatabaseError::detail).and_then(|d| {
            let cols = d.strip_prefix("Key (")?.split(")=").next()?;
            cols.rsplit(", ").next()
        });
        // Localised messages: fall back on the constraint's default name, `{table}_{column}_key`.
        let from_constraint = || {
            let c = db.constraint()?;
            let c = db.table().and_then(|t| c.strip_prefix(t)?.strip_prefix('_')).unwrap_or(c);
            c.strip_suffix("_key").or_else(|| c.strip_suffix("_pkey").map(|_| "id"))
        };
        let field = from_detail.or_else(from_constraint).unwrap_or("value");
        return StoreError::Conflict(field.to_owned());
    }
    if is_unavailable(&e) {
        return StoreError::Unavailable(e.to_string());
    }
    StoreError::Backend(e.to_string())
}

/// Whether `e` says the database cannot serve now for a reason outside the request: the server is
/// unreachable or restarting (connection errors, SQLSTATE classes 08 and 57P), out of resources
/// (class 53: disk full, out of memory, too many connections), read-only (25006), or no connection
/// was free in time.
fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Tls(_) => true,
        sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("53") || c.starts_with("57P") || c == "25006"),
        _ => false,
    }
}

impl SqlStore<Postgres> {
    /// Connects to `url` (`postgres://user@host/db`, libpq-style parameters such as `sslmode`
    /// and `options=-c search_path=…` accepted) and applies the embedded migrations. The
    /// connections' `application_name` is `adieu <replica id>` unless the URL sets one.
    pub async fn open(url: &str, options: &PostgresOptions) -> StoreResult<Self> {
        let mut connect = PgConnectOptions::from_str(url).map_err(Postgres::error)?;
        let replica: Arc<str> = match &options.replica_id {
            Some(id) if !id.trim().is_empty() => id.trim().into(),
            Some(_) => return Err(StoreError::Backend("the replica id must not be empty".into())),
            None => {
                let mut conn = PgConnection::connect_with(&connect).await.map_err(Postgres::error)?;
                let id: String = sqlx::query_scalar("SELECT 'replica-' || replace(gen_random_uuid()::text, '-', '')")
                    .fetch_one(&mut conn)
                    .await
                    .map_err(Postgres::error)?;
                let _ = conn.close().await;
                id.into()
            }
        };
        // Operators (and the fault tests) tell replicas' connections apart in pg_stat_activity.
        if connect.get_application_name().is_none() {
            connect = connect.application_name(&format!("adieu {replica}"));
        }
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await
            .map_err(Postgres::error)?;
        let store = SqlStore::new(pool.clone(), pool, replica);
        store.migrate().await?;
        Ok(store)
    }

    /// Applies every migration not yet applied; returns how many ran. Safe to run from several
    /// replicas at once: a session-level advisory lock, keyed by the schema the migrations go to,
    /// serialises runners (a second replica waits, then finds everything applied).
    pub async fn migrate(&self) -> StoreResult<usize> {
        // A connection of its own, closed afterwards: if anything fails, closing it releases the
        // advisory lock, which a pooled connection would keep.
        let mut conn = self.writer.acquire().await.map_err(Postgres::error)?.detach();
        let lock = "hashtext('adieu.migrate.' || coalesce(current_schema(), ''))";
        let ran = async {
            Sql::new(format!("SELECT pg_advisory_lock({lock})")).execute::<Postgres>(&mut conn).await?;
            let ran = migrate::run::<Postgres>(&mut conn, POSTGRES).await;
            Sql::new(format!("SELECT pg_advisory_unlock({lock})")).execute::<Postgres>(&mut conn).await?;
            ran
        }
        .await;
        let _ = conn.close().await;
        ran
    }

    /// The connection pool (for tests and tools that inspect the database).
    pub fn pool(&self) -> &PgPool {
        &self.writer
    }
}

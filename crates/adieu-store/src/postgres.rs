//! The PostgreSQL backend: several `adieu serve` replicas on one database (DESIGN.md §3).
//!
//! - this file: [`PostgresStore`], opening (pool, migrations, replica id), errors, and the small
//!   stores (API tokens, audit log, health);
//! - `keys`: signing keys (generations, retirement);
//! - `rows`: row → domain type mapping;
//! - `users`, `clients`, `sessions`, `grants`, `deliveries`, `upstream`, `ratelimit`: one store
//!   trait each;
//! - `notify`: `LISTEN/NOTIFY`, which wakes the other replicas' workers when deliveries become
//!   claimable.
//!
//! Semantics are those of the SQLite backend (the conformance suite runs both); what differs is how
//! concurrent writers are kept apart. SQLite has one writer; here transactions run side by side at
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

mod clients;
mod deliveries;
mod grants;
mod keys;
mod notify;
mod ratelimit;
mod retention;
mod rows;
mod sessions;
mod upstream;
mod users;

use crate::migrate;
use adieu_core::audit::{AuditEvent, AuditFilter};
use adieu_core::store::{ApiTokenKind, ApiTokenStore, AuditStore, Health, StoreError, StoreResult};
use adieu_core::time::UnixMillis;
use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgDatabaseError, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};
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
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    replica: Arc<str>,
}

/// Maps a database error; unique violations become [`StoreError::Conflict`] naming the column.
fn backend(e: sqlx::Error) -> StoreError {
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

fn json_err(e: serde_json::Error) -> StoreError {
    StoreError::Backend(format!("stored JSON is invalid: {e}"))
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user@host/db`, libpq-style parameters such as `sslmode`
    /// and `options=-c search_path=…` accepted) and applies the embedded migrations. The
    /// connections' `application_name` is `adieu <replica id>` unless the URL sets one.
    pub async fn open(url: &str, options: &PostgresOptions) -> StoreResult<Self> {
        let mut connect = PgConnectOptions::from_str(url).map_err(backend)?;
        let replica: Arc<str> = match &options.replica_id {
            Some(id) if !id.trim().is_empty() => id.trim().into(),
            Some(_) => return Err(StoreError::Backend("the replica id must not be empty".into())),
            None => {
                let mut conn = PgConnection::connect_with(&connect).await.map_err(backend)?;
                let id: String = sqlx::query_scalar("SELECT 'replica-' || replace(gen_random_uuid()::text, '-', '')")
                    .fetch_one(&mut conn)
                    .await
                    .map_err(backend)?;
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
            .map_err(backend)?;
        let store = PostgresStore { pool, replica };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies every migration not yet applied; returns how many ran. Safe to run from several
    /// replicas at once (an advisory lock serialises them).
    pub async fn migrate(&self) -> StoreResult<usize> {
        // A connection of its own, closed afterwards: if anything fails, closing it releases the
        // advisory lock, which a pooled connection would keep.
        let mut conn = self.pool.acquire().await.map_err(backend)?.detach();
        let ran = migrate::postgres::run(&mut conn).await.map_err(backend);
        let _ = conn.close().await;
        ran
    }

    /// The name this store's delivery leases are held under.
    pub fn replica_id(&self) -> &str {
        &self.replica
    }

    /// The connection pool (for tests and tools that inspect the database).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// Appends an audit event inside the caller's transaction.
async fn append_audit_in(conn: &mut PgConnection, e: &AuditEvent) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO audit_log (at, kind, actor, client_id, user_id, session_id, delivery_id, detail)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(e.at.0)
    .bind(&e.kind)
    .bind(&e.actor)
    .bind(&e.client_id)
    .bind(&e.user_id)
    .bind(&e.session_id)
    .bind(&e.delivery_id)
    .bind(e.detail.to_string())
    .execute(&mut *conn)
    .await
    .map_err(backend)?;
    Ok(())
}

#[async_trait]
impl AuditStore for PostgresStore {
    async fn append_audit(&self, event: &AuditEvent) -> StoreResult<()> {
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        append_audit_in(&mut conn, event).await
    }

    async fn audit_events(&self, f: &AuditFilter) -> StoreResult<Vec<AuditEvent>> {
        let (exact, prefix) = match &f.kind {
            Some(k) if k.ends_with('.') => (None, Some(format!("{k}%"))),
            Some(k) => (Some(k.clone()), None),
            None => (None, None),
        };
        // ILIKE: SQLite's LIKE ignores ASCII case, and the prefix filter must match the same events.
        let rows = sqlx::query(concat!(
            "SELECT ",
            rows::audit_cols!(),
            " FROM audit_log
             WHERE ($1::text IS NULL OR kind = $1) AND ($2::text IS NULL OR kind ILIKE $2)
               AND ($3::text IS NULL OR client_id = $3)
               AND ($4::bigint IS NULL OR at >= $4) AND ($5::bigint IS NULL OR at < $5)
             ORDER BY id DESC LIMIT $6"
        ))
        .bind(exact)
        .bind(prefix)
        .bind(&f.client_id)
        .bind(f.since.map(|t| t.0))
        .bind(f.until.map(|t| t.0))
        .bind(i64::from(f.limit.unwrap_or(100).clamp(1, 1000)))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(rows::audit).collect()
    }
}

#[async_trait]
impl Health for PostgresStore {
    async fn ping(&self) -> StoreResult<()> {
        // A write, so that readiness fails when the database answers but cannot write.
        sqlx::query(
            "INSERT INTO heartbeat (id, at) VALUES ($1, (extract(epoch from now()) * 1000)::bigint)
             ON CONFLICT (id) DO UPDATE SET at = excluded.at",
        )
        .bind(&*self.replica)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }
}

#[async_trait]
impl ApiTokenStore for PostgresStore {
    async fn insert_api_token(&self, hash: &str, kind: ApiTokenKind, label: &str, at: UnixMillis) -> StoreResult<()> {
        sqlx::query("INSERT INTO api_tokens (hash, kind, label, created_at) VALUES ($1, $2, $3, $4)")
            .bind(hash)
            .bind(kind.as_str())
            .bind(label)
            .bind(at.0)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn api_token_exists(&self, hash: &str, kind: ApiTokenKind) -> StoreResult<bool> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_tokens WHERE hash = $1 AND kind = $2")
            .bind(hash)
            .bind(kind.as_str())
            .fetch_one(&self.pool)
            .await
            .map_err(backend)?;
        Ok(n > 0)
    }
}

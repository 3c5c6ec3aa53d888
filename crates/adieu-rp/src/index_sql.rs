//! Session indexes in SQLite and PostgreSQL (features `sqlite`, `postgres`), for applications
//! that keep sessions in a database or run several replicas. Each backend is also a
//! [`LogoutMarkerStore`] (lazy ending) and a [`ReplayCache`], so one database serves every replica.
//! Tables, created if missing:
//! - `adieu_rp_sessions(session_id PRIMARY KEY, issuer, sub, sid, created_at)`: the index;
//! - `adieu_rp_logged_out(session_id PRIMARY KEY, until)`: logged-out markers;
//! - `adieu_rp_jti(issuer, jti, until, PRIMARY KEY (issuer, jti))`: used `jti`s (BC-RP-08).
//!
//! Expired markers and `jti`s are deleted as new ones are written.

use crate::index::{DEFAULT_MARKER_TTL_SECS, IndexError, LoginRecord, LogoutMarkerStore, SessionEnder, SessionIndex};
use crate::replay::{ReplayCache, ReplayError};
use crate::verify::{LogoutSubject, VerifiedLogoutToken};
use async_trait::async_trait;

fn err(e: sqlx::Error) -> IndexError {
    IndexError::with_source(e.to_string(), e)
}

fn replay_err(e: sqlx::Error) -> ReplayError {
    ReplayError::with_source(e.to_string(), e)
}

fn ttl_secs(ttl: std::time::Duration) -> i64 {
    i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX)
}

/// The tables and indexes, created if missing; `int` is the 64-bit integer type's name.
fn schema(int: &str) -> [String; 7] {
    [
        format!(
            "CREATE TABLE IF NOT EXISTS adieu_rp_sessions (session_id TEXT PRIMARY KEY, issuer TEXT NOT NULL, sub TEXT NOT NULL, sid TEXT, created_at {int} NOT NULL)"
        ),
        "CREATE INDEX IF NOT EXISTS adieu_rp_sessions_sid ON adieu_rp_sessions (issuer, sid)".to_owned(),
        "CREATE INDEX IF NOT EXISTS adieu_rp_sessions_sub ON adieu_rp_sessions (issuer, sub)".to_owned(),
        format!("CREATE TABLE IF NOT EXISTS adieu_rp_logged_out (session_id TEXT PRIMARY KEY, until {int} NOT NULL)"),
        "CREATE INDEX IF NOT EXISTS adieu_rp_logged_out_until ON adieu_rp_logged_out (until)".to_owned(),
        format!(
            "CREATE TABLE IF NOT EXISTS adieu_rp_jti (issuer TEXT NOT NULL, jti TEXT NOT NULL, until {int} NOT NULL, PRIMARY KEY (issuer, jti))"
        ),
        "CREATE INDEX IF NOT EXISTS adieu_rp_jti_until ON adieu_rp_jti (until)".to_owned(),
    ]
}

fn ids_json(ids: &[String]) -> String {
    serde_json::to_string(ids).unwrap_or_else(|_| "[]".into())
}

/// The statements that read the same on SQLite and PostgreSQL (sqlx binds `$N` on both), and
/// the methods built on them, written once for each backend's pool type. The others differ by
/// dialect (a list parameter is `json_each` on SQLite and an array on PostgreSQL; the larger of
/// two values is `max` or `GREATEST`) and are written in each backend's impl.
macro_rules! shared_queries {
    ($pool:ty) => {
        use super::*;

        pub(super) async fn record(pool: &$pool, l: LoginRecord) -> Result<(), IndexError> {
            sqlx::query(
                "INSERT INTO adieu_rp_sessions (session_id, issuer, sub, sid, created_at) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (session_id) DO UPDATE SET issuer = EXCLUDED.issuer, sub = EXCLUDED.sub, sid = EXCLUDED.sid, created_at = EXCLUDED.created_at",
            )
            .bind(l.session_id)
            .bind(l.issuer)
            .bind(l.sub)
            .bind(l.sid)
            .bind(l.created_at)
            .execute(pool)
            .await
            .map_err(err)?;
            Ok(())
        }

        pub(super) async fn sessions_to_end(pool: &$pool, t: &VerifiedLogoutToken) -> Result<Vec<String>, IndexError> {
            let q = match t.subject() {
                LogoutSubject::Sid(sid) => sqlx::query_scalar(
                    "SELECT session_id FROM adieu_rp_sessions WHERE issuer = $1 AND sid = $2 ORDER BY session_id",
                )
                .bind(t.issuer().to_owned())
                .bind(sid.clone()),
                LogoutSubject::Both { sub, sid } => sqlx::query_scalar(
                    "SELECT session_id FROM adieu_rp_sessions WHERE issuer = $1 AND sid = $2 AND sub = $3 ORDER BY session_id",
                )
                .bind(t.issuer().to_owned())
                .bind(sid.clone())
                .bind(sub.clone()),
                // BC-SEC-06: not sessions created after the token.
                LogoutSubject::Sub(sub) => sqlx::query_scalar(
                    "SELECT session_id FROM adieu_rp_sessions WHERE issuer = $1 AND sub = $2 AND created_at <= $3 ORDER BY session_id",
                )
                .bind(t.issuer().to_owned())
                .bind(sub.clone())
                .bind(t.issued_at()),
            };
            q.fetch_all(pool).await.map_err(err)
        }

        pub(super) async fn is_logged_out(pool: &$pool, session_id: &str) -> Result<bool, IndexError> {
            let found: Option<i32> =
                sqlx::query_scalar("SELECT 1 FROM adieu_rp_logged_out WHERE session_id = $1 AND until >= $2")
                    .bind(session_id)
                    .bind(crate::wall_clock_secs())
                    .fetch_optional(pool)
                    .await
                    .map_err(err)?;
            Ok(found.is_some())
        }

        pub(super) async fn seen(pool: &$pool, issuer: &str, jti: &str, now: i64) -> Result<bool, ReplayError> {
            let found: Option<i32> =
                sqlx::query_scalar("SELECT 1 FROM adieu_rp_jti WHERE issuer = $1 AND jti = $2 AND until >= $3")
                    .bind(issuer)
                    .bind(jti)
                    .bind(now)
                    .fetch_optional(pool)
                    .await
                    .map_err(replay_err)?;
            Ok(found.is_some())
        }
    };
}

#[cfg(feature = "sqlite")]
mod sqlite_shared {
    shared_queries!(sqlx::SqlitePool);
}

#[cfg(feature = "postgres")]
mod postgres_shared {
    shared_queries!(sqlx::PgPool);
}

/// A session index in SQLite.
///
/// ```no_run
/// # async fn run() -> Result<(), adieu_rp::index::IndexError> {
/// let index = adieu_rp::index_sql::SqliteSessionIndex::connect("sqlite://app.db?mode=rwc").await?;
/// # let _ = index; Ok(()) }
/// ```
#[cfg(feature = "sqlite")]
#[derive(Debug, Clone)]
pub struct SqliteSessionIndex {
    pool: sqlx::SqlitePool,
    marker_ttl_secs: i64,
}

#[cfg(feature = "sqlite")]
impl SqliteSessionIndex {
    /// Opens the database at `url` and creates the table if needed.
    ///
    /// ```no_run
    /// # async fn run() {
    /// let index = adieu_rp::index_sql::SqliteSessionIndex::connect("sqlite::memory:").await.unwrap();
    /// # let _ = index; }
    /// ```
    pub async fn connect(url: &str) -> Result<Self, IndexError> {
        let pool = sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect(url).await.map_err(err)?;
        Self::with_pool(pool).await
    }

    /// Uses an existing pool (e.g. the application's own) and creates the table if needed.
    ///
    /// ```no_run
    /// # async fn run(pool: sqlx::SqlitePool) {
    /// let index = adieu_rp::index_sql::SqliteSessionIndex::with_pool(pool).await.unwrap();
    /// # let _ = index; }
    /// ```
    pub async fn with_pool(pool: sqlx::SqlitePool) -> Result<Self, IndexError> {
        for stmt in schema("INTEGER") {
            sqlx::query(&stmt).execute(&pool).await.map_err(err)?;
        }
        Ok(SqliteSessionIndex { pool, marker_ttl_secs: DEFAULT_MARKER_TTL_SECS })
    }

    /// Keeps logged-out markers for `ttl` (default 30 days; use your sessions' absolute lifetime).
    ///
    /// ```no_run
    /// # async fn run() {
    /// let index = adieu_rp::index_sql::SqliteSessionIndex::connect("sqlite::memory:").await.unwrap()
    ///     .with_marker_ttl(std::time::Duration::from_secs(24 * 3600));
    /// # let _ = index; }
    /// ```
    pub fn with_marker_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.marker_ttl_secs = ttl_secs(ttl);
        self
    }
}

#[cfg(feature = "sqlite")]
#[async_trait]
impl SessionIndex for SqliteSessionIndex {
    async fn record(&self, l: LoginRecord) -> Result<(), IndexError> {
        sqlite_shared::record(&self.pool, l).await
    }

    async fn sessions_to_end(&self, t: &VerifiedLogoutToken) -> Result<Vec<String>, IndexError> {
        sqlite_shared::sessions_to_end(&self.pool, t).await
    }

    async fn forget(&self, session_ids: &[String]) -> Result<(), IndexError> {
        sqlx::query("DELETE FROM adieu_rp_sessions WHERE session_id IN (SELECT value FROM json_each(?))")
            .bind(ids_json(session_ids))
            .execute(&self.pool)
            .await
            .map_err(err)?;
        Ok(())
    }
}

/// Lazy ending: records logged-out markers that every replica sees.
#[cfg(feature = "sqlite")]
#[async_trait]
impl SessionEnder for SqliteSessionIndex {
    async fn end_sessions(&self, session_ids: &[String]) -> Result<(), IndexError> {
        let now = crate::wall_clock_secs();
        let mut tx = self.pool.begin().await.map_err(err)?;
        sqlx::query("DELETE FROM adieu_rp_logged_out WHERE until < ?")
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        sqlx::query(
            "INSERT INTO adieu_rp_logged_out (session_id, until) SELECT value, ? FROM json_each(?) WHERE true
             ON CONFLICT (session_id) DO UPDATE SET until = excluded.until",
        )
        .bind(now.saturating_add(self.marker_ttl_secs))
        .bind(ids_json(session_ids))
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        tx.commit().await.map_err(err)
    }
}

#[cfg(feature = "sqlite")]
#[async_trait]
impl LogoutMarkerStore for SqliteSessionIndex {
    async fn is_logged_out(&self, session_id: &str) -> Result<bool, IndexError> {
        sqlite_shared::is_logged_out(&self.pool, session_id).await
    }
}

#[cfg(feature = "sqlite")]
#[async_trait]
impl ReplayCache for SqliteSessionIndex {
    async fn seen(&self, issuer: &str, jti: &str, now: i64) -> Result<bool, ReplayError> {
        sqlite_shared::seen(&self.pool, issuer, jti, now).await
    }

    async fn remember(&self, issuer: &str, jti: &str, until: i64, now: i64) -> Result<(), ReplayError> {
        let mut tx = self.pool.begin().await.map_err(replay_err)?;
        sqlx::query("DELETE FROM adieu_rp_jti WHERE until < ?")
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(replay_err)?;
        sqlx::query(
            "INSERT INTO adieu_rp_jti (issuer, jti, until) VALUES (?, ?, ?)
             ON CONFLICT (issuer, jti) DO UPDATE SET until = max(until, excluded.until)",
        )
        .bind(issuer)
        .bind(jti)
        .bind(until)
        .execute(&mut *tx)
        .await
        .map_err(replay_err)?;
        tx.commit().await.map_err(replay_err)
    }
}

/// A session index in PostgreSQL, shared by several application replicas.
///
/// ```no_run
/// # async fn run() -> Result<(), adieu_rp::index::IndexError> {
/// let index = adieu_rp::index_sql::PostgresSessionIndex::connect("postgres://app@db/app").await?;
/// # let _ = index; Ok(()) }
/// ```
#[cfg(feature = "postgres")]
#[derive(Debug, Clone)]
pub struct PostgresSessionIndex {
    pool: sqlx::PgPool,
    marker_ttl_secs: i64,
}

#[cfg(feature = "postgres")]
impl PostgresSessionIndex {
    /// Connects and creates the table if needed.
    ///
    /// ```no_run
    /// # async fn run() {
    /// let index = adieu_rp::index_sql::PostgresSessionIndex::connect("postgres://app@db/app").await.unwrap();
    /// # let _ = index; }
    /// ```
    pub async fn connect(url: &str) -> Result<Self, IndexError> {
        let pool = sqlx::postgres::PgPoolOptions::new().max_connections(4).connect(url).await.map_err(err)?;
        Self::with_pool(pool).await
    }

    /// Uses an existing pool and creates the table if needed.
    ///
    /// ```no_run
    /// # async fn run(pool: sqlx::PgPool) {
    /// let index = adieu_rp::index_sql::PostgresSessionIndex::with_pool(pool).await.unwrap();
    /// # let _ = index; }
    /// ```
    pub async fn with_pool(pool: sqlx::PgPool) -> Result<Self, IndexError> {
        for stmt in schema("BIGINT") {
            sqlx::query(&stmt).execute(&pool).await.map_err(err)?;
        }
        Ok(PostgresSessionIndex { pool, marker_ttl_secs: DEFAULT_MARKER_TTL_SECS })
    }

    /// Keeps logged-out markers for `ttl` (default 30 days; use your sessions' absolute lifetime).
    ///
    /// ```no_run
    /// # async fn run() {
    /// let index = adieu_rp::index_sql::PostgresSessionIndex::connect("postgres://app@db/app").await.unwrap()
    ///     .with_marker_ttl(std::time::Duration::from_secs(24 * 3600));
    /// # let _ = index; }
    /// ```
    pub fn with_marker_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.marker_ttl_secs = ttl_secs(ttl);
        self
    }
}

#[cfg(feature = "postgres")]
#[async_trait]
impl SessionIndex for PostgresSessionIndex {
    async fn record(&self, l: LoginRecord) -> Result<(), IndexError> {
        postgres_shared::record(&self.pool, l).await
    }

    async fn sessions_to_end(&self, t: &VerifiedLogoutToken) -> Result<Vec<String>, IndexError> {
        postgres_shared::sessions_to_end(&self.pool, t).await
    }

    async fn forget(&self, session_ids: &[String]) -> Result<(), IndexError> {
        sqlx::query("DELETE FROM adieu_rp_sessions WHERE session_id = ANY($1)")
            .bind(session_ids.to_vec())
            .execute(&self.pool)
            .await
            .map_err(err)?;
        Ok(())
    }
}

/// Lazy ending: records logged-out markers that every replica sees.
#[cfg(feature = "postgres")]
#[async_trait]
impl SessionEnder for PostgresSessionIndex {
    async fn end_sessions(&self, session_ids: &[String]) -> Result<(), IndexError> {
        let now = crate::wall_clock_secs();
        sqlx::query("DELETE FROM adieu_rp_logged_out WHERE until < $1")
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(err)?;
        sqlx::query(
            "INSERT INTO adieu_rp_logged_out (session_id, until) SELECT unnest($1::text[]), $2
             ON CONFLICT (session_id) DO UPDATE SET until = EXCLUDED.until",
        )
        .bind(session_ids.to_vec())
        .bind(now.saturating_add(self.marker_ttl_secs))
        .execute(&self.pool)
        .await
        .map_err(err)?;
        Ok(())
    }
}

#[cfg(feature = "postgres")]
#[async_trait]
impl LogoutMarkerStore for PostgresSessionIndex {
    async fn is_logged_out(&self, session_id: &str) -> Result<bool, IndexError> {
        postgres_shared::is_logged_out(&self.pool, session_id).await
    }
}

#[cfg(feature = "postgres")]
#[async_trait]
impl ReplayCache for PostgresSessionIndex {
    async fn seen(&self, issuer: &str, jti: &str, now: i64) -> Result<bool, ReplayError> {
        postgres_shared::seen(&self.pool, issuer, jti, now).await
    }

    async fn remember(&self, issuer: &str, jti: &str, until: i64, now: i64) -> Result<(), ReplayError> {
        sqlx::query("DELETE FROM adieu_rp_jti WHERE until < $1")
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(replay_err)?;
        sqlx::query(
            "INSERT INTO adieu_rp_jti (issuer, jti, until) VALUES ($1, $2, $3)
             ON CONFLICT (issuer, jti) DO UPDATE SET until = GREATEST(adieu_rp_jti.until, EXCLUDED.until)",
        )
        .bind(issuer)
        .bind(jti)
        .bind(until)
        .execute(&self.pool)
        .await
        .map_err(replay_err)?;
        Ok(())
    }
}

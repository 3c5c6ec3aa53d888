//! Session indexes in SQLite and PostgreSQL (features `sqlite`, `postgres`), for applications
//! that keep sessions in a database or run several replicas. One table, created if missing:
//! `adieu_rp_sessions(session_id PRIMARY KEY, issuer, sub, sid, created_at)`.

use crate::index::{IndexError, LoginRecord, SessionIndex};
use crate::verify::{LogoutSubject, VerifiedLogoutToken};
use async_trait::async_trait;

fn err(e: sqlx::Error) -> IndexError {
    IndexError(e.to_string())
}

fn ids_json(ids: &[String]) -> String {
    serde_json::to_string(ids).unwrap_or_else(|_| "[]".into())
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
        for stmt in [
            "CREATE TABLE IF NOT EXISTS adieu_rp_sessions (session_id TEXT PRIMARY KEY, issuer TEXT NOT NULL, sub TEXT NOT NULL, sid TEXT, created_at INTEGER NOT NULL)",
            "CREATE INDEX IF NOT EXISTS adieu_rp_sessions_sid ON adieu_rp_sessions (issuer, sid)",
            "CREATE INDEX IF NOT EXISTS adieu_rp_sessions_sub ON adieu_rp_sessions (issuer, sub)",
        ] {
            sqlx::query(stmt).execute(&pool).await.map_err(err)?;
        }
        Ok(SqliteSessionIndex { pool })
    }
}

#[cfg(feature = "sqlite")]
#[async_trait]
impl SessionIndex for SqliteSessionIndex {
    async fn record(&self, l: LoginRecord) -> Result<(), IndexError> {
        sqlx::query("INSERT OR REPLACE INTO adieu_rp_sessions (session_id, issuer, sub, sid, created_at) VALUES (?, ?, ?, ?, ?)")
            .bind(l.session_id)
            .bind(l.issuer)
            .bind(l.sub)
            .bind(l.sid)
            .bind(l.created_at)
            .execute(&self.pool)
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn sessions_to_end(&self, t: &VerifiedLogoutToken) -> Result<Vec<String>, IndexError> {
        let q = match t.subject() {
            LogoutSubject::Sid(sid) => sqlx::query_scalar("SELECT session_id FROM adieu_rp_sessions WHERE issuer = ? AND sid = ? ORDER BY session_id")
                .bind(t.issuer().to_owned())
                .bind(sid.clone()),
            LogoutSubject::Both { sub, sid } => {
                sqlx::query_scalar("SELECT session_id FROM adieu_rp_sessions WHERE issuer = ? AND sid = ? AND sub = ? ORDER BY session_id")
                    .bind(t.issuer().to_owned())
                    .bind(sid.clone())
                    .bind(sub.clone())
            }
            // BC-SEC-06: not sessions created after the token.
            LogoutSubject::Sub(sub) => {
                sqlx::query_scalar("SELECT session_id FROM adieu_rp_sessions WHERE issuer = ? AND sub = ? AND created_at <= ? ORDER BY session_id")
                    .bind(t.issuer().to_owned())
                    .bind(sub.clone())
                    .bind(t.issued_at())
            }
        };
        q.fetch_all(&self.pool).await.map_err(err)
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
        for stmt in [
            "CREATE TABLE IF NOT EXISTS adieu_rp_sessions (session_id TEXT PRIMARY KEY, issuer TEXT NOT NULL, sub TEXT NOT NULL, sid TEXT, created_at BIGINT NOT NULL)",
            "CREATE INDEX IF NOT EXISTS adieu_rp_sessions_sid ON adieu_rp_sessions (issuer, sid)",
            "CREATE INDEX IF NOT EXISTS adieu_rp_sessions_sub ON adieu_rp_sessions (issuer, sub)",
        ] {
            sqlx::query(stmt).execute(&pool).await.map_err(err)?;
        }
        Ok(PostgresSessionIndex { pool })
    }
}

#[cfg(feature = "postgres")]
#[async_trait]
impl SessionIndex for PostgresSessionIndex {
    async fn record(&self, l: LoginRecord) -> Result<(), IndexError> {
        sqlx::query(
            "INSERT INTO adieu_rp_sessions (session_id, issuer, sub, sid, created_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (session_id) DO UPDATE SET issuer = EXCLUDED.issuer, sub = EXCLUDED.sub, sid = EXCLUDED.sid, created_at = EXCLUDED.created_at",
        )
        .bind(l.session_id)
        .bind(l.issuer)
        .bind(l.sub)
        .bind(l.sid)
        .bind(l.created_at)
        .execute(&self.pool)
        .await
        .map_err(err)?;
        Ok(())
    }

    async fn sessions_to_end(&self, t: &VerifiedLogoutToken) -> Result<Vec<String>, IndexError> {
        let q = match t.subject() {
            LogoutSubject::Sid(sid) => sqlx::query_scalar("SELECT session_id FROM adieu_rp_sessions WHERE issuer = $1 AND sid = $2 ORDER BY session_id")
                .bind(t.issuer().to_owned())
                .bind(sid.clone()),
            LogoutSubject::Both { sub, sid } => sqlx::query_scalar(
                "SELECT session_id FROM adieu_rp_sessions WHERE issuer = $1 AND sid = $2 AND sub = $3 ORDER BY session_id",
            )
            .bind(t.issuer().to_owned())
            .bind(sid.clone())
            .bind(sub.clone()),
            LogoutSubject::Sub(sub) => sqlx::query_scalar(
                "SELECT session_id FROM adieu_rp_sessions WHERE issuer = $1 AND sub = $2 AND created_at <= $3 ORDER BY session_id",
            )
            .bind(t.issuer().to_owned())
            .bind(sub.clone())
            .bind(t.issued_at()),
        };
        q.fetch_all(&self.pool).await.map_err(err)
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

#[cfg(all(test, feature = "sqlite", feature = "postgres"))]
mod suite {
    //! One test suite for every session index backend: memory, SQLite, PostgreSQL.

    use super::*;
    use crate::index::MemorySessionIndex;
    use crate::testing::{ISS, NOW};

    fn token(issuer: &str, sub: Option<&str>, sid: Option<&str>, iat: i64) -> VerifiedLogoutToken {
        crate::testing::verified_token(issuer, sub, sid, iat)
    }

    /// Every backend: sid ends that session (sub must match when both are given), sub-only ends the
    /// user's older sessions only (BC-SEC-06), issuers are separate, forget removes, re-recording replaces.
    async fn conformance(index: &dyn SessionIndex) {
        // A unique issuer per run keeps shared databases (PostgreSQL in CI) clean between runs.
        let iss = format!("{ISS}/{}", crate::testing::unique());
        let other_iss = format!("{iss}-other");
        let login = |issuer: &str, sub: &str, sid: &str, session: &str, created: i64| LoginRecord {
            issuer: issuer.into(),
            sub: sub.into(),
            sid: Some(sid.into()),
            session_id: format!("{iss}#{session}"),
            created_at: created,
        };
        for l in [
            login(&iss, "alice", "sid-a1", "app-1", NOW - 100),
            login(&iss, "alice", "sid-a2", "app-2", NOW - 50),
            login(&iss, "alice", "sid-a3", "app-3", NOW + 10),
            login(&iss, "bob", "sid-b1", "app-4", NOW - 100),
            login(&other_iss, "alice", "sid-a1", "app-5", NOW - 100),
        ] {
            index.record(l).await.unwrap();
        }
        let s = |n: &str| format!("{iss}#{n}");
        assert_eq!(index.sessions_to_end(&token(&iss, None, Some("sid-a1"), NOW)).await.unwrap(), [s("app-1")]);
        assert_eq!(
            index.sessions_to_end(&token(&iss, Some("alice"), Some("sid-a2"), NOW)).await.unwrap(),
            [s("app-2")]
        );
        assert!(index.sessions_to_end(&token(&iss, Some("bob"), Some("sid-a2"), NOW)).await.unwrap().is_empty());
        assert_eq!(
            index.sessions_to_end(&token(&iss, Some("alice"), None, NOW)).await.unwrap(),
            [s("app-1"), s("app-2")]
        );
        index.forget(&[s("app-1")]).await.unwrap();
        assert!(index.sessions_to_end(&token(&iss, None, Some("sid-a1"), NOW)).await.unwrap().is_empty());
        // Re-recording a session id replaces it.
        index.record(login(&iss, "carol", "sid-c1", "app-2", NOW - 10)).await.unwrap();
        assert!(index.sessions_to_end(&token(&iss, None, Some("sid-a2"), NOW)).await.unwrap().is_empty());
        assert_eq!(index.sessions_to_end(&token(&iss, Some("carol"), None, NOW)).await.unwrap(), [s("app-2")]);
    }

    #[tokio::test]
    async fn memory_index_passes_the_suite() {
        conformance(&MemorySessionIndex::default()).await;
    }

    #[tokio::test]
    async fn sqlite_index_passes_the_suite() {
        let dir = std::env::temp_dir().join(format!("adieu-rp-index-{}.db", crate::testing::unique()));
        let index = SqliteSessionIndex::connect(&format!("sqlite://{}?mode=rwc", dir.display())).await.unwrap();
        conformance(&index).await;
        let _ = std::fs::remove_file(dir);
    }

    #[tokio::test]
    async fn postgres_index_passes_the_suite() {
        let Ok(url) = std::env::var("ADIEU_TEST_POSTGRES_URL") else {
            assert!(
                std::env::var("ADIEU_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "ADIEU_REQUIRE_POSTGRES=1 but ADIEU_TEST_POSTGRES_URL is not set"
            );
            eprintln!("skipped: set ADIEU_TEST_POSTGRES_URL to run the PostgreSQL index tests");
            return;
        };
        let index = PostgresSessionIndex::connect(&url).await.expect("PostgreSQL is reachable");
        conformance(&index).await;
    }
}

//! The SQLite backend: the embedded default.
//!
//! One database file in WAL mode. Writes go through a pool of exactly one connection and every
//! multi-statement write runs in `BEGIN IMMEDIATE`, so writers queue instead of failing with
//! `SQLITE_BUSY`; reads use a separate small pool and see committed data (WAL readers never block).
//! A second process on the same file (the admin CLI beside a running server) waits on `busy_timeout`.

use crate::REVOKED_GRANT_MEMORY_MS;
use crate::migrate::{Migration, SQLITE};
use adieu_core::audit::{AuditEvent, AuditFilter, kind};
use adieu_core::client::{Client, TokenEndpointAuthMethod};
use adieu_core::delivery::{Attempt, Delivery, DeliveryStatus};
use adieu_core::grant::{AccessToken, AuthCode, PendingAuthorization, RefreshToken};
use adieu_core::id::{ClientId, SessionId, Sid, UserId};
use adieu_core::initiator::Initiator;
use adieu_core::initiator::InitiatorSubscription;
use adieu_core::session::{EndedSession, Participation, Session, SessionLifetime};
use adieu_core::store::{
    ApiTokenKind, ApiTokenStore, AttemptResult, AuditStore, Claim, ClientStore, CodeRedemption, DeliveryFilter,
    DeliveryStore, GrantStore, Health, QueueStats, Recorded, RefreshUse, SessionStore, StoreError, StoreResult,
    UserStore,
};
use adieu_core::time::UnixMillis;
use adieu_core::user::{User, UserChanges, UserQuery, UserUpdated};
use async_trait::async_trait;
use serde_json::json;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{Connection, Row, SqliteConnection, SqlitePool};
use std::str::FromStr;
use std::time::Duration;

mod keys;
mod ratelimit;
mod retention;
mod upstream;

/// The SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
}

fn backend(e: sqlx::Error) -> StoreError {
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

fn json_err(e: serde_json::Error) -> StoreError {
    StoreError::Backend(format!("stored JSON is invalid: {e}"))
}

fn opt_ms(v: Option<i64>) -> Option<UnixMillis> {
    v.map(UnixMillis)
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite://path/to/adieu.db`) and applies
    /// the embedded migrations.
    pub async fn open(url: &str) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(backend)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
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
            .map_err(backend)?;
        let store = SqliteStore {
            reader: SqlitePoolOptions::new()
                .max_connections(4)
                .connect_with(options.read_only(true))
                .await
                .map_err(backend)?,
            writer,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies every migration not yet applied; returns how many ran.
    pub async fn migrate(&self) -> StoreResult<usize> {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS adieu_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
        )
        .execute(&self.writer)
        .await
        .map_err(backend)?;
        let mut ran = 0;
        for m in SQLITE {
            if self.apply(m).await? {
                ran += 1;
            }
        }
        Ok(ran)
    }

    async fn apply(&self, m: &Migration) -> StoreResult<bool> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(backend)?;
        let done: Option<i64> = sqlx::query_scalar("SELECT version FROM adieu_migrations WHERE version = ?")
            .bind(m.version)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
        if done.is_some() {
            return Ok(false);
        }
        sqlx::raw_sql(m.sql).execute(&mut *tx).await.map_err(backend)?;
        sqlx::query("INSERT INTO adieu_migrations (version, name, applied_at) VALUES (?, ?, CAST(unixepoch('subsec') * 1000 AS INTEGER))")
            .bind(m.version)
            .bind(m.name)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        tracing::info!(version = m.version, name = m.name, "applied migration");
        Ok(true)
    }
}

// ---------------------------------------------------------------------------------------------
// Row mapping

fn user_from_row(r: &SqliteRow) -> Result<User, sqlx::Error> {
    Ok(User {
        id: UserId::new(r.try_get::<String, _>("id")?),
        username: r.try_get("username")?,
        email: r.try_get("email")?,
        password_hash: r.try_get("password_hash")?,
        created_at: UnixMillis(r.try_get("created_at")?),
        updated_at: UnixMillis(r.try_get("updated_at")?),
    })
}

fn client_from_row(r: &SqliteRow) -> StoreResult<Client> {
    let text = |c: &str| r.try_get::<String, _>(c).map_err(backend);
    Ok(Client {
        id: ClientId::new(text("id")?),
        name: text("name")?,
        secret_hash: r.try_get("secret_hash").map_err(backend)?,
        redirect_uris: serde_json::from_str(&text("redirect_uris")?).map_err(json_err)?,
        post_logout_redirect_uris: serde_json::from_str(&text("post_logout_redirect_uris")?).map_err(json_err)?,
        backchannel_logout_uri: r.try_get("backchannel_logout_uri").map_err(backend)?,
        backchannel_logout_session_required: r.try_get("backchannel_logout_session_required").map_err(backend)?,
        backchannel_logout_initiators: serde_json::from_str(&text("backchannel_logout_initiators")?)
            .map_err(json_err)?,
        token_endpoint_auth_method: TokenEndpointAuthMethod::from_str(&text("token_endpoint_auth_method")?)
            .map_err(StoreError::Backend)?,
        id_token_signed_response_alg: text("id_token_signed_response_alg")?
            .parse()
            .map_err(|e| StoreError::Backend(format!("{e}")))?,
        created_at: UnixMillis(r.try_get("created_at").map_err(backend)?),
        updated_at: UnixMillis(r.try_get("updated_at").map_err(backend)?),
    })
}

fn session_from_row(r: &SqliteRow) -> StoreResult<Session> {
    let reason: Option<String> = r.try_get("end_reason").map_err(backend)?;
    Ok(Session {
        id: SessionId::new(r.try_get::<String, _>("id").map_err(backend)?),
        user_id: UserId::new(r.try_get::<String, _>("user_id").map_err(backend)?),
        auth_time: UnixMillis(r.try_get("auth_time").map_err(backend)?),
        created_at: UnixMillis(r.try_get("created_at").map_err(backend)?),
        last_seen_at: UnixMillis(r.try_get("last_seen_at").map_err(backend)?),
        ended_at: opt_ms(r.try_get("ended_at").map_err(backend)?),
        end_reason: reason
            .map(|s| s.parse::<Initiator>())
            .transpose()
            .map_err(|e| StoreError::Backend(e.to_string()))?,
    })
}

fn participation_from_row(r: &SqliteRow) -> Result<Participation, sqlx::Error> {
    Ok(Participation {
        session_id: SessionId::new(r.try_get::<String, _>("session_id")?),
        client_id: ClientId::new(r.try_get::<String, _>("client_id")?),
        sid: Sid::new(r.try_get::<String, _>("sid")?),
        created_at: UnixMillis(r.try_get("created_at")?),
    })
}

fn code_from_row(r: &SqliteRow) -> Result<AuthCode, sqlx::Error> {
    Ok(AuthCode {
        code_hash: r.try_get("code_hash")?,
        grant_id: r.try_get("grant_id")?,
        client_id: ClientId::new(r.try_get::<String, _>("client_id")?),
        redirect_uri: r.try_get("redirect_uri")?,
        user_id: UserId::new(r.try_get::<String, _>("user_id")?),
        session_id: SessionId::new(r.try_get::<String, _>("session_id")?),
        sid: Sid::new(r.try_get::<String, _>("sid")?),
        scope: r.try_get("scope")?,
        nonce: r.try_get("nonce")?,
        code_challenge: r.try_get("code_challenge")?,
        auth_time: UnixMillis(r.try_get("auth_time")?),
        created_at: UnixMillis(r.try_get("created_at")?),
        expires_at: UnixMillis(r.try_get("expires_at")?),
        used_at: opt_ms(r.try_get("used_at")?),
    })
}

fn access_from_row(r: &SqliteRow) -> Result<AccessToken, sqlx::Error> {
    Ok(AccessToken {
        token_hash: r.try_get("token_hash")?,
        grant_id: r.try_get("grant_id")?,
        client_id: ClientId::new(r.try_get::<String, _>("client_id")?),
        user_id: UserId::new(r.try_get::<String, _>("user_id")?),
        session_id: SessionId::new(r.try_get::<String, _>("session_id")?),
        scope: r.try_get("scope")?,
        offline: r.try_get("offline")?,
        created_at: UnixMillis(r.try_get("created_at")?),
        expires_at: UnixMillis(r.try_get("expires_at")?),
        revoked_at: opt_ms(r.try_get("revoked_at")?),
    })
}

fn refresh_from_row(r: &SqliteRow) -> Result<RefreshToken, sqlx::Error> {
    Ok(RefreshToken {
        token_hash: r.try_get("token_hash")?,
        grant_id: r.try_get("grant_id")?,
        client_id: ClientId::new(r.try_get::<String, _>("client_id")?),
        user_id: UserId::new(r.try_get::<String, _>("user_id")?),
        session_id: SessionId::new(r.try_get::<String, _>("session_id")?),
        sid: Sid::new(r.try_get::<String, _>("sid")?),
        scope: r.try_get("scope")?,
        offline: r.try_get("offline")?,
        auth_time: UnixMillis(r.try_get("auth_time")?),
        created_at: UnixMillis(r.try_get("created_at")?),
        expires_at: UnixMillis(r.try_get("expires_at")?),
        rotated_at: opt_ms(r.try_get("rotated_at")?),
        revoked_at: opt_ms(r.try_get("revoked_at")?),
    })
}

// ---------------------------------------------------------------------------------------------
// Ending a session: the one code path every initiator goes through, inside the caller's transaction.

async fn end_session_in(
    conn: &mut SqliteConnection,
    id: &SessionId,
    initiator: Initiator,
    actor: &str,
    at: UnixMillis,
) -> StoreResult<Option<EndedSession>> {
    let row =
        sqlx::query("UPDATE sessions SET ended_at = ?, end_reason = ? WHERE id = ? AND ended_at IS NULL RETURNING *")
            .bind(at.0)
            .bind(initiator.as_str())
            .bind(id.as_str())
            .fetch_optional(&mut *conn)
            .await
            .map_err(backend)?;
    let Some(row) = row else { return Ok(None) };
    let session = session_from_row(&row)?;
    // BC-RT-01: tokens without offline_access die with the session; BC-RT-02: offline ones survive.
    let refresh = sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = ? WHERE session_id = ? AND offline = 0 AND revoked_at IS NULL",
    )
    .bind(at.0)
    .bind(id.as_str())
    .execute(&mut *conn)
    .await
    .map_err(backend)?
    .rows_affected();
    let access = sqlx::query(
        "UPDATE access_tokens SET revoked_at = ? WHERE session_id = ? AND offline = 0 AND revoked_at IS NULL",
    )
    .bind(at.0)
    .bind(id.as_str())
    .execute(&mut *conn)
    .await
    .map_err(backend)?
    .rows_affected();
    let participations =
        sqlx::query("SELECT * FROM participations WHERE session_id = ? ORDER BY created_at, client_id")
            .bind(id.as_str())
            .fetch_all(&mut *conn)
            .await
            .map_err(backend)?
            .iter()
            .map(participation_from_row)
            .collect::<Result<Vec<_>, _>>()
            .map_err(backend)?;
    // The outbox: one delivery per participant that subscribes to this initiator.
    let subscribers = sqlx::query(
        "SELECT p.client_id, p.sid, c.backchannel_logout_initiators FROM participations p
         JOIN clients c ON c.id = p.client_id
         WHERE p.session_id = ? AND c.backchannel_logout_uri IS NOT NULL
         ORDER BY p.created_at, p.client_id",
    )
    .bind(id.as_str())
    .fetch_all(&mut *conn)
    .await
    .map_err(backend)?;
    let mut targets = Vec::new();
    for row in subscribers {
        let subscription: InitiatorSubscription =
            serde_json::from_str(&row.try_get::<String, _>("backchannel_logout_initiators").map_err(backend)?)
                .map_err(json_err)?;
        if subscription.subscribes(initiator) {
            let client_id: String = row.try_get("client_id").map_err(backend)?;
            let sid: String = row.try_get("sid").map_err(backend)?;
            targets.push(json!({"client": client_id, "sid": sid}));
        }
    }
    let mut deliveries = Vec::new();
    if !targets.is_empty() {
        let rows = sqlx::query(
            "INSERT INTO deliveries (id, session_id, client_id, sub, sid, initiator, status, attempts, total_attempts,
               next_attempt_at, lease_until, round_started_at, created_at, finished_at, last_error)
             SELECT lower(hex(randomblob(16))), ?1, json_extract(j.value, '$.client'), ?2, json_extract(j.value, '$.sid'),
                    ?3, 'pending', 0, 0, ?4, NULL, ?4, ?4, NULL, NULL
             FROM json_each(?5) j
             RETURNING *",
        )
        .bind(id.as_str())
        .bind(session.user_id.as_str())
        .bind(initiator.as_str())
        .bind(at.0)
        .bind(serde_json::Value::Array(targets).to_string())
        .fetch_all(&mut *conn)
        .await
        .map_err(backend)?;
        for d in &rows {
            deliveries.push(delivery_from_row(d)?);
        }
        deliveries.sort_by(|a, b| a.client_id.cmp(&b.client_id));
    }
    let event = AuditEvent::new(
        kind::SESSION_ENDED,
        actor,
        at,
        json!({
            "initiator": initiator.as_str(),
            "participations": participations.len(),
            "deliveries": deliveries.len(),
            "revoked_tokens": refresh + access,
        }),
    )
    .user(session.user_id.as_str())
    .session(id.as_str());
    append_audit_in(conn, &event).await?;
    Ok(Some(EndedSession { session, participations, revoked_tokens: refresh + access, deliveries }))
}

/// Ends every open session of `user` inside the caller's transaction.
async fn end_user_sessions_in(
    conn: &mut SqliteConnection,
    user: &UserId,
    initiator: Initiator,
    actor: &str,
    at: UnixMillis,
) -> StoreResult<Vec<EndedSession>> {
    let open: Vec<String> =
        sqlx::query_scalar("SELECT id FROM sessions WHERE user_id = ? AND ended_at IS NULL ORDER BY created_at, id")
            .bind(user.as_str())
            .fetch_all(&mut *conn)
            .await
            .map_err(backend)?;
    let mut ended = Vec::with_capacity(open.len());
    for id in open {
        if let Some(e) = end_session_in(conn, &SessionId::new(id), initiator, actor, at).await? {
            ended.push(e);
        }
    }
    Ok(ended)
}

/// Revokes every access and refresh token of `user`, offline ones included; returns how many.
async fn revoke_user_tokens_in(conn: &mut SqliteConnection, user: &UserId, at: UnixMillis) -> StoreResult<u64> {
    let mut n = 0;
    for stmt in [
        "UPDATE refresh_tokens SET revoked_at = ?1 WHERE user_id = ?2 AND revoked_at IS NULL",
        "UPDATE access_tokens SET revoked_at = ?1 WHERE user_id = ?2 AND revoked_at IS NULL",
    ] {
        n += sqlx::query(stmt)
            .bind(at.0)
            .bind(user.as_str())
            .execute(&mut *conn)
            .await
            .map_err(backend)?
            .rows_affected();
    }
    Ok(n)
}

fn delivery_from_row(r: &SqliteRow) -> StoreResult<Delivery> {
    let text = |c: &str| r.try_get::<String, _>(c).map_err(backend);
    Ok(Delivery {
        id: text("id")?,
        session_id: SessionId::new(text("session_id")?),
        client_id: ClientId::new(text("client_id")?),
        sub: UserId::new(text("sub")?),
        sid: Sid::new(text("sid")?),
        initiator: text("initiator")?
            .parse()
            .map_err(|e: adieu_core::initiator::UnknownInitiator| StoreError::Backend(e.to_string()))?,
        status: text("status")?.parse().map_err(StoreError::Backend)?,
        attempts: u32::try_from(r.try_get::<i64, _>("attempts").map_err(backend)?).unwrap_or(0),
        next_attempt_at: UnixMillis(r.try_get("next_attempt_at").map_err(backend)?),
        lease_until: opt_ms(r.try_get("lease_until").map_err(backend)?),
        round_started_at: UnixMillis(r.try_get("round_started_at").map_err(backend)?),
        created_at: UnixMillis(r.try_get("created_at").map_err(backend)?),
        finished_at: opt_ms(r.try_get("finished_at").map_err(backend)?),
        last_error: r.try_get("last_error").map_err(backend)?,
    })
}

fn attempt_from_row(r: &SqliteRow) -> Result<Attempt, sqlx::Error> {
    Ok(Attempt {
        delivery_id: r.try_get("delivery_id")?,
        number: u32::try_from(r.try_get::<i64, _>("number")?).unwrap_or(0),
        at: UnixMillis(r.try_get("at")?),
        latency_ms: u64::try_from(r.try_get::<i64, _>("latency_ms")?).unwrap_or(0),
        http_status: r.try_get::<Option<i64>, _>("http_status")?.and_then(|s| u16::try_from(s).ok()),
        error: r.try_get("error")?,
    })
}

async fn append_audit_in(conn: &mut SqliteConnection, e: &AuditEvent) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO audit_log (at, kind, actor, client_id, user_id, session_id, delivery_id, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
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

/// Discards the pending and leased deliveries of a client; returns how many.
async fn discard_deliveries_in(conn: &mut SqliteConnection, client: &ClientId, at: UnixMillis) -> StoreResult<u64> {
    Ok(sqlx::query(
        "UPDATE deliveries SET status = 'discarded', finished_at = ?, lease_until = NULL,
           last_error = 'the client unsubscribed from back-channel logout'
         WHERE client_id = ? AND status IN ('pending', 'leased')",
    )
    .bind(at.0)
    .bind(client.as_str())
    .execute(&mut *conn)
    .await
    .map_err(backend)?
    .rows_affected())
}

/// Audits a change of a client's logout URI (subscribe / change / unsubscribe) and discards its
/// pending deliveries when it unsubscribes.
async fn audit_uri_change(
    conn: &mut SqliteConnection,
    client: &ClientId,
    old: Option<&str>,
    new: Option<&str>,
    actor: &str,
    at: UnixMillis,
) -> StoreResult<()> {
    let k = match (old, new) {
        (None, Some(_)) => kind::BACKCHANNEL_SUBSCRIBED,
        (Some(_), None) => kind::BACKCHANNEL_UNSUBSCRIBED,
        (Some(a), Some(b)) if a != b => kind::BACKCHANNEL_CHANGED,
        _ => return Ok(()),
    };
    let e = AuditEvent::new(k, actor, at, json!({ "old": old, "new": new })).client(client.as_str());
    append_audit_in(conn, &e).await?;
    if new.is_none() {
        let n = discard_deliveries_in(conn, client, at).await?;
        if n > 0 {
            let e =
                AuditEvent::new(kind::DELIVERIES_DISCARDED, actor, at, json!({ "count": n })).client(client.as_str());
            append_audit_in(conn, &e).await?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------

/// Inserts a new user with its username and email lowercased (how they are looked up), and
/// returns those two as stored.
async fn insert_user_in(conn: &mut SqliteConnection, u: &User) -> StoreResult<(String, Option<String>)> {
    let (username, email) = (u.username.to_lowercase(), u.email.as_ref().map(|e| e.to_lowercase()));
    sqlx::query(
        "INSERT INTO users (id, username, email, password_hash, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(u.id.as_str())
    .bind(&username)
    .bind(&email)
    .bind(&u.password_hash)
    .bind(u.created_at.0)
    .bind(u.updated_at.0)
    .execute(&mut *conn)
    .await
    .map_err(backend)?;
    Ok((username, email))
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn add_user(&self, u: &User, actor: &str) -> StoreResult<()> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(backend)?;
        let (username, email) = insert_user_in(&mut tx, u).await?;
        let e =
            AuditEvent::new(kind::USER_CREATED, actor, u.created_at, json!({ "username": username, "email": email }))
                .user(u.id.as_str());
        append_audit_in(&mut tx, &e).await?;
        tx.commit().await.map_err(backend)?;
        Ok(())
    }

    async fn user_by_id(&self, id: &UserId) -> StoreResult<Option<User>> {
        let row = sqlx::query("SELECT * FROM users WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(&self.reader)
            .await
            .map_err(backend)?;
        row.as_ref().map(user_from_row).transpose().map_err(backend)
    }

    async fn user_by_login(&self, login: &str) -> StoreResult<Option<User>> {
        let login = login.trim().to_lowercase();
        let row =
            sqlx::query("SELECT * FROM users WHERE username = ?1 OR email = ?1 ORDER BY username = ?1 DESC LIMIT 1")
                .bind(login)
                .fetch_optional(&self.reader)
                .await
                .map_err(backend)?;
        row.as_ref().map(user_from_row).transpose().map_err(backend)
    }

    async fn list_users(&self, q: &UserQuery) -> StoreResult<Vec<User>> {
        // `instr` rather than LIKE: no wildcard characters to escape in the filter.
        let rows = sqlx::query(
            "SELECT * FROM users
             WHERE (?1 IS NULL OR instr(username, ?1) > 0 OR instr(coalesce(email, ''), ?1) > 0)
               AND (?2 IS NULL OR username > ?2)
             ORDER BY username LIMIT ?3",
        )
        .bind(q.contains.as_ref().map(|c| c.trim().to_lowercase()).filter(|c| !c.is_empty()))
        .bind(&q.after)
        .bind(i64::from(q.page_size()))
        .fetch_all(&self.reader)
        .await
        .map_err(backend)?;
        rows.iter().map(user_from_row).collect::<Result<_, _>>().map_err(backend)
    }

    async fn update_user(
        &self,
        id: &UserId,
        changes: &UserChanges,
        actor: &str,
        at: UnixMillis,
    ) -> StoreResult<Option<UserUpdated>> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(backend)?;
        let row = sqlx::query("SELECT * FROM users WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
        let Some(old) = row.as_ref().map(user_from_row).transpose().map_err(backend)? else { return Ok(None) };
        let initiator = changes.ending_initiator(&old);
        let username = changes.username.as_ref().map_or_else(|| old.username.clone(), |u| u.to_lowercase());
        let email = match &changes.email {
            Some(e) => e.as_ref().map(|e| e.to_lowercase()),
            None => old.email.clone(),
        };
        let hash = changes.password_hash.clone().unwrap_or_else(|| old.password_hash.clone());
        sqlx::query("UPDATE users SET username = ?, email = ?, password_hash = ?, updated_at = ? WHERE id = ?")
            .bind(&username)
            .bind(&email)
            .bind(&hash)
            .bind(at.0)
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        let ended = match initiator {
            Some(i) => end_user_sessions_in(&mut tx, id, i, actor, at).await?,
            None => Vec::new(),
        };
        // A new password also ends grants that outlive sessions (offline_access).
        let revoked_tokens =
            if changes.password_hash.is_some() { revoke_user_tokens_in(&mut tx, id, at).await? } else { 0 };
        let mut detail = serde_json::Map::new();
        if changes.changes_username(&old) {
            detail.insert("username".into(), json!({ "old": old.username, "new": username }));
        }
        if changes.changes_email(&old) {
            detail.insert("email".into(), json!({ "old": old.email, "new": email }));
        }
        if changes.password_hash.is_some() {
            detail.insert("password".into(), json!("changed"));
        }
        detail.insert("initiator".into(), json!(initiator.map(Initiator::as_str)));
        detail.insert("sessions_ended".into(), json!(ended.len()));
        detail.insert("revoked_tokens".into(), json!(revoked_tokens));
        let e = AuditEvent::new(kind::USER_UPDATED, actor, at, serde_json::Value::Object(detail)).user(id.as_str());
        append_audit_in(&mut tx, &e).await?;
        tx.commit().await.map_err(backend)?;
        let user = User { username, email, password_hash: hash, updated_at: at, ..old };
        Ok(Some(UserUpdated { user, initiator, ended, revoked_tokens }))
    }

    async fn delete_user(&self, id: &UserId, actor: &str, at: UnixMillis) -> StoreResult<Option<Vec<EndedSession>>> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(backend)?;
        let username: Option<String> = sqlx::query_scalar("SELECT username FROM users WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
        let Some(username) = username else { return Ok(None) };
        // The sessions keep `user_id` (no foreign key), so the deliveries carry the right `sub`.
        let ended = end_user_sessions_in(&mut tx, id, Initiator::AccountDeleted, actor, at).await?;
        let revoked = revoke_user_tokens_in(&mut tx, id, at).await?;
        for stmt in ["DELETE FROM auth_codes WHERE user_id = ?", "DELETE FROM users WHERE id = ?"] {
            sqlx::query(stmt).bind(id.as_str()).execute(&mut *tx).await.map_err(backend)?;
        }
        let e = AuditEvent::new(
            kind::USER_DELETED,
            actor,
            at,
            json!({ "username": username, "sessions_ended": ended.len(), "revoked_tokens": revoked }),
        )
        .user(id.as_str());
        append_audit_in(&mut tx, &e).await?;
        tx.commit().await.map_err(backend)?;
        Ok(Some(ended))
    }
}

#[async_trait]
impl ClientStore for SqliteStore {
    async fn create_client(&self, c: &Client, actor: &str) -> StoreResult<()> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(backend)?;
        sqlx::query(
            "INSERT INTO clients (id, name, secret_hash, redirect_uris, post_logout_redirect_uris, backchannel_logout_uri,
               backchannel_logout_session_required, backchannel_logout_initiators, token_endpoint_auth_method,
               id_token_signed_response_alg, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(c.id.as_str())
        .bind(&c.name)
        .bind(&c.secret_hash)
        .bind(serde_json::to_string(&c.redirect_uris).map_err(json_err)?)
        .bind(serde_json::to_string(&c.post_logout_redirect_uris).map_err(json_err)?)
        .bind(&c.backchannel_logout_uri)
        .bind(c.backchannel_logout_session_required)
        .bind(serde_json::to_string(&c.backchannel_logout_initiators).map_err(json_err)?)
        .bind(c.token_endpoint_auth_method.as_str())
        .bind(c.id_token_signed_response_alg.as_str())
        .bind(c.created_at.0)
        .bind(c.updated_at.0)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        let e =
            AuditEvent::new(kind::CLIENT_CREATED, actor, c.created_at, json!({ "name": c.name })).client(c.id.as_str());
        append_audit_in(&mut tx, &e).await?;
        audit_uri_change(&mut tx, &c.id, None, c.backchannel_logout_uri.as_deref(), actor, c.created_at).await?;
        tx.commit().await.map_err(backend)?;
        Ok(())
    }

    async fn update_client(&self, c: &Client, actor: &str, at: UnixMillis) -> StoreResult<Option<Client>> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(backend)?;
        let old = sqlx::query("SELECT * FROM clients WHERE id = ?")
            .bind(c.id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
        let Some(old) = old.as_ref().map(client_from_row).transpose()? else { return Ok(None) };
        sqlx::query(
            "UPDATE clients SET name = ?, secret_hash = ?, redirect_uris = ?, post_logout_redirect_uris = ?,
               backchannel_logout_uri = ?, backchannel_logout_session_required = ?, backchannel_logout_initiators = ?,
               token_endpoint_auth_method = ?, id_token_signed_response_alg = ?, updated_at = ?
             WHERE id = ?",
        )
        .bind(&c.name)
        .bind(&c.secret_hash)
        .bind(serde_json::to_string(&c.redirect_uris).map_err(json_err)?)
        .bind(serde_json::to_string(&c.post_logout_redirect_uris).map_err(json_err)?)
        .bind(&c.backchannel_logout_uri)
        .bind(c.backchannel_logout_session_required)
        .bind(serde_json::to_string(&c.backchannel_logout_initiators).map_err(json_err)?)
        .bind(c.token_endpoint_auth_method.as_str())
        .bind(c.id_token_signed_response_alg.as_str())
        .bind(at.0)
        .bind(c.id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        let e = AuditEvent::new(kind::CLIENT_UPDATED, actor, at, json!({})).client(c.id.as_str());
        append_audit_in(&mut tx, &e).await?;
        let (old_uri, new_uri) = (old.backchannel_logout_uri.as_deref(), c.backchannel_logout_uri.as_deref());
        audit_uri_change(&mut tx, &c.id, old_uri, new_uri, actor, at).await?;
        tx.commit().await.map_err(backend)?;
        Ok(Some(old))
    }

    async fn client_by_id(&self, id: &ClientId) -> StoreResult<Option<Client>> {
        let row = sqlx::query("SELECT * FROM clients WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(&self.reader)
            .await
            .map_err(backend)?;
        row.as_ref().map(client_from_row).transpose()
    }

    async fn clients_by_ids(&self, ids: &[ClientId]) -> StoreResult<Vec<Client>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids = serde_json::to_string(&ids.iter().map(ClientId::as_str).collect::<Vec<_>>()).map_err(json_err)?;
        let rows = sqlx::query("SELECT * FROM clients WHERE id IN (SELECT value FROM json_each(?))")
            .bind(ids)
            .fetch_all(&self.reader)
            .await
            .map_err(backend)?;
        rows.iter().map(client_from_row).collect()
    }

    async fn list_clients(&self) -> StoreResult<Vec<Client>> {
        let rows = sqlx::query("SELECT * FROM clients ORDER BY id").fetch_all(&self.reader).await.map_err(backend)?;
        rows.iter().map(client_from_row).collect()
    }

    async fn delete_client(&self, id: &ClientId, actor: &str, at: UnixMillis) -> StoreResult<bool> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(backend)?;
        let uri: Option<Option<String>> = sqlx::query_scalar("SELECT backchannel_logout_uri FROM clients WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
        let Some(uri) = uri else { return Ok(false) };
        audit_uri_change(&mut tx, id, uri.as_deref(), None, actor, at).await?;
        discard_deliveries_in(&mut tx, id, at).await?;
        let e = AuditEvent::new(kind::CLIENT_DELETED, actor, at, json!({})).client(id.as_str());
        append_audit_in(&mut tx, &e).await?;
        for stmt in [
            "DELETE FROM auth_codes WHERE client_id = ?",
            "DELETE FROM access_tokens WHERE client_id = ?",
            "DELETE FROM refresh_tokens WHERE client_id = ?",
            "DELETE FROM participations WHERE client_id = ?",
        ] {
            sqlx::query(stmt).bind(id.as_str()).execute(&mut *tx).await.map_err(backend)?;
        }
        let n = sqlx::query("DELETE FROM clients WHERE id = ?")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(backend)?
            .rows_affected();
        tx.commit().await.map_err(backend)?;
        Ok(n == 1)
    }
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn create_session(&self, s: &Session, cookie_hash: &str) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO sessions (id, user_id, cookie_hash, auth_time, created_at, last_seen_at, ended_at, end_reason)
             VALUES (?, ?, ?, ?, ?, ?, NULL, NULL)",
        )
        .bind(s.id.as_str())
        .bind(s.user_id.as_str())
        .bind(cookie_hash)
        .bind(s.auth_time.0)
        .bind(s.created_at.0)
        .bind(s.last_seen_at.0)
        .execute(&self.writer)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn session_by_cookie(&self, cookie_hash: &str) -> StoreResult<Option<Session>> {
        let row = sqlx::query("SELECT * FROM sessions WHERE cookie_hash = ?")
            .bind(cookie_hash)
            .fetch_optional(&self.reader)
            .await
            .map_err(backend)?;
        row.as_ref().map(session_from_row).transpose()
    }

    async fn session_by_id(&self, id: &SessionId) -> StoreResult<Option<Session>> {
        let row = sqlx::query("SELECT * FROM sessions WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(&self.reader)
            .await
            .map_err(backend)?;
        row.as_ref().map(session_from_row).transpose()
    }

    async fn touch_session(&self, id: &SessionId, at: UnixMillis) -> StoreResult<()> {
        sqlx::query("UPDATE sessions SET last_seen_at = MAX(last_seen_at, ?) WHERE id = ? AND ended_at IS NULL")
            .bind(at.0)
            .bind(id.as_str())
            .execute(&self.writer)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn reauthenticate_session(&self, id: &SessionId, cookie_hash: &str, at: UnixMillis) -> StoreResult<()> {
        sqlx::query(
            "UPDATE sessions SET cookie_hash = ?, auth_time = ?, last_seen_at = MAX(last_seen_at, ?) WHERE id = ? AND ended_at IS NULL",
        )
        .bind(cookie_hash)
        .bind(at.0)
        .bind(at.0)
        .bind(id.as_str())
        .execute(&self.writer)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn open_sessions_of_user(&self, user: &UserId) -> StoreResult<Vec<Session>> {
        let rows =
            sqlx::query("SELECT * FROM sessions WHERE user_id = ? AND ended_at IS NULL ORDER BY created_at DESC")
                .bind(user.as_str())
                .fetch_all(&self.reader)
                .await
                .map_err(backend)?;
        rows.iter().map(session_from_row).collect()
    }

    async fn ensure_participation(
        &self,
        session: &SessionId,
        client: &ClientId,
        new_sid: &Sid,
        at: UnixMillis,
    ) -> StoreResult<Participation> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(backend)?;
        sqlx::query(
            "INSERT INTO participations (session_id, client_id, sid, created_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (session_id, client_id) DO NOTHING",
        )
        .bind(session.as_str())
        .bind(client.as_str())
        .bind(new_sid.as_str())
        .bind(at.0)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        let row = sqlx::query("SELECT * FROM participations WHERE session_id = ? AND client_id = ?")
            .bind(session.as_str())
            .bind(client.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        participation_from_row(&row).map_err(backend)
    }

    async fn participation_by_sid(&self, sid: &Sid) -> StoreResult<Option<Participation>> {
        let row = sqlx::query("SELECT * FROM participations WHERE sid = ?")
            .bind(sid.as_str())
            .fetch_optional(&self.reader)
            .await
            .map_err(backend)?;
        row.as_ref().map(participation_from_row).transpose().map_err(backend)
    }

    async fn participations_of_sessions(&self, sessions: &[SessionId]) -> StoreResult<Vec<Participation>> {
        if sessions.is_empty() {
            return Ok(Vec::new());
        }
        let ids =
            serde_json::to_string(&sessions.iter().map(SessionId::as_str).collect::<Vec<_>>()).map_err(json_err)?;
        let rows = sqlx::query(
            "SELECT * FROM participations WHERE session_id IN (SELECT value FROM json_each(?))
             ORDER BY session_id, created_at, client_id",
        )
        .bind(ids)
        .fetch_all(&self.reader)
        .await
        .map_err(backend)?;
        rows.iter().map(participation_from_row).collect::<Result<_, _>>().map_err(backend)
    }

    async fn end_session_as(
        &self,
        id: &SessionId,
        initiator: Initiator,
        actor: &str,
        at: UnixMillis,
    ) -> StoreResult<Option<EndedSession>> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(backend)?;
        let ended = end_session_in(&mut tx, id, initiator, actor, at).await?;
        tx.commit().await.map_err(backend)?;
        Ok(ended)
    }

    async fn end_user_sessions(
        &self,
        user: &UserId,
        initiator: Initiator,
        actor: &str,
        at: UnixMillis,
    ) -> StoreResult<Vec<EndedSession>> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(backend)?;
        let ended = end_user_sessions_in(&mut tx, user, initiator, actor, at).await?;
        tx.commit().await.map_err(backend)?;
        Ok(ended)
    }

    async fn end_expired_sessions(
        &self,
        lifetime: SessionLifetime,
        now: UnixMillis,
        limit: u32,
    ) -> StoreResult<Vec<EndedSession>> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(backend)?;
        // Expired when `now` has reached the earlier of last use + idle and creation + absolute
        // (`Session::expires_at`); each side of the OR has its own partial index.
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM sessions WHERE ended_at IS NULL AND (last_seen_at <= ?1 OR created_at <= ?2)
             ORDER BY last_seen_at, id LIMIT ?3",
        )
        .bind(now.minus(lifetime.idle).0)
        .bind(now.minus(lifetime.absolute).0)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        let mut ended = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(e) =
                end_session_in(&mut tx, &SessionId::new(id), Initiator::SessionExpired, "system", now).await?
            {
                ended.push(e);
            }
        }
        tx.commit().await.map_err(backend)?;
        Ok(ended)
    }
}

#[async_trait]
impl GrantStore for SqliteStore {
    async fn put_pending_authorization(
        &self,
        id: &str,
        request: &PendingAuthorization,
        expires_at: UnixMillis,
    ) -> StoreResult<()> {
        sqlx::query("INSERT INTO pending_authorizations (id, request, expires_at) VALUES (?, ?, ?)")
            .bind(id)
            .bind(serde_json::to_string(request).map_err(json_err)?)
            .bind(expires_at.0)
            .execute(&self.writer)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn pending_authorization(&self, id: &str, now: UnixMillis) -> StoreResult<Option<PendingAuthorization>> {
        let json: Option<String> =
            sqlx::query_scalar("SELECT request FROM pending_authorizations WHERE id = ? AND expires_at > ?")
                .bind(id)
                .bind(now.0)
                .fetch_optional(&self.reader)
                .await
                .map_err(backend)?;
        json.map(|j| serde_json::from_str(&j).map_err(json_err)).transpose()
    }

    async fn delete_pending_authorization(&self, id: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM pending_authorizations WHERE id = ?")
            .bind(id)
            .execute(&self.writer)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn insert_code(&self, c: &AuthCode) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO auth_codes (code_hash, grant_id, client_id, redirect_uri, user_id, session_id, sid, scope, nonce,
               code_challenge, auth_time, created_at, expires_at, used_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)",
        )
        .bind(&c.code_hash)
        .bind(&c.grant_id)
        .bind(c.client_id.as_str())
        .bind(&c.redirect_uri)
        .bind(c.user_id.as_str())
        .bind(c.session_id.as_str())
        .bind(c.sid.as_str())
        .bind(&c.scope)
        .bind(&c.nonce)
        .bind(&c.code_challenge)
        .bind(c.auth_time.0)
        .bind(c.created_at.0)
        .bind(c.expires_at.0)
        .execute(&self.writer)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn code_by_hash(&self, code_hash: &str) -> StoreResult<Option<AuthCode>> {
        let row = sqlx::query("SELECT * FROM auth_codes WHERE code_hash = ?")
            .bind(code_hash)
            .fetch_optional(&self.reader)
            .await
            .map_err(backend)?;
        row.map(|r| code_from_row(&r).map_err(backend)).transpose()
    }

    async fn redeem_code(&self, code_hash: &str, at: UnixMillis) -> StoreResult<CodeRedemption> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(backend)?;
        let row = sqlx::query("SELECT * FROM auth_codes WHERE code_hash = ?")
            .bind(code_hash)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
        let Some(row) = row else { return Ok(CodeRedemption::Unknown) };
        let mut code = code_from_row(&row).map_err(backend)?;
        if code.used_at.is_some() {
            return Ok(CodeRedemption::AlreadyUsed(code));
        }
        sqlx::query("UPDATE auth_codes SET used_at = ? WHERE code_hash = ?")
            .bind(at.0)
            .bind(code_hash)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        code.used_at = Some(at);
        Ok(CodeRedemption::Redeemed(code))
    }

    async fn revoke_grant(&self, grant_id: &str, at: UnixMillis) -> StoreResult<u64> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(backend)?;
        sqlx::query(
            "INSERT INTO revoked_grants (grant_id, revoked_at) VALUES (?, ?) ON CONFLICT (grant_id) DO NOTHING",
        )
        .bind(grant_id)
        .bind(at.0)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        let mut n = 0;
        for stmt in [
            "UPDATE access_tokens SET revoked_at = ? WHERE grant_id = ? AND revoked_at IS NULL",
            "UPDATE refresh_tokens SET revoked_at = ? WHERE grant_id = ? AND revoked_at IS NULL",
        ] {
            n += sqlx::query(stmt).bind(at.0).bind(grant_id).execute(&mut *tx).await.map_err(backend)?.rows_affected();
        }
        tx.commit().await.map_err(backend)?;
        Ok(n)
    }

    async fn revoke_user_tokens(&self, user: &UserId, at: UnixMillis) -> StoreResult<u64> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(backend)?;
        let n = revoke_user_tokens_in(&mut tx, user, at).await?;
        tx.commit().await.map_err(backend)?;
        Ok(n)
    }

    async fn insert_access_token(&self, t: &AccessToken) -> StoreResult<()> {
        let mut conn = self.writer.acquire().await.map_err(backend)?;
        insert_access_in(&mut conn, t).await
    }

    async fn access_token(&self, token_hash: &str) -> StoreResult<Option<AccessToken>> {
        let row = sqlx::query("SELECT * FROM access_tokens WHERE token_hash = ?")
            .bind(token_hash)
            .fetch_optional(&self.reader)
            .await
            .map_err(backend)?;
        row.as_ref().map(access_from_row).transpose().map_err(backend)
    }

    async fn insert_refresh_token(&self, t: &RefreshToken) -> StoreResult<()> {
        let mut conn = self.writer.acquire().await.map_err(backend)?;
        insert_refresh_in(&mut conn, t).await
    }

    async fn issue_tokens(&self, access: &AccessToken, refresh: &RefreshToken) -> StoreResult<bool> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(backend)?;
        let revoked: Option<i64> = sqlx::query_scalar("SELECT revoked_at FROM revoked_grants WHERE grant_id = ?")
            .bind(&access.grant_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
        if revoked.is_some() {
            return Ok(false);
        }
        insert_access_in(&mut tx, access).await?;
        insert_refresh_in(&mut tx, refresh).await?;
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    async fn use_refresh_token(&self, token_hash: &str, client: &ClientId, at: UnixMillis) -> StoreResult<RefreshUse> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(backend)?;
        let row = sqlx::query("SELECT * FROM refresh_tokens WHERE token_hash = ?")
            .bind(token_hash)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
        let Some(row) = row else { return Ok(RefreshUse::Unknown) };
        let mut token = refresh_from_row(&row).map_err(backend)?;
        if token.client_id != *client {
            return Ok(RefreshUse::WrongClient);
        }
        if token.revoked_at.is_some() {
            return Ok(RefreshUse::Revoked(token));
        }
        if token.rotated_at.is_some() {
            return Ok(RefreshUse::Replayed(token));
        }
        sqlx::query("UPDATE refresh_tokens SET rotated_at = ? WHERE token_hash = ?")
            .bind(at.0)
            .bind(token_hash)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        token.rotated_at = Some(at);
        Ok(RefreshUse::Rotated(token))
    }

    async fn purge_expired(&self, now: UnixMillis) -> StoreResult<u64> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(backend)?;
        let mut n = 0;
        for stmt in [
            "DELETE FROM pending_authorizations WHERE expires_at <= ?",
            "DELETE FROM auth_codes WHERE expires_at <= ?",
            "DELETE FROM access_tokens WHERE expires_at <= ?",
            "DELETE FROM refresh_tokens WHERE expires_at <= ?",
            "DELETE FROM upstream_logins WHERE expires_at <= ?",
            "DELETE FROM rate_limits WHERE window_ends <= ?",
        ] {
            n += sqlx::query(stmt).bind(now.0).execute(&mut *tx).await.map_err(backend)?.rows_affected();
        }
        // A revoked grant is remembered only for tokens being issued while it was revoked.
        n += sqlx::query("DELETE FROM revoked_grants WHERE revoked_at <= ?")
            .bind(now.0 - REVOKED_GRANT_MEMORY_MS)
            .execute(&mut *tx)
            .await
            .map_err(backend)?
            .rows_affected();
        tx.commit().await.map_err(backend)?;
        Ok(n)
    }
}

#[async_trait]
impl Health for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        // A write, so that readiness fails while the database cannot write (disk full,
        // read-only file system) and recovers by itself once it can.
        sqlx::query(
            "INSERT INTO heartbeat (id, at) VALUES (1, CAST(unixepoch('subsec') * 1000 AS INTEGER))
             ON CONFLICT (id) DO UPDATE SET at = excluded.at",
        )
        .execute(&self.writer)
        .await
        .map_err(backend)?;
        Ok(())
    }
}

/// Inserts an access token on `conn` (inside the caller's transaction, if any).
async fn insert_access_in(conn: &mut SqliteConnection, t: &AccessToken) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO access_tokens (token_hash, grant_id, client_id, user_id, session_id, scope, offline, created_at, expires_at, revoked_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)",
    )
    .bind(&t.token_hash)
    .bind(&t.grant_id)
    .bind(t.client_id.as_str())
    .bind(t.user_id.as_str())
    .bind(t.session_id.as_str())
    .bind(&t.scope)
    .bind(t.offline)
    .bind(t.created_at.0)
    .bind(t.expires_at.0)
    .execute(&mut *conn)
    .await
    .map_err(backend)?;
    Ok(())
}

/// Inserts a refresh token on `conn` (inside the caller's transaction, if any).
async fn insert_refresh_in(conn: &mut SqliteConnection, t: &RefreshToken) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, grant_id, client_id, user_id, session_id, sid, scope, offline, auth_time,
           created_at, expires_at, rotated_at, revoked_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)",
    )
    .bind(&t.token_hash)
    .bind(&t.grant_id)
    .bind(t.client_id.as_str())
    .bind(t.user_id.as_str())
    .bind(t.session_id.as_str())
    .bind(t.sid.as_str())
    .bind(&t.scope)
    .bind(t.offline)
    .bind(t.auth_time.0)
    .bind(t.created_at.0)
    .bind(t.expires_at.0)
    .execute(&mut *conn)
    .await
    .map_err(backend)?;
    Ok(())
}

/// Records one attempt inside the caller's transaction.
async fn record_attempt_in(
    conn: &mut SqliteConnection,
    a: &Attempt,
    result: AttemptResult,
    reason: Option<&str>,
) -> StoreResult<bool> {
    let row = sqlx::query("SELECT * FROM deliveries WHERE id = ?")
        .bind(&a.delivery_id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(backend)?;
    let Some(row) = row else { return Ok(false) };
    let d = delivery_from_row(&row)?;
    let total: i64 = row.try_get("total_attempts").map_err(backend)?;
    sqlx::query(
        "INSERT OR REPLACE INTO delivery_attempts (delivery_id, number, at, latency_ms, http_status, error) VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(&a.delivery_id)
    .bind(total)
    .bind(a.at.0)
    .bind(i64::try_from(a.latency_ms).unwrap_or(i64::MAX))
    .bind(a.http_status.map(i64::from))
    .bind(&a.error)
    .execute(&mut *conn)
    .await
    .map_err(backend)?;
    if d.status != DeliveryStatus::Leased {
        // Discarded (client unsubscribed) or already finished by another worker: keep the record only.
        return Ok(false);
    }
    let now = a.at.plus(Duration::from_millis(a.latency_ms));
    let (status, next, audit_kind) = match result {
        AttemptResult::Delivered => ("delivered", None, None),
        AttemptResult::Rejected => ("rejected", None, Some(kind::DELIVERY_REJECTED)),
        AttemptResult::Retry { at } => ("pending", Some(at), Some(kind::DELIVERY_ATTEMPT_FAILED)),
        AttemptResult::Dead => ("dead", None, Some(kind::DELIVERY_DEAD)),
    };
    sqlx::query(
        "UPDATE deliveries SET status = ?, lease_until = NULL, next_attempt_at = COALESCE(?, next_attempt_at),
           finished_at = CASE WHEN ? = 'pending' THEN NULL ELSE ? END, last_error = COALESCE(?, last_error)
         WHERE id = ?",
    )
    .bind(status)
    .bind(next.map(|t| t.0))
    .bind(status)
    .bind(now.0)
    .bind(reason)
    .bind(&a.delivery_id)
    .execute(&mut *conn)
    .await
    .map_err(backend)?;
    if let Some(k) = audit_kind {
        let e = AuditEvent::new(
            k,
            "system",
            now,
            json!({
                "attempt": d.attempts,
                "http_status": a.http_status,
                "error": reason,
                "next_attempt_at": next.map(|t| t.0),
                "initiator": d.initiator.as_str(),
            }),
        )
        .client(d.client_id.as_str())
        .session(d.session_id.as_str())
        .user(d.sub.as_str())
        .delivery(d.id.as_str());
        append_audit_in(conn, &e).await?;
    }
    Ok(true)
}

#[async_trait]
impl DeliveryStore for SqliteStore {
    async fn claim_due(&self, c: &Claim<'_>) -> StoreResult<Vec<Delivery>> {
        let until = c.now.plus(c.lease);
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(backend)?;
        // Candidates, oldest first, through the two partial indexes: the cost follows the batch
        // size, not the queue length. A few more than needed, so per-client caps can skip some.
        // If the window is taken by clients that are excluded or already at their cap (a dead
        // application with a backlog), look again without them: one application's backlog must
        // never hide another's due deliveries (no head-of-line blocking). Until this claim commits,
        // the deliveries it chose are still due, so a later pass leaves them out by id: counted
        // again, they would take the place of others in the batch.
        // `INDEXED BY`: without statistics SQLite's planner prefers `deliveries_status` (an equality
        // on `status`), reads every pending row and sorts them; with a backlog of 60,000 that made
        // each claim cost ~4 ms (docs/benchmarks.md, scenario e). An unusable index is an error.
        let window = i64::from(c.limit).saturating_mul(4).max(64);
        let mut skip: Vec<String> = c.exclude_clients.iter().map(|x| x.as_str().to_owned()).collect();
        let mut per_client: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
        let mut chosen: Vec<String> = Vec::new();
        for _pass in 0..4 {
            let candidates = sqlx::query(
                "SELECT id, client_id FROM (
                   SELECT id, client_id, due FROM (
                     SELECT id, client_id, next_attempt_at AS due FROM deliveries INDEXED BY deliveries_due
                     WHERE status = 'pending' AND next_attempt_at <= ?1
                       AND client_id NOT IN (SELECT value FROM json_each(?3))
                       AND id NOT IN (SELECT value FROM json_each(?4))
                     ORDER BY next_attempt_at LIMIT ?2)
                   UNION ALL
                   SELECT id, client_id, due FROM (
                     SELECT id, client_id, lease_until AS due FROM deliveries INDEXED BY deliveries_leased
                     WHERE status = 'leased' AND lease_until <= ?1
                       AND client_id NOT IN (SELECT value FROM json_each(?3))
                       AND id NOT IN (SELECT value FROM json_each(?4))
                     ORDER BY lease_until LIMIT ?2))
                 ORDER BY due LIMIT ?2",
            )
            .bind(c.now.0)
            .bind(window)
            .bind(serde_json::to_string(&skip).map_err(json_err)?)
            .bind(serde_json::to_string(&chosen).map_err(json_err)?)
            .fetch_all(&mut *tx)
            .await
            .map_err(backend)?;
            let full_window = candidates.len() as i64 >= window;
            for row in &candidates {
                if chosen.len() >= c.limit as usize {
                    break;
                }
                let client: String = row.try_get("client_id").map_err(backend)?;
                let n = per_client.entry(client.clone()).or_default();
                if *n >= c.per_client_limit.max(1) {
                    if !skip.contains(&client) {
                        skip.push(client);
                    }
                    continue;
                }
                *n += 1;
                chosen.push(row.try_get("id").map_err(backend)?);
            }
            if chosen.len() >= c.limit as usize || !full_window {
                break;
            }
        }
        if chosen.is_empty() {
            return Ok(Vec::new());
        }
        let ids = serde_json::to_string(&chosen).map_err(json_err)?;
        let rows = sqlx::query(
            "UPDATE deliveries SET status = 'leased', lease_until = ?1, attempts = attempts + 1,
               total_attempts = total_attempts + 1
             WHERE id IN (SELECT value FROM json_each(?2)) RETURNING *",
        )
        .bind(until.0)
        .bind(ids)
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        let mut out: Vec<Delivery> = rows.iter().map(delivery_from_row).collect::<StoreResult<_>>()?;
        out.sort_by_key(|d| d.next_attempt_at);
        Ok(out)
    }

    async fn record_attempts(&self, batch: &[Recorded]) -> StoreResult<Vec<bool>> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(backend)?;
        let mut out = vec![false; batch.len()];
        // Deliveries (the common case) in two statements for the whole batch; failures one by one
        // (they also write audit events).
        let delivered: Vec<usize> = (0..batch.len()).filter(|&i| batch[i].result == AttemptResult::Delivered).collect();
        if !delivered.is_empty() {
            let items: Vec<serde_json::Value> = delivered
                .iter()
                .map(|&i| {
                    let a = &batch[i].attempt;
                    json!({"id": a.delivery_id, "at": a.at.0, "ms": a.latency_ms, "status": a.http_status})
                })
                .collect();
            let items = serde_json::Value::Array(items).to_string();
            sqlx::query(
                "INSERT OR REPLACE INTO delivery_attempts (delivery_id, number, at, latency_ms, http_status, error)
                 SELECT d.id, d.total_attempts, json_extract(j.value, '$.at'), json_extract(j.value, '$.ms'),
                        json_extract(j.value, '$.status'), NULL
                 FROM json_each(?1) j JOIN deliveries d ON d.id = json_extract(j.value, '$.id')",
            )
            .bind(&items)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
            let finished = delivered
                .iter()
                .map(|&i| batch[i].attempt.at.0 + batch[i].attempt.latency_ms as i64)
                .max()
                .unwrap_or(0);
            let updated: Vec<String> = sqlx::query_scalar(
                "UPDATE deliveries SET status = 'delivered', lease_until = NULL, finished_at = ?2
                 WHERE id IN (SELECT json_extract(value, '$.id') FROM json_each(?1)) AND status = 'leased'
                 RETURNING id",
            )
            .bind(&items)
            .bind(finished)
            .fetch_all(&mut *tx)
            .await
            .map_err(backend)?;
            let updated: std::collections::HashSet<String> = updated.into_iter().collect();
            for &i in &delivered {
                out[i] = updated.contains(&batch[i].attempt.delivery_id);
            }
        }
        for (i, r) in batch.iter().enumerate() {
            if r.result != AttemptResult::Delivered {
                out[i] = record_attempt_in(&mut tx, &r.attempt, r.result.clone(), r.reason.as_deref()).await?;
            }
        }
        tx.commit().await.map_err(backend)?;
        Ok(out)
    }

    async fn deliveries(&self, f: &DeliveryFilter) -> StoreResult<Vec<Delivery>> {
        let rows = sqlx::query(
            "SELECT * FROM deliveries
             WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR client_id = ?2) AND (?3 IS NULL OR session_id = ?3)
             ORDER BY created_at DESC, id LIMIT ?4",
        )
        .bind(f.status.map(|s| s.as_str()))
        .bind(f.client_id.as_ref().map(|c| c.as_str()))
        .bind(f.session_id.as_ref().map(|s| s.as_str()))
        .bind(i64::from(f.limit.unwrap_or(100).clamp(1, 1000)))
        .fetch_all(&self.reader)
        .await
        .map_err(backend)?;
        rows.iter().map(delivery_from_row).collect()
    }

    async fn delivery(&self, id: &str) -> StoreResult<Option<(Delivery, Vec<Attempt>)>> {
        let row = sqlx::query("SELECT * FROM deliveries WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.reader)
            .await
            .map_err(backend)?;
        let Some(row) = row else { return Ok(None) };
        let attempts = sqlx::query("SELECT * FROM delivery_attempts WHERE delivery_id = ? ORDER BY number")
            .bind(id)
            .fetch_all(&self.reader)
            .await
            .map_err(backend)?
            .iter()
            .map(attempt_from_row)
            .collect::<Result<Vec<_>, _>>()
            .map_err(backend)?;
        Ok(Some((delivery_from_row(&row)?, attempts)))
    }

    async fn retry_dead(&self, id: &str, actor: &str, at: UnixMillis) -> StoreResult<bool> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(backend)?;
        let row = sqlx::query(
            "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = ?1, round_started_at = ?1,
               finished_at = NULL
             WHERE id = ?2 AND status = 'dead' RETURNING *",
        )
        .bind(at.0)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
        let Some(row) = row else { return Ok(false) };
        let d = delivery_from_row(&row)?;
        let e = AuditEvent::new(kind::DELIVERY_RETRIED, actor, at, json!({}))
            .client(d.client_id.as_str())
            .session(d.session_id.as_str())
            .delivery(d.id.as_str());
        append_audit_in(&mut tx, &e).await?;
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    async fn release_leases(&self) -> StoreResult<u64> {
        Ok(sqlx::query("UPDATE deliveries SET status = 'pending', lease_until = NULL WHERE status = 'leased'")
            .execute(&self.writer)
            .await
            .map_err(backend)?
            .rows_affected())
    }

    async fn next_due(&self) -> StoreResult<Option<UnixMillis>> {
        // Through the partial indexes, as in `claim_due` (else a scan of every pending row).
        let t: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(t) FROM (
               SELECT MIN(next_attempt_at) AS t FROM deliveries INDEXED BY deliveries_due WHERE status = 'pending'
               UNION ALL
               SELECT MIN(lease_until) FROM deliveries INDEXED BY deliveries_leased WHERE status = 'leased')",
        )
        .fetch_one(&self.reader)
        .await
        .map_err(backend)?;
        Ok(t.map(UnixMillis))
    }

    async fn queue_stats(&self) -> StoreResult<QueueStats> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS depth, MIN(created_at) AS oldest FROM deliveries WHERE status IN ('pending', 'leased')",
        )
        .fetch_one(&self.reader)
        .await
        .map_err(backend)?;
        Ok(QueueStats {
            depth: u64::try_from(row.try_get::<i64, _>("depth").map_err(backend)?).unwrap_or(0),
            oldest_created_at: opt_ms(row.try_get("oldest").map_err(backend)?),
        })
    }
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn append_audit(&self, event: &AuditEvent) -> StoreResult<()> {
        let mut conn = self.writer.acquire().await.map_err(backend)?;
        append_audit_in(&mut conn, event).await
    }

    async fn audit_events(&self, f: &AuditFilter) -> StoreResult<Vec<AuditEvent>> {
        let (exact, prefix) = match &f.kind {
            Some(k) if k.ends_with('.') => (None, Some(format!("{k}%"))),
            Some(k) => (Some(k.clone()), None),
            None => (None, None),
        };
        let rows = sqlx::query(
            "SELECT * FROM audit_log
             WHERE (?1 IS NULL OR kind = ?1) AND (?2 IS NULL OR kind LIKE ?2) AND (?3 IS NULL OR client_id = ?3)
               AND (?4 IS NULL OR at >= ?4) AND (?5 IS NULL OR at < ?5)
             ORDER BY id DESC LIMIT ?6",
        )
        .bind(exact)
        .bind(prefix)
        .bind(&f.client_id)
        .bind(f.since.map(|t| t.0))
        .bind(f.until.map(|t| t.0))
        .bind(i64::from(f.limit.unwrap_or(100).clamp(1, 1000)))
        .fetch_all(&self.reader)
        .await
        .map_err(backend)?;
        rows.iter()
            .map(|r| {
                let detail: String = r.try_get("detail").map_err(backend)?;
                Ok(AuditEvent {
                    id: r.try_get("id").map_err(backend)?,
                    at: UnixMillis(r.try_get("at").map_err(backend)?),
                    kind: r.try_get("kind").map_err(backend)?,
                    actor: r.try_get("actor").map_err(backend)?,
                    client_id: r.try_get("client_id").map_err(backend)?,
                    user_id: r.try_get("user_id").map_err(backend)?,
                    session_id: r.try_get("session_id").map_err(backend)?,
                    delivery_id: r.try_get("delivery_id").map_err(backend)?,
                    detail: serde_json::from_str(&detail).map_err(json_err)?,
                })
            })
            .collect()
    }
}

#[async_trait]
impl ApiTokenStore for SqliteStore {
    async fn insert_api_token(&self, hash: &str, kind: ApiTokenKind, label: &str, at: UnixMillis) -> StoreResult<()> {
        sqlx::query("INSERT INTO api_tokens (hash, kind, label, created_at) VALUES (?, ?, ?, ?)")
            .bind(hash)
            .bind(kind.as_str())
            .bind(label)
            .bind(at.0)
            .execute(&self.writer)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn api_token_exists(&self, hash: &str, kind: ApiTokenKind) -> StoreResult<bool> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_tokens WHERE hash = ? AND kind = ?")
            .bind(hash)
            .bind(kind.as_str())
            .fetch_one(&self.reader)
            .await
            .map_err(backend)?;
        Ok(n > 0)
    }
}

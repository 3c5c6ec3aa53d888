//! OP sessions, participations, and ending a session: the one code path every initiator goes
//! through, inside the caller's transaction (the outbox).

use super::notify::notify_in;
use super::rows::{delivery_cols, participation_cols, session_cols};
use super::{PostgresStore, append_audit_in, backend, json_err, rows};
use adieu_core::audit::{AuditEvent, kind};
use adieu_core::id::{ClientId, SessionId, Sid, UserId};
use adieu_core::initiator::{Initiator, InitiatorSubscription};
use adieu_core::session::{EndedSession, Participation, Session, SessionLifetime};
use adieu_core::store::{SessionStore, StoreResult};
use adieu_core::time::UnixMillis;
use async_trait::async_trait;
use serde_json::json;
use sqlx::{PgConnection, Row};

/// Ends one session inside the caller's transaction: marks it ended, revokes its tokens that are
/// not `offline_access`, writes the deliveries (outbox) and audits `session.ended`. `None` if it
/// does not exist or had already ended.
pub(super) async fn end_session_in(
    conn: &mut PgConnection,
    id: &SessionId,
    initiator: Initiator,
    actor: &str,
    at: UnixMillis,
) -> StoreResult<Option<EndedSession>> {
    // The participants' clients first (KEY SHARE, id order): a concurrent update or deletion of one
    // of them (which locks it FOR UPDATE) then commits wholly before or after this logout, so the
    // subscriptions read below are the ones in force when the session ends.
    sqlx::query(
        "SELECT id FROM clients WHERE id IN (SELECT client_id FROM participations WHERE session_id = $1)
         ORDER BY id FOR KEY SHARE",
    )
    .bind(id.as_str())
    .fetch_all(&mut *conn)
    .await
    .map_err(backend)?;
    let row = sqlx::query(concat!(
        "UPDATE sessions SET ended_at = $1, end_reason = $2 WHERE id = $3 AND ended_at IS NULL RETURNING ",
        session_cols!()
    ))
    .bind(at.0)
    .bind(initiator.as_str())
    .bind(id.as_str())
    .fetch_optional(&mut *conn)
    .await
    .map_err(backend)?;
    let Some(row) = row else { return Ok(None) };
    let session = rows::session(&row)?;
    // BC-RT-01: tokens without offline_access die with the session; BC-RT-02: offline ones survive.
    let mut revoked = 0;
    for stmt in [
        "UPDATE refresh_tokens SET revoked_at = $1 WHERE session_id = $2 AND NOT offline AND revoked_at IS NULL",
        "UPDATE access_tokens SET revoked_at = $1 WHERE session_id = $2 AND NOT offline AND revoked_at IS NULL",
    ] {
        revoked +=
            sqlx::query(stmt).bind(at.0).bind(id.as_str()).execute(&mut *conn).await.map_err(backend)?.rows_affected();
    }
    let participations = sqlx::query(concat!(
        "SELECT ",
        participation_cols!(),
        " FROM participations WHERE session_id = $1 ORDER BY created_at, client_id"
    ))
    .bind(id.as_str())
    .fetch_all(&mut *conn)
    .await
    .map_err(backend)?
    .iter()
    .map(rows::participation)
    .collect::<StoreResult<Vec<_>>>()?;
    // The outbox: one delivery per participant that subscribes to this initiator.
    let subscribers = sqlx::query(
        "SELECT p.client_id, p.sid, c.backchannel_logout_initiators FROM participations p
         JOIN clients c ON c.id = p.client_id
         WHERE p.session_id = $1 AND c.backchannel_logout_uri IS NOT NULL
         ORDER BY p.created_at, p.client_id",
    )
    .bind(id.as_str())
    .fetch_all(&mut *conn)
    .await
    .map_err(backend)?;
    let (mut clients, mut sids) = (Vec::new(), Vec::new());
    for row in subscribers {
        let subscription: InitiatorSubscription =
            serde_json::from_str(&row.try_get::<String, _>("backchannel_logout_initiators").map_err(backend)?)
                .map_err(json_err)?;
        if subscription.subscribes(initiator) {
            clients.push(row.try_get::<String, _>("client_id").map_err(backend)?);
            sids.push(row.try_get::<String, _>("sid").map_err(backend)?);
        }
    }
    let mut deliveries = Vec::new();
    if !clients.is_empty() {
        let rows = sqlx::query(concat!(
            "INSERT INTO deliveries (id, session_id, client_id, sub, sid, initiator, status, attempts, total_attempts,
               next_attempt_at, lease_until, lease_owner, round_started_at, created_at, finished_at, last_error)
             SELECT replace(gen_random_uuid()::text, '-', ''), $1, t.client, $2, t.sid, $3, 'pending', 0, 0,
                    $4, NULL, NULL, $4, $4, NULL, NULL
             FROM unnest($5::text[], $6::text[]) AS t(client, sid)
             RETURNING ",
            delivery_cols!()
        ))
        .bind(id.as_str())
        .bind(session.user_id.as_str())
        .bind(initiator.as_str())
        .bind(at.0)
        .bind(&clients)
        .bind(&sids)
        .fetch_all(&mut *conn)
        .await
        .map_err(backend)?;
        for d in &rows {
            deliveries.push(rows::delivery(d)?);
        }
        deliveries.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        // Every replica's worker is woken at commit (not at all on rollback).
        notify_in(&mut *conn).await?;
    }
    let event = AuditEvent::new(
        kind::SESSION_ENDED,
        actor,
        at,
        json!({
            "initiator": initiator.as_str(),
            "participations": participations.len(),
            "deliveries": deliveries.len(),
            "revoked_tokens": revoked,
        }),
    )
    .user(session.user_id.as_str())
    .session(id.as_str());
    append_audit_in(conn, &event).await?;
    Ok(Some(EndedSession { session, participations, revoked_tokens: revoked, deliveries }))
}

/// Ends every open session of `user` inside the caller's transaction (locked first, oldest first).
pub(super) async fn end_user_sessions_in(
    conn: &mut PgConnection,
    user: &UserId,
    initiator: Initiator,
    actor: &str,
    at: UnixMillis,
) -> StoreResult<Vec<EndedSession>> {
    let open: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM sessions WHERE user_id = $1 AND ended_at IS NULL ORDER BY created_at, id FOR UPDATE",
    )
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
pub(super) async fn revoke_user_tokens_in(conn: &mut PgConnection, user: &UserId, at: UnixMillis) -> StoreResult<u64> {
    let mut n = 0;
    for stmt in [
        "UPDATE refresh_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
        "UPDATE access_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
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

#[async_trait]
impl SessionStore for PostgresStore {
    async fn create_session(&self, s: &Session, cookie_hash: &str) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO sessions (id, user_id, cookie_hash, auth_time, created_at, last_seen_at, ended_at, end_reason)
             VALUES ($1, $2, $3, $4, $5, $6, NULL, NULL)",
        )
        .bind(s.id.as_str())
        .bind(s.user_id.as_str())
        .bind(cookie_hash)
        .bind(s.auth_time.0)
        .bind(s.created_at.0)
        .bind(s.last_seen_at.0)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn session_by_cookie(&self, cookie_hash: &str) -> StoreResult<Option<Session>> {
        let row = sqlx::query(concat!("SELECT ", session_cols!(), " FROM sessions WHERE cookie_hash = $1"))
            .bind(cookie_hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.as_ref().map(rows::session).transpose()
    }

    async fn session_by_id(&self, id: &SessionId) -> StoreResult<Option<Session>> {
        let row = sqlx::query(concat!("SELECT ", session_cols!(), " FROM sessions WHERE id = $1"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.as_ref().map(rows::session).transpose()
    }

    async fn touch_session(&self, id: &SessionId, at: UnixMillis) -> StoreResult<()> {
        sqlx::query("UPDATE sessions SET last_seen_at = GREATEST(last_seen_at, $1) WHERE id = $2 AND ended_at IS NULL")
            .bind(at.0)
            .bind(id.as_str())
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn reauthenticate_session(&self, id: &SessionId, cookie_hash: &str, at: UnixMillis) -> StoreResult<()> {
        sqlx::query(
            "UPDATE sessions SET cookie_hash = $1, auth_time = $2, last_seen_at = GREATEST(last_seen_at, $2)
             WHERE id = $3 AND ended_at IS NULL",
        )
        .bind(cookie_hash)
        .bind(at.0)
        .bind(id.as_str())
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn open_sessions_of_user(&self, user: &UserId) -> StoreResult<Vec<Session>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            session_cols!(),
            " FROM sessions WHERE user_id = $1 AND ended_at IS NULL ORDER BY created_at DESC"
        ))
        .bind(user.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(rows::session).collect()
    }

    async fn participations_of_sessions(&self, sessions: &[SessionId]) -> StoreResult<Vec<Participation>> {
        if sessions.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = sessions.iter().map(SessionId::as_str).collect();
        let rows = sqlx::query(concat!(
            "SELECT ",
            participation_cols!(),
            " FROM participations WHERE session_id = ANY($1) ORDER BY session_id, created_at, client_id"
        ))
        .bind(&ids)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(rows::participation).collect()
    }

    async fn ensure_participation(
        &self,
        session: &SessionId,
        client: &ClientId,
        new_sid: &Sid,
        at: UnixMillis,
    ) -> StoreResult<Participation> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        // A concurrent insert of the same pair waits for the other to commit, then does nothing;
        // the SELECT (a new statement) sees the winner's row.
        sqlx::query(
            "INSERT INTO participations (session_id, client_id, sid, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (session_id, client_id) DO NOTHING",
        )
        .bind(session.as_str())
        .bind(client.as_str())
        .bind(new_sid.as_str())
        .bind(at.0)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        let row = sqlx::query(concat!(
            "SELECT ",
            participation_cols!(),
            " FROM participations WHERE session_id = $1 AND client_id = $2"
        ))
        .bind(session.as_str())
        .bind(client.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        rows::participation(&row)
    }

    async fn participation_by_sid(&self, sid: &Sid) -> StoreResult<Option<Participation>> {
        let row = sqlx::query(concat!("SELECT ", participation_cols!(), " FROM participations WHERE sid = $1"))
            .bind(sid.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.as_ref().map(rows::participation).transpose()
    }

    async fn end_session_as(
        &self,
        id: &SessionId,
        initiator: Initiator,
        actor: &str,
        at: UnixMillis,
    ) -> StoreResult<Option<EndedSession>> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
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
        let mut tx = self.pool.begin().await.map_err(backend)?;
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
        let mut tx = self.pool.begin().await.map_err(backend)?;
        // Expired when `now` has reached the earlier of last use + idle and creation + absolute
        // (`Session::expires_at`). SKIP LOCKED: sweepers on several replicas take disjoint batches,
        // and each session ends once.
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM sessions WHERE ended_at IS NULL AND (last_seen_at <= $1 OR created_at <= $2)
             ORDER BY last_seen_at, id LIMIT $3 FOR UPDATE SKIP LOCKED",
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

//! [`UpstreamStore`] for SQLite: pending upstream sign-ins, links from upstream accounts to local
//! users, and the upstream sign-in each session remembers (migration 0004).

use super::{SqliteStore, append_audit_in, backend, insert_user_in, user_from_row};
use adieu_core::audit::{AuditEvent, kind};
use adieu_core::id::SessionId;
use adieu_core::session::Session;
use adieu_core::store::{StoreError, StoreResult, UpstreamStore};
use adieu_core::time::UnixMillis;
use adieu_core::upstream::{PendingUpstreamLogin, UpstreamIdentity, UpstreamSessionQuery, UpstreamSignIn};
use adieu_core::user::User;
use async_trait::async_trait;
use serde_json::json;
use sqlx::Row;

#[async_trait]
impl UpstreamStore for SqliteStore {
    async fn put_upstream_login(&self, l: &PendingUpstreamLogin) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO upstream_logins (state_hash, upstream_id, nonce, code_verifier, request_id, created_at, expires_at)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&l.state_hash)
        .bind(&l.upstream_id)
        .bind(&l.nonce)
        .bind(&l.code_verifier)
        .bind(&l.request_id)
        .bind(l.created_at.0)
        .bind(l.expires_at.0)
        .execute(&self.writer)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn take_upstream_login(
        &self,
        state_hash: &str,
        now: UnixMillis,
    ) -> StoreResult<Option<PendingUpstreamLogin>> {
        // One statement: of two concurrent callbacks with the same state, only one gets the row.
        let row = sqlx::query("DELETE FROM upstream_logins WHERE state_hash = ? RETURNING *")
            .bind(state_hash)
            .fetch_optional(&self.writer)
            .await
            .map_err(backend)?;
        let Some(r) = row else { return Ok(None) };
        let login = PendingUpstreamLogin {
            state_hash: r.try_get("state_hash").map_err(backend)?,
            upstream_id: r.try_get("upstream_id").map_err(backend)?,
            nonce: r.try_get("nonce").map_err(backend)?,
            code_verifier: r.try_get("code_verifier").map_err(backend)?,
            request_id: r.try_get("request_id").map_err(backend)?,
            created_at: UnixMillis(r.try_get("created_at").map_err(backend)?),
            expires_at: UnixMillis(r.try_get("expires_at").map_err(backend)?),
        };
        Ok((now < login.expires_at).then_some(login))
    }

    async fn user_by_upstream(&self, issuer: &str, sub: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query(
            "SELECT users.* FROM upstream_identities JOIN users ON users.id = upstream_identities.user_id
             WHERE upstream_identities.issuer = ? AND upstream_identities.sub = ?",
        )
        .bind(issuer)
        .bind(sub)
        .fetch_optional(&self.reader)
        .await
        .map_err(backend)?;
        row.as_ref().map(user_from_row).transpose().map_err(backend)
    }

    async fn create_upstream_user(&self, u: &User, identity: &UpstreamIdentity, actor: &str) -> StoreResult<()> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(backend)?;
        let linked: Option<String> =
            sqlx::query_scalar("SELECT user_id FROM upstream_identities WHERE issuer = ? AND sub = ?")
                .bind(&identity.issuer)
                .bind(&identity.sub)
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?;
        if linked.is_some() {
            return Err(StoreError::Conflict("upstream_identity".into()));
        }
        let (username, email) = insert_user_in(&mut tx, u).await?;
        sqlx::query(
            "INSERT INTO upstream_identities (issuer, sub, user_id, upstream_id, created_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&identity.issuer)
        .bind(&identity.sub)
        .bind(u.id.as_str())
        .bind(&identity.upstream_id)
        .bind(u.created_at.0)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        let e = AuditEvent::new(
            kind::USER_CREATED,
            actor,
            u.created_at,
            json!({
                "username": username,
                "email": email,
                "upstream": identity.upstream_id,
                "upstream_issuer": identity.issuer,
            }),
        )
        .user(u.id.as_str());
        append_audit_in(&mut tx, &e).await?;
        tx.commit().await.map_err(backend)?;
        Ok(())
    }

    async fn create_upstream_session(&self, s: &Session, cookie_hash: &str, up: &UpstreamSignIn) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO sessions (id, user_id, cookie_hash, auth_time, created_at, last_seen_at, ended_at, end_reason,
                                   upstream_iss, upstream_sub, upstream_sid, upstream_auth_at)
             VALUES (?, ?, ?, ?, ?, ?, NULL, NULL, ?, ?, ?, ?)",
        )
        .bind(s.id.as_str())
        .bind(s.user_id.as_str())
        .bind(cookie_hash)
        .bind(s.auth_time.0)
        .bind(s.created_at.0)
        .bind(s.last_seen_at.0)
        .bind(&up.issuer)
        .bind(&up.sub)
        .bind(&up.sid)
        .bind(up.at.0)
        .execute(&self.writer)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn reauthenticate_upstream_session(
        &self,
        id: &SessionId,
        cookie_hash: &str,
        up: &UpstreamSignIn,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE sessions SET cookie_hash = ?, auth_time = ?, last_seen_at = MAX(last_seen_at, ?),
                    upstream_iss = ?, upstream_sub = ?, upstream_sid = ?, upstream_auth_at = ?
             WHERE id = ? AND ended_at IS NULL",
        )
        .bind(cookie_hash)
        .bind(up.at.0)
        .bind(up.at.0)
        .bind(&up.issuer)
        .bind(&up.sub)
        .bind(&up.sid)
        .bind(up.at.0)
        .bind(id.as_str())
        .execute(&self.writer)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn upstream_sessions(&self, q: &UpstreamSessionQuery) -> StoreResult<Vec<SessionId>> {
        let ids: Vec<String> = match q {
            UpstreamSessionQuery::Session { issuer, sid, sub } => sqlx::query_scalar(
                "SELECT id FROM sessions
                 WHERE ended_at IS NULL AND upstream_iss = ?1 AND upstream_sid = ?2
                   AND (?3 IS NULL OR upstream_sub = ?3)
                 ORDER BY created_at, id",
            )
            .bind(issuer)
            .bind(sid)
            .bind(sub)
            .fetch_all(&self.reader)
            .await
            .map_err(backend)?,
            UpstreamSessionQuery::Subject { issuer, sub, signed_in_before } => sqlx::query_scalar(
                "SELECT id FROM sessions
                 WHERE ended_at IS NULL AND upstream_iss = ? AND upstream_sub = ? AND upstream_auth_at < ?
                 ORDER BY created_at, id",
            )
            .bind(issuer)
            .bind(sub)
            .bind(signed_in_before.0)
            .fetch_all(&self.reader)
            .await
            .map_err(backend)?,
        };
        Ok(ids.into_iter().map(SessionId::new).collect())
    }
}

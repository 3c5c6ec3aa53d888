//! Upstream providers: pending upstream sign-ins, links from upstream accounts to local users, and
//! the upstream sign-in each session remembers (migration 0004).

use super::audit::append_audit_in;
use super::rows::{self, user_cols};
use super::sessions::insert_session_in;
use super::users::insert_user_in;
use super::{Dialect, Read, Sql, SqlStore, commit};
use adieu_core::audit::{AuditEvent, AuditKind};
use adieu_core::id::SessionId;
use adieu_core::session::Session;
use adieu_core::store::{StoreError, StoreResult, UpstreamStore};
use adieu_core::time::UnixMillis;
use adieu_core::upstream::{PendingUpstreamLogin, UpstreamIdentity, UpstreamSessionQuery, UpstreamSignIn};
use adieu_core::user::User;
use async_trait::async_trait;
use serde_json::json;

/// A pending upstream sign-in from its row.
fn pending_login(r: &impl Read) -> StoreResult<PendingUpstreamLogin> {
    Ok(PendingUpstreamLogin {
        state_hash: r.text("state_hash")?,
        upstream_id: r.text("upstream_id")?,
        nonce: r.text("nonce")?,
        code_verifier: r.text("code_verifier")?,
        request_id: r.opt_text("request_id")?,
        created_at: r.ms("created_at")?,
        expires_at: r.ms("expires_at")?,
    })
}

/// Links the upstream account `identity` to the new user `u` inside the caller's transaction.
/// A concurrent first sign-in of the same upstream account (another replica) may have passed the
/// caller's check too: the primary key decides, and the loser reports the link as taken.
async fn insert_identity_in<D: Dialect>(
    conn: &mut D::Connection,
    u: &User,
    identity: &UpstreamIdentity,
) -> StoreResult<()> {
    Sql::new(
        "INSERT INTO upstream_identities (issuer, sub, user_id, upstream_id, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&identity.issuer)
    .bind(&identity.sub)
    .bind(u.id.as_str())
    .bind(&identity.upstream_id)
    .bind(u.created_at)
    .execute::<D>(conn)
    .await
    .map_err(|e| match e {
        StoreError::Conflict(_) => StoreError::Conflict("upstream_identity".into()),
        e => e,
    })?;
    Ok(())
}

/// Whether the upstream account `identity` is already linked to a local user.
async fn identity_linked_in<D: Dialect>(conn: &mut D::Connection, identity: &UpstreamIdentity) -> StoreResult<bool> {
    let row = Sql::new("SELECT user_id FROM upstream_identities WHERE issuer = $1 AND sub = $2")
        .bind(&identity.issuer)
        .bind(&identity.sub)
        .fetch_optional::<D>(conn)
        .await?;
    Ok(row.is_some())
}

#[async_trait]
impl<D: Dialect> UpstreamStore for SqlStore<D> {
    async fn put_upstream_login(&self, l: &PendingUpstreamLogin) -> StoreResult<()> {
        Sql::new(
            "INSERT INTO upstream_logins (state_hash, upstream_id, nonce, code_verifier, request_id, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&l.state_hash)
        .bind(&l.upstream_id)
        .bind(&l.nonce)
        .bind(&l.code_verifier)
        .bind(&l.request_id)
        .bind(l.created_at)
        .bind(l.expires_at)
        .execute::<D>(&mut *self.writer().await?)
        .await?;
        Ok(())
    }

    async fn take_upstream_login(
        &self,
        state_hash: &str,
        now: UnixMillis,
    ) -> StoreResult<Option<PendingUpstreamLogin>> {
        // One statement: of two concurrent callbacks with the same state, only one gets the row.
        let row = Sql::new(
            "DELETE FROM upstream_logins WHERE state_hash = $1
             RETURNING state_hash, upstream_id, nonce, code_verifier, request_id, created_at, expires_at",
        )
        .bind(state_hash)
        .fetch_optional::<D>(&mut *self.writer().await?)
        .await?;
        let Some(login) = row.as_ref().map(pending_login).transpose()? else { return Ok(None) };
        Ok((now < login.expires_at).then_some(login))
    }

    async fn user_by_upstream(&self, issuer: &str, sub: &str) -> StoreResult<Option<User>> {
        let row = Sql::new(concat!(
            "SELECT ",
            user_cols!(),
            " FROM users WHERE id = (SELECT user_id FROM upstream_identities WHERE issuer = $1 AND sub = $2)"
        ))
        .bind(issuer)
        .bind(sub)
        .fetch_optional::<D>(&mut *self.read().await?)
        .await?;
        row.as_ref().map(rows::user).transpose()
    }

    async fn create_upstream_user(&self, u: &User, identity: &UpstreamIdentity, actor: &str) -> StoreResult<()> {
        let mut tx = self.write().await?;
        if identity_linked_in::<D>(&mut *tx, identity).await? {
            return Err(StoreError::Conflict("upstream_identity".into()));
        }
        let (username, email) = insert_user_in::<D>(&mut *tx, u).await?;
        insert_identity_in::<D>(&mut *tx, u, identity).await?;
        let e = AuditEvent::new(
            AuditKind::UserCreated,
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
        append_audit_in::<D>(&mut *tx, &e).await?;
        commit::<D>(tx).await
    }

    async fn create_upstream_session(&self, s: &Session, cookie_hash: &str, up: &UpstreamSignIn) -> StoreResult<()> {
        insert_session_in::<D>(&mut *self.writer().await?, s, cookie_hash, Some(up)).await
    }

    async fn reauthenticate_upstream_session(
        &self,
        id: &SessionId,
        cookie_hash: &str,
        up: &UpstreamSignIn,
    ) -> StoreResult<()> {
        // `CASE` for the larger of two values: `GREATEST` is PostgreSQL's, two-argument `max` SQLite's.
        Sql::new(
            "UPDATE sessions SET cookie_hash = $1, auth_time = $2,
                    last_seen_at = CASE WHEN last_seen_at > $2 THEN last_seen_at ELSE $2 END,
                    upstream_iss = $3, upstream_sub = $4, upstream_sid = $5, upstream_auth_at = $2
             WHERE id = $6 AND ended_at IS NULL",
        )
        .bind(cookie_hash)
        .bind(up.at)
        .bind(&up.issuer)
        .bind(&up.sub)
        .bind(&up.sid)
        .bind(id.as_str())
        .execute::<D>(&mut *self.writer().await?)
        .await?;
        Ok(())
    }

    async fn upstream_sessions(&self, q: &UpstreamSessionQuery) -> StoreResult<Vec<SessionId>> {
        let query = match q {
            UpstreamSessionQuery::Session { issuer, sid, sub } => Sql::new(
                "SELECT id FROM sessions
                 WHERE ended_at IS NULL AND upstream_iss = $1 AND upstream_sid = $2
                   AND (CAST($3 AS TEXT) IS NULL OR upstream_sub = $3)
                 ORDER BY created_at, id",
            )
            .bind(issuer)
            .bind(sid)
            .bind(sub),
            UpstreamSessionQuery::Subject { issuer, sub, signed_in_before } => Sql::new(
                "SELECT id FROM sessions
                 WHERE ended_at IS NULL AND upstream_iss = $1 AND upstream_sub = $2 AND upstream_auth_at < $3
                 ORDER BY created_at, id",
            )
            .bind(issuer)
            .bind(sub)
            .bind(*signed_in_before),
        };
        let ids = query.fetch_texts::<D>(&mut *self.read().await?, "id").await?;
        Ok(ids.into_iter().map(SessionId::new).collect())
    }
}

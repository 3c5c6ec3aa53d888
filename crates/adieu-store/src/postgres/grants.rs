//! Codes, tokens and pending sign-in requests.

use super::rows::{access_cols, code_cols, refresh_cols};
use super::sessions::revoke_user_tokens_in;
use super::{PostgresStore, backend, json_err, rows};
use crate::REVOKED_GRANT_MEMORY_MS;
use adieu_core::grant::{AccessToken, AuthCode, PendingAuthorization, RefreshToken};
use adieu_core::id::{ClientId, UserId};
use adieu_core::store::{CodeRedemption, GrantStore, RefreshUse, StoreResult};
use adieu_core::time::UnixMillis;
use async_trait::async_trait;
use sqlx::PgConnection;

#[async_trait]
impl GrantStore for PostgresStore {
    async fn put_pending_authorization(
        &self,
        id: &str,
        request: &PendingAuthorization,
        expires_at: UnixMillis,
    ) -> StoreResult<()> {
        sqlx::query("INSERT INTO pending_authorizations (id, request, expires_at) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(serde_json::to_string(request).map_err(json_err)?)
            .bind(expires_at.0)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn pending_authorization(&self, id: &str, now: UnixMillis) -> StoreResult<Option<PendingAuthorization>> {
        let json: Option<String> =
            sqlx::query_scalar("SELECT request FROM pending_authorizations WHERE id = $1 AND expires_at > $2")
                .bind(id)
                .bind(now.0)
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?;
        json.map(|j| serde_json::from_str(&j).map_err(json_err)).transpose()
    }

    async fn delete_pending_authorization(&self, id: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM pending_authorizations WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn insert_code(&self, c: &AuthCode) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO auth_codes (code_hash, grant_id, client_id, redirect_uri, user_id, session_id, sid, scope, nonce,
               code_challenge, auth_time, created_at, expires_at, used_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, NULL)",
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
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn code_by_hash(&self, code_hash: &str) -> StoreResult<Option<AuthCode>> {
        let row = sqlx::query(concat!("SELECT ", code_cols!(), " FROM auth_codes WHERE code_hash = $1"))
            .bind(code_hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.as_ref().map(rows::code).transpose()
    }

    async fn redeem_code(&self, code_hash: &str, at: UnixMillis) -> StoreResult<CodeRedemption> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        // FOR UPDATE: concurrent redeemers queue here; the second one sees `used_at`.
        let row = sqlx::query(concat!("SELECT ", code_cols!(), " FROM auth_codes WHERE code_hash = $1 FOR UPDATE"))
            .bind(code_hash)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
        let Some(row) = row else { return Ok(CodeRedemption::Unknown) };
        let mut code = rows::code(&row)?;
        if code.used_at.is_some() {
            return Ok(CodeRedemption::AlreadyUsed(code));
        }
        sqlx::query("UPDATE auth_codes SET used_at = $1 WHERE code_hash = $2")
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
        let mut tx = self.pool.begin().await.map_err(backend)?;
        lock_grant(&mut tx, grant_id).await?;
        sqlx::query(
            "INSERT INTO revoked_grants (grant_id, revoked_at) VALUES ($1, $2) ON CONFLICT (grant_id) DO NOTHING",
        )
        .bind(grant_id)
        .bind(at.0)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        let mut n = 0;
        // Refresh before access, the order every transaction uses.
        for stmt in [
            "UPDATE refresh_tokens SET revoked_at = $1 WHERE grant_id = $2 AND revoked_at IS NULL",
            "UPDATE access_tokens SET revoked_at = $1 WHERE grant_id = $2 AND revoked_at IS NULL",
        ] {
            n += sqlx::query(stmt).bind(at.0).bind(grant_id).execute(&mut *tx).await.map_err(backend)?.rows_affected();
        }
        tx.commit().await.map_err(backend)?;
        Ok(n)
    }

    async fn revoke_user_tokens(&self, user: &UserId, at: UnixMillis) -> StoreResult<u64> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let n = revoke_user_tokens_in(&mut tx, user, at).await?;
        tx.commit().await.map_err(backend)?;
        Ok(n)
    }

    async fn insert_access_token(&self, t: &AccessToken) -> StoreResult<()> {
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        insert_access_in(&mut conn, t).await
    }

    async fn access_token(&self, token_hash: &str) -> StoreResult<Option<AccessToken>> {
        let row = sqlx::query(concat!("SELECT ", access_cols!(), " FROM access_tokens WHERE token_hash = $1"))
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.as_ref().map(rows::access).transpose()
    }

    async fn insert_refresh_token(&self, t: &RefreshToken) -> StoreResult<()> {
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        insert_refresh_in(&mut conn, t).await
    }

    async fn issue_tokens(&self, access: &AccessToken, refresh: &RefreshToken) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        lock_grant(&mut tx, &access.grant_id).await?;
        let revoked: Option<i64> = sqlx::query_scalar("SELECT revoked_at FROM revoked_grants WHERE grant_id = $1")
            .bind(&access.grant_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
        if revoked.is_some() {
            return Ok(false);
        }
        insert_refresh_in(&mut tx, refresh).await?;
        insert_access_in(&mut tx, access).await?;
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    async fn use_refresh_token(&self, token_hash: &str, client: &ClientId, at: UnixMillis) -> StoreResult<RefreshUse> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        // FOR UPDATE: concurrent rotations queue here; first use wins, the others see a replay.
        let row =
            sqlx::query(concat!("SELECT ", refresh_cols!(), " FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE"))
                .bind(token_hash)
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?;
        let Some(row) = row else { return Ok(RefreshUse::Unknown) };
        let mut token = rows::refresh(&row)?;
        if token.client_id != *client {
            return Ok(RefreshUse::WrongClient);
        }
        if token.revoked_at.is_some() {
            return Ok(RefreshUse::Revoked(token));
        }
        if token.rotated_at.is_some() {
            return Ok(RefreshUse::Replayed(token));
        }
        sqlx::query("UPDATE refresh_tokens SET rotated_at = $1 WHERE token_hash = $2")
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
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let mut n = 0;
        for stmt in [
            "DELETE FROM pending_authorizations WHERE expires_at <= $1",
            "DELETE FROM auth_codes WHERE expires_at <= $1",
            "DELETE FROM refresh_tokens WHERE expires_at <= $1",
            "DELETE FROM access_tokens WHERE expires_at <= $1",
            "DELETE FROM upstream_logins WHERE expires_at <= $1",
            "DELETE FROM rate_limits WHERE window_ends <= $1",
        ] {
            n += sqlx::query(stmt).bind(now.0).execute(&mut *tx).await.map_err(backend)?.rows_affected();
        }
        // A revoked grant is remembered only for tokens being issued while it was revoked.
        n += sqlx::query("DELETE FROM revoked_grants WHERE revoked_at <= $1")
            .bind(now.0 - REVOKED_GRANT_MEMORY_MS)
            .execute(&mut *tx)
            .await
            .map_err(backend)?
            .rows_affected();
        tx.commit().await.map_err(backend)?;
        Ok(n)
    }
}

/// Serialises the transactions that revoke a grant and those that issue tokens for it, for the
/// rest of the caller's transaction (an advisory lock keyed by the grant id): whichever commits
/// second sees the other's rows.
async fn lock_grant(conn: &mut PgConnection, grant_id: &str) -> StoreResult<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('adieu.grant.' || $1, 0))")
        .bind(grant_id)
        .execute(&mut *conn)
        .await
        .map_err(backend)?;
    Ok(())
}

/// Inserts an access token on `conn` (inside the caller's transaction, if any).
async fn insert_access_in(conn: &mut PgConnection, t: &AccessToken) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO access_tokens (token_hash, grant_id, client_id, user_id, session_id, scope, offline, created_at,
           expires_at, revoked_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL)",
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
async fn insert_refresh_in(conn: &mut PgConnection, t: &RefreshToken) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, grant_id, client_id, user_id, session_id, sid, scope, offline,
           auth_time, created_at, expires_at, rotated_at, revoked_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL, NULL)",
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

//! Codes, tokens and pending sign-in requests: one-time redemption and rotation (row locks), and
//! the ordering of token issue against revocation of a grant ([`Dialect::lock_grant`]).
//!
//! Transactions that touch both token tables go refresh before access, the order every
//! transaction uses.

use super::rows::{self, access_cols, code_cols, refresh_cols};
use super::sessions::revoke_user_tokens_in;
use super::stmt::to_json;
use super::{Dialect, Read, Sql, SqlStore, commit};
use crate::REVOKED_GRANT_MEMORY_MS;
use adieu_core::grant::{AccessToken, AuthCode, PendingAuthorization, RefreshToken};
use adieu_core::id::{ClientId, UserId};
use adieu_core::store::{CodeRedemption, GrantStore, RefreshUse, StoreResult};
use adieu_core::time::UnixMillis;
use async_trait::async_trait;

/// Inserts an access token on `conn` (inside the caller's transaction, if any).
async fn insert_access_in<D: Dialect>(conn: &mut D::Connection, t: &AccessToken) -> StoreResult<()> {
    Sql::new(
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
    .bind(t.created_at)
    .bind(t.expires_at)
    .execute::<D>(conn)
    .await?;
    Ok(())
}

/// Inserts a refresh token on `conn` (inside the caller's transaction, if any).
async fn insert_refresh_in<D: Dialect>(conn: &mut D::Connection, t: &RefreshToken) -> StoreResult<()> {
    Sql::new(
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
    .bind(t.auth_time)
    .bind(t.created_at)
    .bind(t.expires_at)
    .execute::<D>(conn)
    .await?;
    Ok(())
}

/// Remembers `grant_id` as revoked and revokes its live tokens (refresh before access) inside the
/// caller's transaction, which holds the grant's lock; returns how many tokens were revoked.
async fn revoke_grant_in<D: Dialect>(conn: &mut D::Connection, grant_id: &str, at: UnixMillis) -> StoreResult<u64> {
    Sql::new("INSERT INTO revoked_grants (grant_id, revoked_at) VALUES ($1, $2) ON CONFLICT (grant_id) DO NOTHING")
        .bind(grant_id)
        .bind(at)
        .execute::<D>(&mut *conn)
        .await?;
    let mut n = 0;
    for stmt in [
        "UPDATE refresh_tokens SET revoked_at = $1 WHERE grant_id = $2 AND revoked_at IS NULL",
        "UPDATE access_tokens SET revoked_at = $1 WHERE grant_id = $2 AND revoked_at IS NULL",
    ] {
        n += Sql::new(stmt).bind(at).bind(grant_id).execute::<D>(&mut *conn).await?;
    }
    Ok(n)
}

/// Whether `grant_id` is remembered as revoked (read inside the caller's transaction, after the
/// grant's lock).
async fn grant_revoked_in<D: Dialect>(conn: &mut D::Connection, grant_id: &str) -> StoreResult<bool> {
    let row = Sql::new("SELECT revoked_at FROM revoked_grants WHERE grant_id = $1")
        .bind(grant_id)
        .fetch_optional::<D>(conn)
        .await?;
    Ok(row.is_some())
}

#[async_trait]
impl<D: Dialect> GrantStore for SqlStore<D> {
    async fn put_pending_authorization(
        &self,
        id: &str,
        request: &PendingAuthorization,
        expires_at: UnixMillis,
    ) -> StoreResult<()> {
        Sql::new("INSERT INTO pending_authorizations (id, request, expires_at) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(to_json(request)?)
            .bind(expires_at)
            .execute::<D>(&mut *self.writer().await?)
            .await?;
        Ok(())
    }

    async fn pending_authorization(&self, id: &str, now: UnixMillis) -> StoreResult<Option<PendingAuthorization>> {
        let row = Sql::new("SELECT request FROM pending_authorizations WHERE id = $1 AND expires_at > $2")
            .bind(id)
            .bind(now)
            .fetch_optional::<D>(&mut *self.read().await?)
            .await?;
        row.map(|r| r.json("request")).transpose()
    }

    async fn delete_pending_authorization(&self, id: &str) -> StoreResult<()> {
        Sql::new("DELETE FROM pending_authorizations WHERE id = $1")
            .bind(id)
            .execute::<D>(&mut *self.writer().await?)
            .await?;
        Ok(())
    }

    async fn take_pending_authorization(&self, id: &str, now: UnixMillis) -> StoreResult<Option<PendingAuthorization>> {
        let row = Sql::new("DELETE FROM pending_authorizations WHERE id = $1 AND expires_at > $2 RETURNING request")
            .bind(id)
            .bind(now)
            .fetch_optional::<D>(&mut *self.writer().await?)
            .await?;
        row.map(|r| r.json("request")).transpose()
    }

    async fn insert_code(&self, c: &AuthCode) -> StoreResult<()> {
        Sql::new(
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
        .bind(c.auth_time)
        .bind(c.created_at)
        .bind(c.expires_at)
        .execute::<D>(&mut *self.writer().await?)
        .await?;
        Ok(())
    }

    async fn code_by_hash(&self, code_hash: &str) -> StoreResult<Option<AuthCode>> {
        let row = Sql::new(concat!("SELECT ", code_cols!(), " FROM auth_codes WHERE code_hash = $1"))
            .bind(code_hash)
            .fetch_optional::<D>(&mut *self.read().await?)
            .await?;
        row.as_ref().map(rows::code).transpose()
    }

    async fn redeem_code(&self, code_hash: &str, at: UnixMillis) -> StoreResult<CodeRedemption> {
        let mut tx = self.write().await?;
        // FOR UPDATE: concurrent redeemers queue here; the second one sees `used_at`.
        let row = Sql::new(format!("SELECT {} FROM auth_codes WHERE code_hash = $1{}", code_cols!(), D::FOR_UPDATE))
            .bind(code_hash)
            .fetch_optional::<D>(&mut *tx)
            .await?;
        let Some(mut code) = row.as_ref().map(rows::code).transpose()? else { return Ok(CodeRedemption::Unknown) };
        if code.used_at.is_some() {
            return Ok(CodeRedemption::AlreadyUsed(code));
        }
        Sql::new("UPDATE auth_codes SET used_at = $1 WHERE code_hash = $2")
            .bind(at)
            .bind(code_hash)
            .execute::<D>(&mut *tx)
            .await?;
        commit::<D>(tx).await?;
        code.used_at = Some(at);
        Ok(CodeRedemption::Redeemed(code))
    }

    async fn revoke_grant(&self, grant_id: &str, at: UnixMillis) -> StoreResult<u64> {
        let mut tx = self.write().await?;
        D::lock_grant(&mut *tx, grant_id).await?;
        let n = revoke_grant_in::<D>(&mut *tx, grant_id, at).await?;
        commit::<D>(tx).await?;
        Ok(n)
    }

    async fn revoke_user_tokens(&self, user: &UserId, at: UnixMillis) -> StoreResult<u64> {
        let mut tx = self.write().await?;
        let n = revoke_user_tokens_in::<D>(&mut *tx, user, at).await?;
        commit::<D>(tx).await?;
        Ok(n)
    }

    async fn insert_access_token(&self, t: &AccessToken) -> StoreResult<()> {
        insert_access_in::<D>(&mut *self.writer().await?, t).await
    }

    async fn access_token(&self, token_hash: &str) -> StoreResult<Option<AccessToken>> {
        let row = Sql::new(concat!("SELECT ", access_cols!(), " FROM access_tokens WHERE token_hash = $1"))
            .bind(token_hash)
            .fetch_optional::<D>(&mut *self.read().await?)
            .await?;
        row.as_ref().map(rows::access).transpose()
    }

    async fn refresh_token(&self, token_hash: &str) -> StoreResult<Option<RefreshToken>> {
        let row = Sql::new(concat!("SELECT ", refresh_cols!(), " FROM refresh_tokens WHERE token_hash = $1"))
            .bind(token_hash)
            .fetch_optional::<D>(&mut *self.read().await?)
            .await?;
        row.as_ref().map(rows::refresh).transpose()
    }

    async fn revoke_access_token(&self, token_hash: &str, at: UnixMillis) -> StoreResult<bool> {
        let n = Sql::new("UPDATE access_tokens SET revoked_at = $1 WHERE token_hash = $2 AND revoked_at IS NULL")
            .bind(at)
            .bind(token_hash)
            .execute::<D>(&mut *self.writer().await?)
            .await?;
        Ok(n > 0)
    }

    async fn insert_refresh_token(&self, t: &RefreshToken) -> StoreResult<()> {
        insert_refresh_in::<D>(&mut *self.writer().await?, t).await
    }

    async fn issue_tokens(&self, access: &AccessToken, refresh: &RefreshToken) -> StoreResult<bool> {
        let mut tx = self.write().await?;
        // Whichever of this and a revocation of the grant commits second sees the other's rows.
        D::lock_grant(&mut *tx, &access.grant_id).await?;
        if grant_revoked_in::<D>(&mut *tx, &access.grant_id).await? {
            return Ok(false);
        }
        insert_refresh_in::<D>(&mut *tx, refresh).await?;
        insert_access_in::<D>(&mut *tx, access).await?;
        commit::<D>(tx).await?;
        Ok(true)
    }

    async fn use_refresh_token(&self, token_hash: &str, client: &ClientId, at: UnixMillis) -> StoreResult<RefreshUse> {
        let mut tx = self.write().await?;
        // FOR UPDATE: concurrent rotations queue here; first use wins, the others see a replay.
        let sql = format!("SELECT {} FROM refresh_tokens WHERE token_hash = $1{}", refresh_cols!(), D::FOR_UPDATE);
        let row = Sql::new(sql).bind(token_hash).fetch_optional::<D>(&mut *tx).await?;
        let Some(mut token) = row.as_ref().map(rows::refresh).transpose()? else { return Ok(RefreshUse::Unknown) };
        if token.client_id != *client {
            return Ok(RefreshUse::WrongClient);
        }
        if token.revoked_at.is_some() {
            return Ok(RefreshUse::Revoked(token));
        }
        if token.rotated_at.is_some() {
            return Ok(RefreshUse::Replayed(token));
        }
        Sql::new("UPDATE refresh_tokens SET rotated_at = $1 WHERE token_hash = $2")
            .bind(at)
            .bind(token_hash)
            .execute::<D>(&mut *tx)
            .await?;
        commit::<D>(tx).await?;
        token.rotated_at = Some(at);
        Ok(RefreshUse::Rotated(token))
    }

    async fn purge_expired(&self, now: UnixMillis) -> StoreResult<u64> {
        let mut tx = self.write().await?;
        let mut n = 0;
        for stmt in [
            "DELETE FROM pending_authorizations WHERE expires_at <= $1",
            "DELETE FROM auth_codes WHERE expires_at <= $1",
            "DELETE FROM refresh_tokens WHERE expires_at <= $1",
            "DELETE FROM access_tokens WHERE expires_at <= $1",
            "DELETE FROM upstream_logins WHERE expires_at <= $1",
            "DELETE FROM rate_limits WHERE window_ends <= $1",
        ] {
            n += Sql::new(stmt).bind(now).execute::<D>(&mut *tx).await?;
        }
        // A revoked grant is remembered only for tokens being issued while it was revoked.
        n += Sql::new("DELETE FROM revoked_grants WHERE revoked_at <= $1")
            .bind(now.0 - REVOKED_GRANT_MEMORY_MS)
            .execute::<D>(&mut *tx)
            .await?;
        commit::<D>(tx).await?;
        Ok(n)
    }
}

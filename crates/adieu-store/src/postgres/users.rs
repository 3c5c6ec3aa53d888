//! User accounts.

use super::rows::user_cols;
use super::sessions::{end_user_sessions_in, revoke_user_tokens_in};
use super::{PostgresStore, append_audit_in, backend, rows};
use adieu_core::audit::{AuditEvent, kind};
use adieu_core::id::UserId;
use adieu_core::initiator::Initiator;
use adieu_core::session::EndedSession;
use adieu_core::store::{StoreResult, UserStore};
use adieu_core::time::UnixMillis;
use adieu_core::user::{User, UserChanges, UserQuery, UserUpdated};
use async_trait::async_trait;
use serde_json::json;
use sqlx::PgConnection;

/// Inserts a new user with its username and email lowercased (how they are looked up), and
/// returns those two as stored.
pub(super) async fn insert_user_in(conn: &mut PgConnection, u: &User) -> StoreResult<(String, Option<String>)> {
    let (username, email) = (u.username.to_lowercase(), u.email.as_ref().map(|e| e.to_lowercase()));
    sqlx::query(
        "INSERT INTO users (id, username, email, password_hash, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6)",
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
impl UserStore for PostgresStore {
    async fn add_user(&self, u: &User, actor: &str) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let (username, email) = insert_user_in(&mut tx, u).await?;
        let e =
            AuditEvent::new(kind::USER_CREATED, actor, u.created_at, json!({ "username": username, "email": email }))
                .user(u.id.as_str());
        append_audit_in(&mut tx, &e).await?;
        tx.commit().await.map_err(backend)?;
        Ok(())
    }

    async fn user_by_id(&self, id: &UserId) -> StoreResult<Option<User>> {
        let row = sqlx::query(concat!("SELECT ", user_cols!(), " FROM users WHERE id = $1"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.as_ref().map(rows::user).transpose()
    }

    async fn user_by_login(&self, login: &str) -> StoreResult<Option<User>> {
        let login = login.trim().to_lowercase();
        let row = sqlx::query(concat!(
            "SELECT ",
            user_cols!(),
            " FROM users WHERE username = $1 OR email = $1 ORDER BY (username = $1) DESC LIMIT 1"
        ))
        .bind(login)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        row.as_ref().map(rows::user).transpose()
    }

    async fn list_users(&self, q: &UserQuery) -> StoreResult<Vec<User>> {
        // `strpos` rather than LIKE: no wildcard characters to escape in the filter.
        let rows = sqlx::query(concat!(
            "SELECT ",
            user_cols!(),
            " FROM users
             WHERE ($1::text IS NULL OR strpos(username, $1) > 0 OR strpos(coalesce(email, ''), $1) > 0)
               AND ($2::text IS NULL OR username > $2)
             ORDER BY username LIMIT $3"
        ))
        .bind(q.contains.as_ref().map(|c| c.trim().to_lowercase()).filter(|c| !c.is_empty()))
        .bind(&q.after)
        .bind(i64::from(q.page_size()))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(rows::user).collect()
    }

    async fn update_user(
        &self,
        id: &UserId,
        changes: &UserChanges,
        actor: &str,
        at: UnixMillis,
    ) -> StoreResult<Option<UserUpdated>> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let row = sqlx::query(concat!("SELECT ", user_cols!(), " FROM users WHERE id = $1 FOR UPDATE"))
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
        let Some(old) = row.as_ref().map(rows::user).transpose()? else { return Ok(None) };
        let initiator = changes.ending_initiator(&old);
        let username = changes.username.as_ref().map_or_else(|| old.username.clone(), |u| u.to_lowercase());
        let email = match &changes.email {
            Some(e) => e.as_ref().map(|e| e.to_lowercase()),
            None => old.email.clone(),
        };
        let hash = changes.password_hash.clone().unwrap_or_else(|| old.password_hash.clone());
        sqlx::query("UPDATE users SET username = $1, email = $2, password_hash = $3, updated_at = $4 WHERE id = $5")
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
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let username: Option<String> = sqlx::query_scalar("SELECT username FROM users WHERE id = $1 FOR UPDATE")
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
        let Some(username) = username else { return Ok(None) };
        // The sessions keep `user_id` (no foreign key), so the deliveries carry the right `sub`.
        let ended = end_user_sessions_in(&mut tx, id, Initiator::AccountDeleted, actor, at).await?;
        let revoked = revoke_user_tokens_in(&mut tx, id, at).await?;
        for stmt in ["DELETE FROM auth_codes WHERE user_id = $1", "DELETE FROM users WHERE id = $1"] {
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

//! User accounts: lookups, and changes that end sessions and revoke tokens in one transaction.

use super::audit::append_audit_in;
use super::rows::{self, user_cols};
use super::sessions::{end_user_sessions_in, revoke_user_tokens_in};
use super::{Dialect, Read, Sql, SqlStore, commit};
use adieu_core::audit::{AuditEvent, AuditKind};
use adieu_core::id::UserId;
use adieu_core::initiator::Initiator;
use adieu_core::session::EndedSession;
use adieu_core::store::{StoreResult, UserStore};
use adieu_core::time::UnixMillis;
use adieu_core::user::{User, UserChanges, UserQuery, UserUpdated};
use async_trait::async_trait;
use serde_json::json;

/// Inserts a new user with its username and email lowercased (how they are looked up), and
/// returns those two as stored.
pub(crate) async fn insert_user_in<D: Dialect>(
    conn: &mut D::Connection,
    u: &User,
) -> StoreResult<(String, Option<String>)> {
    let (username, email) = (u.username.to_lowercase(), u.email.as_ref().map(|e| e.to_lowercase()));
    Sql::new(
        "INSERT INTO users (id, username, email, password_hash, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(u.id.as_str())
    .bind(&username)
    .bind(&email)
    .bind(&u.password_hash)
    .bind(u.created_at)
    .bind(u.updated_at)
    .execute::<D>(conn)
    .await?;
    Ok((username, email))
}

/// The `user.updated` detail: what changed (old and new), and what the change ended.
fn update_detail(
    old: &User,
    new: &User,
    changes: &UserChanges,
    initiator: Option<Initiator>,
    ended: usize,
    revoked_tokens: u64,
) -> serde_json::Value {
    let mut detail = serde_json::Map::new();
    if changes.changes_username(old) {
        detail.insert("username".into(), json!({ "old": old.username, "new": new.username }));
    }
    if changes.changes_email(old) {
        detail.insert("email".into(), json!({ "old": old.email, "new": new.email }));
    }
    if changes.password_hash.is_some() {
        detail.insert("password".into(), json!("changed"));
    }
    detail.insert("initiator".into(), json!(initiator.map(Initiator::as_str)));
    detail.insert("sessions_ended".into(), json!(ended));
    detail.insert("revoked_tokens".into(), json!(revoked_tokens));
    serde_json::Value::Object(detail)
}

/// `old` with `changes` applied at `at` (username and email lowercased, as stored).
fn changed(old: &User, changes: &UserChanges, at: UnixMillis) -> User {
    let username = changes.username.as_ref().map_or_else(|| old.username.clone(), |u| u.to_lowercase());
    let email = match &changes.email {
        Some(e) => e.as_ref().map(|e| e.to_lowercase()),
        None => old.email.clone(),
    };
    let password_hash = changes.password_hash.clone().unwrap_or_else(|| old.password_hash.clone());
    User { username, email, password_hash, updated_at: at, ..old.clone() }
}

#[async_trait]
impl<D: Dialect> UserStore for SqlStore<D> {
    async fn add_user(&self, u: &User, actor: &str) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let (username, email) = insert_user_in::<D>(&mut *tx, u).await?;
        let e = AuditEvent::new(
            AuditKind::UserCreated,
            actor,
            u.created_at,
            json!({ "username": username, "email": email }),
        )
        .user(u.id.as_str());
        append_audit_in::<D>(&mut *tx, &e).await?;
        commit::<D>(tx).await
    }

    async fn user_by_id(&self, id: &UserId) -> StoreResult<Option<User>> {
        let row = Sql::new(concat!("SELECT ", user_cols!(), " FROM users WHERE id = $1"))
            .bind(id.as_str())
            .fetch_optional::<D>(&mut *self.read().await?)
            .await?;
        row.as_ref().map(rows::user).transpose()
    }

    async fn user_by_login(&self, login: &str) -> StoreResult<Option<User>> {
        let login = login.trim().to_lowercase();
        let row = Sql::new(concat!(
            "SELECT ",
            user_cols!(),
            " FROM users WHERE username = $1 OR email = $1 ORDER BY (username = $1) DESC LIMIT 1"
        ))
        .bind(login)
        .fetch_optional::<D>(&mut *self.read().await?)
        .await?;
        row.as_ref().map(rows::user).transpose()
    }

    async fn list_users(&self, q: &UserQuery) -> StoreResult<Vec<User>> {
        // "Contains" as `replace` shortening the text: a case-sensitive substring test on both
        // backends (`instr` and `strpos` are each one backend's), with no LIKE wildcards to escape.
        // Stored usernames and emails are lowercase, and so is the filter.
        let rows = Sql::new(concat!(
            "SELECT ",
            user_cols!(),
            " FROM users
             WHERE (CAST($1 AS TEXT) IS NULL OR length(replace(username, $1, '')) < length(username)
                    OR length(replace(coalesce(email, ''), $1, '')) < length(coalesce(email, '')))
               AND (CAST($2 AS TEXT) IS NULL OR username > $2)
             ORDER BY username LIMIT $3"
        ))
        .bind(q.contains.as_ref().map(|c| c.trim().to_lowercase()).filter(|c| !c.is_empty()))
        .bind(&q.after)
        .bind(i64::from(q.page_size()))
        .fetch_all::<D>(&mut *self.read().await?)
        .await?;
        rows.iter().map(rows::user).collect()
    }

    async fn update_user(
        &self,
        id: &UserId,
        changes: &UserChanges,
        actor: &str,
        at: UnixMillis,
    ) -> StoreResult<Option<UserUpdated>> {
        let mut tx = self.write().await?;
        let row = Sql::new(format!("SELECT {} FROM users WHERE id = $1{}", user_cols!(), D::FOR_UPDATE))
            .bind(id.as_str())
            .fetch_optional::<D>(&mut *tx)
            .await?;
        let Some(old) = row.as_ref().map(rows::user).transpose()? else { return Ok(None) };
        let initiator = changes.ending_initiator(&old);
        let user = changed(&old, changes, at);
        Sql::new("UPDATE users SET username = $1, email = $2, password_hash = $3, updated_at = $4 WHERE id = $5")
            .bind(&user.username)
            .bind(&user.email)
            .bind(&user.password_hash)
            .bind(at)
            .bind(id.as_str())
            .execute::<D>(&mut *tx)
            .await?;
        let ended = match initiator {
            Some(i) => end_user_sessions_in::<D>(&mut *tx, id, &self.ending(i, actor, at)).await?,
            None => Vec::new(),
        };
        // A new password also ends grants that outlive sessions (offline_access).
        let revoked_tokens =
            if changes.password_hash.is_some() { revoke_user_tokens_in::<D>(&mut *tx, id, at).await? } else { 0 };
        let detail = update_detail(&old, &user, changes, initiator, ended.len(), revoked_tokens);
        let e = AuditEvent::new(AuditKind::UserUpdated, actor, at, detail).user(id.as_str());
        append_audit_in::<D>(&mut *tx, &e).await?;
        commit::<D>(tx).await?;
        Ok(Some(UserUpdated { user, initiator, ended, revoked_tokens }))
    }

    async fn delete_user(&self, id: &UserId, actor: &str, at: UnixMillis) -> StoreResult<Option<Vec<EndedSession>>> {
        let mut tx = self.write().await?;
        let row = Sql::new(format!("SELECT username FROM users WHERE id = $1{}", D::FOR_UPDATE))
            .bind(id.as_str())
            .fetch_optional::<D>(&mut *tx)
            .await?;
        let Some(username) = row.map(|r| r.text("username")).transpose()? else { return Ok(None) };
        // The sessions keep `user_id` (no foreign key), so the deliveries carry the right `sub`.
        let ended = end_user_sessions_in::<D>(&mut *tx, id, &self.ending(Initiator::AccountDeleted, actor, at)).await?;
        let revoked = revoke_user_tokens_in::<D>(&mut *tx, id, at).await?;
        for stmt in [
            "DELETE FROM auth_codes WHERE user_id = $1",
            "DELETE FROM consents WHERE user_id = $1",
            "DELETE FROM users WHERE id = $1",
        ] {
            Sql::new(stmt).bind(id.as_str()).execute::<D>(&mut *tx).await?;
        }
        let e = AuditEvent::new(
            AuditKind::UserDeleted,
            actor,
            at,
            json!({ "username": username, "sessions_ended": ended.len(), "revoked_tokens": revoked }),
        )
        .user(id.as_str());
        append_audit_in::<D>(&mut *tx, &e).await?;
        commit::<D>(tx).await?;
        Ok(Some(ended))
    }

    async fn revoke_user_everywhere(
        &self,
        id: &UserId,
        actor: &str,
        at: UnixMillis,
    ) -> StoreResult<Option<(Vec<EndedSession>, u64)>> {
        let mut tx = self.write().await?;
        let row = Sql::new(format!("SELECT id FROM users WHERE id = $1{}", D::FOR_UPDATE))
            .bind(id.as_str())
            .fetch_optional::<D>(&mut *tx)
            .await?;
        if row.is_none() {
            return Ok(None);
        }
        let ended = end_user_sessions_in::<D>(&mut *tx, id, &self.ending(Initiator::SessionRevoked, actor, at)).await?;
        // The sessions' own tokens went with them; this takes the offline ones too.
        let revoked = revoke_user_tokens_in::<D>(&mut *tx, id, at).await?;
        let tokens = revoked + ended.iter().map(|e| e.revoked_tokens).sum::<u64>();
        let detail = json!({ "sessions_ended": ended.len(), "revoked_tokens": tokens });
        let e = AuditEvent::new(AuditKind::UserTokensRevoked, actor, at, detail).user(id.as_str());
        append_audit_in::<D>(&mut *tx, &e).await?;
        commit::<D>(tx).await?;
        Ok(Some((ended, tokens)))
    }
}

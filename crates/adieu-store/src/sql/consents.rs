//! What users allowed applications on the consent screen (migration 0011).

use super::audit::append_audit_in;
use super::stmt::to_json;
use super::{Dialect, Read, Sql, SqlStore, commit};
use adieu_core::audit::{Actor, AuditEvent, AuditKind};
use adieu_core::consent::{Consent, ConsentStore};
use adieu_core::id::{ClientId, UserId};
use adieu_core::store::StoreResult;
use adieu_core::time::UnixMillis;
use async_trait::async_trait;
use serde_json::json;

fn consent(r: &impl Read) -> StoreResult<Consent> {
    Ok(Consent {
        user_id: UserId::new(r.text("user_id")?),
        client_id: ClientId::new(r.text("client_id")?),
        scopes: r.json("scopes")?,
        granted_at: r.ms("granted_at")?,
    })
}

#[async_trait]
impl<D: Dialect> ConsentStore for SqlStore<D> {
    async fn consent(&self, user: &UserId, client: &ClientId) -> StoreResult<Option<Consent>> {
        let row = Sql::new(
            "SELECT user_id, client_id, scopes, granted_at FROM consents WHERE user_id = $1 AND client_id = $2",
        )
        .bind(user.as_str())
        .bind(client.as_str())
        .fetch_optional::<D>(&mut *self.read().await?)
        .await?;
        row.as_ref().map(consent).transpose()
    }

    async fn put_consent(&self, c: &Consent) -> StoreResult<()> {
        let mut tx = self.write().await?;
        Sql::new(
            "INSERT INTO consents (user_id, client_id, scopes, granted_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (user_id, client_id) DO UPDATE SET scopes = excluded.scopes, granted_at = excluded.granted_at",
        )
        .bind(c.user_id.as_str())
        .bind(c.client_id.as_str())
        .bind(to_json(&c.scopes)?)
        .bind(c.granted_at)
        .execute::<D>(&mut *tx)
        .await?;
        let actor = Actor::Account(c.user_id.as_str()).name();
        let e = AuditEvent::new(AuditKind::ConsentGranted, &actor, c.granted_at, json!({ "scopes": c.scopes }))
            .user(c.user_id.as_str())
            .client(c.client_id.as_str());
        append_audit_in::<D>(&mut *tx, &e).await?;
        commit::<D>(tx).await
    }

    async fn consents_of_user(&self, user: &UserId) -> StoreResult<Vec<Consent>> {
        let rows = Sql::new(
            "SELECT user_id, client_id, scopes, granted_at FROM consents WHERE user_id = $1
             ORDER BY granted_at DESC, client_id",
        )
        .bind(user.as_str())
        .fetch_all::<D>(&mut *self.read().await?)
        .await?;
        rows.iter().map(consent).collect()
    }

    async fn delete_consent(&self, user: &UserId, client: &ClientId, at: UnixMillis) -> StoreResult<bool> {
        let mut tx = self.write().await?;
        let n = Sql::new("DELETE FROM consents WHERE user_id = $1 AND client_id = $2")
            .bind(user.as_str())
            .bind(client.as_str())
            .execute::<D>(&mut *tx)
            .await?;
        if n > 0 {
            // What the consent let the application hold goes with it: its unused codes and its
            // tokens for this user (the offline ones included).
            Sql::new("DELETE FROM auth_codes WHERE user_id = $1 AND client_id = $2 AND used_at IS NULL")
                .bind(user.as_str())
                .bind(client.as_str())
                .execute::<D>(&mut *tx)
                .await?;
            let mut revoked = 0;
            for stmt in [
                "UPDATE refresh_tokens SET revoked_at = $1 WHERE user_id = $2 AND client_id = $3 AND revoked_at IS NULL",
                "UPDATE access_tokens SET revoked_at = $1 WHERE user_id = $2 AND client_id = $3 AND revoked_at IS NULL",
            ] {
                revoked +=
                    Sql::new(stmt).bind(at).bind(user.as_str()).bind(client.as_str()).execute::<D>(&mut *tx).await?;
            }
            let actor = Actor::Account(user.as_str()).name();
            let e = AuditEvent::new(AuditKind::ConsentWithdrawn, &actor, at, json!({ "revoked_tokens": revoked }))
                .user(user.as_str())
                .client(client.as_str());
            append_audit_in::<D>(&mut *tx, &e).await?;
        }
        commit::<D>(tx).await?;
        Ok(n > 0)
    }
}

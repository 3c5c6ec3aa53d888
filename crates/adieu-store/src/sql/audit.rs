//! The audit log, API tokens and readiness.

use super::rows::{self, audit_cols};
use super::{Dialect, Read, Sql, SqlStore, commit};
use adieu_core::audit::{AuditEvent, AuditFilter, AuditKind};
use adieu_core::store::{ApiToken, ApiTokenKind, ApiTokenStore, AuditStore, Health, StoreError, StoreResult};
use adieu_core::time::UnixMillis;
use async_trait::async_trait;
use serde_json::json;

/// Appends an audit event inside the caller's transaction.
pub(crate) async fn append_audit_in<D: Dialect>(conn: &mut D::Connection, e: &AuditEvent) -> StoreResult<()> {
    Sql::new(
        "INSERT INTO audit_log (at, kind, actor, client_id, user_id, session_id, delivery_id, detail)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(e.at)
    .bind(&e.kind)
    .bind(&e.actor)
    .bind(&e.client_id)
    .bind(&e.user_id)
    .bind(&e.session_id)
    .bind(&e.delivery_id)
    .bind(e.detail.to_string())
    .execute::<D>(conn)
    .await?;
    Ok(())
}

#[async_trait]
impl<D: Dialect> AuditStore for SqlStore<D> {
    async fn append_audit(&self, event: &AuditEvent) -> StoreResult<()> {
        append_audit_in::<D>(&mut *self.writer().await?, event).await
    }

    async fn audit_events(&self, f: &AuditFilter) -> StoreResult<Vec<AuditEvent>> {
        let (exact, prefix) = match &f.kind {
            Some(k) if k.ends_with('.') => (None, Some(format!("{k}%"))),
            Some(k) => (Some(k.clone()), None),
            None => (None, None),
        };
        // The prefix filter ignores ASCII case on both backends.
        let sql = format!(
            "SELECT {} FROM audit_log
             WHERE (CAST($1 AS TEXT) IS NULL OR kind = $1) AND (CAST($2 AS TEXT) IS NULL OR kind {} $2)
               AND (CAST($3 AS TEXT) IS NULL OR client_id = $3)
               AND (CAST($4 AS BIGINT) IS NULL OR at >= $4) AND (CAST($5 AS BIGINT) IS NULL OR at < $5)
             ORDER BY id DESC LIMIT $6",
            audit_cols!(),
            D::ILIKE
        );
        let rows = Sql::new(sql)
            .bind(exact)
            .bind(prefix)
            .bind(&f.client_id)
            .bind(f.since)
            .bind(f.until)
            .bind(i64::from(f.limit.unwrap_or(100).clamp(1, 1000)))
            .fetch_all::<D>(&mut *self.read().await?)
            .await?;
        rows.iter().map(rows::audit).collect()
    }
}

#[async_trait]
impl<D: Dialect> Health for SqlStore<D> {
    async fn ping(&self) -> StoreResult<()> {
        // A write, so that readiness fails while the database cannot write (disk full, read-only
        // file system, a primary that stepped down) and recovers by itself once it can.
        D::heartbeat(&self.replica).execute::<D>(&mut *self.writer().await?).await?;
        Ok(())
    }
}

#[async_trait]
impl<D: Dialect> ApiTokenStore for SqlStore<D> {
    async fn insert_api_token(
        &self,
        hash: &str,
        kind: ApiTokenKind,
        label: &str,
        actor: &str,
        at: UnixMillis,
    ) -> StoreResult<()> {
        let mut tx = self.write().await?;
        Sql::new("INSERT INTO api_tokens (hash, kind, label, created_at) VALUES ($1, $2, $3, $4)")
            .bind(hash)
            .bind(kind.as_str())
            .bind(label)
            .bind(at)
            .execute::<D>(&mut *tx)
            .await?;
        let detail = json!({ "id": ApiToken::id_of(hash), "kind": kind.as_str(), "label": label });
        append_audit_in::<D>(&mut *tx, &AuditEvent::new(AuditKind::ApiTokenCreated, actor, at, detail)).await?;
        commit::<D>(tx).await
    }

    async fn api_tokens(&self) -> StoreResult<Vec<ApiToken>> {
        let rows = Sql::new("SELECT hash, kind, label, created_at FROM api_tokens ORDER BY created_at, hash")
            .fetch_all::<D>(&mut *self.read().await?)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ApiToken {
                    id: ApiToken::id_of(&r.text("hash")?),
                    kind: r.text("kind")?.parse().map_err(StoreError::Backend)?,
                    label: r.text("label")?,
                    created_at: r.ms("created_at")?,
                })
            })
            .collect()
    }

    async fn revoke_api_token(&self, id: &str, actor: &str, at: UnixMillis) -> StoreResult<bool> {
        if id.chars().count() != ApiToken::ID_LEN {
            return Ok(false);
        }
        let mut tx = self.write().await?;
        let sql = format!(
            "SELECT hash, kind, label FROM api_tokens WHERE substr(hash, 1, {}) = $1{}",
            ApiToken::ID_LEN,
            D::FOR_UPDATE
        );
        let found = Sql::new(sql).bind(id).fetch_all::<D>(&mut *tx).await?;
        let [row] = found.as_slice() else {
            // None, or (one chance in 2^72) two tokens with one id: revoke neither.
            return if found.is_empty() { Ok(false) } else { Err(StoreError::Conflict("id".into())) };
        };
        Sql::new("DELETE FROM api_tokens WHERE hash = $1").bind(row.text("hash")?).execute::<D>(&mut *tx).await?;
        let detail = json!({ "id": id, "kind": row.text("kind")?, "label": row.text("label")? });
        append_audit_in::<D>(&mut *tx, &AuditEvent::new(AuditKind::ApiTokenRevoked, actor, at, detail)).await?;
        commit::<D>(tx).await?;
        Ok(true)
    }

    async fn api_token_exists(&self, hash: &str, kind: ApiTokenKind) -> StoreResult<bool> {
        let n = Sql::new("SELECT COUNT(*) AS n FROM api_tokens WHERE hash = $1 AND kind = $2")
            .bind(hash)
            .bind(kind.as_str())
            .fetch_i64::<D>(&mut *self.read().await?, "n")
            .await?;
        Ok(n > 0)
    }
}

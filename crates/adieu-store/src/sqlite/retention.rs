//! Retention on SQLite: finished deliveries (with their attempts) and audit events, a batch at a
//! time, each batch one `BEGIN IMMEDIATE` transaction on the writer.

use super::{SqliteStore, backend, json_err};
use adieu_core::delivery::DeliveryStatus;
use adieu_core::store::{RetentionStore, StoreResult};
use adieu_core::time::UnixMillis;
use async_trait::async_trait;

#[async_trait]
impl RetentionStore for SqliteStore {
    async fn prune_deliveries(&self, before: UnixMillis, limit: u32) -> StoreResult<u64> {
        // Which statuses are finished is decided in adieu-core.
        let finished = serde_json::to_string(&DeliveryStatus::final_names()).map_err(json_err)?;
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(backend)?;
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM deliveries INDEXED BY deliveries_finished
             WHERE finished_at IS NOT NULL AND finished_at < ?
               AND status IN (SELECT value FROM json_each(?))
             ORDER BY finished_at LIMIT ?",
        )
        .bind(before.0)
        .bind(finished.as_str())
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        if ids.is_empty() {
            return Ok(0);
        }
        let list = serde_json::to_string(&ids).map_err(json_err)?;
        sqlx::query("DELETE FROM delivery_attempts WHERE delivery_id IN (SELECT value FROM json_each(?))")
            .bind(&list)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        let n = sqlx::query("DELETE FROM deliveries WHERE id IN (SELECT value FROM json_each(?))")
            .bind(&list)
            .execute(&mut *tx)
            .await
            .map_err(backend)?
            .rows_affected();
        tx.commit().await.map_err(backend)?;
        Ok(n)
    }

    async fn prune_audit(&self, before: UnixMillis, limit: u32) -> StoreResult<u64> {
        let n = sqlx::query(
            "DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log WHERE at < ? ORDER BY at LIMIT ?)",
        )
        .bind(before.0)
        .bind(i64::from(limit))
        .execute(&self.writer)
        .await
        .map_err(backend)?
        .rows_affected();
        Ok(n)
    }
}

//! Retention on PostgreSQL: finished deliveries (with their attempts) and audit events, a batch
//! at a time. Rows another replica is pruning at the same moment are skipped (`SKIP LOCKED`), so
//! pruners on every replica share the work.

use super::{PostgresStore, backend};
use adieu_core::delivery::DeliveryStatus;
use adieu_core::store::{RetentionStore, StoreResult};
use adieu_core::time::UnixMillis;
use async_trait::async_trait;

#[async_trait]
impl RetentionStore for PostgresStore {
    async fn prune_deliveries(&self, before: UnixMillis, limit: u32) -> StoreResult<u64> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM deliveries
             WHERE finished_at IS NOT NULL AND finished_at < $1
               AND status = ANY($3)
             ORDER BY finished_at LIMIT $2 FOR UPDATE SKIP LOCKED",
        )
        .bind(before.0)
        .bind(i64::from(limit))
        // Which statuses are finished is decided in adieu-core.
        .bind(DeliveryStatus::final_names())
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        if ids.is_empty() {
            return Ok(0);
        }
        sqlx::query("DELETE FROM delivery_attempts WHERE delivery_id = ANY($1)")
            .bind(&ids)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        let n = sqlx::query("DELETE FROM deliveries WHERE id = ANY($1)")
            .bind(&ids)
            .execute(&mut *tx)
            .await
            .map_err(backend)?
            .rows_affected();
        tx.commit().await.map_err(backend)?;
        Ok(n)
    }

    async fn prune_audit(&self, before: UnixMillis, limit: u32) -> StoreResult<u64> {
        let n = sqlx::query(
            "DELETE FROM audit_log WHERE id IN
               (SELECT id FROM audit_log WHERE at < $1 ORDER BY at LIMIT $2 FOR UPDATE SKIP LOCKED)",
        )
        .bind(before.0)
        .bind(i64::from(limit))
        .execute(&self.pool)
        .await
        .map_err(backend)?
        .rows_affected();
        Ok(n)
    }
}

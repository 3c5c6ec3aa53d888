//! Retention: finished deliveries (with their attempts) and audit events, a batch at a time, each
//! batch one short transaction. On PostgreSQL, rows another replica is pruning at the same moment
//! are skipped (`SKIP LOCKED`), so pruners on every replica share the work.

use super::stmt::to_json;
use super::{Dialect, Sql, SqlStore, commit};
use adieu_core::delivery::DeliveryStatus;
use adieu_core::store::{RetentionStore, StoreResult};
use adieu_core::time::UnixMillis;
use async_trait::async_trait;

#[async_trait]
impl<D: Dialect> RetentionStore for SqlStore<D> {
    async fn prune_deliveries(&self, before: UnixMillis, limit: u32) -> StoreResult<u64> {
        // Which statuses are finished is decided in adieu-core.
        let finished = to_json(&DeliveryStatus::final_names())?;
        let mut tx = self.write().await?;
        let sql = format!(
            "SELECT id FROM {}
             WHERE finished_at IS NOT NULL AND finished_at < $1 AND status IN {}
             ORDER BY finished_at LIMIT $2{}",
            D::indexed("deliveries", "deliveries_finished"),
            D::json_list("$3"),
            D::SKIP_LOCKED
        );
        let ids =
            Sql::new(sql).bind(before).bind(i64::from(limit)).bind(finished).fetch_texts::<D>(&mut *tx, "id").await?;
        if ids.is_empty() {
            return Ok(0);
        }
        let list = to_json(&ids)?;
        Sql::new(format!("DELETE FROM delivery_attempts WHERE delivery_id IN {}", D::json_list("$1")))
            .bind(&list)
            .execute::<D>(&mut *tx)
            .await?;
        let n = Sql::new(format!("DELETE FROM deliveries WHERE id IN {}", D::json_list("$1")))
            .bind(list)
            .execute::<D>(&mut *tx)
            .await?;
        commit::<D>(tx).await?;
        Ok(n)
    }

    async fn prune_audit(&self, before: UnixMillis, limit: u32) -> StoreResult<u64> {
        let sql = format!(
            "DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log WHERE at < $1 ORDER BY at LIMIT $2{})",
            D::SKIP_LOCKED
        );
        Sql::new(sql).bind(before).bind(i64::from(limit)).execute::<D>(&mut *self.writer().await?).await
    }
}

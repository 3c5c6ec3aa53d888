//! [`RateLimitStore`] for SQLite: one upsert per hit on the single writer (migration 0006).

use super::{SqliteStore, backend};
use adieu_core::store::{RateCount, RateLimitStore, StoreResult};
use adieu_core::time::UnixMillis;
use async_trait::async_trait;
use sqlx::Row;
use std::time::Duration;

#[async_trait]
impl RateLimitStore for SqliteStore {
    async fn rate_limit_hit(&self, key: &str, window: Duration, now: UnixMillis) -> StoreResult<RateCount> {
        let ends = now.plus(window);
        let row = sqlx::query(
            "INSERT INTO rate_limits (key, count, window_ends) VALUES (?1, 1, ?2)
             ON CONFLICT (key) DO UPDATE SET
               count = CASE WHEN rate_limits.window_ends <= ?3 THEN 1 ELSE rate_limits.count + 1 END,
               window_ends = CASE WHEN rate_limits.window_ends <= ?3 THEN ?2 ELSE rate_limits.window_ends END
             RETURNING count, window_ends",
        )
        .bind(key)
        .bind(ends.0)
        .bind(now.0)
        .fetch_one(&self.writer)
        .await
        .map_err(backend)?;
        let count: i64 = row.try_get("count").map_err(backend)?;
        Ok(RateCount {
            count: u32::try_from(count).unwrap_or(u32::MAX),
            window_ends: UnixMillis(row.try_get("window_ends").map_err(backend)?),
        })
    }

    async fn rate_limit_count(&self, key: &str, now: UnixMillis) -> StoreResult<u32> {
        let count: Option<i64> = sqlx::query_scalar("SELECT count FROM rate_limits WHERE key = ? AND window_ends > ?")
            .bind(key)
            .bind(now.0)
            .fetch_optional(&self.reader)
            .await
            .map_err(backend)?;
        Ok(count.map_or(0, |c| u32::try_from(c).unwrap_or(u32::MAX)))
    }

    async fn rate_limit_clear(&self, key: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM rate_limits WHERE key = ?").bind(key).execute(&self.writer).await.map_err(backend)?;
        Ok(())
    }
}

//! [`RateLimitStore`] for PostgreSQL: a hit is one atomic upsert (`INSERT … ON CONFLICT DO
//! UPDATE`, which locks the row), so replicas counting the same key at once each get their own
//! count (migration 0006).

use super::{PostgresStore, backend};
use adieu_core::store::{RateCount, RateLimitStore, StoreResult};
use adieu_core::time::UnixMillis;
use async_trait::async_trait;
use sqlx::Row;
use std::time::Duration;

#[async_trait]
impl RateLimitStore for PostgresStore {
    async fn rate_limit_hit(&self, key: &str, window: Duration, now: UnixMillis) -> StoreResult<RateCount> {
        let ends = now.plus(window);
        let row = sqlx::query(
            "INSERT INTO rate_limits (key, count, window_ends) VALUES ($1, 1, $2)
             ON CONFLICT (key) DO UPDATE SET
               count = CASE WHEN rate_limits.window_ends <= $3 THEN 1 ELSE rate_limits.count + 1 END,
               window_ends = CASE WHEN rate_limits.window_ends <= $3 THEN $2 ELSE rate_limits.window_ends END
             RETURNING count, window_ends",
        )
        .bind(key)
        .bind(ends.0)
        .bind(now.0)
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        let count: i64 = row.try_get("count").map_err(backend)?;
        Ok(RateCount {
            count: u32::try_from(count).unwrap_or(u32::MAX),
            window_ends: UnixMillis(row.try_get("window_ends").map_err(backend)?),
        })
    }

    async fn rate_limit_count(&self, key: &str, now: UnixMillis) -> StoreResult<u32> {
        let count: Option<i64> =
            sqlx::query_scalar("SELECT count FROM rate_limits WHERE key = $1 AND window_ends > $2")
                .bind(key)
                .bind(now.0)
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?;
        Ok(count.map_or(0, |c| u32::try_from(c).unwrap_or(u32::MAX)))
    }

    async fn rate_limit_clear(&self, key: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM rate_limits WHERE key = $1").bind(key).execute(&self.pool).await.map_err(backend)?;
        Ok(())
    }
}

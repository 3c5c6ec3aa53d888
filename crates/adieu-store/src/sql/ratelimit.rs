//! Rate-limit windows (migration 0006): a hit is one atomic upsert (`INSERT … ON CONFLICT DO
//! UPDATE`, which locks the row on PostgreSQL and runs on the one writer on SQLite), so hits on
//! the same key at once, from any replica, each get their own count.

use super::{Dialect, Read, Sql, SqlStore};
use adieu_core::store::{RateCount, RateLimitStore, StoreError, StoreResult};
use adieu_core::time::UnixMillis;
use async_trait::async_trait;
use std::time::Duration;

/// A stored count as the `u32` the callers compare (saturating).
fn count(c: i64) -> u32 {
    u32::try_from(c).unwrap_or(u32::MAX)
}

#[async_trait]
impl<D: Dialect> RateLimitStore for SqlStore<D> {
    async fn rate_limit_hit(&self, key: &str, window: Duration, now: UnixMillis) -> StoreResult<RateCount> {
        let row = Sql::new(
            "INSERT INTO rate_limits (key, count, window_ends) VALUES ($1, 1, $2)
             ON CONFLICT (key) DO UPDATE SET
               count = CASE WHEN rate_limits.window_ends <= $3 THEN 1 ELSE rate_limits.count + 1 END,
               window_ends = CASE WHEN rate_limits.window_ends <= $3 THEN $2 ELSE rate_limits.window_ends END
             RETURNING count, window_ends",
        )
        .bind(key)
        .bind(now.plus(window))
        .bind(now)
        .fetch_optional::<D>(&mut *self.writer().await?)
        .await?
        .ok_or_else(|| StoreError::Backend("the rate-limit upsert returned no row".into()))?;
        Ok(RateCount { count: count(row.i64("count")?), window_ends: row.ms("window_ends")? })
    }

    async fn rate_limit_count(&self, key: &str, now: UnixMillis) -> StoreResult<u32> {
        let row = Sql::new("SELECT count FROM rate_limits WHERE key = $1 AND window_ends > $2")
            .bind(key)
            .bind(now)
            .fetch_optional::<D>(&mut *self.read().await?)
            .await?;
        Ok(row.map(|r| r.i64("count")).transpose()?.map_or(0, count))
    }

    async fn rate_limit_clear(&self, key: &str) -> StoreResult<()> {
        Sql::new("DELETE FROM rate_limits WHERE key = $1").bind(key).execute::<D>(&mut *self.writer().await?).await?;
        Ok(())
    }
}
